/*
 * export.c — `loom export CKPT -o DIR`: the model of a checkpoint compiled
 * ahead of time (loom_aot_emit) into DIR/<name>.o and DIR/<name>.h, with
 * the weights inside the object or, with --weights-file, in
 * DIR/<name>.weights. Two kinds of checkpoint, told apart by the "model"
 * of their config:
 *
 * A character-level LM of loom train (model.c), with two entry points:
 *
 *   <name>_step  one byte for B streams: ids [1, B] and the state h (and
 *                c for the LSTM) [layers, B, H] in, logits [B, V] and the
 *                next state out; pass the same arrays as state in and out
 *                to carry it (generation);
 *   <name>_seq   up to --seq-len bytes at once: ids [T, B], lengths [B]
 *                (each stream's bytes; later steps leave its state alone
 *                and give it zero outputs, so its logits there are the
 *                head's bias), h0 (c0) in; logits [T * B, V], the state
 *                after each stream's last byte out.
 *
 * With --train, a training bundle as well, one step of loom train either
 * in one call or in three:
 *
 *   <name>_train     ids [T, B] and targets [T * B], the carried state in;
 *                    the loss and the next state out; the parameters and
 *                    the optimizer's state updated in the weights (the
 *                    caller's writable copy). The fast path: the gradients
 *                    never leave the plan.
 *   <name>_forward   the same inputs; the loss and the next state out, no
 *                    update;
 *   <name>_backward  the same inputs; the loss, the next state and the
 *                    gradient of every trainable parameter out, each
 *                    d_<parameter> (dots as underscores), as the JIT's
 *                    loom_grad computes them;
 *   <name>_update    those gradients in (summed over micro-batches, say);
 *                    the global gradient norm before clipping out; the
 *                    checkpoint's optimizer step applied to the weights,
 *                    clipping as loom train configured it
 *                    (loom_optimizer_attach_grads).
 *
 * The update and the train entries take the optimizer's per-step scalars
 * as their last arguments (the header gives each formula; the step count
 * goes on from the checkpoint's), the others dropout's random key if the
 * model has dropout. --main writes DIR/main.c, a sampler that needs libc
 * and libm only (the same draws as loom sample for the same seed).
 *
 * A forecaster of examples/forecast.c ("model": "forecast-rnn"), with one
 * entry point:
 *
 *   <name>_forecast  window [W, B, 1] (the last W values of B series in
 *                    z-scores, each relative to its window's last value)
 *                    in; change [B, 1] (the predicted change to the next
 *                    value) out.
 *
 * --main writes DIR/main.c, a forecaster that reads a series (a number a
 * line, or a CSV column), z-scores it with the statistics baked in from
 * the config and prints the next value, or K values ahead fed back one by
 * one. Either --main prints the one cc line that builds the program.
 *
 * Not here: the models (model.c, examples/forecast.c), compiling
 * (frontend/aot.c, jit/aot.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char CMD[] = "export";

static const char *const cpu_names[] = { "host", "x86-64-v3", "x86-64-v4", NULL };

/* The command line, for either kind of checkpoint. */
typedef struct export_args {
    const char *ckpt, *out, *name;
    int cpu;
    bool with_main, weights_file, train;
    long long seq_len, batch; /* seq_len 0: the checkpoint's */
} export_args;

static int fail_loom(loom_ctx *ctx, const char *what)
{
    cli_error(CMD, "%s: %s", what, loom_errmsg(ctx));
    return CLI_FAIL;
}

/* ------------------------------------------------------------------ */
/* The char-LM: inference                                             */
/* ------------------------------------------------------------------ */

/* Records one half of the model on m's tape: ids [T, B] (lengths [B]
 * or null) and the state in; logits [T * B, V] and the final state out. */
static void record(charlm *m, loom_t ids, loom_t lengths, loom_t h, loom_t c, int64_t T, int64_t B, loom_t *logits,
                   loom_t *h_out, loom_t *c_out)
{
    loom_ctx *ctx = m->ctx;
    loom_t x = loom_embedding_forward(ctx, &m->emb, ids);
    loom_rnn_state init = { h, c }, fin = { LOOM_NULL, LOOM_NULL };
    loom_t out;
    loom_rnn_forward(ctx, m->rnn, x, &init, lengths, false, &out, &fin);
    *logits = loom_linear_forward(ctx, &m->head, loom_reshape(ctx, out, LOOM_SHAPE(T * B, m->cfg.hidden)));
    *h_out = fin.h;
    *c_out = fin.c;
}

/* ------------------------------------------------------------------ */
/* The char-LM: the training bundle                                   */
/* ------------------------------------------------------------------ */

/* The optimizer loom train ran, from the checkpoint's config. */
static loom_optim_config optim_config(const charlm_config *cfg)
{
    static const loom_opt_kind kinds[CLI_OPT_COUNT] = { LOOM_OPT_ADAM, LOOM_OPT_ADAMW, LOOM_OPT_SGD,
                                                        LOOM_OPT_RMSPROP };
    return (loom_optim_config){
        .kind = kinds[cfg->optimizer],
        .lr = cfg->lr,
        .momentum = cfg->momentum,
        .weight_decay = cfg->weight_decay,
        .clip_norm = cfg->clip,
        .schedule = cfg->schedule == 1 ? LOOM_SCHEDULE_COSINE : LOOM_SCHEDULE_CONSTANT,
        .total_steps = cfg->total_steps,
        .warmup_steps = cfg->warmup,
    };
}

/* The training step of loom train (model.c's charlm_record with the
 * state in inputs) with the checkpoint's optimizer attached and its state
 * (moments, step) loaded. */
static int record_train(charlm *m, const char *ckpt, int64_t T, int64_t B, loom_optimizer **opt, loom_t *ids,
                        loom_t *targets, loom_t *h, loom_t *c, loom_t *loss, loom_t *h_out, loom_t *c_out)
{
    loom_ctx *ctx = m->ctx;
    const charlm_config *cfg = &m->cfg;
    loom_optim_config oc = optim_config(cfg);
    if (!(*opt = loom_optimizer_new(ctx, &oc)))
        return fail_loom(ctx, "making the optimizer");
    loom_shape state = LOOM_SHAPE(cfg->layers, B, cfg->hidden);
    bool lstm = cfg->model == CLI_MODEL_LSTM;
    double p = cfg->dropout;
    *ids = loom_input(ctx, "ids", LOOM_I32, LOOM_SHAPE(T, B));
    *targets = loom_input(ctx, "targets", LOOM_I32, LOOM_SHAPE(T * B));
    *h = loom_input(ctx, "h", LOOM_F32, state);
    *c = lstm ? loom_input(ctx, "c", LOOM_F32, state) : LOOM_NULL;
    loom_t x = loom_embedding_forward(ctx, &m->emb, *ids);
    if (p > 0)
        x = loom_dropout(ctx, x, p, true);
    loom_rnn_state init = { *h, *c }, fin = { LOOM_NULL, LOOM_NULL };
    loom_t out;
    loom_rnn_forward(ctx, m->rnn, x, &init, LOOM_NULL, true, &out, &fin);
    if (p > 0)
        out = loom_dropout(ctx, out, p, true);
    loom_t logits = loom_linear_forward(ctx, &m->head, loom_reshape(ctx, out, LOOM_SHAPE(T * B, cfg->hidden)));
    *loss = loom_cross_entropy(ctx, logits, *targets);
    *h_out = fin.h;
    *c_out = fin.c;
    if (loom_optimizer_attach(ctx, *opt, *loss) != LOOM_OK)
        return fail_loom(ctx, "attaching the optimizer");
    /* the optimizer's buffers exist now: its moments and step from the file */
    if (loom_checkpoint_load(ctx, ckpt, *opt, LOOM_LOAD_ALLOW_UNEXPECTED | LOOM_LOAD_ALLOW_MISSING) != LOOM_OK) {
        cli_error(CMD, "cannot load the optimizer's state from \"%s\": %s", ckpt, loom_errmsg(ctx));
        return CLI_FAIL;
    }
    return CLI_OK;
}

enum { GRAD_NAME = 49 }; /* loom_aot_emit's names: 48 characters at most */

/* The training step in three calls, on record_train's tape: the backward
 * entry's outputs are the gradients that tape's loom_backward recorded;
 * the update entry's inputs are fresh inputs of the same shapes, from
 * which a second optimizer of the same config (finding the first one's
 * state buffers by name) records the same update. Each of the two commit
 * entries applies its own: loom_aot_emit leaves out of an entry the
 * assignments that read another entry's inputs. */
typedef struct bundle {
    int n;                    /* trainable parameters */
    loom_t *params;           /* [n] */
    loom_t *grads;            /* [n] the backward's, nodes of the tape */
    loom_t *dins;             /* [n] the update's inputs */
    char (*names)[GRAD_NAME]; /* [n] "d_<parameter>", dots as underscores */
    loom_optimizer *opt;      /* the update's */
} bundle;

static void bundle_free(bundle *b)
{
    free(b->params);
    free(b->grads);
    free(b->dins);
    free(b->names);
    loom_optimizer_free(b->opt);
    memset(b, 0, sizeof *b);
}

static int record_bundle(charlm *m, const loom_optimizer *train_opt, bundle *b)
{
    loom_ctx *ctx = m->ctx;
    size_t np = loom_param_count(ctx);
    memset(b, 0, sizeof *b);
    b->params = calloc(np + 1, sizeof *b->params);
    b->grads = calloc(np + 1, sizeof *b->grads);
    b->dins = calloc(np + 1, sizeof *b->dins);
    b->names = calloc(np + 1, sizeof *b->names);
    if (!b->params || !b->grads || !b->dins || !b->names) {
        cli_error(CMD, "out of memory");
        return CLI_FAIL;
    }
    for (size_t i = 0; i < np; i++) {
        loom_t p = loom_param_at(ctx, i);
        loom_t g = loom_param_trainable(ctx, p) ? loom_grad(ctx, p) : LOOM_NULL;
        if (loom_is_null(g))
            continue; /* a buffer (the optimizer's state), or not reached */
        const char *pname = loom_param_name(ctx, p);
        char *d = b->names[b->n];
        if (!pname || strlen(pname) + 2 >= GRAD_NAME) {
            cli_error(CMD, "parameter \"%s\": the name is too long for its gradient's C name (at most %d "
                      "characters)", pname ? pname : "", GRAD_NAME - 3);
            return CLI_FAIL;
        }
        snprintf(d, GRAD_NAME, "d_%s", pname);
        for (char *s = d; *s; s++)
            if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
                *s = '_';
        b->params[b->n] = p;
        b->grads[b->n] = g;
        b->dins[b->n] = loom_input(ctx, d, loom_dtype_of(ctx, p), loom_shape_of(ctx, p));
        b->n++;
    }
    loom_optim_config oc = optim_config(&m->cfg);
    if (!(b->opt = loom_optimizer_new(ctx, &oc)) ||
        loom_optimizer_set_steps(b->opt, loom_optimizer_steps(train_opt)) != LOOM_OK ||
        loom_optimizer_attach_grads(ctx, b->opt, b->n, b->params, b->dins) != LOOM_OK)
        return fail_loom(ctx, "recording the update from given gradients");
    return CLI_OK;
}

/* ------------------------------------------------------------------ */
/* The programs --main writes                                         */
/* ------------------------------------------------------------------ */

/* main.c, with @p@ / @P@ for the prefix, @MODEL@, @V@, @VOCAB@,
 * @WEIGHTS@ (the default weights file, or NULL), @STATE@ (the state
 * arrays, in the step's argument order) and @STATE_DECL@. */
static const char sampler[] =
    "/*\n"
    " * main.c — a sampler for the character-level @MODEL@ language model\n"
    " * compiled into @p@.o by `loom export`: it generates text one byte at a\n"
    " * time with the single-step entry point @p@_step, the state carried in\n"
    " * place, drawing each byte from softmax(logits / temperature) the way\n"
    " * `loom sample` does (the same seed draws the same text). It needs libc\n"
    " * and libm only:\n"
    " *\n"
    " *     cc -O2 -o sample main.c @p@.o -lm\n"
    " *     ./sample -n 500 -t 0.8 -p \"The \" -s 1\n"
    " */\n"
    "#define _POSIX_C_SOURCE 200809L\n"
    "\n"
    "#include <math.h>\n"
    "#include <stdint.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "#include <time.h>\n"
    "#include <unistd.h>\n"
    "\n"
    "#include \"@p@.h\"\n"
    "\n"
    "enum { V = @V@ };\n"
    "\n"
    "/* The vocabulary: byte of each id. */\n"
    "static const unsigned char vocab[V] = {@VOCAB@\n"
    "};\n"
    "\n"
    "/* splitmix64: a small, good generator for the draws. */\n"
    "static uint64_t next_u64(uint64_t *s)\n"
    "{\n"
    "    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);\n"
    "    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;\n"
    "    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;\n"
    "    return z ^ (z >> 31);\n"
    "}\n"
    "\n"
    "static double next_uniform(uint64_t *s) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }\n"
    "\n"
    "/* An id drawn from softmax(logits / temperature); the likeliest at 0. */\n"
    "static int draw(const float *logits, double temperature, double *p, uint64_t *rng)\n"
    "{\n"
    "    int best = 0;\n"
    "    for (int i = 1; i < V; i++)\n"
    "        if (logits[i] > logits[best])\n"
    "            best = i;\n"
    "    if (temperature == 0)\n"
    "        return best;\n"
    "    double sum = 0;\n"
    "    for (int i = 0; i < V; i++)\n"
    "        sum += p[i] = exp(((double)logits[i] - (double)logits[best]) / temperature);\n"
    "    double u = next_uniform(rng) * sum;\n"
    "    for (int i = 0; i < V; i++) {\n"
    "        u -= p[i];\n"
    "        if (u < 0)\n"
    "            return i;\n"
    "    }\n"
    "    return best;\n"
    "}\n"
    "\n"
    "static double now(void)\n"
    "{\n"
    "    struct timespec ts;\n"
    "    clock_gettime(CLOCK_MONOTONIC, &ts);\n"
    "    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;\n"
    "}\n"
    "\n"
    "static int usage(const char *argv0, int status)\n"
    "{\n"
    "    fprintf(status ? stderr : stdout,\n"
    "            \"usage: %s [-n LENGTH] [-t TEMPERATURE] [-p PRIME] [-s SEED] [-w WEIGHTS] [-v]\\n\"\n"
    "            \"  -n  bytes to generate after the prime (default 500)\\n\"\n"
    "            \"  -t  softmax temperature, 0 for the likeliest byte (default 1)\\n\"\n"
    "            \"  -p  text to start from, printed first (default: a newline, not printed)\\n\"\n"
    "            \"  -s  seed of the draws (default: from the clock)\\n\"\n"
    "            \"  -w  a weights file written by loom export --weights-file (default: %s)\\n\"\n"
    "            \"  -v  the time per generated byte, on stderr\\n\",\n"
    "            argv0, @WEIGHTS@ ? @WEIGHTS@ : \"the weights inside @p@.o\");\n"
    "    return status;\n"
    "}\n"
    "\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    long long length = 500, seed = -1;\n"
    "    double temperature = 1.0;\n"
    "    const char *prime = NULL, *wpath = @WEIGHTS@;\n"
    "    int verbose = 0;\n"
    "    for (int i = 1; i < argc; i++) {\n"
    "        const char *a = argv[i], *v;\n"
    "        char *end = NULL;\n"
    "        if (!strcmp(a, \"-h\") || !strcmp(a, \"--help\"))\n"
    "            return usage(argv[0], 0);\n"
    "        if (!strcmp(a, \"-v\")) {\n"
    "            verbose = 1;\n"
    "            continue;\n"
    "        }\n"
    "        if (a[0] != '-' || !a[1] || a[2] || !strchr(\"ntpsw\", a[1]) || i + 1 >= argc) {\n"
    "            fprintf(stderr, \"%s: bad argument \\\"%s\\\"\\n\", argv[0], a);\n"
    "            return usage(argv[0], 2);\n"
    "        }\n"
    "        v = argv[++i];\n"
    "        switch (a[1]) {\n"
    "        case 'n': length = strtoll(v, &end, 10); break;\n"
    "        case 't': temperature = strtod(v, &end); break;\n"
    "        case 's': seed = strtoll(v, &end, 10); break;\n"
    "        case 'p': prime = v; break;\n"
    "        default: wpath = v; break;\n"
    "        }\n"
    "        if ((end && (*end || end == v)) || length < 0 || !(temperature >= 0 && temperature <= 100) ||\n"
    "            (prime && !*prime)) {\n"
    "            fprintf(stderr, \"%s: bad value \\\"%s\\\" for %s\\n\", argv[0], v, a);\n"
    "            return 2;\n"
    "        }\n"
    "    }\n"
    "    int id_of[256];\n"
    "    for (int b = 0; b < 256; b++)\n"
    "        id_of[b] = -1;\n"
    "    for (int i = 0; i < V; i++)\n"
    "        id_of[vocab[i]] = i;\n"
    "    char first[2] = { (char)vocab[0], 0 };\n"
    "    const char *start = prime ? prime : id_of['\\n'] >= 0 ? \"\\n\" : first;\n"
    "    long long nprime = (long long)strlen(start);\n"
    "    for (long long i = 0; i < nprime; i++)\n"
    "        if (id_of[(unsigned char)start[i]] < 0) {\n"
    "            fprintf(stderr, \"%s: -p: byte 0x%02x (offset %lld) is not in the model's vocabulary\\n\", argv[0],\n"
    "                    (unsigned char)start[i], i);\n"
    "            return 2;\n"
    "        }\n"
    "\n"
    "    const void *weights = NULL;\n"
    "    void *block = NULL, *memory = NULL;\n"
    "    if (wpath) {\n"
    "        int rc = @p@_weights_load(wpath, &block, &weights);\n"
    "        if (rc != @P@_OK) {\n"
    "            fprintf(stderr, \"%s: weights \\\"%s\\\": %s\\n\", argv[0], wpath, @p@_strerror(rc));\n"
    "            return 1;\n"
    "        }\n"
    "    }\n"
    "    if (posix_memalign(&memory, @P@_ALIGN, @P@_STEP_MEMORY_BYTES) != 0) {\n"
    "        fprintf(stderr, \"%s: out of memory\\n\", argv[0]);\n"
    "        return 1;\n"
    "    }\n"
    "    static float logits[@P@_STEP_LOGITS_COUNT]@STATE_DECL@;\n"
    "    static double p[V];\n"
    "    uint64_t rng = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);\n"
    "    if (prime)\n"
    "        fwrite(prime, 1, (size_t)nprime, stdout);\n"
    "    int32_t id = 0;\n"
    "    int last = -1;\n"
    "    double t0 = now();\n"
    "    for (long long i = 0; i < nprime - 1 + length; i++) {\n"
    "        if (i == nprime - 1)\n"
    "            t0 = now();\n"
    "        id = i < nprime ? id_of[(unsigned char)start[i]] : id;\n"
    "        int rc = @p@_step(memory, weights, &id, @STATE@, logits, @STATE@);\n"
    "        if (rc != @P@_OK) {\n"
    "            fprintf(stderr, \"%s: %s\\n\", argv[0], @p@_strerror(rc));\n"
    "            return 1;\n"
    "        }\n"
    "        if (i < nprime - 1)\n"
    "            continue; /* still reading the prime */\n"
    "        id = draw(logits, temperature, p, &rng);\n"
    "        last = vocab[id];\n"
    "        putchar(last);\n"
    "    }\n"
    "    double dt = now() - t0;\n"
    "    if (isatty(STDOUT_FILENO) && last != '\\n')\n"
    "        putchar('\\n');\n"
    "    if (fflush(stdout) != 0) {\n"
    "        fprintf(stderr, \"%s: cannot write the sample\\n\", argv[0]);\n"
    "        return 1;\n"
    "    }\n"
    "    if (verbose && length > 0)\n"
    "        fprintf(stderr, \"%lld bytes in %.1f ms: %.1f us per byte; weights read at %.1f GB/s\\n\", length,\n"
    "                dt * 1e3, dt / (double)length * 1e6, (double)@P@_WEIGHTS_BYTES * (double)length / dt / 1e9);\n"
    "    free(memory);\n"
    "    free(block);\n"
    "    return 0;\n"
    "}\n";

/* main.c of a forecaster, with @p@ / @P@ for the prefix, @MODEL@, @W@,
 * @MEAN@, @STD@ (as C doubles) and @WEIGHTS@ (the default weights file,
 * or NULL). */
static const char forecaster[] =
    "/*\n"
    " * main.c — a forecaster for the @MODEL@\n"
    " * compiled into @p@.o by `loom export`: it reads a series, z-scores it\n"
    " * with the statistics of the part the model was trained on (below), and\n"
    " * prints the next value, or with -k K the next K values, each forecast\n"
    " * fed back as the newest value of the window. It needs libc and libm\n"
    " * only:\n"
    " *\n"
    " *     cc -O2 -o forecast main.c @p@.o -lm\n"
    " *     ./forecast series.txt             one number per line\n"
    " *     ./forecast -c close prices.csv    a CSV column, by header name or 0-based index\n"
    " *     ./forecast -k 12 < series.txt     12 steps ahead, from stdin\n"
    " *\n"
    " * Blank lines are skipped; any other line that is not a number is an\n"
    " * error naming the line (exit status 1); a bad command line exits 2.\n"
    " */\n"
    "#define _POSIX_C_SOURCE 200809L\n"
    "\n"
    "#include <errno.h>\n"
    "#include <math.h>\n"
    "#include <stdint.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "\n"
    "#include \"@p@.h\"\n"
    "\n"
    "/* The model's window (values it sees) and the z-score of its training\n"
    " * part: z = (y - MEAN) / STD. */\n"
    "enum { W = @W@ };\n"
    "static const double MEAN = @MEAN@, STD = @STD@;\n"
    "\n"
    "static const char *prog = \"forecast\";\n"
    "\n"
    "static int usage(int status)\n"
    "{\n"
    "    fprintf(status ? stderr : stdout,\n"
    "            \"usage: %s [-k STEPS] [-c COLUMN] [-w WEIGHTS] [FILE]\\n\"\n"
    "            \"  FILE  the series, oldest value first (default: standard input); at least %d values\\n\"\n"
    "            \"  -k    values to forecast, each fed back as the newest (default 1)\\n\"\n"
    "            \"  -c    read FILE as CSV: the column's header name, or its 0-based index (a first\\n\"\n"
    "            \"        line whose field is not a number is then a header)\\n\"\n"
    "            \"  -w    a weights file written by loom export --weights-file (default: %s)\\n\",\n"
    "            prog, W, @WEIGHTS@ ? @WEIGHTS@ : \"the weights inside @p@.o\");\n"
    "    return status;\n"
    "}\n"
    "\n"
    "/* ---- reading the series ---- */\n"
    "\n"
    "typedef struct series {\n"
    "    double *v; /* [n] */\n"
    "    size_t n, cap;\n"
    "} series;\n"
    "\n"
    "/* A number filling s (spaces around it allowed); 0 if it is not one or\n"
    " * not finite. */\n"
    "static int number(const char *s, double *x)\n"
    "{\n"
    "    char *end;\n"
    "    *x = strtod(s, &end);\n"
    "    if (end == s)\n"
    "        return 0;\n"
    "    while (*end == ' ' || *end == '\\t')\n"
    "        end++;\n"
    "    return !*end && isfinite(*x);\n"
    "}\n"
    "\n"
    "/* Field k (0-based) of a comma-separated line, trimmed of spaces and\n"
    " * quotes, into buf (cut at size - 1 bytes); 0 if the line has fewer. */\n"
    "static int field(const char *line, long k, char *buf, size_t size)\n"
    "{\n"
    "    for (long i = 0; i < k; i++) {\n"
    "        line = strchr(line, ',');\n"
    "        if (!line)\n"
    "            return 0;\n"
    "        line++;\n"
    "    }\n"
    "    size_t n = strcspn(line, \",\");\n"
    "    while (n > 0 && (*line == ' ' || *line == '\\t' || *line == '\"'))\n"
    "        line++, n--;\n"
    "    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\\t' || line[n - 1] == '\"'))\n"
    "        n--;\n"
    "    if (n >= size)\n"
    "        n = size - 1;\n"
    "    memcpy(buf, line, n);\n"
    "    buf[n] = 0;\n"
    "    return 1;\n"
    "}\n"
    "\n"
    "/* Reads every value of f (named name in messages): one number a line, or\n"
    " * with column the CSV column. 0 after printing why not. */\n"
    "static int read_series(FILE *f, const char *name, const char *column, series *s)\n"
    "{\n"
    "    char *line = NULL, buf[64];\n"
    "    size_t cap = 0;\n"
    "    ssize_t len;\n"
    "    long lineno = 0, col = 0;\n"
    "    int by_name = 0, header = column != NULL, ok = 1;\n"
    "    if (column) {\n"
    "        char *end;\n"
    "        errno = 0;\n"
    "        col = strtol(column, &end, 10);\n"
    "        by_name = end == column || *end || col < 0 || errno == ERANGE;\n"
    "    }\n"
    "    while (ok && (len = getline(&line, &cap, f)) >= 0) {\n"
    "        lineno++;\n"
    "        while (len > 0 && (line[len - 1] == '\\n' || line[len - 1] == '\\r'))\n"
    "            line[--len] = 0;\n"
    "        if ((size_t)len != strlen(line)) {\n"
    "            fprintf(stderr, \"%s: %s:%ld: a NUL byte: not a text file\\n\", prog, name, lineno);\n"
    "            ok = 0;\n"
    "            break;\n"
    "        }\n"
    "        if (!line[strspn(line, \" \\t\")])\n"
    "            continue; /* blank */\n"
    "        double x;\n"
    "        if (header) { /* the first line of a CSV file */\n"
    "            header = 0;\n"
    "            if (by_name) {\n"
    "                col = -1;\n"
    "                for (long k = 0; col < 0 && field(line, k, buf, sizeof buf); k++)\n"
    "                    if (!strcmp(buf, column))\n"
    "                        col = k;\n"
    "                if (col < 0) {\n"
    "                    fprintf(stderr, \"%s: %s:%ld: no column named \\\"%s\\\" in the header\\n\", prog, name, lineno,\n"
    "                            column);\n"
    "                    ok = 0;\n"
    "                }\n"
    "                continue;\n"
    "            }\n"
    "            if (field(line, col, buf, sizeof buf) && !number(buf, &x))\n"
    "                continue; /* a header above numbers */\n"
    "        }\n"
    "        if (column) {\n"
    "            int has = field(line, col, buf, sizeof buf);\n"
    "            if (!has || !number(buf, &x)) {\n"
    "                fprintf(stderr, \"%s: %s:%ld: column %s is \\\"%s\\\", not a number\\n\", prog, name, lineno, column,\n"
    "                        has ? buf : \"(missing)\");\n"
    "                ok = 0;\n"
    "                break;\n"
    "            }\n"
    "        } else if (!number(line, &x)) {\n"
    "            fprintf(stderr, \"%s: %s:%ld: \\\"%.40s%s\\\" is not a number (one value a line; -c COLUMN for CSV)\\n\",\n"
    "                    prog, name, lineno, line, strlen(line) > 40 ? \"...\" : \"\");\n"
    "            ok = 0;\n"
    "            break;\n"
    "        }\n"
    "        if (s->n == s->cap) {\n"
    "            size_t more = s->cap ? 2 * s->cap : 1024;\n"
    "            double *v = realloc(s->v, more * sizeof *v);\n"
    "            if (!v) {\n"
    "                fprintf(stderr, \"%s: out of memory\\n\", prog);\n"
    "                ok = 0;\n"
    "                break;\n"
    "            }\n"
    "            s->v = v;\n"
    "            s->cap = more;\n"
    "        }\n"
    "        s->v[s->n++] = x;\n"
    "    }\n"
    "    if (ok && ferror(f)) {\n"
    "        fprintf(stderr, \"%s: %s: cannot read: %s\\n\", prog, name, strerror(errno));\n"
    "        ok = 0;\n"
    "    }\n"
    "    free(line);\n"
    "    return ok;\n"
    "}\n"
    "\n"
    "/* ---- forecasting ---- */\n"
    "\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    long long k = 1;\n"
    "    const char *column = NULL, *path = NULL, *wpath = @WEIGHTS@;\n"
    "    prog = argv[0];\n"
    "    for (int i = 1; i < argc; i++) {\n"
    "        const char *a = argv[i];\n"
    "        if (!strcmp(a, \"-h\") || !strcmp(a, \"--help\"))\n"
    "            return usage(0);\n"
    "        if (a[0] != '-' || !a[1]) {\n"
    "            if (path) {\n"
    "                fprintf(stderr, \"%s: two series given: \\\"%s\\\" and \\\"%s\\\"\\n\", prog, path, a);\n"
    "                return usage(2);\n"
    "            }\n"
    "            path = a;\n"
    "            continue;\n"
    "        }\n"
    "        if (a[2] || !strchr(\"kcw\", a[1]) || i + 1 >= argc) {\n"
    "            fprintf(stderr, \"%s: bad argument \\\"%s\\\"\\n\", prog, a);\n"
    "            return usage(2);\n"
    "        }\n"
    "        const char *v = argv[++i];\n"
    "        if (a[1] == 'k') {\n"
    "            char *end;\n"
    "            errno = 0;\n"
    "            k = strtoll(v, &end, 10);\n"
    "            if (end == v || *end || errno == ERANGE || k < 1 || k > 1000000) {\n"
    "                fprintf(stderr, \"%s: bad value \\\"%s\\\" for -k: a count from 1 to 1000000\\n\", prog, v);\n"
    "                return 2;\n"
    "            }\n"
    "        } else if (a[1] == 'c') {\n"
    "            if (!*v) {\n"
    "                fprintf(stderr, \"%s: -c needs a column name or index\\n\", prog);\n"
    "                return 2;\n"
    "            }\n"
    "            column = v;\n"
    "        } else {\n"
    "            wpath = v;\n"
    "        }\n"
    "    }\n"
    "\n"
    "    series s = { 0 };\n"
    "    const char *name = path ? path : \"(stdin)\";\n"
    "    FILE *f = path ? fopen(path, \"r\") : stdin;\n"
    "    if (!f) {\n"
    "        fprintf(stderr, \"%s: cannot open \\\"%s\\\": %s\\n\", prog, path, strerror(errno));\n"
    "        return 1;\n"
    "    }\n"
    "    int ok = read_series(f, name, column, &s);\n"
    "    if (path)\n"
    "        fclose(f);\n"
    "    if (!ok) {\n"
    "        free(s.v);\n"
    "        return 1;\n"
    "    }\n"
    "    if (s.n < (size_t)W) {\n"
    "        fprintf(stderr, \"%s: %s: %zu value%s, but the model needs a window of %d\\n\", prog, name, s.n,\n"
    "                s.n == 1 ? \"\" : \"s\", W);\n"
    "        free(s.v);\n"
    "        return 1;\n"
    "    }\n"
    "\n"
    "    const void *weights = NULL;\n"
    "    void *block = NULL, *memory = NULL;\n"
    "    if (wpath) {\n"
    "        int rc = @p@_weights_load(wpath, &block, &weights);\n"
    "        if (rc != @P@_OK) {\n"
    "            fprintf(stderr, \"%s: weights \\\"%s\\\": %s\\n\", prog, wpath, @p@_strerror(rc));\n"
    "            free(s.v);\n"
    "            return 1;\n"
    "        }\n"
    "    }\n"
    "    /* z: the last W values z-scored, then the forecasts */\n"
    "    double *z = malloc(((size_t)W + (size_t)k) * sizeof *z);\n"
    "    if (!z || posix_memalign(&memory, @P@_ALIGN, @P@_FORECAST_MEMORY_BYTES) != 0) {\n"
    "        fprintf(stderr, \"%s: out of memory\\n\", prog);\n"
    "        free(s.v), free(z), free(block);\n"
    "        return 1;\n"
    "    }\n"
    "    for (int i = 0; i < W; i++)\n"
    "        z[i] = (s.v[s.n - (size_t)W + (size_t)i] - MEAN) / STD;\n"
    "    static float window[@P@_FORECAST_WINDOW_COUNT], change[@P@_FORECAST_CHANGE_COUNT];\n"
    "    int rc = @P@_OK;\n"
    "    for (long long t = 0; t < k && rc == @P@_OK; t++) {\n"
    "        const double *zt = z + t, last = zt[W - 1];\n"
    "        for (int i = 0; i < W; i++)\n"
    "            window[i] = (float)(zt[i] - last);\n"
    "        rc = @p@_forecast(memory, weights, window, change);\n"
    "        z[W + t] = last + (double)change[0];\n"
    "        if (rc == @P@_OK)\n"
    "            printf(\"%.10g\\n\", z[W + t] * STD + MEAN);\n"
    "    }\n"
    "    if (rc != @P@_OK)\n"
    "        fprintf(stderr, \"%s: %s\\n\", prog, @p@_strerror(rc));\n"
    "    else if (fflush(stdout) != 0) {\n"
    "        fprintf(stderr, \"%s: cannot write the forecast\\n\", prog);\n"
    "        rc = -1;\n"
    "    }\n"
    "    free(memory);\n"
    "    free(block);\n"
    "    free(z);\n"
    "    free(s.v);\n"
    "    return rc == @P@_OK ? 0 : 1;\n"
    "}\n";

typedef struct subst {
    const char *key, *value;
} subst;

static bool write_template(const char *path, const char *t, const subst *subs, int nsubs)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    for (const char *s = t; *s;) {
        const char *at = strchr(s, '@');
        if (!at) {
            fputs(s, f);
            break;
        }
        fwrite(s, 1, (size_t)(at - s), f);
        int k = 0;
        for (; k < nsubs; k++)
            if (!strncmp(at, subs[k].key, strlen(subs[k].key)))
                break;
        if (k < nsubs) {
            fputs(subs[k].value, f);
            s = at + strlen(subs[k].key);
        } else {
            fputc('@', f);
            s = at + 1;
        }
    }
    bool ok = !ferror(f);
    return fclose(f) == 0 && ok;
}

/* The prefix in capitals, as the header's macros spell it. */
static void to_upper(char *dst, size_t size, const char *name)
{
    size_t i = 0;
    for (; name[i] && i < size - 1; i++)
        dst[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    dst[i] = 0;
}

/* The checkpoint's path for a C comment: at most 80 bytes, printable
 * ASCII, and no star-slash to end the comment early. */
static void comment_path(char *dst, size_t size, const char *path)
{
    size_t n = 0;
    for (const char *s = path; *s && n + 1 < size && n < 80; s++) {
        char ch = *s >= 0x20 && *s < 0x7f ? *s : '?';
        if (ch == '/' && n > 0 && dst[n - 1] == '*')
            ch = '_';
        dst[n++] = ch;
    }
    dst[n] = 0;
}

static void default_weights(char *dst, size_t size, const char *name, bool weights_file)
{
    if (weights_file)
        snprintf(dst, size, "\"%s.weights\"", name);
    else
        snprintf(dst, size, "(const char *)NULL");
}

static int write_main(const char *dir, const char *t, const subst *subs, int nsubs)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/main.c", dir);
    if (!write_template(path, t, subs, nsubs)) {
        cli_error(CMD, "cannot write \"%s\": %s", path, strerror(errno));
        return CLI_FAIL;
    }
    return CLI_OK;
}

static int write_sampler(const charlm *m, const char *dir, const char *name, bool weights_file, const char *ckpt)
{
    char upper[64], vocab[256 * 6 + 64] = "", weights[128], model[200], from[96];
    to_upper(upper, sizeof upper, name);
    size_t n = 0;
    for (int v = 0; v < m->cfg.vocab.size; v++)
        n += (size_t)snprintf(vocab + n, sizeof vocab - n, "%s%u,", v % 16 ? " " : "\n    ", m->cfg.vocab.byte[v]);
    char V[16];
    snprintf(V, sizeof V, "%d", m->cfg.vocab.size);
    default_weights(weights, sizeof weights, name, weights_file);
    comment_path(from, sizeof from, ckpt);
    snprintf(model, sizeof model, "%s (hidden %lld, %d layers; from %s)", cli_model_names[m->cfg.model],
             (long long)m->cfg.hidden, m->cfg.layers, from);
    bool lstm = m->cfg.model == CLI_MODEL_LSTM;
    char decl[256];
    if (lstm)
        snprintf(decl, sizeof decl, ", h[%s_STEP_H_COUNT], c[%s_STEP_C_COUNT]", upper, upper);
    else
        snprintf(decl, sizeof decl, ", h[%s_STEP_H_COUNT]", upper);
    const subst subs[] = {
        { "@p@", name }, { "@P@", upper }, { "@MODEL@", model }, { "@V@", V }, { "@VOCAB@", vocab },
        { "@WEIGHTS@", weights }, { "@STATE_DECL@", decl }, { "@STATE@", lstm ? "h, c" : "h" },
    };
    return write_main(dir, sampler, subs, (int)CLI_LEN(subs));
}

static int write_forecaster(const forecast_config *fc, const char *dir, const char *name, bool weights_file,
                            const char *ckpt)
{
    char upper[64], weights[128], model[240], from[96], W[24], mean[40], std[40];
    to_upper(upper, sizeof upper, name);
    default_weights(weights, sizeof weights, name, weights_file);
    comment_path(from, sizeof from, ckpt);
    snprintf(model, sizeof model, "time-series %s (hidden %lld, window %lld)\n * of examples/forecast.c (from %s)",
             fc->cell == CLI_MODEL_GRU ? "GRU" : "LSTM", (long long)fc->hidden, (long long)fc->window, from);
    snprintf(W, sizeof W, "%lld", (long long)fc->window);
    snprintf(mean, sizeof mean, "%.17g", fc->mean);
    snprintf(std, sizeof std, "%.17g", fc->std);
    const subst subs[] = {
        { "@p@", name }, { "@P@", upper }, { "@MODEL@", model }, { "@W@", W },
        { "@MEAN@", mean }, { "@STD@", std }, { "@WEIGHTS@", weights },
    };
    return write_main(dir, forecaster, subs, (int)CLI_LEN(subs));
}

/* ------------------------------------------------------------------ */
/* The command                                                        */
/* ------------------------------------------------------------------ */

static bool is_ident(const char *s)
{
    if (!*s || strlen(s) > 40 || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* -o DIR, made once the model has loaded: a bad checkpoint leaves no
 * empty directory behind. */
static int make_out_dir(const export_args *a)
{
    if (mkdir(a->out, 0777) != 0 && errno != EEXIST) {
        cli_error(CMD, "cannot make directory \"%s\": %s", a->out, strerror(errno));
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* What every export prints about the object. */
static void print_object(const export_args *a, const loom_aot_info *info, double seconds)
{
    printf("%s/%s.o: %.2f MB of code and weights for %s (%u kernels), compiled in %.1f s\n", a->out, a->name,
           (double)info->object_bytes / 1e6, info->cpu, info->kernels, seconds);
}

static void print_weights_file(const export_args *a, const loom_aot_info *info)
{
    if (a->weights_file)
        printf("%s/%s.weights: %.2f MB of weights (graph hash %016llx)\n", a->out, a->name,
               (double)(info->weights_bytes + 64) / 1e6, (unsigned long long)info->graph_hash);
}

/* The cc line that builds DIR/main.c into DIR/prog. */
static void print_cc(const export_args *a, const char *what, const char *prog)
{
    printf("%s/main.c: %s; build it with\n", a->out, what);
    printf("cc -O2 -o %s/%s %s/main.c %s/%s.o -lm\n", a->out, prog, a->out, a->out, a->name);
}

static int export_charlm(const export_args *a)
{
    charlm m;
    if (charlm_open(&m, a->ckpt, 1, CMD) != CLI_OK)
        return CLI_FAIL;
    int rc = CLI_FAIL;
    loom_ctx *ctx = m.ctx;
    int64_t T = a->seq_len ? a->seq_len : m.cfg.seq_len > 0 ? m.cfg.seq_len : 64, B = a->batch, H = m.cfg.hidden;
    bool lstm = m.cfg.model == CLI_MODEL_LSTM;
    loom_shape state = LOOM_SHAPE(m.cfg.layers, B, H);
    /* the step: ids [1, B], h, c -> logits [B, V], h', c' */
    loom_t ids = loom_input(ctx, "ids", LOOM_I32, LOOM_SHAPE(1, B));
    loom_t h = loom_input(ctx, "h", LOOM_F32, state);
    loom_t c = lstm ? loom_input(ctx, "c", LOOM_F32, state) : LOOM_NULL;
    loom_t logits, h2, c2;
    record(&m, ids, LOOM_NULL, h, c, 1, B, &logits, &h2, &c2);
    /* the sequence: ids [T, B], lengths [B], h0, c0 -> logits [T * B, V], hT, cT */
    loom_t sids = loom_input(ctx, "ids", LOOM_I32, LOOM_SHAPE(T, B));
    loom_t lengths = loom_input(ctx, "lengths", LOOM_I32, LOOM_SHAPE(B));
    loom_t h0 = loom_input(ctx, "h0", LOOM_F32, state);
    loom_t c0 = lstm ? loom_input(ctx, "c0", LOOM_F32, state) : LOOM_NULL;
    loom_t slogits, hT, cT;
    record(&m, sids, lengths, h0, c0, T, B, &slogits, &hT, &cT);
    /* the training step: as loom train records it, the state in inputs,
     * then the same step split in three */
    loom_optimizer *opt = NULL;
    bundle bd = { 0 };
    loom_t tids = LOOM_NULL, targets = LOOM_NULL, th = LOOM_NULL, tc = LOOM_NULL, loss = LOOM_NULL,
           th2 = LOOM_NULL, tc2 = LOOM_NULL;
    loom_t *bwd_out = NULL;
    const char **bwd_names = NULL;
    if (a->train && (record_train(&m, a->ckpt, T, B, &opt, &tids, &targets, &th, &tc, &loss, &th2, &tc2) != CLI_OK ||
                     record_bundle(&m, opt, &bd) != CLI_OK))
        goto out;
    if (loom_failed(ctx)) {
        fail_loom(ctx, "recording the model");
        goto out;
    }
    static const char *const step_names[] = { "logits", "h_out", "c_out" };
    static const char *const train_names[] = { "loss", "h_out", "c_out" };
    static const char *const update_names[] = { "grad_norm" };
    int nstate = lstm ? 2 : 1;
    /* the backward's outputs: loss, h_out (c_out), then the gradients */
    bwd_out = calloc((size_t)(3 + bd.n), sizeof *bwd_out);
    bwd_names = calloc((size_t)(3 + bd.n), sizeof *bwd_names);
    if (!bwd_out || !bwd_names) {
        cli_error(CMD, "out of memory");
        goto out;
    }
    bwd_out[0] = loss, bwd_out[1] = th2, bwd_out[2] = tc2;
    bwd_names[0] = "loss", bwd_names[1] = "h_out", bwd_names[2] = "c_out";
    for (int i = 0; i < bd.n; i++) {
        bwd_out[1 + nstate + i] = bd.grads[i];
        bwd_names[1 + nstate + i] = bd.names[i];
    }
    loom_t train_in[4] = { tids, targets, th, tc };
    loom_t grad_norm = bd.opt ? loom_optimizer_grad_norm(bd.opt) : LOOM_NULL;
    loom_aot_entry entries[6] = {
        { .name = "step", .ninputs = 1 + nstate, .inputs = (loom_t[]){ ids, h, c }, .noutputs = 1 + nstate,
          .outputs = (loom_t[]){ logits, h2, c2 }, .output_names = step_names },
        { .name = "seq", .ninputs = 2 + nstate, .inputs = (loom_t[]){ sids, lengths, h0, c0 },
          .noutputs = 1 + nstate, .outputs = (loom_t[]){ slogits, hT, cT }, .output_names = step_names },
        { .name = "train", .ninputs = 2 + nstate, .inputs = train_in, .noutputs = 1 + nstate,
          .outputs = (loom_t[]){ loss, th2, tc2 }, .output_names = train_names, .commit = true },
        { .name = "forward", .ninputs = 2 + nstate, .inputs = train_in, .noutputs = 1 + nstate,
          .outputs = (loom_t[]){ loss, th2, tc2 }, .output_names = train_names },
        { .name = "backward", .ninputs = 2 + nstate, .inputs = train_in, .noutputs = 1 + nstate + bd.n,
          .outputs = bwd_out, .output_names = bwd_names },
        { .name = "update", .ninputs = bd.n, .inputs = bd.dins, .noutputs = 1, .outputs = &grad_norm,
          .output_names = update_names, .commit = true },
    };
    loom_aot_info info;
    double t0 = cli_now();
    if (make_out_dir(a) != CLI_OK)
        goto out;
    if (loom_aot_emit(ctx, a->out, &(loom_aot_options){ .prefix = a->name, .cpu = cpu_names[a->cpu],
                                                       .weights_file = a->weights_file,
                                                       .nentries = a->train ? 6 : 2, .entries = entries },
                      &info) != LOOM_OK) {
        fail_loom(ctx, "compiling");
        goto out;
    }
    print_object(a, &info, cli_now() - t0);
    printf("%s/%s.h: %s_step (one byte, %lld stream%s), %s_seq (up to %lld bytes); memory %.1f KiB\n", a->out,
           a->name, a->name, (long long)B, B > 1 ? "s" : "", a->name, (long long)T,
           (double)info.memory_bytes / 1024.0);
    if (a->train) {
        printf("%s/%s.h: %s_train (a training step over %lld x %lld bytes; the optimizer's state from step %lld)\n",
               a->out, a->name, a->name, (long long)T, (long long)B, (long long)loom_optimizer_steps(opt));
        printf("%s/%s.h: the same step in three calls: %s_forward (the loss), %s_backward (the loss and %d "
               "gradients), %s_update (the optimizer's update from given gradients)\n",
               a->out, a->name, a->name, a->name, bd.n, a->name);
    }
    print_weights_file(a, &info);
    if (a->with_main) {
        if (write_sampler(&m, a->out, a->name, a->weights_file, a->ckpt) != CLI_OK)
            goto out;
        print_cc(a, "a sampler", "sample");
        printf("and run it: %s/sample -n 200 -t 0.8%s%s%s%s%s\n", a->out, a->weights_file ? " -w " : "",
               a->weights_file ? a->out : "", a->weights_file ? "/" : "", a->weights_file ? a->name : "",
               a->weights_file ? ".weights" : "");
    }
    rc = CLI_OK;
out:
    free(bwd_out);
    free(bwd_names);
    bundle_free(&bd);
    loom_optimizer_free(opt);
    charlm_free(&m);
    return rc;
}

/* The forecaster of examples/forecast.c, rebuilt from its config: the
 * one-layer cell "rnn" over the window, the linear head "head" on its
 * last state. */
static int export_forecast(const export_args *a, const forecast_config *fc)
{
    int64_t W = fc->window, H = fc->hidden, B = a->batch;
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .threads = 1 });
    if (!ctx) {
        cli_error(CMD, "out of memory");
        return CLI_FAIL;
    }
    int rc = CLI_FAIL;
    loom_rnn_config rc_cfg = { .mode = fc->cell == CLI_MODEL_GRU ? LOOM_GRU : LOOM_LSTM, .input_size = 1,
                               .hidden_size = H };
    loom_rnn *rnn = loom_rnn_new(ctx, "rnn", &rc_cfg);
    loom_linear head;
    loom_linear_init(ctx, &head, "head", H, 1, true, LOOM_F32);
    if (loom_failed(ctx)) {
        fail_loom(ctx, "building the forecaster");
        goto out;
    }
    /* the weights only: the optimizer's moments in the file are not used */
    if (loom_checkpoint_load(ctx, a->ckpt, NULL, LOOM_LOAD_ALLOW_UNEXPECTED) != LOOM_OK) {
        cli_error(CMD, "cannot load checkpoint \"%s\": %s", a->ckpt, loom_errmsg(ctx));
        goto out;
    }
    loom_t window = loom_input(ctx, "window", LOOM_F32, LOOM_SHAPE(W, B, 1));
    loom_t seq;
    loom_rnn_state last = { LOOM_NULL, LOOM_NULL };
    loom_rnn_forward(ctx, rnn, window, NULL, LOOM_NULL, false, &seq, &last); /* last.h [1, B, H] */
    loom_t change = loom_linear_forward(ctx, &head, loom_reshape(ctx, last.h, LOOM_SHAPE(B, H)));
    if (loom_failed(ctx)) {
        fail_loom(ctx, "recording the forecaster");
        goto out;
    }
    static const char *const names[] = { "change" };
    loom_aot_entry e = { .name = "forecast", .ninputs = 1, .inputs = &window, .noutputs = 1, .outputs = &change,
                         .output_names = names };
    loom_aot_info info;
    double t0 = cli_now();
    if (make_out_dir(a) != CLI_OK)
        goto out;
    if (loom_aot_emit(ctx, a->out, &(loom_aot_options){ .prefix = a->name, .cpu = cpu_names[a->cpu],
                                                       .weights_file = a->weights_file, .nentries = 1,
                                                       .entries = &e },
                      &info) != LOOM_OK) {
        fail_loom(ctx, "compiling");
        goto out;
    }
    print_object(a, &info, cli_now() - t0);
    printf("%s/%s.h: %s_forecast (%s, hidden %lld: a window of %lld values of %lld series in, the next change "
           "out); memory %.1f KiB\n",
           a->out, a->name, a->name, fc->cell == CLI_MODEL_GRU ? "GRU" : "LSTM", (long long)H, (long long)W,
           (long long)B, (double)info.memory_bytes / 1024.0);
    print_weights_file(a, &info);
    if (a->with_main) {
        if (write_forecaster(fc, a->out, a->name, a->weights_file, a->ckpt) != CLI_OK)
            goto out;
        print_cc(a, "a forecaster (z-score: mean and std from the checkpoint)", "forecast");
        printf("and run it: %s/forecast [-k STEPS] [-c COLUMN]%s%s%s%s%s SERIES (oldest value first, at least "
               "%lld)\n",
               a->out, a->weights_file ? " -w " : "", a->weights_file ? a->out : "", a->weights_file ? "/" : "",
               a->weights_file ? a->name : "", a->weights_file ? ".weights" : "", (long long)W);
    }
    rc = CLI_OK;
out:
    loom_rnn_free(rnn);
    loom_ctx_free(ctx);
    return rc;
}

int cli_export(int argc, char **argv)
{
    export_args a = { .batch = 1 };
    cli_opt opts[] = {
        { "--out", 'o', CLI_OPT_STRING, &a.out, "DIR", "the directory to write (made if missing; required)", 0, 0, false, NULL, false },
        { "--cpu", 0, CLI_OPT_CHOICE, &a.cpu, NULL, "the CPU the code is for (host: this machine)", 0, 0, false, cpu_names, false },
        { "--main", 0, CLI_OPT_FLAG, &a.with_main, NULL, "also write DIR/main.c (a sampler, or a forecaster) and print the cc line that builds it", 0, 0, false, NULL, false },
        { "--weights-file", 0, CLI_OPT_FLAG, &a.weights_file, NULL, "the weights in DIR/NAME.weights instead of inside the object", 0, 0, false, NULL, false },
        { "--train", 0, CLI_OPT_FLAG, &a.train, NULL, "char LM: also the training step (one call, or forward, backward and update)", 0, 0, false, NULL, false },
        { "--seq-len", 0, CLI_OPT_INT, &a.seq_len, "T", "char LM: most bytes the sequence entry takes (default: the checkpoint's --seq-len)", 1, 100000, false, NULL, false },
        { "--batch", 0, CLI_OPT_INT, &a.batch, "B", "streams (series) per call of every entry", 1, 65536, false, NULL, false },
        { "--name", 0, CLI_OPT_STRING, &a.name, "NAME", "prefix of the files and of every symbol (default charlm, or forecaster)", 0, 0, false, NULL, false },
    };
    cli_cmd cmd = {
        .name = CMD,
        .usage = "loom export CKPT -o DIR [--main] [--cpu host|x86-64-v3|x86-64-v4] [--weights-file] [--train]",
        .summary = "Compiles a checkpoint ahead of time into DIR/NAME.o and DIR/NAME.h: native code that needs\n"
                   "neither LLVM nor loom at run time (libc and libm only). A char LM of loom train gets a step\n"
                   "entry (one byte, the state carried) and a sequence entry (up to --seq-len bytes); --train\n"
                   "adds its training step, in one call and as forward, backward and update. A forecaster of\n"
                   "examples/forecast.c gets a forecast entry (a window in, the next change out). --main adds\n"
                   "a program (a sampler, or a forecaster) and prints the cc line that builds it.",
        .opts = opts,
        .nopts = (int)CLI_LEN(opts),
        .min_pos = 1,
        .max_pos = 1,
        .pos_name = "CKPT (a .safetensors file written by loom train or examples/forecast)",
    };
    const char *pos[1];
    int npos;
    int prc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (prc != CLI_OK)
        return prc < 0 ? CLI_OK : prc;
    a.ckpt = pos[0];
    if (!a.out) {
        cli_error(CMD, "-o DIR is required: the directory to write the object, header and weights into");
        return CLI_USAGE;
    }
    if (a.name && !is_ident(a.name)) {
        cli_error(CMD, "--name: \"%s\" is not a C identifier of at most 40 characters", a.name);
        return CLI_USAGE;
    }
    if (a.with_main && a.batch != 1) {
        cli_error(CMD, "--main writes a program for one stream (one series): leave --batch at 1");
        return CLI_USAGE;
    }
    /* which model: the config's "model" */
    char *json = cli_checkpoint_config(CMD, a.ckpt);
    if (!json)
        return CLI_FAIL;
    char model[32];
    bool forecast = cli_config_model(json, model, sizeof model) && !strcmp(model, FORECAST_MODEL);
    forecast_config fc;
    char why[256];
    int rc = CLI_OK;
    struct stat st;
    if (forecast && !forecast_config_parse(&fc, json, why, sizeof why)) {
        cli_error(CMD, "checkpoint \"%s\": %s", a.ckpt, why);
        rc = CLI_FAIL;
    } else if (forecast && stat(a.ckpt, &st) == 0 &&
               4.0 * (fc.cell == CLI_MODEL_LSTM ? 4 : 3) * (double)fc.hidden * (double)fc.hidden > (double)st.st_size) {
        /* its hidden-to-hidden matrix alone: a damaged config must not
         * make the model (gigabytes) before the load finds it missing */
        cli_error(CMD, "checkpoint \"%s\": its config's hidden size %lld needs more weights than the file's %lld bytes "
                  "(a damaged config?)", a.ckpt, (long long)fc.hidden, (long long)st.st_size);
        rc = CLI_FAIL;
    } else if (forecast && a.train) {
        cli_error(CMD, "--train: \"%s\" is a forecaster; the training bundle is for char LMs of loom train", a.ckpt);
        rc = CLI_USAGE;
    } else if (forecast && a.seq_len) {
        cli_error(CMD, "--seq-len: \"%s\" is a forecaster, whose window (%lld values) its checkpoint fixes", a.ckpt,
                  (long long)fc.window);
        rc = CLI_USAGE;
    }
    free(json);
    if (rc != CLI_OK)
        return rc;
    if (!a.name)
        a.name = forecast ? "forecaster" : "charlm";
    return forecast ? export_forecast(&a, &fc) : export_charlm(&a);
}
