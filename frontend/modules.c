/*
 * modules.c — the building blocks a model is written with, made only of
 * public ops: Linear, Embedding, LayerNorm, dropout, the losses, and the
 * fine-tuning helpers (freezing by name, low-rank adapters). Parameters are
 * named and laid out like PyTorch's and initialised like PyTorch's
 * defaults, so a PyTorch state dict loads as it is.
 */
#include <math.h>
#include <stdio.h>

#include "fe.h"

/* "<prefix>.<name>", or just name without a prefix. */
static const char *join_name(char *buf, size_t size, const char *prefix, const char *name)
{
    if (prefix && prefix[0])
        snprintf(buf, size, "%s.%s", prefix, name);
    else
        snprintf(buf, size, "%s", name);
    return buf;
}

/* The checks every module's init shares: a context without an error, a
 * module to fill, float weights. */
static loom_code init_args(loom_ctx *ctx, const void *m, loom_dtype dt, const char *fn)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return ctx->err.code;
    if (!m)
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "no module (NULL) to initialise");
    if (!fe_check_dtype(ctx, dt, fn))
        return ctx->err.code;
    if (dt == LOOM_I32)
        return fe_fail(ctx, LOOM_ERR_DTYPE, fn, "weights are f32 or f64, not i32");
    return LOOM_OK;
}

/* What an init returns: the error of a parameter it made (a name taken)
 * named as the init's. */
static loom_code init_done(loom_ctx *ctx, const char *fn)
{
    fe_name_error(ctx, fn);
    return ctx->err.code;
}

/* A parameter initialised U(-bound, bound). */
static loom_t uniform_param(loom_ctx *ctx, const char *prefix, const char *name, loom_dtype dt, loom_shape s,
                            double bound)
{
    char full[320];
    loom_t p = loom_param(ctx, join_name(full, sizeof full, prefix, name), dt, s);
    if (!loom_is_null(p) && bound > 0)
        loom_param_init_uniform(ctx, p, -bound, bound);
    return p;
}

/* ------------------------------------------------------------------ */
/* Linear, Embedding, LayerNorm, dropout                              */
/* ------------------------------------------------------------------ */

loom_code loom_linear_init(loom_ctx *ctx, loom_linear *m, const char *prefix, int64_t in, int64_t out, bool bias,
                           loom_dtype dt)
{
    loom_code c = init_args(ctx, m, dt, __func__);
    if (c != LOOM_OK)
        return c;
    *m = (loom_linear){ LOOM_NULL, LOOM_NULL };
    if (in <= 0 || out <= 0)
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "sizes %lld -> %lld must be positive", (long long)in,
                       (long long)out);
    /* torch.nn.Linear: kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), bias alike */
    double bound = 1.0 / sqrt((double)in);
    m->weight = uniform_param(ctx, prefix, "weight", dt, LOOM_SHAPE(out, in), bound);
    if (bias)
        m->bias = uniform_param(ctx, prefix, "bias", dt, LOOM_SHAPE(out), bound);
    return init_done(ctx, __func__);
}

loom_t loom_linear_forward(loom_ctx *ctx, const loom_linear *m, loom_t x)
{
    if (!ctx || loom_failed(ctx))
        return LOOM_NULL;
    if (!m) {
        fe_fail(ctx, LOOM_ERR_ARG, __func__, "no module");
        return LOOM_NULL;
    }
    bool scoped = fe_scope_of(ctx, m->weight, NULL);
    loom_t y = loom_matmul_t(ctx, x, loom_weight(ctx, m->weight), false, true);
    y = loom_is_null(m->bias) ? y : loom_add(ctx, y, m->bias);
    if (scoped)
        loom_scope_end(ctx);
    return fe_named(ctx, __func__, y);
}

loom_code loom_embedding_init(loom_ctx *ctx, loom_embedding *m, const char *prefix, int64_t num, int64_t dim,
                              loom_dtype dt)
{
    loom_code c = init_args(ctx, m, dt, __func__);
    if (c != LOOM_OK)
        return c;
    if (num <= 0 || dim <= 0)
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "sizes %lld x %lld must be positive", (long long)num,
                       (long long)dim);
    char full[320];
    m->weight = loom_param(ctx, join_name(full, sizeof full, prefix, "weight"), dt, LOOM_SHAPE(num, dim));
    if (!loom_is_null(m->weight))
        loom_param_init_normal(ctx, m->weight, 0, 1); /* torch.nn.Embedding: N(0, 1) */
    return init_done(ctx, __func__);
}

loom_t loom_embedding_forward(loom_ctx *ctx, const loom_embedding *m, loom_t ids)
{
    if (!ctx || loom_failed(ctx))
        return LOOM_NULL;
    if (!m) {
        fe_fail(ctx, LOOM_ERR_ARG, __func__, "no module");
        return LOOM_NULL;
    }
    bool scoped = fe_scope_of(ctx, m->weight, NULL);
    loom_t y = loom_gather(ctx, loom_weight(ctx, m->weight), ids, 0);
    if (scoped)
        loom_scope_end(ctx);
    return fe_named(ctx, __func__, y);
}

loom_code loom_layernorm_init(loom_ctx *ctx, loom_layernorm *m, const char *prefix, int64_t dim, double eps,
                              loom_dtype dt)
{
    loom_code c = init_args(ctx, m, dt, __func__);
    if (c != LOOM_OK)
        return c;
    if (dim <= 0 || !(eps >= 0))
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "dim %lld and eps %g must be positive", (long long)dim, eps);
    char full[320];
    m->weight = loom_param(ctx, join_name(full, sizeof full, prefix, "weight"), dt, LOOM_SHAPE(dim));
    m->bias = loom_param(ctx, join_name(full, sizeof full, prefix, "bias"), dt, LOOM_SHAPE(dim));
    m->eps = eps > 0 ? eps : 1e-5;
    if (!loom_is_null(m->weight))
        loom_param_init_const(ctx, m->weight, 1.0);
    return init_done(ctx, __func__);
}

static loom_t layer_norm(loom_ctx *ctx, loom_t x, loom_t weight, loom_t bias, double eps)
{
    int last = -1;
    loom_t mean = loom_mean(ctx, x, 1, &last, true);
    loom_t d = loom_sub(ctx, x, mean);
    loom_t var = loom_mean(ctx, loom_mul(ctx, d, d), 1, &last, true); /* biased, as PyTorch */
    loom_t y = loom_mul(ctx, d, loom_recip(ctx, loom_sqrt(ctx, loom_adds(ctx, var, eps))));
    if (!loom_is_null(weight))
        y = loom_mul(ctx, y, weight);
    if (!loom_is_null(bias))
        y = loom_add(ctx, y, bias);
    return y;
}

loom_t loom_layer_norm(loom_ctx *ctx, loom_t x, loom_t weight, loom_t bias, double eps)
{
    if (!ctx || loom_failed(ctx))
        return LOOM_NULL;
    if (!(eps >= 0)) {
        fe_fail(ctx, LOOM_ERR_ARG, __func__, "eps %g must be >= 0", eps);
        return LOOM_NULL;
    }
    return fe_named(ctx, __func__, layer_norm(ctx, x, weight, bias, eps));
}

loom_t loom_layernorm_forward(loom_ctx *ctx, const loom_layernorm *m, loom_t x)
{
    if (!ctx || loom_failed(ctx))
        return LOOM_NULL;
    if (!m) {
        fe_fail(ctx, LOOM_ERR_ARG, __func__, "no module");
        return LOOM_NULL;
    }
    bool scoped = fe_scope_of(ctx, m->weight, NULL);
    loom_t y = layer_norm(ctx, x, loom_weight(ctx, m->weight), loom_weight(ctx, m->bias), m->eps);
    if (scoped)
        loom_scope_end(ctx);
    return fe_named(ctx, __func__, y);
}

loom_t loom_dropout(loom_ctx *ctx, loom_t x, double p, bool training)
{
    if (!ctx || loom_failed(ctx))
        return LOOM_NULL;
    if (!(p >= 0 && p <= 1)) {
        fe_fail(ctx, LOOM_ERR_ARG, __func__, "probability %g is not in [0, 1]", p);
        return LOOM_NULL;
    }
    /* the identity too checks its operand: a bad x fails here, not later */
    ir_id n = fe_node(ctx, x, __func__, 1);
    if (!n)
        return LOOM_NULL;
    if (!training || p == 0)
        return x;
    loom_dtype dt = ir_dtype(ctx->g, n);
    if (dt == LOOM_I32) {
        char sh[160];
        fe_fail(ctx, LOOM_ERR_DTYPE, __func__, "takes f32 or f64 when training, got %s",
                loom_shape_str(ir_shapev(ctx->g, n), dt, sh, sizeof sh));
        return LOOM_NULL;
    }
    if (p == 1)
        return fe_named(ctx, __func__, loom_muls(ctx, x, 0.0));
    loom_t keep = loom_rand_bernoulli(ctx, dt, ir_shapev(ctx->g, n), 1.0 - p);
    return fe_named(ctx, __func__, loom_mul(ctx, x, loom_muls(ctx, keep, 1.0 / (1.0 - p))));
}

/* ------------------------------------------------------------------ */
/* Losses                                                             */
/* ------------------------------------------------------------------ */

/* Reduces per-example losses [N]: mean, sum or none. */
static loom_t reduce(loom_ctx *ctx, loom_t per, loom_reduction r)
{
    switch (r) {
    case LOOM_REDUCE_SUM: return loom_sum_all(ctx, per);
    case LOOM_REDUCE_NONE: return per;
    default: return loom_mean_all(ctx, per);
    }
}

static bool reduction_ok(loom_ctx *ctx, loom_reduction r, const char *fn)
{
    if ((unsigned)r > LOOM_REDUCE_NONE) {
        fe_fail(ctx, LOOM_ERR_ARG, fn, "unknown reduction %d", (int)r);
        return false;
    }
    return true;
}

static loom_t cross_entropy(loom_ctx *ctx, loom_t logits, loom_t labels, const loom_ce_options *o, const char *fn)
{
    if (!ctx || loom_failed(ctx))
        return LOOM_NULL;
    loom_ce_options opt = o ? *o : (loom_ce_options){ 0 };
    ir_id nl = fe_node(ctx, logits, fn, 1), ny = nl ? fe_node(ctx, labels, fn, 2) : 0;
    if (!ny || !reduction_ok(ctx, opt.reduction, fn))
        return LOOM_NULL;
    loom_shape ls = ir_shapev(ctx->g, nl), ys = ir_shapev(ctx->g, ny);
    loom_dtype dt = ir_dtype(ctx->g, nl), ydt = ir_dtype(ctx->g, ny);
    char a[160], b[160];
    bool dtypes_ok = ydt == LOOM_I32 && dt != LOOM_I32;
    if (!dtypes_ok || ls.rank != 2 || ys.rank != 1 || ys.d[0] != ls.d[0]) {
        fe_fail(ctx, dtypes_ok ? LOOM_ERR_SHAPE : LOOM_ERR_DTYPE, fn,
                "needs float logits [N, C] and i32 labels [N], got %s and %s", loom_shape_str(ls, dt, a, sizeof a),
                loom_shape_str(ys, ydt, b, sizeof b));
        return LOOM_NULL;
    }
    if (!(opt.label_smoothing >= 0 && opt.label_smoothing <= 1)) {
        fe_fail(ctx, LOOM_ERR_ARG, fn, "label smoothing %g is not in [0, 1]", opt.label_smoothing);
        return LOOM_NULL;
    }
    int64_t n = ls.d[0], classes = ls.d[1];
    loom_t lsm = loom_log_softmax(ctx, logits, 1);
    /* the label's log-probability through a one-hot mask (it fuses with
     * the log-softmax); an ignored label picks nothing */
    loom_t lab = loom_reshape(ctx, loom_cast(ctx, labels, dt), LOOM_SHAPE(n, 1));
    loom_t onehot = loom_eq(ctx, loom_iota(ctx, dt, ls, 1), lab);
    loom_t per = loom_neg(ctx, loom_sum(ctx, loom_mul(ctx, lsm, onehot), LOOM_AXES(1), false));
    /* A label outside [0, C) fails the run with LOOM_ERR_INDEX, as in
     * PyTorch, where the mask would silently pick nothing: the labels
     * (ignored ones as 0) look up C zeros, added to the losses, so the
     * lookup's index check runs wherever the loss is computed. */
    loom_t checked = labels;
    if (opt.use_ignore_index)
        checked = loom_where(ctx, loom_eq(ctx, labels, loom_scalar(ctx, LOOM_I32, opt.ignore_index)),
                             loom_scalar(ctx, LOOM_I32, 0), labels);
    /* its scope names it in the error: 'in scope "cross_entropy labels"' */
    bool scoped = ctx->nscope_open < 64 && loom_scope_begin(ctx, "cross_entropy labels") == LOOM_OK;
    per = loom_add(ctx, per, loom_gather(ctx, loom_full(ctx, dt, LOOM_SHAPE(classes), 0), checked, 0));
    if (scoped)
        loom_scope_end(ctx);
    if (opt.label_smoothing > 0) {
        /* PyTorch: (1 - e) nll + e * mean over classes of -log p */
        loom_t smooth = loom_muls(ctx, loom_sum(ctx, lsm, LOOM_AXES(1), false), -1.0 / (double)classes);
        per = loom_add(ctx, loom_muls(ctx, per, 1.0 - opt.label_smoothing), loom_muls(ctx, smooth, opt.label_smoothing));
    }
    if (!opt.use_ignore_index)
        return reduce(ctx, per, opt.reduction);
    loom_t valid = loom_ne(ctx, loom_cast(ctx, labels, dt), loom_scalar(ctx, dt, opt.ignore_index));
    per = loom_mul(ctx, per, valid);
    if (opt.reduction != LOOM_REDUCE_MEAN)
        return reduce(ctx, per, opt.reduction);
    /* the mean is over the labels that count (NaN when none does, as PyTorch) */
    return loom_div(ctx, loom_sum_all(ctx, per), loom_sum_all(ctx, valid));
}

loom_t loom_cross_entropy_ex(loom_ctx *ctx, loom_t logits, loom_t labels, const loom_ce_options *o)
{
    if (!ctx || loom_failed(ctx))
        return LOOM_NULL;
    return fe_named(ctx, __func__, cross_entropy(ctx, logits, labels, o, __func__));
}

loom_t loom_cross_entropy(loom_ctx *ctx, loom_t logits, loom_t labels)
{
    if (!ctx || loom_failed(ctx))
        return LOOM_NULL;
    return fe_named(ctx, __func__, cross_entropy(ctx, logits, labels, NULL, __func__));
}

loom_t loom_bce_with_logits(loom_ctx *ctx, loom_t logits, loom_t targets, loom_reduction r)
{
    if (!ctx || loom_failed(ctx) || !reduction_ok(ctx, r, __func__))
        return LOOM_NULL;
    /* max(x, 0) - x y + log1p(exp(-|x|)): no overflow for any x */
    loom_t x = logits;
    loom_t per = loom_add(ctx, loom_sub(ctx, loom_relu(ctx, x), loom_mul(ctx, x, targets)),
                          loom_log1p(ctx, loom_exp(ctx, loom_neg(ctx, loom_abs(ctx, x)))));
    return fe_named(ctx, __func__, reduce(ctx, per, r));
}

static loom_t mse(loom_ctx *ctx, loom_t pred, loom_t target, loom_reduction r, const char *fn)
{
    if (!ctx || loom_failed(ctx) || !reduction_ok(ctx, r, fn))
        return LOOM_NULL;
    loom_t d = loom_sub(ctx, pred, target);
    return fe_named(ctx, fn, reduce(ctx, loom_mul(ctx, d, d), r));
}

loom_t loom_mse_ex(loom_ctx *ctx, loom_t pred, loom_t target, loom_reduction r)
{
    return mse(ctx, pred, target, r, __func__);
}

loom_t loom_mse(loom_ctx *ctx, loom_t pred, loom_t target) { return mse(ctx, pred, target, LOOM_REDUCE_MEAN, __func__); }

/* ------------------------------------------------------------------ */
/* Fine-tuning                                                        */
/* ------------------------------------------------------------------ */

long loom_params_set_trainable(loom_ctx *ctx, const char *prefix, bool trainable)
{
    if (!ctx)
        return -1;
    if (!prefix) {
        fe_fail(ctx, LOOM_ERR_ARG, __func__, "no prefix (NULL; \"\" is every parameter)");
        return -1;
    }
    size_t len = strlen(prefix);
    long n = 0;
    for (size_t i = 0; i < ctx->nparams; i++) {
        fe_param *p = &ctx->params[i];
        if (p->buffer || strncmp(p->name, prefix, len) != 0)
            continue;
        p->trainable = trainable;
        n++;
    }
    return n;
}

loom_t loom_weight(loom_ctx *ctx, loom_t w)
{
    if (!ctx || loom_failed(ctx) || !loom_is_param(ctx, w))
        return w; /* any tensor: the builders report what is wrong with it */
    const fe_param *p = &ctx->params[w.id - 1];
    if (!p->lora_a)
        return w;
    loom_t a = loom_param_at(ctx, p->lora_a - 1), b = loom_param_at(ctx, p->lora_b - 1);
    return loom_add(ctx, w, loom_muls(ctx, loom_matmul(ctx, b, a), p->lora_scale));
}

bool loom_lora_attached(loom_ctx *ctx, loom_t w)
{
    return ctx && loom_is_param(ctx, w) && ctx->params[w.id - 1].lora_a != 0;
}

loom_code loom_lora_add(loom_ctx *ctx, loom_t w, int rank, double alpha)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return ctx->err.code;
    long pi = fe_param_index(ctx, w, __func__);
    if (pi < 0)
        return ctx->err.code;
    fe_param *p = &ctx->params[pi];
    if (p->buffer || p->shape.rank != 2 || p->dtype == LOOM_I32)
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "\"%s\" is not a 2-D float weight", p->name);
    if (p->lora_a)
        return fe_fail(ctx, LOOM_ERR_STATE, __func__, "\"%s\" has an adapter already", p->name);
    if (rank < 1 || rank > p->shape.d[0] || rank > p->shape.d[1] || !(alpha > 0))
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "rank %d and alpha %g do not fit \"%s\"", rank, alpha, p->name);
    int64_t out = p->shape.d[0], in = p->shape.d[1];
    loom_dtype dt = p->dtype;
    char name_a[320], name_b[320];
    snprintf(name_a, sizeof name_a, "%s.lora_A", p->name);
    snprintf(name_b, sizeof name_b, "%s.lora_B", p->name);
    /* both names first: B's taken must not leave an A behind */
    for (int k = 0; k < 2; k++)
        if (!loom_is_null(loom_param_find(ctx, k ? name_b : name_a)))
            return fe_fail(ctx, LOOM_ERR_ARG, __func__, "a parameter named \"%s\" exists already",
                           k ? name_b : name_a);
    loom_t a = loom_param(ctx, name_a, dt, LOOM_SHAPE(rank, in));
    loom_t b = loom_param(ctx, name_b, dt, LOOM_SHAPE(out, rank));
    if (loom_failed(ctx))
        return init_done(ctx, __func__);
    /* A as a Linear's weight (kaiming_uniform, a = sqrt(5)); B zero, so
     * the adapted model starts as the pretrained one */
    loom_param_init_uniform(ctx, a, -1.0 / sqrt((double)in), 1.0 / sqrt((double)in));
    p = &ctx->params[pi]; /* the array may have moved */
    p->lora_a = a.id;
    p->lora_b = b.id;
    p->lora_scale = alpha / rank;
    p->trainable = false;
    return LOOM_OK;
}

loom_code loom_lora_merge(loom_ctx *ctx, loom_t w)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return ctx->err.code;
    long pi = fe_param_index(ctx, w, __func__);
    if (pi < 0)
        return ctx->err.code;
    fe_param *p = &ctx->params[pi];
    if (!p->lora_a)
        return fe_fail(ctx, LOOM_ERR_STATE, __func__, "\"%s\" has no adapter", p->name);
    fe_param *a = &ctx->params[p->lora_a - 1], *b = &ctx->params[p->lora_b - 1];
    int64_t out = p->shape.d[0], in = p->shape.d[1], r = a->shape.d[0];
    /* w += scale * B A, accumulated in f64 */
    for (int64_t i = 0; i < out; i++)
        for (int64_t j = 0; j < in; j++) {
            double acc = 0;
            for (int64_t k = 0; k < r; k++)
                acc += op_load(b->data, b->dtype, i * r + k) * op_load(a->data, a->dtype, k * in + j);
            int64_t at = i * in + j;
            op_store(p->data, p->dtype, at, op_load(p->data, p->dtype, at) + p->lora_scale * acc);
        }
    a->trainable = b->trainable = false;
    p->lora_a = p->lora_b = 0;
    return LOOM_OK;
}
