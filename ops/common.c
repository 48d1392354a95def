/*
 * common.c — shape rules and reference kernels shared by many ops: the
 * elementwise families (driven by each op's scalar function) and sources.
 */
#include "ops_impl.h"

loom_code op_infer_source(op_infer *b)
{
    if ((unsigned)b->dtype >= LOOM_DTYPE_COUNT)
        return op_fail(b, LOOM_ERR_DTYPE, "dtype %d is not a loom dtype", (int)b->dtype);
    if (b->shape.rank < 0 || b->shape.rank > LOOM_MAX_RANK)
        return op_fail(b, LOOM_ERR_SHAPE, "rank %d is not in [0, %d]", b->shape.rank, LOOM_MAX_RANK);
    for (int i = 0; i < b->shape.rank; i++)
        if (b->shape.d[i] < 0)
            return op_fail(b, LOOM_ERR_SHAPE, "dimension %d is negative (%lld)", i,
                           (long long)b->shape.d[i]);
    if ((op_get(b->op)->flags & OPF_FLOAT) && b->dtype == LOOM_I32)
        return op_fail(b, LOOM_ERR_DTYPE, "takes f32 or f64, not i32");
    return LOOM_OK;
}

loom_code op_infer_unary(op_infer *b)
{
    loom_dtype dt = op_in_dtype(b, 0);
    if ((op_get(b->op)->flags & OPF_FLOAT) && dt == LOOM_I32)
        return op_fail(b, LOOM_ERR_DTYPE, "takes f32 or f64, not i32");
    b->dtype = dt;
    b->shape = *op_in_shape(b, 0);
    return LOOM_OK;
}

loom_code op_infer_binary(op_infer *b)
{
    loom_dtype dt = op_in_dtype(b, 0);
    if (op_in_dtype(b, 1) != dt)
        return op_fail(b, LOOM_ERR_DTYPE, "operand dtypes differ");
    if (!loom_shape_equal(*op_in_shape(b, 0), *op_in_shape(b, 1)))
        return op_fail(b, LOOM_ERR_SHAPE, "operand shapes differ");
    if ((op_get(b->op)->flags & OPF_FLOAT) && dt == LOOM_I32)
        return op_fail(b, LOOM_ERR_DTYPE, "takes f32 or f64, not i32");
    b->dtype = dt;
    b->shape = *op_in_shape(b, 0);
    return LOOM_OK;
}

/* One loop per dtype keeps the per-element cost to the scalar call. */
loom_code op_ref_unary(const op_exec *e)
{
    double (*f)(double) = op_def_of(e->g, e->n)->f1;
    int64_t n = ir_numel(e->g, e->n);
    switch (ir_dtype(e->g, e->n)) {
    case LOOM_F32: {
        const float *x = e->in[0];
        float *y = e->out;
        for (int64_t i = 0; i < n; i++)
            y[i] = (float)f(x[i]);
        break;
    }
    case LOOM_F64: {
        const double *x = e->in[0];
        double *y = e->out;
        for (int64_t i = 0; i < n; i++)
            y[i] = f(x[i]);
        break;
    }
    default: {
        const int32_t *x = e->in[0];
        int32_t *y = e->out;
        for (int64_t i = 0; i < n; i++)
            y[i] = op_to_i32(f(x[i]));
        break;
    }
    }
    return LOOM_OK;
}

loom_code op_ref_binary(const op_exec *e)
{
    double (*f)(double, double) = op_def_of(e->g, e->n)->f2;
    int64_t n = ir_numel(e->g, e->n);
    switch (ir_dtype(e->g, e->n)) {
    case LOOM_F32: {
        const float *a = e->in[0], *b = e->in[1];
        float *y = e->out;
        for (int64_t i = 0; i < n; i++)
            y[i] = (float)f(a[i], b[i]);
        break;
    }
    case LOOM_F64: {
        const double *a = e->in[0], *b = e->in[1];
        double *y = e->out;
        for (int64_t i = 0; i < n; i++)
            y[i] = f(a[i], b[i]);
        break;
    }
    default: {
        const int32_t *a = e->in[0], *b = e->in[1];
        int32_t *y = e->out;
        for (int64_t i = 0; i < n; i++)
            y[i] = op_to_i32(f(a[i], b[i]));
        break;
    }
    }
    return LOOM_OK;
}

void op_copy_strided(void *out, const void *in, loom_dtype dt, const loom_shape *os, int64_t base,
                     const int64_t *st)
{
    int r = os->rank;
    int64_t n = loom_shape_numel(*os);
    int64_t coord[LOOM_MAX_RANK] = { 0 };
    int64_t off = base;
    size_t es = loom_dtype_size(dt);
    const char *src = in;
    char *dst = out;
    for (int64_t i = 0; i < n; i++) {
        memcpy(dst + (size_t)i * es, src + (size_t)off * es, es);
        /* odometer: advance the last coordinate, carrying leftwards */
        for (int k = r - 1; k >= 0; k--) {
            off += st[k];
            if (++coord[k] < os->d[k])
                break;
            off -= st[k] * coord[k];
            coord[k] = 0;
        }
    }
}

void op_reduce_layout(const loom_shape *in, uint32_t mask, int64_t *ost, loom_shape *keep,
                      loom_shape *drop)
{
    loom_shape k = { .rank = in->rank }, d = { .rank = 0 };
    for (int i = 0; i < in->rank; i++) {
        k.d[i] = op_axis_in(mask, i) ? 1 : in->d[i];
        if (!op_axis_in(mask, i))
            d.d[d.rank++] = in->d[i];
    }
    if (ost) {
        op_strides(&k, ost);
        for (int i = 0; i < in->rank; i++)
            if (op_axis_in(mask, i))
                ost[i] = 0;
    }
    if (keep)
        *keep = k;
    if (drop)
        *drop = d;
}

/* attrs: [axes bit mask, keepdim]. */
loom_code op_infer_reduce(op_infer *b)
{
    const loom_shape *s = op_in_shape(b, 0);
    int64_t mask = b->attrs[0];
    if (mask < 0 || (s->rank < 63 && (mask >> s->rank) != 0))
        return op_fail(b, LOOM_ERR_ARG, "axes mask 0x%llx names axes beyond rank %d",
                       (unsigned long long)mask, s->rank);
    if (b->attrs[1] != 0 && b->attrs[1] != 1)
        return op_fail(b, LOOM_ERR_ARG, "keepdim must be 0 or 1");
    loom_shape keep, drop;
    op_reduce_layout(s, (uint32_t)mask, NULL, &keep, &drop);
    b->dtype = op_in_dtype(b, 0);
    b->shape = b->attrs[1] ? keep : drop;
    return LOOM_OK;
}

loom_code op_ref_reduce(const op_exec *e, double init, double (*combine)(double acc, double x))
{
    ir_id x = ir_src(e->g, e->n, 0);
    const loom_shape *s = ir_shape(e->g, x);
    int64_t ost[LOOM_MAX_RANK], ist[LOOM_MAX_RANK];
    op_reduce_layout(s, (uint32_t)ir_attrs(e->g, e->n)[0], ost, NULL, NULL);
    op_strides(s, ist);
    int64_t n = loom_shape_numel(*s), m = ir_numel(e->g, e->n);
    size_t bytes = (size_t)(m ? m : 1) * sizeof(double);
    lm_mem mem = e->g->mem;
    double *acc = lm_alloc(&mem, bytes);
    if (!acc)
        return LOOM_ERR_NOMEM;
    for (int64_t j = 0; j < m; j++)
        acc[j] = init;
    loom_dtype dt = ir_dtype(e->g, x);
    for (int64_t i = 0; i < n; i++) {
        int64_t o = 0;
        for (int k = 0; k < s->rank; k++)
            o += (i / ist[k]) % s->d[k] * ost[k];
        acc[o] = combine(acc[o], op_load(e->in[0], dt, i));
    }
    for (int64_t j = 0; j < m; j++)
        op_store(e->out, dt, j, acc[j]);
    lm_free(&mem, acc, bytes);
    return LOOM_OK;
}

void op_format_reduce(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    const int64_t *a = ir_attrs(g, n);
    op_catf(buf, size, "axes=");
    for (int i = 0, first = 1; i < LOOM_MAX_RANK; i++)
        if (op_axis_in((uint32_t)a[0], i)) {
            op_catf(buf, size, first ? "%d" : ",%d", i);
            first = 0;
        }
    if (a[1])
        op_catf(buf, size, " keepdim");
}

void op_vjp_extremum(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx, int win_op)
{
    ir_id a = ir_src(g, n, 0), b = ir_src(g, n, 1);
    ir_id wa = op_add(g, op_binary(g, win_op, a, b), op_muls(g, op_binary(g, OP_EQ, a, b), 0.5));
    ir_id da = op_mul(g, dy, wa);
    if (need[0])
        dx[0] = da;
    if (need[1])
        dx[1] = op_sub(g, dy, da);
}
