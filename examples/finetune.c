/*
 * finetune.c — pretrain a character-level LSTM language model on one
 * text, then adapt it to another in three ways, and compare: every weight
 * trained (full), the lower layers frozen, and low-rank adapters (LoRA)
 * with every pretrained weight frozen — LoRA twice, through loom's API and
 * written out from ops. For each it prints the validation loss on the new
 * text before and after, and how many parameters trained; the same
 * training from random weights is the reference that shows what
 * pretraining bought.
 *
 * What it shows:
 *   - a checkpoint with its model configuration (loom_checkpoint_save's
 *     config JSON); every mode builds its model from that configuration
 *     (loom_checkpoint_config) and loads the weights into a fresh context;
 *   - freezing: loom_params_set_trainable by name prefix (a frozen
 *     parameter gets no gradient graph, no update, no optimizer state);
 *     "frozen" keeps the embedding and LSTM layer 0, trains layer 1 and
 *     the output layer;
 *   - LoRA with loom_lora_add on the LSTM's input and recurrent weights of
 *     both layers and on the output layer. An adapter makes the weight
 *     W + (alpha / r) B A, with A [r, in] random, B [out, r] zero (so the
 *     adapted model starts exactly as the pretrained one) and W frozen;
 *     the built-in LSTM and Linear read their weights through
 *     loom_weight(), so the adapters reach inside the recurrent cell.
 *     Afterwards loom_lora_merge folds B A into W, and the merged model,
 *     with no adapters left, is evaluated again: the same loss;
 *   - LoRA from ops ("lora-ops"): the same five adapters as ordinary
 *     parameters and the LSTM written out step by step (like
 *     examples/ln_lstm.h), each adapted product computed as
 *     x W^T + (alpha / r) (x A^T) B^T. It reads the pretrained weights by
 *     name (loom_param_find), so its loss before fine-tuning is the
 *     built-in model's.
 *
 *     build-dir/examples/finetune                       default texts (below)
 *     build-dir/examples/finetune --pretrain ../shared/data/tinyshakespeare.txt --target notes.txt
 *     build-dir/examples/finetune --tiny                small and quick (the tests)
 *
 * Without --pretrain it uses ../shared/data/tinyshakespeare.txt when that
 * file exists (and not --tiny), otherwise a generated story-like text;
 * without --target, a generated recipe-like text. Nothing is downloaded.
 * The last tenth of each text is its validation part. Characters outside
 * printable ASCII read as '?'. With the defaults and tinyshakespeare, the
 * recipe text's validation loss (nats/char) goes from 2.50 to 0.39 (full),
 * 0.40 (frozen), 0.44 (LoRA, 21,504 of 252,000 parameters training); from
 * random weights the same steps reach 0.48.
 *
 * Exit status 2 for a bad command line, 1 for a file that cannot be read
 * or is too short, or a loom error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "loom.h"

static const char *const PROG = "finetune";
static const char *const SHAKESPEARE = "../shared/data/tinyshakespeare.txt";

enum { VOCAB = 96, LAYERS = 2 }; /* '\n' and the 95 printable ASCII characters */

typedef struct options {
    const char *pretrain, *target, *out;
    long embed, hidden, seq, batch, pretrain_steps, finetune_steps, rank;
    double lr, lora_lr, alpha;
    long seed;
    bool tiny;
} options;

/* ------------------------------------------------------------------ */
/* Texts                                                              */
/* ------------------------------------------------------------------ */

static int32_t char_id(unsigned char c)
{
    if (c == '\n')
        return 0;
    return c >= 32 && c < 127 ? c - 31 : '?' - 31;
}

static const char *pick(ex_rng *r, const char *const *words, int n) { return words[ex_below(r, n)]; }
#define PICK(r, list) pick(r, list, (int)(sizeof list / sizeof *list))

/* Appends formatted text, growing buf. */
static bool put(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t k = strlen(s);
    if (*len + k + 1 > *cap) {
        size_t c = *cap ? *cap * 2 : 4096;
        while (c < *len + k + 1)
            c *= 2;
        char *more = realloc(*buf, c);
        if (!more)
            return false;
        *buf = more, *cap = c;
    }
    memcpy(*buf + *len, s, k + 1);
    *len += k;
    return true;
}

/* A story-like text: sentences about travellers, hills and rivers. */
static char *make_story(size_t target_len, uint64_t seed, size_t *n)
{
    static const char *const who[] = { "the old man", "a young girl", "the traveller", "her brother", "the king",
                                       "a tired horse", "the shepherd", "my friend" };
    static const char *const verb[] = { "walked", "looked", "waited", "sang", "slept", "turned", "listened" };
    static const char *const prep[] = { "over", "under", "near", "beyond", "across", "beside", "towards" };
    static const char *const place[] = { "the hill", "the river", "the dark wood", "the little house",
                                         "the old bridge", "the stone wall", "the quiet field" };
    static const char *const when[] = { "at dawn", "in the evening", "all night", "before the rain",
                                        "when the bells rang", "for a long time" };
    ex_rng r = { seed };
    char *buf = NULL, sentence[256];
    size_t len = 0, cap = 0;
    while (len < target_len) {
        const char *w = PICK(&r, who);
        snprintf(sentence, sizeof sentence, "%c%s %s %s %s %s%s", w[0] - 32 * (w[0] >= 'a'), w + 1, PICK(&r, verb),
                 PICK(&r, prep), PICK(&r, place), PICK(&r, when), ex_below(&r, 4) ? ". " : ".\n");
        if (!put(&buf, &len, &cap, sentence)) {
            free(buf);
            return NULL;
        }
    }
    *n = len;
    return buf;
}

/* A recipe-like text: a different vocabulary, numbers, a fixed rhythm. */
static char *make_recipes(size_t target_len, uint64_t seed, size_t *n)
{
    static const char *const act[] = { "Stir", "Whisk", "Fold", "Simmer", "Chop", "Season", "Bake", "Roast",
                                       "Grate", "Knead", "Melt", "Toast", "Poach", "Slice" };
    static const char *const food[] = { "the onions", "two eggs", "the butter", "a cup of flour", "the garlic",
                                        "the tomatoes", "some salt", "the cream", "the dough", "three carrots",
                                        "a lemon", "the rice", "half the cheese", "the mushrooms", "a pinch of pepper",
                                        "the apples", "some honey", "the fish" };
    static const char *const how[] = { "gently", "slowly", "well", "until golden", "until smooth", "over a low flame",
                                       "in a warm oven", "with a wooden spoon", "in a wide pan" };
    static const char *const then[] = { "stir", "mix", "toss", "cover", "rest", "cook" };
    ex_rng r = { seed };
    char *buf = NULL, line[256];
    size_t len = 0, cap = 0;
    while (len < target_len) {
        if (ex_below(&r, 3))
            snprintf(line, sizeof line, "%s %s %s for %d minutes.%s", PICK(&r, act), PICK(&r, food), PICK(&r, how),
                     2 + ex_below(&r, 58), ex_below(&r, 3) ? " " : "\n");
        else
            snprintf(line, sizeof line, "Add %s to %s and %s %s.%s", PICK(&r, food), PICK(&r, food),
                     PICK(&r, then), PICK(&r, how), ex_below(&r, 3) ? " " : "\n");
        if (!put(&buf, &len, &cap, line)) {
            free(buf);
            return NULL;
        }
    }
    *n = len;
    return buf;
}

/* A text as ids, split into a training part and the validation tail. */
typedef struct corpus {
    const char *name;
    int32_t *ids;
    size_t n, n_train; /* ids [0, n_train) train, [n_train, n) validate */
} corpus;

static int corpus_make(corpus *c, const char *name, char *text, size_t n, long seq)
{
    c->name = name;
    c->n = n;
    c->n_train = n - n / 10;
    c->ids = text ? malloc(n * sizeof *c->ids) : NULL;
    if (c->ids)
        for (size_t i = 0; i < n; i++)
            c->ids[i] = char_id((unsigned char)text[i]);
    free(text);
    if (!c->ids) {
        fprintf(stderr, "%s: out of memory\n", PROG);
        return EX_FAIL;
    }
    if (n / 10 < (size_t)seq + 1 || c->n_train < (size_t)seq + 1) {
        fprintf(stderr, "%s: %s has %zu characters; it needs at least %ld (its last tenth, the validation part, "
                        "must hold a window of %ld)\n",
                PROG, name, n, 10 * (seq + 1), seq + 1);
        return EX_FAIL;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* The model                                                          */
/* ------------------------------------------------------------------ */

/* A weight with a low-rank adapter written out from ops (MODE_LORA_OPS). */
typedef struct adapter {
    loom_t w;     /* [out, in], frozen */
    loom_t a, b;  /* [r, in] random, [out, r] zero: trained */
    double scale; /* alpha / r */
} adapter;

/* The weights MODE_LORA and MODE_LORA_OPS adapt. */
enum { N_ADAPTED = 5 };
static const char *const ADAPTED[N_ADAPTED] = { "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.weight_ih_l1",
                                                "lstm.weight_hh_l1", "head.weight" };

typedef struct model {
    loom_ctx *ctx;
    long seq, batch, hidden;
    loom_embedding emb;
    loom_rnn *lstm;
    loom_linear head;
    bool ops;                /* the LSTM and head written from ops with ad[] (MODE_LORA_OPS) */
    adapter ad[N_ADAPTED];   /* ADAPTED's order */
    loom_optimizer *opt;
    loom_t ids;     /* [T, B] */
    loom_t targets; /* [T * B]: the next character of each */
    loom_t loss;
} model;

static int fail(loom_ctx *ctx)
{
    fprintf(stderr, "%s: %s\n", PROG, loom_errmsg(ctx));
    return EX_FAIL;
}

/* The parameters: emb.weight, lstm.{weight,bias}_{ih,hh}_l{0,1},
 * head.{weight,bias}. */
static int model_new(model *m, const options *o)
{
    memset(m, 0, sizeof *m);
    m->seq = o->seq, m->batch = o->batch, m->hidden = o->hidden;
    m->ctx = loom_ctx_new(&(loom_options){ .seed = (uint64_t)o->seed });
    if (!m->ctx)
        return EX_FAIL;
    loom_embedding_init(m->ctx, &m->emb, "emb", VOCAB, o->embed, LOOM_F32);
    loom_rnn_config cfg = { .mode = LOOM_LSTM, .input_size = o->embed, .hidden_size = o->hidden, .num_layers = LAYERS };
    m->lstm = loom_rnn_new(m->ctx, "lstm", &cfg);
    loom_linear_init(m->ctx, &m->head, "head", o->hidden, VOCAB, true, LOOM_F32);
    return loom_failed(m->ctx) ? fail(m->ctx) : 0;
}

/* LoRA from ops: x W^T + (alpha / r) (x A^T) B^T for x [N, in]. Two thin
 * matmuls instead of forming B A: r (in + out) multiply-adds a row. */
static loom_t adapted_matmul(loom_ctx *ctx, loom_t x, const adapter *ad)
{
    loom_t y = loom_matmul_t(ctx, x, ad->w, false, true);
    loom_t low = loom_matmul_t(ctx, loom_matmul_t(ctx, x, ad->a, false, true), ad->b, false, true);
    return loom_add(ctx, y, loom_muls(ctx, low, ad->scale));
}

/* The two-layer LSTM of loom_rnn_forward written out step by step (gates
 * i, f, g, o as torch.nn.LSTM), its four weight matrices adapted. Each
 * step is marked, layer by layer, so the compiler finds the repeated cell
 * as it does in the built-in one. x [T, B, E] -> [T, B, H]. */
static loom_t lstm_from_ops(model *m, loom_t x)
{
    loom_ctx *ctx = m->ctx;
    long T = m->seq, B = m->batch, H = m->hidden;
    loom_t *hs = malloc((size_t)T * sizeof *hs);
    if (!hs)
        return LOOM_NULL;
    for (int k = 0; k < LAYERS; k++) {
        char name[64];
        snprintf(name, sizeof name, "lstm.bias_ih_l%d", k);
        loom_t bias = loom_param_find(ctx, name);
        snprintf(name, sizeof name, "lstm.bias_hh_l%d", k);
        bias = loom_add(ctx, bias, loom_param_find(ctx, name)); /* [4H] */
        int64_t in = loom_shape_of(ctx, x).d[2];
        loom_t h = loom_full(ctx, LOOM_F32, LOOM_SHAPE(B, H), 0), c = h;
        for (long t = 0; t < T; t++) {
            loom_step_begin(ctx, (int)t);
            loom_t xt = loom_reshape(ctx, loom_slice(ctx, x, 0, t, t + 1, 1), LOOM_SHAPE(B, in));
            loom_t g = loom_add(ctx, loom_add(ctx, adapted_matmul(ctx, xt, &m->ad[2 * k]),
                                              adapted_matmul(ctx, h, &m->ad[2 * k + 1])),
                                bias); /* [B, 4H] */
            loom_t i = loom_sigmoid(ctx, loom_slice(ctx, g, 1, 0, H, 1));
            loom_t f = loom_sigmoid(ctx, loom_slice(ctx, g, 1, H, 2 * H, 1));
            loom_t u = loom_tanh(ctx, loom_slice(ctx, g, 1, 2 * H, 3 * H, 1));
            loom_t o = loom_sigmoid(ctx, loom_slice(ctx, g, 1, 3 * H, 4 * H, 1));
            c = loom_add(ctx, loom_mul(ctx, f, c), loom_mul(ctx, i, u));
            h = loom_mul(ctx, o, loom_tanh(ctx, c));
            hs[t] = loom_reshape(ctx, h, LOOM_SHAPE(1, B, H));
            loom_step_end(ctx);
        }
        x = loom_concat(ctx, (int)T, hs, 0);
    }
    free(hs);
    return x;
}

/* Records the loss on a fresh tape and, with an optimizer (created here
 * for the parameters trainable now), its gradient and update. */
static int model_record(model *m, double lr)
{
    loom_ctx *ctx = m->ctx;
    loom_reset(ctx);
    if (lr > 0 && !m->opt)
        m->opt = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = lr, .clip_norm = 1.0 });
    long T = m->seq, B = m->batch;
    m->ids = loom_input(ctx, "ids", LOOM_I32, LOOM_SHAPE(T, B));
    m->targets = loom_input(ctx, "targets", LOOM_I32, LOOM_SHAPE(T * B));
    loom_t x = loom_embedding_forward(ctx, &m->emb, m->ids), logits;
    if (m->ops) {
        loom_t out = lstm_from_ops(m, x); /* [T, B, H] */
        logits = loom_add(ctx, adapted_matmul(ctx, loom_reshape(ctx, out, LOOM_SHAPE(T * B, m->hidden)), &m->ad[4]),
                          m->head.bias);
    } else {
        loom_t out;
        loom_rnn_forward(ctx, m->lstm, x, NULL, LOOM_NULL, lr > 0, &out, NULL);
        logits = loom_linear_forward(ctx, &m->head, loom_reshape(ctx, out, LOOM_SHAPE(T * B, m->hidden)));
    }
    m->loss = loom_cross_entropy(ctx, logits, m->targets);
    if (lr > 0)
        loom_optimizer_attach(ctx, m->opt, m->loss);
    return loom_failed(ctx) ? fail(ctx) : 0;
}

static void model_free(model *m)
{
    loom_optimizer_free(m->opt);
    loom_rnn_free(m->lstm);
    loom_ctx_free(m->ctx);
}

/* Feeds windows starting at at[0..B). */
static void feed(model *m, const corpus *c, const size_t *at)
{
    long T = m->seq, B = m->batch;
    int32_t *ids = malloc((size_t)(T * B) * sizeof *ids), *next = malloc((size_t)(T * B) * sizeof *next);
    if (ids && next) {
        for (long b = 0; b < B; b++)
            for (long t = 0; t < T; t++) {
                ids[t * B + b] = c->ids[at[b] + (size_t)t];
                next[t * B + b] = c->ids[at[b] + (size_t)t + 1];
            }
        loom_feed(m->ctx, m->ids, ids, (size_t)(T * B) * sizeof *ids);
        loom_feed(m->ctx, m->targets, next, (size_t)(T * B) * sizeof *next);
    }
    free(ids);
    free(next);
}

/* Adam steps on random windows of the training part. */
static int train(model *m, const corpus *c, long steps, ex_rng *r, const char *what)
{
    size_t at[4096];
    double avg = 0;
    long every = steps / 5 > 0 ? steps / 5 : 1;
    for (long s = 1; s <= steps; s++) {
        for (long b = 0; b < m->batch; b++)
            at[b] = (size_t)(ex_uniform(r) * (double)(c->n_train - (size_t)m->seq - 1));
        feed(m, c, at);
        if (loom_optimizer_step(m->ctx, m->opt, 1, &m->loss) != LOOM_OK)
            return fail(m->ctx);
        avg += loom_item(m->ctx, m->loss);
        if (s % every == 0 || s == steps) {
            printf("  %s step %5ld  train loss %.4f\n", what, s, avg / (double)(s % every ? s % every : every));
            avg = 0;
        }
    }
    return 0;
}

/* Mean cross-entropy (nats per character) over the validation part, read
 * as consecutive windows; no update. */
static int val_loss(model *m, const corpus *c, double *out)
{
    size_t at[4096], T = (size_t)m->seq, nwin = (c->n - 1 - c->n_train) / T, k = 0;
    double total = 0;
    long batches = 0;
    while (k < nwin) {
        for (long b = 0; b < m->batch; b++, k++) /* the last batch wraps round */
            at[b] = c->n_train + (k % nwin) * T;
        feed(m, c, at);
        loom_code rc = m->opt ? loom_eval(m->ctx, 1, &m->loss) : loom_run(m->ctx, 1, &m->loss);
        if (rc != LOOM_OK)
            return fail(m->ctx);
        total += loom_item(m->ctx, m->loss);
        batches++;
    }
    *out = total / (double)batches;
    return 0;
}

/* Trainable parameters and all of them, in elements (no buffers exist
 * before the optimizer is made). */
static void count_params(loom_ctx *ctx, long *trainable, long *total)
{
    *trainable = *total = 0;
    for (size_t i = 0; i < loom_param_count(ctx); i++) {
        loom_t p = loom_param_at(ctx, i);
        long n = (long)loom_shape_numel(loom_shape_of(ctx, p));
        *total += n;
        if (loom_param_trainable(ctx, p))
            *trainable += n;
    }
}

/* ------------------------------------------------------------------ */
/* The three ways to fine-tune                                        */
/* ------------------------------------------------------------------ */

/* MODE_SCRATCH is the reference: the same training from random weights,
 * to see what pretraining bought. */
enum { MODE_FULL, MODE_FROZEN, MODE_LORA, MODE_LORA_OPS, MODE_SCRATCH, N_MODES };
static const char *const MODE_NAMES[N_MODES] = { "full", "frozen", "lora", "lora-ops", "scratch" };

/* Loads the pretrained checkpoint into a fresh model and fine-tunes it on
 * the target text one way. */
static int finetune(const options *o, const char *ckpt, const corpus *target, int mode, double *before,
                    double *after)
{
    /* the model's sizes come from the checkpoint's config, as a program
     * loading someone else's checkpoint would get them */
    options sized = *o;
    char config[512];
    loom_ctx *meta = loom_ctx_new(NULL);
    int rc = !meta ? EX_FAIL : loom_checkpoint_config(meta, ckpt, config, sizeof config) != LOOM_OK ? fail(meta) : 0;
    loom_ctx_free(meta);
    if (rc)
        return rc;
    sized.embed = (long)ex_json_number(config, "embed");
    sized.hidden = (long)ex_json_number(config, "hidden");
    if (ex_json_number(config, "vocab") != VOCAB || ex_json_number(config, "layers") != LAYERS || sized.embed < 1 ||
        sized.hidden < 1) {
        fprintf(stderr, "%s: %s: a config this program cannot build: %s\n", PROG, ckpt, config);
        return EX_FAIL;
    }
    model m;
    rc = model_new(&m, &sized);
    /* the pretraining optimizer's moments are in the file too: skipped */
    if (!rc && mode != MODE_SCRATCH && loom_checkpoint_load(m.ctx, ckpt, NULL, LOOM_LOAD_ALLOW_UNEXPECTED) != LOOM_OK)
        rc = fail(m.ctx);
    loom_ctx *ctx = m.ctx;
    double lr = o->lr;
    char what[160] = "";
    if (!rc && mode == MODE_SCRATCH) {
        snprintf(what, sizeof what, " (reference: random weights, no pretraining)");
    } else if (!rc && mode == MODE_FROZEN) {
        /* the embedding and the first LSTM layer keep their pretrained
         * values; the second layer and the output layer learn */
        static const char *const lower[] = { "emb.", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0",
                                             "lstm.bias_hh_l0" };
        for (size_t i = 0; i < sizeof lower / sizeof *lower; i++)
            loom_params_set_trainable(ctx, lower[i], false);
        snprintf(what, sizeof what, " (embedding and LSTM layer 0 frozen)");
    } else if (!rc && mode == MODE_LORA) {
        /* everything pretrained frozen; rank-r adapters on the four LSTM
         * weight matrices and the output layer */
        loom_params_set_trainable(ctx, "", false);
        for (int i = 0; i < N_ADAPTED; i++)
            loom_lora_add(ctx, loom_param_find(ctx, ADAPTED[i]), (int)o->rank, o->alpha);
        lr = o->lora_lr;
        snprintf(what, sizeof what, " (loom_lora_add, rank %ld, alpha %g, on lstm weight_ih/hh_l0/l1 and head.weight)",
                 o->rank, o->alpha);
    } else if (!rc && mode == MODE_LORA_OPS) {
        /* the same adapters written out: new parameters A (random, as a
         * Linear's weight) and B (zero), made after the freeze so they
         * alone train, used by lstm_from_ops and the head */
        loom_params_set_trainable(ctx, "", false);
        m.ops = true;
        for (int i = 0; i < N_ADAPTED; i++) {
            adapter *ad = &m.ad[i];
            ad->w = loom_param_find(ctx, ADAPTED[i]);
            loom_shape ws = loom_shape_of(ctx, ad->w); /* [out, in] */
            char name[96];
            snprintf(name, sizeof name, "%s.A", ADAPTED[i]);
            ad->a = loom_param(ctx, name, LOOM_F32, LOOM_SHAPE(o->rank, ws.d[1]));
            snprintf(name, sizeof name, "%s.B", ADAPTED[i]);
            ad->b = loom_param(ctx, name, LOOM_F32, LOOM_SHAPE(ws.d[0], o->rank));
            loom_param_init_uniform(ctx, ad->a, -1 / sqrt((double)ws.d[1]), 1 / sqrt((double)ws.d[1]));
            ad->scale = o->alpha / (double)o->rank;
        }
        lr = o->lora_lr;
        snprintf(what, sizeof what, " (written from ops, rank %ld, alpha %g, the same weights)", o->rank, o->alpha);
    }
    if (!rc && loom_failed(ctx))
        rc = fail(ctx);
    long trainable = 0, total = 0;
    if (!rc) {
        count_params(ctx, &trainable, &total);
        printf("%s %s%s: %ld of %ld parameters train, lr %g\n", mode == MODE_SCRATCH ? "training" : "fine-tuning",
               MODE_NAMES[mode], what, trainable, total, lr);
        rc = model_record(&m, lr);
    }
    if (!rc)
        rc = val_loss(&m, target, before);
    ex_rng r = { (uint64_t)o->seed * 7 + 3 }; /* every mode sees the same windows */
    if (!rc)
        rc = train(&m, target, o->finetune_steps, &r, MODE_NAMES[mode]);
    if (!rc)
        rc = val_loss(&m, target, after);
    if (!rc && mode == MODE_SCRATCH)
        printf("from scratch (reference): val loss on %s %.4f -> %.4f\n", target->name, *before, *after);
    else if (!rc)
        printf("fine-tune %s: val loss on %s %.4f -> %.4f\n", MODE_NAMES[mode], target->name, *before, *after);
    if (!rc && mode == MODE_LORA) {
        /* folded into the weights, the adapters cost nothing at inference:
         * the plain model (no adapter left) computes the same loss */
        for (int i = 0; i < N_ADAPTED; i++)
            loom_lora_merge(ctx, loom_param_find(ctx, ADAPTED[i]));
        loom_optimizer_free(m.opt);
        m.opt = NULL;
        double merged = 0;
        rc = loom_failed(ctx) ? fail(ctx) : model_record(&m, 0);
        if (!rc)
            rc = val_loss(&m, target, &merged);
        if (!rc)
            printf("  lora merged into the weights: val loss %.4f (adapted %.4f)\n", merged, *after);
    }
    model_free(&m);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Command line                                                       */
/* ------------------------------------------------------------------ */

static void help(void)
{
    printf("usage: finetune [options]\n\n"
           "Pretrains a character LSTM on one text, fine-tunes it on another fully, with\n"
           "the lower layer frozen, and with LoRA; prints val loss before and after each,\n"
           "and the same training from scratch for reference.\n\n"
           "  --pretrain FILE    text to pretrain on (default: %s if present,\n"
           "                     else a generated story-like text; \"generated\" forces that)\n"
           "  --target FILE      text to fine-tune on (default: a generated recipe-like text)\n"
           "  --pretrain-steps N Adam steps of pretraining (default 600)\n"
           "  --steps N          Adam steps of each fine-tuning (default 150)\n"
           "  --embed E          embedding size (default 32)\n"
           "  --hidden H         LSTM hidden size, 2 layers (default 128)\n"
           "  --seq T            characters per window (default 48)\n"
           "  --batch B          windows per step (default 16)\n"
           "  --lr LR            learning rate: pretraining, full, frozen (default 0.01)\n"
           "  --lora-lr LR       learning rate of the adapters (default 0.02)\n"
           "  --rank R           LoRA rank (default 8)\n"
           "  --alpha A          LoRA alpha; the update is scaled by alpha / rank (default 16)\n"
           "  --out FILE         keep the pretrained checkpoint here (default: a temporary file)\n"
           "  --seed S           seed of the generated texts and the weights (default 1)\n"
           "  --tiny             small and quick (for tests; generated texts unless given)\n",
           SHAKESPEARE);
}

static options parse(int argc, char **argv)
{
    options o = { .embed = 32, .hidden = 128, .seq = 48, .batch = 16, .pretrain_steps = 600, .finetune_steps = 150,
                  .rank = 8, .lr = 1e-2, .lora_lr = 2e-2, .alpha = 16, .seed = 1 };
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--tiny")) {
            o.tiny = true;
            o.embed = 16, o.hidden = 48, o.seq = 24, o.pretrain_steps = 400, o.finetune_steps = 60, o.rank = 4,
            o.alpha = 8;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            exit(0);
        } else if (!strcmp(a, "--tiny")) {
            /* applied first, below, so later options still override it */
        } else if (!strcmp(a, "--pretrain")) {
            o.pretrain = ex_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--target")) {
            o.target = ex_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--out")) {
            o.out = ex_value(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--pretrain-steps")) {
            o.pretrain_steps = ex_int(PROG, argc, argv, &i, 1, 100000000);
        } else if (!strcmp(a, "--steps")) {
            o.finetune_steps = ex_int(PROG, argc, argv, &i, 1, 100000000);
        } else if (!strcmp(a, "--embed")) {
            o.embed = ex_int(PROG, argc, argv, &i, 1, 4096);
        } else if (!strcmp(a, "--hidden")) {
            o.hidden = ex_int(PROG, argc, argv, &i, 1, 4096);
        } else if (!strcmp(a, "--seq")) {
            o.seq = ex_int(PROG, argc, argv, &i, 2, 4096);
        } else if (!strcmp(a, "--batch")) {
            o.batch = ex_int(PROG, argc, argv, &i, 1, 4096);
        } else if (!strcmp(a, "--lr")) {
            o.lr = ex_real(PROG, argc, argv, &i, 1e-7, 10);
        } else if (!strcmp(a, "--lora-lr")) {
            o.lora_lr = ex_real(PROG, argc, argv, &i, 1e-7, 10);
        } else if (!strcmp(a, "--rank")) {
            o.rank = ex_int(PROG, argc, argv, &i, 1, 4096);
        } else if (!strcmp(a, "--alpha")) {
            o.alpha = ex_real(PROG, argc, argv, &i, 1e-6, 1e6);
        } else if (!strcmp(a, "--seed")) {
            o.seed = ex_int(PROG, argc, argv, &i, 0, 2147483647);
        } else {
            ex_usage_error(PROG, "unknown argument \"%s\"", a);
        }
    }
    if (o.rank > o.embed || o.rank > o.hidden)
        ex_usage_error(PROG, "--rank %ld is larger than the embedding (%ld) or hidden (%ld) size", o.rank, o.embed,
                       o.hidden);
    if (!o.pretrain && !o.tiny && access(SHAKESPEARE, R_OK) == 0)
        o.pretrain = SHAKESPEARE;
    if (o.pretrain && !strcmp(o.pretrain, "generated"))
        o.pretrain = NULL;
    return o;
}

int main(int argc, char **argv)
{
    options o = parse(argc, argv);
    size_t na = 0, nb = 0;
    char *a = o.pretrain ? ex_read_file(PROG, o.pretrain, &na)
                         : make_story(o.tiny ? 16000 : 60000, (uint64_t)o.seed, &na);
    char *b = !a         ? NULL
              : o.target ? ex_read_file(PROG, o.target, &nb)
                         : make_recipes(o.tiny ? 8000 : 20000, (uint64_t)o.seed + 1, &nb);
    if (!a || !b) {
        free(a), free(b);
        return EX_FAIL;
    }
    /* corpus_make takes the text */
    corpus src = { 0 }, dst = { 0 };
    int rc = corpus_make(&src, o.pretrain ? o.pretrain : "the generated story text", a, na, o.seq);
    if (rc)
        free(b);
    else
        rc = corpus_make(&dst, o.target ? o.target : "the generated recipe text", b, nb, o.seq);
    if (rc) {
        free(src.ids), free(dst.ids);
        return rc;
    }

    char ckpt[4096];
    if (o.out)
        snprintf(ckpt, sizeof ckpt, "%s", o.out);
    else
        snprintf(ckpt, sizeof ckpt, "%s/loom-finetune-%ld.safetensors", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
                 (long)getpid());
    printf("finetune: char LSTM, embed %ld, %d layers of %ld, windows of %ld x %ld\n", o.embed, LAYERS, o.hidden,
           o.seq, o.batch);
    printf("pretraining on %s (%zu characters), %ld steps\n", src.name, src.n, o.pretrain_steps);

    /* pretraining, saved with the configuration a loader needs */
    model pre;
    double pre_src = 0, pre_dst = 0;
    ex_rng r = { (uint64_t)o.seed * 5 + 1 };
    rc = model_new(&pre, &o);
    if (!rc)
        rc = model_record(&pre, o.lr);
    if (!rc)
        rc = train(&pre, &src, o.pretrain_steps, &r, "pretrain");
    if (!rc)
        rc = val_loss(&pre, &src, &pre_src);
    if (!rc)
        rc = val_loss(&pre, &dst, &pre_dst);
    if (!rc) {
        char config[256];
        snprintf(config, sizeof config,
                 "{\"model\": \"char-lstm\", \"vocab\": %d, \"embed\": %ld, \"hidden\": %ld, \"layers\": %d}", VOCAB,
                 o.embed, o.hidden, LAYERS);
        if (loom_checkpoint_save(pre.ctx, ckpt, NULL, config) != LOOM_OK)
            rc = fail(pre.ctx);
    }
    model_free(&pre);
    if (!rc)
        printf("pretrained: val loss %.4f on %s, %.4f on %s (nats/char); saved to %s\n", pre_src, src.name, pre_dst,
               dst.name, ckpt);

    printf("fine-tuning on %s (%zu characters), %ld steps each\n", dst.name, dst.n, o.finetune_steps);
    double before[N_MODES], after[N_MODES];
    for (int mode = 0; !rc && mode < N_MODES; mode++)
        rc = finetune(&o, ckpt, &dst, mode, &before[mode], &after[mode]);
    if (!rc) {
        printf("summary: val loss on %s (nats/char), before -> after\n", dst.name);
        for (int mode = 0; mode < N_MODES; mode++)
            printf("  %-8s %.4f -> %.4f%s\n", MODE_NAMES[mode], before[mode], after[mode],
                   mode == MODE_SCRATCH ? "  (no pretraining, for reference)" : "");
        /* both LoRA modes draw A from the same seeded generator in the
         * same order, so they differ only by rounding (the adapted product
         * is summed in another order), which training amplifies */
        printf("lora from ops vs loom_lora_add: before %.2e apart, after %.2e apart\n",
               fabs(before[MODE_LORA_OPS] - before[MODE_LORA]), fabs(after[MODE_LORA_OPS] - after[MODE_LORA]));
    }
    if (!o.out)
        unlink(ckpt);
    free(src.ids);
    free(dst.ids);
    return rc;
}
