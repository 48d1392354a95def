/*
 * verify.c — the IR verifier: structural invariants here, op semantics
 * through the opset. Linear in nodes + operands.
 */
#include "ir.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static loom_code bad(ir_graph *g, ir_id n, const char *what)
{
    return lm_fail(g->err, LOOM_ERR_INTERNAL, "verify: node %%%u (%s): %s", n,
                   ir_op_name(g, g->nodes[n].op), what);
}

static uint64_t recompute_hash(const ir_graph *g, ir_id n)
{
    const ir_node *x = &g->nodes[n];
    const loom_shape *s = ir_shape(g, n);
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    uint32_t head[4] = { x->op, x->dtype, (uint32_t)s->rank, x->nattr };
    XXH3_64bits_update(&st, head, 16);
    XXH3_64bits_update(&st, s->d, (size_t)s->rank * 8);
    if (x->nattr)
        XXH3_64bits_update(&st, g->attrs + x->attr, (size_t)x->nattr * 8);
    for (uint32_t i = 0; i < x->nsrc; i++)
        XXH3_64bits_update(&st, &g->nodes[ir_src(g, n, i)].hash, 8);
    return XXH3_64bits_digest(&st);
}

static bool in_cse_table(const ir_graph *g, ir_id n)
{
    size_t mask = g->cse_cap - 1;
    for (size_t h = (size_t)g->nodes[n].hash & mask; g->cse[h]; h = (h + 1) & mask)
        if (g->cse[h] == n)
            return true;
    return false;
}

loom_code ir_verify(ir_graph *g)
{
    if (ir_failed(g))
        return g->err->code;
    size_t slots = 0;
    for (ir_id n = 1; n < g->nnodes; n++) {
        const ir_node *x = &g->nodes[n];
        if (g->ops && x->op >= g->ops->count)
            return bad(g, n, "op out of range");
        if (x->dtype >= LOOM_DTYPE_COUNT)
            return bad(g, n, "dtype out of range");
        if (x->shape >= g->nshapes)
            return bad(g, n, "shape index out of range");
        if ((size_t)x->src + x->nsrc > g->nuse || (size_t)x->attr + x->nattr > g->nattrs)
            return bad(g, n, "operand or attribute range out of bounds");
        for (uint32_t i = 0; i < x->nsrc; i++) {
            const ir_use *u = &g->use[x->src + i];
            if (u->src == 0 || u->src >= n)
                return bad(g, n, "operand does not precede its user");
            if (u->owner != n)
                return bad(g, n, "operand slot has the wrong owner");
        }
        for (int i = 0; i < ir_shape(g, n)->rank; i++)
            if (ir_shape(g, n)->d[i] < 0)
                return bad(g, n, "negative dimension");
        if (recompute_hash(g, n) != x->hash)
            return bad(g, n, "stale structural hash");
        if (!in_cse_table(g, n))
            return bad(g, n, "missing from the hash-consing table");
        slots += x->nsrc;
    }
    if (slots != g->nuse)
        return lm_fail(g->err, LOOM_ERR_INTERNAL, "verify: %zu operand slots, %zu used", g->nuse, slots);
    /* every use list holds exactly the slots that name the node */
    size_t listed = 0;
    for (ir_id n = 1; n < g->nnodes; n++)
        for (uint32_t u = ir_first_use(g, n); u; u = ir_next_use(g, u)) {
            if (u > g->nuse || g->use[u - 1].src != n)
                return bad(g, n, "use list links a slot of another node");
            if (++listed > g->nuse)
                return bad(g, n, "use list has a cycle");
        }
    if (listed != g->nuse)
        return lm_fail(g->err, LOOM_ERR_INTERNAL, "verify: %zu uses listed of %zu", listed, g->nuse);
    if (g->ops && g->ops->verify)
        for (ir_id n = 1; n < g->nnodes; n++) {
            loom_code c = g->ops->verify(g, n);
            if (c != LOOM_OK)
                return c;
        }
    return LOOM_OK;
}
