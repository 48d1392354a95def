/*
 * composite.c — ops written with the public ops: softmax family, losses.
 * They get their gradients from the primitives they are made of.
 */
#include "fe.h"

/* The checks the softmax family shares, named for the caller: a handle of
 * this tape, a float dtype, an axis in range. */
static bool softmax_args(loom_ctx *ctx, loom_t x, int axis, const char *fn)
{
    if (!ctx || loom_failed(ctx))
        return false;
    ir_id n = fe_node(ctx, x, fn, 1);
    if (!n)
        return false;
    if (ir_dtype(ctx->g, n) == LOOM_I32) {
        char sh[160];
        fe_fail(ctx, LOOM_ERR_DTYPE, fn, "takes f32 or f64, got %s",
                loom_shape_str(ir_shapev(ctx->g, n), ir_dtype(ctx->g, n), sh, sizeof sh));
        return false;
    }
    return fe_node_axis(ctx, axis, n, fn) >= 0;
}

/* The max is detached: subtracting it only keeps exp in range, and its
 * gradient contributions cancel exactly, so none are built. */
static loom_t shifted(loom_ctx *ctx, loom_t x, int axis, loom_t *m)
{
    *m = loom_detach(ctx, loom_max(ctx, x, 1, &axis, true));
    return loom_sub(ctx, x, *m);
}

loom_t loom_logsumexp(loom_ctx *ctx, loom_t x, int axis, bool keepdim)
{
    if (!softmax_args(ctx, x, axis, __func__))
        return LOOM_NULL;
    loom_t m, z = shifted(ctx, x, axis, &m);
    loom_t lse = loom_add(ctx, m, loom_log(ctx, loom_sum(ctx, loom_exp(ctx, z), 1, &axis, true)));
    if (keepdim || loom_failed(ctx))
        return fe_named(ctx, __func__, lse);
    loom_shape s = loom_shape_of(ctx, lse);
    int a = fe_axis(ctx, axis, s, loom_dtype_of(ctx, lse), __func__);
    if (a < 0)
        return LOOM_NULL;
    for (int i = a; i + 1 < s.rank; i++)
        s.d[i] = s.d[i + 1];
    s.rank--;
    return fe_named(ctx, __func__, loom_reshape(ctx, lse, s));
}

loom_t loom_log_softmax(loom_ctx *ctx, loom_t x, int axis)
{
    if (!softmax_args(ctx, x, axis, __func__))
        return LOOM_NULL;
    loom_t m, z = shifted(ctx, x, axis, &m);
    return fe_named(ctx, __func__, loom_sub(ctx, z, loom_log(ctx, loom_sum(ctx, loom_exp(ctx, z), 1, &axis, true))));
}

loom_t loom_softmax(loom_ctx *ctx, loom_t x, int axis)
{
    if (!softmax_args(ctx, x, axis, __func__))
        return LOOM_NULL;
    loom_t m, e = loom_exp(ctx, shifted(ctx, x, axis, &m));
    return fe_named(ctx, __func__, loom_div(ctx, e, loom_sum(ctx, e, 1, &axis, true)));
}
