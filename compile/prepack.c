/*
 * prepack.c — prepacked GEMM operands: the recurrent products of an
 * unrolled RNN multiply a few rows (the batch) by the same weight at
 * every time step. Each such call either packs the weight into panels
 * for the register tile, or reads it as it is (with B transposed, as dot
 * products whose horizontal sums cost a fifth of the product at K = 512;
 * untransposed, a row of B per k, strided). Packed once for all of them,
 * by a call of its own before the first (a KN_BPACK_PACK kernel into an
 * arena buffer, laid out as kn_gemm_b_layout says), each call reads
 * ready panels (KN_BPACK_PACKED) with the micro-kernel the large
 * products use.
 *
 * Applies to GEMM calls of at most MAX_M rows and one batch member that
 * share B (the same buffer and offset, transpose, N, K, leading
 * dimension and dtype), at least MIN_CALLS of them, when no call between
 * the first and the last writes B's buffer. Runs after fusion (the
 * epilogues are folded by then: they change C, not B) and before memory
 * planning, which gives the packed buffer the lifetime of its calls.
 * O(calls log calls).
 */
#include "plan_impl.h"

#include <stdlib.h>

enum {
    MAX_M = 64,    /* rows of A: larger products pack B per call at little cost */
    MIN_CALLS = 4, /* calls sharing B: packing costs about one call's read of it */
};

typedef struct cand {
    uint32_t buffer;
    uint64_t offset;
    int64_t n, k, ldb;
    uint8_t tb, dtype;
    uint32_t call;
} cand;

static int cand_cmp(const void *x, const void *y)
{
    const cand *a = x, *b = y;
#define CMP(f)                 \
    if (a->f != b->f)          \
        return a->f < b->f ? -1 : 1;
    CMP(buffer)
    CMP(offset)
    CMP(n)
    CMP(k)
    CMP(ldb)
    CMP(tb)
    CMP(dtype)
    CMP(call)
#undef CMP
    return 0;
}

/* Whether kernel k is a GEMM that may read a prepacked B. */
static bool prepackable(const kernel *k)
{
    return k->kind == KN_GEMM && k->gemm.bpack == KN_BPACK_NONE && k->gemm.batch == 1 && k->gemm.m <= MAX_M;
}

static bool same_b(const cand *a, const cand *b)
{
    return a->buffer == b->buffer && a->offset == b->offset && a->n == b->n && a->k == b->k && a->ldb == b->ldb &&
           a->tb == b->tb && a->dtype == b->dtype;
}

/* Calls `visit` for each buffer call ci writes (a GEMM's, gather's or
 * scatter's argument 2; a program's stores, a row chain's members'). */
static void writes(const plan *p, size_t ci, void (*visit)(void *, uint32_t), void *ud)
{
    const plan_call *call = &p->calls[ci];
    const kernel *k = &p->kernels[call->kernel];
    const plan_arg *args = p->args + call->arg;
    if (k->kind == KN_GEMM || k->kind == KN_GATHER || k->kind == KN_SCATTER) {
        visit(ud, args[2].buffer);
        return;
    }
    const kernel *progs = k->kind == KN_ROWS ? k->subs : k;
    uint32_t nprogs = k->kind == KN_ROWS ? k->nsubs : 1;
    for (uint32_t s = 0; s < nprogs; s++)
        for (uint32_t i = 0; i < progs[s].ncode; i++)
            if (progs[s].code[i].op == KI_STORE)
                visit(ud, args[progs[s].code[i].arg].buffer);
}

/* Writes per buffer, as compressed rows: the calls writing buffer b are
 * at[start[b] .. start[b + 1]), in order. */
typedef struct wtab {
    uint32_t *start, *at, *fill;
    uint32_t ci;
} wtab;

static void count_write(void *ud, uint32_t b) { ((wtab *)ud)->start[b + 1]++; }

static void put_write(void *ud, uint32_t b)
{
    wtab *w = ud;
    w->at[w->start[b] + w->fill[b]++] = w->ci;
}

/* Whether a call in [lo, hi] writes buffer b. */
static bool written_in(const wtab *w, uint32_t b, uint32_t lo, uint32_t hi)
{
    uint32_t l = w->start[b], h = w->start[b + 1]; /* first write >= lo, by bisection */
    while (l < h) {
        uint32_t mid = l + (h - l) / 2;
        if (w->at[mid] < lo)
            l = mid + 1;
        else
            h = mid;
    }
    return l < w->start[b + 1] && w->at[l] <= hi;
}

/* A copy of GEMM kernel k with spec g and n arguments of dtype dt,
 * interned: its index, or -1. */
static long gemm_kernel(fz *f, const kernel *k, const kn_gemm *g, uint32_t nargs)
{
    kernel v = { .kind = KN_GEMM, .nargs = nargs, .space = k->space, .gemm = *g };
    v.arg_dtype = lm_alloc(&f->mem, nargs);
    v.code = lm_alloc(&f->mem, sizeof *v.code);
    v.strides = lm_alloc(&f->mem, LOOM_MAX_RANK * sizeof *v.strides);
    if (!v.arg_dtype || !v.code || !v.strides) {
        plan_kernel_free(&f->mem, &v);
        return -1;
    }
    memset(v.arg_dtype, g->dtype, nargs);
    return fz_intern_kernel(f, &v);
}

loom_code fz_prepack(fz *f)
{
    plan *p = f->p;
    lm_mem *mem = &f->mem;
    size_t nc = p->ncalls, nb = p->nbuffers, ncand = 0;
    for (size_t ci = 0; ci < nc; ci++) {
        ncand += prepackable(&p->kernels[p->calls[ci].kernel]);
    }
    if (ncand < MIN_CALLS)
        return LOOM_OK;
    cand *cs = lm_alloc(mem, ncand * sizeof *cs);
    plan_call *pack_at = lm_alloc(mem, (nc + 1) * sizeof *pack_at); /* the packing call before call ci, if any */
    wtab w = { .start = lm_zalloc(mem, (nb + 2) * sizeof *w.start), .fill = lm_zalloc(mem, (nb + 1) * sizeof *w.fill) };
    plan_call *calls = NULL;
    size_t calls_bytes = 0;
    loom_code c = LOOM_OK;
    if (!cs || !pack_at || !w.start || !w.fill) {
        c = mem->err->code;
        goto done;
    }
    ncand = 0;
    for (size_t ci = 0; ci < nc; ci++) {
        pack_at[ci].kernel = UINT32_MAX;
        const plan_call *call = &p->calls[ci];
        const kernel *k = &p->kernels[call->kernel];
        const kn_gemm *g = &k->gemm;
        if (prepackable(k))
            cs[ncand++] = (cand){ .buffer = p->args[call->arg + 1].buffer, .offset = p->args[call->arg + 1].offset,
                                  .n = g->n, .k = g->k, .ldb = g->ldb, .tb = g->tb, .dtype = (uint8_t)g->dtype,
                                  .call = (uint32_t)ci };
        w.ci = (uint32_t)ci;
        writes(p, ci, count_write, &w);
    }
    for (size_t b = 0; b < nb; b++)
        w.start[b + 1] += w.start[b];
    if (!(w.at = lm_alloc(mem, ((size_t)w.start[nb] + 1) * sizeof *w.at))) {
        c = mem->err->code;
        goto done;
    }
    for (size_t ci = 0; ci < nc; ci++) {
        w.ci = (uint32_t)ci;
        writes(p, ci, put_write, &w);
    }
    qsort(cs, ncand, sizeof *cs, cand_cmp);

    /* each group: a packed buffer, its calls switched to the packed kernel */
    size_t groups = 0;
    for (size_t i = 0, j; i < ncand; i = j) {
        for (j = i + 1; j < ncand && same_b(&cs[i], &cs[j]); j++)
            ;
        uint32_t first = cs[i].call, last = cs[j - 1].call;
        if (j - i < MIN_CALLS || written_in(&w, cs[i].buffer, first, last))
            continue;
        const kernel *k0 = &p->kernels[p->calls[first].kernel];
        kn_b_layout l;
        kn_gemm_b_layout(k0->gemm.dtype, k0->gemm.n, k0->gemm.k, &l);
        if (!LM_GROW(mem, p->buffers, p->buffers_cap, p->nbuffers + 1)) {
            c = mem->err->code;
            goto done;
        }
        uint32_t pb = (uint32_t)p->nbuffers++;
        p->buffers[pb] = (plan_buffer){ .kind = PB_ARENA, .bytes = (uint64_t)l.elems * loom_dtype_size(k0->gemm.dtype),
                                        .node = p->buffers[cs[i].buffer].node };
        /* the packing call: B where the group reads it, into pb */
        kn_gemm pg = { .dtype = k0->gemm.dtype, .batch = 1, .m = 1, .n = k0->gemm.n, .k = k0->gemm.k,
                       .tb = k0->gemm.tb, .ldb = k0->gemm.ldb, .bpack = KN_BPACK_PACK };
        long kp = gemm_kernel(f, k0, &pg, 3);
        if (kp < 0 || !LM_GROW(mem, p->args, p->args_cap, p->nargs + 3)) {
            c = mem->err->code;
            goto done;
        }
        plan_arg b = { .buffer = cs[i].buffer, .offset = cs[i].offset };
        p->args[p->nargs] = b;
        p->args[p->nargs + 1] = b;
        p->args[p->nargs + 2] = (plan_arg){ .buffer = pb };
        pack_at[first] = (plan_call){ .kernel = (uint32_t)kp, .arg = (uint32_t)p->nargs };
        p->nargs += 3;
        for (size_t q = i; q < j; q++) {
            uint32_t ci = cs[q].call;
            const kernel *k = &p->kernels[p->calls[ci].kernel];
            kn_gemm g = k->gemm;
            g.bpack = KN_BPACK_PACKED;
            uint32_t na = k->nargs;
            long kv = gemm_kernel(f, k, &g, na);
            if (kv < 0 || !LM_GROW(mem, p->args, p->args_cap, p->nargs + na)) {
                c = mem->err->code;
                goto done;
            }
            memcpy(p->args + p->nargs, p->args + p->calls[ci].arg, na * sizeof *p->args);
            p->args[p->nargs + 1] = (plan_arg){ .buffer = pb };
            p->calls[ci] = (plan_call){ .kernel = (uint32_t)kv, .arg = (uint32_t)p->nargs };
            p->nargs += na;
        }
        p->report.prepacked++;
        p->report.prepacked_calls += j - i;
        groups++;
    }
    if (!groups)
        goto done;

    /* the packing calls, each before its group's first call */
    calls_bytes = (nc + groups + 1) * sizeof *calls;
    if (!(calls = lm_alloc(mem, calls_bytes))) {
        c = mem->err->code;
        goto done;
    }
    size_t at = 0;
    for (size_t ci = 0; ci < nc; ci++) {
        if (pack_at[ci].kernel != UINT32_MAX)
            calls[at++] = pack_at[ci];
        calls[at++] = p->calls[ci];
    }
    lm_free(mem, p->calls, p->calls_cap * sizeof *p->calls);
    p->calls = calls;
    p->calls_cap = nc + groups + 1;
    p->ncalls = at;
    calls = NULL;
done:
    if (calls)
        lm_free(mem, calls, calls_bytes);
    if (w.at)
        lm_free(mem, w.at, ((size_t)w.start[nb] + 1) * sizeof *w.at);
    lm_free(mem, w.fill, (nb + 1) * sizeof *w.fill);
    lm_free(mem, w.start, (nb + 2) * sizeof *w.start);
    lm_free(mem, pack_at, (nc + 1) * sizeof *pack_at);
    lm_free(mem, cs, ncand * sizeof *cs);
    return c;
}
