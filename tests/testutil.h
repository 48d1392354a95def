/*
 * testutil.h — shared by the cmocka suites: includes, a context with a
 * checked tape, approximate comparisons.
 */
#ifndef LOOM_TESTUTIL_H
#define LOOM_TESTUTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "loom.h"

#define TU_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* |a - b| <= tol * max(1, |a|, |b|) elementwise, with a message naming the
 * first element that is off. */
void tu_assert_close(const double *got, const double *want, size_t n, double tol, const char *what);
void tu_assert_close_f(const float *got, const double *want, size_t n, double tol, const char *what);

/* Fails the test with the context's message if it has an error. */
#define TU_OK(ctx)                                                                       \
    do {                                                                                 \
        if (loom_failed(ctx))                                                            \
            fail_msg("unexpected error %s: %s", loom_code_name(loom_status(ctx)), loom_errmsg(ctx)); \
    } while (0)

/* Asserts that the context failed with code and that the message contains
 * each of the given fragments. */
void tu_assert_error(loom_ctx *ctx, loom_code code, const char *frag1, const char *frag2);

/* A counting allocator (loom_options.alloc with a tu_counting as ud).
 * Every block carries its size in a header, so a free or resize that
 * reports another old size is counted, as is a block never freed. It
 * fails request fail_at (from 0) only when one_shot, else that one and
 * every later one; fail_at < 0: never. */
typedef struct tu_counting {
    size_t calls;         /* allocation and resize requests */
    long long live_bytes; /* by the sizes loom reports */
    long long live_blocks;
    size_t bad_osize;     /* frees and resizes whose osize is not the block's size */
    long fail_at;
    bool one_shot;
    size_t failures;
} tu_counting;

void *tu_counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

#endif
