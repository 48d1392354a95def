/*
 * checkpoint.c — placeholder until checkpoints land.
 */
#include "fe.h"

loom_code loom_checkpoint_save(loom_ctx *ctx, const char *path, const loom_optimizer *opt, const char *config_json)
{
    (void)path;
    (void)opt;
    (void)config_json;
    return fe_fail(ctx, LOOM_ERR_UNSUPPORTED, __func__, "not implemented yet");
}
loom_code loom_checkpoint_load(loom_ctx *ctx, const char *path, loom_optimizer *opt, unsigned flags)
{
    (void)path;
    (void)opt;
    (void)flags;
    return fe_fail(ctx, LOOM_ERR_UNSUPPORTED, __func__, "not implemented yet");
}
loom_code loom_checkpoint_config(loom_ctx *ctx, const char *path, char *buf, size_t size)
{
    (void)path;
    (void)buf;
    (void)size;
    return fe_fail(ctx, LOOM_ERR_UNSUPPORTED, __func__, "not implemented yet");
}
