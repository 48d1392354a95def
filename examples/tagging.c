/*
 * tagging.c — sequence tagging with a bidirectional LSTM (or GRU, --cell
 * gru): every token of a generated sequence gets a class, and the tagger
 * is scored the way taggers are, by per-class precision, recall and F1
 * with micro and macro averages over the classes that matter (all but O).
 *
 * The task is made up so that it needs both directions. Sequences are
 * words, numbers and bracketed spans "( ... )a" or "( ... )b"; a span's
 * class is given by its closing bracket, which a left-to-right reader has
 * not seen yet when it must tag the span's first tokens (and which a span
 * cut off by the end of the window does not show at all):
 *
 *     O     words outside spans, and the brackets themselves
 *     NUM   numbers outside spans (a local cue)
 *     SPAN-A, SPAN-B   tokens inside a span closed by )a or )b
 *
 * What it shows: loom_embedding, loom_rnn_forward with bidirectional =
 * true, a linear head over every time step, loom_cross_entropy over
 * [T * B, classes], Adam; evaluation on a held-out set generated with
 * another seed; the metrics next to what a tagger guessing from the class
 * frequencies would score.
 *
 *     build-dir/examples/tagging              default sizes
 *     build-dir/examples/tagging --tiny       small and quick (the tests)
 *     build-dir/examples/tagging --unidirectional   see what lookahead buys
 *
 * With the defaults the bidirectional tagger gets every span token right
 * whose closing bracket is in view and half of the others (macro F1 0.96,
 * where guessing from the class frequencies gets 0.18); a left-to-right
 * one cannot tell SPAN-A from SPAN-B (macro F1 0.56).
 *
 * Exit status 2 for a bad command line, 1 if loom fails.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "loom.h"

static const char *const PROG = "tagging";

/* ------------------------------------------------------------------ */
/* The generated task                                                 */
/* ------------------------------------------------------------------ */

enum {
    N_WORDS = 12,                  /* ids 0 .. 11 */
    N_NUMS = 4,                    /* ids 12 .. 15 */
    TOK_OPEN = N_WORDS + N_NUMS,   /* "(" */
    TOK_CLOSE_A,                   /* ")a" */
    TOK_CLOSE_B,                   /* ")b" */
    VOCAB
};

enum { TAG_O, TAG_NUM, TAG_SPAN_A, TAG_SPAN_B, N_TAGS };
static const char *const TAG_NAMES[N_TAGS] = { "O", "NUM", "SPAN-A", "SPAN-B" };

static int random_token(ex_rng *r)
{
    return ex_uniform(r) < 0.25 ? N_WORDS + ex_below(r, N_NUMS) : ex_below(r, N_WORDS);
}

/* One sequence of T tokens and their tags, written with stride `stride`
 * (so a batch can be time-major: element t of sequence b at t * B + b). */
static void make_sequence(ex_rng *r, long T, long stride, int32_t *tok, int32_t *tag)
{
    for (long t = 0; t < T;) {
        long len = 1 + ex_below(r, 12); /* span content 1..12 tokens */
        if (ex_uniform(r) < 0.15 && t + len + 2 <= T) {
            int cls = ex_below(r, 2);
            tok[t * stride] = TOK_OPEN, tag[t * stride] = TAG_O, t++;
            for (long k = 0; k < len; k++, t++)
                tok[t * stride] = random_token(r), tag[t * stride] = cls ? TAG_SPAN_B : TAG_SPAN_A;
            tok[t * stride] = cls ? TOK_CLOSE_B : TOK_CLOSE_A, tag[t * stride] = TAG_O, t++;
        } else {
            int w = random_token(r);
            tok[t * stride] = w, tag[t * stride] = w >= N_WORDS ? TAG_NUM : TAG_O, t++;
        }
    }
}

/* A batch, time-major: tok, tag [T, B]. Each sequence is cut from a
 * longer one, as a real tagger reads a window of a longer text: a span
 * running past the window's end keeps its class, but its closing bracket
 * is not in the window, so no tagger can be sure of those tokens. That is
 * why even a perfect learner scores a little below 1. */
static void make_batch(ex_rng *r, long T, long B, int32_t *tok, int32_t *tag)
{
    enum { OVERHANG = 12 };
    int32_t long_tok[4096 + OVERHANG], long_tag[4096 + OVERHANG];
    for (long b = 0; b < B; b++) {
        make_sequence(r, T + OVERHANG, 1, long_tok, long_tag);
        for (long t = 0; t < T; t++)
            tok[t * B + b] = long_tok[t], tag[t * B + b] = long_tag[t];
    }
}

/* ------------------------------------------------------------------ */
/* Options                                                            */
/* ------------------------------------------------------------------ */

typedef struct options {
    long seq, batch, hidden, embed, steps, test_batches;
    double lr;
    long seed;
    bool bidirectional;
    bool gru; /* a GRU instead of the LSTM */
} options;

static void help(void)
{
    printf("usage: tagging [options]\n\n"
           "Bidirectional LSTM tagger on generated bracketed spans; prints per-class\n"
           "precision, recall and F1 with micro and macro averages.\n\n"
           "  --steps S          Adam steps (default 400)\n"
           "  --seq T            tokens per sequence (default 40)\n"
           "  --batch B          sequences per step (default 32)\n"
           "  --cell lstm|gru    the recurrent layer (default lstm)\n"
           "  --hidden H         its hidden size per direction (default 32)\n"
           "  --embed E          token embedding size (default 16)\n"
           "  --test-batches N   held-out batches scored (default 16)\n"
           "  --lr LR            learning rate (default 0.01)\n"
           "  --seed S           seed of the data and the weights (default 1)\n"
           "  --unidirectional   left to right only (it cannot see the closing bracket)\n"
           "  --tiny             small and quick (for tests)\n");
}

static options parse(int argc, char **argv)
{
    options o = { .seq = 40, .batch = 32, .hidden = 32, .embed = 16, .steps = 400, .test_batches = 16,
                  .lr = 1e-2, .seed = 1, .bidirectional = true };
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--tiny"))
            o.seq = 24, o.hidden = 24, o.steps = 200, o.test_batches = 8;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            exit(0);
        } else if (!strcmp(a, "--tiny")) {
            /* applied first, below, so later options still override it */
        } else if (!strcmp(a, "--steps")) {
            o.steps = ex_int(PROG, argc, argv, &i, 1, 100000000);
        } else if (!strcmp(a, "--seq")) {
            o.seq = ex_int(PROG, argc, argv, &i, 8, 4096);
        } else if (!strcmp(a, "--batch")) {
            o.batch = ex_int(PROG, argc, argv, &i, 1, 4096);
        } else if (!strcmp(a, "--cell")) {
            o.gru = ex_cell(PROG, argc, argv, &i);
        } else if (!strcmp(a, "--hidden")) {
            o.hidden = ex_int(PROG, argc, argv, &i, 1, 4096);
        } else if (!strcmp(a, "--embed")) {
            o.embed = ex_int(PROG, argc, argv, &i, 1, 4096);
        } else if (!strcmp(a, "--test-batches")) {
            o.test_batches = ex_int(PROG, argc, argv, &i, 1, 100000);
        } else if (!strcmp(a, "--lr")) {
            o.lr = ex_real(PROG, argc, argv, &i, 1e-7, 10);
        } else if (!strcmp(a, "--seed")) {
            o.seed = ex_int(PROG, argc, argv, &i, 0, 2147483647);
        } else if (!strcmp(a, "--unidirectional")) {
            o.bidirectional = false;
        } else {
            ex_usage_error(PROG, "unknown argument \"%s\"", a);
        }
    }
    return o;
}

/* ------------------------------------------------------------------ */
/* Metrics                                                            */
/* ------------------------------------------------------------------ */

/* confusion[gold][predicted], in tokens */
typedef struct scores {
    long confusion[N_TAGS][N_TAGS];
} scores;

static double ratio(double a, double b) { return b > 0 ? a / b : 0; }
static double f1(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0; }

/* Prints the per-class table and the averages over the classes other than
 * O (micro: pooled counts; macro: the mean of per-class F1). Returns the
 * macro F1. */
static double report(const scores *s)
{
    long tp_all = 0, fp_all = 0, fn_all = 0, total = 0, right = 0, support[N_TAGS] = { 0 };
    double macro_p = 0, macro_r = 0, macro_f = 0;
    printf("%-8s %9s %9s %9s %9s\n", "class", "precision", "recall", "f1", "support");
    for (int c = 0; c < N_TAGS; c++) {
        long tp = s->confusion[c][c], fp = 0, fn = 0;
        for (int k = 0; k < N_TAGS; k++) {
            support[c] += s->confusion[c][k];
            total += s->confusion[c][k];
            if (k != c)
                fp += s->confusion[k][c], fn += s->confusion[c][k];
        }
        right += tp;
        double p = ratio((double)tp, (double)(tp + fp)), r = ratio((double)tp, (double)(tp + fn));
        printf("%-8s %9.4f %9.4f %9.4f %9ld\n", TAG_NAMES[c], p, r, f1(p, r), support[c]);
        if (c == TAG_O)
            continue;
        tp_all += tp, fp_all += fp, fn_all += fn;
        macro_p += p / (N_TAGS - 1), macro_r += r / (N_TAGS - 1), macro_f += f1(p, r) / (N_TAGS - 1);
    }
    double mp = ratio((double)tp_all, (double)(tp_all + fp_all)), mr = ratio((double)tp_all, (double)(tp_all + fn_all));
    printf("micro    %9.4f %9.4f %9.4f   (over the %d classes other than O)\n", mp, mr, f1(mp, mr), N_TAGS - 1);
    printf("macro    %9.4f %9.4f %9.4f\n", macro_p, macro_r, macro_f);
    /* a tagger that draws each tag from the class frequencies has, for
     * class c, precision = recall = frequency of c in expectation */
    double chance = 0;
    for (int c = 1; c < N_TAGS; c++)
        chance += ratio((double)support[c], (double)total) / (N_TAGS - 1);
    printf("token accuracy %.4f; chance macro f1 %.4f (tags drawn from the class frequencies), "
           "majority-class (all O) macro f1 0\n",
           ratio((double)right, (double)total), chance);
    return macro_f;
}

/* ------------------------------------------------------------------ */
/* Model, training, evaluation                                        */
/* ------------------------------------------------------------------ */

static int fail(loom_ctx *ctx)
{
    fprintf(stderr, "%s: %s\n", PROG, loom_errmsg(ctx));
    return EX_FAIL;
}

int main(int argc, char **argv)
{
    options o = parse(argc, argv);
    long T = o.seq, B = o.batch, D = o.bidirectional ? 2 : 1;
    int32_t *tok = malloc((size_t)(T * B) * sizeof *tok), *tag = malloc((size_t)(T * B) * sizeof *tag);
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = (uint64_t)o.seed + 100 });
    if (!tok || !tag || !ctx) {
        free(tok), free(tag), loom_ctx_free(ctx);
        return EX_FAIL;
    }

    /* embedding -> (bi)LSTM -> a linear head on every step's output */
    loom_embedding emb;
    loom_linear head;
    loom_embedding_init(ctx, &emb, "emb", VOCAB, o.embed, LOOM_F32);
    loom_rnn_config cfg = { .mode = o.gru ? LOOM_GRU : LOOM_LSTM, .input_size = o.embed, .hidden_size = o.hidden,
                            .bidirectional = o.bidirectional };
    loom_rnn *lstm = loom_rnn_new(ctx, "lstm", &cfg);
    loom_linear_init(ctx, &head, "head", D * o.hidden, N_TAGS, true, LOOM_F32);
    loom_optimizer *opt =
        loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = o.lr, .clip_norm = 1.0 });

    loom_t ids = loom_input(ctx, "ids", LOOM_I32, LOOM_SHAPE(T, B));
    loom_t gold = loom_input(ctx, "tags", LOOM_I32, LOOM_SHAPE(T * B));
    loom_t out;
    loom_rnn_forward(ctx, lstm, loom_embedding_forward(ctx, &emb, ids), NULL, LOOM_NULL, true, &out, NULL);
    loom_t logits = loom_linear_forward(ctx, &head, loom_reshape(ctx, out, LOOM_SHAPE(T * B, D * o.hidden)));
    loom_t loss = loom_cross_entropy(ctx, logits, gold);
    loom_optimizer_attach(ctx, opt, loss);
    int rc = loom_failed(ctx) ? fail(ctx) : 0;

    if (!rc)
        printf("tagging: %s %s, hidden %ld, embed %ld; %ld steps of %ld sequences x %ld tokens, Adam lr %g\n",
               o.bidirectional ? "bidirectional" : "left-to-right", o.gru ? "GRU" : "LSTM", o.hidden, o.embed,
               o.steps, B, T, o.lr);
    ex_rng train_rng = { (uint64_t)o.seed * 1000003 + 1 };
    double avg = 0;
    long every = o.steps / 10 > 0 ? o.steps / 10 : 1;
    for (long s = 1; !rc && s <= o.steps; s++) {
        make_batch(&train_rng, T, B, tok, tag); /* fresh sequences every step */
        loom_feed(ctx, ids, tok, (size_t)(T * B) * sizeof *tok);
        loom_feed(ctx, gold, tag, (size_t)(T * B) * sizeof *tag);
        if (loom_optimizer_step(ctx, opt, 1, &loss) != LOOM_OK) {
            rc = fail(ctx);
            break;
        }
        avg += loom_item(ctx, loss);
        if (s % every == 0 || s == o.steps) {
            printf("step %5ld  loss %.4f\n", s, avg / (double)(s % every ? s % every : every));
            avg = 0;
        }
    }

    /* held out: sequences from another seed, no update (loom_eval) */
    scores sc = { 0 };
    long cut[2] = { 0 }, cut_right[2] = { 0 }; /* span tokens: [0] their span is cut off, [1] closed in view */
    ex_rng test_rng = { (uint64_t)o.seed * 1000003 + 999331 };
    for (long k = 0; !rc && k < o.test_batches; k++) {
        make_batch(&test_rng, T, B, tok, tag);
        loom_feed(ctx, ids, tok, (size_t)(T * B) * sizeof *tok);
        loom_feed(ctx, gold, tag, (size_t)(T * B) * sizeof *tag);
        if (loom_eval(ctx, 1, &logits) != LOOM_OK) {
            rc = fail(ctx);
            break;
        }
        const float *lg = loom_data(ctx, logits); /* [T * B, N_TAGS] */
        for (long b = 0; b < B; b++) {
            bool closed = false; /* a closing bracket lies ahead in the window */
            for (long t = T - 1; t >= 0; t--) {
                long i = t * B + b;
                int best = 0;
                for (int c = 1; c < N_TAGS; c++)
                    if (lg[i * N_TAGS + c] > lg[i * N_TAGS + best])
                        best = c;
                sc.confusion[tag[i]][best]++;
                if (tok[i] == TOK_CLOSE_A || tok[i] == TOK_CLOSE_B)
                    closed = true;
                else if (tok[i] == TOK_OPEN)
                    closed = false;
                if (tag[i] == TAG_SPAN_A || tag[i] == TAG_SPAN_B) {
                    cut[closed] += 1;
                    cut_right[closed] += best == tag[i];
                }
            }
        }
    }
    if (!rc) {
        printf("held-out test set: %ld sequences, %ld tokens\n", o.test_batches * B, o.test_batches * B * T);
        report(&sc);
        printf("span tokens whose closing bracket is past the window's end: %ld of %ld, tagged right %.1f%% "
               "(a coin would get 50%%); the others %.1f%%\n",
               cut[0], cut[0] + cut[1], 100.0 * ratio((double)cut_right[0], (double)cut[0]),
               100.0 * ratio((double)cut_right[1], (double)cut[1]));
    }
    loom_optimizer_free(opt);
    loom_rnn_free(lstm);
    loom_ctx_free(ctx);
    free(tok);
    free(tag);
    return rc;
}
