/*
 * log1p — log(1 + x), accurate near 0 (softplus, BCE with logits).
 * d/dx = 1/(1 + x).
 */
#include "ops_impl.h"

static double f(double x) { return log1p(x); }

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    if (need[0])
        dx[0] = op_div(g, dy, op_adds(g, ir_src(g, n, 0), 1.0));
}

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    (void)nd;
    return kx_un(k, KX_LOG1P, in[0]);
}

const op_def op_def_log1p = {
    .name = "log1p",
    .kind = OPK_UNARY,
    .flags = OPF_DIFF | OPF_ELEMENTWISE | OPF_FLOAT,
    .nsrc = 1,
    .nattr = 0,
    .lower = lower,
    .infer = op_infer_unary,
    .vjp = vjp,
    .ref = op_ref_unary,
    .f1 = f,
    .check = op_check_unary,
    .check_lo = -0.5,
    .check_hi = 3,
};
