/*
 * test_checkpoint.c — checkpoints (frontend/checkpoint.c): bit-exact round
 * trips of every dtype and odd shape, the config and step metadata,
 * resuming a run with the same random numbers, a file written by PyTorch,
 * load flags, every kind of corrupt file refused with the context left as
 * it was, atomic saving, a mutation fuzz loop, and allocation failure at
 * every point of save and load.
 *
 * Files go to a fresh directory under $TMPDIR (or /tmp), removed at the
 * end. Contexts use the reference backend except in the resume test,
 * which runs the JIT as a training run would.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fe.h"
#include "json.h"

#include "fixtures/torch_lstm_expected.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                            */
/* ------------------------------------------------------------------ */

static char g_dir[256]; /* the suite's scratch directory */

/* A path in the scratch directory (one of a few rotating buffers). */
static const char *tmp_path(const char *name)
{
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", g_dir, name);
    return b;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_all(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* A safetensors file from a header of hlen bytes (-1: strlen) and data. */
static void write_st(const char *path, const char *header, long hlen, const void *data, size_t n)
{
    size_t h = hlen < 0 ? strlen(header) : (size_t)hlen;
    unsigned char *b = malloc(8 + h + n + 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    memcpy(b + 8 + h, data, n);
    write_all(path, b, 8 + h + n);
    free(b);
}

static loom_ctx *ref_ctx(uint64_t seed)
{
    loom_options o = { .seed = seed, .backend = LOOM_BACKEND_REFERENCE };
    loom_ctx *ctx = loom_ctx_new(&o);
    assert_non_null(ctx);
    return ctx;
}

/* Everything a load may change: parameter bytes and the random state. */
typedef struct snapshot {
    unsigned char *bytes;
    size_t len;
    uint64_t seed, runs;
    lm_rng host;
} snapshot;

static snapshot snap(loom_ctx *ctx)
{
    snapshot s = { .seed = ctx->seed, .runs = ctx->runs, .host = ctx->host_rng };
    for (size_t i = 0; i < ctx->nparams; i++)
        s.len += ctx->params[i].bytes;
    s.bytes = malloc(s.len + 1);
    size_t at = 0;
    for (size_t i = 0; i < ctx->nparams; i++) {
        memcpy(s.bytes + at, ctx->params[i].data, ctx->params[i].bytes);
        at += ctx->params[i].bytes;
    }
    return s;
}

static void assert_unchanged(loom_ctx *ctx, const snapshot *a, const char *what)
{
    snapshot b = snap(ctx);
    bool same = a->len == b.len && memcmp(a->bytes, b.bytes, a->len) == 0 && a->seed == b.seed &&
                a->runs == b.runs && memcmp(&a->host, &b.host, sizeof a->host) == 0;
    free(b.bytes);
    if (!same)
        fail_msg("%s: a refused load changed the context", what);
}

/* Files named like a save's temporaries left in the scratch directory. */
static int count_temporaries(void)
{
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* Parameters and buffers of every dtype, a scalar, empty tensors, rank 8. */
static const struct model_param {
    const char *name;
    loom_dtype dt;
    loom_shape shape;
    bool buffer;
} k_model[] = {
    { "enc.weight", LOOM_F32, LOOM_SHAPE(3, 5), false },
    { "enc.bias", LOOM_F64, LOOM_SHAPE(5), false },
    { "table \"ids\"\\ \xc3\xa9", LOOM_I32, LOOM_SHAPE(2, 1, 3), false },
    { "scale", LOOM_F32, LOOM_SCALAR, false },
    { "empty32", LOOM_F32, LOOM_SHAPE(0, 4), false },
    { "empty64", LOOM_F64, LOOM_SHAPE(2, 0), false },
    { "stats.count", LOOM_I32, LOOM_SCALAR, true },
    { "stats.mean", LOOM_F64, LOOM_SHAPE(1, 1, 1, 1, 1, 1, 1, 3), true },
};

/* The model's parameters, made in order (or in reverse, left at zero).
 * Values differ per seed and hold floats whose bits a lossy copy would
 * change: a NaN payload, -0, subnormals, -inf. */
static void add_model(loom_ctx *ctx, uint32_t seed, bool reverse)
{
    size_t n = LM_ARRAY_LEN(k_model);
    for (size_t i = 0; i < n; i++) {
        const struct model_param *m = &k_model[reverse ? n - 1 - i : i];
        (m->buffer ? loom_buffer : loom_param)(ctx, m->name, m->dt, m->shape);
    }
    TU_OK(ctx);
    if (reverse)
        return;
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t *d = ctx->params[i].data; /* 32-bit words of any dtype */
        for (size_t k = 0; k < ctx->params[i].bytes / 4; k++)
            d[k] = (x = x * 1664525u + 1013904223u);
    }
    uint32_t *w = ctx->params[0].data;
    w[0] = 0x7fc12345u, w[1] = 0x80000000u, w[2] = 0x00000001u, w[3] = 0xff800000u;
    ((double *)ctx->params[1].data)[4] = 0x1p-1074;
}

static void assert_params_equal(loom_ctx *a, loom_ctx *b)
{
    assert_int_equal(loom_param_count(a), loom_param_count(b));
    for (size_t i = 0; i < loom_param_count(a); i++) {
        loom_t pa = loom_param_at(a, i);
        const char *name = loom_param_name(a, pa);
        loom_t pb = loom_param_find(b, name);
        assert_false(loom_is_null(pb));
        size_t n = a->params[i].bytes;
        if (n && memcmp(loom_param_data(a, pa), loom_param_data(b, pb), n) != 0)
            fail_msg("parameter \"%s\" differs after the round trip", name);
    }
}

/* Parses a checkpoint's header with the frontend's own reader. */
static void parse_header(const unsigned char *file, size_t len, json_doc *doc, lm_mem *mem, size_t *data_at)
{
    uint64_t h;
    memcpy(&h, file, 8);
    assert_true(h + 8 <= len);
    char err[200];
    if (json_parse(doc, mem, (const char *)file + 8, (size_t)h, err, sizeof err) != LOOM_OK)
        fail_msg("header: %s", err);
    *data_at = 8 + (size_t)h;
}

/* ------------------------------------------------------------------ */
/* Round trips and metadata                                           */
/* ------------------------------------------------------------------ */

static const char k_config[] = "{\"name\": \"run \\\"7\\\"\", \"path\": \"C:\\\\tmp\\\\x\",\n"
                               "\t\"note\": \"caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80\", \"ctl\": \"\x01\x1f\"}\n";

static void test_checkpoint_round_trip_bit_exact(void **state)
{
    (void)state;
    loom_ctx *a = ref_ctx(11), *b = ref_ctx(22);
    add_model(a, 5, false);
    add_model(b, 0, true);
    const char *path = tmp_path("round.safetensors");
    assert_int_equal(loom_checkpoint_save(a, path, NULL, k_config), LOOM_OK);
    assert_int_equal(count_temporaries(), 0);
    assert_int_equal(loom_checkpoint_load(b, path, NULL, LOOM_LOAD_STRICT), LOOM_OK);
    TU_OK(b);
    assert_params_equal(a, b);
    assert_true(b->seed == a->seed && b->runs == a->runs);
    assert_memory_equal(&b->host_rng, &a->host_rng, sizeof a->host_rng);

    char cfg[512];
    assert_int_equal(loom_checkpoint_config(b, path, cfg, sizeof cfg), LOOM_OK);
    assert_string_equal(cfg, k_config);

    /* equal contexts give equal files, whatever order their parameters
     * were made in */
    const char *again = tmp_path("round2.safetensors");
    assert_int_equal(loom_checkpoint_save(b, again, NULL, k_config), LOOM_OK);
    size_t n1, n2;
    unsigned char *f1 = read_all(path, &n1), *f2 = read_all(again, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(f1, f2, n1);
    free(f2);

    /* the layout: metadata as documented, data 8-aligned, tensors packed
     * in order with each aligned to its element size */
    lm_mem mem = { .fn = lm_default_alloc };
    json_doc doc;
    size_t data_at;
    parse_header(f1, n1, &doc, &mem, &data_at);
    assert_int_equal(data_at % 8, 0);
    const json_val *root = json_root(&doc), *meta = json_get(&doc, root, "__metadata__");
    assert_string_equal(json_text(&doc, json_get(&doc, meta, "format")), "loom");
    assert_string_equal(json_text(&doc, json_get(&doc, meta, "format_version")), "1");
    assert_string_equal(json_text(&doc, json_get(&doc, meta, "step")), "0");
    assert_string_equal(json_text(&doc, json_get(&doc, meta, "config")), k_config);
    assert_non_null(json_get(&doc, meta, "rng"));
    assert_int_equal(strlen(json_text(&doc, json_get(&doc, meta, "checksum"))), 21);
    assert_int_equal(root->n, 1 + loom_param_count(a));
    uint64_t covered = 0;
    for (size_t i = 0; i < root->n; i++) {
        const char *name;
        const json_val *t = json_member(&doc, root, i, &name);
        if (!strcmp(name, "__metadata__"))
            continue;
        int64_t begin, end;
        const json_val *offs = json_get(&doc, t, "data_offsets");
        assert_true(json_int64(&doc, json_item(&doc, offs, 0), &begin));
        assert_true(json_int64(&doc, json_item(&doc, offs, 1), &end));
        size_t es = !strcmp(json_text(&doc, json_get(&doc, t, "dtype")), "F64") ? 8 : 4;
        assert_int_equal((uint64_t)begin, covered);
        assert_int_equal((data_at + (size_t)begin) % es, 0);
        covered = (uint64_t)end;
    }
    assert_int_equal(data_at + covered, n1);
    json_free(&doc);
    free(f1);
    loom_ctx_free(a);
    loom_ctx_free(b);
}

static void test_checkpoint_config_absent_small_buffer_and_bad_utf8(void **state)
{
    (void)state;
    loom_ctx *ctx = ref_ctx(1);
    loom_param(ctx, "p", LOOM_F32, LOOM_SHAPE(2));
    const char *path = tmp_path("config.safetensors");
    assert_int_equal(loom_checkpoint_save(ctx, path, NULL, NULL), LOOM_OK);
    char cfg[8] = "junk";
    assert_int_equal(loom_checkpoint_config(ctx, path, cfg, sizeof cfg), LOOM_OK);
    assert_string_equal(cfg, ""); /* no config: an empty string */

    assert_int_equal(loom_checkpoint_save(ctx, path, NULL, "{\"a\": 12345}"), LOOM_OK);
    assert_int_equal(loom_checkpoint_config(ctx, path, cfg, sizeof cfg), LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "12 bytes", path);
    assert_string_equal(cfg, "");
    loom_clear_error(ctx);
    assert_int_equal(loom_checkpoint_config(ctx, path, cfg, 0), LOOM_ERR_ARG);
    loom_clear_error(ctx);
    char exact[13];
    assert_int_equal(loom_checkpoint_config(ctx, path, exact, sizeof exact), LOOM_OK);
    assert_string_equal(exact, "{\"a\": 12345}");

    /* a header must be UTF-8: a config that is not is refused, and the
     * file is left as it was */
    assert_int_equal(loom_checkpoint_save(ctx, path, NULL, "caf\xe9"), LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "UTF-8", NULL);
    loom_clear_error(ctx);
    assert_int_equal(loom_checkpoint_config(ctx, path, exact, sizeof exact), LOOM_OK);
    assert_string_equal(exact, "{\"a\": 12345}");
    loom_ctx_free(ctx);
}

static void test_checkpoint_flags_missing_and_unexpected(void **state)
{
    (void)state;
    loom_ctx *src = ref_ctx(1), *dst = ref_ctx(2);
    loom_t a = loom_param(src, "a", LOOM_F32, LOOM_SHAPE(2));
    loom_param(src, "b", LOOM_F32, LOOM_SHAPE(2));
    loom_param_init_const(src, a, 3);
    const char *path = tmp_path("flags.safetensors");
    assert_int_equal(loom_checkpoint_save(src, path, NULL, NULL), LOOM_OK);

    loom_t da = loom_param(dst, "a", LOOM_F32, LOOM_SHAPE(2)), dc = loom_param(dst, "c", LOOM_F32, LOOM_SHAPE(2));
    loom_param_init_const(dst, dc, 7);
    snapshot before = snap(dst);
    assert_int_equal(loom_checkpoint_load(dst, path, NULL, LOOM_LOAD_STRICT), LOOM_ERR_FORMAT);
    tu_assert_error(dst, LOOM_ERR_FORMAT, "unexpected tensor \"b\"", path);
    loom_clear_error(dst);
    assert_int_equal(loom_checkpoint_load(dst, path, NULL, LOOM_LOAD_ALLOW_UNEXPECTED), LOOM_ERR_FORMAT);
    tu_assert_error(dst, LOOM_ERR_FORMAT, "parameter \"c\"", "missing");
    loom_clear_error(dst);
    assert_int_equal(loom_checkpoint_load(dst, path, NULL, LOOM_LOAD_ALLOW_MISSING), LOOM_ERR_FORMAT);
    tu_assert_error(dst, LOOM_ERR_FORMAT, "unexpected tensor \"b\"", NULL);
    loom_clear_error(dst);
    assert_unchanged(dst, &before, "flags");
    assert_int_equal(loom_checkpoint_load(dst, path, NULL, LOOM_LOAD_ALLOW_MISSING | LOOM_LOAD_ALLOW_UNEXPECTED),
                     LOOM_OK);
    assert_true(((float *)loom_param_data(dst, da))[1] == 3 && ((float *)loom_param_data(dst, dc))[1] == 7);
    assert_int_equal(loom_checkpoint_load(dst, path, NULL, 4), LOOM_ERR_ARG);
    loom_clear_error(dst);
    free(before.bytes);
    loom_ctx_free(src);
    loom_ctx_free(dst);
}

static void test_checkpoint_bad_arguments_and_sticky_error(void **state)
{
    (void)state;
    loom_ctx *ctx = ref_ctx(1);
    char buf[8];
    assert_int_equal(loom_checkpoint_save(NULL, "x", NULL, NULL), LOOM_ERR_HANDLE);
    assert_int_equal(loom_checkpoint_load(NULL, "x", NULL, 0), LOOM_ERR_HANDLE);
    assert_int_equal(loom_checkpoint_config(NULL, "x", buf, sizeof buf), LOOM_ERR_HANDLE);
    assert_int_equal(loom_checkpoint_save(ctx, NULL, NULL, NULL), LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "loom_checkpoint_save", "NULL");
    loom_clear_error(ctx);
    assert_int_equal(loom_checkpoint_load(ctx, "", NULL, 0), LOOM_ERR_ARG);
    loom_clear_error(ctx);
    loom_param(ctx, "__metadata__", LOOM_F32, LOOM_SCALAR);
    assert_int_equal(loom_checkpoint_save(ctx, tmp_path("meta.safetensors"), NULL, NULL), LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "__metadata__", NULL);
    /* sticky: with an error pending nothing is done and the error stays */
    assert_int_equal(loom_checkpoint_save(ctx, tmp_path("sticky.safetensors"), NULL, NULL), LOOM_ERR_ARG);
    assert_int_equal(access(tmp_path("sticky.safetensors"), F_OK), -1);
    loom_ctx_free(ctx);
}

/* ------------------------------------------------------------------ */
/* Resuming a run                                                     */
/* ------------------------------------------------------------------ */

/* One training step on a fresh tape: random numbers drawn by the plan, a
 * hand-written SGD update of w and a step counter in a buffer. */
static loom_t record_step(loom_ctx *ctx)
{
    loom_reset(ctx);
    loom_t w = loom_param_find(ctx, "w"), n = loom_param_find(ctx, "steps");
    loom_t r = loom_rand_uniform(ctx, LOOM_F32, LOOM_SHAPE(6));
    loom_t z = loom_rand_normal(ctx, LOOM_F32, LOOM_SHAPE(6));
    loom_t loss = loom_sum_all(ctx, loom_mul(ctx, loom_add(ctx, r, z), loom_square(ctx, w)));
    loom_backward(ctx, loss);
    loom_assign(ctx, w, loom_sub(ctx, w, loom_muls(ctx, loom_grad(ctx, w), 0.05)));
    loom_assign(ctx, n, loom_adds(ctx, n, 1));
    TU_OK(ctx);
    return loom_concat(ctx, 2, (loom_t[]){ r, z }, 0);
}

/* Runs k steps; appends the random numbers and w after each to out. */
static void run_steps(loom_ctx *ctx, int k, float *out /* (k, 18) */)
{
    loom_t draws = record_step(ctx);
    for (int s = 0; s < k; s++) {
        assert_int_equal(loom_run(ctx, 1, &draws), LOOM_OK);
        assert_int_equal(loom_read(ctx, draws, out + 18 * s, 12 * sizeof(float)), LOOM_OK);
        memcpy(out + 18 * s + 12, loom_param_data(ctx, loom_param_find(ctx, "w")), 6 * sizeof(float));
    }
}

static void make_resume_model(loom_ctx *ctx)
{
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(6));
    loom_buffer(ctx, "steps", LOOM_F32, LOOM_SCALAR);
    loom_param_init_normal(ctx, w, 0, 1);
    TU_OK(ctx);
}

static void test_checkpoint_resume_same_random_numbers_and_updates(void **state)
{
    (void)state;
    loom_ctx *a = loom_ctx_new(&(loom_options){ .seed = 1234 });
    loom_ctx *b = loom_ctx_new(&(loom_options){ .seed = 999 }); /* another seed: the file must set it */
    make_resume_model(a);
    make_resume_model(b);
    float warm[3 * 18], got_a[4 * 18], got_b[4 * 18];
    run_steps(a, 3, warm);
    const char *path = tmp_path("resume.safetensors");
    assert_int_equal(loom_checkpoint_save(a, path, NULL, "{\"lr\": 0.05}"), LOOM_OK);

    run_steps(a, 4, got_a);
    assert_int_equal(loom_checkpoint_load(b, path, NULL, LOOM_LOAD_STRICT), LOOM_OK);
    run_steps(b, 4, got_b);
    assert_memory_equal(got_a, got_b, sizeof got_a);
    /* and the draws are fresh ones, not a replay of the warm-up */
    assert_memory_not_equal(got_a, warm, 12 * sizeof(float));
    assert_true(*(float *)loom_param_data(b, loom_param_find(b, "steps")) == 7);

    /* the host generator (initialisers) continues where it was saved too:
     * a must rewind to the checkpoint for this */
    assert_int_equal(loom_checkpoint_load(a, path, NULL, LOOM_LOAD_STRICT), LOOM_OK);
    assert_int_equal(loom_checkpoint_load(b, path, NULL, LOOM_LOAD_STRICT), LOOM_OK);
    loom_t la = loom_param(a, "late", LOOM_F64, LOOM_SHAPE(5)), lb = loom_param(b, "late", LOOM_F64, LOOM_SHAPE(5));
    loom_param_init_normal(a, la, 0, 1);
    loom_param_init_normal(b, lb, 0, 1);
    TU_OK(a);
    TU_OK(b);
    assert_memory_equal(loom_param_data(a, la), loom_param_data(b, lb), 5 * sizeof(double));
    loom_ctx_free(a);
    loom_ctx_free(b);
}

/* ------------------------------------------------------------------ */
/* A file written by PyTorch                                          */
/* ------------------------------------------------------------------ */

/* tests/fixtures/<name>: from LOOM_SOURCE_ROOT (meson test), else next to
 * this source, found from the executable ($build/tests/) and __FILE__
 * (relative to $build). */
static const char *fixture_path(const char *name)
{
    static char buf[1024];
    const char *root = getenv("LOOM_SOURCE_ROOT");
    if (root) {
        snprintf(buf, sizeof buf, "%.800s/tests/fixtures/%.100s", root, name);
        return buf;
    }
    char src[512];
    snprintf(src, sizeof src, "%.500s", __FILE__);
    char *slash = strrchr(src, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(src, sizeof src, ".");
    if (src[0] == '/') {
        snprintf(buf, sizeof buf, "%.800s/fixtures/%.100s", src, name);
        return buf;
    }
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    for (int up = 0; up < 2; up++) /* $build/tests/test_checkpoint -> $build */
        if ((slash = strrchr(exe, '/')))
            *slash = 0;
    snprintf(buf, sizeof buf, "%.400s/%.400s/fixtures/%.100s", exe, src, name);
    return buf;
}

static loom_ctx *torch_ctx(bool with_fc)
{
    loom_ctx *ctx = ref_ctx(3);
    for (size_t i = 0; i < LM_ARRAY_LEN(torch_tensors); i++) {
        const torch_tensor *t = &torch_tensors[i];
        if (!with_fc && !strncmp(t->name, "fc.", 3))
            continue;
        loom_shape s = { .rank = t->rank, .d = { t->shape[0], t->shape[1] } };
        loom_param(ctx, t->name, LOOM_F32, s);
    }
    TU_OK(ctx);
    return ctx;
}

static void test_checkpoint_torch_lstm_state_dict_loads(void **state)
{
    (void)state;
    const char *path = fixture_path("torch_lstm.safetensors");
    loom_ctx *ctx = torch_ctx(true);
    if (loom_checkpoint_load(ctx, path, NULL, LOOM_LOAD_STRICT) != LOOM_OK)
        fail_msg("%s", loom_errmsg(ctx));
    for (size_t i = 0; i < LM_ARRAY_LEN(torch_tensors); i++) {
        const torch_tensor *t = &torch_tensors[i];
        loom_t p = loom_param_find(ctx, t->name);
        size_t n = (size_t)t->shape[0] * (size_t)(t->rank == 2 ? t->shape[1] : 1);
        if (memcmp(loom_param_data(ctx, p), t->values, n * sizeof(float)) != 0)
            fail_msg("\"%s\" differs from PyTorch's values", t->name);
    }
    char cfg[16];
    assert_int_equal(loom_checkpoint_config(ctx, path, cfg, sizeof cfg), LOOM_OK);
    assert_string_equal(cfg, "");
    loom_ctx_free(ctx);

    /* only the LSTM: the Linear's tensors are unexpected unless skipped */
    ctx = torch_ctx(false);
    assert_int_equal(loom_checkpoint_load(ctx, path, NULL, LOOM_LOAD_STRICT), LOOM_ERR_FORMAT);
    tu_assert_error(ctx, LOOM_ERR_FORMAT, "\"fc.", "2 in all");
    loom_clear_error(ctx);
    assert_int_equal(loom_checkpoint_load(ctx, path, NULL, LOOM_LOAD_ALLOW_UNEXPECTED), LOOM_OK);
    assert_memory_equal(loom_param_data(ctx, loom_param_find(ctx, "lstm.bias_hh_l1")), torch_lstm_bias_hh_l1,
                        sizeof torch_lstm_bias_hh_l1);
    loom_ctx_free(ctx);

    /* loom's own modules name and shape their parameters like PyTorch's */
    ctx = ref_ctx(3);
    loom_rnn *lstm = loom_rnn_new(ctx, "lstm", &(loom_rnn_config){ .mode = LOOM_LSTM, .input_size = 3,
                                                                   .hidden_size = 4, .num_layers = 2 });
    loom_linear fc;
    loom_linear_init(ctx, &fc, "fc", 4, 2, true, LOOM_F32);
    TU_OK(ctx);
    if (loom_checkpoint_load(ctx, path, NULL, LOOM_LOAD_STRICT) != LOOM_OK)
        fail_msg("into loom_rnn_new + loom_linear_init: %s", loom_errmsg(ctx));
    assert_memory_equal(loom_param_data(ctx, fc.weight), torch_fc_weight, sizeof torch_fc_weight);
    loom_rnn_free(lstm);
    loom_ctx_free(ctx);
}

/* PyTorch state dicts hold dtypes loom does not (BatchNorm's I64 counter):
 * such tensors are checked, and skipped when unexpected ones may be. */
static void test_checkpoint_foreign_dtype_skipped_or_refused(void **state)
{
    (void)state;
    const char *path = tmp_path("i64.safetensors");
    const float w[3] = { 1.5f, -2, 4 };
    unsigned char data[20];
    int64_t count = 42;
    memcpy(data, &count, 8);
    memcpy(data + 8, w, 12);
    write_st(path,
             "{\"__metadata__\":{\"format\":\"pt\"},\"bn.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],"
             "\"data_offsets\":[0,8]},\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[8,20]}}",
             -1, data, sizeof data);
    loom_ctx *ctx = ref_ctx(1);
    loom_t p = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(3));
    assert_int_equal(loom_checkpoint_load(ctx, path, NULL, LOOM_LOAD_STRICT), LOOM_ERR_FORMAT);
    tu_assert_error(ctx, LOOM_ERR_FORMAT, "bn.num_batches_tracked", NULL);
    loom_clear_error(ctx);
    assert_int_equal(loom_checkpoint_load(ctx, path, NULL, LOOM_LOAD_ALLOW_UNEXPECTED), LOOM_OK);
    assert_memory_equal(loom_param_data(ctx, p), w, sizeof w);
    loom_param(ctx, "bn.num_batches_tracked", LOOM_I32, LOOM_SCALAR);
    assert_int_equal(loom_checkpoint_load(ctx, path, NULL, LOOM_LOAD_STRICT), LOOM_ERR_FORMAT);
    tu_assert_error(ctx, LOOM_ERR_FORMAT, "I64[]", "I32[]");
    loom_ctx_free(ctx);
}

/* ------------------------------------------------------------------ */
/* Corrupt files                                                      */
/* ------------------------------------------------------------------ */

/* A small valid checkpoint of ctx's parameters, as bytes. */
static unsigned char *small_checkpoint(loom_ctx *ctx, const char *path, size_t *len)
{
    assert_int_equal(loom_checkpoint_save(ctx, path, NULL, "{\"k\": 1}"), LOOM_OK);
    return read_all(path, len);
}

static void test_checkpoint_corrupt_truncated_at_every_length(void **state)
{
    (void)state;
    loom_ctx *src = ref_ctx(1), *dst = ref_ctx(2);
    add_model(src, 1, false);
    add_model(dst, 2, false);
    size_t len;
    unsigned char *file = small_checkpoint(src, tmp_path("full.safetensors"), &len);
    const char *path = tmp_path("truncated.safetensors");
    snapshot before = snap(dst);
    char cfg[64];
    for (size_t n = 0; n < len; n++) {
        write_all(path, file, n);
        loom_code c = loom_checkpoint_load(dst, path, NULL, LOOM_LOAD_STRICT);
        if (c != LOOM_ERR_FORMAT)
            fail_msg("truncated to %zu of %zu bytes: %s (%s)", n, len, loom_code_name(c), loom_errmsg(dst));
        tu_assert_error(dst, LOOM_ERR_FORMAT, path, NULL);
        loom_clear_error(dst);
        assert_int_equal(loom_checkpoint_config(dst, path, cfg, sizeof cfg), LOOM_ERR_FORMAT);
        loom_clear_error(dst);
    }
    assert_unchanged(dst, &before, "truncation");
    write_all(path, file, len);
    assert_int_equal(loom_checkpoint_load(dst, path, NULL, LOOM_LOAD_STRICT), LOOM_OK);
    assert_params_equal(src, dst);
    free(before.bytes);
    free(file);
    loom_ctx_free(src);
    loom_ctx_free(dst);
}

static void test_checkpoint_corrupt_flipped_data_byte_fails_checksum(void **state)
{
    (void)state;
    loom_ctx *src = ref_ctx(1), *dst = ref_ctx(2);
    add_model(src, 1, false);
    add_model(dst, 2, false);
    size_t len;
    unsigned char *file = small_checkpoint(src, tmp_path("flip.safetensors"), &len);
    uint64_t h;
    memcpy(&h, file, 8);
    const char *path = tmp_path("flipped.safetensors");
    snapshot before = snap(dst);
    for (size_t at = 8 + (size_t)h; at < len; at += 7) {
        file[at] ^= 0x10;
        write_all(path, file, len);
        file[at] ^= 0x10;
        assert_int_equal(loom_checkpoint_load(dst, path, NULL, LOOM_LOAD_STRICT), LOOM_ERR_FORMAT);
        tu_assert_error(dst, LOOM_ERR_FORMAT, "checksum mismatch", path);
        loom_clear_error(dst);
    }
    assert_unchanged(dst, &before, "flipped byte");
    free(before.bytes);
    free(file);
    loom_ctx_free(src);
    loom_ctx_free(dst);
}

/* A one-tensor header for "w", F32 [3] (12 bytes of data). */
#define W(dtype, shape, offs) "{\"w\":{\"dtype\":" dtype ",\"shape\":" shape ",\"data_offsets\":" offs "}}"
#define GOOD_W "\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}"
#define META(m) "{\"__metadata__\":" m "," GOOD_W "}"
#define LOOM_META(extra) \
    META("{\"format\":\"loom\",\"format_version\":\"1\",\"checksum\":\"xxh3:0000000000000000\"" extra "}")

static const struct bad_header {
    const char *what, *header, *frag;
    size_t data; /* bytes after the header (0: 12) */
} bad_headers[] = {
    { "not JSON", "hello, world", "not valid JSON", 0 },
    { "only spaces", "        ", "not valid JSON", 0 },
    { "an array", "[1, 2, 3]", "not a JSON object", 0 },
    { "garbage after", "{" GOOD_W "} x", "not valid JSON", 0 },
    { "NUL padding", "{" GOOD_W "}\0\0\0\0", "not valid JSON", 0 },
    { "unterminated", "{\"w\":{\"dtype\":\"F32", "not valid JSON", 0 },
    { "tensor a number", "{\"w\":5}", "is a number, not an object", 0 },
    { "dtype a number", W("5", "[3]", "[0,12]"), "\"dtype\" string", 0 },
    { "shape a string", W("\"F32\"", "\"3\"", "[0,12]"), "\"shape\" array", 0 },
    { "one offset", W("\"F32\"", "[3]", "[0]"), "\"data_offsets\" pair", 0 },
    { "offsets strings", W("\"F32\"", "[3]", "[\"0\",\"12\"]"), "data_offsets", 0 },
    { "offsets fractions", W("\"F32\"", "[3]", "[0.0,12]"), "data_offsets", 0 },
    { "offsets reversed", W("\"F32\"", "[3]", "[12,0]"), "data_offsets", 0 },
    { "offset negative", W("\"F32\"", "[3]", "[-4,8]"), "data_offsets", 0 },
    { "unknown dtype", W("\"Q7\"", "[3]", "[0,12]"), "unknown dtype \"Q7\"", 0 },
    { "dim a fraction", W("\"F32\"", "[1.5]", "[0,12]"), "dimension 0", 0 },
    { "dim negative", W("\"F32\"", "[1,-3]", "[0,12]"), "dimension 1", 0 },
    { "dim beyond int64", W("\"F32\"", "[99999999999999999999]", "[0,12]"), "dimension 0", 0 },
    { "dims overflow", W("\"F32\"", "[4611686018427387904,4]", "[0,12]"), "offsets span 12", 0 },
    { "rank 9", W("\"F32\"", "[1,1,1,1,1,1,1,1,3]", "[0,12]"), "rank 9", 0 },
    { "shape vs offsets", W("\"F32\"", "[3]", "[0,8]"), "F32[3] but its offsets span 8", 0 },
    { "beyond the data", W("\"F32\"", "[3]", "[4,16]"), "ends at byte 16", 0 },
    { "overlap", "{" GOOD_W ",\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", "overlap", 0 },
    { "twice", "{" GOOD_W ",\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[12,24]}}", "twice", 24 },
    { "metadata an array", META("[]"), "not an object", 0 },
    { "metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}," GOOD_W "}", "\"__metadata__\" twice", 0 },
    { "metadata number", META("{\"a\":1}"), "\"a\" is a number, not a string", 0 },
    { "metadata key twice", META("{\"a\":\"1\",\"a\":\"2\"}"), "\"a\" twice", 0 },
    { "no checksum", META("{\"format\":\"loom\",\"format_version\":\"1\"}"), "checksum", 0 },
    { "bad checksum text", META("{\"checksum\":\"xxh3:zz\"}"), "16 hex digits", 0 },
    { "checksum wrong", META("{\"checksum\":\"xxh3:0123456789abcdef\"}"), "checksum mismatch", 0 },
    { "no version", META("{\"format\":\"loom\",\"checksum\":\"xxh3:0000000000000000\"}"), "format_version", 0 },
    { "newer version", META("{\"format\":\"loom\",\"format_version\":\"2\",\"checksum\":\"xxh3:0000000000000000\"}"),
      "format version 2", 0 },
    { "step negative", LOOM_META(",\"step\":\"-1\""), "\"step\"", 0 },
    { "rng not JSON", LOOM_META(",\"rng\":\"seed=1\""), "\"rng\"", 0 },
    { "rng short", LOOM_META(",\"rng\":\"{\\\"seed\\\":\\\"1\\\",\\\"runs\\\":\\\"0\\\",\\\"host\\\":[]}\""),
      "\"rng\"", 0 },
    { "bad UTF-8", "{\"w\xff\":{}}", "UTF-8", 0 },
    { "overlong UTF-8", "{\"w\xc0\xaf\":{}}", "UTF-8", 0 },
    { "escaped NUL", "{\"w\\u0000\":{}}", "\\u0000", 0 },
    { "lone surrogate", "{\"w\\ud800\":{}}", "surrogate", 0 },
    { "raw newline in a string", "{\"w\n\":{}}", "control character", 0 },
    { "bad escape", "{\"w\\x\":{}}", "unknown escape", 0 },
    { "bad number", W("\"F32\"", "[03]", "[0,12]"), "not valid JSON", 0 },
};

static void expect_refused(loom_ctx *ctx, const char *path, const char *what, const char *frag,
                           const snapshot *before)
{
    loom_code c = loom_checkpoint_load(ctx, path, NULL, LOOM_LOAD_STRICT);
    if (c != LOOM_ERR_FORMAT)
        fail_msg("%s: %s (%s)", what, loom_code_name(c), loom_errmsg(ctx));
    if (!strstr(loom_errmsg(ctx), frag) || !strstr(loom_errmsg(ctx), path))
        fail_msg("%s: the message \"%s\" does not mention \"%s\" and the path", what, loom_errmsg(ctx), frag);
    loom_clear_error(ctx);
    assert_unchanged(ctx, before, what);
}

static void test_checkpoint_corrupt_headers_refused(void **state)
{
    (void)state;
    loom_ctx *ctx = ref_ctx(1);
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(3));
    loom_param_init_const(ctx, w, -1);
    snapshot before = snap(ctx);
    const char *path = tmp_path("bad.safetensors");
    static const float data[6] = { 1, 2, 3, 4, 5, 6 };
    for (size_t i = 0; i < LM_ARRAY_LEN(bad_headers); i++) {
        const struct bad_header *b = &bad_headers[i];
        long hlen = (long)strlen(b->header) + (strcmp(b->what, "NUL padding") ? 0 : 4);
        write_st(path, b->header, hlen, data, b->data ? b->data : 12);
        expect_refused(ctx, path, b->what, b->frag, &before);
    }

    /* nesting too deep for a recursive parser to follow blindly */
    static char deep[4096];
    memset(deep, '[', 2000);
    memset(deep + 2000, ']', 2000);
    write_st(path, deep, -1, data, 12);
    expect_refused(ctx, path, "deep nesting", "nested deeper", &before);

    /* header lengths that do not fit the file */
    unsigned char raw[64] = { 0 };
    raw[7] = 0x80; /* 2^63 */
    write_all(path, raw, sizeof raw);
    expect_refused(ctx, path, "huge header length", "not sane", &before);
    memset(raw, 0, sizeof raw);
    raw[0] = 60; /* 60 of the 56 bytes left */
    write_all(path, raw, sizeof raw);
    expect_refused(ctx, path, "header past the end", "runs past the end", &before);
    write_all(path, raw, 5);
    expect_refused(ctx, path, "5 bytes", "too short", &before);

    /* shape or dtype against the parameter's */
    write_st(path, W("\"F32\"", "[3,1]", "[0,12]"), -1, data, 12);
    expect_refused(ctx, path, "shape vs parameter", "F32[3,1] in the file, but the parameter is F32[3]", &before);
    write_st(path, W("\"I32\"", "[3]", "[0,12]"), -1, data, 12);
    expect_refused(ctx, path, "dtype vs parameter", "I32[3] in the file, but the parameter is F32[3]", &before);
    write_st(path, W("\"F64\"", "[3]", "[0,24]"), -1, data, 24);
    expect_refused(ctx, path, "f64 vs parameter", "F64[3]", &before);
    free(before.bytes);
    loom_ctx_free(ctx);
}

static void test_checkpoint_unreadable_paths_are_io_errors(void **state)
{
    (void)state;
    loom_ctx *ctx = ref_ctx(1);
    loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(3));
    char cfg[8];
    assert_int_equal(loom_checkpoint_load(ctx, g_dir, NULL, 0), LOOM_ERR_IO);
    tu_assert_error(ctx, LOOM_ERR_IO, g_dir, strerror(EISDIR));
    loom_clear_error(ctx);
    const char *missing = tmp_path("no-such-file.safetensors");
    assert_int_equal(loom_checkpoint_load(ctx, missing, NULL, 0), LOOM_ERR_IO);
    tu_assert_error(ctx, LOOM_ERR_IO, missing, strerror(ENOENT));
    loom_clear_error(ctx);
    assert_int_equal(loom_checkpoint_config(ctx, missing, cfg, sizeof cfg), LOOM_ERR_IO);
    loom_clear_error(ctx);
    const char *fifo = tmp_path("fifo"); /* must not hang waiting for a writer */
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(loom_checkpoint_load(ctx, fifo, NULL, 0), LOOM_ERR_IO);
    tu_assert_error(ctx, LOOM_ERR_IO, fifo, "not a regular file");
    loom_clear_error(ctx);
    /* saving into a missing directory, or over a directory */
    const char *nodir = tmp_path("no-such-dir/x.safetensors");
    assert_int_equal(loom_checkpoint_save(ctx, nodir, NULL, NULL), LOOM_ERR_IO);
    tu_assert_error(ctx, LOOM_ERR_IO, nodir, strerror(ENOENT));
    loom_clear_error(ctx);
    const char *sub = tmp_path("subdir");
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(loom_checkpoint_save(ctx, sub, NULL, NULL), LOOM_ERR_IO);
    tu_assert_error(ctx, LOOM_ERR_IO, sub, "rename");
    loom_clear_error(ctx);
    assert_int_equal(count_temporaries(), 0);
    rmdir(sub);
    loom_ctx_free(ctx);
}

/* ------------------------------------------------------------------ */
/* Atomic saving                                                      */
/* ------------------------------------------------------------------ */

/* A save that runs out of file size midway (RLIMIT_FSIZE, in a child so
 * the limit does not outlive the case) must leave the old checkpoint as it
 * was and no temporary behind. */
static void test_checkpoint_atomic_failed_save_keeps_old_file(void **state)
{
    (void)state;
    loom_ctx *ctx = ref_ctx(1);
    loom_t big = loom_param(ctx, "big", LOOM_F64, LOOM_SHAPE(64, 64));
    loom_param_init_normal(ctx, big, 0, 1);
    const char *path = tmp_path("atomic.safetensors");
    assert_int_equal(loom_checkpoint_save(ctx, path, NULL, "{\"v\": 1}"), LOOM_OK);
    size_t len;
    unsigned char *old = read_all(path, &len);

    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG instead */
        struct rlimit rl = { .rlim_cur = 4096, .rlim_max = 4096 };
        setrlimit(RLIMIT_FSIZE, &rl);
        loom_param_init_normal(ctx, big, 5, 1);
        loom_code c = loom_checkpoint_save(ctx, path, NULL, "{\"v\": 2}");
        _exit(c == LOOM_ERR_IO && strstr(loom_errmsg(ctx), strerror(EFBIG)) ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);

    size_t len2;
    unsigned char *now = read_all(path, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(old, now, len);
    assert_int_equal(count_temporaries(), 0);
    loom_ctx *fresh = ref_ctx(2);
    loom_param(fresh, "big", LOOM_F64, LOOM_SHAPE(64, 64));
    assert_int_equal(loom_checkpoint_load(fresh, path, NULL, LOOM_LOAD_STRICT), LOOM_OK);
    assert_params_equal(ctx, fresh);
    char cfg[16];
    assert_int_equal(loom_checkpoint_config(fresh, path, cfg, sizeof cfg), LOOM_OK);
    assert_string_equal(cfg, "{\"v\": 1}");
    free(old);
    free(now);
    loom_ctx_free(fresh);
    loom_ctx_free(ctx);
}

/* ------------------------------------------------------------------ */
/* Fuzzing                                                            */
/* ------------------------------------------------------------------ */

static uint64_t fuzz_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random mutations of a valid file: each load succeeds or is refused as
 * FORMAT, and a refused one changes nothing. Most mutations hit the
 * header, where the parser is. Returns how many loaded. */
static int fuzz(loom_ctx *dst, const unsigned char *base, size_t len, uint64_t seed, int iters)
{
    static const char tokens[] = "{}[]\",:\\0123456789-.eE \x80\xff\x00tfnu";
    const char *path = tmp_path("fuzz.safetensors");
    unsigned char *file = malloc(len);
    uint64_t hlen, rng = seed;
    memcpy(&hlen, base, 8);
    int loaded = 0;
    char cfg[64];
    for (int iter = 0; iter < iters; iter++) {
        memcpy(file, base, len);
        size_t n = len;
        for (int e = 0, edits = 1 + (int)(fuzz_next(&rng) % 4); e < edits; e++) {
            uint64_t r = fuzz_next(&rng);
            size_t at = (r >> 8) % 8 == 0 ? (size_t)((r >> 16) % len) : (size_t)((r >> 16) % (8 + hlen));
            switch (r % 5) {
            case 0: file[at] ^= (unsigned char)(1u << ((r >> 40) % 8)); break;
            case 1: file[at] = (unsigned char)(r >> 48); break;
            case 2: file[at] = (unsigned char)tokens[(r >> 48) % (sizeof tokens - 1)]; break;
            case 3: n = LM_MIN(n, at); break; /* truncate */
            default: file[at] = (unsigned char)('0' + (r >> 48) % 10); break; /* lengths, offsets */
            }
        }
        write_all(path, file, n);
        snapshot before = snap(dst);
        loom_code c = loom_checkpoint_load(dst, path, NULL, LOOM_LOAD_STRICT);
        if (c != LOOM_OK && c != LOOM_ERR_FORMAT)
            fail_msg("seed %#llx, iteration %d: %s (%s)", (unsigned long long)seed, iter, loom_code_name(c),
                     loom_errmsg(dst));
        loaded += c == LOOM_OK;
        loom_clear_error(dst);
        if (c != LOOM_OK)
            assert_unchanged(dst, &before, "fuzz");
        free(before.bytes);
        c = loom_checkpoint_config(dst, path, cfg, sizeof cfg);
        assert_true(c == LOOM_OK || c == LOOM_ERR_FORMAT || c == LOOM_ERR_ARG);
        loom_clear_error(dst);
    }
    free(file);
    return loaded;
}

static void test_checkpoint_fuzz_mutations_never_crash(void **state)
{
    (void)state;
    loom_ctx *src = ref_ctx(1), *dst = ref_ctx(2);
    add_model(src, 1, false);
    add_model(dst, 2, false);
    size_t len;
    unsigned char *base = small_checkpoint(src, tmp_path("fuzz-base.safetensors"), &len);
    int loaded = fuzz(dst, base, len, 0x5eed1234abcdull, 3000);
    free(base);
    /* PyTorch's file has no checksum: mutated data loads, and mutated
     * headers get past the JSON into the checks of names and sizes */
    loom_ctx *torch = torch_ctx(true);
    base = read_all(fixture_path("torch_lstm.safetensors"), &len);
    int loaded_torch = fuzz(torch, base, len, 0xfeedf00dull, 2000);
    print_message("fuzz: %d of 3000 mutated loom files loaded, %d of 2000 PyTorch files\n", loaded, loaded_torch);
    assert_true(loaded < 1000 && loaded_torch > 0);
    free(base);
    loom_ctx_free(torch);
    loom_ctx_free(src);
    loom_ctx_free(dst);
}

/* ------------------------------------------------------------------ */
/* Allocation failure                                                 */
/* ------------------------------------------------------------------ */

enum { OP_SAVE, OP_LOAD, OP_CONFIG };

/* Fails each allocation of one operation in turn (persistent, then one
 * shot): every failure is NOMEM, frees what it took, and changes neither
 * the file nor the context. Returns the number of allocation points. */
static long fail_every_allocation(int op)
{
    const char *path = tmp_path("nomem.safetensors"), *ref = tmp_path("nomem-ref.safetensors");
    loom_ctx *src = ref_ctx(1);
    add_model(src, 1, false);
    assert_int_equal(loom_checkpoint_save(src, ref, NULL, k_config), LOOM_OK);
    size_t ref_len;
    unsigned char *ref_bytes = read_all(ref, &ref_len);
    long points = -1;
    for (int mode = 0; mode < 2; mode++) {
        for (long k = 0;; k++) {
            tu_counting ca = { .fail_at = -1, .one_shot = mode == 1 };
            loom_ctx *ctx = loom_ctx_new(&(loom_options){ .alloc = tu_counting_alloc, .alloc_ud = &ca,
                                                           .backend = LOOM_BACKEND_REFERENCE, .seed = 1 });
            assert_non_null(ctx);
            add_model(ctx, op == OP_SAVE ? 1 : 3, false);
            if (op == OP_SAVE)
                write_all(path, "old", 3);
            snapshot before = snap(ctx);
            long long live = ca.live_bytes, blocks = ca.live_blocks;
            ca.fail_at = (long)ca.calls + k;
            char cfg[512];
            loom_code c = op == OP_SAVE ? loom_checkpoint_save(ctx, path, NULL, k_config)
                          : op == OP_LOAD ? loom_checkpoint_load(ctx, ref, NULL, LOOM_LOAD_STRICT)
                                          : loom_checkpoint_config(ctx, ref, cfg, sizeof cfg);
            long used = (long)ca.calls - (ca.fail_at - k);
            ca.fail_at = -1;
            if (ca.live_bytes != live || ca.live_blocks != blocks)
                fail_msg("op %d, failing request %ld (%s): %lld bytes in %lld blocks leaked", op, k,
                         mode ? "one shot" : "persistent", ca.live_bytes - live, ca.live_blocks - blocks);
            assert_int_equal(ca.bad_osize, 0);
            if (c == LOOM_OK) {
                /* past the last allocation: the operation is complete */
                if (op == OP_SAVE) {
                    size_t n;
                    unsigned char *got = read_all(path, &n);
                    assert_true(n == ref_len && memcmp(got, ref_bytes, n) == 0);
                    free(got);
                } else if (op == OP_CONFIG) {
                    assert_string_equal(cfg, k_config);
                }
                assert_true(used <= k);
                points = k;
                free(before.bytes);
                loom_ctx_free(ctx);
                break;
            }
            if (c != LOOM_ERR_NOMEM)
                fail_msg("op %d, failing request %ld: %s (%s)", op, k, loom_code_name(c), loom_errmsg(ctx));
            assert_unchanged(ctx, &before, "allocation failure");
            if (op == OP_SAVE) {
                size_t n;
                unsigned char *got = read_all(path, &n);
                assert_true(n == 3 && memcmp(got, "old", 3) == 0);
                free(got);
                assert_int_equal(count_temporaries(), 0);
            }
            free(before.bytes);
            loom_ctx_free(ctx);
            assert_int_equal(ca.live_bytes, 0);
            assert_true(k < 10000);
        }
    }
    free(ref_bytes);
    loom_ctx_free(src);
    return points;
}

static void test_checkpoint_alloc_failure_at_every_point(void **state)
{
    (void)state;
    long save = fail_every_allocation(OP_SAVE), load = fail_every_allocation(OP_LOAD),
         config = fail_every_allocation(OP_CONFIG);
    print_message("allocation points: save %ld, load %ld, config %ld\n", save, load, config);
    assert_true(save >= 3 && load >= 4 && config >= 3);
}

/* ------------------------------------------------------------------ */
/* Suite                                                              */
/* ------------------------------------------------------------------ */

/* Empties the scratch directory (files, and the one level of directories
 * a test may make). */
static void remove_contents(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char p[1024];
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (unlink(p) != 0)
                rmdir(p);
        }
    }
    closedir(d);
}

static int suite_setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/loom-ckpt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int suite_teardown(void **state)
{
    (void)state;
    remove_contents(g_dir);
    return rmdir(g_dir);
}

#define P(name) cmocka_unit_test(test_checkpoint_##name)

int main(void)
{
    const struct CMUnitTest tests[] = {
        P(round_trip_bit_exact),
        P(config_absent_small_buffer_and_bad_utf8),
        P(flags_missing_and_unexpected),
        P(bad_arguments_and_sticky_error),
        P(resume_same_random_numbers_and_updates),
        P(torch_lstm_state_dict_loads),
        P(foreign_dtype_skipped_or_refused),
        P(corrupt_truncated_at_every_length),
        P(corrupt_flipped_data_byte_fails_checksum),
        P(corrupt_headers_refused),
        P(unreadable_paths_are_io_errors),
        P(atomic_failed_save_keeps_old_file),
        P(fuzz_mutations_never_crash),
        P(alloc_failure_at_every_point),
    };
    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
