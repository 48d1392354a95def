/*
 * pad — XLA's pad: lo elements before, hi after and interior elements
 * between neighbours on every axis, filled with a value. attrs: lo[r],
 * hi[r], interior[r], value as f64 bits. The gradient is a strided slice.
 */
#include "ops_impl.h"

static loom_code infer(op_infer *b)
{
    const loom_shape *s = op_in_shape(b, 0);
    int r = s->rank;
    if (b->nattr != (uint32_t)(3 * r + 1))
        return op_fail(b, LOOM_ERR_ARG, "%u attribute words for rank %d", b->nattr, r);
    loom_shape o = { .rank = r };
    for (int i = 0; i < r; i++) {
        int64_t lo = b->attrs[i], hi = b->attrs[r + i], in = b->attrs[2 * r + i];
        if (lo < 0 || hi < 0 || in < 0 || lo > ((int64_t)1 << 40) || hi > ((int64_t)1 << 40) ||
            in > ((int64_t)1 << 20))
            return op_fail(b, LOOM_ERR_ARG, "axis %d: padding %lld/%lld/%lld out of range", i,
                           (long long)lo, (long long)hi, (long long)in);
        o.d[i] = lo + hi + s->d[i] + (s->d[i] > 0 ? (s->d[i] - 1) * in : 0);
    }
    b->dtype = op_in_dtype(b, 0);
    b->shape = o;
    return LOOM_OK;
}

static loom_code ref(const op_exec *e)
{
    ir_id x = ir_src(e->g, e->n, 0);
    const loom_shape *s = ir_shape(e->g, x), *o = ir_shape(e->g, e->n);
    const int64_t *a = ir_attrs(e->g, e->n);
    int r = s->rank;
    loom_dtype dt = ir_dtype(e->g, e->n);
    int64_t on = loom_shape_numel(*o), in_n = loom_shape_numel(*s);
    double v = ir_a2f(a[3 * r]);
    for (int64_t i = 0; i < on; i++)
        op_store(e->out, dt, i, v);
    /* scatter every input element to its place */
    int64_t ost[LOOM_MAX_RANK], ist[LOOM_MAX_RANK];
    op_strides(o, ost);
    op_strides(s, ist);
    size_t es = loom_dtype_size(dt);
    for (int64_t i = 0; i < in_n; i++) {
        int64_t off = 0;
        for (int k = 0; k < r; k++)
            off += (a[k] + (i / ist[k]) % s->d[k] * (a[2 * r + k] + 1)) * ost[k];
        memcpy((char *)e->out + (size_t)off * es, (const char *)e->in[0] + (size_t)i * es, es);
    }
    return LOOM_OK;
}

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    if (!need[0])
        return;
    ir_id x = ir_src(g, n, 0);
    loom_shape xs = ir_shapev(g, x);
    if (loom_shape_numel(xs) == 0)
        return;
    const int64_t *a = ir_attrs(g, n);
    int r = xs.rank;
    int64_t start[LOOM_MAX_RANK], stop[LOOM_MAX_RANK], step[LOOM_MAX_RANK];
    for (int i = 0; i < r; i++) {
        start[i] = a[i];
        step[i] = a[2 * r + i] + 1;
        stop[i] = start[i] + (xs.d[i] - 1) * step[i] + 1;
    }
    dx[0] = op_slice(g, dy, start, stop, step);
}

static void format(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    const int64_t *a = ir_attrs(g, n);
    int r = (int)(ir_nattr(g, n) - 1) / 3;
    for (int i = 0; i < r; i++) {
        op_catf(buf, size, "%s%lld:%lld", i ? "," : "", (long long)a[i], (long long)a[r + i]);
        if (a[2 * r + i])
            op_catf(buf, size, ":%lld", (long long)a[2 * r + i]);
    }
    op_catf(buf, size, " value=%g", ir_a2f(a[3 * r]));
}

static ir_id check(op_check *c)
{
    ir_graph *g = op_check_graph(c);
    loom_shape s = op_check_shape(c, 1, 3);
    int64_t lo[LOOM_MAX_RANK], hi[LOOM_MAX_RANK], in[LOOM_MAX_RANK];
    for (int i = 0; i < s.rank; i++) {
        lo[i] = op_check_int(c, 0, 2);
        hi[i] = op_check_int(c, 0, 2);
        in[i] = op_check_int(c, 0, 1);
    }
    ir_id y = op_pad(g, op_check_input_new(c, s, -2, 2), lo, hi, in, 0.5);
    return op_mul(g, y, y);
}

const op_def op_def_pad = {
    .name = "pad",
    .kind = OPK_MOVE,
    .flags = OPF_DIFF,
    .nsrc = 1,
    .nattr = -1,
    .infer = infer,
    .vjp = vjp,
    .ref = ref,
    .format = format,
    .check = check,
};
