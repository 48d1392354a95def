/*
 * maximum — elementwise max(a, b). The gradient goes to the larger
 * operand; at a tie it is split in halves (as PyTorch does).
 */
#include "ops_impl.h"

static double f(double a, double b) { return a >= b ? a : b; }

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    ir_id a = ir_src(g, n, 0), b = ir_src(g, n, 1);
    ir_id wa = op_add(g, op_binary(g, OP_GT, a, b), op_muls(g, op_binary(g, OP_EQ, a, b), 0.5));
    ir_id da = op_mul(g, dy, wa);
    if (need[0])
        dx[0] = da;
    if (need[1])
        dx[1] = op_sub(g, dy, da);
}

const op_def op_def_maximum = {
    .name = "maximum",
    .kind = OPK_BINARY,
    .flags = OPF_DIFF | OPF_ELEMENTWISE | OPF_COMMUTATIVE,
    .nsrc = 2,
    .nattr = 0,
    .infer = op_infer_binary,
    .vjp = vjp,
    .ref = op_ref_binary,
    .f2 = f,
    .check = op_check_binary,
    .check_lo = -2,
    .check_hi = 2,
};
