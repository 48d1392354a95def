/*
 * relu — max(x, 0). The gradient passes where x > 0 (0 at x = 0, as in
 * PyTorch).
 */
#include "ops_impl.h"

static double f(double x) { return x > 0 ? x : 0.0; }

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    ir_id x = ir_src(g, n, 0);
    if (need[0])
        dx[0] = op_mul(g, dy, op_binary(g, OP_GT, x, op_const_like(g, x, 0.0)));
}

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    (void)nd;
    kx_val zero = kx_const(k, 0.0);
    return k->select(k, kx_bin(k, KX_GT, in[0], zero), in[0], zero); /* NaN -> 0, as the reference */
}

const op_def op_def_relu = {
    .name = "relu",
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
    .check_lo = -1,
    .check_hi = 1,
};
