/*
 * maximum — elementwise max(a, b). The gradient goes to the larger
 * operand; at a tie it is split in halves (as PyTorch does).
 */
#include "ops_impl.h"

static double f(double a, double b) { return a >= b ? a : b; }

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    op_vjp_extremum(g, n, dy, need, dx, OP_GT);
}

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    (void)nd;
    return k->select(k, kx_bin(k, KX_GE, in[0], in[1]), in[0], in[1]);
}

const op_def op_def_maximum = {
    .name = "maximum",
    .kind = OPK_BINARY,
    .flags = OPF_DIFF | OPF_ELEMENTWISE | OPF_COMMUTATIVE,
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
