/*
 * test_jit.c — compiled plans against the reference executor: every op
 * (through its gradient-check case, forward and backward, in f32 and f64),
 * seeded random graphs, the kernel and plan caches (a second build of the
 * same graph compiles nothing; T = 8 and T = 64 unrolled steps compile the
 * same kernels), thread-count independence, index errors.
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "autograd.h"
#include "fe.h"
#include "jit.h"
#include "plan.h"

/* One JIT and pool for the whole suite, as a program would have. */
static jit *J;
static rt_pool *POOL;
static lm_err JERR;

static int suite_setup(void **state)
{
    (void)state;
    lm_mem mem = { .fn = lm_default_alloc, .err = &JERR };
    J = jit_new(mem, &JERR, NULL, 3);
    POOL = rt_pool_new(mem, &JERR, 2);
    return J && POOL ? 0 : -1;
}

static int suite_teardown(void **state)
{
    (void)state;
    print_message("jit: %llu kernels compiled in %.0f ms (%.1f ms each), %llu cache hits\n",
                  (unsigned long long)jit_get_stats(J)->compiled, jit_get_stats(J)->compile_ms,
                  jit_get_stats(J)->compile_ms / (double)(jit_get_stats(J)->compiled ? jit_get_stats(J)->compiled : 1),
                  (unsigned long long)jit_get_stats(J)->hits);
    jit_free(J);
    rt_pool_free(POOL);
    return 0;
}

/* Runs roots of g through the JIT with `threads` threads; out[i] gets a
 * malloc'd copy of root i's value (assignments excluded). */
static loom_code jit_run(ir_graph *g, const op_env *env, const ir_id *roots, uint32_t n, int threads, void **out,
                         size_t *nkernels)
{
    plan *p = plan_compile(g, roots, n, &(compile_opts){ .verify = true });
    if (!p)
        return g->err->code;
    if (nkernels)
        *nkernels = p->nkernels;
    jit_kinfo *ks = calloc(p->nkernels + 1, sizeof *ks);
    loom_code c = jit_plan(J, p, ks, threads);
    if (c != LOOM_OK) {
        lm_fail(g->err, c, "%s", JERR.msg);
        lm_err_clear(&JERR);
        free(ks);
        plan_free(p);
        return c;
    }
    rt_exec *x = rt_exec_new(g->mem, g->err, p, ks, threads);
    free(ks);
    rt_bind b = { .inputs = env->inputs, .ninputs = env->ninputs, .params = env->params, .nparams = env->nparams };
    c = x ? rt_exec_run(x, threads > 1 ? POOL : NULL, &b) : g->err->code;
    for (uint32_t i = 0, o = 0; i < n && c == LOOM_OK; i++) {
        if (ir_op(g, roots[i]) == OP_ASSIGN)
            continue;
        size_t bytes = (size_t)ir_numel(g, roots[i]) * loom_dtype_size(ir_dtype(g, roots[i]));
        out[i] = malloc(bytes ? bytes : 1);
        memcpy(out[i], rt_exec_output(x, o++), bytes);
    }
    rt_exec_free(x);
    plan_free(p);
    return c;
}

/* Worst |jit - ref| / max(|ref|, 1e-3 max|ref|, 1e-30) over a tensor;
 * NaN in both places counts as equal. */
static double compare(const void *a, const void *b, loom_dtype dt, int64_t n)
{
    double maxref = 0, worst = 0;
    for (int64_t i = 0; i < n; i++)
        maxref = fmax(maxref, fabs(op_load(b, dt, i)));
    for (int64_t i = 0; i < n; i++) {
        double x = op_load(a, dt, i), y = op_load(b, dt, i);
        if (x != x && y != y)
            continue;
        if (isinf(x) && x == y)
            continue;
        double d = fabs(x - y) / fmax(fmax(fabs(y), 1e-3 * maxref), 1e-30);
        if (!(d <= worst))
            worst = d;
    }
    return worst;
}

static double tolerance(loom_dtype dt) { return dt == LOOM_F64 ? 1e-12 : 1e-5; }

/* Runs both executors on the roots and fails naming `what` when a value
 * differs beyond the tolerance. Returns the worst error. */
static double check_both(ir_graph *g, const op_env *env, const ir_id *roots, uint32_t n, const char *what)
{
    void *ref[16] = { 0 }, *got[16] = { 0 };
    assert_true(n <= 16);
    if (op_ref_run(g, env, roots, n, ref) != LOOM_OK)
        fail_msg("%s: reference: %s", what, g->err->msg);
    if (jit_run(g, env, roots, n, 2, got, NULL) != LOOM_OK)
        fail_msg("%s: jit: %s", what, g->err->msg);
    double worst = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (ir_op(g, roots[i]) == OP_ASSIGN)
            continue;
        loom_dtype dt = ir_dtype(g, roots[i]);
        double e = dt == LOOM_I32 ? (memcmp(ref[i], got[i], (size_t)ir_numel(g, roots[i]) * 4) ? 1.0 : 0.0)
                                  : compare(got[i], ref[i], dt, ir_numel(g, roots[i]));
        if (!(e <= tolerance(dt))) {
            char sh[160];
            fail_msg("%s: output %u %s differs from the reference by %.3g (tolerance %g)", what, i,
                     loom_shape_str(ir_shapev(g, roots[i]), dt, sh, sizeof sh), e, tolerance(dt));
        }
        worst = fmax(worst, e);
        lm_free_aligned(&g->mem, ref[i]);
        free(got[i]);
    }
    return worst;
}

/* ------------------------------------------------------------------ */
/* Every op, forward and backward, through its gradient-check case    */
/* ------------------------------------------------------------------ */

static void op_case_both(int op, loom_dtype dt, uint64_t seed, double *worst)
{
    lm_err err = { 0 };
    ir_graph *g = ir_graph_new((lm_mem){ .fn = lm_default_alloc }, &err, &op_opset);
    op_check c = { .g = g, .op = op, .eps = 1e-6, .dtype = dt };
    lm_rng_seed(&c.rng, seed);
    ir_id y = op_get(op)->check(&c);
    assert_true(y != 0);
    /* loss = sum(y * R); gradients of every float input */
    size_t ncase = c.nin;
    ir_id r = op_check_input_new(&c, ir_shapev(g, y), -1, 1);
    c.in[c.nin - 1].diff = false;
    ir_id yy = op_cast(g, y, dt);
    ir_id loss = op_sum(g, op_mul(g, yy, op_cast(g, r, dt)), (1u << ir_shape(g, y)->rank) - 1, false);
    uint8_t *wants = calloc(g->nnodes, 1);
    for (size_t i = 0; i < ncase; i++)
        wants[c.in[i].node] = c.in[i].diff;
    ad_grads gr;
    assert_int_equal(ad_backward(g, 1, &loss, NULL, wants, &gr), LOOM_OK);
    ir_id roots[16] = { y, loss };
    uint32_t n = 2;
    for (size_t i = 0; i < ncase && n < 16; i++)
        if (c.in[i].diff && gr.grad[c.in[i].node])
            roots[n++] = gr.grad[c.in[i].node];
    void *inputs[16];
    for (size_t i = 0; i < c.nin; i++)
        inputs[i] = c.in[i].data;
    op_env env = { .inputs = inputs, .ninputs = (uint32_t)c.nin };
    char what[64];
    snprintf(what, sizeof what, "%s %s seed %llu", op_get(op)->name, loom_dtype_name(dt), (unsigned long long)seed);
    *worst = fmax(*worst, check_both(g, &env, roots, n, what));
    ad_grads_free(g, &gr);
    free(wants);
    op_check_free(&c);
    ir_graph_free(g);
}

static void test_jit_every_op_forward_and_backward(void **state)
{
    (void)state;
    int checked = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        if (!op_get(op)->check)
            continue;
        double worst[2] = { 0, 0 };
        for (int k = 0; k < 2; k++)
            for (uint64_t seed = 1; seed <= 4; seed++)
                op_case_both(op, k ? LOOM_F64 : LOOM_F32, seed * 7 + (uint64_t)op, &worst[k]);
        print_message("jit %-12s worst vs reference: f32 %.2e  f64 %.2e\n", op_get(op)->name, worst[0], worst[1]);
        checked++;
    }
    assert_true(checked >= 25);
}

/* The ops without a gradient case: sources, comparisons, sign, detach. */
static void test_jit_nondifferentiable_ops(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        loom_dtype dt = k ? LOOM_F64 : LOOM_F32;
        lm_err err = { 0 };
        ir_graph *g = ir_graph_new((lm_mem){ .fn = lm_default_alloc }, &err, &op_opset);
        op_check c = { .g = g, .eps = 1e-6, .dtype = dt };
        lm_rng_seed(&c.rng, 5);
        loom_shape s = LOOM_SHAPE(3, 5);
        ir_id a = op_check_input_new(&c, s, -1, 1), b = op_check_input_new(&c, s, -1, 1);
        /* exact ties for eq/le/ge: b's first row is a's */
        for (int i = 0; i < 5; i++)
            op_store(c.in[1].data, dt, i, op_load(c.in[0].data, dt, i));
        ir_id key = op_check_index(&c, LOOM_SHAPE(4), 1000);
        ir_id roots[16];
        uint32_t n = 0;
        int cmp[] = { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };
        for (size_t i = 0; i < LM_ARRAY_LEN(cmp); i++)
            roots[n++] = op_binary(g, cmp[i], a, b);
        roots[n++] = op_unary(g, OP_SIGN, a);
        roots[n++] = op_add(g, op_unary(g, OP_DETACH, a), op_iota(g, dt, s, 1));
        roots[n++] = op_mul(g, op_iota(g, dt, s, 0), op_const(g, dt, s, 2.5));
        roots[n++] = op_random(g, dt, LOOM_SHAPE(4, 300), key, RANDOM_UNIFORM, 3, 0);
        roots[n++] = op_random(g, dt, LOOM_SHAPE(1000), key, RANDOM_NORMAL, 4, 0);
        roots[n++] = op_random(g, dt, LOOM_SHAPE(2, 7), key, RANDOM_BERNOULLI, 5, 0.3);
        roots[n++] = op_cast(g, op_muls(g, a, 10), LOOM_I32);
        void *inputs[8];
        for (size_t i = 0; i < c.nin; i++)
            inputs[i] = c.in[i].data;
        op_env env = { .inputs = inputs, .ninputs = (uint32_t)c.nin };
        check_both(g, &env, roots, n, k ? "non-differentiable ops f64" : "non-differentiable ops f32");
        op_check_free(&c);
        ir_graph_free(g);
    }
}

/* ------------------------------------------------------------------ */
/* Random graphs                                                      */
/* ------------------------------------------------------------------ */

typedef struct rgen {
    op_check c;
    ir_id pool[64];
    int n;
} rgen;

static int rint_(rgen *r, int lo, int hi) { return op_check_int(&r->c, lo, hi); }

static ir_id pick(rgen *r) { return r->pool[rint_(r, 0, r->n - 1)]; }

static void add(rgen *r, ir_id x)
{
    if (x && r->n < 64)
        r->pool[r->n++] = x;
}

/* One random step: a new node from the pool. */
static void grow(rgen *r)
{
    ir_graph *g = r->c.g;
    ir_id x = pick(r);
    loom_shape s = ir_shapev(g, x);
    switch (rint_(r, 0, 11)) {
    case 0: { /* safe unary */
        static const int un[] = { OP_EXP, OP_TANH, OP_SIGMOID, OP_NEG, OP_ABS, OP_RELU, OP_SIN, OP_COS };
        ir_id t = op_unary(g, OP_TANH, x); /* keeps exp in range */
        add(r, op_unary(g, un[rint_(r, 0, 7)], t));
        break;
    }
    case 1: { /* log and sqrt of something positive */
        ir_id p = op_adds(g, op_unary(g, OP_ABS, x), 0.5);
        add(r, op_unary(g, rint_(r, 0, 1) ? OP_LOG : OP_SQRT, p));
        break;
    }
    case 2:
    case 3: { /* binary with broadcasting */
        ir_id y = pick(r);
        loom_shape t = ir_shapev(g, y), bs;
        if (!op_broadcast_shape(&s, &t, &bs) || loom_shape_numel(bs) > 4096)
            y = op_check_input_new(&r->c, s, -1, 1), bs = s;
        static const int bin[] = { OP_ADD, OP_SUB, OP_MUL, OP_MAXIMUM, OP_MINIMUM };
        add(r, op_binary(g, bin[rint_(r, 0, 4)], op_broadcast_to(g, x, bs), op_broadcast_to(g, y, bs)));
        break;
    }
    case 4: /* reduction */
        if (s.rank >= 1)
            add(r, op_reduce(g, rint_(r, 0, 1) ? OP_SUM : OP_MAX, x, (uint32_t)rint_(r, 1, (1 << s.rank) - 1),
                             rint_(r, 0, 1)));
        break;
    case 5: /* permute or transpose */
        if (s.rank >= 2) {
            int perm[LOOM_MAX_RANK];
            for (int i = 0; i < s.rank; i++)
                perm[i] = s.rank - 1 - i;
            add(r, op_permute(g, x, perm));
        }
        break;
    case 6: /* slice */
        if (s.rank >= 1) {
            int64_t st[LOOM_MAX_RANK], sp[LOOM_MAX_RANK], sk[LOOM_MAX_RANK];
            for (int i = 0; i < s.rank; i++) {
                st[i] = rint_(r, 0, (int)s.d[i] - 1);
                sp[i] = rint_(r, (int)st[i] + 1, (int)s.d[i]);
                sk[i] = rint_(r, 1, 2);
            }
            add(r, op_slice(g, x, st, sp, sk));
        }
        break;
    case 7: { /* reshape: flatten, or split the last dim */
        loom_shape t = { .rank = 1, .d = { loom_shape_numel(s) } };
        add(r, op_reshape(g, x, t));
        break;
    }
    case 8: { /* expand a new leading axis */
        if (s.rank < 4) {
            loom_shape t = { .rank = s.rank + 1 };
            t.d[0] = rint_(r, 1, 3);
            memcpy(t.d + 1, s.d, (size_t)s.rank * sizeof s.d[0]);
            add(r, op_broadcast_to(g, x, t));
        }
        break;
    }
    case 9: /* matmul against a new input */
        if (s.rank >= 2 && s.rank <= 3) {
            loom_shape w = s;
            bool tb = rint_(r, 0, 1);
            int64_t n = rint_(r, 1, 5);
            w.d[s.rank - 2] = tb ? n : s.d[s.rank - 1];
            w.d[s.rank - 1] = tb ? s.d[s.rank - 1] : n;
            add(r, op_matmul(g, x, op_check_input_new(&r->c, w, -1, 1), false, tb));
        }
        break;
    case 10: /* pad or concat */
        if (s.rank >= 1) {
            if (rint_(r, 0, 1)) {
                int64_t lo[LOOM_MAX_RANK] = { 0 }, hi[LOOM_MAX_RANK] = { 0 }, in[LOOM_MAX_RANK] = { 0 };
                int a = rint_(r, 0, s.rank - 1);
                lo[a] = rint_(r, 0, 2);
                hi[a] = rint_(r, 0, 2);
                add(r, op_pad(g, x, lo, hi, in, 0.25));
            } else {
                ir_id xs[2] = { x, op_unary(g, OP_NEG, x) };
                add(r, op_concat(g, 2, xs, rint_(r, 0, s.rank - 1)));
            }
        }
        break;
    default: { /* where, gather */
        if (rint_(r, 0, 1) && s.rank >= 1) {
            int a = rint_(r, 0, s.rank - 1);
            ir_id idx = op_check_index(&r->c, LOOM_SHAPE(rint_(r, 1, 4)), s.d[a]);
            add(r, op_gather(g, x, idx, a));
        } else {
            ir_id y = op_check_input_new(&r->c, s, -1, 1);
            add(r, op_where(g, op_binary(g, OP_GT, x, y), x, y));
        }
        break;
    }
    }
}

static void random_graph(uint64_t seed, loom_dtype dt)
{
    lm_err err = { 0 };
    rgen r = { 0 };
    r.c = (op_check){ .g = ir_graph_new((lm_mem){ .fn = lm_default_alloc }, &err, &op_opset), .eps = 1e-6,
                      .dtype = dt };
    lm_rng_seed(&r.c.rng, seed);
    ir_graph *g = r.c.g;
    int ninputs = rint_(&r, 1, 3);
    for (int i = 0; i < ninputs; i++)
        add(&r, op_check_input_new(&r.c, op_check_shape(&r.c, 1, 3), -1, 1));
    int steps = rint_(&r, 4, 16);
    for (int i = 0; i < steps && !ir_failed(g); i++)
        grow(&r);
    if (ir_failed(g))
        fail_msg("random graph %llu: building failed: %s", (unsigned long long)seed, err.msg);
    ir_id roots[3] = { r.pool[r.n - 1], pick(&r), pick(&r) };
    void *inputs[64];
    for (size_t i = 0; i < r.c.nin; i++)
        inputs[i] = r.c.in[i].data;
    op_env env = { .inputs = inputs, .ninputs = (uint32_t)r.c.nin };
    char what[64];
    snprintf(what, sizeof what, "random graph %llu (%s)", (unsigned long long)seed, loom_dtype_name(dt));
    check_both(g, &env, roots, 3, what);
    op_check_free(&r.c);
    ir_graph_free(g);
}

static void test_jit_random_graphs_match_reference(void **state)
{
    (void)state;
    const char *env = getenv("LOOM_RANDOM_GRAPHS");
    int n = env ? atoi(env) : 200;
    for (int i = 0; i < n; i++)
        random_graph(1000 + (uint64_t)i, i % 2 ? LOOM_F64 : LOOM_F32);
    print_message("%d random graphs matched the reference\n", n);
}

/* ------------------------------------------------------------------ */
/* Caches, threads, errors (through the public API)                   */
/* ------------------------------------------------------------------ */

static loom_t record_rnn(loom_ctx *ctx, int steps, loom_t w, loom_t u)
{
    loom_t h = loom_full(ctx, LOOM_F32, LOOM_SHAPE(4, 16), 0);
    for (int t = 0; t < steps; t++) {
        loom_step_begin(ctx, t);
        loom_t x = loom_input(ctx, NULL, LOOM_F32, LOOM_SHAPE(4, 8));
        float xs[32];
        for (int i = 0; i < 32; i++)
            xs[i] = (float)sin(t + i);
        loom_feed(ctx, x, xs, sizeof xs);
        h = loom_tanh(ctx, loom_add(ctx, loom_matmul(ctx, x, w), loom_matmul(ctx, h, u)));
        loom_step_end(ctx);
    }
    loom_t loss = loom_mean_all(ctx, loom_mul(ctx, h, h));
    loom_backward(ctx, loss);
    loom_assign(ctx, w, loom_sub(ctx, w, loom_muls(ctx, loom_grad(ctx, w), 0.1)));
    loom_assign(ctx, u, loom_sub(ctx, u, loom_muls(ctx, loom_grad(ctx, u), 0.1)));
    return loss;
}

static void test_jit_cache_second_build_compiles_nothing(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 3, .backend = LOOM_BACKEND_JIT });
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(8, 16)), u = loom_param(ctx, "u", LOOM_F32, LOOM_SHAPE(16, 16));
    loom_param_init_normal(ctx, w, 0, 0.3);
    loom_param_init_normal(ctx, u, 0, 0.3);
    loom_t loss = record_rnn(ctx, 6, w, u);
    assert_int_equal(loom_run(ctx, 1, &loss), LOOM_OK);
    loom_stats s1;
    loom_get_stats(ctx, &s1);
    assert_int_equal(s1.plans_built, 1);
    assert_true(s1.kernels_compiled > 0);
    /* record the same model again on a new tape: the plan is found */
    loom_reset(ctx);
    loss = record_rnn(ctx, 6, w, u);
    assert_int_equal(loom_run(ctx, 1, &loss), LOOM_OK);
    loom_stats s2;
    loom_get_stats(ctx, &s2);
    assert_int_equal(s2.plans_built, 1);
    assert_int_equal(s2.plan_hits, 1);
    assert_int_equal(s2.kernels_compiled, s1.kernels_compiled);
    print_message("second build: %llu plans built, %llu kernels compiled (unchanged), %.1f ms LLVM in all\n",
                  (unsigned long long)s2.plans_built, (unsigned long long)s2.kernels_compiled, s2.compile_ms);
    loom_ctx_free(ctx);
}

/* An allocator that counts the calls that overlap another: loom calls
 * a user's allocator one call at a time, threads compiling or not. */
static atomic_int alloc_inside, alloc_overlaps, alloc_calls;
static atomic_bool alloc_slow;
static void *serial_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (atomic_fetch_add(&alloc_inside, 1))
        atomic_fetch_add(&alloc_overlaps, 1);
    void *r = NULL;
    if (nsize)
        r = realloc(ptr, nsize);
    else
        free(ptr);
    /* while a plan compiles, each call stays a while: two threads'
     * calls would then overlap unless loom serialises them */
    if (atomic_load(&alloc_slow)) {
        atomic_fetch_add(&alloc_calls, 1);
        nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
    }
    atomic_fetch_sub(&alloc_inside, 1);
    return r;
}

/* On 2 threads a plan's kernels compile in two modules at once, one per
 * thread, each with an engine of its own; the step's values are those of
 * the plan compiled on one thread, and the user's allocator is never
 * called by two threads at once. */
static void test_jit_compiles_on_threads(void **state)
{
    (void)state;
    float loss[2], w[2][8 * 16];
    uint64_t modules[2];
    for (int k = 0; k < 2; k++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 3, .threads = k + 1, .alloc = serial_alloc });
        loom_t pw = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(8, 16));
        loom_t pu = loom_param(ctx, "u", LOOM_F32, LOOM_SHAPE(16, 16));
        loom_param_init_normal(ctx, pw, 0, 0.3);
        loom_param_init_normal(ctx, pu, 0, 0.3);
        ctx->no_rows = true; /* the same plan on 1 and 2 threads */
        loom_t l = record_rnn(ctx, 6, pw, pu);
        atomic_store(&alloc_calls, 0);
        atomic_store(&alloc_slow, true);
        assert_int_equal(loom_run(ctx, 1, &l), LOOM_OK);
        atomic_store(&alloc_slow, false);
        assert_int_equal(loom_read(ctx, l, &loss[k], sizeof loss[k]), LOOM_OK);
        assert_int_equal(loom_read(ctx, pw, w[k], sizeof w[k]), LOOM_OK);
        const jit_stats *js = jit_get_stats(ctx->jit);
        modules[k] = js->modules;
        assert_true(js->compiled >= 4);
        print_message("%d thread(s): %llu kernels in %llu module(s), %.1f ms; %d allocator calls, %d overlapping\n",
                      k + 1, (unsigned long long)js->compiled, (unsigned long long)js->modules, js->compile_ms,
                      atomic_load(&alloc_calls), atomic_load(&alloc_overlaps));
        loom_ctx_free(ctx);
    }
    assert_int_equal(modules[0], 1);
    assert_int_equal(modules[1], 2);
    assert_memory_equal(&loss[0], &loss[1], sizeof loss[0]);
    assert_memory_equal(w[0], w[1], sizeof w[0]);
    assert_int_equal(atomic_load(&alloc_overlaps), 0);
}

/* Adam's update of a parameter is one kernel: the moments' new values
 * are assigned (stored for their commits) and read by the parameter's
 * own update in registers, not from memory by a second kernel, and all
 * three are written over their old values. Training still matches the
 * reference executor. */
static void test_jit_optimizer_update_is_one_kernel(void **state)
{
    (void)state;
    float w[2][96 * 80];
    for (int k = 0; k < 2; k++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 5, .threads = 1,
                                                       .backend = k ? LOOM_BACKEND_REFERENCE : LOOM_BACKEND_JIT });
        loom_t pw = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(96, 80));
        loom_param_init_normal(ctx, pw, 0, 0.5);
        loom_optimizer *o = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = 0.01 });
        for (int s = 0; s < 3; s++) {
            loom_reset(ctx);
            loom_t x = loom_full(ctx, LOOM_F32, LOOM_SHAPE(4, 96), 0.25);
            loom_t loss = loom_mean_all(ctx, loom_tanh(ctx, loom_matmul(ctx, x, pw)));
            assert_int_equal(loom_optimizer_attach(ctx, o, loss), LOOM_OK);
            assert_int_equal(loom_optimizer_step(ctx, o, 1, &loss), LOOM_OK);
        }
        assert_int_equal(loom_read(ctx, pw, w[k], sizeof w[k]), LOOM_OK);
        if (!k) {
            const plan *p = ctx->plans[0].plan;
            int over_w = 0, stores = 0;
            for (size_t c = 0; c < p->ncalls; c++) {
                const kernel *kn = &p->kernels[p->calls[c].kernel];
                int64_t n = 1;
                for (int d = 0; d < kn->space.rank; d++)
                    n *= kn->space.d[d];
                if (kn->kind != KN_MAP || n != 96 * 80)
                    continue;
                over_w++;
                for (uint32_t i = 0; i < kn->ncode; i++)
                    stores += kn->code[i].op == KI_STORE;
            }
            print_message("maps over w's %d elements: %d call(s), %d store(s)\n", 96 * 80, over_w, stores);
            assert_int_equal(over_w, 1);
            assert_int_equal(stores, 3); /* m, v and w */
            /* ... each over its own old value: nothing is copied after the run */
            assert_int_equal(p->commits_in_place, 3);
            assert_int_equal(p->ncommits, 0);
        }
        loom_optimizer_free(o);
        loom_ctx_free(ctx);
    }
    for (int i = 0; i < 96 * 80; i++)
        if (!(fabsf(w[0][i] - w[1][i]) <= 1e-5f * fmaxf(1.0f, fabsf(w[1][i]))))
            fail_msg("w[%d] after 3 Adam steps: jit %.9g, reference %.9g", i, w[0][i], w[1][i]);
}

/* Identical steps share kernels: T = 8 and T = 64 compile the same
 * number, forward and backward. */
static void test_jit_unrolled_steps_compile_same_kernels(void **state)
{
    (void)state;
    uint64_t compiled[2];
    size_t nkernels[2];
    int steps[2] = { 8, 64 };
    for (int k = 0; k < 2; k++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 3 });
        loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(8, 16)), u = loom_param(ctx, "u", LOOM_F32, LOOM_SHAPE(16, 16));
        loom_param_init_normal(ctx, w, 0, 0.3);
        loom_param_init_normal(ctx, u, 0, 0.3);
        loom_t loss = record_rnn(ctx, steps[k], w, u);
        assert_int_equal(loom_run(ctx, 1, &loss), LOOM_OK);
        loom_stats s;
        loom_get_stats(ctx, &s);
        compiled[k] = s.kernels_compiled;
        nkernels[k] = ctx->plans[0].plan->nkernels;
        print_message("T=%d: %zu calls, %zu distinct kernels, %llu compiled, %.0f ms LLVM, %.1f ms passes\n",
                      steps[k], ctx->plans[0].plan->ncalls, nkernels[k], (unsigned long long)s.kernels_compiled,
                      s.compile_ms, s.plan_ms);
        loom_ctx_free(ctx);
    }
    assert_int_equal(nkernels[0], nkernels[1]);
    assert_int_equal(compiled[0], compiled[1]);
}

/* The same run with 1, 2 and 3 threads gives the same bits. */
static void test_jit_threads_do_not_change_results(void **state)
{
    (void)state;
    float out[3][64 * 96];
    for (int k = 0; k < 3; k++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 8, .threads = k + 1 });
        loom_t a = loom_param(ctx, "a", LOOM_F32, LOOM_SHAPE(64, 300));
        loom_t b = loom_param(ctx, "b", LOOM_F32, LOOM_SHAPE(300, 96));
        loom_param_init_normal(ctx, a, 0, 1);
        loom_param_init_normal(ctx, b, 0, 1);
        loom_t y = loom_tanh(ctx, loom_add(ctx, loom_matmul(ctx, a, b), loom_sum(ctx, a, LOOM_AXES(1), true)));
        assert_int_equal(loom_run(ctx, 1, &y), LOOM_OK);
        assert_int_equal(loom_read(ctx, y, out[k], sizeof out[k]), LOOM_OK);
        loom_ctx_free(ctx);
    }
    assert_memory_equal(out[0], out[1], sizeof out[0]);
    assert_memory_equal(out[0], out[2], sizeof out[0]);
}

/* tanh(x W1 + b), sigmoid(h W2), relu(x W3) and x W4 + h W5 + b: the
 * bias, the activations and the sum of products fold into the GEMMs, and
 * the values are the reference's. */
static void test_jit_gemm_epilogues_fuse_and_match(void **state)
{
    (void)state;
    float out[2][4][4 * 16];
    for (int k = 0; k < 2; k++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 4, .backend = k ? LOOM_BACKEND_JIT : LOOM_BACKEND_REFERENCE });
        loom_t w[5];
        const loom_shape ws[5] = { LOOM_SHAPE(8, 16), LOOM_SHAPE(16, 16), LOOM_SHAPE(8, 16), LOOM_SHAPE(8, 16), LOOM_SHAPE(16, 16) };
        for (int i = 0; i < 5; i++) {
            char name[8];
            snprintf(name, sizeof name, "w%d", i);
            w[i] = loom_param(ctx, name, LOOM_F32, ws[i]);
            loom_param_init_normal(ctx, w[i], 0, 0.5);
        }
        loom_t b = loom_param(ctx, "b", LOOM_F32, LOOM_SHAPE(16));
        loom_param_init_normal(ctx, b, 0, 0.5);
        float xs[4 * 8], hs[4 * 16];
        for (int i = 0; i < 32; i++)
            xs[i] = (float)sin(i);
        for (int i = 0; i < 64; i++)
            hs[i] = (float)cos(i);
        loom_t x = loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(4, 8), xs), h = loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(4, 16), hs);
        loom_t y[4] = {
            loom_tanh(ctx, loom_add(ctx, loom_matmul(ctx, x, w[0]), b)),
            loom_sigmoid(ctx, loom_matmul(ctx, h, w[1])),
            loom_relu(ctx, loom_matmul(ctx, x, w[2])),
            loom_add(ctx, loom_add(ctx, loom_matmul(ctx, x, w[3]), loom_matmul(ctx, h, w[4])), b),
        };
        assert_int_equal(loom_run(ctx, 4, y), LOOM_OK);
        for (int i = 0; i < 4; i++)
            assert_int_equal(loom_read(ctx, y[i], out[k][i], sizeof out[k][i]), LOOM_OK);
        if (k) {
            const plan *p = ctx->plans[0].plan;
            int act[4] = { 0 }, acc_bias = 0, maps = 0;
            for (size_t c = 0; c < p->ncalls; c++) {
                const kernel *kn = &p->kernels[p->calls[c].kernel];
                if (kn->kind == KN_GEMM) {
                    act[kn->gemm.act]++;
                    acc_bias += kn->gemm.accumulate && kn->gemm.bias;
                } else {
                    maps++;
                }
            }
            /* tanh with its bias, sigmoid, relu, and the accumulating GEMM
             * with the bias: no map kernel at all */
            assert_int_equal(act[2], 1);
            assert_int_equal(act[3], 1);
            assert_int_equal(act[1], 1);
            assert_int_equal(acc_bias, 1);
            assert_int_equal(maps, 0);
            assert_int_equal(p->ncalls, 5);
        }
        loom_ctx_free(ctx);
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 64; j++)
            if (fabs(out[0][i][j] - out[1][i][j]) > 1e-5 * fmax(1, fabs(out[0][i][j])))
                fail_msg("output %d element %d: jit %g, reference %g", i, j, out[1][i][j], out[0][i][j]);
}

/* A bias that is itself computed (cast, scaled) is made by a kernel that
 * runs after the matmul's: it must not be folded into that GEMM. */
static void test_jit_gemm_computed_bias_is_not_folded_early(void **state)
{
    (void)state;
    double got[2][8];
    for (int k = 0; k < 2; k++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .backend = k ? LOOM_BACKEND_REFERENCE : LOOM_BACKEND_JIT });
        loom_t w = loom_param(ctx, "w", LOOM_F64, LOOM_SHAPE(3, 2));
        loom_t b = loom_param(ctx, "b", LOOM_F32, LOOM_SHAPE(2));
        double wv[6] = { .3, -.2, -.4, .1, .2, .5 }, xv[12] = { .5, -1, .25, -.75, .5, 1, 0, 1, -1, 2, 0, .5 };
        float bv[2] = { .1f, -.3f };
        loom_param_set(ctx, w, wv, sizeof wv);
        loom_param_set(ctx, b, bv, sizeof bv);
        loom_t x = loom_tensor(ctx, LOOM_F64, LOOM_SHAPE(4, 3), xv);
        loom_t y = loom_add(ctx, loom_matmul(ctx, x, w), loom_muls(ctx, loom_cast(ctx, b, LOOM_F64), 2.0));
        assert_int_equal(loom_run(ctx, 1, &y), LOOM_OK);
        assert_int_equal(loom_read(ctx, y, got[k], sizeof got[k]), LOOM_OK);
        loom_ctx_free(ctx);
    }
    tu_assert_close(got[0], got[1], 8, 1e-15, "matmul plus a computed bias");
}

/* A training plan says which buffers are inputs, parameters, outputs,
 * gradients and new parameter values, and prints them. */
static void test_jit_plan_records_buffer_roles(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 2 });
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(8, 4));
    loom_param_init_normal(ctx, w, 0, 0.5);
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(16, 8));
    float xs[128];
    for (int i = 0; i < 128; i++)
        xs[i] = (float)sin(i);
    loom_feed(ctx, x, xs, sizeof xs);
    loom_t loss = loom_mean_all(ctx, loom_square(ctx, loom_tanh(ctx, loom_matmul(ctx, x, w))));
    loom_backward(ctx, loss);
    loom_assign(ctx, w, loom_sub(ctx, w, loom_muls(ctx, loom_grad(ctx, w), 0.1)));
    assert_int_equal(loom_run(ctx, 1, &loss), LOOM_OK);
    const plan *p = ctx->plans[0].plan;
    int inputs = 0, params = 0, outputs = 0, updates = 0, backward = 0;
    for (size_t i = 0; i < p->nbuffers; i++) {
        const plan_buffer *b = &p->buffers[i];
        inputs += b->kind == PB_INPUT;
        params += b->kind == PB_PARAM;
        outputs += (b->role & PR_OUTPUT) != 0;
        updates += (b->role & PR_UPDATE) != 0;
        backward += (b->role & PR_BACKWARD) != 0;
    }
    assert_int_equal(inputs, 1);
    assert_int_equal(params, 1);
    assert_int_equal(outputs, 1);
    assert_int_equal(updates, 1);
    assert_true(backward >= 1);
    /* w's update is written over w by the call computing it */
    assert_int_equal(p->ncommits, 0);
    assert_int_equal(p->commits_in_place, 1);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    plan_print(p, f);
    fclose(f);
    assert_non_null(strstr(text, "gemm"));
    assert_non_null(strstr(text, " output"));
    assert_non_null(strstr(text, " update"));
    free(text);
    loom_ctx_free(ctx);
}

static void test_jit_index_error_fails_the_run(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(NULL);
    loom_t table = loom_full(ctx, LOOM_F32, LOOM_SHAPE(10, 4), 1);
    int32_t ids[3] = { 1, 12, 3 };
    loom_t x = loom_gather(ctx, loom_mul(ctx, table, table), loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(3), ids), 0);
    assert_int_equal(loom_run(ctx, 1, &x), LOOM_ERR_INDEX);
    tu_assert_error(ctx, LOOM_ERR_INDEX, "12", "[0, 10)");
    loom_ctx_free(ctx);
}

static void assert_close(const float *got, const float *want, int n, const char *what);

/* Assignments written over their parameters in place keep "all reads
 * in a run see the old values": w is read by a map fused with its update,
 * by a reduction and by a GEMM (through its transpose), u's new value is
 * its own transpose (not element by element: a copy is committed), and
 * the results match the reference executor's. */
static void test_jit_commit_in_place_reads_see_old_values(void **state)
{
    (void)state;
    enum { N = 48 };
    float got[2][5][N * N];
    size_t in_place = 0, copied = 0;
    for (int k = 0; k < 2; k++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 9, .threads = 1, /* maps, not row chains */
                                                       .backend = k ? LOOM_BACKEND_REFERENCE : LOOM_BACKEND_JIT });
        loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(N, N));
        loom_t u = loom_param(ctx, "u", LOOM_F32, LOOM_SHAPE(N, N));
        loom_param_init_normal(ctx, w, 0, 0.5);
        loom_param_init_normal(ctx, u, 0, 0.5);
        loom_t outs[3] = { loom_exp(ctx, w), loom_sum(ctx, w, 1, (int[]){ 1 }, true),
                           loom_matmul(ctx, w, loom_transpose(ctx, w, 0, 1)) };
        loom_assign(ctx, w, loom_adds(ctx, loom_muls(ctx, w, 2), 1));
        loom_assign(ctx, u, loom_transpose(ctx, u, 0, 1));
        TU_OK(ctx);
        assert_int_equal(loom_run(ctx, 3, outs), LOOM_OK);
        assert_int_equal(loom_read(ctx, outs[0], got[k][0], sizeof got[k][0]), LOOM_OK);
        assert_int_equal(loom_read(ctx, outs[1], got[k][1], N * sizeof(float)), LOOM_OK);
        assert_int_equal(loom_read(ctx, outs[2], got[k][2], sizeof got[k][2]), LOOM_OK);
        assert_int_equal(loom_read(ctx, w, got[k][3], sizeof got[k][3]), LOOM_OK);
        assert_int_equal(loom_read(ctx, u, got[k][4], sizeof got[k][4]), LOOM_OK);
        if (!k) {
            in_place = ctx->plans[0].plan->commits_in_place;
            copied = ctx->plans[0].plan->ncommits;
        }
        loom_ctx_free(ctx);
    }
    print_message("assignments: %zu written in place, %zu copied after the run\n", in_place, copied);
    assert_int_equal(in_place, 1); /* w's */
    assert_int_equal(copied, 1);   /* u's transpose */
    assert_close(got[0][0], got[1][0], N * N, "exp(w)");
    assert_close(got[0][1], got[1][1], N, "sum(w, 1)");
    assert_close(got[0][2], got[1][2], N * N, "w wT");
    assert_close(got[0][3], got[1][3], N * N, "w after the run");
    assert_close(got[0][4], got[1][4], N * N, "u after the run");
}

/* A run that fails an index check commits nothing, though its plan
 * writes the update in place: the check comes before the update. */
static void test_jit_index_error_commits_nothing(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 4 });
    loom_t table = loom_param(ctx, "table", LOOM_F32, LOOM_SHAPE(10, 4));
    loom_param_init_normal(ctx, table, 0, 1);
    loom_t ids = loom_input(ctx, "ids", LOOM_I32, LOOM_SHAPE(3));
    loom_t loss = loom_sum_all(ctx, loom_square(ctx, loom_gather(ctx, table, ids, 0)));
    loom_backward(ctx, loss);
    loom_assign(ctx, table, loom_sub(ctx, table, loom_muls(ctx, loom_grad(ctx, table), 0.1)));
    TU_OK(ctx);
    float before[40], after[40];
    assert_int_equal(loom_read(ctx, table, before, sizeof before), LOOM_OK);
    assert_int_equal(loom_feed(ctx, ids, (int32_t[]){ 1, 2, 3 }, 12), LOOM_OK);
    assert_int_equal(loom_run(ctx, 1, &loss), LOOM_OK);
    assert_int_equal(ctx->plans[0].plan->commits_in_place, 1);
    assert_int_equal(loom_read(ctx, table, before, sizeof before), LOOM_OK);
    assert_int_equal(loom_feed(ctx, ids, (int32_t[]){ 1, 12, 3 }, 12), LOOM_OK);
    assert_int_equal(loom_run(ctx, 1, &loss), LOOM_ERR_INDEX);
    tu_assert_error(ctx, LOOM_ERR_INDEX, "12", "[0, 10)");
    assert_int_equal(loom_read(ctx, table, after, sizeof after), LOOM_OK);
    assert_memory_equal(before, after, sizeof before);
    loom_ctx_free(ctx);
}

/* ------------------------------------------------------------------ */
/* Time-batching                                                      */
/* ------------------------------------------------------------------ */

enum { BT = 12, BB = 4, BI = 8, BH = 16 };

/* An Elman RNN over x [T, B, I] cut into steps, every step's output in
 * the loss; the gradients of W, U and x. batch = 0 turns batching off. */
typedef struct elman_run {
    float loss, dw[BI * BH], du[BH * BH], dx[BT * BB * BI];
    size_t gemm_calls, big_gemms, fills, copies;
} elman_run;

static void run_elman(loom_backend backend, bool batch, elman_run *r)
{
    if (!batch)
        setenv("LOOM_BATCH", "0", 1);
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 6, .backend = backend });
    unsetenv("LOOM_BATCH");
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(BI, BH)), u = loom_param(ctx, "u", LOOM_F32, LOOM_SHAPE(BH, BH));
    loom_param_init_normal(ctx, w, 0, 0.4);
    loom_param_init_normal(ctx, u, 0, 0.3);
    float xs[BT * BB * BI];
    for (int i = 0; i < BT * BB * BI; i++)
        xs[i] = (float)sin(0.7 * i);
    loom_t x = loom_param(ctx, "x", LOOM_F32, LOOM_SHAPE(BT, BB, BI));
    loom_param_set(ctx, x, xs, sizeof xs);
    loom_t h = loom_full(ctx, LOOM_F32, LOOM_SHAPE(BB, BH), 0), loss = loom_scalar(ctx, LOOM_F32, 0);
    for (int t = 0; t < BT; t++) {
        loom_step_begin(ctx, t);
        loom_t xt = loom_reshape(ctx, loom_slice(ctx, x, 0, t, t + 1, 1), LOOM_SHAPE(BB, BI));
        h = loom_tanh(ctx, loom_add(ctx, loom_matmul(ctx, xt, w), loom_matmul(ctx, h, u)));
        loss = loom_add(ctx, loss, loom_mean_all(ctx, loom_mul(ctx, h, h)));
        loom_step_end(ctx);
    }
    loom_backward(ctx, loss);
    loom_t outs[4] = { loss, loom_grad(ctx, w), loom_grad(ctx, u), loom_grad(ctx, x) };
    assert_int_equal(loom_run(ctx, 4, outs), LOOM_OK);
    assert_int_equal(loom_read(ctx, outs[0], &r->loss, sizeof r->loss), LOOM_OK);
    assert_int_equal(loom_read(ctx, outs[1], r->dw, sizeof r->dw), LOOM_OK);
    assert_int_equal(loom_read(ctx, outs[2], r->du, sizeof r->du), LOOM_OK);
    assert_int_equal(loom_read(ctx, outs[3], r->dx, sizeof r->dx), LOOM_OK);
    r->gemm_calls = r->big_gemms = r->fills = r->copies = 0;
    if (backend == LOOM_BACKEND_JIT) {
        const plan *p = ctx->plans[0].plan;
        for (size_t c = 0; c < p->ncalls; c++) {
            const kernel *k = &p->kernels[p->calls[c].kernel];
            if (k->kind == KN_GEMM && k->gemm.bpack != KN_BPACK_PACK) { /* products, not packing */
                r->gemm_calls++;
                /* a product over many steps' rows (or its contraction) */
                r->big_gemms += k->gemm.m > BB * 2 || k->gemm.k > BH * 2;
            }
            /* a full-size zero fill of x's gradient (a step's pad) */
            r->fills += k->kind == KN_MAP && k->ncode == 2 && k->code[0].op == OP_CONST &&
                        loom_shape_numel(k->space) == BT * BB * BI;
            /* a copy (into a stacked operand) */
            r->copies += k->kind == KN_MAP && k->ncode == 2 && k->code[0].op == KI_LOAD;
        }
    }
    loom_ctx_free(ctx);
}

static void assert_close(const float *got, const float *want, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= 2e-5 * fmax(1, fabs(want[i]))))
            fail_msg("%s[%d]: %.8g, reference %.8g", what, i, got[i], want[i]);
}

/* The input projections x_t W of all steps run as one GEMM, and so do
 * the backward dx_t = dz_t W^T and the weight gradients sum_t x_t^T dz_t
 * and sum_t h_{t-1}^T dz_t; the recurrent h U stays one GEMM per step.
 * x's gradient is one buffer, not T padded copies summed. The stacked
 * operands cost no copy: each step's h and dz are computed in place in
 * them. The values are the reference's, batched or not. */
static void test_jit_time_batching_matches_reference(void **state)
{
    (void)state;
    static elman_run ref, on, off;
    run_elman(LOOM_BACKEND_REFERENCE, true, &ref);
    run_elman(LOOM_BACKEND_JIT, true, &on);
    run_elman(LOOM_BACKEND_JIT, false, &off);
    const elman_run *runs[2] = { &on, &off };
    for (int k = 0; k < 2; k++) {
        assert_close(&runs[k]->loss, &ref.loss, 1, "loss");
        assert_close(runs[k]->dw, ref.dw, BI * BH, "dW");
        assert_close(runs[k]->du, ref.du, BH * BH, "dU");
        assert_close(runs[k]->dx, ref.dx, BT * BB * BI, "dx");
    }
    print_message("T=%d: %zu GEMM calls batched (%zu over many steps), %zu not\n", BT, on.gemm_calls, on.big_gemms,
                  off.gemm_calls);
    /* forward: 1 batched x W + (T - 1) h U (h_0 = 0 folds away);
     * backward: (T - 1) dz U^T, batched dx, dW, dU */
    assert_int_equal(on.gemm_calls, 2 * (BT - 1) + 4);
    assert_int_equal(on.big_gemms, 4);
    assert_int_equal(on.fills, 0);
    assert_int_equal(on.copies, 0);
    assert_true(off.gemm_calls > on.gemm_calls + BT);
}

/* h_{t+1} = tanh(h_t W): every product needs the one before, so none of
 * the forward or backward chain batches; only W's gradient, a sum over
 * steps of products that do not depend on each other, does. */
static void test_jit_time_batching_leaves_recurrence_alone(void **state)
{
    (void)state;
    float got[2][BH * BH + 1];
    size_t gemms = 0, packs = 0, packed = 0;
    for (int k = 0; k < 2; k++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 9, .backend = k ? LOOM_BACKEND_JIT : LOOM_BACKEND_REFERENCE });
        loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(BH, BH));
        loom_param_init_normal(ctx, w, 0, 0.3);
        float hs[BB * BH];
        for (int i = 0; i < BB * BH; i++)
            hs[i] = (float)cos(i);
        loom_t h = loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(BB, BH), hs);
        for (int t = 0; t < BT; t++) {
            loom_step_begin(ctx, t);
            h = loom_tanh(ctx, loom_matmul(ctx, h, w));
            loom_step_end(ctx);
        }
        loom_t loss = loom_sum_all(ctx, loom_mul(ctx, h, h));
        loom_backward(ctx, loss);
        loom_t outs[2] = { loss, loom_grad(ctx, w) };
        assert_int_equal(loom_run(ctx, 2, outs), LOOM_OK);
        assert_int_equal(loom_read(ctx, outs[0], &got[k][BH * BH], sizeof(float)), LOOM_OK);
        assert_int_equal(loom_read(ctx, outs[1], got[k], BH * BH * sizeof(float)), LOOM_OK);
        if (k) {
            const plan *p = ctx->plans[0].plan;
            for (size_t c = 0; c < p->ncalls; c++) {
                const kernel *kn = &p->kernels[p->calls[c].kernel];
                gemms += kn->kind == KN_GEMM && kn->gemm.bpack != KN_BPACK_PACK;
                packs += kn->kind == KN_GEMM && kn->gemm.bpack == KN_BPACK_PACK;
                packed += kn->kind == KN_GEMM && kn->gemm.bpack == KN_BPACK_PACKED;
            }
        }
        loom_ctx_free(ctx);
    }
    assert_close(got[1], got[0], BH * BH + 1, "dW and loss");
    /* T forward, T - 1 backward through h (h_0 is a constant), 1 dW */
    assert_int_equal(gemms, 2 * BT);
    /* the per-step products read w packed once: w forward, w^T backward */
    assert_int_equal(packs, 2);
    assert_int_equal(packed, 2 * BT - 1);
}

/* A layer-normalised cell (examples/ln_lstm.h's structure): each step's
 * statistics, normalisation and gate math, forward and backward, run as
 * row chains (one call per run of map and reduce kernels between GEMMs)
 * whose temporaries live in the threads' scratch, and give the
 * reference's values, with LOOM_ROWS=0's kernels as well. The backward
 * pass recomputes the normalised values instead of keeping them
 * (remat.c): the same values, bitwise, from a smaller arena. */
static void test_jit_row_chains_match_reference(void **state)
{
    (void)state;
    enum { NOUT = 6, MAXN = BT * BB * BH + 4 * BH * BH, NK = 5 };
    static float got[NK][NOUT][MAXN];
    size_t calls[NK] = { 0 }, chains[NK] = { 0 }, local[NK] = { 0 };
    uint64_t arena[NK] = { 0 }, remat[NK] = { 0 };
    /* reference, JIT without chains, JIT on 2 threads, JIT on 1, JIT on 2 without recomputation */
    for (int k = 0; k < NK; k++) {
        loom_ctx *ctx = loom_ctx_new(&(loom_options){
            .seed = 5, .backend = k ? LOOM_BACKEND_JIT : LOOM_BACKEND_REFERENCE, .threads = k == 3 ? 1 : 2 });
        ctx->no_rows = k == 1;
        ctx->no_remat = k == 4;
        loom_layernorm ln_h, ln_c;
        assert_int_equal(loom_layernorm_init(ctx, &ln_h, "ln_h", 4 * BH, 1e-5, LOOM_F32), LOOM_OK);
        assert_int_equal(loom_layernorm_init(ctx, &ln_c, "ln_c", BH, 1e-5, LOOM_F32), LOOM_OK);
        loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(4 * BH, BH));
        loom_t u = loom_param(ctx, "u", LOOM_F32, LOOM_SHAPE(4 * BH, BH));
        loom_param_init_normal(ctx, w, 0, 0.3);
        loom_param_init_normal(ctx, u, 0, 0.3);
        loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(BT, BB, BH));
        loom_t h = loom_full(ctx, LOOM_F32, LOOM_SHAPE(BB, BH), 0), c = h, hs[BT];
        for (int t = 0; t < BT; t++) {
            loom_step_begin(ctx, t);
            loom_t xt = loom_reshape(ctx, loom_slice(ctx, x, 0, t, t + 1, 1), LOOM_SHAPE(BB, BH));
            loom_t g = loom_add(ctx, loom_matmul_t(ctx, xt, u, false, true),
                                loom_layernorm_forward(ctx, &ln_h, loom_matmul_t(ctx, h, w, false, true)));
            loom_t i = loom_sigmoid(ctx, loom_slice(ctx, g, 1, 0, BH, 1));
            loom_t f = loom_sigmoid(ctx, loom_slice(ctx, g, 1, BH, 2 * BH, 1));
            loom_t z = loom_tanh(ctx, loom_slice(ctx, g, 1, 2 * BH, 3 * BH, 1));
            loom_t o = loom_sigmoid(ctx, loom_slice(ctx, g, 1, 3 * BH, 4 * BH, 1));
            c = loom_add(ctx, loom_mul(ctx, f, c), loom_mul(ctx, i, z));
            h = loom_mul(ctx, o, loom_tanh(ctx, loom_layernorm_forward(ctx, &ln_c, c)));
            hs[t] = loom_reshape(ctx, h, LOOM_SHAPE(1, BB, BH));
            loom_step_end(ctx);
        }
        loom_t out = loom_concat(ctx, BT, hs, 0);
        loom_t loss = loom_sum_all(ctx, loom_mul(ctx, out, loom_sin(ctx, out)));
        loom_backward(ctx, loss);
        loom_t outs[NOUT] = { out, loom_grad(ctx, w), loom_grad(ctx, u), loom_grad(ctx, ln_h.weight),
                              loom_grad(ctx, ln_c.bias), loom_grad(ctx, ln_c.weight) };
        float xs[BT * BB * BH];
        for (int j = 0; j < BT * BB * BH; j++)
            xs[j] = (float)sin(0.7 * j);
        assert_int_equal(loom_feed(ctx, x, xs, sizeof xs), LOOM_OK);
        if (loom_run(ctx, NOUT, outs) != LOOM_OK)
            fail_msg("%s", loom_errmsg(ctx));
        for (int j = 0; j < NOUT; j++) {
            size_t n = (size_t)loom_shape_numel(loom_shape_of(ctx, outs[j]));
            assert_true(n <= MAXN);
            assert_int_equal(loom_read(ctx, outs[j], got[k][j], n * sizeof(float)), LOOM_OK);
            /* a layer norm's divisions amplify rounding over 12 steps:
             * the JIT's kernels (chained or not) are checked against the
             * reference loosely, and chaining must change nothing */
            for (size_t e = 0; k && e < n; e++)
                if (!(fabs(got[k][j][e] - got[0][j][e]) <= 3e-4 * fmax(1, fabs(got[0][j][e]))))
                    fail_msg("output %d [%zu] (variant %d): %.8g, reference %.8g", j, e, k, got[k][j][e],
                             got[0][j][e]);
            if (k >= 2)
                assert_memory_equal(got[k][j], got[1][j], n * sizeof(float));
        }
        if (k) {
            const plan *p = ctx->plans[0].plan;
            calls[k] = p->ncalls;
            arena[k] = p->arena_bytes;
            remat[k] = p->report.remat_trees;
            for (size_t ci = 0; ci < p->ncalls; ci++) {
                const kernel *kn = &p->kernels[p->calls[ci].kernel];
                chains[k] += kn->kind == KN_ROWS;
                for (uint32_t a = 0; kn->kind == KN_ROWS && a < kn->nargs; a++)
                    local[k] += kn->arg_scratch[a] >= 0;
            }
        }
        loom_ctx_free(ctx);
    }
    /* temporaries of the chains (centred values, squares) live in the
     * scratch; values read after the chain do not */
    assert_true(local[2] >= 2 * BT);
    assert_int_equal(local[1], 0);
    /* the normalised values are recomputed: each step keeps its
     * pre-normalisation input instead of two values of its size */
    assert_true(remat[2] >= 4 * BT);
    assert_int_equal(remat[4], 0);
    assert_true(arena[2] < arena[4]);
    /* every step's forward and backward statistics and gate math chain */
    assert_int_equal(chains[1], 0);
    assert_true(chains[2] >= 2 * BT - 2);
    assert_true(calls[2] * 3 < calls[1]);
    /* on one thread a chain saves no wake-ups: the plan has none */
    assert_int_equal(chains[3], 0);
    assert_int_equal(calls[3], calls[1]);
}

/* Column reductions (every axis but a long last one reduced) split their
 * columns across work items: sums and maxes over [a, b, 1500] (a partial
 * last chunk) and a bias-gradient-like sum of products, against the
 * reference, at 1 and 2 threads. */
static void test_jit_column_reductions(void **state)
{
    (void)state;
    enum { A = 3, B = 37, C = 1500 };
    static float x[A * B * C], y[A * B * C], got[3][3][C];
    for (int i = 0; i < A * B * C; i++) {
        x[i] = (float)sin(0.37 * i);
        y[i] = (float)cos(0.11 * i);
    }
    for (int k = 0; k < 3; k++) { /* reference, JIT 1 thread, JIT 2 threads */
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .backend = k ? LOOM_BACKEND_JIT : LOOM_BACKEND_REFERENCE,
                                                      .threads = k == 2 ? 2 : 1 });
        loom_t tx = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(A, B, C));
        loom_t ty = loom_input(ctx, "y", LOOM_F32, LOOM_SHAPE(A, B, C));
        int ax[2] = { 0, 1 };
        loom_t outs[3] = { loom_sum(ctx, tx, 2, ax, false), loom_max(ctx, tx, 2, ax, false),
                           loom_sum(ctx, loom_mul(ctx, tx, loom_exp(ctx, ty)), 2, ax, false) };
        assert_int_equal(loom_feed(ctx, tx, x, sizeof x), LOOM_OK);
        assert_int_equal(loom_feed(ctx, ty, y, sizeof y), LOOM_OK);
        assert_int_equal(loom_run(ctx, 3, outs), LOOM_OK);
        for (int j = 0; j < 3; j++) {
            assert_int_equal(loom_read(ctx, outs[j], got[k][j], sizeof got[k][j]), LOOM_OK);
            if (k)
                assert_close(got[k][j], got[0][j], C, j == 0 ? "sum" : j == 1 ? "max" : "sum of products");
        }
        loom_ctx_free(ctx);
    }
}

/* What the backward pass recomputes (remat.c): u = sigmoid(a) * 2 + 1
 * has one leaf of its size (sigmoid(a)) and is recomputed where the
 * gradient of u * v reads it; w = sigmoid(a) * sigmoid(b) has two and is
 * kept. Gradients equal the reference's, and the plan without
 * recomputation's bitwise. */
static void test_jit_recompute_cheap_values(void **state)
{
    (void)state;
    enum { N = 4096, NK = 3 };
    static float got[NK][3][N], xs[2][N];
    for (int i = 0; i < N; i++) {
        xs[0][i] = (float)sin(0.1 * i);
        xs[1][i] = (float)cos(0.07 * i);
    }
    uint64_t trees[NK] = { 0 };
    for (int k = 0; k < NK; k++) { /* reference, JIT, JIT without recomputation */
        loom_ctx *ctx = loom_ctx_new(&(loom_options){ .backend = k ? LOOM_BACKEND_JIT : LOOM_BACKEND_REFERENCE,
                                                      .threads = 1 });
        ctx->no_remat = k == 2;
        loom_t a = loom_param(ctx, "a", LOOM_F32, LOOM_SHAPE(N));
        loom_t b = loom_param(ctx, "b", LOOM_F32, LOOM_SHAPE(N));
        assert_int_equal(loom_param_set(ctx, a, xs[0], sizeof xs[0]), LOOM_OK);
        assert_int_equal(loom_param_set(ctx, b, xs[1], sizeof xs[1]), LOOM_OK);
        loom_t sa = loom_sigmoid(ctx, a), sb = loom_sigmoid(ctx, b);
        loom_t u = loom_add(ctx, loom_mul(ctx, sa, loom_full(ctx, LOOM_F32, LOOM_SCALAR, 2)),
                            loom_full(ctx, LOOM_F32, LOOM_SCALAR, 1));
        loom_t w = loom_mul(ctx, sa, sb);
        /* u and w are read by the backward pass: d(u w)/dw = u, d(w w)/dw = 2 w */
        loom_t loss = loom_sum_all(ctx, loom_add(ctx, loom_mul(ctx, u, w), loom_mul(ctx, w, w)));
        loom_backward(ctx, loss);
        loom_t outs[3] = { loom_grad(ctx, a), loom_grad(ctx, b), loss };
        if (loom_run(ctx, 3, outs) != LOOM_OK)
            fail_msg("%s", loom_errmsg(ctx));
        for (int j = 0; j < 3; j++) {
            size_t n = (size_t)loom_shape_numel(loom_shape_of(ctx, outs[j]));
            assert_int_equal(loom_read(ctx, outs[j], got[k][j], n * sizeof(float)), LOOM_OK);
            if (k)
                assert_close(got[k][j], got[0][j], (int)n, j == 0 ? "da" : j == 1 ? "db" : "loss");
            if (k == 2)
                assert_memory_equal(got[2][j], got[1][j], n * sizeof(float));
        }
        if (k)
            trees[k] = ctx->plans[0].plan->report.remat_trees;
        loom_ctx_free(ctx);
    }
    /* u's readers in the backward pass (the gradient of u * w) recompute
     * it; w, with two leaves of its size, is read from memory */
    assert_int_equal(trees[1], 1);
    assert_int_equal(trees[2], 0);
}

/* The fusion report of an Elman RNN: it names the recurrent matmuls left
 * unbatched, the boundary before each (h goes to memory for the next
 * step's matmul) with a first case, and follows snprintf's contract. */
static void test_jit_fusion_report(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 9 });
    char small[16] = "unchanged";
    assert_int_equal(loom_fusion_report(ctx, small, sizeof small), 0); /* nothing ran yet */
    assert_string_equal(small, "");
    assert_int_equal(loom_fusion_report(NULL, NULL, 0), 0);
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(BH, BH));
    loom_t u = loom_param(ctx, "u", LOOM_F32, LOOM_SHAPE(BH, BH));
    loom_param_init_normal(ctx, w, 0, 0.3);
    loom_param_init_normal(ctx, u, 0, 0.3);
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(BT, BB, BH));
    loom_t h = loom_full(ctx, LOOM_F32, LOOM_SHAPE(BB, BH), 0);
    for (int t = 0; t < BT; t++) {
        loom_step_begin(ctx, t);
        loom_t xt = loom_reshape(ctx, loom_slice(ctx, x, 0, t, t + 1, 1), LOOM_SHAPE(BB, BH));
        h = loom_mul(ctx, loom_tanh(ctx, loom_add(ctx, loom_matmul(ctx, xt, u), loom_matmul(ctx, h, w))), h);
        h = loom_add(ctx, h, xt);
        loom_step_end(ctx);
    }
    loom_t loss = loom_sum_all(ctx, loom_mul(ctx, h, h));
    loom_backward(ctx, loss);
    loom_t outs[2] = { loss, loom_grad(ctx, w) };
    float xs[BT * BB * BH];
    for (int i = 0; i < BT * BB * BH; i++)
        xs[i] = (float)sin(i);
    assert_int_equal(loom_feed(ctx, x, xs, sizeof xs), LOOM_OK);
    assert_int_equal(loom_run(ctx, 2, outs), LOOM_OK);
    size_t len = loom_fusion_report(ctx, NULL, 0);
    assert_true(len > 100);
    char *text = malloc(len + 1);
    assert_non_null(text);
    assert_int_equal(loom_fusion_report(ctx, text, len + 1), len);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(text, "fusion report:"));
    /* the x projections batch into one GEMM; the recurrent ones (h w
     * forward, dh w^T backward, less the ones a zero h_0 removes) stay */
    unsigned in = 0, out = 0, left = 0;
    const char *tb = strstr(text, "time batching:");
    assert_non_null(tb);
    assert_int_equal(sscanf(tb, "time batching: %u matmuls -> %u; %u left unbatched", &in, &out, &left), 3);
    assert_true(in >= 3 * BT && out < in - BT + 2);
    assert_in_range(left, 2 * BT - 4, 2 * BT);
    /* h_t goes to memory because step t + 1's matmul reads it */
    const char *line = strstr(text, "read by a matmul");
    assert_non_null(line);
    assert_non_null(strstr(line, "-> matmul"));
    assert_non_null(strstr(line, "step "));
    /* truncation: terminated, same length returned */
    assert_int_equal(loom_fusion_report(ctx, small, sizeof small), len);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, text, sizeof small - 1);
    free(text);
    loom_ctx_free(ctx);
}

/* Lookup folding (fold.c): rows looked up from a table of fewer rows
 * than are looked up, multiplied by weights (op(W) transposed and not),
 * become lookups of the table's product; the backward products (the
 * weights' gradients, the table's through the product) come from one
 * scatter of the output gradient. Values and gradients match the
 * reference executor, the GEMM work shrinks, LOOM_FOLD's switch turns it
 * off, and an index out of range still fails the run. */
typedef struct fold_run {
    float loss, de[7 * 6], dw[8 * 6], du[6 * 5];
    uint64_t folds;
    double flops;
} fold_run;

static loom_code run_fold(loom_backend backend, bool off, const int32_t *ids, fold_run *r)
{
    enum { V = 7, H = 6, N = 8, M = 5, R = 20 };
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 3, .backend = backend });
    ctx->no_fold = off;
    loom_t e = loom_param(ctx, "e", LOOM_F32, LOOM_SHAPE(V, H));
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(N, H));
    loom_t u = loom_param(ctx, "u", LOOM_F32, LOOM_SHAPE(H, M));
    loom_param_init_normal(ctx, e, 0, 1);
    loom_param_init_normal(ctx, w, 0, 0.5);
    loom_param_init_normal(ctx, u, 0, 0.5);
    loom_t idx = loom_input(ctx, "ids", LOOM_I32, LOOM_SHAPE(4, R / 4));
    loom_t y = loom_reshape(ctx, loom_gather(ctx, e, idx, 0), LOOM_SHAPE(R, H));
    loom_t a = loom_tanh(ctx, loom_matmul_t(ctx, y, w, false, true)); /* y wT: [R, N] */
    loom_t b = loom_sigmoid(ctx, loom_matmul(ctx, y, u));             /* y u: [R, M] */
    loom_t loss = loom_add(ctx, loom_sum_all(ctx, loom_mul(ctx, a, a)), loom_sum_all(ctx, b));
    loom_backward(ctx, loss);
    loom_t outs[4] = { loss, loom_grad(ctx, e), loom_grad(ctx, w), loom_grad(ctx, u) };
    TU_OK(ctx);
    assert_int_equal(loom_feed(ctx, idx, ids, R * sizeof *ids), LOOM_OK);
    loom_code c = loom_run(ctx, 4, outs);
    if (c == LOOM_OK) {
        assert_int_equal(loom_read(ctx, outs[0], &r->loss, sizeof r->loss), LOOM_OK);
        assert_int_equal(loom_read(ctx, outs[1], r->de, sizeof r->de), LOOM_OK);
        assert_int_equal(loom_read(ctx, outs[2], r->dw, sizeof r->dw), LOOM_OK);
        assert_int_equal(loom_read(ctx, outs[3], r->du, sizeof r->du), LOOM_OK);
        loom_stats st;
        assert_int_equal(loom_get_stats(ctx, &st), LOOM_OK);
        r->flops = st.gemm_flops;
        r->folds = backend == LOOM_BACKEND_JIT ? ctx->plans[0].plan->report.folds : 0;
    } else {
        tu_assert_error(ctx, LOOM_ERR_INDEX, "9", "[0, 7)");
    }
    loom_ctx_free(ctx);
    return c;
}

static void test_jit_lookup_folding(void **state)
{
    (void)state;
    int32_t ids[20];
    for (int i = 0; i < 20; i++)
        ids[i] = (i * 5 + i / 3) % 7;
    fold_run ref, on, off;
    assert_int_equal(run_fold(LOOM_BACKEND_REFERENCE, false, ids, &ref), LOOM_OK);
    assert_int_equal(run_fold(LOOM_BACKEND_JIT, false, ids, &on), LOOM_OK);
    assert_int_equal(run_fold(LOOM_BACKEND_JIT, true, ids, &off), LOOM_OK);
    print_message("lookup folding: %llu folds, GEMM flops %.0f (unfolded %.0f)\n", (unsigned long long)on.folds,
                  on.flops, off.flops);
    /* forward y wT and y u; backward dY^T y (w's), y^T dY (u's) and the
     * table's scatter of dY wT and dY uT */
    assert_true(on.folds >= 5);
    assert_int_equal(off.folds, 0);
    assert_true(on.flops < 0.5 * off.flops);
    const fold_run *runs[2] = { &on, &off };
    for (int k = 0; k < 2; k++) {
        assert_close(&runs[k]->loss, &ref.loss, 1, "loss");
        assert_close(runs[k]->de, ref.de, 7 * 6, "table gradient");
        assert_close(runs[k]->dw, ref.dw, 8 * 6, "w gradient (wT product)");
        assert_close(runs[k]->du, ref.du, 6 * 5, "u gradient (u product)");
    }
    ids[13] = 9;
    fold_run bad;
    assert_int_equal(run_fold(LOOM_BACKEND_JIT, false, ids, &bad), LOOM_ERR_INDEX);
}

/* A scatter-add of long rows splits each row's columns among the work
 * items (threads share a table's gradient): sums match the reference
 * executor's, rows of 5000 (blocks with a ragged last one) and of 48
 * (one block), batched (outer 2) or not, on 1 and 2 threads; a bad index
 * still fails the run, reported once with its position, by a batched
 * gather and scatter too. */
static void test_jit_scatter_splits_long_rows(void **state)
{
    (void)state;
    enum { R = 37, V = 5 };
    const int64_t widths[2] = { 5000, 48 }; /* 37 x 5000 is enough work for 2 threads (PARALLEL_COST) */
    int32_t ids[R];
    for (int i = 0; i < R; i++)
        ids[i] = (i * 3 + i / 4) % V;
    for (int wi = 0; wi < 2; wi++)
        for (int batched = 0; batched < 2; batched++)
            for (int threads = 1; threads <= 2; threads++) {
                int64_t n = widths[wi];
                float *got[2];
                for (int k = 0; k < 2; k++) {
                    loom_ctx *ctx = loom_ctx_new(&(loom_options){
                        .seed = 5, .threads = threads, .backend = k ? LOOM_BACKEND_REFERENCE : LOOM_BACKEND_JIT });
                    loom_shape ss = batched ? LOOM_SHAPE(2, R, n) : LOOM_SHAPE(R, n);
                    loom_t src = loom_sin(ctx, loom_iota(ctx, LOOM_F32, ss, batched ? 2 : 1));
                    src = loom_add(ctx, src, loom_iota(ctx, LOOM_F32, ss, batched ? 1 : 0));
                    loom_t idx = loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(R), ids);
                    loom_t y = loom_scatter_add(ctx, src, idx, batched ? 1 : 0, V);
                    TU_OK(ctx);
                    assert_int_equal(loom_run(ctx, 1, &y), LOOM_OK);
                    size_t bytes = (size_t)(batched ? 2 : 1) * V * (size_t)n * sizeof(float);
                    got[k] = malloc(bytes);
                    assert_non_null(got[k]);
                    assert_int_equal(loom_read(ctx, y, got[k], bytes), LOOM_OK);
                    loom_ctx_free(ctx);
                }
                assert_close(got[0], got[1], (int)((batched ? 2 : 1) * V * n), "scatter_add");
                free(got[0]);
                free(got[1]);
            }
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 5, .threads = 2 });
    int32_t bad[R];
    memcpy(bad, ids, sizeof bad);
    bad[29] = V + 2;
    loom_t y = loom_scatter_add(ctx, loom_full(ctx, LOOM_F32, LOOM_SHAPE(R, 5000), 1),
                                loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(R), bad), 0, V);
    assert_int_equal(loom_run(ctx, 1, &y), LOOM_ERR_INDEX);
    tu_assert_error(ctx, LOOM_ERR_INDEX, "index 7", "position 29");
    loom_ctx_free(ctx);
    /* batched (3 members, each looking up the same indices), gather and
     * scatter: one member records the bad index (ThreadSanitizer checks
     * this test: no two threads write the status words for one position) */
    for (int op = 0; op < 2; op++) {
        ctx = loom_ctx_new(&(loom_options){ .seed = 5, .threads = 2 });
        loom_t idx = loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(R), bad);
        y = op ? loom_scatter_add(ctx, loom_full(ctx, LOOM_F32, LOOM_SHAPE(3, R, 2000), 1), idx, 1, V)
               : loom_gather(ctx, loom_full(ctx, LOOM_F32, LOOM_SHAPE(3, V, 2000), 1), idx, 1);
        assert_int_equal(loom_run(ctx, 1, &y), LOOM_ERR_INDEX);
        tu_assert_error(ctx, LOOM_ERR_INDEX, "index 7", "position 29");
        loom_ctx_free(ctx);
    }
}

/* Gradients of slices: disjoint ones (with a gap between them) become a
 * concatenation with zeros; overlapping ones must still add up. */
static void test_jit_slice_gradients_concatenate(void **state)
{
    (void)state;
    float got[2][2][10 * 3];
    for (int k = 0; k < 2; k++) {
        for (int overlap = 0; overlap < 2; overlap++) {
            loom_ctx *ctx = loom_ctx_new(&(loom_options){ .backend = k ? LOOM_BACKEND_JIT : LOOM_BACKEND_REFERENCE });
            loom_t x = loom_param(ctx, "x", LOOM_F32, LOOM_SHAPE(10, 3));
            loom_param_init_normal(ctx, x, 0, 1);
            loom_t a = loom_slice(ctx, x, 0, 0, 3, 1), b = loom_slice(ctx, x, 0, overlap ? 2 : 4, overlap ? 6 : 8, 1);
            loom_t c = loom_slice(ctx, x, 0, 9, 10, 1);
            loom_t loss = loom_add(ctx, loom_add(ctx, loom_sum_all(ctx, loom_mul(ctx, a, a)), loom_sum_all(ctx, loom_muls(ctx, b, 3))),
                                   loom_sum_all(ctx, loom_exp(ctx, c)));
            loom_backward(ctx, loss);
            loom_t dx = loom_grad(ctx, x);
            assert_int_equal(loom_run(ctx, 1, &dx), LOOM_OK);
            assert_int_equal(loom_read(ctx, dx, got[k][overlap], sizeof got[k][overlap]), LOOM_OK);
            loom_ctx_free(ctx);
        }
    }
    assert_close(got[1][0], got[0][0], 30, "disjoint");
    assert_close(got[1][1], got[0][1], 30, "overlapping");
    /* rows 3 and 8 get no gradient when the slices are disjoint */
    for (int j = 0; j < 3; j++) {
        assert_true(got[1][0][3 * 3 + j] == 0.0f);
        assert_true(got[1][0][8 * 3 + j] == 0.0f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jit_every_op_forward_and_backward),
        cmocka_unit_test(test_jit_nondifferentiable_ops),
        cmocka_unit_test(test_jit_random_graphs_match_reference),
        cmocka_unit_test(test_jit_cache_second_build_compiles_nothing),
        cmocka_unit_test(test_jit_unrolled_steps_compile_same_kernels),
        cmocka_unit_test(test_jit_threads_do_not_change_results),
        cmocka_unit_test(test_jit_compiles_on_threads),
        cmocka_unit_test(test_jit_optimizer_update_is_one_kernel),
        cmocka_unit_test(test_jit_gemm_epilogues_fuse_and_match),
        cmocka_unit_test(test_jit_gemm_computed_bias_is_not_folded_early),
        cmocka_unit_test(test_jit_plan_records_buffer_roles),
        cmocka_unit_test(test_jit_index_error_fails_the_run),
        cmocka_unit_test(test_jit_commit_in_place_reads_see_old_values),
        cmocka_unit_test(test_jit_index_error_commits_nothing),
        cmocka_unit_test(test_jit_time_batching_matches_reference),
        cmocka_unit_test(test_jit_time_batching_leaves_recurrence_alone),
        cmocka_unit_test(test_jit_slice_gradients_concatenate),
        cmocka_unit_test(test_jit_fusion_report),
        cmocka_unit_test(test_jit_lookup_folding),
        cmocka_unit_test(test_jit_scatter_splits_long_rows),
        cmocka_unit_test(test_jit_row_chains_match_reference),
        cmocka_unit_test(test_jit_recompute_cheap_values),
        cmocka_unit_test(test_jit_column_reductions),
    };
    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
