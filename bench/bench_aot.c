/*
 * bench_aot.c — `loom-bench aot`: generation latency of an ahead-of-time
 * compiled character-level LSTM language model, one character at a time
 * at B = 1, next to PyTorch stepping the same weights:
 *
 *   id -> embedding (65, H) -> LSTM (H, H, L layers), state carried
 *   -> Linear(H, 65) -> the likeliest id, fed back
 *
 * cases gen-lstm-H256-L1 and gen-lstm-H512-L2, 1 thread (the object's
 * entry points are single-threaded; PyTorch gets torch.set_num_threads(1)).
 * loom: loom_aot_emit writes the model's step entry into a temporary
 * directory (weights inside the object, CPU "host"); a small C driver is
 * built against it with the C compiler meson found (LOOM_BENCH_CC) and
 * run as a child process, so what is timed is a binary with no LLVM and
 * no loom in it. PyTorch: bench/peers/charlm_torch.py --mode generate,
 * torch.inference_mode, embedding, nn.LSTM over one step with the state
 * carried, Linear, argmax and .item() per character.
 *
 * Both start from loom's initial weights (a safetensors file) and state
 * zero, and generate greedily from id 0: the ids must agree (a check of
 * the whole model, printed as the first character where they differ, if
 * any). At B = 1 a step reads every weight once (~17 MB at H512 L2) and
 * does two flops per weight, so it is bound by how fast weights stream in
 * from the caches: reported as effective GB/s (weight bytes read per
 * character / time per character). Also reported: the sizes of the object,
 * its weights and the linked binary.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loom.h"

enum { VOCAB = 65, GREEDY = 200, MAX_CASES = 2 };

typedef struct aot_case {
    const char *name;
    int64_t hidden;
    int layers;
} aot_case;

static const aot_case cases[MAX_CASES] = {
    { "gen-lstm-H256-L1", 256, 1 },
    { "gen-lstm-H512-L2", 512, 2 },
};

/* Bytes of weights one step reads: every layer's matrices and biases, the
 * head, one row of the embedding. */
static double step_bytes(const aot_case *c)
{
    double h = (double)c->hidden;
    return 4 * (c->layers * (2 * 4 * h * h + 2 * 4 * h) + VOCAB * h + VOCAB + h);
}

/* The C driver, built against gen.h / gen.o: argv[1] the seconds to fill
 * with timing. Prints one JSON line: the first step (cold), the median
 * time per character over batches of 100, and the greedy ids. */
static const char driver[] =
    "#define _POSIX_C_SOURCE 200809L\n"
    "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <time.h>\n"
    "#include \"gen.h\"\n"
    "static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }\n"
    "static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }\n"
    "static float h[GEN_STEP_H_COUNT], c[GEN_STEP_C_COUNT], logits[GEN_STEP_LOGITS_COUNT];\n"
    "static void *mem;\n"
    "static int32_t step(int32_t id) {\n"
    "    if (gen_step(mem, NULL, &id, h, c, logits, h, c) != GEN_OK) { puts(\"{\\\"error\\\": \\\"step\\\"}\"); exit(1); }\n"
    "    int best = 0;\n"
    "    for (int i = 1; i < GEN_STEP_LOGITS_COUNT; i++) if (logits[i] > logits[best]) best = i;\n"
    "    return best;\n"
    "}\n"
    "int main(int argc, char **argv) {\n"
    "    double min_time = argc > 1 ? atof(argv[1]) : 0.2;\n"
    "    if (posix_memalign(&mem, GEN_ALIGN, GEN_STEP_MEMORY_BYTES) != 0) return 1;\n"
    "    double t0 = now();\n"
    "    int32_t id = step(0);\n"
    "    double first = now() - t0;\n"
    "    memset(h, 0, sizeof h); memset(c, 0, sizeof c);\n"
    "    int ids[@GREEDY@]; id = 0;\n"
    "    for (int k = 0; k < @GREEDY@; k++) ids[k] = id = step(id);\n"
    "    enum { BATCH = 100, MAXB = 20000 };\n"
    "    static double per[MAXB];\n"
    "    int nb = 0;\n"
    "    double start = now();\n"
    "    while (nb < MAXB && (nb < 5 || now() - start < min_time)) {\n"
    "        double s = now();\n"
    "        for (int k = 0; k < BATCH; k++) id = step(id);\n"
    "        per[nb++] = (now() - s) / BATCH;\n"
    "    }\n"
    "    qsort(per, (size_t)nb, sizeof *per, cmp);\n"
    "    printf(\"{\\\"first_ms\\\": %.4f, \\\"median_ms\\\": %.5f, \\\"min_ms\\\": %.5f, \\\"batches\\\": %d, \\\"ids\\\": [\",\n"
    "           first * 1e3, per[nb / 2] * 1e3, per[0] * 1e3, nb);\n"
    "    for (int k = 0; k < @GREEDY@; k++) printf(\"%s%d\", k ? \", \" : \"\", ids[k]);\n"
    "    printf(\"]}\\n\");\n"
    "    free(mem);\n"
    "    return 0;\n"
    "}\n";

typedef struct aot_figures {
    bench_result r;
    char peer[96];
    double ids[GREEDY], peer_ids[GREEDY];
    int nids, npeer_ids;
    uint64_t object_bytes, weights_bytes, binary_bytes;
    double min_ms;
} aot_figures;

static const char *bench_cc(void)
{
#ifdef LOOM_BENCH_CC
    return LOOM_BENCH_CC;
#else
    return "cc";
#endif
}

static uint64_t file_bytes(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* The model on a context of its own (PyTorch's names: emb, lstm, head),
 * its step entry exported into dir, its weights saved to init_path; then
 * the driver built and run. */
static void run_loom(const bench_opts *o, const aot_case *c, const char *dir, const char *init_path, aot_figures *f)
{
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 17, .threads = 1 });
    if (!ctx)
        return;
    int64_t H = c->hidden;
    loom_embedding emb;
    loom_linear head;
    loom_embedding_init(ctx, &emb, "emb", VOCAB, H, LOOM_F32);
    loom_rnn *lstm = loom_rnn_new(ctx, "lstm", &(loom_rnn_config){ .mode = LOOM_LSTM, .input_size = H,
                                                                   .hidden_size = H, .num_layers = c->layers });
    loom_linear_init(ctx, &head, "head", H, VOCAB, true, LOOM_F32);
    loom_t ids = loom_input(ctx, "id", LOOM_I32, LOOM_SHAPE(1, 1));
    loom_t h = loom_input(ctx, "h", LOOM_F32, LOOM_SHAPE(c->layers, 1, H));
    loom_t cc = loom_input(ctx, "c", LOOM_F32, LOOM_SHAPE(c->layers, 1, H));
    loom_rnn_state init = { h, cc }, fin = { LOOM_NULL, LOOM_NULL };
    loom_t out;
    loom_rnn_forward(ctx, lstm, loom_embedding_forward(ctx, &emb, ids), &init, LOOM_NULL, false, &out, &fin);
    loom_t logits = loom_linear_forward(ctx, &head, loom_reshape(ctx, out, LOOM_SHAPE(1, H)));
    loom_aot_entry e = { .name = "step", .ninputs = 3, .inputs = (loom_t[]){ ids, h, cc }, .noutputs = 3,
                         .outputs = (loom_t[]){ logits, fin.h, fin.c },
                         .output_names = (const char *const[]){ "logits", "h_out", "c_out" } };
    loom_aot_info info;
    double t0 = bench_now();
    if (loom_aot_emit(ctx, dir, &(loom_aot_options){ .prefix = "gen", .nentries = 1, .entries = &e }, &info) !=
            LOOM_OK ||
        loom_checkpoint_save(ctx, init_path, NULL, NULL) != LOOM_OK) {
        fprintf(stderr, "loom-bench aot: %s: %s\n", c->name, loom_errmsg(ctx));
        goto out;
    }
    f->r.loom_compile_ms = (bench_now() - t0) * 1e3; /* the export: passes, LLVM, files */
    f->r.loom_plan_bytes = info.memory_bytes;
    f->object_bytes = info.object_bytes;
    f->weights_bytes = info.weights_bytes;

    /* the driver: "@GREEDY@" replaced */
    char path[600], cmd[2400], greedy[16];
    snprintf(greedy, sizeof greedy, "%d", GREEDY);
    snprintf(path, sizeof path, "%s/driver.c", dir);
    FILE *df = fopen(path, "w");
    if (!df)
        goto out;
    for (const char *s = driver; *s;) {
        const char *at = strstr(s, "@GREEDY@");
        if (!at) {
            fputs(s, df);
            break;
        }
        fwrite(s, 1, (size_t)(at - s), df);
        fputs(greedy, df);
        s = at + 8;
    }
    if (fclose(df) != 0)
        goto out;
    snprintf(cmd, sizeof cmd, "%s -O2 -o '%s/gen' '%s/driver.c' '%s/gen.o' -lm", bench_cc(), dir, dir, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "loom-bench aot: building the driver failed: %s\n", cmd);
        goto out;
    }
    snprintf(path, sizeof path, "%s/gen", dir);
    f->binary_bytes = file_bytes(path);
    char min_time[32], line[4096];
    snprintf(min_time, sizeof min_time, "%g", o->min_time);
    char *argv[] = { path, min_time, NULL };
    if (bench_child_json(argv, NULL, line, sizeof line) != 0)
        goto out;
    bench_json_number(line, "first_ms", &f->r.loom_first_ms);
    bench_json_number(line, "min_ms", &f->min_ms);
    f->nids = bench_json_numbers(line, "ids", f->ids, GREEDY);
    bench_json_number(line, "median_ms", &f->r.loom_ms);
out:
    loom_rnn_free(lstm);
    loom_ctx_free(ctx);
}

static void run_torch(const bench_opts *o, const aot_case *c, const char *init_path, aot_figures *f)
{
    char hidden[24], layers[24], min_time[32], greedy[24];
    snprintf(hidden, sizeof hidden, "%lld", (long long)c->hidden);
    snprintf(layers, sizeof layers, "%d", c->layers);
    snprintf(min_time, sizeof min_time, "%g", o->min_time);
    snprintf(greedy, sizeof greedy, "%d", GREEDY);
    char *argv[] = { (char *)bench_python(), (char *)bench_torch_script(), "--mode", "generate", "--hidden", hidden,
                     "--layers", layers, "--threads", "1", "--min-time", min_time, "--greedy", greedy,
                     "--max-reps", "20000", "--init", (char *)init_path, NULL };
    char line[8192], name[48], blas[40];
    if (bench_child_json(argv, bench_torch_env(1), line, sizeof line) != 0)
        return;
    if (!bench_json_number(line, "median_ms", &f->r.peer_ms))
        return;
    bench_json_number(line, "first_ms", &f->r.peer_first_ms);
    f->npeer_ids = bench_json_numbers(line, "ids", f->peer_ids, GREEDY);
    if (!bench_json_string(line, "peer", name, sizeof name))
        snprintf(name, sizeof name, "torch");
    if (!bench_json_string(line, "blas", blas, sizeof blas))
        snprintf(blas, sizeof blas, "?");
    snprintf(f->peer, sizeof f->peer, "%s/%s", name, blas);
    f->r.peer = f->peer;
}

/* The first character where the greedy generations differ, GREEDY if none,
 * -1 if one side has none. */
static int first_difference(const aot_figures *f)
{
    if (f->nids != GREEDY || f->npeer_ids != GREEDY)
        return -1;
    for (int k = 0; k < GREEDY; k++)
        if (f->ids[k] != f->peer_ids[k])
            return k;
    return GREEDY;
}

static void print_extra(const bench_opts *o, const aot_case *c, const aot_figures *f)
{
    double bytes = step_bytes(c);
    double gbs = f->r.loom_ms > 0 ? bytes / (f->r.loom_ms * 1e6) : NAN;
    double peer_gbs = f->r.peer_ms > 0 ? bytes / (f->r.peer_ms * 1e6) : NAN;
    int diff = first_difference(f);
    if (o->json) {
        printf("{\"suite\": \"aot\", \"case\": \"%s\", \"threads\": 1, \"weights_read_bytes\": %.0f", c->name, bytes);
        printf(", \"loom_us_per_char\": %.2f, \"loom_min_us_per_char\": %.2f", f->r.loom_ms * 1e3, f->min_ms * 1e3);
        printf(", \"loom_gbps\": %.2f", gbs);
        if (f->r.peer_ms > 0)
            printf(", \"peer_us_per_char\": %.2f, \"peer_gbps\": %.2f", f->r.peer_ms * 1e3, peer_gbs);
        printf(", \"object_bytes\": %llu, \"weights_bytes\": %llu, \"binary_bytes\": %llu",
               (unsigned long long)f->object_bytes, (unsigned long long)f->weights_bytes,
               (unsigned long long)f->binary_bytes);
        if (diff >= 0)
            printf(", \"greedy_chars_equal\": %d", diff);
        printf("}\n");
        return;
    }
    printf("  %s: %.1f MB of weights read per character; loom AOT %.1f us/char (best batch %.1f) = %.1f GB/s", c->name,
           bytes / 1e6, f->r.loom_ms * 1e3, f->min_ms * 1e3, gbs);
    if (f->r.peer_ms > 0)
        printf(", PyTorch %.1f us/char = %.1f GB/s", f->r.peer_ms * 1e3, peer_gbs);
    printf("\n  %s: object %.2f MB, weights %.2f MB (inside it), binary %.2f MB; greedy generation of %d characters: ",
           c->name, (double)f->object_bytes / 1e6, (double)f->weights_bytes / 1e6, (double)f->binary_bytes / 1e6,
           GREEDY);
    if (diff < 0)
        printf("not compared\n");
    else if (diff == GREEDY)
        printf("identical to PyTorch's\n");
    else
        printf("DIFFERS from PyTorch's at character %d\n", diff);
}

int bench_aot(const bench_opts *o)
{
    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/loom-bench-aot-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("loom-bench aot: a temporary directory");
        return 1;
    }
    char init_path[600];
    snprintf(init_path, sizeof init_path, "%s/init.safetensors", dir);
    bool progress = isatty(2);
    if (!o->json)
        printf("loom-bench aot: greedy generation, one character at a time, B=1: embedding -> LSTM -> linear -> "
               "argmax; f32, vocab %d\nloom: an AOT object (loom_aot_emit, CPU host) linked into a C driver (%s); "
               "peer: PyTorch (%s %s), 1 thread, %s\n",
               VOCAB, bench_cc(), bench_python(), bench_torch_script(), bench_torch_env_name());
    int rc = 0;
    bool ran = false;
    for (int ti = 0; o->threads[ti]; ti++) {
        if (o->threads[ti] != 1)
            continue; /* the entry points are single-threaded */
        ran = true;
        aot_figures figs[MAX_CASES];
        const aot_case *run_cases[MAX_CASES];
        int n = 0;
        for (int i = 0; i < MAX_CASES; i++) {
            const aot_case *c = &cases[i];
            if (!bench_selected(o, c->name))
                continue;
            if (progress)
                fprintf(stderr, "loom-bench aot: %s ...\n", c->name);
            aot_figures *f = &figs[n];
            memset(f, 0, sizeof *f);
            run_cases[n++] = c;
            f->r = bench_result_empty("aot", c->name, 1, 2 * step_bytes(c) / 4);
            f->min_ms = NAN;
            bench_cpu cpu0 = bench_cpu_now();
            run_loom(o, c, dir, init_path, f);
            if (access(init_path, R_OK) == 0)
                run_torch(o, c, init_path, f);
            f->r.others = bench_cpu_others(cpu0, bench_cpu_now());
            unlink(init_path);
            if (f->r.loom_ms < 0)
                rc = 1;
        }
        bench_results_head(o, "aot generation, ms per character", 1, NULL, 0, 0);
        bench_result res[MAX_CASES];
        for (int i = 0; i < n; i++) {
            res[i] = figs[i].r;
            bench_result_print(o, &res[i]);
        }
        bench_results_foot(o, res, n);
        for (int i = 0; i < n; i++)
            print_extra(o, run_cases[i], &figs[i]);
    }
    if (!ran)
        fprintf(stderr, "loom-bench aot: runs at 1 thread only (the AOT entry points are single-threaded)\n");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "loom-bench aot: could not remove %s\n", dir);
    return rc;
}
