/*
 * base.h — what every layer of loom shares: the allocator every byte goes
 * through, the sticky error record, growable arrays. It depends on the
 * public value types of loom.h and on libc, nothing else.
 *
 * Allocation failure is an ordinary error (LOOM_ERR_NOMEM) recorded in the
 * error record the allocator is bound to; callers check the returned
 * pointer and unwind.
 */
#ifndef LOOM_BASE_H
#define LOOM_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "loom.h"

#if defined(__GNUC__)
#define LM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define LM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LM_PRINTF(f, a)
#define LM_UNLIKELY(x) (x)
#endif

#define LM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LM_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ------------------------------------------------------------------ */
/* Errors                                                             */
/* ------------------------------------------------------------------ */

enum { LM_ERRMSG_SIZE = 512 };

/* The first error wins: later failures (usually consequences) are not
 * recorded over it until lm_err_clear(). */
typedef struct lm_err {
    loom_code code;
    char msg[LM_ERRMSG_SIZE];
} lm_err;

/* Records code and a formatted message if no error is recorded yet.
 * Returns code, so `return lm_fail(e, LOOM_ERR_ARG, ...)` reads well. */
loom_code lm_fail(lm_err *e, loom_code code, const char *fmt, ...) LM_PRINTF(3, 4);
loom_code lm_failv(lm_err *e, loom_code code, const char *fmt, va_list ap);
static inline bool lm_failed(const lm_err *e) { return e->code != LOOM_OK; }
static inline void lm_err_clear(lm_err *e) { e->code = LOOM_OK; e->msg[0] = 0; }

/* ------------------------------------------------------------------ */
/* Memory                                                             */
/* ------------------------------------------------------------------ */

typedef struct lm_mem {
    loom_alloc_fn fn;
    void *ud;
    lm_err *err; /* where NOMEM is recorded */
} lm_mem;

void *lm_default_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* NULL (and NOMEM recorded) on failure or size overflow. */
void *lm_alloc(lm_mem *m, size_t size);
void *lm_zalloc(lm_mem *m, size_t size);
void *lm_realloc(lm_mem *m, void *p, size_t osize, size_t nsize);
void lm_free(lm_mem *m, void *p, size_t size);
char *lm_strdup(lm_mem *m, const char *s);

/* 64-byte aligned blocks (tensor data). The size is kept in the block.
 * Blocks of 2 MiB or more are 2 MiB-aligned and advised into huge pages
 * (Linux THP "madvise"): a weight and its optimizer moments are streamed
 * once a step, cold, and with 4 KiB pages each page costs a table walk
 * that misses the cache too (the char-LM's Adam update of a [2048,512]
 * weight took 1.8-2.3 ms, 0.6 ms in huge pages). */
void *lm_alloc_aligned(lm_mem *m, size_t size);
#define LM_HUGE_PAGE ((size_t)2 << 20) /* blocks this large start on a huge page */
void *lm_zalloc_aligned(lm_mem *m, size_t size);
void lm_free_aligned(lm_mem *m, void *p);

/* Grows *buf (of *cap elements of elsize) to hold at least need
 * elements, doubling. Returns false (NOMEM recorded) on failure, leaving
 * *buf as it was. */
bool lm_grow(lm_mem *m, void **buf, size_t *cap, size_t need, size_t elsize);
#define LM_GROW(m, arr, cap, need) \
    lm_grow((m), (void **)&(arr), &(cap), (need), sizeof(*(arr)))

/* Overflow-checked size arithmetic; false when it would wrap. */
static inline bool lm_mul_ok(size_t a, size_t b, size_t *out)
{
    if (b && a > SIZE_MAX / b)
        return false;
    *out = a * b;
    return true;
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                      */
/* ------------------------------------------------------------------ */

/* A host random generator (splitmix64 seeded xoshiro256**), used for
 * initialisers and tests; graph random ops use Philox (ops/philox.h). */
typedef struct lm_rng {
    uint64_t s[4];
} lm_rng;

void lm_rng_seed(lm_rng *r, uint64_t seed);
uint64_t lm_rng_next(lm_rng *r);
double lm_rng_uniform(lm_rng *r); /* [0, 1) */
double lm_rng_normal(lm_rng *r);

#endif /* LOOM_BASE_H */
