/*
 * rows.c — row chains: consecutive map and reduce calls that work row by
 * row over one leading axis become one call that, for each row, runs them
 * one after another (a KN_ROWS kernel).
 *
 * A layer norm's statistics, its normalisation and a cell's gate math
 * then touch one row — a few KiB, in L1 — at a time, instead of each
 * kernel streaming the whole batch through the cache, and one call (one
 * wake-up of the threads) replaces many. Where fusion stops at a
 * reduction (its consumers need the whole sum), a chain goes on.
 *
 * Legal when, inside the chain, every buffer some member writes is
 * touched row-locally: with R rows, each access's elements for row r lie
 * in band q + r of one pitch S common to all the buffer's accesses
 * ([k S, (k + 1) S) is band k). Then row r reads only what row r of the
 * chain wrote, whatever order threads take rows in. A reduction over the
 * row axis, or any access that strays across bands, ends the chain there.
 *
 * A buffer that only the chain touches (written there, dead after it,
 * touched row-locally) lives in the calling thread's scratch instead:
 * one band of it, reused row after row, so a layer norm's centred values
 * and squares stay in L1 rather than streaming [R, N] of them through the
 * caches (kernel.arg_scratch). Its arena slot is kept but never touched:
 * giving it up changed the best-fit arena's placements so that it
 * fragmented (the examples' layer-normalised LSTM: 131.6 MiB against
 * 110.8 MiB, for 107.4 MiB live at the peak). Not done in the anomaly
 * mode (no_inplace), which checks each store in the arena after the call.
 *
 * Made only for plans that run on two or more threads (compile_opts.
 * threads): one call then wakes the pool once for many kernels. On one
 * thread there is nothing to save, and the members' own calls, each
 * streaming its buffers whole, ran faster than the chain (the examples'
 * layer-normalised LSTM: 19.3 ms outside GEMMs against 24 ms chained).
 *
 * Runs after fusion and before memory planning, so every buffer a chain
 * touches lives across its whole call. Linear in calls (chains are capped
 * in length, and their argument lists in size).
 */
#include "plan_impl.h"

enum {
    MAX_MEMBERS = 64, /* calls per chain */
    MAX_ARGS = 192,   /* arguments per chain */
};

/* A buffer's accesses in the chain being built. */
enum {
    B_WRITTEN = 1,
    B_UNBANDED = 2,
    B_PLACED = 4,  /* given a band in the row scratch */
    B_REDUCED = 8, /* a reduction's result: its code stores by flat index, not through a view */
};

typedef struct bstate {
    uint32_t stamp; /* the chain this state belongs to */
    uint8_t flags;
    uint8_t es;     /* element size of its accesses (one for all, or B_UNBANDED) */
    uint32_t refs;  /* the chain's arguments on it (emit_chain) */
    int64_t pitch, band;
    int64_t slot;   /* B_PLACED: where its band starts in the row scratch (bytes) */
    uint32_t first, last; /* the members that touch it first and last (emit_chain) */
} bstate;

typedef struct undo {
    uint32_t buf;
    bstate old;
} undo;

typedef struct rows {
    fz *f;
    bstate *bs;    /* [nbuffers] */
    uint32_t *nref; /* [nbuffers] arguments on it in the whole plan; UINT32_MAX: never the chain's own */
    bool scratch;  /* chain-local buffers may live in the threads' scratch */
    uint32_t stamp;
    undo *log;
    size_t nlog, log_cap;
    int64_t R;     /* rows of the chain being built */
    uint32_t member[MAX_MEMBERS];
    size_t nmember;
    size_t nargs;  /* distinct (buffer, offset, dtype) over the members */
} rows;

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

/* Whether k's space keeps its shape ([R, ...] already); otherwise its
 * first axis splits into [R, d0 / R] (a one-axis space [R] into [R, 1],
 * so that rows are never the innermost axis). */
static bool as_is(const kernel *k, int64_t R) { return k->space.d[0] == R && k->space.rank >= 2; }

/* The rank of k's space split for R rows; 0 when k cannot run row by row
 * over R rows. */
static int split_rank(const kernel *k, int64_t R)
{
    if (k->kind != KN_MAP && k->kind != KN_REDUCE)
        return 0;
    if (k->kind == KN_REDUCE && op_axis_in(k->reduce_mask, 0))
        return 0; /* sums across rows */
    int64_t d0 = k->space.d[0];
    if (R < 2 || d0 % R != 0)
        return 0;
    if (as_is(k, R))
        return k->space.rank;
    return k->space.rank < LOOM_MAX_RANK ? k->space.rank + 1 : 0;
}

static void split_view(const kernel *k, int64_t R, uint32_t v, int64_t *st)
{
    const int64_t *o = k->strides + (size_t)v * LOOM_MAX_RANK;
    int r = k->space.rank;
    memset(st, 0, LOOM_MAX_RANK * sizeof *st);
    if (as_is(k, R)) {
        memcpy(st, o, (size_t)r * sizeof *st);
        return;
    }
    st[0] = o[0] * (k->space.d[0] / R);
    st[1] = o[0];
    memcpy(st + 2, o + 1, (size_t)(r - 1) * sizeof *st);
}

static loom_shape split_space(const kernel *k, int64_t R)
{
    loom_shape s = k->space;
    if (as_is(k, R))
        return s;
    s.d[0] = R;
    s.d[1] = k->space.d[0] / R;
    for (int i = 1; i < k->space.rank; i++)
        s.d[i + 1] = k->space.d[i];
    s.rank = k->space.rank + 1;
    return s;
}

/* Records one access of a member; false when it breaks row locality. */
static bool record_access(rows *w, uint32_t b, bool write, bool banded, int64_t pitch, int64_t band, int64_t es)
{
    bstate *s = &w->bs[b];
    if (!LM_GROW(&w->f->mem, w->log, w->log_cap, w->nlog + 1))
        return false;
    w->log[w->nlog++] = (undo){ b, *s };
    if (s->stamp != w->stamp) {
        *s = (bstate){ .stamp = w->stamp, .pitch = pitch, .band = band, .es = (uint8_t)es };
        if (!banded)
            s->flags |= B_UNBANDED;
    } else if (!banded || s->pitch != pitch || s->band != band || s->es != es) {
        s->flags |= B_UNBANDED;
    }
    if (write)
        s->flags |= B_WRITTEN;
    return !((s->flags & B_WRITTEN) && (s->flags & B_UNBANDED));
}

/* Whether call ci can join the chain over w->R rows: every load and store
 * checked (and recorded; undone when it cannot). */
static bool admit(rows *w, uint32_t ci)
{
    const plan *p = w->f->p;
    const plan_call *call = &p->calls[ci];
    const kernel *k = &p->kernels[call->kernel];
    int rank = split_rank(k, w->R);
    if (!rank || w->nmember >= MAX_MEMBERS || w->nargs + k->nargs > MAX_ARGS)
        return false;
    loom_shape s = split_space(k, w->R);
    /* iota reads coordinates, which a split renumbers */
    for (uint32_t i = 0; i < k->ncode && !as_is(k, w->R); i++)
        if (k->code[i].op == OP_IOTA)
            return false;
    size_t mark = w->nlog;
    bool ok = true;
    for (uint32_t i = 0; i < k->ncode && ok; i++) {
        const kn_instr *in = &k->code[i];
        if (in->op != KI_LOAD && in->op != KI_STORE)
            continue;
        const plan_arg *a = &p->args[call->arg + in->arg];
        int64_t es = (int64_t)loom_dtype_size((loom_dtype)k->arg_dtype[in->arg]);
        int64_t st[LOOM_MAX_RANK];
        split_view(k, w->R, in->view, st);
        int64_t lo = (int64_t)a->offset / es, hi = lo;
        for (int d = 1; d < rank; d++) {
            int64_t span = st[d] * (s.d[d] - 1);
            lo += span < 0 ? span : 0;
            hi += span > 0 ? span : 0;
        }
        int64_t pitch = st[0];
        bool banded = pitch > 0 && (int64_t)a->offset % es == 0 && floor_div(lo, pitch) == floor_div(hi, pitch);
        ok = record_access(w, a->buffer, in->op == KI_STORE, banded, pitch, banded ? floor_div(lo, pitch) : 0, es);
        if (in->op == KI_STORE && k->kind == KN_REDUCE)
            w->bs[a->buffer].flags |= B_REDUCED;
    }
    if (!ok) {
        while (w->nlog > mark) {
            undo *u = &w->log[--w->nlog];
            w->bs[u->buf] = u->old;
        }
        return false;
    }
    w->member[w->nmember++] = ci;
    w->nargs += k->nargs;
    return true;
}

/* The sub-kernel for member k: a copy over the split space, its
 * arguments renumbered through map. An access to an argument in the
 * scratch (scr[a] >= 0) gets a view of its own with no stride along rows:
 * every row finds its band at the same place. */
static bool make_sub(lm_mem *m, const kernel *k, int64_t R, const uint32_t *map, const int64_t *scr, kernel *out)
{
    uint32_t extra = 0;
    for (uint32_t i = 0; i < k->ncode; i++)
        if ((k->code[i].op == KI_LOAD || k->code[i].op == KI_STORE) && scr[map[k->code[i].arg]] >= 0)
            extra++;
    *out = (kernel){ .kind = k->kind, .nargs = 0, .ncode = k->ncode, .nviews = k->nviews + extra,
                     .reduce_op = k->reduce_op };
    out->space = split_space(k, R);
    bool split = out->space.rank != k->space.rank;
    out->reduce_mask = split ? k->reduce_mask << 1 : k->reduce_mask;
    /* the sizes plan_kernel_free gives back: every array at least one */
    out->arg_dtype = lm_alloc(m, 1);
    out->code = lm_alloc(m, (k->ncode ? k->ncode : 1) * sizeof *out->code);
    out->strides = lm_zalloc(m, (out->nviews ? out->nviews : 1) * LOOM_MAX_RANK * sizeof *out->strides);
    if (!out->arg_dtype || !out->code || !out->strides) {
        plan_kernel_free(m, out);
        *out = (kernel){ 0 }; /* the chain frees its subs again */
        return false;
    }
    memcpy(out->code, k->code, k->ncode * sizeof *out->code);
    for (uint32_t v = 0; v < k->nviews; v++)
        split_view(k, R, v, out->strides + (size_t)v * LOOM_MAX_RANK);
    uint32_t nv = k->nviews;
    for (uint32_t i = 0; i < k->ncode; i++) {
        kn_instr *in = &out->code[i];
        if (in->op != KI_LOAD && in->op != KI_STORE && in->op != OP_RANDOM)
            continue;
        in->arg = map[in->arg];
        if (in->op != OP_RANDOM && scr[in->arg] >= 0) {
            int64_t *st = out->strides + (size_t)nv * LOOM_MAX_RANK;
            memcpy(st, out->strides + (size_t)in->view * LOOM_MAX_RANK, LOOM_MAX_RANK * sizeof *st);
            st[0] = 0;
            in->view = nv++;
        }
    }
    plan_kernel_hash(out);
    out->cost = plan_kernel_cost(out);
    return true;
}

/* The index of (pa, dtype) among the chain's distinct arguments (buffer,
 * offset, dtype), appended when new. */
static uint32_t chain_arg(plan_arg *args, uint8_t *dt, uint32_t *na, plan_arg pa, uint8_t dtype)
{
    uint32_t j = 0;
    while (j < *na && !(args[j].buffer == pa.buffer && args[j].offset == pa.offset && dt[j] == dtype))
        j++;
    if (j == *na) {
        args[j] = pa;
        dt[(*na)++] = dtype;
    } else if (!args[j].origin) {
        args[j].origin = pa.origin; /* read first, stored later */
    }
    return j;
}

/* Whether buffer b can live in the threads' scratch for this chain: the
 * chain writes it, touches it row-locally with one element size, and is
 * all that ever touches it (its value dies in the chain). Then each
 * thread keeps the one band of it that the row at hand uses: a few KiB
 * that stay in L1, where the arena's copy of every row would stream
 * through the caches. */
static bool chain_local(const rows *w, uint32_t b)
{
    const bstate *s = &w->bs[b];
    return w->scratch && s->stamp == w->stamp && (s->flags & B_WRITTEN) && !(s->flags & (B_UNBANDED | B_REDUCED)) &&
           w->nref[b] == s->refs;
}

/* Gives each chain-local buffer a band in the row scratch; returns the
 * bytes a row's bands take. A row runs the members one after another, so
 * buffers whose members do not overlap (one's last before the other's
 * first) share a band: a layer norm's temporaries then take a few bands
 * that stay in L1, not one each. */
static int64_t place_bands(rows *w)
{
    const plan *p = w->f->p;
    struct band {
        int64_t at, size;
        uint32_t until; /* the last member of the buffer in it */
    } bands[MAX_ARGS];
    uint32_t nb = 0;
    int64_t top = 0;
    for (size_t i = 0; i < w->nmember; i++) {
        const plan_call *call = &p->calls[w->member[i]];
        for (uint32_t a = 0; a < p->kernels[call->kernel].nargs; a++) {
            uint32_t b = p->args[call->arg + a].buffer;
            bstate *s = &w->bs[b];
            if (!chain_local(w, b) || (s->flags & B_PLACED))
                continue;
            int64_t size = (s->pitch * s->es + 63) & ~(int64_t)63;
            uint32_t best = nb;
            for (uint32_t k = 0; k < nb; k++)
                if (bands[k].until < s->first && bands[k].size >= size &&
                    (best == nb || bands[k].size < bands[best].size))
                    best = k;
            if (best == nb) {
                bands[nb++] = (struct band){ .at = top, .size = size };
                top += size;
            }
            bands[best].until = s->last;
            s->flags |= B_PLACED;
            s->slot = bands[best].at;
        }
    }
    return top;
}

/* Replaces the chain's calls by one KN_ROWS call at calls[at]. */
static bool emit_chain(rows *w, size_t at)
{
    fz *f = w->f;
    plan *p = f->p;
    lm_mem *m = &f->mem;
    plan_arg args[MAX_ARGS];
    uint8_t dt[MAX_ARGS];
    uint32_t map[MAX_ARGS];
    int64_t scr[MAX_ARGS]; /* bytes into the row scratch, -1: the argument's own memory */
    uint32_t na = 0;
    kernel ch = { .kind = KN_ROWS, .rows = w->R, .nsubs = (uint32_t)w->nmember };
    ch.space = (loom_shape){ .rank = 1, .d = { w->R } };
    /* the arguments, and the chain's references to each buffer */
    for (size_t i = 0; i < w->nmember; i++) {
        const plan_call *call = &p->calls[w->member[i]];
        const kernel *k = &p->kernels[call->kernel];
        for (uint32_t a = 0; a < k->nargs; a++) {
            w->bs[p->args[call->arg + a].buffer].refs = 0;
            chain_arg(args, dt, &na, p->args[call->arg + a], k->arg_dtype[a]);
        }
    }
    for (size_t i = 0; i < w->nmember; i++) {
        const plan_call *call = &p->calls[w->member[i]];
        for (uint32_t a = 0; a < p->kernels[call->kernel].nargs; a++) {
            bstate *s = &w->bs[p->args[call->arg + a].buffer];
            if (!s->refs++)
                s->first = (uint32_t)i;
            s->last = (uint32_t)i;
        }
    }
    int64_t top = place_bands(w);
    for (uint32_t j = 0; j < na; j++) {
        const bstate *s = &w->bs[args[j].buffer];
        scr[j] = chain_local(w, args[j].buffer) ? s->slot + (int64_t)args[j].offset - s->band * s->pitch * s->es : -1;
    }
    ch.subs = lm_zalloc(m, w->nmember * sizeof *ch.subs);
    if (!ch.subs)
        return false;
    for (size_t i = 0; i < w->nmember; i++) {
        const plan_call *call = &p->calls[w->member[i]];
        const kernel *k = &p->kernels[call->kernel];
        for (uint32_t a = 0; a < k->nargs; a++)
            map[a] = chain_arg(args, dt, &na, p->args[call->arg + a], k->arg_dtype[a]);
        if (!make_sub(m, k, w->R, map, scr, &ch.subs[i])) {
            plan_kernel_free(m, &ch); /* the subs not made yet are zero */
            return false;
        }
    }
    ch.nargs = na;
    ch.arg_dtype = lm_alloc(m, na ? na : 1); /* plan_kernel_free's sizes */
    ch.arg_shared = lm_zalloc(m, na ? na : 1);
    ch.arg_scratch = lm_alloc(m, (na ? na : 1) * sizeof *ch.arg_scratch);
    ch.code = lm_alloc(m, sizeof *ch.code);
    ch.strides = lm_alloc(m, LOOM_MAX_RANK * sizeof *ch.strides);
    if (!ch.arg_dtype || !ch.arg_shared || !ch.arg_scratch || !ch.code || !ch.strides) {
        plan_kernel_free(m, &ch);
        return false;
    }
    memcpy(ch.arg_dtype, dt, na);
    memcpy(ch.arg_scratch, scr, na * sizeof *scr);
    ch.row_scratch = top;
    /* two windows on one buffer that the chain writes may overlap: such
     * arguments lose noalias (windows of a buffer only read keep it) */
    for (uint32_t i = 0; i < na; i++)
        for (uint32_t j = i + 1; j < na; j++)
            if (args[i].buffer == args[j].buffer && (w->bs[args[i].buffer].flags & B_WRITTEN))
                ch.arg_shared[i] = ch.arg_shared[j] = 1;
    long ki = fz_intern_kernel(f, &ch);
    if (ki < 0 || !LM_GROW(m, p->args, p->args_cap, p->nargs + na))
        return false;
    p->calls[at] = (plan_call){ .kernel = (uint32_t)ki, .arg = (uint32_t)p->nargs };
    memcpy(p->args + p->nargs, args, na * sizeof *args);
    p->nargs += na;
    p->report.row_chains++;
    p->report.row_members += w->nmember;
    return true;
}

/* Ends the chain being built: its calls, or one chain call, at calls[*out]. */
static bool flush(rows *w, size_t *out)
{
    plan *p = w->f->p;
    if (w->nmember >= 2) {
        if (!emit_chain(w, *out))
            return false;
        (*out)++;
    } else if (w->nmember == 1) {
        p->calls[(*out)++] = p->calls[w->member[0]];
    }
    w->nmember = 0;
    w->nargs = 0;
    w->nlog = 0;
    w->stamp++;
    return true;
}

loom_code fz_rows(fz *f)
{
    plan *p = f->p;
    if (ir_failed(f->g))
        return f->g->err->code;
    rows w = { .f = f, .stamp = 1, .scratch = !f->o.no_inplace };
    size_t nb = p->nbuffers + 1;
    w.bs = lm_zalloc(&f->mem, nb * sizeof *w.bs);
    w.nref = lm_zalloc(&f->mem, nb * sizeof *w.nref);
    if (!w.bs || !w.nref) {
        lm_free(&f->mem, w.bs, nb * sizeof *w.bs);
        lm_free(&f->mem, w.nref, nb * sizeof *w.nref);
        return lm_fail(f->g->err, LOOM_ERR_NOMEM, "rows: out of memory");
    }
    /* who touches each buffer: calls' arguments, and the caller (outputs,
     * commits, inputs, parameters, the status words) */
    for (size_t ci = 0; ci < p->ncalls; ci++)
        for (uint32_t a = 0; a < p->kernels[p->calls[ci].kernel].nargs; a++)
            if (w.nref[p->args[p->calls[ci].arg + a].buffer] != UINT32_MAX)
                w.nref[p->args[p->calls[ci].arg + a].buffer]++;
    for (size_t b = 0; b < p->nbuffers; b++)
        if (p->buffers[b].kind != PB_ARENA || (p->buffers[b].role & (PR_OUTPUT | PR_UPDATE)))
            w.nref[b] = UINT32_MAX;
    for (size_t i = 0; i < p->noutputs; i++)
        w.nref[p->outputs[i].buffer] = UINT32_MAX;
    for (size_t i = 0; i < p->ncommits; i++)
        w.nref[p->commits[i].buffer] = UINT32_MAX;
    if (f->status != UINT32_MAX)
        w.nref[f->status] = UINT32_MAX;
    size_t out = 0, nc = p->ncalls;
    bool ok = true;
    for (size_t ci = 0; ci < nc && ok; ci++) {
        if (w.nmember && admit(&w, (uint32_t)ci))
            continue;
        ok = flush(&w, &out); /* may add a kernel: p->kernels moves */
        /* a chain starts at a kernel whose first axis says what a row is */
        const kernel *k = &p->kernels[p->calls[ci].kernel];
        w.R = k->space.rank >= 2 ? k->space.d[0] : 0;
        if (ok && !(w.R >= 2 && admit(&w, (uint32_t)ci)))
            p->calls[out++] = p->calls[ci];
    }
    ok = ok && flush(&w, &out);
    p->ncalls = out;
    lm_free(&f->mem, w.log, w.log_cap * sizeof *w.log);
    lm_free(&f->mem, w.bs, nb * sizeof *w.bs);
    lm_free(&f->mem, w.nref, nb * sizeof *w.nref);
    return ok ? LOOM_OK : lm_fail(f->g->err, LOOM_ERR_NOMEM, "rows: out of memory");
}
