/*
 * slice — x[start:stop:step] on every axis. attrs: start[r], stop[r],
 * step[r] with 0 <= start <= stop <= dim and step >= 1. The gradient is
 * a pad with interior padding step - 1.
 */
#include "ops_impl.h"

static loom_code infer(op_infer *b)
{
    const loom_shape *s = op_in_shape(b, 0);
    int r = s->rank;
    if (b->nattr != (uint32_t)(3 * r))
        return op_fail(b, LOOM_ERR_ARG, "%u attribute words for rank %d", b->nattr, r);
    loom_shape o = { .rank = r };
    for (int i = 0; i < r; i++) {
        int64_t start = b->attrs[i], stop = b->attrs[r + i], step = b->attrs[2 * r + i];
        if (start < 0 || stop < start || stop > s->d[i] || step < 1)
            return op_fail(b, LOOM_ERR_ARG, "axis %d: [%lld:%lld:%lld] is not a slice of %lld", i,
                           (long long)start, (long long)stop, (long long)step, (long long)s->d[i]);
        o.d[i] = (stop - start + step - 1) / step;
    }
    b->dtype = op_in_dtype(b, 0);
    b->shape = o;
    return LOOM_OK;
}

static loom_code ref(const op_exec *e)
{
    const loom_shape *s = ir_shape(e->g, ir_src(e->g, e->n, 0));
    const int64_t *a = ir_attrs(e->g, e->n);
    int r = s->rank;
    int64_t st[LOOM_MAX_RANK], base = 0;
    op_strides(s, st);
    for (int i = 0; i < r; i++) {
        base += a[i] * st[i];
        st[i] *= a[2 * r + i];
    }
    op_copy_strided(e->out, e->in[0], ir_dtype(e->g, e->n), ir_shape(e->g, e->n), base, st);
    return LOOM_OK;
}

static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    if (!need[0])
        return;
    ir_id x = ir_src(g, n, 0);
    loom_shape xs = ir_shapev(g, x), ys = ir_shapev(g, n);
    if (loom_shape_numel(ys) == 0) {
        dx[0] = op_const_like(g, x, 0.0);
        return;
    }
    const int64_t *a = ir_attrs(g, n);
    int r = xs.rank;
    int64_t lo[LOOM_MAX_RANK], hi[LOOM_MAX_RANK], in[LOOM_MAX_RANK];
    for (int i = 0; i < r; i++) {
        int64_t start = a[i], step = a[2 * r + i];
        lo[i] = start;
        in[i] = step - 1;
        hi[i] = xs.d[i] - (start + (ys.d[i] - 1) * step + 1);
    }
    dx[0] = op_pad(g, dy, lo, hi, in, 0.0);
}

static void format(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    const int64_t *a = ir_attrs(g, n);
    int r = (int)ir_nattr(g, n) / 3;
    for (int i = 0; i < r; i++) {
        op_catf(buf, size, "%s%lld:%lld", i ? "," : "", (long long)a[i], (long long)a[r + i]);
        if (a[2 * r + i] != 1)
            op_catf(buf, size, ":%lld", (long long)a[2 * r + i]);
    }
}

static ir_id check(op_check *c)
{
    ir_graph *g = op_check_graph(c);
    loom_shape s = op_check_shape(c, 1, 3);
    for (int i = 0; i < s.rank; i++)
        s.d[i] += 2;
    int64_t start[LOOM_MAX_RANK], stop[LOOM_MAX_RANK], step[LOOM_MAX_RANK];
    for (int i = 0; i < s.rank; i++) {
        start[i] = op_check_int(c, 0, (int)s.d[i] - 1);
        stop[i] = op_check_int(c, (int)start[i] + 1, (int)s.d[i]);
        step[i] = op_check_int(c, 1, 2);
    }
    ir_id y = op_slice(g, op_check_input_new(c, s, -2, 2), start, stop, step);
    return op_mul(g, y, y);
}

const op_def op_def_slice = {
    .name = "slice",
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
