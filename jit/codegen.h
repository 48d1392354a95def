/*
 * codegen.h — kernels to LLVM IR, inside jit/.
 */
#ifndef LOOM_JIT_CODEGEN_H
#define LOOM_JIT_CODEGEN_H

#include "engine.h"
#include "jit.h"

/* Emits kernel k as function `name` into m (the JIT's modules and, later,
 * ahead-of-time objects). Sets *work and *scratch. */
loom_code jit_emit_kernel(jit_engine *e, LLVMModuleRef m, const char *name, const kernel *k,
                          int64_t *work, size_t *scratch);

#endif /* LOOM_JIT_CODEGEN_H */
