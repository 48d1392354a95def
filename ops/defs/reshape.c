/*
 * reshape — the same elements (row-major) under another shape of equal
 * size. The target shape is the node's own; -1 is resolved by the
 * frontend.
 */
#include "ops_impl.h"

static loom_code infer(op_infer *b)
{
    char sh[160];
    if (b->shape.rank < 0 || b->shape.rank > LOOM_MAX_RANK)
        return op_fail(b, LOOM_ERR_SHAPE, "target rank %d", b->shape.rank);
    for (int i = 0; i < b->shape.rank; i++)
        if (b->shape.d[i] < 0)
            return op_fail(b, LOOM_ERR_SHAPE, "target %s has a negative dimension",
                           loom_shape_str(b->shape, -1, sh, sizeof sh));
    if (loom_shape_numel(b->shape) != loom_shape_numel(*op_in_shape(b, 0)))
        return op_fail(b, LOOM_ERR_SHAPE, "target %s has another number of elements",
                       loom_shape_str(b->shape, -1, sh, sizeof sh));
    b->dtype = op_in_dtype(b, 0);
    return LOOM_OK;
}

static loom_code ref(const op_exec *e)
{
    memcpy(e->out, e->in[0], (size_t)ir_numel(e->g, e->n) * loom_dtype_size(ir_dtype(e->g, e->n)));
    return LOOM_OK;
}

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    if (need[0])
        dx[0] = op_reshape(g, dy, ir_shapev(g, ir_src(g, n, 0)));
}

/* Reshape to the dims reversed, then flatten: two reshapes folded. */
static ir_id check(op_check *c)
{
    ir_graph *g = op_check_graph(c);
    loom_shape s = op_check_shape(c, 1, 4), r = { .rank = s.rank };
    for (int i = 0; i < s.rank; i++)
        r.d[i] = s.d[s.rank - 1 - i];
    ir_id x = op_check_input_new(c, s, -2, 2);
    ir_id y = op_reshape(g, x, r);
    return op_mul(g, y, y); /* nonlinear, so the gradient depends on the layout */
}

const op_def op_def_reshape = {
    .name = "reshape",
    .kind = OPK_MOVE,
    .flags = OPF_DIFF,
    .nsrc = 1,
    .nattr = 0,
    .infer = infer,
    .vjp = vjp,
    .ref = ref,
    .check = check,
};
