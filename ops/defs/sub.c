/*
 * sub — a - b.
 */
#include "ops_impl.h"

static double f(double a, double b) { return a - b; }

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    (void)n;
    if (need[0])
        dx[0] = dy;
    if (need[1])
        dx[1] = op_neg(g, dy);
}

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    (void)nd;
    return kx_bin(k, KX_SUB, in[0], in[1]);
}

const op_def op_def_sub = {
    .name = "sub",
    .kind = OPK_BINARY,
    .flags = OPF_DIFF | OPF_ELEMENTWISE,
    .nsrc = 2,
    .nattr = 0,
    .lower = lower,
    .infer = op_infer_binary,
    .vjp = vjp,
    .ref = op_ref_binary,
    .f2 = f,
    .check = op_check_binary,
    .check_lo = -2,
    .check_hi = 2,
};
