/*
 * detach — the identity with no gradient: truncated BPTT cuts the tape
 * here while the value carries on. Passes remove it after autograd.
 */
#include "ops_impl.h"

static double f(double x) { return x; }

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    (void)nd;
    (void)k;
    return in[0];
}

const op_def op_def_detach = {
    .name = "detach",
    .kind = OPK_UNARY,
    .flags = OPF_ELEMENTWISE,
    .nsrc = 1,
    .nattr = 0,
    .lower = lower,
    .infer = op_infer_unary,
    .ref = op_ref_unary,
    .f1 = f,
};
