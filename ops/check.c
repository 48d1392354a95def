/*
 * check.c — building gradient-check cases: random shapes, inputs with
 * data, and the generic cases for the elementwise families. The finite
 * differences themselves are in autograd/gradcheck.c.
 */
#include "ops_impl.h"

ir_graph *op_check_graph(op_check *c) { return c->g; }

int op_check_int(op_check *c, int lo, int hi)
{
    if (hi <= lo)
        return lo;
    return lo + (int)(lm_rng_next(&c->rng) % (uint64_t)(hi - lo + 1));
}

loom_shape op_check_shape(op_check *c, int rmin, int rmax)
{
    loom_shape s = { .rank = op_check_int(c, rmin, rmax) };
    for (int i = 0; i < s.rank; i++)
        s.d[i] = op_check_int(c, 1, 4);
    return s;
}

static op_check_input *new_input(op_check *c, loom_shape s, loom_dtype dt)
{
    if (ir_failed(c->g) || !LM_GROW(&c->g->mem, c->in, c->cap, c->nin + 1))
        return NULL;
    op_check_input *in = &c->in[c->nin];
    in->numel = loom_shape_numel(s);
    in->data = lm_alloc_aligned(&c->g->mem, (size_t)in->numel * loom_dtype_size(dt));
    if (!in->data)
        return NULL;
    in->slot = (uint32_t)c->nin;
    in->node = op_input(c->g, dt, s, in->slot);
    in->diff = dt != LOOM_I32;
    in->dtype = dt;
    c->nin++;
    return in->node ? in : NULL;
}

ir_id op_check_input_new(op_check *c, loom_shape s, double lo, double hi)
{
    op_check_input *in = new_input(c, s, c->dtype);
    if (!in)
        return 0;
    for (int64_t i = 0; i < in->numel; i++)
        op_store(in->data, in->dtype, i, lo + (hi - lo) * lm_rng_uniform(&c->rng));
    return in->node;
}

ir_id op_check_index(op_check *c, loom_shape s, int64_t bound)
{
    op_check_input *in = new_input(c, s, LOOM_I32);
    if (!in)
        return 0;
    int32_t *d = in->data;
    for (int64_t i = 0; i < in->numel; i++)
        d[i] = (int32_t)(lm_rng_next(&c->rng) % (uint64_t)bound);
    return in->node;
}

ir_id op_check_unary(op_check *c)
{
    const op_def *d = op_get(c->op);
    ir_id x = op_check_input_new(c, op_check_shape(c, 0, 3), d->check_lo, d->check_hi);
    return op_unary(c->g, c->op, x);
}

/* Shapes that broadcast: some axes are 1 in one operand, and one operand
 * may lack leading axes. */
ir_id op_check_binary(op_check *c)
{
    const op_def *d = op_get(c->op);
    loom_shape s = op_check_shape(c, 0, 3), sa = s, sb = s;
    for (int i = 0; i < s.rank; i++) {
        int k = op_check_int(c, 0, 3);
        if (k == 0)
            sa.d[i] = 1;
        else if (k == 1)
            sb.d[i] = 1;
    }
    int drop = op_check_int(c, 0, s.rank);
    loom_shape *shorter = op_check_int(c, 0, 1) ? &sa : &sb;
    if (drop > 0 && op_check_int(c, 0, 1)) {
        for (int i = 0; i + drop < shorter->rank; i++)
            shorter->d[i] = shorter->d[i + drop];
        shorter->rank -= drop;
    }
    ir_id a = op_check_input_new(c, sa, d->check_lo, d->check_hi);
    ir_id b = op_check_input_new(c, sb, d->check_lo, d->check_hi);
    return op_binary(c->g, c->op, op_broadcast_to(c->g, a, s), op_broadcast_to(c->g, b, s));
}

ir_id op_check_reduce(op_check *c)
{
    const op_def *d = op_get(c->op);
    loom_shape s = op_check_shape(c, 1, 4);
    uint32_t mask = (uint32_t)op_check_int(c, 1, (1 << s.rank) - 1);
    ir_id x = op_check_input_new(c, s, d->check_lo, d->check_hi);
    ir_id y = op_reduce(c->g, c->op, x, mask, op_check_int(c, 0, 1));
    return op_mul(c->g, y, y);
}

void op_check_free(op_check *c)
{
    for (size_t i = 0; i < c->nin; i++)
        lm_free_aligned(&c->g->mem, c->in[i].data);
    lm_free(&c->g->mem, c->in, c->cap * sizeof *c->in);
    c->in = NULL;
    c->nin = c->cap = 0;
}
