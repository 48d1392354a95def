/*
 * sign — -1, 0 or 1. Piecewise constant: no gradient.
 */
#include "ops_impl.h"

static double f(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0; }

const op_def op_def_sign = {
    .name = "sign",
    .kind = OPK_UNARY,
    .flags = OPF_ELEMENTWISE,
    .nsrc = 1,
    .nattr = 0,
    .infer = op_infer_unary,
    .ref = op_ref_unary,
    .f1 = f,
};
