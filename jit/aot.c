/*
 * aot.c — ahead-of-time objects (aot.h): the kernels of every entry's
 * plan, emitted once each by jit_emit_kernel (the JIT's emitter, so the
 * math is one code path), an entry function per plan written in IR, the
 * weights as a constant when embedded, and the module compiled by a
 * TargetMachine for the chosen CPU into a PIC object image.
 *
 * Kernels keep external linkage with hidden visibility and are never
 * inlined into an entry: their code is then exactly what the JIT makes
 * for the same CPU (no constant lo/hi propagated into a reduction would
 * change how it is vectorised, nor its rounding), and two models linked
 * into one binary keep theirs apart through the prefix in the name.
 */
#include "aot.h"

#include <stdio.h>

#include "codegen.h"

/* CPU names an object may be built for. LLVM's C API cannot tell a CPU
 * name it does not know (it prints a warning and builds for a generic
 * CPU), so the accepted names are listed; "host" is this machine with
 * its features. */
static const char *const x86_cpus[] = {
    "x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4", "haswell", "broadwell", "skylake", "skylake-avx512",
    "cascadelake", "icelake-server", "sapphirerapids", "znver2", "znver3", "znver4", "znver5",
};

bool aot_cpu_known(const char *cpu)
{
    if (!cpu || !strcmp(cpu, "host"))
        return true;
    char *triple = LLVMGetDefaultTargetTriple();
    bool x86 = triple && !strncmp(triple, "x86_64", 6);
    LLVMDisposeMessage(triple);
    for (size_t i = 0; x86 && i < LM_ARRAY_LEN(x86_cpus); i++)
        if (!strcmp(cpu, x86_cpus[i]))
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* Kernels, shared between entries                                    */
/* ------------------------------------------------------------------ */

typedef struct aot_kernel {
    uint64_t hash[2];
    LLVMValueRef fn;
    int64_t work;
    size_t scratch;
} aot_kernel;

typedef struct aot_gen {
    lm_mem mem;
    lm_err *err;
    jit_engine *e;
    LLVMModuleRef m;
    LLVMBuilderRef b;
    const aot_object *o;
    aot_kernel *ks;
    size_t nks, ks_cap;
    LLVMValueRef blob; /* the embedded weights, or NULL */
} aot_gen;

static void add_attr(aot_gen *g, LLVMValueRef fn, unsigned idx, const char *name)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(g->e->ctx, kind, 0));
}

static void add_str_attr(aot_gen *g, LLVMValueRef fn, const char *k, const char *v)
{
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateStringAttribute(g->e->ctx, k, (unsigned)strlen(k), v, (unsigned)strlen(v)));
}

/* The index in g->ks (which may move as it grows) of the compiled kernel
 * k: emitted on first sight, found by hash after. -1 on error. */
static long kernel_get(aot_gen *g, const kernel *k)
{
    for (size_t i = 0; i < g->nks; i++)
        if (g->ks[i].hash[0] == k->hash[0] && g->ks[i].hash[1] == k->hash[1])
            return (long)i;
    if (!LM_GROW(&g->mem, g->ks, g->ks_cap, g->nks + 1))
        return -1;
    aot_kernel *ak = &g->ks[g->nks];
    char name[160];
    snprintf(name, sizeof name, "%s_k%016llx%016llx", g->o->prefix, (unsigned long long)k->hash[1],
             (unsigned long long)k->hash[0]);
    if (jit_emit_kernel(g->e, g->m, name, k, &ak->work, &ak->scratch) != LOOM_OK)
        return -1;
    ak->fn = LLVMGetNamedFunction(g->m, name);
    if (!ak->fn) {
        lm_fail(g->err, LOOM_ERR_INTERNAL, "aot: kernel %s was not emitted", name);
        return -1;
    }
    LLVMSetVisibility(ak->fn, LLVMHiddenVisibility);
    add_attr(g, ak->fn, LLVMAttributeFunctionIndex, "noinline");
    ak->hash[0] = k->hash[0];
    ak->hash[1] = k->hash[1];
    return (long)g->nks++;
}

/* ------------------------------------------------------------------ */
/* Entry functions                                                    */
/* ------------------------------------------------------------------ */

static LLVMValueRef i64c(aot_gen *g, uint64_t v) { return LLVMConstInt(jit_i64(g->e), v, 0); }
static LLVMValueRef i32c(aot_gen *g, uint32_t v) { return LLVMConstInt(jit_i32(g->e), v, 0); }

static LLVMValueRef byte_gep(aot_gen *g, LLVMValueRef base, uint64_t off)
{
    if (!off)
        return base;
    LLVMValueRef ix = i64c(g, off);
    return LLVMBuildInBoundsGEP2(g->b, LLVMInt8TypeInContext(g->e->ctx), base, &ix, 1, "");
}

/* `if (cond) return code;` then go on in a new block. */
static void return_if(aot_gen *g, LLVMValueRef fn, LLVMValueRef cond, uint32_t code)
{
    LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(g->e->ctx, fn, "fail");
    LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(g->e->ctx, fn, "ok");
    LLVMBuildCondBr(g->b, cond, bad, ok);
    LLVMPositionBuilderAtEnd(g->b, bad);
    LLVMBuildRet(g->b, i32c(g, code));
    LLVMPositionBuilderAtEnd(g->b, ok);
}

/* ptr is NULL or not AOT_ALIGN-aligned. */
static LLVMValueRef misaligned(aot_gen *g, LLVMValueRef p)
{
    LLVMValueRef v = LLVMBuildPtrToInt(g->b, p, jit_i64(g->e), "");
    LLVMValueRef low = LLVMBuildAnd(g->b, v, i64c(g, AOT_ALIGN - 1), "");
    return LLVMBuildOr(g->b, LLVMBuildICmp(g->b, LLVMIntEQ, v, i64c(g, 0), ""),
                       LLVMBuildICmp(g->b, LLVMIntNE, low, i64c(g, 0), ""), "");
}

static loom_code emit_entry(aot_gen *g, aot_entry *en)
{
    const plan *p = en->p;
    jit_engine *e = g->e;
    LLVMTypeRef ptr = jit_ptr(e);
    /* the kernels first: their scratch sizes the memory */
    long *kk = lm_zalloc(&g->mem, (p->nkernels + 1) * sizeof *kk); /* indices into g->ks */
    if (!kk)
        return g->err->code;
    size_t scratch = 0;
    en->has_status = false;
    for (size_t i = 0; i < p->nkernels; i++) {
        if ((kk[i] = kernel_get(g, &p->kernels[i])) < 0) {
            lm_free(&g->mem, kk, (p->nkernels + 1) * sizeof *kk);
            return g->err->code;
        }
        scratch = LM_MAX(scratch, g->ks[kk[i]].scratch);
        en->has_status |= p->kernels[i].kind == KN_GATHER || p->kernels[i].kind == KN_SCATTER;
    }
    en->kernels = (uint32_t)p->nkernels;
    en->scratch_at = (p->arena_bytes + AOT_ALIGN - 1) & ~(uint64_t)(AOT_ALIGN - 1);
    en->scratch_bytes = ((uint64_t)scratch + AOT_ALIGN - 1) & ~(uint64_t)(AOT_ALIGN - 1);
    en->memory_bytes = en->scratch_at + en->scratch_bytes;
    if (!en->memory_bytes)
        en->memory_bytes = AOT_ALIGN; /* a valid, non-empty block all the same */

    unsigned nparams = 2 + en->ninputs + (unsigned)p->noutputs;
    LLVMTypeRef *pt = lm_alloc(&g->mem, nparams * sizeof *pt);
    LLVMValueRef *base = lm_alloc(&g->mem, (p->nbuffers + 1) * sizeof *base);
    if (!pt || !base) {
        lm_free(&g->mem, pt, nparams * sizeof *pt);
        lm_free(&g->mem, kk, (p->nkernels + 1) * sizeof *kk);
        return g->err->code;
    }
    for (unsigned i = 0; i < nparams; i++)
        pt[i] = ptr;
    LLVMValueRef fn = LLVMAddFunction(g->m, en->symbol, LLVMFunctionType(jit_i32(e), pt, nparams, 0));
    add_attr(g, fn, LLVMAttributeFunctionIndex, "nounwind");
    add_str_attr(g, fn, "target-cpu", e->cpu);
    if (e->features[0])
        add_str_attr(g, fn, "target-features", e->features);
    LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(e->ctx, fn, "entry"));
    LLVMValueRef argv = LLVMBuildArrayAlloca(g->b, ptr, i64c(g, p->nargs ? p->nargs : 1), "argv");
    LLVMSetAlignment(argv, 16);

    /* memory and weights */
    LLVMValueRef mem = LLVMGetParam(fn, 0), w = LLVMGetParam(fn, 1);
    return_if(g, fn, misaligned(g, mem), AOT_E_MEMORY);
    if (g->blob && !p->ncommits) /* a training step never writes into the object's constant */
        w = LLVMBuildSelect(g->b, LLVMBuildIsNull(g->b, w, ""), g->blob, w, "weights");
    return_if(g, fn, misaligned(g, w), AOT_E_WEIGHTS);

    /* every buffer's base, then every kernel argument */
    for (size_t i = 0; i < p->nbuffers; i++) {
        const aot_loc *l = &en->buffers[i];
        base[i] = l->where == AOT_MEMORY ? byte_gep(g, mem, l->at)
                  : l->where == AOT_ARG  ? LLVMGetParam(fn, 2 + (unsigned)l->at)
                                         : byte_gep(g, w, l->at);
    }
    for (size_t i = 0; i < p->nargs; i++) {
        LLVMValueRef ix = i64c(g, i);
        LLVMValueRef slot = LLVMBuildInBoundsGEP2(g->b, ptr, argv, &ix, 1, "");
        LLVMSetAlignment(LLVMBuildStore(g->b, byte_gep(g, base[p->args[i].buffer], p->args[i].offset), slot), 8);
    }
    LLVMValueRef status = byte_gep(g, mem, p->status_offset);
    if (en->has_status)
        LLVMBuildMemSet(g->b, status, LLVMConstInt(LLVMInt8TypeInContext(e->ctx), 0, 0), i64c(g, 16), 4);

    /* the calls, in plan order, each over its whole work range */
    LLVMValueRef scr = byte_gep(g, mem, en->scratch_at);
    for (size_t i = 0; i < p->ncalls; i++) {
        const aot_kernel *k = &g->ks[kk[p->calls[i].kernel]];
        if (k->work <= 0)
            continue;
        LLVMValueRef ix = i64c(g, p->calls[i].arg);
        LLVMValueRef a[4] = { LLVMBuildInBoundsGEP2(g->b, ptr, argv, &ix, 1, ""), i64c(g, 0),
                              i64c(g, (uint64_t)k->work), scr };
        LLVMBuildCall2(g->b, LLVMGlobalGetValueType(k->fn), k->fn, a, 4, "");
    }
    if (en->has_status) {
        LLVMValueRef s = LLVMBuildLoad2(g->b, jit_i32(e), status, "");
        LLVMSetAlignment(s, 4);
        return_if(g, fn, LLVMBuildICmp(g->b, LLVMIntNE, s, i32c(g, 0), ""), AOT_E_INDEX);
    }
    /* outputs after every read of the inputs: a state may be carried in
     * place (h_out the same memory as h_in) */
    for (size_t i = 0; i < p->noutputs; i++) {
        const plan_output *o = &p->outputs[i];
        LLVMBuildMemMove(g->b, LLVMGetParam(fn, 2 + en->ninputs + (unsigned)i), 1,
                         byte_gep(g, base[o->buffer], o->offset), 1, i64c(g, en->output_bytes[i]));
    }
    for (size_t i = 0; i < p->ncommits; i++) {
        const plan_commit *c = &p->commits[i];
        LLVMBuildMemMove(g->b, byte_gep(g, w, en->commit_at[i]), 1, byte_gep(g, base[c->buffer], c->offset), 1,
                         i64c(g, c->bytes));
    }
    LLVMBuildRet(g->b, i32c(g, AOT_OK));
    lm_free(&g->mem, base, (p->nbuffers + 1) * sizeof *base);
    lm_free(&g->mem, pt, nparams * sizeof *pt);
    lm_free(&g->mem, kk, (p->nkernels + 1) * sizeof *kk);
    return LOOM_OK;
}

/* `T name(void) { return v; }` */
static void emit_getter(aot_gen *g, const char *suffix, LLVMTypeRef t, LLVMValueRef v)
{
    char name[160];
    snprintf(name, sizeof name, "%s_%s", g->o->prefix, suffix);
    LLVMValueRef fn = LLVMAddFunction(g->m, name, LLVMFunctionType(t, NULL, 0, 0));
    add_attr(g, fn, LLVMAttributeFunctionIndex, "nounwind");
    LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->e->ctx, fn, "entry"));
    LLVMBuildRet(g->b, v);
}

/* ------------------------------------------------------------------ */
/* The object                                                         */
/* ------------------------------------------------------------------ */

loom_code aot_emit(lm_mem mem, lm_err *err, aot_object *o, void **image, size_t *bytes)
{
    mem.err = err;
    *image = NULL;
    *bytes = 0;
    if (!aot_cpu_known(o->cpu))
        return lm_fail(err, LOOM_ERR_ARG, "aot: unknown CPU \"%s\"", o->cpu);
    aot_gen g = { .mem = mem, .err = err, .o = o };
    g.e = jit_engine_new(mem, err, o->cpu, o->opt_level);
    if (!g.e)
        return err->code;
    snprintf(o->cpu_name, sizeof o->cpu_name, "%s", g.e->cpu);
    g.m = jit_module_new(g.e, o->prefix);
    g.b = LLVMCreateBuilderInContext(g.e->ctx);
    LLVMContextRef cx = g.e->ctx;
    loom_code c = LOOM_OK;

    /* PIC/PIE module flags, so code generation agrees with the target
     * machine's relocation model */
    LLVMAddModuleFlag(g.m, LLVMModuleFlagBehaviorError, "PIC Level", 9, LLVMValueAsMetadata(i32c(&g, 2)));
    if (o->weights) {
        if (o->weights_bytes > UINT32_MAX) {
            c = lm_fail(err, LOOM_ERR_UNSUPPORTED, "aot: %llu bytes of weights are too many to embed; "
                        "write them to a file of their own", (unsigned long long)o->weights_bytes);
            goto done;
        }
        LLVMValueRef init = LLVMConstStringInContext2(cx, o->weights, (size_t)o->weights_bytes, 1);
        char name[160];
        snprintf(name, sizeof name, "%s_weights_data", o->prefix);
        g.blob = LLVMAddGlobal(g.m, LLVMTypeOf(init), name);
        LLVMSetInitializer(g.blob, init);
        LLVMSetGlobalConstant(g.blob, 1);
        LLVMSetLinkage(g.blob, LLVMPrivateLinkage);
        LLVMSetUnnamedAddress(g.blob, LLVMGlobalUnnamedAddr);
        LLVMSetAlignment(g.blob, AOT_ALIGN);
    }
    for (uint32_t i = 0; i < o->nentries && c == LOOM_OK; i++)
        c = emit_entry(&g, &o->entries[i]);
    if (c != LOOM_OK)
        goto done;
    o->kernels = (uint32_t)g.nks;
    emit_getter(&g, "graph_hash", jit_i64(g.e), i64c(&g, o->graph_hash));
    emit_getter(&g, "format_version", jit_i32(g.e), i32c(&g, AOT_FORMAT_VERSION));
    emit_getter(&g, "weights", jit_ptr(g.e), g.blob ? g.blob : LLVMConstPointerNull(jit_ptr(g.e)));
    emit_getter(&g, "weights_bytes", jit_i64(g.e), i64c(&g, o->weights_bytes));

    if ((c = jit_module_optimize(g.e, g.m)) != LOOM_OK)
        goto done;
    char *msg = NULL;
    LLVMMemoryBufferRef mb = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(g.e->tm, g.m, LLVMObjectFile, &msg, &mb)) {
        c = lm_fail(err, LOOM_ERR_INTERNAL, "aot: LLVM could not write the object: %s", msg ? msg : "");
        LLVMDisposeMessage(msg);
        goto done;
    }
    size_t n = LLVMGetBufferSize(mb);
    if ((*image = lm_alloc(&mem, n ? n : 1)) != NULL) {
        memcpy(*image, LLVMGetBufferStart(mb), n);
        *bytes = n;
    } else {
        c = err->code;
    }
    LLVMDisposeMemoryBuffer(mb);
done:
    LLVMDisposeBuilder(g.b);
    LLVMDisposeModule(g.m);
    lm_free(&mem, g.ks, g.ks_cap * sizeof *g.ks);
    jit_engine_free(g.e);
    return c;
}
