/*
 * bench.h — what the loom-bench suites share: options, timing (warm-up,
 * then the median of enough repetitions), the machine probe that tells a
 * clean second core from a degraded one, the peer library's name, and
 * result output (a table for people, one JSON object per line for
 * scripts). Each suite is one function in a file of its own.
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

/* The suites. Each returns 0 on success. */
int bench_gemm(const bench_opts *o);
int bench_fused(const bench_opts *o);

#endif /* LOOM_BENCH_H */
