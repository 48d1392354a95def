/*
 * vmath.h — elementary functions as LLVM IR: polynomial code built inline
 * at the builder's position, branch-free (selects only), for float or
 * double scalars or vectors of any width. No libm call is emitted, so a
 * loop using them vectorizes, and an ahead-of-time object needs no libm.
 *
 * Accuracy (max error measured over dense samples, stated in vmath.c):
 * f32 within a few ulp, f64 within ~1e-15 relative. Special values follow
 * C: exp overflows to +inf and underflows to 0, log(0) = -inf, log(x < 0)
 * and log(NaN) = NaN, tanh and sigmoid saturate, NaN propagates.
 */
#ifndef LOOM_JIT_VMATH_H
#define LOOM_JIT_VMATH_H

#include "engine.h"

LLVMValueRef jv_exp(jit_engine *e, LLVMBuilderRef b, LLVMValueRef x);
LLVMValueRef jv_log(jit_engine *e, LLVMBuilderRef b, LLVMValueRef x);
LLVMValueRef jv_log1p(jit_engine *e, LLVMBuilderRef b, LLVMValueRef x);
LLVMValueRef jv_tanh(jit_engine *e, LLVMBuilderRef b, LLVMValueRef x);
LLVMValueRef jv_sigmoid(jit_engine *e, LLVMBuilderRef b, LLVMValueRef x);
LLVMValueRef jv_sin(jit_engine *e, LLVMBuilderRef b, LLVMValueRef x);
LLVMValueRef jv_cos(jit_engine *e, LLVMBuilderRef b, LLVMValueRef x);

#endif /* LOOM_JIT_VMATH_H */
