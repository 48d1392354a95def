/*
 * cast — conversion to the node's dtype (to i32: truncation toward zero,
 * saturating, NaN to 0, as op_to_i32 defines). Between float types the
 * gradient is cast back; from or to i32 there is none.
 */
#include "ops_impl.h"

static loom_code infer(op_infer *b)
{
    if ((unsigned)b->dtype >= LOOM_DTYPE_COUNT)
        return op_fail(b, LOOM_ERR_DTYPE, "dtype %d is not a loom dtype", (int)b->dtype);
    b->shape = *op_in_shape(b, 0);
    return LOOM_OK;
}

static loom_code ref(const op_exec *e)
{
    loom_dtype from = ir_dtype(e->g, ir_src(e->g, e->n, 0)), to = ir_dtype(e->g, e->n);
    int64_t n = ir_numel(e->g, e->n);
    for (int64_t i = 0; i < n; i++)
        op_store(e->out, to, i, op_load(e->in[0], from, i)); /* i32: op_to_i32's rule */
    return LOOM_OK;
}

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    loom_dtype from = ir_dtype(g, ir_src(g, n, 0));
    if (need[0] && from != LOOM_I32 && ir_dtype(g, n) != LOOM_I32)
        dx[0] = op_cast(g, dy, from);
}

static void format(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    op_catf(buf, size, "to %s", loom_dtype_name(ir_dtype(g, n)));
}

/* Through f32 and back. Inputs and the step are multiples of 2^-10, so
 * every perturbed value is exact in f32 and the difference quotient of
 * this linear map is exact too. */
static ir_id check(op_check *c)
{
    c->eps = 0x1p-10;
    ir_graph *g = op_check_graph(c);
    ir_id x = op_check_input_new(c, op_check_shape(c, 0, 3), -2, 2);
    if (!x)
        return 0;
    op_check_input *in = &c->in[c->nin - 1];
    for (int64_t i = 0; i < in->numel; i++)
        op_store(in->data, in->dtype, i, round(op_load(in->data, in->dtype, i) * 1024) / 1024);
    return op_cast(g, op_cast(g, x, LOOM_F32), LOOM_F64);
}

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    return k->cast(k, in[0], nd->src_dtype[0], nd->dtype);
}

const op_def op_def_cast = {
    .name = "cast",
    .kind = OPK_UNARY,
    .flags = OPF_DIFF | OPF_ELEMENTWISE,
    .nsrc = 1,
    .nattr = 0,
    .lower = lower,
    .infer = infer,
    .vjp = vjp,
    .ref = ref,
    .format = format,
    .check = check,
};
