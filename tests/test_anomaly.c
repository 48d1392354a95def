/*
 * test_anomaly.c — the anomaly mode and exploding gradients: a NaN or an
 * infinity made anywhere (a fused kernel's register, a GEMM, the
 * backward pass, an input, a parameter) stops the run with
 * LOOM_ERR_NUMERIC and a message naming the op, its scope, time step and
 * pass, on both backends, with nothing committed; an unrolled linear
 * recurrence whose gradient explodes breaks plain SGD (the anomaly mode
 * says where) and trains with gradient clipping.
 */
#include "testutil.h"

#include <math.h>
#include <string.h>

static loom_ctx *new_ctx(loom_backend be, bool anomaly)
{
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .backend = be, .anomaly = anomaly, .threads = 1, .seed = 5 });
    assert_non_null(ctx);
    return ctx;
}

static void assert_has(const char *msg, const char *frag)
{
    if (!strstr(msg, frag))
        fail_msg("message \"%s\" lacks \"%s\"", msg, frag);
}

static const loom_backend BACKENDS[2] = { LOOM_BACKEND_JIT, LOOM_BACKEND_REFERENCE };
static const char *const BE_NAME[2] = { "jit", "reference" };

/* ------------------------------------------------------------------ */
/* Where a NaN is made                                                */
/* ------------------------------------------------------------------ */

/* h_t = tanh(h_{t-1} W + x) for 6 steps in scopes enc/cell; at step 4
 * the pre-activation goes through log(a - 10): NaN, fused in the step's
 * kernel between the add and the tanh. A momentum-like assignment rides
 * along, and must not be committed. */
static void test_anomaly_forward_op_scope_step(void **state)
{
    (void)state;
    for (int b = 0; b < 2; b++) {
        for (int on = 0; on < 2; on++) {
            loom_ctx *ctx = new_ctx(BACKENDS[b], on);
            loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(4, 3));
            loom_t w = loom_param(ctx, "cell.w", LOOM_F32, LOOM_SHAPE(3, 3));
            loom_param_init_uniform(ctx, w, -1, 1);
            float w0[9];
            memcpy(w0, loom_param_data(ctx, w), sizeof w0);
            loom_t h = loom_full(ctx, LOOM_F32, LOOM_SHAPE(4, 3), 0);
            loom_scope_begin(ctx, "enc");
            loom_scope_begin(ctx, "cell");
            for (int t = 0; t < 6; t++) {
                loom_step_begin(ctx, t);
                loom_t a = loom_add(ctx, loom_matmul(ctx, h, w), x);
                if (t == 4)
                    a = loom_log(ctx, loom_adds(ctx, a, -10.0));
                h = loom_tanh(ctx, a);
                loom_step_end(ctx);
            }
            loom_scope_end(ctx);
            loom_scope_end(ctx);
            loom_t loss = loom_sum_all(ctx, h);
            loom_assign(ctx, w, loom_muls(ctx, w, 0.5));
            float xv[12];
            for (int i = 0; i < 12; i++)
                xv[i] = 0.1f * (float)i;
            loom_feed(ctx, x, xv, sizeof xv);
            TU_OK(ctx);
            loom_code c = loom_run(ctx, 1, &loss);
            if (!on) {
                /* without the mode the NaN flows to the loss unnoticed */
                assert_int_equal(c, LOOM_OK);
                assert_true(isnan(loom_item(ctx, loss)));
                loom_ctx_free(ctx);
                continue;
            }
            print_message("%s: %s\n", BE_NAME[b], loom_errmsg(ctx));
            assert_int_equal(c, LOOM_ERR_NUMERIC);
            const char *msg = loom_errmsg(ctx);
            assert_has(msg, "loom_run: anomaly: log made nan");
            assert_has(msg, "scope \"enc/cell\"");
            assert_has(msg, "time step 4");
            assert_has(msg, "(forward pass)");
            assert_memory_equal(loom_param_data(ctx, w), w0, sizeof w0); /* nothing committed */
            /* the context goes on: clear, turn the mode off, run */
            loom_clear_error(ctx);
            loom_set_anomaly(ctx, false);
            assert_false(loom_get_anomaly(ctx));
            assert_int_equal(loom_run(ctx, 1, &loss), LOOM_OK);
            loom_ctx_free(ctx);
        }
    }
}

/* d sqrt(u) / du at u = 0 is infinite: made in the backward pass, in the
 * scope and step of the forward op. */
static void test_anomaly_backward_pass(void **state)
{
    (void)state;
    for (int b = 0; b < 2; b++) {
        loom_ctx *ctx = new_ctx(BACKENDS[b], true);
        loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(4, 3));
        loom_t w = loom_param(ctx, "head.w", LOOM_F32, LOOM_SHAPE(3, 3));
        loom_param_init_uniform(ctx, w, 0.5, 1);
        loom_scope_begin(ctx, "head");
        loom_step_begin(ctx, 7);
        loom_t u = loom_mul(ctx, loom_relu(ctx, loom_adds(ctx, x, -100.0)), loom_matmul(ctx, x, w));
        loom_t y = loom_sqrt(ctx, u);
        loom_step_end(ctx);
        loom_scope_end(ctx);
        loom_t loss = loom_sum_all(ctx, y);
        loom_backward(ctx, loss);
        loom_t g = loom_grad(ctx, w);
        float xv[12];
        for (int i = 0; i < 12; i++)
            xv[i] = 0.25f * (float)(i + 1);
        loom_feed(ctx, x, xv, sizeof xv);
        TU_OK(ctx);
        /* the forward pass alone is fine */
        assert_int_equal(loom_run(ctx, 1, &loss), LOOM_OK);
        assert_int_equal(loom_run(ctx, 1, &g), LOOM_ERR_NUMERIC);
        print_message("%s: %s\n", BE_NAME[b], loom_errmsg(ctx));
        const char *msg = loom_errmsg(ctx);
        assert_has(msg, "made inf");
        assert_has(msg, "scope \"head\"");
        assert_has(msg, "time step 7");
        assert_has(msg, "(backward pass)");
        loom_ctx_free(ctx);
    }
}

/* What a run reads is checked before it is blamed on an op. */
static void test_anomaly_inputs_and_parameters(void **state)
{
    (void)state;
    for (int b = 0; b < 2; b++) {
        loom_ctx *ctx = new_ctx(BACKENDS[b], true);
        loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(2, 3));
        loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(3, 2));
        loom_param_init_const(ctx, w, 1);
        loom_t y = loom_sum_all(ctx, loom_matmul(ctx, x, w));
        float xv[6] = { 1, 2, 3, 4, NAN, 6 };
        loom_feed(ctx, x, xv, sizeof xv);
        assert_int_equal(loom_run(ctx, 1, &y), LOOM_ERR_NUMERIC);
        assert_has(loom_errmsg(ctx), "input \"x\" #0 holds nan at [1,1] of f32[2,3]");
        loom_clear_error(ctx);
        xv[4] = 5;
        loom_feed(ctx, x, xv, sizeof xv);
        float wv[6] = { 1, 1, 1, -INFINITY, 1, 1 };
        loom_param_set(ctx, w, wv, sizeof wv);
        assert_int_equal(loom_run(ctx, 1, &y), LOOM_ERR_NUMERIC);
        assert_has(loom_errmsg(ctx), "parameter \"w\" holds -inf at [1,1] of f32[3,2]");
        loom_clear_error(ctx);
        wv[3] = 1;
        loom_param_set(ctx, w, wv, sizeof wv);
        assert_int_equal(loom_run(ctx, 1, &y), LOOM_OK);
        assert_true(loom_item(ctx, y) == 42);
        loom_ctx_free(ctx);
    }
}

/* A built-in 2-layer LSTM names its layers: a huge input weight of
 * layer 1 overflows that layer's input GEMM. */
static void test_anomaly_rnn_layer_scope(void **state)
{
    (void)state;
    for (int b = 0; b < 2; b++) {
        loom_ctx *ctx = new_ctx(BACKENDS[b], true);
        loom_rnn *rnn = loom_rnn_new(ctx, "rnn", &(loom_rnn_config){ .mode = LOOM_LSTM, .input_size = 3,
                                                                    .hidden_size = 8, .num_layers = 2 });
        loom_linear head;
        loom_linear_init(ctx, &head, "head", 8, 2, true, LOOM_F32);
        loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(5, 2, 3)), out;
        loom_rnn_forward(ctx, rnn, x, NULL, LOOM_NULL, false, &out, NULL);
        loom_t y = loom_sum_all(ctx, loom_linear_forward(ctx, &head, out));
        float xv[30];
        for (int i = 0; i < 30; i++)
            xv[i] = 0.5f;
        loom_feed(ctx, x, xv, sizeof xv);
        TU_OK(ctx);
        assert_int_equal(loom_run(ctx, 1, &y), LOOM_OK);
        /* layer 0's outputs all positive, layer 1's input weights 3e38:
         * the sum over 8 inputs overflows */
        for (size_t i = 0; i < loom_param_count(ctx); i++) {
            const char *name = loom_param_name(ctx, loom_param_at(ctx, i));
            if (strstr(name, "_l0"))
                loom_param_init_const(ctx, loom_param_at(ctx, i), 0.5);
        }
        loom_t w1 = loom_param_find(ctx, "rnn.weight_ih_l1");
        assert_false(loom_is_null(w1));
        TU_OK(ctx);
        loom_param_init_const(ctx, w1, 3e38);
        assert_int_equal(loom_run(ctx, 1, &y), LOOM_ERR_NUMERIC);
        print_message("%s: %s\n", BE_NAME[b], loom_errmsg(ctx));
        assert_has(loom_errmsg(ctx), "scope \"rnn.l1\"");
        assert_has(loom_errmsg(ctx), "(forward pass)");
        loom_rnn_free(rnn);
        loom_ctx_free(ctx);
    }
}

static void test_anomaly_scope_arguments(void **state)
{
    (void)state;
    loom_ctx *ctx = new_ctx(LOOM_BACKEND_REFERENCE, true);
    assert_int_equal(loom_scope_begin(ctx, "a/b"), LOOM_ERR_ARG);
    assert_has(loom_errmsg(ctx), "'/'");
    loom_clear_error(ctx);
    assert_int_equal(loom_scope_begin(ctx, ""), LOOM_ERR_ARG);
    loom_clear_error(ctx);
    assert_int_equal(loom_scope_begin(ctx, NULL), LOOM_ERR_ARG);
    loom_clear_error(ctx);
    for (int i = 0; i < 64; i++)
        assert_int_equal(loom_scope_begin(ctx, "s"), LOOM_OK);
    assert_int_equal(loom_scope_begin(ctx, "s"), LOOM_ERR_STATE);
    loom_clear_error(ctx);
    loom_scope_end(ctx);
    loom_reset(ctx); /* closes them all */
    loom_scope_end(ctx); /* nothing open: a no-op */
    assert_int_equal(loom_scope_begin(NULL, "x"), LOOM_ERR_HANDLE);
    assert_int_equal(loom_set_anomaly(NULL, true), LOOM_ERR_HANDLE);
    TU_OK(ctx);
    loom_ctx_free(ctx);
}

/* ------------------------------------------------------------------ */
/* Exploding gradients                                                */
/* ------------------------------------------------------------------ */

enum { XT = 60, XB = 4, XH = 4 };

/* h_t = h_{t-1} U + x_t, U = 1.3 I: the gradient of the last state's
 * mean square with respect to U grows like T 1.3^(2T) (about 1e15). */
static loom_ctx *explode_model(bool clip, bool anomaly, loom_optimizer **opt, loom_t *loss)
{
    loom_ctx *ctx = new_ctx(LOOM_BACKEND_JIT, anomaly);
    loom_t u = loom_param(ctx, "U", LOOM_F32, LOOM_SHAPE(XH, XH));
    float u0[XH * XH] = { 0 };
    for (int i = 0; i < XH; i++)
        u0[i * XH + i] = 1.3f;
    loom_param_set(ctx, u, u0, sizeof u0);
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(XT, XB, XH));
    loom_t h = loom_full(ctx, LOOM_F32, LOOM_SHAPE(XB, XH), 0);
    loom_scope_begin(ctx, "linear_rnn");
    for (int t = 0; t < XT; t++) {
        loom_step_begin(ctx, t);
        loom_t xt = loom_reshape(ctx, loom_slice(ctx, x, 0, t, t + 1, 1), LOOM_SHAPE(XB, XH));
        h = loom_add(ctx, loom_matmul(ctx, h, u), xt);
        loom_step_end(ctx);
    }
    loom_scope_end(ctx);
    *loss = loom_mean_all(ctx, loom_square(ctx, h));
    *opt = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_SGD, .lr = 0.05,
                                                          .clip_norm = clip ? 1.0 : 0.0 });
    loom_optimizer_attach(ctx, *opt, *loss);
    float xv[XT * XB * XH];
    for (int i = 0; i < XT * XB * XH; i++)
        xv[i] = 0.1f + 0.01f * (float)(i % 7);
    loom_feed(ctx, x, xv, sizeof xv);
    TU_OK(ctx);
    return ctx;
}

static void test_anomaly_exploding_gradient_with_and_without_clipping(void **state)
{
    (void)state;
    loom_optimizer *opt;
    loom_t loss;
    /* without clipping, plain SGD: the first step's gradient (~1e15)
     * throws U to ~1e13, and the next forward pass overflows */
    loom_ctx *ctx = explode_model(false, false, &opt, &loss);
    loom_t outs[2] = { loss, loom_optimizer_grad_norm(opt) };
    assert_int_equal(loom_optimizer_step(ctx, opt, 2, outs), LOOM_OK);
    double first = loom_item(ctx, loss);
    double gnorm = loom_item(ctx, outs[1]);
    assert_true(isfinite(first) && gnorm > 1e12);
    assert_int_equal(loom_optimizer_step(ctx, opt, 1, &loss), LOOM_OK);
    double second = loom_item(ctx, loss);
    print_message("no clipping: loss %g, gradient norm %g; next loss %g\n", first, gnorm, second);
    assert_true(!isfinite(second));
    loom_optimizer_free(opt);
    loom_ctx_free(ctx);

    /* the same under the anomaly mode: the second step stops where the
     * overflow happens, with U as the first step left it */
    ctx = explode_model(false, true, &opt, &loss);
    assert_int_equal(loom_optimizer_step(ctx, opt, 1, &loss), LOOM_OK);
    float u1[XH * XH];
    memcpy(u1, loom_param_data(ctx, loom_param_find(ctx, "U")), sizeof u1);
    assert_int_equal(loom_optimizer_step(ctx, opt, 1, &loss), LOOM_ERR_NUMERIC);
    print_message("anomaly mode: %s\n", loom_errmsg(ctx));
    assert_has(loom_errmsg(ctx), "matmul made");
    assert_has(loom_errmsg(ctx), "inf at");
    assert_has(loom_errmsg(ctx), "scope \"linear_rnn\"");
    assert_has(loom_errmsg(ctx), "(forward pass)");
    assert_memory_equal(loom_param_data(ctx, loom_param_find(ctx, "U")), u1, sizeof u1);
    assert_int_equal(loom_optimizer_steps(opt), 1); /* the failed step did not count */
    loom_optimizer_free(opt);
    loom_ctx_free(ctx);

    /* with the global norm clipped to 1 every step moves U by at most
     * lr: the loss stays finite and falls as U's spectral radius drops */
    ctx = explode_model(true, true, &opt, &loss);
    double l0 = 0, l = 0, g0 = 0;
    outs[0] = loss;
    outs[1] = loom_optimizer_grad_norm(opt);
    for (int s = 0; s < 40; s++) {
        assert_int_equal(loom_optimizer_step(ctx, opt, 2, outs), LOOM_OK);
        l = loom_item(ctx, loss);
        assert_true(isfinite(l));
        if (s == 0)
            l0 = l, g0 = loom_item(ctx, outs[1]);
    }
    assert_true(g0 > 1e12); /* the same explosion, clipped */
    print_message("clipping at 1: loss %g -> %g after 40 steps\n", l0, l);
    assert_true(l < l0 * 1e-3);
    loom_optimizer_free(opt);
    loom_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anomaly_forward_op_scope_step),
        cmocka_unit_test(test_anomaly_backward_pass),
        cmocka_unit_test(test_anomaly_inputs_and_parameters),
        cmocka_unit_test(test_anomaly_rnn_layer_scope),
        cmocka_unit_test(test_anomaly_scope_arguments),
        cmocka_unit_test(test_anomaly_exploding_gradient_with_and_without_clipping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
