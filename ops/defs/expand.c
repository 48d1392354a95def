/*
 * expand — broadcast size-1 axes to the node's shape (same rank). The
 * gradient sums over the broadcast axes.
 */
#include "ops_impl.h"

static loom_code infer(op_infer *b)
{
    const loom_shape *s = op_in_shape(b, 0);
    char sh[160];
    loom_shape_str(b->shape, -1, sh, sizeof sh);
    if (b->shape.rank != s->rank)
        return op_fail(b, LOOM_ERR_SHAPE, "target %s has another rank", sh);
    for (int i = 0; i < s->rank; i++)
        if (s->d[i] != b->shape.d[i] && s->d[i] != 1)
            return op_fail(b, LOOM_ERR_SHAPE, "cannot expand to %s (axis %d)", sh, i);
    b->dtype = op_in_dtype(b, 0);
    return LOOM_OK;
}

static loom_code ref(const op_exec *e)
{
    const loom_shape *s = ir_shape(e->g, ir_src(e->g, e->n, 0));
    const loom_shape *o = ir_shape(e->g, e->n);
    int64_t st[LOOM_MAX_RANK];
    op_strides(s, st);
    for (int i = 0; i < s->rank; i++)
        if (s->d[i] != o->d[i])
            st[i] = 0;
    op_copy_strided(e->out, e->in[0], ir_dtype(e->g, e->n), o, 0, st);
    return LOOM_OK;
}

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    if (need[0])
        dx[0] = op_sum_to(g, dy, ir_shapev(g, ir_src(g, n, 0)));
}

static ir_id check(op_check *c)
{
    ir_graph *g = op_check_graph(c);
    loom_shape s = op_check_shape(c, 1, 4), t = s;
    for (int i = 0; i < s.rank; i++)
        if (op_check_int(c, 0, 1)) {
            s.d[i] = 1;
            t.d[i] = op_check_int(c, 2, 4);
        }
    ir_id y = op_expand(g, op_check_input_new(c, s, -2, 2), t);
    return op_mul(g, y, y);
}

const op_def op_def_expand = {
    .name = "expand",
    .kind = OPK_MOVE,
    .flags = OPF_DIFF,
    .nsrc = 1,
    .nattr = 0,
    .infer = infer,
    .vjp = vjp,
    .ref = ref,
    .check = check,
};
