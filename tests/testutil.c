/*
 * testutil.c — helpers for the cmocka suites.
 */
#include "testutil.h"

#include <stdlib.h>

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

enum { CA_HDR = 16 };

void *tu_counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    tu_counting *c = ud;
    char *base = ptr ? (char *)ptr - CA_HDR : NULL;
    if (base) {
        size_t real;
        memcpy(&real, base, sizeof real);
        c->bad_osize += real != osize;
    }
    if (nsize == 0) {
        if (base) {
            c->live_bytes -= (long long)osize;
            c->live_blocks--;
            free(base);
        }
        return NULL;
    }
    long k = (long)c->calls++;
    if (c->fail_at >= 0 && (c->one_shot ? k == c->fail_at : k >= c->fail_at)) {
        c->failures++;
        return NULL;
    }
    char *nb = realloc(base, nsize + CA_HDR);
    if (!nb)
        return NULL;
    memcpy(nb, &nsize, sizeof nsize);
    c->live_bytes += (long long)nsize - (base ? (long long)osize : 0);
    c->live_blocks += !base;
    return nb + CA_HDR;
}
