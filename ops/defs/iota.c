/*
 * iota — 0, 1, 2 ... along one axis, repeated along the others.
 * attrs: [axis]. Used for masks (sequence lengths) and one-hot codes.
 */
#include "ops_impl.h"

static loom_code infer(op_infer *b)
{
    loom_code c = op_infer_source(b);
    if (c != LOOM_OK)
        return c;
    int64_t axis = b->attrs[0];
    if (axis < 0 || axis >= b->shape.rank)
        return op_fail(b, LOOM_ERR_ARG, "axis %lld is not in [0, %d)", (long long)axis,
                       b->shape.rank);
    return LOOM_OK;
}

static loom_code ref(const op_exec *e)
{
    const loom_shape *s = ir_shape(e->g, e->n);
    int axis = (int)ir_attrs(e->g, e->n)[0];
    int64_t st[LOOM_MAX_RANK];
    op_strides(s, st);
    loom_dtype dt = ir_dtype(e->g, e->n);
    int64_t n = ir_numel(e->g, e->n);
    for (int64_t i = 0; i < n; i++)
        op_store(e->out, dt, i, (double)((i / st[axis]) % s->d[axis]));
    return LOOM_OK;
}

static void format(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    op_catf(buf, size, "axis=%lld", (long long)ir_attrs(g, n)[0]);
}

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    (void)in;
    return k->coord(k, (int)nd->attrs[0], nd->dtype);
}

const op_def op_def_iota = {
    .name = "iota",
    .kind = OPK_SOURCE,
    .nsrc = 0,
    .nattr = 1,
    .lower = lower,
    .infer = infer,
    .ref = ref,
    .format = format,
};
