/*
 * optim.c — placeholder until the optimizers land.
 */
#include "fe.h"

loom_optimizer *loom_optimizer_new(loom_ctx *ctx, const loom_optim_config *cfg)
{
    (void)cfg;
    if (ctx)
        fe_fail(ctx, LOOM_ERR_UNSUPPORTED, __func__, "not implemented yet");
    return NULL;
}
void loom_optimizer_free(loom_optimizer *o) { (void)o; }
loom_code loom_optimizer_attach(loom_ctx *ctx, loom_optimizer *o, loom_t loss)
{
    (void)o;
    (void)loss;
    return fe_fail(ctx, LOOM_ERR_UNSUPPORTED, __func__, "not implemented yet");
}
loom_code loom_optimizer_step(loom_ctx *ctx, loom_optimizer *o, int n, const loom_t *outputs)
{
    (void)o;
    (void)n;
    (void)outputs;
    return fe_fail(ctx, LOOM_ERR_UNSUPPORTED, __func__, "not implemented yet");
}
loom_t loom_optimizer_grad_norm(const loom_optimizer *o)
{
    (void)o;
    return LOOM_NULL;
}
int64_t loom_optimizer_steps(const loom_optimizer *o)
{
    (void)o;
    return 0;
}
loom_code loom_optimizer_set_steps(loom_optimizer *o, int64_t steps)
{
    (void)o;
    (void)steps;
    return LOOM_ERR_UNSUPPORTED;
}
double loom_optimizer_lr(const loom_optimizer *o)
{
    (void)o;
    return 0;
}
