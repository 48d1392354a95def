/*
 * gemm.c — the GEMM generator: LLVM IR for one exact matrix product
 * (jit_gemm_spec), with every size, stride, transpose, the dtype and the
 * epilogue baked in as constants. Three kernels, chosen by the plan:
 *
 * Packed (BLIS-style; the general case). op(A) is M x K, op(B) K x N:
 *
 *   work items = (batch member, column block, row block); a call takes a
 *   contiguous range of them, grouped by the outer block:
 *   for each K block (kc deep):
 *     pack the outer operand's block (B's columns, or A's rows when A is
 *     packed and the larger)
 *     for each item: pack the inner operand's block (if it is packed)
 *       for each MR-row tile (A: in L1), for each TW-wide strip (B panel:
 *       streaming from L2): micro-kernel
 *   micro-kernel: MR x NR accumulator vectors (8 x 3 zmm), per k one
 *   broadcast of A per row and NR loads of B; then C (=|+=) acc, and after
 *   the last K block bias and activation.
 *
 *   op(B) is packed into k-major strips of NR vectors (B transposed goes
 *   through in-register vl x vl transposes); with at most 64 rows of A and
 *   B untransposed, B is read in place instead. A transposed is packed
 *   into MR-row panels when enough strips use them; otherwise A is read
 *   in place (broadcasts of strided elements).
 *
 * Prepacked B (spec.bpack, compile/prepack.c): a PACK kernel packs op(B)
 * whole into a buffer, panel after panel in the layout kn_gemm_b_layout
 * gives (which the K blocking here follows for every kernel); PACKED
 * kernels are the packed ones above, finding each panel there instead of
 * packing it. For the few-row products of every time step, which share
 * a weight: packing it per call would cost as much as the product.
 *
 * Dot products (few rows of A, B transposed, K >= 256): both operands are
 * contiguous along K, so 4 rows of A x 6 rows of B accumulate along K in
 * vectors, reduced once at the end. Nothing is packed, and B (a weight,
 * often the largest operand) is read once, in order.
 *
 * All of it is explicit vector IR (<16 x float> or <8 x double>,
 * llvm.fma, broadcasts, shuffles); LLVM allocates registers and
 * schedules. Edges (M or N not a multiple of the tile) get narrower tiles
 * whose last vector is masked (llvm.masked.load/store), emitted only when
 * the shape has them; K edges are shorter loops or masked vectors.
 *
 * Results do not depend on how threads split the work: each C element is
 * computed by one item, in the same order whatever the split.
 *
 * What it is not: a BLAS. There is no run-time shape, no dispatch, no
 * alpha/beta beyond "accumulate", no complex or integer types; threads
 * are the caller's business (the kernel computes the items it is given).
 * The tiles assume AVX-512 (32 zmm registers) and the blocking is tuned
 * for Zen 5 (48 KB L1d, 1 MB L2): other AVX-512 CPUs get correct, maybe
 * not optimal, code; an AVX2-only target gets correct but slow code (each
 * vector split in two, the tile spilling).
 */
#include "gemm.h"

#include <stdio.h>

#include <llvm-c/DebugInfo.h>

#include "plan.h" /* the packed layout of op(B), shared with prepack.c */
#include "vmath.h"

/* ------------------------------------------------------------------ */
/* The plan: every blocking decision, from the spec alone             */
/* ------------------------------------------------------------------ */

/* jit_gemm_work, jit_gemm_scratch and jit_gemm_emit must agree on the
 * blocking, so all three derive it here. */
typedef struct gemm_plan {
    jit_gemm_spec s;       /* leading dimensions and batch strides resolved */
    int esize, vl;         /* bytes per element, lanes per vector */
    int mr, nr, tw;        /* register tile: mr rows x nr vectors = tw columns */
    int64_t kc, nk;        /* K blocks: nk of kc, the last one kc_last deep */
    int64_t kc_last, kc_pad; /* kc_pad: panel depth (kc rounded up to vl, off 4 KB multiples) */
    int64_t mb, n_mb;      /* row blocks of mb rows (a multiple of mr) */
    int64_t nb, n_nb;      /* column blocks of nb columns (a multiple of tw) */
    bool pack_a;           /* A goes through MR-row panels */
    bool direct_b;         /* B ([K, N]) is read where it is, not packed */
    bool dot;              /* dot-product kernel: mr rows of A x nr rows of B */
    bool a_outer;          /* items: column blocks within row blocks (else rows within columns) */
    int64_t strips;        /* tw-wide strips of N (the packed layout's) */
    size_t bp_bytes;       /* packed B panel (kc_pad x nb) */
    size_t ap_bytes;       /* packed A block (mb x kc_pad), after bp */
} gemm_plan;

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

/* Tuning (Zen 5: 48 KB L1d, 1 MB L2; measured with loom-bench gemm). */
enum {
    /* K block: KN_GEMM_KC_MAX (plan.h), so that an A tile (mr x kc) stays in L1 */
    PANEL_BYTES = 512 << 10, /* packed B panel (kc x nb): half of L2 */
    MB_MAX = 192,            /* row block of a B-outer item (rows of A passing the panel) */
    MB_OUTER = 768,          /* row block packed once for many column blocks (A outer) */
    MIN_ITEMS = 24,          /* work items a kernel offers when the shape allows (2 or 3 threads within ~5%) */
    DOT_MAX_M = 64,          /* the dot-product kernel: few rows of A ... */
    DOT_MIN_K = 256,         /* ... and K long enough to pay for the reductions */
    DIRECT_B_MAX_M = 64,     /* B read in place rather than packed */
    PACK_A_MIN_STRIPS = 8,   /* A transposed is packed when this many strips use it */
};

/* Splits `units` (strips or tiles) into blocks of at most `max`, evenly:
 * 10 in blocks of at most 4 are 4 + 3 + 3. Returns the block size. */
static int64_t even_blocks(int64_t units, int64_t max)
{
    max = LM_MAX(LM_MIN(max, units), 1);
    return ceil_div(units, ceil_div(units, max));
}

static void plan_make(const jit_gemm_spec *spec, gemm_plan *p)
{
    memset(p, 0, sizeof *p);
    p->s = *spec;
    jit_gemm_spec *s = &p->s;
    if (!s->lda)
        s->lda = s->ta ? s->m : s->k;
    if (!s->ldb)
        s->ldb = s->tb ? s->k : s->n;
    if (!s->ldc)
        s->ldc = s->n;
    if (!s->stride_a)
        s->stride_a = (s->ta ? s->k : s->m) * s->lda;
    if (!s->stride_b)
        s->stride_b = (s->tb ? s->n : s->k) * s->ldb;
    if (!s->stride_c)
        s->stride_c = s->m * s->ldc;
    p->esize = (int)loom_dtype_size(s->dtype);
    p->vl = 64 / p->esize;

    /* A few rows of A times B transposed: both operands are contiguous
     * along K, so vectorise along K instead (dot products, reduced at
     * the end). Nothing is packed and B is read once, in order, where
     * the transposing pack would cost a third of the product. The
     * reduction is paid once per tile, so K must be long enough. */
    p->dot = s->bpack == KN_BPACK_NONE && !s->ta && s->tb && s->m <= DOT_MAX_M && s->k >= DOT_MIN_K;
    if (p->dot) {
        /* 4 rows of A x 6 rows of B: 24 accumulators, 10 loads per 24 FMAs */
        p->mr = 4;
        p->nr = p->tw = 6;
        p->nk = 1;
        p->kc = p->kc_last = p->kc_pad = s->k;
        int64_t jt = ceil_div(s->n, p->nr);
        p->nb = even_blocks(jt, ceil_div(jt * s->batch, MIN_ITEMS)) * p->nr;
        p->n_nb = ceil_div(s->n, p->nb);
        p->mb = s->m;
        p->n_mb = 1;
        return;
    }

    /* 8 x 3 vectors: 24 accumulators + 3 B vectors + a broadcast of the
     * 32 zmm registers; 8 rows divide the batch sizes RNNs use. */
    p->mr = KN_GEMM_MR;
    p->nr = KN_GEMM_NR;
    /* K in nk blocks as even as can be (the last one 1..kc deep), panels
     * kc_pad deep: the layout a prepacked B has too */
    kn_b_layout l;
    kn_gemm_b_layout(s->dtype, s->n, s->k, &l);
    p->tw = l.tw;
    p->kc = l.kc;
    p->nk = l.nk;
    p->kc_last = l.kc_last;
    p->kc_pad = l.kc_pad;
    p->strips = l.strips;
    int64_t strips = l.strips, tiles = ceil_div(s->m, p->mr);

    /* A packing kernel: items are (K block, run of strips), enough of
     * them for threads to share. */
    if (s->bpack == KN_BPACK_PACK) {
        p->nb = even_blocks(strips, ceil_div(strips * p->nk, MIN_ITEMS)) * p->tw;
        p->n_nb = ceil_div(s->n, p->nb);
        p->mb = s->m;
        p->n_mb = 1;
        return;
    }

    /* With few rows, B is used by few tiles: reading it in place beats
     * copying it (the copy takes as long as the product at M <= 64). */
    p->direct_b = s->bpack == KN_BPACK_NONE && !s->tb && s->m <= DIRECT_B_MAX_M;
    /* A transposed is read a k-row of M at a time, half a cache line per
     * k per tile: pack it whenever its panels serve several strips. */
    p->pack_a = s->ta && strips >= PACK_A_MIN_STRIPS;
    p->a_outer = p->pack_a && s->m > s->n;

    /* Columns in blocks of whole strips whose panel fits PANEL_BYTES,
     * rows in blocks of whole tiles; then smaller blocks until there are
     * MIN_ITEMS items for threads to share, halving the longer side
     * (with few rows, that splits N, as every split should: no item
     * then packs what another packs too). */
    int64_t bs = LM_MAX(PANEL_BYTES / (p->kc_pad * p->tw * p->esize), 1);
    int64_t bt = (p->a_outer ? MB_OUTER : MB_MAX) / p->mr;
    bs = LM_MIN(bs, strips);
    bt = LM_MIN(bt, tiles);
    while (s->batch * ceil_div(strips, bs) * ceil_div(tiles, bt) < MIN_ITEMS) {
        if (bs > 1 && (bs * p->tw >= bt * p->mr || bt == 1))
            bs = ceil_div(bs, 2);
        else if (bt > 1)
            bt = ceil_div(bt, 2);
        else
            break;
    }
    p->nb = even_blocks(strips, bs) * p->tw;
    p->n_nb = ceil_div(s->n, p->nb);
    p->mb = even_blocks(tiles, bt) * p->mr;
    p->n_mb = ceil_div(s->m, p->mb);

    if (!p->direct_b && s->bpack == KN_BPACK_NONE)
        p->bp_bytes = (size_t)round_up(p->kc_pad * LM_MIN(p->nb, strips * p->tw) * p->esize, 64);
    if (p->pack_a)
        p->ap_bytes = (size_t)(LM_MIN(p->mb, tiles * p->mr) * p->kc_pad * p->esize);
}

/* ------------------------------------------------------------------ */
/* Public: check, work, scratch                                       */
/* ------------------------------------------------------------------ */

/* Offsets in elements stay below this, so byte offsets fit in int64. */
static const int64_t SPAN_MAX = INT64_C(1) << 58;

/* *out = a * b + c when that is at most SPAN_MAX (all non-negative). */
static bool span_ok(int64_t a, int64_t b, int64_t c, int64_t *out)
{
    if (b && a > (SPAN_MAX - c) / b)
        return false;
    *out = a * b + c;
    return *out <= SPAN_MAX;
}

loom_code jit_gemm_check(const jit_gemm_spec *s, lm_err *err)
{
    if (!s)
        return lm_fail(err, LOOM_ERR_ARG, "gemm: no spec");
    if (s->dtype != LOOM_F32 && s->dtype != LOOM_F64)
        return lm_fail(err, LOOM_ERR_DTYPE, "gemm: dtype must be f32 or f64, not %s",
                       loom_dtype_name(s->dtype));
    if (s->batch < 1 || s->m < 1 || s->n < 1 || s->k < 1)
        return lm_fail(err, LOOM_ERR_ARG, "gemm: sizes must be positive (batch %lld, M %lld, N %lld, K %lld)",
                       (long long)s->batch, (long long)s->m, (long long)s->n, (long long)s->k);
    if ((unsigned)s->act > JIT_ACT_SIGMOID)
        return lm_fail(err, LOOM_ERR_ARG, "gemm: unknown activation %d", (int)s->act);
    if (s->accumulate && s->act != JIT_ACT_NONE)
        return lm_fail(err, LOOM_ERR_ARG, "gemm: an activation cannot be applied when accumulating into C");

    struct {
        const char *name;
        int64_t ld, row, rows, stride;
    } op[3] = {
        { "lda", s->lda, s->ta ? s->m : s->k, s->ta ? s->k : s->m, s->stride_a },
        { "ldb", s->ldb, s->tb ? s->k : s->n, s->tb ? s->n : s->k, s->stride_b },
        { "ldc", s->ldc, s->n, s->m, s->stride_c },
    };
    for (int i = 0; i < 3; i++) {
        if (op[i].ld < 0 || (op[i].ld && op[i].ld < op[i].row))
            return lm_fail(err, LOOM_ERR_ARG, "gemm: %s %lld is less than the row length %lld", op[i].name,
                           (long long)op[i].ld, (long long)op[i].row);
        if (op[i].stride < 0)
            return lm_fail(err, LOOM_ERR_ARG, "gemm: batch stride of %c is negative (%lld)", "ABC"[i],
                           (long long)op[i].stride);
        /* elements one matrix spans, the default stride (as plan_make
         * resolves it) and the whole batch */
        int64_t l = op[i].ld ? op[i].ld : op[i].row, extent, stride, total;
        bool ok = span_ok(op[i].rows - 1, l, op[i].row, &extent) && span_ok(op[i].rows, l, 0, &stride);
        if (op[i].stride)
            stride = op[i].stride;
        ok = ok && span_ok(s->batch - 1, stride, extent, &total);
        if (!ok)
            return lm_fail(err, LOOM_ERR_ARG, "gemm: %c spans more than 2^58 elements", "ABC"[i]);
        /* Batch members of C must not overlap: items write them
         * concurrently. Inputs may overlap (a shared operand). */
        if (i == 2 && s->batch > 1 && stride < extent)
            return lm_fail(err, LOOM_ERR_ARG, "gemm: batch stride of C %lld is less than a matrix (%lld)",
                           (long long)stride, (long long)extent);
    }
    return LOOM_OK;
}

/* 0 for a spec jit_gemm_check rejects (no kernel is emitted for it). */
int64_t jit_gemm_work(const jit_gemm_spec *s)
{
    lm_err err = { 0 };
    if (jit_gemm_check(s, &err) != LOOM_OK)
        return 0;
    gemm_plan p;
    plan_make(s, &p);
    return s->batch * p.n_nb * (s->bpack == KN_BPACK_PACK ? p.nk : p.n_mb);
}

size_t jit_gemm_scratch(const jit_gemm_spec *s)
{
    lm_err err = { 0 };
    if (jit_gemm_check(s, &err) != LOOM_OK)
        return 0;
    gemm_plan p;
    plan_make(s, &p);
    return p.bp_bytes + p.ap_bytes;
}

/* ------------------------------------------------------------------ */
/* IR helpers                                                         */
/* ------------------------------------------------------------------ */

typedef struct gen {
    jit_engine *e;
    LLVMModuleRef m;
    LLVMBuilderRef b;
    LLVMContextRef cx;
    const gemm_plan *p;
    const char *name;  /* the kernel's; its helpers are named after it */
    LLVMValueRef kernel;
    LLVMValueRef fn;   /* the function being built */
    LLVMTypeRef i1, i32, i64, ptr, et, vt; /* et: the element, vt: <vl x et> */
    LLVMValueRef mk[2][2]; /* micro-kernels (or dot tiles) by [row edge][column edge] */
    LLVMValueRef pack_b[2], pack_a[2]; /* packing: full strips / tiles, the edge one */
} gen;

static LLVMValueRef c64(gen *g, int64_t v) { return LLVMConstInt(g->i64, (unsigned long long)v, 1); }
static LLVMValueRef c32(gen *g, int v) { return LLVMConstInt(g->i32, (unsigned long long)v, 1); }
static LLVMValueRef add(gen *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(g->b, a, b, ""); }
static LLVMValueRef sub(gen *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSub(g->b, a, b, ""); }
static LLVMValueRef mul(gen *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildMul(g->b, a, b, ""); }
static LLVMValueRef mulc(gen *g, LLVMValueRef a, int64_t c) { return c == 1 ? a : mul(g, a, c64(g, c)); }
static LLVMValueRef eqc(gen *g, LLVMValueRef a, int64_t c)
{
    return LLVMBuildICmp(g->b, LLVMIntEQ, a, c64(g, c), "");
}
static LLVMValueRef sel(gen *g, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(g->b, c, a, b, "");
}

/* base + i elements of the plan's dtype */
static LLVMValueRef at(gen *g, LLVMValueRef base, LLVMValueRef i)
{
    return LLVMBuildInBoundsGEP2(g->b, g->et, base, &i, 1, "");
}
static LLVMValueRef atc(gen *g, LLVMValueRef base, int64_t i) { return i ? at(g, base, c64(g, i)) : base; }

static LLVMValueRef intrinsic(gen *g, const char *name, LLVMTypeRef *over, unsigned nover, LLVMValueRef *args,
                              unsigned nargs)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(g->m, id, over, nover);
    return LLVMBuildCall2(g->b, LLVMIntrinsicGetType(g->cx, id, over, nover), f, args, nargs, "");
}

static LLVMValueRef fma3(gen *g, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c)
{
    LLVMTypeRef t = LLVMTypeOf(a);
    LLVMValueRef args[3] = { a, b, c };
    return intrinsic(g, "llvm.fma", &t, 1, args, 3);
}

static LLVMValueRef splat(gen *g, LLVMValueRef x, int lanes)
{
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(x), (unsigned)lanes);
    LLVMValueRef v = LLVMBuildInsertElement(g->b, LLVMGetPoison(vt), x, c32(g, 0), "");
    return LLVMBuildShuffleVector(g->b, v, LLVMGetPoison(vt), LLVMConstNull(LLVMVectorType(g->i32, (unsigned)lanes)),
                                  "");
}

/* The first n of `lanes` lanes on: a compile-time mask. */
static LLVMValueRef mask_const(gen *g, int lanes, int n)
{
    LLVMValueRef bits[16];
    for (int i = 0; i < lanes; i++)
        bits[i] = LLVMConstInt(g->i1, i < n, 0);
    return LLVMConstVector(bits, (unsigned)lanes);
}

/* The first n (a run-time i64) of `lanes` lanes on. */
static LLVMValueRef mask_rt(gen *g, int lanes, LLVMValueRef n)
{
    LLVMValueRef iota[16];
    for (int i = 0; i < lanes; i++)
        iota[i] = c64(g, i);
    return LLVMBuildICmp(g->b, LLVMIntSLT, LLVMConstVector(iota, (unsigned)lanes), splat(g, n, lanes), "");
}

/* Loads `lanes` elements at p; with a mask, lanes off read as 0 and
 * touch no memory. */
static LLVMValueRef vload_m(gen *g, int lanes, LLVMValueRef p, LLVMValueRef mask)
{
    LLVMTypeRef vt = LLVMVectorType(g->et, (unsigned)lanes);
    if (!mask) {
        LLVMValueRef v = LLVMBuildLoad2(g->b, vt, p, "");
        LLVMSetAlignment(v, (unsigned)g->p->esize);
        return v;
    }
    LLVMTypeRef over[2] = { vt, g->ptr };
    LLVMValueRef args[4] = { p, c32(g, g->p->esize), mask, LLVMConstNull(vt) };
    return intrinsic(g, "llvm.masked.load", over, 2, args, 4);
}

static void vstore_m(gen *g, LLVMValueRef v, LLVMValueRef p, LLVMValueRef mask)
{
    if (!mask) {
        LLVMSetAlignment(LLVMBuildStore(g->b, v, p), (unsigned)g->p->esize);
        return;
    }
    LLVMTypeRef over[2] = { LLVMTypeOf(v), g->ptr };
    LLVMValueRef args[4] = { v, p, c32(g, g->p->esize), mask };
    intrinsic(g, "llvm.masked.store", over, 2, args, 4);
}

/* n of `lanes` lanes (n known now): a plain access when all are on. */
static LLVMValueRef vload_n(gen *g, int lanes, LLVMValueRef p, int n)
{
    return vload_m(g, lanes, p, n < lanes ? mask_const(g, lanes, n) : NULL);
}
static void vstore_n(gen *g, LLVMValueRef v, LLVMValueRef p, int n)
{
    int lanes = (int)LLVMGetVectorSize(LLVMTypeOf(v));
    vstore_m(g, v, p, n < lanes ? mask_const(g, lanes, n) : NULL);
}

/* Counted loops: for (iv = lo; iv < hi; iv += step). */
typedef struct loop {
    LLVMBasicBlockRef head, exit;
    LLVMValueRef iv;
} loop;

static LLVMValueRef loop_open(gen *g, loop *l, LLVMValueRef lo, LLVMValueRef hi, const char *name)
{
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(g->b);
    l->head = LLVMAppendBasicBlockInContext(g->cx, g->fn, name);
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(g->cx, g->fn, "body");
    l->exit = LLVMAppendBasicBlockInContext(g->cx, g->fn, "done");
    LLVMBuildBr(g->b, l->head);
    LLVMPositionBuilderAtEnd(g->b, l->head);
    l->iv = LLVMBuildPhi(g->b, g->i64, name);
    LLVMAddIncoming(l->iv, &lo, &pre, 1);
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, l->iv, hi, ""), body, l->exit);
    LLVMPositionBuilderAtEnd(g->b, body);
    return l->iv;
}

/* Closes the loop. Every loop here is marked llvm.loop.unroll.disable:
 * the bodies that matter are unrolled already (the micro-kernel by
 * K_UNROLL), and LLVM unrolling the rest (tile loops with calls,
 * transposes, edge loops) doubled compile time for no measured gain. */
static void loop_close(gen *g, loop *l, int64_t step)
{
    LLVMValueRef next = add(g, l->iv, c64(g, step));
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(g->b);
    LLVMValueRef br = LLVMBuildBr(g->b, l->head);
    LLVMAddIncoming(l->iv, &next, &latch, 1);
    LLVMPositionBuilderAtEnd(g->b, l->exit);
    /* !llvm.loop !{self, !{"llvm.loop.unroll.disable"}}: a self-reference
     * needs a temporary node replaced afterwards */
    LLVMMetadataRef tmp = LLVMTemporaryMDNode(g->cx, NULL, 0);
    LLVMMetadataRef str = LLVMMDStringInContext2(g->cx, "llvm.loop.unroll.disable", 24);
    LLVMMetadataRef ops[2] = { tmp, LLVMMDNodeInContext2(g->cx, &str, 1) };
    LLVMMetadataRef id = LLVMMDNodeInContext2(g->cx, ops, 2);
    LLVMMetadataReplaceAllUsesWith(tmp, id);
    LLVMSetMetadata(br, LLVMGetMDKindIDInContext(g->cx, "llvm.loop", 9), LLVMMetadataAsValue(g->cx, id));
}

/* if (cond) { ... } */
static LLVMBasicBlockRef if_open(gen *g, LLVMValueRef cond)
{
    LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(g->cx, g->fn, "then");
    LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(g->cx, g->fn, "join");
    LLVMBuildCondBr(g->b, cond, then, join);
    LLVMPositionBuilderAtEnd(g->b, then);
    return join;
}

static void if_close(gen *g, LLVMBasicBlockRef join)
{
    LLVMBuildBr(g->b, join);
    LLVMPositionBuilderAtEnd(g->b, join);
}

/* An internal helper function (micro-kernel, packing) with the kernel's
 * attributes: the target CPU and features, without which it would be
 * compiled for plain x86-64. noinline: each helper is compiled once
 * rather than at every call site (a call per tile costs nothing next to
 * kc x 24 FMAs, and compile time drops by a third). Leaves the builder in
 * its entry block. */
static LLVMValueRef helper_begin(gen *g, const char *suffix, LLVMTypeRef *params, unsigned nparams)
{
    char name[256];
    snprintf(name, sizeof name, "%s.%s", g->name, suffix);
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(g->cx), params, nparams, 0);
    LLVMValueRef fn = LLVMAddFunction(g->m, name, fty);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    unsigned kind = LLVMGetEnumAttributeKindForName("noinline", 8);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(g->cx, kind, 0));
    unsigned n = LLVMGetAttributeCountAtIndex(g->kernel, LLVMAttributeFunctionIndex);
    LLVMAttributeRef attrs[32];
    if (n <= LM_ARRAY_LEN(attrs)) { /* jit_kernel_begin sets about eight */
        LLVMGetAttributesAtIndex(g->kernel, LLVMAttributeFunctionIndex, attrs);
        for (unsigned i = 0; i < n; i++)
            LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, attrs[i]);
    }
    g->fn = fn;
    LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->cx, fn, "entry"));
    return fn;
}

static void call(gen *g, LLVMValueRef fn, LLVMValueRef *args, unsigned n)
{
    LLVMBuildCall2(g->b, LLVMGlobalGetValueType(fn), fn, args, n, "");
}

/* buf[0..3] = A, B, C and the bias (NULL without one) from the kernel's
 * bufs argument. */
static void load_bufs(gen *g, LLVMValueRef bufs, LLVMValueRef *buf)
{
    buf[3] = NULL;
    for (int i = 0; i < (g->p->s.bias ? 4 : 3); i++) {
        LLVMValueRef idx = c64(g, i);
        buf[i] = LLVMBuildLoad2(g->b, g->ptr, LLVMBuildInBoundsGEP2(g->b, g->ptr, bufs, &idx, 1, ""), "");
    }
}

/* ------------------------------------------------------------------ */
/* The micro-kernel                                                   */
/* ------------------------------------------------------------------ */

enum { K_UNROLL = 4 };

/* Where a tile's A elements are: row i, step k at a[i*rs + k*cs]. */
static void a_strides(const gemm_plan *p, int64_t *rs, int64_t *cs)
{
    if (p->pack_a) {
        *rs = 1;
        *cs = p->mr;
    } else if (p->s.ta) {
        *rs = 1;
        *cs = p->s.lda;
    } else {
        *rs = p->s.lda;
        *cs = 1;
    }
}

/* One step of k: NR loads of the B panel, a broadcast of A per row, MR x
 * NR fused multiply-adds. */
static void mk_step(gen *g, LLVMValueRef a, LLVMValueRef bp, LLVMValueRef k, int mr, int nr, int last,
                    LLVMValueRef *acc)
{
    const gemm_plan *p = g->p;
    int64_t rs, cs;
    a_strides(p, &rs, &cs);
    LLVMValueRef bv[4];
    LLVMValueRef brow = at(g, bp, mulc(g, k, p->direct_b ? p->s.ldb : p->tw));
    for (int j = 0; j < nr; j++) /* a panel is zero-padded; B itself may end mid-vector */
        bv[j] = vload_n(g, p->vl, atc(g, brow, j * p->vl), p->direct_b && j == nr - 1 ? last : p->vl);
    LLVMValueRef acol = at(g, a, mulc(g, k, cs));
    for (int i = 0; i < mr; i++) {
        LLVMValueRef x = LLVMBuildLoad2(g->b, g->et, atc(g, acol, i * rs), "");
        LLVMSetAlignment(x, (unsigned)p->esize);
        LLVMValueRef xv = splat(g, x, p->vl);
        for (int j = 0; j < nr; j++)
            acc[i * nr + j] = fma3(g, xv, bv[j], acc[i * nr + j]);
    }
}

static LLVMValueRef activation(gen *g, LLVMValueRef x)
{
    switch (g->p->s.act) {
    case JIT_ACT_RELU: {
        LLVMValueRef zero = LLVMConstNull(LLVMTypeOf(x));
        /* x > 0 ? x : 0, so NaN gives 0 as in the reference */
        return sel(g, LLVMBuildFCmp(g->b, LLVMRealOGT, x, zero, ""), x, zero);
    }
    case JIT_ACT_TANH:
        return jv_tanh(g->e, g->b, x);
    case JIT_ACT_SIGMOID:
        return jv_sigmoid(g->e, g->b, x);
    case JIT_ACT_NONE:
        break;
    }
    return x;
}

/* Accumulators live in allocas (in the entry block, zeroed) that SROA
 * turns into registers; loops load them at the top and store them at the
 * bottom of their bodies, which becomes phis. */
static void acc_init(gen *g, LLVMValueRef *slot, int n)
{
    for (int i = 0; i < n; i++) {
        slot[i] = LLVMBuildAlloca(g->b, g->vt, "acc");
        LLVMBuildStore(g->b, LLVMConstNull(g->vt), slot[i]);
    }
}

static void acc_load(gen *g, const LLVMValueRef *slot, LLVMValueRef *acc, int n)
{
    for (int i = 0; i < n; i++)
        acc[i] = LLVMBuildLoad2(g->b, g->vt, slot[i], "");
}

static void acc_store(gen *g, const LLVMValueRef *slot, const LLVMValueRef *acc, int n)
{
    for (int i = 0; i < n; i++)
        LLVMBuildStore(g->b, acc[i], slot[i]);
}

/* void mk(ptr a, ptr bp, ptr c, ptr bias, i64 kc, i1 load_c, i1 epi):
 *   acc = op(A)[tile, 0:kc] · Bpanel[0:kc, strip]
 *   if load_c: acc += C;  if epi: acc = act(acc + bias);  C = acc
 * for a tile of mr rows and nr vectors whose last one has `last` lanes. */
static LLVMValueRef mk_emit(gen *g, int mr, int nr, int last)
{
    const gemm_plan *p = g->p;
    char suffix[48];
    snprintf(suffix, sizeof suffix, "mk%dx%d_%d", mr, nr, last);
    LLVMTypeRef params[7] = { g->ptr, g->ptr, g->ptr, g->ptr, g->i64, g->i1, g->i1 };
    LLVMValueRef fn = helper_begin(g, suffix, params, 7);
    LLVMValueRef a = LLVMGetParam(fn, 0), bp = LLVMGetParam(fn, 1), c = LLVMGetParam(fn, 2);
    LLVMValueRef bias = LLVMGetParam(fn, 3), kc = LLVMGetParam(fn, 4);
    LLVMValueRef load_c = LLVMGetParam(fn, 5), epi = LLVMGetParam(fn, 6);

    LLVMValueRef slot[32], acc[32];
    int nacc = mr * nr;
    acc_init(g, slot, nacc);

    /* k loop, unrolled K_UNROLL times, then the remainder one by one */
    LLVMValueRef kmain = LLVMBuildAnd(g->b, kc, c64(g, -K_UNROLL), "");
    loop l;
    LLVMValueRef k = loop_open(g, &l, c64(g, 0), kmain, "k");
    acc_load(g, slot, acc, nacc);
    for (int u = 0; u < K_UNROLL; u++)
        mk_step(g, a, bp, add(g, k, c64(g, u)), mr, nr, last, acc);
    acc_store(g, slot, acc, nacc);
    loop_close(g, &l, K_UNROLL);
    k = loop_open(g, &l, kmain, kc, "krem");
    acc_load(g, slot, acc, nacc);
    mk_step(g, a, bp, k, mr, nr, last, acc);
    acc_store(g, slot, acc, nacc);
    loop_close(g, &l, 1);

    /* C += (accumulating or after the first K block) */
    LLVMBasicBlockRef join = if_open(g, load_c);
    acc_load(g, slot, acc, nacc);
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            LLVMValueRef cp = atc(g, c, i * p->s.ldc + j * p->vl);
            LLVMValueRef cv = vload_n(g, p->vl, cp, j == nr - 1 ? last : p->vl);
            acc[i * nr + j] = LLVMBuildFAdd(g->b, acc[i * nr + j], cv, "");
        }
    acc_store(g, slot, acc, nacc);
    if_close(g, join);

    /* bias and ReLU (after the last K block) in registers */
    bool poly = p->s.act == JIT_ACT_TANH || p->s.act == JIT_ACT_SIGMOID;
    if (p->s.bias || p->s.act == JIT_ACT_RELU) {
        join = if_open(g, epi);
        acc_load(g, slot, acc, nacc);
        for (int j = 0; j < nr; j++) {
            LLVMValueRef bv = NULL;
            if (p->s.bias)
                bv = vload_n(g, p->vl, atc(g, bias, j * p->vl), j == nr - 1 ? last : p->vl);
            for (int i = 0; i < mr; i++) {
                LLVMValueRef *x = &acc[i * nr + j];
                if (bv)
                    *x = LLVMBuildFAdd(g->b, *x, bv, "");
                if (!poly)
                    *x = activation(g, *x);
            }
        }
        acc_store(g, slot, acc, nacc);
        if_close(g, join);
    }

    acc_load(g, slot, acc, nacc);
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++)
            vstore_n(g, acc[i * nr + j], atc(g, c, i * p->s.ldc + j * p->vl), j == nr - 1 ? last : p->vl);

    /* tanh and sigmoid are long polynomials: applied to the stored tile
     * row by row, so the code holds nr copies rather than mr x nr (a
     * third of the compile time), for a pass over C that is in L1 */
    if (poly) {
        join = if_open(g, epi);
        loop lr;
        LLVMValueRef row = at(g, c, mulc(g, loop_open(g, &lr, c64(g, 0), c64(g, mr), "row"), p->s.ldc));
        for (int j = 0; j < nr; j++) {
            LLVMValueRef cp = atc(g, row, j * p->vl);
            int n = j == nr - 1 ? last : p->vl;
            vstore_n(g, activation(g, vload_n(g, p->vl, cp, n)), cp, n);
        }
        loop_close(g, &lr, 1);
        if_close(g, join);
    }
    LLVMBuildRetVoid(g->b);
    return fn;
}

/* ------------------------------------------------------------------ */
/* Packing                                                            */
/* ------------------------------------------------------------------ */

/* Transposes n x n (n = the vector length) held in r[0..n): log2(n)
 * rounds of two-source shuffles, each swapping the off-diagonal blocks
 * of size b, which exchanges bit b of the row and column indices. */
static void transpose(gen *g, LLVMValueRef *r, int n)
{
    for (int b = n / 2; b >= 1; b /= 2) {
        LLVMValueRef lo[16], hi[16];
        for (int j = 0; j < n; j++) {
            lo[j] = c32(g, (j & b) ? n + j - b : j);
            hi[j] = c32(g, (j & b) ? n + j : j + b);
        }
        LLVMValueRef mlo = LLVMConstVector(lo, (unsigned)n), mhi = LLVMConstVector(hi, (unsigned)n);
        for (int i = 0; i < n; i++) {
            if (i & b)
                continue;
            LLVMValueRef x = LLVMBuildShuffleVector(g->b, r[i], r[i + b], mlo, "");
            LLVMValueRef y = LLVMBuildShuffleVector(g->b, r[i], r[i + b], mhi, "");
            r[i] = x;
            r[i + b] = y;
        }
    }
}

/* void pack_b(ptr bg, ptr bp, i64 col0, i64 k0, i64 kc, i64 s0, i64 s1)
 * for B = [K, N]: strips [s0, s1) of the column block starting at col0,
 * rows k0 .. k0+kc, into the panel: strip s at bp + s*kc_pad*tw, one
 * tw-wide row per k. Each strip has nr vectors, the last one `last`
 * lanes wide (the rest zero); a full strip has nr = NR, last = vl. */
static LLVMValueRef pack_b_emit(gen *g, int nr, int last)
{
    const gemm_plan *p = g->p;
    char suffix[32];
    snprintf(suffix, sizeof suffix, "pack_b%d_%d", nr, last);
    LLVMTypeRef params[7] = { g->ptr, g->ptr, g->i64, g->i64, g->i64, g->i64, g->i64 };
    LLVMValueRef fn = helper_begin(g, suffix, params, 7);
    LLVMValueRef bg = LLVMGetParam(fn, 0), bp = LLVMGetParam(fn, 1), col0 = LLVMGetParam(fn, 2);
    LLVMValueRef k0 = LLVMGetParam(fn, 3), kc = LLVMGetParam(fn, 4);
    LLVMValueRef s0 = LLVMGetParam(fn, 5), s1 = LLVMGetParam(fn, 6);
    /* k outer, so memory is read row by row, in order (the hardware
     * prefetcher follows; a strip at a time would touch a new page every
     * k when rows are long) */
    loop ls, lk;
    LLVMValueRef k = loop_open(g, &lk, c64(g, 0), kc, "k");
    LLVMValueRef src = at(g, bg, add(g, mulc(g, add(g, k0, k), p->s.ldb), col0));
    LLVMValueRef dst = at(g, bp, mulc(g, k, p->tw));
    LLVMValueRef st = loop_open(g, &ls, s0, s1, "strip");
    LLVMValueRef from = at(g, src, mulc(g, st, p->tw)), to = at(g, dst, mulc(g, st, p->kc_pad * p->tw));
    for (int j = 0; j < nr; j++)
        vstore_m(g, vload_n(g, p->vl, atc(g, from, j * p->vl), j == nr - 1 ? last : p->vl), atc(g, to, j * p->vl),
                 NULL);
    loop_close(g, &ls, 1);
    loop_close(g, &lk, 1);
    LLVMBuildRetVoid(g->b);
    return fn;
}

/* void pack_bt(ptr bg, ptr bp, i64 col0, i64 k0, i64 kc, i64 v0, i64 v1,
 * i64 lanes) for B = [N, K], so op(B) = B^T: column vectors [v0, v1) of
 * the block starting at column col0 (the last one `lanes` wide, the rest
 * zero), rows k0 .. k0+kc, into the same panel layout (vector v is slot
 * v % nr of strip v / nr). vl x vl blocks are transposed in registers;
 * the rows of B past the block and the k past kc are masked off, so one
 * copy of the transpose serves every edge. */
static LLVMValueRef pack_bt_emit(gen *g)
{
    const gemm_plan *p = g->p;
    LLVMTypeRef params[8] = { g->ptr, g->ptr, g->i64, g->i64, g->i64, g->i64, g->i64, g->i64 };
    LLVMValueRef fn = helper_begin(g, "pack_bt", params, 8);
    LLVMValueRef bg = LLVMGetParam(fn, 0), bp = LLVMGetParam(fn, 1), col0 = LLVMGetParam(fn, 2);
    LLVMValueRef k0 = LLVMGetParam(fn, 3), kc = LLVMGetParam(fn, 4);
    LLVMValueRef v0 = LLVMGetParam(fn, 5), v1 = LLVMGetParam(fn, 6), lanes = LLVMGetParam(fn, 7);
    loop lv, lk;
    LLVMValueRef v = loop_open(g, &lv, v0, v1, "v");
    LLVMValueRef strip = LLVMBuildUDiv(g->b, v, c64(g, p->nr), "");
    LLVMValueRef slot = LLVMBuildURem(g->b, v, c64(g, p->nr), "");
    LLVMValueRef dst = at(g, bp, add(g, mulc(g, strip, p->kc_pad * p->tw), mulc(g, slot, p->vl)));
    LLVMValueRef src = at(g, bg, add(g, mulc(g, add(g, col0, mulc(g, v, p->vl)), p->s.ldb), k0));
    LLVMValueRef rows = sel(g, LLVMBuildICmp(g->b, LLVMIntEQ, v, sub(g, v1, c64(g, 1)), ""), lanes,
                            c64(g, p->vl));
    LLVMValueRef kb = loop_open(g, &lk, c64(g, 0), kc, "kb");
    LLVMValueRef kmask = mask_rt(g, p->vl, sub(g, kc, kb));
    LLVMValueRef none = LLVMConstNull(LLVMTypeOf(kmask));
    LLVMValueRef r[16];
    for (int i = 0; i < p->vl; i++) {
        LLVMValueRef live = LLVMBuildICmp(g->b, LLVMIntSLT, c64(g, i), rows, "");
        r[i] = vload_m(g, p->vl, at(g, atc(g, src, i * p->s.ldb), kb), sel(g, live, kmask, none));
    }
    transpose(g, r, p->vl);
    /* all vl k-rows are written: the panel is kc_pad deep */
    LLVMValueRef to = at(g, dst, mulc(g, kb, p->tw));
    for (int q = 0; q < p->vl; q++)
        vstore_m(g, r[q], atc(g, to, q * p->tw), NULL);
    loop_close(g, &lk, p->vl);
    loop_close(g, &lv, 1);
    LLVMBuildRetVoid(g->b);
    return fn;
}

/* void pack_a(ptr ag, ptr ap, i64 row0, i64 k0, i64 kc, i64 t0, i64 t1):
 * tiles [t0, t1) of mr rows (n real, the rest zero) of op(A) = A^T,
 * rows k0 .. k0+kc, into panels of mr elements per k. A is [K, M], so a
 * tile's elements for one k are contiguous. */
static LLVMValueRef pack_a_emit(gen *g, int n)
{
    const gemm_plan *p = g->p;
    char suffix[32];
    snprintf(suffix, sizeof suffix, "pack_a_%d", n);
    LLVMTypeRef params[7] = { g->ptr, g->ptr, g->i64, g->i64, g->i64, g->i64, g->i64 };
    LLVMValueRef fn = helper_begin(g, suffix, params, 7);
    LLVMValueRef ag = LLVMGetParam(fn, 0), ap = LLVMGetParam(fn, 1), row0 = LLVMGetParam(fn, 2);
    LLVMValueRef k0 = LLVMGetParam(fn, 3), kc = LLVMGetParam(fn, 4);
    /* k outer: each row of A is read in order */
    loop lt, lk;
    LLVMValueRef k = loop_open(g, &lk, c64(g, 0), kc, "k");
    LLVMValueRef src = at(g, ag, add(g, mulc(g, add(g, k0, k), p->s.lda), row0));
    LLVMValueRef dst = at(g, ap, mulc(g, k, p->mr));
    LLVMValueRef t = loop_open(g, &lt, LLVMGetParam(fn, 5), LLVMGetParam(fn, 6), "t");
    LLVMValueRef x = vload_n(g, p->mr, at(g, src, mulc(g, t, p->mr)), n);
    vstore_m(g, x, at(g, dst, mulc(g, t, p->kc_pad * p->mr)), NULL);
    loop_close(g, &lt, 1);
    loop_close(g, &lk, 1);
    LLVMBuildRetVoid(g->b);
    return fn;
}

/* ------------------------------------------------------------------ */
/* The kernel: items, K blocks, strips, tiles                         */
/* ------------------------------------------------------------------ */

/* What the loops below share for one (item group, K block, row block). */
typedef struct nest {
    LLVMValueRef ag, bg, cg, bias, ap, bp; /* bases of this batch member; panels */
    LLVMValueRef row0, col0, k0, kc, load_c, epi;
    LLVMValueRef ntiles, nstrips;      /* full tiles / strips in this block */
    LLVMValueRef last_mb, last_nb;     /* this is the last row / column block */
    LLVMValueRef nbi;                  /* the column block */
} nest;

static LLVMValueRef tile_a(gen *g, const nest *x, LLVMValueRef t)
{
    const gemm_plan *p = g->p;
    if (p->pack_a)
        return at(g, x->ap, mulc(g, t, p->kc_pad * p->mr));
    LLVMValueRef row = add(g, x->row0, mulc(g, t, p->mr));
    return p->s.ta ? at(g, x->ag, add(g, row, mulc(g, x->k0, p->s.lda)))
                   : at(g, x->ag, add(g, mulc(g, row, p->s.lda), x->k0));
}

/* One micro-kernel call: tile t (rows), strip s (columns). */
static void tile_call(gen *g, const nest *x, LLVMValueRef t, LLVMValueRef s, LLVMValueRef mk)
{
    const gemm_plan *p = g->p;
    LLVMValueRef col = add(g, x->col0, mulc(g, s, p->tw));
    LLVMValueRef bp = p->direct_b ? at(g, x->bg, add(g, mulc(g, x->k0, p->s.ldb), col))
                                  : at(g, x->bp, mulc(g, s, p->kc_pad * p->tw));
    LLVMValueRef row = add(g, x->row0, mulc(g, t, p->mr));
    LLVMValueRef bias = p->s.bias ? at(g, x->bias, col) : LLVMConstNull(g->ptr);
    LLVMValueRef args[7] = { tile_a(g, x, t), bp, at(g, x->cg, add(g, mulc(g, row, p->s.ldc), col)), bias,
                             x->kc, x->load_c, x->epi };
    call(g, mk, args, 7);
}

/* All tiles of a row block against all strips of a column block,
 * mk[row edge][column edge] (edges exist only in the last blocks, and
 * only when the shape has them). With a packed panel, a tile (mr x kc of
 * A) stays in L1 while the panel's strips stream from L2 past it: tiles
 * outer, as BLIS does. With B read in place, a strip of B is fetched
 * from memory once and kept while the (few) tiles pass: strips outer. */
static void block_tiles(gen *g, const nest *x)
{
    const gemm_plan *p = g->p;
    bool n_edge = p->s.n % p->tw, m_edge = p->s.m % p->mr;
    loop lo, li;
    if (!p->direct_b) {
        for (int re = 0; re <= (int)m_edge; re++) {
            LLVMBasicBlockRef join = re ? if_open(g, x->last_mb) : NULL;
            LLVMValueRef t = re ? x->ntiles : loop_open(g, &lo, c64(g, 0), x->ntiles, "tile");
            LLVMValueRef s = loop_open(g, &li, c64(g, 0), x->nstrips, "strip");
            tile_call(g, x, t, s, g->mk[re][0]);
            loop_close(g, &li, 1);
            if (n_edge) {
                LLVMBasicBlockRef j2 = if_open(g, x->last_nb);
                tile_call(g, x, t, x->nstrips, g->mk[re][1]);
                if_close(g, j2);
            }
            if (re)
                if_close(g, join);
            else
                loop_close(g, &lo, 1);
        }
    } else {
        for (int ce = 0; ce <= (int)n_edge; ce++) {
            LLVMBasicBlockRef join = ce ? if_open(g, x->last_nb) : NULL;
            LLVMValueRef s = ce ? x->nstrips : loop_open(g, &lo, c64(g, 0), x->nstrips, "strip");
            LLVMValueRef t = loop_open(g, &li, c64(g, 0), x->ntiles, "tile");
            tile_call(g, x, t, s, g->mk[0][ce]);
            loop_close(g, &li, 1);
            if (m_edge) {
                LLVMBasicBlockRef j2 = if_open(g, x->last_mb);
                tile_call(g, x, x->ntiles, s, g->mk[1][ce]);
                if_close(g, j2);
            }
            if (ce)
                if_close(g, join);
            else
                loop_close(g, &lo, 1);
        }
    }
}

/* Row block mb: its first row, tile count, whether it is the last. */
static void set_rows(gen *g, nest *x, LLVMValueRef mb)
{
    const gemm_plan *p = g->p;
    int64_t m_last = p->s.m - (p->n_mb - 1) * p->mb;
    x->row0 = mulc(g, mb, p->mb);
    x->last_mb = eqc(g, mb, p->n_mb - 1);
    x->ntiles = sel(g, x->last_mb, c64(g, m_last / p->mr), c64(g, p->mb / p->mr));
}

/* Column block nb: its first column, strip count, whether it is the last. */
static void set_cols(gen *g, nest *x, LLVMValueRef nb)
{
    const gemm_plan *p = g->p;
    int64_t n_last = p->s.n - (p->n_nb - 1) * p->nb;
    x->nbi = nb;
    x->col0 = mulc(g, nb, p->nb);
    x->last_nb = eqc(g, nb, p->n_nb - 1);
    x->nstrips = sel(g, x->last_nb, c64(g, n_last / p->tw), c64(g, p->nb / p->tw));
}

/* op(B)[k block, column block] into the panel. */
static void pack_b_block(gen *g, const nest *x)
{
    const gemm_plan *p = g->p;
    int64_t n_last = p->s.n - (p->n_nb - 1) * p->nb;
    if (p->s.tb) {
        int64_t nv_last = ceil_div(n_last, p->vl);
        LLVMValueRef args[8] = { x->bg, x->bp, x->col0, x->k0, x->kc, c64(g, 0),
                                 sel(g, x->last_nb, c64(g, nv_last), c64(g, p->nb / p->vl)),
                                 sel(g, x->last_nb, c64(g, n_last - (nv_last - 1) * p->vl), c64(g, p->vl)) };
        call(g, g->pack_b[0], args, 8);
    } else if (!p->direct_b) {
        LLVMValueRef args[7] = { x->bg, x->bp, x->col0, x->k0, x->kc, c64(g, 0), x->nstrips };
        call(g, g->pack_b[0], args, 7);
        if (g->pack_b[1]) {
            LLVMBasicBlockRef join = if_open(g, x->last_nb);
            args[5] = x->nstrips;
            args[6] = add(g, x->nstrips, c64(g, 1));
            call(g, g->pack_b[1], args, 7);
            if_close(g, join);
        }
    }
}

/* Where K block pc of the column block's panel is in a prepacked B
 * (kn_gemm_b_layout), from base bg. */
static LLVMValueRef packed_panel(gen *g, const nest *x, LLVMValueRef bg, LLVMValueRef pc)
{
    const gemm_plan *p = g->p;
    LLVMValueRef strip = add(g, mulc(g, pc, p->strips), mulc(g, x->nbi, p->nb / p->tw));
    return at(g, bg, mulc(g, strip, p->kc_pad * p->tw));
}

/* The column block's panel for K block pc: packed now, into the
 * scratch, or (prepacked B) found. */
static void b_panel(gen *g, nest *x, LLVMValueRef pc)
{
    if (g->p->s.bpack == KN_BPACK_PACKED)
        x->bp = packed_panel(g, x, x->bg, pc);
    else
        pack_b_block(g, x);
}

/* op(A)[row block, k block] into its panels, if A is packed. */
static void pack_a_block(gen *g, const nest *x)
{
    if (!g->p->pack_a)
        return;
    LLVMValueRef args[7] = { x->ag, x->ap, x->row0, x->k0, x->kc, c64(g, 0), x->ntiles };
    call(g, g->pack_a[0], args, 7);
    if (g->pack_a[1]) {
        LLVMBasicBlockRef join = if_open(g, x->last_mb);
        args[5] = x->ntiles;
        args[6] = add(g, x->ntiles, c64(g, 1));
        call(g, g->pack_a[1], args, 7);
        if_close(g, join);
    }
}

/* Items are (p, outer block, inner block), the inner fastest. The outer
 * operand's panel is packed once per K block for all of a group's items
 * this call does; the inner one per item. B is the outer operand (its
 * panel in L2, row blocks of A passing by) unless A is packed and the
 * larger: then packing A once and B once per item moves less. */
static void kernel_body(gen *g, LLVMValueRef bufs, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef scratch)
{
    const gemm_plan *p = g->p;
    const jit_gemm_spec *s = &p->s;
    LLVMValueRef buf[4];
    load_bufs(g, bufs, buf);
    LLVMValueRef bytes = c64(g, (int64_t)p->bp_bytes);
    int64_t n_out = p->a_outer ? p->n_mb : p->n_nb, n_in = p->a_outer ? p->n_nb : p->n_mb;

    LLVMValueRef per = c64(g, n_in);
    LLVMValueRef g_lo = LLVMBuildSDiv(g->b, lo, per, "");
    LLVMValueRef g_hi = LLVMBuildSDiv(g->b, add(g, hi, c64(g, n_in - 1)), per, "");
    loop lg, lp, li;
    LLVMValueRef gi = loop_open(g, &lg, g_lo, g_hi, "group");
    LLVMValueRef pi = LLVMBuildSDiv(g->b, gi, c64(g, n_out), "");
    LLVMValueRef out = LLVMBuildSRem(g->b, gi, c64(g, n_out), "");
    LLVMValueRef base = mulc(g, gi, n_in);
    LLVMValueRef i_lo = sub(g, lo, base), i_hi = sub(g, hi, base);
    i_lo = sel(g, LLVMBuildICmp(g->b, LLVMIntSLT, i_lo, c64(g, 0), ""), c64(g, 0), i_lo);
    i_hi = sel(g, LLVMBuildICmp(g->b, LLVMIntSGT, i_hi, per, ""), per, i_hi);

    nest x = { 0 };
    x.ag = at(g, buf[0], mulc(g, pi, s->stride_a));
    x.bg = at(g, buf[1], mulc(g, pi, s->stride_b));
    x.cg = at(g, buf[2], mulc(g, pi, s->stride_c));
    x.bias = s->bias ? buf[3] : NULL;
    x.bp = scratch;
    x.ap = LLVMBuildInBoundsGEP2(g->b, LLVMInt8TypeInContext(g->cx), scratch, &bytes, 1, "");
    if (p->a_outer)
        set_rows(g, &x, out);
    else
        set_cols(g, &x, out);

    LLVMValueRef pc = loop_open(g, &lp, c64(g, 0), c64(g, p->nk), "kblock");
    LLVMValueRef last_k = eqc(g, pc, p->nk - 1);
    x.k0 = mulc(g, pc, p->kc);
    x.kc = sel(g, last_k, c64(g, p->kc_last), c64(g, p->kc));
    x.load_c = s->accumulate ? LLVMConstInt(g->i1, 1, 0) : LLVMBuildICmp(g->b, LLVMIntNE, pc, c64(g, 0), "");
    x.epi = last_k;
    if (p->a_outer)
        pack_a_block(g, &x);
    else
        b_panel(g, &x, pc);

    LLVMValueRef in = loop_open(g, &li, i_lo, i_hi, "block");
    if (p->a_outer) {
        set_cols(g, &x, in);
        b_panel(g, &x, pc);
    } else {
        set_rows(g, &x, in);
        pack_a_block(g, &x);
    }
    block_tiles(g, &x);
    loop_close(g, &li, 1);
    loop_close(g, &lp, 1);
    loop_close(g, &lg, 1);
    LLVMBuildRetVoid(g->b);
}

/* A packing kernel (KN_BPACK_PACK): items are (K block, column block);
 * each packs its panel of op(B) (bufs[1]) into bufs[2], where a
 * prepacked B keeps it. */
static void pack_body(gen *g, LLVMValueRef bufs, LLVMValueRef lo, LLVMValueRef hi)
{
    const gemm_plan *p = g->p;
    LLVMValueRef buf[4];
    load_bufs(g, bufs, buf);
    loop li;
    LLVMValueRef item = loop_open(g, &li, lo, hi, "item");
    LLVMValueRef pc = LLVMBuildSDiv(g->b, item, c64(g, p->n_nb), "");
    nest x = { 0 };
    set_cols(g, &x, LLVMBuildSRem(g->b, item, c64(g, p->n_nb), ""));
    x.bg = buf[1];
    x.k0 = mulc(g, pc, p->kc);
    x.kc = sel(g, eqc(g, pc, p->nk - 1), c64(g, p->kc_last), c64(g, p->kc));
    x.bp = packed_panel(g, &x, buf[2], pc);
    pack_b_block(g, &x);
    loop_close(g, &li, 1);
    LLVMBuildRetVoid(g->b);
}

/* ------------------------------------------------------------------ */
/* The dot-product kernel: few rows of A times B transposed           */
/* ------------------------------------------------------------------ */

/* n vectors -> one whose lane j holds the sum of v[j]'s lanes (j < n).
 * Pairs are folded in halves (two shuffles and an add each), so n sums
 * take about n such steps; the lanes each sum lands in are tracked here
 * and put in order by a last shuffle. */
static LLVMValueRef hsum(gen *g, LLVMValueRef *v, int n)
{
    int vl = g->p->vl;
    LLVMValueRef x[16];
    int owner[16][16]; /* owner[i][lane]: the input whose partial sum is there */
    int cnt = 1;
    while (cnt < n)
        cnt *= 2;
    for (int i = 0; i < cnt; i++) {
        x[i] = i < n ? v[i] : LLVMConstNull(g->vt);
        for (int l = 0; l < vl; l++)
            owner[i][l] = i;
    }
    for (int h = vl / 2; h >= 1; h /= 2) {
        LLVMValueRef m1[16], m2[16];
        for (int base = 0; base < vl; base += 2 * h)
            for (int l = 0; l < h; l++) {
                m1[base + l] = c32(g, base + l);
                m1[base + h + l] = c32(g, vl + base + l);
                m2[base + l] = c32(g, base + h + l);
                m2[base + h + l] = c32(g, vl + base + h + l);
            }
        LLVMValueRef s1 = LLVMConstVector(m1, (unsigned)vl), s2 = LLVMConstVector(m2, (unsigned)vl);
        /* pair x[2q] with x[2q+1]; once one vector is left, with itself */
        int pairs = cnt > 1 ? cnt / 2 : 1;
        for (int q = 0; q < pairs; q++) {
            int a = cnt > 1 ? 2 * q : 0, b = cnt > 1 ? 2 * q + 1 : 0;
            LLVMValueRef lo = LLVMBuildShuffleVector(g->b, x[a], x[b], s1, "");
            LLVMValueRef hi = LLVMBuildShuffleVector(g->b, x[a], x[b], s2, "");
            int o[16];
            for (int base = 0; base < vl; base += 2 * h)
                for (int l = 0; l < h; l++) {
                    o[base + l] = owner[a][base + l];
                    o[base + h + l] = owner[b][base + l];
                }
            x[q] = LLVMBuildFAdd(g->b, lo, hi, "");
            memcpy(owner[q], o, sizeof o);
        }
        cnt = pairs;
    }
    LLVMValueRef order[16];
    for (int j = 0; j < vl; j++) {
        int lane = 0;
        for (int l = 0; l < vl; l++)
            if (owner[0][l] == j) {
                lane = l;
                break;
            }
        order[j] = c32(g, lane);
    }
    return LLVMBuildShuffleVector(g->b, x[0], LLVMGetPoison(g->vt), LLVMConstVector(order, (unsigned)vl), "");
}

/* void dot(ptr a, ptr b, ptr c, ptr bias): the tile C[mr, nr] of mr rows
 * of A ([M, K]) and nr rows of B ([N, K]), over all of K:
 * acc[i][j] += A[i, k:k+vl] * B[j, k:k+vl], then C (=|+=) sums. */
static LLVMValueRef dot_emit(gen *g, int mr, int nr)
{
    const gemm_plan *p = g->p;
    const jit_gemm_spec *s = &p->s;
    char suffix[32];
    snprintf(suffix, sizeof suffix, "dot%dx%d", mr, nr);
    LLVMTypeRef params[4] = { g->ptr, g->ptr, g->ptr, g->ptr };
    LLVMValueRef fn = helper_begin(g, suffix, params, 4);
    LLVMValueRef a = LLVMGetParam(fn, 0), b = LLVMGetParam(fn, 1), c = LLVMGetParam(fn, 2);
    LLVMValueRef bias = LLVMGetParam(fn, 3);

    LLVMValueRef slot[32], acc[32];
    int nacc = mr * nr;
    acc_init(g, slot, nacc);
    /* full vectors of K in a loop, then the tail with a constant mask */
    int64_t kfull = s->k / p->vl;
    int tail = (int)(s->k % p->vl);
    loop l;
    for (int part = 0; part < 2; part++) {
        if (part == 1 && !tail)
            break;
        LLVMValueRef kv = part == 0 ? loop_open(g, &l, c64(g, 0), c64(g, kfull), "kv") : c64(g, kfull);
        LLVMValueRef mask = part == 0 ? NULL : mask_const(g, p->vl, tail);
        LLVMValueRef off = mulc(g, kv, p->vl);
        acc_load(g, slot, acc, nacc);
        LLVMValueRef bv[8];
        for (int j = 0; j < nr; j++)
            bv[j] = vload_m(g, p->vl, at(g, atc(g, b, j * s->ldb), off), mask);
        for (int i = 0; i < mr; i++) {
            LLVMValueRef av = vload_m(g, p->vl, at(g, atc(g, a, i * s->lda), off), mask);
            for (int j = 0; j < nr; j++)
                acc[i * nr + j] = fma3(g, av, bv[j], acc[i * nr + j]);
        }
        acc_store(g, slot, acc, nacc);
        if (part == 0)
            loop_close(g, &l, 1);
    }

    acc_load(g, slot, acc, nacc);
    LLVMValueRef bv = s->bias ? vload_n(g, p->vl, bias, nr) : NULL;
    for (int i = 0; i < mr; i++) {
        LLVMValueRef r = hsum(g, &acc[i * nr], nr);
        LLVMValueRef cp = atc(g, c, i * s->ldc);
        if (s->accumulate)
            r = LLVMBuildFAdd(g->b, r, vload_n(g, p->vl, cp, nr), "");
        if (bv)
            r = LLVMBuildFAdd(g->b, r, bv, "");
        vstore_n(g, activation(g, r), cp, nr);
    }
    LLVMBuildRetVoid(g->b);
    return fn;
}

/* Items are (p, column block); each does all rows. */
static void dot_body(gen *g, LLVMValueRef bufs, LLVMValueRef lo, LLVMValueRef hi)
{
    const gemm_plan *p = g->p;
    const jit_gemm_spec *s = &p->s;
    LLVMValueRef buf[4];
    load_bufs(g, bufs, buf);
    int64_t n_last = s->n - (p->n_nb - 1) * p->nb;
    int n_edge = (int)(s->n % p->nr), m_edge = (int)(s->m % p->mr);
    loop li, lj, lt;
    LLVMValueRef item = loop_open(g, &li, lo, hi, "item");
    LLVMValueRef pi = LLVMBuildSDiv(g->b, item, c64(g, p->n_nb), "");
    LLVMValueRef nb = LLVMBuildSRem(g->b, item, c64(g, p->n_nb), "");
    LLVMValueRef ag = at(g, buf[0], mulc(g, pi, s->stride_a));
    LLVMValueRef bg = at(g, buf[1], mulc(g, pi, s->stride_b));
    LLVMValueRef cg = at(g, buf[2], mulc(g, pi, s->stride_c));
    LLVMValueRef col0 = mulc(g, nb, p->nb);
    LLVMValueRef last_nb = eqc(g, nb, p->n_nb - 1);
    LLVMValueRef ntj = sel(g, last_nb, c64(g, n_last / p->nr), c64(g, p->nb / p->nr));
    for (int ce = 0; ce <= (n_edge != 0); ce++) {
        LLVMBasicBlockRef join = ce ? if_open(g, last_nb) : NULL;
        LLVMValueRef jt = ce ? ntj : loop_open(g, &lj, c64(g, 0), ntj, "jtile");
        LLVMValueRef col = add(g, col0, mulc(g, jt, p->nr));
        /* the B tile (nr x K) stays in L1 while the row tiles pass */
        int64_t tiles = s->m / p->mr;
        LLVMValueRef args[4] = { NULL, at(g, bg, mulc(g, col, s->ldb)), NULL,
                                 s->bias ? at(g, buf[3], col) : LLVMConstNull(g->ptr) };
        LLVMValueRef t = loop_open(g, &lt, c64(g, 0), c64(g, tiles), "itile");
        args[0] = at(g, ag, mulc(g, t, p->mr * s->lda));
        args[2] = at(g, cg, add(g, mulc(g, t, p->mr * s->ldc), col));
        call(g, g->mk[0][ce], args, 4);
        loop_close(g, &lt, 1);
        if (m_edge) {
            args[0] = atc(g, ag, tiles * p->mr * s->lda);
            args[2] = at(g, cg, add(g, c64(g, tiles * p->mr * s->ldc), col));
            call(g, g->mk[1][ce], args, 4);
        }
        if (ce)
            if_close(g, join);
        else
            loop_close(g, &lj, 1);
    }
    loop_close(g, &li, 1);
    LLVMBuildRetVoid(g->b);
}

/* ------------------------------------------------------------------ */
/* Entry point                                                        */
/* ------------------------------------------------------------------ */

loom_code jit_gemm_emit(jit_engine *e, LLVMModuleRef m, const char *name, const jit_gemm_spec *s)
{
    loom_code c = jit_gemm_check(s, e->err);
    if (c != LOOM_OK)
        return c;
    gemm_plan p;
    plan_make(s, &p);
    gen g = { .e = e, .m = m, .cx = e->ctx, .p = &p, .name = name };
    g.b = LLVMCreateBuilderInContext(e->ctx);
    g.i1 = LLVMInt1TypeInContext(e->ctx);
    g.i32 = jit_i32(e);
    g.i64 = jit_i64(e);
    g.ptr = jit_ptr(e);
    g.et = s->dtype == LOOM_F32 ? LLVMFloatTypeInContext(e->ctx) : LLVMDoubleTypeInContext(e->ctx);
    g.vt = LLVMVectorType(g.et, (unsigned)p.vl);

    g.kernel = jit_kernel_begin(e, m, g.b, name);
    LLVMBasicBlockRef entry = LLVMGetInsertBlock(g.b);

    if (p.dot) {
        int n_edge = (int)(s->n % p.nr), m_edge = (int)(s->m % p.mr);
        for (int re = 0; re < 2; re++)
            for (int ce = 0; ce < 2; ce++)
                if ((!re || m_edge) && (!ce || n_edge))
                    g.mk[re][ce] = dot_emit(&g, re ? m_edge : p.mr, ce ? n_edge : p.nr);
        g.fn = g.kernel;
        LLVMPositionBuilderAtEnd(g.b, entry);
        dot_body(&g, LLVMGetParam(g.kernel, 0), LLVMGetParam(g.kernel, 1), LLVMGetParam(g.kernel, 2));
        LLVMDisposeBuilder(g.b);
        return LOOM_OK;
    }

    /* The helpers: full and edge variants of the micro-kernel and the
     * packing routines (edges only when the shape has them). */
    int n_edge = (int)(s->n % p.tw), m_edge = (int)(s->m % p.mr);
    int nr_e = (int)ceil_div(n_edge, p.vl), last_e = n_edge - (nr_e - 1) * p.vl;
    if (s->bpack != KN_BPACK_PACK) {
        g.mk[0][0] = mk_emit(&g, p.mr, p.nr, p.vl);
        if (m_edge)
            g.mk[1][0] = mk_emit(&g, m_edge, p.nr, p.vl);
        if (n_edge) {
            g.mk[0][1] = mk_emit(&g, p.mr, nr_e, last_e);
            if (m_edge)
                g.mk[1][1] = mk_emit(&g, m_edge, nr_e, last_e);
        }
    }
    if (s->bpack == KN_BPACK_PACKED) {
        /* B comes packed */
    } else if (s->tb) {
        g.pack_b[0] = pack_bt_emit(&g);
    } else if (!p.direct_b) {
        g.pack_b[0] = pack_b_emit(&g, p.nr, p.vl);
        if (n_edge)
            g.pack_b[1] = pack_b_emit(&g, nr_e, last_e);
    }
    if (p.pack_a) {
        g.pack_a[0] = pack_a_emit(&g, p.mr);
        if (m_edge)
            g.pack_a[1] = pack_a_emit(&g, m_edge);
    }

    g.fn = g.kernel;
    LLVMPositionBuilderAtEnd(g.b, entry);
    if (s->bpack == KN_BPACK_PACK)
        pack_body(&g, LLVMGetParam(g.kernel, 0), LLVMGetParam(g.kernel, 1), LLVMGetParam(g.kernel, 2));
    else
        kernel_body(&g, LLVMGetParam(g.kernel, 0), LLVMGetParam(g.kernel, 1), LLVMGetParam(g.kernel, 2),
                    LLVMGetParam(g.kernel, 3));
    LLVMDisposeBuilder(g.b);
    return LOOM_OK;
}
