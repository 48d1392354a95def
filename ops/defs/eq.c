/*
 * eq — a == b as 1 or 0 in the operands' dtype. No gradient.
 */
#include "ops_impl.h"

static double f(double a, double b) { return a == b ? 1.0 : 0.0; }

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    (void)nd;
    return kx_bin(k, KX_EQ, in[0], in[1]);
}

const op_def op_def_eq = {
    .name = "eq",
    .kind = OPK_BINARY,
    .flags = OPF_ELEMENTWISE | OPF_COMPARE | OPF_COMMUTATIVE,
    .nsrc = 2,
    .nattr = 0,
    .lower = lower,
    .infer = op_infer_binary,
    .ref = op_ref_binary,
    .f2 = f,
};
