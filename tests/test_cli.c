/*
 * test_cli.c — the `loom` command line end to end: the built binary (its
 * path is argv[1], from meson) runs as a child process on a small
 * generated text, at tiny sizes and one thread. One training run is shared
 * (group setup); the tests then sample, evaluate, plot and resume from it,
 * feed it bad arguments and broken checkpoints, and interrupt a second
 * run with SIGINT.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "testutil.h"

static const char *loom_bin;
static char tmpdir[64];

/* ------------------------------------------------------------------ */
/* Running the binary                                                 */
/* ------------------------------------------------------------------ */

/* Runs `loom args... NULL`. */
static tc_result run_args(const char *const *args) { return tc_run(loom_bin, args, NULL, NULL); }

#define LOOM(...) run_args((const char *const[]){ __VA_ARGS__, NULL })

/* ------------------------------------------------------------------ */
/* Files                                                              */
/* ------------------------------------------------------------------ */

static char *path_in(const char *name)
{
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0;
    char chunk[8192];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        tc_append(&buf, &len, chunk, k);
    fclose(f);
    if (!buf)
        tc_append(&buf, &len, "", 0);
    if (n)
        *n = len;
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* The first file in dir whose name starts with prefix (a static buffer),
 * or NULL. */
static const char *find_file(const char *dir, const char *prefix)
{
    static char found[512];
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    struct dirent *e;
    const char *res = NULL;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            snprintf(found, sizeof found, "%s/%s", dir, e->d_name);
            res = found;
            break;
        }
    closedir(d);
    return res;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

/* Rows of a run's log.csv: step, loss, val_loss (NAN when empty). */
typedef struct log_rows {
    int n;
    long step[256];
    double loss[256], val[256];
} log_rows;

static void read_log(const char *path, log_rows *lr)
{
    char *text = slurp(path, NULL);
    assert_true(strncmp(text, "step,loss,val_loss,tokens_per_s,time_s\n", 39) == 0);
    lr->n = 0;
    for (char *line = strchr(text, '\n'); line && line[1] && lr->n < 256; line = strchr(line + 1, '\n')) {
        char *p = line + 1, *end;
        lr->step[lr->n] = strtol(p, &end, 10);
        assert_true(*end == ',');
        p = end + 1;
        lr->loss[lr->n] = *p == ',' ? NAN : strtod(p, &end);
        p = strchr(p, ',') + 1;
        lr->val[lr->n] = *p == ',' ? NAN : strtod(p, &end);
        lr->n++;
    }
    free(text);
}

/* ------------------------------------------------------------------ */
/* The shared run                                                     */
/* ------------------------------------------------------------------ */

/* A text with the statistics of words: a few dozen words in random
 * order, lines of about 60 bytes. */
static void make_text(const char *path, size_t n)
{
    static const char *const words[] = { "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog",
                                         "and", "then", "runs", "into", "forest", "where", "it", "sleeps",
                                         "under", "tall", "green", "trees", "until", "morning", "comes" };
    char *buf = malloc(n + 32);
    assert_non_null(buf);
    uint64_t s = 42;
    size_t len = 0, col = 0;
    while (len < n) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        const char *w = words[(s >> 33) % TU_LEN(words)];
        size_t k = strlen(w);
        memcpy(buf + len, w, k);
        len += k, col += k;
        buf[len++] = col > 60 ? '\n' : ' ';
        if (col > 60)
            col = 0;
    }
    write_bytes(path, buf, n);
    free(buf);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/loom-test-cli-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    make_text(path_in("data.txt"), 6000);
    /* 30 steps, validated every 10 on 300 of the 600 held-out bytes */
    tc_result r = LOOM("train", "--data", path_in("data.txt"), "--hidden", "32", "--layers", "1", "--seq-len", "16",
                    "--batch", "4", "--steps", "30", "--val-every", "10", "--log-every", "5", "--lr", "0.01",
                    "--val-chars", "300", "--threads", "1", "--seed", "3", "--out", path_in("run"));
    int ok = r.status == 0 && !r.signaled;
    if (!ok)
        fprintf(stderr, "loom train failed (%d):\n%s\n%s\n", r.status, r.out, r.err);
    tc_result_free(&r);
    return ok ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */
/* ------------------------------------------------------------------ */

static void test_cli_train_writes_checkpoints_log_and_plot(void **state)
{
    (void)state;
    const char *run = path_in("run");
    char p[600];
    for (int step = 10; step <= 30; step += 10) {
        snprintf(p, sizeof p, "step-%06d-val-", step);
        if (!find_file(run, p))
            fail_msg("no checkpoint %s* in %s", p, run);
    }
    snprintf(p, sizeof p, "%s/best.safetensors", run);
    assert_true(exists(p));
    snprintf(p, sizeof p, "%s/loss.svg", run);
    assert_true(exists(p));
    /* the log: a row every 5 steps, validation every 10, the loss falls */
    log_rows lr;
    snprintf(p, sizeof p, "%s/log.csv", run);
    read_log(p, &lr);
    assert_int_equal(lr.n, 6);
    for (int i = 0; i < lr.n; i++) {
        assert_int_equal(lr.step[i], 5 * (i + 1));
        assert_true(isfinite(lr.loss[i]));
        assert_int_equal(isfinite(lr.val[i]), lr.step[i] % 10 == 0);
    }
    print_message("train loss %.3f -> %.3f, val loss %.3f -> %.3f\n", lr.loss[0], lr.loss[5], lr.val[1], lr.val[5]);
    assert_true(lr.loss[5] < lr.loss[0] - 0.3);
    assert_true(lr.val[5] < lr.val[1]);
}

static void test_cli_sample_prints_vocabulary_bytes(void **state)
{
    (void)state;
    size_t n;
    char *data = slurp(path_in("data.txt"), &n);
    bool in_vocab[256] = { false };
    for (size_t i = 0; i < n; i++)
        in_vocab[(unsigned char)data[i]] = true;
    free(data);
    const char *ckpt = path_in("run/best.safetensors");
    tc_result a = LOOM("sample", ckpt, "--length", "300", "--seed", "7", "--temperature", "0.8");
    tc_expect_status(&a, 0, "sample");
    assert_int_equal(a.nout, 300);
    for (size_t i = 0; i < a.nout; i++)
        if (!in_vocab[(unsigned char)a.out[i]])
            fail_msg("sampled byte 0x%02x at %zu is not in the text", (unsigned char)a.out[i], i);
    /* the same seed draws the same text; the prime comes first */
    tc_result b = LOOM("sample", ckpt, "--length", "300", "--seed", "7", "--temperature", "0.8");
    tc_expect_status(&b, 0, "sample again");
    assert_memory_equal(a.out, b.out, 300);
    tc_result c = LOOM("sample", ckpt, "--length", "50", "--prime", "the fox ", "--seed", "1");
    tc_expect_status(&c, 0, "sample --prime");
    assert_int_equal(c.nout, 58);
    assert_memory_equal(c.out, "the fox ", 8);
    print_message("sample: %.80s\n", a.out);
    tc_result_free(&a);
    tc_result_free(&b);
    tc_result_free(&c);
}

/* Parses "loss X nats/char, bpc Y, perplexity Z". */
static void parse_eval(const char *out, double *loss, double *bpc, double *ppl)
{
    const char *l = strstr(out, "loss "), *b = strstr(out, "bpc "), *p = strstr(out, "perplexity ");
    if (!l || !b || !p)
        fail_msg("eval printed no loss, bpc and perplexity: %s", out);
    *loss = strtod(l + 5, NULL);
    *bpc = strtod(b + 4, NULL);
    *ppl = strtod(p + 11, NULL);
}

static void test_cli_eval_matches_validation(void **state)
{
    (void)state;
    double loss, bpc, ppl;
    const char *ckpt = path_in("run/best.safetensors");
    tc_result r = LOOM("eval", ckpt, "--data", path_in("data.txt"));
    tc_expect_status(&r, 0, "eval");
    parse_eval(r.out, &loss, &bpc, &ppl);
    assert_true(loss > 0 && loss < log(30.0));
    assert_true(fabs(bpc - loss / log(2.0)) < 1e-5);
    assert_true(fabs(ppl - exp(loss)) < 1e-5 * ppl);
    tc_result_free(&r);

    /* on the held-out tail's first 300 bytes (--val-chars), eval computes
     * what training's validation did: the val loss in the best
     * checkpoint's name (the run's last) */
    size_t n;
    char *data = slurp(path_in("data.txt"), &n);
    size_t nval = (size_t)((double)n * 0.1);
    assert_true(nval > 300);
    write_bytes(path_in("val.txt"), data + n - nval, 300);
    free(data);
    const char *last = find_file(path_in("run"), "step-000030-val-");
    assert_non_null(last);
    double named = strtod(strstr(last, "-val-") + 5, NULL);
    r = LOOM("eval", ckpt, "--data", path_in("val.txt"));
    tc_expect_status(&r, 0, "eval on the validation text");
    parse_eval(r.out, &loss, &bpc, &ppl);
    print_message("val loss %.4f in training, %.6f by loom eval\n", named, loss);
    assert_true(fabs(loss - named) < 6e-5);
    tc_result_free(&r);
}

static void test_cli_plot_writes_svg(void **state)
{
    (void)state;
    const char *svg = path_in("run/loss.svg");
    remove(svg);
    tc_result r = LOOM("plot", path_in("run"));
    tc_expect_status(&r, 0, "plot");
    char *text = slurp(svg, NULL);
    assert_non_null(strstr(text, "<svg"));
    assert_non_null(strstr(text, "</svg>"));
    assert_non_null(strstr(text, "<polyline"));
    assert_non_null(strstr(text, "train loss"));
    assert_non_null(strstr(text, "val loss"));
    free(text);
    tc_result_free(&r);
    /* not a run directory */
    r = LOOM("plot", tmpdir);
    tc_expect_status(&r, 1, "plot of a directory without log.csv");
    assert_non_null(strstr(r.err, "log.csv"));
    tc_result_free(&r);
}

/* loom graph: the compiled graph as DOT, kernels as clusters, for the
 * evaluation and the training step; a missing checkpoint fails cleanly. */
static void test_cli_graph_writes_dot(void **state)
{
    (void)state;
    char ckpt[512], dot[512], dot_train[512];
    snprintf(ckpt, sizeof ckpt, "%s", path_in("run/best.safetensors"));
    snprintf(dot, sizeof dot, "%s", path_in("graph.dot"));
    snprintf(dot_train, sizeof dot_train, "%s", path_in("graph_train.dot"));
    tc_result r = LOOM("graph", ckpt, "-o", dot, "--seq-len", "3");
    tc_expect_status(&r, 0, "graph");
    tc_result_free(&r);
    r = LOOM("graph", ckpt, "-o", dot_train, "--seq-len", "3", "--train");
    tc_expect_status(&r, 0, "graph --train");
    tc_result_free(&r);
    size_t clusters[2] = { 0, 0 };
    const char *paths[2] = { dot, dot_train };
    for (int i = 0; i < 2; i++) {
        char *text = slurp(paths[i], NULL);
        assert_true(strncmp(text, "digraph", 7) == 0);
        assert_non_null(strstr(text, "gemm"));
        assert_non_null(strstr(text, " t2\""));   /* the third step is labelled */
        assert_non_null(strstr(text, " -> n"));   /* edges */
        for (const char *p = text; (p = strstr(p, "subgraph cluster_")); p++)
            clusters[i]++;
        assert_string_equal(text + strlen(text) - 2, "}\n");
        free(text);
    }
    /* the training step compiles forward, backward and update */
    assert_true(clusters[0] >= 3);
    assert_true(clusters[1] > 2 * clusters[0]);
    r = LOOM("graph", path_in("missing.safetensors"));
    tc_expect_status(&r, 1, "graph of a missing checkpoint");
    tc_result_free(&r);
}

static void test_cli_bad_arguments_exit_2(void **state)
{
    (void)state;
    const char *ckpt = path_in("run/best.safetensors");
    struct {
        const char *args[8];
        const char *named;
    } cases[] = {
        { { "train", "--hidden", "abc" }, "--hidden" },
        { { "train", "--hidden", "0" }, "--hidden" },
        { { "train", "--model", "lsmt" }, "--model" },
        { { "train", "--optimizer", "adagrad" }, "--optimizer" },
        { { "train", "--dropout", "1.5" }, "--dropout" },
        { { "train", "--lr", "nan" }, "--lr" },
        { { "train", "--lr" }, "--lr" },
        { { "train", "--hiden", "32" }, "--hiden" },
        { { "train", "--steps", "10", "--epochs", "1" }, "--epochs" },
        { { "train", "stray" }, "stray" },
        { { "sample" }, "CKPT" },
        { { "sample", ckpt, "--temperature", "-1" }, "--temperature" },
        { { "sample", ckpt, "--length", "ten" }, "--length" },
        { { "sample", ckpt, "--prime", "\x01" }, "--prime" },
        { { "eval", ckpt }, "--data" },
        { { "plot" }, "RUNDIR" },
        { { "export", ckpt }, "-o DIR" },
        { { "export", ckpt, "-o", "/tmp", "--name", "my model" }, "--name" },
        { { "export", ckpt, "-o", "/tmp", "--main", "--batch", "2" }, "--batch" },
        { { "frobnicate" }, "frobnicate" },
    };
    for (size_t i = 0; i < TU_LEN(cases); i++) {
        tc_result r = run_args(cases[i].args);
        char what[128];
        snprintf(what, sizeof what, "loom %s %s", cases[i].args[0], cases[i].args[1] ? cases[i].args[1] : "");
        tc_expect_status(&r, 2, what);
        if (!strstr(r.err, cases[i].named))
            fail_msg("%s: the message does not name %s: %s", what, cases[i].named, r.err);
        tc_result_free(&r);
    }
    /* --help on every command */
    static const char *const cmds[] = { "train", "sample", "eval", "plot" };
    for (size_t i = 0; i < TU_LEN(cmds); i++) {
        tc_result r = LOOM(cmds[i], "--help");
        tc_expect_status(&r, 0, cmds[i]);
        assert_non_null(strstr(r.out, "usage: loom"));
        tc_result_free(&r);
    }
    tc_result r = LOOM("--help");
    tc_expect_status(&r, 0, "loom --help");
    tc_result_free(&r);
}

static void test_cli_broken_files_fail_cleanly(void **state)
{
    (void)state;
    size_t n;
    char *good = slurp(path_in("run/best.safetensors"), &n);
    write_bytes(path_in("half.safetensors"), good, n / 2);
    write_bytes(path_in("short.safetensors"), good, 5);
    good[n - 3] ^= 0x5a; /* a flipped byte in the data: the checksum */
    write_bytes(path_in("flipped.safetensors"), good, n);
    write_bytes(path_in("text.safetensors"), "not a checkpoint at all, just some text", 39);
    free(good);
    static const char *const names[] = { "missing.safetensors", "half.safetensors", "short.safetensors",
                                         "flipped.safetensors", "text.safetensors" };
    for (size_t i = 0; i < TU_LEN(names); i++) {
        const char *p = path_in(names[i]);
        tc_result rs = LOOM("sample", p, "--length", "10");
        tc_result re = LOOM("eval", p, "--data", path_in("data.txt"));
        tc_result rt = LOOM("train", "--resume", p, "--steps", "50");
        tc_result rx = LOOM("export", p, "-o", path_in("never-made"));
        const tc_result *all[] = { &rs, &re, &rt, &rx };
        for (int k = 0; k < 4; k++) {
            if (all[k]->signaled || all[k]->status == 0)
                fail_msg("%s: status %d%s", names[i], all[k]->status, all[k]->signaled ? " (a signal)" : "");
            if (!strstr(all[k]->err, names[i]))
                fail_msg("%s: the message does not name the file: %s", names[i], all[k]->err);
        }
        if (i == 0)
            print_message("%s", rs.err);
        tc_result_free(&rs);
        tc_result_free(&re);
        tc_result_free(&rt);
        tc_result_free(&rx);
        assert_false(exists(path_in("never-made"))); /* nothing written for a bad checkpoint */
    }
    tc_result r = LOOM("train", "--data", path_in("no-such.txt"));
    tc_expect_status(&r, 1, "train --data missing");
    assert_non_null(strstr(r.err, "no-such.txt"));
    tc_result_free(&r);
    r = LOOM("eval", path_in("run/best.safetensors"), "--data", path_in("no-such.txt"));
    tc_expect_status(&r, 1, "eval --data missing");
    tc_result_free(&r);
}

static void test_cli_resume_continues_the_step_count(void **state)
{
    (void)state;
    const char *ckpt = find_file(path_in("run"), "step-000020-val-");
    assert_non_null(ckpt);
    char from[512];
    snprintf(from, sizeof from, "%s", ckpt);
    tc_result r = LOOM("train", "--resume", from, "--steps", "40", "--threads", "1", "--out", path_in("resumed"));
    tc_expect_status(&r, 0, "train --resume");
    assert_non_null(strstr(r.out, "steps 20 to 40"));
    assert_non_null(strstr(r.out, "the first --val-chars of it used")); /* the checkpoint's 300 */
    tc_result_free(&r);
    /* steps 21..40 were trained: the same val loss at step 30 as the
     * straight run (the state, moments, data position and validation
     * bytes came back) */
    const char *a = find_file(path_in("run"), "step-000030-val-");
    assert_non_null(a);
    char straight[512];
    snprintf(straight, sizeof straight, "%s", strstr(a, "step-"));
    const char *b = find_file(path_in("resumed"), "step-000030-val-");
    assert_non_null(b);
    assert_string_equal(strstr(b, "step-"), straight);
    assert_non_null(find_file(path_in("resumed"), "step-000040-val-"));
    log_rows lr;
    read_log(path_in("resumed/log.csv"), &lr);
    assert_true(lr.n >= 2);
    assert_int_equal(lr.step[lr.n - 1], 40);
    /* a model option that contradicts the checkpoint is a usage error */
    r = LOOM("train", "--resume", from, "--hidden", "64", "--steps", "40");
    tc_expect_status(&r, 2, "train --resume --hidden");
    assert_non_null(strstr(r.err, "--hidden"));
    tc_result_free(&r);
}

static void test_cli_sigint_leaves_a_loadable_checkpoint(void **state)
{
    (void)state;
    const char *out = path_in("interrupted");
    pid_t pid;
    int o, e;
    tc_spawn(loom_bin,
             (const char *const[]){ "train", "--data", path_in("data.txt"), "--hidden", "32", "--layers", "1",
                                    "--seq-len", "16", "--batch", "4", "--steps", "1000000", "--log-every", "5",
                                    "--val-every", "1000000", "--threads", "1", "--out", out, NULL },
             NULL, NULL, &pid, &o, &e);
    /* wait until it trains (a log row exists), then interrupt it */
    char log[600];
    snprintf(log, sizeof log, "%s/log.csv", out);
    double t0 = (double)time(NULL);
    for (;;) {
        struct stat st;
        if (stat(log, &st) == 0 && st.st_size > 40)
            break;
        if ((double)time(NULL) - t0 > 60) {
            kill(pid, SIGKILL);
            fail_msg("training wrote no log row in 60 s");
        }
        nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);
    }
    kill(pid, SIGINT);
    tc_result r;
    tc_finish(pid, o, e, &r);
    tc_expect_status(&r, 130, "train interrupted by SIGINT");
    assert_non_null(strstr(r.out, "interrupted"));
    const char *ck = find_file(out, "step-"); /* the only one: no validation ran */
    assert_non_null(ck);
    assert_non_null(strstr(ck, "-interrupted.safetensors"));
    char ckpt[512];
    snprintf(ckpt, sizeof ckpt, "%s", ck);
    tc_result_free(&r);
    r = LOOM("eval", ckpt, "--data", path_in("data.txt"), "--threads", "1");
    tc_expect_status(&r, 0, "eval of the interrupted checkpoint");
    print_message("%s", r.out);
    tc_result_free(&r);
}

int main(int argc, char **argv)
{
    loom_bin = argc > 1 ? argv[1] : getenv("LOOM_CLI");
    if (!loom_bin || access(loom_bin, X_OK) != 0) {
        fprintf(stderr, "test_cli: pass the loom binary's path as the first argument (or LOOM_CLI)\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_train_writes_checkpoints_log_and_plot),
        cmocka_unit_test(test_cli_sample_prints_vocabulary_bytes),
        cmocka_unit_test(test_cli_eval_matches_validation),
        cmocka_unit_test(test_cli_plot_writes_svg),
        cmocka_unit_test(test_cli_graph_writes_dot),
        cmocka_unit_test(test_cli_bad_arguments_exit_2),
        cmocka_unit_test(test_cli_broken_files_fail_cleanly),
        cmocka_unit_test(test_cli_resume_continues_the_step_count),
        cmocka_unit_test(test_cli_sigint_leaves_a_loadable_checkpoint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
