/*
 * param — a parameter or buffer, living in the context across tapes.
 * attrs: [parameter id]. The executor reads env->params[id]. Gradients
 * stop here (a leaf); autograd collects them for trainable parameters.
 */
#include "ops_impl.h"

static void format(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    op_catf(buf, size, "p%lld", (long long)ir_attrs(g, n)[0]);
}

const op_def op_def_param = {
    .name = "param",
    .kind = OPK_SOURCE,
    .flags = OPF_EXTERNAL,
    .nsrc = 0,
    .nattr = 1,
    .infer = op_infer_source,
    .format = format,
};
