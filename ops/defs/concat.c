/*
 * concat — operands joined along one axis. attrs: [axis]. The gradient
 * of each operand is its slice of dy.
 */
#include "ops_impl.h"

static loom_code infer(op_infer *b)
{
    const loom_shape *s0 = op_in_shape(b, 0);
    int64_t axis = b->attrs[0];
    if (axis < 0 || axis >= s0->rank)
        return op_fail(b, LOOM_ERR_ARG, "axis %lld is not in [0, %d)", (long long)axis, s0->rank);
    loom_shape o = *s0;
    o.d[axis] = 0;
    for (uint32_t i = 0; i < b->nsrc; i++) {
        const loom_shape *s = op_in_shape(b, i);
        if (op_in_dtype(b, i) != op_in_dtype(b, 0))
            return op_fail(b, LOOM_ERR_DTYPE, "operand %u has another dtype", i);
        if (s->rank != s0->rank)
            return op_fail(b, LOOM_ERR_SHAPE, "operand %u has another rank", i);
        for (int k = 0; k < s->rank; k++)
            if (k != axis && s->d[k] != s0->d[k])
                return op_fail(b, LOOM_ERR_SHAPE, "operand %u differs on axis %d", i, k);
        o.d[axis] += s->d[axis];
    }
    b->dtype = op_in_dtype(b, 0);
    b->shape = o;
    return LOOM_OK;
}

static loom_code ref(const op_exec *e)
{
    const loom_shape *o = ir_shape(e->g, e->n);
    int axis = (int)ir_attrs(e->g, e->n)[0];
    size_t es = loom_dtype_size(ir_dtype(e->g, e->n));
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < axis; k++)
        outer *= o->d[k];
    for (int k = axis + 1; k < o->rank; k++)
        inner *= o->d[k];
    size_t orow = (size_t)(o->d[axis] * inner) * es, at = 0;
    for (uint32_t i = 0; i < ir_nsrc(e->g, e->n); i++) {
        size_t row = (size_t)(ir_shape(e->g, ir_src(e->g, e->n, i))->d[axis] * inner) * es;
        for (int64_t p = 0; p < outer; p++)
            memcpy((char *)e->out + (size_t)p * orow + at, (const char *)e->in[i] + (size_t)p * row, row);
        at += row;
    }
    return LOOM_OK;
}

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    loom_shape o = ir_shapev(g, n);
    int axis = (int)ir_attrs(g, n)[0];
    int64_t start[LOOM_MAX_RANK] = { 0 }, stop[LOOM_MAX_RANK], step[LOOM_MAX_RANK];
    for (int k = 0; k < o.rank; k++) {
        stop[k] = o.d[k];
        step[k] = 1;
    }
    int64_t at = 0;
    for (uint32_t i = 0; i < ir_nsrc(g, n); i++) {
        int64_t len = ir_shape(g, ir_src(g, n, i))->d[axis];
        start[axis] = at;
        stop[axis] = at + len;
        if (need[i])
            dx[i] = op_slice(g, dy, start, stop, step);
        at += len;
    }
}

static void format(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    op_catf(buf, size, "axis=%lld", (long long)ir_attrs(g, n)[0]);
}

static ir_id check(op_check *c)
{
    ir_graph *g = op_check_graph(c);
    loom_shape s = op_check_shape(c, 1, 3);
    int axis = op_check_int(c, 0, s.rank - 1), n = op_check_int(c, 2, 3);
    ir_id xs[3];
    for (int i = 0; i < n; i++) {
        loom_shape si = s;
        si.d[axis] = op_check_int(c, 1, 3);
        xs[i] = op_check_input_new(c, si, -2, 2);
    }
    ir_id y = op_concat(g, (uint32_t)n, xs, axis);
    return op_mul(g, y, y);
}

const op_def op_def_concat = {
    .name = "concat",
    .kind = OPK_MOVE,
    .flags = OPF_DIFF,
    .nsrc = -1,
    .nattr = 1,
    .infer = infer,
    .vjp = vjp,
    .ref = ref,
    .format = format,
    .check = check,
};
