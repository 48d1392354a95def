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
 * it before doing anything else. Peers that are whole frameworks
 * (PyTorch, oneDNN's RNN primitives) run as child processes, one at a
 * time next to loom, each in the environment it is fastest in.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

double bench_median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
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
    double med = bench_median(t, reps);
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

static double tv_seconds(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6; }

bench_cpu bench_cpu_now(void)
{
    bench_cpu c = { .wall = bench_now() };
    /* "cpu  user nice system idle iowait irq softirq steal ..." in ticks */
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = { 0 };
    if (f) {
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                   &v[7]) != 8)
            memset(v, 0, sizeof v);
        fclose(f);
    }
    long hz = sysconf(_SC_CLK_TCK);
    c.machine = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)(hz > 0 ? hz : 100);
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    c.self = tv_seconds(self.ru_utime) + tv_seconds(self.ru_stime) + tv_seconds(kids.ru_utime) +
             tv_seconds(kids.ru_stime);
    return c;
}

double bench_cpu_others(bench_cpu a, bench_cpu b)
{
    double wall = b.wall - a.wall, others = (b.machine - a.machine) - (b.self - a.self);
    return wall > 0 && a.machine > 0 ? fmax(0, others / wall) : NAN;
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
/* Peers in child processes                                           */
/* ------------------------------------------------------------------ */

/* environ changed by env: removed and replaced names dropped, set ones
 * appended. The array is malloc'd; the strings are borrowed. */
static char **env_edit(const char *const env[])
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (env && env[m])
        m++;
    char **out = calloc(n + m + 1, sizeof *out);
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool drop = false;
        for (size_t j = 0; j < m && !drop; j++) {
            size_t len = strcspn(env[j], "=");
            drop = !strncmp(environ[i], env[j], len) && environ[i][len] == '=';
        }
        if (!drop)
            out[k++] = environ[i];
    }
    for (size_t j = 0; j < m; j++)
        if (strchr(env[j], '='))
            out[k++] = (char *)env[j];
    return out;
}

int bench_child_json(char *const argv[], const char *const env[], char *line, size_t size)
{
    line[0] = 0;
    if (access(argv[0], X_OK) != 0) {
        fprintf(stderr, "loom-bench: peer %s: %s\n", argv[0], strerror(errno));
        return -1;
    }
    char **envp = env_edit(env);
    int fd[2];
    if (!envp || pipe(fd) != 0) {
        free(envp);
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0)
            dup2(null, 0);
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    free(envp);
    close(fd[1]);
    if (pid < 0) {
        close(fd[0]);
        return -1;
    }
    /* read it all; keep the last line that opens a JSON object */
    char buf[4096], cur[4096];
    size_t len = 0;
    ssize_t got;
    while ((got = read(fd[0], buf, sizeof buf)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            break;
        for (ssize_t i = 0; i < got; i++) {
            if (buf[i] != '\n') {
                if (len + 1 < sizeof cur)
                    cur[len++] = buf[i];
                continue;
            }
            cur[len] = 0;
            if (cur[0] == '{')
                snprintf(line, size, "%s", cur);
            len = 0;
        }
    }
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || line[0] != '{') {
        fprintf(stderr, "loom-bench: peer %s failed (%s %d)%s%s\n", argv[0],
                WIFEXITED(status) ? "exit" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                line[0] ? ": " : "", line);
        return -1;
    }
    return 0;
}

/* The text after "key": in line, or NULL. */
static const char *json_field(const char *line, const char *key)
{
    size_t k = strlen(key);
    for (const char *p = strchr(line, '"'); p; p = strchr(p + 1, '"'))
        if (!strncmp(p + 1, key, k) && p[k + 1] == '"') {
            p += k + 2;
            while (*p == ' ' || *p == ':')
                p++;
            return p;
        }
    return NULL;
}

bool bench_json_number(const char *line, const char *key, double *out)
{
    const char *p = json_field(line, key);
    char *end;
    double v = p ? strtod(p, &end) : 0;
    if (!p || end == p)
        return false;
    *out = v;
    return true;
}

int bench_json_numbers(const char *line, const char *key, double *out, int n)
{
    const char *p = json_field(line, key);
    if (!p || *p++ != '[')
        return 0;
    int k = 0;
    for (char *end; k < n; p = end) {
        while (*p == ' ' || *p == ',')
            p++;
        out[k] = strtod(p, &end);
        if (end == p)
            break;
        k++;
    }
    return k;
}

bool bench_json_string(const char *line, const char *key, char *buf, size_t size)
{
    const char *p = json_field(line, key);
    if (!p || *p != '"' || size == 0)
        return false;
    size_t n = strcspn(p + 1, "\"");
    n = n < size - 1 ? n : size - 1;
    memcpy(buf, p + 1, n);
    buf[n] = 0;
    return true;
}

const char *bench_python(void)
{
    const char *p = getenv("LOOM_BENCH_PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

const char *bench_torch_script(void) { return LOOM_BENCH_PEERS "/charlm_torch.py"; }

const char *bench_dnnl_program(void)
{
#ifdef LOOM_BENCH_DNNL
    return LOOM_BENCH_DNNL;
#else
    return NULL;
#endif
}

/* PyTorch at its best here (Debian's python3-torch 1.13 on OpenBLAS
 * 0.3.21, measured on charlm lstm-H512-L2): without OPENBLAS_CORETYPE
 * (else AVX2 kernels at half speed); OpenBLAS's OpenMP build
 * (libopenblas0-openmp) in front of the pthread one, so the BLAS and
 * torch's own OpenMP share one team of threads instead of two pools
 * fighting over two cores; glibc keeping freed memory (torch frees and
 * reallocates its activations every step, and returning them to the
 * kernel costs page faults every step). */
#define OPENBLAS_OPENMP_DIR "/usr/lib/x86_64-linux-gnu/openblas-openmp"

const char *const *bench_torch_env(int n)
{
    static char threads[2][40];
    static const char *env[12];
    snprintf(threads[0], sizeof threads[0], "OMP_NUM_THREADS=%d", n);
    snprintf(threads[1], sizeof threads[1], "OPENBLAS_NUM_THREADS=%d", n);
    struct stat st;
    int k = 0;
    env[k++] = "OPENBLAS_CORETYPE";
    env[k++] = threads[0];
    env[k++] = threads[1];
    env[k++] = "MALLOC_MMAP_THRESHOLD_=4000000000";
    env[k++] = "MALLOC_TRIM_THRESHOLD_=4000000000";
    env[k++] = stat(OPENBLAS_OPENMP_DIR, &st) == 0 ? "LD_LIBRARY_PATH=" OPENBLAS_OPENMP_DIR : "LD_LIBRARY_PATH";
    env[k] = NULL;
    return env;
}

const char *bench_torch_env_name(void)
{
    struct stat st;
    return stat(OPENBLAS_OPENMP_DIR, &st) == 0
               ? "OpenBLAS's OpenMP build, OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = threads, glibc keeping freed memory"
               : "the default OpenBLAS (no libopenblas0-openmp), OPENBLAS_NUM_THREADS = threads, glibc keeping freed "
                 "memory";
}

/* ------------------------------------------------------------------ */
/* Results of the model suites                                        */
/* ------------------------------------------------------------------ */

bench_result bench_result_empty(const char *suite, const char *name, int threads, double flops)
{
    return (bench_result){ .suite = suite, .name = name, .threads = threads, .flops = flops, .loom_ms = -1,
                           .loom_first_ms = -1, .loom_compile_ms = -1, .peer_ms = -1, .peer_first_ms = -1,
                           .loom_loss = { NAN, NAN }, .peer_loss = { NAN, NAN }, .check = NAN,
                           .others = NAN };
}

static double gflops_of(const bench_result *r, double ms) { return r->flops / (ms * 1e6); }
/* loom's own rate: of the work its plan does */
static double loom_gflops(const bench_result *r)
{
    return (r->loom_flops > 0 ? r->loom_flops : r->flops) / (r->loom_ms * 1e6);
}

void bench_results_head(const bench_opts *o, const char *title, int threads, const char *machine, double before,
                        double after)
{
    if (o->json)
        return;
    printf("\n%s, %d thread%s", title, threads, threads > 1 ? "s" : "");
    if (machine)
        printf(" (machine %s: 2-thread FMA probe %.2fx before, %.2fx after)", machine, before, after);
    printf("\n%-20s %3s %9s %7s %5s %9s %7s %7s %9s %8s %8s %6s  %s\n", "case", "thr", "loom ms", "GFLOP/s", "peak",
           "peer ms", "GFLOP/s", "speedup", "first ms", "LLVM ms", "plan MiB", "others", "peer");
}

static void json_num(const char *key, double v, const char *fmt)
{
    printf(", \"%s\": ", key);
    if (isnan(v) || v < 0)
        printf("null");
    else
        printf(fmt, v);
}

void bench_result_print(const bench_opts *o, const bench_result *r)
{
    bool peer = r->peer && r->peer_ms > 0, loom = r->loom_ms > 0;
    double peak = BENCH_CORE_GFLOPS * r->threads;
    if (o->json) {
        printf("{\"suite\": \"%s\", \"case\": \"%s\", \"threads\": %d", r->suite, r->name, r->threads);
        json_num("loom_ms", r->loom_ms, "%.4f");
        if (peer)
            printf(", \"peer\": \"%s\"", r->peer);
        else
            printf(", \"peer\": null");
        json_num("peer_ms", peer ? r->peer_ms : -1, "%.4f");
        json_num("speedup", peer && loom ? r->peer_ms / r->loom_ms : -1, "%.4f");
        json_num("gflops", loom && r->flops > 0 ? loom_gflops(r) : -1, "%.2f");
        json_num("peak_fraction", loom && r->flops > 0 ? loom_gflops(r) / peak : -1, "%.4f");
        json_num("flops", r->flops > 0 ? r->flops : -1, "%.6g");
        json_num("loom_flops", r->loom_flops > 0 ? r->loom_flops : -1, "%.6g");
        json_num("peer_gflops", peer && r->flops > 0 ? gflops_of(r, r->peer_ms) : -1, "%.2f");
        json_num("loom_first_ms", r->loom_first_ms, "%.2f");
        json_num("loom_compile_ms", r->loom_compile_ms, "%.2f");
        if (r->loom_plan_bytes)
            printf(", \"loom_plan_bytes\": %llu", (unsigned long long)r->loom_plan_bytes);
        json_num("peer_first_ms", peer ? r->peer_first_ms : -1, "%.2f");
        if (!isnan(r->loom_loss[0]))
            printf(", \"loom_loss\": [%.6f, %.6f]", r->loom_loss[0], r->loom_loss[1]);
        if (!isnan(r->peer_loss[0]))
            printf(", \"peer_loss\": [%.6f, %.6f]", r->peer_loss[0], r->peer_loss[1]);
        if (!isnan(r->check))
            printf(", \"check_rel_diff\": %.3g", r->check);
        if (r->machine)
            printf(", \"machine\": \"%s\"", r->machine);
        json_num("other_cores", r->others, "%.3f");
        printf("}\n");
        fflush(stdout);
        return;
    }
    printf("%-20s %3d", r->name, r->threads);
    if (loom)
        printf(" %9.2f %7.1f %4.1f%%", r->loom_ms, loom_gflops(r), 100 * loom_gflops(r) / peak);
    else
        printf(" %9s %7s %5s", "failed", "-", "-");
    if (peer)
        printf(" %9.2f %7.1f %7.3f", r->peer_ms, gflops_of(r, r->peer_ms), loom ? r->peer_ms / r->loom_ms : NAN);
    else
        printf(" %9s %7s %7s", "-", "-", "-");
    if (r->loom_first_ms >= 0)
        printf(" %9.1f", r->loom_first_ms);
    else
        printf(" %9s", "-");
    if (r->loom_compile_ms >= 0)
        printf(" %8.1f %8.1f", r->loom_compile_ms, (double)r->loom_plan_bytes / (1 << 20));
    else
        printf(" %8s %8s", "-", "-");
    printf(" %6.2f  %s\n", r->others, r->peer ? r->peer : "none");
    fflush(stdout);
}

void bench_results_foot(const bench_opts *o, const bench_result *res, int n)
{
    double most = 0;
    for (int i = 0; i < n; i++)
        most = fmax(most, isnan(res[i].others) ? 0 : res[i].others);
    if (!o->json && most > 0.2)
        printf("  busy machine: other processes kept up to %.2f cores busy during these cases (column \"others\"); "
               "their figures are not clean\n",
               most);
}

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
    { "cells", bench_cells, "LSTM/GRU layers forward + backward vs oneDNN (or PyTorch); a custom cell vs the built-in" },
    { "charlm", bench_charlm, "a char-level LSTM language model's Adam training step vs PyTorch" },
    { "aot", bench_aot, "per-character generation of an AOT-compiled char-level LSTM vs PyTorch, 1 thread" },
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
