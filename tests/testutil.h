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

#endif
