/*
 * registry.c — the op table generated from ops.def, and the opset the IR
 * uses to name, print and verify nodes.
 */
#include "ops_impl.h"

const op_def *const op_defs[OP_COUNT] = {
#define OP(NAME, name) [OP_##NAME] = &op_def_##name,
#include "ops.def"
#undef OP
};

static const char *opset_name(int op) { return op_defs[op]->name; }

static void opset_format(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    const op_def *d = op_def_of(g, n);
    if (d->format)
        d->format(g, n, buf, size);
    else
        op_format_words(g, n, buf, size);
}

/* A node is verified by rerunning its shape rule on its operands and
 * attributes, with its own shape and dtype as the request. */
static loom_code opset_verify(ir_graph *g, ir_id n)
{
    const op_def *d = op_def_of(g, n);
    const ir_node *x = ir_node_at(g, n);
    if (d->nsrc >= 0 ? x->nsrc != (uint32_t)d->nsrc : x->nsrc == 0)
        return lm_fail(g->err, LOOM_ERR_INTERNAL, "verify: %%%u (%s) has %u operands", n, d->name,
                       x->nsrc);
    if (d->nattr >= 0 && x->nattr != (uint32_t)d->nattr)
        return lm_fail(g->err, LOOM_ERR_INTERNAL, "verify: %%%u (%s) has %u attribute words", n,
                       d->name, x->nattr);
    ir_id srcs_small[8];
    ir_id *srcs = srcs_small;
    lm_mem m = g->mem;
    if (x->nsrc > LM_ARRAY_LEN(srcs_small) && !(srcs = lm_alloc(&m, x->nsrc * sizeof *srcs)))
        return g->err->code;
    for (uint32_t i = 0; i < x->nsrc; i++)
        srcs[i] = ir_src(g, n, i);
    op_infer b = {
        .g = g,
        .op = x->op,
        .srcs = srcs,
        .nsrc = x->nsrc,
        .attrs = ir_attrs(g, n),
        .nattr = x->nattr,
        .dtype = (loom_dtype)x->dtype,
        .shape = *ir_shape(g, n),
    };
    loom_code c = d->infer(&b);
    if (srcs != srcs_small)
        lm_free(&m, srcs, x->nsrc * sizeof *srcs);
    if (c != LOOM_OK)
        return c;
    if (b.dtype != x->dtype || !loom_shape_equal(b.shape, *ir_shape(g, n))) {
        char want[160], have[160];
        return lm_fail(g->err, LOOM_ERR_INTERNAL, "verify: %%%u (%s) is %s, its rule says %s", n,
                       d->name, loom_shape_str(*ir_shape(g, n), x->dtype, have, sizeof have),
                       loom_shape_str(b.shape, b.dtype, want, sizeof want));
    }
    return LOOM_OK;
}

const ir_opset op_opset = {
    .count = OP_COUNT,
    .name = opset_name,
    .format = opset_format,
    .verify = opset_verify,
};

loom_code op_fail(op_infer *b, loom_code code, const char *fmt, ...)
{
    char msg[LM_ERRMSG_SIZE], sh[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = strlen(msg);
    for (uint32_t i = 0; i < b->nsrc && len + 8 < sizeof msg; i++) {
        loom_shape_str(*op_in_shape(b, i), op_in_dtype(b, i), sh, sizeof sh);
        int k = snprintf(msg + len, sizeof msg - len, "%s%s", i ? ", " : " (operands ", sh);
        if (k > 0)
            len = LM_MIN(len + (size_t)k, sizeof msg - 1);
    }
    if (b->nsrc && len + 2 < sizeof msg)
        strcat(msg, ")");
    return lm_fail(b->g->err, code, "%s: %s", op_defs[b->op]->name, msg);
}

void op_catf(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strnlen(buf, size);
    if (len + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

void op_format_words(const ir_graph *g, ir_id n, char *buf, size_t size)
{
    const int64_t *a = ir_attrs(g, n);
    for (uint32_t i = 0; i < ir_nattr(g, n); i++)
        op_catf(buf, size, i ? ",%lld" : "%lld", (long long)a[i]);
}

void op_strides(const loom_shape *s, int64_t *strides)
{
    int64_t st = 1;
    for (int i = s->rank - 1; i >= 0; i--) {
        strides[i] = st;
        st *= s->d[i];
    }
}
