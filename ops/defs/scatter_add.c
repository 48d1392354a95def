/*
 * scatter_add — the adjoint of gather: src [P..., J..., Q...] summed into
 * zeros [P..., size, Q...] at rows idx [J...] (i32). attrs: [axis, size].
 * Indices outside [0, size) fail the run. The gradient of src is a
 * gather; idx gets none.
 */
#include "ops_impl.h"

static loom_code infer(op_infer *b)
{
    const loom_shape *src = op_in_shape(b, 0), *idx = op_in_shape(b, 1);
    int64_t axis = b->attrs[0], size = b->attrs[1];
    if (op_in_dtype(b, 1) != LOOM_I32)
        return op_fail(b, LOOM_ERR_DTYPE, "indices must be i32");
    if (axis < 0 || axis + idx->rank > src->rank)
        return op_fail(b, LOOM_ERR_ARG, "axis %lld does not fit the index rank %d", (long long)axis,
                       idx->rank);
    if (size < 0)
        return op_fail(b, LOOM_ERR_ARG, "negative size %lld", (long long)size);
    for (int i = 0; i < idx->rank; i++)
        if (src->d[axis + i] != idx->d[i])
            return op_fail(b, LOOM_ERR_SHAPE, "source axis %lld does not match index axis %d",
                           (long long)(axis + i), i);
    loom_shape o = { .rank = src->rank - idx->rank + 1 };
    int k = 0;
    for (int i = 0; i < axis; i++)
        o.d[k++] = src->d[i];
    o.d[k++] = size;
    for (int i = (int)axis + idx->rank; i < src->rank; i++)
        o.d[k++] = src->d[i];
    b->dtype = op_in_dtype(b, 0);
    b->shape = o;
    return LOOM_OK;
}

static loom_code ref(const op_exec *e)
{
    ir_id ix = ir_src(e->g, e->n, 1);
    const loom_shape *o = ir_shape(e->g, e->n);
    int axis = (int)ir_attrs(e->g, e->n)[0];
    int64_t size = ir_attrs(e->g, e->n)[1], outer = 1, inner = 1, j = ir_numel(e->g, ix);
    for (int k = 0; k < axis; k++)
        outer *= o->d[k];
    for (int k = axis + 1; k < o->rank; k++)
        inner *= o->d[k];
    const int32_t *idx = e->in[1];
    for (int64_t t = 0; t < j; t++)
        if (idx[t] < 0 || idx[t] >= size)
            return lm_fail(e->err, LOOM_ERR_INDEX, "scatter_add: index %d out of range [0, %lld) at position %lld (node %%%u)",
                           idx[t], (long long)size, (long long)t, e->n);
    loom_dtype dt = ir_dtype(e->g, e->n);
    int64_t on = ir_numel(e->g, e->n);
    for (int64_t i = 0; i < on; i++)
        op_store(e->out, dt, i, 0.0);
    for (int64_t p = 0; p < outer; p++)
        for (int64_t t = 0; t < j; t++)
            for (int64_t q = 0; q < inner; q++) {
                int64_t to = (p * size + idx[t]) * inner + q, from = (p * j + t) * inner + q;
                op_store(e->out, dt, to, op_load(e->out, dt, to) + op_load(e->in[0], dt, from));
            }
    return LOOM_OK;
}

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    if (need[0])
        dx[0] = op_gather(g, dy, ir_src(g, n, 1), (int)ir_attrs(g, n)[0]);
}

static void format(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    op_catf(buf, size, "axis=%lld size=%lld", (long long)ir_attrs(g, n)[0],
            (long long)ir_attrs(g, n)[1]);
}

static ir_id check(op_check *c)
{
    ir_graph *g = op_check_graph(c);
    loom_shape is = op_check_shape(c, 0, 2), pre = op_check_shape(c, 0, 1), post = op_check_shape(c, 0, 1);
    int64_t size = op_check_int(c, 1, 4);
    loom_shape s = { .rank = pre.rank + is.rank + post.rank };
    int k = 0;
    for (int i = 0; i < pre.rank; i++)
        s.d[k++] = pre.d[i];
    for (int i = 0; i < is.rank; i++)
        s.d[k++] = is.d[i];
    for (int i = 0; i < post.rank; i++)
        s.d[k++] = post.d[i];
    ir_id src = op_check_input_new(c, s, -2, 2);
    ir_id y = op_scatter_add(g, src, op_check_index(c, is, size), pre.rank, size);
    return op_mul(g, y, y);
}

const op_def op_def_scatter_add = {
    .name = "scatter_add",
    .kind = OPK_INDEX,
    .flags = OPF_DIFF,
    .nsrc = 2,
    .nattr = 2,
    .infer = infer,
    .vjp = vjp,
    .ref = ref,
    .format = format,
    .check = check,
};
