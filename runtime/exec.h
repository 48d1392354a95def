/*
 * exec.h — running a compiled plan: one arena for every intermediate
 * value, per-thread scratch, and the list of kernel calls, each split
 * across the thread pool when it carries enough work (small kernels run
 * on the caller, with no synchronisation). No LLVM here: kernels arrive as
 * function pointers, and an ahead-of-time bundle can run the same way.
 */
#ifndef LOOM_RT_EXEC_H
#define LOOM_RT_EXEC_H

#include "plan.h"
#include "pool.h"

typedef void (*rt_kernel_fn)(char *const *bufs, int64_t lo, int64_t hi, char *scratch);

/* A compiled kernel as the runtime calls it. */
typedef struct rt_kernel {
    rt_kernel_fn fn;
    int64_t work;   /* work items: threads split [0, work) */
    size_t scratch; /* per-thread scratch bytes */
} rt_kernel;

/* External memory for one run. */
/* The first NaN or infinity a run stored (the anomaly mode). */
typedef struct rt_anomaly {
    size_t call;     /* the call that stored it */
    uint32_t origin; /* the value it belongs to (plan.origins), 0: a copy or a fill */
    int64_t index;   /* the element, row-major in the value's shape */
    double value;
    /* a map or reduce program's store (a row chain's sub-kernel): the
     * program, its store instruction and the call's arguments, so the
     * element can be evaluated again op by op; prog NULL otherwise */
    const kernel *prog;
    uint32_t store;
    char *const *args;
} rt_anomaly;

/* The anomaly mode's scan: the first NaN or infinity of an f32 or f64
 * view (data, strides st over space; stride-0 dimensions, a reduction's
 * summed ones, seen once), its index row-major over the other
 * dimensions and its value. False for other dtypes. */
bool rt_first_bad(const void *data, loom_dtype dt, const loom_shape *space, const int64_t *st, int64_t *index,
                  double *value);

typedef struct rt_bind {
    void *const *inputs; /* by input slot */
    uint32_t ninputs;
    void *const *params; /* by parameter id; commits write here */
    uint32_t nparams;
    rt_anomaly *anomaly; /* non-NULL: check what each call stores; stop at the first NaN or infinity */
} rt_bind;

typedef struct rt_exec rt_exec;

/* Prepares p (which must outlive the result) with its compiled kernels
 * (copied) for a pool of `threads` threads. NULL on error. */
rt_exec *rt_exec_new(lm_mem mem, lm_err *err, const plan *p, const rt_kernel *kernels, int threads);
void rt_exec_free(rt_exec *x);

/* One run: every call in order, index errors reported (LOOM_ERR_INDEX),
 * then the commits. */
loom_code rt_exec_run(rt_exec *x, rt_pool *pool, const rt_bind *b);

/* After a run failed with LOOM_ERR_INDEX: the origin (plan.origins) of
 * the gather or scatter that found the index, 0 when unknown. */
uint32_t rt_exec_index_origin(const rt_exec *x);

/* The i-th output's memory after a run (valid until the next run). */
void *rt_exec_output(rt_exec *x, size_t i);

/* Bytes of the arena and of all scratch. */
uint64_t rt_exec_memory(const rt_exec *x);

#endif /* LOOM_RT_EXEC_H */
