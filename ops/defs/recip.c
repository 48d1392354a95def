/*
 * recip — 1/x. d/dx = -1/x^2 = -y^2.
 */
#include "ops_impl.h"

static double f(double x) { return 1.0 / x; }

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    if (need[0])
        dx[0] = op_neg(g, op_mul(g, dy, op_mul(g, n, n)));
}

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    (void)nd;
    return kx_bin(k, KX_DIV, kx_const(k, 1.0), in[0]);
}

const op_def op_def_recip = {
    .name = "recip",
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
    .check_lo = 0.3,
    .check_hi = 3,
};
