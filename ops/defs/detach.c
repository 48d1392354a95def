/*
 * detach — the identity with no gradient: truncated BPTT cuts the tape
 * here while the value carries on. Passes remove it after autograd.
 */
#include "ops_impl.h"

static double f(double x) { return x; }

const op_def op_def_detach = {
    .name = "detach",
    .kind = OPK_UNARY,
    .flags = OPF_ELEMENTWISE,
    .nsrc = 1,
    .nattr = 0,
    .infer = op_infer_unary,
    .ref = op_ref_unary,
    .f1 = f,
};
