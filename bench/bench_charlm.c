/*
 * bench_charlm.c — `loom-bench charlm`: one Adam training step of a
 * character-level language model, loom next to PyTorch, f32:
 *
 *   ids [T, B] -> embedding (65, H) -> LSTM (H, H, L layers) -> Linear(H, 65)
 *   -> cross-entropy against the next ids (mean over T*B) -> Adam, lr 2e-3
 *
 * with B = 32, T = 64, cases lstm-H256-L1 and lstm-H512-L2. A step is
 * forward, backward and update: for loom one loom_optimizer_step (the
 * three are one compiled plan), for PyTorch zero_grad, forward, backward,
 * optimizer.step(). Reported: the median step after warm-up; the first
 * step separately (loom compiles its plan in it), with loom_get_stats's
 * LLVM time and plan memory.
 *
 * Same problem on both sides: the token ids come from splitmix64 with a
 * fixed seed (bench/peers/charlm_torch.py draws the same stream), one
 * batch reused every step, and PyTorch starts from loom's initial weights
 * (loom writes them as safetensors under PyTorch's parameter names, the
 * script loads them), so the losses of the first two steps — before and
 * after one Adam update — must agree to ~1e-5: a check of forward,
 * backward and optimizer together. Both are printed.
 *
 * GFLOP/s counts the GEMMs only, 2·M·N·K each: per layer and step
 * x·W_ih^T and h·W_hh^T (M = B, N = 4H, K = H), plus the output layer
 * (M = T·B, N = 65, K = H); backward counts twice forward. That is the
 * model as written, and PyTorch's work. loom's plan does less: layer 0's
 * input products are computed on the 65-row embedding table, not on the
 * T·B rows looked up from it (compile/fold.c), so loom's GFLOP/s and
 * fraction of peak count the GEMMs its plan does (loom_get_stats), and a
 * line under the table gives both; LOOM_FOLD=0 runs the model's.
 *
 * PyTorch runs as a child process (run with /usr/bin/python3, where
 * Debian's torch imports), one at a time after loom, in the environment it
 * is fastest in (bench_torch_env). Without torch the peer columns are
 * empty.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loom.h"

enum { BATCH = 32, SEQ = 64, VOCAB = 65, MAX_CASES = 2 };
static const double LR = 2e-3;
static const uint64_t DATA_SEED = 1; /* the script's --seed */

typedef struct charlm_case {
    const char *name;
    int64_t hidden;
    int layers;
} charlm_case;

static const charlm_case cases[MAX_CASES] = {
    { "lstm-H256-L1", 256, 1 },
    { "lstm-H512-L2", 512, 2 },
};

/* GEMM flops of one training step. */
static double step_flops(const charlm_case *c)
{
    double h = (double)c->hidden, b = BATCH, t = SEQ;
    double fwd = c->layers * t * (2 * b * 4 * h * h + 2 * b * 4 * h * h) + 2 * t * b * VOCAB * h;
    return 3 * fwd;
}

/* ------------------------------------------------------------------ */
/* Data                                                               */
/* ------------------------------------------------------------------ */

/* ids [n] in [0, VOCAB): splitmix64, the high bits modulo VOCAB. */
static void draw_ids(uint64_t seed, int32_t *ids, size_t n)
{
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++) {
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        ids[i] = (int32_t)((z >> 33) % VOCAB);
    }
}

/* ------------------------------------------------------------------ */
/* The loom model                                                     */
/* ------------------------------------------------------------------ */

typedef struct model {
    loom_ctx *ctx;
    loom_embedding emb; /* weight [65, H] */
    loom_rnn *lstm;     /* weight_ih_l{k} [4H, H], weight_hh_l{k} [4H, H], biases [4H] */
    loom_linear head;   /* weight [65, H], bias [65] */
    loom_optimizer *opt;
    loom_t ids;         /* i32 [T, B] */
    loom_t targets;     /* i32 [T * B] */
    loom_t loss;        /* scalar */
    bool failed;
} model;

/* Records the model, its loss and the Adam update, and feeds the batch:
 * data [(T + 1) * B] holds the ids row by row, targets are the next row. */
static int model_init(model *m, const charlm_case *c, int threads, const int32_t *data)
{
    memset(m, 0, sizeof *m);
    m->ctx = loom_ctx_new(&(loom_options){ .seed = 17, .threads = threads });
    loom_ctx *ctx = m->ctx;
    if (!ctx)
        return 1;
    int64_t h = c->hidden;
    loom_embedding_init(ctx, &m->emb, "emb", VOCAB, h, LOOM_F32);
    m->lstm = loom_rnn_new(ctx, "lstm",
                           &(loom_rnn_config){ .mode = LOOM_LSTM, .input_size = h, .hidden_size = h,
                                               .num_layers = c->layers });
    loom_linear_init(ctx, &m->head, "head", h, VOCAB, true, LOOM_F32);
    m->opt = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = LR });

    m->ids = loom_input(ctx, "ids", LOOM_I32, LOOM_SHAPE(SEQ, BATCH));
    m->targets = loom_input(ctx, "targets", LOOM_I32, LOOM_SHAPE(SEQ * BATCH));
    loom_t out; /* [T, B, H] */
    loom_rnn_forward(ctx, m->lstm, loom_embedding_forward(ctx, &m->emb, m->ids), NULL, LOOM_NULL, true, &out, NULL);
    loom_t logits = loom_linear_forward(ctx, &m->head, loom_reshape(ctx, out, LOOM_SHAPE(SEQ * BATCH, h)));
    m->loss = loom_cross_entropy(ctx, logits, m->targets);
    loom_optimizer_attach(ctx, m->opt, m->loss);
    loom_feed(ctx, m->ids, data, SEQ * BATCH * sizeof *data);
    loom_feed(ctx, m->targets, data + BATCH, SEQ * BATCH * sizeof *data);
    if (loom_failed(ctx)) {
        fprintf(stderr, "loom-bench charlm: %s: %s\n", c->name, loom_errmsg(ctx));
        return 1;
    }
    return 0;
}

static void model_step(void *ud)
{
    model *m = ud;
    if (!m->failed && loom_optimizer_step(m->ctx, m->opt, 1, &m->loss) != LOOM_OK) {
        fprintf(stderr, "loom-bench charlm: %s\n", loom_errmsg(m->ctx));
        m->failed = true;
    }
}

static void model_free(model *m)
{
    loom_optimizer_free(m->opt);
    loom_rnn_free(m->lstm);
    loom_ctx_free(m->ctx);
}

/* Times loom on case c; writes its initial weights to init_path (NULL: don't). */
static void run_loom(const bench_opts *o, const charlm_case *c, int threads, const int32_t *data,
                     const char *init_path, bench_result *r)
{
    model m;
    if (model_init(&m, c, threads, data))
        goto out;
    if (init_path && loom_checkpoint_save(m.ctx, init_path, NULL, NULL) != LOOM_OK)
        fprintf(stderr, "loom-bench charlm: %s\n", loom_errmsg(m.ctx)); /* the peer starts from its own */
    double t0 = bench_now();
    model_step(&m); /* compiles the plan */
    r->loom_first_ms = (bench_now() - t0) * 1e3;
    r->loom_loss[0] = loom_item(m.ctx, m.loss);
    model_step(&m);
    r->loom_loss[1] = loom_item(m.ctx, m.loss);
    double ms = bench_time_ms(o, model_step, &m);
    loom_stats st;
    if (!m.failed && loom_get_stats(m.ctx, &st) == LOOM_OK) {
        r->loom_ms = ms;
        r->loom_compile_ms = st.compile_ms;
        r->loom_plan_bytes = st.plan_bytes;
        r->loom_flops = st.gemm_flops;
    }
out:
    model_free(&m);
}

/* ------------------------------------------------------------------ */
/* The PyTorch peer                                                   */
/* ------------------------------------------------------------------ */

static void run_torch(const bench_opts *o, const charlm_case *c, int threads, const char *init_path,
                      char *peer, size_t peer_size, bench_result *r)
{
    char hidden[24], layers[24], nthreads[24], seed[24], min_time[32], batch[24], seq[24];
    snprintf(hidden, sizeof hidden, "%lld", (long long)c->hidden);
    snprintf(layers, sizeof layers, "%d", c->layers);
    snprintf(nthreads, sizeof nthreads, "%d", threads);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)DATA_SEED);
    snprintf(min_time, sizeof min_time, "%g", o->min_time);
    snprintf(batch, sizeof batch, "%d", BATCH);
    snprintf(seq, sizeof seq, "%d", SEQ);
    char *argv[] = { (char *)bench_python(), (char *)bench_torch_script(), "--mode", "charlm", "--hidden", hidden,
                     "--layers", layers, "--batch", batch, "--seq", seq, "--threads", nthreads, "--seed", seed,
                     "--min-time", min_time, init_path ? "--init" : NULL, (char *)init_path, NULL };
    char line[2048], name[48], blas[40];
    if (bench_child_json(argv, bench_torch_env(threads), line, sizeof line) != 0)
        return;
    if (!bench_json_number(line, "median_ms", &r->peer_ms))
        return;
    bench_json_number(line, "first_ms", &r->peer_first_ms);
    if (bench_json_numbers(line, "losses", r->peer_loss, 2) == 2 && init_path)
        r->check = fmax(fabs(r->loom_loss[0] - r->peer_loss[0]), fabs(r->loom_loss[1] - r->peer_loss[1])) /
                   fabs(r->peer_loss[0]);
    if (!bench_json_string(line, "peer", name, sizeof name))
        snprintf(name, sizeof name, "torch");
    if (!bench_json_string(line, "blas", blas, sizeof blas))
        snprintf(blas, sizeof blas, "?");
    snprintf(peer, peer_size, "%s/%s", name, blas);
    r->peer = peer;
}

/* ------------------------------------------------------------------ */
/* The suite                                                          */
/* ------------------------------------------------------------------ */

static void print_checks(const bench_opts *o, const bench_result *res, int n)
{
    if (o->json)
        return;
    for (int i = 0; i < n; i++) {
        const bench_result *r = &res[i];
        printf("  %s losses, steps 1 and 2: loom %.6f %.6f", r->name, r->loom_loss[0], r->loom_loss[1]);
        if (!isnan(r->peer_loss[0]))
            printf(", torch %.6f %.6f (|diff| %.1e, %.1e)%s; torch's first step %.1f ms", r->peer_loss[0],
                   r->peer_loss[1], fabs(r->loom_loss[0] - r->peer_loss[0]), fabs(r->loom_loss[1] - r->peer_loss[1]),
                   isnan(r->check) ? " from torch's own initial weights" : r->check > 1e-4 ? " LOSSES DIFFER" : "",
                   r->peer_first_ms);
        printf("\n");
        if (r->loom_flops > 0 && fabs(r->loom_flops - r->flops) > 1e-3 * r->flops)
            printf("  %s work: loom's plan does %.1f GFLOP of GEMMs a step, the model as written %.1f (PyTorch's): "
                   "loom's GFLOP/s and peak count its own, LOOM_FOLD=0 does the model's\n",
                   r->name, r->loom_flops / 1e9, r->flops / 1e9);
    }
}

int bench_charlm(const bench_opts *o)
{
    static int32_t data[(SEQ + 1) * BATCH];
    draw_ids(DATA_SEED, data, LM_ARRAY_LEN(data));
    char init_path[256];
    const char *tmp = getenv("TMPDIR");
    snprintf(init_path, sizeof init_path, "%s/loom-bench-charlm-%ld.safetensors", tmp && *tmp ? tmp : "/tmp",
             (long)getpid());
    bool progress = isatty(2);
    if (!o->json)
        printf("loom-bench charlm: embedding -> LSTM -> linear -> cross-entropy, Adam; f32, B=%d T=%d vocab %d\n"
               "peer: PyTorch (%s %s), torch.set_num_threads(threads), %s\n",
               BATCH, SEQ, VOCAB, bench_python(), bench_torch_script(), bench_torch_env_name());

    int rc = 0;
    for (int ti = 0; o->threads[ti]; ti++) {
        int threads = o->threads[ti];
        if (threads > rt_pool_size(o->pool))
            continue;
        double before = threads > 1 ? bench_probe(o->pool) : 2;
        bench_result res[MAX_CASES];
        char peers[MAX_CASES][96];
        int n = 0;
        for (int i = 0; i < MAX_CASES; i++) {
            const charlm_case *c = &cases[i];
            if (!bench_selected(o, c->name))
                continue;
            if (progress)
                fprintf(stderr, "loom-bench charlm: %s, %d thread%s ...\n", c->name, threads, threads > 1 ? "s" : "");
            bench_result *r = &res[n++];
            *r = bench_result_empty("charlm", c->name, threads, step_flops(c));
            bench_cpu cpu0 = bench_cpu_now();
            run_loom(o, c, threads, data, init_path, r);
            run_torch(o, c, threads, access(init_path, R_OK) == 0 ? init_path : NULL, peers[i], sizeof peers[i], r);
            r->others = bench_cpu_others(cpu0, bench_cpu_now());
            unlink(init_path);
            if (r->loom_ms < 0)
                rc = 1;
        }
        double after = threads > 1 ? bench_probe(o->pool) : 2;
        const char *machine = threads > 1 ? bench_machine_tag(before, after) : NULL;
        bench_results_head(o, "charlm training step", threads, machine, before, after);
        for (int i = 0; i < n; i++) {
            res[i].machine = machine;
            bench_result_print(o, &res[i]);
        }
        bench_results_foot(o, res, n);
        print_checks(o, res, n);
    }
    return rc;
}
