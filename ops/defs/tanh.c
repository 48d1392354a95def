/*
 * tanh — hyperbolic tangent. d/dx = 1 - tanh(x)^2, from the output.
 */
#include "ops_impl.h"

static double f(double x) { return tanh(x); }

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    if (need[0])
        dx[0] = op_mul(g, dy, op_sub(g, op_const_like(g, n, 1.0), op_mul(g, n, n)));
}

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    (void)nd;
    return kx_un(k, KX_TANH, in[0]);
}

const op_def op_def_tanh = {
    .name = "tanh",
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
    .check_lo = -2,
    .check_hi = 2,
};
