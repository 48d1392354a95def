/*
 * test_aot.c — ahead-of-time objects (loom_aot_emit): each test exports a
 * model into a fresh directory, builds a small C driver against the
 * generated header and object with the system's C compiler (LOOM_TEST_CC,
 * found by meson at configure time), runs it on inputs written by the
 * test, and compares what it wrote with what the JIT computes on the same
 * inputs: bitwise for the host CPU (the same plan and kernels), within
 * 1e-6 relative for other CPUs. Also: the object needs libc and libm only
 * (nm -u, the binary's dynamic section), weights files are checked
 * (corrupt, truncated, another model's, another version, bad magic),
 * index errors and bad arguments are reported; a training step split into
 * forward, backward and update entries (loom_optimizer_attach_grads)
 * gives the JIT's gradients and weights; `loom export --main` builds a
 * sampler of a char LM and a forecaster of examples/forecast's
 * checkpoint (its path is argv[2]) with the cc line it prints.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, realpath */

#include <ctype.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* ------------------------------------------------------------------ */
/* Helpers: directories, files, the C compiler                        */
/* ------------------------------------------------------------------ */

static const char *loom_bin; /* build/cli/loom, argv[1] */

static const char *test_cc(void)
{
    const char *cc = getenv("LOOM_TEST_CC");
    return cc && *cc ? cc : NULL;
}

#define NEED_CC()                                                                   \
    do {                                                                            \
        if (!test_cc()) {                                                           \
            print_message("no C compiler (LOOM_TEST_CC unset): AOT link skipped\n"); \
            skip();                                                                 \
        }                                                                           \
    } while (0)

static char *tmpdir_new(void)
{
    const char *base = getenv("TMPDIR");
    char *d = malloc(512);
    assert_non_null(d);
    snprintf(d, 512, "%s/loom-aot-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(d));
    return d;
}

static void tmpdir_free(char *d)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0)
        print_message("could not remove %s\n", d);
    free(d);
}

static void write_file(const char *dir, const char *name, const void *data, size_t n)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void *read_file(const char *dir, const char *name, size_t *n)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc((size_t)len + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* Runs a shell command, capturing stdout and stderr into out; returns
 * its exit status (-1 if it did not exit). */
static int run_cmd(const char *cmd, char *out, size_t size)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, size - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Builds dir/prog from dir/driver.c (text src) and dir/<prefix>.o. */
static void build_driver(const char *dir, const char *prefix, const char *src)
{
    write_file(dir, "driver.c", src, strlen(src));
    char cmd[2048], out[8192];
    snprintf(cmd, sizeof cmd, "%s -std=c11 -O1 -Wall -Wextra -Werror -I'%s' -o '%s/prog' '%s/driver.c' '%s/%s.o' -lm",
             test_cc(), dir, dir, dir, dir, prefix);
    if (run_cmd(cmd, out, sizeof out) != 0)
        fail_msg("building the driver failed:\n%s\n%s", cmd, out);
}

/* Runs dir/prog with args; returns its exit status, output in out. */
static int run_driver(const char *dir, const char *args, char *out, size_t size)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && ./prog %s", dir, args);
    return run_cmd(cmd, out, size);
}

static void assert_bitwise(const float *got, const float *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            fail_msg("%s[%zu]: AOT %.9g, JIT %.9g (not bitwise equal)", what, i, got[i], want[i]);
}

/* |got - want| <= 1e-6 * max(|want|, 1e-3 max|want|) elementwise. */
static void assert_rel(const float *got, const float *want, size_t n, double tol, const char *what)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]), ref = fmax(fabs(want[i]), 1e-3 * scale);
        if (!(d <= tol * ref))
            fail_msg("%s[%zu]: AOT %.9g, JIT %.9g (relative %.3g > %.3g)", what, i, got[i], want[i], d / ref, tol);
    }
}

/* ------------------------------------------------------------------ */
/* The model: a character-level LSTM LM, as a sequence and as a step  */
/* ------------------------------------------------------------------ */

enum { V = 11, H = 16, L = 2, T = 6, B = 2, STEPS = 3 };

typedef struct lm {
    loom_ctx *ctx;
    loom_embedding emb;
    loom_rnn *rnn;
    loom_linear head;
    /* the sequence: ids [T, B], lengths [B], h0, c0 [L, B, H] -> logits [T * B, V], hT, cT */
    loom_t ids, lengths, h0, c0, logits, hT, cT;
    /* the step: ids [1, B], h, c -> logits [B, V], h', c' */
    loom_t sids, sh, sc, slogits, sh2, sc2;
} lm;

static void lm_half(lm *m, loom_t ids, loom_t lengths, loom_t h, loom_t c, int steps, loom_t *logits, loom_t *h2,
                    loom_t *c2)
{
    loom_ctx *ctx = m->ctx;
    loom_t x = loom_embedding_forward(ctx, &m->emb, ids);
    loom_rnn_state init = { h, c }, fin;
    loom_t out;
    loom_rnn_forward(ctx, m->rnn, x, &init, lengths, false, &out, &fin);
    *logits = loom_linear_forward(ctx, &m->head, loom_reshape(ctx, out, LOOM_SHAPE(steps * B, H)));
    *h2 = fin.h;
    *c2 = fin.c;
}

static void lm_new(lm *m, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->ctx = loom_ctx_new(&(loom_options){ .seed = seed, .threads = 1 });
    assert_non_null(m->ctx);
    loom_ctx *ctx = m->ctx;
    loom_embedding_init(ctx, &m->emb, "emb", V, H, LOOM_F32);
    m->rnn = loom_rnn_new(ctx, "rnn", &(loom_rnn_config){ .mode = LOOM_LSTM, .input_size = H, .hidden_size = H,
                                                          .num_layers = L });
    loom_linear_init(ctx, &m->head, "head", H, V, true, LOOM_F32);
    TU_OK(ctx);
    m->ids = loom_input(ctx, "ids", LOOM_I32, LOOM_SHAPE(T, B));
    m->lengths = loom_input(ctx, "lengths", LOOM_I32, LOOM_SHAPE(B));
    m->h0 = loom_input(ctx, "h0", LOOM_F32, LOOM_SHAPE(L, B, H));
    m->c0 = loom_input(ctx, "c0", LOOM_F32, LOOM_SHAPE(L, B, H));
    lm_half(m, m->ids, m->lengths, m->h0, m->c0, T, &m->logits, &m->hT, &m->cT);
    m->sids = loom_input(ctx, "step ids", LOOM_I32, LOOM_SHAPE(1, B));
    m->sh = loom_input(ctx, "h", LOOM_F32, LOOM_SHAPE(L, B, H));
    m->sc = loom_input(ctx, "c", LOOM_F32, LOOM_SHAPE(L, B, H));
    lm_half(m, m->sids, LOOM_NULL, m->sh, m->sc, 1, &m->slogits, &m->sh2, &m->sc2);
    TU_OK(ctx);
}

static void lm_free(lm *m)
{
    loom_rnn_free(m->rnn);
    loom_ctx_free(m->ctx);
}

static loom_code lm_export(lm *m, const char *dir, const char *prefix, const char *cpu, bool weights_file,
                           loom_aot_info *info)
{
    loom_aot_entry entries[2] = {
        { .name = "seq", .ninputs = 4, .inputs = (loom_t[]){ m->ids, m->lengths, m->h0, m->c0 }, .noutputs = 3,
          .outputs = (loom_t[]){ m->logits, m->hT, m->cT },
          .output_names = (const char *const[]){ "logits", "h_out", "c_out" } },
        { .name = "step", .ninputs = 3, .inputs = (loom_t[]){ m->sids, m->sh, m->sc }, .noutputs = 3,
          .outputs = (loom_t[]){ m->slogits, m->sh2, m->sc2 },
          .output_names = (const char *const[]){ "logits", "h_out", "c_out" } },
    };
    return loom_aot_emit(m->ctx, dir, &(loom_aot_options){ .prefix = prefix, .cpu = cpu, .weights_file = weights_file,
                                                         .nentries = 2, .entries = entries },
                         info);
}

/* The inputs the driver reads, in its order. */
typedef struct lm_inputs {
    int32_t ids[T * B], lengths[B];
    float h0[L * B * H], c0[L * B * H];
    int32_t sids[STEPS][B];
} lm_inputs;

/* The outputs it writes, in its order. */
typedef struct lm_outputs {
    float logits[T * B * V], hT[L * B * H], cT[L * B * H];
    float slogits[STEPS][B * V];
    float h[L * B * H], c[L * B * H];
} lm_outputs;

static void lm_inputs_make(lm_inputs *in, uint32_t seed)
{
    uint32_t s = seed;
    for (int i = 0; i < T * B; i++)
        in->ids[i] = (int32_t)((s = s * 1664525u + 1013904223u) >> 8) % V;
    in->lengths[0] = T;
    in->lengths[1] = T - 2; /* a shorter example: its state stops at step 4 */
    for (int i = 0; i < L * B * H; i++) {
        in->h0[i] = (float)((int)((s = s * 1664525u + 1013904223u) >> 20) - 2048) / 4096.0f;
        in->c0[i] = (float)((int)((s = s * 1664525u + 1013904223u) >> 20) - 2048) / 2048.0f;
    }
    for (int k = 0; k < STEPS; k++)
        for (int b = 0; b < B; b++)
            in->sids[k][b] = (int32_t)((s = s * 1664525u + 1013904223u) >> 8) % V;
}

/* What the JIT computes: the sequence, then STEPS steps carrying h, c
 * from h0, c0. */
static void lm_jit(lm *m, const lm_inputs *in, lm_outputs *out)
{
    loom_ctx *ctx = m->ctx;
    loom_feed(ctx, m->ids, in->ids, sizeof in->ids);
    loom_feed(ctx, m->lengths, in->lengths, sizeof in->lengths);
    loom_feed(ctx, m->h0, in->h0, sizeof in->h0);
    loom_feed(ctx, m->c0, in->c0, sizeof in->c0);
    loom_t outs[3] = { m->logits, m->hT, m->cT };
    assert_int_equal(loom_eval(ctx, 3, outs), LOOM_OK);
    loom_read(ctx, m->logits, out->logits, sizeof out->logits);
    loom_read(ctx, m->hT, out->hT, sizeof out->hT);
    loom_read(ctx, m->cT, out->cT, sizeof out->cT);
    memcpy(out->h, in->h0, sizeof out->h);
    memcpy(out->c, in->c0, sizeof out->c);
    for (int k = 0; k < STEPS; k++) {
        loom_feed(ctx, m->sids, in->sids[k], sizeof in->sids[k]);
        loom_feed(ctx, m->sh, out->h, sizeof out->h);
        loom_feed(ctx, m->sc, out->c, sizeof out->c);
        loom_t souts[3] = { m->slogits, m->sh2, m->sc2 };
        assert_int_equal(loom_eval(ctx, 3, souts), LOOM_OK);
        loom_read(ctx, m->slogits, out->slogits[k], sizeof out->slogits[k]);
        loom_read(ctx, m->sh2, out->h, sizeof out->h);
        loom_read(ctx, m->sc2, out->c, sizeof out->c);
    }
    TU_OK(ctx);
}

/* The driver: reads lm_inputs from argv[1], writes lm_outputs to argv[2];
 * with argv[3], the weights come from that file (M_weights_load). The
 * step carries h and c in place. Prints the entry's error and exits 10 +
 * code on failure. */
static const char lm_driver[] =
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include \"m.h\"\n"
    "static void rd(FILE *f, void *p, size_t n) { if (fread(p, 1, n, f) != n) { puts(\"short input\"); exit(3); } }\n"
    "static void wr(FILE *f, const void *p, size_t n) { if (fwrite(p, 1, n, f) != n) exit(4); }\n"
    "static int check(int rc, const char *what) {\n"
    "    if (rc != M_OK) { printf(\"%s: %d: %s\\n\", what, rc, m_strerror(rc)); exit(10 + rc); }\n"
    "    return rc;\n"
    "}\n"
    "int main(int argc, char **argv) {\n"
    "    static int32_t ids[M_SEQ_IDS_COUNT], lengths[M_SEQ_LENGTHS_COUNT], sids[M_STEP_STEP_IDS_COUNT];\n"
    "    static float h0[M_SEQ_H0_COUNT], c0[M_SEQ_C0_COUNT], logits[M_SEQ_LOGITS_COUNT];\n"
    "    static float hT[M_SEQ_H_OUT_COUNT], cT[M_SEQ_C_OUT_COUNT], slog[M_STEP_LOGITS_COUNT];\n"
    "    const void *w = NULL;\n"
    "    void *block = NULL;\n"
    "    if (argc < 3) return 2;\n"
    "    if (argc > 3) check(m_weights_load(argv[3], &block, &w), \"weights\");\n"
    "    FILE *in = fopen(argv[1], \"rb\"), *out = fopen(argv[2], \"wb\");\n"
    "    void *mem = aligned_alloc(M_ALIGN, (M_MEMORY_BYTES + M_ALIGN - 1) / M_ALIGN * M_ALIGN);\n"
    "    if (!in || !out || !mem) return 2;\n"
    "    rd(in, ids, sizeof ids); rd(in, lengths, sizeof lengths); rd(in, h0, sizeof h0); rd(in, c0, sizeof c0);\n"
    "    check(m_seq(mem, w, ids, lengths, h0, c0, logits, hT, cT), \"seq\");\n"
    "    wr(out, logits, sizeof logits); wr(out, hT, sizeof hT); wr(out, cT, sizeof cT);\n"
    "    for (int k = 0; k < " "3" "; k++) {\n"
    "        rd(in, sids, sizeof sids);\n"
    "        check(m_step(mem, w, sids, h0, c0, slog, h0, c0), \"step\");\n"
    "        wr(out, slog, sizeof slog);\n"
    "    }\n"
    "    wr(out, h0, sizeof h0); wr(out, c0, sizeof c0);\n"
    "    fclose(in);\n"
    "    if (fclose(out) != 0) return 4;\n"
    "    free(mem);\n"
    "    free(block);\n"
    "    puts(\"done\");\n"
    "    return 0;\n"
    "}\n";

/* Runs the driver in dir on fresh inputs; compares with the JIT. */
static void lm_check(lm *m, const char *dir, const char *weights_arg, bool bitwise)
{
    static lm_inputs in;
    static lm_outputs want;
    lm_inputs_make(&in, 7);
    lm_jit(m, &in, &want);
    write_file(dir, "in.bin", &in, sizeof in);
    char args[700], out[4096];
    snprintf(args, sizeof args, "in.bin out.bin %s", weights_arg ? weights_arg : "");
    int rc = run_driver(dir, args, out, sizeof out);
    if (rc != 0)
        fail_msg("driver exited %d: %s", rc, out);
    size_t n;
    lm_outputs *got = read_file(dir, "out.bin", &n);
    assert_int_equal(n, sizeof *got);
    const float *g = (const float *)got, *w = (const float *)&want;
    if (bitwise) {
        assert_bitwise(got->logits, want.logits, TU_LEN(want.logits), "seq logits");
        assert_bitwise(got->hT, want.hT, TU_LEN(want.hT), "seq h_out");
        assert_bitwise(got->cT, want.cT, TU_LEN(want.cT), "seq c_out");
        assert_bitwise(g, w, sizeof want / sizeof(float), "outputs");
    } else {
        assert_rel(got->logits, want.logits, TU_LEN(want.logits), 1e-6, "seq logits");
        assert_rel(got->hT, want.hT, TU_LEN(want.hT), 1e-6, "seq h_out");
        for (int k = 0; k < STEPS; k++)
            assert_rel(got->slogits[k], want.slogits[k], TU_LEN(want.slogits[k]), 1e-6, "step logits");
        assert_rel(got->h, want.h, TU_LEN(want.h), 1e-6, "step h");
        assert_rel(got->c, want.c, TU_LEN(want.c), 1e-6, "step c");
    }
    free(got);
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */
/* ------------------------------------------------------------------ */

static void test_aot_host_matches_jit_bitwise(void **state)
{
    (void)state;
    NEED_CC();
    char *dir = tmpdir_new();
    lm m;
    lm_new(&m, 11);
    loom_aot_info info;
    assert_int_equal(lm_export(&m, dir, "m", NULL, false, &info), LOOM_OK);
    assert_true(info.object_bytes > info.weights_bytes);
    assert_true(info.kernels > 0 && info.memory_bytes > 0);
    build_driver(dir, "m", lm_driver);
    lm_check(&m, dir, NULL, true);
    lm_free(&m);
    tmpdir_free(dir);
}

static void test_aot_cpus_match_jit(void **state)
{
    (void)state;
    NEED_CC();
    static const char *const cpus[] = { "x86-64-v3", "x86-64-v4" };
    for (size_t i = 0; i < TU_LEN(cpus); i++) {
        char *dir = tmpdir_new();
        lm m;
        lm_new(&m, 12);
        loom_aot_info info;
        assert_int_equal(lm_export(&m, dir, "m", cpus[i], false, &info), LOOM_OK);
        assert_string_equal(info.cpu, cpus[i]);
        char path[600], out[256];
        snprintf(path, sizeof path, "grep -c '#define M_CPU \"%s\"' '%s/m.h'", cpus[i], dir);
        assert_int_equal(run_cmd(path, out, sizeof out), 0);
        build_driver(dir, "m", lm_driver);
        lm_check(&m, dir, NULL, false);
        lm_free(&m);
        tmpdir_free(dir);
    }
}

/* The object's undefined symbols are libc's memory functions at most,
 * and the binary needs libc and libm only. */
static void test_aot_needs_libc_only(void **state)
{
    (void)state;
    NEED_CC();
    char *dir = tmpdir_new();
    lm m;
    lm_new(&m, 13);
    assert_int_equal(lm_export(&m, dir, "m", NULL, false, NULL), LOOM_OK);
    build_driver(dir, "m", lm_driver);
    char cmd[700], out[16384];
    snprintf(cmd, sizeof cmd, "nm -u '%s/m.o'", dir);
    if (run_cmd(cmd, out, sizeof out) != 0) {
        print_message("nm not found: the undefined-symbol check is skipped\n");
    } else {
        static const char *const allowed[] = { "memcpy", "memmove", "memset", "expf", "exp", "logf", "log",
                                               "log1pf", "log1p", "sinf", "sin", "cosf", "cos", "tanhf", "tanh",
                                               "sqrtf", "sqrt", "fmaf", "fma", "powf", "pow", "fmodf", "fmod" };
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
            char *sym = strrchr(line, ' ');
            sym = sym ? sym + 1 : line;
            bool ok = false;
            for (size_t i = 0; i < TU_LEN(allowed); i++)
                ok |= !strcmp(sym, allowed[i]);
            if (!ok)
                fail_msg("the object needs symbol \"%s\", which is not a libc or libm function", sym);
        }
    }
    snprintf(cmd, sizeof cmd, "readelf -d '%s/prog'", dir);
    if (run_cmd(cmd, out, sizeof out) != 0) {
        print_message("readelf not found: the dynamic-section check is skipped\n");
    } else {
        int needed = 0;
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
            if (!strstr(line, "(NEEDED)"))
                continue;
            needed++;
            if (!strstr(line, "[libc.so.6]") && !strstr(line, "[libm.so.6]"))
                fail_msg("the binary needs more than libc and libm: %s", line);
        }
        assert_true(needed >= 1);
    }
    lm_free(&m);
    tmpdir_free(dir);
}

static void patch_file(const char *dir, const char *from, const char *to, long at, int xor_byte, long truncate_to)
{
    size_t n;
    unsigned char *d = read_file(dir, from, &n);
    if (at >= 0) {
        assert_true((size_t)at < n);
        d[at] ^= (unsigned char)xor_byte;
    }
    write_file(dir, to, d, truncate_to >= 0 ? (size_t)truncate_to : n);
    free(d);
}

static void expect_refused(const char *dir, const char *file, int code, const char *fragment)
{
    char args[700], out[4096];
    snprintf(args, sizeof args, "in.bin out.bin %s", file);
    int rc = run_driver(dir, args, out, sizeof out);
    if (rc != 10 + code || !strstr(out, fragment))
        fail_msg("weights file %s: exit %d (want %d) and \"%s\" (want \"%s\")", file, rc, 10 + code, out, fragment);
}

static void test_aot_weights_file_checked(void **state)
{
    (void)state;
    NEED_CC();
    char *dir = tmpdir_new(), *other = tmpdir_new();
    lm m;
    lm_new(&m, 14);
    loom_aot_info info;
    assert_int_equal(lm_export(&m, dir, "m", NULL, true, &info), LOOM_OK);
    build_driver(dir, "m", lm_driver);
    /* the object holds no weights: the file's give the JIT's results */
    assert_true(info.object_bytes < info.weights_bytes + 100000);
    lm_check(&m, dir, "m.weights", true);
    /* without them the entries refuse to run */
    char out[4096];
    static lm_inputs in;
    lm_inputs_make(&in, 3);
    write_file(dir, "in.bin", &in, sizeof in);
    int rc = run_driver(dir, "in.bin out.bin", out, sizeof out);
    if (rc != 10 + 2 || !strstr(out, "no weights"))
        fail_msg("no weights: exit %d, %s", rc, out);

    size_t n;
    free(read_file(dir, "m.weights", &n));
    assert_int_equal(n, 64 + info.weights_bytes);
    patch_file(dir, "m.weights", "corrupt.weights", 64 + 100, 0x01, -1);
    expect_refused(dir, "corrupt.weights", 9, "corrupt (checksum mismatch)");
    patch_file(dir, "m.weights", "truncated.weights", -1, 0, (long)n - 1);
    expect_refused(dir, "truncated.weights", 5, "truncated");
    patch_file(dir, "m.weights", "short.weights", -1, 0, 40);
    expect_refused(dir, "short.weights", 5, "truncated");
    patch_file(dir, "m.weights", "magic.weights", 0, 0x20, -1);
    expect_refused(dir, "magic.weights", 6, "not a loom weights file");
    patch_file(dir, "m.weights", "version.weights", 8, 0x02, -1);
    expect_refused(dir, "version.weights", 7, "another format version");
    patch_file(dir, "m.weights", "hash.weights", 16, 0x01, -1);
    expect_refused(dir, "hash.weights", 8, "another model");
    /* trailing bytes */
    unsigned char *d = read_file(dir, "m.weights", &n);
    unsigned char *d2 = realloc(d, n + 8);
    assert_non_null(d2);
    memset(d2 + n, 0, 8);
    write_file(dir, "long.weights", d2, n + 8);
    free(d2);
    expect_refused(dir, "long.weights", 6, "bytes after the weights");
    expect_refused(dir, "missing.weights", 4, "cannot be opened");

    /* another model's weights (another seed: same graph, same hash, fine;
     * another tape: another hash) */
    lm m2;
    lm_new(&m2, 15);
    loom_t extra = loom_tanh(m2.ctx, m2.slogits); /* a different step entry */
    loom_aot_entry e = { .name = "step", .ninputs = 3, .inputs = (loom_t[]){ m2.sids, m2.sh, m2.sc },
                         .noutputs = 1, .outputs = &extra };
    assert_int_equal(loom_aot_emit(m2.ctx, other, &(loom_aot_options){ .prefix = "m", .weights_file = true,
                                                                      .nentries = 1, .entries = &e },
                                   NULL),
                     LOOM_OK);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "cp '%s/m.weights' '%s/other.weights'", other, dir);
    assert_int_equal(system(cmd), 0);
    expect_refused(dir, "other.weights", 8, "another model");
    lm_free(&m2);
    lm_free(&m);
    tmpdir_free(other);
    tmpdir_free(dir);
}

/* An embedding index out of range: the entry returns E_INDEX with the
 * status words set, as loom_run reports LOOM_ERR_INDEX. */
static void test_aot_index_error(void **state)
{
    (void)state;
    NEED_CC();
    char *dir = tmpdir_new();
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .threads = 1 });
    loom_embedding emb;
    loom_embedding_init(ctx, &emb, "emb", 5, 8, LOOM_F32);
    loom_t ids = loom_input(ctx, "ids", LOOM_I32, LOOM_SHAPE(3));
    loom_t y = loom_embedding_forward(ctx, &emb, ids);
    TU_OK(ctx);
    loom_aot_entry e = { .name = "embed", .ninputs = 1, .inputs = &ids, .noutputs = 1, .outputs = &y };
    assert_int_equal(loom_aot_emit(ctx, dir, &(loom_aot_options){ .prefix = "g", .nentries = 1, .entries = &e }, NULL),
                     LOOM_OK);
    static const char driver[] =
        "#include <stdio.h>\n#include <stdlib.h>\n#include \"g.h\"\n"
        "int main(void) {\n"
        "    void *mem = aligned_alloc(G_ALIGN, (G_MEMORY_BYTES + G_ALIGN - 1) / G_ALIGN * G_ALIGN);\n"
        "    int32_t ok[3] = { 0, 4, 2 }, bad[3] = { 1, 7, 2 };\n"
        "    float y[G_EMBED_OUT0_COUNT];\n"
        "    int rc = g_embed(mem, NULL, ok, y);\n"
        "    printf(\"ok %d %.9g\\n\", rc, y[8]);\n"
        "    rc = g_embed(mem, NULL, bad, y);\n"
        "    const int32_t *st = (const int32_t *)((char *)mem + G_EMBED_STATUS_OFFSET);\n"
        "    printf(\"bad %d %s: position %d index %d range %d\\n\", rc, g_strerror(rc), st[0] - 1, st[1], st[2]);\n"
        "    rc = g_embed((char *)mem + 8, NULL, ok, y);\n"
        "    printf(\"misaligned %d\\n\", rc);\n"
        "    free(mem);\n"
        "    return 0;\n"
        "}\n";
    build_driver(dir, "g", driver);
    char out[4096], want[256];
    assert_int_equal(run_driver(dir, "", out, sizeof out), 0);
    const float *table = loom_param_data(ctx, emb.weight); /* row 4, column 0 is y[8] */
    snprintf(want, sizeof want, "ok 0 %.9g\nbad 3 an index (gather or scatter-add) is out of range: position 1 index 7 "
             "range 5\nmisaligned 1\n", table[4 * 8]);
    assert_string_equal(out, want);
    /* the JIT says the same */
    loom_feed(ctx, ids, (int32_t[]){ 1, 7, 2 }, 12);
    assert_int_equal(loom_run(ctx, 1, &y), LOOM_ERR_INDEX);
    loom_ctx_free(ctx);
    tmpdir_free(dir);
}

/* A training step as one commit entry: forward, backward and the SGD
 * update, the weights updated in the caller's copy. Two steps match two
 * loom_run steps of the JIT. */
static void test_aot_training_step(void **state)
{
    (void)state;
    NEED_CC();
    char *dir = tmpdir_new();
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .threads = 1, .seed = 5 });
    loom_t W = loom_param(ctx, "W", LOOM_F32, LOOM_SHAPE(4, 3));
    loom_t bias = loom_param(ctx, "b", LOOM_F32, LOOM_SHAPE(3));
    loom_param_init_normal(ctx, W, 0, 0.5);
    loom_param_init_normal(ctx, bias, 0, 0.5);
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(5, 4));
    loom_t t = loom_input(ctx, "target", LOOM_F32, LOOM_SHAPE(5, 3));
    loom_t y = loom_tanh(ctx, loom_add(ctx, loom_matmul(ctx, x, W), bias));
    loom_t loss = loom_mean_all(ctx, loom_square(ctx, loom_sub(ctx, y, t)));
    loom_backward(ctx, loss);
    loom_assign(ctx, W, loom_sub(ctx, W, loom_muls(ctx, loom_grad(ctx, W), 0.5)));
    loom_assign(ctx, bias, loom_sub(ctx, bias, loom_muls(ctx, loom_grad(ctx, bias), 0.5)));
    TU_OK(ctx);
    loom_aot_entry e = { .name = "train", .ninputs = 2, .inputs = (loom_t[]){ x, t }, .noutputs = 1,
                         .outputs = &loss, .output_names = (const char *const[]){ "loss" }, .commit = true };
    loom_aot_info info;
    assert_int_equal(loom_aot_emit(ctx, dir, &(loom_aot_options){ .prefix = "tr", .nentries = 1, .entries = &e }, &info),
                     LOOM_OK);
    static const char driver[] =
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include \"tr.h\"\n"
        "int main(void) {\n"
        "    void *mem = aligned_alloc(TR_ALIGN, (TR_MEMORY_BYTES + TR_ALIGN - 1) / TR_ALIGN * TR_ALIGN);\n"
        "    void *w = aligned_alloc(TR_ALIGN, TR_WEIGHTS_BYTES);\n"
        "    float x[TR_TRAIN_X_COUNT], t[TR_TRAIN_TARGET_COUNT], loss;\n"
        "    for (int i = 0; i < TR_TRAIN_X_COUNT; i++) x[i] = (float)(i % 7) / 7.0f - 0.4f;\n"
        "    for (int i = 0; i < TR_TRAIN_TARGET_COUNT; i++) t[i] = (float)(i % 3) / 3.0f - 0.3f;\n"
        "    int rc = tr_train(mem, NULL, x, t, &loss);\n"
        "    printf(\"null %d\\n\", rc);\n"
        "    memcpy(w, tr_weights(), TR_WEIGHTS_BYTES);\n"
        "    for (int s = 0; s < 2; s++) {\n"
        "        rc = tr_train(mem, w, x, t, &loss);\n"
        "        printf(\"%d %.9g\\n\", rc, loss);\n"
        "    }\n"
        "    FILE *f = fopen(\"w.bin\", \"wb\");\n"
        "    if (!f || fwrite(w, 1, TR_WEIGHTS_BYTES, f) != TR_WEIGHTS_BYTES || fclose(f) != 0) return 1;\n"
        "    return 0;\n"
        "}\n";
    build_driver(dir, "tr", driver);
    char out[4096];
    assert_int_equal(run_driver(dir, "", out, sizeof out), 0);
    float xv[20], tv[15];
    for (int i = 0; i < 20; i++)
        xv[i] = (float)(i % 7) / 7.0f - 0.4f;
    for (int i = 0; i < 15; i++)
        tv[i] = (float)(i % 3) / 3.0f - 0.3f;
    loom_feed(ctx, x, xv, sizeof xv);
    loom_feed(ctx, t, tv, sizeof tv);
    char want[256];
    size_t len = (size_t)snprintf(want, sizeof want, "null 2\n");
    for (int s = 0; s < 2; s++) {
        assert_int_equal(loom_run(ctx, 1, &loss), LOOM_OK);
        len += (size_t)snprintf(want + len, sizeof want - len, "0 %.9g\n", loom_item(ctx, loss));
    }
    assert_string_equal(out, want);
    size_t n;
    float *w = read_file(dir, "w.bin", &n);
    assert_int_equal(n, info.weights_bytes);
    assert_bitwise(w, loom_param_data(ctx, W), 12, "W after two steps");
    assert_bitwise(w + 16, loom_param_data(ctx, bias), 3, "b after two steps");
    free(w);
    loom_ctx_free(ctx);
    tmpdir_free(dir);
}

/* A loom_optimizer (Adam) in a commit entry: the scalars it feeds each
 * step (step size, bias correction) become the entry's last arguments,
 * computed by the caller; two steps match two loom_optimizer_step. */
static void test_aot_adam_step(void **state)
{
    (void)state;
    NEED_CC();
    char *dir = tmpdir_new();
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .threads = 1, .seed = 6 });
    loom_t W = loom_param(ctx, "W", LOOM_F32, LOOM_SHAPE(4, 3));
    loom_t bias = loom_param(ctx, "b", LOOM_F32, LOOM_SHAPE(3));
    loom_param_init_normal(ctx, W, 0, 0.5);
    loom_param_init_normal(ctx, bias, 0, 0.5);
    loom_optimizer *opt = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = 0.05 });
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(5, 4));
    loom_t t = loom_input(ctx, "target", LOOM_F32, LOOM_SHAPE(5, 3));
    loom_t y = loom_tanh(ctx, loom_add(ctx, loom_matmul(ctx, x, W), bias));
    loom_t loss = loom_mean_all(ctx, loom_square(ctx, loom_sub(ctx, y, t)));
    assert_int_equal(loom_optimizer_attach(ctx, opt, loss), LOOM_OK);
    loom_aot_entry e = { .name = "train", .ninputs = 2, .inputs = (loom_t[]){ x, t }, .noutputs = 1,
                         .outputs = &loss, .output_names = (const char *const[]){ "loss" }, .commit = true };
    assert_int_equal(loom_aot_emit(ctx, dir, &(loom_aot_options){ .prefix = "ad", .nentries = 1, .entries = &e }, NULL),
                     LOOM_OK);
    /* the prototype's order of the two scalars */
    size_t n;
    char *hdr = read_file(dir, "ad.h", &n);
    hdr[n] = 0;
    char *proto = strstr(hdr, "int ad_train(");
    assert_non_null(proto);
    char *ss = strstr(proto, "*optim_step_size_f32"), *bc = strstr(proto, "*optim_bias_correction2_sqrt_f32");
    assert_non_null(ss);
    assert_non_null(bc);
    assert_non_null(strstr(hdr, "lr / (1 - beta1^k)"));
    const char *args = ss < bc ? "&step_size, &bc2" : "&bc2, &step_size";
    free(hdr);
    char driver[4096];
    snprintf(driver, sizeof driver,
             "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include \"ad.h\"\n"
             "int main(void) {\n"
             "    void *mem = aligned_alloc(AD_ALIGN, (AD_MEMORY_BYTES + AD_ALIGN - 1) / AD_ALIGN * AD_ALIGN);\n"
             "    void *w = aligned_alloc(AD_ALIGN, AD_WEIGHTS_BYTES);\n"
             "    float x[AD_TRAIN_X_COUNT], t[AD_TRAIN_TARGET_COUNT], loss;\n"
             "    for (int i = 0; i < AD_TRAIN_X_COUNT; i++) x[i] = (float)(i %% 7) / 7.0f - 0.4f;\n"
             "    for (int i = 0; i < AD_TRAIN_TARGET_COUNT; i++) t[i] = (float)(i %% 3) / 3.0f - 0.3f;\n"
             "    memcpy(w, ad_weights(), AD_WEIGHTS_BYTES);\n"
             "    for (int k = 1; k <= 2; k++) {\n"
             "        float step_size = (float)(0.05 / (1 - pow(0.9, k))), bc2 = (float)sqrt(1 - pow(0.999, k));\n"
             "        int rc = ad_train(mem, w, x, t, %s, &loss);\n"
             "        printf(\"%%d %%.9g\\n\", rc, loss);\n"
             "    }\n"
             "    FILE *f = fopen(\"w.bin\", \"wb\");\n"
             "    if (!f || fwrite(w, 1, AD_WEIGHTS_BYTES, f) != AD_WEIGHTS_BYTES || fclose(f) != 0) return 1;\n"
             "    return 0;\n"
             "}\n",
             args);
    build_driver(dir, "ad", driver);
    char out[4096];
    assert_int_equal(run_driver(dir, "", out, sizeof out), 0);
    float xv[20], tv[15];
    for (int i = 0; i < 20; i++)
        xv[i] = (float)(i % 7) / 7.0f - 0.4f;
    for (int i = 0; i < 15; i++)
        tv[i] = (float)(i % 3) / 3.0f - 0.3f;
    loom_feed(ctx, x, xv, sizeof xv);
    loom_feed(ctx, t, tv, sizeof tv);
    char want[256];
    size_t len = 0;
    for (int k = 0; k < 2; k++) {
        assert_int_equal(loom_optimizer_step(ctx, opt, 1, &loss), LOOM_OK);
        len += (size_t)snprintf(want + len, sizeof want - len, "0 %.9g\n", loom_item(ctx, loss));
    }
    assert_string_equal(out, want);
    float *w = read_file(dir, "w.bin", &n);
    assert_bitwise(w, loom_param_data(ctx, W), 12, "W after two Adam steps");
    assert_bitwise(w + 16, loom_param_data(ctx, bias), 3, "b after two Adam steps");
    free(w);
    loom_optimizer_free(opt);
    loom_ctx_free(ctx);
    tmpdir_free(dir);
}

/* Random ops (dropout when training) read the key the JIT fills from the
 * seed and the run counter: the entry takes it as a last argument
 * "rng_key", and with the JIT's key gives the JIT's mask. */
static void test_aot_random_key_argument(void **state)
{
    (void)state;
    NEED_CC();
    char *dir = tmpdir_new();
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .threads = 1, .seed = 0x1234567890ull });
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(4, 64));
    loom_t y = loom_dropout(ctx, loom_tanh(ctx, x), 0.5, true);
    TU_OK(ctx);
    loom_aot_entry e = { .name = "drop", .ninputs = 1, .inputs = &x, .noutputs = 1, .outputs = &y,
                         .output_names = (const char *const[]){ "y" } };
    assert_int_equal(loom_aot_emit(ctx, dir, &(loom_aot_options){ .prefix = "r", .nentries = 1, .entries = &e }, NULL),
                     LOOM_OK);
    char cmd[700], out[4096];
    snprintf(cmd, sizeof cmd, "grep -c 'const int32_t \\*rng_key' '%s/r.h'", dir);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    static const char driver[] =
        "#include <stdio.h>\n#include <stdlib.h>\n#include \"r.h\"\n"
        "int main(int argc, char **argv) {\n"
        "    void *mem = aligned_alloc(R_ALIGN, (R_MEMORY_BYTES + R_ALIGN - 1) / R_ALIGN * R_ALIGN);\n"
        "    float x[R_DROP_X_COUNT], y[R_DROP_Y_COUNT];\n"
        "    int32_t key[4];\n"
        "    for (int i = 0; i < 4; i++) key[i] = (int32_t)strtoul(argv[1 + i], NULL, 0);\n"
        "    for (int i = 0; i < R_DROP_X_COUNT; i++) x[i] = (float)(i % 13) / 13.0f - 0.5f;\n"
        "    if (argc < 5 || r_drop(mem, NULL, x, key, y) != R_OK) return 1;\n"
        "    FILE *f = fopen(\"y.bin\", \"wb\");\n"
        "    if (!f || fwrite(y, sizeof y, 1, f) != 1 || fclose(f) != 0) return 1;\n"
        "    return 0;\n"
        "}\n";
    build_driver(dir, "r", driver);
    float xv[256];
    for (int i = 0; i < 256; i++)
        xv[i] = (float)(i % 13) / 13.0f - 0.5f;
    loom_feed(ctx, x, xv, sizeof xv);
    for (int run = 0; run < 2; run++) {
        loom_stats st;
        loom_get_stats(ctx, &st); /* the key of this run: seed, run counter */
        assert_int_equal(loom_run(ctx, 1, &y), LOOM_OK);
        char args[200];
        uint64_t seed = 0x1234567890ull;
        snprintf(args, sizeof args, "%u %u %u %u", (unsigned)seed, (unsigned)(seed >> 32), (unsigned)st.runs,
                 (unsigned)(st.runs >> 32));
        assert_int_equal(run_driver(dir, args, out, sizeof out), 0);
        size_t n;
        float *got = read_file(dir, "y.bin", &n);
        assert_int_equal(n, sizeof xv);
        const float *want = loom_data(ctx, y);
        int zeros = 0;
        for (int i = 0; i < 256; i++)
            zeros += want[i] == 0;
        assert_true(zeros > 64 && zeros < 192); /* a mask was drawn */
        assert_bitwise(got, want, 256, "dropout output");
        free(got);
    }
    loom_ctx_free(ctx);
    tmpdir_free(dir);
}

/* Bad requests: a status code and a message naming the cause, no files. */
static void test_aot_bad_arguments(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .threads = 1 });
    loom_t W = loom_param(ctx, "W", LOOM_F32, LOOM_SHAPE(4, 3));
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(2, 4));
    loom_t unfed = loom_input(ctx, "unfed", LOOM_F32, LOOM_SHAPE(2, 3));
    loom_t y = loom_matmul(ctx, x, W);
    loom_t z = loom_add(ctx, y, unfed);
    TU_OK(ctx);
    loom_aot_entry e = { .name = "run", .ninputs = 1, .inputs = &x, .noutputs = 1, .outputs = &y };
    loom_aot_options o = { .prefix = "m", .nentries = 1, .entries = &e };

    assert_int_equal(loom_aot_emit(NULL, dir, &o, NULL), LOOM_ERR_HANDLE);

    o.cpu = "pentium9";
    assert_int_equal(loom_aot_emit(ctx, dir, &o, NULL), LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "unknown CPU \"pentium9\"", "x86-64-v3");
    loom_clear_error(ctx);
    o.cpu = NULL;

    o.prefix = "my model";
    assert_int_equal(loom_aot_emit(ctx, dir, &o, NULL), LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "prefix \"my model\"", "C identifier");
    loom_clear_error(ctx);
    o.prefix = "m";

    char missing[600];
    snprintf(missing, sizeof missing, "%s/no/such/dir", dir);
    assert_int_equal(loom_aot_emit(ctx, missing, &o, NULL), LOOM_ERR_IO);
    tu_assert_error(ctx, LOOM_ERR_IO, "no/such/dir", "No such file");
    loom_clear_error(ctx);

    /* an input that is not a loom_input */
    e.inputs = &y;
    assert_int_equal(loom_aot_emit(ctx, dir, &o, NULL), LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "input 0 is a matmul node", "not a loom_input");
    loom_clear_error(ctx);
    e.inputs = &x;

    /* an input read but neither listed nor fed */
    e.outputs = &z;
    assert_int_equal(loom_aot_emit(ctx, dir, &o, NULL), LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "reads input \"unfed\"", "neither among its inputs nor fed");
    loom_clear_error(ctx);
    e.outputs = &y;

    /* names */
    e.name = "2run";
    assert_int_equal(loom_aot_emit(ctx, dir, &o, NULL), LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "entry 0: name \"2run\"", "C identifier");
    loom_clear_error(ctx);
    e.name = "run";
    e.output_names = (const char *const[]){ "x" };
    assert_int_equal(loom_aot_emit(ctx, dir, &o, NULL), LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "output name \"x\"", "taken");
    loom_clear_error(ctx);
    e.output_names = (const char *const[]){ "weights" };
    assert_int_equal(loom_aot_emit(ctx, dir, &o, NULL), LOOM_ERR_ARG);
    loom_clear_error(ctx);
    e.output_names = NULL;
    e.commit = true;
    assert_int_equal(loom_aot_emit(ctx, dir, &o, NULL), LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "commits", "no loom_assign");
    loom_clear_error(ctx);
    e.commit = false;

    /* a stale handle */
    loom_t stale = y;
    o.nentries = 0;
    assert_int_equal(loom_aot_emit(ctx, dir, &o, NULL), LOOM_ERR_ARG);
    loom_clear_error(ctx);
    o.nentries = 1;
    loom_reset(ctx);
    e.outputs = &stale;
    assert_int_equal(loom_aot_emit(ctx, dir, &o, NULL), LOOM_ERR_HANDLE);
    loom_clear_error(ctx);

    /* nothing was written by any of these */
    char out[4096], cmd[700];
    snprintf(cmd, sizeof cmd, "ls -A '%s'", dir);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    assert_string_equal(out, "");
    loom_ctx_free(ctx);
    tmpdir_free(dir);
}

/* ------------------------------------------------------------------ */
/* The training step in three entries: forward, backward, update      */
/* ------------------------------------------------------------------ */

/* The argument names of prototype fn in the header text hdr, after
 * memory and weights, into names[0..max); returns how many. */
static int proto_args(const char *hdr, const char *fn, char (*names)[64], int max)
{
    char key[128];
    snprintf(key, sizeof key, "int %s(", fn);
    const char *p = strstr(hdr, key);
    if (!p)
        fail_msg("no prototype \"%s\" in the header", key);
    p += strlen(key);
    const char *end = strstr(p, ");");
    assert_non_null(end);
    int n = 0, k = 0;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        if (!comma)
            comma = end;
        const char *e = comma, *b;
        while (e > p && !(isalnum((unsigned char)e[-1]) || e[-1] == '_'))
            e--;
        for (b = e; b > p && (isalnum((unsigned char)b[-1]) || b[-1] == '_'); b--)
            ;
        if (k++ >= 2) { /* memory, weights */
            assert_true(n < max && e - b < 64);
            memcpy(names[n], b, (size_t)(e - b));
            names[n++][e - b] = 0;
        }
        p = comma + 1;
    }
    return n;
}

/* The header's text (a string to free). */
static char *read_header(const char *dir, const char *name)
{
    size_t n;
    char *h = read_file(dir, name, &n);
    h[n] = 0;
    return h;
}

/* The per-step scalars of entry fn as the driver's arguments: Adam's
 * step size and bias correction, in the prototype's order. */
static void adam_args(const char *hdr, const char *fn, char *out, size_t size)
{
    char names[64][64];
    int n = proto_args(hdr, fn, names, 64);
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        const char *v = !strcmp(names[i], "optim_step_size_f32")               ? "&step_size"
                        : !strcmp(names[i], "optim_bias_correction2_sqrt_f32") ? "&bc2"
                                                                                : NULL;
        if (v)
            snprintf(out + strlen(out), size - strlen(out), "%s%s", out[0] ? ", " : "", v);
    }
    assert_non_null(strstr(out, "&step_size"));
    assert_non_null(strstr(out, "&bc2"));
}

enum { TB_V = 9, TB_H = 12, TB_T = 5, TB_B = 2, TB_NP = 7, TB_STEPS = 3 };
#define TB_LR 0.02
#define TB_CLIP 0.05

/* A char-level LSTM LM's training step with Adam and clipping, the state
 * in inputs, as loom train records it. */
typedef struct tb {
    loom_ctx *ctx;
    loom_embedding emb;
    loom_rnn *rnn;
    loom_linear head;
    loom_optimizer *opt;
    loom_t ids, targets, h, c; /* [T, B], [T * B], [1, B, H] x2 */
    loom_t loss, h_out, c_out;
} tb;

static void tb_new(tb *m)
{
    memset(m, 0, sizeof *m);
    m->ctx = loom_ctx_new(&(loom_options){ .seed = 31, .threads = 1 });
    assert_non_null(m->ctx);
    loom_ctx *ctx = m->ctx;
    loom_embedding_init(ctx, &m->emb, "emb", TB_V, TB_H, LOOM_F32);
    m->rnn = loom_rnn_new(ctx, "rnn", &(loom_rnn_config){ .mode = LOOM_LSTM, .input_size = TB_H, .hidden_size = TB_H });
    loom_linear_init(ctx, &m->head, "head", TB_H, TB_V, true, LOOM_F32);
    m->opt = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = TB_LR, .clip_norm = TB_CLIP });
    m->ids = loom_input(ctx, "ids", LOOM_I32, LOOM_SHAPE(TB_T, TB_B));
    m->targets = loom_input(ctx, "targets", LOOM_I32, LOOM_SHAPE(TB_T * TB_B));
    m->h = loom_input(ctx, "h", LOOM_F32, LOOM_SHAPE(1, TB_B, TB_H));
    m->c = loom_input(ctx, "c", LOOM_F32, LOOM_SHAPE(1, TB_B, TB_H));
    loom_t x = loom_embedding_forward(ctx, &m->emb, m->ids);
    loom_rnn_state init = { m->h, m->c }, fin;
    loom_t out;
    loom_rnn_forward(ctx, m->rnn, x, &init, LOOM_NULL, true, &out, &fin);
    loom_t logits = loom_linear_forward(ctx, &m->head, loom_reshape(ctx, out, LOOM_SHAPE(TB_T * TB_B, TB_H)));
    m->loss = loom_cross_entropy(ctx, logits, m->targets);
    m->h_out = fin.h;
    m->c_out = fin.c;
    assert_int_equal(loom_optimizer_attach(ctx, m->opt, m->loss), LOOM_OK);
    TU_OK(ctx);
}

static void tb_free(tb *m)
{
    loom_optimizer_free(m->opt);
    loom_rnn_free(m->rnn);
    loom_ctx_free(m->ctx);
}

/* The driver's inputs, in its order. */
typedef struct tb_inputs {
    int32_t ids[TB_T * TB_B], targets[TB_T * TB_B];
    float h[TB_B * TB_H], c[TB_B * TB_H];
} tb_inputs;

static void tb_feed(tb *m, const tb_inputs *in)
{
    loom_feed(m->ctx, m->ids, in->ids, sizeof in->ids);
    loom_feed(m->ctx, m->targets, in->targets, sizeof in->targets);
    loom_feed(m->ctx, m->h, in->h, sizeof in->h);
    loom_feed(m->ctx, m->c, in->c, sizeof in->c);
}

/* argv[1] "grads": one backward, its outputs to grads.bin; "split": three
 * steps of forward, backward and update; "train": three steps of the
 * train entry; either writes the weights to w_<mode>.bin and prints each
 * step's losses (and the update's gradient norm). */
static const char tb_driver[] =
    "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include \"tb.h\"\n"
    "#define G(i) static float g##i[TB_BACKWARD_G##i##_COUNT];\n"
    "G(0) G(1) G(2) G(3) G(4) G(5) G(6)\n"
    "#define GRADS g0, g1, g2, g3, g4, g5, g6\n"
    "static int32_t ids[TB_FORWARD_IDS_COUNT], targets[TB_FORWARD_TARGETS_COUNT];\n"
    "static float h[TB_FORWARD_H_COUNT], c[TB_FORWARD_C_COUNT], hT[TB_FORWARD_H_OUT_COUNT], cT[TB_FORWARD_C_OUT_COUNT];\n"
    "static void rd(FILE *f, void *p, size_t n) { if (fread(p, 1, n, f) != n) exit(3); }\n"
    "static void wr(FILE *f, const void *p, size_t n) { if (fwrite(p, 1, n, f) != n) exit(4); }\n"
    "static void check(int rc, const char *what) {\n"
    "    if (rc != TB_OK) { printf(\"%%s: %%s\\n\", what, tb_strerror(rc)); exit(10 + rc); }\n"
    "}\n"
    "int main(int argc, char **argv) {\n"
    "    FILE *in = fopen(\"in.bin\", \"rb\");\n"
    "    if (argc < 2 || !in) return 2;\n"
    "    rd(in, ids, sizeof ids); rd(in, targets, sizeof targets); rd(in, h, sizeof h); rd(in, c, sizeof c);\n"
    "    fclose(in);\n"
    "    void *mem = aligned_alloc(TB_ALIGN, (TB_MEMORY_BYTES + TB_ALIGN - 1) / TB_ALIGN * TB_ALIGN);\n"
    "    void *w = aligned_alloc(TB_ALIGN, TB_WEIGHTS_BYTES);\n"
    "    if (!mem || !w) return 2;\n"
    "    memcpy(w, tb_weights(), TB_WEIGHTS_BYTES);\n"
    "    float loss, loss_b, norm;\n"
    "    if (!strcmp(argv[1], \"grads\")) {\n"
    "        check(tb_backward(mem, w, ids, targets, h, c, &loss, hT, cT, GRADS), \"backward\");\n"
    "        FILE *o = fopen(\"grads.bin\", \"wb\");\n"
    "        if (!o) return 4;\n"
    "        wr(o, &loss, sizeof loss); wr(o, hT, sizeof hT); wr(o, cT, sizeof cT);\n"
    "        wr(o, g0, sizeof g0); wr(o, g1, sizeof g1); wr(o, g2, sizeof g2); wr(o, g3, sizeof g3);\n"
    "        wr(o, g4, sizeof g4); wr(o, g5, sizeof g5); wr(o, g6, sizeof g6);\n"
    "        return fclose(o) != 0;\n"
    "    }\n"
    "    int split = !strcmp(argv[1], \"split\");\n"
    "    for (int k = 1; k <= %d; k++) {\n"
    "        float step_size = (float)(%.17g / (1 - pow(0.9, k))), bc2 = (float)sqrt(1 - pow(0.999, k));\n"
    "        if (split) {\n"
    "            check(tb_forward(mem, w, ids, targets, h, c, &loss, hT, cT), \"forward\");\n"
    "            check(tb_backward(mem, w, ids, targets, h, c, &loss_b, hT, cT, GRADS), \"backward\");\n"
    "            check(tb_update(mem, w, GRADS, %s, &norm), \"update\");\n"
    "            printf(\"%%.9g %%.9g %%.9g\\n\", loss, loss_b, norm);\n"
    "        } else {\n"
    "            check(tb_train(mem, w, ids, targets, h, c, %s, &loss, hT, cT), \"train\");\n"
    "            printf(\"%%.9g\\n\", loss);\n"
    "        }\n"
    "    }\n"
    "    FILE *o = fopen(split ? \"w_split.bin\" : \"w_train.bin\", \"wb\");\n"
    "    if (!o) return 4;\n"
    "    wr(o, w, TB_WEIGHTS_BYTES);\n"
    "    free(mem);\n"
    "    free(w);\n"
    "    return fclose(o) != 0;\n"
    "}\n";

/* loom_optimizer_attach_grads and commit entries that apply their own
 * assignments: one tape with the training step in one entry ("train",
 * the optimizer's update from loom_backward's gradients) and in three
 * ("forward"; "backward", whose outputs are the gradients; "update", from
 * gradient inputs, recorded by a second optimizer on the same state
 * buffers). The backward's gradients are bitwise the JIT's loom_grad
 * values; three steps of forward, backward and update leave the weights
 * (parameters and Adam's moments) of three train steps and of three
 * loom_optimizer_step of the JIT, within 1e-6 relative, with clipping in
 * effect. */
static void test_aot_training_bundle(void **state)
{
    (void)state;
    NEED_CC();
    char *dir = tmpdir_new();
    tb m;
    tb_new(&m);
    loom_ctx *ctx = m.ctx;
    /* the trainable parameters (not the moments attach made), their
     * gradients, and inputs for them */
    loom_t params[TB_NP], grads[TB_NP], dins[TB_NP];
    int np = 0;
    for (size_t i = 0; i < loom_param_count(ctx); i++) {
        loom_t p = loom_param_at(ctx, i);
        if (!loom_param_trainable(ctx, p))
            continue;
        assert_true(np < TB_NP);
        char name[16];
        snprintf(name, sizeof name, "g%d", np);
        params[np] = p;
        grads[np] = loom_grad(ctx, p);
        assert_false(loom_is_null(grads[np]));
        dins[np++] = loom_input(ctx, name, LOOM_F32, loom_shape_of(ctx, p));
    }
    assert_int_equal(np, TB_NP);
    loom_optimizer *upd = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = TB_LR,
                                                                        .clip_norm = TB_CLIP });
    size_t nbefore = loom_param_count(ctx);
    assert_int_equal(loom_optimizer_attach_grads(ctx, upd, TB_NP, params, dins), LOOM_OK);
    assert_int_equal(loom_param_count(ctx), nbefore); /* the same moments, found by name */
    static const char *const step_names[] = { "loss", "h_out", "c_out" };
    static const char *const bwd_names[] = { "loss", "h_out", "c_out", "g0", "g1", "g2", "g3", "g4", "g5", "g6" };
    loom_t ins[4] = { m.ids, m.targets, m.h, m.c };
    loom_t bwd_out[3 + TB_NP] = { m.loss, m.h_out, m.c_out };
    memcpy(bwd_out + 3, grads, sizeof grads);
    loom_t norm = loom_optimizer_grad_norm(upd);
    loom_aot_entry entries[4] = {
        { .name = "train", .ninputs = 4, .inputs = ins, .noutputs = 3, .outputs = (loom_t[]){ m.loss, m.h_out, m.c_out },
          .output_names = step_names, .commit = true },
        { .name = "forward", .ninputs = 4, .inputs = ins, .noutputs = 3,
          .outputs = (loom_t[]){ m.loss, m.h_out, m.c_out }, .output_names = step_names },
        { .name = "backward", .ninputs = 4, .inputs = ins, .noutputs = 3 + TB_NP, .outputs = bwd_out,
          .output_names = bwd_names },
        { .name = "update", .ninputs = TB_NP, .inputs = dins, .noutputs = 1, .outputs = &norm,
          .output_names = (const char *const[]){ "grad_norm" }, .commit = true },
    };
    loom_aot_info info;
    assert_int_equal(loom_aot_emit(ctx, dir, &(loom_aot_options){ .prefix = "tb", .nentries = 4, .entries = entries },
                                   &info),
                     LOOM_OK);
    char *hdr = read_header(dir, "tb.h"), train_args[128], update_args[128];
    adam_args(hdr, "tb_train", train_args, sizeof train_args);
    adam_args(hdr, "tb_update", update_args, sizeof update_args);
    /* the update reads the gradients and the scalars, nothing else */
    char names[64][64];
    assert_int_equal(proto_args(hdr, "tb_update", names, 64), TB_NP + 2 + 1);
    free(hdr);
    char driver[8192];
    snprintf(driver, sizeof driver, tb_driver, TB_STEPS, TB_LR, update_args, train_args);
    build_driver(dir, "tb", driver);

    static tb_inputs in;
    uint32_t s = 77;
    for (int i = 0; i < TB_T * TB_B; i++) {
        in.ids[i] = (int32_t)((s = s * 1664525u + 1013904223u) >> 8) % TB_V;
        in.targets[i] = (int32_t)((s = s * 1664525u + 1013904223u) >> 8) % TB_V;
    }
    for (int i = 0; i < TB_B * TB_H; i++) {
        in.h[i] = (float)((int)((s = s * 1664525u + 1013904223u) >> 20) - 2048) / 8192.0f;
        in.c[i] = (float)((int)((s = s * 1664525u + 1013904223u) >> 20) - 2048) / 4096.0f;
    }
    write_file(dir, "in.bin", &in, sizeof in);

    /* the gradients: bitwise the JIT's (the same plan) */
    char out[4096];
    int rc = run_driver(dir, "grads", out, sizeof out);
    if (rc != 0)
        fail_msg("driver (grads) exited %d: %s", rc, out);
    tb_feed(&m, &in);
    assert_int_equal(loom_eval(ctx, 3 + TB_NP, bwd_out), LOOM_OK);
    size_t n;
    float *got = read_file(dir, "grads.bin", &n);
    size_t at = 0;
    for (int i = 0; i < 3 + TB_NP; i++) {
        size_t k = (size_t)loom_shape_numel(loom_shape_of(ctx, bwd_out[i]));
        assert_true((at + k) * sizeof(float) <= n);
        assert_bitwise(got + at, loom_data(ctx, bwd_out[i]), k, bwd_names[i]);
        at += k;
    }
    assert_int_equal(at * sizeof(float), n);
    free(got);

    /* three steps: split, in one call, and the JIT's */
    char split_out[4096], train_out[4096];
    if ((rc = run_driver(dir, "split", split_out, sizeof split_out)) != 0)
        fail_msg("driver (split) exited %d: %s", rc, split_out);
    if ((rc = run_driver(dir, "train", train_out, sizeof train_out)) != 0)
        fail_msg("driver (train) exited %d: %s", rc, train_out);
    tb jit;
    tb_new(&jit);
    const char *sp = split_out, *tp = train_out;
    for (int k = 0; k < TB_STEPS; k++) {
        tb_feed(&jit, &in);
        assert_int_equal(loom_optimizer_step(jit.ctx, jit.opt, 1, &jit.loss), LOOM_OK);
        float want = (float)loom_item(jit.ctx, jit.loss), lf, lb, gn, lt;
        char *end;
        lf = strtof(sp, &end), sp = end;
        lb = strtof(sp, &end), sp = end;
        gn = strtof(sp, &end), sp = end;
        lt = strtof(tp, &end), tp = end;
        print_message("step %d: loss %.7f (JIT %.7f, train entry %.7f), gradient norm %.4f\n", k + 1, lf, want, lt, gn);
        assert_rel(&lf, &want, 1, 1e-6, "forward loss");
        assert_rel(&lb, &want, 1, 1e-6, "backward loss");
        assert_rel(&lt, &want, 1, 1e-6, "train loss");
        assert_true(gn > TB_CLIP); /* the clipping is in effect */
    }
    float *ws = read_file(dir, "w_split.bin", &n);
    assert_int_equal(n, info.weights_bytes);
    float *wt = read_file(dir, "w_train.bin", &n);
    assert_int_equal(n, info.weights_bytes);
    assert_rel(ws, wt, n / sizeof(float), 1e-6, "weights: split vs train entry");
    /* the JIT's parameters and moments, by name; the weights hold every
     * parameter of the context, by id, each 64-byte aligned */
    at = 0;
    for (size_t i = 0; i < loom_param_count(ctx); i++) {
        loom_t p = loom_param_at(ctx, i);
        const char *name = loom_param_name(ctx, p);
        loom_t q = loom_param_find(jit.ctx, name);
        assert_false(loom_is_null(q));
        size_t k = (size_t)loom_shape_numel(loom_shape_of(ctx, p));
        assert_true(at + k * sizeof(float) <= n);
        char what[128];
        snprintf(what, sizeof what, "%s after %d steps (split vs JIT)", name, TB_STEPS);
        assert_rel((const float *)((const char *)ws + at), loom_param_data(jit.ctx, q), k, 1e-6, what);
        at = (at + k * sizeof(float) + 63) / 64 * 64;
    }
    assert_int_equal(at, info.weights_bytes);
    /* and the parameters moved */
    const float *w0 = loom_param_data(ctx, params[0]);
    assert_true(memcmp(ws, w0, 16 * sizeof(float)) != 0);
    free(ws);
    free(wt);
    tb_free(&jit);
    loom_optimizer_free(upd);
    tb_free(&m);
    tmpdir_free(dir);
}

/* loom_optimizer_attach_grads checks its arguments (a status code and a
 * message naming the cause); from given gradients it updates the given
 * parameters only. A commit entry whose every assignment reads another
 * entry's inputs is refused. */
static void test_aot_attach_grads_checks(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .threads = 1, .seed = 8 });
    loom_t W = loom_param(ctx, "W", LOOM_F32, LOOM_SHAPE(4, 3));
    loom_t b = loom_param(ctx, "b", LOOM_F32, LOOM_SHAPE(3));
    loom_t F = loom_param(ctx, "F", LOOM_F32, LOOM_SHAPE(2));
    loom_t buf = loom_buffer(ctx, "buf", LOOM_F32, LOOM_SHAPE(2));
    loom_param_init_normal(ctx, W, 0, 0.5);
    loom_param_init_normal(ctx, b, 0, 0.5);
    loom_param_init_normal(ctx, F, 0, 0.5);
    assert_int_equal(loom_param_set_trainable(ctx, F, false), LOOM_OK);
    loom_optimizer *opt = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_SGD, .lr = 0.25 });
    loom_t gW = loom_input(ctx, "gW", LOOM_F32, LOOM_SHAPE(4, 3));
    loom_t gb = loom_input(ctx, "gb", LOOM_F32, LOOM_SHAPE(3));
    loom_t g64 = loom_input(ctx, "g64", LOOM_F64, LOOM_SHAPE(4, 3));
    TU_OK(ctx);
    struct {
        int n;
        loom_t p[2], g[2];
        bool null_lists;
        loom_code code;
        const char *frag1, *frag2;
    } cases[] = {
        { 0, { W }, { gW }, false, LOOM_ERR_ARG, "n = 0", "at least one" },
        { 1, { W }, { gW }, true, LOOM_ERR_ARG, "no list of parameters", "NULL" },
        { 1, { gW }, { gW }, false, LOOM_ERR_HANDLE, "params[0]", "not a parameter" },
        { 1, { F }, { gb }, false, LOOM_ERR_ARG, "\"F\" is frozen", "trainable" },
        { 1, { buf }, { gb }, false, LOOM_ERR_ARG, "\"buf\" is a buffer", "trainable" },
        { 2, { W, W }, { gW, gW }, false, LOOM_ERR_ARG, "params[1] is params[0]", "again" },
        { 1, { W }, { gb }, false, LOOM_ERR_SHAPE, "grads[0] is f32[3]", "\"W\" is f32[4,3]" },
        { 1, { W }, { g64 }, false, LOOM_ERR_DTYPE, "grads[0] is f64[4,3]", "\"W\" is f32[4,3]" },
        { 2, { W, b }, { gW, LOOM_NULL }, false, LOOM_ERR_HANDLE, "grads[1]", "null handle" },
    };
    for (size_t i = 0; i < TU_LEN(cases); i++) {
        loom_code rc = loom_optimizer_attach_grads(ctx, opt, cases[i].n, cases[i].null_lists ? NULL : cases[i].p,
                                                   cases[i].null_lists ? NULL : cases[i].g);
        if (rc != cases[i].code)
            fail_msg("case %zu: %s, want %s: %s", i, loom_code_name(rc), loom_code_name(cases[i].code),
                     loom_errmsg(ctx));
        tu_assert_error(ctx, cases[i].code, cases[i].frag1, cases[i].frag2);
        loom_clear_error(ctx);
    }
    assert_int_equal(loom_optimizer_attach_grads(NULL, opt, 1, &W, &gW), LOOM_ERR_HANDLE);
    assert_int_equal(loom_optimizer_attach_grads(ctx, opt, 2, (loom_t[]){ W, b }, (loom_t[]){ gW, gb }), LOOM_OK);
    assert_int_equal(loom_optimizer_attach_grads(ctx, opt, 1, &W, &gW), LOOM_ERR_STATE);
    tu_assert_error(ctx, LOOM_ERR_STATE, "attached to this tape already", "once per tape");
    loom_clear_error(ctx);

    /* one SGD step from fed gradients: W - 0.25 gW, b - 0.25 gb; F alone */
    float w0[12], b0[3], f0[2], gwv[12], gbv[3];
    memcpy(w0, loom_param_data(ctx, W), sizeof w0);
    memcpy(b0, loom_param_data(ctx, b), sizeof b0);
    memcpy(f0, loom_param_data(ctx, F), sizeof f0);
    for (int i = 0; i < 12; i++)
        gwv[i] = (float)(i - 5) / 8.0f;
    for (int i = 0; i < 3; i++)
        gbv[i] = (float)(i + 1) / 4.0f;
    loom_feed(ctx, gW, gwv, sizeof gwv);
    loom_feed(ctx, gb, gbv, sizeof gbv);
    loom_t norm = loom_optimizer_grad_norm(opt);
    assert_int_equal(loom_optimizer_step(ctx, opt, 1, &norm), LOOM_OK);
    double sq = 0;
    for (int i = 0; i < 12; i++)
        sq += (double)gwv[i] * gwv[i];
    for (int i = 0; i < 3; i++)
        sq += (double)gbv[i] * gbv[i];
    assert_true(fabs(loom_item(ctx, norm) - sqrt(sq)) < 1e-5);
    float want_w[12], want_b[3];
    for (int i = 0; i < 12; i++)
        want_w[i] = w0[i] - gwv[i] * 0.25f;
    for (int i = 0; i < 3; i++)
        want_b[i] = b0[i] - gbv[i] * 0.25f;
    assert_rel(loom_param_data(ctx, W), want_w, 12, 1e-6, "W after the step");
    assert_rel(loom_param_data(ctx, b), want_b, 3, 1e-6, "b after the step");
    assert_memory_equal(loom_param_data(ctx, F), f0, sizeof f0);

    /* an entry committing the update without its gradient inputs, which
     * another entry takes: nothing of the tape's is its own to apply */
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(2, 4));
    loom_t y = loom_matmul(ctx, x, W);
    loom_aot_entry e[2] = {
        { .name = "update", .ninputs = 2, .inputs = (loom_t[]){ gW, gb }, .noutputs = 1, .outputs = &norm,
          .commit = true },
        { .name = "apply", .ninputs = 1, .inputs = &x, .noutputs = 1, .outputs = &y, .commit = true },
    };
    assert_int_equal(loom_aot_emit(ctx, dir, &(loom_aot_options){ .prefix = "ag", .nentries = 2, .entries = e }, NULL),
                     LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "entry \"apply\" commits", "reads another entry's input");
    loom_clear_error(ctx);
    loom_optimizer_free(opt);
    loom_ctx_free(ctx);
    tmpdir_free(dir);
}
/* `loom export --main`: the printed cc line builds the sampler, which
 * draws the same text as `loom sample` for the same seed; with
 * --weights-file it refuses a damaged weights file. `--train`: the train
 * entry's loss is the sequence entry's cross-entropy and falls; forward,
 * backward and update, three steps, leave its weights. */
static void test_aot_cli_export_sampler(void **state)
{
    (void)state;
    NEED_CC();
    if (!loom_bin) {
        print_message("no loom binary given: the export command test is skipped\n");
        skip();
    }
    char *dir = tmpdir_new();
    /* a tiny model on a text of a few words */
    static const char *const words[] = { "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog" };
    char text[6000];
    size_t n = 0;
    uint32_t s = 9;
    while (n < sizeof text - 16) {
        s = s * 1664525u + 1013904223u;
        const char *w = words[(s >> 8) % TU_LEN(words)];
        n += (size_t)snprintf(text + n, sizeof text - n, "%s%c", w, (s >> 20) % 8 ? ' ' : '\n');
    }
    write_file(dir, "data.txt", text, n);
    char cmd[4096], out[16384];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' train --data data.txt --hidden 24 --layers 2 --seq-len 16 --batch 4 "
             "--steps 20 --val-every 20 --threads 1 --seed 3 --out run", dir, loom_bin);
    if (run_cmd(cmd, out, sizeof out) != 0)
        fail_msg("loom train failed: %s", out);
    for (int wf = 0; wf < 2; wf++) {
        snprintf(cmd, sizeof cmd, "cd '%s' && '%s' export run/best.safetensors -o exp%d --main%s", dir, loom_bin, wf,
                 wf ? " --weights-file --cpu x86-64-v3" : "");
        if (run_cmd(cmd, out, sizeof out) != 0)
            fail_msg("loom export failed: %s", out);
        /* the cc line it prints, as printed (cc being the system's C compiler) */
        char *line = strstr(out, "\ncc ");
        assert_non_null(line);
        line++;
        char *end = strchr(line, '\n');
        assert_non_null(end);
        *end = 0;
        char build[2048];
        if (run_cmd("command -v cc", build, sizeof build) == 0)
            snprintf(build, sizeof build, "cd '%s' && %s", dir, line);
        else
            snprintf(build, sizeof build, "cd '%s' && %s %s", dir, test_cc(), line + 3);
        if (run_cmd(build, out, sizeof out) != 0)
            fail_msg("the printed cc line failed: %s\n%s", build, out);
        const char *w = wf ? " -w exp1/charlm.weights" : "";
        char a[4096], b[4096];
        snprintf(cmd, sizeof cmd, "cd '%s' && ./exp%d/sample -n 300 -t 0.8 -s 7 -p 'the fox '%s", dir, wf, w);
        assert_int_equal(run_cmd(cmd, a, sizeof a), 0);
        snprintf(cmd, sizeof cmd, "cd '%s' && '%s' sample run/best.safetensors --length 300 --temperature 0.8 "
                 "--seed 7 --prime 'the fox '", dir, loom_bin);
        assert_int_equal(run_cmd(cmd, b, sizeof b), 0);
        assert_int_equal(strlen(a), 308);
        if (strcmp(a, b) != 0)
            fail_msg("the sampler and loom sample differ:\n%s\n---\n%s", a, b);
        if (!wf)
            print_message("sampler: %.60s\n", a);
    }
    /* --train: the training step's loss is the mean cross-entropy of the
     * sequence entry's logits on the same bytes, and three steps on one
     * batch lower it */
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' export run/best.safetensors -o exp2 --train", dir, loom_bin);
    if (run_cmd(cmd, out, sizeof out) != 0)
        fail_msg("loom export --train failed: %s", out);
    char *from = strstr(out, "state from step ");
    assert_non_null(from);
    long k0 = strtol(from + 16, NULL, 10) + 1;
    assert_int_equal(k0, 21); /* 20 steps were trained */
    size_t hn;
    char *hdr = read_file(dir, "exp2/charlm.h", &hn);
    hdr[hn] = 0;
    char *proto = strstr(hdr, "int charlm_train(");
    assert_non_null(proto);
    char *ssz = strstr(proto, "*optim_step_size_f32"), *bc2 = strstr(proto, "*optim_bias_correction2_sqrt_f32");
    assert_true(ssz && bc2);
    const char *order = ssz < bc2 ? "&step_size, &bc2" : "&bc2, &step_size";
    free(hdr);
    char driver[4096];
    snprintf(driver, sizeof driver,
             "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include \"charlm.h\"\n"
             "enum { T = CHARLM_TRAIN_TARGETS_COUNT, V = CHARLM_SEQ_LOGITS_COUNT / T };\n"
             "int main(void) {\n"
             "    void *mem, *w;\n"
             "    if (posix_memalign(&mem, CHARLM_ALIGN, CHARLM_MEMORY_BYTES) || posix_memalign(&w, CHARLM_ALIGN, CHARLM_WEIGHTS_BYTES)) return 2;\n"
             "    memcpy(w, charlm_weights(), CHARLM_WEIGHTS_BYTES);\n"
             "    static int32_t ids[T], targets[T], len = T;\n"
             "    static float h[CHARLM_TRAIN_H_COUNT], c[CHARLM_TRAIN_C_COUNT], logits[CHARLM_SEQ_LOGITS_COUNT], hT[CHARLM_TRAIN_H_COUNT], cT[CHARLM_TRAIN_C_COUNT];\n"
             "    for (int i = 0; i < T; i++) { ids[i] = (i * 7) %% V; targets[i] = (i * 7 + 3) %% V; }\n"
             "    if (charlm_seq(mem, w, ids, &len, h, c, logits, hT, cT) != CHARLM_OK) return 3;\n"
             "    double ce = 0;\n"
             "    for (int t = 0; t < T; t++) {\n"
             "        double m = -1e30, z = 0;\n"
             "        for (int v = 0; v < V; v++) m = fmax(m, logits[t * V + v]);\n"
             "        for (int v = 0; v < V; v++) z += exp(logits[t * V + v] - m);\n"
             "        ce += m + log(z) - logits[t * V + targets[t]];\n"
             "    }\n"
             "    printf(\"%%.7f\", ce / T);\n"
             "    for (int k = %ld; k < %ld + 3; k++) {\n"
             "        float step_size = (float)(2e-3 / (1 - pow(0.9, k))), bc2 = (float)sqrt(1 - pow(0.999, k)), loss;\n"
             "        memset(h, 0, sizeof h); memset(c, 0, sizeof c);\n"
             "        int rc = charlm_train(mem, w, ids, targets, h, c, %s, &loss, h, c);\n"
             "        if (rc != CHARLM_OK) { printf(\" train: %%s\", charlm_strerror(rc)); return 4; }\n"
             "        printf(\" %%.7f\", loss);\n"
             "    }\n"
             "    return 0;\n"
             "}\n",
             k0, k0, order);
    write_file(dir, "exp2/driver.c", driver, strlen(driver));
    snprintf(cmd, sizeof cmd, "cd '%s/exp2' && %s -O1 -Wall -Werror -o train driver.c charlm.o -lm && ./train", dir,
             test_cc());
    if (run_cmd(cmd, out, sizeof out) != 0)
        fail_msg("the training driver failed: %s", out);
    double ce, l[3];
    assert_int_equal(sscanf(out, "%lf %lf %lf %lf", &ce, &l[0], &l[1], &l[2]), 4);
    print_message("train entry: cross-entropy %.5f, losses %.5f %.5f %.5f\n", ce, l[0], l[1], l[2]);
    assert_true(fabs(l[0] - ce) <= 1e-5 * fmax(1, ce));
    assert_true(l[2] < l[1] && l[1] < l[0]);

    /* the same step in three calls: forward, backward (a gradient per
     * parameter, named after it) and update give the train entry's losses
     * and weights */
    hdr = read_header(dir, "exp2/charlm.h");
    char names[64][64], update_args[128];
    int nb = proto_args(hdr, "charlm_backward", names, 64);
    adam_args(hdr, "charlm_update", update_args, sizeof update_args);
    assert_non_null(strstr(hdr, "float *d_rnn_weight_ih_l0"));
    assert_non_null(strstr(hdr, "float *d_head_bias"));
    free(hdr);
    char decl[4096] = "", list[2048] = "";
    int ngrads = 0;
    for (int i = 0; i < nb; i++) {
        if (strncmp(names[i], "d_", 2))
            continue;
        char up[64];
        for (size_t k = 0; k <= strlen(names[i]); k++)
            up[k] = (char)toupper((unsigned char)names[i][k]);
        snprintf(decl + strlen(decl), sizeof decl - strlen(decl),
                 "static float %.63s[CHARLM_BACKWARD_%.63s_COUNT];\n", names[i], up);
        snprintf(list + strlen(list), sizeof list - strlen(list), ", %.63s", names[i]);
        ngrads++;
    }
    assert_int_equal(ngrads, 1 + 8 + 2); /* the embedding, two LSTM layers, the head */
    static char bundle[16384];
    snprintf(bundle, sizeof bundle,
             "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include \"charlm.h\"\n"
             "enum { T = CHARLM_TRAIN_TARGETS_COUNT, V = CHARLM_SEQ_LOGITS_COUNT / T };\n"
             "%s"
             "static void save(const char *path, const void *p) {\n"
             "    FILE *f = fopen(path, \"wb\");\n"
             "    if (!f || fwrite(p, 1, CHARLM_WEIGHTS_BYTES, f) != CHARLM_WEIGHTS_BYTES || fclose(f) != 0) exit(5);\n"
             "}\n"
             "int main(void) {\n"
             "    void *mem, *w1, *w2;\n"
             "    if (posix_memalign(&mem, CHARLM_ALIGN, CHARLM_MEMORY_BYTES) || posix_memalign(&w1, CHARLM_ALIGN, CHARLM_WEIGHTS_BYTES) ||\n"
             "        posix_memalign(&w2, CHARLM_ALIGN, CHARLM_WEIGHTS_BYTES)) return 2;\n"
             "    memcpy(w1, charlm_weights(), CHARLM_WEIGHTS_BYTES);\n"
             "    memcpy(w2, charlm_weights(), CHARLM_WEIGHTS_BYTES);\n"
             "    static int32_t ids[T], targets[T];\n"
             "    static float h[CHARLM_TRAIN_H_COUNT], c[CHARLM_TRAIN_C_COUNT], hT[CHARLM_TRAIN_H_COUNT], cT[CHARLM_TRAIN_C_COUNT];\n"
             "    for (int i = 0; i < T; i++) { ids[i] = (i * 5) %% V; targets[i] = (i * 5 + 2) %% V; }\n"
             "    for (int k = %ld; k < %ld + 3; k++) {\n"
             "        float step_size = (float)(2e-3 / (1 - pow(0.9, k))), bc2 = (float)sqrt(1 - pow(0.999, k));\n"
             "        float lt, lf, lb, norm;\n"
             "        int rc = charlm_train(mem, w1, ids, targets, h, c, %s, &lt, hT, cT);\n"
             "        if (!rc) rc = charlm_forward(mem, w2, ids, targets, h, c, &lf, hT, cT);\n"
             "        if (!rc) rc = charlm_backward(mem, w2, ids, targets, h, c, &lb, hT, cT%s);\n"
             "        if (!rc) rc = charlm_update(mem, w2%s, %s, &norm);\n"
             "        if (rc) { printf(\"%%s\\n\", charlm_strerror(rc)); return 3; }\n"
             "        printf(\"%%.9g %%.9g %%.9g %%.9g\\n\", lt, lf, lb, norm);\n"
             "    }\n"
             "    save(\"w_train.bin\", w1);\n"
             "    save(\"w_split.bin\", w2);\n"
             "    return 0;\n"
             "}\n",
             decl, k0, k0, order, list, list, update_args);
    write_file(dir, "exp2/bundle.c", bundle, strlen(bundle));
    snprintf(cmd, sizeof cmd, "cd '%s/exp2' && %s -O1 -Wall -Werror -o bundle bundle.c charlm.o -lm && ./bundle", dir,
             test_cc());
    if (run_cmd(cmd, out, sizeof out) != 0)
        fail_msg("the bundle driver failed: %s", out);
    const char *o = out;
    for (int k = 0; k < 3; k++) {
        char *end;
        float lt = strtof(o, &end), lf = strtof(end, &end), lb = strtof(end, &end), gn = strtof(end, &end);
        o = end;
        if (k == 0)
            print_message("bundle: loss %.5f (train entry %.5f), gradient norm %.4f\n", lf, lt, gn);
        assert_rel(&lf, &lt, 1, 1e-6, "forward loss vs train");
        assert_rel(&lb, &lt, 1, 1e-6, "backward loss vs train");
        assert_true(gn > 0 && isfinite(gn));
    }
    float *w1 = read_file(dir, "exp2/w_train.bin", &hn);
    size_t hn2;
    float *w2 = read_file(dir, "exp2/w_split.bin", &hn2);
    assert_int_equal(hn, hn2);
    assert_rel(w2, w1, hn / sizeof(float), 1e-6, "weights after three steps: split vs train entry");
    free(w1);
    free(w2);

    patch_file(dir, "exp1/charlm.weights", "exp1/bad.weights", 64 + 7, 0x10, -1);
    snprintf(cmd, sizeof cmd, "cd '%s' && ./exp1/sample -n 10 -w exp1/bad.weights", dir);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "corrupt (checksum mismatch)"));
    snprintf(cmd, sizeof cmd, "cd '%s' && ./exp1/sample -n 10", dir); /* charlm.weights is not in the cwd */
    assert_int_equal(run_cmd(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "cannot be opened"));
    tmpdir_free(dir);
}

/* ------------------------------------------------------------------ */
/* `loom export --main` of a forecaster (examples/forecast.c)         */
/* ------------------------------------------------------------------ */

static const char *forecast_bin; /* build/examples/forecast, argv[2] */

/* The number after "key": in a config's JSON (NAN if absent). */
static double json_number(const char *json, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *at = strstr(json, k);
    return at ? strtod(at + strlen(k), NULL) : NAN;
}

/* What the JIT forecasts for series y[0..n): the checkpoint's model on
 * the last window, z-scored with its config's statistics, k steps, each
 * fed back. */
static void forecast_jit(const char *ckpt, const double *y, int n, int k, double *out)
{
    char cfg[1024];
    loom_ctx *meta = loom_ctx_new(NULL);
    assert_int_equal(loom_checkpoint_config(meta, ckpt, cfg, sizeof cfg), LOOM_OK);
    loom_ctx_free(meta);
    double mean = json_number(cfg, "mean"), std = json_number(cfg, "std");
    int W = (int)json_number(cfg, "window"), H = (int)json_number(cfg, "hidden");
    assert_true(isfinite(mean) && std > 0 && W > 1 && W <= n && H > 0);
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .threads = 1 });
    loom_rnn *rnn = loom_rnn_new(ctx, "rnn", &(loom_rnn_config){ .mode = strstr(cfg, "\"gru\"") ? LOOM_GRU : LOOM_LSTM,
                                                                 .input_size = 1, .hidden_size = H });
    loom_linear head;
    loom_linear_init(ctx, &head, "head", H, 1, true, LOOM_F32);
    assert_int_equal(loom_checkpoint_load(ctx, ckpt, NULL, LOOM_LOAD_ALLOW_UNEXPECTED), LOOM_OK);
    loom_t x = loom_input(ctx, "window", LOOM_F32, LOOM_SHAPE(W, 1, 1));
    loom_t seq;
    loom_rnn_state last;
    loom_rnn_forward(ctx, rnn, x, NULL, LOOM_NULL, false, &seq, &last);
    loom_t pred = loom_linear_forward(ctx, &head, loom_reshape(ctx, last.h, LOOM_SHAPE(1, H)));
    TU_OK(ctx);
    double *z = malloc((size_t)(W + k) * sizeof *z);
    float *win = malloc((size_t)W * sizeof *win);
    assert_true(z && win);
    for (int i = 0; i < W; i++)
        z[i] = (y[n - W + i] - mean) / std;
    for (int t = 0; t < k; t++) {
        double zl = z[t + W - 1];
        for (int i = 0; i < W; i++)
            win[i] = (float)(z[t + i] - zl);
        loom_feed(ctx, x, win, (size_t)W * sizeof *win);
        assert_int_equal(loom_run(ctx, 1, &pred), LOOM_OK);
        z[W + t] = zl + (double)((const float *)loom_data(ctx, pred))[0];
        out[t] = z[W + t] * std + mean;
    }
    free(z);
    free(win);
    loom_rnn_free(rnn);
    loom_ctx_free(ctx);
}

/* Runs cmd in dir; fails unless it exits with status; output in out. */
static void expect_run(const char *dir, const char *cmd, int status, char *out, size_t size)
{
    char full[2048];
    snprintf(full, sizeof full, "cd '%s' && %s", dir, cmd);
    int rc = run_cmd(full, out, size);
    if (rc != status)
        fail_msg("%s: exit %d (want %d): %s", cmd, rc, status, out);
}

/* A checkpoint of examples/forecast --tiny exported with --main: the
 * printed cc line builds the forecaster, which forecasts what the JIT
 * model does (1e-5 relative) one and five steps ahead, from a file, from
 * stdin, from a CSV column; bad lines, too short a series, a missing
 * column and bad arguments are refused with a message. */
static void test_aot_cli_export_forecaster(void **state)
{
    (void)state;
    NEED_CC();
    if (!loom_bin || !forecast_bin) {
        print_message("no loom or forecast binary given: the forecaster export test is skipped\n");
        skip();
    }
    char *dir = tmpdir_new();
    char cmd[4096], out[16384];
    snprintf(cmd, sizeof cmd, "cd '%s' && LOOM_THREADS=1 '%s' --tiny --out f.safetensors", dir, forecast_bin);
    if (run_cmd(cmd, out, sizeof out) != 0)
        fail_msg("forecast --tiny failed: %s", out);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' export f.safetensors -o fexp --main", dir, loom_bin);
    if (run_cmd(cmd, out, sizeof out) != 0)
        fail_msg("loom export failed: %s", out);
    assert_non_null(strstr(out, "forecaster_forecast"));
    char *line = strstr(out, "\ncc ");
    assert_non_null(line);
    line++;
    *strchr(line, '\n') = 0;
    char build[2048];
    if (run_cmd("command -v cc", build, sizeof build) == 0)
        snprintf(build, sizeof build, "cd '%s' && %s", dir, line);
    else
        snprintf(build, sizeof build, "cd '%s' && %s %s", dir, test_cc(), line + 3);
    if (run_cmd(build, out, sizeof out) != 0)
        fail_msg("the printed cc line failed: %s\n%s", build, out);
    /* the generated program is clean C11 */
    snprintf(cmd, sizeof cmd, "cd '%s/fexp' && %s -std=c11 -O1 -Wall -Wextra -Werror -c -o /dev/null main.c", dir,
             test_cc());
    if (run_cmd(cmd, out, sizeof out) != 0)
        fail_msg("main.c has warnings: %s", out);

    /* a series near the training one's level: trend, season, wiggle */
    enum { N = 60, K = 5 };
    double y[N];
    char text[4096] = "", csv[4096] = "day,value\n";
    for (int t = 0; t < N; t++) {
        y[t] = 55.0 + 0.03 * t + 4.0 * sin(6.283185307179586 * t / 12.0) + 0.7 * sin(1.7 * t);
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s%.6f%s\n", t == 30 ? "\n  " : "", y[t],
                 t % 7 == 3 ? "\r" : "");
        snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "d%d, %.6f\n", t, y[t]);
        y[t] = strtod(strrchr(csv, ',') + 1, NULL); /* as printed */
    }
    write_file(dir, "series.txt", text, strlen(text));
    write_file(dir, "series.csv", csv, strlen(csv));
    char ckpt[600];
    snprintf(ckpt, sizeof ckpt, "%s/f.safetensors", dir);
    double want[K];
    forecast_jit(ckpt, y, N, K, want);

    char a[4096], b[4096], c[4096];
    expect_run(dir, "./fexp/forecast series.txt", 0, a, sizeof a);
    double got = strtod(a, NULL);
    print_message("forecaster: next value %.6f, JIT %.6f\n", got, want[0]);
    assert_true(fabs(got - want[0]) <= 1e-5 * fabs(want[0]));
    expect_run(dir, "./fexp/forecast -k 5 < series.txt", 0, b, sizeof b);
    expect_run(dir, "./fexp/forecast -c value -k 5 series.csv", 0, c, sizeof c);
    assert_string_equal(b, c);
    const char *p = b;
    for (int t = 0; t < K; t++) {
        char *end;
        double v = strtod(p, &end);
        assert_true(end != p && *end == '\n');
        if (!(fabs(v - want[t]) <= 1e-5 * fabs(want[t])))
            fail_msg("step %d ahead: forecaster %.9g, JIT %.9g", t + 1, v, want[t]);
        p = end + 1;
    }
    assert_string_equal(p, "");
    expect_run(dir, "./fexp/forecast -c 1 -k 5 series.csv", 0, c, sizeof c); /* by index, header skipped */
    assert_string_equal(b, c);

    /* bad input: the line named, status 1; bad arguments: status 2 */
    char bad[4096];
    memcpy(bad, text, strlen(text) + 1);
    char *l7 = bad;
    for (int i = 0; i < 6; i++)
        l7 = strchr(l7, '\n') + 1;
    memcpy(l7, "12.x", 4); /* line 7 */
    write_file(dir, "bad.txt", bad, strlen(bad));
    expect_run(dir, "./fexp/forecast bad.txt", 1, out, sizeof out);
    assert_non_null(strstr(out, "bad.txt:7: \"12.x"));
    assert_non_null(strstr(out, "is not a number"));
    write_file(dir, "short.txt", "1\n2\n3\n", 6);
    expect_run(dir, "./fexp/forecast short.txt", 1, out, sizeof out);
    assert_non_null(strstr(out, "3 values, but the model needs a window of 24"));
    write_file(dir, "bad.csv", "day,value\nd0,1.5\nd1,\nd2,3\n", 26);
    expect_run(dir, "./fexp/forecast -c value bad.csv", 1, out, sizeof out);
    assert_non_null(strstr(out, "bad.csv:3: column value is \"\", not a number"));
    expect_run(dir, "./fexp/forecast -c price series.csv", 1, out, sizeof out);
    assert_non_null(strstr(out, "no column named \"price\""));
    expect_run(dir, "./fexp/forecast series.csv", 1, out, sizeof out);
    assert_non_null(strstr(out, "series.csv:1: \"day,value\" is not a number"));
    expect_run(dir, "./fexp/forecast missing.txt", 1, out, sizeof out);
    assert_non_null(strstr(out, "cannot open \"missing.txt\""));
    expect_run(dir, "./fexp/forecast -k 0 series.txt", 2, out, sizeof out);
    assert_non_null(strstr(out, "-k"));
    expect_run(dir, "./fexp/forecast -x series.txt", 2, out, sizeof out);
    assert_non_null(strstr(out, "bad argument \"-x\""));

    /* a forecaster has no training bundle nor a sequence length */
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' export f.safetensors -o fexp2 --train", dir, loom_bin);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "--train"));
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' export f.safetensors -o fexp2 --seq-len 8", dir, loom_bin);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "--seq-len"));

    /* a damaged config (hidden 60000 in a file of kilobytes) is refused
     * before a model of 57 GB is made */
    loom_ctx *ctx = loom_ctx_new(NULL);
    loom_param(ctx, "rnn.weight_ih_l0", LOOM_F32, LOOM_SHAPE(4, 1));
    char path[1024];
    snprintf(path, sizeof path, "%s/damaged.safetensors", dir);
    assert_int_equal(loom_checkpoint_save(ctx, path, NULL,
                                          "{\"model\": \"forecast-rnn\", \"cell\": \"lstm\", \"mean\": 0, \"std\": 1, "
                                          "\"window\": 4, \"hidden\": 60000}"),
                     LOOM_OK);
    loom_ctx_free(ctx);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' export damaged.safetensors -o fexp3 --main", dir, loom_bin);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "damaged config"));
    tmpdir_free(dir);
}

int main(int argc, char **argv)
{
    static char bin[4096];
    static char fbin[4096];
    if (argc > 1 && realpath(argv[1], bin)) /* the tests run it from other directories */
        loom_bin = bin;
    if (argc > 2 && realpath(argv[2], fbin))
        forecast_bin = fbin;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aot_host_matches_jit_bitwise),
        cmocka_unit_test(test_aot_cpus_match_jit),
        cmocka_unit_test(test_aot_needs_libc_only),
        cmocka_unit_test(test_aot_weights_file_checked),
        cmocka_unit_test(test_aot_index_error),
        cmocka_unit_test(test_aot_training_step),
        cmocka_unit_test(test_aot_adam_step),
        cmocka_unit_test(test_aot_random_key_argument),
        cmocka_unit_test(test_aot_bad_arguments),
        cmocka_unit_test(test_aot_training_bundle),
        cmocka_unit_test(test_aot_attach_grads_checks),
        cmocka_unit_test(test_aot_cli_export_sampler),
        cmocka_unit_test(test_aot_cli_export_forecaster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
