/*
 * engine.h — LLVM in one place: the target machine for the host (or a
 * named CPU), optimisation with the new pass manager, ORC LLJIT, and the
 * one function that turns LLVM errors into loom errors. Only jit/ includes
 * llvm-c; everything above it sees function pointers.
 *
 * Every kernel has one signature, so the runtime (and an ahead-of-time
 * bundle) can call any of them the same way:
 *
 *     void kernel(char *const *bufs, int64_t lo, int64_t hi, char *scratch);
 *
 * bufs are the kernel's operands and results (64-byte aligned); [lo, hi)
 * is the share of the kernel's work items this call does (threads split
 * the range); scratch is per-thread memory of the size the kernel asked
 * for (packing panels), or NULL if it asked for none.
 */
#ifndef LOOM_JIT_ENGINE_H
#define LOOM_JIT_ENGINE_H

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/TargetMachine.h>

#include "base.h"

typedef void (*jit_kernel_fn)(char *const *bufs, int64_t lo, int64_t hi, char *scratch);

typedef struct jit_engine {
    lm_mem mem;
    lm_err *err;
    LLVMOrcLLJITRef jit;
    LLVMOrcThreadSafeContextRef tsc;
    LLVMContextRef ctx;       /* the thread-safe context's: every module is built in it */
    LLVMTargetMachineRef tm;  /* optimisation and object emission */
    char *triple, *cpu, *features, *layout;
    int opt_level;            /* 0..3 */
    uint64_t modules;         /* compiled so far */
    double compile_ms;        /* time spent optimising and compiling */
} jit_engine;

/* An engine for cpu ("host" or NULL: this machine, with its features; or
 * an LLVM CPU name such as "x86-64-v3") at opt_level 0..3. NULL on error
 * (recorded in err). */
jit_engine *jit_engine_new(lm_mem mem, lm_err *err, const char *cpu, int opt_level);
void jit_engine_free(jit_engine *e);

/* A new module in the engine's context, with its triple and data layout. */
LLVMModuleRef jit_module_new(jit_engine *e, const char *name);

/* Declares a kernel (the signature above) in m with the attributes every
 * kernel gets (no unwinding, the engine's CPU and features, 512-bit
 * vectors) and an entry block; the builder b is positioned at its end. */
LLVMValueRef jit_kernel_begin(jit_engine *e, LLVMModuleRef m, LLVMBuilderRef b, const char *name);

/* The middle-end pipeline a module goes through (the code generator's
 * level is the engine's either way). */
typedef enum jit_pipeline {
    JIT_PIPE_DEFAULT, /* LLVM's default<On> at the engine's level */
    JIT_PIPE_LOOPS,   /* at levels 2 and 3: what scalar loop nests need to become vector
                         code (inlining, SSA, cleanup, loop canonicalisation, LICM, the loop
                         vectorizer) and none of the rest of default<O2> (interprocedural
                         passes, GVN, unrolling, SLP). On the char model's map and reduce
                         kernels the maps ran as fast, LLVM ~50 ms less at 1 thread. (On
                         GEMMs it saves ~15 ms a kernel, but their backward ones ran ~2.5%
                         slower: they keep default<O2>.) */
} jit_pipeline;

/* Verifies and optimises m, then hands it to the JIT, which owns it from
 * then on (also on failure). */
loom_code jit_module_add(jit_engine *e, LLVMModuleRef m, jit_pipeline pipe);

/* Optimises m in place (the pipeline jit_module_add runs). */
loom_code jit_module_optimize(jit_engine *e, LLVMModuleRef m, jit_pipeline pipe);

/* The address of a symbol compiled into the engine, or NULL (error
 * recorded). */
void *jit_lookup(jit_engine *e, const char *name);

/* The one place an LLVM error becomes a loom error: consumes er, records
 * "jit: <what>: <LLVM's message>" and returns the code. */
loom_code jit_error(jit_engine *e, LLVMErrorRef er, const char *what);

/* LLVM's version, e.g. "19.1.7", for cache keys and reports. */
const char *jit_llvm_version(void);

/* Small helpers for emitting IR. */
static inline LLVMTypeRef jit_i64(jit_engine *e) { return LLVMInt64TypeInContext(e->ctx); }
static inline LLVMTypeRef jit_i32(jit_engine *e) { return LLVMInt32TypeInContext(e->ctx); }
static inline LLVMTypeRef jit_ptr(jit_engine *e) { return LLVMPointerTypeInContext(e->ctx, 0); }
static inline LLVMValueRef jit_const_i64(jit_engine *e, int64_t v)
{
    return LLVMConstInt(jit_i64(e), (unsigned long long)v, 1);
}

#endif /* LOOM_JIT_ENGINE_H */
