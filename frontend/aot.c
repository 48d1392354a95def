/*
 * aot.c — loom_aot_emit: the current tape's entries compiled into a
 * native object, its C header and its weights (include/loom.h says what
 * the user gets). Here: checking the request, compiling each entry's plan
 * exactly as loom_run would, laying out the weights (every parameter an
 * entry reads, then inputs compiled in, each 64-byte aligned, by id),
 * resolving every plan buffer to a place (the caller's memory, an
 * argument, the weights), which assignments a commit entry applies (not
 * those reading another entry's arguments), the graph hash, the generated
 * header (with a weights-file loader in plain C: magic, version, graph
 * hash, size and an XXH64 checksum), and writing the files atomically.
 * The code itself is jit/aot.c's.
 *
 * The weights file: a 64-byte header, then the weights.
 *   0  magic "LOOMWTS\0"        8  u32 format version   12 u32 header bytes (64)
 *   16 u64 graph hash           24 u64 weights bytes    32 u64 XXH64 (seed 0) of the weights
 *   40 u32 items                44..63 zero
 * All little-endian.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aot.h"
#include "fe.h"
#include "json.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static const char FN[] = "loom_aot_emit";
static const char MAGIC[8] = "LOOMWTS";

enum { NAME_MAX_LEN = 48 };

typedef struct ex_arg {
    char name[NAME_MAX_LEN + 8];
    loom_dtype dtype;
    loom_shape shape;
    uint64_t bytes;
} ex_arg;

typedef struct ex_entry {
    const loom_aot_entry *src;
    char symbol[2 * NAME_MAX_LEN + 2];
    plan *p;
    ex_arg *ins;        /* [nins] declared inputs, then rng_key if read */
    uint32_t *in_slot;  /* [nins] */
    uint32_t nins, cap_in;
    ex_arg *outs;       /* [nouts] */
    uint32_t nouts;
    aot_loc *locs;      /* [p->nbuffers] */
    uint64_t *out_bytes; /* [nouts] */
    uint64_t *commit_at; /* [p->ncommits] */
    aot_entry ae;        /* what jit/aot.c made of it */
} ex_entry;

/* A piece of the weights: a parameter, or an input compiled in. */
typedef struct ex_item {
    bool param;
    uint32_t id; /* parameter id or input slot */
    uint64_t at, bytes;
} ex_item;

typedef struct ex {
    loom_ctx *ctx;
    lm_mem *mem;
    const loom_aot_options *o;
    const char *prefix;
    char upper[NAME_MAX_LEN + 1];
    ex_entry *en;
    int n;
    uint64_t *param_at; /* [nparams] weights offset, UINT64_MAX: unused */
    uint64_t *slot_at;  /* [ninputs] likewise for inputs compiled in */
    ex_item *items;
    size_t nitems;
    uint64_t weights_bytes;
    char *blob;         /* [weights_bytes], 64-byte aligned */
    uint64_t checksum;  /* XXH64 of blob */
    uint64_t hash;
    uint64_t memory_bytes;
} ex;

static loom_code fail(ex *x, loom_code code, const char *fmt, ...) LM_PRINTF(3, 4);
static loom_code fail(ex *x, loom_code code, const char *fmt, ...)
{
    char msg[LM_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fe_fail(x->ctx, code, FN, "%s", msg);
}

/* ------------------------------------------------------------------ */
/* Names                                                              */
/* ------------------------------------------------------------------ */

static const char *const c_keywords[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern",
    "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed",
    "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "bool",
    "memory", "weights", /* the entries' own parameters */
};

static bool is_keyword(const char *s)
{
    for (size_t i = 0; i < LM_ARRAY_LEN(c_keywords); i++)
        if (!strcmp(s, c_keywords[i]))
            return true;
    return false;
}

static bool is_ident(const char *s)
{
    if (!s || !*s || strlen(s) > NAME_MAX_LEN || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_'))
            return false;
    return !is_keyword(s);
}

/* name, or fallback, made a C identifier. */
static void sanitize(char *dst, const char *name, const char *fallback)
{
    const char *s = name && *name ? name : fallback;
    size_t n = 0;
    if (*s >= '0' && *s <= '9')
        dst[n++] = 'x';
    for (; *s && n < NAME_MAX_LEN; s++)
        dst[n++] = ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')) ? *s : '_';
    dst[n] = 0;
    if (is_keyword(dst))
        strcat(dst, "_");
}

static bool arg_name_taken(const ex_entry *e, uint32_t nins, uint32_t nouts, const char *name)
{
    for (uint32_t i = 0; i < nins; i++)
        if (!strcmp(e->ins[i].name, name))
            return true;
    for (uint32_t i = 0; i < nouts; i++)
        if (!strcmp(e->outs[i].name, name))
            return true;
    return false;
}

static const char *c_type(loom_dtype dt)
{
    return dt == LOOM_F32 ? "float" : dt == LOOM_F64 ? "double" : "int32_t";
}

/* ------------------------------------------------------------------ */
/* Entries: plans and where their buffers live                        */
/* ------------------------------------------------------------------ */

static loom_code arg_of_node(ex *x, ex_arg *a, ir_id n)
{
    a->dtype = ir_dtype(x->ctx->g, n);
    a->shape = ir_shapev(x->ctx->g, n);
    a->bytes = (uint64_t)loom_shape_numel(a->shape) * loom_dtype_size(a->dtype);
    return LOOM_OK;
}

/* The assignments commit entry ei applies: the tape's, less those that
 * read an input another entry of this export takes as an argument and ei
 * does not. Such an assignment belongs to that entry: a training bundle
 * records the optimizer's update twice, from the backward's gradients for
 * the one-call step and from gradient inputs for a separate update entry,
 * and each commit entry applies its own. Other entries' lists are only
 * looked at here (entry_prepare checks each in turn): bad ones are
 * skipped. Fills roots[0..*n) (room for ctx->nassigns). */
static loom_code commit_roots(ex *x, int ei, ir_id *roots, size_t *n)
{
    loom_ctx *ctx = x->ctx;
    const ir_graph *g = ctx->g;
    const loom_aot_entry *s = x->en[ei].src;
    ir_id top = 0;
    for (size_t k = 0; k < ctx->nassigns; k++)
        top = LM_MAX(top, ctx->assigns[k]);
    size_t bytes = (size_t)top + 1;
    uint8_t *foreign = lm_zalloc(x->mem, bytes); /* [top + 1] reads another entry's input */
    if (!foreign)
        return ctx->err.code;
    for (int j = 0; j < x->n; j++) {
        const loom_aot_entry *o = x->en[j].src;
        for (int i = 0; j != ei && o->inputs && i < o->ninputs; i++) {
            loom_t t = o->inputs[i];
            if (t.tag == ctx->tape_tag && ir_valid(g, t.id) && t.id <= top && ir_op(g, t.id) == OP_INPUT)
                foreign[t.id] = 1;
        }
    }
    for (int i = 0; i < s->ninputs; i++) /* checked by the caller */
        if (s->inputs[i].tag == ctx->tape_tag && s->inputs[i].id <= top)
            foreign[s->inputs[i].id] = 0;
    /* sources come before their users */
    for (ir_id v = 1; v <= top; v++)
        for (uint32_t k = 0; !foreign[v] && k < ir_nsrc(g, v); k++)
            foreign[v] = foreign[ir_src(g, v, k)];
    *n = 0;
    for (size_t k = 0; k < ctx->nassigns; k++)
        if (!foreign[ctx->assigns[k]])
            roots[(*n)++] = ctx->assigns[k];
    lm_free(x->mem, foreign, bytes);
    if (!*n)
        return fail(x, LOOM_ERR_ARG, "entry \"%s\" commits, but each of the tape's %zu loom_assigns reads "
                    "another entry's input", s->name, ctx->nassigns);
    return LOOM_OK;
}

static loom_code entry_prepare(ex *x, int ei)
{
    loom_ctx *ctx = x->ctx;
    ex_entry *e = &x->en[ei];
    const loom_aot_entry *s = e->src;
    lm_mem *mem = x->mem;
    if (!s->name)
        return fail(x, LOOM_ERR_ARG, "entry %d has no name (NULL)", ei);
    if (!is_ident(s->name))
        return fail(x, LOOM_ERR_ARG, "entry %d: name \"%.60s\" is not a C identifier of at most %d characters",
                    ei, s->name, NAME_MAX_LEN);
    for (int j = 0; j < ei; j++)
        if (!strcmp(x->en[j].src->name, s->name))
            return fail(x, LOOM_ERR_ARG, "two entries are named \"%s\"", s->name);
    snprintf(e->symbol, sizeof e->symbol, "%s_%s", x->prefix, s->name);
    if (s->ninputs < 0 || s->noutputs < 1 || (s->ninputs && !s->inputs) || !s->outputs)
        return fail(x, LOOM_ERR_ARG, "entry \"%s\": %d inputs and %d outputs (at least one output, and lists for them)",
                    s->name, s->ninputs, s->noutputs);
    if (s->commit && !ctx->nassigns)
        return fail(x, LOOM_ERR_ARG, "entry \"%s\" commits, but the tape has no loom_assign", s->name);
    /* declared inputs, then the ones the run fills itself (below) */
    uint32_t cap_in = e->cap_in = (uint32_t)s->ninputs + (uint32_t)ctx->ninputs + 1;
    e->ins = lm_zalloc(mem, cap_in * sizeof *e->ins);
    e->in_slot = lm_zalloc(mem, cap_in * sizeof *e->in_slot);
    e->outs = lm_zalloc(mem, (size_t)s->noutputs * sizeof *e->outs);
    e->out_bytes = lm_zalloc(mem, (size_t)s->noutputs * sizeof *e->out_bytes);
    size_t nroots = (size_t)s->noutputs + (s->commit ? ctx->nassigns : 0);
    ir_id *roots = lm_alloc(mem, nroots * sizeof *roots);
    if (!e->ins || !e->in_slot || !e->outs || !e->out_bytes || !roots) {
        lm_free(mem, roots, nroots * sizeof *roots);
        return ctx->err.code;
    }
    loom_code c = LOOM_OK;
    /* inputs: loom_input nodes of this tape, each once */
    for (int i = 0; i < s->ninputs && c == LOOM_OK; i++) {
        char what[NAME_MAX_LEN + 40];
        snprintf(what, sizeof what, "entry \"%s\": inputs[%d]", s->name, i);
        ir_id n = fe_node_as(ctx, s->inputs[i], FN, what);
        if (!n) {
            c = ctx->err.code;
            break;
        }
        uint32_t slot = UINT32_MAX;
        for (size_t k = 0; k < ctx->ninputs && slot == UINT32_MAX; k++)
            if (ctx->inputs[k].node == n)
                slot = (uint32_t)k;
        if (ir_op(ctx->g, n) != OP_INPUT || slot == UINT32_MAX) {
            c = fail(x, LOOM_ERR_ARG, "entry \"%s\": input %d is a %s node, not a loom_input", s->name, i,
                     op_get(ir_op(ctx->g, n))->name);
            break;
        }
        for (uint32_t k = 0; k < e->nins; k++)
            if (e->in_slot[k] == slot)
                c = fail(x, LOOM_ERR_ARG, "entry \"%s\": input %d is input %u again", s->name, i, k);
        char name[NAME_MAX_LEN + 8], fb[16];
        snprintf(fb, sizeof fb, "in%d", i);
        sanitize(name, ctx->inputs[slot].name, fb);
        if (arg_name_taken(e, e->nins, 0, name))
            snprintf(name + strlen(name), sizeof name - strlen(name), "_%d", i % 100000);
        snprintf(e->ins[e->nins].name, sizeof e->ins[e->nins].name, "%s", name);
        arg_of_node(x, &e->ins[e->nins], n);
        e->in_slot[e->nins++] = slot;
    }
    for (int i = 0; i < s->noutputs && c == LOOM_OK; i++) {
        char what[NAME_MAX_LEN + 40];
        snprintf(what, sizeof what, "entry \"%s\": outputs[%d]", s->name, i);
        ir_id n = fe_node_as(ctx, s->outputs[i], FN, what);
        if (!n) {
            c = ctx->err.code;
            break;
        }
        roots[i] = n;
        const char *given = s->output_names ? s->output_names[i] : NULL;
        char name[NAME_MAX_LEN + 8];
        if (given && !is_ident(given)) {
            c = fail(x, LOOM_ERR_ARG, "entry \"%s\": output name \"%.60s\" is not a C identifier of at most %d "
                     "characters (nor memory, weights or a keyword)", s->name, given, NAME_MAX_LEN);
            break;
        }
        if (given)
            snprintf(name, sizeof name, "%s", given);
        else
            snprintf(name, sizeof name, "out%d", i);
        if (arg_name_taken(e, e->nins, (uint32_t)i, name)) {
            c = fail(x, LOOM_ERR_ARG, "entry \"%s\": output name \"%s\" is taken by another argument", s->name, name);
            break;
        }
        snprintf(e->outs[i].name, sizeof e->outs[i].name, "%s", name);
        arg_of_node(x, &e->outs[i], n);
        e->out_bytes[i] = e->outs[i].bytes;
        e->nouts = (uint32_t)i + 1;
    }
    size_t ncommit = 0;
    if (c == LOOM_OK && s->commit)
        c = commit_roots(x, ei, roots + s->noutputs, &ncommit);
    if (c == LOOM_OK) {
        compile_opts opts = fe_compile_opts(ctx);
#ifndef NDEBUG
        opts.verify = true;
#endif
        opts.threads = 1; /* a bundle runs on its caller's thread: no row chains (rows.c) */
        if (!(e->p = plan_compile(ctx->g, roots, (uint32_t)(s->noutputs + ncommit), &opts)))
            c = ctx->err.code;
        else if (e->p->noutputs != e->nouts)
            c = fail(x, LOOM_ERR_INTERNAL, "entry \"%s\": the plan has %zu outputs for %u asked", s->name,
                     e->p->noutputs, e->nouts);
    }
    lm_free(mem, roots, nroots * sizeof *roots);
    if (c != LOOM_OK)
        return c;
    /* what the plan reads from outside: declared inputs, the random key
     * (a last argument), inputs compiled in, parameters */
    const plan *p = e->p;
    for (size_t b = 0; b < p->nbuffers; b++) {
        const plan_buffer *pb = &p->buffers[b];
        if (pb->kind == PB_PARAM) {
            x->param_at[pb->ext] = 0; /* used: placed below */
            continue;
        }
        if (pb->kind != PB_INPUT)
            continue;
        bool declared = false;
        for (uint32_t k = 0; k < e->nins && !declared; k++)
            declared = e->in_slot[k] == pb->ext;
        if (declared)
            continue;
        const fe_input *in = &ctx->inputs[pb->ext];
        /* inputs loom_run fills by itself (the random key) and the ones
         * loom_optimizer_step feeds each step (the learning rate, the
         * bias corrections) change from run to run: never compiled in,
         * they become the last arguments */
        bool per_run = (ctx->rng_key && pb->ext == ctx->rng_slot) || (in->name && !strncmp(in->name, "optim.", 6));
        if (per_run) {
            ex_arg *a = &e->ins[e->nins];
            char name[NAME_MAX_LEN + 8];
            sanitize(name, in->name, "in");
            if (arg_name_taken(e, e->nins, e->nouts, name))
                strcat(name, "_");
            snprintf(a->name, sizeof a->name, "%s", name);
            arg_of_node(x, a, in->node);
            e->in_slot[e->nins++] = pb->ext;
            continue;
        }
        if (!in->data)
            return fail(x, LOOM_ERR_ARG, "entry \"%s\" reads input \"%s\" (slot %u), which is neither among its "
                        "inputs nor fed (a value to compile in)", s->name, in->name ? in->name : "", pb->ext);
        x->slot_at[pb->ext] = 0;
    }
    return LOOM_OK;
}

/* The weights: parameters by id, then inputs compiled in by slot. */
static loom_code layout_weights(ex *x)
{
    loom_ctx *ctx = x->ctx;
    size_t n = 0;
    for (size_t i = 0; i < ctx->nparams; i++)
        n += x->param_at[i] != UINT64_MAX;
    for (size_t i = 0; i < ctx->ninputs; i++)
        n += x->slot_at[i] != UINT64_MAX;
    x->items = lm_zalloc(x->mem, (n + 1) * sizeof *x->items);
    if (!x->items)
        return ctx->err.code;
    uint64_t at = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t cnt = pass ? ctx->ninputs : ctx->nparams;
        uint64_t *tab = pass ? x->slot_at : x->param_at;
        for (size_t i = 0; i < cnt; i++) {
            if (tab[i] == UINT64_MAX)
                continue;
            ex_item *it = &x->items[x->nitems++];
            it->param = !pass;
            it->id = (uint32_t)i;
            it->bytes = pass ? ctx->inputs[i].bytes : ctx->params[i].bytes;
            it->at = tab[i] = at;
            at = (at + it->bytes + AOT_ALIGN - 1) & ~(uint64_t)(AOT_ALIGN - 1);
        }
    }
    x->weights_bytes = at;
    x->blob = lm_zalloc_aligned(x->mem, at ? (size_t)at : AOT_ALIGN);
    if (!x->blob)
        return ctx->err.code;
    for (size_t i = 0; i < x->nitems; i++) {
        const ex_item *it = &x->items[i];
        const void *src = it->param ? ctx->params[it->id].data : ctx->inputs[it->id].data;
        if (it->bytes)
            memcpy(x->blob + it->at, src, (size_t)it->bytes);
    }
    x->checksum = XXH64(x->blob, (size_t)x->weights_bytes, 0);
    return LOOM_OK;
}

/* Every buffer of every plan to a place. */
static loom_code resolve(ex *x, ex_entry *e)
{
    const plan *p = e->p;
    e->locs = lm_zalloc(x->mem, (p->nbuffers + 1) * sizeof *e->locs);
    e->commit_at = lm_zalloc(x->mem, (p->ncommits + 1) * sizeof *e->commit_at);
    if (!e->locs || !e->commit_at)
        return x->ctx->err.code;
    for (size_t b = 0; b < p->nbuffers; b++) {
        const plan_buffer *pb = &p->buffers[b];
        aot_loc *l = &e->locs[b];
        if (pb->kind == PB_ARENA) {
            *l = (aot_loc){ AOT_MEMORY, pb->offset };
        } else if (pb->kind == PB_PARAM) {
            *l = (aot_loc){ AOT_WEIGHTS, x->param_at[pb->ext] };
        } else {
            *l = (aot_loc){ AOT_WEIGHTS, x->slot_at[pb->ext] };
            for (uint32_t k = 0; k < e->nins; k++)
                if (e->in_slot[k] == pb->ext)
                    *l = (aot_loc){ AOT_ARG, k };
        }
    }
    for (size_t i = 0; i < p->ncommits; i++)
        e->commit_at[i] = x->param_at[p->commits[i].param];
    return LOOM_OK;
}

static void hash_str(XXH3_state_t *st, const char *s) { XXH3_64bits_update(st, s, strlen(s) + 1); }

static void hash_arg(XXH3_state_t *st, const ex_arg *a)
{
    hash_str(st, a->name);
    int64_t w[2 + LOOM_MAX_RANK] = { a->dtype, a->shape.rank };
    for (int k = 0; k < a->shape.rank; k++)
        w[2 + k] = a->shape.d[k];
    XXH3_64bits_update(st, w, sizeof w);
}

/* What the weights must fit: the entries' computations (plan keys),
 * their arguments, and the weights' layout. */
static void graph_hash(ex *x)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    uint32_t v = AOT_FORMAT_VERSION;
    hash_str(&st, "loom aot");
    XXH3_64bits_update(&st, &v, sizeof v);
    for (int i = 0; i < x->n; i++) {
        const ex_entry *e = &x->en[i];
        hash_str(&st, e->symbol);
        XXH3_64bits_update(&st, e->p->key, sizeof e->p->key);
        for (uint32_t k = 0; k < e->nins; k++)
            hash_arg(&st, &e->ins[k]);
        for (uint32_t k = 0; k < e->nouts; k++)
            hash_arg(&st, &e->outs[k]);
    }
    for (size_t i = 0; i < x->nitems; i++) {
        const ex_item *it = &x->items[i];
        const fe_param *fp = it->param ? &x->ctx->params[it->id] : NULL;
        ex_arg a = { .dtype = fp ? fp->dtype : ir_dtype(x->ctx->g, x->ctx->inputs[it->id].node),
                     .shape = fp ? fp->shape : ir_shapev(x->ctx->g, x->ctx->inputs[it->id].node) };
        snprintf(a.name, sizeof a.name, "%.50s", fp ? fp->name : "input");
        hash_arg(&st, &a);
        XXH3_64bits_update(&st, &it->at, sizeof it->at);
    }
    XXH3_64bits_update(&st, &x->weights_bytes, sizeof x->weights_bytes);
    x->hash = XXH3_64bits_digest(&st);
}

/* ------------------------------------------------------------------ */
/* The header                                                         */
/* ------------------------------------------------------------------ */

/* Appends text with @p@ and @P@ replaced by the prefix, lower and upper. */
static void put_tpl(ex *x, json_buf *h, const char *t)
{
    for (const char *s = t; *s;) {
        const char *at = strchr(s, '@');
        if (!at) {
            json_puts(h, s);
            return;
        }
        json_put(h, s, (size_t)(at - s));
        if (!strncmp(at, "@p@", 3)) {
            json_puts(h, x->prefix);
            s = at + 3;
        } else if (!strncmp(at, "@P@", 3)) {
            json_puts(h, x->upper);
            s = at + 3;
        } else {
            json_put(h, at, 1);
            s = at + 1;
        }
    }
}

static void to_upper(char *dst, const char *s)
{
    size_t i = 0;
    for (; s[i]; i++)
        dst[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    dst[i] = 0;
}

/* What the caller passes for an input loom_run or loom_optimizer_step
 * would fill, or "". */
static const char *per_run_note(const loom_ctx *ctx, uint32_t slot)
{
    static const struct {
        const char *prefix, *note;
    } notes[] = {
        { "optim.lr.", "  this step's learning rate (schedule and warm-up applied)" },
        { "optim.step_size.", "  lr / (1 - beta1^k), k the step counted from 1 (Adam, AdamW)" },
        { "optim.bias_correction2_sqrt.", "  sqrt(1 - beta2^k) (Adam, AdamW)" },
        { "optim.decay.", "  1 - lr * weight_decay (AdamW)" },
    };
    if (ctx->rng_key && slot == ctx->rng_slot)
        return "  random key: seed low, seed high, counter low, counter high";
    const char *name = ctx->inputs[slot].name;
    for (size_t i = 0; name && i < LM_ARRAY_LEN(notes); i++)
        if (!strncmp(name, notes[i].prefix, strlen(notes[i].prefix)))
            return notes[i].note;
    return "";
}

static void put_entry(ex *x, json_buf *h, const ex_entry *e)
{
    char up[NAME_MAX_LEN + 8], sh[160];
    to_upper(up, e->src->name);
    json_putf(h, "/* ---- %s ", e->symbol);
    for (size_t k = strlen(e->symbol); k < 62; k++)
        json_puts(h, "-");
    json_puts(h, "\n *\n");
    if (e->p->ncommits)
        json_puts(h, " * A training step: it also writes the updated parameters into weights,\n"
                     " * which must be the caller's own writable copy (never NULL).\n *\n");
    json_puts(h, " * inputs\n");
    for (uint32_t k = 0; k < e->nins; k++) {
        loom_shape_str(e->ins[k].shape, e->ins[k].dtype, sh, sizeof sh);
        json_putf(h, " *   %-16s %s%s\n", e->ins[k].name, sh, per_run_note(x->ctx, e->in_slot[k]));
    }
    if (!e->nins)
        json_puts(h, " *   (none)\n");
    json_puts(h, " * outputs\n");
    for (uint32_t k = 0; k < e->nouts; k++) {
        loom_shape_str(e->outs[k].shape, e->outs[k].dtype, sh, sizeof sh);
        json_putf(h, " *   %-16s %s\n", e->outs[k].name, sh);
    }
    json_putf(h, " *\n * %zu kernel calls (%u kernels); memory: %llu bytes of arena and %llu of scratch.\n",
              e->p->ncalls, e->ae.kernels, (unsigned long long)e->p->arena_bytes,
              (unsigned long long)e->ae.scratch_bytes);
    if (e->ae.has_status)
        json_putf(h, " * An index out of range returns %s_E_INDEX; the four int32 at memory +\n"
                     " * %s_%s_STATUS_OFFSET then hold its position + 1, the index, the range\n"
                     " * and the op (gather %d, scatter-add %d).\n",
                  x->upper, x->upper, up, OP_GATHER, OP_SCATTER_ADD);
    json_puts(h, " */\n");
    json_putf(h, "#define %s_%s_MEMORY_BYTES %lluu\n", x->upper, up, (unsigned long long)e->ae.memory_bytes);
    if (e->ae.has_status)
        json_putf(h, "#define %s_%s_STATUS_OFFSET %lluu\n", x->upper, up, (unsigned long long)e->p->status_offset);
    for (uint32_t k = 0; k < e->nins + e->nouts; k++) {
        const ex_arg *a = k < e->nins ? &e->ins[k] : &e->outs[k - e->nins];
        char an[NAME_MAX_LEN + 8];
        to_upper(an, a->name);
        json_putf(h, "#define %s_%s_%s_COUNT %lld\n", x->upper, up, an, (long long)loom_shape_numel(a->shape));
    }
    json_putf(h, "int %s(void *memory, %svoid *weights", e->symbol, e->p->ncommits ? "" : "const ");
    for (uint32_t k = 0; k < e->nins; k++)
        json_putf(h, ",\n    const %s *%s", c_type(e->ins[k].dtype), e->ins[k].name);
    for (uint32_t k = 0; k < e->nouts; k++)
        json_putf(h, ",\n    %s *%s", c_type(e->outs[k].dtype), e->outs[k].name);
    json_puts(h, ");\n\n");
}

static const char header_top[] =
    " *\n"
    " * Link @p@.o into a program; it needs libc and libm, nothing else:\n"
    " *\n"
    " *     cc -O2 -o prog prog.c @p@.o -lm\n"
    " *\n"
    " * Every entry point takes\n"
    " *   memory   @P@_<ENTRY>_MEMORY_BYTES bytes (@P@_MEMORY_BYTES fit every\n"
    " *            entry) aligned to @P@_ALIGN, the caller's; nothing in it needs\n"
    " *            to survive between calls; one block per thread calling;\n"
    " *   weights  NULL for the weights inside the object (if any), or the\n"
    " *            weights of a file loaded by @p@_weights_load;\n"
    " * then its inputs, then its outputs: dense row-major arrays of the shapes\n"
    " * listed. Outputs are written after every input has been read, so an\n"
    " * output may be the very array of an input (a recurrent state carried\n"
    " * in place). Entry points return @P@_OK or an error code, which\n"
    " * @p@_strerror names.\n"
    " */\n";

static const char header_errors[] =
    "enum {\n"
    "    @P@_OK = 0,\n"
    "    @P@_E_MEMORY = 1,    /* memory is NULL or not aligned to @P@_ALIGN */\n"
    "    @P@_E_WEIGHTS = 2,   /* no weights (none inside, NULL given), or not aligned */\n"
    "    @P@_E_INDEX = 3,     /* a gather or scatter index out of range */\n"
    "    @P@_E_IO = 4,        /* the weights file cannot be opened or read */\n"
    "    @P@_E_TRUNCATED = 5, /* the weights file is shorter than its header says */\n"
    "    @P@_E_FORMAT = 6,    /* not a loom weights file, or bytes after the weights */\n"
    "    @P@_E_VERSION = 7,   /* a weights file of another format version */\n"
    "    @P@_E_MISMATCH = 8,  /* the weights of another model (graph hash or size) */\n"
    "    @P@_E_CORRUPT = 9    /* checksum mismatch: the weights were damaged */\n"
    "};\n\n";

static const char header_tail[] =
    "/* ---- weights files ------------------------------------------------------\n"
    " *\n"
    " * A weights file is a 64-byte header, then @P@_WEIGHTS_BYTES of weights\n"
    " * (little-endian): magic \"LOOMWTS\\0\" (8 bytes), u32 format version, u32\n"
    " * header size (64), u64 graph hash, u64 weights size, u64 XXH64 (seed 0)\n"
    " * of the weights, u32 items, zeros to 64.\n"
    " */\n"
    "\n"
    "/* The code's message. */\n"
    "static inline const char *@p@_strerror(int code)\n"
    "{\n"
    "    switch (code) {\n"
    "    case @P@_OK: return \"ok\";\n"
    "    case @P@_E_MEMORY: return \"the memory given is NULL or not aligned to @P@_ALIGN bytes\";\n"
    "    case @P@_E_WEIGHTS: return \"no weights: none are inside the object and NULL was given (or they are not \"\n"
    "                                \"aligned to @P@_ALIGN bytes)\";\n"
    "    case @P@_E_INDEX: return \"an index (gather or scatter-add) is out of range\";\n"
    "    case @P@_E_IO: return \"the weights file cannot be opened or read\";\n"
    "    case @P@_E_TRUNCATED: return \"the weights file is truncated\";\n"
    "    case @P@_E_FORMAT: return \"not a loom weights file (bad magic or header size, or bytes after the \"\n"
    "                               \"weights)\";\n"
    "    case @P@_E_VERSION: return \"the weights file has another format version\";\n"
    "    case @P@_E_MISMATCH: return \"the weights file belongs to another model (graph hash or size differs)\";\n"
    "    case @P@_E_CORRUPT: return \"the weights file is corrupt (checksum mismatch)\";\n"
    "    default: return \"unknown error code\";\n"
    "    }\n"
    "}\n"
    "\n"
    "/* Little-endian words (the object is x86-64 code: so is the host). */\n"
    "static inline uint64_t @p@_u64_(const unsigned char *p)\n"
    "{\n"
    "    uint64_t v;\n"
    "    memcpy(&v, p, 8);\n"
    "    return v;\n"
    "}\n"
    "\n"
    "static inline uint32_t @p@_u32_(const unsigned char *p)\n"
    "{\n"
    "    uint32_t v;\n"
    "    memcpy(&v, p, 4);\n"
    "    return v;\n"
    "}\n"
    "\n"
    "static inline uint64_t @p@_rotl_(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }\n"
    "\n"
    "static inline uint64_t @p@_round_(uint64_t acc, uint64_t in)\n"
    "{\n"
    "    acc += in * 0xC2B2AE3D27D4EB4FULL;\n"
    "    return @p@_rotl_(acc, 31) * 0x9E3779B185EBCA87ULL;\n"
    "}\n"
    "\n"
    "static inline uint64_t @p@_merge_(uint64_t h, uint64_t v)\n"
    "{\n"
    "    h ^= @p@_round_(0, v);\n"
    "    return h * 0x9E3779B185EBCA87ULL + 0x85EBCA77C2B2AE63ULL;\n"
    "}\n"
    "\n"
    "/* XXH64 with seed 0: the weights' checksum. */\n"
    "static inline uint64_t @p@_xxh64_(const void *data, size_t n)\n"
    "{\n"
    "    const uint64_t P1 = 0x9E3779B185EBCA87ULL, P2 = 0xC2B2AE3D27D4EB4FULL, P3 = 0x165667B19E3779F9ULL;\n"
    "    const uint64_t P4 = 0x85EBCA77C2B2AE63ULL, P5 = 0x27D4EB2F165667C5ULL;\n"
    "    const unsigned char *p = (const unsigned char *)data, *end = p + n;\n"
    "    uint64_t h;\n"
    "    if (n >= 32) {\n"
    "        uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = 0 - P1;\n"
    "        do {\n"
    "            v1 = @p@_round_(v1, @p@_u64_(p));\n"
    "            v2 = @p@_round_(v2, @p@_u64_(p + 8));\n"
    "            v3 = @p@_round_(v3, @p@_u64_(p + 16));\n"
    "            v4 = @p@_round_(v4, @p@_u64_(p + 24));\n"
    "            p += 32;\n"
    "        } while ((size_t)(end - p) >= 32);\n"
    "        h = @p@_rotl_(v1, 1) + @p@_rotl_(v2, 7) + @p@_rotl_(v3, 12) + @p@_rotl_(v4, 18);\n"
    "        h = @p@_merge_(h, v1);\n"
    "        h = @p@_merge_(h, v2);\n"
    "        h = @p@_merge_(h, v3);\n"
    "        h = @p@_merge_(h, v4);\n"
    "    } else {\n"
    "        h = P5;\n"
    "    }\n"
    "    h += (uint64_t)n;\n"
    "    for (; end - p >= 8; p += 8) {\n"
    "        h ^= @p@_round_(0, @p@_u64_(p));\n"
    "        h = @p@_rotl_(h, 27) * P1 + P4;\n"
    "    }\n"
    "    if (end - p >= 4) {\n"
    "        h ^= (uint64_t)@p@_u32_(p) * P1;\n"
    "        h = @p@_rotl_(h, 23) * P2 + P3;\n"
    "        p += 4;\n"
    "    }\n"
    "    for (; p < end; p++) {\n"
    "        h ^= (uint64_t)*p * P5;\n"
    "        h = @p@_rotl_(h, 11) * P1;\n"
    "    }\n"
    "    h ^= h >> 33;\n"
    "    h *= P2;\n"
    "    h ^= h >> 29;\n"
    "    h *= P3;\n"
    "    return h ^ (h >> 32);\n"
    "}\n"
    "\n"
    "/* Checks a weights file held whole in image[0, size): magic, format\n"
    " * version, graph hash, sizes and checksum. On success *weights points at\n"
    " * the weights inside image (aligned if image + 64 is), for the entry\n"
    " * points; on failure it is NULL. */\n"
    "static inline int @p@_weights_check(const void *image, size_t size, const void **weights)\n"
    "{\n"
    "    const unsigned char *b = (const unsigned char *)image;\n"
    "    *weights = NULL;\n"
    "    if (!b || size < 8)\n"
    "        return @P@_E_TRUNCATED;\n"
    "    if (memcmp(b, \"LOOMWTS\", 8) != 0)\n"
    "        return @P@_E_FORMAT;\n"
    "    if (size < @P@_WEIGHTS_HEADER_BYTES)\n"
    "        return @P@_E_TRUNCATED;\n"
    "    if (@p@_u32_(b + 8) != @P@_FORMAT_VERSION)\n"
    "        return @P@_E_VERSION;\n"
    "    if (@p@_u32_(b + 12) != @P@_WEIGHTS_HEADER_BYTES)\n"
    "        return @P@_E_FORMAT;\n"
    "    if (@p@_u64_(b + 16) != @P@_GRAPH_HASH || @p@_u64_(b + 24) != @P@_WEIGHTS_BYTES ||\n"
    "        @p@_graph_hash() != @P@_GRAPH_HASH)\n"
    "        return @P@_E_MISMATCH;\n"
    "    if (size < (size_t)@P@_WEIGHTS_HEADER_BYTES + @P@_WEIGHTS_BYTES)\n"
    "        return @P@_E_TRUNCATED;\n"
    "    if (size > (size_t)@P@_WEIGHTS_HEADER_BYTES + @P@_WEIGHTS_BYTES)\n"
    "        return @P@_E_FORMAT;\n"
    "    if (@p@_xxh64_(b + @P@_WEIGHTS_HEADER_BYTES, @P@_WEIGHTS_BYTES) != @p@_u64_(b + 32))\n"
    "        return @P@_E_CORRUPT;\n"
    "    if ((uintptr_t)(b + @P@_WEIGHTS_HEADER_BYTES) % @P@_ALIGN != 0)\n"
    "        return @P@_E_WEIGHTS;\n"
    "    *weights = b + @P@_WEIGHTS_HEADER_BYTES;\n"
    "    return @P@_OK;\n"
    "}\n"
    "\n"
    "/* Reads the weights file at path into memory (no more of it than the\n"
    " * weights and a byte) and checks it\n"
    " * (@p@_weights_check). On success *block is the memory to free() once\n"
    " * done and *weights the weights in it, for the entry points; on failure\n"
    " * both are NULL and the code says why. */\n"
    "static inline int @p@_weights_load(const char *path, void **block, const void **weights)\n"
    "{\n"
    "    FILE *f;\n"
    "    long n;\n"
    "    size_t len, most = (size_t)@P@_WEIGHTS_HEADER_BYTES + @P@_WEIGHTS_BYTES + 1;\n"
    "    unsigned char *raw, *img;\n"
    "    int rc;\n"
    "    *block = NULL;\n"
    "    *weights = NULL;\n"
    "    if (!path || !(f = fopen(path, \"rb\")))\n"
    "        return @P@_E_IO;\n"
    "    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {\n"
    "        fclose(f);\n"
    "        return @P@_E_IO;\n"
    "    }\n"
    "    /* a byte past the weights is enough to refuse a longer file: no\n"
    "     * more is read (nor allocated), whatever its size */\n"
    "    len = (size_t)n < most ? (size_t)n : most;\n"
    "    if (!(raw = (unsigned char *)malloc(len + @P@_ALIGN))) {\n"
    "        fclose(f);\n"
    "        return @P@_E_IO;\n"
    "    }\n"
    "    img = raw + (@P@_ALIGN - (uintptr_t)raw % @P@_ALIGN) % @P@_ALIGN;\n"
    "    if (fread(img, 1, len, f) != len) {\n"
    "        fclose(f);\n"
    "        free(raw);\n"
    "        return @P@_E_IO;\n"
    "    }\n"
    "    fclose(f);\n"
    "    rc = @p@_weights_check(img, len, weights);\n"
    "    if (rc != @P@_OK) {\n"
    "        free(raw);\n"
    "        return rc;\n"
    "    }\n"
    "    *block = raw;\n"
    "    return @P@_OK;\n"
    "}\n"
    "\n"
    "#ifdef __cplusplus\n"
    "}\n"
    "#endif\n"
    "#endif /* @P@_H */\n";

static loom_code build_header(ex *x, const aot_object *ao, json_buf *h)
{
    loom_ctx *ctx = x->ctx;
    json_putf(h, "/*\n * %s.h — generated by loom %d.%d.%d (loom_aot_emit) for the CPU %s; do not\n * edit.\n"
                 " * The code uses that CPU's instruction set: on a CPU without it a call\n"
                 " * stops the program (SIGILL). x86-64-v3 runs on any AVX2 machine.\n",
              x->prefix, LOOM_VERSION_MAJOR, LOOM_VERSION_MINOR, LOOM_VERSION_PATCH, ao->cpu_name);
    put_tpl(x, h, header_top);
    json_putf(h, "#ifndef %s_H\n#define %s_H\n\n", x->upper, x->upper);
    json_puts(h, "#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
                 "#include <string.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    json_putf(h, "#define %s_FORMAT_VERSION %d\n", x->upper, AOT_FORMAT_VERSION);
    json_putf(h, "#define %s_GRAPH_HASH UINT64_C(0x%016llx)\n", x->upper, (unsigned long long)x->hash);
    json_putf(h, "#define %s_CPU \"%s\"\n", x->upper, ao->cpu_name);
    json_putf(h, "#define %s_ALIGN %d\n", x->upper, AOT_ALIGN);
    json_putf(h, "#define %s_MEMORY_BYTES %lluu\n", x->upper, (unsigned long long)x->memory_bytes);
    json_putf(h, "#define %s_WEIGHTS_BYTES %lluu\n", x->upper, (unsigned long long)x->weights_bytes);
    json_putf(h, "#define %s_WEIGHTS_HEADER_BYTES %d\n", x->upper, AOT_WEIGHTS_HEADER);
    json_putf(h, "#define %s_WEIGHTS_EMBEDDED %d /* inside the object; else in %s.weights */\n\n", x->upper,
              !x->o->weights_file, x->prefix);
    put_tpl(x, h, header_errors);
    for (int i = 0; i < x->n; i++)
        put_entry(x, h, &x->en[i]);
    json_puts(h, "/* ---- weights ------------------------------------------------------------\n *\n"
                 " *   offset       bytes  name / shape\n");
    for (size_t i = 0; i < x->nitems; i++) {
        const ex_item *it = &x->items[i];
        char sh[160];
        if (it->param) {
            const fe_param *fp = &ctx->params[it->id];
            loom_shape_str(fp->shape, fp->dtype, sh, sizeof sh);
            json_putf(h, " * %9llu %11llu  %s %s\n", (unsigned long long)it->at, (unsigned long long)it->bytes,
                      fp->name, sh);
        } else {
            const fe_input *in = &ctx->inputs[it->id];
            loom_shape_str(ir_shapev(ctx->g, in->node), ir_dtype(ctx->g, in->node), sh, sizeof sh);
            json_putf(h, " * %9llu %11llu  input \"%s\" compiled in %s\n", (unsigned long long)it->at,
                      (unsigned long long)it->bytes, in->name ? in->name : "", sh);
        }
    }
    json_puts(h, " */\n");
    put_tpl(x, h,
            "const void *@p@_weights(void);      /* the weights inside the object, or NULL */\n"
            "uint64_t @p@_weights_bytes(void);   /* @P@_WEIGHTS_BYTES */\n"
            "uint64_t @p@_graph_hash(void);      /* @P@_GRAPH_HASH, unless this header is stale */\n"
            "uint32_t @p@_format_version(void);  /* @P@_FORMAT_VERSION */\n\n");
    put_tpl(x, h, header_tail);
    return h->nomem ? ctx->err.code ? ctx->err.code : fail(x, LOOM_ERR_NOMEM, "writing the header") : LOOM_OK;
}

/* ------------------------------------------------------------------ */
/* Files                                                              */
/* ------------------------------------------------------------------ */

static _Atomic unsigned tmp_serial;

static bool write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = EIO;
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Writes parts to a temporary beside path and syncs it; *tmp names it. */
static loom_code write_temp(ex *x, const char *path, char *tmp, size_t tmp_size, const void *const *parts,
                            const size_t *sizes, int nparts)
{
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        snprintf(tmp, tmp_size, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&tmp_serial, 1));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        tmp[0] = 0;
        return fail(x, LOOM_ERR_IO, "\"%.300s\": cannot create a file there: %s", path, strerror(errno));
    }
    bool ok = true;
    for (int i = 0; i < nparts && ok; i++)
        ok = write_all(fd, parts[i], sizes[i]);
    int e = errno;
    if (ok && fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        ok = false, e = errno;
    if (close(fd) != 0 && ok)
        ok = false, e = errno;
    if (!ok) {
        unlink(tmp);
        tmp[0] = 0;
        return fail(x, LOOM_ERR_IO, "\"%.300s\": cannot write: %s", path, strerror(e));
    }
    return LOOM_OK;
}

static void put_le(unsigned char *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        b[i] = (unsigned char)(v >> (8 * i));
}

/* ------------------------------------------------------------------ */
/* The API                                                            */
/* ------------------------------------------------------------------ */

static void ex_free(ex *x)
{
    lm_mem *mem = x->mem;
    for (int i = 0; x->en && i < x->n; i++) {
        ex_entry *e = &x->en[i];
        uint32_t cap_in = e->cap_in;
        size_t nout = (size_t)(e->src->noutputs > 0 ? e->src->noutputs : 0);
        if (e->p) {
            lm_free(mem, e->locs, (e->p->nbuffers + 1) * sizeof *e->locs);
            lm_free(mem, e->commit_at, (e->p->ncommits + 1) * sizeof *e->commit_at);
            plan_free(e->p);
        }
        lm_free(mem, e->ins, cap_in * sizeof *e->ins);
        lm_free(mem, e->in_slot, cap_in * sizeof *e->in_slot);
        lm_free(mem, e->outs, nout * sizeof *e->outs);
        lm_free(mem, e->out_bytes, nout * sizeof *e->out_bytes);
    }
    lm_free(mem, x->en, (size_t)(x->n + 1) * sizeof *x->en);
    lm_free(mem, x->param_at, (x->ctx->nparams + 1) * sizeof *x->param_at);
    lm_free(mem, x->slot_at, (x->ctx->ninputs + 1) * sizeof *x->slot_at);
    lm_free(mem, x->items, (x->nitems + 1) * sizeof *x->items);
    lm_free_aligned(mem, x->blob);
}

loom_code loom_aot_emit(loom_ctx *ctx, const char *dir, const loom_aot_options *opts, loom_aot_info *info)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return ctx->err.code;
    if (info)
        memset(info, 0, sizeof *info);
    if (!dir || !*dir || !opts)
        return fe_fail(ctx, LOOM_ERR_ARG, FN, "%s", !dir ? "no directory (NULL)" : !*dir ? "the directory is \"\""
                                                                                          : "no options (NULL)");
    const char *prefix = opts->prefix ? opts->prefix : "model";
    if (!is_ident(prefix))
        return fe_fail(ctx, LOOM_ERR_ARG, FN, "prefix \"%.60s\" is not a C identifier of at most %d characters",
                       prefix, NAME_MAX_LEN);
    if (opts->nentries < 1 || !opts->entries)
        return fe_fail(ctx, LOOM_ERR_ARG, FN, "no entries to compile (nentries %d%s)", opts->nentries,
                       opts->entries ? "" : ", entries NULL");
    if (!aot_cpu_known(opts->cpu))
        return fe_fail(ctx, LOOM_ERR_ARG, FN, "unknown CPU \"%.60s\": use host, x86-64-v3 (AVX2), x86-64-v4 "
                       "(AVX-512), x86-64, x86-64-v2, or a name such as znver4, skylake-avx512", opts->cpu);
    struct stat st;
    if (stat(dir, &st) != 0)
        return fe_fail(ctx, LOOM_ERR_IO, FN, "directory \"%.300s\": %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fe_fail(ctx, LOOM_ERR_IO, FN, "\"%.300s\" is not a directory", dir);
    if (access(dir, W_OK) != 0)
        return fe_fail(ctx, LOOM_ERR_IO, FN, "\"%.300s\": cannot write there: %s", dir, strerror(errno));

    ex x = { .ctx = ctx, .mem = &ctx->mem, .o = opts, .prefix = prefix, .n = opts->nentries };
    to_upper(x.upper, prefix);
    x.en = lm_zalloc(x.mem, (size_t)(x.n + 1) * sizeof *x.en);
    x.param_at = lm_alloc(x.mem, (ctx->nparams + 1) * sizeof *x.param_at);
    x.slot_at = lm_alloc(x.mem, (ctx->ninputs + 1) * sizeof *x.slot_at);
    loom_code c = x.en && x.param_at && x.slot_at ? LOOM_OK : ctx->err.code;
    for (size_t i = 0; c == LOOM_OK && i <= ctx->nparams; i++)
        x.param_at[i] = UINT64_MAX;
    for (size_t i = 0; c == LOOM_OK && i <= ctx->ninputs; i++)
        x.slot_at[i] = UINT64_MAX;
    for (int i = 0; c == LOOM_OK && i < x.n; i++)
        x.en[i].src = &opts->entries[i];
    for (int i = 0; c == LOOM_OK && i < x.n; i++)
        c = entry_prepare(&x, i);
    if (c == LOOM_OK)
        c = layout_weights(&x);
    for (int i = 0; c == LOOM_OK && i < x.n; i++)
        c = resolve(&x, &x.en[i]);
    if (c != LOOM_OK) {
        ex_free(&x);
        return c;
    }
    graph_hash(&x);

    aot_entry *aes = lm_zalloc(x.mem, (size_t)(x.n + 1) * sizeof *aes);
    aot_object ao = { .prefix = prefix, .cpu = opts->cpu, .opt_level = 3,
                      .weights = opts->weights_file ? NULL : x.blob, .weights_bytes = x.weights_bytes,
                      .graph_hash = x.hash, .entries = aes, .nentries = (uint32_t)x.n };
    void *image = NULL;
    size_t image_bytes = 0;
    c = aes ? LOOM_OK : ctx->err.code;
    for (int i = 0; c == LOOM_OK && i < x.n; i++) {
        ex_entry *e = &x.en[i];
        aes[i] = (aot_entry){ .symbol = e->symbol, .p = e->p, .buffers = e->locs, .ninputs = e->nins,
                              .output_bytes = e->out_bytes, .commit_at = e->commit_at };
    }
    if (c == LOOM_OK && aot_emit(ctx->mem, &ctx->err, &ao, &image, &image_bytes) != LOOM_OK)
        c = ctx->err.code;
    for (int i = 0; c == LOOM_OK && i < x.n; i++) {
        x.en[i].ae = aes[i];
        x.memory_bytes = LM_MAX(x.memory_bytes, aes[i].memory_bytes);
    }
    json_buf h = { .mem = x.mem };
    if (c == LOOM_OK)
        c = build_header(&x, &ao, &h);

    /* every file to a temporary first, then the renames: a failure
     * leaves no file of this export half-written */
    size_t plen = strlen(dir) + strlen(prefix) + 16;
    enum { F_H, F_O, F_W, F_COUNT };
    char *paths[F_COUNT] = { 0 }, *tmps[F_COUNT] = { 0 };
    static const char *const ext[F_COUNT] = { ".h", ".o", ".weights" };
    int nfiles = opts->weights_file ? 3 : 2;
    for (int i = 0; c == LOOM_OK && i < nfiles; i++) {
        paths[i] = lm_alloc(x.mem, plen);
        tmps[i] = lm_zalloc(x.mem, plen + 48);
        if (!paths[i] || !tmps[i])
            c = ctx->err.code;
        else
            snprintf(paths[i], plen, "%s/%s%s", dir, prefix, ext[i]);
    }
    unsigned char whead[AOT_WEIGHTS_HEADER] = { 0 };
    memcpy(whead, MAGIC, 8);
    put_le(whead + 8, AOT_FORMAT_VERSION, 4);
    put_le(whead + 12, AOT_WEIGHTS_HEADER, 4);
    put_le(whead + 16, x.hash, 8);
    put_le(whead + 24, x.weights_bytes, 8);
    put_le(whead + 32, x.checksum, 8);
    put_le(whead + 40, x.nitems, 4);
    if (c == LOOM_OK)
        c = write_temp(&x, paths[F_H], tmps[F_H], plen + 48, (const void *[]){ h.s }, (size_t[]){ h.len }, 1);
    if (c == LOOM_OK)
        c = write_temp(&x, paths[F_O], tmps[F_O], plen + 48, (const void *[]){ image }, (size_t[]){ image_bytes }, 1);
    if (c == LOOM_OK && opts->weights_file)
        c = write_temp(&x, paths[F_W], tmps[F_W], plen + 48, (const void *[]){ whead, x.blob },
                       (size_t[]){ sizeof whead, (size_t)x.weights_bytes }, 2);
    for (int i = 0; c == LOOM_OK && i < nfiles; i++)
        if (rename(tmps[i], paths[i]) != 0)
            c = fail(&x, LOOM_ERR_IO, "\"%.300s\": cannot rename the temporary file over it: %s", paths[i],
                     strerror(errno));
        else
            tmps[i][0] = 0;
    if (c == LOOM_OK) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) { /* durability of the renames, best effort */
            fsync(fd);
            close(fd);
        }
    }
    for (int i = 0; i < F_COUNT; i++) {
        if (tmps[i] && tmps[i][0])
            unlink(tmps[i]);
        lm_free(x.mem, paths[i], plen);
        lm_free(x.mem, tmps[i], plen + 48);
    }
    if (c == LOOM_OK && info) {
        info->graph_hash = x.hash;
        info->object_bytes = image_bytes;
        info->weights_bytes = x.weights_bytes;
        info->memory_bytes = x.memory_bytes;
        info->kernels = ao.kernels;
        snprintf(info->cpu, sizeof info->cpu, "%s", ao.cpu_name);
    }
    json_buf_free(&h);
    lm_free(x.mem, image, image_bytes ? image_bytes : 1);
    lm_free(x.mem, aes, (size_t)(x.n + 1) * sizeof *aes);
    ex_free(&x);
    return c;
}
