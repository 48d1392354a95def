/*
 * gather — x [P..., A, Q...] and i32 indices idx [J...] give
 * out [P..., J..., Q...] = x[p, idx[j], q]. attrs: [axis]. An index
 * outside [0, A) fails the run with LOOM_ERR_INDEX. The gradient of x is
 * a scatter-add; idx gets none.
 */
#include "ops_impl.h"

static loom_code infer(op_infer *b)
{
    const loom_shape *x = op_in_shape(b, 0), *idx = op_in_shape(b, 1);
    int64_t axis = b->attrs[0];
    if (op_in_dtype(b, 1) != LOOM_I32)
        return op_fail(b, LOOM_ERR_DTYPE, "indices must be i32");
    if (axis < 0 || axis >= x->rank)
        return op_fail(b, LOOM_ERR_ARG, "axis %lld is not in [0, %d)", (long long)axis, x->rank);
    if (x->rank - 1 + idx->rank > LOOM_MAX_RANK)
        return op_fail(b, LOOM_ERR_SHAPE, "result rank exceeds %d", LOOM_MAX_RANK);
    loom_shape o = { .rank = x->rank - 1 + idx->rank };
    int k = 0;
    for (int i = 0; i < axis; i++)
        o.d[k++] = x->d[i];
    for (int i = 0; i < idx->rank; i++)
        o.d[k++] = idx->d[i];
    for (int i = (int)axis + 1; i < x->rank; i++)
        o.d[k++] = x->d[i];
    b->dtype = op_in_dtype(b, 0);
    b->shape = o;
    return LOOM_OK;
}

static loom_code ref(const op_exec *e)
{
    ir_id x = ir_src(e->g, e->n, 0), ix = ir_src(e->g, e->n, 1);
    const loom_shape *xs = ir_shape(e->g, x);
    int axis = (int)ir_attrs(e->g, e->n)[0];
    int64_t outer = 1, inner = 1, a = xs->d[axis], j = ir_numel(e->g, ix);
    for (int k = 0; k < axis; k++)
        outer *= xs->d[k];
    for (int k = axis + 1; k < xs->rank; k++)
        inner *= xs->d[k];
    const int32_t *idx = e->in[1];
    size_t es = loom_dtype_size(ir_dtype(e->g, e->n)), row = (size_t)inner * es;
    for (int64_t t = 0; t < j; t++)
        if (idx[t] < 0 || idx[t] >= a)
            return lm_fail(e->err, LOOM_ERR_INDEX, "gather: index %d out of range [0, %lld) at position %lld (node %%%u)",
                           idx[t], (long long)a, (long long)t, e->n);
    for (int64_t p = 0; p < outer; p++)
        for (int64_t t = 0; t < j; t++)
            memcpy((char *)e->out + (size_t)(p * j + t) * row,
                   (const char *)e->in[0] + (size_t)(p * a + idx[t]) * row, row);
    return LOOM_OK;
}

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    if (!need[0])
        return;
    ir_id x = ir_src(g, n, 0);
    int axis = (int)ir_attrs(g, n)[0];
    dx[0] = op_scatter_add(g, dy, ir_src(g, n, 1), axis, ir_shape(g, x)->d[axis]);
}

static void format(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    op_catf(buf, size, "axis=%lld", (long long)ir_attrs(g, n)[0]);
}

/* Few rows and many indices, so rows repeat and gradients accumulate. */
static ir_id check(op_check *c)
{
    ir_graph *g = op_check_graph(c);
    loom_shape s = op_check_shape(c, 1, 3);
    int axis = op_check_int(c, 0, s.rank - 1);
    ir_id x = op_check_input_new(c, s, -2, 2);
    ir_id idx = op_check_index(c, op_check_shape(c, 0, 2), s.d[axis]);
    ir_id y = op_gather(g, x, idx, axis);
    return op_mul(g, y, y);
}

const op_def op_def_gather = {
    .name = "gather",
    .kind = OPK_INDEX,
    .flags = OPF_DIFF,
    .nsrc = 2,
    .nattr = 1,
    .infer = infer,
    .vjp = vjp,
    .ref = ref,
    .format = format,
    .check = check,
};
