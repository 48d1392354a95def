/*
 * vmath.c — exp, log, log1p, tanh, sigmoid, sin and cos emitted as inline
 * LLVM IR (see vmath.h): range reduction, a minimax polynomial, the result
 * rebuilt through the exponent bits, selects for the special values.
 *
 * What it is not: a libm. There are no branches, no calls and no
 * llvm.exp-style intrinsics (LLVM would scalarise those into libm calls),
 * only operations the loop vectorizer and the x86 backend handle in
 * registers: fadd/fmul, llvm.fma, llvm.fabs, llvm.copysign, compares,
 * selects, bitcasts and integer shifts, plus one fdiv in tanh, sigmoid,
 * and the f64 log and log1p. Rounding mode is assumed to be the default
 * (to nearest); no fast-math flags are set, so LLVM keeps every rounding
 * step as written (the 1.5*2^p "shifter" tricks below rely on that).
 *
 * Measured max error, against libm in double (f32) or long double (f64).
 * f32: every float of the range tried (a one-off exhaustive run; the
 * suite samples 4M per function). f64: 16M random samples, dense and
 * geometric (the suite takes 1M).
 *
 *   function  range                    f32 ulp   f64 ulp   f64 relative
 *   exp       [-104, 89] / [-746, 710]  1.01      1.08      1.7e-16
 *   log       (0, inf), subnormals too  1.18      0.83      1.5e-16
 *   log1p     (-1, inf)                 1.33      0.81      1.5e-16
 *   tanh      [-10, 10] / [-50, 50]     2.61      2.71      3.9e-16
 *   sigmoid   [-105, 20] / [-745, 50]   2.40      2.29      3.3e-16
 *   sin       [-1e4, 1e4]               1.53      1.50      2.2e-16
 *   cos       [-1e4, 1e4]               1.54      1.49      2.2e-16
 *
 * Outside those ranges exp, tanh and sigmoid are exactly 0, inf or +-1
 * (or a correctly placed subnormal). sin and cos hold their accuracy to
 * |x| = 1e6 (f32: 1.8 ulp) and 1e12 (f64: 1.5 ulp), then degrade
 * (f32: 13 ulp by 6e6, meaningless past 2^22 pi/2; f64: 3.6 ulp at 1e15,
 * meaningless past 2^51 pi/2), always within [-1, 1]; inf and NaN give
 * NaN. Special values follow C (see vmath.h), including the signs of
 * log1p(-0), tanh(-0) and sin(-0).
 *
 * Coefficients: minimax for relative error over the reduced interval
 * (Remez exchange in 40-digit mpmath), rounded to the target precision.
 * Each table names its interval.
 */
#include "vmath.h"

#include <math.h>

/* ------------------------------------------------------------------ */
/* Emitting: shape of x, splat constants, intrinsics                  */
/* ------------------------------------------------------------------ */

/* What every emitter needs to know about x: its float type, the integer
 * type of the same shape (for exponent-bit arithmetic) and the builder. */
typedef struct jv {
    LLVMBuilderRef b;
    LLVMModuleRef m;
    LLVMContextRef c;
    LLVMTypeRef ft, it; /* x's type and its integer twin (i32 / i64 lanes) */
    LLVMTypeRef fe, ie; /* their element types */
    unsigned lanes;     /* 0 for a scalar */
    bool f64;
    int mant;           /* mantissa bits: 23 or 52 */
    int bias;           /* exponent bias: 127 or 1023 */
} jv;

static bool jv_init(jv *v, jit_engine *e, LLVMBuilderRef b, LLVMValueRef x, const char *what)
{
    LLVMTypeRef t = LLVMTypeOf(x), el = t;
    v->lanes = 0;
    if (LLVMGetTypeKind(t) == LLVMVectorTypeKind) {
        v->lanes = LLVMGetVectorSize(t);
        el = LLVMGetElementType(t);
    }
    LLVMTypeKind k = LLVMGetTypeKind(el);
    if (k != LLVMFloatTypeKind && k != LLVMDoubleTypeKind) {
        lm_fail(e->err, LOOM_ERR_INTERNAL, "jit: %s wants float or double, or a fixed vector of them", what);
        return false;
    }
    v->b = b;
    v->c = LLVMGetTypeContext(t);
    v->m = LLVMGetGlobalParent(LLVMGetBasicBlockParent(LLVMGetInsertBlock(b)));
    v->f64 = k == LLVMDoubleTypeKind;
    v->fe = el;
    v->ie = v->f64 ? LLVMInt64TypeInContext(v->c) : LLVMInt32TypeInContext(v->c);
    v->ft = t;
    v->it = v->lanes ? LLVMVectorType(v->ie, v->lanes) : v->ie;
    v->mant = v->f64 ? 52 : 23;
    v->bias = v->f64 ? 1023 : 127;
    return true;
}

/* A scalar constant broadcast to x's shape. The shuffle of a one-lane
 * vector with a zero mask folds to a splat constant of any width. */
static LLVMValueRef splat(jv *v, LLVMValueRef s)
{
    if (!v->lanes)
        return s;
    LLVMValueRef one = LLVMConstVector(&s, 1);
    LLVMValueRef mask = LLVMConstNull(LLVMVectorType(LLVMInt32TypeInContext(v->c), v->lanes));
    return LLVMConstShuffleVector(one, LLVMGetPoison(LLVMTypeOf(one)), mask);
}

/* Float constants are written as the exact f32 or f64 value (hex floats),
 * so the conversion inside LLVMConstReal does not round. */
static LLVMValueRef K(jv *v, double c) { return splat(v, LLVMConstReal(v->fe, c)); }
static LLVMValueRef KI(jv *v, int64_t c) { return splat(v, LLVMConstInt(v->ie, (unsigned long long)c, 1)); }
static LLVMValueRef KS(jv *v, double f32, double f64) { return K(v, v->f64 ? f64 : f32); }

static LLVMValueRef intrinsic(jv *v, const char *name, LLVMValueRef *args, unsigned n)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMTypeRef ty = v->ft; /* every intrinsic used here is overloaded on x's type only */
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(v->m, id, &ty, 1);
    return LLVMBuildCall2(v->b, LLVMIntrinsicGetType(v->c, id, &ty, 1), fn, args, n, "");
}

static LLVMValueRef add(jv *v, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(v->b, a, b, ""); }
static LLVMValueRef sub(jv *v, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(v->b, a, b, ""); }
static LLVMValueRef mul(jv *v, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(v->b, a, b, ""); }
static LLVMValueRef fquot(jv *v, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFDiv(v->b, a, b, ""); }

/* a*b + c with one rounding */
static LLVMValueRef fma3(jv *v, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c)
{
    LLVMValueRef args[3] = { a, b, c };
    return intrinsic(v, "llvm.fma", args, 3);
}

static LLVMValueRef fabs1(jv *v, LLVMValueRef a) { return intrinsic(v, "llvm.fabs", &a, 1); }

static LLVMValueRef copysign2(jv *v, LLVMValueRef mag, LLVMValueRef sgn)
{
    LLVMValueRef args[2] = { mag, sgn };
    return intrinsic(v, "llvm.copysign", args, 2);
}

static LLVMValueRef fcmp(jv *v, LLVMRealPredicate p, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildFCmp(v->b, p, a, b, "");
}

static LLVMValueRef sel(jv *v, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b)
{
    return LLVMBuildSelect(v->b, c, a, b, "");
}

/* Clamps written as compare + select rather than minnum/maxnum: a NaN
 * fails the compare and passes through (minnum would drop it), and x86
 * still gets a single vmaxps/vminps. */
static LLVMValueRef clamp_lo(jv *v, LLVMValueRef x, LLVMValueRef lo) { return sel(v, fcmp(v, LLVMRealOLT, x, lo), lo, x); }
static LLVMValueRef clamp_hi(jv *v, LLVMValueRef x, LLVMValueRef hi) { return sel(v, fcmp(v, LLVMRealOGT, x, hi), hi, x); }

static LLVMValueRef as_int(jv *v, LLVMValueRef x) { return LLVMBuildBitCast(v->b, x, v->it, ""); }
static LLVMValueRef as_flt(jv *v, LLVMValueRef i) { return LLVMBuildBitCast(v->b, i, v->ft, ""); }
static LLVMValueRef iadd(jv *v, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(v->b, a, b, ""); }
static LLVMValueRef isub(jv *v, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSub(v->b, a, b, ""); }
static LLVMValueRef ishl(jv *v, LLVMValueRef a, int n) { return LLVMBuildShl(v->b, a, KI(v, n), ""); }
static LLVMValueRef iashr(jv *v, LLVMValueRef a, int n) { return LLVMBuildAShr(v->b, a, KI(v, n), ""); }
static LLVMValueRef iand(jv *v, LLVMValueRef a, int64_t m) { return LLVMBuildAnd(v->b, a, KI(v, m), ""); }
static LLVMValueRef itof(jv *v, LLVMValueRef i) { return LLVMBuildSIToFP(v->b, i, v->ft, ""); }

/* 2^n for an integer n whose biased exponent is in the normal range. */
static LLVMValueRef pow2i(jv *v, LLVMValueRef n) { return as_flt(v, ishl(v, iadd(v, n, KI(v, v->bias)), v->mant)); }

/* c[0] + c[1] x + ... + c[n-1] x^(n-1). Up to 6 terms by Horner's rule,
 * fewest operations: the kernels are throughput-bound, and out-of-order
 * execution overlaps the chains of neighbouring vectors. Longer ones by
 * Estrin's scheme (pairs joined with x, then x^2, x^4 ...): a few more
 * multiplications but a chain short enough not to stall the window.
 * x2 (x*x) may be passed when the caller has it. */
enum { POLY_MAX = 16 };
static LLVMValueRef poly(jv *v, LLVMValueRef x, LLVMValueRef x2, const double *c, int n)
{
    if (n <= 6) {
        LLVMValueRef t = K(v, c[n - 1]);
        for (int i = n - 2; i >= 0; i--)
            t = fma3(v, t, x, K(v, c[i]));
        return t;
    }
    LLVMValueRef t[POLY_MAX];
    for (int i = 0; i < n; i++)
        t[i] = K(v, c[i]);
    LLVMValueRef p = x;
    while (n > 1) {
        int k = 0;
        for (int i = 0; i + 1 < n; i += 2)
            t[k++] = fma3(v, t[i + 1], p, t[i]);
        if (n & 1)
            t[k++] = t[n - 1];
        n = k;
        if (n > 1)
            p = (p == x && x2) ? x2 : mul(v, p, p);
    }
    return t[0];
}

/* ------------------------------------------------------------------ */
/* exp: x = n ln2 + r, e^x = 2^n (1 + p(r))                           */
/* ------------------------------------------------------------------ */

/* e^r - 1 = r + r^2 q(r), |r| <= ln2/2 (1 + 2^-12). Relative error of
 * 1 + p: 3.2e-9 (f32, q of degree 4), 1.0e-17 (f64, degree 9). */
static const double exp_q32[] = { 0x1.fffffcp-2, 0x1.55548cp-3, 0x1.555858p-5, 0x1.123de0p-7, 0x1.6ac74ep-10 };
static const double exp_q64[] = {
    0x1.000000000000ap-1, 0x1.55555555554fap-3, 0x1.5555555550866p-5, 0x1.1111111127c52p-7,
    0x1.6c16c1842f584p-10, 0x1.a01a012a3ccf0p-13, 0x1.a01999fd3dc91p-16, 0x1.71df2576f6c0dp-19,
    0x1.28ad817ee3a12p-22, 0x1.ad7f5a9d8d201p-26,
};

/* Splits x into n (an integer, it-typed) and p = e^r - 1. n is rounded
 * with the shifter: z = x log2(e) + 1.5*2^p rounds to an integer whose
 * value sits in z's low mantissa bits, which saves a float-to-int
 * conversion (exact for |n| < 2^22 / 2^51). Cody-Waite: ln2 is split in
 * two, and x - n hi is exact (where it cancels, n hi and x share their
 * low bits), so r keeps its accuracy; n lo adds the tail. */
static void exp_reduce(jv *v, LLVMValueRef x, LLVMValueRef *p, LLVMValueRef *n)
{
    LLVMValueRef shift = KS(v, 0x1.8p23, 0x1.8p52);
    LLVMValueRef z = fma3(v, x, KS(v, 0x1.715476p+0, 0x1.71547652b82fep+0), shift);
    LLVMValueRef nf = sub(v, z, shift);
    LLVMValueRef r = fma3(v, nf, KS(v, -0x1.62e4p-1, -0x1.62e42fefa39efp-1), x);
    r = fma3(v, nf, KS(v, -0x1.7f7d1cp-20, -0x1.abc9e3b39803fp-56), r);
    LLVMValueRef r2 = mul(v, r, r);
    LLVMValueRef q = v->f64 ? poly(v, r, r2, exp_q64, (int)LM_ARRAY_LEN(exp_q64))
                            : poly(v, r, r2, exp_q32, (int)LM_ARRAY_LEN(exp_q32));
    *p = fma3(v, q, r2, r);
    *n = isub(v, as_int(v, z), as_int(v, shift));
}

/* e^x for x already clamped to [lo, hi] below: 2^n is applied as two
 * factors 2^(n/2) so that neither leaves the normal range; the second
 * multiplication then rounds once into a subnormal, or overflows to inf,
 * exactly where e^x does. */
static LLVMValueRef exp_clamped(jv *v, LLVMValueRef x)
{
    LLVMValueRef p, n;
    exp_reduce(v, x, &p, &n);
    LLVMValueRef n1 = iashr(v, n, 1), n2 = isub(v, n, n1);
    LLVMValueRef s1 = pow2i(v, n1), s2 = pow2i(v, n2);
    return mul(v, fma3(v, p, s1, s1), s2);
}

/* Past these e^x rounds to 0 or overflows; inside them n stays within
 * [-150, 128] (f32) or [-1077, 1024] (f64), which the split scale holds. */
#define EXP_LO(v) KS(v, -104.0, -746.0)
#define EXP_HI(v) KS(v, 89.0, 710.0)

LLVMValueRef jv_exp(jit_engine *e, LLVMBuilderRef b, LLVMValueRef x)
{
    jv v;
    if (!jv_init(&v, e, b, x, "jv_exp"))
        return NULL;
    x = clamp_hi(&v, clamp_lo(&v, x, EXP_LO(&v)), EXP_HI(&v));
    return exp_clamped(&v, x);
}

/* ------------------------------------------------------------------ */
/* log and log1p: x = 2^k m, log x = k ln2 + log m                    */
/* ------------------------------------------------------------------ */

/* f32: m in [2/3, 4/3), r = m - 1 in [-1/3, 1/3] (offset 0x3f2aaaab),
 * log(1 + r) = r + r^2 P(r), relative error 3.2e-8. */
static const double log_p32[] = {
    -0x1.ffffd6p-2, 0x1.5554fap-2, -0x1.00148p-2, 0x1.99d428p-3,
    -0x1.5032eap-3, 0x1.1ea256p-3, -0x1.3b2846p-3, 0x1.1f428ap-3,
};
#define LOG_OFF32 0x3f2aaaab

/* f64, after fdlibm: m in [sqrt(1/2), sqrt(2)), f = m - 1,
 * s = f / (2 + f), log(1 + f) = 2 atanh(s) = f - f^2/2 + s (f^2/2 + R),
 * R = z P(z), z = s^2 <= 0.0295, relative error of R 3.6e-18. The
 * division buys a short series in s^2; a polynomial in f would need
 * twice the terms for double precision. */
static const double log_p64[] = {
    0x1.5555555555592p-1, 0x1.999999997fdb7p-2, 0x1.24924941f12d7p-2, 0x1.c71c520955706p-3,
    0x1.74663eea2287fp-3, 0x1.39a1ba8822ebdp-3, 0x1.2f05657ea70b3p-3,
};
#define LOG_OFF64 0x3fe6a09e667f3bcdLL
/* ln2 split with 21 trailing zero bits in hi: k*hi is exact */
#define LN2_HI64 0x1.62e42feep-1
#define LN2_LO64 0x1.a39ef35793c76p-33

/* u = 2^k m with m in [off, 2 off): k (integer) and m, from the bits. */
static void log_split(jv *v, LLVMValueRef u, LLVMValueRef *k, LLVMValueRef *m)
{
    LLVMValueRef off = KI(v, v->f64 ? LOG_OFF64 : LOG_OFF32);
    LLVMValueRef d = isub(v, as_int(v, u), off);
    *k = iashr(v, d, v->mant);
    *m = as_flt(v, iadd(v, iand(v, d, ((int64_t)1 << v->mant) - 1), off));
}

/* f32: k ln2 + log(1 + r) + corr (NULL for none). corr is tiny, so it
 * rides with the polynomial term and r is never rounded with it. */
static LLVMValueRef log_finish32(jv *v, LLVMValueRef r, LLVMValueRef k, LLVMValueRef corr)
{
    LLVMValueRef r2 = mul(v, r, r);
    LLVMValueRef P = poly(v, r, r2, log_p32, (int)LM_ARRAY_LEN(log_p32));
    LLVMValueRef l = corr ? add(v, r, fma3(v, r2, P, corr)) : fma3(v, r2, P, r);
    return fma3(v, itof(v, k), K(v, 0x1.62e43p-1), l);
}

/* f64: k ln2 + log(1 + f) + corr, in fdlibm's order of operations. */
static LLVMValueRef log_finish64(jv *v, LLVMValueRef f, LLVMValueRef k, LLVMValueRef corr)
{
    LLVMValueRef dk = itof(v, k);
    LLVMValueRef s = fquot(v, f, add(v, K(v, 2.0), f));
    LLVMValueRef z = mul(v, s, s);
    LLVMValueRef R = mul(v, z, poly(v, z, NULL, log_p64, (int)LM_ARRAY_LEN(log_p64)));
    LLVMValueRef hfsq = mul(v, mul(v, K(v, 0.5), f), f);
    LLVMValueRef lo = mul(v, dk, K(v, LN2_LO64));
    if (corr)
        lo = add(v, lo, corr);
    LLVMValueRef t = fma3(v, s, add(v, hfsq, R), lo);
    return sub(v, mul(v, dk, K(v, LN2_HI64)), sub(v, sub(v, hfsq, t), f));
}

LLVMValueRef jv_log(jit_engine *e, LLVMBuilderRef b, LLVMValueRef x)
{
    jv v;
    if (!jv_init(&v, e, b, x, "jv_log"))
        return NULL;
    /* Subnormals are scaled into the normal range first. */
    LLVMValueRef tiny = fcmp(&v, LLVMRealOLT, x, KS(&v, 0x1p-126, 0x1p-1022));
    LLVMValueRef xs = sel(&v, tiny, mul(&v, x, KS(&v, 0x1p23, 0x1p52)), x);
    LLVMValueRef k, m;
    log_split(&v, xs, &k, &m);
    k = iadd(&v, k, sel(&v, tiny, KI(&v, -v.mant), KI(&v, 0)));
    LLVMValueRef r = sub(&v, m, K(&v, 1.0)); /* exact: m is within a factor 2 of 1 */
    LLVMValueRef y = v.f64 ? log_finish64(&v, r, k, NULL) : log_finish32(&v, r, k, NULL);

    LLVMValueRef inf = K(&v, INFINITY);
    y = sel(&v, fcmp(&v, LLVMRealOEQ, x, inf), inf, y);
    y = sel(&v, fcmp(&v, LLVMRealOEQ, x, K(&v, 0.0)), K(&v, -INFINITY), y);
    return sel(&v, fcmp(&v, LLVMRealULT, x, K(&v, 0.0)), K(&v, NAN), y); /* x < 0 or NaN */
}

/* log1p(x) = log(u + c) with u = 1 + x rounded and c its exact rounding
 * error (Fast2Sum, the larger operand first). With u = 2^k m and
 * c' = c 2^-k: log(u + c) = k ln2 + log(m) + c'/m, where r = m - 1 stays
 * exact and c'/m = c' (1 - r + r^2) to well under an ulp (|r| <= 0.42,
 * |c'| <= ulp(m)/2). No division, and nothing is lost when x is tiny
 * (u = 1, r = 0, the correction is x itself). */
LLVMValueRef jv_log1p(jit_engine *e, LLVMBuilderRef b, LLVMValueRef x)
{
    jv v;
    if (!jv_init(&v, e, b, x, "jv_log1p"))
        return NULL;
    LLVMValueRef one = K(&v, 1.0);
    LLVMValueRef u = add(&v, one, x);
    LLVMValueRef c = sel(&v, fcmp(&v, LLVMRealOLT, x, one), add(&v, sub(&v, one, u), x),
                         add(&v, sub(&v, x, u), one));
    LLVMValueRef k, m;
    log_split(&v, u, &k, &m);
    /* 2^-k; past k = bias - 1 (u near the top of the range) c is
     * negligible, so k is capped there to keep 2^-k a normal number */
    LLVMValueRef kmax = KI(&v, v.bias - 1);
    LLVMValueRef kc = sel(&v, LLVMBuildICmp(b, LLVMIntSGT, k, kmax, ""), kmax, k);
    LLVMValueRef cs = mul(&v, c, as_flt(&v, ishl(&v, isub(&v, KI(&v, v.bias), kc), v.mant)));
    LLVMValueRef r = sub(&v, m, one);
    LLVMValueRef w = fma3(&v, LLVMBuildFNeg(b, r, ""), r, r); /* r - r^2 */
    LLVMValueRef corr = fma3(&v, LLVMBuildFNeg(b, cs, ""), w, cs);
    LLVMValueRef y = v.f64 ? log_finish64(&v, r, k, corr) : log_finish32(&v, r, k, corr);

    LLVMValueRef inf = K(&v, INFINITY);
    y = sel(&v, fcmp(&v, LLVMRealOEQ, x, inf), inf, y);
    y = sel(&v, fcmp(&v, LLVMRealOEQ, x, K(&v, -1.0)), K(&v, -INFINITY), y);
    y = sel(&v, fcmp(&v, LLVMRealOEQ, x, K(&v, 0.0)), x, y); /* keeps -0 */
    return sel(&v, fcmp(&v, LLVMRealULT, x, K(&v, -1.0)), K(&v, NAN), y);
}

/* ------------------------------------------------------------------ */
/* tanh and sigmoid                                                   */
/* ------------------------------------------------------------------ */

/* tanh|x| = E / (E + 2) with E = e^(2|x|) - 1 taken from exp's pieces:
 * E = 2^n p + (2^n - 1), where 2^n - 1 is exact. That is an expm1,
 * accurate for small |x| too (n = 0 leaves E = p = 2|x| + ...), so one
 * formula covers the whole line without cancellation and keeps relative
 * accuracy near 0, where 1 - 2/(e^2x + 1) would lose it all. Its three
 * relative roundings (E, E + 2, the quotient) peak at 2.7 ulp below
 * |x| = 0.3 (1.5 ulp above). A separate odd polynomial there,
 * a + a^3 T(a^2) with 4 (f32) / 8 (f64) terms, brings the whole line to
 * 1.5 ulp but costs ~20% of tanh's throughput, which the gates of an
 * LSTM do not need. |x| is capped where tanh rounds to 1, which keeps
 * 2^n a single normal factor. */
LLVMValueRef jv_tanh(jit_engine *e, LLVMBuilderRef b, LLVMValueRef x)
{
    jv v;
    if (!jv_init(&v, e, b, x, "jv_tanh"))
        return NULL;
    LLVMValueRef a = clamp_hi(&v, fabs1(&v, x), KS(&v, 10.0, 20.0));
    LLVMValueRef p, n;
    exp_reduce(&v, add(&v, a, a), &p, &n);
    LLVMValueRef s = pow2i(&v, n);
    LLVMValueRef em1 = fma3(&v, p, s, sub(&v, s, K(&v, 1.0)));
    LLVMValueRef t = fquot(&v, em1, add(&v, em1, K(&v, 2.0)));
    return copysign2(&v, t, x);
}

/* With E = e^-|x| (never overflows; underflows gracefully):
 * sigmoid(|x|) = 1 / (1 + E), sigmoid(-|x|) = E / (1 + E), one division
 * for both. The second stays accurate down to the subnormal tail, where
 * 1/(1 + e^-x) would overflow to 0 and 1 - sigmoid(|x|) would cancel.
 * (With q = E / (1 + E), taking E - E q for x < 0 and 1 - q for x >= 0
 * saves a relative rounding: 1.65 ulp instead of 2.4, but costs two more
 * operations, ~10% of sigmoid's throughput; the gates of an LSTM do not
 * need the difference.) */
LLVMValueRef jv_sigmoid(jit_engine *e, LLVMBuilderRef b, LLVMValueRef x)
{
    jv v;
    if (!jv_init(&v, e, b, x, "jv_sigmoid"))
        return NULL;
    LLVMValueRef a = clamp_lo(&v, LLVMBuildFNeg(b, fabs1(&v, x), ""), EXP_LO(&v));
    LLVMValueRef E = exp_clamped(&v, a);
    LLVMValueRef num = sel(&v, fcmp(&v, LLVMRealOLT, x, K(&v, 0.0)), E, K(&v, 1.0));
    return fquot(&v, num, add(&v, K(&v, 1.0), E));
}

/* ------------------------------------------------------------------ */
/* sin and cos: x = n pi/2 + r, |r| <= pi/4, a quadrant picks the term */
/* ------------------------------------------------------------------ */

/* On [0, pi/4 + 0.002] (n is rounded from x 2/pi in working precision,
 * so |r| may pass pi/4 a little): sin r = r + r^3 S(r^2), relative error
 * 7.9e-9 (f32) / 4.1e-18 (f64); cos r = 1 - r^2/2 + r^4 C(r^2), 2.2e-10 /
 * 1.5e-18. Both terms are needed: reducing modulo pi with sin alone is
 * cheaper but evaluates sin near pi/2, where the r^3 term is 57% of the
 * result, and misses cos(0) = 1 by an ulp. */
static const double sin_s32[] = { -0x1.555544p-3, 0x1.110722p-7, -0x1.993af8p-13 };
static const double cos_c32[] = { 0x1.55554ap-5, -0x1.6c0c18p-10, 0x1.99e378p-16 };
static const double sin_s64[] = {
    -0x1.5555555555548p-3, 0x1.111111110f729p-7, -0x1.a01a019be83f6p-13,
    0x1.71de3554642bbp-19, -0x1.ae5e4ae54463dp-26, 0x1.5d8b26cb04066p-33,
};
static const double cos_c64[] = {
    0x1.555555555554ap-5, -0x1.6c16c16c14ed3p-10, 0x1.a01a019c71352p-16,
    -0x1.27e4f7dca3f05p-22, 0x1.1ee9cde3c48cbp-29, -0x1.8f9f699f5042bp-37,
};

/* Quadrant q = n mod 4 (cos: n + 1): odd q takes cos r instead of sin r,
 * q >= 2 flips the sign. */
static LLVMValueRef sin_or_cos(jv *v, LLVMValueRef x, bool is_cos)
{
    LLVMValueRef shift = KS(v, 0x1.8p23, 0x1.8p52);
    LLVMValueRef z = fma3(v, x, KS(v, 0x1.45f306p-1, 0x1.45f306dc9c883p-1), shift); /* round(x 2/pi) */
    LLVMValueRef n = sub(v, z, shift);
    LLVMValueRef q = as_int(v, z); /* low bits: n mod 4 */
    if (is_cos)
        q = iadd(v, q, KI(v, 1));

    /* Cody-Waite with pi/2 in three parts: the first fma is exact (n pi1
     * and x share their low bits where they cancel), the next two carry
     * the rest of pi/2 to 3 x 24 / 3 x 53 bits. */
    LLVMValueRef r = fma3(v, n, KS(v, -0x1.921fb6p+0, -0x1.921fb54442d18p+0), x);
    r = fma3(v, n, KS(v, 0x1.777a5cp-25, -0x1.1a62633145c07p-54), r);
    r = fma3(v, n, KS(v, 0x1.ee59dap-50, 0x1.f1976b7ed8fbcp-110), r);
    /* n comes from x 2/pi in working precision, so r passes pi/4 by up
     * to ~|x| 2^-24 (f32) / 2^-53: harmless, the polynomials hold a little
     * past their interval. Far past the accurate range (n itself no longer
     * exact) the clamp keeps them bounded, so |result| <= 1 everywhere. */
    LLVMValueRef lim = K(v, 0x1.2p+0);
    r = clamp_hi(v, clamp_lo(v, r, LLVMBuildFNeg(v->b, lim, "")), lim);

    LLVMValueRef r2 = mul(v, r, r);
    LLVMValueRef S = v->f64 ? poly(v, r2, NULL, sin_s64, (int)LM_ARRAY_LEN(sin_s64))
                            : poly(v, r2, NULL, sin_s32, (int)LM_ARRAY_LEN(sin_s32));
    LLVMValueRef C = v->f64 ? poly(v, r2, NULL, cos_c64, (int)LM_ARRAY_LEN(cos_c64))
                            : poly(v, r2, NULL, cos_c32, (int)LM_ARRAY_LEN(cos_c32));
    LLVMValueRef sr = fma3(v, mul(v, r, r2), S, r);
    LLVMValueRef cr = fma3(v, r2, fma3(v, r2, C, K(v, -0.5)), K(v, 1.0)); /* <= 1: the r^2 factor is < 0 */

    LLVMValueRef odd = LLVMBuildICmp(v->b, LLVMIntNE, iand(v, q, 1), KI(v, 0), "");
    LLVMValueRef y = sel(v, odd, cr, sr);
    LLVMValueRef sign = ishl(v, iand(v, q, 2), v->f64 ? 62 : 30);
    return as_flt(v, LLVMBuildXor(v->b, as_int(v, y), sign, ""));
}

LLVMValueRef jv_sin(jit_engine *e, LLVMBuilderRef b, LLVMValueRef x)
{
    jv v;
    if (!jv_init(&v, e, b, x, "jv_sin"))
        return NULL;
    /* r + r^3 S sums -0 and +0 to +0: sin(-0) = -0 needs a select */
    return sel(&v, fcmp(&v, LLVMRealOEQ, x, K(&v, 0.0)), x, sin_or_cos(&v, x, false));
}

LLVMValueRef jv_cos(jit_engine *e, LLVMBuilderRef b, LLVMValueRef x)
{
    jv v;
    if (!jv_init(&v, e, b, x, "jv_cos"))
        return NULL;
    return sin_or_cos(&v, x, true);
}
