/*
 * after — x, once dep exists: the value is x (any dtype), elementwise;
 * dep (same shape, any dtype, usually a broadcast element of a gradient)
 * is an ordering edge only. Gradient checkpointing (autograd/backward.c)
 * enters a recomputed segment's values through it, so the recomputation
 * is a new computation (hash-consing cannot fold it into the forward
 * pass) that no schedule can start before dep, a gradient of the backward
 * pass. The gradient goes to x; dep gets none, its value being unused.
 *
 * Passes must not fold it away: simplification folds it only when both
 * operands are constants (then it is x's constant).
 */
#include "ops_impl.h"

static loom_code infer(op_infer *b)
{
    if (!loom_shape_equal(*op_in_shape(b, 0), *op_in_shape(b, 1)))
        return op_fail(b, LOOM_ERR_SHAPE, "operand shapes differ");
    b->dtype = op_in_dtype(b, 0);
    b->shape = *op_in_shape(b, 0);
    return LOOM_OK;
}

static double f(double x, double dep)
{
    (void)dep;
    return x;
}

static loom_code ref(const op_exec *e)
{
    size_t bytes = (size_t)ir_numel(e->g, e->n) * loom_dtype_size(ir_dtype(e->g, e->n));
    if (bytes)
        memcpy(e->out, e->in[0], bytes);
    return LOOM_OK;
}

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    (void)g;
    (void)n;
    if (need[0])
        dx[0] = dy;
}

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    (void)k;
    (void)nd;
    return in[0];
}

const op_def op_def_after = {
    .name = "after",
    .kind = OPK_BINARY,
    .flags = OPF_DIFF | OPF_ELEMENTWISE,
    .nsrc = 2,
    .nattr = 0,
    .lower = lower,
    .infer = infer,
    .vjp = vjp,
    .ref = ref,
    .f2 = f,
    .check = op_check_binary,
    .check_lo = -2,
    .check_hi = 2,
};
