/*
 * pool.h — the thread pool kernels are split across. Work is a range
 * [0, n) of a kernel's work items (rows, tiles); each thread takes one
 * contiguous share, the same for the same thread count, so results are
 * reproducible run to run. The calling thread works too. Workers spin
 * briefly between jobs (a training step is thousands of kernels back to
 * back) and then sleep. No LLVM, no loom state: usable by AOT bundles.
 */
#ifndef LOOM_RT_POOL_H
#define LOOM_RT_POOL_H

#include "base.h"

typedef struct rt_pool rt_pool;

typedef void (*rt_task_fn)(void *ud, int64_t lo, int64_t hi, int thread);

/* A pool of nthreads threads in all (the caller counts as one); 1 means
 * every job runs on the caller. NULL on error (recorded in err). */
rt_pool *rt_pool_new(lm_mem mem, lm_err *err, int nthreads);
void rt_pool_free(rt_pool *p);
int rt_pool_size(const rt_pool *p);

/* Runs fn over [0, n) in at most `threads` contiguous shares (capped at
 * the pool size; shares are never empty), the caller taking share 0;
 * returns when all are done. threads <= 1 or n <= 1 runs fn(ud, 0, n, 0)
 * on the caller with no synchronisation at all. */
void rt_pool_run(rt_pool *p, int64_t n, int threads, rt_task_fn fn, void *ud);

/* The share of [0, n) thread t of k gets. */
static inline void rt_share(int64_t n, int t, int k, int64_t *lo, int64_t *hi)
{
    *lo = n * t / k;
    *hi = n * (t + 1) / k;
}

/* The number of threads to use from LOOM_THREADS, else the online cores. */
int rt_default_threads(void);

#endif /* LOOM_RT_POOL_H */
