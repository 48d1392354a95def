/*
 * checkpoint.c — libFuzzer target: the safetensors checkpoint reader
 * (frontend/checkpoint.c) and the JSON reader under it (frontend/json.c),
 * plus the `loom` commands' config reader (charlm_config_parse), on
 * arbitrary bytes.
 *
 * Every input is used three ways:
 *   - as a JSON text: json_parse; a parsed document is written back with
 *     json.h's writers and parsed again, and must come back the same;
 *   - as a checkpoint file: loom_checkpoint_config (and the config it
 *     returns through the commands' config readers, and charlm_open, which
 *     builds the model a config describes and loads the weights into it,
 *     as `loom sample` does), then
 *     loom_checkpoint_load into the tiny model of tiny.h with the flags
 *     loom's programs use (a resumed run: strict with the optimizer, or
 *     missing and unexpected allowed; sampling: unexpected allowed, no
 *     optimizer). A failed load must leave every parameter and the
 *     optimizer's step as they were (loom.h promises it);
 *   - as a config string: the commands' config readers (cli/model.c).
 */
#include "fuzz.h"

#include "json.h"
#include "tiny.h"

static charlm model;
static charlm_tape tape;
static loom_optimizer *opt;

typedef struct snapshot {
    size_t n;
    void **data;
    size_t *bytes;
    unsigned char *copy; /* every parameter's bytes, in order */
    size_t total;
} snapshot;

static snapshot snap;

/* ------------------------------------------------------------------ */
/* JSON                                                               */
/* ------------------------------------------------------------------ */

static void json_write(json_buf *b, const json_doc *d, const json_val *v)
{
    const char *key;
    switch (v->type) {
    case JSON_NULL: json_puts(b, "null"); break;
    case JSON_FALSE: json_puts(b, "false"); break;
    case JSON_TRUE: json_puts(b, "true"); break;
    case JSON_NUMBER: json_put(b, json_text(d, v), v->n); break;
    case JSON_STRING: json_put_string(b, json_text(d, v), v->n); break;
    case JSON_ARRAY:
        json_puts(b, "[");
        for (uint32_t i = 0; i < v->n; i++) {
            if (i)
                json_puts(b, ",");
            json_write(b, d, json_item(d, v, i));
        }
        json_puts(b, "]");
        break;
    case JSON_OBJECT:
        json_puts(b, "{");
        for (uint32_t i = 0; i < v->n; i++) {
            const json_val *m = json_member(d, v, i, &key);
            if (i)
                json_puts(b, ",");
            json_put_string(b, key, strlen(key));
            json_puts(b, ":");
            json_write(b, d, m);
        }
        json_puts(b, "}");
        break;
    }
}

static void json_same(const json_doc *a, const json_val *x, const json_doc *b, const json_val *y)
{
    FZ_CHECK(x && y && x->type == y->type && x->n == y->n, "the document changed in a round trip");
    const char *kx, *ky;
    switch (x->type) {
    case JSON_NUMBER:
    case JSON_STRING:
        FZ_CHECK(memcmp(json_text(a, x), json_text(b, y), x->n) == 0, "a string or number changed in a round trip");
        FZ_CHECK(strlen(json_text(a, x)) == x->n, "a decoded string holds a NUL");
        if (x->type == JSON_STRING)
            FZ_CHECK(json_utf8_valid(json_text(a, x), x->n), "a decoded string is not UTF-8");
        if (x->type == JSON_NUMBER) {
            int64_t i;
            (void)json_int64(a, x, &i);
        }
        break;
    case JSON_ARRAY:
        for (uint32_t i = 0; i < x->n; i++)
            json_same(a, json_item(a, x, i), b, json_item(b, y, i));
        break;
    case JSON_OBJECT:
        for (uint32_t i = 0; i < x->n; i++) {
            const json_val *vx = json_member(a, x, i, &kx), *vy = json_member(b, y, i, &ky);
            FZ_CHECK(strcmp(kx, ky) == 0, "a key changed in a round trip");
            FZ_CHECK(json_get(a, x, kx) != NULL, "json_get misses a key of the object");
            json_same(a, vx, b, vy);
        }
        break;
    default:
        break;
    }
}

static void fuzz_json(const uint8_t *data, size_t size)
{
    lm_err err = { 0 };
    lm_mem mem = { .fn = lm_default_alloc, .err = &err };
    json_doc doc, again;
    char msg[200];
    loom_code c = json_parse(&doc, &mem, (const char *)data, size, msg, sizeof msg);
    FZ_CHECK(c == LOOM_OK || c == LOOM_ERR_FORMAT, "json_parse returned %s", loom_code_name(c));
    FZ_CHECK((c == LOOM_OK) == (json_root(&doc) != NULL), "a root without success, or no root after it");
    if (c == LOOM_OK) {
        json_buf b = { .mem = &mem };
        json_write(&b, &doc, json_root(&doc));
        FZ_CHECK(!b.nomem, "writing the document back ran out of memory");
        c = json_parse(&again, &mem, b.s, b.len, msg, sizeof msg);
        FZ_CHECK(c == LOOM_OK, "the document written back does not parse: %s\n%s", msg, b.s);
        json_same(&doc, json_root(&doc), &again, json_root(&again));
        json_free(&again);
        json_buf_free(&b);
    } else {
        FZ_CHECK(strncmp(msg, "at byte ", 8) == 0, "a parse error without its position: \"%s\"", msg);
    }
    json_free(&doc);
}

/* ------------------------------------------------------------------ */
/* The model's parameters, before and after a load                    */
/* ------------------------------------------------------------------ */

static void snapshot_init(loom_ctx *ctx)
{
    snap.n = loom_param_count(ctx);
    snap.data = calloc(snap.n, sizeof *snap.data);
    snap.bytes = calloc(snap.n, sizeof *snap.bytes);
    if (!snap.data || !snap.bytes)
        fz_die("fuzz: calloc");
    for (size_t i = 0; i < snap.n; i++) {
        loom_t p = loom_param_at(ctx, i);
        snap.data[i] = loom_param_data(ctx, p);
        snap.bytes[i] = (size_t)loom_shape_numel(loom_shape_of(ctx, p)) * loom_dtype_size(loom_dtype_of(ctx, p));
        snap.total += snap.bytes[i];
    }
    if (!(snap.copy = malloc(snap.total ? snap.total : 1)))
        fz_die("fuzz: malloc");
}

static void snapshot_take(void)
{
    for (size_t i = 0, at = 0; i < snap.n; at += snap.bytes[i++])
        memcpy(snap.copy + at, snap.data[i], snap.bytes[i]);
}

static bool snapshot_same(void)
{
    for (size_t i = 0, at = 0; i < snap.n; at += snap.bytes[i++])
        if (memcmp(snap.copy + at, snap.data[i], snap.bytes[i]) != 0)
            return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* The target                                                         */
/* ------------------------------------------------------------------ */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (fz_tiny_new(&model, &tape, &opt) != CLI_OK)
        abort();
    snapshot_init(model.ctx);
    return 0;
}

/* A checkpoint's config as the commands read it: which model it is for
 * (`loom export`), then as a character model's or a forecaster's. */
static void parse_configs(const char *json)
{
    char model[64], why[256];
    charlm_config cc;
    forecast_config fc;
    if (cli_config_model(json, model, sizeof model))
        FZ_CHECK(strlen(model) < sizeof model, "cli_config_model");
    if (charlm_config_parse(&cc, json, why, sizeof why))
        FZ_CHECK(cc.vocab.size >= 1 && cc.vocab.size <= 256 && cc.hidden >= 1 && cc.layers >= 1 && cc.model >= 0 &&
                     cc.model < CLI_MODEL_COUNT,
                 "charlm_config_parse accepted a model it cannot build");
    else
        FZ_CHECK(why[0], "charlm_config_parse failed without a reason");
    if (forecast_config_parse(&fc, json, why, sizeof why))
        FZ_CHECK(fc.window >= 1 && fc.hidden >= 1 && fc.std > 0, "forecast_config_parse accepted a bad config");
    else
        FZ_CHECK(why[0], "forecast_config_parse failed without a reason");
}

static void check_failure(loom_ctx *ctx, loom_code c, const char *what)
{
    FZ_CHECK(c == LOOM_ERR_FORMAT || c == LOOM_ERR_IO || c == LOOM_ERR_ARG || c == LOOM_ERR_NOMEM,
             "%s: %s (%s)", what, loom_code_name(c), loom_errmsg(ctx));
    FZ_CHECK(loom_status(ctx) == c && loom_errmsg(ctx)[0], "%s: %s without a message", what, loom_code_name(c));
    loom_clear_error(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char config[1 << 16], text[1 << 16];
    loom_ctx *ctx = model.ctx;
    charlm_config cfg;
    char why[256];

    fuzz_json(data, size);

    const char *path = fz_file(data, size);
    loom_code c = loom_checkpoint_config(ctx, path, config, sizeof config);
    if (c == LOOM_OK) {
        FZ_CHECK(memchr(config, 0, sizeof config) != NULL, "the config is not NUL-terminated");
        parse_configs(config);
        /* as `loom sample` and `loom eval` open a checkpoint: its config
         * builds the model the weights are then loaded into */
        if (config[0] && charlm_config_parse(&cfg, config, why, sizeof why)) {
            charlm m;
            if (charlm_open(&m, path, 1, "fuzz") == CLI_OK)
                charlm_free(&m);
        }
    } else {
        check_failure(ctx, c, "loom_checkpoint_config");
    }

    static const struct {
        bool opt;
        unsigned flags;
    } loads[] = {
        { true, LOOM_LOAD_STRICT },                                      /* loom train --resume */
        { true, LOOM_LOAD_ALLOW_MISSING | LOOM_LOAD_ALLOW_UNEXPECTED }, /* ... another --batch */
        { false, LOOM_LOAD_ALLOW_UNEXPECTED },                           /* loom sample, eval */
    };
    for (size_t i = 0; i < sizeof loads / sizeof loads[0]; i++) {
        int64_t steps = loom_optimizer_steps(opt);
        snapshot_take();
        c = loom_checkpoint_load(ctx, path, loads[i].opt ? opt : NULL, loads[i].flags);
        if (c != LOOM_OK) {
            check_failure(ctx, c, "loom_checkpoint_load");
            FZ_CHECK(snapshot_same(), "a failed load changed a parameter");
            FZ_CHECK(loom_optimizer_steps(opt) == steps, "a failed load changed the optimizer's step");
        }
    }

    /* the input as a config string, as a checkpoint's metadata holds it */
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = 0;
    parse_configs(text);
    return 0;
}
