/*
 * gemm.h — matrix products generated for one exact problem: shapes,
 * transposes, dtype, leading dimensions and epilogue are constants in the
 * code, so the micro-kernel is register-tiled for this CPU's vector width
 * with no run-time dispatch. Operands are packed into panels (in the
 * per-thread scratch) where that pays, or B once for many calls by a
 * kernel of its own (bpack); every transpose combination is handled by
 * the packing and the loads, never by a copy in the graph.
 *
 * The kernel has the engine's signature: bufs[0] = A, bufs[1] = B,
 * bufs[2] = C, bufs[3] = bias (when the spec has one); its work items are
 * blocks of C (jit_gemm_work), which threads split; scratch is at least
 * jit_gemm_scratch bytes per thread.
 */
#ifndef LOOM_JIT_GEMM_H
#define LOOM_JIT_GEMM_H

#include "engine.h"

typedef enum jit_act {
    JIT_ACT_NONE = 0,
    JIT_ACT_RELU,
    JIT_ACT_TANH,
    JIT_ACT_SIGMOID,
} jit_act;

/* C[p] (=|+=) act(op(A[p]) · op(B[p]) + bias) for p < batch, row-major:
 *   op(A) is M x K: A is [M, K] with row stride lda, or [K, M] when ta;
 *   op(B) is K x N: B is [K, N] with row stride ldb, or [N, K] when tb;
 *   C is [M, N] with row stride ldc; bias is [N].
 * Leading dimensions of 0 mean "packed" (the row length); batch strides of
 * 0 mean consecutive matrices. Elements are f32 or f64. */
typedef struct jit_gemm_spec {
    loom_dtype dtype;
    int64_t batch, m, n, k;
    bool ta, tb;
    int64_t lda, ldb, ldc;
    int64_t stride_a, stride_b, stride_c; /* between batch members, in elements */
    bool accumulate; /* C += op(A) op(B) (+ bias) */
    bool bias;
    jit_act act;     /* applied after bias; with accumulate, act must be NONE */
    int bpack;       /* KN_BPACK_* (plan.h): PACK: the kernel only packs op(B) (bufs[1]) into
                        bufs[2] in kn_gemm_b_layout's layout; PACKED: bufs[1] is such a buffer
                        (batch 1 in both) */
} jit_gemm_spec;

/* Checks a spec (shapes positive, strides large enough, act with
 * accumulate); LOOM_ERR_ARG with a message otherwise. */
loom_code jit_gemm_check(const jit_gemm_spec *s, lm_err *err);

/* Work items of the kernel (threads split [0, work)). */
int64_t jit_gemm_work(const jit_gemm_spec *s);

/* Scratch bytes one thread needs (0 if none). */
size_t jit_gemm_scratch(const jit_gemm_spec *s);

/* Emits kernel `name` computing s into module m. */
loom_code jit_gemm_emit(jit_engine *e, LLVMModuleRef m, const char *name, const jit_gemm_spec *s);

#endif /* LOOM_JIT_GEMM_H */
