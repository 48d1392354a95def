/*
 * test_pool.c — the thread pool (runtime/pool.c) on its own, with tasks
 * written in C, so that ThreadSanitizer sees every access they make with
 * neither LLVM nor the JIT's scalarised kernels in the way (the gemm and
 * jit suites cover those): shares cover the range once, the
 * caller's writes before a job are seen by the workers and theirs by the
 * caller after it, workers asleep on the condition variable wake for a
 * job, a caller asleep waiting for a slow worker wakes when it ends, and
 * pools are freed at any moment. .ci/tsan runs this suite under TSan.
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "pool.h"
#include "testutil.h"

static lm_err g_err;

static lm_mem test_mem(void) { return (lm_mem){ .fn = lm_default_alloc, .err = &g_err }; }

static rt_pool *pool_new(int n)
{
    rt_pool *p = rt_pool_new(test_mem(), &g_err, n);
    if (!p)
        fail_msg("rt_pool_new(%d): %s", n, g_err.msg);
    assert_int_equal(rt_pool_size(p), n);
    return p;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

enum { MAX_THREADS = 8 };

/* ------------------------------------------------------------------ */
/* Shares                                                             */
/* ------------------------------------------------------------------ */

typedef struct cover {
    int *hits;                        /* [n]: written by the one thread whose share holds i */
    int64_t lo[MAX_THREADS], hi[MAX_THREADS];
    int calls[MAX_THREADS];           /* each slot written by its thread only */
    pthread_t who[MAX_THREADS];
    int bad_thread;                   /* a thread index out of range (no cmocka asserts off the main thread) */
} cover;

static void cover_task(void *ud, int64_t lo, int64_t hi, int thread)
{
    cover *c = ud;
    if (thread < 0 || thread >= MAX_THREADS) {
        c->bad_thread = 1;
        return;
    }
    c->lo[thread] = lo;
    c->hi[thread] = hi;
    c->calls[thread]++;
    c->who[thread] = pthread_self();
    for (int64_t i = lo; i < hi; i++)
        c->hits[i]++;
}

/* Every index in exactly one share, the shares rt_share's, never empty;
 * share 0 on the caller. */
static void test_pool_shares_cover_the_range_once(void **state)
{
    (void)state;
    static const int64_t ns[] = { 1, 2, 3, 7, 64, 1000, 4099 };
    for (int size = 1; size <= 4; size++) {
        rt_pool *p = pool_new(size);
        for (int threads = 0; threads <= 5; threads++)
            for (size_t j = 0; j < TU_LEN(ns); j++) {
                int64_t n = ns[j];
                cover c;
                memset(&c, 0, sizeof c);
                c.hits = calloc((size_t)n, sizeof *c.hits);
                assert_non_null(c.hits);
                rt_pool_run(p, n, threads, cover_task, &c);
                assert_int_equal(c.bad_thread, 0);
                int k = threads < size ? threads : size;
                if (k > n)
                    k = (int)n;
                if (k < 1)
                    k = 1;
                for (int64_t i = 0; i < n; i++)
                    if (c.hits[i] != 1)
                        fail_msg("pool %d, threads %d, n %lld: index %lld done %d times", size, threads,
                                 (long long)n, (long long)i, c.hits[i]);
                for (int t = 0; t < MAX_THREADS; t++) {
                    if (t >= k) {
                        assert_int_equal(c.calls[t], 0);
                        continue;
                    }
                    int64_t lo, hi;
                    rt_share(n, t, k, &lo, &hi);
                    assert_int_equal(c.calls[t], 1);
                    assert_int_equal(c.lo[t], lo);
                    assert_int_equal(c.hi[t], hi);
                    assert_true(hi > lo);
                }
                assert_true(pthread_equal(c.who[0], pthread_self()));
                free(c.hits);
            }
        rt_pool_free(p);
    }
}

/* ------------------------------------------------------------------ */
/* Visibility                                                         */
/* ------------------------------------------------------------------ */

typedef struct pipe_job {
    const double *in; /* [n], written by the caller before the job */
    double *out;      /* [n], read by the caller after it */
    int round;
    int slow_thread;  /* this share sleeps first (-1: none) */
    int slow_ms;
} pipe_job;

static void pipe_task(void *ud, int64_t lo, int64_t hi, int thread)
{
    pipe_job *j = ud;
    if (thread == j->slow_thread)
        sleep_ms(j->slow_ms);
    for (int64_t i = lo; i < hi; i++)
        j->out[i] = j->in[i] * 2 + j->round;
}

/* Rounds back to back (workers spinning) or apart (workers asleep), the
 * caller rewriting the input between them: each round's output is that
 * round's input, whatever thread computed it. */
static void run_rounds(rt_pool *p, int rounds, int pause_ms, int slow_thread, int slow_ms)
{
    enum { N = 777 };
    static double in[N], out[N];
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < N; i++)
            in[i] = r * 1000.0 + i;
        pipe_job j = { in, out, r, slow_thread, slow_ms };
        rt_pool_run(p, N, rt_pool_size(p), pipe_task, &j);
        for (int i = 0; i < N; i++)
            if (out[i] != in[i] * 2 + r)
                fail_msg("round %d: out[%d] = %g, expected %g", r, i, out[i], in[i] * 2 + r);
        if (pause_ms)
            sleep_ms(pause_ms);
    }
}

static void test_pool_writes_are_seen_both_ways(void **state)
{
    (void)state;
    for (int size = 2; size <= 3; size++) {
        rt_pool *p = pool_new(size);
        run_rounds(p, 300, 0, -1, 0);
        rt_pool_free(p);
    }
}

/* Workers that slept on the condition variable (a pause much longer than
 * their spin) wake for the next job. */
static void test_pool_sleeping_workers_wake(void **state)
{
    (void)state;
    rt_pool *p = pool_new(3);
    run_rounds(p, 8, 30, -1, 0);
    rt_pool_free(p);
}

/* The caller, done with its share, outwaits its spin and sleeps until a
 * slow worker ends. */
static void test_pool_caller_waits_for_a_slow_worker(void **state)
{
    (void)state;
    rt_pool *p = pool_new(3);
    run_rounds(p, 4, 0, 2, 40);
    run_rounds(p, 4, 0, 1, 40);
    rt_pool_free(p);
}

/* ------------------------------------------------------------------ */
/* Lifetimes                                                          */
/* ------------------------------------------------------------------ */

static void noop_task(void *ud, int64_t lo, int64_t hi, int thread)
{
    (void)lo, (void)hi, (void)thread;
    (void)ud;
}

/* Freed at once (workers maybe not started), right after a job (workers
 * spinning), after a pause (workers asleep); NULL is fine. */
static void test_pool_free_at_any_moment(void **state)
{
    (void)state;
    for (int i = 0; i < 60; i++) {
        rt_pool *p = pool_new(2 + i % 3);
        if (i % 3 >= 1) {
            int dummy = 0;
            rt_pool_run(p, 10, 4, noop_task, &dummy);
        }
        if (i % 3 == 2 && i < 12)
            sleep_ms(20);
        rt_pool_free(p);
    }
    rt_pool_free(NULL);
    assert_int_equal(rt_pool_size(NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_shares_cover_the_range_once),
        cmocka_unit_test(test_pool_writes_are_seen_both_ways),
        cmocka_unit_test(test_pool_sleeping_workers_wake),
        cmocka_unit_test(test_pool_caller_waits_for_a_slow_worker),
        cmocka_unit_test(test_pool_free_at_any_moment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
