/*
 * plan.c — the compiler driver (DCE, simplification, fusion, memory
 * planning, with the IR verified between passes when asked), kernel
 * canonical forms and hashes, the plan's memory layout, printing.
 */
#include "plan_impl.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

enum { DEFAULT_MAX_FUSE = 192 };

/* ------------------------------------------------------------------ */
/* Kernel canonical form                                              */
/* ------------------------------------------------------------------ */

static bool has_op(const kbuild *kb, int op)
{
    for (size_t i = 0; i < kb->ncode; i++)
        if (kb->code[i].op == op)
            return true;
    return false;
}

/* Merges dims of the iteration space that every view walks as one
 * (stride[i] == stride[i+1] * dim[i+1]) and drops size-1 dims, so loops
 * are as few and long as the layout allows. Iota needs its coordinates,
 * so a kernel with iota keeps its dims. */
static void collapse(kbuild *kb)
{
    if (kb->kind != KN_MAP && kb->kind != KN_REDUCE)
        return;
    if (has_op(kb, OP_IOTA))
        return;
    loom_shape *s = &kb->space;
    int r = s->rank, k = 0;
    uint32_t mask = 0;
    int64_t *st = kb->strides;
    for (int i = 0; i < r; i++) {
        if (s->d[i] == 1 && r > 1)
            continue;
        bool red = op_axis_in(kb->reduce_mask, i);
        if (k > 0 && (op_axis_in(mask, k - 1) == red)) {
            bool merge = true;
            for (size_t v = 0; v < kb->nviews && merge; v++)
                merge = st[v * LOOM_MAX_RANK + (size_t)(k - 1)] == st[v * LOOM_MAX_RANK + (size_t)i] * s->d[i];
            if (merge) {
                s->d[k - 1] *= s->d[i];
                for (size_t v = 0; v < kb->nviews; v++)
                    st[v * LOOM_MAX_RANK + (size_t)(k - 1)] = st[v * LOOM_MAX_RANK + (size_t)i];
                continue;
            }
        }
        s->d[k] = s->d[i];
        for (size_t v = 0; v < kb->nviews; v++)
            st[v * LOOM_MAX_RANK + (size_t)k] = st[v * LOOM_MAX_RANK + (size_t)i];
        if (red)
            mask |= 1u << k;
        k++;
    }
    if (k == 0) { /* every dim was 1 */
        k = 1;
        s->d[0] = 1;
        for (size_t v = 0; v < kb->nviews; v++)
            st[v * LOOM_MAX_RANK] = 0;
    }
    for (size_t v = 0; v < kb->nviews; v++)
        for (int i = k; i < LOOM_MAX_RANK; i++)
            st[v * LOOM_MAX_RANK + (size_t)i] = 0;
    s->rank = k;
    kb->reduce_mask = mask;
}

void plan_kernel_hash(kernel *k)
{
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
#define H(x) XXH3_128bits_update(&st, &(x), sizeof(x))
    int32_t kind = k->kind, rank = k->space.rank;
    H(kind);
    H(k->nargs);
    XXH3_128bits_update(&st, k->arg_dtype, k->nargs);
    H(rank);
    XXH3_128bits_update(&st, k->space.d, (size_t)rank * sizeof k->space.d[0]);
    H(k->ncode);
    for (uint32_t i = 0; i < k->ncode; i++) { /* field by field: no padding bytes */
        const kn_instr *in = &k->code[i];
        H(in->op);
        H(in->dtype);
        H(in->src);
        H(in->arg);
        H(in->view);
        H(in->attr);
    }
    H(k->nviews);
    for (uint32_t v = 0; v < k->nviews; v++)
        XXH3_128bits_update(&st, k->strides + (size_t)v * LOOM_MAX_RANK, (size_t)rank * sizeof(int64_t));
    int32_t rop = k->reduce_op;
    H(rop);
    H(k->reduce_mask);
    const kn_gemm *g = &k->gemm;
    int32_t gd = g->dtype, gact = g->act;
    uint8_t flags[5] = { g->ta, g->tb, g->accumulate, g->bias, g->bpack };
    H(gd);
    H(g->batch);
    H(g->m);
    H(g->n);
    H(g->k);
    H(flags);
    H(g->lda);
    H(g->ldb);
    H(g->ldc);
    H(g->stride_a);
    H(g->stride_b);
    H(g->stride_c);
    H(gact);
    const kn_index *x = &k->index;
    int32_t xd = x->dtype;
    H(xd);
    H(x->outer);
    H(x->rows);
    H(x->inner);
    H(x->count);
    H(k->nsubs);
    H(k->rows);
    for (uint32_t i = 0; i < k->nsubs; i++)
        H(k->subs[i].hash);
    if (k->arg_shared)
        XXH3_128bits_update(&st, k->arg_shared, k->nargs);
    if (k->arg_scratch)
        XXH3_128bits_update(&st, k->arg_scratch, k->nargs * sizeof *k->arg_scratch);
    H(k->row_scratch);
#undef H
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    k->hash[0] = h.low64;
    k->hash[1] = h.high64;
}

void kn_gemm_b_layout(loom_dtype dt, int64_t n, int64_t k, kn_b_layout *l)
{
    int64_t es = (int64_t)loom_dtype_size(dt), vl = 64 / es;
    l->tw = KN_GEMM_NR * vl;
    l->nk = (k + KN_GEMM_KC_MAX - 1) / KN_GEMM_KC_MAX;
    l->kc = (k + l->nk - 1) / l->nk; /* blocks as even as can be */
    l->nk = (k + l->kc - 1) / l->kc;
    l->kc_last = k - (l->nk - 1) * l->kc;
    l->kc_pad = (l->kc + vl - 1) / vl * vl;
    /* Panels 4 KB apart alias in L1 and in the store-to-load checks: a
     * power-of-two depth would cost 10-20%. */
    if ((l->kc_pad * KN_GEMM_MR * es) % 4096 == 0 || (l->kc_pad * l->tw * es) % 4096 == 0)
        l->kc_pad += vl;
    l->strips = (n + l->tw - 1) / l->tw;
    l->elems = l->nk * l->strips * l->kc_pad * l->tw;
}

const char *kn_gemm_bpack_note(const kn_gemm *g)
{
    return g->bpack == KN_BPACK_PACK ? " (packs B)" : g->bpack == KN_BPACK_PACKED ? " B packed" : "";
}

double plan_kernel_cost(const kernel *k)
{
    double sum = 0;
    switch (k->kind) {
    case KN_ROWS:
        for (uint32_t i = 0; i < k->nsubs; i++)
            sum += k->subs[i].cost;
        return sum;
    case KN_GEMM:
        return 2.0 * (double)k->gemm.batch * (double)k->gemm.m * (double)k->gemm.n * (double)k->gemm.k;
    case KN_GATHER:
    case KN_SCATTER:
        return (double)k->index.outer * (double)k->index.count * (double)k->index.inner;
    default:
        return (double)loom_shape_numel(k->space) * (double)(k->ncode ? k->ncode : 1);
    }
}

/* A kernel's arrays have at least one element, so none is empty. */
static size_t one_plus(size_t n) { return n ? n : 1; }

void plan_kernel_free(lm_mem *m, kernel *k)
{
    for (uint32_t i = 0; i < k->nsubs; i++)
        plan_kernel_free(m, &k->subs[i]);
    if (k->subs)
        lm_free(m, k->subs, k->nsubs * sizeof *k->subs);
    if (k->arg_shared)
        lm_free(m, k->arg_shared, one_plus(k->nargs));
    if (k->arg_scratch)
        lm_free(m, k->arg_scratch, one_plus(k->nargs) * sizeof *k->arg_scratch);
    k->subs = NULL;
    k->nsubs = 0;
    k->arg_shared = NULL;
    k->arg_scratch = NULL;
    lm_free(m, k->arg_dtype, one_plus(k->nargs));
    lm_free(m, k->code, one_plus(k->ncode) * sizeof *k->code);
    lm_free(m, k->strides, one_plus(k->nviews) * LOOM_MAX_RANK * sizeof *k->strides);
}

/* The index of an equal kernel in the plan, or -1. */
static long find_kernel(fz *f, const kernel *k, size_t *slot)
{
    plan *p = f->p;
    size_t mask = f->ktab_cap - 1, h = (size_t)k->hash[0] & mask;
    for (; f->ktab[h]; h = (h + 1) & mask) {
        const kernel *o = &p->kernels[f->ktab[h] - 1];
        if (o->hash[0] == k->hash[0] && o->hash[1] == k->hash[1])
            return (long)f->ktab[h] - 1;
    }
    *slot = h;
    return -1;
}

static bool ktab_grow(fz *f)
{
    size_t ncap = f->ktab_cap ? f->ktab_cap * 2 : 256;
    uint32_t *t = lm_zalloc(&f->mem, ncap * sizeof *t);
    if (!t)
        return false;
    for (size_t i = 0; i < f->p->nkernels; i++) {
        size_t h = (size_t)f->p->kernels[i].hash[0] & (ncap - 1);
        while (t[h])
            h = (h + 1) & (ncap - 1);
        t[h] = (uint32_t)i + 1;
    }
    lm_free(&f->mem, f->ktab, f->ktab_cap * sizeof *f->ktab);
    f->ktab = t;
    f->ktab_cap = ncap;
    return true;
}

long fz_make_kernel(fz *f)
{
    if (ir_failed(f->g))
        return -1;
    kbuild *kb = &f->kb;
    collapse(kb);
    kernel k = {
        .kind = kb->kind,
        .nargs = (uint32_t)kb->nargs,
        .space = kb->space,
        .ncode = (uint32_t)kb->ncode,
        .nviews = (uint32_t)kb->nviews,
        .reduce_op = kb->kind == KN_REDUCE ? kb->reduce_op : 0,
        .reduce_mask = kb->kind == KN_REDUCE ? kb->reduce_mask : 0,
        .gemm = kb->gemm,
        .index = kb->index,
    };
    if (kb->kind != KN_GEMM)
        k.gemm = (kn_gemm){ 0 };
    if (kb->kind != KN_GATHER && kb->kind != KN_SCATTER)
        k.index = (kn_index){ 0 };
    k.arg_dtype = lm_alloc(&f->mem, one_plus(kb->nargs));
    k.code = lm_alloc(&f->mem, one_plus(kb->ncode) * sizeof *k.code);
    k.strides = lm_alloc(&f->mem, one_plus(kb->nviews) * LOOM_MAX_RANK * sizeof *k.strides);
    if (!k.arg_dtype || !k.code || !k.strides) {
        plan_kernel_free(&f->mem, &k);
        return -1;
    }
    if (kb->nargs)
        memcpy(k.arg_dtype, kb->arg_dtype, kb->nargs);
    if (kb->ncode)
        memcpy(k.code, kb->code, kb->ncode * sizeof *k.code);
    if (kb->nviews)
        memcpy(k.strides, kb->strides, kb->nviews * LOOM_MAX_RANK * sizeof *k.strides);
    return fz_intern_kernel(f, &k);
}

long fz_intern_kernel(fz *f, kernel *k)
{
    plan *p = f->p;
    plan_kernel_hash(k);
    k->cost = plan_kernel_cost(k);
    if ((p->nkernels + 1) * 2 > f->ktab_cap && !ktab_grow(f)) {
        plan_kernel_free(&f->mem, k);
        return -1;
    }
    size_t slot = 0;
    long ki = find_kernel(f, k, &slot);
    if (ki >= 0) {
        plan_kernel_free(&f->mem, k);
    } else {
        if (!LM_GROW(&f->mem, p->kernels, p->kernels_cap, p->nkernels + 1)) {
            plan_kernel_free(&f->mem, k);
            return -1;
        }
        ki = (long)p->nkernels;
        p->kernels[p->nkernels++] = *k;
        f->ktab[slot] = (uint32_t)ki + 1;
    }
    return ki;
}

bool fz_set_call(fz *f, uint32_t ci, long ki)
{
    plan *p = f->p;
    kbuild *kb = &f->kb;
    if (ki < 0 || !LM_GROW(&f->mem, p->args, p->args_cap, p->nargs + kb->nargs))
        return false;
    p->calls[ci] = (plan_call){ .kernel = (uint32_t)ki, .arg = (uint32_t)p->nargs };
    memcpy(p->args + p->nargs, kb->args, kb->nargs * sizeof *p->args);
    p->nargs += kb->nargs;
    return true;
}

void fz_finish_kernel(fz *f)
{
    long ki = fz_make_kernel(f);
    plan *p = f->p;
    if (ki < 0 || !LM_GROW(&f->mem, p->calls, p->calls_cap, p->ncalls + 1))
        return;
    p->ncalls++;
    fz_set_call(f, (uint32_t)(p->ncalls - 1), ki);
}

/* ------------------------------------------------------------------ */
/* Memory planning                                                    */
/* ------------------------------------------------------------------ */

typedef struct block {
    uint64_t off, size;
} block;

enum { ALIGN = 64 };

static uint64_t round_up(uint64_t x) { return (x + ALIGN - 1) & ~(uint64_t)(ALIGN - 1); }

/* Best-fit over a free list kept in offset order, coalescing on free. */
typedef struct arena_alloc {
    lm_mem *mem;
    block *free;
    size_t nfree, cap;
    uint64_t top;
} arena_alloc;

static uint64_t arena_take(arena_alloc *a, uint64_t size)
{
    size = round_up(size ? size : 1);
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < a->nfree; i++)
        if (a->free[i].size >= size && (best == SIZE_MAX || a->free[i].size < a->free[best].size))
            best = i;
    if (best == SIZE_MAX) {
        /* grow the top, using a free block that ends there */
        if (a->nfree && a->free[a->nfree - 1].off + a->free[a->nfree - 1].size == a->top) {
            uint64_t off = a->free[--a->nfree].off;
            a->top = off + size;
            return off;
        }
        uint64_t off = a->top;
        a->top += size;
        return off;
    }
    uint64_t off = a->free[best].off;
    a->free[best].off += size;
    a->free[best].size -= size;
    if (a->free[best].size == 0) {
        memmove(a->free + best, a->free + best + 1, (a->nfree - best - 1) * sizeof *a->free);
        a->nfree--;
    }
    return off;
}

static bool arena_give(arena_alloc *a, uint64_t off, uint64_t size)
{
    size = round_up(size ? size : 1);
    size_t i = 0;
    while (i < a->nfree && a->free[i].off < off)
        i++;
    bool left = i > 0 && a->free[i - 1].off + a->free[i - 1].size == off;
    bool right = i < a->nfree && off + size == a->free[i].off;
    if (left && right) {
        a->free[i - 1].size += size + a->free[i].size;
        memmove(a->free + i, a->free + i + 1, (a->nfree - i - 1) * sizeof *a->free);
        a->nfree--;
    } else if (left) {
        a->free[i - 1].size += size;
    } else if (right) {
        a->free[i].off = off;
        a->free[i].size += size;
    } else {
        if (!LM_GROW(a->mem, a->free, a->cap, a->nfree + 1))
            return false;
        memmove(a->free + i + 1, a->free + i, (a->nfree - i) * sizeof *a->free);
        a->free[i] = (block){ off, size };
        a->nfree++;
    }
    return true;
}

/* The view map kernel k stores argument a through when it stores it
 * once, at the argument's start; else NULL. */
static const int64_t *store_view(const kernel *k, const plan_arg *args, uint32_t a)
{
    const int64_t *sv = NULL;
    for (uint32_t i = 0; i < k->ncode; i++)
        if (k->code[i].op == KI_STORE && k->code[i].arg == a) {
            if (sv) /* stored twice: keep it simple */
                return NULL;
            sv = k->strides + (size_t)k->code[i].view * LOOM_MAX_RANK;
        }
    return args[a].offset == 0 ? sv : NULL;
}

/* Whether kernel k only loads argument a, only through view sv, and no
 * other argument of the call points into a's buffer. */
static bool read_only_through(const kernel *k, const plan_arg *args, uint32_t a, const int64_t *sv)
{
    for (uint32_t o = 0; o < k->nargs; o++)
        if (o != a && args[o].buffer == args[a].buffer)
            return false;
    for (uint32_t i = 0; i < k->ncode; i++) {
        const kn_instr *in = &k->code[i];
        if (in->op == KI_STORE && in->arg == a)
            return false;
        if (in->op == KI_LOAD && in->arg == a &&
            memcmp(k->strides + (size_t)in->view * LOOM_MAX_RANK, sv, (size_t)k->space.rank * sizeof *sv))
            return false;
    }
    return true;
}

/* In-place: a map kernel may write an output over an input that dies at
 * this call when the two have one size and dtype and the input is read
 * only through the very view the output is written through. The call
 * then runs a variant of its kernel that stores into the input's own
 * argument (inplace_variant): one pointer, so LLVM keeps every read of an
 * element before its write. (Two arguments pointing at the same memory
 * would break the kernels' noalias promise, and LLVM does exploit it.)
 * Returns the donor's argument index for output argument out_arg, or
 * UINT32_MAX. */
static uint32_t inplace_donor(const plan *p, size_t ci, uint32_t out_arg, const uint32_t *first,
                              const uint32_t *last, const uint8_t *donated)
{
    const plan_call *call = &p->calls[ci];
    const kernel *k = &p->kernels[call->kernel];
    if (k->kind != KN_MAP)
        return UINT32_MAX;
    const plan_arg *args = p->args + call->arg;
    const plan_buffer *bo = &p->buffers[args[out_arg].buffer];
    const int64_t *sv = store_view(k, args, out_arg);
    if (!sv)
        return UINT32_MAX;
    for (uint32_t a = 0; a < k->nargs; a++) {
        uint32_t b = args[a].buffer;
        const plan_buffer *bi = &p->buffers[b];
        if (a == out_arg || bi->kind != PB_ARENA || donated[b] || last[b] != ci || first[b] >= ci ||
            bi->bytes != bo->bytes || args[a].offset != 0 || k->arg_dtype[a] != k->arg_dtype[out_arg])
            continue;
        if (read_only_through(k, args, a, sv))
            return a;
    }
    return UINT32_MAX;
}

/* The kernel that is kernel ki with its stores to argument oa going to
 * argument da instead, and oa gone (shared with an equal kernel); -1 on
 * NOMEM. */
static long inplace_variant(plan *p, lm_mem *mem, uint32_t ki, uint32_t oa, uint32_t da)
{
    kernel v = p->kernels[ki];
    const kernel *k = &p->kernels[ki];
    v.nargs = k->nargs - 1;
    v.arg_dtype = lm_alloc(mem, one_plus(v.nargs));
    v.code = lm_alloc(mem, one_plus(v.ncode) * sizeof *v.code);
    v.strides = lm_alloc(mem, one_plus(v.nviews) * LOOM_MAX_RANK * sizeof *v.strides);
    if (!v.arg_dtype || !v.code || !v.strides) {
        plan_kernel_free(mem, &v);
        return -1;
    }
    for (uint32_t a = 0, j = 0; a < k->nargs; a++)
        if (a != oa)
            v.arg_dtype[j++] = k->arg_dtype[a];
    memcpy(v.code, k->code, (size_t)v.ncode * sizeof *v.code);
    memcpy(v.strides, k->strides, (size_t)v.nviews * LOOM_MAX_RANK * sizeof *v.strides);
    for (uint32_t i = 0; i < v.ncode; i++) {
        kn_instr *in = &v.code[i];
        if (in->op != KI_LOAD && in->op != KI_STORE && in->op != OP_RANDOM)
            continue;
        uint32_t a = in->arg == oa ? da : in->arg;
        in->arg = a > oa ? a - 1 : a;
    }
    plan_kernel_hash(&v);
    v.cost = plan_kernel_cost(&v);
    for (size_t i = 0; i < p->nkernels; i++)
        if (p->kernels[i].hash[0] == v.hash[0] && p->kernels[i].hash[1] == v.hash[1]) {
            plan_kernel_free(mem, &v);
            return (long)i;
        }
    if (!LM_GROW(mem, p->kernels, p->kernels_cap, p->nkernels + 1)) {
        plan_kernel_free(mem, &v);
        return -1;
    }
    p->kernels[p->nkernels] = v;
    return (long)p->nkernels++;
}

/* Points call ci at the in-place variant (output argument oa written
 * through donor argument da). */
static bool go_inplace(plan *p, lm_mem *mem, size_t ci, uint32_t oa, uint32_t da)
{
    plan_call *call = &p->calls[ci];
    uint32_t nargs = p->kernels[call->kernel].nargs;
    long kv = inplace_variant(p, mem, call->kernel, oa, da);
    if (kv < 0 || !LM_GROW(mem, p->args, p->args_cap, p->nargs + nargs))
        return false;
    call = &p->calls[ci];
    uint32_t first_arg = (uint32_t)p->nargs;
    for (uint32_t a = 0; a < nargs; a++)
        if (a != oa)
            p->args[p->nargs++] = p->args[call->arg + a];
    /* the donor's argument now stores what oa did */
    p->args[first_arg + da - (da > oa)].origin = p->args[call->arg + oa].origin;
    call->kernel = (uint32_t)kv;
    call->arg = first_arg;
    return true;
}

/* Each buffer's first and last call (UINT32_MAX and 0 when no call
 * touches it). */
static void buffer_spans(const plan *p, uint32_t *first, uint32_t *last)
{
    for (size_t b = 0; b < p->nbuffers; b++) {
        first[b] = UINT32_MAX;
        last[b] = 0;
    }
    for (size_t ci = 0; ci < p->ncalls; ci++) {
        const plan_call *call = &p->calls[ci];
        for (uint32_t i = 0; i < p->kernels[call->kernel].nargs; i++) {
            uint32_t b = p->args[call->arg + i].buffer;
            if (first[b] == UINT32_MAX)
                first[b] = (uint32_t)ci;
            last[b] = (uint32_t)ci;
        }
    }
}

/* Commits in place: an assignment's new value written over its
 * parameter by the call that computes it, rather than into the arena and
 * copied over the parameter after the run (an optimizer's update then
 * streams each weight and its moments once, not three times more). Done
 * when that call is a map, the only one touching the value, the
 * parameter is read by no later call (every read sees the old value) and
 * in that call only element by element, through the view the value is
 * written through (the in-place variant then keeps each element's read
 * before its write), and no later call can fail the run (an index check:
 * the runtime checks those as they run, so a run that fails has
 * committed nothing). The value's buffer becomes the parameter's memory
 * and its commit goes. */
static loom_code commit_in_place(plan *p, lm_mem *mem)
{
    size_t nb = p->nbuffers, nc = p->ncalls;
    uint32_t np = 0;
    for (size_t b = 0; b < nb; b++)
        if (p->buffers[b].kind == PB_PARAM)
            np = LM_MAX(np, p->buffers[b].ext + 1);
    for (size_t i = 0; i < p->ncommits; i++)
        np = LM_MAX(np, p->commits[i].param + 1);
    uint32_t *first = lm_alloc(mem, (nb + 1) * sizeof *first);
    uint32_t *last = lm_alloc(mem, (nb + 1) * sizeof *last);
    uint32_t *pbuf = lm_alloc(mem, ((size_t)np + 1) * sizeof *pbuf); /* a param's buffer, NONE, or TWO */
    uint32_t *ncommit = lm_zalloc(mem, ((size_t)np + 1) * sizeof *ncommit); /* commits to a param */
    enum { NONE = UINT32_MAX, TWO = UINT32_MAX - 1 };
    loom_code c = LOOM_OK;
    if (!first || !last || !pbuf || !ncommit) {
        c = mem->err->code;
        goto done;
    }
    for (uint32_t i = 0; i < np; i++)
        pbuf[i] = NONE;
    for (size_t b = 0; b < nb; b++)
        if (p->buffers[b].kind == PB_PARAM)
            pbuf[p->buffers[b].ext] = pbuf[p->buffers[b].ext] == NONE ? (uint32_t)b : TWO;
    for (size_t i = 0; i < p->ncommits; i++)
        ncommit[p->commits[i].param]++;
    buffer_spans(p, first, last);
    size_t after_index = 0; /* calls from here on cannot fail the run */
    for (size_t ci = 0; ci < nc; ci++) {
        kn_kind kind = p->kernels[p->calls[ci].kernel].kind;
        if (kind == KN_GATHER || kind == KN_SCATTER)
            after_index = ci + 1;
    }
    size_t kept = 0;
    for (size_t i = 0; i < p->ncommits; i++) {
        plan_commit cm = p->commits[i];
        const plan_buffer *u = &p->buffers[cm.buffer];
        uint32_t pb = pbuf[cm.param], ci = first[cm.buffer], oa = UINT32_MAX, da = UINT32_MAX;
        bool ok = ncommit[cm.param] == 1 && pb != TWO && u->kind == PB_ARENA && !(u->role & PR_OUTPUT) &&
                  cm.offset == 0 && cm.bytes == u->bytes && ci != UINT32_MAX && last[cm.buffer] == ci &&
                  ci >= after_index && p->kernels[p->calls[ci].kernel].kind == KN_MAP;
        const int64_t *sv = NULL;
        if (ok) {
            const plan_call *call = &p->calls[ci];
            const kernel *k = &p->kernels[call->kernel];
            for (uint32_t a = 0; a < k->nargs; a++) {
                uint32_t b = p->args[call->arg + a].buffer;
                oa = b == cm.buffer ? a : oa;
                da = b == pb ? a : da;
            }
            sv = store_view(k, p->args + call->arg, oa);
            ok = sv != NULL;
            if (ok && pb != NONE && first[pb] != UINT32_MAX) { /* the parameter is read */
                const plan_buffer *bp = &p->buffers[pb];
                ok = !(bp->role & PR_OUTPUT) && last[pb] <= ci;
                if (ok && da != UINT32_MAX)
                    ok = bp->bytes == u->bytes && p->args[call->arg + da].offset == 0 &&
                         k->arg_dtype[da] == k->arg_dtype[oa] && read_only_through(k, p->args + call->arg, da, sv);
            }
        }
        if (!ok) {
            p->commits[kept++] = cm;
            continue;
        }
        if (da != UINT32_MAX) { /* the call stores through the parameter's own argument */
            if (!go_inplace(p, mem, ci, oa, da)) {
                c = mem->err->code;
                goto done;
            }
            p->buffers[cm.buffer].role &= ~(uint32_t)PR_UPDATE; /* no call touches it now */
            p->buffers[pb].role |= PR_UPDATE;
        } else { /* the value's buffer is the parameter's memory */
            p->buffers[cm.buffer].kind = PB_PARAM;
            p->buffers[cm.buffer].ext = cm.param;
        }
        p->commits_in_place++;
    }
    p->ncommits = kept;
done:
    lm_free(mem, ncommit, ((size_t)np + 1) * sizeof *ncommit);
    lm_free(mem, pbuf, ((size_t)np + 1) * sizeof *pbuf);
    lm_free(mem, last, (nb + 1) * sizeof *last);
    lm_free(mem, first, (nb + 1) * sizeof *first);
    return c;
}

/* Liveness over the schedule (a buffer lives from the first call that
 * touches it to the last), then offsets in one arena: a buffer takes the
 * memory of an input dying at its first call where inplace_donor allows,
 * else the best-fitting hole left by buffers dead before its first call. */
static loom_code plan_memory(plan *p, lm_mem *mem, lm_err *err, uint32_t status, bool no_inplace)
{
    size_t nb = p->nbuffers, nc = p->ncalls;
    uint32_t *first = lm_alloc(mem, (nb + 1) * sizeof *first);
    uint32_t *last = lm_alloc(mem, (nb + 1) * sizeof *last);
    uint32_t *order = lm_alloc(mem, (nb + 1) * sizeof *order);
    uint32_t *bucket = lm_zalloc(mem, (nc + 2) * sizeof *bucket);
    arena_alloc a = { .mem = mem };
    loom_code c = LOOM_OK;
    if (!first || !last || !order || !bucket) {
        c = err->code;
        goto done;
    }
    uint32_t end = (uint32_t)nc; /* "after the last call" */
    buffer_spans(p, first, last);
    for (size_t i = 0; i < p->noutputs; i++)
        last[p->outputs[i].buffer] = end;
    for (size_t i = 0; i < p->ncommits; i++)
        last[p->commits[i].buffer] = end;
    if (status != UINT32_MAX) {
        first[status] = 0;
        last[status] = end;
    }
    /* buffers in order of their first call (counting sort) */
    for (size_t b = 0; b < nb; b++)
        if (p->buffers[b].kind == PB_ARENA && first[b] != UINT32_MAX)
            bucket[first[b] + 1]++;
    for (size_t i = 1; i < nc + 2; i++)
        bucket[i] += bucket[i - 1];
    size_t norder = bucket[nc + 1];
    for (size_t b = 0; b < nb; b++)
        if (p->buffers[b].kind == PB_ARENA && first[b] != UINT32_MAX)
            order[bucket[first[b]]++] = (uint32_t)b;
    /* walk the calls: free what died before, place what starts */
    uint32_t *dying = lm_zalloc(mem, (nc + 2) * sizeof *dying);
    uint32_t *dlist = lm_alloc(mem, (nb + 1) * sizeof *dlist);
    if (!dying || !dlist) {
        lm_free(mem, dying, (nc + 2) * sizeof *dying);
        lm_free(mem, dlist, (nb + 1) * sizeof *dlist);
        c = err->code;
        goto done;
    }
    for (size_t i = 0; i < norder; i++)
        if (last[order[i]] < end)
            dying[last[order[i]] + 1]++;
    for (size_t i = 1; i < nc + 2; i++)
        dying[i] += dying[i - 1];
    size_t ndying = dying[nc + 1];
    for (size_t i = 0; i < norder; i++) {
        uint32_t b = order[i];
        if (last[b] < end)
            dlist[dying[last[b]]++] = b;
    }
    /* dying[i] is now the end of the bucket of buffers dead after call i */
    uint8_t *donated = lm_zalloc(mem, nb + 1);
    if (!donated) {
        lm_free(mem, dying, (nc + 2) * sizeof *dying);
        lm_free(mem, dlist, (nb + 1) * sizeof *dlist);
        c = err->code;
        goto done;
    }
    size_t oi = 0, di = 0;
    for (uint32_t ci = 0; ci <= end && c == LOOM_OK; ci++) {
        while (oi < norder && first[order[oi]] == ci) {
            uint32_t b = order[oi++];
            plan_buffer *pb = &p->buffers[b];
            uint32_t donor = UINT32_MAX;
            if (ci < nc && !no_inplace) {
                const plan_call *call = &p->calls[ci];
                for (uint32_t ai = 0; ai < p->kernels[call->kernel].nargs && donor == UINT32_MAX; ai++)
                    if (p->args[call->arg + ai].buffer == b) {
                        uint32_t da = inplace_donor(p, ci, ai, first, last, donated);
                        if (da == UINT32_MAX)
                            continue;
                        donor = p->args[call->arg + da].buffer;
                        if (!go_inplace(p, mem, ci, ai, da)) {
                            c = err->code;
                            donor = UINT32_MAX;
                        }
                        pb = &p->buffers[b];
                    }
            }
            if (donor != UINT32_MAX) {
                donated[donor] = 1;
                pb->offset = p->buffers[donor].offset;
                p->inplace++;
            } else {
                pb->offset = arena_take(&a, pb->bytes);
            }
        }
        while (di < ndying && last[dlist[di]] == ci) {
            uint32_t b = dlist[di++];
            if (donated[b]) /* its memory lives on in another buffer */
                continue;
            plan_buffer *pb = &p->buffers[b];
            if (!arena_give(&a, pb->offset, pb->bytes))
                c = err->code;
        }
    }
    lm_free(mem, donated, nb + 1);
    p->arena_bytes = a.top;
    if (status != UINT32_MAX)
        p->status_offset = p->buffers[status].offset;
    lm_free(mem, dying, (nc + 2) * sizeof *dying);
    lm_free(mem, dlist, (nb + 1) * sizeof *dlist);
done:
    lm_free(mem, a.free, a.cap * sizeof *a.free);
    lm_free(mem, bucket, (nc + 2) * sizeof *bucket);
    lm_free(mem, order, (nb + 1) * sizeof *order);
    lm_free(mem, last, (nb + 1) * sizeof *last);
    lm_free(mem, first, (nb + 1) * sizeof *first);
    return c;
}

/* Drops kernels no call uses any more (epilogue fusion replaces the
 * kernel of a call), so nothing is compiled for nothing. */
static loom_code drop_unused_kernels(plan *p, lm_mem *mem)
{
    size_t map_bytes = (p->nkernels + 1) * sizeof(uint32_t);
    uint32_t *map = lm_alloc(mem, map_bytes);
    if (!map)
        return mem->err->code;
    for (size_t i = 0; i < p->nkernels; i++)
        map[i] = UINT32_MAX;
    for (size_t c = 0; c < p->ncalls; c++)
        map[p->calls[c].kernel] = 0;
    size_t k = 0;
    for (size_t i = 0; i < p->nkernels; i++) {
        if (map[i] == UINT32_MAX) {
            plan_kernel_free(mem, &p->kernels[i]);
            continue;
        }
        map[i] = (uint32_t)k;
        p->kernels[k++] = p->kernels[i];
    }
    p->nkernels = k;
    for (size_t c = 0; c < p->ncalls; c++)
        p->calls[c].kernel = map[p->calls[c].kernel];
    lm_free(mem, map, map_bytes);
    return LOOM_OK;
}

/* ------------------------------------------------------------------ */
/* Driver                                                             */
/* ------------------------------------------------------------------ */

void plan_key(const ir_graph *g, const ir_id *roots, uint32_t nroots, uint64_t key[2])
{
    XXH3_state_t st;
    XXH3_128bits_reset(&st);
    for (uint32_t i = 0; i < nroots; i++)
        XXH3_128bits_update(&st, &g->nodes[roots[i]].hash, 8);
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    key[0] = h.low64;
    key[1] = h.high64;
}

static void fz_free(fz *f)
{
    lm_mem *m = &f->mem;
    lm_free(m, f->state, f->n);
    lm_free(m, f->root, f->n);
    lm_free(m, f->grp, f->n * sizeof *f->grp);
    lm_free(m, f->vid, f->n * sizeof *f->vid);
    lm_free(m, f->next, f->n * sizeof *f->next);
    lm_free(m, f->instr_of, f->n * sizeof *f->instr_of);
    lm_free(m, f->mark, f->n * sizeof *f->mark);
    lm_free(m, f->gcall, f->n * sizeof *f->gcall);
    lm_free(m, f->slab, f->n * sizeof *f->slab);
    lm_free(m, f->slab_at, f->n * sizeof *f->slab_at);
    lm_free(m, f->born, f->born_cap * sizeof *f->born);
    lm_free(m, f->views, f->views_cap * sizeof *f->views);
    lm_free(m, f->groups, f->groups_cap * sizeof *f->groups);
    if (f->kcall)
        lm_free(m, f->kcall, f->n * sizeof *f->kcall);
    lm_free(m, f->ktab, f->ktab_cap * sizeof *f->ktab);
    kbuild *kb = &f->kb;
    lm_free(m, kb->code, kb->code_cap * sizeof *kb->code);
    lm_free(m, kb->strides, kb->strides_cap * sizeof *kb->strides);
    lm_free(m, kb->args, kb->args_cap * sizeof *kb->args);
    lm_free(m, kb->arg_dtype, kb->arg_dtype_cap);
}

void plan_free(plan *p)
{
    if (!p)
        return;
    lm_mem m = p->mem;
    for (size_t i = 0; i < p->nkernels; i++)
        plan_kernel_free(&m, &p->kernels[i]);
    lm_free(&m, p->kernels, p->kernels_cap * sizeof *p->kernels);
    lm_free(&m, p->buffers, p->buffers_cap * sizeof *p->buffers);
    lm_free(&m, p->calls, p->calls_cap * sizeof *p->calls);
    lm_free(&m, p->args, p->args_cap * sizeof *p->args);
    lm_free(&m, p->outputs, p->roots_cap * sizeof *p->outputs);
    lm_free(&m, p->commits, p->roots_cap * sizeof *p->commits);
    lm_free(&m, p->origins, p->origins_cap * sizeof *p->origins);
    lm_free(&m, p, sizeof *p);
}

static const char *kind_name(kn_kind k);

/* The compiled graph as Graphviz DOT: each kernel call a cluster holding
 * the nodes it computes (before row chains merge calls), views, inputs,
 * parameters and constants outside any. Time steps label the nodes. */
static loom_code write_dot(fz *f, FILE *out)
{
    const ir_graph *g = f->g;
    const plan *p = f->p;
    size_t n = f->n;
    /* nodes by call: a counting sort */
    lm_mem mem = f->mem;
    uint32_t *start = lm_zalloc(&mem, (p->ncalls + 2) * sizeof *start);
    ir_id *order = lm_alloc(&mem, n * sizeof *order);
    if (!start || !order) {
        lm_free(&mem, start, (p->ncalls + 2) * sizeof *start);
        lm_free(&mem, order, n * sizeof *order);
        return g->err->code;
    }
    uint32_t *call = f->kcall;
    for (ir_id v = 1; v < n; v++) {
        if (!call[v] && f->gcall[v] != UINT32_MAX)
            call[v] = f->gcall[v] + 1;
        start[call[v]]++;
    }
    for (size_t c = 0, sum = 0; c <= p->ncalls; c++) {
        uint32_t k = start[c];
        start[c] = (uint32_t)sum;
        sum += k;
    }
    start[p->ncalls + 1] = (uint32_t)(n - 1);
    uint32_t *fill = lm_alloc(&mem, (p->ncalls + 1) * sizeof *fill);
    if (!fill) {
        lm_free(&mem, start, (p->ncalls + 2) * sizeof *start);
        lm_free(&mem, order, n * sizeof *order);
        return g->err->code;
    }
    memcpy(fill, start, (p->ncalls + 1) * sizeof *fill);
    for (ir_id v = 1; v < n; v++)
        order[fill[call[v]]++] = v;
    fprintf(out, "digraph loom_plan {\n  label=\"%zu kernel calls (before row chains) over %zu nodes\";\n"
                 "  node [shape=box, fontsize=9, style=filled, fillcolor=white];\n", p->ncalls, n - 1);
    char sh[64];
    for (size_t c = 0; c <= p->ncalls; c++) {
        if (start[c] == start[c + 1] && c)
            continue;
        if (c) {
            const kernel *k = &p->kernels[p->calls[c - 1].kernel];
            fprintf(out, "  subgraph cluster_%zu {\n    label=\"call %zu: %s k%u\"; style=filled; fillcolor=%s;\n", c,
                    c - 1, kind_name(k->kind), p->calls[c - 1].kernel,
                    k->kind == KN_GEMM ? "lightsalmon" : k->kind == KN_REDUCE ? "lightblue" : "lightyellow");
        }
        for (uint32_t i = start[c]; i < start[c + 1]; i++) {
            ir_id v = order[i];
            int32_t step = g->nodes[v].step;
            fprintf(out, "    n%u [label=\"%%%u %s %s", v, v, op_get(ir_op(g, v))->name,
                    loom_shape_str(ir_shapev(g, v), -1, sh, sizeof sh));
            if (step >= 0)
                fprintf(out, " t%d", step);
            fprintf(out, "\"%s];\n", f->root[v] ? ", penwidth=2" : "");
        }
        if (c)
            fprintf(out, "  }\n");
    }
    for (ir_id v = 1; v < n; v++) {
        uint32_t ns = ir_op(g, v) == OP_RANDOM ? 0 : ir_nsrc(g, v);
        for (uint32_t k = 0; k < ns; k++)
            fprintf(out, "  n%u -> n%u;\n", ir_src(g, v, k), v);
    }
    fprintf(out, "}\n");
    lm_free(&mem, fill, (p->ncalls + 1) * sizeof *fill);
    lm_free(&mem, start, (p->ncalls + 2) * sizeof *start);
    lm_free(&mem, order, n * sizeof *order);
    return ferror(out) ? lm_fail(g->err, LOOM_ERR_IO, "plan: writing the DOT graph failed") : LOOM_OK;
}

/* Matmuls in g; with shared, also how many share an operand with
 * another matmul. */
static uint64_t count_matmuls(const ir_graph *g, uint64_t *shared)
{
    size_t n = ir_count(g) + 1;
    lm_mem mem = g->mem;
    uint8_t *uses = shared ? lm_zalloc(&mem, n) : NULL;
    uint64_t count = 0;
    for (ir_id v = 1; v < n; v++) {
        if (ir_op(g, v) != OP_MATMUL)
            continue;
        count++;
        for (uint32_t k = 0; uses && k < 2; k++) {
            ir_id s = ir_src(g, v, k);
            uses[s] += uses[s] < 2;
        }
    }
    if (uses) {
        *shared = 0;
        for (ir_id v = 1; v < n; v++)
            if (ir_op(g, v) == OP_MATMUL && (uses[ir_src(g, v, 0)] > 1 || uses[ir_src(g, v, 1)] > 1))
                (*shared)++;
        lm_free(&mem, uses, n);
    }
    return count;
}

plan *plan_compile(ir_graph *src, const ir_id *roots_in, uint32_t nroots, const compile_opts *o)
{
    lm_mem mem = src->mem;
    lm_err *err = src->err;
    ir_id *roots = lm_alloc(&mem, (nroots + 1) * sizeof *roots);
    ir_graph *g1 = roots ? ir_graph_new(mem, err, src->ops) : NULL;
    ir_graph *g2 = g1 ? ir_graph_new(mem, err, src->ops) : NULL;
    plan *p = g2 ? lm_zalloc(&mem, sizeof *p) : NULL;
    fz f = { .mem = mem, .status = UINT32_MAX };
    if (!p)
        goto fail;
    p->mem = mem;
    memcpy(roots, roots_in, nroots * sizeof *roots);
    plan_key(src, roots, nroots, p->key);
    bool verify = o && o->verify;
    if (pass_dce(src, g1, roots, nroots) != LOOM_OK || (verify && ir_verify(g1) != LOOM_OK))
        goto fail;
    if (pass_simplify(g1, g2, roots, nroots) != LOOM_OK || (verify && ir_verify(g2) != LOOM_OK))
        goto fail;
    /* time-batching, lookup folding (fold.c: batching makes the products
     * over many rows worth folding), slice sinking, then simplification
     * again (batching makes slices and reshapes to fold, and the folds
     * leave dead nodes): each pass from one graph into a fresh one */
    enum { BATCH, FOLD, SINK, SIMPLIFY };
    p->report.batching_off = o && o->no_batch;
    p->report.fold_off = o && o->no_fold;
    p->report.matmuls_in = count_matmuls(g2, NULL);
    for (int i = BATCH; i <= SIMPLIFY; i++) {
        if ((i == BATCH && p->report.batching_off) || (i == FOLD && p->report.fold_off))
            continue;
        ir_graph_free(g1);
        g1 = g2;
        g2 = ir_graph_new(mem, err, src->ops);
        if (!g2)
            goto fail;
        loom_code c = i == BATCH  ? pass_batch(g1, g2, roots, nroots)
                      : i == FOLD ? pass_fold_lookups(g1, g2, roots, nroots, &p->report.folds)
                      : i == SINK ? pass_sink_slices(g1, g2, roots, nroots)
                                  : pass_simplify(g1, g2, roots, nroots);
        if (c != LOOM_OK || (verify && ir_verify(g2) != LOOM_OK))
            goto fail;
    }
    p->report.matmuls_out = count_matmuls(g2, &p->report.matmuls_shared);
    p->report.remat_off = o && o->no_remat;
    if (!p->report.remat_off) {
        ir_graph_free(g1);
        g1 = g2;
        g2 = ir_graph_new(mem, err, src->ops);
        if (!g2 || pass_remat(g1, g2, roots, nroots, &p->report.remat_trees) != LOOM_OK ||
            (verify && ir_verify(g2) != LOOM_OK))
            goto fail;
    }
    p->report.nodes = ir_count(g2);
    ir_graph_free(g1);
    g1 = NULL;

    f.g = g2;
    f.p = p;
    f.o = o ? *o : (compile_opts){ 0 };
    if (f.o.max_fuse <= 0)
        f.o.max_fuse = DEFAULT_MAX_FUSE;
    f.n = ir_count(g2) + 1;
    f.state = lm_zalloc(&mem, f.n);
    f.root = lm_zalloc(&mem, f.n);
    f.grp = lm_zalloc(&mem, f.n * sizeof *f.grp);
    f.vid = lm_zalloc(&mem, f.n * sizeof *f.vid);
    f.next = lm_zalloc(&mem, f.n * sizeof *f.next);
    f.instr_of = lm_zalloc(&mem, f.n * sizeof *f.instr_of);
    f.mark = lm_zalloc(&mem, f.n * sizeof *f.mark);
    f.gcall = lm_alloc(&mem, f.n * sizeof *f.gcall);
    if (f.gcall)
        memset(f.gcall, 0xff, f.n * sizeof *f.gcall);
    f.slab = lm_zalloc(&mem, f.n * sizeof *f.slab);
    f.slab_at = lm_zalloc(&mem, f.n * sizeof *f.slab_at);
    if (!f.state || !f.root || !f.grp || !f.vid || !f.next || !f.instr_of || !f.mark || !f.gcall || !f.slab ||
        !f.slab_at ||
        !LM_GROW(&mem, f.groups, f.groups_cap, 1))
        goto fail;
    f.ngroups = 1; /* group 0 means none */
    f.groups[0] = (group){ 0 };
    if (f.o.dot && !(f.kcall = lm_zalloc(&mem, f.n * sizeof *f.kcall)))
        goto fail;
    if (fz_run(&f, roots, nroots) != LOOM_OK || (f.o.dot && write_dot(&f, f.o.dot) != LOOM_OK) ||
        (!f.o.no_rows && f.o.threads != 1 && fz_rows(&f) != LOOM_OK) ||
        (!f.o.no_inplace && !f.o.no_prepack && fz_prepack(&f) != LOOM_OK) ||
        drop_unused_kernels(p, &mem) != LOOM_OK)
        goto fail;
    /* in-place placement may switch calls to kernel variants: drop the
     * kernels that leaves unused */
    if ((f.o.commit_in_place && commit_in_place(p, &mem) != LOOM_OK) ||
        plan_memory(p, &mem, err, f.status, f.o.no_inplace) != LOOM_OK || drop_unused_kernels(p, &mem) != LOOM_OK)
        goto fail;
    fz_free(&f);
    ir_graph_free(g2);
    lm_free(&mem, roots, (nroots + 1) * sizeof *roots);
    return p;
fail:
    if (f.g)
        fz_free(&f);
    plan_free(p);
    ir_graph_free(g2);
    ir_graph_free(g1);
    lm_free(&mem, roots, (nroots + 1) * sizeof *roots);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Printing                                                           */
/* ------------------------------------------------------------------ */

/* Appends printf output to buf at *at (snprintf semantics: *at counts
 * what did not fit too). */
static void cat(char *buf, size_t size, size_t *at, const char *fmt, ...) LM_PRINTF(4, 5);
static void cat(char *buf, size_t size, size_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(*at < size ? buf + *at : NULL, *at < size ? size - *at : 0, fmt, ap);
    va_end(ap);
    if (k > 0)
        *at += (size_t)k;
}

#define STRING_OF(x) #x
#define STRING(x) STRING_OF(x)

double plan_gemm_flops(const plan *p)
{
    double flops = 0;
    for (size_t i = 0; i < p->ncalls; i++) {
        const kernel *k = &p->kernels[p->calls[i].kernel];
        if (k->kind == KN_GEMM && k->gemm.bpack != KN_BPACK_PACK)
            flops += plan_kernel_cost(k); /* a GEMM's: its flops */
    }
    return flops;
}

size_t plan_report_text(const plan *p, char *buf, size_t size)
{
    static const char *const why[WHY_COUNT] = {
        [WHY_MATMUL] = "read by a matmul",
        [WHY_REDUCE] = "read by a reduction and by other kernels",
        [WHY_VIEW] = "a view of it read by another kernel",
        [WHY_INDEX] = "read by gather or scatter-add",
        [WHY_PAD] = "padded",
        [WHY_CONCAT] = "stored into a concatenation (read as a block)",
        [WHY_OUTPUT] = "an output or a parameter update",
        [WHY_MAX_FUSE] = "the kernel reached max_fuse members",
        [WHY_STEPS] = "the kernel reached " STRING(MAX_GROUP_STEPS) " time steps (a stream each)",
        [WHY_EPILOGUE] = "a GEMM result read by a map (no epilogue fold)",
        [WHY_COPY] = "copies: strided view made contiguous",
        [WHY_FILL] = "fills: a constant written to memory",
        [WHY_OTHER] = "other",
    };
    const plan_report *r = &p->report;
    size_t at = 0, per[KN_KIND_COUNT] = { 0 };
    if (size)
        buf[0] = 0;
    for (size_t i = 0; i < p->ncalls; i++)
        per[p->kernels[p->calls[i].kernel].kind]++;
    cat(buf, size, &at, "fusion report: %llu nodes -> %zu kernels, %zu calls (gemm %zu, map %zu, reduce %zu, "
        "row chains %zu, gather %zu, scatter %zu); arena %.1f MiB\n", (unsigned long long)r->nodes, p->nkernels,
        p->ncalls, per[KN_GEMM], per[KN_MAP], per[KN_REDUCE], per[KN_ROWS], per[KN_GATHER], per[KN_SCATTER],
        (double)p->arena_bytes / (1 << 20));
    if (r->row_chains)
        cat(buf, size, &at, "row chains: %llu map and reduce calls run row by row in %llu calls\n",
            (unsigned long long)r->row_members, (unsigned long long)r->row_chains);
    if (r->remat_off)
        cat(buf, size, &at, "recomputation: off (LOOM_REMAT=0)\n");
    else if (r->remat_trees)
        cat(buf, size, &at, "recomputation: %llu backward reads of cheap forward values recompute them instead\n",
            (unsigned long long)r->remat_trees);
    if (r->fold_off)
        cat(buf, size, &at, "lookup folding: off (LOOM_FOLD=0)\n");
    else if (r->folds)
        cat(buf, size, &at, "lookup folding: %llu products of looked-up rows computed on the table instead\n",
            (unsigned long long)r->folds);
    if (r->prepacked)
        cat(buf, size, &at, "prepacked: %llu GEMM operands packed once each for %llu calls\n",
            (unsigned long long)r->prepacked, (unsigned long long)r->prepacked_calls);
    if (r->batching_off)
        cat(buf, size, &at, "time batching: off (LOOM_BATCH=0); %llu matmuls\n", (unsigned long long)r->matmuls_out);
    else
        cat(buf, size, &at, "time batching: %llu matmuls -> %llu; %llu left unbatched share an operand with another "
            "matmul (each depends on another's result: recurrent)\n", (unsigned long long)r->matmuls_in,
            (unsigned long long)r->matmuls_out, (unsigned long long)r->matmuls_shared);
    cat(buf, size, &at, "not fused (calls, values stored, first case):\n");
    bool any = false;
    for (int w = 0; w < WHY_COUNT; w++) {
        const plan_why_count *c = &r->why[w];
        if (!c->calls)
            continue;
        any = true;
        cat(buf, size, &at, "  %7llu %7llu  %-46s e.g. %s\n", (unsigned long long)c->calls,
            (unsigned long long)c->values, why[w], c->example[0] ? c->example : "-");
    }
    if (!any)
        cat(buf, size, &at, "  nothing\n");
    return at;
}

static const char *kind_name(kn_kind k)
{
    static const char *const names[] = { "map", "reduce", "gemm", "gather", "scatter", "rows" };
    return (unsigned)k < KN_KIND_COUNT ? names[k] : "?";
}

static void print_kernel(const kernel *k, FILE *out)
{
    char sh[160];
    if (k->kind == KN_MAP || k->kind == KN_REDUCE) {
        fprintf(out, " space=%s ops=", loom_shape_str(k->space, -1, sh, sizeof sh));
        for (uint32_t j = 0; j < k->ncode; j++) {
            int op = k->code[j].op;
            fprintf(out, "%s%s", j ? "," : "", op == KI_LOAD ? "load" : op == KI_STORE ? "store" : op_get(op)->name);
        }
    } else if (k->kind == KN_GEMM) {
        const kn_gemm *g = &k->gemm;
        fprintf(out, " %lldx[%lld,%lld,%lld]%s%s%s", (long long)g->batch, (long long)g->m, (long long)g->n,
                (long long)g->k, g->ta ? " aT" : "", g->tb ? " bT" : "", kn_gemm_bpack_note(g));
    } else if (k->kind == KN_ROWS) {
        uint32_t local = 0;
        for (uint32_t a = 0; a < k->nargs; a++)
            local += k->arg_scratch && k->arg_scratch[a] >= 0;
        fprintf(out, " %lld rows, %u kernels each", (long long)k->rows, k->nsubs);
        if (local)
            fprintf(out, ", %u arguments in %lld bytes of row scratch", local, (long long)k->row_scratch);
        fprintf(out, ":");
        for (uint32_t i = 0; i < k->nsubs; i++) {
            fprintf(out, "\n      %s", kind_name(k->subs[i].kind));
            print_kernel(&k->subs[i], out);
        }
    }
}

void plan_print(const plan *p, FILE *out)
{
    fprintf(out, "plan: %zu kernels, %zu calls, %zu buffers, arena %llu bytes\n", p->nkernels, p->ncalls,
            p->nbuffers, (unsigned long long)p->arena_bytes);
    for (size_t i = 0; i < p->nkernels; i++) {
        const kernel *k = &p->kernels[i];
        fprintf(out, "  k%zu %s %016llx%016llx args=%u", i, kind_name(k->kind), (unsigned long long)k->hash[1],
                (unsigned long long)k->hash[0], k->nargs);
        print_kernel(k, out);
        fprintf(out, "\n");
    }
    for (size_t i = 0; i < p->nbuffers; i++) {
        const plan_buffer *b = &p->buffers[i];
        static const char *const kinds[] = { "arena", "input", "param" };
        fprintf(out, "  b%zu %s", i, kinds[b->kind]);
        if (b->kind != PB_ARENA)
            fprintf(out, " #%u", b->ext);
        else
            fprintf(out, " @%llu", (unsigned long long)b->offset);
        fprintf(out, " %llu bytes%s%s%s\n", (unsigned long long)b->bytes, b->role & PR_OUTPUT ? " output" : "",
                b->role & PR_UPDATE ? " update" : "", b->role & PR_BACKWARD ? " backward" : "");
    }
    for (size_t i = 0; i < p->ncalls; i++) {
        const plan_call *c = &p->calls[i];
        fprintf(out, "  call k%u(", c->kernel);
        for (uint32_t j = 0; j < p->kernels[c->kernel].nargs; j++) {
            const plan_arg *a = &p->args[c->arg + j];
            const plan_buffer *b = &p->buffers[a->buffer];
            fprintf(out, "%sb%u%s+%llu", j ? ", " : "", a->buffer,
                    b->kind == PB_INPUT ? "(in)" : b->kind == PB_PARAM ? "(param)" : "",
                    (unsigned long long)a->offset);
        }
        fprintf(out, ")\n");
    }
}
