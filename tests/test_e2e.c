/*
 * test_e2e.c — end-to-end training through the reference executor:
 * logistic regression and an MLP with plain SGD, and an Elman RNN trained
 * by BPTT over an unrolled tape, each to a set loss threshold. Also: a
 * tape recorded again gives bit-identical results.
 */
#include "testutil.h"

#include <stdlib.h>

#include "fe.h"

static void sgd_updates(loom_ctx *ctx, int n, const loom_t *params, double lr)
{
    for (int i = 0; i < n; i++)
        loom_assign(ctx, params[i], loom_sub(ctx, params[i], loom_muls(ctx, loom_grad(ctx, params[i]), lr)));
}

/* Two Gaussian blobs, separable: logistic regression with the binary
 * cross-entropy written from primitives, plain SGD. */
static void test_e2e_logistic_regression_sgd(void **state)
{
    (void)state;
    enum { N = 200 };
    static float x[N][2], y[N];
    lm_rng rng;
    lm_rng_seed(&rng, 11);
    for (int i = 0; i < N; i++) {
        int k = i & 1;
        x[i][0] = (float)((k ? 1.5 : -1.5) + 0.6 * lm_rng_normal(&rng));
        x[i][1] = (float)((k ? -1.0 : 1.0) + 0.6 * lm_rng_normal(&rng));
        y[i] = (float)k;
    }
    loom_ctx *ctx = loom_ctx_new(NULL);
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(2, 1));
    loom_t b = loom_param(ctx, "b", LOOM_F32, LOOM_SHAPE(1));
    loom_t xin = loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(N, 2), x);
    loom_t yin = loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(N, 1), y);
    loom_t z = loom_add(ctx, loom_matmul(ctx, xin, w), b);
    /* BCE with logits: max(z,0) - z y + log1p(exp(-|z|)) */
    loom_t bce = loom_add(ctx, loom_sub(ctx, loom_relu(ctx, z), loom_mul(ctx, z, yin)),
                          loom_log1p(ctx, loom_exp(ctx, loom_neg(ctx, loom_abs(ctx, z)))));
    loom_t loss = loom_mean_all(ctx, bce);
    assert_int_equal(loom_backward(ctx, loss), LOOM_OK);
    loom_t params[] = { w, b };
    sgd_updates(ctx, 2, params, 0.5);
    TU_OK(ctx);
    double first = 0, last = 0;
    for (int step = 0; step < 200; step++) {
        assert_int_equal(loom_run(ctx, 1, &loss), LOOM_OK);
        last = loom_item(ctx, loss);
        if (step == 0)
            first = last;
    }
    print_message("logistic regression: loss %.4f -> %.4f\n", first, last);
    assert_true(fabs(first - log(2.0)) < 1e-6); /* zero weights: p = 1/2 */
    assert_true(last < 0.08);
    loom_ctx_free(ctx);
}

/* XOR-like four clusters: not linearly separable, so the hidden layer has
 * to learn. A 2-16-2 tanh MLP, cross-entropy, plain SGD. */
static void test_e2e_mlp_sgd(void **state)
{
    (void)state;
    enum { N = 128, H = 16 };
    static double x[N][2];
    static int32_t y[N];
    lm_rng rng;
    lm_rng_seed(&rng, 5);
    for (int i = 0; i < N; i++) {
        int a = i & 1, c = (i >> 1) & 1;
        x[i][0] = (a ? 1 : -1) + 0.25 * lm_rng_normal(&rng);
        x[i][1] = (c ? 1 : -1) + 0.25 * lm_rng_normal(&rng);
        y[i] = a ^ c;
    }
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 3 });
    loom_t w1 = loom_param(ctx, "w1", LOOM_F64, LOOM_SHAPE(2, H));
    loom_t b1 = loom_param(ctx, "b1", LOOM_F64, LOOM_SHAPE(H));
    loom_t w2 = loom_param(ctx, "w2", LOOM_F64, LOOM_SHAPE(H, 2));
    loom_t b2 = loom_param(ctx, "b2", LOOM_F64, LOOM_SHAPE(2));
    loom_param_init_normal(ctx, w1, 0, 1.0);
    loom_param_init_normal(ctx, w2, 0, 0.5);
    loom_t xin = loom_tensor(ctx, LOOM_F64, LOOM_SHAPE(N, 2), x);
    loom_t yin = loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(N), y);
    loom_t h = loom_tanh(ctx, loom_add(ctx, loom_matmul(ctx, xin, w1), b1));
    loom_t loss = loom_cross_entropy(ctx, loom_add(ctx, loom_matmul(ctx, h, w2), b2), yin);
    assert_int_equal(loom_backward(ctx, loss), LOOM_OK);
    loom_t params[] = { w1, b1, w2, b2 };
    sgd_updates(ctx, 4, params, 0.3);
    TU_OK(ctx);
    double first = 0, last = 0;
    for (int step = 0; step < 400; step++) {
        assert_int_equal(loom_run(ctx, 1, &loss), LOOM_OK);
        last = loom_item(ctx, loss);
        if (step == 0)
            first = last;
    }
    print_message("MLP: loss %.4f -> %.4f\n", first, last);
    assert_true(first > 0.5);
    assert_true(last < 0.05);
    loom_ctx_free(ctx);
}

/* An Elman RNN h_t = tanh(x_t Wx + h_{t-1} Wh + b), read out by
 * y_t = h_t Wo, learns to repeat its input two steps late. The tape is
 * the network unrolled over T steps, recorded once with step marks; each
 * training step feeds a new batch and runs it (BPTT through all steps). */
enum { T = 10, B = 32, H = 16, DELAY = 2 };

typedef struct rnn {
    loom_t wx, wh, b, wo;
    loom_t x[T], loss;
    loom_t target;
} rnn;

static void rnn_record(loom_ctx *ctx, rnn *m, bool first)
{
    if (first) {
        m->wx = loom_param(ctx, "wx", LOOM_F32, LOOM_SHAPE(1, H));
        m->wh = loom_param(ctx, "wh", LOOM_F32, LOOM_SHAPE(H, H));
        m->b = loom_param(ctx, "b", LOOM_F32, LOOM_SHAPE(H));
        m->wo = loom_param(ctx, "wo", LOOM_F32, LOOM_SHAPE(H, 1));
        loom_param_init_normal(ctx, m->wx, 0, 1.0);
        loom_param_init_normal(ctx, m->wh, 0, 0.3);
        loom_param_init_normal(ctx, m->wo, 0, 0.3);
    }
    m->target = loom_input(ctx, "target", LOOM_F32, LOOM_SHAPE(T, B, 1));
    loom_t h = loom_full(ctx, LOOM_F32, LOOM_SHAPE(B, H), 0);
    loom_t ys[T];
    for (int t = 0; t < T; t++) {
        loom_step_begin(ctx, t);
        m->x[t] = loom_input(ctx, NULL, LOOM_F32, LOOM_SHAPE(B, 1));
        h = loom_tanh(ctx, loom_add(ctx, loom_add(ctx, loom_matmul(ctx, m->x[t], m->wx),
                                                  loom_matmul(ctx, h, m->wh)),
                                    m->b));
        ys[t] = loom_reshape(ctx, loom_matmul(ctx, h, m->wo), LOOM_SHAPE(1, B, 1));
        loom_step_end(ctx);
    }
    /* the first DELAY steps have nothing to repeat yet */
    loom_t y = loom_concat(ctx, T - DELAY, ys + DELAY, 0);
    loom_t want = loom_slice(ctx, m->target, 0, DELAY, T, 1);
    m->loss = loom_mse(ctx, y, want);
    loom_backward(ctx, m->loss);
    loom_t params[] = { m->wx, m->wh, m->b, m->wo };
    sgd_updates(ctx, 4, params, 0.2);
}

static void rnn_feed(loom_ctx *ctx, rnn *m, lm_rng *rng)
{
    static float xs[T][B], tg[T][B];
    for (int t = 0; t < T; t++)
        for (int i = 0; i < B; i++)
            xs[t][i] = lm_rng_uniform(rng) < 0.5 ? -1.0f : 1.0f;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < B; i++)
            tg[t][i] = t >= DELAY ? xs[t - DELAY][i] : 0.0f;
    for (int t = 0; t < T; t++)
        loom_feed(ctx, m->x[t], xs[t], sizeof xs[t]);
    loom_feed(ctx, m->target, tg, sizeof tg);
}

static void test_e2e_elman_rnn_bptt(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 9 });
    rnn m;
    rnn_record(ctx, &m, true);
    TU_OK(ctx);
    assert_int_equal(ir_verify(ctx->g), LOOM_OK);
    lm_rng rng;
    lm_rng_seed(&rng, 1234);
    double first = 0, avg = 0;
    int steps = 600;
    for (int step = 0; step < steps; step++) {
        rnn_feed(ctx, &m, &rng);
        assert_int_equal(loom_run(ctx, 1, &m.loss), LOOM_OK);
        double l = loom_item(ctx, m.loss);
        if (step == 0)
            first = l;
        if (step >= steps - 20)
            avg += l / 20;
    }
    print_message("Elman RNN (T=%d, delay %d): loss %.4f -> %.4f over the last 20 batches, %zu nodes\n",
                  T, DELAY, first, avg, loom_node_count(ctx));
    assert_true(first > 0.5);
    assert_true(avg < 0.05);
    loom_ctx_free(ctx);
}

/* Recording the model once and running it five times, or recording it
 * anew on a fresh tape before every step (parameters persist), gives
 * bit-identical losses: the tape is deterministic. */
static void test_e2e_rerecorded_tape_is_bit_identical(void **state)
{
    (void)state;
    double losses[2][5];
    for (int rerecord = 0; rerecord < 2; rerecord++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 21 });
        rnn m;
        lm_rng rng;
        lm_rng_seed(&rng, 77);
        rnn_record(ctx, &m, true);
        for (int step = 0; step < 5; step++) {
            if (rerecord && step > 0) {
                loom_reset(ctx);
                rnn_record(ctx, &m, false);
            }
            rnn_feed(ctx, &m, &rng);
            assert_int_equal(loom_run(ctx, 1, &m.loss), LOOM_OK);
            losses[rerecord][step] = loom_item(ctx, m.loss);
        }
        loom_ctx_free(ctx);
    }
    for (int step = 0; step < 5; step++)
        assert_true(losses[0][step] == losses[1][step]);
    assert_true(losses[0][4] != losses[0][0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e2e_logistic_regression_sgd),
        cmocka_unit_test(test_e2e_mlp_sgd),
        cmocka_unit_test(test_e2e_elman_rnn_bptt),
        cmocka_unit_test(test_e2e_rerecorded_tape_is_bit_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
