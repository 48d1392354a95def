/*
 * ctx.c — the context: creation, errors, handles, the tape's life,
 * printing.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "fe.h"

/* Tape and context serials are process-wide, so a handle from another
 * context or an old tape never matches by accident. */
static _Atomic uint32_t next_serial = 1;

static uint32_t new_serial(void)
{
    uint32_t s;
    do
        s = atomic_fetch_add(&next_serial, 1) & ~FE_PARAM_TAG;
    while (s == 0);
    return s;
}

static bool tape_new(loom_ctx *ctx)
{
    ir_graph *g = ir_graph_new(ctx->mem, &ctx->err, &op_opset);
    if (!g)
        return false;
    ctx->g = g;
    ctx->tape_tag = new_serial();
    return true;
}

/* Whether environment variable name is set to "0". */
static bool env_off(const char *name)
{
    const char *v = getenv(name);
    return v && !strcmp(v, "0");
}

loom_ctx *loom_ctx_new(const loom_options *opts)
{
    loom_options o = opts ? *opts : (loom_options){ 0 };
    lm_mem mem = { .fn = o.alloc ? o.alloc : lm_default_alloc, .ud = o.alloc_ud, .err = NULL };
    loom_ctx *ctx = lm_zalloc(&mem, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->mem = mem;
    ctx->mem.err = &ctx->err;
    ctx->serial = new_serial();
    ctx->seed = o.seed ? o.seed : 0x10011;
    ctx->backend = o.backend == LOOM_BACKEND_REFERENCE ? LOOM_BACKEND_REFERENCE : LOOM_BACKEND_JIT;
    const char *env = getenv("LOOM_BACKEND");
    if (env && !strcmp(env, "reference"))
        ctx->backend = LOOM_BACKEND_REFERENCE;
    else if (env && !strcmp(env, "jit"))
        ctx->backend = LOOM_BACKEND_JIT;
    ctx->threads = o.threads > 0 && o.threads <= 1024 ? o.threads : rt_default_threads();
    env = getenv("LOOM_VERBOSE");
    /* LOOM_VERBOSE=1: a line per plan; 2: the plan itself */
    ctx->verbose = env && *env ? (atoi(env) > 1 ? 2 : strcmp(env, "0") != 0) : 0;
    /* passes turned off for comparisons: LOOM_<PASS>=0 */
    ctx->no_batch = env_off("LOOM_BATCH");     /* no time-batching */
    ctx->no_rows = env_off("LOOM_ROWS");       /* no row chains */
    ctx->no_remat = env_off("LOOM_REMAT");     /* no recomputation */
    ctx->no_prepack = env_off("LOOM_PREPACK"); /* no prepacked GEMM operands */
    ctx->no_fold = env_off("LOOM_FOLD");       /* no lookups folded into products */
    env = getenv("LOOM_ANOMALY");
    ctx->anomaly = o.anomaly || (env && *env && strcmp(env, "0") != 0);
    lm_rng_seed(&ctx->host_rng, ctx->seed);
    if (!tape_new(ctx)) {
        lm_free(&mem, ctx, sizeof *ctx);
        return NULL;
    }
    /* a bad option is the context's first error, so the first call that
     * checks reports it */
    if (o.checkpoint_every < 0)
        fe_fail(ctx, LOOM_ERR_ARG, __func__, "checkpoint_every is %d; it counts time steps (0: off)",
                o.checkpoint_every);
    else
        ctx->checkpoint_every = o.checkpoint_every;
    if (o.threads < 0 || o.threads > 1024)
        fe_fail(ctx, LOOM_ERR_ARG, __func__, "threads is %d; it must be in [1, 1024] (0: the default)", o.threads);
    if ((unsigned)o.backend > LOOM_BACKEND_REFERENCE)
        fe_fail(ctx, LOOM_ERR_ARG, __func__, "backend %d is not a loom_backend", (int)o.backend);
    return ctx;
}

void fe_values_clear(loom_ctx *ctx)
{
    for (size_t i = 0; ctx->vals_owned && i < ctx->vals_n; i++)
        lm_free_aligned(&ctx->mem, ctx->vals[i]);
    lm_free(&ctx->mem, ctx->vals, ctx->vals_n * sizeof *ctx->vals);
    ctx->vals = NULL;
    ctx->vals_n = 0;
}

void fe_tape_clear(loom_ctx *ctx)
{
    fe_values_clear(ctx);
    for (size_t i = 0; i < ctx->ninputs; i++) {
        fe_input *in = &ctx->inputs[i];
        if (in->name)
            lm_free(&ctx->mem, in->name, strlen(in->name) + 1);
        lm_free_aligned(&ctx->mem, in->data);
    }
    lm_free(&ctx->mem, ctx->inputs, ctx->inputs_cap * sizeof *ctx->inputs);
    ctx->inputs = NULL;
    ctx->ninputs = ctx->inputs_cap = 0;
    lm_free(&ctx->mem, ctx->assigns, ctx->assigns_cap * sizeof *ctx->assigns);
    ctx->assigns = NULL;
    ctx->nassigns = ctx->assigns_cap = 0;
    if (ctx->g)
        ad_grads_free(ctx->g, &ctx->grads);
    ir_graph_free(ctx->g);
    ctx->g = NULL;
    ctx->nscope_open = 0;
    ctx->rng_key = 0;
    ctx->nstreams = 0;
}

void loom_ctx_free(loom_ctx *ctx)
{
    if (!ctx)
        return;
    fe_tape_clear(ctx);
    for (size_t i = 0; i < ctx->nparams; i++) {
        fe_param *p = &ctx->params[i];
        lm_free(&ctx->mem, p->name, strlen(p->name) + 1);
        lm_free_aligned(&ctx->mem, p->data);
    }
    lm_free(&ctx->mem, ctx->params, ctx->params_cap * sizeof *ctx->params);
    for (size_t i = 1; i < ctx->nscopes; i++)
        lm_free(&ctx->mem, ctx->scopes[i], strlen(ctx->scopes[i]) + 1);
    lm_free(&ctx->mem, ctx->scopes, ctx->scopes_cap * sizeof *ctx->scopes);
    lm_free(&ctx->mem, ctx->scope_open, ctx->scope_open_cap * sizeof *ctx->scope_open);
    fe_plans_free(ctx);
    jit_free(ctx->jit);
    rt_pool_free(ctx->pool);
    lm_mem mem = ctx->mem;
    lm_free(&mem, ctx, sizeof *ctx);
}

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

loom_code loom_status(const loom_ctx *ctx) { return ctx ? ctx->err.code : LOOM_ERR_HANDLE; }
bool loom_failed(const loom_ctx *ctx) { return !ctx || ctx->err.code != LOOM_OK; }
const char *loom_errmsg(const loom_ctx *ctx) { return ctx ? ctx->err.msg : "no context (NULL)"; }

void loom_clear_error(loom_ctx *ctx)
{
    if (ctx)
        lm_err_clear(&ctx->err);
}

loom_code fe_fail(loom_ctx *ctx, loom_code code, const char *fn, const char *fmt, ...)
{
    char msg[LM_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lm_fail(&ctx->err, code, "%s: %s", fn, msg);
    return ctx->err.code; /* the first error, if there was one already */
}

void fe_name_error(loom_ctx *ctx, const char *fn)
{
    size_t n = strlen(fn);
    char *msg = ctx->err.msg;
    if (!loom_failed(ctx) || (strncmp(msg, fn, n) == 0 && msg[n] == ':'))
        return;
    if (n + 3 >= LM_ERRMSG_SIZE)
        return;
    /* "fn: " in front, the old message cut at the end if need be */
    size_t len = strlen(msg), keep = LM_MIN(len, LM_ERRMSG_SIZE - 1 - (n + 2));
    memmove(msg + n + 2, msg, keep);
    msg[n + 2 + keep] = 0;
    memcpy(msg, fn, n);
    msg[n] = ':';
    msg[n + 1] = ' ';
}

loom_t fe_named(loom_ctx *ctx, const char *fn, loom_t result)
{
    if (!loom_failed(ctx))
        return result;
    fe_name_error(ctx, fn);
    return LOOM_NULL;
}

/* ------------------------------------------------------------------ */
/* Handles                                                            */
/* ------------------------------------------------------------------ */

long fe_param_index(loom_ctx *ctx, loom_t t, const char *fn)
{
    if (!(t.tag & FE_PARAM_TAG) || (t.tag & ~FE_PARAM_TAG) != ctx->serial || t.id == 0 ||
        t.id > ctx->nparams) {
        fe_fail(ctx, LOOM_ERR_HANDLE, fn, "not a parameter of this context");
        return -1;
    }
    return (long)t.id - 1;
}

ir_id fe_node_as(loom_ctx *ctx, loom_t t, const char *fn, const char *what)
{
    if (t.id == 0) {
        fe_fail(ctx, LOOM_ERR_HANDLE, fn, "%s is a null handle", what);
        return 0;
    }
    if (t.tag & FE_PARAM_TAG) {
        if ((t.tag & ~FE_PARAM_TAG) != ctx->serial || t.id > ctx->nparams) {
            fe_fail(ctx, LOOM_ERR_HANDLE, fn, "%s is a parameter of another context", what);
            return 0;
        }
        const fe_param *p = &ctx->params[t.id - 1];
        return op_param(ctx->g, p->dtype, p->shape, t.id - 1);
    }
    if (t.tag != ctx->tape_tag || !ir_valid(ctx->g, t.id)) {
        fe_fail(ctx, LOOM_ERR_HANDLE, fn, "%s is a stale or foreign handle (from before loom_reset or another context)",
                what);
        return 0;
    }
    return t.id;
}

ir_id fe_node(loom_ctx *ctx, loom_t t, const char *fn, int arg)
{
    char what[32];
    snprintf(what, sizeof what, "operand %d", arg);
    return fe_node_as(ctx, t, fn, what);
}

loom_t fe_handle(loom_ctx *ctx, ir_id n)
{
    if (!n)
        return LOOM_NULL;
    return (loom_t){ .id = n, .tag = ctx->tape_tag };
}

int fe_axis(loom_ctx *ctx, int axis, loom_shape s, int dt, const char *fn)
{
    int a = axis < 0 ? axis + s.rank : axis;
    if (a < 0 || a >= s.rank) {
        char sh[160];
        fe_fail(ctx, LOOM_ERR_ARG, fn, "axis %d is out of range for %s (rank %d)", axis,
                loom_shape_str(s, dt, sh, sizeof sh), s.rank);
        return -1;
    }
    return a;
}

int fe_node_axis(loom_ctx *ctx, int axis, ir_id n, const char *fn)
{
    return fe_axis(ctx, axis, ir_shapev(ctx->g, n), ir_dtype(ctx->g, n), fn);
}

bool fe_check_dtype(loom_ctx *ctx, loom_dtype dt, const char *fn)
{
    if ((unsigned)dt >= LOOM_DTYPE_COUNT) {
        fe_fail(ctx, LOOM_ERR_DTYPE, fn, "%d is not a loom dtype", (int)dt);
        return false;
    }
    return true;
}

bool fe_check_shape(loom_ctx *ctx, loom_shape s, const char *fn)
{
    if (s.rank < 0 || s.rank > LOOM_MAX_RANK) {
        fe_fail(ctx, LOOM_ERR_SHAPE, fn, "rank %d is not in [0, %d]", s.rank, LOOM_MAX_RANK);
        return false;
    }
    int64_t n = 1;
    for (int i = 0; i < s.rank; i++)
        if (s.d[i] < 0 || __builtin_mul_overflow(n, s.d[i], &n) || n > ((int64_t)1 << 48)) {
            char sh[160];
            fe_fail(ctx, LOOM_ERR_SHAPE, fn, "shape %s has a negative or too large dimension",
                    loom_shape_str(s, -1, sh, sizeof sh));
            return false;
        }
    return true;
}

/* ------------------------------------------------------------------ */
/* Tape                                                               */
/* ------------------------------------------------------------------ */

void loom_reset(loom_ctx *ctx)
{
    if (!ctx)
        return;
    lm_err_clear(&ctx->err);
    /* the new tape first: without memory for it, the old one stays */
    ir_graph *g = ir_graph_new(ctx->mem, &ctx->err, &op_opset);
    if (!g) {
        lm_err_clear(&ctx->err);
        lm_fail(&ctx->err, LOOM_ERR_NOMEM, "loom_reset: out of memory for a new tape (the old tape is kept)");
        return;
    }
    fe_tape_clear(ctx);
    ctx->g = g;
    ctx->tape_tag = new_serial();
}

void loom_step_begin(loom_ctx *ctx, int t)
{
    if (!ctx || !ctx->g)
        return;
    if (t < 0) {
        fe_fail(ctx, LOOM_ERR_ARG, __func__, "step %d is negative", t);
        return;
    }
    ctx->g->cur_step = t;
}

void loom_step_end(loom_ctx *ctx)
{
    if (ctx && ctx->g)
        ctx->g->cur_step = -1;
}

/* ------------------------------------------------------------------ */
/* Scopes                                                             */
/* ------------------------------------------------------------------ */

/* The id of a scope's full name, interned (a scan: models have few
 * parts); 0 after NOMEM. */
static uint32_t scope_intern(loom_ctx *ctx, const char *name)
{
    for (size_t i = 1; i < ctx->nscopes; i++)
        if (!strcmp(ctx->scopes[i], name))
            return (uint32_t)i;
    if (ctx->nscopes == 0 && !LM_GROW(&ctx->mem, ctx->scopes, ctx->scopes_cap, 1))
        return 0;
    ctx->nscopes = ctx->nscopes ? ctx->nscopes : 1; /* id 0: none */
    size_t len = strlen(name) + 1;
    char *copy = LM_GROW(&ctx->mem, ctx->scopes, ctx->scopes_cap, ctx->nscopes + 1) ? lm_alloc(&ctx->mem, len) : NULL;
    if (!copy)
        return 0;
    memcpy(copy, name, len);
    ctx->scopes[ctx->nscopes] = copy;
    return (uint32_t)ctx->nscopes++;
}

loom_code loom_scope_begin(loom_ctx *ctx, const char *name)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return ctx->err.code;
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > 200 || strchr(name, '/'))
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "%s", !name ? "no name (NULL)"
                                                        : len == 0 ? "the name is empty"
                                                        : len > 200 ? "the name is longer than 200 bytes"
                                                                    : "the name contains '/' (it joins nested scopes)");
    if (ctx->nscope_open >= 64)
        return fe_fail(ctx, LOOM_ERR_STATE, __func__, "64 scopes are open already (is a loom_scope_end missing?)");
    char full[64 * 202];
    size_t at = 0;
    if (ctx->nscope_open) {
        const char *outer = ctx->scopes[ctx->scope_open[ctx->nscope_open - 1]];
        at = strlen(outer);
        memcpy(full, outer, at);
        full[at++] = '/';
    }
    memcpy(full + at, name, len + 1);
    uint32_t id = scope_intern(ctx, full);
    if (!id || !LM_GROW(&ctx->mem, ctx->scope_open, ctx->scope_open_cap, ctx->nscope_open + 1))
        return ctx->err.code;
    ctx->scope_open[ctx->nscope_open++] = id;
    ctx->g->cur_scope = id;
    return LOOM_OK;
}

void loom_scope_end(loom_ctx *ctx)
{
    if (!ctx || !ctx->nscope_open)
        return;
    ctx->nscope_open--;
    ctx->g->cur_scope = ctx->nscope_open ? ctx->scope_open[ctx->nscope_open - 1] : 0;
}

bool fe_scope_of(loom_ctx *ctx, loom_t param, const char *suffix)
{
    if (!ctx || loom_failed(ctx) || !(param.tag & FE_PARAM_TAG) || param.id == 0 || param.id > ctx->nparams ||
        (param.tag & ~FE_PARAM_TAG) != ctx->serial)
        return false;
    const char *name = ctx->params[param.id - 1].name, *dot = strrchr(name, '.');
    char s[256];
    int len = dot ? (int)(dot - name) : 0;
    snprintf(s, sizeof s, "%.*s%s%s", len, name, len && suffix ? "." : "", suffix ? suffix : "");
    if (!s[0] || strchr(s, '/'))
        return false;
    return loom_scope_begin(ctx, s) == LOOM_OK;
}

const char *fe_scope_name(const loom_ctx *ctx, uint32_t scope)
{
    return scope && scope < ctx->nscopes ? ctx->scopes[scope] : NULL;
}

size_t loom_node_count(const loom_ctx *ctx) { return ctx && ctx->g ? ir_count(ctx->g) : 0; }

loom_shape loom_shape_of(loom_ctx *ctx, loom_t t)
{
    if (!ctx || !ctx->g)
        return (loom_shape){ 0 };
    if (t.tag & FE_PARAM_TAG) {
        long p = fe_param_index(ctx, t, __func__);
        return p < 0 ? (loom_shape){ 0 } : ctx->params[p].shape;
    }
    ir_id n = fe_node(ctx, t, __func__, 1);
    return n ? ir_shapev(ctx->g, n) : (loom_shape){ 0 };
}

loom_dtype loom_dtype_of(loom_ctx *ctx, loom_t t)
{
    if (!ctx || !ctx->g)
        return LOOM_DTYPE_COUNT;
    if (t.tag & FE_PARAM_TAG) {
        long p = fe_param_index(ctx, t, __func__);
        return p < 0 ? LOOM_DTYPE_COUNT : ctx->params[p].dtype;
    }
    ir_id n = fe_node(ctx, t, __func__, 1);
    return n ? ir_dtype(ctx->g, n) : LOOM_DTYPE_COUNT;
}

/* ------------------------------------------------------------------ */
/* Printing                                                           */
/* ------------------------------------------------------------------ */

static const char *node_label(void *ud, const ir_graph *g, ir_id n)
{
    loom_ctx *ctx = ud;
    uint32_t k = (uint32_t)ir_attrs(g, n)[0];
    if (ir_op(g, n) == OP_INPUT && k < ctx->ninputs)
        return ctx->inputs[k].name;
    if ((ir_op(g, n) == OP_PARAM || ir_op(g, n) == OP_ASSIGN) && k < ctx->nparams)
        return ctx->params[k].name;
    return NULL;
}

loom_code loom_print_graph(loom_ctx *ctx, FILE *out)
{
    if (!ctx)
        return LOOM_ERR_ARG;
    if (!out)
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "no output stream (NULL)");
    ir_print(ctx->g, out, node_label, ctx);
    return ferror(out) ? LOOM_ERR_IO : LOOM_OK;
}

loom_code loom_write_dot(loom_ctx *ctx, FILE *out)
{
    if (!ctx)
        return LOOM_ERR_ARG;
    if (!out)
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "no output stream (NULL)");
    ir_write_dot(ctx->g, out, node_label, ctx);
    return ferror(out) ? LOOM_ERR_IO : LOOM_OK;
}
