/*
 * jit.h — compiling a plan's kernels to machine code, with a cache: a
 * kernel is compiled once per (canonical form, LLVM version, CPU and its
 * features, opt level) for the life of the cache, whichever plan, time
 * step or run asks for it again. This header is LLVM-free: the frontend
 * uses it; codegen.h is the jit/-internal side.
 */
#ifndef LOOM_JIT_H
#define LOOM_JIT_H

#include "exec.h"
#include "plan.h"

typedef struct jit_engine jit_engine;

/* What the runtime needs to call a compiled kernel. */
typedef rt_kernel jit_kinfo;

typedef struct jit_stats {
    uint64_t requested; /* kernels asked for */
    uint64_t compiled;  /* compiled (cache misses) */
    uint64_t hits;      /* found in the cache */
    uint64_t modules;   /* LLVM modules built */
    double compile_ms;  /* building IR, optimising, compiling */
} jit_stats;

typedef struct jit jit;

/* A JIT for cpu (NULL or "host": this machine) at opt_level (3 is the
 * default). NULL on error (recorded in err). */
jit *jit_new(lm_mem mem, lm_err *err, const char *cpu, int opt_level);
void jit_free(jit *j);

/* Compiled kernels for every kernel of p (out has p->nkernels entries):
 * from the cache, or compiled, on up to `threads` threads (the calling
 * one among them), each compiling its share in one module. */
loom_code jit_plan(jit *j, const plan *p, jit_kinfo *out, int threads);

const jit_stats *jit_get_stats(const jit *j);
jit_engine *jit_get_engine(jit *j);

/* Work items of a map kernel, and the elements one item covers when a
 * single long row is cut into chunks. */
enum { JIT_CHUNK = 8192 };

#endif /* LOOM_JIT_H */
