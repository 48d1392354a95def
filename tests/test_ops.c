/*
 * test_ops.c — the ops layer: forward values of every primitive op in
 * ops.def against hand-computed or libm values (through the public API,
 * in f32, f64 and i32 where the op takes it), a coverage check that fails
 * when an op in the list has no forward test, the error contract (status
 * code plus a message naming the function and the shapes), and the
 * reference executor at node level.
 *
 * It is not a gradient test (test_autograd.c walks the op list for that)
 * and it checks no compiled code: the reference executor is the oracle
 * here, the thing being checked.
 */
#include <stdlib.h>

#include "testutil.h"

#include "fe.h"

static const loom_dtype DTS[3] = { LOOM_F32, LOOM_F64, LOOM_I32 }; /* the first 2 are floats */

/* ---- Helpers ----------------------------------------------------- */

/* Which ops the forward tests have run. Each forward test marks every op
 * on its tape after a successful run; the last test of the table checks
 * that no op of ops.def was left out. */
static bool op_seen[OP_COUNT];

static void mark_tape(loom_ctx *ctx)
{
    ir_graph *g = ctx->g;
    for (ir_id n = 1; n <= ir_last(g); n++)
        op_seen[ir_op(g, n)] = true;
}

/* Writes v as n elements of dt into buf (converted as C converts);
 * returns the byte count, for loom_feed and loom_param_set. */
static size_t fill(void *buf, loom_dtype dt, const double *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (dt == LOOM_F32)
            ((float *)buf)[i] = (float)v[i];
        else if (dt == LOOM_F64)
            ((double *)buf)[i] = v[i];
        else
            ((int32_t *)buf)[i] = (int32_t)v[i];
    }
    return (size_t)n * loom_dtype_size(dt);
}

/* A tensor of dtype dt holding v. */
static loom_t tensor(loom_ctx *ctx, loom_dtype dt, loom_shape s, const double *v)
{
    int64_t n = loom_shape_numel(s);
    void *buf = malloc((size_t)(n ? n : 1) * 8); /* [n] of dt */
    fill(buf, dt, v, n);
    loom_t t = loom_tensor(ctx, dt, s, buf);
    free(buf);
    return t;
}

static void compare(loom_dtype dt, const void *got, const double *want, int64_t n, const char *what)
{
    char label[200];
    snprintf(label, sizeof label, "%s [%s]", what, loom_dtype_name(dt));
    if (dt == LOOM_F32)
        tu_assert_close_f(got, want, (size_t)n, 1e-6, label);
    else if (dt == LOOM_F64)
        tu_assert_close(got, want, (size_t)n, 1e-12, label);
    else
        for (int64_t i = 0; i < n; i++)
            if (((const int32_t *)got)[i] != (int32_t)want[i])
                fail_msg("%s: element %lld is %d, expected %d", label, (long long)i,
                         ((const int32_t *)got)[i], (int32_t)want[i]);
}

/* Evaluates y, marks the tape's ops as covered, then checks y's shape and
 * values (exact for i32, relative 1e-6 for f32, 1e-12 for f64). */
static void expect(loom_ctx *ctx, loom_t y, loom_shape s, const double *want, const char *what)
{
    if (loom_failed(ctx))
        fail_msg("%s: building failed: %s", what, loom_errmsg(ctx));
    if (loom_eval(ctx, 1, &y) != LOOM_OK)
        fail_msg("%s: run failed: %s", what, loom_errmsg(ctx));
    mark_tape(ctx);
    loom_shape got = loom_shape_of(ctx, y);
    if (!loom_shape_equal(got, s)) {
        char a[160], b[160];
        fail_msg("%s: shape %s, expected %s", what, loom_shape_str(got, -1, a, sizeof a),
                 loom_shape_str(s, -1, b, sizeof b));
    }
    const void *p = loom_data(ctx, y);
    assert_non_null(p);
    compare(loom_dtype_of(ctx, y), p, want, loom_shape_numel(s), what);
}

/* Most tests get a fresh context from the fixture; loops over dtypes
 * start each round with loom_reset (parameters survive it, so theirs are
 * unnamed). */
static int ctx_setup(void **state)
{
    *state = loom_ctx_new(NULL);
    return *state ? 0 : -1;
}

static int ctx_teardown(void **state)
{
    loom_ctx_free(*state);
    return 0;
}

/* 0, 1, 2 ... n-1 */
static void ramp(double *v, int n)
{
    for (int i = 0; i < n; i++)
        v[i] = i;
}

/* ---- Sources: const, input, param, iota -------------------------- */

static void test_const_full_and_scalar(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 3; k++) {
        loom_reset(ctx);
        double v = DTS[k] == LOOM_I32 ? -7 : 0.1, want[6];
        for (int i = 0; i < 6; i++)
            want[i] = DTS[k] == LOOM_F32 ? (double)(float)v : v;
        expect(ctx, loom_full(ctx, DTS[k], LOOM_SHAPE(2, 3), v), LOOM_SHAPE(2, 3), want, "full");
        expect(ctx, loom_scalar(ctx, DTS[k], v), LOOM_SCALAR, want, "scalar");
        assert_true(loom_item(ctx, loom_scalar(ctx, DTS[k], v)) == want[0]);
    }
}

/* An input takes each feed; a parameter starts at zero and is read by
 * any op that uses it. */
static void test_input_and_param_values(void **state)
{
    loom_ctx *ctx = *state;
    double a[4] = { 1, -2, 3, 4 }, b[4] = { 40, 50, -60, 0.5 }, a2[4] = { 2, -4, 6, 8 }, z[4] = { 0 };
    char buf[32];
    for (int k = 0; k < 3; k++) {
        loom_reset(ctx);
        loom_dtype dt = DTS[k];
        loom_t x = loom_input(ctx, "x", dt, LOOM_SHAPE(2, 2));
        assert_int_equal(loom_feed(ctx, x, buf, fill(buf, dt, a, 4)), LOOM_OK);
        expect(ctx, x, LOOM_SHAPE(2, 2), a, "input fed once");
        assert_int_equal(loom_feed(ctx, x, buf, fill(buf, dt, b, 4)), LOOM_OK);
        expect(ctx, x, LOOM_SHAPE(2, 2), b, "input fed again");
        loom_t p = loom_param(ctx, NULL, dt, LOOM_SHAPE(2, 2));
        expect(ctx, loom_muls(ctx, p, 2), LOOM_SHAPE(2, 2), z, "fresh param * 2");
        assert_int_equal(loom_param_set(ctx, p, buf, fill(buf, dt, a, 4)), LOOM_OK);
        expect(ctx, loom_muls(ctx, p, 2), LOOM_SHAPE(2, 2), a2, "param * 2");
        compare(dt, loom_data(ctx, p), a, 4, "param storage");
    }
}

static void test_iota_along_each_axis(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 3; k++) {
        loom_reset(ctx);
        loom_dtype dt = DTS[k];
        double a0[6] = { 0, 0, 0, 1, 1, 1 }, a1[6] = { 0, 1, 2, 0, 1, 2 };
        expect(ctx, loom_iota(ctx, dt, LOOM_SHAPE(2, 3), 0), LOOM_SHAPE(2, 3), a0, "iota axis 0");
        expect(ctx, loom_iota(ctx, dt, LOOM_SHAPE(2, 3), 1), LOOM_SHAPE(2, 3), a1, "iota axis 1");
        expect(ctx, loom_iota(ctx, dt, LOOM_SHAPE(2, 3), -2), LOOM_SHAPE(2, 3), a0, "iota axis -2");
        double w[24]; /* element i of [2,3,4] is at (i / 12, i / 4 % 3, i % 4) */
        for (int axis = 0; axis < 3; axis++) {
            for (int i = 0; i < 24; i++)
                w[i] = axis == 0 ? i / 12 : axis == 1 ? i / 4 % 3 : i % 4;
            expect(ctx, loom_iota(ctx, dt, LOOM_SHAPE(2, 3, 4), axis), LOOM_SHAPE(2, 3, 4), w, "iota");
        }
    }
}

/* ---- Random ------------------------------------------------------ */

enum { NRAND = 100000 };

/* Element i of a random f32 or f64 output, as a double. */
static double at(const void *p, loom_dtype dt, int i)
{
    return dt == LOOM_F32 ? ((const float *)p)[i] : ((const double *)p)[i];
}

static void test_random_distributions(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 2; k++) {
        loom_dtype dt = DTS[k];
        loom_reset(ctx);
        loom_t t[5] = {
            loom_rand_uniform(ctx, dt, LOOM_SHAPE(NRAND)),
            loom_rand_normal(ctx, dt, LOOM_SHAPE(100, NRAND / 100)),
            loom_rand_bernoulli(ctx, dt, LOOM_SHAPE(NRAND), 0.3),
            loom_rand_bernoulli(ctx, dt, LOOM_SHAPE(NRAND), 0.0),
            loom_rand_bernoulli(ctx, dt, LOOM_SHAPE(NRAND), 1.0),
        };
        TU_OK(ctx);
        assert_int_equal(loom_eval(ctx, 5, t), LOOM_OK);
        mark_tape(ctx);
        for (int r = 0; r < 5; r++) {
            const void *p = loom_data(ctx, t[r]);
            double s = 0, s2 = 0, lo = INFINITY, hi = -INFINITY;
            for (int i = 0; i < NRAND; i++) {
                double v = at(p, dt, i);
                s += v;
                s2 += v * v;
                lo = fmin(lo, v);
                hi = fmax(hi, v);
                if (r >= 2 && v != 0.0 && v != 1.0)
                    fail_msg("bernoulli element %d is %g", i, v);
            }
            double mean = s / NRAND, sd = sqrt(s2 / NRAND - mean * mean);
            static const double want_mean[5] = { 0.5, 0, 0.3, 0, 1 };
            static const double want_sd[5] = { 0.28867513459481287, 1, 0.458257569495584, 0, 0 };
            if (!(fabs(mean - want_mean[r]) < 0.02 && fabs(sd - want_sd[r]) < 0.02))
                fail_msg("random #%d (%s): mean %g, sd %g; expected %g, %g", r, loom_dtype_name(dt),
                         mean, sd, want_mean[r], want_sd[r]);
            if (r == 0)
                assert_true(lo >= 0.0 && hi < 1.0);
            if (r == 1)
                assert_true(lo < -3.0 && hi > 3.0); /* the tails are there */
        }
    }
}

/* A random op's values are a function of the seed, its place on the tape
 * and the run counter, which loom_eval advances like loom_run. */
static void test_random_reproducible_by_seed_and_run(void **state)
{
    (void)state;
    enum { N = 256 };
    loom_options o = { .seed = 0x5eed1234abcdull }, o2 = { .seed = 0x5eed1234abceull };
    loom_ctx *c[3] = { loom_ctx_new(&o), loom_ctx_new(&o), loom_ctx_new(&o2) };
    loom_t u[3], v[3];
    double run0[N], run1[N];
    for (int i = 0; i < 3; i++) {
        u[i] = loom_rand_uniform(c[i], LOOM_F64, LOOM_SHAPE(N));
        v[i] = loom_rand_normal(c[i], LOOM_F32, LOOM_SHAPE(N));
        loom_t outs[2] = { u[i], v[i] };
        assert_int_equal(loom_eval(c[i], 2, outs), LOOM_OK);
        mark_tape(c[i]);
        if (i == 0)
            memcpy(run0, loom_data(c[0], u[0]), sizeof run0);
        if (i < 2) /* c[1] runs once more */
            assert_int_equal(loom_eval(c[i], 2, outs), LOOM_OK);
    }
    /* c[0] and c[1], same seed: run 1 agrees bit for bit */
    memcpy(run1, loom_data(c[0], u[0]), sizeof run1);
    assert_memory_equal(loom_data(c[1], u[1]), run1, sizeof run1);
    assert_memory_equal(loom_data(c[1], v[1]), loom_data(c[0], v[0]), N * sizeof(float));
    /* a new run, another seed, another op of the tape: other numbers */
    const double *other_seed = loom_data(c[2], u[2]);
    int same_run = 0, same_seed = 0;
    for (int i = 0; i < N; i++) {
        same_run += run0[i] == run1[i];
        same_seed += other_seed[i] == run0[i];
    }
    assert_int_equal(same_run, 0);
    assert_int_equal(same_seed, 0);
    loom_t w = loom_rand_uniform(c[0], LOOM_F64, LOOM_SHAPE(N)); /* the next stream */
    loom_t outs[2] = { u[0], w };
    assert_int_equal(loom_eval(c[0], 2, outs), LOOM_OK);
    const double *pu = loom_data(c[0], u[0]), *pw = loom_data(c[0], w);
    for (int i = 0; i < N; i++)
        assert_true(pu[i] != pw[i]);
    for (int i = 0; i < 3; i++)
        loom_ctx_free(c[i]);
}

/* ---- Elementwise unary ------------------------------------------- */

static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

typedef struct unary_case {
    const char *name;
    loom_t (*fn)(loom_ctx *, loom_t);
    double (*ref)(double); /* libm; NULL: want[] is written out */
    double x[6];           /* exact in f32 */
    double want[6];
} unary_case;

static const unary_case unary_cases[] = {
    { "neg", loom_neg, NULL, { -2, -0.5, 0, 0.25, 1.5, 3 }, { 2, 0.5, 0, -0.25, -1.5, -3 } },
    { "exp", loom_exp, exp, { -2, -0.5, 0, 0.25, 1.5, 3 }, { 0 } },
    { "log", loom_log, log, { 0.25, 0.5, 1, 2, 3, 10 }, { 0 } },
    { "log1p", loom_log1p, log1p, { -0.5, -0.25, 0, 0x1p-20, 1, 3 }, { 0 } },
    { "tanh", loom_tanh, tanh, { -3, -0.5, 0, 0.25, 1.5, 20 }, { 0 } },
    { "sigmoid", loom_sigmoid, ref_sigmoid, { -30, -0.5, 0, 0.25, 1.5, 30 }, { 0 } },
    { "sqrt", loom_sqrt, NULL, { 0, 0.25, 1, 2.25, 9, 100 }, { 0, 0.5, 1, 1.5, 3, 10 } },
    { "recip", loom_recip, NULL, { -4, -0.5, 0.25, 1, 2, 8 }, { -0.25, -2, 4, 1, 0.5, 0.125 } },
    { "relu", loom_relu, NULL, { -2, -0.5, 0, 0.25, 1.5, 3 }, { 0, 0, 0, 0.25, 1.5, 3 } },
    { "abs", loom_abs, NULL, { -2, -0.5, 0, 0.25, 1.5, 3 }, { 2, 0.5, 0, 0.25, 1.5, 3 } },
    { "sign", loom_sign, NULL, { -2, -0.5, 0, 0.25, 1.5, 3 }, { -1, -1, 0, 1, 1, 1 } },
    { "sin", loom_sin, sin, { -2, -0.5, 0, 0.25, 1.5, 3 }, { 0 } },
    { "cos", loom_cos, cos, { -2, -0.5, 0, 0.25, 1.5, 3 }, { 0 } },
    { "detach", loom_detach, NULL, { -2, -0.5, 0, 0.25, 1.5, 3 }, { -2, -0.5, 0, 0.25, 1.5, 3 } },
};

static void test_unary_float_values(void **state)
{
    loom_ctx *ctx = *state;
    for (size_t c = 0; c < LM_ARRAY_LEN(unary_cases); c++) {
        const unary_case *u = &unary_cases[c];
        double want[6];
        for (int i = 0; i < 6; i++)
            want[i] = u->ref ? u->ref(u->x[i]) : u->want[i];
        for (int k = 0; k < 2; k++) {
            loom_reset(ctx);
            loom_t x = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3), u->x);
            loom_t y = u->fn(ctx, x);
            assert_int_equal(loom_dtype_of(ctx, y), DTS[k]);
            expect(ctx, y, LOOM_SHAPE(2, 3), want, u->name);
        }
    }
}

/* neg, abs, sign, relu and detach also take i32; so does a scalar. */
static void test_unary_i32_values(void **state)
{
    loom_ctx *ctx = *state;
    double x[5] = { -7, -1, 0, 2, 2147483647 };
    loom_t t = tensor(ctx, LOOM_I32, LOOM_SHAPE(5), x);
    double neg[5] = { 7, 1, 0, -2, -2147483647 }, abs_[5] = { 7, 1, 0, 2, 2147483647 };
    double sign[5] = { -1, -1, 0, 1, 1 }, relu[5] = { 0, 0, 0, 2, 2147483647 };
    expect(ctx, loom_neg(ctx, t), LOOM_SHAPE(5), neg, "neg i32");
    expect(ctx, loom_abs(ctx, t), LOOM_SHAPE(5), abs_, "abs i32");
    expect(ctx, loom_sign(ctx, t), LOOM_SHAPE(5), sign, "sign i32");
    expect(ctx, loom_relu(ctx, t), LOOM_SHAPE(5), relu, "relu i32");
    expect(ctx, loom_detach(ctx, t), LOOM_SHAPE(5), x, "detach i32");
    double s[1] = { 0.75 }, e[1] = { exp(0.75) };
    expect(ctx, loom_exp(ctx, tensor(ctx, LOOM_F64, LOOM_SCALAR, s)), LOOM_SCALAR, e, "exp scalar");
}

static void test_cast_conversions(void **state)
{
    loom_ctx *ctx = *state;
    /* f64 -> i32 truncates toward zero (and saturates) */
    double f[7] = { -2.7, -0.5, 0.5, 2.9, 7, -1e10, 3e9 };
    double fi[7] = { -2, 0, 0, 2, 7, -2147483648.0, 2147483647 };
    loom_t x = tensor(ctx, LOOM_F64, LOOM_SHAPE(7), f);
    loom_t y = loom_cast(ctx, x, LOOM_I32);
    assert_int_equal(loom_dtype_of(ctx, y), LOOM_I32);
    expect(ctx, y, LOOM_SHAPE(7), fi, "cast f64 -> i32");
    /* i32 -> f32 rounds to nearest (2^24 + 1 is not an f32) */
    double i[4] = { -3, 0, 7, 16777217 }, i_f32[4] = { -3, 0, 7, 16777216 };
    loom_t xi = tensor(ctx, LOOM_I32, LOOM_SHAPE(2, 2), i);
    loom_t yf = loom_cast(ctx, xi, LOOM_F32);
    expect(ctx, yf, LOOM_SHAPE(2, 2), i_f32, "cast i32 -> f32");
    assert_true(((const float *)loom_data(ctx, yf))[3] == 16777216.0f); /* exactly */
    expect(ctx, loom_cast(ctx, xi, LOOM_F64), LOOM_SHAPE(2, 2), i, "cast i32 -> f64");
    /* f32 -> f64 is exact; f64 -> f32 rounds */
    double tenth[1] = { 0.1 }, tenth_f[1] = { (double)0.1f };
    loom_t t32 = tensor(ctx, LOOM_F32, LOOM_SHAPE(1), tenth);
    expect(ctx, loom_cast(ctx, t32, LOOM_F64), LOOM_SHAPE(1), tenth_f, "cast f32 -> f64");
    loom_t t64 = tensor(ctx, LOOM_F64, LOOM_SHAPE(1), tenth);
    expect(ctx, loom_cast(ctx, loom_cast(ctx, t64, LOOM_F32), LOOM_F64), LOOM_SHAPE(1), tenth_f,
           "cast f64 -> f32 -> f64"); /* 0.1f is 1.5e-9 off 0.1: well outside 1e-12 */
}

/* after(x, dep) is x in every dtype, whatever dep's dtype (it orders
 * only); it is a node of its own (no folding into x), and the JIT and the
 * reference agree. Not public: built at node level on the tape, as
 * gradient checkpointing builds it. */
static void test_after_is_x_ordered_after_dep(void **state)
{
    (void)state;
    double x[6] = { -2, -0.5, 0, 0.25, 1.5, 3 }, d[1] = { 7 };
    for (int be = 0; be < 2; be++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .backend = be ? LOOM_BACKEND_REFERENCE : LOOM_BACKEND_JIT });
        for (int k = 0; k < 3; k++) {
            loom_reset(ctx);
            loom_t xt = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3), x);
            loom_t dep = loom_muls(ctx, tensor(ctx, DTS[(k + 1) % 2], LOOM_SHAPE(1), d), 2);
            TU_OK(ctx);
            ir_id n = op_after(ctx->g, fe_node(ctx, xt, "test", 1), fe_node(ctx, dep, "test", 2));
            loom_t y = fe_handle(ctx, n);
            assert_true(n != fe_node(ctx, xt, "test", 1));
            assert_int_equal(loom_dtype_of(ctx, y), DTS[k]);
            expect(ctx, y, LOOM_SHAPE(2, 3), x, be ? "after (reference)" : "after (jit)");
            /* and inside a fused expression */
            double twice[6];
            for (int i = 0; i < 6; i++)
                twice[i] = DTS[k] == LOOM_I32 ? 2 * (int)x[i] : 2 * x[i];
            expect(ctx, loom_add(ctx, y, xt), LOOM_SHAPE(2, 3), twice, "after + x");
        }
        /* the ordering operand must be one element */
        loom_reset(ctx);
        loom_t xt = tensor(ctx, LOOM_F32, LOOM_SHAPE(2, 3), x);
        assert_int_equal(op_after(ctx->g, fe_node(ctx, xt, "test", 1), fe_node(ctx, xt, "test", 1)), 0);
        tu_assert_error(ctx, LOOM_ERR_INTERNAL, "after", "one element");
        loom_ctx_free(ctx);
    }
}

/* ---- Elementwise binary and where -------------------------------- */

/* a [2,3] op b [3], b broadcast over rows:
 *   pairs (1,2) (-2,-2) (3,1) / (2,2) (0,-2) (-6,1)                    */
static const double bin_a[6] = { 1, -2, 3, 2, 0, -6 }, bin_b[3] = { 2, -2, 1 };

typedef struct binary_case {
    const char *name;
    loom_t (*fn)(loom_ctx *, loom_t, loom_t);
    bool int_ok;
    double want[6];
} binary_case;

static const binary_case binary_cases[] = {
    { "add", loom_add, true, { 3, -4, 4, 4, -2, -5 } },
    { "sub", loom_sub, true, { -1, 0, 2, 0, 2, -7 } },
    { "mul", loom_mul, true, { 2, 4, 3, 4, 0, -6 } },
    { "div", loom_div, false, { 0.5, 1, 3, 1, 0, -6 } },
    { "maximum", loom_maximum, true, { 2, -2, 3, 2, 0, 1 } },
    { "minimum", loom_minimum, true, { 1, -2, 1, 2, -2, -6 } },
    { "eq", loom_eq, true, { 0, 1, 0, 1, 0, 0 } },
    { "ne", loom_ne, true, { 1, 0, 1, 0, 1, 1 } },
    { "lt", loom_lt, true, { 1, 0, 0, 0, 0, 1 } },
    { "le", loom_le, true, { 1, 1, 0, 1, 0, 1 } },
    { "gt", loom_gt, true, { 0, 0, 1, 0, 1, 0 } },
    { "ge", loom_ge, true, { 0, 1, 1, 1, 1, 0 } },
};

static void test_binary_broadcast_row(void **state)
{
    loom_ctx *ctx = *state;
    for (size_t c = 0; c < LM_ARRAY_LEN(binary_cases); c++) {
        const binary_case *bc = &binary_cases[c];
        for (int k = 0; k < (bc->int_ok ? 3 : 2); k++) {
            loom_reset(ctx);
            loom_t a = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3), bin_a);
            loom_t b = tensor(ctx, DTS[k], LOOM_SHAPE(3), bin_b);
            loom_t y = bc->fn(ctx, a, b);
            assert_int_equal(loom_dtype_of(ctx, y), DTS[k]); /* compares too */
            expect(ctx, y, LOOM_SHAPE(2, 3), bc->want, bc->name);
        }
    }
}

/* [2,1] op [1,3] is an outer operation; [3] op [2,3] keeps operand order. */
static void test_binary_broadcast_both_sides(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 3; k++) {
        loom_reset(ctx);
        double c[2] = { 2, -3 }, r[3] = { 1, 0, 4 };
        loom_t col = tensor(ctx, DTS[k], LOOM_SHAPE(2, 1), c);
        loom_t row = tensor(ctx, DTS[k], LOOM_SHAPE(1, 3), r);
        double mul[6] = { 2, 0, 8, -3, 0, -12 }, add[6] = { 3, 2, 6, -2, -3, 1 };
        expect(ctx, loom_mul(ctx, col, row), LOOM_SHAPE(2, 3), mul, "[2,1] * [1,3]");
        expect(ctx, loom_add(ctx, row, col), LOOM_SHAPE(2, 3), add, "[1,3] + [2,1]");
        loom_t a = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3), bin_a);
        loom_t b = tensor(ctx, DTS[k], LOOM_SHAPE(3), bin_b);
        double bsa[6] = { 1, 0, -2, 0, -2, 7 }, blt[6] = { 0, 0, 1, 0, 1, 0 };
        expect(ctx, loom_sub(ctx, b, a), LOOM_SHAPE(2, 3), bsa, "[3] - [2,3]");
        expect(ctx, loom_lt(ctx, b, a), LOOM_SHAPE(2, 3), blt, "[3] < [2,3]");
        /* rank 3 against a scalar tensor, and the scalar helpers */
        double s[1] = { -2 }, x8[8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
        double m8[8] = { 0, -2, -4, -6, -8, -10, -12, -14 };
        double w8[8] = { 10, 10, 10, 10, 13, 16, 19, 22 };
        loom_t x = tensor(ctx, DTS[k], LOOM_SHAPE(2, 2, 2), x8);
        expect(ctx, loom_mul(ctx, x, tensor(ctx, DTS[k], LOOM_SCALAR, s)), LOOM_SHAPE(2, 2, 2), m8,
               "[2,2,2] * scalar");
        expect(ctx, loom_maxs(ctx, loom_adds(ctx, loom_muls(ctx, x, 3), 1), 10), LOOM_SHAPE(2, 2, 2),
               w8, "maxs(adds(muls(x, 3), 1), 10)");
    }
}

static void test_where_broadcasts_and_casts(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 3; k++) {
        loom_reset(ctx);
        loom_dtype dt = DTS[k];
        double c[2] = { 1, 0 };
        loom_t cond = tensor(ctx, dt, LOOM_SHAPE(2, 1), c);
        loom_t a = tensor(ctx, dt, LOOM_SHAPE(2, 3), bin_a);
        loom_t b = tensor(ctx, dt, LOOM_SHAPE(3), bin_b);
        double w[6] = { 1, -2, 3, 2, -2, 1 }, mx[6] = { 2, -2, 3, 2, 0, 1 };
        expect(ctx, loom_where(ctx, cond, a, b), LOOM_SHAPE(2, 3), w, "where [2,1] ? [2,3] : [3]");
        expect(ctx, loom_where(ctx, loom_gt(ctx, a, b), a, b), LOOM_SHAPE(2, 3), mx, "where(a > b)");
        /* an i32 mask with float operands is cast, and any nonzero is true */
        double m[3] = { 0, -5, 2 }, wm[6] = { 2, -2, 3, 2, 0, -6 };
        loom_t mask = tensor(ctx, LOOM_I32, LOOM_SHAPE(3), m);
        expect(ctx, loom_where(ctx, mask, a, b), LOOM_SHAPE(2, 3), wm, "where(i32 mask)");
    }
}

/* ---- Reductions -------------------------------------------------- */

/* x [2,3,4] reduced over the axes in mask by plain loops (kind 0 sum,
 * 1 max, 2 mean) into out, whose shape goes to *s. */
static void reduce_234(const double *x, unsigned mask, int kind, bool keep, double *out,
                       loom_shape *s)
{
    int od[3], n = 1;
    s->rank = 0;
    for (int a = 0; a < 3; a++) {
        od[a] = mask >> a & 1 ? 1 : 2 + a;
        n *= od[a];
        if (!(mask >> a & 1) || keep)
            s->d[s->rank++] = od[a];
    }
    for (int j = 0; j < n; j++)
        out[j] = kind == 1 ? -INFINITY : 0;
    for (int i = 0; i < 24; i++) {
        int c0 = i / 12, c1 = i / 4 % 3, c2 = i % 4;
        int o = ((mask & 1 ? 0 : c0) * od[1] + (mask & 2 ? 0 : c1)) * od[2] + (mask & 4 ? 0 : c2);
        out[o] = kind == 1 ? fmax(out[o], x[i]) : out[o] + x[i];
    }
    for (int j = 0; j < n && kind == 2; j++)
        out[j] /= 24 / n;
}

static void test_reduce_sum_max_mean_axes(void **state)
{
    loom_ctx *ctx = *state;
    static const struct {
        int naxes, axes[3];
        unsigned mask;
    } sets[] = {
        { 1, { 0 }, 1 }, { 1, { 1 }, 2 }, { 1, { -1 }, 4 }, { 2, { 0, 2 }, 5 },
        { 2, { -2, -3 }, 3 }, { 2, { 2, 1 }, 6 }, { 3, { 0, 1, 2 }, 7 },
    };
    static const char *const names[3] = { "sum", "max", "mean" };
    loom_t (*const fns[3])(loom_ctx *, loom_t, int, const int *, bool) = { loom_sum, loom_max,
                                                                          loom_mean };
    double x[24], want[24];
    for (int i = 0; i < 24; i++)
        x[i] = (i * 7) % 11 - 5.0; /* integers, with ties and negatives */
    for (int k = 0; k < 3; k++)
        for (size_t s = 0; s < LM_ARRAY_LEN(sets); s++)
            for (int keep = 0; keep < 2; keep++)
                for (int kind = 0; kind < (DTS[k] == LOOM_I32 ? 2 : 3); kind++) {
                    loom_reset(ctx);
                    loom_t t = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3, 4), x);
                    loom_shape os;
                    reduce_234(x, sets[s].mask, kind, keep, want, &os);
                    char what[64];
                    snprintf(what, sizeof what, "%s over set %zu, keepdim %d", names[kind], s, keep);
                    expect(ctx, fns[kind](ctx, t, sets[s].naxes, sets[s].axes, keep), os, want, what);
                }
}

static void test_reduce_by_hand_and_all(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 2; k++) {
        loom_reset(ctx);
        double v[6] = { 1, -2, 3.5, -4, -5, -0.5 };
        loom_t x = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3), v);
        double s0[3] = { -3, -7, 3 }, s1[2] = { 2.5, -9.5 }, m1[2] = { 3.5, -0.5 };
        double mean0[3] = { -1.5, -3.5, 1.5 }, all[1] = { -7 }, mall[1] = { -7.0 / 6 };
        expect(ctx, loom_sum(ctx, x, LOOM_AXES(0), false), LOOM_SHAPE(3), s0, "sum axis 0");
        expect(ctx, loom_sum(ctx, x, LOOM_AXES(-1), true), LOOM_SHAPE(2, 1), s1, "sum axis -1 keep");
        expect(ctx, loom_max(ctx, x, LOOM_AXES(1), false), LOOM_SHAPE(2), m1, "max axis 1");
        expect(ctx, loom_mean(ctx, x, LOOM_AXES(0), true), LOOM_SHAPE(1, 3), mean0, "mean axis 0");
        expect(ctx, loom_sum_all(ctx, x), LOOM_SCALAR, all, "sum_all");
        expect(ctx, loom_mean_all(ctx, x), LOOM_SCALAR, mall, "mean_all");
        assert_true(fabs(loom_item(ctx, loom_mean_all(ctx, x)) - mall[0]) < 1e-6);
    }
}

/* ---- Movement ---------------------------------------------------- */

static void test_reshape_keeps_order(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 3; k++) {
        loom_reset(ctx);
        double v[6];
        ramp(v, 6);
        loom_t x = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3), v);
        expect(ctx, loom_reshape(ctx, x, LOOM_SHAPE(3, 2)), LOOM_SHAPE(3, 2), v, "reshape [3,2]");
        expect(ctx, loom_reshape(ctx, x, LOOM_SHAPE(-1)), LOOM_SHAPE(6), v, "reshape [-1]");
        expect(ctx, loom_reshape(ctx, x, LOOM_SHAPE(1, -1, 2)), LOOM_SHAPE(1, 3, 2), v,
               "reshape [1,-1,2]");
        expect(ctx, loom_reshape(ctx, loom_reshape(ctx, x, LOOM_SHAPE(6, 1)), LOOM_SHAPE(3, 1, 2)),
               LOOM_SHAPE(3, 1, 2), v, "reshape of a reshape");
    }
}

static void test_permute_rank3(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 3; k++) {
        loom_reset(ctx);
        double v[24], want[24], tr[24];
        ramp(v, 24);
        loom_t x = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3, 4), v);
        /* out[a][b][c] = x[b][c][a] for perm (2, 0, 1) */
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 2; b++)
                for (int c = 0; c < 3; c++)
                    want[(a * 2 + b) * 3 + c] = b * 12 + c * 4 + a;
        expect(ctx, loom_permute(ctx, x, LOOM_AXES(2, 0, 1)), LOOM_SHAPE(4, 2, 3), want,
               "permute (2,0,1)");
        expect(ctx, loom_permute(ctx, x, LOOM_AXES(-1, 0, -2)), LOOM_SHAPE(4, 2, 3), want,
               "permute (-1,0,-2)");
        /* transpose(0, 2): out[c][b][a] = x[a][b][c] */
        for (int c = 0; c < 4; c++)
            for (int b = 0; b < 3; b++)
                for (int a = 0; a < 2; a++)
                    tr[(c * 3 + b) * 2 + a] = a * 12 + b * 4 + c;
        expect(ctx, loom_transpose(ctx, x, 0, 2), LOOM_SHAPE(4, 3, 2), tr, "transpose(0,2)");
    }
}

static void test_expand_broadcasts(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 3; k++) {
        loom_reset(ctx);
        double c[3] = { 1, -2, 5 }, want[24], row[6] = { 1, -2, 5, 1, -2, 5 };
        loom_t col = tensor(ctx, DTS[k], LOOM_SHAPE(3, 1), c);
        for (int i = 0; i < 24; i++)
            want[i] = c[(i / 4) % 3];
        expect(ctx, loom_expand(ctx, col, LOOM_SHAPE(2, 3, 4)), LOOM_SHAPE(2, 3, 4), want,
               "expand [3,1] -> [2,3,4]");
        loom_t vec = tensor(ctx, DTS[k], LOOM_SHAPE(3), c);
        expect(ctx, loom_expand(ctx, vec, LOOM_SHAPE(2, 3)), LOOM_SHAPE(2, 3), row, "expand [3]");
    }
}

static void test_slice_step_and_negative_start(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 3; k++) {
        loom_reset(ctx);
        double v[20], want[8] = { 2, 3, 6, 7, 12, 13, 16, 17 };
        ramp(v, 20);
        loom_t x = tensor(ctx, DTS[k], LOOM_SHAPE(10), v);
        double a[4] = { 3, 5, 7, 9 }, b[3] = { 2, 5, 8 }, c[2] = { 8, 9 };
        expect(ctx, loom_slice(ctx, x, 0, -7, 10, 2), LOOM_SHAPE(4), a, "x[-7:10:2]");
        expect(ctx, loom_slice(ctx, x, 0, -8, -1, 3), LOOM_SHAPE(3), b, "x[-8:-1:3]");
        expect(ctx, loom_slice(ctx, x, -1, -2, INT64_MAX, 1), LOOM_SHAPE(2), c, "x[-2:]");
        expect(ctx, loom_slice(ctx, x, 0, 7, 3, 1), LOOM_SHAPE(0), NULL, "x[7:3] is empty");
        /* the middle axis of [2,5,2]: x[:, -4::2, :] picks rows 1 and 3 */
        loom_t y = tensor(ctx, DTS[k], LOOM_SHAPE(2, 5, 2), v);
        expect(ctx, loom_slice(ctx, y, 1, -4, INT64_MAX, 2), LOOM_SHAPE(2, 2, 2), want,
               "x[:, -4::2, :]");
        expect(ctx, loom_slice(ctx, y, -2, 1, 5, 2), LOOM_SHAPE(2, 2, 2), want, "x[:, 1:5:2, :]");
    }
}

static void test_pad_with_value(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 3; k++) {
        loom_reset(ctx);
        double v[6] = { 1, 2, 3, 4, 5, 6 };
        loom_t x = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3), v);
        double a[12] = { -1, 1, 2, 3, -1, -1, -1, 4, 5, 6, -1, -1 };
        double b[12] = { 7, 7, 7, 1, 2, 3, 4, 5, 6, 7, 7, 7 };
        double c[9] = { 1, 2, 3, 4, 5, 6, 0, 0, 0 };
        expect(ctx, loom_pad(ctx, x, -1, 1, 2, -1), LOOM_SHAPE(2, 6), a, "pad axis -1, 1/2, -1");
        expect(ctx, loom_pad(ctx, x, 0, 1, 1, 7), LOOM_SHAPE(4, 3), b, "pad axis 0, 1/1, 7");
        expect(ctx, loom_pad(ctx, x, 0, 0, 1, 0), LOOM_SHAPE(3, 3), c, "pad axis 0, 0/1, 0");
    }
}

static void test_concat_three_on_middle_axis(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 3; k++) {
        loom_reset(ctx);
        double a[4] = { 100, 101, 102, 103 }, b[8] = { 200, 201, 202, 203, 204, 205, 206, 207 };
        double c[12] = { 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311 };
        /* out [2,6,2]: per outer index, a's row, b's two rows, c's three rows */
        double want[24] = { 100, 101, 200, 201, 202, 203, 300, 301, 302, 303, 304, 305,
                            102, 103, 204, 205, 206, 207, 306, 307, 308, 309, 310, 311 };
        loom_t xs[3] = { tensor(ctx, DTS[k], LOOM_SHAPE(2, 1, 2), a),
                         tensor(ctx, DTS[k], LOOM_SHAPE(2, 2, 2), b),
                         tensor(ctx, DTS[k], LOOM_SHAPE(2, 3, 2), c) };
        expect(ctx, loom_concat(ctx, 3, xs, 1), LOOM_SHAPE(2, 6, 2), want, "concat axis 1");
        expect(ctx, loom_concat(ctx, 3, xs, -2), LOOM_SHAPE(2, 6, 2), want, "concat axis -2");
        double w0[8] = { 100, 101, 102, 103, 100, 101, 102, 103 };
        loom_t two[2] = { xs[0], xs[0] };
        expect(ctx, loom_concat(ctx, 2, two, 0), LOOM_SHAPE(4, 1, 2), w0, "concat x with x");
    }
}

/* ---- Matmul ------------------------------------------------------ */

/* c [m,n] = a [m,k] b [k,n] by the textbook loop. */
static void mm_ref(const double *a, const double *b, int m, int k, int n, double *c)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            c[i * n + j] = 0;
            for (int l = 0; l < k; l++)
                c[i * n + j] += a[i * k + l] * b[l * n + j];
        }
}

static void test_matmul_transpose_combinations(void **state)
{
    loom_ctx *ctx = *state;
    /* A [2,3], B [3,2]; At and Bt hold their transposes */
    double A[6] = { 1, 2, 3, 4, 5, 6 }, At[6] = { 1, 4, 2, 5, 3, 6 };
    double B[6] = { 7, 8, 9, 10, 11, 12 }, Bt[6] = { 7, 9, 11, 8, 10, 12 };
    double AB[4] = { 58, 64, 139, 154 };
    for (int k = 0; k < 2; k++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            loom_reset(ctx);
            loom_t a = tensor(ctx, DTS[k], ta ? LOOM_SHAPE(3, 2) : LOOM_SHAPE(2, 3), ta ? At : A);
            loom_t b = tensor(ctx, DTS[k], tb ? LOOM_SHAPE(2, 3) : LOOM_SHAPE(3, 2), tb ? Bt : B);
            char what[64];
            snprintf(what, sizeof what, "matmul_t(ta=%d, tb=%d)", ta, tb);
            expect(ctx, loom_matmul_t(ctx, a, b, ta, tb), LOOM_SHAPE(2, 2), AB, what);
            if (!ta && !tb)
                expect(ctx, loom_matmul(ctx, a, b), LOOM_SHAPE(2, 2), AB, "matmul");
        }
}

static void test_matmul_batched_and_rank3_by_rank2(void **state)
{
    loom_ctx *ctx = *state;
    double a[12] = { -2, -1, 0, 1, 2, -2, -1, 0, 1, 2, -2, -1 };
    double b[12] = { -3, 0, 3, -1, 2, -2, 1, -3, 0, 3, -1, 2 }, bt[6] = { -3, 3, 2, 0, -1, -2 }, w[8];
    for (int k = 0; k < 2; k++) {
        loom_reset(ctx);
        /* [2,2,3] . [2,3,2]: each batch on its own */
        loom_t A = tensor(ctx, DTS[k], LOOM_SHAPE(2, 2, 3), a);
        loom_t B = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3, 2), b);
        mm_ref(a, b, 2, 3, 2, w);
        mm_ref(a + 6, b + 6, 2, 3, 2, w + 4);
        expect(ctx, loom_matmul(ctx, A, B), LOOM_SHAPE(2, 2, 2), w, "batched [2,2,3] . [2,3,2]");
        /* [2,2,3] . [1,3,2]: the batch of b broadcasts */
        loom_t B1 = tensor(ctx, DTS[k], LOOM_SHAPE(1, 3, 2), b);
        mm_ref(a + 6, b, 2, 3, 2, w + 4);
        expect(ctx, loom_matmul(ctx, A, B1), LOOM_SHAPE(2, 2, 2), w, "batched [2,2,3] . [1,3,2]");
        /* [2,2,3] . [3,2] is one [4,3] . [3,2] product; the same with b's first 6 as bt^T */
        loom_t B2 = tensor(ctx, DTS[k], LOOM_SHAPE(3, 2), b);
        mm_ref(a, b, 4, 3, 2, w);
        expect(ctx, loom_matmul(ctx, A, B2), LOOM_SHAPE(2, 2, 2), w, "[2,2,3] . [3,2]");
        loom_t B2t = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3), bt);
        expect(ctx, loom_matmul_t(ctx, A, B2t, false, true), LOOM_SHAPE(2, 2, 2), w,
               "[2,2,3] . [2,3]^T");
        /* [2,3] . [2,3,2]: a broadcast over b's batch */
        loom_t A2 = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3), a);
        mm_ref(a, b, 2, 3, 2, w);
        mm_ref(a, b + 6, 2, 3, 2, w + 4);
        expect(ctx, loom_matmul(ctx, A2, B), LOOM_SHAPE(2, 2, 2), w, "[2,3] . [2,3,2]");
    }
}

static void test_matmul_vectors(void **state)
{
    loom_ctx *ctx = *state;
    double A[6] = { 1, 2, 3, 4, 5, 6 }, B[6] = { 7, 8, 9, 10, 11, 12 }, v[3] = { 1, -1, 2 };
    for (int k = 0; k < 2; k++) {
        loom_reset(ctx);
        loom_t a = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3), A);
        loom_t b = tensor(ctx, DTS[k], LOOM_SHAPE(3, 2), B);
        loom_t x = tensor(ctx, DTS[k], LOOM_SHAPE(3), v);
        double vb[2] = { 20, 22 }, av[2] = { 5, 11 }, vv[1] = { 6 };
        expect(ctx, loom_matmul(ctx, x, b), LOOM_SHAPE(2), vb, "[3] . [3,2]");
        expect(ctx, loom_matmul(ctx, a, x), LOOM_SHAPE(2), av, "[2,3] . [3]");
        expect(ctx, loom_matmul(ctx, x, x), LOOM_SCALAR, vv, "[3] . [3]");
        /* b^T [2,3] . v equals v . b */
        expect(ctx, loom_matmul_t(ctx, b, x, true, false), LOOM_SHAPE(2), vb, "[3,2]^T . [3]");
        /* [2,2,3] . [3]: one vector product per row, e.g. 4 - 5 + 2 * 6 */
        double a3[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, w[4] = { 5, 11, 17, 23 };
        loom_t a3t = tensor(ctx, DTS[k], LOOM_SHAPE(2, 2, 3), a3);
        expect(ctx, loom_matmul(ctx, a3t, x), LOOM_SHAPE(2, 2), w, "[2,2,3] . [3]");
    }
}

/* ---- Gather and scatter-add -------------------------------------- */

static void test_gather_repeated_indices(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 3; k++) {
        loom_reset(ctx);
        double v[6] = { 1, 2, 3, 4, 5, 6 };
        /* axis 0 of [3,2]: rows 2, 0, 2, 1 */
        double i0[4] = { 2, 0, 2, 1 }, w0[8] = { 5, 6, 1, 2, 5, 6, 3, 4 };
        loom_t x = tensor(ctx, DTS[k], LOOM_SHAPE(3, 2), v);
        loom_t idx = tensor(ctx, LOOM_I32, LOOM_SHAPE(4), i0);
        expect(ctx, loom_gather(ctx, x, idx, 0), LOOM_SHAPE(4, 2), w0, "gather axis 0");
        /* axis 1 of [2,3] with [2,2] indices {{2,0},{2,2}} -> [2,2,2] */
        double i1[4] = { 2, 0, 2, 2 }, w1[8] = { 3, 1, 3, 3, 6, 4, 6, 6 };
        loom_t y = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3), v);
        loom_t idx2 = tensor(ctx, LOOM_I32, LOOM_SHAPE(2, 2), i1);
        expect(ctx, loom_gather(ctx, y, idx2, 1), LOOM_SHAPE(2, 2, 2), w1, "gather axis 1");
        expect(ctx, loom_gather(ctx, y, idx2, -1), LOOM_SHAPE(2, 2, 2), w1, "gather axis -1");
        /* a scalar index drops the axis */
        double one[1] = { 1 }, w2[3] = { 4, 5, 6 };
        loom_t s = tensor(ctx, LOOM_I32, LOOM_SCALAR, one);
        expect(ctx, loom_gather(ctx, y, s, 0), LOOM_SHAPE(3), w2, "gather scalar index");
    }
}

static void test_scatter_add_accumulates(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 3; k++) {
        loom_reset(ctx);
        double v[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, i0[4] = { 1, 0, 1, 1 };
        /* row 1 gets rows 0, 2 and 3; row 2 nothing */
        double w0[6] = { 3, 4, 13, 16, 0, 0 };
        loom_t src = tensor(ctx, DTS[k], LOOM_SHAPE(4, 2), v);
        loom_t idx = tensor(ctx, LOOM_I32, LOOM_SHAPE(4), i0);
        expect(ctx, loom_scatter_add(ctx, src, idx, 0, 3), LOOM_SHAPE(3, 2), w0, "axis 0");
        /* axis 1 of [2,3] into 4 columns at {2,2,0} */
        double i1[3] = { 2, 2, 0 }, w1[8] = { 3, 0, 3, 0, 6, 0, 9, 0 };
        loom_t src2 = tensor(ctx, DTS[k], LOOM_SHAPE(2, 3), v);
        loom_t idx1 = tensor(ctx, LOOM_I32, LOOM_SHAPE(3), i1);
        expect(ctx, loom_scatter_add(ctx, src2, idx1, 1, 4), LOOM_SHAPE(2, 4), w1, "axis 1");
        expect(ctx, loom_scatter_add(ctx, src2, idx1, -1, 4), LOOM_SHAPE(2, 4), w1, "axis -1");
    }
}

/* ---- Assign ------------------------------------------------------ */

static void test_assign_commits_at_run_end(void **state)
{
    loom_ctx *ctx = *state;
    for (int k = 0; k < 3; k++) {
        loom_dtype dt = DTS[k];
        loom_reset(ctx);
        loom_t p = loom_param(ctx, NULL, dt, LOOM_SHAPE(3));
        loom_t q = loom_buffer(ctx, NULL, dt, LOOM_SHAPE(3));
        double v[3] = { 1, 2, 3 };
        char buf[24];
        assert_int_equal(loom_param_set(ctx, p, buf, fill(buf, dt, v, 3)), LOOM_OK);
        loom_t read = loom_adds(ctx, p, 10);
        assert_int_equal(loom_assign(ctx, p, loom_adds(ctx, loom_muls(ctx, p, 2), 1)), LOOM_OK);
        /* a scalar value broadcasts to the buffer's shape */
        assert_int_equal(loom_assign(ctx, q, loom_sum_all(ctx, p)), LOOM_OK);
        TU_OK(ctx);
        double r0[3] = { 11, 12, 13 }, r1[3] = { 13, 15, 17 }, p1[3] = { 3, 5, 7 };
        double p2[3] = { 7, 11, 15 }, q1[3] = { 6, 6, 6 }, q2[3] = { 15, 15, 15 }, zeros[3] = { 0 };
        /* loom_eval computes but does not commit */
        assert_int_equal(loom_eval(ctx, 1, &read), LOOM_OK);
        compare(dt, loom_data(ctx, read), r0, 3, "read under eval");
        compare(dt, loom_data(ctx, p), v, 3, "p after eval");
        compare(dt, loom_data(ctx, q), zeros, 3, "q after eval");
        /* loom_run: reads see the old value, then p and q are committed */
        assert_int_equal(loom_run(ctx, 1, &read), LOOM_OK);
        mark_tape(ctx);
        compare(dt, loom_data(ctx, read), r0, 3, "read in run 1");
        compare(dt, loom_data(ctx, p), p1, 3, "p after run 1");
        compare(dt, loom_data(ctx, q), q1, 3, "q after run 1");
        assert_int_equal(loom_run(ctx, 1, &read), LOOM_OK);
        compare(dt, loom_data(ctx, read), r1, 3, "read in run 2");
        compare(dt, loom_data(ctx, p), p2, 3, "p after run 2");
        compare(dt, loom_data(ctx, q), q2, 3, "q after run 2 (read p's old value)");
    }
}

/* An output that is the parameter itself (a reshape to its own shape
 * folds to the parameter node) is a read too: it must see the old value. */
static void test_assign_param_output_sees_old_value(void **state)
{
    loom_ctx *ctx = *state;
    loom_t p = loom_param(ctx, "p", LOOM_F64, LOOM_SHAPE(3));
    double v[3] = { 1, 2, 3 }, p1[3] = { 2, 3, 4 };
    loom_param_set(ctx, p, v, sizeof v);
    loom_t same = loom_reshape(ctx, p, LOOM_SHAPE(3));
    loom_t copy = loom_detach(ctx, p);
    assert_int_equal(loom_assign(ctx, p, loom_adds(ctx, p, 1)), LOOM_OK);
    loom_t outs[2] = { copy, same };
    assert_int_equal(loom_run(ctx, 2, outs), LOOM_OK);
    tu_assert_close(loom_data(ctx, p), p1, 3, 0, "p committed");
    tu_assert_close(loom_data(ctx, copy), v, 3, 0, "detach(p) in the run");
    tu_assert_close(loom_data(ctx, same), v, 3, 0, "reshape(p, its shape) in the run");
}

/* loom_run on a tape without assignments: values as loom_eval gives
 * them, and the next run draws new random numbers. (Under UBSan this
 * also checks that no memcpy gets a null source for the empty list.) */
static void test_run_without_assignments(void **state)
{
    loom_ctx *ctx = *state;
    double v[3] = { 1, -2, 0.5 }, w[3] = { 2, -4, 1 };
    loom_t y[2] = { loom_muls(ctx, tensor(ctx, LOOM_F64, LOOM_SHAPE(3), v), 2),
                    loom_rand_uniform(ctx, LOOM_F64, LOOM_SHAPE(64)) };
    double first[64];
    assert_int_equal(loom_run(ctx, 2, y), LOOM_OK);
    mark_tape(ctx);
    tu_assert_close(loom_data(ctx, y[0]), w, 3, 0, "x * 2 under loom_run");
    memcpy(first, loom_data(ctx, y[1]), sizeof first);
    assert_int_equal(loom_run(ctx, 2, y), LOOM_OK);
    const double *second = loom_data(ctx, y[1]);
    for (int i = 0; i < 64; i++)
        assert_true(second[i] != first[i] && second[i] >= 0 && second[i] < 1);
}

/* ---- Coverage: every op of ops.def has a forward test ------------ */

static void test_coverage_every_op_has_a_forward_test(void **state)
{
    (void)state;
    char missing[1024] = "";
    int n = 0;
    for (int op = 0; op < OP_COUNT; op++)
        if (!op_seen[op]) {
            size_t len = strlen(missing);
            snprintf(missing + len, sizeof missing - len, "%s%s", n ? ", " : "", op_get(op)->name);
            n++;
        }
    if (n)
        fail_msg("%d op(s) of ops.def ran in no forward test: %s", n, missing);
}

/* ---- Errors ------------------------------------------------------ */

/* The builder returned null, the context failed with code, and the
 * message names each fragment given (function, detail, shapes). */
static void expect_error(loom_ctx *ctx, loom_t result, loom_code code, const char *f1,
                         const char *f2, const char *f3, const char *f4)
{
    assert_true(loom_is_null(result));
    tu_assert_error(ctx, code, f1, f2);
    tu_assert_error(ctx, code, f3, f4);
}

/* A constant of shape s, for tests that never run. */
static loom_t ones(loom_ctx *ctx, loom_dtype dt, loom_shape s) { return loom_full(ctx, dt, s, 1); }

static void test_error_broadcast_names_both_shapes(void **state)
{
    loom_ctx *ctx = *state;
    loom_t a = ones(ctx, LOOM_F32, LOOM_SHAPE(2, 3)), b = ones(ctx, LOOM_F32, LOOM_SHAPE(4));
    expect_error(ctx, loom_add(ctx, a, b), LOOM_ERR_SHAPE, "loom_add", "broadcast", "f32[2,3]",
                 "f32[4]");
}

static void test_error_dtype_mismatch(void **state)
{
    loom_ctx *ctx = *state;
    loom_t a = ones(ctx, LOOM_F32, LOOM_SHAPE(2)), b = ones(ctx, LOOM_F64, LOOM_SHAPE(2));
    expect_error(ctx, loom_mul(ctx, a, b), LOOM_ERR_DTYPE, "loom_mul", "dtype", "f32[2]", "f64[2]");
}

static void test_error_matmul_inner_dimension(void **state)
{
    loom_ctx *ctx = *state;
    loom_t a = ones(ctx, LOOM_F32, LOOM_SHAPE(2, 3)), b = ones(ctx, LOOM_F32, LOOM_SHAPE(4, 2));
    expect_error(ctx, loom_matmul(ctx, a, b), LOOM_ERR_SHAPE, "loom_matmul", "3 vs 4", "f32[2,3]",
                 "f32[4,2]");
    loom_clear_error(ctx);
    loom_t c = ones(ctx, LOOM_F32, LOOM_SHAPE(3, 5)); /* a^T has the inner dimension 2 */
    expect_error(ctx, loom_matmul_t(ctx, a, c, true, false), LOOM_ERR_SHAPE, "loom_matmul",
                 "2 vs 3", "f32[2,3]", "f32[3,5]");
}

static void test_error_reshape_element_count(void **state)
{
    loom_ctx *ctx = *state;
    loom_t a = ones(ctx, LOOM_F32, LOOM_SHAPE(2, 3));
    expect_error(ctx, loom_reshape(ctx, a, LOOM_SHAPE(4, 2)), LOOM_ERR_SHAPE, "loom_reshape", NULL,
                 "f32[2,3]", "[4,2]");
    loom_clear_error(ctx);
    expect_error(ctx, loom_reshape(ctx, a, LOOM_SHAPE(4, -1)), LOOM_ERR_SHAPE, "loom_reshape", NULL,
                 "f32[2,3]", "[4,-1]");
}

/* The argument errors below name the offending value; the contract (and
 * the style guide's example) is that they name the operand's shape too. */
static void test_error_axis_out_of_range(void **state)
{
    loom_ctx *ctx = *state;
    loom_t a = ones(ctx, LOOM_F32, LOOM_SHAPE(2, 3));
    expect_error(ctx, loom_sum(ctx, a, LOOM_AXES(2), false), LOOM_ERR_ARG, "loom_sum", "axis 2",
                 "f32[2,3]", NULL);
}

static void test_error_axis_repeated(void **state)
{
    loom_ctx *ctx = *state;
    loom_t a = ones(ctx, LOOM_F32, LOOM_SHAPE(2, 3));
    expect_error(ctx, loom_max(ctx, a, LOOM_AXES(0, -2), true), LOOM_ERR_ARG, "loom_max",
                 "axis -2", "f32[2,3]", NULL);
}

static void test_error_slice_step_zero(void **state)
{
    loom_ctx *ctx = *state;
    loom_t a = ones(ctx, LOOM_F32, LOOM_SHAPE(4, 6));
    expect_error(ctx, loom_slice(ctx, a, 1, 0, 6, 0), LOOM_ERR_ARG, "loom_slice", "step 0",
                 "f32[4,6]", NULL);
}

static void test_error_pad_negative(void **state)
{
    loom_ctx *ctx = *state;
    loom_t a = ones(ctx, LOOM_F32, LOOM_SHAPE(4, 6));
    expect_error(ctx, loom_pad(ctx, a, 0, -1, 2, 0), LOOM_ERR_ARG, "loom_pad", "-1", "f32[4,6]",
                 NULL);
}

static void test_error_permute_not_a_permutation(void **state)
{
    loom_ctx *ctx = *state;
    loom_t x = ones(ctx, LOOM_F32, LOOM_SHAPE(2, 3, 4));
    expect_error(ctx, loom_permute(ctx, x, LOOM_AXES(0, 0, 1)), LOOM_ERR_ARG, "loom_permute",
                 "axis 0", "f32[2,3,4]", NULL);
}

static void test_error_concat_mismatched_dims(void **state)
{
    loom_ctx *ctx = *state;
    loom_t xs[3] = { ones(ctx, LOOM_F32, LOOM_SHAPE(2, 3)), ones(ctx, LOOM_F32, LOOM_SHAPE(1, 3)),
                     ones(ctx, LOOM_F32, LOOM_SHAPE(2, 4)) };
    expect_error(ctx, loom_concat(ctx, 3, xs, 0), LOOM_ERR_SHAPE, "concat", "axis 1", "f32[2,3]",
                 "f32[2,4]");
}

static void test_error_gather_float_indices(void **state)
{
    loom_ctx *ctx = *state;
    loom_t x = ones(ctx, LOOM_F32, LOOM_SHAPE(3, 2)), idx = ones(ctx, LOOM_F32, LOOM_SHAPE(2));
    expect_error(ctx, loom_gather(ctx, x, idx, 0), LOOM_ERR_DTYPE, "gather", "i32", "f32[3,2]",
                 "f32[2]");
}

static void test_error_exp_on_i32(void **state)
{
    loom_ctx *ctx = *state;
    expect_error(ctx, loom_exp(ctx, ones(ctx, LOOM_I32, LOOM_SHAPE(3))), LOOM_ERR_DTYPE, "loom_exp",
                 "f32 or f64", "i32[3]", NULL);
}

/* An index out of range is found at run time: the run fails, nothing
 * crashes, and the message names the op, the index and the range. */
static void test_error_index_out_of_range_fails_the_run(void **state)
{
    loom_ctx *ctx = *state;
    static const double bad[2][2] = { { 0, 5 }, { -1, 1 } };
    static const char *const frag[2] = { "index 5", "index -1" };
    double v[6] = { 1, 2, 3, 4, 5, 6 }, i[2] = { 1, 4 };
    for (int c = 0; c < 2; c++) {
        loom_reset(ctx); /* which also clears the error */
        loom_t x = tensor(ctx, LOOM_F32, LOOM_SHAPE(3, 2), v);
        loom_t y = loom_gather(ctx, x, tensor(ctx, LOOM_I32, LOOM_SHAPE(2), bad[c]), 0);
        TU_OK(ctx);
        assert_int_equal(loom_eval(ctx, 1, &y), LOOM_ERR_INDEX);
        tu_assert_error(ctx, LOOM_ERR_INDEX, "gather", frag[c]);
        tu_assert_error(ctx, LOOM_ERR_INDEX, "[0, 3)", NULL);
        assert_null(loom_data(ctx, y));
    }
    loom_reset(ctx);
    loom_t y = loom_scatter_add(ctx, tensor(ctx, LOOM_F64, LOOM_SHAPE(2, 2), v),
                                tensor(ctx, LOOM_I32, LOOM_SHAPE(2), i), 0, 4);
    TU_OK(ctx);
    assert_int_equal(loom_eval(ctx, 1, &y), LOOM_ERR_INDEX);
    tu_assert_error(ctx, LOOM_ERR_INDEX, "scatter_add", "index 4");
    tu_assert_error(ctx, LOOM_ERR_INDEX, "[0, 4)", NULL);
}

static void test_error_is_sticky_until_cleared(void **state)
{
    loom_ctx *ctx = *state;
    double v[2] = { 0.5, -1 }, e[2] = { exp(0.5), exp(-1) };
    loom_t a = tensor(ctx, LOOM_F64, LOOM_SHAPE(2), v);
    loom_t b = loom_full(ctx, LOOM_F64, LOOM_SHAPE(3), 1);
    loom_t ea = loom_exp(ctx, a);
    assert_true(loom_is_null(loom_add(ctx, a, b)));
    char first[LM_ERRMSG_SIZE];
    snprintf(first, sizeof first, "%s", loom_errmsg(ctx));
    size_t nodes = loom_node_count(ctx);
    /* later builders return null and record nothing; the first message stays */
    assert_true(loom_is_null(loom_exp(ctx, a)));
    assert_true(loom_is_null(loom_full(ctx, LOOM_F32, LOOM_SHAPE(2), 0)));
    assert_true(loom_is_null(loom_matmul(ctx, a, a)));
    assert_true(loom_is_null(loom_rand_uniform(ctx, LOOM_F32, LOOM_SHAPE(2))));
    loom_t p = loom_param(ctx, "p", LOOM_F64, LOOM_SHAPE(2));
    assert_true(loom_is_null(p));
    assert_int_equal(loom_assign(ctx, p, a), LOOM_ERR_SHAPE);
    assert_int_equal(loom_eval(ctx, 1, &ea), LOOM_ERR_SHAPE);
    assert_int_equal(loom_node_count(ctx), nodes);
    tu_assert_error(ctx, LOOM_ERR_SHAPE, first, NULL);
    /* cleared: the tape is kept and building goes on */
    loom_clear_error(ctx);
    assert_false(loom_failed(ctx));
    expect(ctx, ea, LOOM_SHAPE(2), e, "exp after clear");
    expect(ctx, loom_neg(ctx, a), LOOM_SHAPE(2), (double[]){ -0.5, 1 }, "neg after clear");
    /* a null operand is an error of its own */
    assert_true(loom_is_null(loom_neg(ctx, LOOM_NULL)));
    tu_assert_error(ctx, LOOM_ERR_HANDLE, "loom_neg", "null");
}

/* ---- Node level: builders and the reference executor ------------- */

/* An allocator that counts live bytes, to watch the executor free. */
typedef struct node_fix {
    long long live, peak;
    lm_err err;
    ir_graph *g;
} node_fix;

static void *count_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    node_fix *f = ud;
    if (nsize == 0) {
        f->live -= ptr ? (long long)osize : 0;
        free(ptr);
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) {
        f->live += (long long)nsize - (ptr ? (long long)osize : 0);
        f->peak = f->live > f->peak ? f->live : f->peak;
    }
    return p;
}

/* The node-level fixture: an empty graph whose bytes are counted. */
static int node_setup(void **state)
{
    node_fix *f = calloc(1, sizeof *f);
    if (f)
        f->g = ir_graph_new((lm_mem){ .fn = count_alloc, .ud = f }, &f->err, &op_opset);
    *state = f;
    return f && f->g ? 0 : -1;
}

static int node_teardown(void **state)
{
    node_fix *f = *state;
    ir_graph_free(f->g);
    free(f);
    return 0;
}

/* A chain of 8 unary ops over a [4096] f64 input: right values, at most
 * two node buffers alive at once, and nothing left behind. */
static void test_refexec_chain_frees_intermediates(void **state)
{
    enum { N = 4096, DEPTH = 8 };
    node_fix *f = *state;
    ir_graph *g = f->g;
    static const int ops[DEPTH] = { OP_NEG, OP_EXP,  OP_LOG1P, OP_NEG,
                                    OP_TANH, OP_ABS, OP_SQRT,  OP_SIN };
    ir_id y = op_input(g, LOOM_F64, LOOM_SHAPE(N), 0);
    for (int i = 0; i < DEPTH; i++)
        y = op_unary(g, ops[i], y);
    assert_int_equal(ir_count(g), DEPTH + 1);
    double *x = malloc(N * sizeof *x), *want = malloc(N * sizeof *want); /* [N] */
    for (int i = 0; i < N; i++) {
        x[i] = (i - N / 2) / 1024.0;
        want[i] = sin(sqrt(fabs(tanh(-log1p(exp(-x[i]))))));
    }
    void *val[1], *inputs[1] = { x };
    long long before = f->live, buf = N * (long long)sizeof(double);
    f->peak = before;
    assert_int_equal(op_ref_run(g, &(op_env){ .inputs = inputs, .ninputs = 1 }, &y, 1, val), LOOM_OK);
    tu_assert_close(val[0], want, N, 1e-14, "unary chain");
    if (f->peak - before > 2 * buf + buf / 2)
        fail_msg("peak %lld bytes during the run: intermediates are not freed (a buffer is %lld)",
                 f->peak - before, buf);
    lm_free_aligned(&g->mem, val[0]);
    assert_int_equal(f->live, before); /* the run left nothing behind */
    free(x);
    free(want);
}

/* Roots given twice, an intermediate that is also a root, an external
 * root: every value is right and each root owns its own buffer. */
static void test_refexec_roots_get_own_buffers(void **state)
{
    node_fix *f = *state;
    ir_graph *g = f->g;
    ir_id x = op_input(g, LOOM_F32, LOOM_SHAPE(2, 2), 0);
    ir_id m = op_mul(g, x, x), s = op_sum(g, m, 1u << 1, false);
    float xv[4] = { 1, -2, 3, 0.5f };
    void *inputs[1] = { xv }, *val[5];
    ir_id roots[5] = { s, m, s, x, m };
    op_env env = { .inputs = inputs, .ninputs = 1 };
    assert_int_equal(op_ref_run(g, &env, roots, 5, val), LOOM_OK);
    double ws[2] = { 5, 9.25 }, wm[4] = { 1, 4, 9, 0.25 }, wx[4] = { 1, -2, 3, 0.5 };
    tu_assert_close_f(val[0], ws, 2, 0, "sum root");
    tu_assert_close_f(val[2], ws, 2, 0, "sum root again");
    tu_assert_close_f(val[1], wm, 4, 0, "intermediate root");
    tu_assert_close_f(val[4], wm, 4, 0, "intermediate root again");
    tu_assert_close_f(val[3], wx, 4, 0, "input root");
    assert_true(val[0] != val[2] && val[1] != val[4] && val[3] != (void *)xv);
    ((float *)val[0])[0] = 42; /* independent: writing one leaves the others */
    ((float *)val[3])[0] = 42;
    assert_true(((float *)val[2])[0] == 5 && xv[0] == 1);
    for (int i = 0; i < 5; i++)
        lm_free_aligned(&g->mem, val[i]);
}

static void test_refexec_unfed_input_is_a_state_error(void **state)
{
    node_fix *f = *state;
    ir_graph *g = f->g;
    ir_id a = op_input(g, LOOM_F64, LOOM_SHAPE(3), 0), b = op_input(g, LOOM_F64, LOOM_SHAPE(3), 1);
    ir_id y = op_add(g, a, b);
    double av[3] = { 1, 2, 3 };
    void *inputs[2] = { av, NULL }, *val[1] = { (void *)1 };
    op_env env = { .inputs = inputs, .ninputs = 2 };
    long long before = f->live;
    assert_int_equal(op_ref_run(g, &env, &y, 1, val), LOOM_ERR_STATE);
    assert_int_equal(f->err.code, LOOM_ERR_STATE);
    assert_non_null(strstr(f->err.msg, "input #1"));
    assert_null(val[0]);
    assert_int_equal(f->live, before);
    /* an input slot beyond env->ninputs is the same error */
    lm_err_clear(&f->err);
    env.ninputs = 1;
    assert_int_equal(op_ref_run(g, &env, &y, 1, val), LOOM_ERR_STATE);
    assert_non_null(strstr(f->err.msg, "not fed"));
}

/* Assignments at node level: the value is committed to env->params, and
 * the parameter read as a root in the same run must show the old value. */
static void test_refexec_assign_commits_after_reads(void **state)
{
    node_fix *f = *state;
    ir_graph *g = f->g;
    ir_id p = op_param(g, LOOM_F64, LOOM_SHAPE(3), 0);
    ir_id v = op_adds(g, p, 1);
    ir_id roots[3] = { v, op_assign(g, v, 0), p };
    double pv[3] = { 1, 2, 3 }, old[3] = { 1, 2, 3 }, next[3] = { 2, 3, 4 };
    void *params[1] = { pv }, *val[3];
    op_env env = { .params = params, .nparams = 1 };
    assert_int_equal(op_ref_run(g, &env, roots, 3, val), LOOM_OK);
    double got[2][3]; /* copied out, so a failure leaks nothing */
    memcpy(got[0], val[0], sizeof got[0]);
    memcpy(got[1], val[2], sizeof got[1]);
    assert_null(val[1]); /* an assign has no value */
    lm_free_aligned(&g->mem, val[0]);
    lm_free_aligned(&g->mem, val[2]);
    tu_assert_close(pv, next, 3, 0, "committed parameter");
    tu_assert_close(got[0], next, 3, 0, "p + 1");
    tu_assert_close(got[1], old, 3, 0, "the parameter, read in the run that assigns it");
}

/* Node builders check shapes themselves, and are sticky too. */
static void test_builders_fail_and_stick(void **state)
{
    node_fix *f = *state;
    ir_graph *g = f->g;
    ir_id a = op_const(g, LOOM_F64, LOOM_SHAPE(2), 1), b = op_const(g, LOOM_F64, LOOM_SHAPE(3), 1);
    assert_int_equal(op_add(g, a, b), 0);
    assert_int_equal(f->err.code, LOOM_ERR_SHAPE);
    const char *m = f->err.msg;
    assert_true(strstr(m, "add") && strstr(m, "f64[2]") && strstr(m, "f64[3]"));
    size_t n = ir_count(g);
    assert_true(op_neg(g, a) == 0 && op_neg(g, 0) == 0 && ir_count(g) == n);
    lm_err_clear(&f->err);
    ir_id y = op_neg(g, a);
    void *val[1];
    assert_int_equal(op_ref_run(g, &(op_env){ 0 }, &y, 1, val), LOOM_OK);
    assert_true(((double *)val[0])[0] == -1 && ((double *)val[0])[1] == -1);
    lm_free_aligned(&g->mem, val[0]);
}

#define CTX_TEST(f) cmocka_unit_test_setup_teardown(f, ctx_setup, ctx_teardown)
#define NODE_TEST(f) cmocka_unit_test_setup_teardown(f, node_setup, node_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* forward values (each marks the ops it ran) */
        CTX_TEST(test_const_full_and_scalar),
        CTX_TEST(test_input_and_param_values),
        CTX_TEST(test_iota_along_each_axis),
        CTX_TEST(test_random_distributions),
        cmocka_unit_test(test_random_reproducible_by_seed_and_run),
        CTX_TEST(test_unary_float_values),
        CTX_TEST(test_unary_i32_values),
        CTX_TEST(test_cast_conversions),
        cmocka_unit_test(test_after_is_x_ordered_after_dep),
        CTX_TEST(test_binary_broadcast_row),
        CTX_TEST(test_binary_broadcast_both_sides),
        CTX_TEST(test_where_broadcasts_and_casts),
        CTX_TEST(test_reduce_sum_max_mean_axes),
        CTX_TEST(test_reduce_by_hand_and_all),
        CTX_TEST(test_reshape_keeps_order),
        CTX_TEST(test_permute_rank3),
        CTX_TEST(test_expand_broadcasts),
        CTX_TEST(test_slice_step_and_negative_start),
        CTX_TEST(test_pad_with_value),
        CTX_TEST(test_concat_three_on_middle_axis),
        CTX_TEST(test_matmul_transpose_combinations),
        CTX_TEST(test_matmul_batched_and_rank3_by_rank2),
        CTX_TEST(test_matmul_vectors),
        CTX_TEST(test_gather_repeated_indices),
        CTX_TEST(test_scatter_add_accumulates),
        CTX_TEST(test_assign_commits_at_run_end),
        CTX_TEST(test_assign_param_output_sees_old_value),
        /* errors */
        CTX_TEST(test_error_broadcast_names_both_shapes),
        CTX_TEST(test_error_dtype_mismatch),
        CTX_TEST(test_error_matmul_inner_dimension),
        CTX_TEST(test_error_reshape_element_count),
        CTX_TEST(test_error_axis_out_of_range),
        CTX_TEST(test_error_axis_repeated),
        CTX_TEST(test_error_slice_step_zero),
        CTX_TEST(test_error_pad_negative),
        CTX_TEST(test_error_permute_not_a_permutation),
        CTX_TEST(test_error_concat_mismatched_dims),
        CTX_TEST(test_error_gather_float_indices),
        CTX_TEST(test_error_exp_on_i32),
        CTX_TEST(test_error_index_out_of_range_fails_the_run),
        CTX_TEST(test_error_is_sticky_until_cleared),
        /* node level */
        NODE_TEST(test_refexec_chain_frees_intermediates),
        NODE_TEST(test_refexec_roots_get_own_buffers),
        NODE_TEST(test_refexec_unfed_input_is_a_state_error),
        NODE_TEST(test_refexec_assign_commits_after_reads),
        NODE_TEST(test_builders_fail_and_stick),
        CTX_TEST(test_run_without_assignments),
        /* last: needs every forward test above to have run */
        cmocka_unit_test(test_coverage_every_op_has_a_forward_test),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
