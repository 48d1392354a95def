/*
 * where — cond != 0 ? a : b, three operands of one shape; cond has the
 * dtype of a and b (comparisons make such masks). The gradient goes to
 * the operand that was chosen; cond gets none.
 */
#include "ops_impl.h"

static loom_code infer(op_infer *b)
{
    loom_dtype dt = op_in_dtype(b, 1);
    for (uint32_t i = 0; i < 3; i++) {
        if (!loom_shape_equal(*op_in_shape(b, i), *op_in_shape(b, 1)))
            return op_fail(b, LOOM_ERR_SHAPE, "operand shapes differ");
        if (op_in_dtype(b, i) != dt)
            return op_fail(b, LOOM_ERR_DTYPE, "operand dtypes differ");
    }
    b->dtype = dt;
    b->shape = *op_in_shape(b, 1);
    return LOOM_OK;
}

static loom_code ref(const op_exec *e)
{
    loom_dtype dt = ir_dtype(e->g, e->n);
    int64_t n = ir_numel(e->g, e->n);
    for (int64_t i = 0; i < n; i++)
        op_store(e->out, dt, i,
                 op_load(e->in[0], dt, i) != 0 ? op_load(e->in[1], dt, i) : op_load(e->in[2], dt, i));
    return LOOM_OK;
}

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    ir_id c = ir_src(g, n, 0), zero = op_const_like(g, dy, 0.0);
    if (need[1])
        dx[1] = op_where(g, c, dy, zero);
    if (need[2])
        dx[2] = op_where(g, c, zero, dy);
}

/* The condition is an input too, away from 0, so perturbing it changes
 * nothing: its (absent) gradient is checked as zero. */
static ir_id check(op_check *c)
{
    ir_graph *g = op_check_graph(c);
    loom_shape s = op_check_shape(c, 0, 3);
    ir_id x[3];
    for (int i = 0; i < 3; i++) {
        loom_shape si = s;
        for (int k = 0; k < s.rank; k++)
            if (op_check_int(c, 0, 3) == 0)
                si.d[k] = 1;
        x[i] = op_broadcast_to(g, op_check_input_new(c, si, -1, 1), s);
    }
    ir_id cond = op_binary(g, OP_GT, x[0], op_const_like(g, x[0], 0.0));
    return op_where(g, cond, x[1], x[2]);
}

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    (void)nd;
    return k->select(k, kx_bin(k, KX_NE, in[0], kx_const(k, 0.0)), in[1], in[2]);
}

const op_def op_def_where = {
    .name = "where",
    .kind = OPK_TERNARY,
    .flags = OPF_DIFF | OPF_ELEMENTWISE,
    .nsrc = 3,
    .nattr = 0,
    .lower = lower,
    .infer = infer,
    .vjp = vjp,
    .ref = ref,
    .check = check,
};
