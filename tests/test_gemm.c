/*
 * test_gemm.c — the generated GEMM (jit/gemm.c) against a naive reference
 * that accumulates in double: both dtypes, every transpose combination,
 * sizes that are not multiples of any tile (and some that are), each kind
 * of kernel the generator picks, batches with leading dimensions and batch
 * strides of their own, accumulate, bias, each activation, and splits of
 * the work across 1, 2 and 3 threads (which must give bitwise identical
 * results). Every buffer ends at an inaccessible page, so reading or
 * writing past an operand or the scratch crashes the test. Also the spec
 * checks.
 */
#include "testutil.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base.h"
#include "gemm.h"
#include "plan.h"
#include "pool.h"

/* ------------------------------------------------------------------ */
/* Harness                                                            */
/* ------------------------------------------------------------------ */

static lm_err g_err;
static jit_engine *g_engine;
static rt_pool *g_pool;
static int g_kernels;

static lm_mem test_mem(void) { return (lm_mem){ .fn = lm_default_alloc, .err = &g_err }; }

static int setup(void **state)
{
    (void)state;
    g_engine = jit_engine_new(test_mem(), &g_err, "host", 3);
    g_pool = rt_pool_new(test_mem(), &g_err, 3);
    return g_engine && g_pool ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    jit_engine_free(g_engine);
    rt_pool_free(g_pool);
    return 0;
}

/* Compiles s into its own module; NULL on error (the message in g_err). */
static jit_kernel_fn compile(const jit_gemm_spec *s)
{
    char name[32];
    snprintf(name, sizeof name, "gemm%d", g_kernels++);
    LLVMModuleRef m = jit_module_new(g_engine, name);
    if (jit_gemm_emit(g_engine, m, name, s) != LOOM_OK) {
        LLVMDisposeModule(m);
        return NULL;
    }
    if (jit_module_add(g_engine, m, JIT_PIPE_DEFAULT) != LOOM_OK)
        return NULL;
    return (jit_kernel_fn)jit_lookup(g_engine, name);
}

/* Every buffer a kernel touches ends right before an inaccessible page,
 * so a load or store past the end of any operand, or of the scratch,
 * faults (masked edges must really be masked). The start is only
 * element-aligned, which the kernels must cope with too. */
typedef struct guarded {
    void *map;
    size_t len;
} guarded;

static void *guarded_alloc(size_t bytes, guarded *g)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    g->len = (bytes + page - 1) / page * page + page;
    g->map = mmap(NULL, g->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g->map != MAP_FAILED);
    assert_int_equal(mprotect((char *)g->map + g->len - page, page, PROT_NONE), 0);
    return (char *)g->map + g->len - page - bytes;
}

static void guarded_free(guarded *g)
{
    if (g->map)
        munmap(g->map, g->len);
    g->map = NULL;
}

/* A spec with its defaults resolved, and the buffers for it. */
typedef struct problem {
    jit_gemm_spec s;
    int64_t lda, ldb, ldc, sa, sb, sc; /* resolved */
    size_t na, nb, nc;                 /* elements of each buffer */
    void *a, *b, *c, *bias;
    double *want; /* [nc] */
    char *scratch[3];
    size_t scratch_bytes;
    guarded mem[8]; /* a, b, c, bias, scratch x 3, packed B */
    int nmem;
} problem;

static size_t esize(const problem *p) { return loom_dtype_size(p->s.dtype); }

static double get(const problem *p, const void *buf, size_t i)
{
    return p->s.dtype == LOOM_F32 ? ((const float *)buf)[i] : ((const double *)buf)[i];
}

static void put(const problem *p, void *buf, size_t i, double v)
{
    if (p->s.dtype == LOOM_F32)
        ((float *)buf)[i] = (float)v;
    else
        ((double *)buf)[i] = v;
}

static void *alloc_fill(problem *p, size_t n, lm_rng *r)
{
    void *buf = guarded_alloc(n * esize(p), &p->mem[p->nmem++]);
    for (size_t i = 0; i < n; i++)
        put(p, buf, i, lm_rng_uniform(r) * 2 - 1);
    return buf;
}

static void problem_init(problem *p, const jit_gemm_spec *s, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->s = *s;
    int64_t ar = s->ta ? s->k : s->m, ac = s->ta ? s->m : s->k;
    int64_t br = s->tb ? s->n : s->k, bc = s->tb ? s->k : s->n;
    p->lda = s->lda ? s->lda : ac;
    p->ldb = s->ldb ? s->ldb : bc;
    p->ldc = s->ldc ? s->ldc : s->n;
    p->sa = s->stride_a ? s->stride_a : ar * p->lda;
    p->sb = s->stride_b ? s->stride_b : br * p->ldb;
    p->sc = s->stride_c ? s->stride_c : s->m * p->ldc;
    p->na = (size_t)((s->batch - 1) * p->sa + (ar - 1) * p->lda + ac);
    p->nb = (size_t)((s->batch - 1) * p->sb + (br - 1) * p->ldb + bc);
    p->nc = (size_t)((s->batch - 1) * p->sc + (s->m - 1) * p->ldc + s->n);
    lm_rng r;
    lm_rng_seed(&r, seed);
    p->a = alloc_fill(p, p->na, &r);
    p->b = alloc_fill(p, p->nb, &r);
    p->c = alloc_fill(p, p->nc, &r); /* garbage unless accumulating */
    p->bias = alloc_fill(p, (size_t)s->n, &r);
    p->want = calloc(p->nc, sizeof(double));
    assert_non_null(p->want);
    p->scratch_bytes = jit_gemm_scratch(s);
    for (int t = 0; t < 3; t++)
        p->scratch[t] = p->scratch_bytes ? guarded_alloc(p->scratch_bytes, &p->mem[p->nmem++]) : NULL;
}

static void problem_free(problem *p)
{
    for (int i = 0; i < p->nmem; i++)
        guarded_free(&p->mem[i]);
    free(p->want);
}

static double act(jit_act a, double x)
{
    switch (a) {
    case JIT_ACT_RELU:
        return x > 0 ? x : 0;
    case JIT_ACT_TANH:
        return tanh(x);
    case JIT_ACT_SIGMOID:
        return 1 / (1 + exp(-x));
    case JIT_ACT_NONE:
        break;
    }
    return x;
}

/* want = the reference from the current C; *scale (per element, the sum
 * of |terms|) bounds the rounding error of any summation order. Elements
 * of C outside the matrices keep their value. */
static void reference(problem *p, double *scale)
{
    const jit_gemm_spec *s = &p->s;
    for (size_t i = 0; i < p->nc; i++) {
        p->want[i] = get(p, p->c, i);
        scale[i] = 0;
    }
    for (int64_t q = 0; q < s->batch; q++)
        for (int64_t i = 0; i < s->m; i++)
            for (int64_t j = 0; j < s->n; j++) {
                double acc = 0, mag = 0;
                for (int64_t l = 0; l < s->k; l++) {
                    double x = get(p, p->a, (size_t)(q * p->sa + (s->ta ? l * p->lda + i : i * p->lda + l)));
                    double y = get(p, p->b, (size_t)(q * p->sb + (s->tb ? j * p->ldb + l : l * p->ldb + j)));
                    acc += x * y;
                    mag += fabs(x * y);
                }
                size_t ci = (size_t)(q * p->sc + i * p->ldc + j);
                if (s->accumulate) {
                    acc += p->want[ci];
                    mag += fabs(p->want[ci]);
                }
                if (s->bias) {
                    acc += get(p, p->bias, (size_t)j);
                    mag += fabs(get(p, p->bias, (size_t)j));
                }
                p->want[ci] = act(s->act, acc);
                /* tanh and sigmoid add a few ulp of their result */
                scale[ci] = mag + (s->act == JIT_ACT_NONE ? 0 : fabs(p->want[ci])) + 1e-30;
            }
}

typedef struct run_ctx {
    jit_kernel_fn fn;
    char *bufs[4];
    char **scratch;
} run_ctx;

static void run_share(void *ud, int64_t lo, int64_t hi, int thread)
{
    run_ctx *r = ud;
    r->fn(r->bufs, lo, hi, r->scratch[thread]);
}

static void run(problem *p, jit_kernel_fn fn, int threads)
{
    run_ctx r = { fn, { p->a, p->b, p->c, p->bias }, p->scratch };
    rt_pool_run(g_pool, jit_gemm_work(&p->s), threads, run_share, &r);
}

/* Checks C against want within tol * scale; message names the case. */
static void expect(const problem *p, const double *scale, double tol, const char *what)
{
    for (size_t i = 0; i < p->nc; i++) {
        double got = get(p, p->c, i), w = p->want[i];
        if (!(fabs(got - w) <= tol * scale[i] || (scale[i] == 0 && got == w)))
            fail_msg("%s: %s batch %lld M %lld N %lld K %lld ta %d tb %d: C[%zu] = %.17g, expected %.17g", what,
                     loom_dtype_name(p->s.dtype), (long long)p->s.batch, (long long)p->s.m, (long long)p->s.n,
                     (long long)p->s.k, p->s.ta, p->s.tb, i, got, w);
    }
}

static double tol_of(loom_dtype dt) { return dt == LOOM_F32 ? 1e-5 : 1e-12; }

/* Compiles, runs on `threads` threads and compares with the reference. */
static void check_spec(const jit_gemm_spec *s, int threads, const char *what)
{
    assert_int_equal(jit_gemm_check(s, &g_err), LOOM_OK);
    jit_kernel_fn fn = compile(s);
    if (!fn)
        fail_msg("%s: compile failed: %s", what, g_err.msg);
    problem p;
    problem_init(&p, s, 1234 + (uint64_t)g_kernels);
    double *scale = calloc(p.nc, sizeof(double));
    assert_non_null(scale);
    reference(&p, scale);
    if (s->bpack == KN_BPACK_PACKED) {
        /* B packed first by the PACK kernel of the same shape, into a
         * buffer of the layout's size (guarded: the kernels must stay in it) */
        jit_gemm_spec ps = *s;
        ps.bpack = KN_BPACK_PACK;
        jit_kernel_fn pack = compile(&ps);
        if (!pack)
            fail_msg("%s: compile of the packing kernel failed: %s", what, g_err.msg);
        kn_b_layout l;
        kn_gemm_b_layout(s->dtype, s->n, s->k, &l);
        void *packed = guarded_alloc((size_t)l.elems * esize(&p), &p.mem[p.nmem++]);
        run_ctx r = { pack, { p.b, p.b, packed, NULL }, p.scratch };
        rt_pool_run(g_pool, jit_gemm_work(&ps), threads, run_share, &r);
        p.b = packed;
    }
    run(&p, fn, threads);
    double tol = tol_of(s->dtype);
    if (s->act == JIT_ACT_TANH || s->act == JIT_ACT_SIGMOID)
        tol *= 4; /* the polynomial adds a few ulp */
    expect(&p, scale, tol, what);
    free(scale);
    problem_free(&p);
}

static jit_gemm_spec spec(loom_dtype dt, int64_t m, int64_t n, int64_t k, bool ta, bool tb)
{
    return (jit_gemm_spec){ .dtype = dt, .batch = 1, .m = m, .n = n, .k = k, .ta = ta, .tb = tb };
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */
/* ------------------------------------------------------------------ */

static const int64_t odd[] = { 1, 3, 17, 31, 33, 63, 65, 100, 257 };
enum { NODD = (int)LM_ARRAY_LEN(odd) };

/* Every odd size in each of M, N and K, under every transpose
 * combination: for each combination t, M, N and K walk the list with
 * different offsets, so each size meets several partners. */
static void sizes_and_transposes(loom_dtype dt)
{
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < NODD; i++) {
            jit_gemm_spec s = spec(dt, odd[i], odd[(i + 1 + 2 * t) % NODD], odd[(i + 4 + t) % NODD], t & 1, t >> 1);
            check_spec(&s, 1 + i % 3, "sizes");
        }
}

static void test_gemm_f32_sizes_transposes(void **state)
{
    (void)state;
    sizes_and_transposes(LOOM_F32);
}

static void test_gemm_f64_sizes_transposes(void **state)
{
    (void)state;
    sizes_and_transposes(LOOM_F64);
}

/* Shapes with no edge at all: whole register tiles (8 rows x 3 vectors,
 * or 4 x 6 dot products) in every dimension. */
static void test_gemm_exact_tiles(void **state)
{
    (void)state;
    for (int t = 0; t < 4; t++) {
        jit_gemm_spec s = spec(LOOM_F32, 64, 96, 64, t & 1, t >> 1);
        check_spec(&s, 2, "exact f32");
        s = spec(LOOM_F32, 128, 384, 400, t & 1, t >> 1);
        check_spec(&s, 2, "exact f32");
        s = spec(LOOM_F64, 16, 48, 32, t & 1, t >> 1);
        check_spec(&s, 1, "exact f64");
    }
    jit_gemm_spec s = spec(LOOM_F32, 32, 48, 256, false, true);
    check_spec(&s, 2, "exact dot");
    s = spec(LOOM_F64, 8, 12, 264, false, true);
    check_spec(&s, 1, "exact dot f64");
}

/* Several blocks in every dimension (K blocks, row blocks, column
 * blocks), so the panels are refilled and C is revisited; with A
 * transposed, both ways of ordering the items (A packed once per row
 * block when M > N, B once per column block otherwise); K = 512 makes
 * power-of-two panel depths (padded). */
static void test_gemm_blocked(void **state)
{
    (void)state;
    for (int t = 0; t < 4; t++) {
        jit_gemm_spec s = spec(LOOM_F32, 403, 1601, 801, t & 1, t >> 1);
        check_spec(&s, 2, "blocked f32");
        s = spec(LOOM_F32, 1601, 403, 512, t & 1, t >> 1);
        check_spec(&s, 3, "blocked f32, M > N");
        s = spec(LOOM_F64, 211, 803, 403, t & 1, t >> 1);
        check_spec(&s, 3, "blocked f64");
        s = spec(LOOM_F64, 803, 211, 256, t & 1, t >> 1);
        check_spec(&s, 2, "blocked f64, M > N");
    }
}

/* Batches whose members sit apart (batch strides) and whose rows are
 * longer than the matrices (leading dimensions). */
static void test_gemm_batch_strides(void **state)
{
    (void)state;
    for (int t = 0; t < 16; t++) {
        loom_dtype dt = t & 4 ? LOOM_F64 : LOOM_F32;
        bool ta = t & 1, tb = t & 2;
        /* short K: packed panels (or B in place); long K with few rows:
         * the dot-product kernel (tb) */
        int64_t m = 19, n = 37, k = t & 8 ? 301 : 23;
        jit_gemm_spec s = spec(dt, m, n, k, ta, tb);
        s.batch = 3;
        check_spec(&s, 2, "batch");
        s.lda = (ta ? m : k) + 5;
        s.ldb = (tb ? k : n) + 3;
        s.ldc = n + 7;
        s.stride_a = (ta ? k : m) * s.lda + 11;
        s.stride_b = (tb ? n : k) * s.ldb + 13;
        s.stride_c = m * s.ldc + 17;
        check_spec(&s, 3, "batch with strides");
    }
}

static void test_gemm_accumulate(void **state)
{
    (void)state;
    for (int t = 0; t < 8; t++) {
        jit_gemm_spec s = spec(t & 4 ? LOOM_F64 : LOOM_F32, 33, 65, 900, t & 1, t >> 1 & 1);
        s.accumulate = true;
        check_spec(&s, 2, "accumulate");
        s.bias = true;
        check_spec(&s, 1, "accumulate with bias");
    }
}

/* The epilogue in each kind of kernel the generator picks: dot products
 * (few rows, B transposed, long K), B read in place (few rows), packed
 * panels with A read in place, and with A packed. */
static void epilogue(jit_act a)
{
    const jit_gemm_spec cases[] = {
        spec(LOOM_F32, 17, 100, 500, false, true),
        spec(LOOM_F64, 17, 100, 31, false, false),
        spec(LOOM_F32, 130, 70, 40, false, true),
        spec(LOOM_F64, 400, 200, 50, true, false),
    };
    for (size_t c = 0; c < LM_ARRAY_LEN(cases); c++) {
        jit_gemm_spec s = cases[c];
        s.act = a;
        check_spec(&s, 2, "activation");
        s.bias = true;
        check_spec(&s, 3, "bias and activation");
    }
}

/* B packed once by a kernel of its own and read packed (prepack.c: a
 * weight shared by every time step's product): few rows, B transposed
 * or not, edges in every dimension, the epilogues, 1 to 3 threads. */
static void test_gemm_prepacked(void **state)
{
    (void)state;
    const int64_t ms[] = { 1, 8, 17, 32, 64 }, ns[] = { 48, 65, 100, 512 }, ks[] = { 31, 384, 500, 900 };
    int i = 0;
    for (int t = 0; t < 2; t++)
        for (size_t a = 0; a < LM_ARRAY_LEN(ms); a++, i++) {
            jit_gemm_spec s = spec(i % 3 == 2 ? LOOM_F64 : LOOM_F32, ms[a], ns[i % 4], ks[(i + t) % 4], false, t);
            s.bpack = KN_BPACK_PACKED;
            s.bias = i % 2;
            s.act = i % 4 == 1 ? JIT_ACT_TANH : JIT_ACT_NONE;
            check_spec(&s, 1 + i % 3, "prepacked B");
            s.act = JIT_ACT_NONE;
            s.accumulate = true;
            check_spec(&s, 2, "prepacked B, accumulating");
        }
}

static void test_gemm_bias(void **state) { (void)state; epilogue(JIT_ACT_NONE); }
static void test_gemm_relu(void **state) { (void)state; epilogue(JIT_ACT_RELU); }

static void test_gemm_tanh(void **state) { (void)state; epilogue(JIT_ACT_TANH); }
static void test_gemm_sigmoid(void **state) { (void)state; epilogue(JIT_ACT_SIGMOID); }

/* Any split of the work range gives the same bits: each C element is
 * computed by one item, in an order that does not depend on the split. */
static void test_gemm_threads_bitwise(void **state)
{
    (void)state;
    const jit_gemm_spec cases[] = {
        spec(LOOM_F32, 32, 1024, 256, false, true),
        spec(LOOM_F32, 517, 333, 700, true, false),
        spec(LOOM_F64, 300, 100, 450, true, true),
        { .dtype = LOOM_F32, .batch = 5, .m = 9, .n = 50, .k = 40, .bias = true, .act = JIT_ACT_RELU },
    };
    for (size_t c = 0; c < LM_ARRAY_LEN(cases); c++) {
        const jit_gemm_spec *s = &cases[c];
        jit_kernel_fn fn = compile(s);
        assert_non_null(fn);
        problem p;
        problem_init(&p, s, 99);
        size_t bytes = p.nc * esize(&p);
        void *c0 = malloc(bytes), *first = malloc(bytes);
        assert_non_null(c0);
        assert_non_null(first);
        memcpy(c0, p.c, bytes);
        int64_t work = jit_gemm_work(s);
        for (int threads = 1; threads <= 3; threads++) {
            memcpy(p.c, c0, bytes);
            run(&p, fn, threads);
            if (threads == 1)
                memcpy(first, p.c, bytes);
            else if (memcmp(first, p.c, bytes))
                fail_msg("case %zu: %d threads differ from 1 (work %lld)", c, threads, (long long)work);
        }
        /* odd splits too: item by item, in reverse */
        memcpy(p.c, c0, bytes);
        run_ctx r = { fn, { p.a, p.b, p.c, p.bias }, p.scratch };
        for (int64_t i = work - 1; i >= 0; i--)
            run_share(&r, i, i + 1, 0);
        assert_memory_equal(first, p.c, bytes);
        free(c0);
        free(first);
        problem_free(&p);
    }
}

static void expect_reject(jit_gemm_spec s, loom_code code, const char *frag)
{
    lm_err_clear(&g_err);
    assert_int_equal(jit_gemm_check(&s, &g_err), code);
    if (!strstr(g_err.msg, frag))
        fail_msg("message \"%s\" does not mention \"%s\"", g_err.msg, frag);
    LLVMModuleRef m = jit_module_new(g_engine, "bad");
    lm_err_clear(&g_err);
    assert_int_equal(jit_gemm_emit(g_engine, m, "bad", &s), code);
    LLVMDisposeModule(m);
    lm_err_clear(&g_err);
}

static void test_gemm_check_rejects(void **state)
{
    (void)state;
    jit_gemm_spec ok = spec(LOOM_F32, 4, 5, 6, false, false);
    assert_int_equal(jit_gemm_check(&ok, &g_err), LOOM_OK);
    jit_gemm_spec s;
    s = ok, s.dtype = LOOM_I32;
    expect_reject(s, LOOM_ERR_DTYPE, "f32 or f64");
    s = ok, s.m = 0;
    expect_reject(s, LOOM_ERR_ARG, "positive");
    s = ok, s.k = -3;
    expect_reject(s, LOOM_ERR_ARG, "positive");
    s = ok, s.batch = 0;
    expect_reject(s, LOOM_ERR_ARG, "positive");
    s = ok, s.lda = 5; /* < K = 6 */
    expect_reject(s, LOOM_ERR_ARG, "lda");
    s = ok, s.ta = true, s.lda = 3; /* < M = 4 */
    expect_reject(s, LOOM_ERR_ARG, "lda");
    s = ok, s.tb = true, s.ldb = 5; /* < K = 6 */
    expect_reject(s, LOOM_ERR_ARG, "ldb");
    s = ok, s.ldc = 4;
    expect_reject(s, LOOM_ERR_ARG, "ldc");
    s = ok, s.ldc = -1;
    expect_reject(s, LOOM_ERR_ARG, "ldc");
    s = ok, s.batch = 2, s.stride_c = 19; /* C spans 20 */
    expect_reject(s, LOOM_ERR_ARG, "stride of C");
    s = ok, s.stride_a = -1;
    expect_reject(s, LOOM_ERR_ARG, "stride of A");
    s = ok, s.accumulate = true, s.act = JIT_ACT_RELU;
    expect_reject(s, LOOM_ERR_ARG, "accumulat");
    s = ok, s.act = (jit_act)17;
    expect_reject(s, LOOM_ERR_ARG, "activation");
    s = ok, s.m = INT64_C(1) << 40, s.k = INT64_C(1) << 30;
    expect_reject(s, LOOM_ERR_ARG, "spans");
    s = ok, s.batch = INT64_C(1) << 62;
    expect_reject(s, LOOM_ERR_ARG, "spans");
    /* overlapping inputs are fine (a shared operand) */
    s = ok, s.batch = 3, s.stride_b = 1;
    assert_int_equal(jit_gemm_check(&s, &g_err), LOOM_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_check_rejects),
        cmocka_unit_test(test_gemm_f32_sizes_transposes),
        cmocka_unit_test(test_gemm_f64_sizes_transposes),
        cmocka_unit_test(test_gemm_exact_tiles),
        cmocka_unit_test(test_gemm_blocked),
        cmocka_unit_test(test_gemm_batch_strides),
        cmocka_unit_test(test_gemm_accumulate),
        cmocka_unit_test(test_gemm_bias),
        cmocka_unit_test(test_gemm_relu),
        cmocka_unit_test(test_gemm_tanh),
        cmocka_unit_test(test_gemm_sigmoid),
        cmocka_unit_test(test_gemm_threads_bitwise),
        cmocka_unit_test(test_gemm_prepacked),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
