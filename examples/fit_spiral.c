/*
 * fit_spiral.c — the smallest real loom program: a two-layer tanh network
 * learns to tell two interleaved spirals apart. The model, its gradient
 * and the update (SGD with momentum, the velocities kept in buffers) are
 * recorded once on the tape; every training step is then one loom_run.
 * Prints the loss as it falls and the final accuracy.
 *
 *     build/examples/fit_spiral [steps]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "loom.h"

enum { N = 256, HIDDEN = 48 };
static const double LR = 0.1, MOMENTUM = 0.9;
static const double PI = 3.14159265358979323846;

/* Two spirals: class k, point i at angle t = 3.5 pi i / N (+ k pi). */
static void make_spirals(float x[N][2], int32_t y[N])
{
    for (int i = 0; i < N; i++) {
        int k = i % 2;
        double t = 2.5 * PI * (double)(i / 2) / (N / 2), r = 0.15 + 0.85 * (double)(i / 2) / (N / 2);
        x[i][0] = (float)(r * cos(t + k * PI));
        x[i][1] = (float)(r * sin(t + k * PI));
        y[i] = k;
    }
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 600;
    if (steps <= 0) {
        fprintf(stderr, "usage: fit_spiral [steps > 0]\n");
        return 2;
    }
    static float x[N][2];
    static int32_t y[N];
    make_spirals(x, y);

    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 7 });
    if (!ctx)
        return 1;
    loom_t w1 = loom_param(ctx, "w1", LOOM_F32, LOOM_SHAPE(2, HIDDEN));
    loom_t b1 = loom_param(ctx, "b1", LOOM_F32, LOOM_SHAPE(HIDDEN));
    loom_t w2 = loom_param(ctx, "w2", LOOM_F32, LOOM_SHAPE(HIDDEN, HIDDEN));
    loom_t b2 = loom_param(ctx, "b2", LOOM_F32, LOOM_SHAPE(HIDDEN));
    loom_t w3 = loom_param(ctx, "w3", LOOM_F32, LOOM_SHAPE(HIDDEN, 2));
    loom_t b3 = loom_param(ctx, "b3", LOOM_F32, LOOM_SHAPE(2));
    loom_param_init_normal(ctx, w1, 0, 2.0);
    loom_param_init_normal(ctx, w2, 0, 1.0 / sqrt(HIDDEN));
    loom_param_init_normal(ctx, w3, 0, 1.0 / sqrt(HIDDEN));

    /* model: logits = tanh(tanh(x W1 + b1) W2 + b2) W3 + b3 */
    loom_t in = loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(N, 2), x);
    loom_t labels = loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(N), y);
    loom_t h1 = loom_tanh(ctx, loom_add(ctx, loom_matmul(ctx, in, w1), b1));
    loom_t h2 = loom_tanh(ctx, loom_add(ctx, loom_matmul(ctx, h1, w2), b2));
    loom_t logits = loom_add(ctx, loom_matmul(ctx, h2, w3), b3);
    loom_t loss = loom_cross_entropy(ctx, logits, labels);

    /* gradient and the update, part of the same run:
     * v <- momentum v + g;  w <- w - lr v */
    loom_backward(ctx, loss);
    loom_t params[] = { w1, b1, w2, b2, w3, b3 };
    for (size_t i = 0; i < sizeof params / sizeof *params; i++) {
        char name[32];
        snprintf(name, sizeof name, "v_%s", loom_param_name(ctx, params[i]));
        loom_t v = loom_buffer(ctx, name, LOOM_F32, loom_shape_of(ctx, params[i]));
        loom_t v_new = loom_add(ctx, loom_muls(ctx, v, MOMENTUM), loom_grad(ctx, params[i]));
        loom_assign(ctx, v, v_new);
        loom_assign(ctx, params[i], loom_sub(ctx, params[i], loom_muls(ctx, v_new, LR)));
    }
    if (loom_failed(ctx)) {
        fprintf(stderr, "fit_spiral: %s\n", loom_errmsg(ctx));
        loom_ctx_free(ctx);
        return 1;
    }
    printf("fit_spiral: %d points, 2-%d-%d-2 tanh network, SGD lr %g momentum %g, %zu nodes on the tape\n",
           N, HIDDEN, HIDDEN, LR, MOMENTUM, loom_node_count(ctx));

    double first = 0, last = 0;
    for (int step = 1; step <= steps; step++) {
        if (loom_run(ctx, 1, &loss) != LOOM_OK) {
            fprintf(stderr, "fit_spiral: %s\n", loom_errmsg(ctx));
            loom_ctx_free(ctx);
            return 1;
        }
        last = loom_item(ctx, loss);
        if (step == 1)
            first = last;
        if (step == 1 || step % (steps / 12 > 0 ? steps / 12 : 1) == 0 || step == steps)
            printf("step %4d  loss %.4f\n", step, last);
    }
    /* accuracy, evaluated without another update */
    if (loom_eval(ctx, 1, &logits) != LOOM_OK) {
        fprintf(stderr, "fit_spiral: %s\n", loom_errmsg(ctx));
        loom_ctx_free(ctx);
        return 1;
    }
    const float *lg = loom_data(ctx, logits);
    int ok = 0;
    for (int i = 0; i < N; i++)
        ok += (lg[2 * i + 1] > lg[2 * i]) == (y[i] == 1);
    printf("loss %.4f -> %.4f, training accuracy %.1f%%\n", first, last, 100.0 * ok / N);
    loom_ctx_free(ctx);
    return last < first ? 0 : 1;
}
