/*
 * codegen.c — kernels to LLVM IR. Map and reduce programs become loop
 * nests whose innermost loop is plain scalar IR that LLVM's loop
 * vectorizer turns into 512-bit code (the math is branch-free polynomial
 * code from vmath.c, so nothing stops it); gather and scatter are row
 * copies; GEMM comes from gemm.c. Each kernel's body is an internal
 * function over noalias pointers, inlined into the uniform entry point,
 * so LLVM knows its buffers do not overlap.
 *
 * The elementwise ops are lowered by their own definitions (ops/defs/,
 * through lower.h); this file implements the primitives they use.
 */
#include "codegen.h"

#include <math.h>

#include "gemm.h"
#include "philox.h"
#include "vmath.h"

typedef struct cg {
    kx kx; /* first: the primitives' callbacks get a kx * */
    jit_engine *e;
    LLVMModuleRef m;
    LLVMBuilderRef b;
    LLVMValueRef fn;     /* the body function */
    const kernel *k;
    LLVMValueRef *ptr;   /* [nargs] argument pointers */
    LLVMValueRef *vals;  /* [ncode] instruction values */
    LLVMValueRef coord[LOOM_MAX_RANK]; /* the element's coordinates (i64) */
    LLVMValueRef flat;   /* its row-major index in the space (i64) */
    LLVMValueRef *rowoff; /* [nviews] element offset of the row */
    LLVMValueRef j;      /* the innermost coordinate */
    LLVMValueRef key;    /* random: the key's pointer */
} cg;

/* ------------------------------------------------------------------ */
/* IR helpers                                                         */
/* ------------------------------------------------------------------ */

static LLVMTypeRef ty_of(jit_engine *e, loom_dtype dt)
{
    switch (dt) {
    case LOOM_F32: return LLVMFloatTypeInContext(e->ctx);
    case LOOM_F64: return LLVMDoubleTypeInContext(e->ctx);
    default: return LLVMInt32TypeInContext(e->ctx);
    }
}

static LLVMValueRef i64c(cg *c, int64_t v) { return jit_const_i64(c->e, v); }

static LLVMValueRef intrinsic(cg *c, const char *name, LLVMTypeRef over, LLVMValueRef *args, unsigned n)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMTypeRef tys[1] = { over };
    LLVMValueRef decl = LLVMGetIntrinsicDeclaration(c->m, id, tys, 1);
    LLVMTypeRef fty = LLVMIntrinsicGetType(c->e->ctx, id, tys, 1);
    return LLVMBuildCall2(c->b, fty, decl, args, n, "");
}

static LLVMValueRef intrinsic2(cg *c, const char *name, LLVMTypeRef t0, LLVMTypeRef t1, LLVMValueRef *args,
                               unsigned n)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMTypeRef tys[2] = { t0, t1 };
    LLVMValueRef decl = LLVMGetIntrinsicDeclaration(c->m, id, tys, 2);
    LLVMTypeRef fty = LLVMIntrinsicGetType(c->e->ctx, id, tys, 2);
    return LLVMBuildCall2(c->b, fty, decl, args, n, "");
}

/* A counted loop [lo, hi) with an i64 induction variable. */
typedef struct loop {
    LLVMBasicBlockRef body, exit;
    LLVMValueRef iv, hi;
    LLVMBasicBlockRef from;
} loop;

static LLVMValueRef loop_begin(cg *c, loop *l, LLVMValueRef lo, LLVMValueRef hi)
{
    LLVMContextRef ctx = c->e->ctx;
    l->from = LLVMGetInsertBlock(c->b);
    l->body = LLVMAppendBasicBlockInContext(ctx, c->fn, "loop");
    l->exit = LLVMAppendBasicBlockInContext(ctx, c->fn, "after");
    l->hi = hi;
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, lo, hi, ""), l->body, l->exit);
    LLVMPositionBuilderAtEnd(c->b, l->body);
    l->iv = LLVMBuildPhi(c->b, jit_i64(c->e), "i");
    LLVMAddIncoming(l->iv, &lo, &l->from, 1);
    return l->iv;
}

static void loop_end(cg *c, loop *l)
{
    LLVMValueRef next = LLVMBuildNSWAdd(c->b, l->iv, i64c(c, 1), "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(c->b);
    LLVMAddIncoming(l->iv, &next, &latch, 1);
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, next, l->hi, ""), l->body, l->exit);
    LLVMPositionBuilderAtEnd(c->b, l->exit);
}

static LLVMValueRef elem_ptr(cg *c, uint32_t arg, loom_dtype dt, LLVMValueRef index)
{
    return LLVMBuildInBoundsGEP2(c->b, ty_of(c->e, dt), c->ptr[arg], &index, 1, "");
}

static LLVMValueRef load_elem(cg *c, uint32_t arg, loom_dtype dt, LLVMValueRef index)
{
    LLVMValueRef v = LLVMBuildLoad2(c->b, ty_of(c->e, dt), elem_ptr(c, arg, dt, index), "");
    LLVMSetAlignment(v, (unsigned)loom_dtype_size(dt));
    return v;
}

static void store_elem(cg *c, uint32_t arg, loom_dtype dt, LLVMValueRef index, LLVMValueRef v)
{
    LLVMValueRef s = LLVMBuildStore(c->b, v, elem_ptr(c, arg, dt, index));
    LLVMSetAlignment(s, (unsigned)loom_dtype_size(dt));
}

static bool is_fp(LLVMValueRef v)
{
    LLVMTypeKind k = LLVMGetTypeKind(LLVMTypeOf(v));
    return k == LLVMFloatTypeKind || k == LLVMDoubleTypeKind;
}

/* ------------------------------------------------------------------ */
/* The primitives (lower.h)                                           */
/* ------------------------------------------------------------------ */

static LLVMValueRef to_01(cg *c, LLVMValueRef bit, LLVMTypeRef t)
{
    LLVMValueRef one = LLVMGetTypeKind(t) == LLVMIntegerTypeKind ? LLVMConstInt(t, 1, 0) : LLVMConstReal(t, 1.0);
    return LLVMBuildSelect(c->b, bit, one, LLVMConstNull(t), "");
}

static kx_val p_op(kx *k, kx_prim p, kx_val av, kx_val bv)
{
    cg *c = (cg *)k;
    LLVMBuilderRef b = c->b;
    LLVMValueRef a = av, y = bv;
    LLVMTypeRef t = LLVMTypeOf(a);
    bool fp = is_fp(a);
    switch (p) {
    case KX_ADD: return fp ? LLVMBuildFAdd(b, a, y, "") : LLVMBuildAdd(b, a, y, "");
    case KX_SUB: return fp ? LLVMBuildFSub(b, a, y, "") : LLVMBuildSub(b, a, y, "");
    case KX_MUL: return fp ? LLVMBuildFMul(b, a, y, "") : LLVMBuildMul(b, a, y, "");
    case KX_DIV: return fp ? LLVMBuildFDiv(b, a, y, "") : LLVMBuildSDiv(b, a, y, "");
    case KX_EQ: return to_01(c, fp ? LLVMBuildFCmp(b, LLVMRealOEQ, a, y, "") : LLVMBuildICmp(b, LLVMIntEQ, a, y, ""), t);
    case KX_NE: return to_01(c, fp ? LLVMBuildFCmp(b, LLVMRealUNE, a, y, "") : LLVMBuildICmp(b, LLVMIntNE, a, y, ""), t);
    case KX_LT: return to_01(c, fp ? LLVMBuildFCmp(b, LLVMRealOLT, a, y, "") : LLVMBuildICmp(b, LLVMIntSLT, a, y, ""), t);
    case KX_LE: return to_01(c, fp ? LLVMBuildFCmp(b, LLVMRealOLE, a, y, "") : LLVMBuildICmp(b, LLVMIntSLE, a, y, ""), t);
    case KX_GT: return to_01(c, fp ? LLVMBuildFCmp(b, LLVMRealOGT, a, y, "") : LLVMBuildICmp(b, LLVMIntSGT, a, y, ""), t);
    case KX_GE: return to_01(c, fp ? LLVMBuildFCmp(b, LLVMRealOGE, a, y, "") : LLVMBuildICmp(b, LLVMIntSGE, a, y, ""), t);
    case KX_NEG: return fp ? LLVMBuildFNeg(b, a, "") : LLVMBuildSub(b, LLVMConstNull(t), a, "");
    case KX_ABS:
        if (fp)
            return intrinsic(c, "llvm.fabs", t, &a, 1);
        return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, a, LLVMConstNull(t), ""),
                               LLVMBuildSub(b, LLVMConstNull(t), a, ""), a, "");
    case KX_SQRT: return intrinsic(c, "llvm.sqrt", t, &a, 1);
    case KX_EXP: return jv_exp(c->e, b, a);
    case KX_LOG: return jv_log(c->e, b, a);
    case KX_LOG1P: return jv_log1p(c->e, b, a);
    case KX_TANH: return jv_tanh(c->e, b, a);
    case KX_SIGMOID: return jv_sigmoid(c->e, b, a);
    case KX_SIN: return jv_sin(c->e, b, a);
    case KX_COS: return jv_cos(c->e, b, a);
    default: return a;
    }
}

static kx_val p_select(kx *k, kx_val cond, kx_val a, kx_val y)
{
    cg *c = (cg *)k;
    LLVMValueRef v = cond;
    LLVMValueRef bit = is_fp(v) ? LLVMBuildFCmp(c->b, LLVMRealUNE, v, LLVMConstNull(LLVMTypeOf(v)), "")
                                : LLVMBuildICmp(c->b, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
    return LLVMBuildSelect(c->b, bit, a, y, "");
}

static kx_val p_konst(kx *k, loom_dtype dt, double v)
{
    cg *c = (cg *)k;
    LLVMTypeRef t = ty_of(c->e, dt);
    return dt == LOOM_I32 ? LLVMConstInt(t, (unsigned long long)(int64_t)op_to_i32(v), 1) : LLVMConstReal(t, v);
}

static kx_val p_cast(kx *k, kx_val av, loom_dtype from, loom_dtype to)
{
    cg *c = (cg *)k;
    LLVMValueRef a = av;
    LLVMTypeRef t = ty_of(c->e, to);
    if (from == to)
        return a;
    if (to == LOOM_I32) /* saturating, NaN to 0: op_to_i32's rule */
        return intrinsic2(c, "llvm.fptosi.sat", t, LLVMTypeOf(a), &a, 1);
    if (from == LOOM_I32)
        return LLVMBuildSIToFP(c->b, a, t, "");
    return to == LOOM_F64 ? LLVMBuildFPExt(c->b, a, t, "") : LLVMBuildFPTrunc(c->b, a, t, "");
}

static kx_val p_coord(kx *k, int axis, loom_dtype dt)
{
    cg *c = (cg *)k;
    LLVMValueRef v = c->coord[axis];
    if (dt == LOOM_I32)
        return LLVMBuildTrunc(c->b, v, jit_i32(c->e), "");
    return LLVMBuildSIToFP(c->b, v, ty_of(c->e, dt), "");
}

/* Philox4x32-10 as in ops/philox.h: counter (flat index, stream, run lo,
 * run hi), key (seed lo, seed hi). */
static kx_val p_random(kx *k, kx_val key_ptr, int kind, uint32_t stream, double p)
{
    cg *c = (cg *)k;
    LLVMBuilderRef b = c->b;
    LLVMTypeRef i32 = jit_i32(c->e), i64 = jit_i64(c->e);
    LLVMValueRef key[4];
    for (int i = 0; i < 4; i++) {
        LLVMValueRef idx = i64c(c, i);
        LLVMValueRef ptr = LLVMBuildInBoundsGEP2(b, i32, key_ptr, &idx, 1, "");
        key[i] = LLVMBuildLoad2(b, i32, ptr, "");
    }
    LLVMValueRef cnt[4] = { LLVMBuildTrunc(b, c->flat, i32, ""), LLVMConstInt(i32, stream, 0), key[2], key[3] };
    LLVMValueRef k0 = key[0], k1 = key[1];
    LLVMValueRef m0 = LLVMConstInt(i64, 0xD2511F53u, 0), m1 = LLVMConstInt(i64, 0xCD9E8D57u, 0);
    LLVMValueRef sh = LLVMConstInt(i64, 32, 0);
    for (int r = 0; r < 10; r++) {
        LLVMValueRef p0 = LLVMBuildMul(b, LLVMBuildZExt(b, cnt[0], i64, ""), m0, "");
        LLVMValueRef p1 = LLVMBuildMul(b, LLVMBuildZExt(b, cnt[2], i64, ""), m1, "");
        LLVMValueRef hi0 = LLVMBuildTrunc(b, LLVMBuildLShr(b, p0, sh, ""), i32, ""), lo0 = LLVMBuildTrunc(b, p0, i32, "");
        LLVMValueRef hi1 = LLVMBuildTrunc(b, LLVMBuildLShr(b, p1, sh, ""), i32, ""), lo1 = LLVMBuildTrunc(b, p1, i32, "");
        LLVMValueRef n0 = LLVMBuildXor(b, LLVMBuildXor(b, hi1, cnt[1], ""), k0, "");
        LLVMValueRef n2 = LLVMBuildXor(b, LLVMBuildXor(b, hi0, cnt[3], ""), k1, "");
        cnt[0] = n0;
        cnt[1] = lo1;
        cnt[2] = n2;
        cnt[3] = lo0;
        k0 = LLVMBuildAdd(b, k0, LLVMConstInt(i32, 0x9E3779B9u, 0), "");
        k1 = LLVMBuildAdd(b, k1, LLVMConstInt(i32, 0xBB67AE85u, 0), "");
    }
    LLVMTypeRef dbl = LLVMDoubleTypeInContext(c->e->ctx), flt = LLVMFloatTypeInContext(c->e->ctx);
    loom_dtype dt = k->dtype;
    LLVMTypeRef t = ty_of(c->e, dt);
    if (kind == RANDOM_UNIFORM) {
        if (dt == LOOM_F32) {
            LLVMValueRef v = LLVMBuildUIToFP(b, LLVMBuildLShr(b, cnt[0], LLVMConstInt(i32, 8, 0), ""), flt, "");
            return LLVMBuildFMul(b, v, LLVMConstReal(flt, 0x1p-24), "");
        }
        LLVMValueRef hi = LLVMBuildShl(b, LLVMBuildZExt(b, cnt[0], i64, ""), LLVMConstInt(i64, 21, 0), "");
        LLVMValueRef lo = LLVMBuildZExt(b, LLVMBuildLShr(b, cnt[1], LLVMConstInt(i32, 11, 0), ""), i64, "");
        LLVMValueRef v = LLVMBuildUIToFP(b, LLVMBuildXor(b, hi, lo, ""), dbl, "");
        return LLVMBuildFMul(b, v, LLVMConstReal(dbl, 0x1p-53), "");
    }
    if (kind == RANDOM_NORMAL) {
        LLVMValueRef u1 = LLVMBuildFMul(b, LLVMBuildFAdd(b, LLVMBuildUIToFP(b, cnt[0], dbl, ""), LLVMConstReal(dbl, 1.0), ""),
                                        LLVMConstReal(dbl, 0x1p-32), "");
        LLVMValueRef u2 = LLVMBuildFMul(b, LLVMBuildUIToFP(b, cnt[1], dbl, ""), LLVMConstReal(dbl, 0x1p-32), "");
        LLVMValueRef r2 = LLVMBuildFMul(b, LLVMConstReal(dbl, -2.0), jv_log(c->e, b, u1), "");
        LLVMValueRef r = intrinsic(c, "llvm.sqrt", dbl, &r2, 1);
        LLVMValueRef v = LLVMBuildFMul(b, r, jv_cos(c->e, b, LLVMBuildFMul(b, LLVMConstReal(dbl, 6.283185307179586), u2, "")), "");
        return dt == LOOM_F64 ? v : LLVMBuildFPTrunc(b, v, t, "");
    }
    uint64_t thr = (uint64_t)(p * 4294967296.0);
    LLVMValueRef hit = LLVMBuildICmp(b, LLVMIntULT, LLVMBuildZExt(b, cnt[0], i64, ""),
                                     LLVMConstInt(i64, thr, 0), "");
    return to_01(c, hit, t);
}

/* ------------------------------------------------------------------ */
/* Programs                                                           */
/* ------------------------------------------------------------------ */

static LLVMValueRef view_index(cg *c, uint32_t view)
{
    int r = c->k->space.rank;
    int64_t st = c->k->strides[(size_t)view * LOOM_MAX_RANK + (size_t)(r - 1)];
    LLVMValueRef inner = st == 0 ? i64c(c, 0) : st == 1 ? c->j : LLVMBuildNSWMul(c->b, c->j, i64c(c, st), "");
    return LLVMBuildNSWAdd(c->b, c->rowoff[view], inner, "");
}

/* Emits instructions [from, to) of the program for the current element;
 * stores are left to the caller when `stores` is false. */
static void emit_program(cg *c, uint32_t from, uint32_t to, bool stores)
{
    const kernel *k = c->k;
    for (uint32_t i = from; i < to; i++) {
        const kn_instr *in = &k->code[i];
        if (in->op == KI_LOAD) {
            c->vals[i] = load_elem(c, in->arg, (loom_dtype)in->dtype, view_index(c, in->view));
            continue;
        }
        if (in->op == KI_STORE) {
            if (stores)
                store_elem(c, in->arg, (loom_dtype)in->dtype, view_index(c, in->view), c->vals[in->src[0]]);
            continue;
        }
        const op_def *d = op_get(in->op);
        kx_node nd = { .op = in->op, .dtype = (loom_dtype)in->dtype, .attrs = in->attr };
        kx_val args[3] = { 0 };
        for (int s = 0; s < d->nsrc && s < 3; s++) {
            if (in->op == OP_RANDOM) {
                args[0] = c->ptr[in->arg];
                break;
            }
            args[s] = c->vals[in->src[s]];
            nd.src_dtype[s] = (loom_dtype)k->code[in->src[s]].dtype;
        }
        c->kx.dtype = nd.dtype;
        c->vals[i] = d->lower(&c->kx, &nd, args);
    }
}

/* Sets coord[0..r-2] and the views' row offsets for row w of the space. */
static void set_row(cg *c, LLVMValueRef w)
{
    const kernel *k = c->k;
    int r = k->space.rank;
    LLVMValueRef rem = w;
    for (int i = r - 2; i >= 0; i--) {
        LLVMValueRef d = i64c(c, k->space.d[i]);
        c->coord[i] = i == 0 ? rem : LLVMBuildURem(c->b, rem, d, "");
        if (i > 0)
            rem = LLVMBuildUDiv(c->b, rem, d, "");
    }
    for (uint32_t v = 0; v < k->nviews; v++) {
        LLVMValueRef off = i64c(c, 0);
        for (int i = 0; i < r - 1; i++) {
            int64_t st = k->strides[(size_t)v * LOOM_MAX_RANK + (size_t)i];
            if (st)
                off = LLVMBuildNSWAdd(c->b, off, LLVMBuildNSWMul(c->b, c->coord[i], i64c(c, st), ""), "");
        }
        c->rowoff[v] = off;
    }
}

static int64_t map_rows(const kernel *k)
{
    int64_t rows = 1;
    for (int i = 0; i < k->space.rank - 1; i++)
        rows *= k->space.d[i];
    return rows;
}

/* Map: work items are rows of the space, or chunks of its one long row. */
static int64_t emit_map(cg *c, LLVMValueRef lo, LLVMValueRef hi)
{
    const kernel *k = c->k;
    int r = k->space.rank;
    int64_t rows = map_rows(k), cols = k->space.d[r - 1];
    bool chunked = rows == 1 && cols > JIT_CHUNK;
    loop w;
    LLVMValueRef wi = loop_begin(c, &w, lo, hi);
    LLVMValueRef j0 = i64c(c, 0), j1 = i64c(c, cols), rowflat;
    if (chunked) {
        j0 = LLVMBuildNSWMul(c->b, wi, i64c(c, JIT_CHUNK), "");
        LLVMValueRef end = LLVMBuildNSWAdd(c->b, j0, i64c(c, JIT_CHUNK), "");
        j1 = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, end, j1, ""), end, j1, "");
        rowflat = i64c(c, 0);
    } else {
        rowflat = LLVMBuildNSWMul(c->b, wi, i64c(c, cols), "");
    }
    set_row(c, wi);
    loop jl;
    c->j = loop_begin(c, &jl, j0, j1);
    c->coord[r - 1] = c->j;
    c->flat = LLVMBuildNSWAdd(c->b, rowflat, c->j, "");
    emit_program(c, 0, k->ncode, true);
    loop_end(c, &jl);
    loop_end(c, &w);
    return chunked ? (cols + JIT_CHUNK - 1) / JIT_CHUNK : rows;
}

/* ------------------------------------------------------------------ */
/* Reductions                                                         */
/* ------------------------------------------------------------------ */

/* The element's row-major index in the space (random needs it). */
static void set_flat(cg *c)
{
    const loom_shape *s = &c->k->space;
    LLVMValueRef flat = i64c(c, 0);
    int64_t st = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        flat = LLVMBuildNSWAdd(c->b, flat, st == 1 ? c->coord[i] : LLVMBuildNSWMul(c->b, c->coord[i], i64c(c, st), ""), "");
        st *= s->d[i];
    }
    c->flat = flat;
}

static LLVMValueRef combine(cg *c, LLVMValueRef acc, LLVMValueRef x)
{
    if (c->k->reduce_op == OP_SUM) {
        if (!is_fp(x))
            return LLVMBuildAdd(c->b, acc, x, "");
        LLVMValueRef s = LLVMBuildFAdd(c->b, acc, x, "");
        LLVMSetFastMathFlags(s, LLVMFastMathAllowReassoc); /* lets sums vectorize */
        return s;
    }
    /* max: a NaN, once met, stays (the reference's rule) */
    if (!is_fp(x))
        return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSGT, x, acc, ""), x, acc, "");
    LLVMValueRef take = LLVMBuildOr(c->b, LLVMBuildFCmp(c->b, LLVMRealOGT, x, acc, ""),
                                    LLVMBuildFCmp(c->b, LLVMRealUNO, x, x, ""), "");
    return LLVMBuildSelect(c->b, take, x, acc, "");
}

static LLVMValueRef identity(cg *c, loom_dtype dt)
{
    LLVMTypeRef t = ty_of(c->e, dt);
    if (c->k->reduce_op == OP_SUM)
        return LLVMConstNull(t);
    return dt == LOOM_I32 ? LLVMConstInt(t, (unsigned long long)(int64_t)INT32_MIN, 1) : LLVMConstReal(t, -INFINITY);
}

/* Where a reduction accumulates: the output itself, or (f32 sums, which
 * the reference adds in f64) an f64 copy of the item's output slice in
 * the scratch, rounded into the output once at the end. */
typedef struct red {
    const kn_instr *st;  /* the store: output argument and view */
    loom_dtype dt;       /* the output's */
    loom_dtype at;       /* the accumulator's */
    LLVMValueRef scratch; /* f64 [slice] or NULL */
    LLVMValueRef base;   /* the item's first output element */
    LLVMValueRef acc;    /* register accumulator slot */
} red;

static LLVMValueRef acc_ptr(cg *c, const red *R, LLVMValueRef out_index)
{
    if (!R->scratch)
        return elem_ptr(c, R->st->arg, R->dt, out_index);
    LLVMValueRef local = LLVMBuildNSWSub(c->b, out_index, R->base, "");
    return LLVMBuildInBoundsGEP2(c->b, ty_of(c->e, LOOM_F64), R->scratch, &local, 1, "");
}

static void acc_add(cg *c, const red *R, LLVMValueRef out_index, LLVMValueRef v)
{
    LLVMValueRef p = acc_ptr(c, R, out_index);
    LLVMTypeRef t = ty_of(c->e, R->at);
    if (R->at != R->dt)
        v = LLVMBuildFPExt(c->b, v, t, "");
    LLVMBuildStore(c->b, combine(c, LLVMBuildLoad2(c->b, t, p, ""), v), p);
}

static void set_rows(cg *c, LLVMValueRef *off)
{
    for (uint32_t v = 0; v < c->k->nviews; v++)
        c->rowoff[v] = off[v];
}

/* The loops over dims [dim, rank) of the space, accumulating every
 * element of the program's value. */
static void reduce_nest(cg *c, int dim, LLVMValueRef *off, const red *R)
{
    const kernel *k = c->k;
    int r = k->space.rank;
    bool red_axis = op_axis_in(k->reduce_mask, dim);
    LLVMValueRef *noff = off + k->nviews;
    LLVMTypeRef at = ty_of(c->e, R->at);
    if (dim == r - 1 && red_axis) {
        /* innermost reduced axis: a register accumulator, then memory once */
        LLVMBuildStore(c->b, identity(c, R->at), R->acc);
        loop l;
        c->j = loop_begin(c, &l, i64c(c, 0), i64c(c, k->space.d[dim]));
        c->coord[dim] = c->j;
        set_rows(c, off);
        set_flat(c);
        emit_program(c, 0, k->ncode, false);
        LLVMValueRef v = c->vals[R->st->src[0]];
        if (R->at != R->dt)
            v = LLVMBuildFPExt(c->b, v, at, "");
        LLVMBuildStore(c->b, combine(c, LLVMBuildLoad2(c->b, at, R->acc, ""), v), R->acc);
        loop_end(c, &l);
        c->j = i64c(c, 0);
        LLVMValueRef p = acc_ptr(c, R, view_index(c, R->st->view));
        LLVMBuildStore(c->b, combine(c, LLVMBuildLoad2(c->b, at, p, ""), LLVMBuildLoad2(c->b, at, R->acc, "")), p);
        return;
    }
    loop l;
    LLVMValueRef i = loop_begin(c, &l, i64c(c, 0), i64c(c, k->space.d[dim]));
    c->coord[dim] = i;
    if (dim == r - 1) {
        c->j = i;
        set_rows(c, off);
        set_flat(c);
        emit_program(c, 0, k->ncode, false);
        acc_add(c, R, view_index(c, R->st->view), c->vals[R->st->src[0]]);
    } else {
        for (uint32_t v = 0; v < k->nviews; v++) {
            int64_t s = k->strides[(size_t)v * LOOM_MAX_RANK + (size_t)dim];
            noff[v] = s ? LLVMBuildNSWAdd(c->b, off[v], LLVMBuildNSWMul(c->b, i, i64c(c, s), ""), "") : off[v];
        }
        reduce_nest(c, dim + 1, noff, R);
    }
    loop_end(c, &l);
}

/* Output elements one work item owns, and the item count: when the first
 * axis is kept its indices are the items (each owns a contiguous slice of
 * the output), otherwise one item does it all. */
enum { COL_CHUNK = 512 }; /* columns a work item of a column reduction owns */

/* A column reduction: every axis but the last reduced, the last one long.
 * Its work items are chunks of columns (the output), each running over
 * all rows: parallel, and the inner loop runs along contiguous columns. */
static bool col_split(const kernel *k)
{
    int r = k->space.rank;
    if (r < 2 || op_axis_in(k->reduce_mask, r - 1) || k->space.d[r - 1] < 2 * COL_CHUNK)
        return false;
    for (int i = 0; i < r - 1; i++)
        if (!op_axis_in(k->reduce_mask, i))
            return false;
    /* the output: one contiguous vector */
    const kn_instr *st = &k->code[k->ncode - 1];
    return k->strides[(size_t)st->view * LOOM_MAX_RANK + (size_t)(r - 1)] == 1;
}

static int64_t reduce_slice(const kernel *k, int64_t *items)
{
    if (col_split(k)) {
        *items = (k->space.d[k->space.rank - 1] + COL_CHUNK - 1) / COL_CHUNK;
        return COL_CHUNK;
    }
    int64_t out = 1;
    for (int i = 0; i < k->space.rank; i++)
        if (!op_axis_in(k->reduce_mask, i))
            out *= k->space.d[i];
    bool split = !op_axis_in(k->reduce_mask, 0);
    *items = split ? k->space.d[0] : 1;
    return split ? out / (k->space.d[0] ? k->space.d[0] : 1) : out;
}

enum { WIDE_SLICE_MAX = 1 << 20 }; /* f64 scratch per thread at most 8 MiB */

static size_t reduce_scratch(const kernel *k)
{
    const kn_instr *st = &k->code[k->ncode - 1];
    int64_t items, slice = reduce_slice(k, &items);
    bool wide = st->dtype == LOOM_F32 && k->reduce_op == OP_SUM && slice <= WIDE_SLICE_MAX;
    return wide ? (size_t)(slice ? slice : 1) * sizeof(double) : 0;
}

/* Output elements [from, to) start at the identity (the scratch's, or
 * the output's own). */
static void acc_start(cg *c, const red *R, LLVMValueRef from, LLVMValueRef to)
{
    loop z;
    LLVMValueRef o = loop_begin(c, &z, from, to);
    LLVMBuildStore(c->b, identity(c, R->at), acc_ptr(c, R, o));
    loop_end(c, &z);
}

/* With an f64 scratch: its sums of output elements [from, to) rounded
 * into the output. */
static void acc_finish(cg *c, const red *R, LLVMValueRef from, LLVMValueRef to)
{
    if (!R->scratch)
        return;
    loop f;
    LLVMValueRef o = loop_begin(c, &f, from, to);
    LLVMValueRef v = LLVMBuildLoad2(c->b, ty_of(c->e, R->at), acc_ptr(c, R, o), "");
    store_elem(c, R->st->arg, R->dt, o, LLVMBuildFPTrunc(c->b, v, ty_of(c->e, R->dt), ""));
    loop_end(c, &f);
}

/* Column reduction items [lo, hi): columns [j0, j1) each, over every row. */
static void emit_col_reduce(cg *c, red *R, LLVMValueRef lo, LLVMValueRef hi)
{
    const kernel *k = c->k;
    int r = k->space.rank;
    int64_t cols = k->space.d[r - 1], outer = map_rows(k);
    loop w;
    LLVMValueRef wi = loop_begin(c, &w, lo, hi);
    LLVMValueRef j0 = LLVMBuildNSWMul(c->b, wi, i64c(c, COL_CHUNK), "");
    LLVMValueRef end = LLVMBuildNSWAdd(c->b, j0, i64c(c, COL_CHUNK), "");
    LLVMValueRef j1 = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntSLT, end, i64c(c, cols), ""), end,
                                      i64c(c, cols), "");
    R->base = j0;
    acc_start(c, R, j0, j1);
    loop o;
    LLVMValueRef oi = loop_begin(c, &o, i64c(c, 0), i64c(c, outer));
    set_row(c, oi);
    loop jl;
    c->j = loop_begin(c, &jl, j0, j1);
    c->coord[r - 1] = c->j;
    set_flat(c);
    emit_program(c, 0, k->ncode, false);
    acc_add(c, R, view_index(c, R->st->view), c->vals[R->st->src[0]]);
    loop_end(c, &jl);
    loop_end(c, &o);
    acc_finish(c, R, j0, j1);
    loop_end(c, &w);
}

static int64_t emit_reduce(cg *c, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef scratch)
{
    const kernel *k = c->k;
    int r = k->space.rank;
    int64_t items, slice = reduce_slice(k, &items);
    bool split = items > 1 || !op_axis_in(k->reduce_mask, 0);
    red R = { .st = &k->code[k->ncode - 1] };
    R.dt = (loom_dtype)R.st->dtype;
    R.scratch = reduce_scratch(k) ? scratch : NULL;
    R.at = R.scratch ? LOOM_F64 : R.dt;
    if (col_split(k)) {
        emit_col_reduce(c, &R, lo, hi);
        return items;
    }
    LLVMValueRef *off = lm_zalloc(&c->e->mem, ((size_t)r + 1) * (k->nviews + 1) * sizeof *off);
    if (!off)
        return 0;
    LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(c->fn);
    LLVMBuilderRef eb = LLVMCreateBuilderInContext(c->e->ctx);
    LLVMPositionBuilder(eb, entry, LLVMGetFirstInstruction(entry));
    R.acc = LLVMBuildAlloca(eb, ty_of(c->e, R.at), "acc");
    LLVMDisposeBuilder(eb);

    loop w;
    LLVMValueRef wi = loop_begin(c, &w, lo, hi);
    R.base = split ? LLVMBuildNSWMul(c->b, wi, i64c(c, slice), "") : i64c(c, 0);
    LLVMValueRef end = LLVMBuildNSWAdd(c->b, R.base, i64c(c, slice), "");
    acc_start(c, &R, R.base, end); /* the item's slice */
    /* accumulate */
    if (split) {
        c->coord[0] = wi;
        for (uint32_t v = 0; v < k->nviews; v++) {
            int64_t s = k->strides[(size_t)v * LOOM_MAX_RANK];
            off[v] = s ? LLVMBuildNSWMul(c->b, wi, i64c(c, s), "") : i64c(c, 0);
        }
        if (r == 1) {
            c->j = wi;
            set_rows(c, off);
            for (uint32_t v = 0; v < k->nviews; v++)
                c->rowoff[v] = i64c(c, 0);
            set_flat(c);
            emit_program(c, 0, k->ncode, false);
            acc_add(c, &R, view_index(c, R.st->view), c->vals[R.st->src[0]]);
        } else {
            reduce_nest(c, 1, off, &R);
        }
    } else {
        for (uint32_t v = 0; v < k->nviews; v++)
            off[v] = i64c(c, 0);
        reduce_nest(c, 0, off, &R);
    }
    acc_finish(c, &R, R.base, end);
    loop_end(c, &w);
    lm_free(&c->e->mem, off, ((size_t)r + 1) * (k->nviews + 1) * sizeof *off);
    return items;
}

/* ------------------------------------------------------------------ */
/* Row chains                                                         */
/* ------------------------------------------------------------------ */

/* Work items of sub-kernel k that make one row of its space. */
static int64_t items_per_row(const kernel *k)
{
    return k->kind == KN_MAP ? map_rows(k) / k->space.d[0] : 1;
}

/* Bytes of a chain's scratch its reductions use; the bands of its
 * chain-local buffers follow (kernel.arg_scratch). */
static size_t rows_reduce_scratch(const kernel *k)
{
    size_t most = 0;
    for (uint32_t i = 0; i < k->nsubs; i++)
        if (k->subs[i].kind == KN_REDUCE && reduce_scratch(&k->subs[i]) > most)
            most = reduce_scratch(&k->subs[i]);
    return (most + 63) & ~(size_t)63;
}

static size_t rows_scratch(const kernel *k) { return rows_reduce_scratch(k) + (size_t)k->row_scratch; }

/* Rows [lo, hi): for each, every sub-kernel's items of that row. */
static int64_t emit_rows(cg *c, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef scratch)
{
    const kernel *k = c->k;
    loop w;
    LLVMValueRef r = loop_begin(c, &w, lo, hi);
    for (uint32_t i = 0; i < k->nsubs; i++) {
        const kernel *s = &k->subs[i];
        int64_t per = items_per_row(s);
        LLVMValueRef a = per == 1 ? r : LLVMBuildNSWMul(c->b, r, i64c(c, per), "");
        LLVMValueRef b = LLVMBuildNSWAdd(c->b, a, i64c(c, per), "");
        c->k = s;
        if (s->kind == KN_MAP)
            emit_map(c, a, b);
        else
            emit_reduce(c, a, b, scratch);
        c->k = k;
    }
    loop_end(c, &w);
    return k->rows;
}

/* ------------------------------------------------------------------ */
/* Gather and scatter-add                                             */
/* ------------------------------------------------------------------ */

/* An index out of range records (position + 1, index, range, op) in
 * the status words and is read as 0, so the run finishes and reports.
 * reports (i1, or NULL for always): whether this item records it — one
 * writer per position, as items run on several threads. */
static LLVMValueRef checked_index(cg *c, LLVMValueRef t, int64_t rows, LLVMValueRef reports)
{
    LLVMBuilderRef b = c->b;
    LLVMTypeRef i32 = jit_i32(c->e);
    LLVMValueRef ix = load_elem(c, 1, LOOM_I32, t);
    LLVMValueRef out = LLVMBuildICmp(b, LLVMIntUGE, ix, LLVMConstInt(i32, (unsigned long long)rows, 0), "");
    LLVMValueRef bad = reports ? LLVMBuildAnd(b, out, reports, "") : out;
    LLVMBasicBlockRef report = LLVMAppendBasicBlockInContext(c->e->ctx, c->fn, "bad_index");
    LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(c->e->ctx, c->fn, "index_ok");
    LLVMBuildCondBr(b, bad, report, ok);
    LLVMPositionBuilderAtEnd(b, report);
    store_elem(c, 3, LOOM_I32, i64c(c, 0), LLVMBuildTrunc(b, LLVMBuildNSWAdd(b, t, i64c(c, 1), ""), i32, ""));
    store_elem(c, 3, LOOM_I32, i64c(c, 1), ix);
    store_elem(c, 3, LOOM_I32, i64c(c, 2), LLVMConstInt(i32, (unsigned long long)rows, 0));
    store_elem(c, 3, LOOM_I32, i64c(c, 3), LLVMConstInt(i32, c->k->kind == KN_GATHER ? OP_GATHER : OP_SCATTER_ADD, 0));
    LLVMBuildBr(b, ok);
    LLVMPositionBuilderAtEnd(b, ok);
    LLVMValueRef safe = LLVMBuildSelect(b, out, LLVMConstNull(i32), ix, "");
    return LLVMBuildSExt(b, safe, jit_i64(c->e), "");
}

static int64_t emit_gather(cg *c, LLVMValueRef lo, LLVMValueRef hi)
{
    const kn_index *x = &c->k->index;
    loop w;
    LLVMValueRef wi = loop_begin(c, &w, lo, hi);
    LLVMValueRef p = LLVMBuildUDiv(c->b, wi, i64c(c, x->count), "");
    LLVMValueRef t = LLVMBuildURem(c->b, wi, i64c(c, x->count), "");
    /* every member looks up the same indices: the first records a bad one */
    LLVMValueRef first = x->outer > 1 ? LLVMBuildICmp(c->b, LLVMIntEQ, p, i64c(c, 0), "") : NULL;
    LLVMValueRef ix = checked_index(c, t, x->rows, first);
    LLVMValueRef src = LLVMBuildNSWMul(c->b, LLVMBuildNSWAdd(c->b, LLVMBuildNSWMul(c->b, p, i64c(c, x->rows), ""), ix, ""),
                                       i64c(c, x->inner), "");
    LLVMValueRef dst = LLVMBuildNSWMul(c->b, wi, i64c(c, x->inner), "");
    loop q;
    LLVMValueRef qi = loop_begin(c, &q, i64c(c, 0), i64c(c, x->inner));
    LLVMValueRef v = load_elem(c, 0, x->dtype, LLVMBuildNSWAdd(c->b, src, qi, ""));
    store_elem(c, 2, x->dtype, LLVMBuildNSWAdd(c->b, dst, qi, ""), v);
    loop_end(c, &q);
    loop_end(c, &w);
    return x->outer * x->count;
}

/* A scatter's items own disjoint parts of the output: each batch member
 * (outer), and within it a block of columns of every row, so long rows
 * are shared by threads (a table's gradient is one member: its rows
 * arrive in any order, so rows cannot be split). Each item reads its
 * columns of every source row and checks every index; member 0's first
 * block records a bad one (one writer of the status words per row). */
enum { SCATTER_COLS = 256, SCATTER_MAX_BLOCKS = 16 };

static int64_t scatter_blocks(const kn_index *x)
{
    int64_t blocks = x->inner / SCATTER_COLS;
    return blocks < 2 ? 1 : blocks > SCATTER_MAX_BLOCKS ? SCATTER_MAX_BLOCKS : blocks;
}

static int64_t emit_scatter(cg *c, LLVMValueRef lo, LLVMValueRef hi)
{
    const kn_index *x = &c->k->index;
    LLVMBuilderRef b = c->b;
    int64_t blocks = scatter_blocks(x), width = (x->inner + blocks - 1) / blocks;
    loop w;
    LLVMValueRef item = loop_begin(c, &w, lo, hi);
    LLVMValueRef p = blocks > 1 ? LLVMBuildUDiv(b, item, i64c(c, blocks), "") : item;
    /* columns [q0, q1) of member p */
    LLVMValueRef q0 = i64c(c, 0), q1 = i64c(c, x->inner), first = NULL;
    if (blocks > 1 || x->outer > 1) /* the item that records a bad index: member 0's first block */
        first = LLVMBuildICmp(b, LLVMIntEQ, item, i64c(c, 0), "");
    if (blocks > 1) {
        LLVMValueRef blk = LLVMBuildURem(b, item, i64c(c, blocks), "");
        q0 = LLVMBuildNSWMul(b, blk, i64c(c, width), "");
        LLVMValueRef end = LLVMBuildNSWAdd(b, q0, i64c(c, width), "");
        q1 = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntULT, end, q1, ""), end, q1, "");
    }
    /* this item owns them: zero them, then add the rows in */
    LLVMValueRef base = LLVMBuildNSWMul(b, p, i64c(c, x->rows * x->inner), "");
    loop zr, z;
    LLVMValueRef r = loop_begin(c, &zr, i64c(c, 0), i64c(c, x->rows));
    LLVMValueRef row = LLVMBuildNSWAdd(b, base, LLVMBuildNSWMul(b, r, i64c(c, x->inner), ""), "");
    LLVMValueRef zi = loop_begin(c, &z, q0, q1);
    store_elem(c, 2, x->dtype, LLVMBuildNSWAdd(b, row, zi, ""), LLVMConstNull(ty_of(c->e, x->dtype)));
    loop_end(c, &z);
    loop_end(c, &zr);
    loop tl;
    LLVMValueRef t = loop_begin(c, &tl, i64c(c, 0), i64c(c, x->count));
    LLVMValueRef ix = checked_index(c, t, x->rows, first);
    LLVMValueRef dst = LLVMBuildNSWAdd(b, base, LLVMBuildNSWMul(b, ix, i64c(c, x->inner), ""), "");
    LLVMValueRef src = LLVMBuildNSWMul(b, LLVMBuildNSWAdd(b, LLVMBuildNSWMul(b, p, i64c(c, x->count), ""), t, ""),
                                       i64c(c, x->inner), "");
    loop q;
    LLVMValueRef qi = loop_begin(c, &q, q0, q1);
    LLVMValueRef di = LLVMBuildNSWAdd(b, dst, qi, "");
    LLVMValueRef sum = p_op(&c->kx, KX_ADD, load_elem(c, 2, x->dtype, di),
                            load_elem(c, 0, x->dtype, LLVMBuildNSWAdd(b, src, qi, "")));
    store_elem(c, 2, x->dtype, di, sum);
    loop_end(c, &q);
    loop_end(c, &tl);
    loop_end(c, &w);
    return x->outer * blocks;
}

/* ------------------------------------------------------------------ */
/* Entry                                                              */
/* ------------------------------------------------------------------ */

static void add_attr(jit_engine *e, LLVMValueRef fn, unsigned idx, const char *name)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, idx, LLVMCreateEnumAttribute(e->ctx, kind, 0));
}

loom_code jit_emit_kernel(jit_engine *e, LLVMModuleRef m, const char *name, const kernel *k, int64_t *work,
                          size_t *scratch)
{
    *scratch = 0;
    if (k->kind == KN_GEMM) {
        jit_gemm_spec s = {
            .dtype = k->gemm.dtype, .batch = k->gemm.batch, .m = k->gemm.m, .n = k->gemm.n, .k = k->gemm.k,
            .ta = k->gemm.ta, .tb = k->gemm.tb, .lda = k->gemm.lda, .ldb = k->gemm.ldb, .ldc = k->gemm.ldc,
            .stride_a = k->gemm.stride_a, .stride_b = k->gemm.stride_b, .stride_c = k->gemm.stride_c,
            .accumulate = k->gemm.accumulate, .bias = k->gemm.bias, .act = (jit_act)k->gemm.act,
            .bpack = k->gemm.bpack,
        };
        loom_code c = jit_gemm_check(&s, e->err);
        if (c != LOOM_OK)
            return c;
        *work = jit_gemm_work(&s);
        *scratch = jit_gemm_scratch(&s);
        return jit_gemm_emit(e, m, name, &s);
    }
    cg c = {
        .kx = { .op = p_op, .select = p_select, .konst = p_konst, .cast = p_cast, .coord = p_coord,
                .random = p_random },
        .e = e,
        .m = m,
        .k = k,
    };
    lm_mem mem = e->mem;
    /* a row chain's sub-kernels take turns with the value arrays */
    size_t ncode = k->ncode, nviews = k->nviews;
    for (uint32_t i = 0; i < k->nsubs; i++) {
        ncode = LM_MAX(ncode, (size_t)k->subs[i].ncode);
        nviews = LM_MAX(nviews, (size_t)k->subs[i].nviews);
    }
    /* the body: internal, over noalias pointers, inlined into the entry */
    uint32_t na = k->nargs;
    c.ptr = lm_zalloc(&mem, (k->nargs + 1) * sizeof *c.ptr);
    c.vals = lm_zalloc(&mem, (ncode + 1) * sizeof *c.vals);
    c.rowoff = lm_zalloc(&mem, (nviews + 1) * sizeof *c.rowoff);
    LLVMTypeRef *pt = lm_alloc(&mem, (na + 3) * sizeof *pt);
    if (!c.ptr || !c.vals || !c.rowoff || !pt) {
        lm_free(&mem, c.ptr, (k->nargs + 1) * sizeof *c.ptr);
        lm_free(&mem, c.vals, (ncode + 1) * sizeof *c.vals);
        lm_free(&mem, c.rowoff, (nviews + 1) * sizeof *c.rowoff);
        lm_free(&mem, pt, (na + 3) * sizeof *pt);
        return e->err->code;
    }
    for (uint32_t i = 0; i < na; i++)
        pt[i] = jit_ptr(e);
    pt[na] = jit_i64(e);
    pt[na + 1] = jit_i64(e);
    pt[na + 2] = jit_ptr(e);
    char body_name[80];
    snprintf(body_name, sizeof body_name, "%s.body", name);
    LLVMValueRef body = LLVMAddFunction(m, body_name, LLVMFunctionType(LLVMVoidTypeInContext(e->ctx), pt, na + 3, 0));
    LLVMSetLinkage(body, LLVMInternalLinkage);
    add_attr(e, body, LLVMAttributeFunctionIndex, "alwaysinline");
    add_attr(e, body, LLVMAttributeFunctionIndex, "nounwind");
    for (uint32_t i = 0; i < na; i++) {
        if (!k->arg_shared || !k->arg_shared[i])
            add_attr(e, body, i + 1, "noalias");
        add_attr(e, body, i + 1, "nocapture");
        c.ptr[i] = LLVMGetParam(body, i);
    }
    /* the per-thread scratch is the kernel's own: no buffer aliases it */
    add_attr(e, body, na + 3, "noalias");
    c.fn = body;
    c.b = LLVMCreateBuilderInContext(e->ctx);
    LLVMPositionBuilderAtEnd(c.b, LLVMAppendBasicBlockInContext(e->ctx, body, "entry"));
    LLVMValueRef lo = LLVMGetParam(body, na), hi = LLVMGetParam(body, na + 1);
    switch (k->kind) {
    case KN_MAP: *work = emit_map(&c, lo, hi); break;
    case KN_REDUCE:
        *work = emit_reduce(&c, lo, hi, LLVMGetParam(body, na + 2));
        *scratch = reduce_scratch(k);
        break;
    case KN_ROWS:
        /* chain-local arguments point into this thread's scratch */
        for (uint32_t i = 0; i < na; i++)
            if (k->arg_scratch && k->arg_scratch[i] >= 0) {
                LLVMValueRef at = i64c(&c, (int64_t)rows_reduce_scratch(k) + k->arg_scratch[i]);
                c.ptr[i] = LLVMBuildInBoundsGEP2(c.b, LLVMInt8TypeInContext(e->ctx), LLVMGetParam(body, na + 2), &at, 1,
                                                 "");
            }
        *work = emit_rows(&c, lo, hi, LLVMGetParam(body, na + 2));
        *scratch = rows_scratch(k);
        break;
    case KN_GATHER: *work = emit_gather(&c, lo, hi); break;
    default: *work = emit_scatter(&c, lo, hi); break;
    }
    LLVMBuildRetVoid(c.b);

    /* the entry: the engine's signature, loading each buffer pointer */
    LLVMValueRef fn = jit_kernel_begin(e, m, c.b, name);
    LLVMValueRef bufs = LLVMGetParam(fn, 0);
    LLVMValueRef *callargs = lm_alloc(&mem, (na + 3) * sizeof *callargs);
    if (callargs) {
        for (uint32_t i = 0; i < na; i++) {
            LLVMValueRef idx = jit_const_i64(e, i);
            LLVMValueRef slot = LLVMBuildInBoundsGEP2(c.b, jit_ptr(e), bufs, &idx, 1, "");
            LLVMValueRef p = LLVMBuildLoad2(c.b, jit_ptr(e), slot, "");
            LLVMSetAlignment(p, 8);
            callargs[i] = p;
        }
        callargs[na] = LLVMGetParam(fn, 1);
        callargs[na + 1] = LLVMGetParam(fn, 2);
        callargs[na + 2] = LLVMGetParam(fn, 3);
        LLVMBuildCall2(c.b, LLVMGlobalGetValueType(body), body, callargs, na + 3, "");
        LLVMBuildRetVoid(c.b);
        lm_free(&mem, callargs, (na + 3) * sizeof *callargs);
    }
    LLVMDisposeBuilder(c.b);
    lm_free(&mem, pt, (na + 3) * sizeof *pt);
    lm_free(&mem, c.ptr, (k->nargs + 1) * sizeof *c.ptr);
    lm_free(&mem, c.vals, (ncode + 1) * sizeof *c.vals);
    lm_free(&mem, c.rowoff, (nviews + 1) * sizeof *c.rowoff);
    return e->err->code;
}
