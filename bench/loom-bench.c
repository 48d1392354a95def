/*
 * loom-bench.c — the benchmark driver: `loom-bench <suite> [options]`.
 * It runs loom next to a peer library in the same process and run, so
 * the two see the same machine. This file holds what every suite shares
 * (options, timing, the machine probe, the peer's identity); the suites
 * live in files of their own (bench_gemm.c, ...).
 *
 * Peers run at their best: OpenBLAS reads OPENBLAS_CORETYPE when it is
 * loaded, before main, and this machine sets it to Haswell (AVX2, half
 * speed on Zen 5), so if it is set the bench re-executes itself without
 * it before doing anything else.
 */
#include "bench.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef LOOM_BENCH_OPENBLAS
#include <cblas.h>
#endif

extern char **environ;

/* ------------------------------------------------------------------ */
/* Timing                                                             */
/* ------------------------------------------------------------------ */

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_time_ms(const bench_opts *o, bench_fn fn, void *ud)
{
    /* warm-up: caches, page faults, the pool's threads */
    double t0 = bench_now();
    fn(ud);
    fn(ud);
    double once = (bench_now() - t0) / 2;
    int reps = once > 0 ? (int)(o->min_time / once) : 1000;
    reps = reps < 5 ? 5 : reps > 2000 ? 2000 : reps;
    double *t = malloc((size_t)reps * sizeof *t);
    if (!t)
        return -1;
    for (int i = 0; i < reps; i++) {
        double s = bench_now();
        fn(ud);
        t[i] = bench_now() - s;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double med = reps % 2 ? t[reps / 2] : (t[reps / 2 - 1] + t[reps / 2]) / 2;
    free(t);
    return med * 1e3;
}

/* ------------------------------------------------------------------ */
/* Machine probe                                                      */
/* ------------------------------------------------------------------ */

enum { PROBE_ITERS = 1 << 25 }; /* ~50 ms of FMAs on one Zen 5 core */

/* Twelve independent accumulator chains keep both FMA pipes busy. */
__attribute__((target("avx512f,fma"))) static void probe_fma(void *ud, int64_t lo, int64_t hi, int thread)
{
    (void)lo, (void)hi, (void)thread;
    __m512 acc[12], x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (int n = 0; n < PROBE_ITERS; n++)
        for (int i = 0; i < 12; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    float sum = 0;
    for (int i = 0; i < 12; i++)
        sum += _mm512_reduce_add_ps(acc[i]);
    *(volatile float *)ud = sum;
}

double bench_probe(rt_pool *pool)
{
    volatile float sink[2];
    double t0 = bench_now();
    probe_fma((void *)&sink[0], 0, 1, 0);
    double one = bench_now() - t0;
    if (rt_pool_size(pool) < 2)
        return 1;
    t0 = bench_now();
    rt_pool_run(pool, 2, 2, probe_fma, (void *)&sink[1]);
    double two = bench_now() - t0;
    return 2 * one / two;
}

const char *bench_machine_tag(double before, double after)
{
    return before >= 1.8 && after >= 1.8 ? "clean" : "degraded";
}

/* ------------------------------------------------------------------ */
/* The peer                                                           */
/* ------------------------------------------------------------------ */

const char *bench_peer_name(void)
{
#ifdef LOOM_BENCH_OPENBLAS
    static char name[96];
    if (!name[0]) {
        /* "OpenBLAS 0.3.21 DYNAMIC_ARCH ..." */
        char version[32] = "unknown";
        const char *cfg = openblas_get_config();
        if (cfg && sscanf(cfg, "OpenBLAS %31s", version) != 1)
            strcpy(version, "unknown");
        snprintf(name, sizeof name, "openblas-%s-%s", version, openblas_get_corename());
    }
    return name;
#else
    return NULL;
#endif
}

void bench_peer_threads(int n)
{
#ifdef LOOM_BENCH_OPENBLAS
    openblas_set_num_threads(n);
#else
    (void)n;
#endif
}

bool bench_selected(const bench_opts *o, const char *name) { return !o->filter || strstr(name, o->filter); }

/* ------------------------------------------------------------------ */
/* main                                                               */
/* ------------------------------------------------------------------ */

/* Re-executes this program without OPENBLAS_CORETYPE, if it is set. */
static void drop_coretype(char **argv)
{
    if (!getenv("OPENBLAS_CORETYPE"))
        return;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof *env);
    if (!env)
        return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "OPENBLAS_CORETYPE=", 18))
            env[k++] = environ[i];
    execve("/proc/self/exe", argv, env);
    perror("loom-bench: re-executing without OPENBLAS_CORETYPE");
    free(env); /* carry on with the slower peer */
}

static const struct suite {
    const char *name;
    int (*run)(const bench_opts *o);
    const char *what;
} suites[] = {
    { "gemm", bench_gemm, "JIT GEMM vs the peer's sgemm on LSTM forward and backward shapes" },
    { "fused", bench_fused, "the LSTM gate step as one fused kernel: memory bandwidth" },
};

static int usage(FILE *f)
{
    fprintf(f, "usage: loom-bench <suite> [--json] [--threads 1,2] [--min-time SEC] [--filter TEXT]\n"
               "suites:\n");
    for (size_t i = 0; i < LM_ARRAY_LEN(suites); i++)
        fprintf(f, "  %-8s %s\n", suites[i].name, suites[i].what);
    return f == stderr ? 2 : 0;
}

int main(int argc, char **argv)
{
    drop_coretype(argv);
    if (argc < 2)
        return usage(stderr);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
        return usage(stdout);
    const struct suite *suite = NULL;
    for (size_t i = 0; i < LM_ARRAY_LEN(suites); i++)
        if (!strcmp(argv[1], suites[i].name))
            suite = &suites[i];
    if (!suite) {
        fprintf(stderr, "loom-bench: no suite '%s'\n", argv[1]);
        return usage(stderr);
    }

    bench_opts o = { .min_time = 0.2, .threads = { 1, 2 } };
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            o.json = true;
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            memset(o.threads, 0, sizeof o.threads);
            char *s = argv[++i];
            for (int t = 0; t < 3 && *s; t++) {
                o.threads[t] = (int)strtol(s, &s, 10);
                if (o.threads[t] < 1 || (*s && *s != ','))
                    return usage(stderr);
                s += *s == ',';
            }
        } else if (!strcmp(a, "--min-time") && i + 1 < argc) {
            o.min_time = atof(argv[++i]);
        } else if (!strcmp(a, "--filter") && i + 1 < argc) {
            o.filter = argv[++i];
        } else {
            return usage(stderr);
        }
    }
    int maxt = 1;
    for (int t = 0; o.threads[t]; t++)
        maxt = LM_MAX(maxt, o.threads[t]);
    lm_err err = { 0 };
    o.pool = rt_pool_new((lm_mem){ .fn = lm_default_alloc, .err = &err }, &err, maxt);
    if (!o.pool) {
        fprintf(stderr, "loom-bench: %s\n", err.msg);
        return 1;
    }
    int rc = suite->run(&o);
    rt_pool_free(o.pool);
    return rc;
}
