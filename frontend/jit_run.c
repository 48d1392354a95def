/*
 * jit_run.c — the compiled path of loom_run: look the tape's roots up in
 * the plan cache by structural key (recording the same model again finds
 * its plan, and compiles nothing), else compile a plan, get its kernels
 * from the JIT (which compiles only the ones it has never seen), and run
 * it on the thread pool. Also the plan's introspection: the fusion
 * report and the compiled graph as DOT.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fe.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

void fe_plans_free(loom_ctx *ctx)
{
    for (size_t i = 0; i < ctx->nplans; i++) {
        rt_exec_free(ctx->plans[i].exec);
        plan_free(ctx->plans[i].plan);
    }
    lm_free(&ctx->mem, ctx->plans, ctx->plans_cap * sizeof *ctx->plans);
    ctx->plans = NULL;
    ctx->nplans = ctx->plans_cap = ctx->last_plan = 0;
}

static loom_code ensure_runtime(loom_ctx *ctx)
{
    if (!ctx->pool && !(ctx->pool = rt_pool_new(ctx->mem, &ctx->err, ctx->threads)))
        return ctx->err.code;
    /* O2: the kernels are explicit vector code, and ran as fast at O3 in
     * alternated runs of loom-bench cells and charlm, where LLVM took
     * 5-15% longer (the first step of a char model's training) */
    if (!ctx->jit && !(ctx->jit = jit_new(ctx->mem, &ctx->err, NULL, 2)))
        return ctx->err.code;
    return LOOM_OK;
}

static fe_plan *plan_lookup(loom_ctx *ctx, const uint64_t key[2], uint32_t nout)
{
    /* few plans per context (training, evaluation, sampling): a scan */
    for (size_t i = 0; i < ctx->nplans; i++)
        if (ctx->plans[i].key[0] == key[0] && ctx->plans[i].key[1] == key[1] && ctx->plans[i].nout == nout &&
            ctx->plans[i].anomaly == ctx->anomaly)
            return &ctx->plans[i];
    return NULL;
}

compile_opts fe_compile_opts(const loom_ctx *ctx)
{
    return (compile_opts){ .no_batch = ctx->no_batch, .no_rows = ctx->no_rows, .no_remat = ctx->no_remat,
                           .no_prepack = ctx->no_prepack, .no_fold = ctx->no_fold, .threads = ctx->threads };
}

static fe_plan *plan_build(loom_ctx *ctx, const ir_id *roots, uint32_t nout, uint32_t nroots,
                           const uint64_t key[2])
{
    double t0 = now_ms();
    compile_opts opts = fe_compile_opts(ctx);
#ifndef NDEBUG
    opts.verify = true;
#endif
    opts.no_inplace = ctx->anomaly;
    opts.commit_in_place = !ctx->anomaly;
    plan *p = plan_compile(ctx->g, roots, nroots, &opts);
    if (!p)
        return NULL;
    double t1 = now_ms();
    const jit_stats *js = jit_get_stats(ctx->jit);
    uint64_t compiled0 = js->compiled, hits0 = js->hits;
    double ms0 = js->compile_ms;
    jit_kinfo *ks = lm_alloc(&ctx->mem, (p->nkernels + 1) * sizeof *ks);
    rt_exec *x = NULL;
    if (ks && jit_plan(ctx->jit, p, ks, ctx->threads) == LOOM_OK)
        x = rt_exec_new(ctx->mem, &ctx->err, p, ks, rt_pool_size(ctx->pool));
    lm_free(&ctx->mem, ks, (p->nkernels + 1) * sizeof *ks);
    if (!x || !LM_GROW(&ctx->mem, ctx->plans, ctx->plans_cap, ctx->nplans + 1)) {
        rt_exec_free(x);
        plan_free(p);
        return NULL;
    }
    fe_plan *fp = &ctx->plans[ctx->nplans++];
    *fp = (fe_plan){ .key = { key[0], key[1] }, .nout = nout, .anomaly = ctx->anomaly, .plan = p, .exec = x,
                     .gemm_flops = plan_gemm_flops(p) };
    ctx->stats.plans_built++;
    ctx->stats.kernels += p->nkernels;
    ctx->stats.kernels_compiled += js->compiled - compiled0;
    ctx->stats.kernel_hits += js->hits - hits0;
    ctx->stats.compile_ms += js->compile_ms - ms0;
    ctx->stats.plan_ms += t1 - t0;
    if (ctx->verbose)
        fprintf(stderr,
                "loom: plan of %zu nodes: %zu kernels (%llu compiled, %llu cached), %zu calls, "
                "arena %.1f KiB (%llu buffers in place), %llu of %llu assignments written in place; "
                "passes %.1f ms, LLVM %.1f ms, in all %.1f ms (the arena's first touch included)\n",
                ir_count(ctx->g), p->nkernels, (unsigned long long)(js->compiled - compiled0),
                (unsigned long long)(js->hits - hits0), p->ncalls, (double)p->arena_bytes / 1024.0,
                (unsigned long long)p->inplace, (unsigned long long)p->commits_in_place,
                (unsigned long long)(p->commits_in_place + p->ncommits), t1 - t0, js->compile_ms - ms0, now_ms() - t0);
    if (ctx->verbose) {
        size_t len = plan_report_text(p, NULL, 0);
        char *text = lm_alloc(&ctx->mem, len + 1);
        if (text) {
            plan_report_text(p, text, len + 1);
            fputs(text, stderr);
            lm_free(&ctx->mem, text, len + 1);
        }
    }
    if (ctx->verbose > 1)
        plan_print(p, stderr);
    return fp;
}

loom_code fe_run_jit(loom_ctx *ctx, const ir_id *roots, uint32_t nout, uint32_t nroots, void **values,
                     const char *fn)
{
    if (ensure_runtime(ctx) != LOOM_OK)
        return ctx->err.code;
    uint64_t key[2];
    plan_key(ctx->g, roots, nroots, key);
    fe_plan *fp = plan_lookup(ctx, key, nout);
    if (fp)
        ctx->stats.plan_hits++;
    else if (!(fp = plan_build(ctx, roots, nout, nroots, key)))
        return ctx->err.code;
    ctx->last_plan = (size_t)(fp - ctx->plans) + 1;
    /* every input the plan reads must have been fed: name the one missing */
    const plan *p = fp->plan;
    for (size_t i = 0; i < p->nbuffers; i++) {
        const plan_buffer *pb = &p->buffers[i];
        if (pb->kind == PB_INPUT && (pb->ext >= ctx->ninputs || !ctx->inputs[pb->ext].data)) {
            const char *name = pb->ext < ctx->ninputs ? ctx->inputs[pb->ext].name : NULL;
            return lm_fail(&ctx->err, LOOM_ERR_STATE, "%s: input %s%s%s#%u was not fed", fn, name ? "\"" : "",
                           name ? name : "", name ? "\" " : "", pb->ext);
        }
    }
    rt_anomaly an = { 0 };
    if (ctx->anomaly && fe_anomaly_outside(ctx, fn, p) != LOOM_OK)
        return ctx->err.code;
    void **inputs = lm_alloc(&ctx->mem, (ctx->ninputs + 1) * sizeof *inputs);
    void **params = inputs ? lm_alloc(&ctx->mem, (ctx->nparams + 1) * sizeof *params) : NULL;
    loom_code c = params ? LOOM_OK : ctx->err.code;
    if (c == LOOM_OK) {
        for (size_t i = 0; i < ctx->ninputs; i++)
            inputs[i] = ctx->inputs[i].data;
        for (size_t i = 0; i < ctx->nparams; i++)
            params[i] = ctx->params[i].data;
        rt_bind b = { .inputs = inputs, .ninputs = (uint32_t)ctx->ninputs, .params = params,
                      .nparams = (uint32_t)ctx->nparams, .anomaly = ctx->anomaly ? &an : NULL };
        c = rt_exec_run(fp->exec, ctx->pool, &b);
        if (c == LOOM_ERR_INDEX)
            fe_index_place(ctx, p, rt_exec_index_origin(fp->exec));
        if (c == LOOM_ERR_NUMERIC && ctx->anomaly)
            c = fe_anomaly_call(ctx, fn, p, &an);
    }
    if (c == LOOM_OK) {
        for (uint32_t i = 0; i < nout; i++)
            values[i] = rt_exec_output(fp->exec, i);
        ctx->stats.plan_bytes = rt_exec_memory(fp->exec);
        ctx->stats.gemm_flops = fp->gemm_flops;
    }
    lm_free(&ctx->mem, params, (ctx->nparams + 1) * sizeof *params);
    lm_free(&ctx->mem, inputs, (ctx->ninputs + 1) * sizeof *inputs);
    return c;
}

loom_code loom_get_stats(loom_ctx *ctx, loom_stats *out)
{
    if (!ctx)
        return LOOM_ERR_ARG;
    if (!out)
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "nowhere to write the stats (NULL)");
    *out = ctx->stats;
    return LOOM_OK;
}

loom_code loom_plan_dot(loom_ctx *ctx, int n, const loom_t *outputs, bool commit, const char *path)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return ctx->err.code;
    if (!path)
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "no path (NULL)");
    if (n < 0 || (n > 0 && !outputs))
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "%d outputs given without a list", n);
    size_t nroots = (size_t)n + (commit ? ctx->nassigns : 0);
    if (!nroots)
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "nothing to compile: no outputs%s", commit ? " and no assignments" : "");
    ir_id *roots = lm_alloc(&ctx->mem, nroots * sizeof *roots);
    if (!roots)
        return ctx->err.code;
    loom_code c = fe_roots(ctx, n, outputs, commit, __func__, roots);
    FILE *out = c == LOOM_OK ? fopen(path, "w") : NULL;
    if (c == LOOM_OK && !out)
        c = fe_fail(ctx, LOOM_ERR_IO, __func__, "%s: %s", path, strerror(errno));
    if (c == LOOM_OK) {
        compile_opts opts = fe_compile_opts(ctx);
        opts.dot = out;
        plan *p = plan_compile(ctx->g, roots, (uint32_t)nroots, &opts);
        if (!p)
            c = ctx->err.code;
        plan_free(p);
        if (fclose(out) != 0 && c == LOOM_OK)
            c = fe_fail(ctx, LOOM_ERR_IO, __func__, "%s: %s", path, strerror(errno));
    }
    lm_free(&ctx->mem, roots, nroots * sizeof *roots);
    return c;
}

size_t loom_fusion_report(loom_ctx *ctx, char *buf, size_t size)
{
    if (buf && size)
        buf[0] = 0;
    if (!ctx || !ctx->last_plan || ctx->last_plan > ctx->nplans)
        return 0;
    return plan_report_text(ctx->plans[ctx->last_plan - 1].plan, buf, buf ? size : 0);
}

loom_backend loom_get_backend(const loom_ctx *ctx) { return ctx ? ctx->backend : LOOM_BACKEND_JIT; }

loom_code loom_set_threads(loom_ctx *ctx, int threads)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (threads < 1 || threads > 1024)
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "%d threads is not in [1, 1024]", threads);
    if (threads == ctx->threads)
        return LOOM_OK;
    /* plans are prepared for a pool size: drop them with the pool */
    fe_values_clear(ctx);
    fe_plans_free(ctx);
    rt_pool_free(ctx->pool);
    ctx->pool = NULL;
    ctx->threads = threads;
    return LOOM_OK;
}

int loom_get_threads(const loom_ctx *ctx) { return ctx ? ctx->threads : 0; }
