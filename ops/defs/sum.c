/*
 * sum — sum over a set of axes. attrs: [axes bit mask, keepdim].
 * The reference accumulates in f64. The gradient is dy broadcast back.
 */
#include "ops_impl.h"

static double add(double acc, double x) { return acc + x; }

static loom_code ref(const op_exec *e) { return op_ref_reduce(e, 0.0, add); }

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    if (!need[0])
        return;
    loom_shape xs = ir_shapev(g, ir_src(g, n, 0)), keep;
    op_reduce_layout(&xs, (uint32_t)ir_attrs(g, n)[0], NULL, &keep, NULL);
    dx[0] = op_expand(g, op_reshape(g, dy, keep), xs);
}

const op_def op_def_sum = {
    .name = "sum",
    .kind = OPK_REDUCE,
    .flags = OPF_DIFF,
    .nsrc = 1,
    .nattr = 2,
    .infer = op_infer_reduce,
    .vjp = vjp,
    .ref = ref,
    .format = op_format_reduce,
    .check = op_check_reduce,
    .check_lo = -2,
    .check_hi = 2,
};
