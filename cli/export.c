/*
 * export.c — `loom export CKPT -o DIR`: the model of a checkpoint of loom
 * train compiled ahead of time (loom_aot_emit) into DIR/<name>.o and
 * DIR/<name>.h, with the weights inside the object or, with
 * --weights-file, in DIR/<name>.weights. Two entry points:
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
 * With --train, a training bundle as well:
 *
 *   <name>_train  one step of loom train: ids [T, B] and targets [T * B],
 *                the carried state in; the loss and the next state out;
 *                the parameters and the optimizer's state updated in the
 *                weights (the caller's writable copy), the optimizer's
 *                per-step scalars passed by the caller (the header gives
 *                each formula; the step count goes on from the
 *                checkpoint's), dropout's random key too if the model has
 *                dropout.
 *
 * With --main it also writes DIR/main.c, a sampler that needs libc and
 * libm only (the same draws as loom sample for the same seed), and prints
 * the one cc line that builds it.
 *
 * Not here: the model (model.c), compiling (frontend/aot.c, jit/aot.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char CMD[] = "export";

static const char *const cpu_names[] = { "host", "x86-64-v3", "x86-64-v4", NULL };

static int fail_loom(loom_ctx *ctx, const char *what)
{
    cli_error(CMD, "%s: %s", what, loom_errmsg(ctx));
    return CLI_FAIL;
}

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

/* The training step of loom train (model.c's charlm_record with the
 * state in inputs) with the checkpoint's optimizer attached and its state
 * (moments, step) loaded. */
static int record_train(charlm *m, const char *ckpt, int64_t T, int64_t B, loom_optimizer **opt, loom_t *ids,
                        loom_t *targets, loom_t *h, loom_t *c, loom_t *loss, loom_t *h_out, loom_t *c_out)
{
    loom_ctx *ctx = m->ctx;
    const charlm_config *cfg = &m->cfg;
    static const loom_opt_kind kinds[CLI_OPT_COUNT] = { LOOM_OPT_ADAM, LOOM_OPT_ADAMW, LOOM_OPT_SGD,
                                                        LOOM_OPT_RMSPROP };
    loom_optim_config oc = {
        .kind = kinds[cfg->optimizer],
        .lr = cfg->lr,
        .momentum = cfg->momentum,
        .weight_decay = cfg->weight_decay,
        .clip_norm = cfg->clip,
        .schedule = cfg->schedule == 1 ? LOOM_SCHEDULE_COSINE : LOOM_SCHEDULE_CONSTANT,
        .total_steps = cfg->total_steps,
        .warmup_steps = cfg->warmup,
    };
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

/* ------------------------------------------------------------------ */
/* The sampler                                                        */
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

static int write_sampler(const charlm *m, const char *dir, const char *name, bool weights_file, const char *ckpt)
{
    char path[4200], upper[64], vocab[256 * 6 + 64] = "", weights[128], model[160];
    size_t i = 0;
    for (; name[i] && i < sizeof upper - 1; i++)
        upper[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
    upper[i] = 0;
    size_t n = 0;
    for (int v = 0; v < m->cfg.vocab.size; v++)
        n += (size_t)snprintf(vocab + n, sizeof vocab - n, "%s%u,", v % 16 ? " " : "\n    ", m->cfg.vocab.byte[v]);
    char V[16];
    snprintf(V, sizeof V, "%d", m->cfg.vocab.size);
    if (weights_file)
        snprintf(weights, sizeof weights, "\"%s.weights\"", name);
    else
        snprintf(weights, sizeof weights, "(const char *)NULL");
    snprintf(model, sizeof model, "%s (hidden %lld, %d layers; from %.80s)", cli_model_names[m->cfg.model],
             (long long)m->cfg.hidden, m->cfg.layers, ckpt);
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
    snprintf(path, sizeof path, "%s/main.c", dir);
    if (!write_template(path, sampler, subs, (int)CLI_LEN(subs))) {
        cli_error(CMD, "cannot write \"%s\": %s", path, strerror(errno));
        return CLI_FAIL;
    }
    return CLI_OK;
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

int cli_export(int argc, char **argv)
{
    const char *out = NULL, *name = "charlm";
    int cpu = 0;
    bool with_main = false, weights_file = false, train = false;
    long long seq_len = 0, batch = 1;
    cli_opt opts[] = {
        { "--out", 'o', CLI_OPT_STRING, &out, "DIR", "the directory to write (made if missing; required)", 0, 0, false, NULL, false },
        { "--cpu", 0, CLI_OPT_CHOICE, &cpu, NULL, "the CPU the code is for (host: this machine)", 0, 0, false, cpu_names, false },
        { "--main", 0, CLI_OPT_FLAG, &with_main, NULL, "also write DIR/main.c, a sampler, and print the cc line that builds it", 0, 0, false, NULL, false },
        { "--weights-file", 0, CLI_OPT_FLAG, &weights_file, NULL, "the weights in DIR/NAME.weights instead of inside the object", 0, 0, false, NULL, false },
        { "--train", 0, CLI_OPT_FLAG, &train, NULL, "also a training step entry (forward, backward, optimizer update)", 0, 0, false, NULL, false },
        { "--seq-len", 0, CLI_OPT_INT, &seq_len, "T", "most bytes the sequence entry takes (default: the checkpoint's --seq-len)", 1, 100000, false, NULL, false },
        { "--batch", 0, CLI_OPT_INT, &batch, "B", "streams per call of either entry", 1, 65536, false, NULL, false },
        { "--name", 0, CLI_OPT_STRING, &name, "NAME", "prefix of the files and of every symbol", 0, 0, false, NULL, false },
    };
    cli_cmd cmd = {
        .name = CMD,
        .usage = "loom export CKPT -o DIR [--main] [--cpu host|x86-64-v3|x86-64-v4] [--weights-file] [--train]",
        .summary = "Compiles a checkpoint of loom train ahead of time into DIR/NAME.o and DIR/NAME.h: native\n"
                   "code that needs neither LLVM nor loom at run time (libc and libm only), with a step entry\n"
                   "(one byte, the state carried) and a sequence entry (up to --seq-len bytes). --main adds a\n"
                   "sampler program and prints the cc line that builds it; --train a training step entry.",
        .opts = opts,
        .nopts = (int)CLI_LEN(opts),
        .min_pos = 1,
        .max_pos = 1,
        .pos_name = "CKPT (a .safetensors file written by loom train)",
    };
    const char *pos[1];
    int npos;
    int prc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (prc != CLI_OK)
        return prc < 0 ? CLI_OK : prc;
    if (!out) {
        cli_error(CMD, "-o DIR is required: the directory to write the object, header and weights into");
        return CLI_USAGE;
    }
    if (!is_ident(name)) {
        cli_error(CMD, "--name: \"%s\" is not a C identifier of at most 40 characters", name);
        return CLI_USAGE;
    }
    if (with_main && batch != 1) {
        cli_error(CMD, "--main writes a sampler for one stream: leave --batch at 1");
        return CLI_USAGE;
    }
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        cli_error(CMD, "cannot make directory \"%s\": %s", out, strerror(errno));
        return CLI_FAIL;
    }

    charlm m;
    if (charlm_open(&m, pos[0], 1, CMD) != CLI_OK)
        return CLI_FAIL;
    int rc = CLI_FAIL;
    loom_ctx *ctx = m.ctx;
    int64_t T = seq_len ? seq_len : m.cfg.seq_len > 0 ? m.cfg.seq_len : 64, B = batch, H = m.cfg.hidden;
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
    /* the training step: as loom train records it, the state in inputs */
    loom_optimizer *opt = NULL;
    loom_t tids = LOOM_NULL, targets = LOOM_NULL, th = LOOM_NULL, tc = LOOM_NULL, loss = LOOM_NULL,
           th2 = LOOM_NULL, tc2 = LOOM_NULL;
    if (train && record_train(&m, pos[0], T, B, &opt, &tids, &targets, &th, &tc, &loss, &th2, &tc2) != CLI_OK)
        goto out;
    if (loom_failed(ctx)) {
        fail_loom(ctx, "recording the model");
        goto out;
    }
    static const char *const step_names[] = { "logits", "h_out", "c_out" };
    static const char *const train_names[] = { "loss", "h_out", "c_out" };
    loom_aot_entry entries[3] = {
        { .name = "step", .ninputs = lstm ? 3 : 2, .inputs = (loom_t[]){ ids, h, c }, .noutputs = lstm ? 3 : 2,
          .outputs = (loom_t[]){ logits, h2, c2 }, .output_names = step_names },
        { .name = "seq", .ninputs = lstm ? 4 : 3, .inputs = (loom_t[]){ sids, lengths, h0, c0 },
          .noutputs = lstm ? 3 : 2, .outputs = (loom_t[]){ slogits, hT, cT }, .output_names = step_names },
        { .name = "train", .ninputs = lstm ? 4 : 3, .inputs = (loom_t[]){ tids, targets, th, tc },
          .noutputs = lstm ? 3 : 2, .outputs = (loom_t[]){ loss, th2, tc2 }, .output_names = train_names,
          .commit = true },
    };
    loom_aot_info info;
    double t0 = cli_now();
    if (loom_aot_emit(ctx, out, &(loom_aot_options){ .prefix = name, .cpu = cpu_names[cpu],
                                                    .weights_file = weights_file, .nentries = train ? 3 : 2,
                                                    .entries = entries },
                      &info) != LOOM_OK) {
        fail_loom(ctx, "compiling");
        goto out;
    }
    printf("%s/%s.o: %.2f MB of code and weights for %s (%u kernels), compiled in %.1f s\n", out, name,
           (double)info.object_bytes / 1e6, info.cpu, info.kernels, cli_now() - t0);
    printf("%s/%s.h: %s_step (one byte, %lld stream%s), %s_seq (up to %lld bytes); memory %.1f KiB\n", out, name,
           name, (long long)B, B > 1 ? "s" : "", name, (long long)T, (double)info.memory_bytes / 1024.0);
    if (train)
        printf("%s/%s.h: %s_train (a training step over %lld x %lld bytes; the optimizer's state from step %lld)\n",
               out, name, name, (long long)T, (long long)B, (long long)loom_optimizer_steps(opt));
    if (weights_file)
        printf("%s/%s.weights: %.2f MB of weights (graph hash %016llx)\n", out, name,
               (double)(info.weights_bytes + 64) / 1e6, (unsigned long long)info.graph_hash);
    if (with_main) {
        if (write_sampler(&m, out, name, weights_file, pos[0]) != CLI_OK)
            goto out;
        printf("%s/main.c: a sampler; build it with\n", out);
        printf("cc -O2 -o %s/sample %s/main.c %s/%s.o -lm\n", out, out, out, name);
        printf("and run it: %s/sample -n 200 -t 0.8%s%s%s%s%s\n", out, weights_file ? " -w " : "",
               weights_file ? out : "", weights_file ? "/" : "", weights_file ? name : "", weights_file ? ".weights" : "");
    }
    rc = CLI_OK;
out:
    loom_optimizer_free(opt);
    charlm_free(&m);
    return rc;
}
