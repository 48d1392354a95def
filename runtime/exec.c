/*
 * exec.c — the plan executor.
 */
#define _DEFAULT_SOURCE /* madvise's MADV_POPULATE_WRITE, beyond POSIX */
#include "exec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Below this much work (elements times instructions, or flops) a call
 * is not worth waking other threads for. */
static const double PARALLEL_COST = 1.5e5;

struct rt_exec {
    lm_mem mem;
    double *prof_ms;    /* [p->nkernels] time per kernel when LOOM_PROFILE is set */
    uint64_t *prof_calls;
    uint64_t prof_runs;
    lm_err *err;
    const plan *p;
    rt_kernel *kernels; /* [p->nkernels] */
    char *arena;
    char *scratch;      /* threads * scratch_each */
    size_t scratch_each;
    int threads;
    char **bufptr;      /* [p->nbuffers] this run's base pointers */
    char **argptr;      /* [p->nargs] */
    uint32_t index_origin; /* the last run's failed gather or scatter: its output's origin (0: none) */
};

/* The arena, zeroed: 2 MiB-aligned and in huge pages where the system
 * allows (lm_alloc_aligned), which spares the big GEMMs' operands TLB
 * misses, and its pages faulted in by one call (MADV_POPULATE_WRITE, Linux 5.14)
 * rather than one fault at a time: on this machine, 96 MiB zeroed in
 * 9 ms against 146 ms with huge pages alone, 280 ms with neither, in a
 * small program; the char-LM's 92 MiB arena here 28-167 ms (as huge
 * pages are to be had) against 256-277 ms. */
static char *arena_new(rt_exec *x, uint64_t bytes)
{
    size_t size = bytes ? (size_t)bytes : 64;
    char *a = lm_alloc_aligned(&x->mem, size);
    if (!a)
        return NULL;
#ifdef MADV_POPULATE_WRITE
    if (size >= LM_HUGE_PAGE) /* whole pages inside the block; failure is harmless (memset faults them) */
        madvise(a, size & ~(size_t)4095, MADV_POPULATE_WRITE);
#endif
    memset(a, 0, size);
    return a;
}


rt_exec *rt_exec_new(lm_mem mem, lm_err *err, const plan *p, const rt_kernel *kernels, int threads)
{
    mem.err = err;
    rt_exec *x = lm_zalloc(&mem, sizeof *x);
    if (!x)
        return NULL;
    x->mem = mem;
    x->err = err;
    x->p = p;
    x->threads = threads < 1 ? 1 : threads;
    x->kernels = lm_alloc(&mem, (p->nkernels + 1) * sizeof *x->kernels);
    x->bufptr = lm_zalloc(&mem, (p->nbuffers + 1) * sizeof *x->bufptr);
    x->argptr = lm_zalloc(&mem, (p->nargs + 1) * sizeof *x->argptr);
    x->arena = arena_new(x, p->arena_bytes);
    if (!x->kernels || !x->bufptr || !x->argptr || !x->arena) {
        rt_exec_free(x);
        return NULL;
    }
    memcpy(x->kernels, kernels, p->nkernels * sizeof *x->kernels);
    for (size_t i = 0; i < p->nkernels; i++)
        if (kernels[i].scratch > x->scratch_each)
            x->scratch_each = kernels[i].scratch;
    x->scratch_each = (x->scratch_each + 63) & ~(size_t)63;
    if (x->scratch_each && !(x->scratch = lm_alloc_aligned(&mem, x->scratch_each * (size_t)x->threads))) {
        rt_exec_free(x);
        return NULL;
    }
    for (size_t b = 0; b < p->nbuffers; b++)
        if (p->buffers[b].kind == PB_ARENA)
            x->bufptr[b] = x->arena + p->buffers[b].offset;
    const char *prof = getenv("LOOM_PROFILE");
    if (prof && *prof && strcmp(prof, "0") != 0) {
        x->prof_ms = lm_zalloc(&mem, (p->nkernels + 1) * sizeof *x->prof_ms);
        x->prof_calls = lm_zalloc(&mem, (p->nkernels + 1) * sizeof *x->prof_calls);
    }
    return x;
}

/* LOOM_PROFILE: where a plan's time went, per kernel kind and the top
 * kernels, averaged over its runs. */
static void profile_report(rt_exec *x)
{
    const plan *p = x->p;
    if (!x->prof_ms || !x->prof_runs)
        return;
    static const char *const kinds[] = { "map", "reduce", "gemm", "gather", "scatter", "rows" };
    double by_kind[KN_KIND_COUNT] = { 0 }, total = 0;
    for (size_t i = 0; i < p->nkernels; i++) {
        by_kind[p->kernels[i].kind] += x->prof_ms[i];
        total += x->prof_ms[i];
    }
    double runs = (double)x->prof_runs;
    fprintf(stderr, "loom profile: %zu calls, %.2f ms a run over %llu runs:", p->ncalls, total / runs,
            (unsigned long long)x->prof_runs);
    for (int k = 0; k < KN_KIND_COUNT; k++)
        if (by_kind[k] > 0)
            fprintf(stderr, " %s %.2f", kinds[k], by_kind[k] / runs);
    fprintf(stderr, "\n");
    for (int top = 0; top < 12; top++) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < p->nkernels; i++)
            if (x->prof_ms[i] > 0 && (best == SIZE_MAX || x->prof_ms[i] > x->prof_ms[best]))
                best = i;
        if (best == SIZE_MAX)
            break;
        const kernel *k = &p->kernels[best];
        char desc[96] = "";
        if (k->kind == KN_GEMM)
            snprintf(desc, sizeof desc, "%lldx[%lld,%lld,%lld]%s%s%s%s", (long long)k->gemm.batch,
                     (long long)k->gemm.m, (long long)k->gemm.n, (long long)k->gemm.k, k->gemm.ta ? " aT" : "",
                     k->gemm.tb ? " bT" : "", k->gemm.accumulate ? " acc" : "", kn_gemm_bpack_note(&k->gemm));
        else if (k->kind == KN_ROWS)
            snprintf(desc, sizeof desc, "%u kernels row by row over %lld rows", k->nsubs, (long long)k->rows);
        else
            snprintf(desc, sizeof desc, "%u ops over %lld elements", k->ncode, (long long)loom_shape_numel(k->space));
        fprintf(stderr, "  k%-4zu %-7s %7.2f ms %5llu calls  %s\n", best, kinds[k->kind], x->prof_ms[best] / runs,
                (unsigned long long)(x->prof_calls[best] / x->prof_runs), desc);
        x->prof_ms[best] = -x->prof_ms[best]; /* taken */
    }
    for (size_t i = 0; i < p->nkernels; i++)
        if (x->prof_ms[i] < 0)
            x->prof_ms[i] = -x->prof_ms[i];
}

void rt_exec_free(rt_exec *x)
{
    if (!x)
        return;
    lm_mem m = x->mem;
    const plan *p = x->p;
    profile_report(x);
    lm_free(&m, x->prof_ms, (p->nkernels + 1) * sizeof *x->prof_ms);
    lm_free(&m, x->prof_calls, (p->nkernels + 1) * sizeof *x->prof_calls);
    lm_free(&m, x->kernels, (p->nkernels + 1) * sizeof *x->kernels);
    lm_free(&m, x->bufptr, (p->nbuffers + 1) * sizeof *x->bufptr);
    lm_free(&m, x->argptr, (p->nargs + 1) * sizeof *x->argptr);
    lm_free_aligned(&m, x->arena);
    lm_free_aligned(&m, x->scratch);
    lm_free(&m, x, sizeof *x);
}

typedef struct task {
    rt_kernel_fn fn;
    char *const *bufs;
    char *scratch;
    size_t scratch_each;
} task;

static void run_task(void *ud, int64_t lo, int64_t hi, int thread)
{
    const task *t = ud;
    t->fn(t->bufs, lo, hi, t->scratch ? t->scratch + (size_t)thread * t->scratch_each : NULL);
}

/* ------------------------------------------------------------------ */
/* The anomaly mode                                                   */
/* ------------------------------------------------------------------ */

/* The first non-finite element of the view (base, strides st over
 * space; dimensions of stride 0 are the ones a reduction sums over, seen
 * once): its row-major index over the other dimensions, which is its
 * index in the value stored. */
bool rt_first_bad(const void *data, loom_dtype dt, const loom_shape *space, const int64_t *st, int64_t *index,
                  double *value)
{
    const char *base = data;
    if (dt != LOOM_F32 && dt != LOOM_F64)
        return false;
    int dims[LOOM_MAX_RANK], nd = 0;
    int64_t n = 1, c[LOOM_MAX_RANK] = { 0 }, off = 0;
    for (int i = 0; i < space->rank; i++)
        if (st[i] != 0 && space->d[i] > 1) {
            dims[nd++] = i;
            n *= space->d[i];
        }
    for (int64_t flat = 0; flat < n; flat++) {
        double v = dt == LOOM_F32 ? (double)((const float *)base)[off] : ((const double *)base)[off];
        if (!isfinite(v)) {
            *index = flat;
            *value = v;
            return true;
        }
        for (int j = nd - 1; j >= 0; j--) {
            int a = dims[j];
            off += st[a];
            if (++c[j] < space->d[a])
                break;
            off -= st[a] * space->d[a];
            c[j] = 0;
        }
    }
    return false;
}

/* The stores of a map or reduce program (a row chain's sub-kernels too:
 * their arguments are the chain's). */
static bool program_bad(const kernel *k, char *const *args, const plan_arg *pa, rt_anomaly *an)
{
    for (uint32_t i = 0; i < k->ncode; i++) {
        const kn_instr *in = &k->code[i];
        if (in->op == KI_STORE &&
            rt_first_bad(args[in->arg], (loom_dtype)in->dtype, &k->space, k->strides + (size_t)in->view * LOOM_MAX_RANK,
                      &an->index, &an->value)) {
            an->origin = pa[in->arg].origin;
            an->prog = k;
            an->store = i;
            an->args = args;
            return true;
        }
    }
    return false;
}

/* Whether call i stored a NaN or an infinity; the first one in *an. */
static bool call_bad(const plan *p, size_t i, char *const *args, rt_anomaly *an)
{
    const plan_call *call = &p->calls[i];
    const kernel *k = &p->kernels[call->kernel];
    const plan_arg *pa = p->args + call->arg;
    an->call = i;
    an->prog = NULL;
    switch (k->kind) {
    case KN_MAP:
    case KN_REDUCE:
        return program_bad(k, args, pa, an);
    case KN_ROWS:
        for (uint32_t s = 0; s < k->nsubs; s++)
            if (program_bad(&k->subs[s], args, pa, an))
                return true;
        return false;
    case KN_GEMM: {
        const kn_gemm *g = &k->gemm;
        loom_shape c = { .rank = 3, .d = { g->batch, g->m, g->n } };
        int64_t st[3] = { g->stride_c, g->ldc, 1 };
        an->origin = pa[2].origin;
        return rt_first_bad(args[2], g->dtype, &c, st, &an->index, &an->value);
    }
    case KN_GATHER:
    case KN_SCATTER: {
        const kn_index *x = &k->index;
        loom_shape o = { .rank = 1, .d = { x->outer * (k->kind == KN_GATHER ? x->count : x->rows) * x->inner } };
        int64_t st[1] = { 1 };
        an->origin = pa[2].origin;
        return rt_first_bad(args[2], x->dtype, &o, st, &an->index, &an->value);
    }
    default:
        return false;
    }
}

loom_code rt_exec_run(rt_exec *x, rt_pool *pool, const rt_bind *b)
{
    const plan *p = x->p;
    for (size_t i = 0; i < p->nbuffers; i++) {
        const plan_buffer *pb = &p->buffers[i];
        if (pb->kind == PB_ARENA)
            continue;
        void *const *tab = pb->kind == PB_INPUT ? b->inputs : b->params;
        uint32_t n = pb->kind == PB_INPUT ? b->ninputs : b->nparams;
        if (pb->ext >= n || !tab[pb->ext])
            return lm_fail(x->err, LOOM_ERR_STATE, "run: %s %u has no memory (not fed?)",
                           pb->kind == PB_INPUT ? "input" : "parameter", pb->ext);
        x->bufptr[i] = tab[pb->ext];
    }
    for (size_t i = 0; i < p->nargs; i++)
        x->argptr[i] = x->bufptr[p->args[i].buffer] + p->args[i].offset;
    int32_t *status = NULL;
    bool has_status = false;
    for (size_t i = 0; i < p->nkernels && !has_status; i++)
        has_status = p->kernels[i].kind == KN_GATHER || p->kernels[i].kind == KN_SCATTER;
    if (has_status) {
        status = (int32_t *)(x->arena + p->status_offset);
        memset(status, 0, 16);
    }
    int threads = pool ? rt_pool_size(pool) : 1;
    if (threads > x->threads)
        threads = x->threads;
    for (size_t i = 0; i < p->ncalls; i++) {
        const plan_call *call = &p->calls[i];
        const rt_kernel *k = &x->kernels[call->kernel];
        task t = { .fn = k->fn, .bufs = x->argptr + call->arg, .scratch = x->scratch,
                   .scratch_each = x->scratch_each };
        int use = p->kernels[call->kernel].cost >= PARALLEL_COST ? threads : 1;
        double t0 = x->prof_ms ? now_ms() : 0;
        rt_pool_run(pool, k->work, use, run_task, &t);
        if (x->prof_ms) {
            x->prof_ms[call->kernel] += now_ms() - t0;
            x->prof_calls[call->kernel]++;
        }
        /* nothing is committed: the parameters keep their values (a
         * plan writes a parameter in place only after its last index
         * check, and a plan for the anomaly mode never does) */
        if (b->anomaly && call_bad(p, i, t.bufs, b->anomaly))
            return lm_fail(x->err, LOOM_ERR_NUMERIC, "anomaly: call %zu stored %g", i, b->anomaly->value);
        kn_kind kind = p->kernels[call->kernel].kind;
        if (status && status[0] && (kind == KN_GATHER || kind == KN_SCATTER)) {
            x->index_origin = p->args[call->arg + 2].origin;
            return lm_fail(x->err, LOOM_ERR_INDEX, "%s: index %d out of range [0, %d) at position %d",
                           status[3] == OP_SCATTER_ADD ? "scatter_add" : "gather", status[1], status[2],
                           status[0] - 1);
        }
    }
    if (x->prof_ms)
        x->prof_runs++;
    for (size_t i = 0; i < p->ncommits; i++) {
        const plan_commit *c = &p->commits[i];
        memcpy(b->params[c->param], x->bufptr[c->buffer] + c->offset, c->bytes);
    }
    return LOOM_OK;
}

void *rt_exec_output(rt_exec *x, size_t i)
{
    const plan_output *o = &x->p->outputs[i];
    return x->bufptr[o->buffer] + o->offset;
}

uint32_t rt_exec_index_origin(const rt_exec *x) { return x->index_origin; }

uint64_t rt_exec_memory(const rt_exec *x)
{
    return x->p->arena_bytes + (uint64_t)x->scratch_each * (uint64_t)x->threads;
}
