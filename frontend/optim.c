/*
 * optim.c — the optimizers of loom.h: SGD (momentum, Nesterov), Adam,
 * AdamW and RMSprop (momentum), global gradient-norm clipping, and the
 * learning-rate schedules (constant, step, cosine, linear warm-up), each
 * matching torch.optim 1.13 (single-tensor path, foreach=False) and
 * torch.nn.utils.clip_grad_norm_ operation for operation.
 *
 * An optimizer runs nothing itself. loom_optimizer_attach() records on the
 * current tape, after the loss's backward, the clipping and every trainable
 * parameter's update as loom_assign()s of the new parameter and of its
 * state, so forward, backward and update compile into one plan;
 * loom_optimizer_attach_grads() records the same clipping and update from
 * gradients the caller gives (inputs fed with gradients computed
 * elsewhere, summed over micro-batches, or an AOT update entry's
 * arguments). What
 * changes from step to step (the learning rate, Adam's bias corrections)
 * is computed on the host in double and fed to scalar inputs by
 * loom_optimizer_step(): with constants instead, every step would be a new
 * graph and a new plan to compile.
 *
 * It is not a holder of state: moments and momentum live in context
 * buffers "optim.<param>.<state>", created by the first attach and found
 * again by name by later ones, so a checkpoint carries them and a program
 * may record a fresh tape every step or one tape for all steps. Nor is it
 * a parameter-group manager: one config covers every trainable parameter.
 * Built on the public API; from fe.h only fe_fail(), fe_node() and
 * fe_param_index() (checking the handles loom_optimizer_attach_grads is
 * given), the context's allocator, the tape's tag (is the attachment
 * current?) and a parameter's name, dtype, shape and buffer flag.
 */
#include <math.h>

#include "fe.h"

/* ------------------------------------------------------------------ */
/* The optimizer                                                      */
/* ------------------------------------------------------------------ */

/* The host scalars fed before every run, one input per dtype in use. */
typedef enum host_scalar {
    HS_LR,        /* lr of this step: SGD, RMSprop */
    HS_STEP_SIZE, /* lr / (1 - beta1^k), k = step + 1: Adam, AdamW */
    HS_BC2_SQRT,  /* sqrt(1 - beta2^k): Adam, AdamW */
    HS_DECAY,     /* 1 - lr * weight_decay: AdamW's decoupled decay */
    HS_COUNT
} host_scalar;

static const char *const hs_names[HS_COUNT] = {
    [HS_LR] = "lr",
    [HS_STEP_SIZE] = "step_size",
    [HS_BC2_SQRT] = "bias_correction2_sqrt",
    [HS_DECAY] = "decay",
};

struct loom_optimizer {
    loom_ctx *ctx;         /* must outlive every call but loom_optimizer_free */
    lm_mem mem;            /* ctx's allocator, so freeing needs no context */
    loom_optim_config cfg; /* torch's defaults filled in, checked */
    int64_t steps;         /* steps taken; the next one is step number `steps` */

    /* what the last attach recorded, valid while ctx is on that tape */
    uint32_t tape;                                 /* the tape's tag, 0: never attached */
    loom_t scalars[LOOM_DTYPE_COUNT][HS_COUNT];    /* inputs, null where unused */
    loom_t grad_norm;                              /* scalar, before clipping */
};

/* ------------------------------------------------------------------ */
/* Configuration                                                      */
/* ------------------------------------------------------------------ */

static const char *const kind_names[] = { "SGD", "Adam", "AdamW", "RMSprop" };

/* A real number (not NaN, not infinite) no smaller than zero. */
static bool nonneg(double v) { return v >= 0 && isfinite(v); }

/* Fills in torch.optim's defaults for zero fields and checks the rest the
 * way torch.optim and its schedulers do (plus a few loom adds: finite
 * values, alpha <= 1, a positive step_size / total_steps). Fields that do
 * not apply to the kind or schedule are ignored, as torch ignores the
 * arguments of other optimizers. The message names the field. */
static loom_code config_fill(loom_ctx *ctx, const loom_optim_config *in, loom_optim_config *c)
{
    static const char fn[] = "loom_optimizer_new";
    *c = *in;
    if ((unsigned)c->kind >= LM_ARRAY_LEN(kind_names))
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.kind %d is not a loom_opt_kind", (int)c->kind);
    const char *k = kind_names[c->kind];
    bool adam = c->kind == LOOM_OPT_ADAM || c->kind == LOOM_OPT_ADAMW;

    if (!nonneg(c->lr))
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.lr = %g: the learning rate must be >= 0", c->lr);
    if (c->lr == 0) {
        /* torch.optim.SGD's lr is a required argument: no default to take */
        if (c->kind == LOOM_OPT_SGD)
            return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.lr is 0: SGD has no default learning rate");
        c->lr = c->kind == LOOM_OPT_RMSPROP ? 1e-2 : 1e-3;
    }
    if (c->kind == LOOM_OPT_SGD || c->kind == LOOM_OPT_RMSPROP) {
        if (!nonneg(c->momentum))
            return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.momentum = %g must be >= 0 (%s)", c->momentum, k);
    }
    /* torch: "Nesterov momentum requires a momentum and zero dampening";
     * loom has no dampening (always 0), so only the momentum can be off */
    if (c->kind == LOOM_OPT_SGD && c->nesterov && !(c->momentum > 0))
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.nesterov needs config.momentum > 0 (it is %g)",
                       c->momentum);
    if (c->kind == LOOM_OPT_ADAMW) {
        /* decoupled decay: 0 is torch's default 0.01, negative is none */
        if (isnan(c->weight_decay) || isinf(c->weight_decay))
            return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.weight_decay = %g is not a number", c->weight_decay);
        c->weight_decay = c->weight_decay == 0 ? 0.01 : c->weight_decay < 0 ? 0 : c->weight_decay;
    } else if (!nonneg(c->weight_decay)) {
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.weight_decay = %g must be >= 0 (%s)", c->weight_decay,
                       k);
    }
    if (adam) {
        c->beta1 = c->beta1 == 0 ? 0.9 : c->beta1;
        c->beta2 = c->beta2 == 0 ? 0.999 : c->beta2;
        if (!(c->beta1 >= 0 && c->beta1 < 1))
            return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.beta1 = %g is not in [0, 1)", c->beta1);
        if (!(c->beta2 >= 0 && c->beta2 < 1))
            return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.beta2 = %g is not in [0, 1)", c->beta2);
    }
    if (c->kind == LOOM_OPT_RMSPROP) {
        c->alpha = c->alpha == 0 ? 0.99 : c->alpha;
        if (!(c->alpha >= 0 && c->alpha <= 1))
            return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.alpha = %g is not in [0, 1]", c->alpha);
    }
    if (adam || c->kind == LOOM_OPT_RMSPROP) {
        c->eps = c->eps == 0 ? 1e-8 : c->eps;
        if (!nonneg(c->eps))
            return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.eps = %g must be >= 0", c->eps);
    }
    if (!nonneg(c->clip_norm))
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.clip_norm = %g must be >= 0 (0: no clipping)",
                       c->clip_norm);
    if (c->warmup_steps < 0)
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.warmup_steps = %lld is negative",
                       (long long)c->warmup_steps);
    switch (c->schedule) {
    case LOOM_SCHEDULE_CONSTANT:
        break;
    case LOOM_SCHEDULE_STEP:
        if (c->step_size <= 0)
            return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.step_size = %lld: the step schedule needs it > 0",
                           (long long)c->step_size);
        c->gamma = c->gamma == 0 ? 0.1 : c->gamma; /* StepLR's default */
        if (!nonneg(c->gamma))
            return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.gamma = %g must be >= 0", c->gamma);
        break;
    case LOOM_SCHEDULE_COSINE:
        if (c->total_steps <= 0)
            return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.total_steps = %lld: the cosine schedule needs it > 0",
                           (long long)c->total_steps);
        if (!nonneg(c->min_lr))
            return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.min_lr = %g must be >= 0", c->min_lr);
        break;
    default:
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "config.schedule %d is not a loom_schedule", (int)c->schedule);
    }
    return LOOM_OK;
}

/* ------------------------------------------------------------------ */
/* Learning-rate schedule                                             */
/* ------------------------------------------------------------------ */

/*
 * Step numbering. Steps are counted from 0: step s is the (s+1)-th run of
 * loom_optimizer_step, and loom_optimizer_steps() == s just before it.
 * This is PyTorch's numbering when scheduler.step() follows every
 * optimizer.step(): the scheduler's last_epoch is s while step s runs.
 *
 *   warm-up, s < W:  lr * (s + 1) / W      LambdaLR(lambda s: (s + 1) / W)
 *   then t = s - W (the schedule starts after the warm-up, as
 *   SequentialLR([warm-up, schedule], milestones=[W]) runs it):
 *   constant:        lr
 *   step:            lr * gamma^floor(t / step_size)              StepLR
 *   cosine:          min_lr + (lr - min_lr) (1 + cos(pi t' / T)) / 2,
 *                    t' = min(t, T), T = total_steps     CosineAnnealingLR
 *
 * The cosine holds min_lr past T, where CosineAnnealingLR would turn back
 * up. Adam's bias corrections count steps from 1 (torch increments its
 * step before using it): k = s + 1.
 */
static double schedule_lr(const loom_optim_config *c, int64_t s)
{
    if (s < c->warmup_steps)
        return c->lr * ((double)(s + 1) / (double)c->warmup_steps);
    int64_t t = s - c->warmup_steps;
    switch (c->schedule) {
    case LOOM_SCHEDULE_STEP:
        return c->lr * pow(c->gamma, (double)(t / c->step_size));
    case LOOM_SCHEDULE_COSINE: {
        const double pi = 3.14159265358979323846;
        double tc = (double)(t < c->total_steps ? t : c->total_steps);
        /* CosineAnnealingLR's closed form, term for term */
        return c->min_lr + (c->lr - c->min_lr) * (1 + cos(pi * tc / (double)c->total_steps)) / 2;
    }
    default:
        return c->lr;
    }
}

/* The host scalars of step s. */
static void host_scalars(const loom_optim_config *c, int64_t s, double v[HS_COUNT])
{
    double lr = schedule_lr(c, s), k = (double)s + 1;
    v[HS_LR] = lr;
    /* as torch computes them in Python floats */
    v[HS_STEP_SIZE] = lr / (1 - pow(c->beta1, k));
    v[HS_BC2_SQRT] = sqrt(1 - pow(c->beta2, k));
    v[HS_DECAY] = 1 - lr * c->weight_decay;
}

/* ------------------------------------------------------------------ */
/* Life cycle and accessors                                           */
/* ------------------------------------------------------------------ */

loom_optimizer *loom_optimizer_new(loom_ctx *ctx, const loom_optim_config *cfg)
{
    if (!ctx || loom_failed(ctx))
        return NULL;
    if (!cfg) {
        fe_fail(ctx, LOOM_ERR_ARG, __func__, "no config (NULL)");
        return NULL;
    }
    loom_optim_config c;
    if (config_fill(ctx, cfg, &c) != LOOM_OK)
        return NULL;
    loom_optimizer *o = lm_zalloc(&ctx->mem, sizeof *o);
    if (!o)
        return NULL;
    o->ctx = ctx;
    /* the allocator only: lm_free records no error, and the context's
     * error record may be gone when the optimizer is freed */
    o->mem = (lm_mem){ .fn = ctx->mem.fn, .ud = ctx->mem.ud, .err = NULL };
    o->cfg = c;
    return o;
}

void loom_optimizer_free(loom_optimizer *o)
{
    if (!o)
        return;
    lm_mem mem = o->mem;
    lm_free(&mem, o, sizeof *o);
}

static bool attached(const loom_optimizer *o) { return o->tape != 0 && o->tape == o->ctx->tape_tag; }

loom_t loom_optimizer_grad_norm(const loom_optimizer *o)
{
    return o && attached(o) ? o->grad_norm : LOOM_NULL;
}

int64_t loom_optimizer_steps(const loom_optimizer *o) { return o ? o->steps : 0; }

loom_code loom_optimizer_set_steps(loom_optimizer *o, int64_t steps)
{
    if (!o)
        return LOOM_ERR_ARG;
    if (steps < 0)
        return fe_fail(o->ctx, LOOM_ERR_ARG, __func__, "steps = %lld is negative", (long long)steps);
    o->steps = steps;
    return LOOM_OK;
}

double loom_optimizer_lr(const loom_optimizer *o) { return o ? schedule_lr(&o->cfg, o->steps) : NAN; }

/* ------------------------------------------------------------------ */
/* Recording the update                                               */
/* ------------------------------------------------------------------ */

/* This tape's input for host scalar k in dtype dt, made on first use.
 * Inputs are made in the order the parameters ask for them, which is the
 * same on every tape recorded the same way, so the plan key is too. */
static loom_t scalar_in(loom_ctx *ctx, loom_optimizer *o, loom_dtype dt, host_scalar k)
{
    if (loom_is_null(o->scalars[dt][k])) {
        char name[64];
        snprintf(name, sizeof name, "optim.%s.%s", hs_names[k], loom_dtype_name(dt));
        o->scalars[dt][k] = loom_input(ctx, name, dt, LOOM_SCALAR);
    }
    return o->scalars[dt][k];
}

/* The state buffer "optim.<param>.<what>" of parameter p: found by name
 * (made by an earlier attach, or loaded from a checkpoint), else made
 * (zeros, as torch's state starts). Null with an error if the name is
 * taken by something of another kind, dtype or shape. */
static loom_t state_buffer(loom_ctx *ctx, loom_t p, const char *what)
{
    static const char fn[] = "loom_optimizer_attach";
    const char *pname = loom_param_name(ctx, p);
    char name[320];
    if (!pname)
        return LOOM_NULL;
    if ((size_t)snprintf(name, sizeof name, "optim.%s.%s", pname, what) >= sizeof name) {
        fe_fail(ctx, LOOM_ERR_ARG, fn, "the state name for \"%s\" is too long", pname);
        return LOOM_NULL;
    }
    loom_dtype dt = loom_dtype_of(ctx, p);
    loom_shape s = loom_shape_of(ctx, p);
    loom_t b = loom_param_find(ctx, name);
    if (loom_is_null(b))
        return loom_buffer(ctx, name, dt, s);
    long i = fe_param_index(ctx, b, fn);
    if (i < 0)
        return LOOM_NULL;
    const fe_param *q = &ctx->params[i];
    if (!q->buffer || q->dtype != dt || !loom_shape_equal(q->shape, s)) {
        char want[160], have[160];
        fe_fail(ctx, LOOM_ERR_STATE, fn, "\"%s\" exists as a %s %s, but the state of \"%s\" is a buffer %s", name,
                q->buffer ? "buffer" : "parameter", loom_shape_str(q->shape, q->dtype, have, sizeof have), pname,
                loom_shape_str(s, dt, want, sizeof want));
        return LOOM_NULL;
    }
    return b;
}

/* The new value of SGD's parameter p with gradient g (clipped):
 *   d = g + wd p;  buf = momentum buf + d;  d = nesterov ? d + momentum buf : buf
 *   p = p - lr d
 * torch starts the buffer as a copy of d; with loom's zero dampening the
 * zero buffer gives exactly that: 0 * momentum + d == d. */
static loom_t sgd_update(loom_ctx *ctx, loom_optimizer *o, loom_t p, loom_t g)
{
    const loom_optim_config *c = &o->cfg;
    loom_dtype dt = loom_dtype_of(ctx, p);
    loom_t d = c->weight_decay != 0 ? loom_add(ctx, g, loom_muls(ctx, p, c->weight_decay)) : g;
    if (c->momentum != 0) {
        loom_t buf = state_buffer(ctx, p, "momentum_buffer");
        loom_t nbuf = loom_add(ctx, loom_muls(ctx, buf, c->momentum), d);
        loom_assign(ctx, buf, nbuf);
        d = c->nesterov ? loom_add(ctx, d, loom_muls(ctx, nbuf, c->momentum)) : nbuf;
    }
    return loom_sub(ctx, p, loom_mul(ctx, d, scalar_in(ctx, o, dt, HS_LR)));
}

/* Adam and AdamW (torch's _single_tensor_adam / _adamw, amsgrad off):
 *   Adam:  g = g + wd p          AdamW: p = p (1 - lr wd)
 *   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g g
 *   p = p - step_size m / (sqrt(v) / sqrt(bc2) + eps)
 * with step_size = lr / bc1 and bc_i = 1 - beta_i^k fed from the host. */
static loom_t adam_update(loom_ctx *ctx, loom_optimizer *o, loom_t p, loom_t g)
{
    const loom_optim_config *c = &o->cfg;
    loom_dtype dt = loom_dtype_of(ctx, p);
    loom_t base = p;
    if (c->kind == LOOM_OPT_ADAMW) {
        if (c->weight_decay != 0)
            base = loom_mul(ctx, p, scalar_in(ctx, o, dt, HS_DECAY));
    } else if (c->weight_decay != 0) {
        g = loom_add(ctx, g, loom_muls(ctx, p, c->weight_decay));
    }
    loom_t m = state_buffer(ctx, p, "exp_avg");
    loom_t v = state_buffer(ctx, p, "exp_avg_sq");
    loom_t nm = loom_add(ctx, loom_muls(ctx, m, c->beta1), loom_muls(ctx, g, 1 - c->beta1));
    loom_t nv = loom_add(ctx, loom_muls(ctx, v, c->beta2), loom_mul(ctx, loom_muls(ctx, g, 1 - c->beta2), g));
    loom_assign(ctx, m, nm);
    loom_assign(ctx, v, nv);
    loom_t denom = loom_adds(ctx, loom_div(ctx, loom_sqrt(ctx, nv), scalar_in(ctx, o, dt, HS_BC2_SQRT)), c->eps);
    /* addcdiv: (value * m) / denom */
    loom_t step = loom_div(ctx, loom_mul(ctx, nm, scalar_in(ctx, o, dt, HS_STEP_SIZE)), denom);
    return loom_sub(ctx, base, step);
}

/* RMSprop (torch's _single_tensor_rmsprop, not centered):
 *   g = g + wd p;  sq = alpha sq + (1 - alpha) g g;  avg = sqrt(sq) + eps
 *   momentum: buf = momentum buf + g / avg;  p = p - lr buf
 *   else:     p = p - lr g / avg
 * eps is added outside the square root, as torch does. */
static loom_t rmsprop_update(loom_ctx *ctx, loom_optimizer *o, loom_t p, loom_t g)
{
    const loom_optim_config *c = &o->cfg;
    loom_dtype dt = loom_dtype_of(ctx, p);
    loom_t lr = scalar_in(ctx, o, dt, HS_LR);
    if (c->weight_decay != 0)
        g = loom_add(ctx, g, loom_muls(ctx, p, c->weight_decay));
    loom_t sq = state_buffer(ctx, p, "square_avg");
    loom_t nsq = loom_add(ctx, loom_muls(ctx, sq, c->alpha), loom_mul(ctx, loom_muls(ctx, g, 1 - c->alpha), g));
    loom_assign(ctx, sq, nsq);
    loom_t avg = loom_adds(ctx, loom_sqrt(ctx, nsq), c->eps);
    if (c->momentum > 0) {
        loom_t buf = state_buffer(ctx, p, "momentum_buffer");
        loom_t nbuf = loom_add(ctx, loom_muls(ctx, buf, c->momentum), loom_div(ctx, g, avg));
        loom_assign(ctx, buf, nbuf);
        return loom_sub(ctx, p, loom_mul(ctx, nbuf, lr));
    }
    return loom_sub(ctx, p, loom_div(ctx, loom_mul(ctx, g, lr), avg));
}

/* Whether parameter i gets an update: trainable (so not a buffer) and
 * reached by the loss. Sets *g to its gradient. */
static bool trained(loom_ctx *ctx, size_t i, loom_t *p, loom_t *g)
{
    *p = loom_param_at(ctx, i);
    if (!loom_param_trainable(ctx, *p))
        return false;
    *g = loom_grad(ctx, *p);
    return !loom_is_null(*g);
}

/*
 * The global norm and the clipping, as clip_grad_norm_ does them:
 *   total = sqrt(sum over params of sum(g^2))
 *   coef = min(max_norm / (total + 1e-6), 1);  g = g * coef
 * The sum is in f64 if any parameter is f64, else f32; each parameter's
 * sum of squares is taken in its own dtype first, and coef is cast to each
 * gradient's dtype, as torch's mul_ by a 0-dim tensor computes. Sets
 * o->grad_norm and *coef (null when not clipping).
 */
static void record_norm(loom_ctx *ctx, loom_optimizer *o, size_t n, const loom_t *ps, const loom_t *gs,
                        loom_t *coef)
{
    loom_dtype acc = LOOM_F32;
    loom_t sumsq = LOOM_NULL;
    for (size_t i = 0; i < n; i++)
        if (loom_dtype_of(ctx, ps[i]) == LOOM_F64)
            acc = LOOM_F64;
    for (size_t i = 0; i < n; i++) {
        loom_t s = loom_sum_all(ctx, loom_square(ctx, gs[i]));
        if (loom_dtype_of(ctx, s) != acc)
            s = loom_cast(ctx, s, acc);
        sumsq = loom_is_null(sumsq) ? s : loom_add(ctx, sumsq, s);
    }
    /* a loss that reaches no trainable parameter has a zero gradient */
    o->grad_norm = loom_is_null(sumsq) ? loom_scalar(ctx, acc, 0) : loom_sqrt(ctx, sumsq);
    *coef = LOOM_NULL;
    if (o->cfg.clip_norm > 0)
        *coef = loom_minimum(ctx,
                             loom_div(ctx, loom_scalar(ctx, acc, o->cfg.clip_norm),
                                      loom_adds(ctx, o->grad_norm, 1e-6)),
                             loom_scalar(ctx, acc, 1.0));
}

/* The checks both attaches share: the context, the optimizer, once per
 * tape. */
static loom_code attach_check(loom_ctx *ctx, const loom_optimizer *o, const char *fn)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return loom_status(ctx);
    if (!o)
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "no optimizer (NULL)");
    if (o->ctx != ctx)
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "the optimizer belongs to another context");
    if (attached(o))
        return fe_fail(ctx, LOOM_ERR_STATE, fn,
                       "the optimizer is attached to this tape already "
                       "(once per tape; loom_reset starts a new one)");
    return LOOM_OK;
}

/* Records the clipping of gs[0..n) and the update of each ps[i] from its
 * clipped gradient gs[i], as loom_assigns; marks the optimizer attached
 * to this tape. */
static loom_code record_update(loom_ctx *ctx, loom_optimizer *o, size_t n, const loom_t *ps, const loom_t *gs)
{
    /* the handles of an earlier tape are stale: start afresh */
    for (int d = 0; d < LOOM_DTYPE_COUNT; d++)
        for (int k = 0; k < HS_COUNT; k++)
            o->scalars[d][k] = LOOM_NULL;
    o->grad_norm = LOOM_NULL;

    loom_t coef, coefs[LOOM_DTYPE_COUNT] = { 0 }; /* coef cast to each dtype */
    record_norm(ctx, o, n, ps, gs, &coef);
    for (size_t i = 0; i < n && !loom_failed(ctx); i++) {
        loom_t p = ps[i], g = gs[i];
        loom_dtype dt = loom_dtype_of(ctx, p);
        if (!loom_is_null(coef)) {
            if (loom_is_null(coefs[dt]))
                coefs[dt] = loom_dtype_of(ctx, coef) == dt ? coef : loom_cast(ctx, coef, dt);
            g = loom_mul(ctx, g, coefs[dt]);
        }
        loom_t np = o->cfg.kind == LOOM_OPT_SGD       ? sgd_update(ctx, o, p, g)
                    : o->cfg.kind == LOOM_OPT_RMSPROP ? rmsprop_update(ctx, o, p, g)
                                                      : adam_update(ctx, o, p, g);
        loom_assign(ctx, p, np);
    }
    if (loom_failed(ctx))
        return loom_status(ctx);
    o->tape = ctx->tape_tag;
    return LOOM_OK;
}

loom_code loom_optimizer_attach(loom_ctx *ctx, loom_optimizer *o, loom_t loss)
{
    static const char fn[] = "loom_optimizer_attach";
    loom_code c = attach_check(ctx, o, fn);
    if (c != LOOM_OK)
        return c;
    if (!fe_node(ctx, loss, fn, 1))
        return loom_status(ctx);
    loom_shape ls = loom_shape_of(ctx, loss);
    loom_dtype ldt = loom_dtype_of(ctx, loss);
    if (loom_shape_numel(ls) != 1 || ldt == LOOM_I32) {
        char sh[160];
        return fe_fail(ctx, ldt == LOOM_I32 ? LOOM_ERR_DTYPE : LOOM_ERR_SHAPE, fn,
                       "the loss must be a scalar (one f32 or f64 element), not %s",
                       loom_shape_str(ls, ldt, sh, sizeof sh));
    }
    if (loom_backward(ctx, loss) != LOOM_OK)
        return loom_status(ctx);

    /* the parameters the loss reaches, before the state buffers made by
     * the update (parameters too) join the list */
    size_t nparams = loom_param_count(ctx), n = 0;
    loom_t *pg = lm_alloc(&ctx->mem, (2 * nparams + 1) * sizeof *pg); /* [nparams] params, [nparams] grads */
    if (!pg)
        return loom_status(ctx);
    for (size_t i = 0; i < nparams; i++)
        if (trained(ctx, i, &pg[n], &pg[nparams + n]))
            n++;
    c = record_update(ctx, o, n, pg, pg + nparams);
    lm_free(&ctx->mem, pg, (2 * nparams + 1) * sizeof *pg);
    return c;
}

loom_code loom_optimizer_attach_grads(loom_ctx *ctx, loom_optimizer *o, int n, const loom_t *params,
                                      const loom_t *grads)
{
    static const char fn[] = "loom_optimizer_attach_grads";
    loom_code c = attach_check(ctx, o, fn);
    if (c != LOOM_OK)
        return c;
    if (n < 1)
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "n = %d: needs at least one parameter and its gradient", n);
    if (!params || !grads)
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "no list of %s (NULL)", !params ? "parameters" : "gradients");
    for (int i = 0; i < n; i++) {
        if (!loom_is_param(ctx, params[i]))
            return fe_fail(ctx, LOOM_ERR_HANDLE, fn, "params[%d] is not a parameter of this context", i);
        const fe_param *q = &ctx->params[fe_param_index(ctx, params[i], fn)];
        if (!loom_param_trainable(ctx, params[i]))
            return fe_fail(ctx, LOOM_ERR_ARG, fn, "params[%d] \"%s\" is %s: the optimizer updates trainable "
                           "parameters only", i, q->name, q->buffer ? "a buffer" : "frozen");
        for (int j = 0; j < i; j++)
            if (params[j].id == params[i].id)
                return fe_fail(ctx, LOOM_ERR_ARG, fn, "params[%d] is params[%d] (\"%s\") again", i, j, q->name);
        if (loom_is_null(grads[i]))
            return fe_fail(ctx, LOOM_ERR_HANDLE, fn, "grads[%d] (of \"%s\") is a null handle", i, q->name);
        char what[32];
        snprintf(what, sizeof what, "grads[%d]", i);
        if (!fe_node_as(ctx, grads[i], fn, what))
            return loom_status(ctx);
        loom_shape gs = loom_shape_of(ctx, grads[i]);
        loom_dtype gdt = loom_dtype_of(ctx, grads[i]);
        char have[160], want[160];
        if (gdt != q->dtype || !loom_shape_equal(gs, q->shape))
            return fe_fail(ctx, gdt != q->dtype ? LOOM_ERR_DTYPE : LOOM_ERR_SHAPE, fn,
                           "grads[%d] is %s, but parameter \"%s\" is %s", i,
                           loom_shape_str(gs, gdt, have, sizeof have), q->name,
                           loom_shape_str(q->shape, q->dtype, want, sizeof want));
    }
    return record_update(ctx, o, (size_t)n, params, grads);
}

/* ------------------------------------------------------------------ */
/* Stepping                                                           */
/* ------------------------------------------------------------------ */

/* Feeds step s's host scalars to the inputs the tape has, each converted
 * to its dtype (torch converts its Python-float scalars the same way). */
static loom_code feed_scalars(loom_ctx *ctx, loom_optimizer *o, int64_t s)
{
    double v[HS_COUNT];
    host_scalars(&o->cfg, s, v);
    for (int d = 0; d < LOOM_DTYPE_COUNT; d++)
        for (int k = 0; k < HS_COUNT; k++) {
            loom_t in = o->scalars[d][k];
            if (loom_is_null(in))
                continue;
            float f = (float)v[k];
            loom_code c = d == LOOM_F32 ? loom_feed(ctx, in, &f, sizeof f)
                                        : loom_feed(ctx, in, &v[k], sizeof v[k]);
            if (c != LOOM_OK)
                return c;
        }
    return LOOM_OK;
}

loom_code loom_optimizer_step(loom_ctx *ctx, loom_optimizer *o, int n, const loom_t *outputs)
{
    static const char fn[] = "loom_optimizer_step";
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return loom_status(ctx);
    if (!o)
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "no optimizer (NULL)");
    if (o->ctx != ctx)
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "the optimizer belongs to another context");
    if (!attached(o))
        return fe_fail(ctx, LOOM_ERR_STATE, fn,
                       "the optimizer is not attached to the current tape: call loom_optimizer_attach "
                       "after recording the loss (again after every loom_reset)");
    if (n < 0 || (n > 0 && !outputs)) /* before anything is fed */
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "%d outputs given without a list", n);
    loom_code c = feed_scalars(ctx, o, o->steps);
    if (c == LOOM_OK)
        c = loom_run(ctx, n, outputs);
    if (c == LOOM_OK)
        o->steps++;
    return c;
}
