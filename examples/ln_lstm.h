/*
 * ln_lstm.h — the custom cell of examples/custom_cell.c: a
 * layer-normalised LSTM (Ba, Kiros and Hinton, "Layer Normalization",
 * 2016) written from public ops. A header so that `loom-bench cells` times
 * exactly this cell next to loom's built-in LSTM.
 */
#ifndef LOOM_EXAMPLE_LN_LSTM_H
#define LOOM_EXAMPLE_LN_LSTM_H

#include <math.h>

#include "loom.h"

/* A layer-normalised LSTM's parameters. */
typedef struct ln_lstm {
    loom_t wx, wh, b;                 /* [4H, E], [4H, H], [4H] */
    loom_layernorm ln_x, ln_h, ln_c;  /* over 4H, 4H and H */
} ln_lstm;

static void ln_lstm_init(loom_ctx *ctx, ln_lstm *m, int64_t in, int64_t hid)
{
    double k = 1.0 / sqrt((double)hid);
    m->wx = loom_param(ctx, "cell.wx", LOOM_F32, LOOM_SHAPE(4 * hid, in));
    m->wh = loom_param(ctx, "cell.wh", LOOM_F32, LOOM_SHAPE(4 * hid, hid));
    m->b = loom_param(ctx, "cell.b", LOOM_F32, LOOM_SHAPE(4 * hid));
    loom_param_init_uniform(ctx, m->wx, -k, k);
    loom_param_init_uniform(ctx, m->wh, -k, k);
    loom_layernorm_init(ctx, &m->ln_x, "cell.ln_x", 4 * hid, 1e-5, LOOM_F32);
    loom_layernorm_init(ctx, &m->ln_h, "cell.ln_h", 4 * hid, 1e-5, LOOM_F32);
    loom_layernorm_init(ctx, &m->ln_c, "cell.ln_c", hid, 1e-5, LOOM_F32);
}

/* One step: gates = LN(x Wx^T) + LN(h Wh^T) + b; the cell state is
 * normalised before it feeds h. */
static void ln_lstm_step(loom_ctx *ctx, const ln_lstm *m, int64_t hid, loom_t x, loom_t h, loom_t c, loom_t *h2,
                         loom_t *c2)
{
    loom_t gx = loom_layernorm_forward(ctx, &m->ln_x, loom_matmul_t(ctx, x, loom_weight(ctx, m->wx), false, true));
    loom_t gh = loom_layernorm_forward(ctx, &m->ln_h, loom_matmul_t(ctx, h, loom_weight(ctx, m->wh), false, true));
    loom_t g = loom_add(ctx, loom_add(ctx, gx, gh), m->b);
    loom_t i = loom_sigmoid(ctx, loom_slice(ctx, g, 1, 0, hid, 1));
    loom_t f = loom_sigmoid(ctx, loom_slice(ctx, g, 1, hid, 2 * hid, 1));
    loom_t u = loom_tanh(ctx, loom_slice(ctx, g, 1, 2 * hid, 3 * hid, 1));
    loom_t o = loom_sigmoid(ctx, loom_slice(ctx, g, 1, 3 * hid, 4 * hid, 1));
    *c2 = loom_add(ctx, loom_mul(ctx, f, c), loom_mul(ctx, i, u));
    *h2 = loom_mul(ctx, o, loom_tanh(ctx, loom_layernorm_forward(ctx, &m->ln_c, *c2)));
}

#endif /* LOOM_EXAMPLE_LN_LSTM_H */
