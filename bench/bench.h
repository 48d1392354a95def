/*
 * bench.h — what the loom-bench suites share: options, timing (warm-up,
 * then the median of enough repetitions), the machine probe that tells a
 * clean second core from a degraded one, the peer library's name, peers
 * run as child processes (PyTorch, oneDNN) that answer with one JSON
 * line, and result output (a table for people, one JSON object per line
 * for scripts). Each suite is one function in a file of its own.
 */
#ifndef LOOM_BENCH_H
#define LOOM_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base.h"
#include "pool.h"

typedef struct bench_opts {
    bool json;          /* one JSON object per line instead of a table */
    double min_time;    /* seconds of repetitions per measurement */
    int threads[4];     /* thread counts to run, 0-terminated */
    const char *filter; /* run only cases whose name contains this */
    rt_pool *pool;      /* as many threads as the largest count */
} bench_opts;

/* Seconds on a monotonic clock. */
double bench_now(void);

/* Median wall time (ms) of one call of fn(ud), after a warm-up, over
 * enough repetitions to fill o->min_time (at least 5). */
typedef void (*bench_fn)(void *ud);
double bench_time_ms(const bench_opts *o, bench_fn fn, void *ud);
/* The median of t[0..n) (n > 0; sorts t). */
double bench_median(double *t, int n);

/* Two threads' FMA rate over one thread's (~2 on two full cores). */
double bench_probe(rt_pool *pool);
/* "clean" when both probes show two full cores, else "degraded". */
const char *bench_machine_tag(double before, double after);

/* The peer's name for reports, e.g. "openblas-0.3.21-Cooperlake", or
 * NULL when the bench was built without one. */
const char *bench_peer_name(void);
/* Sets the peer's thread count (no-op without a peer). */
void bench_peer_threads(int n);

/* Whether name passes o->filter. */
bool bench_selected(const bench_opts *o, const char *name);

/* CPU time used so far by the whole machine and by this process with
 * its waited-for children (seconds), at a wall time. */
typedef struct bench_cpu {
    double wall, machine, self;
} bench_cpu;
bench_cpu bench_cpu_now(void);
/* Cores that other processes (other builds and tests, or the host, as
 * steal time) kept busy between a and b: ~0 on a quiet machine. Peers in
 * child processes count as this process. */
double bench_cpu_others(bench_cpu a, bench_cpu b);

/* FP32 FMA peak of one core (TOOLCHAIN.md), for "fraction of peak". */
#define BENCH_CORE_GFLOPS 222.0

/* ------------------------------------------------------------------ */
/* Peers in child processes                                           */
/* ------------------------------------------------------------------ */

/* Runs argv (argv[0] a path, NULL-terminated) with this process's
 * environment changed by env (NULL-terminated; "NAME=value" sets NAME,
 * "NAME" alone removes it) and standard input from /dev/null; its stderr
 * passes through. Copies the last line it printed on stdout that starts
 * with '{' into line. Returns 0 when the child exited 0 and printed one;
 * -1 otherwise (a message on stderr, line holds "" or the last line). */
int bench_child_json(char *const argv[], const char *const env[], char *line, size_t size);

/* A number / a string field of a flat, one-line JSON object. false when
 * absent (or null). */
bool bench_json_number(const char *line, const char *key, double *out);
bool bench_json_string(const char *line, const char *key, char *buf, size_t size);
/* Up to n numbers of an array field; returns how many were read. */
int bench_json_numbers(const char *line, const char *key, double *out, int n);

/* Where the peers are: the PyTorch script (bench/peers/charlm_torch.py,
 * run with LOOM_BENCH_PYTHON or /usr/bin/python3) and the oneDNN program
 * (NULL when the bench was built without libdnnl-dev). */
const char *bench_python(void);
const char *bench_torch_script(void);
const char *bench_dnnl_program(void);

/* The environment PyTorch runs at its best in on this machine with n
 * threads (see loom-bench.c), NULL-terminated, for bench_child_json, and
 * a sentence that describes it. */
const char *const *bench_torch_env(int n);
const char *bench_torch_env_name(void);

/* ------------------------------------------------------------------ */
/* Results of the model suites (charlm, cells)                        */
/* ------------------------------------------------------------------ */

/* One case at one thread count. Times are medians in ms; a negative time
 * or a NAN loss is "not measured". */
typedef struct bench_result {
    const char *suite, *name;
    int threads;
    double flops;           /* GEMM flops of one call (0: not counted) */
    double loom_flops;      /* those loom's plan does, when a pass saved some (0: flops) */
    double loom_ms;
    double loom_first_ms;   /* the first call: compiling included */
    double loom_compile_ms; /* LLVM time, loom_get_stats */
    uint64_t loom_plan_bytes;
    const char *peer;       /* NULL: no peer */
    double peer_ms, peer_first_ms;
    double loom_loss[2], peer_loss[2]; /* first two steps (charlm) */
    double check;           /* max relative difference of loom's outputs from the peer's (NAN: none) */
    const char *machine;    /* the probe's verdict at 2 threads, else NULL */
    double others;          /* bench_cpu_others over the case (NAN: not measured) */
} bench_result;

/* A result with nothing measured yet. */
bench_result bench_result_empty(const char *suite, const char *name, int threads, double flops);
/* The table's title and column heads (nothing in JSON mode). */
void bench_results_head(const bench_opts *o, const char *title, int threads, const char *machine, double before,
                        double after);
/* One row, or one JSON object per line with speedup = peer_ms / loom_ms. */
void bench_result_print(const bench_opts *o, const bench_result *r);
/* Under a table of n rows: a warning when other processes were busy. */
void bench_results_foot(const bench_opts *o, const bench_result *res, int n);

/* The suites. Each returns 0 on success. */
int bench_gemm(const bench_opts *o);
int bench_fused(const bench_opts *o);
int bench_cells(const bench_opts *o);
int bench_charlm(const bench_opts *o);
int bench_aot(const bench_opts *o);

#endif /* LOOM_BENCH_H */
