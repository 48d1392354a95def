/*
 * model.c — the character-level language model of the `loom` commands,
 * built from the public API:
 *
 *   ids [T, B] -> Embedding (V, H) -> dropout -> RNN/LSTM/GRU stack
 *   (H -> H, L layers, dropout between layers) -> dropout -> Linear (H, V)
 *   -> logits [T * B, V] -> cross-entropy against the next ids
 *
 * (dropout placed as in PyTorch's word_language_model example), with the
 * recurrent state carried from run to run in buffers: truncated BPTT when
 * training, one long pass when evaluating or sampling. Also the model's
 * config as the JSON string a checkpoint carries, so `sample` and `eval`
 * rebuild the model from the checkpoint alone, and the config
 * examples/forecast.c writes, which `export` reads.
 *
 * Not here: the training loop (train.c), the corpus (data.c).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

const char *const cli_model_names[CLI_MODEL_COUNT + 1] = { "lstm", "gru", "rnn", NULL };
const char *const cli_optimizer_names[CLI_OPT_COUNT + 1] = { "adam", "adamw", "sgd", "rmsprop", NULL };
const char *const cli_schedule_names[CLI_SCHEDULE_COUNT + 1] = { "constant", "cosine", NULL };

#define CONFIG_FORMAT "loom-charlm"
enum { CONFIG_VERSION = 1, CONFIG_MAX = 1 << 16 };

/* ------------------------------------------------------------------ */
/* The config as JSON                                                 */
/* ------------------------------------------------------------------ */

typedef struct out_buf {
    char *s;
    size_t size, n;
    bool full;
} out_buf;

static void put(out_buf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_buf *o, const char *fmt, ...)
{
    if (o->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->s + o->n, o->size - o->n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= o->size - o->n)
        o->full = true;
    else
        o->n += (size_t)k;
}

/* A number, or null for NaN (JSON has no NaN). */
static void put_num(out_buf *o, const char *key, double v)
{
    if (isfinite(v))
        put(o, ",\"%s\":%.17g", key, v);
    else
        put(o, ",\"%s\":null", key);
}

/* Bytes as a JSON string: printable ASCII as is, the rest as \u00XX, one
 * escape per byte (so any path, UTF-8 or not, comes back byte for byte). */
static void put_str(out_buf *o, const char *key, const char *s)
{
    put(o, ",\"%s\":\"", key);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(o, "\\%c", *p);
        else if (*p >= 0x20 && *p < 0x7f)
            put(o, "%c", *p);
        else
            put(o, "\\u%04x", *p);
    }
    put(o, "\"");
}

bool charlm_config_write(const charlm_config *c, char *buf, size_t size)
{
    out_buf o = { .s = buf, .size = size };
    put(&o, "{\"format\":\"%s\",\"version\":%d", CONFIG_FORMAT, CONFIG_VERSION);
    put_str(&o, "model", cli_model_names[c->model]);
    put(&o, ",\"hidden\":%lld,\"layers\":%d", (long long)c->hidden, c->layers);
    put_num(&o, "dropout", c->dropout);
    put(&o, ",\"vocab\":[");
    for (int i = 0; i < c->vocab.size; i++)
        put(&o, "%s%d", i ? "," : "", c->vocab.byte[i]);
    put(&o, "]");
    put_str(&o, "optimizer", cli_optimizer_names[c->optimizer]);
    put_num(&o, "lr", c->lr);
    put_num(&o, "clip", c->clip);
    put_num(&o, "momentum", c->momentum);
    put_num(&o, "weight_decay", c->weight_decay);
    put_str(&o, "schedule", cli_schedule_names[c->schedule]);
    put(&o, ",\"warmup\":%lld", c->warmup);
    put(&o, ",\"seq_len\":%d,\"batch\":%d", c->seq_len, c->batch);
    put_num(&o, "val_frac", c->val_frac);
    put(&o, ",\"val_chars\":%lld", c->val_chars);
    put(&o, ",\"val_every\":%lld,\"total_steps\":%lld,\"seed\":%llu", c->val_every, c->total_steps, c->seed);
    put_str(&o, "data", c->data);
    put(&o, ",\"step\":%lld", c->step);
    put_num(&o, "loss", c->loss);
    put_num(&o, "val_loss", c->val_loss);
    put(&o, "}");
    return !o.full;
}

/* A reader for the JSON above, strict enough to refuse what it did not
 * write and never to read past the terminating NUL. */
typedef struct jp {
    const char *s;
} jp;

static void jp_ws(jp *p)
{
    while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')
        p->s++;
}

static bool jp_lit(jp *p, char c)
{
    jp_ws(p);
    if (*p->s != c)
        return false;
    p->s++;
    return true;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A string into out (size bytes with the NUL; NULL: skip). \u escapes
 * below 0x100 are single bytes, as put_str writes them. */
static bool jp_string(jp *p, char *out, size_t size)
{
    if (!jp_lit(p, '"'))
        return false;
    size_t n = 0;
    for (;;) {
        unsigned char ch = (unsigned char)*p->s;
        if (!ch || ch < 0x20)
            return false;
        p->s++;
        if (ch == '"')
            break;
        if (ch == '\\') {
            char e = *p->s;
            if (!e)
                return false;
            p->s++;
            switch (e) {
            case 'n': ch = '\n'; break;
            case 't': ch = '\t'; break;
            case 'r': ch = '\r'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case '"': case '\\': case '/': ch = (unsigned char)e; break;
            case 'u': {
                int v = 0;
                for (int k = 0; k < 4; k++) {
                    int h = hexval(p->s[k]);
                    if (h < 0)
                        return false;
                    v = v * 16 + h;
                }
                p->s += 4;
                if (v == 0 || v > 0xff)
                    return false;
                ch = (unsigned char)v;
                break;
            }
            default:
                return false;
            }
        }
        if (out) {
            if (n + 1 >= size)
                return false;
            out[n++] = (char)ch;
        }
    }
    if (out)
        out[n] = 0;
    return true;
}

/* A number; its text is [*begin, p->s). */
static bool jp_number(jp *p, double *v, const char **begin)
{
    jp_ws(p);
    *begin = p->s;
    char *end;
    errno = 0;
    *v = strtod(p->s, &end);
    if (end == p->s || errno == ERANGE)
        return false;
    p->s = end;
    return true;
}

static bool jp_skip(jp *p, int depth)
{
    jp_ws(p);
    if (depth > 16)
        return false;
    char c = *p->s;
    if (c == '"')
        return jp_string(p, NULL, 0);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        p->s++;
        if (jp_lit(p, close))
            return true;
        do {
            if (c == '{' && !(jp_string(p, NULL, 0) && jp_lit(p, ':')))
                return false;
            if (!jp_skip(p, depth + 1))
                return false;
        } while (jp_lit(p, ','));
        return jp_lit(p, close);
    }
    static const char *const words[] = { "null", "true", "false" };
    for (size_t i = 0; i < CLI_LEN(words); i++)
        if (strncmp(p->s, words[i], strlen(words[i])) == 0) {
            p->s += strlen(words[i]);
            return true;
        }
    double v;
    const char *b;
    return jp_number(p, &v, &b);
}

/* A number or null (NaN). */
static bool jp_double(jp *p, double *v)
{
    jp_ws(p);
    if (strncmp(p->s, "null", 4) == 0) {
        p->s += 4;
        *v = NAN;
        return true;
    }
    const char *b;
    return jp_number(p, v, &b) && isfinite(*v);
}

static bool jp_int(jp *p, long long lo, long long hi, long long *v)
{
    double d;
    const char *b;
    if (!jp_number(p, &d, &b))
        return false;
    char *end;
    errno = 0;
    long long x = strtoll(b, &end, 10);
    if (end != p->s || errno == ERANGE || x < lo || x > hi)
        return false;
    *v = x;
    return true;
}

static int jp_choice(jp *p, const char *const *names)
{
    char s[32];
    if (!jp_string(p, s, sizeof s))
        return -1;
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

#define WHY(...) (snprintf(why, why_size, __VA_ARGS__), false)

bool charlm_config_parse(charlm_config *c, const char *json, char *why, size_t why_size)
{
    memset(c, 0, sizeof *c);
    c->loss = c->val_loss = NAN;
    c->val_frac = 0.1;
    c->val_chars = 1 << 18; /* what loom train used before checkpoints kept it */
    c->seq_len = 64;
    c->batch = 32;
    c->lr = 2e-3;
    jp p = { json };
    bool format = false, have_model = false, have_hidden = false, have_layers = false, have_vocab = false;
    if (!jp_lit(&p, '{'))
        return WHY("the config is not a JSON object");
    if (jp_lit(&p, '}'))
        return WHY("the config is empty");
    do {
        char key[32];
        if (!jp_string(&p, key, sizeof key) || !jp_lit(&p, ':'))
            return WHY("the config is not valid JSON");
        long long v = 0;
        bool ok = true;
        if (strcmp(key, "format") == 0) {
            char f[32];
            ok = jp_string(&p, f, sizeof f);
            format = ok && strcmp(f, CONFIG_FORMAT) == 0;
        } else if (strcmp(key, "version") == 0) {
            ok = jp_int(&p, 1, 1000000, &v);
            if (ok && v > CONFIG_VERSION)
                return WHY("the config is of version %lld; this loom reads version %d", v, CONFIG_VERSION);
        } else if (strcmp(key, "model") == 0) {
            ok = (c->model = jp_choice(&p, cli_model_names)) >= 0;
            have_model = ok;
        } else if (strcmp(key, "optimizer") == 0) {
            ok = (c->optimizer = jp_choice(&p, cli_optimizer_names)) >= 0;
        } else if (strcmp(key, "schedule") == 0) {
            ok = (c->schedule = jp_choice(&p, cli_schedule_names)) >= 0;
        } else if (strcmp(key, "warmup") == 0) {
            ok = jp_int(&p, 0, INT64_MAX, &c->warmup);
        } else if (strcmp(key, "hidden") == 0) {
            ok = have_hidden = jp_int(&p, 1, 1 << 16, &v);
            c->hidden = v;
        } else if (strcmp(key, "layers") == 0) {
            ok = have_layers = jp_int(&p, 1, 64, &v);
            c->layers = (int)v;
        } else if (strcmp(key, "seq_len") == 0) {
            ok = jp_int(&p, 1, 1 << 20, &v);
            c->seq_len = (int)v;
        } else if (strcmp(key, "batch") == 0) {
            ok = jp_int(&p, 1, 1 << 20, &v);
            c->batch = (int)v;
        } else if (strcmp(key, "val_chars") == 0) {
            ok = jp_int(&p, 0, INT64_MAX, &c->val_chars);
        } else if (strcmp(key, "val_every") == 0) {
            ok = jp_int(&p, 1, INT64_MAX, &c->val_every);
        } else if (strcmp(key, "total_steps") == 0) {
            ok = jp_int(&p, 0, INT64_MAX, &c->total_steps);
        } else if (strcmp(key, "step") == 0) {
            ok = jp_int(&p, 0, INT64_MAX, &c->step);
        } else if (strcmp(key, "seed") == 0) {
            double d;
            const char *b;
            ok = jp_number(&p, &d, &b);
            c->seed = ok ? strtoull(b, NULL, 10) : 0;
        } else if (strcmp(key, "dropout") == 0) {
            ok = jp_double(&p, &c->dropout) && c->dropout >= 0 && c->dropout < 1;
        } else if (strcmp(key, "lr") == 0) {
            ok = jp_double(&p, &c->lr) && c->lr > 0;
        } else if (strcmp(key, "clip") == 0) {
            ok = jp_double(&p, &c->clip) && c->clip >= 0;
        } else if (strcmp(key, "momentum") == 0) {
            ok = jp_double(&p, &c->momentum) && c->momentum >= 0;
        } else if (strcmp(key, "weight_decay") == 0) {
            ok = jp_double(&p, &c->weight_decay) && c->weight_decay >= 0;
        } else if (strcmp(key, "val_frac") == 0) {
            ok = jp_double(&p, &c->val_frac) && c->val_frac >= 0 && c->val_frac < 1;
        } else if (strcmp(key, "loss") == 0) {
            ok = jp_double(&p, &c->loss);
        } else if (strcmp(key, "val_loss") == 0) {
            ok = jp_double(&p, &c->val_loss);
        } else if (strcmp(key, "data") == 0) {
            ok = jp_string(&p, c->data, sizeof c->data);
        } else if (strcmp(key, "vocab") == 0) {
            ok = jp_lit(&p, '[');
            c->vocab.size = 0;
            if (ok && !jp_lit(&p, ']')) {
                do {
                    if (c->vocab.size == 256 || !jp_int(&p, 0, 255, &v))
                        return WHY("the vocabulary is not a list of distinct bytes");
                    c->vocab.byte[c->vocab.size++] = (uint8_t)v;
                } while (jp_lit(&p, ','));
                ok = jp_lit(&p, ']');
            }
            if (ok && (c->vocab.size < 1 || !cli_vocab_index(&c->vocab)))
                return WHY("the vocabulary is not a list of distinct bytes");
            have_vocab = ok;
        } else {
            ok = jp_skip(&p, 0);
        }
        if (!ok)
            return WHY("the config's \"%s\" is not valid", key);
    } while (jp_lit(&p, ','));
    if (!jp_lit(&p, '}'))
        return WHY("the config is not valid JSON");
    jp_ws(&p);
    if (*p.s)
        return WHY("the config has text after its end");
    if (!format)
        return WHY("the config is not a loom char-LM config (no \"format\": \"%s\")", CONFIG_FORMAT);
    if (!have_model || !have_hidden || !have_layers || !have_vocab)
        return WHY("the config lacks \"%s\"", !have_model ? "model" : !have_hidden ? "hidden" : !have_layers ? "layers" : "vocab");
    return true;
}

char *cli_checkpoint_config(const char *cmd, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        cli_error(cmd, "cannot open checkpoint \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        cli_error(cmd, "checkpoint \"%s\" is a directory, not a .safetensors file", path);
        return NULL;
    }
    loom_ctx *ctx = loom_ctx_new(NULL);
    char *buf = malloc(CONFIG_MAX);
    bool ok = false;
    if (!ctx || !buf)
        cli_error(cmd, "out of memory");
    else if (loom_checkpoint_config(ctx, path, buf, CONFIG_MAX) != LOOM_OK)
        cli_error(cmd, "cannot read checkpoint \"%s\": %s", path, loom_errmsg(ctx));
    else if (!buf[0])
        cli_error(cmd, "\"%s\" has no model config in its metadata: it was not written by loom train", path);
    else
        ok = true;
    loom_ctx_free(ctx);
    if (!ok) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The bytes of the weight matrices a checkpoint of c holds at least: the
 * embedding and the head (V, H), each layer's input and hidden matrices
 * (gates H, H); biases aside. A double: a config may describe a model
 * that no size_t counts. */
static double charlm_weight_bytes(const charlm_config *c)
{
    static const double gates[CLI_MODEL_COUNT] = { 4, 3, 1 };
    double V = c->vocab.size, H = (double)c->hidden;
    return (double)sizeof(float) * (2 * V * H + 2 * (double)c->layers * gates[c->model] * H * H);
}

int charlm_config_load(charlm_config *c, const char *cmd, const char *path)
{
    char *json = cli_checkpoint_config(cmd, path);
    if (!json)
        return CLI_FAIL;
    char why[256];
    int rc = CLI_OK;
    struct stat st;
    if (!charlm_config_parse(c, json, why, sizeof why)) {
        cli_error(cmd, "checkpoint \"%s\": %s", path, why);
        rc = CLI_FAIL;
    } else if (stat(path, &st) == 0 && charlm_weight_bytes(c) > (double)st.st_size) {
        /* checked before the model is built: a damaged config must not
         * make a command allocate and initialise gigabytes for a file of
         * kilobytes before the load finds the weights missing */
        cli_error(cmd, "checkpoint \"%s\": its config describes a model of %.0f bytes of weights, more than the "
                  "file's %lld bytes (a damaged config?)", path, charlm_weight_bytes(c), (long long)st.st_size);
        rc = CLI_FAIL;
    }
    free(json);
    return rc;
}

bool cli_config_model(const char *json, char *model, size_t size)
{
    jp p = { json };
    model[0] = 0;
    if (!jp_lit(&p, '{') || jp_lit(&p, '}'))
        return false;
    do {
        char key[32];
        if (!jp_string(&p, key, sizeof key) || !jp_lit(&p, ':'))
            return false;
        if (strcmp(key, "model") == 0)
            return jp_string(&p, model, size);
        if (!jp_skip(&p, 0))
            return false;
    } while (jp_lit(&p, ','));
    return false;
}

/* ------------------------------------------------------------------ */
/* The forecaster's config (examples/forecast.c)                      */
/* ------------------------------------------------------------------ */

bool forecast_config_parse(forecast_config *c, const char *json, char *why, size_t why_size)
{
    memset(c, 0, sizeof *c);
    jp p = { json };
    bool model = false, cell = false, mean = false, std = false, window = false, hidden = false;
    if (!jp_lit(&p, '{'))
        return WHY("the config is not a JSON object");
    if (jp_lit(&p, '}'))
        return WHY("the config is empty");
    do {
        char key[32];
        if (!jp_string(&p, key, sizeof key) || !jp_lit(&p, ':'))
            return WHY("the config is not valid JSON");
        long long v = 0;
        bool ok = true;
        if (strcmp(key, "model") == 0) {
            char m[32];
            ok = model = jp_string(&p, m, sizeof m) && strcmp(m, FORECAST_MODEL) == 0;
        } else if (strcmp(key, "cell") == 0) {
            c->cell = jp_choice(&p, cli_model_names);
            ok = cell = c->cell == CLI_MODEL_LSTM || c->cell == CLI_MODEL_GRU;
        } else if (strcmp(key, "mean") == 0) {
            ok = mean = jp_double(&p, &c->mean) && isfinite(c->mean);
        } else if (strcmp(key, "std") == 0) {
            ok = std = jp_double(&p, &c->std) && isfinite(c->std) && c->std > 0;
        } else if (strcmp(key, "window") == 0) {
            ok = window = jp_int(&p, 1, 1 << 16, &v);
            c->window = v;
        } else if (strcmp(key, "hidden") == 0) {
            ok = hidden = jp_int(&p, 1, 1 << 16, &v);
            c->hidden = v;
        } else if (strcmp(key, "season") == 0) {
            ok = jp_int(&p, 1, 1 << 16, &v);
            c->season = v;
        } else {
            ok = jp_skip(&p, 0);
        }
        if (!ok)
            return WHY("the config's \"%s\" is not valid%s", key,
                       !strcmp(key, "cell") ? " (lstm or gru)" : !strcmp(key, "std") ? " (a number > 0)" : "");
    } while (jp_lit(&p, ','));
    if (!jp_lit(&p, '}'))
        return WHY("the config is not valid JSON");
    jp_ws(&p);
    if (*p.s)
        return WHY("the config has text after its end");
    if (!model)
        return WHY("the config is not a forecaster's (no \"model\": \"%s\")", FORECAST_MODEL);
    if (!cell || !mean || !std || !window || !hidden)
        return WHY("the config lacks \"%s\"",
                   !cell ? "cell" : !mean ? "mean" : !std ? "std" : !window ? "window" : "hidden");
    return true;
}

/* ------------------------------------------------------------------ */
/* The model                                                          */
/* ------------------------------------------------------------------ */

static int loom_fail(loom_ctx *ctx, const char *cmd, const char *what)
{
    cli_error(cmd, "%s: %s", what, ctx ? loom_errmsg(ctx) : "cannot make a loom context (out of memory)");
    return CLI_FAIL;
}

int charlm_new(charlm *m, const charlm_config *cfg, uint64_t seed, int threads, const char *cmd)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->ctx = loom_ctx_new(&(loom_options){ .seed = seed, .threads = threads });
    if (!m->ctx)
        return loom_fail(NULL, cmd, "building the model");
    loom_ctx *ctx = m->ctx;
    int64_t V = cfg->vocab.size, H = cfg->hidden;
    static const loom_rnn_mode modes[CLI_MODEL_COUNT] = { LOOM_LSTM, LOOM_GRU, LOOM_RNN_TANH };
    loom_embedding_init(ctx, &m->emb, "emb", V, H, LOOM_F32);
    m->rnn = loom_rnn_new(ctx, "rnn",
                          &(loom_rnn_config){ .mode = modes[cfg->model], .input_size = H, .hidden_size = H,
                                              .num_layers = cfg->layers, .dropout = cfg->dropout });
    loom_linear_init(ctx, &m->head, "head", H, V, true, LOOM_F32);
    if (loom_failed(ctx))
        return loom_fail(ctx, cmd, "building the model");
    return CLI_OK;
}

void charlm_free(charlm *m)
{
    if (!m)
        return;
    loom_rnn_free(m->rnn);
    loom_ctx_free(m->ctx);
    memset(m, 0, sizeof *m);
}

int charlm_state_new(charlm *m, charlm_tape *tp, const char *prefix, int T, int B, const char *cmd)
{
    memset(tp, 0, sizeof *tp);
    tp->T = T;
    tp->B = B;
    char name[64];
    loom_shape s = LOOM_SHAPE(m->cfg.layers, B, m->cfg.hidden);
    snprintf(name, sizeof name, "%s.h", prefix);
    tp->h = loom_buffer(m->ctx, name, LOOM_F32, s);
    if (m->cfg.model == CLI_MODEL_LSTM) {
        snprintf(name, sizeof name, "%s.c", prefix);
        tp->c = loom_buffer(m->ctx, name, LOOM_F32, s);
    }
    if (loom_failed(m->ctx))
        return loom_fail(m->ctx, cmd, "making the state");
    return CLI_OK;
}

int charlm_record(charlm *m, charlm_tape *tp, bool training, loom_optimizer *opt, const char *cmd)
{
    loom_ctx *ctx = m->ctx;
    int64_t T = tp->T, B = tp->B, H = m->cfg.hidden;
    double p = training ? m->cfg.dropout : 0;
    tp->ids = loom_input(ctx, "ids", LOOM_I32, LOOM_SHAPE(T, B));
    tp->targets = loom_input(ctx, "targets", LOOM_I32, LOOM_SHAPE(T * B));
    loom_t x = loom_embedding_forward(ctx, &m->emb, tp->ids); /* [T, B, H] */
    if (p > 0)
        x = loom_dropout(ctx, x, p, true);
    loom_rnn_state init = { tp->h, tp->c }, fin = { LOOM_NULL, LOOM_NULL };
    loom_t out; /* [T, B, H] */
    loom_rnn_forward(ctx, m->rnn, x, &init, LOOM_NULL, training, &out, &fin);
    if (p > 0)
        out = loom_dropout(ctx, out, p, true);
    tp->logits = loom_linear_forward(ctx, &m->head, loom_reshape(ctx, out, LOOM_SHAPE(T * B, H)));
    if (training)
        tp->loss = loom_cross_entropy(ctx, tp->logits, tp->targets);
    else
        tp->loss = loom_cross_entropy_ex(
            ctx, tp->logits, tp->targets,
            &(loom_ce_options){ .reduction = LOOM_REDUCE_SUM, .use_ignore_index = true, .ignore_index = -1 });
    /* the buffers are leaves: the gradient stops at them, the value goes
     * on to the next run */
    loom_assign(ctx, tp->h, fin.h);
    if (!loom_is_null(tp->c))
        loom_assign(ctx, tp->c, fin.c);
    if (training && opt)
        loom_optimizer_attach(ctx, opt, tp->loss);
    if (loom_failed(ctx))
        return loom_fail(ctx, cmd, "recording the model");
    return CLI_OK;
}

int charlm_state_zero(charlm *m, charlm_tape *tp, const char *cmd)
{
    loom_t bufs[2] = { tp->h, tp->c };
    for (int i = 0; i < 2; i++) {
        if (loom_is_null(bufs[i]))
            continue;
        void *d = loom_param_data(m->ctx, bufs[i]);
        if (!d)
            return loom_fail(m->ctx, cmd, "resetting the state");
        memset(d, 0, (size_t)(m->cfg.layers * tp->B * m->cfg.hidden) * sizeof(float));
    }
    return CLI_OK;
}

static bool is_weight(const char *name)
{
    return strncmp(name, "emb.", 4) == 0 || strncmp(name, "rnn.", 4) == 0 || strncmp(name, "head.", 5) == 0;
}

int charlm_copy_weights(charlm *dst, loom_ctx *src, const char *cmd)
{
    size_t n = loom_param_count(dst->ctx);
    for (size_t i = 0; i < n; i++) {
        loom_t p = loom_param_at(dst->ctx, i);
        const char *name = loom_param_name(dst->ctx, p);
        if (!name || !is_weight(name))
            continue;
        loom_t q = loom_param_find(src, name);
        const void *data = loom_is_null(q) ? NULL : loom_param_data(src, q);
        if (!data) {
            cli_error(cmd, "copying the weights: no parameter \"%s\" to copy", name);
            return CLI_FAIL;
        }
        size_t bytes = (size_t)loom_shape_numel(loom_shape_of(dst->ctx, p)) * loom_dtype_size(loom_dtype_of(dst->ctx, p));
        if (loom_param_set(dst->ctx, p, data, bytes) != LOOM_OK)
            return loom_fail(dst->ctx, cmd, "copying the weights");
    }
    return CLI_OK;
}

int charlm_open(charlm *m, const char *path, int threads, const char *cmd)
{
    charlm_config cfg;
    memset(m, 0, sizeof *m);
    if (charlm_config_load(&cfg, cmd, path) != CLI_OK)
        return CLI_FAIL;
    if (charlm_new(m, &cfg, cfg.seed, threads, cmd) != CLI_OK)
        return CLI_FAIL;
    /* the weights only: the file also holds the optimizer's moments and
     * the training state, which sampling and evaluation do not use */
    if (loom_checkpoint_load(m->ctx, path, NULL, LOOM_LOAD_ALLOW_UNEXPECTED) != LOOM_OK) {
        cli_error(cmd, "cannot load checkpoint \"%s\": %s", path, loom_errmsg(m->ctx));
        charlm_free(m);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* ------------------------------------------------------------------ */
/* Evaluation                                                         */
/* ------------------------------------------------------------------ */

int charlm_eval_batch(size_t n, int T, int max)
{
    size_t b = n > 1 ? (n - 1) / (4 * (size_t)T) : 1;
    return b < 1 ? 1 : b > (size_t)max ? max : (int)b;
}

double charlm_evaluate(charlm *m, charlm_tape *tp, const uint8_t *ids, size_t n, size_t *count, const char *cmd)
{
    *count = 0;
    cli_streams s;
    cli_streams_init(&s, ids, n, tp->B, tp->T, false);
    size_t cells = (size_t)tp->T * (size_t)tp->B;
    int32_t *x = malloc(cells * sizeof *x), *y = malloc(cells * sizeof *y); /* [T, B], [T * B] */
    double total = 0;
    bool ok = x && y && charlm_state_zero(m, tp, cmd) == CLI_OK;
    if (!x || !y)
        cli_error(cmd, "out of memory");
    for (size_t k = 0; ok && k < s.chunks; k++) {
        *count += cli_streams_chunk(&s, k, x, y);
        loom_feed(m->ctx, tp->ids, x, cells * sizeof *x);
        loom_feed(m->ctx, tp->targets, y, cells * sizeof *y);
        if (loom_run(m->ctx, 1, &tp->loss) != LOOM_OK) {
            loom_fail(m->ctx, cmd, "evaluating");
            ok = false;
        } else {
            total += loom_item(m->ctx, tp->loss);
        }
    }
    free(x);
    free(y);
    if (!ok)
        return NAN;
    return *count ? total / (double)*count : NAN;
}
