/*
 * dnnl_rnn.c — the oneDNN peer of `loom-bench cells`: one training pass
 * (forward training + backward) of an LSTM or GRU stack through oneDNN's
 * RNN primitives, timed, printed as one JSON line on stdout:
 *
 *     dnnl_rnn --cell lstm|gru --hidden H --layers L [--batch 32] [--seq 64]
 *              [--threads N] [--min-time SEC]
 *
 * The same problem as loom's side: input size = hidden size, zero initial
 * states, biases, the loss gradient a fixed random tensor fed as
 * diff_dst_layer, gradients of every weight, bias and of the input. The
 * GRU is oneDNN's linear-before-reset GRU, which is torch.nn.GRU's (and
 * loom_gru_cell's) formulation. What a training step would do each time is
 * inside the timed call: reordering the weights from the user's ldigo
 * layout into the one the backward primitive chose (ldgoi: they change
 * every step in training; "reorder_ms" reports what that costs), zeroing
 * the gradients (oneDNN accumulates them), forward, backward. Creating the
 * primitives is not (a framework caches them).
 *
 * oneDNN's CPU engine threads through OpenMP: the thread count is set with
 * omp_set_num_threads when built with OpenMP, else taken from
 * OMP_NUM_THREADS, which loom-bench sets. Not part of loom; built only
 * when libdnnl-dev is present.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define CHECK(call)                                                                         \
    do {                                                                                    \
        dnnl_status_t s_ = (call);                                                          \
        if (s_ != dnnl_success) {                                                           \
            fprintf(stderr, "dnnl_rnn: %s failed (status %d) at line %d\n", #call, (int)s_, \
                    __LINE__);                                                              \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

typedef struct config {
    int lstm;                  /* 1: LSTM, 0: linear-before-reset GRU */
    int64_t hidden, layers, batch, seq;
    int threads;
    double min_time;           /* seconds of timed repetitions */
} config;

/* ------------------------------------------------------------------ */
/* Memory                                                             */
/* ------------------------------------------------------------------ */

/* A tensor as the user holds it (plain layout) and as a primitive wants
 * it; the two share storage when the layouts agree. */
typedef struct tensor {
    dnnl_memory_t user, prim;
    dnnl_primitive_t to_prim, to_user; /* reorders, NULL when shared */
} tensor;

static dnnl_engine_t engine;
static dnnl_stream_t stream;

static dnnl_memory_t mem_new(const dnnl_memory_desc_t *md, float fill_scale, unsigned *seed)
{
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, engine, DNNL_MEMORY_ALLOCATE));
    void *p;
    CHECK(dnnl_memory_get_data_handle(m, &p));
    size_t n = dnnl_memory_desc_get_size(md) / sizeof(float);
    float *f = p;
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        f[i] = fill_scale * ((float)(*seed >> 8) / 16777216.0f * 2 - 1);
    }
    return m;
}

static dnnl_primitive_t reorder_new(dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_memory_desc_t *a, *b;
    CHECK(dnnl_memory_get_memory_desc(from, &a));
    CHECK(dnnl_memory_get_memory_desc(to, &b));
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t r;
    CHECK(dnnl_reorder_primitive_desc_create(&pd, a, engine, b, engine, NULL));
    CHECK(dnnl_primitive_create(&r, pd));
    CHECK(dnnl_primitive_desc_destroy(pd));
    return r;
}

/* user: the plain layout; pd/arg: the primitive's choice for that
 * argument. dir > 0 reorders user -> primitive before use (inputs), dir <
 * 0 primitive -> user after (outputs). */
static tensor tensor_new(const dnnl_memory_desc_t *user, const_dnnl_primitive_desc_t pd, int arg, int dir,
                         float scale, unsigned *seed)
{
    tensor t = { 0 };
    t.user = mem_new(user, scale, seed);
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    if (!want || dnnl_memory_desc_equal(want, user)) {
        t.prim = t.user;
        return t;
    }
    t.prim = mem_new(want, 0, seed);
    if (dir > 0)
        t.to_prim = reorder_new(t.user, t.prim);
    else
        t.to_user = reorder_new(t.prim, t.user);
    return t;
}

/* The same argument of a second primitive (backward) reading the same
 * user tensor. */
static tensor tensor_alias(const tensor *of, const_dnnl_primitive_desc_t pd, int arg, unsigned *seed)
{
    tensor t = { .user = of->user };
    const dnnl_memory_desc_t *user, *want = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    CHECK(dnnl_memory_get_memory_desc(of->user, &user));
    if (!want || dnnl_memory_desc_equal(want, user)) {
        t.prim = t.user;
        return t;
    }
    t.prim = mem_new(want, 0, seed);
    t.to_prim = reorder_new(t.user, t.prim);
    return t;
}

static void run_reorder(dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to)
{
    if (!r)
        return;
    dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, to } };
    CHECK(dnnl_primitive_execute(r, stream, 2, args));
}

static void zero(dnnl_memory_t m)
{
    void *p;
    const dnnl_memory_desc_t *md;
    CHECK(dnnl_memory_get_data_handle(m, &p));
    CHECK(dnnl_memory_get_memory_desc(m, &md));
    memset(p, 0, dnnl_memory_desc_get_size(md));
}

/* ------------------------------------------------------------------ */
/* The problem                                                        */
/* ------------------------------------------------------------------ */

typedef struct problem {
    dnnl_primitive_t fwd, bwd;
    tensor src, wl, wi, bias;           /* forward's view of the inputs */
    tensor bwl, bwi, bbias;             /* backward's view of the weights */
    tensor dwl, dwi, dbias;             /* gradients: the primitive's, then plain */
    dnnl_memory_t dst, ws, dsrc, ddst;  /* [T, B, H] each, and the workspace */
} problem;

static void problem_init(problem *p, const config *c)
{
    unsigned seed = 12345;
    int64_t T = c->seq, B = c->batch, H = c->hidden, L = c->layers;
    int64_t G = c->lstm ? 4 : 3, GB = G + !c->lstm; /* the lbr GRU has a fourth bias row, b_hn */
    dnnl_memory_desc_t x_md, w_md, wi_md, b_md, y_md, any_w, any_wi;
    CHECK(dnnl_memory_desc_init_by_tag(&x_md, 3, (dnnl_dims_t){ T, B, H }, dnnl_f32, dnnl_tnc));
    CHECK(dnnl_memory_desc_init_by_tag(&y_md, 3, (dnnl_dims_t){ T, B, H }, dnnl_f32, dnnl_tnc));
    CHECK(dnnl_memory_desc_init_by_tag(&w_md, 5, (dnnl_dims_t){ L, 1, H, G, H }, dnnl_f32, dnnl_ldigo));
    CHECK(dnnl_memory_desc_init_by_tag(&wi_md, 5, (dnnl_dims_t){ L, 1, H, G, H }, dnnl_f32, dnnl_ldigo));
    CHECK(dnnl_memory_desc_init_by_tag(&b_md, 4, (dnnl_dims_t){ L, 1, GB, H }, dnnl_f32, dnnl_ldgo));
    CHECK(dnnl_memory_desc_init_by_tag(&any_w, 5, (dnnl_dims_t){ L, 1, H, G, H }, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&any_wi, 5, (dnnl_dims_t){ L, 1, H, G, H }, dnnl_f32, dnnl_format_tag_any));
    const dnnl_rnn_direction_t dir = dnnl_unidirectional_left2right;

    /* Forward training takes the weights as ldigo (its own choice when
     * asked with "any", but then a layout that compares unequal and costs
     * a copy), backward wants them transposed (ldgoi, chosen through
     * "any") and gives plain ldigo gradients. States NULL: zero initial
     * states, no final ones. */
    dnnl_rnn_desc_t fd, bd;
    if (c->lstm)
        CHECK(dnnl_lstm_forward_desc_init(&fd, dnnl_forward_training, dir, &x_md, NULL, NULL, &w_md, &wi_md, &b_md,
                                          &y_md, NULL, NULL, 0));
    else
        CHECK(dnnl_lbr_gru_forward_desc_init(&fd, dnnl_forward_training, dir, &x_md, NULL, &w_md, &wi_md, &b_md,
                                             &y_md, NULL, 0));
    dnnl_primitive_desc_t fpd, bpd;
    CHECK(dnnl_primitive_desc_create(&fpd, &fd, NULL, engine, NULL));

    if (c->lstm)
        CHECK(dnnl_lstm_backward_desc_init(&bd, dnnl_backward, dir, &x_md, NULL, NULL, &any_w, &any_wi, &b_md, &y_md,
                                           NULL, NULL, &x_md, NULL, NULL, &w_md, &wi_md, &b_md, &y_md, NULL, NULL,
                                           0));
    else
        CHECK(dnnl_lbr_gru_backward_desc_init(&bd, dnnl_backward, dir, &x_md, NULL, &any_w, &any_wi, &b_md, &y_md,
                                              NULL, &x_md, NULL, &w_md, &wi_md, &b_md, &y_md, NULL, 0));
    CHECK(dnnl_primitive_desc_create(&bpd, &bd, NULL, engine, fpd));

    float k = 1.0f / sqrtf((float)H); /* PyTorch's initialisation range */
    p->src = tensor_new(&x_md, fpd, DNNL_ARG_SRC_LAYER, 1, 1.0f, &seed);
    p->wl = tensor_new(&w_md, fpd, DNNL_ARG_WEIGHTS_LAYER, 1, k, &seed);
    p->wi = tensor_new(&wi_md, fpd, DNNL_ARG_WEIGHTS_ITER, 1, k, &seed);
    p->bias = tensor_new(&b_md, fpd, DNNL_ARG_BIAS, 1, k, &seed);
    p->bwl = tensor_alias(&p->wl, bpd, DNNL_ARG_WEIGHTS_LAYER, &seed);
    p->bwi = tensor_alias(&p->wi, bpd, DNNL_ARG_WEIGHTS_ITER, &seed);
    p->bbias = tensor_alias(&p->bias, bpd, DNNL_ARG_BIAS, &seed);
    p->dwl = tensor_new(&w_md, bpd, DNNL_ARG_DIFF_WEIGHTS_LAYER, -1, 0, &seed);
    p->dwi = tensor_new(&wi_md, bpd, DNNL_ARG_DIFF_WEIGHTS_ITER, -1, 0, &seed);
    p->dbias = tensor_new(&b_md, bpd, DNNL_ARG_DIFF_BIAS, -1, 0, &seed);
    p->dst = mem_new(&y_md, 0, &seed);
    p->dsrc = mem_new(&x_md, 0, &seed);
    p->ddst = mem_new(&y_md, 1.0f, &seed); /* d loss / d output of loss = sum(output * R): R */
    p->ws = mem_new(dnnl_primitive_desc_query_md(fpd, dnnl_query_workspace_md, 0), 0, &seed);
    CHECK(dnnl_primitive_create(&p->fwd, fpd));
    CHECK(dnnl_primitive_create(&p->bwd, bpd));
    CHECK(dnnl_primitive_desc_destroy(fpd));
    CHECK(dnnl_primitive_desc_destroy(bpd));
}

/* The weights into the primitives' layouts (dir > 0) or the gradients
 * back to plain ones (dir < 0). */
static void problem_reorder(problem *p, int dir)
{
    const tensor *all[] = { &p->src, &p->wl, &p->wi, &p->bias, &p->bwl, &p->bwi, &p->bbias, &p->dwl, &p->dwi,
                            &p->dbias };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (dir > 0)
            run_reorder(all[i]->to_prim, all[i]->user, all[i]->prim);
        else
            run_reorder(all[i]->to_user, all[i]->prim, all[i]->user);
}

/* One training pass: reorders in, forward, backward, reorders out. */
static void problem_run(problem *p)
{
    problem_reorder(p, 1);
    dnnl_exec_arg_t fa[] = {
        { DNNL_ARG_SRC_LAYER, p->src.prim }, { DNNL_ARG_WEIGHTS_LAYER, p->wl.prim },
        { DNNL_ARG_WEIGHTS_ITER, p->wi.prim }, { DNNL_ARG_BIAS, p->bias.prim },
        { DNNL_ARG_DST_LAYER, p->dst }, { DNNL_ARG_WORKSPACE, p->ws },
    };
    CHECK(dnnl_primitive_execute(p->fwd, stream, (int)(sizeof fa / sizeof *fa), fa));
    zero(p->dwl.prim);
    zero(p->dwi.prim);
    zero(p->dbias.prim);
    dnnl_exec_arg_t ba[] = {
        { DNNL_ARG_SRC_LAYER, p->src.prim }, { DNNL_ARG_WEIGHTS_LAYER, p->bwl.prim },
        { DNNL_ARG_WEIGHTS_ITER, p->bwi.prim }, { DNNL_ARG_BIAS, p->bbias.prim },
        { DNNL_ARG_DST_LAYER, p->dst }, { DNNL_ARG_WORKSPACE, p->ws },
        { DNNL_ARG_DIFF_DST_LAYER, p->ddst }, { DNNL_ARG_DIFF_SRC_LAYER, p->dsrc },
        { DNNL_ARG_DIFF_WEIGHTS_LAYER, p->dwl.prim }, { DNNL_ARG_DIFF_WEIGHTS_ITER, p->dwi.prim },
        { DNNL_ARG_DIFF_BIAS, p->dbias.prim },
    };
    CHECK(dnnl_primitive_execute(p->bwd, stream, (int)(sizeof ba / sizeof *ba), ba));
    problem_reorder(p, -1);
    CHECK(dnnl_stream_wait(stream));
}

/* The reorders alone, for the report. */
static void problem_reorders_only(problem *p)
{
    problem_reorder(p, 1);
    problem_reorder(p, -1);
    CHECK(dnnl_stream_wait(stream));
}

/* How many of the tensors needed a reorder (reported, so a layout change
 * in a new oneDNN is visible). */
static int problem_reorders(const problem *p)
{
    const tensor *all[] = { &p->src, &p->wl, &p->wi, &p->bias, &p->bwl, &p->bwi, &p->bbias, &p->dwl, &p->dwi,
                            &p->dbias };
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        n += all[i]->to_prim || all[i]->to_user;
    return n;
}

/* ------------------------------------------------------------------ */
/* main                                                               */
/* ------------------------------------------------------------------ */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median ms of fn(p) after two warm-up calls, over enough calls to fill
 * min_time (5 to 200); *best gets the fastest. */
static double median_ms(void (*fn)(problem *), problem *p, double min_time, double *best)
{
    double t0 = now();
    fn(p);
    fn(p);
    double once = (now() - t0) / 2;
    int reps = once > 0 ? (int)(min_time / once) : 5;
    reps = reps < 5 ? 5 : reps > 200 ? 200 : reps;
    double t[200];
    for (int i = 0; i < reps; i++) {
        double s = now();
        fn(p);
        t[i] = (now() - s) * 1e3;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    *best = t[0];
    return reps % 2 ? t[reps / 2] : (t[reps / 2 - 1] + t[reps / 2]) / 2;
}

static int usage(void)
{
    fprintf(stderr, "usage: dnnl_rnn --cell lstm|gru --hidden H --layers L [--batch B] [--seq T] [--threads N] "
                    "[--min-time SEC]\n");
    return 2;
}

int main(int argc, char **argv)
{
    config c = { .lstm = 1, .hidden = 512, .layers = 1, .batch = 32, .seq = 64, .threads = 1, .min_time = 0.2 };
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--cell") && (!strcmp(v, "lstm") || !strcmp(v, "gru")))
            c.lstm = !strcmp(v, "lstm");
        else if (!strcmp(a, "--hidden"))
            c.hidden = atoll(v);
        else if (!strcmp(a, "--layers"))
            c.layers = atoll(v);
        else if (!strcmp(a, "--batch"))
            c.batch = atoll(v);
        else if (!strcmp(a, "--seq"))
            c.seq = atoll(v);
        else if (!strcmp(a, "--threads"))
            c.threads = atoi(v);
        else if (!strcmp(a, "--min-time"))
            c.min_time = atof(v);
        else
            return usage();
    }
    if (argc % 2 == 0 || c.hidden < 1 || c.layers < 1 || c.batch < 1 || c.seq < 1 || c.threads < 1)
        return usage();
#ifdef _OPENMP
    omp_set_num_threads(c.threads);
    int omp_threads = omp_get_max_threads();
#else
    const char *env = getenv("OMP_NUM_THREADS");
    int omp_threads = env ? atoi(env) : -1;
#endif

    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    problem p;
    double t0 = now();
    problem_init(&p, &c);
    double setup_ms = (now() - t0) * 1e3;

    t0 = now();
    problem_run(&p);
    double first_ms = (now() - t0) * 1e3;
    double best, med = median_ms(problem_run, &p, c.min_time, &best), best_reorders;
    double reorders = median_ms(problem_reorders_only, &p, c.min_time / 10, &best_reorders);

    const dnnl_version_t *v = dnnl_version();
    printf("{\"peer\": \"onednn-%d.%d.%d%s\", \"cell\": \"%s\", \"hidden\": %lld, \"layers\": %lld, "
           "\"batch\": %lld, \"seq\": %lld, \"threads\": %d, \"omp_threads\": %d, \"isa\": %d, "
           "\"reorders\": %d, \"reorder_ms\": %.3f, \"setup_ms\": %.3f, \"first_ms\": %.3f, \"median_ms\": %.4f, "
           "\"min_ms\": %.4f}\n",
           v->major, v->minor, v->patch, c.lstm ? "" : "-lbr", c.lstm ? "lstm" : "gru", (long long)c.hidden,
           (long long)c.layers, (long long)c.batch, (long long)c.seq, c.threads, omp_threads,
           (int)dnnl_get_effective_cpu_isa(), problem_reorders(&p), reorders, setup_ms, first_ms, med, best);
    return 0;
}
