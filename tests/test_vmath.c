/*
 * test_vmath.c — the JIT's elementary functions (jit/vmath.c) against
 * libm. Each function is compiled as a plain scalar loop over [lo, hi)
 * (which LLVM's loop vectorizer turns into 512-bit code) and as explicit
 * vector calls of a few widths; it is run over dense, geometric and
 * random samples of its range, plus special values. Errors: f32 in ulp of
 * the exact value (reference in double), f64 in ulp and relative
 * (reference in long double). The suite also checks that the loops were
 * vectorized and call no libm, that unoptimised scalar code gives the
 * same bits, and prints throughput (not asserted).
 */
#include "testutil.h"

#include <float.h>
#include <stdlib.h>
#include <time.h>

#include "engine.h"
#include "vmath.h"

typedef LLVMValueRef (*emit_fn)(jit_engine *, LLVMBuilderRef, LLVMValueRef);

/* ------------------------------------------------------------------ */
/* The functions under test                                           */
/* ------------------------------------------------------------------ */

enum { LIN = 1, GEO, NEAR_HALF_PI };
#define HALF_PI 1.57079632679489661923

/* Samples: LIN spreads them evenly over [lo, hi]; GEO spreads them
 * evenly in log|x| between lo and hi (same sign), which reaches down to
 * the subnormals; NEAR_HALF_PI takes k pi/2 for k up to hi/(pi/2) and the
 * floats a few ulp either side, where sin and cos need every bit of the
 * reduction. Half of each range is a grid, half is uniform random. */
typedef struct vm_range {
    int kind;
    double lo, hi;
} vm_range;

typedef struct vm_special {
    double x, want;
} vm_special;

/* A list of specials and its length, for the table below. */
#define SPECIALS(...) { __VA_ARGS__ }, (int)(sizeof((vm_special[]){ __VA_ARGS__ }) / sizeof(vm_special))

enum { MAX_RANGES = 6, MAX_SPECIALS = 10 };

typedef struct vm_fn {
    const char *name;
    emit_fn emit;
    double (*ref32)(double);
    long double (*ref64)(long double);
    vm_range r32[MAX_RANGES], r64[MAX_RANGES];
    double ulp32;     /* max error asserted, f32, ulp */
    double ulp64;     /* max error asserted, f64, ulp */
    double rel64;     /* max error asserted, f64, relative (normal results) */
    double ylo, yhi;  /* every result lies in [ylo, yhi] */
    vm_special sp[MAX_SPECIALS];
    int nsp;
} vm_fn;

static double sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }
static long double sigmoid_l(long double x) { return 1.0L / (1.0L + expl(-x)); }

#define N_ (NAN)
#define I_ (INFINITY)

static const vm_fn FNS[] = {
    { "exp", jv_exp, exp, expl,
      { { LIN, -100, 100 }, { LIN, -104, 89 }, { GEO, 1e-45, 89 }, { GEO, -1e-45, -104 } },
      { { LIN, -700, 700 }, { LIN, -746, 710 }, { GEO, 5e-324, 710 }, { GEO, -5e-324, -746 } },
      1.5, 1.5, 4e-16, 0, I_,
      SPECIALS({ 0, 1 }, { -0.0, 1 }, { I_, I_ }, { -I_, 0 }, { N_, N_ }, { 1000, I_ }, { -1000, 0 }, { 1e-30, 1 }) },
    { "log", jv_log, log, logl,
      { { GEO, 1e-45, 3.4e38 }, { LIN, 0.5, 2 }, { LIN, 1e-3, 1e4 } },
      { { GEO, 5e-324, 1.7e308 }, { LIN, 0.5, 2 }, { LIN, 1e-3, 1e4 } },
      1.5, 1.5, 4e-16, -I_, I_,
      SPECIALS({ 1, 0 }, { 0, -I_ }, { -0.0, -I_ }, { -1, N_ }, { -I_, N_ }, { I_, I_ }, { N_, N_ }) },
    { "log1p", jv_log1p, log1p, log1pl,
      { { LIN, -0.999, 1e6 }, { GEO, -1e-45, -0.999 }, { GEO, 1e-45, 1e6 }, { GEO, 1e6, 3.4e38 }, { LIN, -1, 1 } },
      { { LIN, -0.999, 1e6 }, { GEO, -5e-324, -0.999 }, { GEO, 5e-324, 1e6 }, { GEO, 1e6, 1.7e308 }, { LIN, -1, 1 } },
      1.5, 1.5, 4e-16, -I_, I_,
      SPECIALS({ 0, 0 }, { -0.0, -0.0 }, { -1, -I_ }, { -2, N_ }, { -I_, N_ }, { I_, I_ }, { N_, N_ }) },
    { "tanh", jv_tanh, tanh, tanhl,
      { { LIN, -50, 50 }, { GEO, 1e-45, 50 }, { GEO, -1e-45, -50 }, { LIN, -1, 1 } },
      { { LIN, -50, 50 }, { GEO, 5e-324, 50 }, { GEO, -5e-324, -50 }, { LIN, -1, 1 } },
      3.0, 3.0, 6e-16, -1, 1,
      SPECIALS({ 0, 0 }, { -0.0, -0.0 }, { I_, 1 }, { -I_, -1 }, { N_, N_ }, { 1000, 1 }, { -1000, -1 }, { 25, 1 }) },
    { "sigmoid", jv_sigmoid, sigmoid_d, sigmoid_l,
      { { LIN, -50, 50 }, { GEO, 1e-45, 50 }, { GEO, -1e-45, -50 }, { LIN, -104, -50 } },
      { { LIN, -50, 50 }, { GEO, 5e-324, 50 }, { GEO, -5e-324, -50 }, { LIN, -746, -50 } },
      3.0, 3.0, 6e-16, 0, 1,
      SPECIALS({ 0, 0.5 }, { -0.0, 0.5 }, { I_, 1 }, { -I_, 0 }, { N_, N_ }, { 1000, 1 }, { -1000, 0 }) },
    { "sin", jv_sin, sin, sinl,
      { { LIN, -1e4, 1e4 }, { GEO, 1e-45, 1e4 }, { GEO, -1e-45, -1e4 }, { NEAR_HALF_PI, 0, 1e4 } },
      { { LIN, -1e4, 1e4 }, { GEO, 5e-324, 1e4 }, { GEO, -5e-324, -1e4 }, { NEAR_HALF_PI, 0, 1e4 } },
      2.0, 2.0, 4e-16, -1, 1,
      SPECIALS({ 0, 0 }, { -0.0, -0.0 }, { I_, N_ }, { -I_, N_ }, { N_, N_ }) },
    { "cos", jv_cos, cos, cosl,
      { { LIN, -1e4, 1e4 }, { GEO, 1e-45, 1e4 }, { GEO, -1e-45, -1e4 }, { NEAR_HALF_PI, 0, 1e4 } },
      { { LIN, -1e4, 1e4 }, { GEO, 5e-324, 1e4 }, { GEO, -5e-324, -1e4 }, { NEAR_HALF_PI, 0, 1e4 } },
      2.0, 2.0, 4e-16, -1, 1,
      SPECIALS({ 0, 1 }, { -0.0, 1 }, { I_, N_ }, { -I_, N_ }, { N_, N_ }) },
};
enum { NFN = LM_ARRAY_LEN(FNS) };

/* ------------------------------------------------------------------ */
/* Kernels                                                            */
/* ------------------------------------------------------------------ */

/* bufs[1][i] = f(bufs[0][i]) for i in [lo, hi), in steps of `lanes`
 * elements (0: one scalar at a time; else <lanes x T> loads and stores,
 * so hi - lo must be a multiple of lanes). */
static void build_map(jit_engine *e, LLVMModuleRef m, const char *name, emit_fn f, bool f64, unsigned lanes)
{
    LLVMBuilderRef b = LLVMCreateBuilderInContext(e->ctx);
    LLVMValueRef fn = jit_kernel_begin(e, m, b, name);
    LLVMTypeRef et = f64 ? LLVMDoubleTypeInContext(e->ctx) : LLVMFloatTypeInContext(e->ctx);
    LLVMTypeRef vt = lanes ? LLVMVectorType(et, lanes) : et;
    unsigned esize = f64 ? 8 : 4;
    LLVMValueRef bufs = LLVMGetParam(fn, 0), lo = LLVMGetParam(fn, 1), hi = LLVMGetParam(fn, 2);
    LLVMValueRef one = jit_const_i64(e, 1);
    LLVMValueRef in = LLVMBuildLoad2(b, jit_ptr(e), bufs, "in");
    LLVMValueRef out = LLVMBuildLoad2(b, jit_ptr(e), LLVMBuildInBoundsGEP2(b, jit_ptr(e), bufs, &one, 1, ""), "out");
    LLVMBasicBlockRef entry = LLVMGetInsertBlock(b);
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(e->ctx, fn, "body");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(e->ctx, fn, "done");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, lo, hi, ""), body, done);

    LLVMPositionBuilderAtEnd(b, body);
    LLVMValueRef i = LLVMBuildPhi(b, jit_i64(e), "i");
    LLVMValueRef x = LLVMBuildLoad2(b, vt, LLVMBuildInBoundsGEP2(b, et, in, &i, 1, ""), "x");
    LLVMSetAlignment(x, esize);
    LLVMValueRef y = f(e, b, x);
    assert_non_null(y);
    LLVMValueRef st = LLVMBuildStore(b, y, LLVMBuildInBoundsGEP2(b, et, out, &i, 1, ""));
    LLVMSetAlignment(st, esize);
    LLVMValueRef next = LLVMBuildNSWAdd(b, i, jit_const_i64(e, lanes ? lanes : 1), "next");
    LLVMBasicBlockRef tail = LLVMGetInsertBlock(b);
    LLVMAddIncoming(i, &lo, &entry, 1);
    LLVMAddIncoming(i, &next, &tail, 1);
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, next, hi, ""), body, done);

    LLVMPositionBuilderAtEnd(b, done);
    LLVMBuildRetVoid(b);
    LLVMDisposeBuilder(b);
}

/* The explicit vector widths tried besides the vectorized loop. */
static const unsigned W32[] = { 16, 3 }, W64[] = { 8, 2 };
enum { NW = 2 };

typedef struct vm_kernels {
    jit_kernel_fn loop32, loop64;
    jit_kernel_fn vec32[NW], vec64[NW];
} vm_kernels;

static lm_err g_err;
static jit_engine *g_eng;  /* host CPU, O3 */
static vm_kernels g_k[NFN];

static jit_engine *engine_new(int opt)
{
    lm_mem mem = { lm_default_alloc, NULL, &g_err };
    jit_engine *e = jit_engine_new(mem, &g_err, "host", opt);
    if (!e)
        fail_msg("jit_engine_new: %s", g_err.msg);
    return e;
}

static jit_kernel_fn lookup(jit_engine *e, const char *name)
{
    jit_kernel_fn k = (jit_kernel_fn)jit_lookup(e, name);
    if (!k)
        fail_msg("jit_lookup(%s): %s", name, g_err.msg);
    return k;
}

/* Compiles (once) the loop and vector kernels of FNS[fi] into g_eng. */
static const vm_kernels *kernels(int fi)
{
    vm_kernels *k = &g_k[fi];
    if (k->loop32)
        return k;
    const vm_fn *F = &FNS[fi];
    char name[64];
    LLVMModuleRef m = jit_module_new(g_eng, F->name);
    for (int d = 0; d < 2; d++) {
        snprintf(name, sizeof name, "vm_%s_%s", F->name, d ? "f64" : "f32");
        build_map(g_eng, m, name, F->emit, d, 0);
        for (int w = 0; w < NW; w++) {
            snprintf(name, sizeof name, "vm_%s_%sx%u", F->name, d ? "f64" : "f32", d ? W64[w] : W32[w]);
            build_map(g_eng, m, name, F->emit, d, d ? W64[w] : W32[w]);
        }
    }
    if (jit_module_add(g_eng, m, JIT_PIPE_LOOPS) != LOOM_OK)
        fail_msg("jit_module_add(%s): %s", F->name, g_err.msg);
    for (int d = 0; d < 2; d++) {
        snprintf(name, sizeof name, "vm_%s_%s", F->name, d ? "f64" : "f32");
        *(d ? &k->loop64 : &k->loop32) = lookup(g_eng, name);
        for (int w = 0; w < NW; w++) {
            snprintf(name, sizeof name, "vm_%s_%sx%u", F->name, d ? "f64" : "f32", d ? W64[w] : W32[w]);
            (d ? k->vec64 : k->vec32)[w] = lookup(g_eng, name);
        }
    }
    return k;
}

static void run(jit_kernel_fn k, const void *in, void *out, int64_t n)
{
    char *bufs[2] = { (char *)in, out };
    k(bufs, 0, n, NULL);
}

static void *xalloc(size_t bytes)
{
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    assert_non_null(p);
    return p;
}

/* ------------------------------------------------------------------ */
/* Samples and errors                                                 */
/* ------------------------------------------------------------------ */

/* Fills x[0..n) (doubles, to be rounded to f32 when f32) from the
 * function's ranges, n/nranges each. */
static void make_samples(const vm_range *rs, double *x, size_t n, uint64_t seed, bool f32)
{
    size_t nr = 0;
    while (nr < MAX_RANGES && rs[nr].kind)
        nr++;
    lm_rng rng;
    lm_rng_seed(&rng, seed);
    size_t per = n / nr, at = 0;
    for (size_t ri = 0; ri < nr; ri++) {
        const vm_range *r = &rs[ri];
        size_t cnt = ri + 1 == nr ? n - at : per;
        for (size_t j = 0; j < cnt; j++) {
            double t = j < cnt / 2 ? (double)j / (double)(cnt / 2) : lm_rng_uniform(&rng);
            double v;
            if (r->kind == LIN) {
                v = r->lo + (r->hi - r->lo) * t;
            } else if (r->kind == GEO) {
                double la = log(fabs(r->lo)), lb = log(fabs(r->hi));
                v = copysign(exp(la + (lb - la) * t), r->lo);
            } else { /* NEAR_HALF_PI: k pi/2 nudged by -4..4 ulp of the dtype */
                double k = floor(t * r->hi / HALF_PI) + 1;
                int nudge = (int)(lm_rng_next(&rng) % 9) - 4;
                v = k * HALF_PI;
                if (f32)
                    v = (float)v;
                for (; nudge > 0; nudge--)
                    v = f32 ? nextafterf((float)v, INFINITY) : nextafter(v, INFINITY);
                for (; nudge < 0; nudge++)
                    v = f32 ? nextafterf((float)v, -INFINITY) : nextafter(v, -INFINITY);
            }
            x[at + j] = v;
        }
        at += cnt;
    }
}

/* ulp of a float (or double) of magnitude |r|: spacing of the binade, the
 * subnormal spacing below the normal range. */
static double ulp32(double r)
{
    int e;
    if (fabs(r) < FLT_MIN)
        return 0x1p-149;
    frexp(r, &e);
    return ldexp(1.0, e - 24);
}

static long double ulp64(long double r)
{
    int e;
    if (fabsl(r) < DBL_MIN)
        return 0x1p-1074L;
    frexpl(r, &e);
    return ldexpl(1.0L, e - 53);
}

/* Error in ulp of y against the exact ref. An infinity that the correctly
 * rounded result does not have counts as the next power of two past the
 * largest finite value, so a result that overflows one ulp early reads
 * as about one ulp off rather than infinitely. */
static double err32(float y, double ref)
{
    if (isnan(ref) || isnan(y))
        return isnan(ref) && isnan(y) ? 0 : INFINITY;
    if (isinf((float)ref))
        return y == (float)ref ? 0 : fabs((double)y - ref) / ulp32(FLT_MAX);
    double yv = isinf(y) ? copysign(0x1p128, y) : y;
    return fabs(yv - ref) / ulp32(ref);
}

static double err64(double y, long double ref, double *rel)
{
    *rel = 0;
    if (isnan(ref) || isnan(y))
        return isnan(ref) && isnan(y) ? 0 : INFINITY;
    if (isinf((double)ref))
        return y == (double)ref ? 0 : (double)(fabsl((long double)y - ref) / ulp64(DBL_MAX));
    long double yv = isinf(y) ? copysignl(0x1p1024L, y) : y;
    if (fabsl(ref) >= DBL_MIN)
        *rel = (double)(fabsl(yv - ref) / fabsl(ref));
    return (double)(fabsl(yv - ref) / ulp64(ref));
}

static bool same(double y, double want)
{
    return (isnan(y) && isnan(want)) || (y == want && signbit(y) == signbit(want));
}

/* ------------------------------------------------------------------ */
/* The report                                                         */
/* ------------------------------------------------------------------ */

typedef struct vm_row {
    const char *fn, *dtype;
    double ulp, ulp_at, rel, rel_at;
    size_t n;
} vm_row;

static vm_row g_rows[2 * NFN];
static int g_nrows;

static void print_report(void)
{
    if (!g_nrows)
        return;
    print_message("\n%-8s %-5s %9s  %-16s %10s  %-16s %8s\n", "function", "dtype", "max ulp", "at x", "max rel",
                  "at x", "samples");
    for (int i = 0; i < g_nrows; i++) {
        const vm_row *r = &g_rows[i];
        if (!strcmp(r->dtype, "f64"))
            print_message("%-8s %-5s %9.3f  %-16.9g %10.3g  %-16.9g %8zu\n", r->fn, r->dtype, r->ulp, r->ulp_at,
                          r->rel, r->rel_at, r->n);
        else
            print_message("%-8s %-5s %9.3f  %-16.9g %10s  %-16s %8zu\n", r->fn, r->dtype, r->ulp, r->ulp_at, "",
                          "", r->n);
    }
}

/* ------------------------------------------------------------------ */
/* Accuracy                                                           */
/* ------------------------------------------------------------------ */

enum { N32 = 1 << 22, N64 = 1 << 20 };

/* Finite arguments far from home (beyond sin's and cos's accurate range,
 * where their reduction gives up); the f32 kernels skip those that round
 * to inf. */
static const double WILD[] = { 1e7, -3e7, 1e10, -1e20, 3e38, -3e38, 1e100, -1e300, DBL_MAX, 1e-310 };

/* Bitwise equal, or both NaN. */
static void assert_same_bits32(const float *a, const float *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) && !(isnan(a[i]) && isnan(b[i])))
            fail_msg("%s: element %zu: %.9g vs %.9g", what, i, a[i], b[i]);
}

static void assert_same_bits64(const double *a, const double *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 8) && !(isnan(a[i]) && isnan(b[i])))
            fail_msg("%s: element %zu: %.17g vs %.17g", what, i, a[i], b[i]);
}

static void check_f32(int fi)
{
    const vm_fn *F = &FNS[fi];
    const vm_kernels *k = kernels(fi);
    double *xd = xalloc(N32 * sizeof *xd);                                  /* (N32) samples */
    float *x = xalloc(N32 * sizeof *x), *y = xalloc(N32 * sizeof *y);        /* (N32) in, out */
    float *yv = xalloc(N32 * sizeof *yv);                                   /* (N32) vector out */
    make_samples(F->r32, xd, N32, 0x5eed + fi, true);
    for (size_t i = 0; i < N32; i++)
        x[i] = (float)xd[i];
    run(k->loop32, x, y, N32);

    vm_row row = { F->name, "f32", 0, 0, NAN, NAN, N32 };
    for (size_t i = 0; i < N32; i++) {
        double err = err32(y[i], F->ref32(x[i]));
        if (err > row.ulp || isnan(err))
            row.ulp = err, row.ulp_at = x[i];
        if (y[i] < F->ylo || y[i] > F->yhi)
            fail_msg("%s f32(%.9g) = %.9g is outside [%g, %g]", F->name, x[i], y[i], F->ylo, F->yhi);
    }
    g_rows[g_nrows++] = row;

    /* explicit vectors compute the same bits (over a multiple of 48) */
    for (int w = 0; w < NW; w++) {
        run(k->vec32[w], x, yv, N32 - N32 % 48);
        assert_same_bits32(y, yv, N32 - N32 % 48, F->name);
    }

    /* special values */
    for (int s = 0; s < F->nsp; s++) {
        float xs[16], ys[16];
        for (int j = 0; j < 16; j++)
            xs[j] = (float)F->sp[s].x;
        run(k->loop32, xs, ys, 16); /* 16 lanes: the vector body runs */
        run(k->loop32, xs, ys + 15, 1); /* and the scalar remainder */
        if (!same(ys[0], (float)F->sp[s].want) || !same(ys[15], (float)F->sp[s].want))
            fail_msg("%s f32(%g) = %g / %g, expected %g", F->name, xs[0], ys[0], ys[15], F->sp[s].want);
    }

    /* far outside the accurate ranges, bounded functions stay bounded */
    if (F->ylo > -INFINITY && F->yhi < INFINITY)
        for (size_t i = 0; i < LM_ARRAY_LEN(WILD); i++) {
            float xs = (float)WILD[i], ys;
            if (isinf(xs))
                continue;
            run(k->loop32, &xs, &ys, 1);
            if (!(ys >= F->ylo && ys <= F->yhi))
                fail_msg("%s f32(%g) = %g is outside [%g, %g]", F->name, xs, ys, F->ylo, F->yhi);
        }

    if (!(row.ulp <= F->ulp32))
        fail_msg("%s f32: max error %.3f ulp at x = %.9g (bound %.2f)", F->name, row.ulp, row.ulp_at, F->ulp32);
    free(xd), free(x), free(y), free(yv);
}

static void check_f64(int fi)
{
    const vm_fn *F = &FNS[fi];
    const vm_kernels *k = kernels(fi);
    double *x = xalloc(N64 * sizeof *x), *y = xalloc(N64 * sizeof *y);       /* (N64) in, out */
    double *yv = xalloc(N64 * sizeof *yv);                                  /* (N64) vector out */
    make_samples(F->r64, x, N64, 0xd0b1e + fi, false);
    run(k->loop64, x, y, N64);

    vm_row row = { F->name, "f64", 0, 0, 0, 0, N64 };
    for (size_t i = 0; i < N64; i++) {
        double rel;
        double err = err64(y[i], F->ref64(x[i]), &rel);
        if (err > row.ulp || isnan(err))
            row.ulp = err, row.ulp_at = x[i];
        if (rel > row.rel)
            row.rel = rel, row.rel_at = x[i];
        if (y[i] < F->ylo || y[i] > F->yhi)
            fail_msg("%s f64(%.17g) = %.17g is outside [%g, %g]", F->name, x[i], y[i], F->ylo, F->yhi);
    }
    g_rows[g_nrows++] = row;

    for (int w = 0; w < NW; w++) {
        run(k->vec64[w], x, yv, N64);
        assert_same_bits64(y, yv, N64, F->name);
    }

    for (int s = 0; s < F->nsp; s++) {
        double xs[8], ys[8];
        for (int j = 0; j < 8; j++)
            xs[j] = F->sp[s].x;
        run(k->loop64, xs, ys, 8);
        run(k->loop64, xs, ys + 7, 1);
        if (!same(ys[0], F->sp[s].want) || !same(ys[7], F->sp[s].want))
            fail_msg("%s f64(%g) = %g / %g, expected %g", F->name, xs[0], ys[0], ys[7], F->sp[s].want);
    }

    if (F->ylo > -INFINITY && F->yhi < INFINITY)
        for (size_t i = 0; i < LM_ARRAY_LEN(WILD); i++) {
            double ys;
            run(k->loop64, &WILD[i], &ys, 1);
            if (!(ys >= F->ylo && ys <= F->yhi))
                fail_msg("%s f64(%g) = %g is outside [%g, %g]", F->name, WILD[i], ys, F->ylo, F->yhi);
        }

    if (!(row.ulp <= F->ulp64))
        fail_msg("%s f64: max error %.3f ulp at x = %.17g (bound %.2f)", F->name, row.ulp, row.ulp_at, F->ulp64);
    if (!(row.rel <= F->rel64))
        fail_msg("%s f64: max relative error %.3g at x = %.17g (bound %.2g)", F->name, row.rel, row.rel_at,
                 F->rel64);
    free(x), free(y), free(yv);
}

static int fn_index(const char *name)
{
    for (int i = 0; i < NFN; i++)
        if (!strcmp(FNS[i].name, name))
            return i;
    fail_msg("no function %s", name);
    return -1;
}

#define ACCURACY_TEST(fn)                                   \
    static void test_vmath_##fn##_accuracy(void **state)    \
    {                                                       \
        (void)state;                                        \
        check_f32(fn_index(#fn));                           \
        check_f64(fn_index(#fn));                           \
    }
ACCURACY_TEST(exp)
ACCURACY_TEST(log)
ACCURACY_TEST(log1p)
ACCURACY_TEST(tanh)
ACCURACY_TEST(sigmoid)
ACCURACY_TEST(sin)
ACCURACY_TEST(cos)

/* ------------------------------------------------------------------ */
/* What the optimiser made of it                                      */
/* ------------------------------------------------------------------ */

/* The scalar loops come out of O3 with 512-bit vector bodies (found in
 * the printed module, in each loop's own definition), and the only
 * functions the module declares are LLVM intrinsics (no libm). */
static void test_vmath_loops_vectorize(void **state)
{
    (void)state;
    LLVMModuleRef m = jit_module_new(g_eng, "vectorize");
    char name[64];
    for (int fi = 0; fi < NFN; fi++)
        for (int d = 0; d < 2; d++) {
            snprintf(name, sizeof name, "v_%s_%s", FNS[fi].name, d ? "f64" : "f32");
            build_map(g_eng, m, name, FNS[fi].emit, d, 0);
        }
    if (jit_module_optimize(g_eng, m, JIT_PIPE_LOOPS) != LOOM_OK)
        fail_msg("jit_module_optimize: %s", g_err.msg);
    char *ir = LLVMPrintModuleToString(m);
    for (LLVMValueRef fn = LLVMGetFirstFunction(m); fn; fn = LLVMGetNextFunction(fn)) {
        size_t len;
        const char *fname = LLVMGetValueName2(fn, &len);
        if (LLVMIsDeclaration(fn)) {
            if (strncmp(fname, "llvm.", 5))
                fail_msg("the module calls %s", fname);
            continue;
        }
        char head[96];
        snprintf(head, sizeof head, "@%s(", fname);
        const char *def = strstr(ir, head);
        assert_non_null(def);
        const char *end = strstr(def, "\n}\n");
        assert_non_null(end);
        const char *want = strstr(fname, "f64") ? "<8 x double>" : "<16 x float>";
        const char *hit = strstr(def, want);
        if (!hit || hit > end)
            fail_msg("%s was not vectorized to %s:\n%.*s", fname, want, (int)LM_MIN(end - def, 3000), def);
    }
    LLVMDisposeMessage(ir);
    LLVMDisposeModule(m);
}

/* The same IR compiled without optimisation (scalar instructions, no
 * vectorizer) gives the same bits as the O3 vector code. */
static void test_vmath_scalar_matches_vector(void **state)
{
    (void)state;
    enum { N = 1 << 15 };
    jit_engine *e0 = engine_new(0);
    LLVMModuleRef m = jit_module_new(e0, "o0");
    char name[64];
    for (int fi = 0; fi < NFN; fi++)
        for (int d = 0; d < 2; d++) {
            snprintf(name, sizeof name, "o0_%s_%s", FNS[fi].name, d ? "f64" : "f32");
            build_map(e0, m, name, FNS[fi].emit, d, 0);
        }
    if (jit_module_add(e0, m, JIT_PIPE_LOOPS) != LOOM_OK)
        fail_msg("jit_module_add: %s", g_err.msg);
    double *xd = xalloc(N * sizeof *xd), *y0 = xalloc(N * sizeof *y0), *y3 = xalloc(N * sizeof *y3);
    float *xf = xalloc(N * sizeof *xf), *f0 = xalloc(N * sizeof *f0), *f3 = xalloc(N * sizeof *f3);
    for (int fi = 0; fi < NFN; fi++) {
        const vm_kernels *k = kernels(fi);
        make_samples(FNS[fi].r64, xd, N, 7 + fi, false);
        snprintf(name, sizeof name, "o0_%s_f64", FNS[fi].name);
        run(lookup(e0, name), xd, y0, N);
        run(k->loop64, xd, y3, N);
        assert_same_bits64(y0, y3, N, FNS[fi].name);
        make_samples(FNS[fi].r32, xd, N, 7 + fi, true);
        for (size_t i = 0; i < N; i++)
            xf[i] = (float)xd[i];
        snprintf(name, sizeof name, "o0_%s_f32", FNS[fi].name);
        run(lookup(e0, name), xf, f0, N);
        run(k->loop32, xf, f3, N);
        assert_same_bits32(f0, f3, N, FNS[fi].name);
    }
    free(xd), free(y0), free(y3), free(xf), free(f0), free(f3);
    jit_engine_free(e0);
}

/* Anything but float or double is refused with an error, not a crash. */
static void test_vmath_rejects_integers(void **state)
{
    (void)state;
    LLVMModuleRef m = jit_module_new(g_eng, "reject");
    LLVMBuilderRef b = LLVMCreateBuilderInContext(g_eng->ctx);
    jit_kernel_begin(g_eng, m, b, "reject");
    assert_null(jv_tanh(g_eng, b, jit_const_i64(g_eng, 3)));
    assert_int_equal(g_err.code, LOOM_ERR_INTERNAL);
    assert_non_null(strstr(g_err.msg, "jv_tanh"));
    lm_err_clear(&g_err);
    LLVMDisposeBuilder(b);
    LLVMDisposeModule(m);
}

/* ------------------------------------------------------------------ */
/* Throughput                                                         */
/* ------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Gelem/s of a loop kernel over n elements already in cache: the best of
 * 20 short timed batches (each long enough to swamp the clock), so that a
 * machine shared with other work still shows the kernel's own speed. */
static double gelems(jit_kernel_fn k, const void *in, void *out, int64_t n)
{
    run(k, in, out, n);
    int reps = 1;
    for (;;) {
        double t0 = now_s();
        for (int r = 0; r < reps; r++)
            run(k, in, out, n);
        if (now_s() - t0 > 0.005)
            break;
        reps *= 2;
    }
    double best = 0;
    for (int t = 0; t < 20; t++) {
        double t0 = now_s();
        for (int r = 0; r < reps; r++)
            run(k, in, out, n);
        double rate = (double)n * reps / (now_s() - t0) * 1e-9;
        best = rate > best ? rate : best;
    }
    return best;
}

/* 64K elements: 256 KB in and 256 KB out (f32) sit in a Zen 5 core's
 * 1 MB L2. Printed, not asserted. */
static void test_vmath_throughput(void **state)
{
    (void)state;
    enum { N = 1 << 16 };
    float *xf = xalloc(N * sizeof *xf), *yf = xalloc(N * sizeof *yf);
    double *xd = xalloc(N * sizeof *xd), *yd = xalloc(N * sizeof *yd);
    print_message("\n%-8s %12s %12s   (Gelem/s, 1 thread, %d elements, L2)\n", "function", "f32", "f64", N);
    for (int fi = 0; fi < NFN; fi++) {
        const vm_kernels *k = kernels(fi);
        lm_rng rng;
        lm_rng_seed(&rng, 99);
        /* arguments where each function does real work */
        double lo = fi == fn_index("log") ? 1e-3 : fi == fn_index("log1p") ? -0.5 : -20;
        double hi = fi == fn_index("log") || fi == fn_index("log1p") ? 1e3 : 20;
        for (size_t i = 0; i < N; i++)
            xd[i] = lo + (hi - lo) * lm_rng_uniform(&rng), xf[i] = (float)xd[i];
        double g32 = gelems(k->loop32, xf, yf, N), g64 = gelems(k->loop64, xd, yd, N);
        print_message("%-8s %12.2f %12.2f\n", FNS[fi].name, g32, g64);
    }
    free(xf), free(yf), free(xd), free(yd);
}

/* ------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    lm_mem mem = { lm_default_alloc, NULL, &g_err };
    g_eng = jit_engine_new(mem, &g_err, "host", 3);
    if (!g_eng) {
        fprintf(stderr, "jit_engine_new: %s\n", g_err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    print_report();
    jit_engine_free(g_eng);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vmath_exp_accuracy),
        cmocka_unit_test(test_vmath_log_accuracy),
        cmocka_unit_test(test_vmath_log1p_accuracy),
        cmocka_unit_test(test_vmath_tanh_accuracy),
        cmocka_unit_test(test_vmath_sigmoid_accuracy),
        cmocka_unit_test(test_vmath_sin_accuracy),
        cmocka_unit_test(test_vmath_cos_accuracy),
        cmocka_unit_test(test_vmath_loops_vectorize),
        cmocka_unit_test(test_vmath_scalar_matches_vector),
        cmocka_unit_test(test_vmath_rejects_integers),
        cmocka_unit_test(test_vmath_throughput),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
