/*
 * anomaly.c — the anomaly mode: a run that checks every value it stores
 * for NaN and infinity and stops at the first, naming the op that made it
 * and its place in the model (scope, time step, pass). The scans are the
 * backends' (the reference executor calls fe_anomaly_node on each value,
 * the plan executor checks each call's stores, runtime/exec.c); here are
 * the switch, the check of what a run reads (inputs, parameters) and the
 * messages.
 */
#include <math.h>

#include "fe.h"

loom_code loom_set_anomaly(loom_ctx *ctx, bool on)
{
    if (!ctx)
        return LOOM_ERR_HANDLE;
    ctx->anomaly = on;
    return LOOM_OK;
}

bool loom_get_anomaly(const loom_ctx *ctx) { return ctx && ctx->anomaly; }

bool fe_first_nonfinite(const void *data, loom_dtype dt, int64_t n, int64_t *index, double *value)
{
    loom_shape flat = { .rank = 1, .d = { n } };
    const int64_t one[1] = { 1 };
    return rt_first_bad(data, dt, &flat, one, index, value);
}

/* "nan at [3,1] of f32[8,4]" */
static void where_in(char *buf, size_t size, double value, int64_t index, loom_shape s, loom_dtype dt)
{
    int64_t c[LOOM_MAX_RANK];
    for (int i = s.rank - 1; i >= 0; i--) {
        int64_t d = s.d[i] > 0 ? s.d[i] : 1;
        c[i] = index % d;
        index /= d;
    }
    size_t at = (size_t)snprintf(buf, size, "%s at [", isnan(value) ? "nan" : value > 0 ? "inf" : "-inf");
    for (int i = 0; i < s.rank && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%lld", i ? "," : "", (long long)c[i]);
    char sh[160];
    if (at < size)
        snprintf(buf + at, size - at, "] of %s", loom_shape_str(s, dt, sh, sizeof sh));
}

/* " in scope "rnn.l1" at time step 17 (backward pass)" */
static void place(const loom_ctx *ctx, char *buf, size_t size, uint32_t scope, int32_t step, int phase)
{
    static const char *const passes[] = { "forward", "backward", "optimizer update" };
    const char *name = fe_scope_name(ctx, scope);
    size_t at = 0;
    if (name)
        at += (size_t)snprintf(buf + at, size - at, " in scope \"%s\"", name);
    if (step >= 0 && at < size)
        at += (size_t)snprintf(buf + at, size - at, " at time step %d", (int)step);
    if (at < size)
        snprintf(buf + at, size - at, " (%s pass)", phase >= 0 && phase <= 2 ? passes[phase] : "?");
}

void fe_index_place(loom_ctx *ctx, const plan *p, uint32_t origin)
{
    if (!origin || origin >= p->norigins || !loom_failed(ctx))
        return;
    const plan_origin *o = &p->origins[origin];
    size_t len = strlen(ctx->err.msg);
    if (len + 1 < sizeof ctx->err.msg)
        place(ctx, ctx->err.msg + len, sizeof ctx->err.msg - len, o->scope, o->step, o->phase);
}

loom_code fe_anomaly_fail(loom_ctx *ctx, const char *fn, const plan_origin *o, int64_t index, double value,
                          const char *fused)
{
    char at[256], pl[320];
    if (!o || !o->op) {
        lm_err_clear(&ctx->err);
        return fe_fail(ctx, LOOM_ERR_NUMERIC, fn, "anomaly: a copy or fill kernel stored %s (element %lld)%s%s",
                       isnan(value) ? "nan" : value > 0 ? "inf" : "-inf", (long long)index, fused ? "; " : "",
                       fused ? fused : "");
    }
    where_in(at, sizeof at, value, index, o->shape, (loom_dtype)o->dtype);
    place(ctx, pl, sizeof pl, o->scope, o->step, o->phase);
    lm_err_clear(&ctx->err);
    return fe_fail(ctx, LOOM_ERR_NUMERIC, fn, "anomaly: %s made %s%s, from finite operands%s%s",
                   op_get(o->op)->name, at, pl, fused ? "; " : "", fused ? fused : "");
}

/* What a run reads from outside must be finite too, else the first op
 * to read it would be blamed. */
static loom_code outside_fail(loom_ctx *ctx, const char *fn, bool param, uint32_t ext)
{
    int64_t index = 0;
    double value = 0;
    char at[256];
    if (param) {
        const fe_param *p = &ctx->params[ext];
        if (!fe_first_nonfinite(p->data, p->dtype, loom_shape_numel(p->shape), &index, &value))
            return LOOM_OK;
        where_in(at, sizeof at, value, index, p->shape, p->dtype);
        return fe_fail(ctx, LOOM_ERR_NUMERIC, fn, "anomaly: %s \"%s\" holds %s before the run",
                       p->buffer ? "buffer" : "parameter", p->name, at);
    }
    const fe_input *in = &ctx->inputs[ext];
    if (!in->data || !ir_valid(ctx->g, in->node))
        return LOOM_OK;
    loom_shape s = ir_shapev(ctx->g, in->node);
    loom_dtype dt = ir_dtype(ctx->g, in->node);
    if (!fe_first_nonfinite(in->data, dt, loom_shape_numel(s), &index, &value))
        return LOOM_OK;
    where_in(at, sizeof at, value, index, s, dt);
    return fe_fail(ctx, LOOM_ERR_NUMERIC, fn, "anomaly: input %s%s%s#%u holds %s as fed", in->name ? "\"" : "",
                   in->name ? in->name : "", in->name ? "\" " : "", ext, at);
}

loom_code fe_anomaly_outside(loom_ctx *ctx, const char *fn, const plan *p)
{
    for (size_t i = 0; i < p->nbuffers; i++) {
        const plan_buffer *pb = &p->buffers[i];
        if (pb->kind == PB_ARENA)
            continue;
        loom_code c = outside_fail(ctx, fn, pb->kind == PB_PARAM, pb->ext);
        if (c != LOOM_OK)
            return c;
    }
    return LOOM_OK;
}

/* The other ops of the kernel that stored the value blamed, which may
 * have made it in registers: "the kernel fuses it with exp, mul". */
static void fused_ops(const kernel *k, int blamed, char *buf, size_t size)
{
    buf[0] = 0;
    const kernel *progs = k->kind == KN_ROWS ? k->subs : k;
    uint32_t nprogs = k->kind == KN_ROWS ? k->nsubs : (k->kind == KN_MAP || k->kind == KN_REDUCE);
    int seen[24], nseen = 0;
    size_t at = 0;
    for (uint32_t s = 0; s < nprogs; s++) {
        const kernel *q = &progs[s];
        for (uint32_t i = 0; i <= q->ncode; i++) {
            /* the program's ops, then a reduction's own */
            int op = i < q->ncode ? q->code[i].op : q->kind == KN_REDUCE ? q->reduce_op : -1;
            bool dup = op < 0 || op == OP_CONST || op == blamed;
            for (int j = 0; j < nseen && !dup; j++)
                dup = seen[j] == op;
            if (dup || nseen == (int)LM_ARRAY_LEN(seen) || at >= size)
                continue;
            seen[nseen++] = op;
            at += (size_t)snprintf(buf + at, size - at, "%s%s", at ? ", " : "the kernel fuses it with ",
                                   op_get(op)->name);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Which op of a fused kernel made it                                 */
/* ------------------------------------------------------------------ */

/* The ops' lowerings (lower.h) run again in double for one element, each
 * value rounded to float when the op's dtype is f32, so that what
 * overflows or turns NaN in the kernel does here too. Values are slots
 * of a small pool; an instruction's result is copied out of it. */
typedef struct sx {
    kx kx; /* first: the lowerings are handed &sx.kx */
    double pool[256];
    int npool;
    double sink;
    int64_t coord[LOOM_MAX_RANK];
} sx;

static kx_val sx_new(sx *s, double v, loom_dtype dt)
{
    if (s->npool == (int)LM_ARRAY_LEN(s->pool))
        return &s->sink; /* a lowering this long does not exist; the answer is then only less sure */
    s->pool[s->npool] = dt == LOOM_F32 ? (double)(float)v : v;
    return &s->pool[s->npool++];
}

static kx_val sx_op(kx *k, kx_prim p, kx_val av, kx_val bv)
{
    double a = *(double *)av, b = bv ? *(double *)bv : 0, y;
    bool i32 = k->dtype == LOOM_I32;
    switch (p) {
    case KX_ADD: y = a + b; break;
    case KX_SUB: y = a - b; break;
    case KX_MUL: y = a * b; break;
    case KX_DIV: y = i32 ? (b != 0 ? trunc(a / b) : 0) : a / b; break;
    case KX_EQ: y = a == b; break;
    case KX_NE: y = a != b; break;
    case KX_LT: y = a < b; break;
    case KX_LE: y = a <= b; break;
    case KX_GT: y = a > b; break;
    case KX_GE: y = a >= b; break;
    case KX_NEG: y = -a; break;
    case KX_ABS: y = fabs(a); break;
    case KX_SQRT: y = sqrt(a); break;
    case KX_EXP: y = exp(a); break;
    case KX_LOG: y = log(a); break;
    case KX_LOG1P: y = log1p(a); break;
    case KX_TANH: y = tanh(a); break;
    case KX_SIGMOID: y = 1 / (1 + exp(-a)); break;
    case KX_SIN: y = sin(a); break;
    case KX_COS: y = cos(a); break;
    default: y = a;
    }
    return sx_new((sx *)k, y, k->dtype);
}

static kx_val sx_select(kx *k, kx_val cond, kx_val a, kx_val b)
{
    (void)k;
    return *(double *)cond != 0 ? a : b;
}

static kx_val sx_konst(kx *k, loom_dtype dt, double v)
{
    return sx_new((sx *)k, dt == LOOM_I32 ? (double)op_to_i32(v) : v, dt);
}

static kx_val sx_cast(kx *k, kx_val a, loom_dtype from, loom_dtype to)
{
    (void)from;
    double v = *(double *)a;
    return sx_new((sx *)k, to == LOOM_I32 ? (double)op_to_i32(v) : v, to);
}

static kx_val sx_coord(kx *k, int axis, loom_dtype dt)
{
    return sx_new((sx *)k, (double)((sx *)k)->coord[axis], dt);
}

static kx_val sx_random(kx *k, kx_val key, int kind, uint32_t stream, double p)
{
    (void)key, (void)kind, (void)stream, (void)p;
    return sx_new((sx *)k, 0.5, k->dtype); /* random values are finite: any one serves */
}

/* The program q evaluated at s->coord: the first instruction that made a
 * non-finite value from finite operands (-1 when none did; -2 when a load
 * read one: memory the call overwrote in place). */
static long sx_eval(sx *s, const kernel *q, char *const *args, double *val)
{
    for (uint32_t i = 0; i < q->ncode; i++) {
        const kn_instr *in = &q->code[i];
        loom_dtype dt = (loom_dtype)in->dtype;
        if (in->op == KI_STORE)
            continue;
        s->npool = 0;
        if (in->op == KI_LOAD) {
            int64_t off = 0;
            for (int d = 0; d < q->space.rank; d++)
                off += s->coord[d] * q->strides[(size_t)in->view * LOOM_MAX_RANK + (size_t)d];
            const char *base = args[in->arg];
            val[i] = dt == LOOM_F32 ? (double)((const float *)base)[off]
                     : dt == LOOM_F64 ? ((const double *)base)[off] : (double)((const int32_t *)base)[off];
            if (!isfinite(val[i]))
                return -2;
            continue;
        }
        const op_def *d = op_get(in->op);
        kx_node nd = { .op = in->op, .dtype = dt, .attrs = in->attr };
        kx_val ins[3] = { 0 };
        for (int k = 0; k < d->nsrc && k < 3 && in->op != OP_RANDOM; k++) {
            ins[k] = &val[in->src[k]];
            nd.src_dtype[k] = (loom_dtype)q->code[in->src[k]].dtype;
        }
        s->kx.dtype = dt;
        val[i] = *(double *)d->lower(&s->kx, &nd, ins);
        if (!isfinite(val[i]))
            return (long)i;
    }
    return -1;
}

/* The op of the element's program that made it: the instruction's op,
 * OP_SUM or OP_MAX when a reduction's own combining overflowed, or -1
 * when that cannot be told; *made is its value. */
static int culprit(loom_ctx *ctx, const rt_anomaly *an, double *made)
{
    const kernel *q = an->prog;
    const int64_t *st = q->strides + (size_t)q->code[an->store].view * LOOM_MAX_RANK;
    sx s = { .kx = { .op = sx_op, .select = sx_select, .konst = sx_konst, .cast = sx_cast, .coord = sx_coord,
                     .random = sx_random } };
    /* the stored element's coordinate; the reduced axes (stride 0) are
     * walked, a bounded number of times */
    int64_t rest = an->index;
    int red[LOOM_MAX_RANK], nred = 0;
    for (int d = q->space.rank - 1; d >= 0; d--) {
        if (st[d] == 0 && q->space.d[d] > 1) {
            red[nred++] = d;
            s.coord[d] = 0;
        } else {
            s.coord[d] = q->space.d[d] > 1 ? rest % q->space.d[d] : 0;
            rest /= q->space.d[d] > 1 ? q->space.d[d] : 1;
        }
    }
    size_t bytes = (q->ncode + 1) * sizeof(double);
    double *val = lm_alloc(&ctx->mem, bytes);
    if (!val) {
        lm_err_clear(&ctx->err); /* the anomaly is the error to report */
        return -1;
    }
    long found = -1;
    for (long tries = 0; tries < 1000000 && found == -1; tries++) {
        found = sx_eval(&s, q, an->args, val);
        int j = 0;
        for (; j < nred; j++) {
            if (++s.coord[red[j]] < q->space.d[red[j]])
                break;
            s.coord[red[j]] = 0;
        }
        if (j == nred)
            break; /* every reduced element seen */
    }
    if (found >= 0)
        *made = val[found];
    lm_free(&ctx->mem, val, bytes);
    if (found >= 0)
        return q->code[found].op;
    return found == -1 && q->kind == KN_REDUCE ? q->reduce_op : -1;
}

loom_code fe_anomaly_call(loom_ctx *ctx, const char *fn, const plan *p, const rt_anomaly *an)
{
    const plan_origin *o = an->origin && an->origin < p->norigins ? &p->origins[an->origin] : NULL;
    plan_origin blamed = o ? *o : (plan_origin){ 0 };
    double value = an->value;
    int op = an->prog ? culprit(ctx, an, &value) : -1;
    char fused[320];
    size_t at = 0;
    fused[0] = 0;
    if (o && op >= 0 && op != o->op) {
        /* made in registers: the place is the stored value's (a kernel
         * fuses one step of one scope) */
        at = (size_t)snprintf(fused, sizeof fused, "it reached memory as the output of %s",
                              op_get(o->op)->name);
        blamed.op = (uint16_t)op;
    }
    fused_ops(&p->kernels[p->calls[an->call].kernel], blamed.op ? blamed.op : -1, fused + at + (at ? 2 : 0),
              sizeof fused - at - 2);
    if (at && fused[at + 2])
        fused[at] = ';', fused[at + 1] = ' ';
    return fe_anomaly_fail(ctx, fn, o ? &blamed : NULL, an->index, value, fused[0] ? fused : NULL);
}

/* The reference executor's check of each value (op_env.check; ud is an
 * fe_anomaly_ud). */
loom_code fe_anomaly_node(void *ud, const ir_graph *g, ir_id n, const void *value)
{
    loom_ctx *ctx = ((fe_anomaly_ud *)ud)->ctx;
    const char *fn = ((fe_anomaly_ud *)ud)->fn;
    const ir_node *x = ir_node_at(g, n);
    if (x->op == OP_INPUT || x->op == OP_PARAM)
        return outside_fail(ctx, fn, x->op == OP_PARAM, (uint32_t)ir_attrs(g, n)[0]);
    int64_t index;
    double v;
    if (!fe_first_nonfinite(value, (loom_dtype)x->dtype, ir_numel(g, n), &index, &v))
        return LOOM_OK;
    plan_origin o = { .op = x->op, .phase = x->phase, .dtype = x->dtype, .step = x->step, .scope = x->scope,
                      .shape = ir_shapev(g, n) };
    return fe_anomaly_fail(ctx, fn, &o, index, v, NULL);
}
