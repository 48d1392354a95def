/*
 * composite.c — ops written with the public ops: softmax family, losses.
 * They get their gradients from the primitives they are made of.
 */
#include "fe.h"

/* The max is detached: subtracting it only keeps exp in range, and its
 * gradient contributions cancel exactly, so none are built. */
static loom_t shifted(loom_ctx *ctx, loom_t x, int axis, loom_t *m)
{
    *m = loom_detach(ctx, loom_max(ctx, x, 1, &axis, true));
    return loom_sub(ctx, x, *m);
}

loom_t loom_logsumexp(loom_ctx *ctx, loom_t x, int axis, bool keepdim)
{
    loom_t m, z = shifted(ctx, x, axis, &m);
    loom_t lse = loom_add(ctx, m, loom_log(ctx, loom_sum(ctx, loom_exp(ctx, z), 1, &axis, true)));
    if (keepdim || loom_failed(ctx))
        return lse;
    loom_shape s = loom_shape_of(ctx, lse);
    int a = fe_axis(ctx, axis, s, loom_dtype_of(ctx, lse), __func__);
    if (a < 0)
        return LOOM_NULL;
    for (int i = a; i + 1 < s.rank; i++)
        s.d[i] = s.d[i + 1];
    s.rank--;
    return loom_reshape(ctx, lse, s);
}

loom_t loom_log_softmax(loom_ctx *ctx, loom_t x, int axis)
{
    loom_t m, z = shifted(ctx, x, axis, &m);
    return loom_sub(ctx, z, loom_log(ctx, loom_sum(ctx, loom_exp(ctx, z), 1, &axis, true)));
}

loom_t loom_softmax(loom_ctx *ctx, loom_t x, int axis)
{
    loom_t m, e = loom_exp(ctx, shifted(ctx, x, axis, &m));
    return loom_div(ctx, e, loom_sum(ctx, e, 1, &axis, true));
}
