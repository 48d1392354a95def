/*
 * sign — -1, 0 or 1. Piecewise constant: no gradient.
 */
#include "ops_impl.h"

static double f(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0; }

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    (void)nd;
    kx_val zero = kx_const(k, 0.0);
    return k->select(k, kx_bin(k, KX_GT, in[0], zero), kx_const(k, 1.0),
                     k->select(k, kx_bin(k, KX_LT, in[0], zero), kx_const(k, -1.0), zero));
}

const op_def op_def_sign = {
    .name = "sign",
    .kind = OPK_UNARY,
    .flags = OPF_ELEMENTWISE,
    .nsrc = 1,
    .nattr = 0,
    .lower = lower,
    .infer = op_infer_unary,
    .ref = op_ref_unary,
    .f1 = f,
};
