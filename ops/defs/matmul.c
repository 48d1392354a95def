/*
 * matmul — batched a [..., M, K] · b [..., K, N] -> [..., M, N], with
 * either operand transposed in its last two axes. attrs: [trans_a,
 * trans_b]. Batch dims must be equal (the frontend broadcasts or
 * flattens). The reference accumulates in f64. The VJP is two matmuls
 * whose transpose flags absorb every transpose, so no copy is built.
 */
#include "ops_impl.h"

static loom_code infer(op_infer *b)
{
    const loom_shape *sa = op_in_shape(b, 0), *sb = op_in_shape(b, 1);
    bool ta = b->attrs[0] != 0, tb = b->attrs[1] != 0;
    if (op_in_dtype(b, 0) != op_in_dtype(b, 1))
        return op_fail(b, LOOM_ERR_DTYPE, "operand dtypes differ");
    if (op_in_dtype(b, 0) == LOOM_I32)
        return op_fail(b, LOOM_ERR_DTYPE, "takes f32 or f64, not i32");
    if (sa->rank < 2 || sa->rank != sb->rank)
        return op_fail(b, LOOM_ERR_SHAPE, "operands must have one rank >= 2");
    int r = sa->rank;
    for (int i = 0; i < r - 2; i++)
        if (sa->d[i] != sb->d[i])
            return op_fail(b, LOOM_ERR_SHAPE, "batch dimension %d differs", i);
    int64_t m = ta ? sa->d[r - 1] : sa->d[r - 2], ka = ta ? sa->d[r - 2] : sa->d[r - 1];
    int64_t kb = tb ? sb->d[r - 1] : sb->d[r - 2], n = tb ? sb->d[r - 2] : sb->d[r - 1];
    if (ka != kb)
        return op_fail(b, LOOM_ERR_SHAPE, "inner dimensions differ (%lld vs %lld)", (long long)ka,
                       (long long)kb);
    loom_shape o = *sa;
    o.d[r - 2] = m;
    o.d[r - 1] = n;
    b->dtype = op_in_dtype(b, 0);
    b->shape = o;
    return LOOM_OK;
}

#define MATMUL_REF(T)                                                                     \
    for (int64_t p = 0; p < batch; p++) {                                                 \
        const T *A = (const T *)e->in[0] + p * m * k, *B = (const T *)e->in[1] + p * k * n; \
        T *C = (T *)e->out + p * m * n;                                                    \
        for (int64_t i = 0; i < m; i++)                                                    \
            for (int64_t j = 0; j < n; j++) {                                              \
                double acc = 0;                                                            \
                for (int64_t l = 0; l < k; l++)                                            \
                    acc += (double)A[ta ? l * m + i : i * k + l] * (double)B[tb ? j * k + l : l * n + j]; \
                C[i * n + j] = (T)acc;                                                     \
            }                                                                              \
    }

static loom_code ref(const op_exec *e)
{
    const loom_shape *sa = ir_shape(e->g, ir_src(e->g, e->n, 0)), *o = ir_shape(e->g, e->n);
    bool ta = ir_attrs(e->g, e->n)[0] != 0, tb = ir_attrs(e->g, e->n)[1] != 0;
    int r = o->rank;
    int64_t m = o->d[r - 2], n = o->d[r - 1], k = ta ? sa->d[r - 2] : sa->d[r - 1], batch = 1;
    for (int i = 0; i < r - 2; i++)
        batch *= o->d[i];
    if (ir_dtype(e->g, e->n) == LOOM_F32)
        MATMUL_REF(float)
    else
        MATMUL_REF(double)
    return LOOM_OK;
}

/* With C = op(A) op(B) and op(X) = X or X^T:
 *   dA = dC op(B)^T  (transposed back when A was),  dB = op(A)^T dC (likewise). */
static void vjp(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx)
{
    ir_id a = ir_src(g, n, 0), b = ir_src(g, n, 1);
    bool ta = ir_attrs(g, n)[0] != 0, tb = ir_attrs(g, n)[1] != 0;
    if (need[0])
        dx[0] = ta ? op_matmul(g, b, dy, tb, true) : op_matmul(g, dy, b, false, !tb);
    if (need[1])
        dx[1] = tb ? op_matmul(g, dy, a, true, ta) : op_matmul(g, a, dy, !ta, false);
}

static void format(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    const int64_t *a = ir_attrs(g, n);
    op_catf(buf, size, "%s%s", a[0] ? "aT" : "a", a[1] ? " bT" : " b");
}

static ir_id check(op_check *c)
{
    ir_graph *g = op_check_graph(c);
    int nb = op_check_int(c, 0, 2);
    int64_t m = op_check_int(c, 1, 4), k = op_check_int(c, 1, 4), n = op_check_int(c, 1, 4);
    bool ta = op_check_int(c, 0, 1), tb = op_check_int(c, 0, 1);
    loom_shape sa = { .rank = nb + 2 }, sb = { .rank = nb + 2 };
    for (int i = 0; i < nb; i++)
        sa.d[i] = sb.d[i] = op_check_int(c, 1, 3);
    sa.d[nb] = ta ? k : m;
    sa.d[nb + 1] = ta ? m : k;
    sb.d[nb] = tb ? n : k;
    sb.d[nb + 1] = tb ? k : n;
    ir_id a = op_check_input_new(c, sa, -1, 1), b = op_check_input_new(c, sb, -1, 1);
    ir_id y = op_matmul(g, a, b, ta, tb);
    return op_mul(g, y, y);
}

const op_def op_def_matmul = {
    .name = "matmul",
    .kind = OPK_MATMUL,
    .flags = OPF_DIFF | OPF_FLOAT,
    .nsrc = 2,
    .nattr = 2,
    .infer = infer,
    .vjp = vjp,
    .ref = ref,
    .format = format,
    .check = check,
};
