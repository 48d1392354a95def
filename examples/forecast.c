/*
 * forecast.c — time-series forecasting with an LSTM (or a GRU, --cell
 * gru): one step ahead from a window of past values, trained with mean
 * squared error, and judged the way forecasts should be, against the
 * naive forecasts that are hard to beat (the last value; the value one
 * season ago).
 *
 * What it shows:
 *   - z-score normalisation with statistics from the training part only,
 *     saved in the checkpoint's metadata with the model's configuration,
 *     and read back from there (loom_checkpoint_config) by the model that
 *     reports the test error;
 *   - a windowed LSTM/GRU regression (loom_rnn_forward's final state, a
 *     linear head, loom_mse, Adam with gradient clipping);
 *   - train / validation / test split by time (no window looks at the
 *     future of its split's targets), the best checkpoint on validation
 *     kept;
 *   - test RMSE in the series' own units next to naive last-value and
 *     seasonal-naive forecasts.
 *
 * The network sees each window relative to its last value and predicts
 * the change to the next one: a trending series leaves the range the
 * training part covered, and a network fed absolute levels would have to
 * extrapolate; changes stay in range.
 *
 *     build-dir/examples/forecast                 a generated price-like series
 *     build-dir/examples/forecast --csv prices.csv --column close --season 5
 *     build-dir/examples/forecast --tiny          small and quick (the tests)
 *
 * The generated series is trend + a slow random walk (the "price") + a
 * season of 12 + autocorrelated noise; with the defaults the LSTM's test
 * RMSE is 0.67 against 1.57 for the last value and 1.48 for the value a
 * season ago (the walk and the noise's fresh part alone leave ~0.58). Any numeric CSV column works
 * (--column takes a header name or a 0-based index; a file without a
 * header needs the index). Exit status 2 for a bad command line, 1 for a
 * file that cannot be read or a column that is not numeric.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "csv.h"
#include "loom.h"

static const char *const PROG = "forecast";

typedef struct options {
    const char *csv, *column, *out;
    long length;  /* generated series */
    long window, season, hidden, batch, steps, eval_every;
    double lr;
    long seed;
    bool gru; /* a GRU instead of the LSTM */
} options;

static void help(void)
{
    printf("usage: forecast [options]\n\n"
           "One-step-ahead LSTM forecaster; prints test RMSE next to naive forecasts.\n\n"
           "  --csv FILE        read the series from a CSV file (default: generate one)\n"
           "  --column C        CSV column: header name or 0-based index (default 0)\n"
           "  --length N        generated series length (default 1500)\n"
           "  --window W        past values the model sees (default 24)\n"
           "  --season P        period of the seasonal-naive forecast, <= W (default 12)\n"
           "  --cell lstm|gru   the recurrent layer (default lstm)\n"
           "  --hidden H        its hidden size (default 32)\n"
           "  --batch B         windows per step (default 32)\n"
           "  --steps S         Adam steps (default 800)\n"
           "  --lr LR           learning rate (default 0.003)\n"
           "  --seed S          seed of the generated series and the weights (default 1)\n"
           "  --out FILE        checkpoint of the best model (default forecast.safetensors)\n"
           "  --tiny            a short series and few steps (for tests)\n");
}

static options parse(int argc, char **argv)
{
    options o = { .column = "0", .out = "forecast.safetensors", .length = 1500, .window = 24, .season = 12,
                  .hidden = 32, .batch = 32, .steps = 800, .lr = 3e-3, .seed = 1 };
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--tiny"))
            o.length = 700, o.steps = 250, o.hidden = 24;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            exit(0);
        } else if (!strcmp(a, "--tiny")) {
            /* applied first, below, so later options still override it */
        } else if (!strcmp(a, "--csv")) {
            o.csv = ex_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--column")) {
            o.column = ex_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--out")) {
            o.out = ex_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--length")) {
            o.length = ex_int(PROG, argc, argv, &i, 100, 10000000);
        } else if (!strcmp(a, "--window")) {
            o.window = ex_int(PROG, argc, argv, &i, 2, 512);
        } else if (!strcmp(a, "--season")) {
            o.season = ex_int(PROG, argc, argv, &i, 1, 512);
        } else if (!strcmp(a, "--cell")) {
            o.gru = ex_cell(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--hidden")) {
            o.hidden = ex_int(PROG, argc, argv, &i, 1, 4096);
        } else if (!strcmp(a, "--batch")) {
            o.batch = ex_int(PROG, argc, argv, &i, 1, 4096);
        } else if (!strcmp(a, "--steps")) {
            o.steps = ex_int(PROG, argc, argv, &i, 1, 100000000);
        } else if (!strcmp(a, "--lr")) {
            o.lr = ex_real(PROG, argc, argv, &i, 1e-7, 10);
        } else if (!strcmp(a, "--seed")) {
            o.seed = ex_int(PROG, argc, argv, &i, 0, 2147483647);
        } else {
            ex_usage_error(PROG, "unknown argument \"%s\"", a);
        }
    }
    if (o.season > o.window)
        ex_usage_error(PROG, "--season %ld is longer than --window %ld", o.season, o.window);
    o.eval_every = o.steps / 20 > 10 ? o.steps / 20 : 10;
    return o;
}

/* ------------------------------------------------------------------ */
/* The series                                                         */
/* ------------------------------------------------------------------ */

/* A price-like series: level + trend + random walk + season (period 12)
 * + AR(1) noise. The walk and the noise are what no forecast can know;
 * the season and the noise's persistence are what a model can learn and
 * the naive forecasts miss. */
static double *generate(long n, uint64_t seed)
{
    double *y = malloc((size_t)n * sizeof *y);
    if (!y)
        return NULL;
    ex_rng r = { seed * 7919 + 11 };
    double walk = 0, noise = 0;
    for (long t = 0; t < n; t++) {
        walk += 0.3 * ex_normal(&r);
        noise = 0.6 * noise + 0.5 * ex_normal(&r);
        y[t] = 50.0 + 0.02 * (double)t + walk + 4.0 * sin(6.283185307179586 * (double)t / 12.0) + noise;
    }
    return y;
}

/* ------------------------------------------------------------------ */
/* The model                                                          */
/* ------------------------------------------------------------------ */

typedef struct model {
    loom_ctx *ctx;
    long window, hidden, batch;
    loom_rnn *rnn;
    loom_linear head;
    loom_optimizer *opt; /* NULL: an evaluation-only model */
    loom_t x;            /* input [W, B, 1]: the window minus its last value */
    loom_t y;            /* input [B, 1]: the next value minus the last */
    loom_t pred;         /* [B, 1] */
    loom_t loss;
} model;

static int fail(loom_ctx *ctx)
{
    fprintf(stderr, "%s: %s\n", PROG, loom_errmsg(ctx));
    return EX_FAIL;
}

/* Builds the model and records its tape: the forward pass and, for a
 * trained model, its MSE gradient and Adam update. */
static int model_init(model *m, long window, long hidden, bool gru, long batch, const options *o, bool train)
{
    memset(m, 0, sizeof *m);
    m->window = window, m->hidden = hidden, m->batch = batch;
    m->ctx = loom_ctx_new(&(loom_options){ .seed = (uint64_t)o->seed + 1 });
    if (!m->ctx)
        return EX_FAIL;
    loom_ctx *ctx = m->ctx;
    loom_rnn_config cfg = { .mode = gru ? LOOM_GRU : LOOM_LSTM, .input_size = 1, .hidden_size = hidden };
    m->rnn = loom_rnn_new(ctx, "rnn", &cfg);
    loom_linear_init(ctx, &m->head, "head", hidden, 1, true, LOOM_F32);
    if (train)
        m->opt = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = o->lr, .clip_norm = 1.0 });

    m->x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(window, batch, 1));
    m->y = loom_input(ctx, "y", LOOM_F32, LOOM_SHAPE(batch, 1));
    loom_t out;
    loom_rnn_state last;
    loom_rnn_forward(ctx, m->rnn, m->x, NULL, LOOM_NULL, train, &out, &last); /* last.h [1, B, H] */
    m->pred = loom_linear_forward(ctx, &m->head, loom_reshape(ctx, last.h, LOOM_SHAPE(batch, hidden)));
    m->loss = loom_mse(ctx, m->pred, m->y);
    if (train)
        loom_optimizer_attach(ctx, m->opt, m->loss);
    return loom_failed(ctx) ? fail(ctx) : 0;
}

static void model_free(model *m)
{
    loom_optimizer_free(m->opt);
    loom_rnn_free(m->rnn);
    loom_ctx_free(m->ctx);
}

/* Feeds the windows ending just before targets at[0..B): z[t-W..t)
 * relative to z[t-1], and z[t] - z[t-1]. */
static void feed(model *m, const double *z, const long *at)
{
    long W = m->window, B = m->batch;
    float *x = malloc((size_t)(W * B) * sizeof *x), *y = malloc((size_t)B * sizeof *y);
    if (x && y) {
        for (long b = 0; b < B; b++) {
            double last = z[at[b] - 1];
            for (long k = 0; k < W; k++)
                x[k * B + b] = (float)(z[at[b] - W + k] - last);
            y[b] = (float)(z[at[b]] - last);
        }
        loom_feed(m->ctx, m->x, x, (size_t)(W * B) * sizeof *x);
        loom_feed(m->ctx, m->y, y, (size_t)B * sizeof *y);
    }
    free(x);
    free(y);
}

/* RMSE, in the series' units (std: the z-score scale), of one-step
 * forecasts of every target in [from, to). */
static int rmse(model *m, const double *z, double std, long from, long to, double *out)
{
    long B = m->batch;
    long at[4096];
    double se = 0;
    for (long t0 = from; t0 < to; t0 += B) {
        for (long b = 0; b < B; b++) /* the last batch is padded with its last target */
            at[b] = t0 + b < to ? t0 + b : to - 1;
        feed(m, z, at);
        loom_code rc = m->opt ? loom_eval(m->ctx, 1, &m->pred) : loom_run(m->ctx, 1, &m->pred);
        if (rc != LOOM_OK)
            return fail(m->ctx);
        const float *p = loom_data(m->ctx, m->pred);
        for (long b = 0; b < B && t0 + b < to; b++) {
            double e = (z[at[b] - 1] + p[b] - z[at[b]]) * std;
            se += e * e;
        }
    }
    *out = sqrt(se / (double)(to - from));
    return 0;
}

/* ------------------------------------------------------------------ */
/* Training and evaluation                                            */
/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    options o = parse(argc, argv);
    long n = o.length;
    double *y = o.csv ? ex_csv_column(PROG, o.csv, o.column, &n) : generate(n, (uint64_t)o.seed);
    if (!y)
        return EX_FAIL;
    /* targets t in [W, n): train [W, n_tr), validation [n_tr, n_va), test
     * [n_va, n); every split needs some targets */
    long W = o.window, n_tr = (long)(0.70 * (double)n), n_va = (long)(0.85 * (double)n);
    if (n_tr - W < 8 || n_va - n_tr < 4 || n - n_va < 4) {
        fprintf(stderr, "%s: %ld values are too few for a window of %ld (need at least %ld)\n", PROG, n, W,
                (W + 8) * 10 / 7 + 2);
        free(y);
        return EX_FAIL;
    }

    /* z-score statistics of the training part only */
    double mean = 0, var = 0;
    for (long t = 0; t < n_tr; t++)
        mean += y[t];
    mean /= (double)n_tr;
    for (long t = 0; t < n_tr; t++)
        var += (y[t] - mean) * (y[t] - mean);
    double std = sqrt(var / (double)n_tr);
    if (!(std > 0))
        std = 1;
    double *z = malloc((size_t)n * sizeof *z);
    if (!z) {
        free(y);
        return EX_FAIL;
    }
    for (long t = 0; t < n; t++)
        z[t] = (y[t] - mean) / std;

    printf("forecast: %s, %ld values; train %ld, validation %ld, test %ld one-step targets\n",
           o.csv ? o.csv : "generated price-like series", n, n_tr - W, n_va - n_tr, n - n_va);
    printf("z-score from the training part: mean %.4f std %.4f; %s hidden %ld over windows of %ld, Adam lr %g, "
           "%ld steps of %ld\n",
           mean, std, o.gru ? "GRU" : "LSTM", o.hidden, W, o.lr, o.steps, o.batch);

    model m;
    int rc = model_init(&m, W, o.hidden, o.gru, o.batch, &o, true);
    ex_rng r = { (uint64_t)o.seed * 31 + 5 };
    long *at = malloc((size_t)o.batch * sizeof *at);
    double best = INFINITY, val = 0, loss = 0;
    long best_step = 0, nloss = 0;
    char config[512];
    for (long s = 1; !rc && at && s <= o.steps; s++) {
        for (long b = 0; b < o.batch; b++)
            at[b] = W + ex_below(&r, (int)(n_tr - W));
        feed(&m, z, at);
        if (loom_optimizer_step(m.ctx, m.opt, 1, &m.loss) != LOOM_OK) {
            rc = fail(m.ctx);
            break;
        }
        loss += loom_item(m.ctx, m.loss), nloss++;
        if (s % o.eval_every && s != o.steps)
            continue;
        if ((rc = rmse(&m, z, std, n_tr, n_va, &val)))
            break;
        bool better = val < best;
        printf("step %5ld  train mse %.4f  val rmse %.4f%s\n", s, loss / (double)nloss, val,
               better ? "  (best, saved)" : "");
        loss = 0, nloss = 0;
        if (better) {
            best = val, best_step = s;
            /* what the model needs besides its weights: the z-score
             * statistics and the shape of its input */
            snprintf(config, sizeof config,
                     "{\"model\": \"forecast-rnn\", \"cell\": \"%s\", \"mean\": %.17g, \"std\": %.17g, "
                     "\"window\": %ld, \"hidden\": %ld, \"season\": %ld, \"source\": \"%s\"}",
                     o.gru ? "gru" : "lstm", mean, std, W, o.hidden, o.season, o.csv ? "csv" : "generated");
            if (loom_checkpoint_save(m.ctx, o.out, m.opt, config) != LOOM_OK)
                rc = fail(m.ctx);
        }
    }
    free(at);
    model_free(&m);
    if (rc) {
        free(y), free(z);
        return rc;
    }

    /* The test error, from the saved model alone: configuration and
     * statistics from its metadata, weights from the file. */
    model e;
    double test = 0;
    loom_ctx *meta = loom_ctx_new(NULL);
    rc = !meta ? EX_FAIL : loom_checkpoint_config(meta, o.out, config, sizeof config) != LOOM_OK ? fail(meta) : 0;
    loom_ctx_free(meta);
    double s_mean = ex_json_number(config, "mean"), s_std = ex_json_number(config, "std");
    long s_window = (long)ex_json_number(config, "window"), s_hidden = (long)ex_json_number(config, "hidden");
    if (!rc && (!isfinite(s_mean) || !(s_std > 0) || s_window != W || s_hidden < 1)) {
        fprintf(stderr, "%s: %s: unexpected config %s\n", PROG, o.out, config);
        rc = EX_FAIL;
    }
    bool s_gru = strstr(config, "\"cell\": \"gru\"") != NULL;
    if (!rc && !(rc = model_init(&e, s_window, s_hidden, s_gru, o.batch, &o, false))) {
        if (loom_checkpoint_load(e.ctx, o.out, NULL, LOOM_LOAD_ALLOW_UNEXPECTED) != LOOM_OK)
            rc = fail(e.ctx);
        for (long t = 0; !rc && t < n; t++) /* normalised with the file's statistics */
            z[t] = (y[t] - s_mean) / s_std;
        if (!rc)
            rc = rmse(&e, z, s_std, n_va, n, &test);
        model_free(&e);
    }
    if (rc) {
        free(y), free(z);
        return rc;
    }

    /* the naive forecasts of the same targets */
    double se_last = 0, se_season = 0;
    for (long t = n_va; t < n; t++) {
        se_last += (y[t] - y[t - 1]) * (y[t] - y[t - 1]);
        se_season += (y[t] - y[t - o.season]) * (y[t] - y[t - o.season]);
    }
    double naive = sqrt(se_last / (double)(n - n_va)), seasonal = sqrt(se_season / (double)(n - n_va));
    printf("best validation rmse %.4f at step %ld, saved to %s with its config:\n  %s\n", best, best_step, o.out,
           config);
    printf("test rmse (%ld targets, series units): model %.4f  naive-last %.4f  seasonal-naive %.4f (period %ld)\n",
           n - n_va, test, naive, seasonal, o.season);
    printf("model vs naive-last: %.1f%% %s\n", 100.0 * fabs(1.0 - test / naive), test < naive ? "lower" : "higher");
    free(y);
    free(z);
    return 0;
}
