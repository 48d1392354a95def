/*
 * run.c — running the tape with the reference executor, reading values,
 * and the autograd entry points.
 */
#include <math.h>

#include "fe.h"

/* The random ops' key for this run: seed and run counter. */
static loom_code fill_rng_key(loom_ctx *ctx)
{
    if (!ctx->rng_key)
        return LOOM_OK;
    fe_input *in = &ctx->inputs[ctx->rng_slot];
    if (!in->data && !(in->data = lm_alloc_aligned(&ctx->mem, 16)))
        return ctx->err.code;
    in->bytes = 16;
    int32_t *k = in->data;
    k[0] = (int32_t)(uint32_t)ctx->seed;
    k[1] = (int32_t)(uint32_t)(ctx->seed >> 32);
    k[2] = (int32_t)(uint32_t)ctx->runs;
    k[3] = (int32_t)(uint32_t)(ctx->runs >> 32);
    return LOOM_OK;
}

loom_code fe_roots(loom_ctx *ctx, int n, const loom_t *outputs, bool commit, const char *fn, ir_id *roots)
{
    for (int i = 0; i < n; i++)
        if (!(roots[i] = fe_node(ctx, outputs[i], fn, i + 1)))
            return ctx->err.code;
    if (commit && ctx->nassigns)
        memcpy(roots + n, ctx->assigns, ctx->nassigns * sizeof *roots);
    return LOOM_OK;
}

static loom_code run(loom_ctx *ctx, int n, const loom_t *outputs, bool commit, const char *fn)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return ctx->err.code;
    if (n < 0 || (n > 0 && !outputs))
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "%d outputs given without a list", n);
    size_t nroots = (size_t)n + (commit ? ctx->nassigns : 0);
    ir_id *roots = lm_alloc(&ctx->mem, nroots * sizeof *roots);
    void **vals = roots ? lm_zalloc(&ctx->mem, nroots * sizeof *vals) : NULL;
    void **inputs = vals ? lm_zalloc(&ctx->mem, (ctx->ninputs + 1) * sizeof *inputs) : NULL;
    const char **names = inputs ? lm_zalloc(&ctx->mem, (ctx->ninputs + 1) * sizeof *names) : NULL;
    void **params = names ? lm_zalloc(&ctx->mem, (ctx->nparams + 1) * sizeof *params) : NULL;
    void **table = NULL; /* the outputs' values by node id, replacing ctx->vals */
    size_t table_n = 0;
    loom_code c = params ? LOOM_OK : ctx->err.code;
    ir_id top = 0;
    if (c == LOOM_OK)
        c = fe_roots(ctx, n, outputs, commit, fn, roots);
    for (int i = 0; i < n && c == LOOM_OK; i++)
        top = LM_MAX(top, roots[i]);
    if (c == LOOM_OK) {
        table_n = (size_t)top + 1;
        table = lm_zalloc(&ctx->mem, table_n * sizeof *table);
        if (!table)
            c = ctx->err.code;
    }
    if (c == LOOM_OK)
        c = fill_rng_key(ctx);
    if (c == LOOM_OK) {
        for (size_t i = 0; i < ctx->ninputs; i++) {
            inputs[i] = ctx->inputs[i].data;
            names[i] = ctx->inputs[i].name;
        }
        for (size_t i = 0; i < ctx->nparams; i++)
            params[i] = ctx->params[i].data;
        fe_anomaly_ud check = { ctx, fn };
        op_env env = { .inputs = inputs, .input_names = names, .ninputs = (uint32_t)ctx->ninputs,
                       .params = params, .nparams = (uint32_t)ctx->nparams,
                       .check = ctx->anomaly ? fe_anomaly_node : NULL, .check_ud = &check };
        /* nothing after a successful run can fail: it has committed
         * the assignments */
        fe_values_clear(ctx);
        if (ctx->backend == LOOM_BACKEND_JIT)
            c = fe_run_jit(ctx, roots, (uint32_t)n, (uint32_t)nroots, vals, fn);
        else
            c = op_ref_run(ctx->g, &env, roots, (uint32_t)nroots, vals);
    }
    if (c == LOOM_OK) {
        bool owned = ctx->backend != LOOM_BACKEND_JIT;
        ctx->runs++;
        ctx->stats.runs++;
        for (int i = 0; i < n; i++) {
            if (table[roots[i]]) {
                if (owned)
                    lm_free_aligned(&ctx->mem, vals[i]); /* the same output twice */
            } else {
                table[roots[i]] = vals[i];
            }
            vals[i] = NULL;
        }
        ctx->vals = table;
        ctx->vals_n = table_n;
        ctx->vals_owned = owned;
        table = NULL;
    }
    for (size_t i = 0; vals && i < nroots && ctx->backend != LOOM_BACKEND_JIT; i++)
        lm_free_aligned(&ctx->mem, vals[i]);
    lm_free(&ctx->mem, table, table_n * sizeof *table);
    lm_free(&ctx->mem, params, (ctx->nparams + 1) * sizeof *params);
    lm_free(&ctx->mem, names, (ctx->ninputs + 1) * sizeof *names);
    lm_free(&ctx->mem, inputs, (ctx->ninputs + 1) * sizeof *inputs);
    lm_free(&ctx->mem, vals, nroots * sizeof *vals);
    lm_free(&ctx->mem, roots, nroots * sizeof *roots);
    fe_name_error(ctx, fn); /* the executors' "gather: index 7 ...", "run: input ..." */
    return c;
}

loom_code loom_run(loom_ctx *ctx, int n, const loom_t *outputs)
{
    return run(ctx, n, outputs, true, __func__);
}

loom_code loom_eval(loom_ctx *ctx, int n, const loom_t *outputs)
{
    return run(ctx, n, outputs, false, __func__);
}

/* The value of t after a run (or a parameter's), with its size. */
static const void *value_of(loom_ctx *ctx, loom_t t, size_t *bytes, loom_dtype *dt, const char *fn)
{
    if (t.tag & FE_PARAM_TAG) {
        long p = fe_param_index(ctx, t, fn);
        if (p < 0)
            return NULL;
        *bytes = ctx->params[p].bytes;
        *dt = ctx->params[p].dtype;
        return ctx->params[p].data;
    }
    if (!fe_node_as(ctx, t, fn, "the handle"))
        return NULL;
    if (t.id >= ctx->vals_n || !ctx->vals[t.id]) {
        fe_fail(ctx, LOOM_ERR_STATE, fn, "node %%%u was not an output of the last run", t.id);
        return NULL;
    }
    *bytes = (size_t)ir_numel(ctx->g, t.id) * loom_dtype_size(ir_dtype(ctx->g, t.id));
    *dt = ir_dtype(ctx->g, t.id);
    return ctx->vals[t.id];
}

const void *loom_data(loom_ctx *ctx, loom_t t)
{
    size_t bytes;
    loom_dtype dt;
    return ctx ? value_of(ctx, t, &bytes, &dt, __func__) : NULL;
}

loom_code loom_read(loom_ctx *ctx, loom_t t, void *dst, size_t bytes)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    size_t have;
    loom_dtype dt;
    const void *v = value_of(ctx, t, &have, &dt, __func__);
    if (!v)
        return ctx->err.code;
    if (!dst || bytes != have)
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "the value has %zu bytes, %zu asked for", have,
                       dst ? bytes : 0);
    memcpy(dst, v, bytes);
    return LOOM_OK;
}

double loom_item(loom_ctx *ctx, loom_t t)
{
    if (!ctx)
        return NAN;
    size_t bytes;
    loom_dtype dt;
    const void *v = value_of(ctx, t, &bytes, &dt, __func__);
    if (!v)
        return NAN;
    if (bytes != loom_dtype_size(dt)) {
        fe_fail(ctx, LOOM_ERR_SHAPE, __func__, "the value has %zu elements, not one",
                bytes / loom_dtype_size(dt));
        return NAN;
    }
    return op_load(v, dt, 0);
}

/* ------------------------------------------------------------------ */
/* Autograd                                                           */
/* ------------------------------------------------------------------ */

loom_code loom_backward(loom_ctx *ctx, loom_t loss)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return ctx->err.code;
    ir_graph *g = ctx->g;
    ir_id y = fe_node(ctx, loss, __func__, 1);
    if (!y)
        return ctx->err.code;
    char sh[160];
    if (ir_numel(g, y) != 1 || ir_dtype(g, y) == LOOM_I32)
        return fe_fail(ctx, ir_numel(g, y) != 1 ? LOOM_ERR_SHAPE : LOOM_ERR_DTYPE, __func__,
                       "the loss must be one float element, not %s",
                       loom_shape_str(ir_shapev(g, y), ir_dtype(g, y), sh, sizeof sh));
    size_t nw = (size_t)y + 1;
    uint8_t *wants = lm_zalloc(&ctx->mem, nw);
    if (!wants)
        return ctx->err.code;
    for (ir_id n = 1; n <= y; n++)
        if (ir_op(g, n) == OP_PARAM && ctx->params[ir_attrs(g, n)[0]].trainable)
            wants[n] = 1;
    ad_grads_free(g, &ctx->grads);
    loom_code c = ad_backward_ex(g, 1, &y, NULL, wants, &(ad_options){ .checkpoint_every = ctx->checkpoint_every },
                                 &ctx->grads);
    lm_free(&ctx->mem, wants, nw);
    return c;
}

loom_t loom_grad(loom_ctx *ctx, loom_t x)
{
    if (!ctx || loom_failed(ctx))
        return LOOM_NULL;
    ir_id n = fe_node(ctx, x, __func__, 1);
    if (!n || n >= ctx->grads.n)
        return LOOM_NULL;
    return fe_handle(ctx, ctx->grads.grad[n]);
}

loom_code loom_vjp(loom_ctx *ctx, int ny, const loom_t *ys, const loom_t *dys, int nx,
                   const loom_t *xs, loom_t *dxs)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return ctx->err.code;
    if (ny < 1 || nx < 0 || !ys || (nx > 0 && (!xs || !dxs)))
        return fe_fail(ctx, LOOM_ERR_ARG, __func__,
                       "needs outputs, inputs and room for gradients (%d outputs%s, %d inputs%s%s)", ny,
                       ys ? "" : " without a list", nx, nx > 0 && !xs ? " without a list" : "",
                       nx > 0 && !dxs ? ", no room for their gradients" : "");
    for (int i = 0; i < nx; i++)
        dxs[i] = LOOM_NULL;
    ir_id *yn = lm_alloc(&ctx->mem, 2 * (size_t)ny * sizeof *yn);
    if (!yn)
        return ctx->err.code;
    ir_id *dn = yn + ny, top = 0;
    loom_code c = LOOM_OK;
    for (int i = 0; i < ny && c == LOOM_OK; i++) {
        char what[32];
        snprintf(what, sizeof what, "ys[%d]", i);
        yn[i] = fe_node_as(ctx, ys[i], __func__, what);
        snprintf(what, sizeof what, "dys[%d]", i);
        dn[i] = yn[i] && dys && !loom_is_null(dys[i]) ? fe_node_as(ctx, dys[i], __func__, what) : 0;
        if (!yn[i] || (dys && !loom_is_null(dys[i]) && !dn[i]))
            c = ctx->err.code;
        else if (dn[i] && (ir_dtype(ctx->g, dn[i]) != ir_dtype(ctx->g, yn[i]) ||
                           !loom_shape_equal(ir_shapev(ctx->g, dn[i]), ir_shapev(ctx->g, yn[i])))) {
            char a[160], b[160];
            c = fe_fail(ctx, ir_dtype(ctx->g, dn[i]) != ir_dtype(ctx->g, yn[i]) ? LOOM_ERR_DTYPE : LOOM_ERR_SHAPE,
                        __func__, "the seed dys[%d] %s does not match ys[%d] %s", i,
                        loom_shape_str(ir_shapev(ctx->g, dn[i]), ir_dtype(ctx->g, dn[i]), a, sizeof a), i,
                        loom_shape_str(ir_shapev(ctx->g, yn[i]), ir_dtype(ctx->g, yn[i]), b, sizeof b));
        }
        top = LM_MAX(top, yn[i]);
    }
    uint8_t *wants = c == LOOM_OK ? lm_zalloc(&ctx->mem, (size_t)top + 1) : NULL;
    ir_id *xn = wants ? lm_alloc(&ctx->mem, ((size_t)nx + 1) * sizeof *xn) : NULL;
    if (c == LOOM_OK && !xn)
        c = ctx->err.code;
    for (int i = 0; i < nx && c == LOOM_OK; i++) {
        char what[32];
        snprintf(what, sizeof what, "xs[%d]", i);
        if (!(xn[i] = fe_node_as(ctx, xs[i], __func__, what)))
            c = ctx->err.code;
        else if (xn[i] <= top)
            wants[xn[i]] = 1;
    }
    ad_grads gr = { 0 };
    if (c == LOOM_OK)
        c = ad_backward_ex(ctx->g, (uint32_t)ny, yn, dn, wants,
                           &(ad_options){ .checkpoint_every = ctx->checkpoint_every }, &gr);
    for (int i = 0; i < nx && c == LOOM_OK; i++)
        if (xn[i] < gr.n)
            dxs[i] = fe_handle(ctx, gr.grad[xn[i]]);
    ad_grads_free(ctx->g, &gr);
    lm_free(&ctx->mem, xn, ((size_t)nx + 1) * sizeof *xn);
    lm_free(&ctx->mem, wants, (size_t)top + 1);
    lm_free(&ctx->mem, yn, 2 * (size_t)ny * sizeof *yn);
    fe_name_error(ctx, __func__); /* autograd's "backward: output 1 is f32[3,2] ..." */
    return c;
}

loom_code loom_set_checkpoint_every(loom_ctx *ctx, int k)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (k < 0)
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "k is %d; it counts time steps (0: off)", k);
    ctx->checkpoint_every = k;
    return LOOM_OK;
}

int loom_get_checkpoint_every(const loom_ctx *ctx) { return ctx ? ctx->checkpoint_every : 0; }
