/*
 * const — a tensor of one value. attrs: [value as f64 bits].
 */
#include "ops_impl.h"

static loom_code ref(const op_exec *e)
{
    double v = ir_a2f(ir_attrs(e->g, e->n)[0]);
    loom_dtype dt = ir_dtype(e->g, e->n);
    int64_t n = ir_numel(e->g, e->n);
    for (int64_t i = 0; i < n; i++)
        op_store(e->out, dt, i, v);
    return LOOM_OK;
}

static void format(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    op_catf(buf, size, "%.9g", ir_a2f(ir_attrs(g, n)[0]));
}

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    (void)in;
    return kx_const(k, ir_a2f(nd->attrs[0]));
}

const op_def op_def_const = {
    .name = "const",
    .kind = OPK_SOURCE,
    .nsrc = 0,
    .nattr = 1,
    .lower = lower,
    .infer = op_infer_source,
    .ref = ref,
    .format = format,
};
