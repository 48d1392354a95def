/*
 * gradcheck.c — finite-difference checks of VJPs in f64. The case builds
 * y from inputs; the checker forms loss = sum(R * y) with a random R, takes
 * the analytic gradient of every float input through ad_backward and the
 * reference executor, and compares each element with a central difference
 * (loss(x + eps) - loss(x - eps)) / 2 eps.
 */
#include <math.h>

#include "autograd.h"

typedef struct op_case {
    int op;
} op_case;

static ir_id build_op(op_check *c, void *ud)
{
    const op_def *d = op_get(((op_case *)ud)->op);
    if (!d->check) {
        lm_fail(c->g->err, LOOM_ERR_INTERNAL, "gradcheck: %s is differentiable but has no check case",
                d->name);
        return 0;
    }
    return d->check(c);
}

loom_code ad_gradcheck_op(lm_mem mem, lm_err *err, int op, uint64_t seed, ad_check_stats *st)
{
    op_case oc = { .op = op };
    return ad_gradcheck_case(mem, err, build_op, &oc, seed ^ ((uint64_t)op << 32), st);
}

static loom_code eval_loss(ir_graph *g, const op_env *env, ir_id loss, double *out)
{
    void *v = NULL;
    loom_code c = op_ref_run(g, env, &loss, 1, &v);
    if (c == LOOM_OK) {
        *out = *(const double *)v;
        lm_free_aligned(&g->mem, v);
    }
    return c;
}

loom_code ad_gradcheck_case(lm_mem mem, lm_err *err, ir_id (*build)(op_check *c, void *ud),
                            void *ud, uint64_t seed, ad_check_stats *st)
{
    *st = (ad_check_stats){ 0 };
    ir_graph *g = ir_graph_new(mem, err, &op_opset);
    if (!g)
        return err->code;
    op_check c = { .g = g, .op = build == build_op ? ((op_case *)ud)->op : -1, .eps = 1e-6, .dtype = LOOM_F64 };
    lm_rng_seed(&c.rng, seed);
    /* per case input: its gradient node and analytic values */
    size_t ncase = 0, nwants = 0, nroots = 0;
    void **inputs = NULL, **vals = NULL;
    ir_id *roots = NULL;
    size_t *root_of = NULL;
    uint8_t *wants = NULL;
    ad_grads gr = { 0 };

    ir_id y = build(&c, ud);
    if (!y)
        goto done;
    if (ir_dtype(g, y) != LOOM_F64) {
        lm_fail(err, LOOM_ERR_INTERNAL, "gradcheck: the case's output is not f64");
        goto done;
    }
    ncase = c.nin;
    ir_id r = op_check_input_new(&c, ir_shapev(g, y), -1, 1);
    if (!r)
        goto done;
    c.in[c.nin - 1].diff = false;
    ir_id loss = op_sum(g, op_mul(g, y, r), (1u << ir_shape(g, y)->rank) - 1, false);
    nwants = g->nnodes;
    if (!loss || !(wants = lm_zalloc(&g->mem, nwants)))
        goto done;
    for (size_t i = 0; i < ncase; i++)
        wants[c.in[i].node] = c.in[i].diff;
    if (ad_backward(g, 1, &loss, NULL, wants, &gr) != LOOM_OK || ir_verify(g) != LOOM_OK)
        goto done;

    inputs = lm_zalloc(&g->mem, c.nin * sizeof *inputs);
    roots = lm_zalloc(&g->mem, (ncase + 1) * sizeof *roots);
    vals = lm_zalloc(&g->mem, (ncase + 1) * sizeof *vals);
    root_of = lm_zalloc(&g->mem, ncase * sizeof *root_of);
    if (!inputs || !roots || !vals || !root_of)
        goto done;
    for (size_t i = 0; i < c.nin; i++)
        inputs[i] = c.in[i].data;
    op_env env = { .inputs = inputs, .ninputs = (uint32_t)c.nin };

    /* analytic: one run for every gradient that exists */
    roots[nroots++] = loss;
    for (size_t i = 0; i < ncase; i++)
        if (c.in[i].diff && gr.grad[c.in[i].node]) {
            root_of[i] = nroots;
            roots[nroots++] = gr.grad[c.in[i].node];
        }
    if (op_ref_run(g, &env, roots, (uint32_t)nroots, vals) != LOOM_OK)
        goto done;

    for (size_t i = 0; i < ncase; i++) {
        if (!c.in[i].diff)
            continue;
        const double *an = root_of[i] ? vals[root_of[i]] : NULL; /* none: zero */
        double *x = c.in[i].data;
        for (int64_t j = 0; j < c.in[i].numel; j++) {
            double keep = x[j], lp, lm;
            x[j] = keep + c.eps;
            loom_code rc = eval_loss(g, &env, loss, &lp);
            x[j] = keep - c.eps;
            if (rc == LOOM_OK)
                rc = eval_loss(g, &env, loss, &lm);
            x[j] = keep;
            if (rc != LOOM_OK)
                goto done;
            double num = (lp - lm) / (2 * c.eps), a = an ? an[j] : 0.0;
            double diff = fabs(a - num), scale = fmax(fabs(a), fabs(num));
            if (!(diff <= st->max_abs))
                st->max_abs = diff; /* NaN sticks */
            if (scale > 1e-3 && !(diff / scale <= st->max_rel))
                st->max_rel = diff / scale;
            st->checked++;
        }
    }

done:
    for (size_t k = 0; vals && k < nroots; k++)
        lm_free_aligned(&g->mem, vals[k]);
    lm_free(&g->mem, vals, (ncase + 1) * sizeof *vals);
    lm_free(&g->mem, roots, (ncase + 1) * sizeof *roots);
    lm_free(&g->mem, root_of, ncase * sizeof *root_of);
    lm_free(&g->mem, inputs, c.nin * sizeof *inputs);
    lm_free(&g->mem, wants, nwants);
    ad_grads_free(g, &gr);
    op_check_free(&c);
    ir_graph_free(g);
    return err->code;
}
