/*
 * max — maximum over a set of axes. attrs: [axes bit mask, keepdim].
 * The gradient is shared equally among the elements equal to the max
 * (torch.amax's rule), so it is well defined at ties.
 */
#include "ops_impl.h"

static double larger(double acc, double x) { return x > acc || x != x ? x : acc; } /* NaN wins */

static loom_code ref(const op_exec *e) { return op_ref_reduce(e, -INFINITY, larger); }

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    if (!need[0])
        return;
    ir_id x = ir_src(g, n, 0);
    loom_shape xs = ir_shapev(g, x), keep;
    uint32_t mask = (uint32_t)ir_attrs(g, n)[0];
    op_reduce_layout(&xs, mask, NULL, &keep, NULL);
    ir_id hit = op_binary(g, OP_EQ, x, op_expand(g, op_reshape(g, n, keep), xs));
    ir_id count = op_sum(g, hit, mask, true);
    ir_id share = op_div(g, op_reshape(g, dy, keep), count);
    dx[0] = op_mul(g, hit, op_expand(g, share, xs));
}

const op_def op_def_max = {
    .name = "max",
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
