/*
 * bench_fused.c — `loom-bench fused`: the LSTM cell's elementwise step
 * written from primitives (four gates from a [N, 4H] preactivation, the
 * cell and hidden states) and compiled by loom into one fused kernel, on
 * tensors far larger than the caches, so it measures memory bandwidth:
 * 4H + H floats read and 2H written per row. Reported as GB/s next to
 * the machine's ~31 GB/s single-core triad bandwidth (TOOLCHAIN.md). No
 * peer: this is loom against the machine.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>

#include "loom.h"

static const double CORE_GBPS = 31.0; /* measured triad bandwidth, one core */

typedef struct gates_case {
    loom_ctx *ctx;
    loom_t out[2];
} gates_case;

static void run_gates(void *ud)
{
    gates_case *g = ud;
    loom_run(g->ctx, 2, g->out);
}

/* The cell step; returns 0 on success. */
static int build(gates_case *g, int64_t n, int64_t h, int threads)
{
    g->ctx = loom_ctx_new(&(loom_options){ .seed = 1, .threads = threads });
    loom_ctx *ctx = g->ctx;
    loom_t pre = loom_input(ctx, "gates", LOOM_F32, LOOM_SHAPE(n, 4 * h));
    loom_t c_prev = loom_input(ctx, "c", LOOM_F32, LOOM_SHAPE(n, h));
    loom_t i = loom_sigmoid(ctx, loom_slice(ctx, pre, 1, 0, h, 1));
    loom_t f = loom_sigmoid(ctx, loom_slice(ctx, pre, 1, h, 2 * h, 1));
    loom_t gg = loom_tanh(ctx, loom_slice(ctx, pre, 1, 2 * h, 3 * h, 1));
    loom_t o = loom_sigmoid(ctx, loom_slice(ctx, pre, 1, 3 * h, 4 * h, 1));
    loom_t c = loom_add(ctx, loom_mul(ctx, f, c_prev), loom_mul(ctx, i, gg));
    g->out[0] = c;
    g->out[1] = loom_mul(ctx, o, loom_tanh(ctx, c));
    float *a = malloc((size_t)(n * 4 * h) * sizeof *a), *b = malloc((size_t)(n * h) * sizeof *b);
    if (!a || !b || loom_failed(ctx)) {
        free(a);
        free(b);
        return 1;
    }
    for (int64_t k = 0; k < n * 4 * h; k++)
        a[k] = (float)sin((double)k * 0.001);
    for (int64_t k = 0; k < n * h; k++)
        b[k] = (float)cos((double)k * 0.001);
    loom_feed(ctx, pre, a, (size_t)(n * 4 * h) * sizeof *a);
    loom_feed(ctx, c_prev, b, (size_t)(n * h) * sizeof *b);
    free(a);
    free(b);
    return loom_run(ctx, 2, g->out) != LOOM_OK;
}

int bench_fused(const bench_opts *o)
{
    static const struct {
        int64_t n, h;
    } shapes[] = { { 4096, 512 }, { 16384, 512 }, { 2048, 4096 } };
    if (!o->json)
        printf("loom-bench fused: LSTM gate step, f32, one fused kernel; bandwidth next to %.0f GB/s (one core)\n\n"
               "%-22s %3s %9s %8s %9s %8s\n", CORE_GBPS, "case", "thr", "loom ms", "GB/s", "of core", "kernels");
    for (int t = 0; t < 4 && o->threads[t]; t++) {
        int threads = o->threads[t];
        for (size_t s = 0; s < LM_ARRAY_LEN(shapes); s++) {
            char name[64];
            snprintf(name, sizeof name, "lstm-gates-N%lld-H%lld", (long long)shapes[s].n, (long long)shapes[s].h);
            if (!bench_selected(o, name))
                continue;
            gates_case g = { 0 };
            if (build(&g, shapes[s].n, shapes[s].h, threads)) {
                fprintf(stderr, "loom-bench fused: %s: %s\n", name, loom_errmsg(g.ctx));
                loom_ctx_free(g.ctx);
                return 1;
            }
            loom_stats st;
            loom_get_stats(g.ctx, &st);
            double ms = bench_time_ms(o, run_gates, &g);
            double bytes = 7.0 * (double)shapes[s].n * (double)shapes[s].h * sizeof(float);
            double gbps = bytes / (ms * 1e-3) / 1e9;
            if (o->json)
                printf("{\"suite\": \"fused\", \"case\": \"%s\", \"threads\": %d, \"loom_ms\": %.4f, \"peer\": null, "
                       "\"peer_ms\": null, \"speedup\": null, \"gbps\": %.2f, \"core_fraction\": %.3f, "
                       "\"kernels\": %llu}\n",
                       name, threads, ms, gbps, gbps / CORE_GBPS, (unsigned long long)st.kernels);
            else
                printf("%-22s %3d %9.3f %8.1f %8.0f%% %8llu\n", name, threads, ms, gbps, 100 * gbps / CORE_GBPS,
                       (unsigned long long)st.kernels);
            loom_ctx_free(g.ctx);
        }
    }
    return 0;
}
