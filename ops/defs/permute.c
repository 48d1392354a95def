/*
 * permute — axes reordered: out axis i is input axis perm[i].
 * attrs: perm[rank]. The gradient is the inverse permutation.
 */
#include "ops_impl.h"

static loom_code infer(op_infer *b)
{
    const loom_shape *s = op_in_shape(b, 0);
    if (b->nattr != (uint32_t)s->rank)
        return op_fail(b, LOOM_ERR_ARG, "%u axes given for rank %d", b->nattr, s->rank);
    uint32_t seen = 0;
    loom_shape o = { .rank = s->rank };
    for (int i = 0; i < s->rank; i++) {
        int64_t p = b->attrs[i];
        if (p < 0 || p >= s->rank || (seen >> p) & 1)
            return op_fail(b, LOOM_ERR_ARG, "not a permutation of %d axes (axis %lld)", s->rank,
                           (long long)p);
        seen |= 1u << p;
        o.d[i] = s->d[p];
    }
    b->dtype = op_in_dtype(b, 0);
    b->shape = o;
    return LOOM_OK;
}

static loom_code ref(const op_exec *e)
{
    const loom_shape *s = ir_shape(e->g, ir_src(e->g, e->n, 0));
    const int64_t *perm = ir_attrs(e->g, e->n);
    int64_t ist[LOOM_MAX_RANK], st[LOOM_MAX_RANK];
    op_strides(s, ist);
    for (int i = 0; i < s->rank; i++)
        st[i] = ist[perm[i]];
    op_copy_strided(e->out, e->in[0], ir_dtype(e->g, e->n), ir_shape(e->g, e->n), 0, st);
    return LOOM_OK;
}

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    if (!need[0])
        return;
    const int64_t *perm = ir_attrs(g, n);
    int inv[LOOM_MAX_RANK];
    for (uint32_t i = 0; i < ir_nattr(g, n); i++)
        inv[perm[i]] = (int)i;
    dx[0] = op_permute(g, dy, inv);
}

static ir_id check(op_check *c)
{
    ir_graph *g = op_check_graph(c);
    loom_shape s = op_check_shape(c, 2, 4);
    int perm[LOOM_MAX_RANK];
    for (int i = 0; i < s.rank; i++)
        perm[i] = i;
    for (int i = s.rank - 1; i > 0; i--) { /* Fisher-Yates */
        int j = op_check_int(c, 0, i), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    ir_id y = op_permute(g, op_check_input_new(c, s, -2, 2), perm);
    return op_mul(g, y, y);
}

const op_def op_def_permute = {
    .name = "permute",
    .kind = OPK_MOVE,
    .flags = OPF_DIFF,
    .nsrc = 1,
    .nattr = -1,
    .infer = infer,
    .vjp = vjp,
    .ref = ref,
    .check = check,
};
