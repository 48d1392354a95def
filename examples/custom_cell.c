/*
 * custom_cell.c — a recurrent cell of your own, in C, trained with the same
 * API as the built-in ones: a layer-normalised LSTM (Ba, Kiros and Hinton,
 * "Layer Normalization", 2016), written from public ops in a dozen lines,
 * as a character-level language model. It runs a few hundred Adam steps,
 * prints the loss as it falls, and times a training step next to loom's
 * built-in LSTM of the same size (both compiled the same way: there is no
 * special kernel for either).
 *
 *     build/examples/custom_cell [text file] [steps]
 *
 * Without a file it trains on a small built-in text.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ln_lstm.h" /* the cell: ln_lstm_init, ln_lstm_step */
#include "loom.h"

enum { EMBED = 32, HIDDEN = 128, SEQ = 32, BATCH = 16, VOCAB = 256 };

/* ------------------------------------------------------------------ */
/* A character-level language model around a cell                     */
/* ------------------------------------------------------------------ */

typedef struct model {
    loom_ctx *ctx;
    bool custom;        /* the cell of ln_lstm.h, or loom's built-in LSTM */
    loom_embedding emb;
    ln_lstm cell;
    loom_rnn *lstm;
    loom_linear head;
    loom_optimizer *opt;
    loom_t ids, targets; /* inputs: [SEQ, BATCH] i32 each */
    loom_t loss;
} model;

/* Records the model, its loss, gradient and Adam update on a fresh tape. */
static int record(model *m)
{
    loom_ctx *ctx = m->ctx;
    m->ids = loom_input(ctx, "ids", LOOM_I32, LOOM_SHAPE(SEQ, BATCH));
    m->targets = loom_input(ctx, "targets", LOOM_I32, LOOM_SHAPE(SEQ * BATCH));
    loom_t x = loom_embedding_forward(ctx, &m->emb, m->ids); /* [SEQ, BATCH, EMBED] */
    loom_t out;
    if (m->custom) {
        loom_t h = loom_full(ctx, LOOM_F32, LOOM_SHAPE(BATCH, HIDDEN), 0), c = h, hs[SEQ];
        for (int t = 0; t < SEQ; t++) {
            loom_step_begin(ctx, t);
            loom_t xt = loom_reshape(ctx, loom_slice(ctx, x, 0, t, t + 1, 1), LOOM_SHAPE(BATCH, EMBED));
            ln_lstm_step(ctx, &m->cell, HIDDEN, xt, h, c, &h, &c);
            hs[t] = loom_reshape(ctx, h, LOOM_SHAPE(1, BATCH, HIDDEN));
            loom_step_end(ctx);
        }
        out = loom_concat(ctx, SEQ, hs, 0);
    } else {
        loom_rnn_forward(ctx, m->lstm, x, NULL, LOOM_NULL, true, &out, NULL);
    }
    loom_t logits = loom_linear_forward(ctx, &m->head, loom_reshape(ctx, out, LOOM_SHAPE(SEQ * BATCH, HIDDEN)));
    m->loss = loom_cross_entropy(ctx, logits, m->targets);
    loom_optimizer_attach(ctx, m->opt, m->loss);
    if (loom_failed(ctx)) {
        fprintf(stderr, "custom_cell: %s\n", loom_errmsg(ctx));
        return 1;
    }
    return 0;
}

static int model_init(model *m, bool custom)
{
    memset(m, 0, sizeof *m);
    m->custom = custom;
    m->ctx = loom_ctx_new(&(loom_options){ .seed = 17 });
    if (!m->ctx)
        return 1;
    loom_ctx *ctx = m->ctx;
    loom_embedding_init(ctx, &m->emb, "emb", VOCAB, EMBED, LOOM_F32);
    if (custom) {
        ln_lstm_init(ctx, &m->cell, EMBED, HIDDEN);
    } else {
        loom_rnn_config cfg = { .mode = LOOM_LSTM, .input_size = EMBED, .hidden_size = HIDDEN };
        m->lstm = loom_rnn_new(ctx, "lstm", &cfg);
    }
    loom_linear_init(ctx, &m->head, "head", HIDDEN, VOCAB, true, LOOM_F32);
    m->opt = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = 3e-3, .clip_norm = 1.0 });
    return loom_failed(ctx) ? (fprintf(stderr, "custom_cell: %s\n", loom_errmsg(ctx)), 1) : record(m);
}

static void model_free(model *m)
{
    loom_optimizer_free(m->opt);
    loom_rnn_free(m->lstm);
    loom_ctx_free(m->ctx);
}

/* One batch of windows from text: ids and the next characters. */
static void batch(const unsigned char *text, size_t n, unsigned *seed, int32_t *ids, int32_t *next)
{
    for (int b = 0; b < BATCH; b++) {
        *seed = *seed * 1103515245u + 12345u;
        size_t at = (size_t)(*seed >> 4) % (n - SEQ - 1);
        for (int t = 0; t < SEQ; t++) {
            ids[t * BATCH + b] = text[at + (size_t)t];
            next[t * BATCH + b] = text[at + (size_t)t + 1];
        }
    }
}

static int step(model *m, const unsigned char *text, size_t n, unsigned *seed, double *loss)
{
    static int32_t ids[SEQ * BATCH], next[SEQ * BATCH];
    batch(text, n, seed, ids, next);
    loom_feed(m->ctx, m->ids, ids, sizeof ids);
    loom_feed(m->ctx, m->targets, next, sizeof next);
    if (loom_optimizer_step(m->ctx, m->opt, 1, &m->loss) != LOOM_OK) {
        fprintf(stderr, "custom_cell: %s\n", loom_errmsg(m->ctx));
        return 1;
    }
    *loss = loom_item(m->ctx, m->loss);
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char builtin_text[] =
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife. However little known the feelings or views of such a man may be on "
    "his first entering a neighbourhood, this truth is so well fixed in the minds of the surrounding "
    "families, that he is considered the rightful property of some one or other of their daughters. ";

int main(int argc, char **argv)
{
    unsigned char *text = NULL;
    size_t n = 0;
    if (argc > 1) {
        FILE *f = fopen(argv[1], "rb");
        if (!f) {
            perror(argv[1]);
            return 2;
        }
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        rewind(f);
        text = size > 0 ? malloc((size_t)size) : NULL;
        n = text ? fread(text, 1, (size_t)size, f) : 0;
        fclose(f);
    } else {
        /* the built-in text, repeated so windows vary */
        size_t len = sizeof builtin_text - 1;
        n = len * 8;
        text = malloc(n);
        for (size_t i = 0; text && i < 8; i++)
            memcpy(text + i * len, builtin_text, len);
    }
    int steps = argc > 2 ? atoi(argv[2]) : 300;
    if (!text || n < SEQ + 2 || steps < 1) {
        fprintf(stderr, "usage: custom_cell [text file with at least %d bytes] [steps > 0]\n", SEQ + 2);
        free(text);
        return 2;
    }

    model cm, lm;
    if (model_init(&cm, true) || model_init(&lm, false)) {
        free(text);
        return 1;
    }
    printf("custom_cell: layer-normalised LSTM from primitives, char LM, %d x %d, embed %d hidden %d, Adam\n", SEQ,
           BATCH, EMBED, HIDDEN);
    unsigned seed = 1;
    double loss = 0, first = 0;
    for (int s = 1; s <= steps; s++) {
        if (step(&cm, text, n, &seed, &loss))
            return 1;
        if (s == 1)
            first = loss;
        if (s == 1 || s % (steps / 6 > 0 ? steps / 6 : 1) == 0 || s == steps)
            printf("step %4d  loss %.3f\n", s, loss);
    }
    /* step time: both models warmed up (compiled) first */
    double t_custom = 0, t_lstm = 0, scratch;
    int timed = 20;
    for (int k = 0; k < 3; k++)
        step(&lm, text, n, &seed, &scratch);
    for (int k = 0; k < timed; k++) { /* interleaved, so both see the same machine */
        double t0 = now();
        step(&cm, text, n, &seed, &scratch);
        double t1 = now();
        step(&lm, text, n, &seed, &scratch);
        double t2 = now();
        t_custom += t1 - t0;
        t_lstm += t2 - t1;
    }
    printf("loss %.3f -> %.3f; training step: custom LN-LSTM %.2f ms, built-in LSTM %.2f ms (ratio %.2f)\n", first,
           loss, 1e3 * t_custom / timed, 1e3 * t_lstm / timed, t_custom / t_lstm);
    model_free(&cm);
    model_free(&lm);
    free(text);
    return loss < first ? 0 : 1;
}
