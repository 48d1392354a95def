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

loom_t loom_cross_entropy(loom_ctx *ctx, loom_t logits, loom_t labels)
{
    if (!ctx || loom_failed(ctx))
        return LOOM_NULL;
    loom_shape ls = loom_shape_of(ctx, logits), ys = loom_shape_of(ctx, labels);
    loom_dtype dt = loom_dtype_of(ctx, logits);
    if (loom_failed(ctx))
        return LOOM_NULL;
    char a[160], b[160];
    if (ls.rank != 2 || ys.rank != 1 || ys.d[0] != ls.d[0] || loom_dtype_of(ctx, labels) != LOOM_I32) {
        fe_fail(ctx, LOOM_ERR_SHAPE, __func__, "needs logits [N, C] and i32 labels [N], got %s and %s",
                loom_shape_str(ls, dt, a, sizeof a),
                loom_shape_str(ys, loom_dtype_of(ctx, labels), b, sizeof b));
        return LOOM_NULL;
    }
    /* the label's log-probability, picked by a one-hot mask that fuses
     * with the log-softmax */
    loom_t lsm = loom_log_softmax(ctx, logits, 1);
    loom_t cls = loom_iota(ctx, dt, ls, 1);
    loom_t lab = loom_reshape(ctx, loom_cast(ctx, labels, dt), LOOM_SHAPE(ls.d[0], 1));
    loom_t picked = loom_sum_all(ctx, loom_mul(ctx, lsm, loom_eq(ctx, cls, lab)));
    return loom_muls(ctx, picked, ls.d[0] ? -1.0 / (double)ls.d[0] : 0.0);
}

loom_t loom_mse(loom_ctx *ctx, loom_t pred, loom_t target)
{
    loom_t d = loom_sub(ctx, pred, target);
    return loom_mean_all(ctx, loom_mul(ctx, d, d));
}
