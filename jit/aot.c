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

/* A private constant array of n elements of type t. */
static LLVMValueRef const_table(aot_gen *g, const char *what, LLVMTypeRef t, LLVMValueRef *vals, size_t n)
{
    LLVMValueRef init = LLVMConstArray2(t, vals, n);
    LLVMValueRef gv = LLVMAddGlobal(g->m, LLVMTypeOf(init), what);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
    LLVMSetAlignment(gv, 8);
    return gv;
}

static LLVMValueRef load_at(aot_gen *g, LLVMTypeRef t, LLVMValueRef table, LLVMValueRef i, unsigned align)
{
    LLVMValueRef v = LLVMBuildLoad2(g->b, t, LLVMBuildInBoundsGEP2(g->b, t, table, &i, 1, ""), "");
    LLVMSetAlignment(v, align);
    return v;
}

/* A counted loop over [0, n) (n > 0) in fn: returns the index; the body
 * goes where the builder is left, then loop_end. */
typedef struct aot_loop {
    LLVMBasicBlockRef head;
    LLVMValueRef i;
    uint64_t n;
} aot_loop;

static LLVMValueRef loop_begin(aot_gen *g, LLVMValueRef fn, aot_loop *l, uint64_t n)
{
    LLVMBasicBlockRef from = LLVMGetInsertBlock(g->b);
    l->head = LLVMAppendBasicBlockInContext(g->e->ctx, fn, "loop");
    l->n = n;
    LLVMBuildBr(g->b, l->head);
    LLVMPositionBuilderAtEnd(g->b, l->head);
    l->i = LLVMBuildPhi(g->b, jit_i64(g->e), "i");
    LLVMValueRef zero = i64c(g, 0);
    LLVMAddIncoming(l->i, &zero, &from, 1);
    return l->i;
}

static void loop_end(aot_gen *g, LLVMValueRef fn, aot_loop *l)
{
    LLVMValueRef next = LLVMBuildNUWAdd(g->b, l->i, i64c(g, 1), "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b), after = LLVMAppendBasicBlockInContext(g->e->ctx, fn, "after");
    LLVMAddIncoming(l->i, &next, &latch, 1);
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntULT, next, i64c(g, l->n), ""), l->head, after);
    LLVMPositionBuilderAtEnd(g->b, after);
}

/* The entry function. It is table driven, as runtime/exec.c is: every
 * kernel argument's pointer from constant tables (where: memory, an
 * argument, the weights; which argument; the byte offset) into an array in
 * the caller's memory, then the calls from a table of (kernel, first
 * argument, work items). Straight-line code for thousands of arguments
 * and calls (a T=64 sequence) took LLVM's optimiser half a minute; the
 * loops take no time, and per run they cost about a nanosecond an
 * argument. */
static loom_code emit_entry(aot_gen *g, aot_entry *en)
{
    const plan *p = en->p;
    jit_engine *e = g->e;
    LLVMContextRef cx = e->ctx;
    LLVMTypeRef ptr = jit_ptr(e), i64 = jit_i64(e), i32 = jit_i32(e), i8 = LLVMInt8TypeInContext(cx);
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
    /* memory: the arena, the kernels' scratch, the argument pointers */
    uint64_t a64 = AOT_ALIGN - 1;
    en->scratch_at = (p->arena_bytes + a64) & ~a64;
    en->scratch_bytes = ((uint64_t)scratch + a64) & ~a64;
    uint64_t argv_at = en->scratch_at + en->scratch_bytes;
    en->memory_bytes = argv_at + (((uint64_t)p->nargs * 8 + a64) & ~a64);
    if (!en->memory_bytes)
        en->memory_bytes = AOT_ALIGN; /* a valid, non-empty block all the same */

    /* the tables */
    size_t nt = p->nargs + p->ncalls + 1;
    LLVMValueRef *kinds = lm_alloc(&g->mem, nt * sizeof *kinds), *idx = lm_alloc(&g->mem, nt * sizeof *idx);
    LLVMValueRef *offs = lm_alloc(&g->mem, nt * sizeof *offs);
    unsigned nparams = 2 + en->ninputs + (unsigned)p->noutputs;
    LLVMTypeRef *pt = lm_alloc(&g->mem, nparams * sizeof *pt);
    if (!kinds || !idx || !offs || !pt) {
        lm_free(&g->mem, kinds, nt * sizeof *kinds);
        lm_free(&g->mem, idx, nt * sizeof *idx);
        lm_free(&g->mem, offs, nt * sizeof *offs);
        lm_free(&g->mem, pt, nparams * sizeof *pt);
        lm_free(&g->mem, kk, (p->nkernels + 1) * sizeof *kk);
        return g->err->code;
    }
    for (size_t i = 0; i < p->nargs; i++) {
        const aot_loc *l = &en->buffers[p->args[i].buffer];
        kinds[i] = LLVMConstInt(i8, l->where, 0);
        idx[i] = LLVMConstInt(i32, l->where == AOT_ARG ? l->at : 0, 0);
        offs[i] = i64c(g, (l->where == AOT_ARG ? 0 : l->at) + p->args[i].offset);
    }
    char name[200];
    LLVMValueRef t_kind = NULL, t_idx = NULL, t_off = NULL, t_calls = NULL;
    if (p->nargs) {
        snprintf(name, sizeof name, "%s.arg_where", en->symbol);
        t_kind = const_table(g, name, i8, kinds, p->nargs);
        snprintf(name, sizeof name, "%s.arg_index", en->symbol);
        t_idx = const_table(g, name, i32, idx, p->nargs);
        snprintf(name, sizeof name, "%s.arg_offset", en->symbol);
        t_off = const_table(g, name, i64, offs, p->nargs);
    }
    LLVMTypeRef call_t = LLVMStructTypeInContext(cx, (LLVMTypeRef[]){ ptr, i64, i64 }, 3, 0);
    size_t ncalls = 0;
    for (size_t i = 0; i < p->ncalls; i++) {
        const aot_kernel *k = &g->ks[kk[p->calls[i].kernel]];
        if (k->work > 0) /* nothing to do */
            kinds[ncalls++] = LLVMConstStructInContext(
                cx, (LLVMValueRef[]){ k->fn, i64c(g, p->calls[i].arg), i64c(g, (uint64_t)k->work) }, 3, 0);
    }
    if (ncalls) {
        snprintf(name, sizeof name, "%s.calls", en->symbol);
        t_calls = const_table(g, name, call_t, kinds, ncalls);
    }
    LLVMTypeRef kfn_t = LLVMFunctionType(LLVMVoidTypeInContext(cx), (LLVMTypeRef[]){ ptr, i64, i64, ptr }, 4, 0);

    for (unsigned i = 0; i < nparams; i++)
        pt[i] = ptr;
    LLVMValueRef fn = LLVMAddFunction(g->m, en->symbol, LLVMFunctionType(i32, pt, nparams, 0));
    add_attr(g, fn, LLVMAttributeFunctionIndex, "nounwind");
    add_str_attr(g, fn, "target-cpu", e->cpu);
    if (e->features[0])
        add_str_attr(g, fn, "target-features", e->features);
    LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(cx, fn, "entry"));
    /* the pointer arguments, indexable (one slot at least) */
    LLVMValueRef args = LLVMBuildArrayAlloca(g->b, ptr, i64c(g, en->ninputs + p->noutputs + 1), "args");
    for (unsigned i = 0; i < en->ninputs + p->noutputs; i++) {
        LLVMValueRef ix = i64c(g, i);
        LLVMBuildStore(g->b, LLVMGetParam(fn, 2 + i), LLVMBuildInBoundsGEP2(g->b, ptr, args, &ix, 1, ""));
    }
    LLVMBuildStore(g->b, LLVMConstPointerNull(ptr),
                   LLVMBuildInBoundsGEP2(g->b, ptr, args, (LLVMValueRef[]){ i64c(g, en->ninputs + p->noutputs) }, 1, ""));

    /* memory and weights */
    LLVMValueRef mem = LLVMGetParam(fn, 0), w = LLVMGetParam(fn, 1);
    return_if(g, fn, misaligned(g, mem), AOT_E_MEMORY);
    if (g->blob && !p->ncommits) /* a training step never writes into the object's constant */
        w = LLVMBuildSelect(g->b, LLVMBuildIsNull(g->b, w, ""), g->blob, w, "weights");
    return_if(g, fn, misaligned(g, w), AOT_E_WEIGHTS);

    /* every kernel argument's pointer */
    LLVMValueRef argv = byte_gep(g, mem, argv_at);
    if (p->nargs) {
        aot_loop l;
        LLVMValueRef i = loop_begin(g, fn, &l, p->nargs);
        LLVMValueRef kind = load_at(g, i8, t_kind, i, 1);
        LLVMValueRef ai = LLVMBuildZExt(g->b, load_at(g, i32, t_idx, i, 4), i64, "");
        LLVMValueRef arg = load_at(g, ptr, args, ai, 8);
        LLVMValueRef b = LLVMBuildSelect(
            g->b, LLVMBuildICmp(g->b, LLVMIntEQ, kind, LLVMConstInt(i8, AOT_MEMORY, 0), ""), mem,
            LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntEQ, kind, LLVMConstInt(i8, AOT_ARG, 0), ""), arg, w, ""),
            "");
        LLVMValueRef off = load_at(g, i64, t_off, i, 8);
        LLVMValueRef pa = LLVMBuildInBoundsGEP2(g->b, i8, b, &off, 1, "");
        LLVMSetAlignment(LLVMBuildStore(g->b, pa, LLVMBuildInBoundsGEP2(g->b, ptr, argv, &i, 1, "")), 8);
        loop_end(g, fn, &l);
    }
    LLVMValueRef status = byte_gep(g, mem, p->status_offset);
    if (en->has_status)
        LLVMBuildMemSet(g->b, status, LLVMConstInt(i8, 0, 0), i64c(g, 16), 4);

    /* the calls, in plan order, each over its whole work range */
    LLVMValueRef scr = byte_gep(g, mem, en->scratch_at);
    if (ncalls) {
        aot_loop l;
        LLVMValueRef i = loop_begin(g, fn, &l, ncalls);
        LLVMValueRef rec = LLVMBuildInBoundsGEP2(g->b, call_t, t_calls, &i, 1, "");
        LLVMValueRef kf = LLVMBuildLoad2(g->b, ptr, LLVMBuildStructGEP2(g->b, call_t, rec, 0, ""), "");
        LLVMValueRef first = LLVMBuildLoad2(g->b, i64, LLVMBuildStructGEP2(g->b, call_t, rec, 1, ""), "");
        LLVMValueRef work = LLVMBuildLoad2(g->b, i64, LLVMBuildStructGEP2(g->b, call_t, rec, 2, ""), "");
        LLVMValueRef a[4] = { LLVMBuildInBoundsGEP2(g->b, ptr, argv, &first, 1, ""), i64c(g, 0), work, scr };
        LLVMBuildCall2(g->b, kfn_t, kf, a, 4, "");
        loop_end(g, fn, &l);
    }
    if (en->has_status) {
        LLVMValueRef s = LLVMBuildLoad2(g->b, i32, status, "");
        LLVMSetAlignment(s, 4);
        return_if(g, fn, LLVMBuildICmp(g->b, LLVMIntNE, s, i32c(g, 0), ""), AOT_E_INDEX);
    }
    /* outputs after every read of the inputs: a state may be carried in
     * place (h_out the same memory as h_in) */
    for (size_t i = 0; i < p->noutputs + p->ncommits; i++) {
        bool out = i < p->noutputs;
        uint32_t b = out ? p->outputs[i].buffer : p->commits[i - p->noutputs].buffer;
        uint64_t off = out ? p->outputs[i].offset : p->commits[i - p->noutputs].offset;
        const aot_loc *l = &en->buffers[b];
        LLVMValueRef src = l->where == AOT_MEMORY ? byte_gep(g, mem, l->at + off)
                           : l->where == AOT_ARG  ? byte_gep(g, LLVMGetParam(fn, 2 + (unsigned)l->at), off)
                                                  : byte_gep(g, w, l->at + off);
        if (out)
            LLVMBuildMemMove(g->b, LLVMGetParam(fn, 2 + en->ninputs + (unsigned)i), 1, src, 1,
                             i64c(g, en->output_bytes[i]));
        else /* a commit: the parameter's new value into the weights */
            LLVMBuildMemMove(g->b, byte_gep(g, w, en->commit_at[i - p->noutputs]), 1, src, 1,
                             i64c(g, p->commits[i - p->noutputs].bytes));
    }
    LLVMBuildRet(g->b, i32c(g, AOT_OK));
    lm_free(&g->mem, kinds, nt * sizeof *kinds);
    lm_free(&g->mem, idx, nt * sizeof *idx);
    lm_free(&g->mem, offs, nt * sizeof *offs);
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

    if ((c = jit_module_optimize(g.e, g.m, JIT_PIPE_DEFAULT)) != LOOM_OK)
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
