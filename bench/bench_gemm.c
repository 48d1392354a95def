/*
 * bench_gemm.c — `loom-bench gemm`: the JIT GEMM (jit/gemm.c) next to the
 * peer's cblas_sgemm on the f32 products an LSTM layer of hidden size H
 * and batch 32 runs (T·B = 2048 when the input projection is batched
 * over time), at each requested thread count:
 *
 *   fwd M=32     gates = h · W^T         M=32,   N=4H, K=H     (tb)
 *   fwd M=2048   gates = X · W^T         M=2048, N=4H, K=H     (tb)
 *   bwd dX       dh = dG · W             M=32,   N=H,  K=4H
 *   bwd dXin     dX = dG · W             M=2048, N=H,  K=4H    (the input's, batched over time)
 *   bwd dW       dW = dG^T · X           M=4H,   N=H,  K=2048  (ta)
 *
 * Also the one-time cost of compiling each kernel. Both sides compute the
 * same product into buffers of their own, checked against each other.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemm.h"

#ifdef LOOM_BENCH_OPENBLAS
#include <cblas.h>
#endif

enum { MAX_CASES = 32, MAX_THREADS = 3 };

typedef struct gcase {
    char name[48];
    jit_gemm_spec s;
    jit_kernel_fn fn;
    double compile_ms;
    float *a, *b, *c, *c_peer; /* op(A) M x K, op(B) K x N, C M x N */
    char *scratch[MAX_THREADS];
} gcase;

typedef struct result {
    const gcase *c;
    int threads;
    double loom_ms, peer_ms; /* peer_ms < 0: no peer */
    double diff;             /* max |loom - peer| / max |peer| */
} result;

/* ------------------------------------------------------------------ */
/* Running one side                                                   */
/* ------------------------------------------------------------------ */

typedef struct runner {
    gcase *c;
    rt_pool *pool;
    int threads;
} runner;

static void loom_share(void *ud, int64_t lo, int64_t hi, int thread)
{
    gcase *c = ud;
    char *bufs[3] = { (char *)c->a, (char *)c->b, (char *)c->c };
    c->fn(bufs, lo, hi, c->scratch[thread]);
}

static void loom_call(void *ud)
{
    runner *r = ud;
    rt_pool_run(r->pool, jit_gemm_work(&r->c->s), r->threads, loom_share, r->c);
}

#ifdef LOOM_BENCH_OPENBLAS
static void peer_call(void *ud)
{
    const jit_gemm_spec *s = &((runner *)ud)->c->s;
    gcase *c = ((runner *)ud)->c;
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, (int)s->m,
                (int)s->n, (int)s->k, 1.0f, c->a, s->ta ? (int)s->m : (int)s->k, c->b,
                s->tb ? (int)s->k : (int)s->n, 0.0f, c->c_peer, (int)s->n);
}
#endif

/* ------------------------------------------------------------------ */
/* Setting up                                                         */
/* ------------------------------------------------------------------ */

static float *random_floats(lm_mem *mem, int64_t n, lm_rng *r)
{
    float *x = lm_alloc_aligned(mem, (size_t)n * sizeof *x);
    if (x)
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)(lm_rng_uniform(r) * 2 - 1);
    return x;
}

static void add_case(gcase *cases, int *n, const char *name, int64_t m, int64_t nn, int64_t k, bool ta, bool tb)
{
    gcase *c = &cases[(*n)++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->s = (jit_gemm_spec){ .dtype = LOOM_F32, .batch = 1, .m = m, .n = nn, .k = k, .ta = ta, .tb = tb };
}

/* Compiles the kernel (timed) and fills the operands. */
static int prepare(jit_engine *e, gcase *c, int index, lm_mem *mem)
{
    char sym[32];
    snprintf(sym, sizeof sym, "gemm_bench_%d", index);
    double t0 = bench_now();
    LLVMModuleRef m = jit_module_new(e, sym);
    if (jit_gemm_emit(e, m, sym, &c->s) != LOOM_OK) {
        LLVMDisposeModule(m);
        return -1;
    }
    if (jit_module_add(e, m, JIT_PIPE_DEFAULT) != LOOM_OK)
        return -1;
    c->fn = (jit_kernel_fn)jit_lookup(e, sym);
    c->compile_ms = (bench_now() - t0) * 1e3;
    if (!c->fn)
        return -1;

    lm_rng r;
    lm_rng_seed(&r, (uint64_t)index + 1);
    const jit_gemm_spec *s = &c->s;
    c->a = random_floats(mem, s->m * s->k, &r);
    c->b = random_floats(mem, s->k * s->n, &r);
    c->c = random_floats(mem, s->m * s->n, &r);
    c->c_peer = random_floats(mem, s->m * s->n, &r);
    size_t scratch = jit_gemm_scratch(s);
    for (int t = 0; t < MAX_THREADS; t++)
        c->scratch[t] = scratch ? lm_alloc_aligned(mem, scratch) : NULL;
    return c->a && c->b && c->c && c->c_peer && (!scratch || c->scratch[MAX_THREADS - 1]) ? 0 : -1;
}

/* Frees what prepare allocated (also after it failed half-way). */
static void release(gcase *c, lm_mem *mem)
{
    lm_free_aligned(mem, c->a);
    lm_free_aligned(mem, c->b);
    lm_free_aligned(mem, c->c);
    lm_free_aligned(mem, c->c_peer);
    for (int t = 0; t < MAX_THREADS; t++)
        if (c->scratch[t])
            lm_free_aligned(mem, c->scratch[t]);
}

static double max_rel_diff(const gcase *c)
{
    double d = 0, mag = 0;
    for (int64_t i = 0; i < c->s.m * c->s.n; i++) {
        d = fmax(d, fabs((double)c->c[i] - (double)c->c_peer[i]));
        mag = fmax(mag, fabs((double)c->c_peer[i]));
    }
    return mag > 0 ? d / mag : d;
}

static double gflops(const gcase *c, double ms) { return 2.0 * c->s.m * c->s.n * c->s.k / (ms * 1e6); }

static void pause_ms(int ms)
{
    struct timespec ts = { 0, ms * 1000000L };
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ */
/* Reporting                                                          */
/* ------------------------------------------------------------------ */

static void print_json(const result *r, const char *machine, const char *peer)
{
    const gcase *c = r->c;
    printf("{\"suite\": \"gemm\", \"case\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"ta\": %s, "
           "\"tb\": %s, \"threads\": %d, \"loom_ms\": %.5f, \"gflops\": %.2f, \"compile_ms\": %.2f",
           c->name, (long long)c->s.m, (long long)c->s.n, (long long)c->s.k, c->s.ta ? "true" : "false",
           c->s.tb ? "true" : "false", r->threads, r->loom_ms, gflops(c, r->loom_ms), c->compile_ms);
    if (r->peer_ms >= 0)
        printf(", \"peer\": \"%s\", \"peer_ms\": %.5f, \"peer_gflops\": %.2f, \"speedup\": %.4f", peer,
               r->peer_ms, gflops(c, r->peer_ms), r->peer_ms / r->loom_ms);
    else
        printf(", \"peer\": null, \"peer_ms\": null, \"speedup\": null");
    if (machine) /* the 2-thread probe's verdict */
        printf(", \"machine\": \"%s\"", machine);
    printf("}\n");
}

static void print_row(const result *r)
{
    const gcase *c = r->c;
    printf("%-18s %3d %9.4f %8.1f", c->name, r->threads, r->loom_ms, gflops(c, r->loom_ms));
    if (r->peer_ms >= 0)
        printf(" %9.4f %8.1f %8.3f", r->peer_ms, gflops(c, r->peer_ms), r->peer_ms / r->loom_ms);
    else
        printf(" %9s %8s %8s", "-", "-", "-");
    printf(" %9.1f%s\n", c->compile_ms, r->peer_ms >= 0 && r->diff > 1e-4 ? "  RESULTS DIFFER" : "");
}

/* ------------------------------------------------------------------ */
/* The suite                                                          */
/* ------------------------------------------------------------------ */

int bench_gemm(const bench_opts *o)
{
    lm_err err = { 0 };
    lm_mem mem = { .fn = lm_default_alloc, .err = &err };
    const char *peer = bench_peer_name();

    gcase cases[MAX_CASES];
    int n = 0;
    static const int hs[] = { 128, 256, 512, 1024 };
    for (size_t i = 0; i < LM_ARRAY_LEN(hs); i++) {
        int64_t h = hs[i];
        char name[48];
        snprintf(name, sizeof name, "fwd M=32 H=%lld", (long long)h);
        add_case(cases, &n, name, 32, 4 * h, h, false, true);
        snprintf(name, sizeof name, "fwd M=2048 H=%lld", (long long)h);
        add_case(cases, &n, name, 2048, 4 * h, h, false, true);
        snprintf(name, sizeof name, "bwd dX H=%lld", (long long)h);
        add_case(cases, &n, name, 32, h, 4 * h, false, false);
        snprintf(name, sizeof name, "bwd dXin H=%lld", (long long)h);
        add_case(cases, &n, name, 2048, h, 4 * h, false, false);
        snprintf(name, sizeof name, "bwd dW H=%lld", (long long)h);
        add_case(cases, &n, name, 4 * h, h, 2048, true, false);
    }
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (bench_selected(o, cases[i].name))
            cases[kept++] = cases[i];
    n = kept;

    jit_engine *e = jit_engine_new(mem, &err, "host", 3);
    if (!e) {
        fprintf(stderr, "loom-bench gemm: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        if (prepare(e, &cases[i], i, &mem)) {
            fprintf(stderr, "loom-bench gemm: %s: %s\n", cases[i].name, err.msg[0] ? err.msg : "out of memory");
            rc = 1;
        }
    if (rc)
        goto done;

    if (!o->json)
        printf("loom-bench gemm: f32, LLVM %s (%s), peer %s\n", jit_llvm_version(), e->cpu, peer ? peer : "none");
    double compile_sum = 0;
    for (int i = 0; i < n; i++)
        compile_sum += cases[i].compile_ms;

    result res[MAX_CASES];
    for (int ti = 0; o->threads[ti]; ti++) {
        int threads = o->threads[ti];
        if (threads > rt_pool_size(o->pool))
            continue;
        double before = threads > 1 ? bench_probe(o->pool) : 2;
        bench_peer_threads(threads);
        for (int i = 0; i < n; i++) {
            runner r = { &cases[i], o->pool, threads };
            result *x = &res[i];
            x->c = &cases[i];
            x->threads = threads;
            if (threads > 1)
                pause_ms(120); /* let the peer's spinning workers go to sleep */
            x->loom_ms = bench_time_ms(o, loom_call, &r);
            x->peer_ms = -1;
#ifdef LOOM_BENCH_OPENBLAS
            x->peer_ms = bench_time_ms(o, peer_call, &r);
            x->diff = max_rel_diff(&cases[i]);
#endif
        }
        double after = threads > 1 ? bench_probe(o->pool) : 2;
        const char *machine = threads > 1 ? bench_machine_tag(before, after) : NULL;

        double logsum = 0;
        int npeer = 0;
        if (!o->json) {
            printf("\n%d thread%s", threads, threads > 1 ? "s" : "");
            if (threads > 1)
                printf(" (machine %s: 2-thread FMA probe %.2fx before, %.2fx after)", machine, before, after);
            printf("\n%-18s %3s %9s %8s %9s %8s %8s %9s\n", "case", "thr", "loom ms", "GFLOP/s", "peer ms", "GFLOP/s",
                   "speedup", "compile");
        }
        for (int i = 0; i < n; i++) {
            if (o->json)
                print_json(&res[i], machine, peer);
            else
                print_row(&res[i]);
            if (res[i].peer_ms >= 0) {
                logsum += log(res[i].peer_ms / res[i].loom_ms);
                npeer++;
            }
        }
        if (npeer) {
            double geo = exp(logsum / npeer);
            if (o->json)
                printf("{\"suite\": \"gemm\", \"summary\": \"geomean_speedup\", \"threads\": %d, \"value\": %.4f, "
                       "\"cases\": %d, \"peer\": \"%s\"%s%s%s}\n",
                       threads, geo, npeer, peer, machine ? ", \"machine\": \"" : "", machine ? machine : "",
                       machine ? "\"" : "");
            else
                printf("geometric-mean speedup over %s at %d thread%s: %.3f (%d cases)\n", peer, threads,
                       threads > 1 ? "s" : "", geo, npeer);
        }
        fflush(stdout);
    }
    if (n && !o->json)
        printf("\ncompile: %.1f ms per kernel on average (%d kernels, %.1f ms in all)\n", compile_sum / n, n,
               compile_sum);
    else if (n)
        printf("{\"suite\": \"gemm\", \"summary\": \"compile_ms_per_kernel\", \"value\": %.2f, \"kernels\": %d}\n",
               compile_sum / n, n);

done:
    for (int i = 0; i < n; i++)
        release(&cases[i], &mem);
    jit_engine_free(e);
    return rc;
}
