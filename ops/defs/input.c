/*
 * input — a placeholder whose value is fed before a run. attrs: [slot].
 * The executor reads env->inputs[slot]; the value is not the graph's.
 */
#include "ops_impl.h"

static void format(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    op_catf(buf, size, "#%lld", (long long)ir_attrs(g, n)[0]);
}

const op_def op_def_input = {
    .name = "input",
    .kind = OPK_SOURCE,
    .flags = OPF_EXTERNAL,
    .nsrc = 0,
    .nattr = 1,
    .infer = op_infer_source,
    .format = format,
};
