/*
 * test_parity.c — loom's recurrent stacks against PyTorch: for every case
 * of tests/fixtures/rnn_parity.h (torch.nn.RNN / LSTM / GRU in float64,
 * written by make_rnn_parity.py) a loom_rnn with the same configuration
 * and parameters runs the same input, initial states and lengths, and its
 * output, h_n, c_n, loss and the gradients of every parameter, the input
 * and the initial states must match, in f64 and in f32, on the JIT and on
 * the reference executor. A second test per case checks the contract that
 * a PyTorch state dict loads without reshuffling: the parameters loom
 * creates are exactly the state_dict's keys (after the prefix), with the
 * same shapes, in the same order.
 *
 * Tolerances (err <= tol, elementwise):
 *   f64: err = |got - ref| / max(1, |ref|),                 tol 1e-10
 *   f32: err = |got - ref| / max(1e-3 max|ref|, |ref|),     tol 1e-4
 * where max|ref| is over the compared array. The worst err is printed per
 * case, dtype and backend, and overall at the end. f32 gets 1e-4, not
 * 1e-5: its floor, 1e-3 max|ref|, asks elements a thousand times smaller
 * than the array's largest for an absolute error near one f32 ulp of the
 * largest, and gradients summed over steps, layers and directions miss
 * that by a few ulps on the reference executor as much as on the JIT
 * (worst seen 3e-5, in cases exact to 1e-15 in f64).
 */
#include "testutil.h"

#include <float.h>
#include <stdlib.h>

#include "fixtures/rnn_parity.h"

static const double TOL_F64 = 1e-10, TOL_F32 = 1e-4;

/* Odd cases put the stack under a prefix, even ones at the top level, so
 * both ways of naming are covered. */
static const char *case_prefix(int i) { return i % 2 ? "enc.rnn" : ""; }

static void full_name(char *buf, size_t size, const char *prefix, const char *name)
{
    if (prefix[0])
        snprintf(buf, size, "%s.%s", prefix, name);
    else
        snprintf(buf, size, "%s", name);
}

static loom_shape shape_of(const rp_tensor *t)
{
    loom_shape s = { .rank = t->rank };
    for (int i = 0; i < t->rank; i++)
        s.d[i] = t->d[i];
    return s;
}

static size_t numel_of(const rp_tensor *t) { return t->v ? (size_t)loom_shape_numel(shape_of(t)) : 0; }

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* ------------------------------------------------------------------ */
/* Worst errors                                                       */
/* ------------------------------------------------------------------ */

enum { NDT = 2, NBE = 2 };
static const loom_dtype DTYPES[NDT] = { LOOM_F64, LOOM_F32 };
static const loom_backend BACKENDS[NBE] = { LOOM_BACKEND_JIT, LOOM_BACKEND_REFERENCE };

/* The worst err of one run, and where it was. */
typedef struct worst {
    double err;
    char what[96];  /* "d weight_hh_l0[7]" */
    bool ran;
    int failures;   /* arrays off in that run */
} worst;

static worst WORST[RP_NCASES][NDT][NBE];

/* One comparison run: its worst, and its failures (printed as found). */
typedef struct run {
    const rp_case *k;
    loom_dtype dt;
    const char *backend;
    worst w;
    int failures;
} run;

static double elem_err(loom_dtype dt, double got, double ref, double refmax)
{
    double d = fabs(got - ref);
    if (d == 0)
        return 0;
    if (isnan(d))
        return INFINITY;
    double den = dt == LOOM_F64 ? fmax(1.0, fabs(ref)) : fmax(1e-3 * refmax, fabs(ref));
    return d / fmax(den, DBL_MIN);
}

/* Compares n values (got in r->dt) with the fixture's, records the worst
 * and prints the worst element of an array that is off. */
static void compare(run *r, const char *what, const void *got, const double *ref, size_t n)
{
    double refmax = 0, worst_err = -1, tol = r->dt == LOOM_F64 ? TOL_F64 : TOL_F32;
    size_t worst_i = 0, bad = 0;
    for (size_t i = 0; i < n; i++)
        refmax = fmax(refmax, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) {
        double g = r->dt == LOOM_F64 ? ((const double *)got)[i] : ((const float *)got)[i];
        double e = elem_err(r->dt, g, ref[i], refmax);
        if (!(e <= tol))
            bad++;
        if (!(e <= worst_err)) {
            worst_err = e;
            worst_i = i;
        }
    }
    if (n && !(worst_err <= r->w.err)) {
        r->w.err = worst_err;
        snprintf(r->w.what, sizeof r->w.what, "%s[%zu]", what, worst_i);
    }
    if (bad) {
        double g = r->dt == LOOM_F64 ? ((const double *)got)[worst_i] : ((const float *)got)[worst_i];
        print_message("  MISMATCH %s %s %s: %s, %zu of %zu elements off, worst [%zu] %.17g vs torch %.17g "
                      "(err %.3g, max|ref| %.3g)\n",
                      r->k->name, loom_dtype_name(r->dt), r->backend, what, bad, n, worst_i, g, ref[worst_i],
                      worst_err, refmax);
        r->failures++;
    }
}

/* ------------------------------------------------------------------ */
/* One case, one dtype, one backend                                   */
/* ------------------------------------------------------------------ */

/* A fixture tensor as a loom constant of dtype dt. */
static loom_t fixture_tensor(loom_ctx *ctx, loom_dtype dt, const rp_tensor *t, void *scratch)
{
    size_t n = numel_of(t);
    for (size_t i = 0; i < n; i++) {
        if (dt == LOOM_F64)
            ((double *)scratch)[i] = t->v[i];
        else
            ((float *)scratch)[i] = (float)t->v[i];
    }
    return loom_tensor(ctx, dt, shape_of(t), scratch);
}

/* Reads the value of h (which must have the fixture's shape) and compares
 * it. */
static void check_value(run *r, loom_ctx *ctx, loom_t h, const char *what, const rp_tensor *shape,
                        const double *ref, void *buf)
{
    if (loom_is_null(h)) {
        print_message("  MISMATCH %s %s %s: %s is null in loom\n", r->k->name, loom_dtype_name(r->dt), r->backend,
                      what);
        r->failures++;
        return;
    }
    loom_shape want = shape_of(shape), got = loom_shape_of(ctx, h);
    if (!loom_shape_equal(got, want)) {
        char a[96], b[96];
        print_message("  MISMATCH %s %s %s: %s is %s in loom, %s in torch\n", r->k->name, loom_dtype_name(r->dt),
                      r->backend, what, loom_shape_str(got, -1, a, sizeof a), loom_shape_str(want, -1, b, sizeof b));
        r->failures++;
        return;
    }
    size_t n = numel_of(shape);
    if (loom_read(ctx, h, buf, n * loom_dtype_size(r->dt)) != LOOM_OK) {
        print_message("  %s: loom_read failed: %s\n", what, loom_errmsg(ctx));
        r->failures++;
        return;
    }
    compare(r, what, buf, ref, n);
}

static void run_case(run *r, int index, loom_backend be)
{
    const rp_case *k = r->k;
    loom_dtype dt = r->dt;
    loom_options opts = { .backend = be };
    loom_ctx *ctx = loom_ctx_new(&opts);
    assert_non_null(ctx);
    r->backend = loom_get_backend(ctx) == LOOM_BACKEND_JIT ? "jit" : "reference";
    if (loom_get_backend(ctx) != be)
        print_message("  note: LOOM_BACKEND in the environment overrides the backend asked for\n");

    /* scratch big enough for any array of the case */
    size_t most = numel_of(&k->input) + numel_of(&k->output) + 1;
    for (int i = 0; i < k->nparams; i++)
        most = max_size(most, numel_of(&k->params[i].value));
    most = max_size(most, numel_of(&k->h_n));
    most = max_size(most, numel_of(&k->c_n));
    void *buf = malloc(most * sizeof(double));
    assert_non_null(buf);

    loom_rnn_config cfg = k->cfg;
    cfg.dtype = dt;
    const char *prefix = case_prefix(index);
    loom_rnn *m = loom_rnn_new(ctx, prefix, &cfg);
    TU_OK(ctx);

    /* parameters from the state dict */
    loom_t *params = calloc((size_t)k->nparams, sizeof *params);
    assert_non_null(params);
    for (int i = 0; i < k->nparams; i++) {
        const rp_param *p = &k->params[i];
        char name[160];
        full_name(name, sizeof name, prefix, p->name);
        params[i] = loom_param_find(ctx, name);
        if (loom_is_null(params[i]))
            fail_msg("%s: loom has no parameter \"%s\"", k->name, name);
        if (!loom_shape_equal(loom_shape_of(ctx, params[i]), shape_of(&p->value)))
            fail_msg("%s: \"%s\" has another shape than torch's", k->name, name);
        size_t n = numel_of(&p->value);
        for (size_t j = 0; j < n; j++) {
            if (dt == LOOM_F64)
                ((double *)buf)[j] = p->value.v[j];
            else
                ((float *)buf)[j] = (float)p->value.v[j];
        }
        assert_int_equal(loom_param_set(ctx, params[i], buf, n * loom_dtype_size(dt)), LOOM_OK);
    }

    /* the run and the loss of the fixture */
    loom_t x = fixture_tensor(ctx, dt, &k->input, buf);
    loom_rnn_state init = { LOOM_NULL, LOOM_NULL };
    if (k->h0.v)
        init.h = fixture_tensor(ctx, dt, &k->h0, buf);
    if (k->c0.v)
        init.c = fixture_tensor(ctx, dt, &k->c0, buf);
    loom_t lengths = k->lengths ? loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(k->batch), k->lengths) : LOOM_NULL;
    loom_t out = LOOM_NULL;
    loom_rnn_state fin = { LOOM_NULL, LOOM_NULL };
    loom_rnn_forward(ctx, m, x, &init, lengths, false, &out, &fin);
    TU_OK(ctx);
    loom_t loss = loom_add(ctx, loom_sum_all(ctx, loom_mul(ctx, out, fixture_tensor(ctx, dt, &k->r_output, buf))),
                           loom_sum_all(ctx, loom_mul(ctx, fin.h, fixture_tensor(ctx, dt, &k->r_h, buf))));
    if (k->r_c.v)
        loss = loom_add(ctx, loss, loom_sum_all(ctx, loom_mul(ctx, fin.c, fixture_tensor(ctx, dt, &k->r_c, buf))));
    loom_backward(ctx, loss);
    TU_OK(ctx);

    /* what to run: loss, output, h_n, c_n, the parameter gradients, and
     * the gradients of the input and the initial states */
    int nrun = 0;
    loom_t *runs = calloc((size_t)k->nparams + 8, sizeof *runs);
    assert_non_null(runs);
    runs[nrun++] = loss;
    runs[nrun++] = out;
    runs[nrun++] = fin.h;
    if (!loom_is_null(fin.c))
        runs[nrun++] = fin.c;
    int first_grad = nrun;
    for (int i = 0; i < k->nparams; i++)
        runs[nrun++] = loom_grad(ctx, params[i]);
    loom_t xs[3] = { x, init.h, init.c }, dxs[3] = { LOOM_NULL, LOOM_NULL, LOOM_NULL };
    int nx = 1 + (k->h0.v != NULL) + (k->c0.v != NULL);
    loom_vjp(ctx, 1, &loss, NULL, nx, xs, dxs);
    TU_OK(ctx);
    int first_dx = nrun;
    for (int i = 0; i < nx; i++)
        runs[nrun++] = dxs[i];
    for (int i = 0; i < nrun; i++)
        if (loom_is_null(runs[i]))
            fail_msg("%s: output %d of the run is null (a gradient loom did not make)", k->name, i);
    loom_run(ctx, nrun, runs);
    TU_OK(ctx);

    /* the comparisons */
    double l = loom_item(ctx, loss);
    compare(r, "loss", dt == LOOM_F64 ? (const void *)&l : (const void *)&(float){ (float)l }, &k->loss, 1);
    check_value(r, ctx, out, "output", &k->output, k->output.v, buf);
    check_value(r, ctx, fin.h, "h_n", &k->h_n, k->h_n.v, buf);
    if (k->c_n.v)
        check_value(r, ctx, fin.c, "c_n", &k->c_n, k->c_n.v, buf);
    else if (!loom_is_null(fin.c)) {
        print_message("  MISMATCH %s: loom made a c_n torch does not have\n", k->name);
        r->failures++;
    }
    for (int i = 0; i < k->nparams; i++) {
        char what[96];
        snprintf(what, sizeof what, "d %s", k->params[i].name);
        check_value(r, ctx, runs[first_grad + i], what, &k->params[i].value, k->params[i].grad, buf);
    }
    check_value(r, ctx, runs[first_dx], "d input", &k->input, k->d_input, buf);
    if (k->h0.v)
        check_value(r, ctx, runs[first_dx + 1], "d h0", &k->h0, k->d_h0, buf);
    if (k->c0.v)
        check_value(r, ctx, runs[first_dx + 2], "d c0", &k->c0, k->d_c0, buf);
    TU_OK(ctx);

    free(runs);
    free(params);
    free(buf);
    loom_rnn_free(m);
    loom_ctx_free(ctx);
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */
/* ------------------------------------------------------------------ */

/* test_parity_<case>_grad: values and gradients, f64 and f32, both
 * backends. */
static void test_parity_case_grad(void **state)
{
    const rp_case *k = *state;
    int index = (int)(k - rp_cases);
    int failures = 0;
    for (int d = 0; d < NDT; d++)
        for (int b = 0; b < NBE; b++) {
            run r = { .k = k, .dt = DTYPES[d], .w = { .err = 0, .what = "-" } };
            run_case(&r, index, BACKENDS[b]);
            r.w.ran = true;
            r.w.failures = r.failures;
            WORST[index][d][b] = r.w;
            failures += r.failures;
        }
    print_message("parity %-46s f64: jit %.2e (%s), ref %.2e (%s)\n", k->name, WORST[index][0][0].err,
                  WORST[index][0][0].what, WORST[index][0][1].err, WORST[index][0][1].what);
    print_message("parity %-46s f32: jit %.2e (%s), ref %.2e (%s)\n", "", WORST[index][1][0].err,
                  WORST[index][1][0].what, WORST[index][1][1].err, WORST[index][1][1].what);
    if (failures)
        fail_msg("%s: %d arrays differ from PyTorch (listed above)", k->name, failures);
}

/* test_parity_<case>_names: the parameters loom makes are the state
 * dict's keys, shapes and order. */
static void test_parity_case_names(void **state)
{
    const rp_case *k = *state;
    int index = (int)(k - rp_cases);
    for (int d = 0; d < NDT; d++) {
        /* the second dtype under another prefix, to see it applied */
        const char *prefix = d ? "second" : case_prefix(index);
        size_t plen = strlen(prefix);
        loom_ctx *ctx = loom_ctx_new(NULL);
        assert_non_null(ctx);
        loom_rnn_config cfg = k->cfg;
        cfg.dtype = DTYPES[d];
        size_t before = loom_param_count(ctx);
        loom_rnn *m = loom_rnn_new(ctx, prefix, &cfg);
        TU_OK(ctx);
        size_t made = loom_param_count(ctx) - before;
        bool *seen = calloc((size_t)k->nparams + 1, sizeof *seen);
        assert_non_null(seen);
        for (size_t i = 0; i < made; i++) {
            loom_t p = loom_param_at(ctx, before + i);
            const char *name = loom_param_name(ctx, p);
            assert_non_null(name);
            const char *key = name;
            if (plen) {
                if (strncmp(name, prefix, plen) != 0 || name[plen] != '.')
                    fail_msg("%s: parameter \"%s\" is not under the prefix \"%s\"", k->name, name, prefix);
                key = name + plen + 1;
            }
            int j = 0;
            while (j < k->nparams && strcmp(k->params[j].name, key) != 0)
                j++;
            if (j == k->nparams)
                fail_msg("%s: loom makes \"%s\", which is not a key of torch's state_dict", k->name, name);
            if (seen[j])
                fail_msg("%s: loom makes \"%s\" twice", k->name, name);
            seen[j] = true;
            char a[96], b[96];
            loom_shape got = loom_shape_of(ctx, p), want = shape_of(&k->params[j].value);
            if (!loom_shape_equal(got, want))
                fail_msg("%s: \"%s\" is %s in loom, %s in torch", k->name, name, loom_shape_str(got, -1, a, sizeof a),
                         loom_shape_str(want, -1, b, sizeof b));
            if (loom_dtype_of(ctx, p) != DTYPES[d])
                fail_msg("%s: \"%s\" is %s, not %s", k->name, name, loom_dtype_name(loom_dtype_of(ctx, p)),
                         loom_dtype_name(DTYPES[d]));
            if ((int)i != j)
                fail_msg("%s: \"%s\" is parameter %zu in loom, key %d of torch's state_dict", k->name, name, i, j);
        }
        for (int j = 0; j < k->nparams; j++)
            if (!seen[j])
                fail_msg("%s: torch's state_dict has \"%s\", loom makes no such parameter", k->name,
                         k->params[j].name);
        assert_int_equal(made, (size_t)k->nparams);
        free(seen);
        loom_rnn_free(m);
        loom_ctx_free(ctx);
    }
}

/* The worst error per dtype over every run, and over the runs that
 * passed when some did not (the parity of what works, to quote). */
static void print_overall(void)
{
    for (int d = 0; d < NDT; d++)
        for (int only_passed = 0; only_passed < 2; only_passed++) {
            double w = -1;
            int wc = -1, wb = 0, failed = 0;
            for (int i = 0; i < RP_NCASES; i++)
                for (int b = 0; b < NBE; b++) {
                    const worst *x = &WORST[i][d][b];
                    if (!x->ran)
                        continue;
                    failed += x->failures > 0;
                    if ((!only_passed || !x->failures) && x->err > w) {
                        w = x->err;
                        wc = i;
                        wb = b;
                    }
                }
            if (only_passed && !failed)
                break;
            if (wc >= 0)
                print_message("parity overall worst %s error%s: %.3g (%s, %s, %s; tolerance %g)\n",
                              loom_dtype_name(DTYPES[d]), only_passed ? " of the runs that pass" : "", w,
                              rp_cases[wc].name, wb ? "reference" : "jit", WORST[wc][d][wb].what,
                              d ? TOL_F32 : TOL_F64);
        }
}

int main(void)
{
    static char names[RP_NCASES][2][128];
    struct CMUnitTest tests[2 * RP_NCASES];
    for (int i = 0; i < RP_NCASES; i++) {
        snprintf(names[i][0], sizeof names[i][0], "test_parity_%s_names", rp_cases[i].name);
        snprintf(names[i][1], sizeof names[i][1], "test_parity_%s_grad", rp_cases[i].name);
        void *k = (void *)(uintptr_t)&rp_cases[i]; /* cmocka's state is not const */
        tests[2 * i] = (struct CMUnitTest){ .name = names[i][0], .test_func = test_parity_case_names,
                                            .initial_state = k };
        tests[2 * i + 1] = (struct CMUnitTest){ .name = names[i][1], .test_func = test_parity_case_grad,
                                                .initial_state = k };
    }
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    print_overall();
    return failed;
}
