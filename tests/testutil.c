/*
 * testutil.c — helpers for the cmocka suites.
 */
#include "testutil.h"

static void close_at(double g, double w, size_t i, double tol, const char *what)
{
    double scale = fmax(1.0, fmax(fabs(g), fabs(w)));
    if (!(fabs(g - w) <= tol * scale))
        fail_msg("%s: element %zu is %.17g, expected %.17g (tolerance %g)", what, i, g, w, tol);
}

void tu_assert_close(const double *got, const double *want, size_t n, double tol, const char *what)
{
    for (size_t i = 0; i < n; i++)
        close_at(got[i], want[i], i, tol, what);
}

void tu_assert_close_f(const float *got, const double *want, size_t n, double tol, const char *what)
{
    for (size_t i = 0; i < n; i++)
        close_at(got[i], want[i], i, tol, what);
}

void tu_assert_error(loom_ctx *ctx, loom_code code, const char *frag1, const char *frag2)
{
    if (loom_status(ctx) != code)
        fail_msg("expected %s, got %s: %s", loom_code_name(code), loom_code_name(loom_status(ctx)),
                 loom_errmsg(ctx));
    const char *msg = loom_errmsg(ctx);
    if (frag1 && !strstr(msg, frag1))
        fail_msg("message \"%s\" does not mention \"%s\"", msg, frag1);
    if (frag2 && !strstr(msg, frag2))
        fail_msg("message \"%s\" does not mention \"%s\"", msg, frag2);
}
