/*
 * neg — -x.
 */
#include "ops_impl.h"

static double f(double x) { return -x; }

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    (void)n;
    if (need[0])
        dx[0] = op_neg(g, dy);
}

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    (void)nd;
    return kx_un(k, KX_NEG, in[0]);
}

const op_def op_def_neg = {
    .name = "neg",
    .kind = OPK_UNARY,
    .flags = OPF_DIFF | OPF_ELEMENTWISE,
    .nsrc = 1,
    .nattr = 0,
    .lower = lower,
    .infer = op_infer_unary,
    .vjp = vjp,
    .ref = op_ref_unary,
    .f1 = f,
    .check = op_check_unary,
    .check_lo = -2,
    .check_hi = 2,
};
