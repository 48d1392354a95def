/*
 * sources.c — what values come from: parameters and buffers (which
 * outlive tapes), inputs and their fed data, constants, iota, random.
 */
#include <stdio.h>

#include "fe.h"

#define FE_GUARD(ctx, ret)              \
    do {                                \
        if (!(ctx) || loom_failed(ctx)) \
            return ret;                 \
    } while (0)

/* ------------------------------------------------------------------ */
/* Parameters                                                         */
/* ------------------------------------------------------------------ */

static loom_t param_new(loom_ctx *ctx, const char *name, loom_dtype dt, loom_shape s, bool buffer,
                        const char *fn)
{
    FE_GUARD(ctx, LOOM_NULL);
    if (!fe_check_dtype(ctx, dt, fn) || !fe_check_shape(ctx, s, fn))
        return LOOM_NULL;
    char auto_name[32];
    if (!name) {
        /* the first free "param<k>" / "buffer<k>" from k = count */
        for (size_t k = ctx->nparams;; k++) {
            snprintf(auto_name, sizeof auto_name, "%s%zu", buffer ? "buffer" : "param", k);
            if (loom_is_null(loom_param_find(ctx, auto_name)))
                break;
        }
        name = auto_name;
    }
    if (!name[0] || strlen(name) > 255) {
        fe_fail(ctx, LOOM_ERR_ARG, fn, "a name must have 1 to 255 characters");
        return LOOM_NULL;
    }
    for (size_t i = 0; i < ctx->nparams; i++)
        if (strcmp(ctx->params[i].name, name) == 0) {
            fe_fail(ctx, LOOM_ERR_ARG, fn, "a parameter named \"%s\" exists already", name);
            return LOOM_NULL;
        }
    if (ctx->nparams >= UINT32_MAX / 2 ||
        !LM_GROW(&ctx->mem, ctx->params, ctx->params_cap, ctx->nparams + 1))
        return LOOM_NULL;
    fe_param p = {
        .dtype = dt,
        .shape = s,
        .bytes = (size_t)loom_shape_numel(s) * loom_dtype_size(dt),
        .trainable = !buffer,
        .buffer = buffer,
    };
    p.name = lm_strdup(&ctx->mem, name);
    p.data = p.name ? lm_zalloc_aligned(&ctx->mem, p.bytes) : NULL;
    if (!p.data) {
        if (p.name)
            lm_free(&ctx->mem, p.name, strlen(p.name) + 1);
        return LOOM_NULL;
    }
    ctx->params[ctx->nparams++] = p;
    return (loom_t){ .id = (uint32_t)ctx->nparams, .tag = FE_PARAM_TAG | ctx->serial };
}

loom_t loom_param(loom_ctx *ctx, const char *name, loom_dtype dt, loom_shape s)
{
    return param_new(ctx, name, dt, s, false, __func__);
}

loom_t loom_buffer(loom_ctx *ctx, const char *name, loom_dtype dt, loom_shape s)
{
    return param_new(ctx, name, dt, s, true, __func__);
}

static fe_param *param_of(loom_ctx *ctx, loom_t p, const char *fn)
{
    if (!ctx)
        return NULL;
    long i = fe_param_index(ctx, p, fn);
    return i < 0 ? NULL : &ctx->params[i];
}

loom_code loom_param_set_trainable(loom_ctx *ctx, loom_t p, bool trainable)
{
    fe_param *q = param_of(ctx, p, __func__);
    if (!q)
        return ctx ? ctx->err.code : LOOM_ERR_HANDLE;
    if (q->buffer && trainable)
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "\"%s\" is a buffer, not a parameter", q->name);
    q->trainable = trainable;
    return LOOM_OK;
}

bool loom_param_trainable(loom_ctx *ctx, loom_t p)
{
    fe_param *q = param_of(ctx, p, __func__);
    return q && q->trainable;
}

size_t loom_param_count(const loom_ctx *ctx) { return ctx ? ctx->nparams : 0; }

loom_t loom_param_at(loom_ctx *ctx, size_t i)
{
    if (!ctx || i >= ctx->nparams)
        return LOOM_NULL;
    return (loom_t){ .id = (uint32_t)(i + 1), .tag = FE_PARAM_TAG | ctx->serial };
}

loom_t loom_param_find(loom_ctx *ctx, const char *name)
{
    if (!ctx || !name)
        return LOOM_NULL;
    for (size_t i = 0; i < ctx->nparams; i++)
        if (strcmp(ctx->params[i].name, name) == 0)
            return loom_param_at(ctx, i);
    return LOOM_NULL;
}

const char *loom_param_name(loom_ctx *ctx, loom_t p)
{
    fe_param *q = param_of(ctx, p, __func__);
    return q ? q->name : NULL;
}

bool loom_is_param(loom_ctx *ctx, loom_t t)
{
    return ctx && (t.tag & FE_PARAM_TAG) && (t.tag & ~FE_PARAM_TAG) == ctx->serial && t.id > 0 &&
           t.id <= ctx->nparams;
}

void *loom_param_data(loom_ctx *ctx, loom_t p)
{
    fe_param *q = param_of(ctx, p, __func__);
    return q ? q->data : NULL;
}

loom_code loom_param_set(loom_ctx *ctx, loom_t p, const void *data, size_t bytes)
{
    fe_param *q = param_of(ctx, p, __func__);
    if (!q)
        return ctx ? ctx->err.code : LOOM_ERR_HANDLE;
    if (!data || bytes != q->bytes)
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "\"%s\" holds %zu bytes, %zu given", q->name,
                       q->bytes, data ? bytes : 0);
    memcpy(q->data, data, bytes);
    return LOOM_OK;
}

static loom_code param_fill(loom_ctx *ctx, loom_t p, int kind, double a, double b, const char *fn)
{
    fe_param *q = param_of(ctx, p, fn);
    if (!q)
        return ctx ? ctx->err.code : LOOM_ERR_HANDLE;
    if (!(a == a) || !(b == b) || (kind == 0 && !(a <= b)) || (kind == 1 && !(b >= 0)))
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "bad distribution parameters (%g, %g)", a, b);
    int64_t n = loom_shape_numel(q->shape);
    for (int64_t i = 0; i < n; i++) {
        double v = kind == 0   ? a + (b - a) * lm_rng_uniform(&ctx->host_rng)
                   : kind == 1 ? a + b * lm_rng_normal(&ctx->host_rng)
                               : a;
        op_store(q->data, q->dtype, i, v);
    }
    return LOOM_OK;
}

loom_code loom_param_init_uniform(loom_ctx *ctx, loom_t p, double lo, double hi)
{
    return param_fill(ctx, p, 0, lo, hi, __func__);
}

loom_code loom_param_init_normal(loom_ctx *ctx, loom_t p, double mean, double std)
{
    return param_fill(ctx, p, 1, mean, std, __func__);
}

loom_code loom_param_init_const(loom_ctx *ctx, loom_t p, double value)
{
    return param_fill(ctx, p, 2, value, 0, __func__);
}

/* ------------------------------------------------------------------ */
/* Inputs                                                             */
/* ------------------------------------------------------------------ */

static ir_id input_new(loom_ctx *ctx, const char *name, loom_dtype dt, loom_shape s, const char *fn)
{
    if (!fe_check_dtype(ctx, dt, fn) || !fe_check_shape(ctx, s, fn))
        return 0;
    if (!LM_GROW(&ctx->mem, ctx->inputs, ctx->inputs_cap, ctx->ninputs + 1))
        return 0;
    char *copy = name ? lm_strdup(&ctx->mem, name) : NULL;
    if (name && !copy)
        return 0;
    uint32_t slot = (uint32_t)ctx->ninputs;
    ir_id n = op_input(ctx->g, dt, s, slot);
    if (!n) {
        if (copy)
            lm_free(&ctx->mem, copy, strlen(copy) + 1);
        return 0;
    }
    ctx->inputs[ctx->ninputs++] = (fe_input){ .name = copy, .node = n };
    return n;
}

loom_t loom_input(loom_ctx *ctx, const char *name, loom_dtype dt, loom_shape s)
{
    FE_GUARD(ctx, LOOM_NULL);
    return fe_handle(ctx, input_new(ctx, name, dt, s, __func__));
}

static fe_input *input_of(loom_ctx *ctx, ir_id n)
{
    if (ir_op(ctx->g, n) != OP_INPUT)
        return NULL;
    uint32_t slot = (uint32_t)ir_attrs(ctx->g, n)[0];
    return slot < ctx->ninputs ? &ctx->inputs[slot] : NULL;
}

static loom_code feed(loom_ctx *ctx, ir_id n, const void *data, size_t bytes, const char *fn)
{
    fe_input *in = input_of(ctx, n);
    char sh[160];
    loom_shape_str(ir_shapev(ctx->g, n), ir_dtype(ctx->g, n), sh, sizeof sh);
    if (!in && ir_op(ctx->g, n) == OP_PARAM)
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "\"%s\" is a parameter, not an input (loom_param_set sets it)",
                       ctx->params[ir_attrs(ctx->g, n)[0]].name);
    if (!in)
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "node %%%u (%s %s) is not an input", n, op_get(ir_op(ctx->g, n))->name, sh);
    size_t want = (size_t)ir_numel(ctx->g, n) * loom_dtype_size(ir_dtype(ctx->g, n));
    if (bytes != want || (!data && want))
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "input %s%s%s%s = %zu bytes, %zu given%s", in->name ? "\"" : "",
                       in->name ? in->name : "", in->name ? "\" is " : "", sh, want, data ? bytes : 0,
                       data ? "" : " (NULL data)");
    if (!in->data && !(in->data = lm_alloc_aligned(&ctx->mem, want)))
        return ctx->err.code;
    in->bytes = want;
    if (want)
        memcpy(in->data, data, want);
    return LOOM_OK;
}

loom_code loom_feed(loom_ctx *ctx, loom_t input, const void *data, size_t bytes)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return ctx->err.code;
    ir_id n = fe_node(ctx, input, __func__, 1);
    return n ? feed(ctx, n, data, bytes, __func__) : ctx->err.code;
}

loom_t loom_tensor(loom_ctx *ctx, loom_dtype dt, loom_shape s, const void *data)
{
    FE_GUARD(ctx, LOOM_NULL);
    ir_id n = input_new(ctx, NULL, dt, s, __func__);
    if (!n)
        return LOOM_NULL;
    size_t bytes = (size_t)loom_shape_numel(s) * loom_dtype_size(dt);
    return feed(ctx, n, data, bytes, __func__) == LOOM_OK ? fe_handle(ctx, n) : LOOM_NULL;
}

/* ------------------------------------------------------------------ */
/* Constants and generated values                                     */
/* ------------------------------------------------------------------ */

static loom_t full(loom_ctx *ctx, loom_dtype dt, loom_shape s, double value, const char *fn)
{
    FE_GUARD(ctx, LOOM_NULL);
    if (!fe_check_dtype(ctx, dt, fn) || !fe_check_shape(ctx, s, fn))
        return LOOM_NULL;
    return fe_handle(ctx, op_const(ctx->g, dt, s, value));
}

loom_t loom_full(loom_ctx *ctx, loom_dtype dt, loom_shape s, double value)
{
    return full(ctx, dt, s, value, __func__);
}

loom_t loom_scalar(loom_ctx *ctx, loom_dtype dt, double value) { return full(ctx, dt, LOOM_SCALAR, value, __func__); }

loom_t loom_iota(loom_ctx *ctx, loom_dtype dt, loom_shape s, int axis)
{
    FE_GUARD(ctx, LOOM_NULL);
    if (!fe_check_dtype(ctx, dt, __func__) || !fe_check_shape(ctx, s, __func__))
        return LOOM_NULL;
    int a = fe_axis(ctx, axis, s, dt, __func__);
    return a < 0 ? LOOM_NULL : fe_handle(ctx, op_iota(ctx->g, dt, s, a));
}

static loom_t random_new(loom_ctx *ctx, loom_dtype dt, loom_shape s, int kind, double p, const char *fn)
{
    FE_GUARD(ctx, LOOM_NULL);
    if (!fe_check_dtype(ctx, dt, fn) || !fe_check_shape(ctx, s, fn))
        return LOOM_NULL;
    if (dt == LOOM_I32) {
        fe_fail(ctx, LOOM_ERR_DTYPE, fn, "random values are f32 or f64");
        return LOOM_NULL;
    }
    if (!(p >= 0 && p <= 1)) {
        fe_fail(ctx, LOOM_ERR_ARG, fn, "probability %g is not in [0, 1]", p);
        return LOOM_NULL;
    }
    if (!ctx->rng_key) {
        /* the key is an input the run fills from seed and run counter;
         * recorded outside any step so every step shares it */
        int32_t saved = ctx->g->cur_step;
        ctx->g->cur_step = -1;
        ctx->rng_key = input_new(ctx, "rng_key", LOOM_I32, LOOM_SHAPE(4), fn);
        ctx->g->cur_step = saved;
        if (!ctx->rng_key)
            return LOOM_NULL;
        ctx->rng_slot = (uint32_t)ctx->ninputs - 1;
    }
    return fe_handle(ctx, op_random(ctx->g, dt, s, ctx->rng_key, kind, ctx->nstreams++, p));
}

loom_t loom_rand_uniform(loom_ctx *ctx, loom_dtype dt, loom_shape s)
{
    return random_new(ctx, dt, s, RANDOM_UNIFORM, 0, __func__);
}

loom_t loom_rand_normal(loom_ctx *ctx, loom_dtype dt, loom_shape s)
{
    return random_new(ctx, dt, s, RANDOM_NORMAL, 0, __func__);
}

loom_t loom_rand_bernoulli(loom_ctx *ctx, loom_dtype dt, loom_shape s, double p)
{
    return random_new(ctx, dt, s, RANDOM_BERNOULLI, p, __func__);
}
