/*
 * pool.c — a fork-join pool on pthreads: one job at a time, published by
 * bumping a generation counter; workers spin on it for a while, then
 * sleep on a condition variable.
 */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

enum { SPIN_ROUNDS = 20000 };

typedef struct worker {
    rt_pool *pool;
    pthread_t thread;
    int index; /* 1.. */
} worker;

struct rt_pool {
    lm_mem mem;
    int nthreads;
    int nworkers_cap; /* workers allocated */
    worker *workers; /* nthreads - 1 */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t done_cv;
    _Atomic uint64_t generation; /* bumped per job */
    _Atomic int pending;         /* shares still running */
    _Atomic int sleeping;
    _Atomic bool stop;
    /* the current job */
    rt_task_fn fn;
    void *ud;
    int64_t n;
    int shares;
};

/* A spin-wait step that tells the core (and its sibling) we are waiting. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_share(rt_pool *p, int t)
{
    if (t < p->shares) {
        int64_t lo, hi;
        rt_share(p->n, t, p->shares, &lo, &hi);
        p->fn(p->ud, lo, hi, t);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    rt_pool *p = w->pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t gen;
        int spins = 0;
        while ((gen = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_acquire)) {
            if (++spins < SPIN_ROUNDS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->lock);
            atomic_fetch_add(&p->sleeping, 1);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->lock);
            atomic_fetch_sub(&p->sleeping, 1);
            pthread_mutex_unlock(&p->lock);
            spins = 0;
        }
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            return NULL;
        seen = gen;
        run_share(p, w->index);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->lock);
        }
    }
}

rt_pool *rt_pool_new(lm_mem mem, lm_err *err, int nthreads)
{
    mem.err = err;
    if (nthreads < 1)
        nthreads = 1;
    rt_pool *p = lm_zalloc(&mem, sizeof *p);
    if (!p)
        return NULL;
    p->mem = mem;
    p->nthreads = 1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    if (nthreads > 1) {
        p->workers = lm_zalloc(&p->mem, (size_t)(nthreads - 1) * sizeof *p->workers);
        p->nworkers_cap = nthreads - 1;
        if (!p->workers) {
            rt_pool_free(p);
            return NULL;
        }
        for (int i = 1; i < nthreads; i++) {
            worker *w = &p->workers[i - 1];
            w->pool = p;
            w->index = i;
            if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
                lm_fail(err, LOOM_ERR_NOMEM, "thread pool: cannot start thread %d of %d", i + 1, nthreads);
                rt_pool_free(p);
                return NULL;
            }
            p->nthreads = i + 1;
        }
    }
    return p;
}

void rt_pool_free(rt_pool *p)
{
    if (!p)
        return;
    if (p->nthreads > 1) {
        pthread_mutex_lock(&p->lock);
        atomic_store(&p->stop, true);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
        for (int i = 1; i < p->nthreads; i++)
            pthread_join(p->workers[i - 1].thread, NULL);
    }
    if (p->workers)
        lm_free(&p->mem, p->workers, (size_t)p->nworkers_cap * sizeof *p->workers);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cv);
    lm_mem m = p->mem;
    lm_free(&m, p, sizeof *p);
}

int rt_pool_size(const rt_pool *p) { return p ? p->nthreads : 1; }

void rt_pool_run(rt_pool *p, int64_t n, int threads, rt_task_fn fn, void *ud)
{
    if (n <= 0)
        return;
    int k = threads < rt_pool_size(p) ? threads : rt_pool_size(p);
    if (k > n)
        k = (int)n;
    if (k <= 1) {
        fn(ud, 0, n, 0);
        return;
    }
    /* every worker wakes for a job; those past the shares do nothing */
    p->fn = fn;
    p->ud = ud;
    p->n = n;
    p->shares = k;
    atomic_store_explicit(&p->pending, p->nthreads - 1, memory_order_relaxed);
    /* seq_cst, not just release: this bump then the check of sleeping,
     * against a worker's sleeping++ then check of the generation, is
     * Dekker's pattern. Under release C11 lets the check be ordered before
     * the bump (a compiler may hoist it); both sides would then read the
     * old values, the worker sleep through the job and the caller wait for
     * it forever. x86's locked add happens to order them. */
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_seq_cst);
    if (atomic_load(&p->sleeping) > 0) {
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
    }
    run_share(p, 0);
    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        if (++spins < SPIN_ROUNDS) {
            cpu_relax();
            continue;
        }
        pthread_mutex_lock(&p->lock);
        while (atomic_load(&p->pending) > 0)
            pthread_cond_wait(&p->done_cv, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
}

int rt_default_threads(void)
{
    const char *env = getenv("LOOM_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == 0 && v >= 1 && v <= 1024)
            return (int)v;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (int)(n > 1024 ? 1024 : n) : 1;
}
