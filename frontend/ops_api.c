/*
 * ops_api.c — the public op constructors: argument checks, numpy
 * broadcasting, negative axes, then the node builders. Each call records
 * one or a few nodes and computes nothing.
 */
#include <math.h>

#include "fe.h"

#define FE_GUARD(ctx)                   \
    do {                                \
        if (!(ctx) || loom_failed(ctx)) \
            return LOOM_NULL;           \
    } while (0)

#define FE_SH(g, n, buf) loom_shape_str(ir_shapev(g, n), ir_dtype(g, n), buf, sizeof buf)

/* ------------------------------------------------------------------ */
/* Elementwise                                                        */
/* ------------------------------------------------------------------ */

static loom_t unary(loom_ctx *ctx, int op, loom_t x, const char *fn)
{
    FE_GUARD(ctx);
    ir_id n = fe_node(ctx, x, fn, 1);
    if (!n)
        return LOOM_NULL;
    if ((op_get(op)->flags & OPF_FLOAT) && ir_dtype(ctx->g, n) == LOOM_I32) {
        char sh[160];
        fe_fail(ctx, LOOM_ERR_DTYPE, fn, "takes f32 or f64, got %s", FE_SH(ctx->g, n, sh));
        return LOOM_NULL;
    }
    return fe_handle(ctx, op_unary(ctx->g, op, n));
}

loom_t loom_neg(loom_ctx *ctx, loom_t x) { return unary(ctx, OP_NEG, x, __func__); }
loom_t loom_exp(loom_ctx *ctx, loom_t x) { return unary(ctx, OP_EXP, x, __func__); }
loom_t loom_log(loom_ctx *ctx, loom_t x) { return unary(ctx, OP_LOG, x, __func__); }
loom_t loom_log1p(loom_ctx *ctx, loom_t x) { return unary(ctx, OP_LOG1P, x, __func__); }
loom_t loom_tanh(loom_ctx *ctx, loom_t x) { return unary(ctx, OP_TANH, x, __func__); }
loom_t loom_sigmoid(loom_ctx *ctx, loom_t x) { return unary(ctx, OP_SIGMOID, x, __func__); }
loom_t loom_sqrt(loom_ctx *ctx, loom_t x) { return unary(ctx, OP_SQRT, x, __func__); }
loom_t loom_recip(loom_ctx *ctx, loom_t x) { return unary(ctx, OP_RECIP, x, __func__); }
loom_t loom_relu(loom_ctx *ctx, loom_t x) { return unary(ctx, OP_RELU, x, __func__); }
loom_t loom_abs(loom_ctx *ctx, loom_t x) { return unary(ctx, OP_ABS, x, __func__); }
loom_t loom_sign(loom_ctx *ctx, loom_t x) { return unary(ctx, OP_SIGN, x, __func__); }
loom_t loom_sin(loom_ctx *ctx, loom_t x) { return unary(ctx, OP_SIN, x, __func__); }
loom_t loom_cos(loom_ctx *ctx, loom_t x) { return unary(ctx, OP_COS, x, __func__); }
loom_t loom_detach(loom_ctx *ctx, loom_t x) { return unary(ctx, OP_DETACH, x, __func__); }

loom_t loom_cast(loom_ctx *ctx, loom_t x, loom_dtype dt)
{
    FE_GUARD(ctx);
    ir_id n = fe_node(ctx, x, __func__, 1);
    if (!n || !fe_check_dtype(ctx, dt, __func__))
        return LOOM_NULL;
    return fe_handle(ctx, op_cast(ctx->g, n, dt));
}

/* Broadcasts n operands to their common shape (numpy rules); all must
 * share a dtype. Returns false with an error naming the shapes. */
static bool broadcast_all(loom_ctx *ctx, int k, ir_id *n, const char *fn)
{
    ir_graph *g = ctx->g;
    loom_shape s = ir_shapev(g, n[0]);
    char a[160], b[160];
    for (int i = 1; i < k; i++) {
        if (ir_dtype(g, n[i]) != ir_dtype(g, n[0])) {
            fe_fail(ctx, LOOM_ERR_DTYPE, fn, "dtypes differ: %s and %s", FE_SH(g, n[0], a),
                    FE_SH(g, n[i], b));
            return false;
        }
        loom_shape si = ir_shapev(g, n[i]);
        if (!op_broadcast_shape(&s, &si, &s)) {
            fe_fail(ctx, LOOM_ERR_SHAPE, fn, "shapes %s and %s do not broadcast", FE_SH(g, n[0], a),
                    FE_SH(g, n[i], b));
            return false;
        }
    }
    for (int i = 0; i < k; i++)
        n[i] = op_broadcast_to(g, n[i], s);
    return !ir_failed(g);
}

static loom_t binary(loom_ctx *ctx, int op, loom_t a, loom_t b, const char *fn)
{
    FE_GUARD(ctx);
    ir_id n[2] = { fe_node(ctx, a, fn, 1), 0 };
    if (!n[0] || !(n[1] = fe_node(ctx, b, fn, 2)))
        return LOOM_NULL;
    if (!broadcast_all(ctx, 2, n, fn))
        return LOOM_NULL;
    if ((op_get(op)->flags & OPF_FLOAT) && ir_dtype(ctx->g, n[0]) == LOOM_I32) {
        fe_fail(ctx, LOOM_ERR_DTYPE, fn, "takes f32 or f64, not i32");
        return LOOM_NULL;
    }
    return fe_handle(ctx, op_binary(ctx->g, op, n[0], n[1]));
}

loom_t loom_add(loom_ctx *ctx, loom_t a, loom_t b) { return binary(ctx, OP_ADD, a, b, __func__); }
loom_t loom_sub(loom_ctx *ctx, loom_t a, loom_t b) { return binary(ctx, OP_SUB, a, b, __func__); }
loom_t loom_mul(loom_ctx *ctx, loom_t a, loom_t b) { return binary(ctx, OP_MUL, a, b, __func__); }
loom_t loom_div(loom_ctx *ctx, loom_t a, loom_t b) { return binary(ctx, OP_DIV, a, b, __func__); }
loom_t loom_maximum(loom_ctx *ctx, loom_t a, loom_t b) { return binary(ctx, OP_MAXIMUM, a, b, __func__); }
loom_t loom_minimum(loom_ctx *ctx, loom_t a, loom_t b) { return binary(ctx, OP_MINIMUM, a, b, __func__); }
loom_t loom_eq(loom_ctx *ctx, loom_t a, loom_t b) { return binary(ctx, OP_EQ, a, b, __func__); }
loom_t loom_ne(loom_ctx *ctx, loom_t a, loom_t b) { return binary(ctx, OP_NE, a, b, __func__); }
loom_t loom_lt(loom_ctx *ctx, loom_t a, loom_t b) { return binary(ctx, OP_LT, a, b, __func__); }
loom_t loom_le(loom_ctx *ctx, loom_t a, loom_t b) { return binary(ctx, OP_LE, a, b, __func__); }
loom_t loom_gt(loom_ctx *ctx, loom_t a, loom_t b) { return binary(ctx, OP_GT, a, b, __func__); }
loom_t loom_ge(loom_ctx *ctx, loom_t a, loom_t b) { return binary(ctx, OP_GE, a, b, __func__); }

static loom_t scalar_op(loom_ctx *ctx, int op, loom_t x, double v, const char *fn)
{
    FE_GUARD(ctx);
    ir_id n = fe_node(ctx, x, fn, 1);
    if (!n)
        return LOOM_NULL;
    ir_id c = op_const(ctx->g, ir_dtype(ctx->g, n), LOOM_SCALAR, v);
    return binary(ctx, op, fe_handle(ctx, n), fe_handle(ctx, c), fn);
}

loom_t loom_adds(loom_ctx *ctx, loom_t x, double v) { return scalar_op(ctx, OP_ADD, x, v, __func__); }
loom_t loom_muls(loom_ctx *ctx, loom_t x, double v) { return scalar_op(ctx, OP_MUL, x, v, __func__); }
loom_t loom_maxs(loom_ctx *ctx, loom_t x, double v) { return scalar_op(ctx, OP_MAXIMUM, x, v, __func__); }

loom_t loom_square(loom_ctx *ctx, loom_t x) { return binary(ctx, OP_MUL, x, x, __func__); }

static loom_t pow_of(loom_ctx *ctx, loom_t x, double p)
{
    if (p == 1)
        return x;
    if (p == 2)
        return loom_square(ctx, x);
    if (p == 3)
        return loom_mul(ctx, loom_square(ctx, x), x);
    if (p == 0.5)
        return loom_sqrt(ctx, x);
    if (p == -1)
        return loom_recip(ctx, x);
    if (p == 0)
        return loom_adds(ctx, loom_muls(ctx, x, 0.0), 1.0);
    return loom_exp(ctx, loom_muls(ctx, loom_log(ctx, x), p));
}

loom_t loom_pow(loom_ctx *ctx, loom_t x, double p)
{
    FE_GUARD(ctx);
    if (!fe_node(ctx, x, __func__, 1))
        return LOOM_NULL;
    return fe_named(ctx, __func__, pow_of(ctx, x, p));
}

loom_t loom_where(loom_ctx *ctx, loom_t cond, loom_t a, loom_t b)
{
    FE_GUARD(ctx);
    const char *fn = __func__;
    ir_id n[3] = { fe_node(ctx, cond, fn, 1), 0, 0 };
    if (!n[0] || !(n[1] = fe_node(ctx, a, fn, 2)) || !(n[2] = fe_node(ctx, b, fn, 3)))
        return LOOM_NULL;
    /* a mask of another dtype (i32 from labels, say) is cast, not refused */
    n[0] = op_cast(ctx->g, n[0], ir_dtype(ctx->g, n[1]));
    if (!broadcast_all(ctx, 3, n, fn))
        return LOOM_NULL;
    return fe_handle(ctx, op_where(ctx->g, n[0], n[1], n[2]));
}

/* ------------------------------------------------------------------ */
/* Reductions                                                         */
/* ------------------------------------------------------------------ */

static bool axes_mask(loom_ctx *ctx, ir_id n, int naxes, const int *axes, uint32_t *mask, const char *fn)
{
    *mask = 0;
    if (naxes < 0 || (naxes > 0 && !axes)) {
        fe_fail(ctx, LOOM_ERR_ARG, fn, "%d axes given without a list", naxes);
        return false;
    }
    for (int i = 0; i < naxes; i++) {
        int a = fe_node_axis(ctx, axes[i], n, fn);
        if (a < 0)
            return false;
        if (op_axis_in(*mask, a)) {
            char sh[160];
            fe_fail(ctx, LOOM_ERR_ARG, fn, "axis %d of %s is named twice", axes[i], FE_SH(ctx->g, n, sh));
            return false;
        }
        *mask |= 1u << a;
    }
    return true;
}

static loom_t reduce(loom_ctx *ctx, int op, loom_t x, int naxes, const int *axes, bool keepdim,
                     const char *fn)
{
    FE_GUARD(ctx);
    ir_id n = fe_node(ctx, x, fn, 1);
    uint32_t mask;
    if (!n || !axes_mask(ctx, n, naxes, axes, &mask, fn))
        return LOOM_NULL;
    return fe_handle(ctx, op_reduce(ctx->g, op, n, mask, keepdim));
}

loom_t loom_sum(loom_ctx *ctx, loom_t x, int naxes, const int *axes, bool keepdim)
{
    return reduce(ctx, OP_SUM, x, naxes, axes, keepdim, __func__);
}

loom_t loom_max(loom_ctx *ctx, loom_t x, int naxes, const int *axes, bool keepdim)
{
    return reduce(ctx, OP_MAX, x, naxes, axes, keepdim, __func__);
}

loom_t loom_mean(loom_ctx *ctx, loom_t x, int naxes, const int *axes, bool keepdim)
{
    FE_GUARD(ctx);
    ir_id n = fe_node(ctx, x, __func__, 1);
    uint32_t mask;
    if (!n || !axes_mask(ctx, n, naxes, axes, &mask, __func__))
        return LOOM_NULL;
    if (ir_dtype(ctx->g, n) == LOOM_I32) {
        fe_fail(ctx, LOOM_ERR_DTYPE, __func__, "takes f32 or f64, not i32");
        return LOOM_NULL;
    }
    loom_shape s = ir_shapev(ctx->g, n);
    int64_t count = 1;
    for (int i = 0; i < s.rank; i++)
        if (op_axis_in(mask, i))
            count *= s.d[i];
    ir_id sum = op_reduce(ctx->g, OP_SUM, n, mask, keepdim);
    return fe_handle(ctx, op_muls(ctx->g, sum, count ? 1.0 / (double)count : NAN));
}

static loom_t all_axes(loom_ctx *ctx, loom_t x, bool mean, const char *fn)
{
    FE_GUARD(ctx);
    ir_id n = fe_node(ctx, x, fn, 1);
    if (!n)
        return LOOM_NULL;
    int axes[LOOM_MAX_RANK], r = ir_shape(ctx->g, n)->rank;
    for (int i = 0; i < r; i++)
        axes[i] = i;
    return fe_named(ctx, fn, mean ? loom_mean(ctx, x, r, axes, false) : loom_sum(ctx, x, r, axes, false));
}

loom_t loom_sum_all(loom_ctx *ctx, loom_t x) { return all_axes(ctx, x, false, __func__); }
loom_t loom_mean_all(loom_ctx *ctx, loom_t x) { return all_axes(ctx, x, true, __func__); }

/* ------------------------------------------------------------------ */
/* Movement                                                           */
/* ------------------------------------------------------------------ */

loom_t loom_reshape(loom_ctx *ctx, loom_t x, loom_shape s)
{
    FE_GUARD(ctx);
    const char *fn = __func__;
    ir_id n = fe_node(ctx, x, fn, 1);
    if (!n)
        return LOOM_NULL;
    char a[160], b[160];
    int64_t known = 1;
    int infer = -1;
    if (s.rank < 0 || s.rank > LOOM_MAX_RANK) {
        fe_fail(ctx, LOOM_ERR_SHAPE, fn, "rank %d is not in [0, %d]", s.rank, LOOM_MAX_RANK);
        return LOOM_NULL;
    }
    for (int i = 0; i < s.rank; i++) {
        if (s.d[i] == -1 && infer < 0)
            infer = i;
        else if (s.d[i] < 0 || __builtin_mul_overflow(known, s.d[i], &known)) {
            fe_fail(ctx, LOOM_ERR_SHAPE, fn, "cannot reshape %s to %s", FE_SH(ctx->g, n, a),
                    loom_shape_str(s, -1, b, sizeof b));
            return LOOM_NULL;
        }
    }
    int64_t numel = ir_numel(ctx->g, n);
    if (infer >= 0) {
        if (known == 0 || numel % known) {
            fe_fail(ctx, LOOM_ERR_SHAPE, fn, "cannot reshape %s to %s", FE_SH(ctx->g, n, a),
                    loom_shape_str(s, -1, b, sizeof b));
            return LOOM_NULL;
        }
        s.d[infer] = numel / known;
    } else if (known != numel) {
        fe_fail(ctx, LOOM_ERR_SHAPE, fn, "cannot reshape %s to %s (element counts differ)",
                FE_SH(ctx->g, n, a), loom_shape_str(s, -1, b, sizeof b));
        return LOOM_NULL;
    }
    return fe_handle(ctx, op_reshape(ctx->g, n, s));
}

loom_t loom_permute(loom_ctx *ctx, loom_t x, int k, const int *perm)
{
    FE_GUARD(ctx);
    const char *fn = __func__;
    ir_id n = fe_node(ctx, x, fn, 1);
    if (!n)
        return LOOM_NULL;
    int r = ir_shape(ctx->g, n)->rank, p[LOOM_MAX_RANK];
    char sh[160];
    if (k != r || (k > 0 && !perm)) {
        fe_fail(ctx, LOOM_ERR_ARG, fn, "%d axes given for %s", k, FE_SH(ctx->g, n, sh));
        return LOOM_NULL;
    }
    uint32_t seen = 0;
    for (int i = 0; i < r; i++) {
        p[i] = fe_node_axis(ctx, perm[i], n, fn);
        if (p[i] < 0)
            return LOOM_NULL;
        if (op_axis_in(seen, p[i])) {
            fe_fail(ctx, LOOM_ERR_ARG, fn, "axis %d appears twice in the permutation of %s", perm[i],
                    FE_SH(ctx->g, n, sh));
            return LOOM_NULL;
        }
        seen |= 1u << p[i];
    }
    return fe_handle(ctx, op_permute(ctx->g, n, p));
}

loom_t loom_transpose(loom_ctx *ctx, loom_t x, int axis0, int axis1)
{
    FE_GUARD(ctx);
    ir_id n = fe_node(ctx, x, __func__, 1);
    if (!n)
        return LOOM_NULL;
    int r = ir_shape(ctx->g, n)->rank, p[LOOM_MAX_RANK];
    int a = fe_node_axis(ctx, axis0, n, __func__), b = a < 0 ? -1 : fe_node_axis(ctx, axis1, n, __func__);
    if (a < 0 || b < 0)
        return LOOM_NULL;
    for (int i = 0; i < r; i++)
        p[i] = i;
    p[a] = b;
    p[b] = a;
    return fe_handle(ctx, op_permute(ctx->g, n, p));
}

loom_t loom_expand(loom_ctx *ctx, loom_t x, loom_shape s)
{
    FE_GUARD(ctx);
    ir_id n = fe_node(ctx, x, __func__, 1);
    if (!n || !fe_check_shape(ctx, s, __func__))
        return LOOM_NULL;
    loom_shape xs = ir_shapev(ctx->g, n), common;
    if (!op_broadcast_shape(&xs, &s, &common) || !loom_shape_equal(common, s)) {
        char a[160], b[160];
        fe_fail(ctx, LOOM_ERR_SHAPE, __func__, "%s does not broadcast to %s", FE_SH(ctx->g, n, a),
                loom_shape_str(s, -1, b, sizeof b));
        return LOOM_NULL;
    }
    return fe_handle(ctx, op_broadcast_to(ctx->g, n, s));
}

loom_t loom_slice(loom_ctx *ctx, loom_t x, int axis, int64_t start, int64_t stop, int64_t step)
{
    FE_GUARD(ctx);
    ir_id n = fe_node(ctx, x, __func__, 1);
    if (!n)
        return LOOM_NULL;
    loom_shape s = ir_shapev(ctx->g, n);
    int a = fe_node_axis(ctx, axis, n, __func__);
    if (a < 0)
        return LOOM_NULL;
    if (step < 1) {
        char sh[160];
        fe_fail(ctx, LOOM_ERR_ARG, __func__, "step %lld must be >= 1 (slicing %s)", (long long)step,
                FE_SH(ctx->g, n, sh));
        return LOOM_NULL;
    }
    int64_t dim = s.d[a];
    /* Python's rules: negative counts from the end, then clamp */
    if (start < 0)
        start += dim;
    if (stop < 0)
        stop += dim;
    start = start < 0 ? 0 : start > dim ? dim : start;
    stop = stop < start ? start : stop > dim ? dim : stop;
    int64_t st[LOOM_MAX_RANK], sp[LOOM_MAX_RANK], sk[LOOM_MAX_RANK];
    for (int i = 0; i < s.rank; i++) {
        st[i] = 0;
        sp[i] = s.d[i];
        sk[i] = 1;
    }
    st[a] = start;
    sp[a] = stop;
    sk[a] = step;
    return fe_handle(ctx, op_slice(ctx->g, n, st, sp, sk));
}

loom_t loom_concat(loom_ctx *ctx, int k, const loom_t *xs, int axis)
{
    FE_GUARD(ctx);
    const char *fn = __func__;
    if (k < 1 || !xs) {
        fe_fail(ctx, LOOM_ERR_ARG, fn, "needs at least one operand (%d given)", k);
        return LOOM_NULL;
    }
    ir_id small[16], *ns = small;
    if (k > 16 && !(ns = lm_alloc(&ctx->mem, (size_t)k * sizeof *ns)))
        return LOOM_NULL;
    loom_t out = LOOM_NULL;
    int i = 0;
    for (; i < k; i++)
        if (!(ns[i] = fe_node(ctx, xs[i], fn, i + 1)))
            break;
    if (i == k) {
        int a = fe_node_axis(ctx, axis, ns[0], fn);
        if (a >= 0)
            out = fe_handle(ctx, op_concat(ctx->g, (uint32_t)k, ns, a));
    }
    if (ns != small)
        lm_free(&ctx->mem, ns, (size_t)k * sizeof *ns);
    return out;
}

loom_t loom_pad(loom_ctx *ctx, loom_t x, int axis, int64_t lo, int64_t hi, double value)
{
    FE_GUARD(ctx);
    ir_id n = fe_node(ctx, x, __func__, 1);
    if (!n)
        return LOOM_NULL;
    int a = fe_node_axis(ctx, axis, n, __func__);
    if (a < 0)
        return LOOM_NULL;
    if (lo < 0 || hi < 0) {
        char sh[160];
        fe_fail(ctx, LOOM_ERR_ARG, __func__, "padding %lld/%lld of %s must not be negative",
                (long long)lo, (long long)hi, FE_SH(ctx->g, n, sh));
        return LOOM_NULL;
    }
    int64_t l[LOOM_MAX_RANK] = { 0 }, h[LOOM_MAX_RANK] = { 0 }, in[LOOM_MAX_RANK] = { 0 };
    l[a] = lo;
    h[a] = hi;
    return fe_handle(ctx, op_pad(ctx->g, n, l, h, in, value));
}

/* ------------------------------------------------------------------ */
/* Contraction and indexing                                           */
/* ------------------------------------------------------------------ */

static loom_t matmul(loom_ctx *ctx, loom_t a, loom_t b, bool ta, bool tb, const char *fn)
{
    FE_GUARD(ctx);
    ir_graph *g = ctx->g;
    ir_id na = fe_node(ctx, a, fn, 1), nb = na ? fe_node(ctx, b, fn, 2) : 0;
    if (!na || !nb)
        return LOOM_NULL;
    loom_shape sa = ir_shapev(g, na), sb = ir_shapev(g, nb);
    char x[160], y[160];
    if (ir_dtype(g, na) != ir_dtype(g, nb) || ir_dtype(g, na) == LOOM_I32) {
        fe_fail(ctx, LOOM_ERR_DTYPE, fn, "needs two f32 or two f64 operands: %s and %s",
                FE_SH(g, na, x), FE_SH(g, nb, y));
        return LOOM_NULL;
    }
    if (sa.rank == 0 || sb.rank == 0) {
        fe_fail(ctx, LOOM_ERR_SHAPE, fn, "operands must not be scalars: %s and %s", FE_SH(g, na, x),
                FE_SH(g, nb, y));
        return LOOM_NULL;
    }
    /* numpy: a vector is a row (a) or a column (b), dropped afterwards */
    bool va = sa.rank == 1, vb = sb.rank == 1;
    if (va) {
        na = op_reshape(g, na, LOOM_SHAPE(1, sa.d[0]));
        ta = false;
    }
    if (vb) {
        nb = op_reshape(g, nb, LOOM_SHAPE(sb.d[0], 1));
        tb = false;
    }
    sa = ir_shapev(g, na);
    sb = ir_shapev(g, nb);
    int64_t ka = ta ? sa.d[sa.rank - 2] : sa.d[sa.rank - 1];
    int64_t kb = tb ? sb.d[sb.rank - 1] : sb.d[sb.rank - 2];
    if (ka != kb) {
        fe_fail(ctx, LOOM_ERR_SHAPE, fn, "inner dimensions differ (%lld vs %lld): %s and %s",
                (long long)ka, (long long)kb, FE_SH(g, na, x), FE_SH(g, nb, y));
        return LOOM_NULL;
    }
    ir_id out;
    loom_shape os;
    if (sb.rank == 2 && sa.rank > 2 && !ta) {
        /* [..., M, K] · [K, N]: one [(.. M), K] · [K, N] product */
        int64_t rows = loom_shape_numel(sa) / sa.d[sa.rank - 1];
        ir_id flat = op_reshape(g, na, LOOM_SHAPE(rows, sa.d[sa.rank - 1]));
        out = op_matmul(g, flat, nb, false, tb);
        os = sa;
        os.d[os.rank - 1] = tb ? sb.d[0] : sb.d[1];
        out = op_reshape(g, out, os);
    } else {
        /* broadcast the batch dims */
        loom_shape ba = { .rank = sa.rank - 2 }, bb = { .rank = sb.rank - 2 }, bc;
        memcpy(ba.d, sa.d, (size_t)ba.rank * sizeof ba.d[0]);
        memcpy(bb.d, sb.d, (size_t)bb.rank * sizeof bb.d[0]);
        if (!op_broadcast_shape(&ba, &bb, &bc) || bc.rank + 2 > LOOM_MAX_RANK) {
            fe_fail(ctx, LOOM_ERR_SHAPE, fn, "batch dimensions do not broadcast: %s and %s",
                    FE_SH(g, na, x), FE_SH(g, nb, y));
            return LOOM_NULL;
        }
        loom_shape ta_s = bc, tb_s = bc;
        ta_s.rank = tb_s.rank = bc.rank + 2;
        ta_s.d[bc.rank] = sa.d[sa.rank - 2];
        ta_s.d[bc.rank + 1] = sa.d[sa.rank - 1];
        tb_s.d[bc.rank] = sb.d[sb.rank - 2];
        tb_s.d[bc.rank + 1] = sb.d[sb.rank - 1];
        out = op_matmul(g, op_broadcast_to(g, na, ta_s), op_broadcast_to(g, nb, tb_s), ta, tb);
    }
    if (out && (va || vb)) {
        os = ir_shapev(g, out);
        loom_shape d = { .rank = 0 };
        for (int i = 0; i < os.rank; i++)
            if (!((va && i == os.rank - 2) || (vb && i == os.rank - 1)))
                d.d[d.rank++] = os.d[i];
        out = op_reshape(g, out, d);
    }
    return fe_handle(ctx, out);
}

loom_t loom_matmul_t(loom_ctx *ctx, loom_t a, loom_t b, bool ta, bool tb)
{
    return matmul(ctx, a, b, ta, tb, __func__);
}

loom_t loom_matmul(loom_ctx *ctx, loom_t a, loom_t b) { return matmul(ctx, a, b, false, false, __func__); }

loom_t loom_gather(loom_ctx *ctx, loom_t x, loom_t idx, int axis)
{
    FE_GUARD(ctx);
    ir_id n = fe_node(ctx, x, __func__, 1), ni = n ? fe_node(ctx, idx, __func__, 2) : 0;
    if (!ni)
        return LOOM_NULL;
    int a = fe_node_axis(ctx, axis, n, __func__);
    if (a < 0)
        return LOOM_NULL;
    return fe_handle(ctx, op_gather(ctx->g, n, ni, a));
}

loom_t loom_scatter_add(loom_ctx *ctx, loom_t src, loom_t idx, int axis, int64_t size)
{
    FE_GUARD(ctx);
    ir_id n = fe_node(ctx, src, __func__, 1), ni = n ? fe_node(ctx, idx, __func__, 2) : 0;
    if (!ni)
        return LOOM_NULL;
    loom_shape out = { .rank = ir_shape(ctx->g, n)->rank - ir_shape(ctx->g, ni)->rank + 1 };
    if (out.rank < 1)
        out.rank = 1;
    int a = axis < 0 ? axis + out.rank : axis;
    if (a < 0 || a >= out.rank) {
        char x[160], y[160];
        fe_fail(ctx, LOOM_ERR_ARG, __func__, "axis %d does not fit source %s and indices %s", axis,
                FE_SH(ctx->g, n, x), FE_SH(ctx->g, ni, y));
        return LOOM_NULL;
    }
    if (a < 0)
        return LOOM_NULL;
    return fe_handle(ctx, op_scatter_add(ctx->g, n, ni, a, size));
}

loom_code loom_assign(loom_ctx *ctx, loom_t p, loom_t v)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return ctx->err.code;
    long pid = fe_param_index(ctx, p, __func__);
    ir_id n = pid < 0 ? 0 : fe_node(ctx, v, __func__, 2);
    if (!n)
        return ctx->err.code;
    const fe_param *q = &ctx->params[pid];
    loom_shape vs = ir_shapev(ctx->g, n), common;
    char a[160], b[160];
    if (ir_dtype(ctx->g, n) != q->dtype)
        return fe_fail(ctx, LOOM_ERR_DTYPE, __func__, "a %s value cannot be assigned to \"%s\" %s",
                       FE_SH(ctx->g, n, a), q->name, loom_shape_str(q->shape, q->dtype, b, sizeof b));
    if (!op_broadcast_shape(&vs, &q->shape, &common) || !loom_shape_equal(common, q->shape))
        return fe_fail(ctx, LOOM_ERR_SHAPE, __func__, "a %s value cannot be assigned to \"%s\" %s",
                       FE_SH(ctx->g, n, a), q->name, loom_shape_str(q->shape, q->dtype, b, sizeof b));
    ir_id asg = op_assign(ctx->g, op_broadcast_to(ctx->g, n, q->shape), (uint32_t)pid);
    if (!asg || !LM_GROW(&ctx->mem, ctx->assigns, ctx->assigns_cap, ctx->nassigns + 1))
        return ctx->err.code;
    ctx->assigns[ctx->nassigns++] = asg;
    return LOOM_OK;
}
