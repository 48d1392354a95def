/*
 * test_examples.c — the example programs end to end: each built binary
 * (paths from meson: argv[1] forecast, argv[2] tagging, argv[3] finetune,
 * argv[4] custom_cell, argv[5] fit_spiral)
 * runs as a child process on its --tiny settings at one thread, and the
 * figures it prints are held to what the example claims: the forecaster
 * beats the naive forecasts, the tagger's F1 is far above chance, every
 * fine-tuning mode lowers the target text's validation loss. Bad command
 * lines must end with status 2 and a message, unreadable files with a
 * non-zero status, never a crash.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "child.h"
#include "testutil.h"

static const char *forecast_bin, *tagging_bin, *finetune_bin, *custom_cell_bin, *fit_spiral_bin;
static char tmpdir[64];

/* ------------------------------------------------------------------ */
/* Running a binary                                                   */
/* ------------------------------------------------------------------ */

/* Runs bin with args (NULL-terminated) at one thread, in tmpdir, and
 * collects its output and status. */
static tc_result run(const char *bin, const char *const *args)
{
    static const char *const one_thread[] = { "LOOM_THREADS=1", NULL };
    return tc_run(bin, args, one_thread, tmpdir);
}

#define RUN(bin, ...) run(bin, (const char *const[]){ __VA_ARGS__, NULL })

/* The rest of the first output line that starts with prefix (leading
 * spaces skipped); fails the test if there is none. */
static const char *line_after(const tc_result *r, const char *prefix)
{
    for (const char *line = r->out; *line; line += strcspn(line, "\n"), line += *line == '\n') {
        const char *s = line + strspn(line, " ");
        if (!strncmp(s, prefix, strlen(prefix)))
            return s + strlen(prefix);
    }
    fail_msg("no line starting with \"%s\" in the output:\n%.3000s", prefix, r->out);
    return NULL;
}

/* The number after key within the line that starts at s. */
static double number_after(const char *s, const char *key)
{
    size_t len = strcspn(s, "\n");
    const char *at = strstr(s, key);
    if (!at || at >= s + len)
        fail_msg("no \"%s\" in \"%.*s\"", key, (int)len, s);
    char *end;
    double x = strtod(at + strlen(key), &end);
    if (end == at + strlen(key))
        fail_msg("no number after \"%s\" in \"%.*s\"", key, (int)len, s);
    return x;
}

static char *path_in(const char *name)
{
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* ------------------------------------------------------------------ */
/* forecast                                                           */
/* ------------------------------------------------------------------ */

/* On the generated series the test RMSE of the LSTM, and of the GRU, is
 * below both naive forecasts', and the checkpoint carries the z-score
 * statistics and the cell it was trained with. */
static void test_examples_forecast_beats_naive(void **state)
{
    (void)state;
    static const char *const cells[] = { "lstm", "gru" };
    for (size_t i = 0; i < TU_LEN(cells); i++) {
        tc_result r = RUN(forecast_bin, "--tiny", "--cell", cells[i], "--out", path_in("forecast.safetensors"));
        tc_expect_status(&r, 0, "forecast --tiny");
        const char *line = line_after(&r, "test rmse");
        double model = number_after(line, "model "), naive = number_after(line, "naive-last "),
               seasonal = number_after(line, "seasonal-naive ");
        print_message("forecast (%s): test rmse %.4f, naive last %.4f, seasonal naive %.4f\n", cells[i], model, naive,
                      seasonal);
        assert_true(model > 0 && isfinite(model));
        assert_true(model < naive);
        assert_true(model < seasonal);
        /* the statistics are in the saved metadata, as printed */
        const char *cfg = line_after(&r, "{\"model\": \"forecast-rnn\"");
        assert_true(number_after(cfg, "\"std\": ") > 0);
        assert_true(isfinite(number_after(cfg, "\"mean\": ")));
        char cell[32];
        snprintf(cell, sizeof cell, "\"cell\": \"%s\"", cells[i]);
        assert_non_null(strstr(cfg, cell));
        struct stat st;
        assert_int_equal(stat(path_in("forecast.safetensors"), &st), 0);
        tc_result_free(&r);
    }
}

/* A CSV column by header name trains and reports; a missing column, a
 * value that is not a number and a missing file fail with status 1 and a
 * message naming the problem. */
static void test_examples_forecast_csv_column(void **state)
{
    (void)state;
    char *csv = NULL;
    size_t n = 0;
    tc_append(&csv, &n, "day,price,volume\n", 17);
    for (int t = 0; t < 300; t++) {
        char line[96];
        int k = snprintf(line, sizeof line, "d%d,%.4f,%d\n", t, 20 + 5 * sin(t * 0.7) + 0.01 * t, t % 7);
        tc_append(&csv, &n, line, (size_t)k);
    }
    write_text(path_in("series.csv"), csv);
    tc_result r = RUN(forecast_bin, "--csv", path_in("series.csv"), "--column", "price", "--steps", "40", "--season",
                   "9", "--out", path_in("csv.safetensors"));
    tc_expect_status(&r, 0, "forecast --csv --column price");
    const char *line = line_after(&r, "test rmse");
    assert_true(isfinite(number_after(line, "model ")));
    assert_non_null(strstr(r.out, "300 values"));
    tc_result_free(&r);

    r = RUN(forecast_bin, "--csv", path_in("series.csv"), "--column", "close");
    tc_expect_status(&r, 1, "forecast with a column not in the header");
    assert_non_null(strstr(r.err, "no column named \"close\""));
    tc_result_free(&r);

    r = RUN(forecast_bin, "--csv", path_in("series.csv"), "--column", "0");
    tc_expect_status(&r, 1, "forecast on a text column");
    assert_non_null(strstr(r.err, "series.csv:2"));
    assert_non_null(strstr(r.err, "not a number"));
    tc_result_free(&r);

    r = RUN(forecast_bin, "--csv", path_in("no-such.csv"));
    tc_expect_status(&r, 1, "forecast on a missing file");
    assert_non_null(strstr(r.err, "cannot open"));
    tc_result_free(&r);

    write_text(path_in("short.csv"), "1\n2\n3\n");
    r = RUN(forecast_bin, "--csv", path_in("short.csv"));
    tc_expect_status(&r, 1, "forecast on three values");
    assert_non_null(strstr(r.err, "too few"));
    tc_result_free(&r);
    free(csv);
}

/* ------------------------------------------------------------------ */
/* tagging                                                            */
/* ------------------------------------------------------------------ */

/* Per-class rows for every tag, and micro and macro F1 (over the classes
 * other than O) far above what guessing from the class frequencies gets
 * (about 0.17 on this task; all O gets 0). */
static void test_examples_tagging_f1_above_chance(void **state)
{
    (void)state;
    tc_result r = RUN(tagging_bin, "--tiny");
    tc_expect_status(&r, 0, "tagging --tiny");
    static const char *const classes[] = { "O ", "NUM ", "SPAN-A ", "SPAN-B " };
    for (size_t i = 0; i < TU_LEN(classes); i++) {
        const char *row = line_after(&r, classes[i]);
        double p, rec, f;
        assert_int_equal(sscanf(row, "%lf %lf %lf", &p, &rec, &f), 3);
        assert_true(p >= 0 && p <= 1 && rec >= 0 && rec <= 1 && f >= 0 && f <= 1);
    }
    double mp, mr, micro, Mp, Mr, macro;
    assert_int_equal(sscanf(line_after(&r, "micro "), "%lf %lf %lf", &mp, &mr, &micro), 3);
    assert_int_equal(sscanf(line_after(&r, "macro "), "%lf %lf %lf", &Mp, &Mr, &macro), 3);
    double chance = number_after(line_after(&r, "token accuracy"), "chance macro f1 ");
    print_message("tagging: micro f1 %.4f, macro f1 %.4f, chance %.4f\n", micro, macro, chance);
    assert_true(chance > 0.05 && chance < 0.3);
    assert_true(macro > 0.8);
    assert_true(micro > 0.8);
    /* spans cut off by the window's end are a coin toss for any tagger;
     * the rest must be nearly all right */
    const char *cut = line_after(&r, "span tokens whose closing bracket");
    double rest = number_after(cut, "the others ");
    print_message("tagging: %.1f%% right on span tokens whose span closes in view\n", rest);
    assert_true(rest > 90);
    tc_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* finetune                                                           */
/* ------------------------------------------------------------------ */

/* Full, frozen-lower-layer and LoRA fine-tuning (loom_lora_add, and
 * written from ops) each lower the target text's validation loss; the
 * merged LoRA model computes what the adapted one did, and so does the
 * LoRA from ops; the checkpoint is where --out said. */
static void test_examples_finetune_lowers_val_loss(void **state)
{
    (void)state;
    tc_result r = RUN(finetune_bin, "--tiny", "--out", path_in("pretrained.safetensors"));
    tc_expect_status(&r, 0, "finetune --tiny");
    static const char *const modes[] = { "fine-tune full:", "fine-tune frozen:", "fine-tune lora:",
                                         "fine-tune lora-ops:" };
    double lora_after = 0;
    for (size_t i = 0; i < TU_LEN(modes); i++) {
        const char *line = line_after(&r, modes[i]);
        const char *arrow = strstr(line, " -> ");
        assert_non_null(arrow);
        const char *b = arrow;
        while (b > line && b[-1] != ' ')
            b--;
        double before = strtod(b, NULL), after = strtod(arrow + 4, NULL);
        print_message("%s val loss %.4f -> %.4f\n", modes[i], before, after);
        assert_true(isfinite(before) && isfinite(after) && after > 0);
        assert_true(after < before);
        if (i == 2)
            lora_after = after;
    }
    double merged = number_after(line_after(&r, "lora merged"), "val loss ");
    assert_true(fabs(merged - lora_after) < 1e-3);
    /* LoRA written from ops computes what loom_lora_add's does: the same
     * loss before (B is zero), and after training from the same A draws
     * nearly the same (the two sum in different orders, and training
     * amplifies rounding: ~1e-6 here, ~1e-2 after 150 steps at full size) */
    const char *cmp = line_after(&r, "lora from ops vs loom_lora_add:");
    assert_true(number_after(cmp, "before ") < 1e-4);
    assert_true(number_after(cmp, "after ") < 1e-2);
    /* frozen and LoRA train fewer parameters than full */
    long full = (long)number_after(line_after(&r, "fine-tuning full"), ": ");
    long lora = (long)number_after(line_after(&r, "fine-tuning lora"), "): ");
    assert_true(lora > 0 && lora < full / 4);
    struct stat st;
    assert_int_equal(stat(path_in("pretrained.safetensors"), &st), 0);
    tc_result_free(&r);

    write_text(path_in("tiny.txt"), "too short\n");
    r = RUN(finetune_bin, "--tiny", "--target", path_in("tiny.txt"));
    tc_expect_status(&r, 1, "finetune on a 10-character text");
    assert_non_null(strstr(r.err, "characters"));
    tc_result_free(&r);

    r = RUN(finetune_bin, "--tiny", "--pretrain", path_in("missing.txt"));
    tc_expect_status(&r, 1, "finetune on a missing file");
    assert_non_null(strstr(r.err, "cannot open"));
    tc_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* Command lines                                                      */
/* ------------------------------------------------------------------ */

/* custom_cell trains its layer-normalised LSTM on a small text: the loss
 * falls (it exits 1 otherwise) and both step times are printed. */
static void test_examples_custom_cell_trains(void **state)
{
    (void)state;
    char text[4096] = "";
    for (int i = 0; i < 40; i++)
        strcat(text, "the quick brown fox jumps over the lazy dog. ");
    char path[512];
    snprintf(path, sizeof path, "%s", path_in("custom_cell.txt"));
    write_text(path, text);
    tc_result r = run(custom_cell_bin, (const char *const[]){ path, "40", NULL });
    tc_expect_status(&r, 0, "custom_cell");
    const char *line = line_after(&r, "loss ");
    double first = 0, last = 0;
    assert_int_equal(sscanf(line, "%lf -> %lf", &first, &last), 2);
    assert_true(last < 0.5 * first);
    assert_non_null(strstr(line, "custom LN-LSTM"));
    assert_non_null(strstr(line, "built-in LSTM"));
    tc_result_free(&r);
    /* a file too short to cut windows from is a usage error */
    write_text(path, "tiny");
    r = run(custom_cell_bin, (const char *const[]){ path, "5", NULL });
    tc_expect_status(&r, 2, "custom_cell on a too short text");
    tc_result_free(&r);
}

/* fit_spiral, the smallest program: an MLP fits two spirals. */
static void test_examples_fit_spiral_fits(void **state)
{
    (void)state;
    tc_result r = run(fit_spiral_bin, (const char *const[]){ NULL });
    tc_expect_status(&r, 0, "fit_spiral");
    const char *line = line_after(&r, "loss ");
    double first = 0, last = 0, acc = 0;
    assert_int_equal(sscanf(line, "%lf -> %lf, training accuracy %lf%%", &first, &last, &acc), 3);
    assert_true(last < 0.05 * first);
    assert_true(acc >= 95.0);
    tc_result_free(&r);
}

static void expect_usage_error(const char *bin, const char *const *args, const char *fragment)
{
    tc_result r = run(bin, args);
    char what[256];
    snprintf(what, sizeof what, "%s %s %s", strrchr(bin, '/') ? strrchr(bin, '/') + 1 : bin, args[0],
             args[1] ? args[1] : "");
    tc_expect_status(&r, 2, what);
    if (!strstr(r.err, fragment))
        fail_msg("%s: stderr lacks \"%s\":\n%s", what, fragment, r.err);
    tc_result_free(&r);
}

#define USAGE(bin, fragment, ...) expect_usage_error(bin, (const char *const[]){ __VA_ARGS__, NULL }, fragment)

/* Unknown options, missing values, numbers out of range or not numbers
 * at all: status 2 and a message that names the option. */
static void test_examples_bad_arguments_exit_2(void **state)
{
    (void)state;
    const char *bins[] = { forecast_bin, tagging_bin, finetune_bin };
    for (size_t i = 0; i < TU_LEN(bins); i++) {
        USAGE(bins[i], "unknown argument \"--bogus\"", "--bogus");
        USAGE(bins[i], "--steps", "--steps", "0");
        USAGE(bins[i], "--steps", "--steps", "12abc");
        USAGE(bins[i], "--steps needs a value", "--steps");
        USAGE(bins[i], "--lr", "--lr", "nan");
        USAGE(bins[i], "--hidden", "--hidden", "-3");
    }
    USAGE(forecast_bin, "--season", "--season", "40", "--window", "12");
    USAGE(forecast_bin, "--window", "--window", "1");
    USAGE(finetune_bin, "--rank", "--rank", "64", "--tiny"); /* --tiny's sizes apply first */
    USAGE(tagging_bin, "--seq", "--seq", "2");
    USAGE(tagging_bin, "--cell takes lstm or gru", "--cell", "rnn");
    USAGE(forecast_bin, "--cell takes lstm or gru", "--cell", "LSTM");
}

/* ------------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/loom-examples-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: test_examples FORECAST TAGGING FINETUNE CUSTOM_CELL FIT_SPIRAL (the built example "
                        "binaries)\n");
        return 2;
    }
    /* absolute: the children run in the temporary directory */
    static char paths[5][4096];
    for (int i = 0; i < 5; i++)
        if (!realpath(argv[1 + i], paths[i])) {
            fprintf(stderr, "test_examples: %s: %s\n", argv[1 + i], strerror(errno));
            return 1;
        }
    forecast_bin = paths[0], tagging_bin = paths[1], finetune_bin = paths[2];
    custom_cell_bin = paths[3], fit_spiral_bin = paths[4];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples_forecast_beats_naive),
        cmocka_unit_test(test_examples_forecast_csv_column),
        cmocka_unit_test(test_examples_tagging_f1_above_chance),
        cmocka_unit_test(test_examples_finetune_lowers_val_loss),
        cmocka_unit_test(test_examples_bad_arguments_exit_2),
        cmocka_unit_test(test_examples_custom_cell_trains),
        cmocka_unit_test(test_examples_fit_spiral_fits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
