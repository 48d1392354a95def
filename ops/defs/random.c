/*
 * random — uniform [0,1), standard normal, or bernoulli(p) 1/0 values from
 * Philox4x32-10. Operand: key, i32 [4] = {seed lo, seed hi, run lo, run hi}
 * (fed at run time, so each run draws anew without recompiling). attrs:
 * [kind, stream, p as f64 bits]; the stream separates the random ops of
 * one tape. Element i uses counter (i, stream, run lo, run hi).
 */
#include "ops_impl.h"
#include "philox.h"

static loom_code infer(op_infer *b)
{
    loom_code c = op_infer_source(b);
    if (c != LOOM_OK)
        return c;
    const loom_shape *k = op_in_shape(b, 0);
    if (op_in_dtype(b, 0) != LOOM_I32 || k->rank != 1 || k->d[0] != 4)
        return op_fail(b, LOOM_ERR_SHAPE, "the key must be i32[4]");
    int64_t kind = b->attrs[0];
    double p = ir_a2f(b->attrs[2]);
    if (kind < RANDOM_UNIFORM || kind > RANDOM_BERNOULLI)
        return op_fail(b, LOOM_ERR_ARG, "unknown distribution %lld", (long long)kind);
    if (b->attrs[1] < 0 || b->attrs[1] > UINT32_MAX)
        return op_fail(b, LOOM_ERR_ARG, "stream %lld out of range", (long long)b->attrs[1]);
    if (!(p >= 0 && p <= 1))
        return op_fail(b, LOOM_ERR_ARG, "probability %g is not in [0, 1]", p);
    if (loom_shape_numel(b->shape) > (int64_t)UINT32_MAX)
        return op_fail(b, LOOM_ERR_SHAPE, "more than 2^32 elements in one random op");
    return LOOM_OK;
}

static loom_code ref(const op_exec *e)
{
    const int32_t *key = e->in[0];
    const int64_t *a = ir_attrs(e->g, e->n);
    int kind = (int)a[0];
    uint32_t stream = (uint32_t)a[1];
    double p = ir_a2f(a[2]);
    /* bernoulli: word < p * 2^32; p = 1 must always pass */
    uint64_t thr = (uint64_t)(p * 4294967296.0);
    loom_dtype dt = ir_dtype(e->g, e->n);
    int64_t n = ir_numel(e->g, e->n);
    for (int64_t i = 0; i < n; i++) {
        philox4 r = philox_element(key, stream, (uint32_t)i);
        double v;
        if (kind == RANDOM_UNIFORM)
            v = dt == LOOM_F32 ? (double)(r.v[0] >> 8) * 0x1p-24
                               : (double)(((uint64_t)r.v[0] << 21) ^ (r.v[1] >> 11)) * 0x1p-53;
        else if (kind == RANDOM_NORMAL) {
            double u1 = ((double)r.v[0] + 1.0) * 0x1p-32; /* (0, 1] */
            double u2 = (double)r.v[1] * 0x1p-32;
            v = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        } else
            v = (uint64_t)r.v[0] < thr ? 1.0 : 0.0;
        op_store(e->out, dt, i, v);
    }
    return LOOM_OK;
}

static void format(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    static const char *const kinds[] = { "uniform", "normal", "bernoulli" };
    const int64_t *a = ir_attrs(g, n);
    op_catf(buf, size, "%s stream=%lld", kinds[a[0] % 3], (long long)a[1]);
    if (a[0] == RANDOM_BERNOULLI)
        op_catf(buf, size, " p=%g", ir_a2f(a[2]));
}

static kx_val lower(kx *k, const kx_node *nd, const kx_val *in)
{
    const int64_t *a = nd->attrs;
    return k->random(k, in[0], (int)a[0], (uint32_t)a[1], ir_a2f(a[2]));
}

const op_def op_def_random = {
    .name = "random",
    .kind = OPK_SOURCE,
    .flags = OPF_FLOAT,
    .nsrc = 1,
    .nattr = 3,
    .lower = lower,
    .infer = infer,
    .ref = ref,
    .format = format,
};
