/*
 * base.c — errors, allocation, growable arrays, the host generator, and
 * the small public helpers on value types (names, shapes).
 */
#define _DEFAULT_SOURCE /* madvise's MADV_HUGEPAGE, beyond POSIX */
#include "base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

loom_code lm_failv(lm_err *e, loom_code code, const char *fmt, va_list ap)
{
    if (e->code == LOOM_OK) {
        e->code = code;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    }
    return code;
}

loom_code lm_fail(lm_err *e, loom_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lm_failv(e, code, fmt, ap);
    va_end(ap);
    return code;
}

const char *loom_code_name(loom_code code)
{
    static const char *const names[] = {
        [LOOM_OK] = "LOOM_OK",
        [LOOM_ERR_ARG] = "LOOM_ERR_ARG",
        [LOOM_ERR_SHAPE] = "LOOM_ERR_SHAPE",
        [LOOM_ERR_DTYPE] = "LOOM_ERR_DTYPE",
        [LOOM_ERR_HANDLE] = "LOOM_ERR_HANDLE",
        [LOOM_ERR_NOMEM] = "LOOM_ERR_NOMEM",
        [LOOM_ERR_INDEX] = "LOOM_ERR_INDEX",
        [LOOM_ERR_STATE] = "LOOM_ERR_STATE",
        [LOOM_ERR_IO] = "LOOM_ERR_IO",
        [LOOM_ERR_FORMAT] = "LOOM_ERR_FORMAT",
        [LOOM_ERR_UNSUPPORTED] = "LOOM_ERR_UNSUPPORTED",
        [LOOM_ERR_INTERNAL] = "LOOM_ERR_INTERNAL",
        [LOOM_ERR_NUMERIC] = "LOOM_ERR_NUMERIC",
    };
    _Static_assert(LM_ARRAY_LEN(names) == LOOM_CODE_COUNT, "a code without a name");
    if ((unsigned)code >= LOOM_CODE_COUNT)
        return "LOOM_ERR_?";
    return names[code];
}

/* ------------------------------------------------------------------ */
/* Memory                                                             */
/* ------------------------------------------------------------------ */

void *lm_default_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}

static void *nomem(lm_mem *m, size_t size)
{
    if (m->err)
        lm_fail(m->err, LOOM_ERR_NOMEM, "out of memory (allocating %zu bytes)", size);
    return NULL;
}

void *lm_alloc(lm_mem *m, size_t size)
{
    if (size == 0)
        size = 1;
    void *p = m->fn(m->ud, NULL, 0, size);
    return p ? p : nomem(m, size);
}

void *lm_zalloc(lm_mem *m, size_t size)
{
    void *p = lm_alloc(m, size);
    if (p)
        memset(p, 0, size ? size : 1);
    return p;
}

void *lm_realloc(lm_mem *m, void *p, size_t osize, size_t nsize)
{
    if (nsize == 0)
        nsize = 1;
    void *q = m->fn(m->ud, p, p ? osize : 0, nsize);
    return q ? q : nomem(m, nsize);
}

void lm_free(lm_mem *m, void *p, size_t size)
{
    if (p)
        m->fn(m->ud, p, size, 0);
}

char *lm_strdup(lm_mem *m, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = lm_alloc(m, n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Layout: [pad][base pointer][size] | aligned data. */
typedef struct aligned_hdr {
    void *base;
    size_t size;
} aligned_hdr;

enum { LM_ALIGN = 64 };

void *lm_alloc_aligned(lm_mem *m, size_t size)
{
    size_t align = size >= LM_HUGE_PAGE ? LM_HUGE_PAGE : LM_ALIGN;
    size_t total = size + align + sizeof(aligned_hdr);
    if (total < size)
        return nomem(m, size);
    char *base = m->fn(m->ud, NULL, 0, total);
    if (!base)
        return nomem(m, size);
    uintptr_t a = ((uintptr_t)base + sizeof(aligned_hdr) + align - 1) & ~(uintptr_t)(align - 1);
    aligned_hdr *h = (aligned_hdr *)a - 1;
    h->base = base;
    h->size = total;
#ifdef MADV_HUGEPAGE
    if (align == LM_HUGE_PAGE) /* advice: failure is harmless */
        madvise((void *)a, size & ~(LM_HUGE_PAGE - 1), MADV_HUGEPAGE);
#endif
    return (void *)a;
}

void *lm_zalloc_aligned(lm_mem *m, size_t size)
{
    void *p = lm_alloc_aligned(m, size);
    if (p)
        memset(p, 0, size);
    return p;
}

void lm_free_aligned(lm_mem *m, void *p)
{
    if (!p)
        return;
    aligned_hdr *h = (aligned_hdr *)p - 1;
    m->fn(m->ud, h->base, h->size, 0);
}

bool lm_grow(lm_mem *m, void **buf, size_t *cap, size_t need, size_t elsize)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) {
            nomem(m, SIZE_MAX);
            return false;
        }
        ncap *= 2;
    }
    size_t nbytes;
    if (!lm_mul_ok(ncap, elsize, &nbytes)) {
        nomem(m, SIZE_MAX);
        return false;
    }
    void *p = lm_realloc(m, *buf, *cap * elsize, nbytes);
    if (!p)
        return false;
    *buf = p;
    *cap = ncap;
    return true;
}

/* ------------------------------------------------------------------ */
/* Host random generator                                              */
/* ------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void lm_rng_seed(lm_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t lm_rng_next(lm_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double lm_rng_uniform(lm_rng *r) { return (double)(lm_rng_next(r) >> 11) * 0x1p-53; }

double lm_rng_normal(lm_rng *r)
{
    double u1 = 1.0 - lm_rng_uniform(r); /* (0, 1] */
    double u2 = lm_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ------------------------------------------------------------------ */
/* Public value-type helpers                                          */
/* ------------------------------------------------------------------ */

const char *loom_dtype_name(loom_dtype dt)
{
    static const char *const names[] = { "f32", "f64", "i32" };
    _Static_assert(LM_ARRAY_LEN(names) == LOOM_DTYPE_COUNT, "a dtype without a name");
    return (unsigned)dt < LOOM_DTYPE_COUNT ? names[dt] : "?";
}

size_t loom_dtype_size(loom_dtype dt)
{
    static const size_t sizes[] = { 4, 8, 4 };
    _Static_assert(LM_ARRAY_LEN(sizes) == LOOM_DTYPE_COUNT, "a dtype without a size");
    return (unsigned)dt < LOOM_DTYPE_COUNT ? sizes[dt] : 0;
}

int64_t loom_shape_numel(loom_shape s)
{
    if (s.rank < 0 || s.rank > LOOM_MAX_RANK)
        return -1; /* not a shape: no count, and no reading past d[] */
    int64_t n = 1;
    for (int i = 0; i < s.rank; i++)
        n *= s.d[i];
    return n;
}

bool loom_shape_equal(loom_shape a, loom_shape b)
{
    if (a.rank != b.rank || a.rank < 0 || a.rank > LOOM_MAX_RANK)
        return false;
    for (int i = 0; i < a.rank; i++)
        if (a.d[i] != b.d[i])
            return false;
    return true;
}

char *loom_shape_str(loom_shape s, int dt, char *buf, size_t size)
{
    size_t n = 0;
    if (size == 0)
        return buf;
    buf[0] = 0;
#define PUT(...)                                                   \
    do {                                                           \
        int k_ = snprintf(buf + n, n < size ? size - n : 0, __VA_ARGS__); \
        if (k_ > 0)                                                \
            n += (size_t)k_;                                       \
    } while (0)
    if (dt >= 0)
        PUT("%s", loom_dtype_name((loom_dtype)dt));
    PUT("[");
    for (int i = 0; i < s.rank && i < LOOM_MAX_RANK; i++)
        PUT(i ? ",%lld" : "%lld", (long long)s.d[i]);
    PUT("]");
#undef PUT
    return buf;
}
