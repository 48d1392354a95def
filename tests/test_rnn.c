/*
 * test_rnn.c — recurrent cells and stacks, losses and modules: gradients of
 * every cell and of a 2-layer bidirectional masked stack against finite
 * differences in f64, sequence-length masks, layouts and states, PyTorch's
 * parameter names, JIT against the reference executor, the losses' values,
 * Linear/Embedding/LayerNorm, dropout, freezing and LoRA adapters.
 * (PyTorch parity is test_parity.c; learning tasks are test_train.c.)
 */
#include "testutil.h"

#include <stdlib.h>

#include "../examples/ln_lstm.h"

/* ------------------------------------------------------------------ */
/* Finite differences through the public API                          */
/* ------------------------------------------------------------------ */

/* Checks d loss / d p for every element of every listed parameter by
 * central differences; loss is an f64 scalar on ctx's tape. Returns the
 * worst relative error (absolute below 1e-3). */
static double fd_check(loom_ctx *ctx, loom_t loss, int np, const loom_t *params, const char *what)
{
    assert_int_equal(loom_backward(ctx, loss), LOOM_OK);
    loom_t *grads = calloc((size_t)np, sizeof *grads);
    double **an = calloc((size_t)np, sizeof *an);
    for (int i = 0; i < np; i++) {
        grads[i] = loom_grad(ctx, params[i]);
        if (loom_is_null(grads[i]))
            fail_msg("%s: parameter %s has no gradient", what, loom_param_name(ctx, params[i]));
    }
    assert_int_equal(loom_eval(ctx, np, grads), LOOM_OK);
    for (int i = 0; i < np; i++) {
        size_t n = (size_t)loom_shape_numel(loom_shape_of(ctx, params[i]));
        an[i] = malloc(n * sizeof **an);
        memcpy(an[i], loom_data(ctx, grads[i]), n * sizeof **an);
    }
    double worst = 0, eps = 1e-6;
    for (int i = 0; i < np; i++) {
        double *p = loom_param_data(ctx, params[i]);
        int64_t n = loom_shape_numel(loom_shape_of(ctx, params[i]));
        for (int64_t j = 0; j < n; j++) {
            double keep = p[j];
            p[j] = keep + eps;
            assert_int_equal(loom_eval(ctx, 1, &loss), LOOM_OK);
            double lp = loom_item(ctx, loss);
            p[j] = keep - eps;
            assert_int_equal(loom_eval(ctx, 1, &loss), LOOM_OK);
            double lm = loom_item(ctx, loss);
            p[j] = keep;
            double num = (lp - lm) / (2 * eps), a = an[i][j];
            double err = fabs(a - num) / fmax(1e-3, fmax(fabs(a), fabs(num)));
            if (err > 1e-6)
                fail_msg("%s: d/d %s[%lld] is %.10g, finite differences say %.10g", what,
                         loom_param_name(ctx, params[i]), (long long)j, a, num);
            worst = fmax(worst, err);
        }
        free(an[i]);
    }
    free(an);
    free(grads);
    return worst;
}

/* A fixed pseudo-random tensor, as loom_tensor. */
static loom_t fixed(loom_ctx *ctx, loom_dtype dt, loom_shape s, int seed)
{
    int64_t n = loom_shape_numel(s);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    for (int64_t i = 0; i < n; i++) {
        v[i] = sin(1.7 * (double)i + seed) * 0.8;
        f[i] = (float)v[i];
    }
    loom_t t = loom_tensor(ctx, dt, s, dt == LOOM_F64 ? (const void *)v : (const void *)f);
    free(v);
    free(f);
    return t;
}

/* loss = sum(y * R) for a fixed R of y's shape. */
static loom_t project(loom_ctx *ctx, loom_t y, int seed)
{
    return loom_sum_all(ctx, loom_mul(ctx, y, fixed(ctx, loom_dtype_of(ctx, y), loom_shape_of(ctx, y), seed)));
}

static loom_t param(loom_ctx *ctx, const char *name, loom_shape s)
{
    loom_t p = loom_param(ctx, name, LOOM_F64, s);
    loom_param_init_uniform(ctx, p, -0.6, 0.6);
    return p;
}

/* ------------------------------------------------------------------ */
/* Cells                                                              */
/* ------------------------------------------------------------------ */

static void test_grad_rnn_cell_tanh_and_relu(void **state)
{
    (void)state;
    for (int relu = 0; relu < 2; relu++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 3 });
        loom_t p[4] = { param(ctx, "w_ih", LOOM_SHAPE(4, 3)), param(ctx, "w_hh", LOOM_SHAPE(4, 4)),
                        param(ctx, "b_ih", LOOM_SHAPE(4)), param(ctx, "b_hh", LOOM_SHAPE(4)) };
        loom_t x = fixed(ctx, LOOM_F64, LOOM_SHAPE(2, 3), 1), h = fixed(ctx, LOOM_F64, LOOM_SHAPE(2, 4), 2);
        /* two steps, so the gradient flows through h */
        loom_t h1 = loom_rnn_cell(ctx, x, h, p[0], p[1], p[2], p[3], relu);
        loom_t h2 = loom_rnn_cell(ctx, x, h1, p[0], p[1], p[2], p[3], relu);
        TU_OK(ctx);
        double w = fd_check(ctx, project(ctx, h2, 5), 4, p, relu ? "rnn cell relu" : "rnn cell tanh");
        print_message("grad rnn cell %s: worst %.2e\n", relu ? "relu" : "tanh", w);
        loom_ctx_free(ctx);
    }
}

static void test_grad_lstm_cell_peepholes_and_projection(void **state)
{
    (void)state;
    for (int variant = 0; variant < 3; variant++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 4 });
        int64_t hid = 4, proj = variant == 2 ? 3 : hid;
        loom_lstm_weights w = {
            .w_ih = param(ctx, "w_ih", LOOM_SHAPE(4 * hid, 3)),
            .w_hh = param(ctx, "w_hh", LOOM_SHAPE(4 * hid, proj)),
            .b_ih = param(ctx, "b_ih", LOOM_SHAPE(4 * hid)),
            .b_hh = param(ctx, "b_hh", LOOM_SHAPE(4 * hid)),
        };
        if (variant >= 1) {
            w.w_ci = param(ctx, "w_ci", LOOM_SHAPE(hid));
            w.w_cf = param(ctx, "w_cf", LOOM_SHAPE(hid));
            w.w_co = param(ctx, "w_co", LOOM_SHAPE(hid));
        }
        if (variant == 2)
            w.w_hr = param(ctx, "w_hr", LOOM_SHAPE(proj, hid));
        loom_t x = fixed(ctx, LOOM_F64, LOOM_SHAPE(2, 3), 1);
        loom_t h = fixed(ctx, LOOM_F64, LOOM_SHAPE(2, proj), 2), c = fixed(ctx, LOOM_F64, LOOM_SHAPE(2, hid), 3);
        loom_t h1, c1, h2, c2;
        assert_int_equal(loom_lstm_cell(ctx, x, h, c, &w, &h1, &c1), LOOM_OK);
        assert_int_equal(loom_lstm_cell(ctx, x, h1, c1, &w, &h2, &c2), LOOM_OK);
        loom_t loss = loom_add(ctx, project(ctx, h2, 5), project(ctx, c2, 6));
        int np = (int)loom_param_count(ctx);
        loom_t ps[16];
        for (int i = 0; i < np; i++)
            ps[i] = loom_param_at(ctx, i);
        static const char *const names[] = { "lstm cell", "lstm cell with peepholes", "lstm cell with peepholes and projection" };
        double worst = fd_check(ctx, loss, np, ps, names[variant]);
        print_message("grad %s: %d parameters, worst %.2e\n", names[variant], np, worst);
        loom_ctx_free(ctx);
    }
}

static void test_grad_gru_cell(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 5 });
    loom_t p[4] = { param(ctx, "w_ih", LOOM_SHAPE(12, 3)), param(ctx, "w_hh", LOOM_SHAPE(12, 4)),
                    param(ctx, "b_ih", LOOM_SHAPE(12)), param(ctx, "b_hh", LOOM_SHAPE(12)) };
    loom_t x = fixed(ctx, LOOM_F64, LOOM_SHAPE(2, 3), 1), h = fixed(ctx, LOOM_F64, LOOM_SHAPE(2, 4), 2);
    loom_t h1 = loom_gru_cell(ctx, x, h, p[0], p[1], p[2], p[3]);
    loom_t h2 = loom_gru_cell(ctx, x, h1, p[0], p[1], p[2], p[3]);
    double w = fd_check(ctx, project(ctx, h2, 5), 4, p, "gru cell");
    print_message("grad gru cell: worst %.2e\n", w);
    loom_ctx_free(ctx);
}

/* ------------------------------------------------------------------ */
/* Stacks                                                             */
/* ------------------------------------------------------------------ */

static loom_rnn *stack_new(loom_ctx *ctx, loom_rnn_mode mode, loom_dtype dt, bool bidir, int layers, bool batch_first)
{
    loom_rnn_config cfg = { .mode = mode, .input_size = 2, .hidden_size = 3, .num_layers = layers,
                            .bidirectional = bidir, .batch_first = batch_first, .dtype = dt };
    loom_rnn *m = loom_rnn_new(ctx, "rnn", &cfg);
    if (!m)
        fail_msg("loom_rnn_new: %s", loom_errmsg(ctx));
    return m;
}

/* A 2-layer bidirectional stack over T = 5 steps with per-example
 * lengths: every parameter's gradient against finite differences. */
static void test_grad_stack_bidirectional_masked_lstm_and_gru(void **state)
{
    (void)state;
    static const loom_rnn_mode modes[] = { LOOM_LSTM, LOOM_GRU, LOOM_RNN_TANH };
    static const char *const names[] = { "lstm", "gru", "rnn" };
    for (size_t k = 0; k < TU_LEN(modes); k++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 6 });
        loom_rnn *m = stack_new(ctx, modes[k], LOOM_F64, true, 2, false);
        int32_t len[3] = { 5, 2, 4 };
        loom_t x = fixed(ctx, LOOM_F64, LOOM_SHAPE(5, 3, 2), 1);
        loom_t out;
        loom_rnn_state fin;
        assert_int_equal(loom_rnn_forward(ctx, m, x, NULL, loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(3), len), true, &out, &fin),
                         LOOM_OK);
        loom_t loss = loom_add(ctx, project(ctx, out, 7), project(ctx, fin.h, 8));
        if (!loom_is_null(fin.c))
            loss = loom_add(ctx, loss, project(ctx, fin.c, 9));
        int np = (int)loom_param_count(ctx);
        loom_t ps[64];
        for (int i = 0; i < np; i++)
            ps[i] = loom_param_at(ctx, i);
        char what[64];
        snprintf(what, sizeof what, "2-layer bidirectional masked %s", names[k]);
        double worst = fd_check(ctx, loss, np, ps, what);
        print_message("grad %s stack: %d parameters, worst %.2e\n", names[k], np, worst);
        loom_rnn_free(m);
        loom_ctx_free(ctx);
    }
}

/* Past its length an example's outputs are 0, its state stops changing
 * and its inputs there receive no gradient. */
static void test_rnn_lengths_mask_outputs_states_and_gradients(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 7 });
    loom_rnn *m = stack_new(ctx, LOOM_LSTM, LOOM_F64, true, 1, false);
    int32_t len[2] = { 4, 2 };
    loom_t x = fixed(ctx, LOOM_F64, LOOM_SHAPE(4, 2, 2), 3), out;
    loom_rnn_state fin;
    assert_int_equal(loom_rnn_forward(ctx, m, x, NULL, loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(2), len), false, &out, &fin),
                     LOOM_OK);
    /* the same model on example 1 alone, cut to its 2 steps */
    loom_t x1 = loom_slice(ctx, loom_slice(ctx, x, 1, 1, 2, 1), 0, 0, 2, 1), out1;
    loom_rnn_state fin1;
    assert_int_equal(loom_rnn_forward(ctx, m, x1, NULL, LOOM_NULL, false, &out1, &fin1), LOOM_OK);
    loom_t dx;
    loom_t loss = project(ctx, out, 4);
    assert_int_equal(loom_vjp(ctx, 1, &loss, NULL, 1, &x, &dx), LOOM_OK);
    loom_t outs[5] = { out, fin.h, out1, fin1.h, dx };
    assert_int_equal(loom_eval(ctx, 5, outs), LOOM_OK);
    const double *o = loom_data(ctx, out), *h = loom_data(ctx, fin.h), *o1 = loom_data(ctx, out1);
    const double *h1 = loom_data(ctx, fin1.h), *g = loom_data(ctx, dx);
    /* out [T=4, B=2, 2 dirs * 3]: example 1, steps 2 and 3 are zero */
    for (int t = 2; t < 4; t++)
        for (int j = 0; j < 6; j++)
            assert_true(o[(t * 2 + 1) * 6 + j] == 0.0);
    /* its valid steps and final states equal the unpadded run's */
    for (int t = 0; t < 2; t++)
        for (int j = 0; j < 6; j++)
            assert_true(fabs(o[(t * 2 + 1) * 6 + j] - o1[t * 6 + j]) < 1e-14);
    for (int d = 0; d < 2; d++)
        for (int j = 0; j < 3; j++)
            assert_true(fabs(h[(d * 2 + 1) * 3 + j] - h1[d * 3 + j]) < 1e-14);
    /* dx [4, 2, 2]: nothing reaches example 1's padded inputs */
    for (int t = 2; t < 4; t++)
        for (int j = 0; j < 2; j++)
            assert_true(g[(t * 2 + 1) * 2 + j] == 0.0);
    assert_true(g[(3 * 2 + 0) * 2] != 0.0);
    loom_rnn_free(m);
    loom_ctx_free(ctx);
}

static void test_rnn_batch_first_matches_time_first(void **state)
{
    (void)state;
    double res[2][4 * 3 * 6];
    for (int bf = 0; bf < 2; bf++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 8 });
        loom_rnn *m = stack_new(ctx, LOOM_GRU, LOOM_F64, true, 2, bf);
        loom_t x = fixed(ctx, LOOM_F64, LOOM_SHAPE(4, 3, 2), 2); /* [T, B, I] */
        if (bf)
            x = loom_transpose(ctx, x, 0, 1);
        loom_t out;
        assert_int_equal(loom_rnn_forward(ctx, m, x, NULL, LOOM_NULL, false, &out, NULL), LOOM_OK);
        if (bf) {
            assert_true(loom_shape_equal(loom_shape_of(ctx, out), LOOM_SHAPE(3, 4, 6)));
            out = loom_transpose(ctx, out, 0, 1);
        }
        assert_int_equal(loom_eval(ctx, 1, &out), LOOM_OK);
        assert_int_equal(loom_read(ctx, out, res[bf], sizeof res[bf]), LOOM_OK);
        loom_rnn_free(m);
        loom_ctx_free(ctx);
    }
    assert_memory_equal(res[0], res[1], sizeof res[0]);
}

static void test_rnn_parameter_names_and_shapes_are_pytorch(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(NULL);
    loom_rnn_config cfg = { .mode = LOOM_LSTM, .input_size = 10, .hidden_size = 20, .num_layers = 2,
                            .bidirectional = true, .proj_size = 5 };
    loom_rnn *m = loom_rnn_new(ctx, "lstm", &cfg);
    assert_non_null(m);
    /* torch.nn.LSTM(10, 20, 2, bidirectional=True, proj_size=5).state_dict() */
    static const struct {
        const char *name;
        loom_shape s;
    } want[] = {
        { "lstm.weight_ih_l0", { 2, { 80, 10 } } },         { "lstm.weight_hh_l0", { 2, { 80, 5 } } },
        { "lstm.bias_ih_l0", { 1, { 80 } } },               { "lstm.bias_hh_l0", { 1, { 80 } } },
        { "lstm.weight_hr_l0", { 2, { 5, 20 } } },          { "lstm.weight_ih_l0_reverse", { 2, { 80, 10 } } },
        { "lstm.weight_hh_l0_reverse", { 2, { 80, 5 } } },  { "lstm.bias_ih_l0_reverse", { 1, { 80 } } },
        { "lstm.bias_hh_l0_reverse", { 1, { 80 } } },       { "lstm.weight_hr_l0_reverse", { 2, { 5, 20 } } },
        { "lstm.weight_ih_l1", { 2, { 80, 10 } } },         { "lstm.weight_hh_l1", { 2, { 80, 5 } } },
        { "lstm.bias_ih_l1", { 1, { 80 } } },               { "lstm.bias_hh_l1", { 1, { 80 } } },
        { "lstm.weight_hr_l1", { 2, { 5, 20 } } },          { "lstm.weight_ih_l1_reverse", { 2, { 80, 10 } } },
        { "lstm.weight_hh_l1_reverse", { 2, { 80, 5 } } },  { "lstm.bias_ih_l1_reverse", { 1, { 80 } } },
        { "lstm.bias_hh_l1_reverse", { 1, { 80 } } },       { "lstm.weight_hr_l1_reverse", { 2, { 5, 20 } } },
    };
    assert_int_equal(loom_param_count(ctx), TU_LEN(want));
    for (size_t i = 0; i < TU_LEN(want); i++) {
        loom_t p = loom_param_at(ctx, i);
        assert_string_equal(loom_param_name(ctx, p), want[i].name);
        loom_shape s = loom_shape_of(ctx, p), w = want[i].s;
        /* layer 1's input is both directions' projected outputs: 2 * 5 */
        if (strstr(want[i].name, "weight_ih_l1"))
            w.d[1] = 10;
        assert_true(loom_shape_equal(s, w));
        /* U(-1/sqrt(20), 1/sqrt(20)) */
        const float *v = loom_param_data(ctx, p);
        for (int64_t j = 0; j < loom_shape_numel(s); j++)
            assert_true(fabsf(v[j]) <= 1 / sqrtf(20) + 1e-7f);
    }
    loom_rnn_free(m);
    loom_ctx_free(ctx);
}

/* Initial states flow in; final states come out with PyTorch's shapes. */
static void test_rnn_initial_and_final_states(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 9 });
    loom_rnn *m = stack_new(ctx, LOOM_LSTM, LOOM_F64, true, 2, false);
    loom_t x = fixed(ctx, LOOM_F64, LOOM_SHAPE(3, 2, 2), 1);
    loom_rnn_state init = { fixed(ctx, LOOM_F64, LOOM_SHAPE(4, 2, 3), 2), fixed(ctx, LOOM_F64, LOOM_SHAPE(4, 2, 3), 3) };
    loom_t a, b;
    loom_rnn_state fa, fb;
    assert_int_equal(loom_rnn_forward(ctx, m, x, &init, LOOM_NULL, false, &a, &fa), LOOM_OK);
    assert_int_equal(loom_rnn_forward(ctx, m, x, NULL, LOOM_NULL, false, &b, &fb), LOOM_OK);
    assert_true(loom_shape_equal(loom_shape_of(ctx, fa.h), LOOM_SHAPE(4, 2, 3)));
    assert_true(loom_shape_equal(loom_shape_of(ctx, fa.c), LOOM_SHAPE(4, 2, 3)));
    /* the forward direction's last output is its final h */
    loom_t last = loom_reshape(ctx, loom_slice(ctx, loom_slice(ctx, a, 0, 2, 3, 1), 2, 0, 3, 1), LOOM_SHAPE(2, 3));
    loom_t fh = loom_reshape(ctx, loom_slice(ctx, fa.h, 0, 2, 3, 1), LOOM_SHAPE(2, 3));
    loom_t d = loom_sum_all(ctx, loom_abs(ctx, loom_sub(ctx, a, b)));
    loom_t outs[3] = { last, fh, d };
    assert_int_equal(loom_eval(ctx, 3, outs), LOOM_OK);
    assert_memory_equal(loom_data(ctx, last), loom_data(ctx, fh), 6 * sizeof(double));
    assert_true(loom_item(ctx, d) > 1e-3); /* the initial state mattered */
    /* a wrong initial shape is refused, naming both shapes */
    loom_rnn_state bad = { fixed(ctx, LOOM_F64, LOOM_SHAPE(2, 2, 3), 2), LOOM_NULL };
    assert_int_equal(loom_rnn_forward(ctx, m, x, &bad, LOOM_NULL, false, &a, NULL), LOOM_ERR_SHAPE);
    tu_assert_error(ctx, LOOM_ERR_SHAPE, "[2,2,3]", "[4,2,3]");
    loom_rnn_free(m);
    loom_ctx_free(ctx);
}

/* The JIT and the reference executor agree on masked stacks, forward and
 * backward (this caught an in-place placement bug in multi-output
 * kernels). */
static void test_rnn_jit_matches_reference_on_masked_stacks(void **state)
{
    (void)state;
    static const loom_rnn_mode modes[] = { LOOM_RNN_TANH, LOOM_RNN_RELU, LOOM_LSTM, LOOM_GRU };
    for (size_t k = 0; k < TU_LEN(modes); k++)
        for (int dt = 0; dt < 2; dt++) {
            double *g[2] = { NULL, NULL };
            size_t total = 0;
            for (int be = 0; be < 2; be++) {
                loom_dtype d = dt ? LOOM_F64 : LOOM_F32;
                loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 1, .backend = be ? LOOM_BACKEND_REFERENCE : LOOM_BACKEND_JIT });
                loom_rnn *m = stack_new(ctx, modes[k], d, true, 2, false);
                int32_t len[3] = { 6, 3, 5 };
                loom_t x = fixed(ctx, d, LOOM_SHAPE(6, 3, 2), 2), out;
                loom_rnn_state fin;
                assert_int_equal(loom_rnn_forward(ctx, m, x, NULL, loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(3), len), false, &out, &fin),
                                 LOOM_OK);
                loom_t loss = loom_add(ctx, project(ctx, out, 3), project(ctx, fin.h, 4));
                assert_int_equal(loom_backward(ctx, loss), LOOM_OK);
                size_t np = loom_param_count(ctx);
                loom_t outs[40];
                for (size_t i = 0; i < np; i++)
                    outs[i] = loom_grad(ctx, loom_param_at(ctx, i));
                assert_int_equal(loom_run(ctx, (int)np, outs), LOOM_OK);
                total = 0;
                for (size_t i = 0; i < np; i++)
                    total += (size_t)loom_shape_numel(loom_shape_of(ctx, outs[i]));
                g[be] = malloc(total * sizeof(double));
                size_t at = 0;
                for (size_t i = 0; i < np; i++) {
                    int64_t n = loom_shape_numel(loom_shape_of(ctx, outs[i]));
                    const void *v = loom_data(ctx, outs[i]);
                    for (int64_t j = 0; j < n; j++)
                        g[be][at++] = d == LOOM_F64 ? ((const double *)v)[j] : ((const float *)v)[j];
                }
                loom_rnn_free(m);
                loom_ctx_free(ctx);
            }
            /* f64 at 1e-12 checks the logic; in f32 the rounding of GEMM
             * accumulation and of polynomial tanh/sigmoid compounds
             * through two layers of BPTT, so 5e-5 */
            double maxref = 0, worst = 0, tol = dt ? 1e-12 : 5e-5;
            for (size_t i = 0; i < total; i++)
                maxref = fmax(maxref, fabs(g[1][i]));
            for (size_t i = 0; i < total; i++)
                worst = fmax(worst, fabs(g[0][i] - g[1][i]) / fmax(fabs(g[1][i]), 1e-3 * maxref));
            if (worst > tol)
                fail_msg("mode %d %s: JIT gradients differ from the reference by %.3g", (int)modes[k], dt ? "f64" : "f32", worst);
            free(g[0]);
            free(g[1]);
        }
}

/* ------------------------------------------------------------------ */
/* Gradient checkpointing                                             */
/* ------------------------------------------------------------------ */

/* The models: loom's LSTM stack (2 layers, dropout between them, so the
 * recomputed masks must equal the forward's), the layer-normalised LSTM
 * of examples/ln_lstm.h written from primitive ops, stepped by hand (the
 * final c as well as every h in the loss), and a bidirectional GRU
 * stack with per-example lengths (the reverse direction records its
 * steps last to first; masks keep states past an example's end). */
typedef enum ck_model { CK_RNN_LSTM, CK_LN_LSTM, CK_GRU_BIDIR } ck_model;

enum { CK_T = 32, CK_B = 3, CK_I = 5, CK_H = 6, CK_MAXP = 32 };

/* Records the model over CK_T steps in dtype dt and its loss; *m gets
 * the stack to free (CK_RNN_LSTM). */
static loom_t ck_loss(loom_ctx *ctx, ck_model model, loom_dtype dt, loom_rnn **m)
{
    loom_t x = fixed(ctx, dt, LOOM_SHAPE(CK_T, CK_B, CK_I), 1), out;
    *m = NULL;
    if (model == CK_RNN_LSTM) {
        *m = loom_rnn_new(ctx, "lstm", &(loom_rnn_config){ .mode = LOOM_LSTM, .input_size = CK_I, .hidden_size = CK_H,
                                                           .num_layers = 2, .dropout = 0.3, .dtype = dt });
        loom_rnn_state fin;
        loom_rnn_forward(ctx, *m, x, NULL, LOOM_NULL, true, &out, &fin);
        return loom_add(ctx, project(ctx, out, 3), project(ctx, fin.c, 4));
    }
    if (model == CK_GRU_BIDIR) {
        *m = loom_rnn_new(ctx, "gru", &(loom_rnn_config){ .mode = LOOM_GRU, .input_size = CK_I, .hidden_size = CK_H,
                                                          .num_layers = 2, .bidirectional = true, .dtype = dt });
        int32_t len[CK_B] = { CK_T, 19, 26 };
        loom_rnn_state fin;
        loom_rnn_forward(ctx, *m, x, NULL, loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(CK_B), len), true, &out, &fin);
        return loom_add(ctx, project(ctx, out, 3), project(ctx, fin.h, 4));
    }
    ln_lstm cell;
    if (dt == LOOM_F32) {
        ln_lstm_init(ctx, &cell, CK_I, CK_H);
    } else { /* the same in f64 */
        double bound = 1.0 / sqrt((double)CK_H);
        cell.wx = loom_param(ctx, "cell.wx", dt, LOOM_SHAPE(4 * CK_H, CK_I));
        cell.wh = loom_param(ctx, "cell.wh", dt, LOOM_SHAPE(4 * CK_H, CK_H));
        cell.b = loom_param(ctx, "cell.b", dt, LOOM_SHAPE(4 * CK_H));
        loom_param_init_uniform(ctx, cell.wx, -bound, bound);
        loom_param_init_uniform(ctx, cell.wh, -bound, bound);
        loom_layernorm_init(ctx, &cell.ln_x, "cell.ln_x", 4 * CK_H, 1e-5, dt);
        loom_layernorm_init(ctx, &cell.ln_h, "cell.ln_h", 4 * CK_H, 1e-5, dt);
        loom_layernorm_init(ctx, &cell.ln_c, "cell.ln_c", CK_H, 1e-5, dt);
    }
    /* not from zeros: layer norm of an all-zero h Wh divides by sqrt(eps),
     * and gradients in the 1e12s amplify any rounding */
    loom_t h = fixed(ctx, dt, LOOM_SHAPE(CK_B, CK_H), 5), c = fixed(ctx, dt, LOOM_SHAPE(CK_B, CK_H), 6), hs[CK_T];
    for (int t = 0; t < CK_T; t++) {
        loom_step_begin(ctx, t);
        loom_t xt = loom_reshape(ctx, loom_slice(ctx, x, 0, t, t + 1, 1), LOOM_SHAPE(CK_B, CK_I));
        ln_lstm_step(ctx, &cell, CK_H, xt, h, c, &h, &c);
        hs[t] = loom_reshape(ctx, h, LOOM_SHAPE(1, CK_B, CK_H));
        loom_step_end(ctx);
    }
    return loom_add(ctx, project(ctx, loom_concat(ctx, CK_T, hs, 0), 3), project(ctx, c, 4));
}

/* Every parameter's gradient with checkpoint_every k. */
typedef struct ck_result {
    size_t np, nodes;
    size_t off[CK_MAXP + 1]; /* parameter i's gradient is g[off[i] .. off[i + 1]) */
    double *g;
} ck_result;

static ck_result ck_grads(ck_model model, loom_dtype dt, loom_backend be, int k)
{
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 11, .backend = be });
    assert_int_equal(loom_set_checkpoint_every(ctx, k), LOOM_OK);
    loom_rnn *m;
    loom_t loss = ck_loss(ctx, model, dt, &m);
    assert_int_equal(loom_backward(ctx, loss), LOOM_OK);
    ck_result r = { .np = loom_param_count(ctx) };
    loom_t outs[CK_MAXP];
    assert_true(r.np <= CK_MAXP);
    for (size_t i = 0; i < r.np; i++)
        if (loom_is_null(outs[i] = loom_grad(ctx, loom_param_at(ctx, i))))
            fail_msg("%s has no gradient", loom_param_name(ctx, loom_param_at(ctx, i)));
    TU_OK(ctx);
    r.nodes = loom_node_count(ctx);
    assert_int_equal(loom_run(ctx, (int)r.np, outs), LOOM_OK);
    for (size_t i = 0; i < r.np; i++)
        r.off[i + 1] = r.off[i] + (size_t)loom_shape_numel(loom_shape_of(ctx, outs[i]));
    r.g = malloc(r.off[r.np] * sizeof *r.g);
    for (size_t i = 0; i < r.np; i++) {
        const void *v = loom_data(ctx, outs[i]);
        for (size_t j = 0; j < r.off[i + 1] - r.off[i]; j++)
            r.g[r.off[i] + j] = loom_dtype_of(ctx, outs[i]) == LOOM_F64 ? ((const double *)v)[j] : ((const float *)v)[j];
    }
    loom_rnn_free(m);
    loom_ctx_free(ctx);
    return r;
}

/* Gradients with checkpointing every 4 and 8 steps (and every 5, whose
 * last segment is short) equal those without, under both executors, in
 * f32 and f64, for the built-in LSTM with dropout, a cell written from
 * ops and a masked bidirectional GRU; and the tape did grow by the
 * recomputation. Each gradient tensor is compared
 * relative to its largest element: checkpointing sums a weight's
 * gradient segment by segment, so f32 sums round differently (f64 shows
 * the computation is the same to 1e-12). */
static void test_checkpoint_gradients_match_without(void **state)
{
    (void)state;
    static const char *const names[] = { "loom_rnn LSTM x2 + dropout", "ln_lstm from ops",
                                         "loom_rnn GRU x2 bidirectional + lengths" };
    static const int ks[] = { 4, 8, 5 };
    for (int model = 0; model < 3; model++)
        for (int dt = 0; dt < 2; dt++)
            for (int be = 0; be < 2; be++) {
                loom_dtype dtype = dt ? LOOM_F64 : LOOM_F32;
                loom_backend backend = be ? LOOM_BACKEND_REFERENCE : LOOM_BACKEND_JIT;
                double tol = dt ? 1e-12 : 1e-5;
                ck_result r0 = ck_grads((ck_model)model, dtype, backend, 0);
                /* f64 checks the logic once; f32 the segment lengths */
                for (size_t j = 0; j < (dt ? 1 : TU_LEN(ks)); j++) {
                    ck_result r = ck_grads((ck_model)model, dtype, backend, ks[j]);
                    assert_int_equal(r.np, r0.np);
                    double worst = 0, worst_elem = 0;
                    size_t exact = 0, n = r.off[r.np];
                    for (size_t p = 0; p < r.np; p++) {
                        double scale = 0;
                        for (size_t i = r0.off[p]; i < r0.off[p + 1]; i++)
                            scale = fmax(scale, fabs(r0.g[i]));
                        assert_true(scale > 0);
                        for (size_t i = r0.off[p]; i < r0.off[p + 1]; i++) {
                            double d = fabs(r.g[i] - r0.g[i]);
                            worst = fmax(worst, d / scale);
                            worst_elem = fmax(worst_elem, d / fmax(fabs(r0.g[i]), 1e-3 * scale));
                            exact += r.g[i] == r0.g[i];
                        }
                    }
                    print_message("checkpoint %s, %s, %s, k=%d: %zu -> %zu nodes, %zu/%zu gradients bitwise equal, "
                                  "worst difference %.2e of the tensor's largest (elementwise %.2e)\n",
                                  names[model], loom_dtype_name(dtype), be ? "reference" : "jit", ks[j], r0.nodes,
                                  r.nodes, exact, n, worst, worst_elem);
                    if (worst > tol)
                        fail_msg("%s, %s, %s, checkpoint_every %d: gradients differ by %.3g", names[model],
                                 loom_dtype_name(dtype), be ? "reference" : "jit", ks[j], worst);
                    if (r.nodes <= r0.nodes + (size_t)CK_T)
                        fail_msg("%s, k=%d: the tape grew from %zu to %zu nodes only: nothing was recomputed",
                                 names[model], ks[j], r0.nodes, r.nodes);
                    free(r.g);
                }
                free(r0.g);
            }
}

/* The JIT's plan for an LSTM's loss and gradients over T = 128 steps (H
 * = 256, B = 32): with checkpointing every 16 steps its arena must be
 * well under half of the plan without (the activations of 112 steps
 * fewer, the per-step gate gradients summed per segment). This is also
 * what fails if the recomputation were placed early, in the forward
 * pass: its values would then live as long as the originals did. */
static void test_checkpoint_plan_memory_is_smaller(void **state)
{
    (void)state;
    enum { T = 128, H = 256, B = 32 };
    float *xd = malloc((size_t)T * B * H * sizeof *xd); /* [T, B, H] */
    for (size_t i = 0; i < (size_t)T * B * H; i++)
        xd[i] = 0.5f * sinf(1.7f * (float)i);
    uint64_t bytes[2];
    double loss[2];
    for (int c = 0; c < 2; c++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 3, .backend = LOOM_BACKEND_JIT, .checkpoint_every = c ? 16 : 0 });
        loom_rnn *m = loom_rnn_new(ctx, "lstm", &(loom_rnn_config){ .mode = LOOM_LSTM, .input_size = H, .hidden_size = H });
        loom_t x = loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(T, B, H), xd), out;
        loom_rnn_forward(ctx, m, x, NULL, LOOM_NULL, true, &out, NULL);
        loom_t outs[5] = { loom_mean_all(ctx, loom_mul(ctx, out, out)) };
        assert_int_equal(loom_backward(ctx, outs[0]), LOOM_OK);
        for (int i = 0; i < 4; i++)
            outs[i + 1] = loom_grad(ctx, loom_param_at(ctx, (size_t)i));
        TU_OK(ctx);
        assert_int_equal(loom_run(ctx, 5, outs), LOOM_OK);
        loom_stats st;
        assert_int_equal(loom_get_stats(ctx, &st), LOOM_OK);
        bytes[c] = st.plan_bytes;
        loss[c] = loom_item(ctx, outs[0]);
        loom_rnn_free(m);
        loom_ctx_free(ctx);
    }
    free(xd);
    print_message("checkpoint LSTM T=%d H=%d B=%d: plan_bytes %.1f MiB without, %.1f MiB every 16 steps (%.2f)\n", T,
                  H, B, (double)bytes[0] / 1048576.0, (double)bytes[1] / 1048576.0, (double)bytes[1] / (double)bytes[0]);
    assert_true(loss[0] == loss[1]); /* the forward pass is untouched */
    if (!(bytes[1] * 2 < bytes[0]))
        fail_msg("checkpointing every 16 steps: plan_bytes %llu, without %llu: not under half",
                 (unsigned long long)bytes[1], (unsigned long long)bytes[0]);
}

/* Checkpointing is off by default, set per context, and refuses a
 * negative k with a message, through the setter and the options. */
static void test_checkpoint_setting_and_errors(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(NULL);
    assert_int_equal(loom_get_checkpoint_every(ctx), 0);
    assert_int_equal(loom_set_checkpoint_every(ctx, 16), LOOM_OK);
    assert_int_equal(loom_get_checkpoint_every(ctx), 16);
    assert_int_equal(loom_set_checkpoint_every(ctx, -2), LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "loom_set_checkpoint_every", "-2");
    assert_int_equal(loom_get_checkpoint_every(ctx), 16);
    loom_ctx_free(ctx);
    assert_int_equal(loom_set_checkpoint_every(NULL, 4), LOOM_ERR_HANDLE);
    assert_int_equal(loom_get_checkpoint_every(NULL), 0);
    ctx = loom_ctx_new(&(loom_options){ .checkpoint_every = -1 });
    assert_non_null(ctx);
    tu_assert_error(ctx, LOOM_ERR_ARG, "loom_ctx_new", "checkpoint_every");
    loom_ctx_free(ctx);
    ctx = loom_ctx_new(&(loom_options){ .checkpoint_every = 3 });
    assert_int_equal(loom_get_checkpoint_every(ctx), 3);
    /* a tape without step marks has nothing to recompute: same graph */
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(4));
    loom_t loss = loom_sum_all(ctx, loom_tanh(ctx, loom_mul(ctx, w, w)));
    size_t before = loom_node_count(ctx);
    assert_int_equal(loom_backward(ctx, loss), LOOM_OK);
    assert_true(loom_node_count(ctx) > before);
    TU_OK(ctx);
    loom_ctx_free(ctx);
}

static void test_rnn_bad_configurations_are_refused(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(NULL);
    loom_rnn_config bad[] = {
        { .mode = LOOM_LSTM, .input_size = 0, .hidden_size = 4 },
        { .mode = LOOM_GRU, .input_size = 3, .hidden_size = 4, .proj_size = 2 },
        { .mode = LOOM_LSTM, .input_size = 3, .hidden_size = 4, .proj_size = 4 },
        { .mode = LOOM_RNN_TANH, .input_size = 3, .hidden_size = 4, .peepholes = true },
        { .mode = LOOM_LSTM, .input_size = 3, .hidden_size = 4, .dropout = 1.0 },
        { .mode = (loom_rnn_mode)9, .input_size = 3, .hidden_size = 4 },
    };
    for (size_t i = 0; i < TU_LEN(bad); i++) {
        assert_null(loom_rnn_new(ctx, "r", &bad[i]));
        tu_assert_error(ctx, LOOM_ERR_ARG, "loom_rnn_new", NULL);
        loom_clear_error(ctx);
    }
    loom_rnn_config ok = { .mode = LOOM_LSTM, .input_size = 3, .hidden_size = 4 };
    loom_rnn *m = loom_rnn_new(ctx, "r", &ok);
    loom_t out, x = loom_full(ctx, LOOM_F32, LOOM_SHAPE(5, 2, 4), 0);
    assert_int_equal(loom_rnn_forward(ctx, m, x, NULL, LOOM_NULL, false, &out, NULL), LOOM_ERR_SHAPE);
    tu_assert_error(ctx, LOOM_ERR_SHAPE, "f32[5,2,4]", "T, B, 3");
    loom_rnn_free(m);
    loom_ctx_free(ctx);
}

/* ------------------------------------------------------------------ */
/* Losses                                                             */
/* ------------------------------------------------------------------ */

static double eval1(loom_ctx *ctx, loom_t t)
{
    if (loom_eval(ctx, 1, &t) != LOOM_OK)
        fail_msg("eval: %s", loom_errmsg(ctx));
    return loom_item(ctx, t);
}

static void test_loss_cross_entropy_reductions_ignore_and_smoothing(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(NULL);
    double lg[3][4] = { { 1, 2, 0.5, -1 }, { 0.1, 0.2, 0.3, 0.4 }, { -2, 3, 1, 0 } };
    int32_t y[3] = { 1, 3, -100 };
    loom_t logits = loom_tensor(ctx, LOOM_F64, LOOM_SHAPE(3, 4), lg);
    loom_t labels = loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(3), y);
    double nll[3], smooth[3];
    for (int i = 0; i < 3; i++) {
        double m = -1e9, s = 0;
        for (int j = 0; j < 4; j++)
            m = fmax(m, lg[i][j]);
        for (int j = 0; j < 4; j++)
            s += exp(lg[i][j] - m);
        double lse = m + log(s);
        nll[i] = y[i] >= 0 ? lse - lg[i][y[i]] : 0;
        smooth[i] = 0;
        for (int j = 0; j < 4; j++)
            smooth[i] += (lse - lg[i][j]) / 4;
    }
    loom_ce_options o = { .use_ignore_index = true, .ignore_index = -100 };
    assert_true(fabs(eval1(ctx, loom_cross_entropy_ex(ctx, logits, labels, &o)) - (nll[0] + nll[1]) / 2) < 1e-14);
    o.reduction = LOOM_REDUCE_SUM;
    assert_true(fabs(eval1(ctx, loom_cross_entropy_ex(ctx, logits, labels, &o)) - (nll[0] + nll[1])) < 1e-14);
    o.reduction = LOOM_REDUCE_NONE;
    loom_t per = loom_cross_entropy_ex(ctx, logits, labels, &o);
    assert_int_equal(loom_eval(ctx, 1, &per), LOOM_OK);
    tu_assert_close(loom_data(ctx, per), nll, 3, 1e-14, "per-example cross-entropy");
    /* label smoothing 0.1, PyTorch's formula */
    o = (loom_ce_options){ .use_ignore_index = true, .ignore_index = -100, .label_smoothing = 0.1 };
    double want = (0.9 * nll[0] + 0.1 * smooth[0] + 0.9 * nll[1] + 0.1 * smooth[1]) / 2;
    assert_true(fabs(eval1(ctx, loom_cross_entropy_ex(ctx, logits, labels, &o)) - want) < 1e-14);
    /* huge logits stay finite */
    double big[2] = { 1000, -1000 };
    int32_t y0 = 1;
    loom_t l2 = loom_cross_entropy(ctx, loom_tensor(ctx, LOOM_F64, LOOM_SHAPE(1, 2), big),
                                   loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(1), &y0));
    assert_true(fabs(eval1(ctx, l2) - 2000) < 1e-9);
    /* bad labels */
    loom_cross_entropy(ctx, logits, logits);
    tu_assert_error(ctx, LOOM_ERR_DTYPE, "loom_cross_entropy", "f64[3,4]"); /* f64 labels: a dtype error */
    loom_ctx_free(ctx);
}

static void test_loss_bce_with_logits_and_mse(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(NULL);
    double x[4] = { -800, -1, 0.5, 900 }, t[4] = { 0, 1, 0.25, 1 }, want = 0;
    for (int i = 0; i < 4; i++)
        want += fmax(x[i], 0) - x[i] * t[i] + log1p(exp(-fabs(x[i])));
    loom_t lx = loom_tensor(ctx, LOOM_F64, LOOM_SHAPE(4), x), lt = loom_tensor(ctx, LOOM_F64, LOOM_SHAPE(4), t);
    assert_true(fabs(eval1(ctx, loom_bce_with_logits(ctx, lx, lt, LOOM_REDUCE_SUM)) - want) < 1e-12);
    assert_true(fabs(eval1(ctx, loom_bce_with_logits(ctx, lx, lt, LOOM_REDUCE_MEAN)) - want / 4) < 1e-12);
    double mse = 0;
    for (int i = 0; i < 4; i++)
        mse += (t[i] - x[i] / 1000) * (t[i] - x[i] / 1000);
    loom_t px = loom_muls(ctx, lx, 1e-3);
    assert_true(fabs(eval1(ctx, loom_mse_ex(ctx, px, lt, LOOM_REDUCE_SUM)) - mse) < 1e-12);
    assert_true(fabs(eval1(ctx, loom_mse(ctx, px, lt)) - mse / 4) < 1e-12);
    loom_ctx_free(ctx);
}

/* ------------------------------------------------------------------ */
/* Modules                                                            */
/* ------------------------------------------------------------------ */

static void test_modules_linear_embedding_layernorm(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 2 });
    loom_linear fc;
    assert_int_equal(loom_linear_init(ctx, &fc, "fc", 3, 2, true, LOOM_F64), LOOM_OK);
    assert_string_equal(loom_param_name(ctx, fc.weight), "fc.weight");
    assert_true(loom_shape_equal(loom_shape_of(ctx, fc.weight), LOOM_SHAPE(2, 3)));
    double w[6] = { 1, 2, 3, 4, 5, 6 }, b[2] = { 0.5, -0.5 }, x[2][2][3] = { { { 1, 0, 0 }, { 0, 1, 0 } }, { { 0, 0, 1 }, { 1, 1, 1 } } };
    loom_param_set(ctx, fc.weight, w, sizeof w);
    loom_param_set(ctx, fc.bias, b, sizeof b);
    loom_t y = loom_linear_forward(ctx, &fc, loom_tensor(ctx, LOOM_F64, LOOM_SHAPE(2, 2, 3), x));
    assert_int_equal(loom_eval(ctx, 1, &y), LOOM_OK);
    double want[8] = { 1.5, 3.5, 2.5, 4.5, 3.5, 5.5, 6.5, 14.5 };
    tu_assert_close(loom_data(ctx, y), want, 8, 1e-15, "linear");

    loom_embedding emb;
    assert_int_equal(loom_embedding_init(ctx, &emb, "emb", 5, 2, LOOM_F64), LOOM_OK);
    double table[10] = { 0, 1, 10, 11, 20, 21, 30, 31, 40, 41 };
    loom_param_set(ctx, emb.weight, table, sizeof table);
    int32_t ids[3] = { 4, 0, 4 };
    loom_t e = loom_embedding_forward(ctx, &emb, loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(3), ids));
    assert_int_equal(loom_eval(ctx, 1, &e), LOOM_OK);
    double ewant[6] = { 40, 41, 0, 1, 40, 41 };
    tu_assert_close(loom_data(ctx, e), ewant, 6, 0, "embedding");

    loom_layernorm ln;
    assert_int_equal(loom_layernorm_init(ctx, &ln, "ln", 4, 1e-5, LOOM_F64), LOOM_OK);
    double v[4] = { 1, 2, 3, 6 }, mean = 3, var = (4 + 1 + 0 + 9) / 4.0, lwant[4];
    for (int i = 0; i < 4; i++)
        lwant[i] = (v[i] - mean) / sqrt(var + 1e-5);
    loom_t l = loom_layernorm_forward(ctx, &ln, loom_tensor(ctx, LOOM_F64, LOOM_SHAPE(1, 4), v));
    assert_int_equal(loom_eval(ctx, 1, &l), LOOM_OK);
    tu_assert_close(loom_data(ctx, l), lwant, 4, 1e-14, "layer norm");
    loom_ctx_free(ctx);
}

static void test_modules_dropout_scales_and_masks(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 4 });
    loom_t x = loom_full(ctx, LOOM_F32, LOOM_SHAPE(20000), 1);
    loom_t y = loom_dropout(ctx, x, 0.25, true);
    assert_int_equal(loom_eval(ctx, 1, &y), LOOM_OK);
    const float *v = loom_data(ctx, y);
    int zeros = 0;
    for (int i = 0; i < 20000; i++) {
        assert_true(v[i] == 0.0f || fabsf(v[i] - 1 / 0.75f) < 1e-6f);
        zeros += v[i] == 0.0f;
    }
    assert_true(fabs(zeros / 20000.0 - 0.25) < 0.02);
    /* not training: the identity, the very same handle */
    loom_t z = loom_dropout(ctx, x, 0.25, false);
    assert_true(z.id == x.id && z.tag == x.tag);
    loom_ctx_free(ctx);
}

/* LoRA: the base weight is frozen, only A and B train, and merging keeps
 * the adapted model's outputs. */
static void test_modules_lora_trains_adapters_only_and_merges(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 5 });
    loom_linear fc;
    loom_linear_init(ctx, &fc, "fc", 6, 4, true, LOOM_F64);
    assert_int_equal(loom_lora_add(ctx, fc.weight, 2, 4.0), LOOM_OK);
    assert_true(loom_lora_attached(ctx, fc.weight));
    assert_false(loom_param_trainable(ctx, fc.weight));
    loom_t a = loom_param_find(ctx, "fc.weight.lora_A"), b = loom_param_find(ctx, "fc.weight.lora_B");
    assert_false(loom_is_null(a));
    assert_false(loom_is_null(b));
    double w0[24];
    memcpy(w0, loom_param_data(ctx, fc.weight), sizeof w0);
    /* a few hand-written SGD steps on every trainable parameter */
    loom_t x = fixed(ctx, LOOM_F64, LOOM_SHAPE(5, 6), 1);
    loom_t loss = loom_mse(ctx, loom_linear_forward(ctx, &fc, x), fixed(ctx, LOOM_F64, LOOM_SHAPE(5, 4), 2));
    assert_int_equal(loom_backward(ctx, loss), LOOM_OK);
    assert_true(loom_is_null(loom_grad(ctx, fc.weight)));
    loom_t trained[3] = { a, b, fc.bias };
    for (int i = 0; i < 3; i++)
        loom_assign(ctx, trained[i], loom_sub(ctx, trained[i], loom_muls(ctx, loom_grad(ctx, trained[i]), 0.1)));
    double first = 0, last = 0;
    for (int s = 0; s < 20; s++) {
        assert_int_equal(loom_run(ctx, 1, &loss), LOOM_OK);
        last = loom_item(ctx, loss);
        if (s == 0)
            first = last;
    }
    assert_true(last < first);
    assert_memory_equal(loom_param_data(ctx, fc.weight), w0, sizeof w0); /* untouched */
    /* merge: the plain layer now computes what the adapted one did */
    loom_t y = loom_linear_forward(ctx, &fc, x);
    assert_int_equal(loom_eval(ctx, 1, &y), LOOM_OK);
    double before[20];
    memcpy(before, loom_data(ctx, y), sizeof before);
    assert_int_equal(loom_lora_merge(ctx, fc.weight), LOOM_OK);
    assert_false(loom_lora_attached(ctx, fc.weight));
    loom_reset(ctx); /* a fresh tape: loom_weight no longer adds the adapter */
    x = fixed(ctx, LOOM_F64, LOOM_SHAPE(5, 6), 1);
    y = loom_linear_forward(ctx, &fc, x);
    assert_int_equal(loom_eval(ctx, 1, &y), LOOM_OK);
    tu_assert_close(loom_data(ctx, y), before, 20, 1e-13, "merged outputs");
    /* errors */
    assert_int_equal(loom_lora_merge(ctx, fc.weight), LOOM_ERR_STATE);
    loom_clear_error(ctx);
    assert_int_equal(loom_lora_add(ctx, fc.bias, 1, 1.0), LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "fc.bias", NULL);
    loom_ctx_free(ctx);
}

static void test_modules_freeze_by_prefix(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(NULL);
    loom_rnn_config cfg = { .mode = LOOM_GRU, .input_size = 3, .hidden_size = 4, .num_layers = 2 };
    loom_rnn *m = loom_rnn_new(ctx, "enc", &cfg);
    loom_linear head;
    loom_linear_init(ctx, &head, "head", 4, 2, true, LOOM_F32);
    assert_int_equal(loom_params_set_trainable(ctx, "enc.", false), 8);
    assert_int_equal(loom_params_set_trainable(ctx, "enc.weight_ih_l1", true), 1);
    for (size_t i = 0; i < loom_param_count(ctx); i++) {
        loom_t p = loom_param_at(ctx, i);
        const char *n = loom_param_name(ctx, p);
        bool want = strncmp(n, "head.", 5) == 0 || strcmp(n, "enc.weight_ih_l1") == 0;
        assert_int_equal(loom_param_trainable(ctx, p), want);
    }
    loom_rnn_free(m);
    loom_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_rnn_cell_tanh_and_relu),
        cmocka_unit_test(test_grad_lstm_cell_peepholes_and_projection),
        cmocka_unit_test(test_grad_gru_cell),
        cmocka_unit_test(test_grad_stack_bidirectional_masked_lstm_and_gru),
        cmocka_unit_test(test_rnn_lengths_mask_outputs_states_and_gradients),
        cmocka_unit_test(test_rnn_batch_first_matches_time_first),
        cmocka_unit_test(test_rnn_parameter_names_and_shapes_are_pytorch),
        cmocka_unit_test(test_rnn_initial_and_final_states),
        cmocka_unit_test(test_rnn_jit_matches_reference_on_masked_stacks),
        cmocka_unit_test(test_checkpoint_gradients_match_without),
        cmocka_unit_test(test_checkpoint_plan_memory_is_smaller),
        cmocka_unit_test(test_checkpoint_setting_and_errors),
        cmocka_unit_test(test_rnn_bad_configurations_are_refused),
        cmocka_unit_test(test_loss_cross_entropy_reductions_ignore_and_smoothing),
        cmocka_unit_test(test_loss_bce_with_logits_and_mse),
        cmocka_unit_test(test_modules_linear_embedding_layernorm),
        cmocka_unit_test(test_modules_dropout_scales_and_masks),
        cmocka_unit_test(test_modules_lora_trains_adapters_only_and_merges),
        cmocka_unit_test(test_modules_freeze_by_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
