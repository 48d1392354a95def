/*
 * assign — the value a parameter (or buffer) takes when the run ends.
 * attrs: [parameter id]. Every read in a run sees the old value; the
 * executor commits assignments after everything else has run. The
 * frontend checks that dtype and shape match the parameter.
 */
#include "ops_impl.h"

static loom_code ref(const op_exec *e)
{
    memcpy(e->out, e->in[0], (size_t)ir_numel(e->g, e->n) * loom_dtype_size(ir_dtype(e->g, e->n)));
    return LOOM_OK;
}

static void format(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    op_catf(buf, size, "-> p%lld", (long long)ir_attrs(g, n)[0]);
}

const op_def op_def_assign = {
    .name = "assign",
    .kind = OPK_SINK,
    .nsrc = 1,
    .nattr = 1,
    .infer = op_infer_unary,
    .ref = ref,
    .format = format,
};
