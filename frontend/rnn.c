/*
 * rnn.c — recurrent cells and stacks of them, like torch.nn.RNN, LSTM and
 * GRU, made only of public ops: no special kernel exists for any of them.
 * A stack runs as a C loop over time steps, so the tape holds the network
 * unrolled through time, each step marked; the compiler fuses each step's
 * gate math and batches what it can. Parameter names, shapes, gate order
 * and initialisation are PyTorch's, so a PyTorch state dict loads as is.
 */
#include <math.h>
#include <stdio.h>

#include "fe.h"

/* ------------------------------------------------------------------ */
/* Cells                                                              */
/* ------------------------------------------------------------------ */

/* x W^T + b, with b optional. */
static loom_t affine(loom_ctx *ctx, loom_t x, loom_t w, loom_t b)
{
    loom_t y = loom_matmul_t(ctx, x, loom_weight(ctx, w), false, true);
    return loom_is_null(b) ? y : loom_add(ctx, y, loom_weight(ctx, b));
}

/* Columns [k * h, (k + 1) * h) of a [B, G * h] gate block. */
static loom_t chunk(loom_ctx *ctx, loom_t gates, int k, int64_t h)
{
    return loom_slice(ctx, gates, 1, k * h, (k + 1) * h, 1);
}

/* The shape of a cell's argument (named what in the message), or a null
 * shape of rank -1 with an error. */
static loom_shape arg_shape(loom_ctx *ctx, loom_t t, const char *fn, const char *what, loom_dtype *dt)
{
    ir_id n = fe_node_as(ctx, t, fn, what);
    if (!n)
        return (loom_shape){ .rank = -1 };
    if (dt)
        *dt = ir_dtype(ctx->g, n);
    return ir_shapev(ctx->g, n);
}

/* A gate weight [gates * H, *] of a cell with hidden size hid. */
static bool gate_rows(loom_ctx *ctx, loom_t w, int gates, int64_t hid, const char *fn, const char *what)
{
    loom_shape s = arg_shape(ctx, w, fn, what, NULL);
    if (s.rank < 0)
        return false;
    if (s.rank != 2 || s.d[0] != gates * hid) {
        char a[160];
        fe_fail(ctx, LOOM_ERR_SHAPE, fn, "%s %s does not fit hidden size %lld (needs [%dH, *] = [%lld, *])", what,
                loom_shape_str(s, -1, a, sizeof a), (long long)hid, gates, (long long)(gates * hid));
        return false;
    }
    return true;
}

loom_t loom_rnn_cell(loom_ctx *ctx, loom_t x, loom_t h, loom_t w_ih, loom_t w_hh, loom_t b_ih, loom_t b_hh, bool relu)
{
    if (!ctx || loom_failed(ctx))
        return LOOM_NULL;
    loom_t pre = loom_add(ctx, affine(ctx, x, w_ih, b_ih), affine(ctx, h, w_hh, b_hh));
    return fe_named(ctx, __func__, relu ? loom_relu(ctx, pre) : loom_tanh(ctx, pre));
}

loom_code loom_lstm_cell(loom_ctx *ctx, loom_t x, loom_t h, loom_t c, const loom_lstm_weights *w, loom_t *h_out,
                         loom_t *c_out)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return ctx->err.code;
    if (!w || !h_out || !c_out)
        return fe_fail(ctx, LOOM_ERR_ARG, __func__, "%s", !w ? "no weights (NULL)" : "no room for h' and c' (NULL)");
    loom_dtype cdt;
    loom_shape cs = arg_shape(ctx, c, __func__, "the cell state c", &cdt);
    if (cs.rank < 0)
        return ctx->err.code;
    if (cs.rank != 2) {
        char a[160];
        return fe_fail(ctx, LOOM_ERR_SHAPE, __func__, "the cell state c %s is not [B, H]",
                       loom_shape_str(cs, cdt, a, sizeof a));
    }
    int64_t hid = cs.d[1];
    if (!gate_rows(ctx, w->w_ih, 4, hid, __func__, "weight_ih") || !gate_rows(ctx, w->w_hh, 4, hid, __func__, "weight_hh"))
        return ctx->err.code;
    /* gates in PyTorch's order i, f, g, o */
    loom_t gates = loom_add(ctx, affine(ctx, x, w->w_ih, w->b_ih), affine(ctx, h, w->w_hh, w->b_hh));
    loom_t gi = chunk(ctx, gates, 0, hid), gf = chunk(ctx, gates, 1, hid);
    loom_t gg = chunk(ctx, gates, 2, hid), go = chunk(ctx, gates, 3, hid);
    if (!loom_is_null(w->w_ci)) /* peepholes see the old cell for i and f */
        gi = loom_add(ctx, gi, loom_mul(ctx, c, loom_weight(ctx, w->w_ci)));
    if (!loom_is_null(w->w_cf))
        gf = loom_add(ctx, gf, loom_mul(ctx, c, loom_weight(ctx, w->w_cf)));
    loom_t c2 = loom_add(ctx, loom_mul(ctx, loom_sigmoid(ctx, gf), c),
                         loom_mul(ctx, loom_sigmoid(ctx, gi), loom_tanh(ctx, gg)));
    if (!loom_is_null(w->w_co)) /* ... and the new one for o */
        go = loom_add(ctx, go, loom_mul(ctx, c2, loom_weight(ctx, w->w_co)));
    loom_t h2 = loom_mul(ctx, loom_sigmoid(ctx, go), loom_tanh(ctx, c2));
    if (!loom_is_null(w->w_hr))
        h2 = loom_matmul_t(ctx, h2, loom_weight(ctx, w->w_hr), false, true);
    *h_out = h2;
    *c_out = c2;
    fe_name_error(ctx, __func__);
    return ctx->err.code;
}

loom_t loom_gru_cell(loom_ctx *ctx, loom_t x, loom_t h, loom_t w_ih, loom_t w_hh, loom_t b_ih, loom_t b_hh)
{
    if (!ctx || loom_failed(ctx))
        return LOOM_NULL;
    const char *fn = __func__;
    loom_dtype hdt;
    loom_shape hs = arg_shape(ctx, h, fn, "the state h", &hdt);
    if (hs.rank < 0)
        return LOOM_NULL;
    if (hs.rank != 2) {
        char a[160];
        fe_fail(ctx, LOOM_ERR_SHAPE, fn, "the state h %s is not [B, H]", loom_shape_str(hs, hdt, a, sizeof a));
        return LOOM_NULL;
    }
    int64_t hid = hs.d[1];
    if (!gate_rows(ctx, w_ih, 3, hid, fn, "weight_ih") || !gate_rows(ctx, w_hh, 3, hid, fn, "weight_hh"))
        return LOOM_NULL;
    loom_t gi = affine(ctx, x, w_ih, b_ih), gh = affine(ctx, h, w_hh, b_hh);
    /* r and z from both projections; n's hidden projection is reset after
     * the matmul ("linear before reset", PyTorch's GRU) */
    loom_t r = loom_sigmoid(ctx, loom_add(ctx, chunk(ctx, gi, 0, hid), chunk(ctx, gh, 0, hid)));
    loom_t z = loom_sigmoid(ctx, loom_add(ctx, chunk(ctx, gi, 1, hid), chunk(ctx, gh, 1, hid)));
    loom_t n = loom_tanh(ctx, loom_add(ctx, chunk(ctx, gi, 2, hid), loom_mul(ctx, r, chunk(ctx, gh, 2, hid))));
    /* (1 - z) n + z h, as n + z (h - n) */
    return fe_named(ctx, fn, loom_add(ctx, n, loom_mul(ctx, z, loom_sub(ctx, h, n))));
}

/* ------------------------------------------------------------------ */
/* Stacks                                                             */
/* ------------------------------------------------------------------ */

/* Parameters of one layer and direction. */
typedef struct rnn_cellw {
    loom_t w_ih, w_hh, b_ih, b_hh, w_hr, w_ci, w_cf, w_co;
} rnn_cellw;

struct loom_rnn {
    loom_ctx *ctx;
    lm_mem mem;
    loom_rnn_config cfg;
    int layers, dirs;
    int64_t hidden, out; /* out = proj_size or hidden */
    int gates;
    rnn_cellw *w; /* [layers * dirs] */
};

static int gate_count(loom_rnn_mode m) { return m == LOOM_LSTM ? 4 : m == LOOM_GRU ? 3 : 1; }

/* PyTorch's name of a stack's parameter: "<prefix>.weight_ih_l0_reverse" */
static void rnn_name(char *name, size_t size, const char *prefix, const char *base, int layer, bool reverse)
{
    if (prefix && prefix[0])
        snprintf(name, size, "%s.%s_l%d%s", prefix, base, layer, reverse ? "_reverse" : "");
    else
        snprintf(name, size, "%s_l%d%s", base, layer, reverse ? "_reverse" : "");
}

static loom_t rnn_param(loom_ctx *ctx, const char *prefix, const char *base, int layer, bool reverse, loom_dtype dt,
                        loom_shape s, double bound)
{
    char name[320];
    rnn_name(name, sizeof name, prefix, base, layer, reverse);
    loom_t p = loom_param(ctx, name, dt, s);
    if (!loom_is_null(p))
        loom_param_init_uniform(ctx, p, -bound, bound);
    return p;
}

loom_rnn *loom_rnn_new(loom_ctx *ctx, const char *prefix, const loom_rnn_config *cfg)
{
    if (!ctx || loom_failed(ctx))
        return NULL;
    const char *fn = __func__;
    if (!cfg) {
        fe_fail(ctx, LOOM_ERR_ARG, fn, "no configuration");
        return NULL;
    }
    loom_rnn_config c = *cfg;
    c.num_layers = c.num_layers ? c.num_layers : 1;
    if (!fe_check_dtype(ctx, c.dtype, fn))
        return NULL;
    if (c.dtype == LOOM_I32) {
        fe_fail(ctx, LOOM_ERR_DTYPE, fn, "weights are f32 or f64, not i32");
        return NULL;
    }
    if ((unsigned)c.mode > LOOM_GRU || c.input_size <= 0 || c.hidden_size <= 0 || c.num_layers < 0 ||
        c.num_layers > 64 || !(c.dropout >= 0 && c.dropout < 1) || c.proj_size < 0 ||
        (c.proj_size && (c.mode != LOOM_LSTM || c.proj_size >= c.hidden_size)) ||
        (c.peepholes && c.mode != LOOM_LSTM)) {
        fe_fail(ctx, LOOM_ERR_ARG, fn,
                "bad configuration (mode %d, input %lld, hidden %lld, layers %d, dropout %g, proj %lld%s)",
                (int)c.mode, (long long)c.input_size, (long long)c.hidden_size, c.num_layers, c.dropout,
                (long long)c.proj_size, c.peepholes && c.mode != LOOM_LSTM ? ", peepholes on a non-LSTM" : "");
        return NULL;
    }
    /* every name first: one taken must not leave the others behind */
    static const char *const bases[] = { "weight_ih", "weight_hh", "bias_ih",   "bias_hh",
                                         "weight_hr", "weight_ci", "weight_cf", "weight_co" };
    for (int l = 0; l < c.num_layers; l++)
        for (int d = 0; d < (c.bidirectional ? 2 : 1); d++)
            for (int k = 0; k < (int)LM_ARRAY_LEN(bases); k++) {
                if ((k == 2 || k == 3) && c.no_bias)
                    continue;
                if ((k == 4 && !c.proj_size) || (k > 4 && !c.peepholes))
                    continue;
                char name[320];
                rnn_name(name, sizeof name, prefix, bases[k], l, d == 1);
                if (!loom_is_null(loom_param_find(ctx, name))) {
                    fe_fail(ctx, LOOM_ERR_ARG, fn, "a parameter named \"%s\" exists already", name);
                    return NULL;
                }
            }
    loom_rnn *m = lm_zalloc(&ctx->mem, sizeof *m);
    if (!m)
        return NULL;
    m->ctx = ctx;
    m->mem = ctx->mem;
    m->cfg = c;
    m->layers = c.num_layers;
    m->dirs = c.bidirectional ? 2 : 1;
    m->hidden = c.hidden_size;
    m->out = c.proj_size ? c.proj_size : c.hidden_size;
    m->gates = gate_count(c.mode);
    m->w = lm_zalloc(&ctx->mem, (size_t)(m->layers * m->dirs) * sizeof *m->w);
    if (!m->w) {
        loom_rnn_free(m);
        return NULL;
    }
    /* PyTorch's order: per layer, the forward direction's weights then
     * the reverse's; all U(-1/sqrt(H), 1/sqrt(H)) */
    double bound = 1.0 / sqrt((double)m->hidden);
    int64_t gh = m->gates * m->hidden;
    for (int l = 0; l < m->layers; l++)
        for (int d = 0; d < m->dirs; d++) {
            rnn_cellw *w = &m->w[l * m->dirs + d];
            int64_t in = l == 0 ? c.input_size : m->dirs * m->out;
            bool rev = d == 1;
            w->w_ih = rnn_param(ctx, prefix, "weight_ih", l, rev, c.dtype, LOOM_SHAPE(gh, in), bound);
            w->w_hh = rnn_param(ctx, prefix, "weight_hh", l, rev, c.dtype, LOOM_SHAPE(gh, m->out), bound);
            if (!c.no_bias) {
                w->b_ih = rnn_param(ctx, prefix, "bias_ih", l, rev, c.dtype, LOOM_SHAPE(gh), bound);
                w->b_hh = rnn_param(ctx, prefix, "bias_hh", l, rev, c.dtype, LOOM_SHAPE(gh), bound);
            }
            if (c.proj_size)
                w->w_hr = rnn_param(ctx, prefix, "weight_hr", l, rev, c.dtype, LOOM_SHAPE(m->out, m->hidden), bound);
            if (c.peepholes) {
                w->w_ci = rnn_param(ctx, prefix, "weight_ci", l, rev, c.dtype, LOOM_SHAPE(m->hidden), bound);
                w->w_cf = rnn_param(ctx, prefix, "weight_cf", l, rev, c.dtype, LOOM_SHAPE(m->hidden), bound);
                w->w_co = rnn_param(ctx, prefix, "weight_co", l, rev, c.dtype, LOOM_SHAPE(m->hidden), bound);
            }
        }
    if (loom_failed(ctx)) {
        fe_name_error(ctx, fn); /* a parameter's name taken, say */
        loom_rnn_free(m);
        return NULL;
    }
    return m;
}

void loom_rnn_free(loom_rnn *m)
{
    if (!m)
        return;
    lm_mem mem = m->mem;
    lm_free(&mem, m->w, (size_t)(m->layers * m->dirs) * sizeof *m->w);
    lm_free(&mem, m, sizeof *m);
}

const loom_rnn_config *loom_rnn_get_config(const loom_rnn *m) { return m ? &m->cfg : NULL; }

/* One step of the cell of layer/direction w. */
static void cell_step(loom_ctx *ctx, const loom_rnn *m, const rnn_cellw *w, loom_t x, loom_t h, loom_t c, loom_t *h2,
                      loom_t *c2)
{
    switch (m->cfg.mode) {
    case LOOM_LSTM: {
        loom_lstm_weights lw = { w->w_ih, w->w_hh, w->b_ih, w->b_hh, w->w_hr, w->w_ci, w->w_cf, w->w_co };
        loom_lstm_cell(ctx, x, h, c, &lw, h2, c2);
        break;
    }
    case LOOM_GRU:
        *h2 = loom_gru_cell(ctx, x, h, w->w_ih, w->w_hh, w->b_ih, w->b_hh);
        break;
    default:
        *h2 = loom_rnn_cell(ctx, x, h, w->w_ih, w->w_hh, w->b_ih, w->b_hh, m->cfg.mode == LOOM_RNN_RELU);
        break;
    }
}

/* Row k of a [L * D, B, n] state as [B, n], or zeros when the state is
 * null. */
static loom_t state_row(loom_ctx *ctx, loom_t s, int k, int64_t b, int64_t n, loom_dtype dt)
{
    if (loom_is_null(s))
        return loom_full(ctx, dt, LOOM_SHAPE(b, n), 0);
    return loom_reshape(ctx, loom_slice(ctx, s, 0, k, k + 1, 1), LOOM_SHAPE(b, n));
}

/* [B, n] rows stacked along a new first axis. */
static loom_t stack(loom_ctx *ctx, int count, const loom_t *rows, int64_t b, int64_t n, loom_t *scratch)
{
    for (int i = 0; i < count; i++)
        scratch[i] = loom_reshape(ctx, rows[i], LOOM_SHAPE(1, b, n));
    return loom_concat(ctx, count, scratch, 0);
}

loom_code loom_rnn_forward(loom_ctx *ctx, const loom_rnn *m, loom_t input, const loom_rnn_state *init, loom_t lengths,
                           bool training, loom_t *output, loom_rnn_state *final)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    if (loom_failed(ctx))
        return ctx->err.code;
    const char *fn = __func__;
    if (!m || m->ctx != ctx || !output)
        return fe_fail(ctx, LOOM_ERR_ARG, fn, "%s",
                       !m ? "no stack (NULL)"
                       : m->ctx != ctx ? "the stack belongs to another context"
                                       : "no room for the output (NULL)");
    const loom_rnn_config *c = &m->cfg;
    loom_dtype xdt = LOOM_DTYPE_COUNT;
    loom_shape xs = arg_shape(ctx, input, fn, "the input", &xdt);
    if (xs.rank < 0)
        return ctx->err.code;
    char sh[160], want[160];
    if (xs.rank != 3 || xs.d[2] != c->input_size || xdt != c->dtype)
        return fe_fail(ctx, xdt != c->dtype ? LOOM_ERR_DTYPE : LOOM_ERR_SHAPE, fn, "input %s is not %s[%s, %lld]",
                       loom_shape_str(xs, xdt, sh, sizeof sh), loom_dtype_name(c->dtype),
                       c->batch_first ? "B, T" : "T, B", (long long)c->input_size);
    int taxis = c->batch_first ? 1 : 0;
    int64_t steps = xs.d[taxis], batch = xs.d[1 - taxis];
    loom_dtype dt = c->dtype;
    if (steps < 1 || steps > (1 << 24))
        return fe_fail(ctx, LOOM_ERR_SHAPE, fn, "input %s has no time steps", loom_shape_str(xs, dt, sh, sizeof sh));
    if (!loom_is_null(lengths)) {
        loom_dtype ldt = LOOM_DTYPE_COUNT;
        loom_shape ls = arg_shape(ctx, lengths, fn, "lengths", &ldt);
        if (ls.rank < 0)
            return ctx->err.code;
        if (ls.rank != 1 || ls.d[0] != batch || ldt != LOOM_I32)
            return fe_fail(ctx, ldt != LOOM_I32 ? LOOM_ERR_DTYPE : LOOM_ERR_SHAPE, fn, "lengths %s are not i32[%lld]",
                           loom_shape_str(ls, ldt, sh, sizeof sh), (long long)batch);
    }
    int nstates = m->layers * m->dirs;
    loom_t h0 = init ? init->h : LOOM_NULL, c0 = init ? init->c : LOOM_NULL;
    loom_shape want_h = LOOM_SHAPE(nstates, batch, m->out), want_c = LOOM_SHAPE(nstates, batch, m->hidden);
    for (int k = 0; k < 2; k++) {
        loom_t s0 = k ? c0 : h0;
        if (loom_is_null(s0))
            continue;
        loom_dtype sdt = LOOM_DTYPE_COUNT;
        loom_shape ss = arg_shape(ctx, s0, fn, k ? "initial c" : "initial h", &sdt);
        if (ss.rank < 0)
            return ctx->err.code;
        if (sdt != dt || !loom_shape_equal(ss, k ? want_c : want_h))
            return fe_fail(ctx, sdt != dt ? LOOM_ERR_DTYPE : LOOM_ERR_SHAPE, fn, "initial %c %s is not %s",
                           k ? 'c' : 'h', loom_shape_str(ss, sdt, sh, sizeof sh),
                           loom_shape_str(k ? want_c : want_h, dt, want, sizeof want));
    }

    /* per-step tensors: the layer's input, each direction's output */
    size_t nsteps = (size_t)steps;
    loom_t *xin = lm_alloc(&ctx->mem, nsteps * sizeof *xin);
    loom_t *outs = lm_alloc(&ctx->mem, 2 * nsteps * sizeof *outs);
    loom_t *masks = lm_alloc(&ctx->mem, nsteps * sizeof *masks);
    loom_t *tmp = lm_alloc(&ctx->mem, (nsteps + (size_t)nstates + 2) * sizeof *tmp);
    loom_t *fin_h = lm_alloc(&ctx->mem, (size_t)nstates * sizeof *fin_h);
    loom_t *fin_c = lm_alloc(&ctx->mem, (size_t)nstates * sizeof *fin_c);
    if (!xin || !outs || !masks || !tmp || !fin_h || !fin_c)
        goto done;
    for (int64_t t = 0; t < steps; t++) {
        loom_step_begin(ctx, (int)t);
        xin[t] = loom_reshape(ctx, loom_slice(ctx, input, taxis, t, t + 1, 1), LOOM_SHAPE(batch, c->input_size));
        /* an example past its length: t >= length */
        masks[t] = loom_is_null(lengths)
                       ? LOOM_NULL
                       : loom_reshape(ctx, loom_gt(ctx, loom_cast(ctx, lengths, dt), loom_scalar(ctx, dt, (double)t)),
                                      LOOM_SHAPE(batch, 1));
        loom_step_end(ctx);
    }
    for (int l = 0; l < m->layers && !loom_failed(ctx); l++) {
        for (int d = 0; d < m->dirs; d++) {
            int k = l * m->dirs + d;
            char layer[32];
            snprintf(layer, sizeof layer, "l%d%s", l, d ? "_reverse" : "");
            bool scoped = fe_scope_of(ctx, m->w[k].w_ih, layer);
            loom_t h = state_row(ctx, h0, k, batch, m->out, dt);
            loom_t cst = m->cfg.mode == LOOM_LSTM ? state_row(ctx, c0, k, batch, m->hidden, dt) : LOOM_NULL;
            for (int64_t i = 0; i < steps; i++) {
                int64_t t = d == 0 ? i : steps - 1 - i;
                loom_step_begin(ctx, (int)t);
                loom_t h2, c2 = LOOM_NULL;
                cell_step(ctx, m, &m->w[k], xin[t], h, cst, &h2, &c2);
                loom_t out = h2;
                if (!loom_is_null(masks[t])) {
                    /* past its length an example keeps its state and
                     * outputs zeros that carry no gradient */
                    h2 = loom_where(ctx, masks[t], h2, h);
                    if (!loom_is_null(c2))
                        c2 = loom_where(ctx, masks[t], c2, cst);
                    out = loom_mul(ctx, h2, masks[t]);
                }
                outs[(size_t)d * nsteps + (size_t)t] = out;
                h = h2;
                cst = c2;
                loom_step_end(ctx);
            }
            fin_h[k] = h;
            fin_c[k] = cst;
            if (scoped)
                loom_scope_end(ctx);
        }
        /* the next layer's input: both directions side by side, with
         * dropout between layers when training */
        for (int64_t t = 0; t < steps; t++) {
            loom_step_begin(ctx, (int)t);
            loom_t y = outs[t];
            if (m->dirs == 2) {
                loom_t pair[2] = { outs[t], outs[nsteps + (size_t)t] };
                y = loom_concat(ctx, 2, pair, 1);
            }
            if (l + 1 < m->layers)
                y = loom_dropout(ctx, y, c->dropout, training);
            xin[t] = y;
            loom_step_end(ctx);
        }
    }
    loom_t out = stack(ctx, (int)steps, xin, batch, m->dirs * m->out, tmp);
    *output = c->batch_first ? loom_transpose(ctx, out, 0, 1) : out;
    if (final) {
        final->h = stack(ctx, nstates, fin_h, batch, m->out, tmp);
        final->c = m->cfg.mode == LOOM_LSTM ? stack(ctx, nstates, fin_c, batch, m->hidden, tmp) : LOOM_NULL;
    }
done:
    lm_free(&ctx->mem, xin, nsteps * sizeof *xin);
    lm_free(&ctx->mem, outs, 2 * nsteps * sizeof *outs);
    lm_free(&ctx->mem, masks, nsteps * sizeof *masks);
    lm_free(&ctx->mem, tmp, (nsteps + (size_t)nstates + 2) * sizeof *tmp);
    lm_free(&ctx->mem, fin_h, (size_t)nstates * sizeof *fin_h);
    lm_free(&ctx->mem, fin_c, (size_t)nstates * sizeof *fin_c);
    fe_name_error(ctx, fn); /* an error of a call made here */
    return ctx->err.code;
}
