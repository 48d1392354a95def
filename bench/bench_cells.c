/*
 * bench_cells.c — `loom-bench cells`: recurrent layers alone, forward and
 * backward, f32, batch 32, 64 steps, input size = hidden size:
 *
 *   lstm-H512-L2, lstm-H256-L1, gru-H512-L2, gru-H256-L1
 *       loom_rnn_new / loom_rnn_forward against oneDNN's RNN primitives
 *       (bench/peers/dnnl_rnn.c: forward training + backward, the GRU
 *       being oneDNN's linear-before-reset one, i.e. torch.nn.GRU's), or
 *       against torch.nn.LSTM / GRU when the bench was built without
 *       libdnnl-dev;
 *   custom-vs-lstm-H512
 *       a plain LSTM cell written here from loom primitives (the way
 *       examples/custom_cell.c writes its cell) against loom's built-in
 *       LSTM of the same size, one layer: the peer is loom itself
 *       ("loom-lstm"), and the claim is a ratio of 1.
 *
 * One call: the loss sum(output * R) for a fixed random R [T, B, H] (so
 * d loss / d output = R, which is what oneDNN is given), its gradients
 * with respect to every weight and bias and to the input, all computed as
 * outputs of one loom_run. Zero initial states, no final states.
 *
 * GFLOP/s counts the GEMMs only, 2·M·N·K each: per layer and step x·W_ih^T
 * and h·W_hh^T (M = B, N = G·H, K = H, G = 4 gates for the LSTM, 3 for the
 * GRU); backward counts twice forward.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../examples/ln_lstm.h" /* the custom cell of examples/custom_cell.c */
#include "loom.h"

enum { BATCH = 32, SEQ = 64, MAX_CASES = 8, MAX_OUTS = 16 };

typedef enum cell_kind { CELL_LSTM, CELL_GRU, CELL_CUSTOM, CELL_LN } cell_kind;

typedef struct cells_case {
    const char *name;
    cell_kind kind;
    int64_t hidden;
    int layers;
} cells_case;

static const cells_case cases[] = {
    { "lstm-H512-L2", CELL_LSTM, 512, 2 },
    { "lstm-H256-L1", CELL_LSTM, 256, 1 },
    { "gru-H512-L2", CELL_GRU, 512, 2 },
    { "gru-H256-L1", CELL_GRU, 256, 1 },
    { "custom-vs-lstm-H512", CELL_CUSTOM, 512, 1 },
    { "ln-lstm-vs-lstm-H512", CELL_LN, 512, 1 },
};

/* GEMM flops of one forward + backward. */
static double pass_flops(const cells_case *c)
{
    double h = (double)c->hidden, gates = c->kind == CELL_GRU ? 3 : 4;
    double fwd = c->layers * (double)SEQ * (2.0 * BATCH * gates * h * h + 2.0 * BATCH * gates * h * h);
    return 3 * fwd;
}

/* ------------------------------------------------------------------ */
/* A plain LSTM cell from primitives                                  */
/* ------------------------------------------------------------------ */

/* torch.nn.LSTM's weights for one layer, gates in the order i, f, g, o. */
typedef struct lstm_cell {
    loom_t w_ih, w_hh; /* [4H, I], [4H, H] */
    loom_t b_ih, b_hh; /* [4H] each */
} lstm_cell;

static void lstm_cell_init(loom_ctx *ctx, lstm_cell *m, int64_t in, int64_t hid)
{
    double k = 1.0 / sqrt((double)hid);
    m->w_ih = loom_param(ctx, "cell.weight_ih", LOOM_F32, LOOM_SHAPE(4 * hid, in));
    m->w_hh = loom_param(ctx, "cell.weight_hh", LOOM_F32, LOOM_SHAPE(4 * hid, hid));
    m->b_ih = loom_param(ctx, "cell.bias_ih", LOOM_F32, LOOM_SHAPE(4 * hid));
    m->b_hh = loom_param(ctx, "cell.bias_hh", LOOM_F32, LOOM_SHAPE(4 * hid));
    loom_t all[] = { m->w_ih, m->w_hh, m->b_ih, m->b_hh };
    for (size_t i = 0; i < LM_ARRAY_LEN(all); i++)
        loom_param_init_uniform(ctx, all[i], -k, k);
}

/* One step: gates = x W_ih^T + b_ih + h W_hh^T + b_hh;
 * c' = s(f) c + s(i) tanh(g); h' = s(o) tanh(c'). */
static void lstm_cell_step(loom_ctx *ctx, const lstm_cell *m, int64_t hid, loom_t x, loom_t h, loom_t c, loom_t *h2,
                           loom_t *c2)
{
    loom_t gx = loom_add(ctx, loom_matmul_t(ctx, x, loom_weight(ctx, m->w_ih), false, true), m->b_ih);
    loom_t gh = loom_add(ctx, loom_matmul_t(ctx, h, loom_weight(ctx, m->w_hh), false, true), m->b_hh);
    loom_t g = loom_add(ctx, gx, gh); /* [B, 4H] */
    loom_t i = loom_sigmoid(ctx, loom_slice(ctx, g, 1, 0, hid, 1));
    loom_t f = loom_sigmoid(ctx, loom_slice(ctx, g, 1, hid, 2 * hid, 1));
    loom_t u = loom_tanh(ctx, loom_slice(ctx, g, 1, 2 * hid, 3 * hid, 1));
    loom_t o = loom_sigmoid(ctx, loom_slice(ctx, g, 1, 3 * hid, 4 * hid, 1));
    *c2 = loom_add(ctx, loom_mul(ctx, f, c), loom_mul(ctx, i, u));
    *h2 = loom_mul(ctx, o, loom_tanh(ctx, *c2));
}

/* The cell over x [T, B, I] from zero states; the outputs [T, B, H]. */
static loom_t lstm_cell_layer(loom_ctx *ctx, const lstm_cell *m, int64_t in, int64_t hid, loom_t x)
{
    loom_t h = loom_full(ctx, LOOM_F32, LOOM_SHAPE(BATCH, hid), 0), c = h, hs[SEQ];
    for (int t = 0; t < SEQ; t++) {
        loom_step_begin(ctx, t);
        loom_t xt = loom_reshape(ctx, loom_slice(ctx, x, 0, t, t + 1, 1), LOOM_SHAPE(BATCH, in));
        lstm_cell_step(ctx, m, hid, xt, h, c, &h, &c);
        hs[t] = loom_reshape(ctx, h, LOOM_SHAPE(1, BATCH, hid));
        loom_step_end(ctx);
    }
    return loom_concat(ctx, SEQ, hs, 0);
}

/* ------------------------------------------------------------------ */
/* One loom model: a layer stack, its loss and gradients              */
/* ------------------------------------------------------------------ */

typedef struct model {
    loom_ctx *ctx;
    loom_rnn *rnn;            /* the built-in stack, or NULL */
    lstm_cell cell;           /* the plain cell (CELL_CUSTOM) */
    ln_lstm ln;               /* the example's cell (CELL_LN) */
    loom_t x, r;              /* inputs [T, B, H] each */
    loom_t outs[MAX_OUTS];    /* the loss, the gradients of the parameters, of x */
    int nout;
    bool failed;
} model;

/* Fills n floats with uniform [-1, 1) from a fixed stream. */
static void fill(float *x, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f * 2 - 1;
    }
}

/* kinds CELL_CUSTOM and CELL_LN with builtin true record loom's own LSTM
 * instead. */
static int model_init(model *m, const cells_case *c, bool builtin, int threads)
{
    memset(m, 0, sizeof *m);
    m->ctx = loom_ctx_new(&(loom_options){ .seed = 23, .threads = threads });
    loom_ctx *ctx = m->ctx;
    if (!ctx)
        return 1;
    int64_t h = c->hidden;
    m->x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(SEQ, BATCH, h));
    m->r = loom_input(ctx, "r", LOOM_F32, LOOM_SHAPE(SEQ, BATCH, h));
    loom_t out = LOOM_NULL; /* [T, B, H] */
    if (c->kind == CELL_CUSTOM && !builtin) {
        lstm_cell_init(ctx, &m->cell, h, h);
        out = lstm_cell_layer(ctx, &m->cell, h, h, m->x);
    } else if (c->kind == CELL_LN && !builtin) {
        ln_lstm_init(ctx, &m->ln, h, h);
        loom_t hs[SEQ], st = loom_full(ctx, LOOM_F32, LOOM_SHAPE(BATCH, h), 0), cs = st;
        for (int t = 0; t < SEQ; t++) {
            loom_step_begin(ctx, t);
            loom_t xt = loom_reshape(ctx, loom_slice(ctx, m->x, 0, t, t + 1, 1), LOOM_SHAPE(BATCH, h));
            ln_lstm_step(ctx, &m->ln, h, xt, st, cs, &st, &cs);
            hs[t] = loom_reshape(ctx, st, LOOM_SHAPE(1, BATCH, h));
            loom_step_end(ctx);
        }
        out = loom_concat(ctx, SEQ, hs, 0);
    } else {
        loom_rnn_config cfg = { .mode = c->kind == CELL_GRU ? LOOM_GRU : LOOM_LSTM, .input_size = h,
                                .hidden_size = h, .num_layers = c->layers };
        m->rnn = loom_rnn_new(ctx, "rnn", &cfg);
        loom_rnn_forward(ctx, m->rnn, m->x, NULL, LOOM_NULL, true, &out, NULL);
    }
    m->outs[0] = loom_sum_all(ctx, loom_mul(ctx, out, m->r));

    /* d loss / d (every parameter, x) */
    loom_t xs[MAX_OUTS - 1];
    int nx = 0;
    for (size_t i = 0; i < loom_param_count(ctx) && nx < MAX_OUTS - 2; i++)
        xs[nx++] = loom_param_at(ctx, i);
    xs[nx++] = m->x;
    loom_vjp(ctx, 1, &m->outs[0], NULL, nx, xs, &m->outs[1]);
    m->nout = 1 + nx;

    size_t n = (size_t)(SEQ * BATCH * h);
    float *buf = malloc(n * sizeof *buf);
    if (buf) {
        fill(buf, n, 1);
        loom_feed(ctx, m->x, buf, n * sizeof *buf);
        fill(buf, n, 2);
        loom_feed(ctx, m->r, buf, n * sizeof *buf);
        free(buf);
    }
    if (!buf || loom_failed(ctx)) {
        fprintf(stderr, "loom-bench cells: %s: %s\n", c->name, buf ? loom_errmsg(ctx) : "out of memory");
        return 1;
    }
    return 0;
}

static void model_run(void *ud)
{
    model *m = ud;
    if (!m->failed && loom_run(m->ctx, m->nout, m->outs) != LOOM_OK) {
        fprintf(stderr, "loom-bench cells: %s\n", loom_errmsg(m->ctx));
        m->failed = true;
    }
}

static void model_free(model *m)
{
    loom_rnn_free(m->rnn);
    loom_ctx_free(m->ctx);
}

/* Copies the built-in layer's weights into the custom cell (same names
 * but the prefix, same shapes), so the two compute the same thing. */
static void copy_weights(model *custom, model *builtin)
{
    static const char *const names[][2] = {
        { "cell.weight_ih", "rnn.weight_ih_l0" },
        { "cell.weight_hh", "rnn.weight_hh_l0" },
        { "cell.bias_ih", "rnn.bias_ih_l0" },
        { "cell.bias_hh", "rnn.bias_hh_l0" },
    };
    for (size_t i = 0; i < LM_ARRAY_LEN(names); i++) {
        loom_t to = loom_param_find(custom->ctx, names[i][0]), from = loom_param_find(builtin->ctx, names[i][1]);
        size_t bytes = (size_t)loom_shape_numel(loom_shape_of(custom->ctx, to)) * sizeof(float);
        loom_param_set(custom->ctx, to, loom_param_data(builtin->ctx, from), bytes);
    }
}

/* The first call (it compiles): its time, and loom's LLVM time and plan
 * memory. */
static void first_run(model *m, double *first_ms, double *compile_ms, uint64_t *plan_bytes)
{
    double t0 = bench_now();
    model_run(m);
    *first_ms = (bench_now() - t0) * 1e3;
    loom_stats st;
    if (!m->failed && loom_get_stats(m->ctx, &st) == LOOM_OK) {
        if (compile_ms)
            *compile_ms = st.compile_ms;
        if (plan_bytes)
            *plan_bytes = st.plan_bytes;
    }
}

/* Median ms of a call of a and of b, timed alternately so that both see
 * the same machine (a claim of equal speed should not hang on a noisy
 * second). */
static void time_pair(const bench_opts *o, model *a, model *b, double *ms_a, double *ms_b)
{
    enum { MAX_REPS = 200 };
    double ta[MAX_REPS], tb[MAX_REPS];
    model_run(a); /* warm-up */
    model_run(b);
    double t0 = bench_now();
    model_run(a);
    model_run(b);
    double once = bench_now() - t0;
    int reps = once > 0 ? (int)(o->min_time / once) : 5;
    reps = reps < 5 ? 5 : reps > MAX_REPS ? MAX_REPS : reps;
    for (int i = 0; i < reps; i++) {
        double s = bench_now();
        model_run(a);
        double mid = bench_now();
        model_run(b);
        ta[i] = (mid - s) * 1e3;
        tb[i] = (bench_now() - mid) * 1e3;
    }
    if (!a->failed && !b->failed) {
        *ms_a = bench_median(ta, reps);
        *ms_b = bench_median(tb, reps);
    }
}

/* max |a - b| / max |b| over every output of two models' last runs. */
static double outputs_differ(model *a, model *b)
{
    double d = 0, mag = 0;
    for (int k = 0; k < a->nout; k++) {
        const float *x = loom_data(a->ctx, a->outs[k]), *y = loom_data(b->ctx, b->outs[k]);
        int64_t n = loom_shape_numel(loom_shape_of(a->ctx, a->outs[k]));
        if (!x || !y || n != loom_shape_numel(loom_shape_of(b->ctx, b->outs[k])))
            return INFINITY;
        for (int64_t i = 0; i < n; i++) {
            d = fmax(d, fabs((double)x[i] - y[i]));
            mag = fmax(mag, fabs((double)y[i]));
        }
    }
    return mag > 0 ? d / mag : d;
}

/* ------------------------------------------------------------------ */
/* The peers                                                          */
/* ------------------------------------------------------------------ */

/* oneDNN when built with it, else PyTorch. */
static void run_peer(const bench_opts *o, const cells_case *c, int threads, char *peer, size_t peer_size,
                     bench_result *r)
{
    char hidden[24], layers[24], nthreads[24], min_time[32], batch[24], seq[24], omp[40];
    snprintf(hidden, sizeof hidden, "%lld", (long long)c->hidden);
    snprintf(layers, sizeof layers, "%d", c->layers);
    snprintf(nthreads, sizeof nthreads, "%d", threads);
    snprintf(min_time, sizeof min_time, "%g", o->min_time);
    snprintf(batch, sizeof batch, "%d", BATCH);
    snprintf(seq, sizeof seq, "%d", SEQ);
    snprintf(omp, sizeof omp, "OMP_NUM_THREADS=%d", threads);
    const char *cell = c->kind == CELL_GRU ? "gru" : "lstm";
    const char *dnnl = bench_dnnl_program();
    char line[2048], name[48], blas[40];
    int rc;
    if (dnnl) {
        char *argv[] = { (char *)dnnl, "--cell", (char *)cell, "--hidden", hidden, "--layers", layers, "--batch",
                         batch, "--seq", seq, "--threads", nthreads, "--min-time", min_time, NULL };
        const char *env[] = { omp, "OPENBLAS_CORETYPE", NULL };
        rc = bench_child_json(argv, env, line, sizeof line);
    } else {
        char *argv[] = { (char *)bench_python(), (char *)bench_torch_script(), "--mode", (char *)cell, "--hidden",
                         hidden, "--layers", layers, "--batch", batch, "--seq", seq, "--threads", nthreads,
                         "--min-time", min_time, NULL };
        rc = bench_child_json(argv, bench_torch_env(threads), line, sizeof line);
    }
    if (rc != 0 || !bench_json_number(line, "median_ms", &r->peer_ms))
        return;
    bench_json_number(line, "first_ms", &r->peer_first_ms);
    if (!bench_json_string(line, "peer", name, sizeof name))
        snprintf(name, sizeof name, "%s", dnnl ? "onednn" : "torch");
    if (!dnnl && bench_json_string(line, "blas", blas, sizeof blas))
        snprintf(peer, peer_size, "%s/%s", name, blas);
    else
        snprintf(peer, peer_size, "%s", name);
    r->peer = peer;
}

/* ------------------------------------------------------------------ */
/* The suite                                                          */
/* ------------------------------------------------------------------ */

/* Runs case c at a thread count into r (r->check: the custom cell's
 * difference from the built-in one). */
static void run_case(const bench_opts *o, const cells_case *c, int threads, char *peer, size_t peer_size,
                     bench_result *r)
{
    model m;
    if (model_init(&m, c, false, threads) == 0) {
        if (c->kind != CELL_CUSTOM && c->kind != CELL_LN) {
            first_run(&m, &r->loom_first_ms, &r->loom_compile_ms, &r->loom_plan_bytes);
            double ms = bench_time_ms(o, model_run, &m);
            r->loom_ms = m.failed ? -1 : ms;
        } else {
            /* the built-in layer is the peer: same weights, same machine */
            model b;
            if (model_init(&b, c, true, threads) == 0) {
                if (c->kind == CELL_CUSTOM)
                    copy_weights(&m, &b);
                first_run(&m, &r->loom_first_ms, &r->loom_compile_ms, &r->loom_plan_bytes);
                first_run(&b, &r->peer_first_ms, NULL, NULL);
                time_pair(o, &m, &b, &r->loom_ms, &r->peer_ms);
                if (!m.failed && !b.failed) {
                    if (c->kind == CELL_CUSTOM)
                        r->check = outputs_differ(&m, &b);
                    r->peer = "loom-lstm";
                }
            }
            model_free(&b);
        }
    }
    model_free(&m);
    if (c->kind != CELL_CUSTOM && c->kind != CELL_LN)
        run_peer(o, c, threads, peer, peer_size, r);
}

int bench_cells(const bench_opts *o)
{
    const char *dnnl = bench_dnnl_program();
    bool progress = isatty(2);
    if (!o->json)
        printf("loom-bench cells: recurrent layers, forward + backward (gradients of weights and input), f32, B=%d "
               "T=%d, I=H\npeer: %s\n",
               BATCH, SEQ,
               dnnl ? "oneDNN RNN primitives (bench/peers/dnnl_rnn), OMP_NUM_THREADS = threads"
                    : "PyTorch nn.LSTM / nn.GRU (built without libdnnl-dev)");
    int rc = 0;
    for (int ti = 0; o->threads[ti]; ti++) {
        int threads = o->threads[ti];
        if (threads > rt_pool_size(o->pool))
            continue;
        double before = threads > 1 ? bench_probe(o->pool) : 2;
        bench_result res[MAX_CASES];
        char peers[MAX_CASES][96];
        int n = 0;
        for (size_t i = 0; i < LM_ARRAY_LEN(cases); i++) {
            const cells_case *c = &cases[i];
            if (!bench_selected(o, c->name))
                continue;
            if (progress)
                fprintf(stderr, "loom-bench cells: %s, %d thread%s ...\n", c->name, threads, threads > 1 ? "s" : "");
            res[n] = bench_result_empty("cells", c->name, threads, pass_flops(c));
            bench_cpu cpu0 = bench_cpu_now();
            run_case(o, c, threads, peers[n], sizeof peers[n], &res[n]);
            res[n].others = bench_cpu_others(cpu0, bench_cpu_now());
            if (res[n].loom_ms < 0)
                rc = 1;
            n++;
        }
        double after = threads > 1 ? bench_probe(o->pool) : 2;
        const char *machine = threads > 1 ? bench_machine_tag(before, after) : NULL;
        bench_results_head(o, "cells forward + backward", threads, machine, before, after);
        for (int i = 0; i < n; i++) {
            res[i].machine = machine;
            bench_result_print(o, &res[i]);
        }
        bench_results_foot(o, res, n);
        for (int i = 0; i < n; i++)
            if (!isnan(res[i].check) && !o->json)
                printf("  %s: custom cell vs built-in LSTM, same weights: outputs and gradients differ by %.1e "
                       "(max relative)%s\n",
                       res[i].name, res[i].check, res[i].check > 1e-4 ? "  RESULTS DIFFER" : "");
    }
    return rc;
}
