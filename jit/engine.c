/*
 * engine.c — the LLVM target machine, the optimisation pipeline and ORC
 * LLJIT behind every compiled kernel.
 */
#include "engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <llvm-c/Support.h>

static pthread_once_t llvm_once = PTHREAD_ONCE_INIT;
static bool llvm_ready;

static void llvm_init(void)
{
    llvm_ready = !LLVMInitializeNativeTarget() && !LLVMInitializeNativeAsmPrinter() &&
                 !LLVMInitializeNativeAsmParser();
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

const char *jit_llvm_version(void)
{
    static char v[32];
    if (!v[0]) {
        unsigned maj, min, pat;
        LLVMGetVersion(&maj, &min, &pat);
        snprintf(v, sizeof v, "%u.%u.%u", maj, min, pat);
    }
    return v;
}

loom_code jit_error(jit_engine *e, LLVMErrorRef er, const char *what)
{
    char *msg = LLVMGetErrorMessage(er); /* consumes er */
    loom_code c = lm_fail(e->err, LOOM_ERR_INTERNAL, "jit: %s: %s", what, msg ? msg : "(no message)");
    LLVMDisposeErrorMessage(msg);
    return c;
}

static char *keep(jit_engine *e, char *llvm_string)
{
    char *s = llvm_string ? lm_strdup(&e->mem, llvm_string) : NULL;
    LLVMDisposeMessage(llvm_string);
    return s;
}

static LLVMTargetMachineRef make_tm(jit_engine *e, LLVMCodeModel model)
{
    LLVMTargetRef target;
    char *msg = NULL;
    if (LLVMGetTargetFromTriple(e->triple, &target, &msg)) {
        lm_fail(e->err, LOOM_ERR_UNSUPPORTED, "jit: no target for %s: %s", e->triple, msg ? msg : "");
        LLVMDisposeMessage(msg);
        return NULL;
    }
    static const LLVMCodeGenOptLevel levels[] = { LLVMCodeGenLevelNone, LLVMCodeGenLevelLess,
                                                  LLVMCodeGenLevelDefault, LLVMCodeGenLevelAggressive };
    return LLVMCreateTargetMachine(target, e->triple, e->cpu, e->features, levels[e->opt_level],
                                   LLVMRelocPIC, model);
}

jit_engine *jit_engine_new(lm_mem mem, lm_err *err, const char *cpu, int opt_level)
{
    mem.err = err;
    pthread_once(&llvm_once, llvm_init);
    if (!llvm_ready) {
        lm_fail(err, LOOM_ERR_UNSUPPORTED, "jit: LLVM has no native target in this build");
        return NULL;
    }
    jit_engine *e = lm_zalloc(&mem, sizeof *e);
    if (!e)
        return NULL;
    e->mem = mem;
    e->err = err;
    e->opt_level = opt_level < 0 ? 0 : opt_level > 3 ? 3 : opt_level;
    e->triple = keep(e, LLVMGetDefaultTargetTriple());
    bool host = !cpu || !strcmp(cpu, "host");
    e->cpu = host ? keep(e, LLVMGetHostCPUName()) : lm_strdup(&e->mem, cpu);
    e->features = host ? keep(e, LLVMGetHostCPUFeatures()) : lm_strdup(&e->mem, "");
    if (!e->triple || !e->cpu || !e->features)
        goto fail;
    e->tm = make_tm(e, LLVMCodeModelDefault);
    if (!e->tm)
        goto fail;
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(e->tm);
    e->layout = keep(e, LLVMCopyStringRepOfTargetData(td));
    LLVMDisposeTargetData(td);

    /* The JIT gets a target machine of its own with the same settings. */
    LLVMTargetMachineRef jtm = make_tm(e, LLVMCodeModelJITDefault);
    if (!jtm)
        goto fail;
    LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder,
                                                  LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(jtm));
    LLVMErrorRef er = LLVMOrcCreateLLJIT(&e->jit, builder); /* consumes builder */
    if (er) {
        jit_error(e, er, "creating the LLJIT");
        e->jit = NULL;
        goto fail;
    }
    /* kernels may end up calling memset/memcpy: resolve them in-process */
    LLVMOrcDefinitionGeneratorRef gen;
    er = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(e->jit), NULL,
                                                               NULL);
    if (er) {
        jit_error(e, er, "process symbol generator");
        goto fail;
    }
    LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(e->jit), gen);
    e->tsc = LLVMOrcCreateNewThreadSafeContext();
    e->ctx = LLVMOrcThreadSafeContextGetContext(e->tsc);
    return e;
fail:
    jit_engine_free(e);
    return NULL;
}

void jit_engine_free(jit_engine *e)
{
    if (!e)
        return;
    if (e->jit) {
        LLVMErrorRef er = LLVMOrcDisposeLLJIT(e->jit);
        if (er)
            jit_error(e, er, "disposing of the LLJIT");
    }
    if (e->tsc)
        LLVMOrcDisposeThreadSafeContext(e->tsc);
    if (e->tm)
        LLVMDisposeTargetMachine(e->tm);
    char **strs[] = { &e->triple, &e->cpu, &e->features, &e->layout };
    for (size_t i = 0; i < LM_ARRAY_LEN(strs); i++)
        if (*strs[i])
            lm_free(&e->mem, *strs[i], strlen(*strs[i]) + 1);
    lm_mem m = e->mem;
    lm_free(&m, e, sizeof *e);
}

LLVMModuleRef jit_module_new(jit_engine *e, const char *name)
{
    LLVMModuleRef m = LLVMModuleCreateWithNameInContext(name, e->ctx);
    LLVMSetTarget(m, e->triple);
    LLVMSetDataLayout(m, e->layout);
    return m;
}

static void add_fn_attr(jit_engine *e, LLVMValueRef fn, const char *k, const char *v)
{
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(e->ctx, k, (unsigned)strlen(k), v, (unsigned)strlen(v)));
}

static void add_enum_attr(jit_engine *e, LLVMValueRef fn, unsigned idx, const char *name)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(e->ctx, kind, 0));
}

LLVMValueRef jit_kernel_begin(jit_engine *e, LLVMModuleRef m, LLVMBuilderRef b, const char *name)
{
    LLVMTypeRef params[4] = { jit_ptr(e), jit_i64(e), jit_i64(e), jit_ptr(e) };
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(e->ctx), params, 4, 0);
    LLVMValueRef fn = LLVMAddFunction(m, name, fty);
    add_enum_attr(e, fn, LLVMAttributeFunctionIndex, "nounwind");
    add_enum_attr(e, fn, LLVMAttributeFunctionIndex, "nofree");
    add_enum_attr(e, fn, LLVMAttributeFunctionIndex, "nosync");
    add_enum_attr(e, fn, 1, "nocapture");
    add_enum_attr(e, fn, 1, "readonly");
    add_fn_attr(e, fn, "target-cpu", e->cpu);
    if (e->features[0])
        add_fn_attr(e, fn, "target-features", e->features);
    add_fn_attr(e, fn, "prefer-vector-width", "512");
    add_fn_attr(e, fn, "min-legal-vector-width", "512");
    LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(e->ctx, fn, "entry"));
    return fn;
}

/* JIT_PIPE_LOOPS: the body function inlined into the entry point, then
 * the loop nests canonicalised (rotated, invariants hoisted, induction
 * variables simplified) for the vectorizer, and the result cleaned up */
static const char LOOPS_PIPELINE[] =
    "always-inline,function(sroa,early-cse,instcombine<no-verify-fixpoint>,simplifycfg,loop-simplify,lcssa,"
    "loop-rotate,loop-mssa(licm),indvars,loop-vectorize,instcombine<no-verify-fixpoint>,simplifycfg,early-cse)";

loom_code jit_module_optimize(jit_engine *e, LLVMModuleRef m, jit_pipeline pipe)
{
    char *msg = NULL;
    if (LLVMVerifyModule(m, LLVMReturnStatusAction, &msg)) {
        loom_code c = lm_fail(e->err, LOOM_ERR_INTERNAL, "jit: generated IR does not verify: %.300s",
                              msg ? msg : "");
        LLVMDisposeMessage(msg);
        return c;
    }
    LLVMDisposeMessage(msg);
    char pipeline[32];
    snprintf(pipeline, sizeof pipeline, "default<O%d>", e->opt_level);
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(opts, e->opt_level >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(opts, e->opt_level >= 2);
    LLVMPassBuilderOptionsSetLoopInterleaving(opts, e->opt_level >= 2);
    LLVMPassBuilderOptionsSetLoopUnrolling(opts, e->opt_level >= 2);
    bool loops = pipe == JIT_PIPE_LOOPS && e->opt_level >= 2;
    LLVMErrorRef er = LLVMRunPasses(m, loops ? LOOPS_PIPELINE : pipeline, e->tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    return er ? jit_error(e, er, "optimising") : LOOM_OK;
}

#if defined(__SANITIZE_THREAD__)
#define JIT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define JIT_TSAN 1
#endif
#endif

#ifdef JIT_TSAN
/* In a ThreadSanitizer build the kernels are instrumented too, so that a
 * race between the shares of a parallel kernel is reported like one in C
 * (the runtime's __tsan_* entry points resolve in the process, and it is
 * initialised already: no tsan-module pass, whose constructor would clash
 * between modules). TSan checks accesses of up to 16 bytes only: vectors
 * and masked accesses are split into scalars first. */
static void tsan_options(void)
{
    /* process-wide flags, as LLVM 19's pipeline text cannot say these: the
     * scalarizer splits loads and stores too; memset and memcpy stay calls
     * of the C library's (which TSan intercepts and checks) rather than of
     * __tsan_memset and __tsan_memcpy, which gcc's TSan runtime lacks */
    const char *argv[] = { "loom", "-scalarize-load-store", "-tsan-instrument-memintrinsics=false" };
    LLVMParseCommandLineOptions(3, argv, NULL);
}

static loom_code jit_instrument_tsan(jit_engine *e, LLVMModuleRef m)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, tsan_options);
    for (LLVMValueRef f = LLVMGetFirstFunction(m); f; f = LLVMGetNextFunction(f))
        if (!LLVMIsDeclaration(f))
            add_enum_attr(e, f, LLVMAttributeFunctionIndex, "sanitize_thread");
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    LLVMErrorRef er = LLVMRunPasses(
        m, "function(scalarize-masked-mem-intrin,scalarizer,tsan)", e->tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    return er ? jit_error(e, er, "instrumenting for ThreadSanitizer") : LOOM_OK;
}
#endif

loom_code jit_module_add(jit_engine *e, LLVMModuleRef m, jit_pipeline pipe)
{
    double t0 = now_ms();
    loom_code c = jit_module_optimize(e, m, pipe);
#ifdef JIT_TSAN
    if (c == LOOM_OK)
        c = jit_instrument_tsan(e, m);
#endif
    if (c != LOOM_OK) {
        LLVMDisposeModule(m);
        return c;
    }
    /* LOOM_JIT_DUMP=file: the optimised IR of every module, appended */
    const char *dump = getenv("LOOM_JIT_DUMP");
    if (dump && *dump) {
        static pthread_mutex_t dump_lock = PTHREAD_MUTEX_INITIALIZER; /* engines compile on several threads */
        char *text = LLVMPrintModuleToString(m);
        pthread_mutex_lock(&dump_lock);
        FILE *f = fopen(dump, "a");
        if (f) {
            fputs(text, f);
            fclose(f);
        }
        pthread_mutex_unlock(&dump_lock);
        LLVMDisposeMessage(text);
    }
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(m, e->tsc);
    LLVMErrorRef er = LLVMOrcLLJITAddLLVMIRModule(e->jit, LLVMOrcLLJITGetMainJITDylib(e->jit), tsm);
    if (er) {
        LLVMOrcDisposeThreadSafeModule(tsm);
        return jit_error(e, er, "adding a module");
    }
    e->modules++;
    e->compile_ms += now_ms() - t0;
    return LOOM_OK;
}

void *jit_lookup(jit_engine *e, const char *name)
{
    double t0 = now_ms();
    LLVMOrcExecutorAddress addr = 0;
    LLVMErrorRef er = LLVMOrcLLJITLookup(e->jit, &addr, name); /* compiles on first lookup */
    e->compile_ms += now_ms() - t0;
    if (er) {
        jit_error(e, er, "looking up a kernel");
        return NULL;
    }
    return (void *)(uintptr_t)addr;
}
