/*
 * build.c — node builders: the one general builder (shape rule, then
 * hash-consed insertion) and the typed helpers on top of it, numpy
 * broadcasting, and the adjoint of broadcasting (sum to a shape).
 *
 * Identities are folded as nodes are built (reshape to the same shape,
 * expand to the same shape, identity permutation, full slice) so that
 * gradients of gradients stay small; real simplification is a pass.
 */
#include "ops_impl.h"

ir_id op_make(ir_graph *g, int op, loom_dtype dt, const loom_shape *shape, const ir_id *srcs,
              uint32_t nsrc, const int64_t *attrs, uint32_t nattr)
{
    if (ir_failed(g))
        return 0;
    const op_def *d = op_defs[op];
    for (uint32_t i = 0; i < nsrc; i++)
        if (!ir_valid(g, srcs[i])) {
            lm_fail(g->err, LOOM_ERR_INTERNAL, "%s: operand %u is not a node", d->name, i);
            return 0;
        }
    if ((d->nsrc >= 0 && nsrc != (uint32_t)d->nsrc) || (d->nsrc < 0 && nsrc == 0) ||
        (d->nattr >= 0 && nattr != (uint32_t)d->nattr)) {
        lm_fail(g->err, LOOM_ERR_INTERNAL, "%s: built with %u operands and %u attribute words",
                d->name, nsrc, nattr);
        return 0;
    }
    op_infer b = {
        .g = g,
        .op = op,
        .srcs = srcs,
        .nsrc = nsrc,
        .attrs = attrs,
        .nattr = nattr,
        .dtype = dt,
        .shape = shape ? *shape : (loom_shape){ 0 },
    };
    if (d->infer(&b) != LOOM_OK)
        return 0;
    /* every shape a rule produces must have a numel that fits */
    int64_t numel = 1;
    for (int i = 0; i < b.shape.rank; i++)
        if (b.shape.d[i] < 0 || __builtin_mul_overflow(numel, b.shape.d[i], &numel) ||
            numel > ((int64_t)1 << 48)) {
            char sh[160];
            op_fail(&b, LOOM_ERR_SHAPE, "result %s is too large or negative",
                    loom_shape_str(b.shape, b.dtype, sh, sizeof sh));
            return 0;
        }
    return ir_add(g, &(ir_desc){ .op = op, .dtype = b.dtype, .shape = b.shape, .srcs = srcs,
                                 .nsrc = nsrc, .attrs = attrs, .nattr = nattr });
}

/* ------------------------------------------------------------------ */
/* Sources                                                            */
/* ------------------------------------------------------------------ */

ir_id op_const(ir_graph *g, loom_dtype dt, loom_shape s, double v)
{
    /* canonical value for the dtype, so equal constants hash-cons */
    if (dt == LOOM_F32)
        v = (float)v;
    else if (dt == LOOM_I32)
        v = (double)op_to_i32(v);
    if (v == 0)
        v = 0; /* -0.0 and 0.0 are one constant */
    int64_t a = ir_f2a(v);
    return op_make(g, OP_CONST, dt, &s, NULL, 0, &a, 1);
}

ir_id op_const_like(ir_graph *g, ir_id x, double v)
{
    if (!x || ir_failed(g))
        return 0;
    return op_const(g, ir_dtype(g, x), *ir_shape(g, x), v);
}

ir_id op_input(ir_graph *g, loom_dtype dt, loom_shape s, uint32_t slot)
{
    int64_t a = slot;
    return op_make(g, OP_INPUT, dt, &s, NULL, 0, &a, 1);
}

ir_id op_param(ir_graph *g, loom_dtype dt, loom_shape s, uint32_t pid)
{
    int64_t a = pid;
    return op_make(g, OP_PARAM, dt, &s, NULL, 0, &a, 1);
}

ir_id op_iota(ir_graph *g, loom_dtype dt, loom_shape s, int axis)
{
    int64_t a = axis;
    return op_make(g, OP_IOTA, dt, &s, NULL, 0, &a, 1);
}

ir_id op_random(ir_graph *g, loom_dtype dt, loom_shape s, ir_id key, int kind, uint32_t stream,
                double p)
{
    int64_t a[3] = { kind, stream, ir_f2a(kind == RANDOM_BERNOULLI ? p : 0.0) };
    return op_make(g, OP_RANDOM, dt, &s, &key, 1, a, 3);
}

/* ------------------------------------------------------------------ */
/* Elementwise                                                        */
/* ------------------------------------------------------------------ */

ir_id op_unary(ir_graph *g, int op, ir_id x)
{
    return op_make(g, op, x && !ir_failed(g) ? ir_dtype(g, x) : LOOM_F32, NULL, &x, 1, NULL, 0);
}

ir_id op_binary(ir_graph *g, int op, ir_id a, ir_id b)
{
    ir_id s[2] = { a, b };
    return op_make(g, op, LOOM_F32, NULL, s, 2, NULL, 0);
}

ir_id op_cast(ir_graph *g, ir_id x, loom_dtype dt)
{
    if (x && !ir_failed(g) && ir_dtype(g, x) == dt)
        return x;
    return op_make(g, OP_CAST, dt, NULL, &x, 1, NULL, 0);
}

ir_id op_where(ir_graph *g, ir_id c, ir_id a, ir_id b)
{
    ir_id s[3] = { c, a, b };
    return op_make(g, OP_WHERE, LOOM_F32, NULL, s, 3, NULL, 0);
}

ir_id op_after(ir_graph *g, ir_id x, ir_id dep)
{
    if (!x || !dep || ir_failed(g))
        return 0;
    if (ir_numel(g, dep) != 1) {
        char sh[160];
        lm_fail(g->err, LOOM_ERR_INTERNAL, "after: the ordering operand %s is not one element",
                loom_shape_str(ir_shapev(g, dep), ir_dtype(g, dep), sh, sizeof sh));
        return 0;
    }
    loom_shape s = ir_shapev(g, x), one = { .rank = s.rank };
    for (int i = 0; i < s.rank; i++)
        one.d[i] = 1;
    ir_id srcs[2] = { x, op_expand(g, op_reshape(g, dep, one), s) };
    return op_make(g, OP_AFTER, ir_dtype(g, x), NULL, srcs, 2, NULL, 0);
}

ir_id op_adds(ir_graph *g, ir_id x, double v)
{
    return op_add(g, x, op_const_like(g, x, v));
}

ir_id op_muls(ir_graph *g, ir_id x, double v)
{
    return op_mul(g, x, op_const_like(g, x, v));
}

/* ------------------------------------------------------------------ */
/* Reductions, movement, contraction, indexing                        */
/* ------------------------------------------------------------------ */

ir_id op_reduce(ir_graph *g, int op, ir_id x, uint32_t axes, bool keepdim)
{
    if (x && !ir_failed(g) && axes == 0)
        return x;
    int64_t a[2] = { axes, keepdim };
    return op_make(g, op, LOOM_F32, NULL, &x, 1, a, 2);
}

ir_id op_reshape(ir_graph *g, ir_id x, loom_shape s)
{
    if (x && !ir_failed(g) && loom_shape_equal(*ir_shape(g, x), s))
        return x;
    /* reshape of a reshape is one reshape */
    if (x && !ir_failed(g) && ir_op(g, x) == OP_RESHAPE)
        x = ir_src(g, x, 0);
    return op_make(g, OP_RESHAPE, LOOM_F32, &s, &x, 1, NULL, 0);
}

ir_id op_permute(ir_graph *g, ir_id x, const int *perm)
{
    if (!x || ir_failed(g))
        return 0;
    int r = ir_shape(g, x)->rank;
    int64_t a[LOOM_MAX_RANK];
    bool identity = true;
    for (int i = 0; i < r; i++) {
        a[i] = perm[i];
        identity &= perm[i] == i;
    }
    if (identity)
        return x;
    return op_make(g, OP_PERMUTE, LOOM_F32, NULL, &x, 1, a, (uint32_t)r);
}

ir_id op_expand(ir_graph *g, ir_id x, loom_shape s)
{
    if (x && !ir_failed(g) && loom_shape_equal(*ir_shape(g, x), s))
        return x;
    return op_make(g, OP_EXPAND, LOOM_F32, &s, &x, 1, NULL, 0);
}

ir_id op_slice(ir_graph *g, ir_id x, const int64_t *start, const int64_t *stop, const int64_t *step)
{
    if (!x || ir_failed(g))
        return 0;
    const loom_shape *s = ir_shape(g, x);
    int r = s->rank;
    int64_t a[3 * LOOM_MAX_RANK];
    bool full = true;
    for (int i = 0; i < r; i++) {
        a[i] = start[i];
        a[r + i] = stop[i];
        a[2 * r + i] = step[i];
        full &= start[i] == 0 && stop[i] == s->d[i] && step[i] == 1;
    }
    if (full)
        return x;
    return op_make(g, OP_SLICE, LOOM_F32, NULL, &x, 1, a, (uint32_t)(3 * r));
}

ir_id op_pad(ir_graph *g, ir_id x, const int64_t *lo, const int64_t *hi, const int64_t *interior,
             double value)
{
    if (!x || ir_failed(g))
        return 0;
    int r = ir_shape(g, x)->rank;
    int64_t a[3 * LOOM_MAX_RANK + 1];
    bool none = true;
    for (int i = 0; i < r; i++) {
        a[i] = lo[i];
        a[r + i] = hi[i];
        a[2 * r + i] = interior[i];
        none &= lo[i] == 0 && hi[i] == 0 && interior[i] == 0;
    }
    if (none)
        return x;
    a[3 * r] = ir_f2a(value == 0 ? 0.0 : value);
    return op_make(g, OP_PAD, LOOM_F32, NULL, &x, 1, a, (uint32_t)(3 * r + 1));
}

ir_id op_concat(ir_graph *g, uint32_t n, const ir_id *xs, int axis)
{
    if (n == 1)
        return xs[0];
    int64_t a = axis;
    return op_make(g, OP_CONCAT, LOOM_F32, NULL, xs, n, &a, 1);
}

ir_id op_matmul(ir_graph *g, ir_id a, ir_id b, bool ta, bool tb)
{
    ir_id s[2] = { a, b };
    int64_t at[2] = { ta, tb };
    return op_make(g, OP_MATMUL, LOOM_F32, NULL, s, 2, at, 2);
}

ir_id op_gather(ir_graph *g, ir_id x, ir_id idx, int axis)
{
    ir_id s[2] = { x, idx };
    int64_t a = axis;
    return op_make(g, OP_GATHER, LOOM_F32, NULL, s, 2, &a, 1);
}

ir_id op_scatter_add(ir_graph *g, ir_id src, ir_id idx, int axis, int64_t size)
{
    ir_id s[2] = { src, idx };
    int64_t a[2] = { axis, size };
    return op_make(g, OP_SCATTER_ADD, LOOM_F32, NULL, s, 2, a, 2);
}

ir_id op_assign(ir_graph *g, ir_id value, uint32_t pid)
{
    int64_t a = pid;
    return op_make(g, OP_ASSIGN, LOOM_F32, NULL, &value, 1, &a, 1);
}

/* ------------------------------------------------------------------ */
/* Broadcasting                                                       */
/* ------------------------------------------------------------------ */

bool op_broadcast_shape(const loom_shape *a, const loom_shape *b, loom_shape *out)
{
    int r = LM_MAX(a->rank, b->rank);
    loom_shape s = { .rank = r };
    for (int i = 0; i < r; i++) {
        int ia = a->rank - r + i, ib = b->rank - r + i;
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da == db || db == 1)
            s.d[i] = da;
        else if (da == 1)
            s.d[i] = db;
        else
            return false;
    }
    *out = s;
    return true;
}

ir_id op_broadcast_to(ir_graph *g, ir_id x, loom_shape s)
{
    if (!x || ir_failed(g))
        return 0;
    loom_shape xs = ir_shapev(g, x);
    if (loom_shape_equal(xs, s))
        return x;
    if (xs.rank < s.rank) {
        loom_shape r = { .rank = s.rank };
        int lead = s.rank - xs.rank;
        for (int i = 0; i < s.rank; i++)
            r.d[i] = i < lead ? 1 : xs.d[i - lead];
        x = op_reshape(g, x, r);
    }
    return op_expand(g, x, s);
}

ir_id op_sum_to(ir_graph *g, ir_id x, loom_shape s)
{
    if (!x || ir_failed(g))
        return 0;
    loom_shape xs = ir_shapev(g, x);
    if (loom_shape_equal(xs, s))
        return x;
    int lead = xs.rank - s.rank;
    uint32_t axes = 0;
    for (int i = 0; i < xs.rank; i++)
        if (i < lead || (s.d[i - lead] == 1 && xs.d[i] != 1))
            axes |= 1u << i;
    return op_reshape(g, op_sum(g, x, axes, true), s);
}
