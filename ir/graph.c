/*
 * graph.c — building the IR: node insertion with hash-consing, interned
 * shapes, use lists. Every insertion is O(1) amortised (plus the operand
 * count), so recording is linear in the size of the unrolled model.
 */
#include "ir.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

enum { SHAPE_TAB_MIN = 64, CSE_MIN = 1024 };

ir_graph *ir_graph_new(lm_mem mem, lm_err *err, const ir_opset *ops)
{
    mem.err = err;
    ir_graph *g = lm_zalloc(&mem, sizeof *g);
    if (!g)
        return NULL;
    g->mem = mem;
    g->err = err;
    g->ops = ops;
    g->cur_step = -1;
    g->cur_phase = IR_FWD;
    /* node 0 and operand slot 0 are placeholders (0 means none) */
    if (!LM_GROW(&g->mem, g->nodes, g->nodes_cap, 1)) {
        ir_graph_free(g);
        return NULL;
    }
    memset(&g->nodes[0], 0, sizeof g->nodes[0]);
    g->nnodes = 1;
    return g;
}

void ir_graph_free(ir_graph *g)
{
    if (!g)
        return;
    lm_mem m = g->mem;
    lm_free(&m, g->nodes, g->nodes_cap * sizeof *g->nodes);
    lm_free(&m, g->use, g->use_cap * sizeof *g->use);
    lm_free(&m, g->attrs, g->attrs_cap * sizeof *g->attrs);
    lm_free(&m, g->shapes, g->shapes_cap * sizeof *g->shapes);
    lm_free(&m, g->shape_tab, g->shape_tab_cap * sizeof *g->shape_tab);
    lm_free(&m, g->cse, g->cse_cap * sizeof *g->cse);
    lm_free(&m, g->scratch, g->scratch_cap);
    lm_free(&m, g, sizeof *g);
}

const char *ir_op_name(const ir_graph *g, int op)
{
    if (g->ops && g->ops->name && op >= 0 && op < g->ops->count)
        return g->ops->name(op);
    return "?";
}

size_t ir_use_count(const ir_graph *g, ir_id n)
{
    size_t k = 0;
    for (uint32_t u = ir_first_use(g, n); u; u = ir_next_use(g, u))
        k++;
    return k;
}

/* ------------------------------------------------------------------ */
/* Shape interning                                                    */
/* ------------------------------------------------------------------ */

static uint64_t shape_hash(const loom_shape *s)
{
    return XXH3_64bits(s->d, (size_t)s->rank * sizeof s->d[0]) ^ (uint64_t)s->rank;
}

static bool shape_tab_rehash(ir_graph *g, size_t ncap)
{
    uint32_t *tab = lm_zalloc(&g->mem, ncap * sizeof *tab);
    if (!tab)
        return false;
    for (size_t i = 0; i < g->nshapes; i++) {
        size_t h = (size_t)shape_hash(&g->shapes[i]) & (ncap - 1);
        while (tab[h])
            h = (h + 1) & (ncap - 1);
        tab[h] = (uint32_t)i + 1;
    }
    lm_free(&g->mem, g->shape_tab, g->shape_tab_cap * sizeof *tab);
    g->shape_tab = tab;
    g->shape_tab_cap = ncap;
    return true;
}

/* The index of s in the shape table, inserting it; UINT32_MAX on NOMEM. */
static uint32_t shape_intern(ir_graph *g, const loom_shape *s)
{
    loom_shape c = { .rank = s->rank };
    memcpy(c.d, s->d, (size_t)s->rank * sizeof s->d[0]); /* unused dims zero */
    if (g->shape_tab_cap == 0 && !shape_tab_rehash(g, SHAPE_TAB_MIN))
        return UINT32_MAX;
    uint64_t hv = shape_hash(&c);
    size_t mask = g->shape_tab_cap - 1, h = (size_t)hv & mask;
    for (; g->shape_tab[h]; h = (h + 1) & mask) {
        uint32_t i = g->shape_tab[h] - 1;
        if (loom_shape_equal(g->shapes[i], c))
            return i;
    }
    if (!LM_GROW(&g->mem, g->shapes, g->shapes_cap, g->nshapes + 1))
        return UINT32_MAX;
    uint32_t idx = (uint32_t)g->nshapes++;
    g->shapes[idx] = c;
    if (2 * g->nshapes > g->shape_tab_cap) {
        if (!shape_tab_rehash(g, g->shape_tab_cap * 2)) {
            g->nshapes--;
            return UINT32_MAX;
        }
    } else {
        g->shape_tab[h] = idx + 1;
    }
    return idx;
}

/* ------------------------------------------------------------------ */
/* Hash-consing                                                       */
/* ------------------------------------------------------------------ */

/* The structural hash covers what makes two nodes the same computation:
 * op, dtype, dims, attributes and the sources' own structural hashes (so
 * it does not depend on node numbering). */
static bool node_hash(ir_graph *g, const ir_desc *d, uint64_t *out)
{
    size_t need = 16 + (size_t)d->shape.rank * 8 + (size_t)d->nattr * 8 + (size_t)d->nsrc * 8;
    if (need > g->scratch_cap) {
        size_t cap = g->scratch_cap;
        void *buf = g->scratch;
        if (!lm_grow(&g->mem, &buf, &cap, need, 1))
            return false;
        g->scratch = buf;
        g->scratch_cap = cap;
    }
    uint8_t *p = g->scratch;
    uint32_t head[4] = { (uint32_t)d->op, (uint32_t)d->dtype, (uint32_t)d->shape.rank, d->nattr };
    memcpy(p, head, 16);
    p += 16;
    memcpy(p, d->shape.d, (size_t)d->shape.rank * 8);
    p += (size_t)d->shape.rank * 8;
    if (d->nattr) {
        memcpy(p, d->attrs, (size_t)d->nattr * 8);
        p += (size_t)d->nattr * 8;
    }
    for (uint32_t i = 0; i < d->nsrc; i++) {
        memcpy(p, &g->nodes[d->srcs[i]].hash, 8);
        p += 8;
    }
    *out = XXH3_64bits(g->scratch, (size_t)(p - g->scratch));
    return true;
}

static bool node_equal(const ir_graph *g, ir_id n, const ir_desc *d, uint32_t shape)
{
    const ir_node *x = &g->nodes[n];
    if (x->op != d->op || x->dtype != d->dtype || x->shape != shape || x->nsrc != d->nsrc ||
        x->nattr != d->nattr)
        return false;
    for (uint32_t i = 0; i < d->nsrc; i++)
        if (g->use[x->src + i].src != d->srcs[i])
            return false;
    return d->nattr == 0 || memcmp(g->attrs + x->attr, d->attrs, d->nattr * sizeof(int64_t)) == 0;
}

static bool cse_rehash(ir_graph *g, size_t ncap)
{
    ir_id *tab = lm_zalloc(&g->mem, ncap * sizeof *tab);
    if (!tab)
        return false;
    for (ir_id n = 1; n < g->nnodes; n++) {
        size_t h = (size_t)g->nodes[n].hash & (ncap - 1);
        while (tab[h])
            h = (h + 1) & (ncap - 1);
        tab[h] = n;
    }
    lm_free(&g->mem, g->cse, g->cse_cap * sizeof *tab);
    g->cse = tab;
    g->cse_cap = ncap;
    return true;
}

static ir_id add_node(ir_graph *g, const ir_desc *d, bool share)
{
    if (ir_failed(g))
        return 0;
    for (uint32_t i = 0; i < d->nsrc; i++)
        if (!ir_valid(g, d->srcs[i])) {
            lm_fail(g->err, LOOM_ERR_INTERNAL, "%s: operand %u is not a node (%u)",
                    ir_op_name(g, d->op), i, d->srcs[i]);
            return 0;
        }
    if (d->shape.rank < 0 || d->shape.rank > LOOM_MAX_RANK) {
        lm_fail(g->err, LOOM_ERR_INTERNAL, "%s: rank %d", ir_op_name(g, d->op), d->shape.rank);
        return 0;
    }
    if (g->nnodes >= UINT32_MAX - 1 || g->nuse + d->nsrc >= UINT32_MAX - 1 ||
        g->nattrs + d->nattr >= UINT32_MAX) {
        lm_fail(g->err, LOOM_ERR_NOMEM, "graph too large (%zu nodes)", g->nnodes);
        return 0;
    }
    uint32_t shape = shape_intern(g, &d->shape);
    uint64_t hash;
    if (shape == UINT32_MAX || !node_hash(g, d, &hash))
        return 0;

    if (g->cse_cap == 0 && !cse_rehash(g, CSE_MIN))
        return 0;
    size_t mask = g->cse_cap - 1, h = (size_t)hash & mask;
    for (; g->cse[h]; h = (h + 1) & mask) {
        ir_id c = g->cse[h];
        if (share && g->nodes[c].hash == hash && node_equal(g, c, d, shape))
            return c;
    }

    if (!LM_GROW(&g->mem, g->nodes, g->nodes_cap, g->nnodes + 1) ||
        !LM_GROW(&g->mem, g->use, g->use_cap, g->nuse + d->nsrc) ||
        !LM_GROW(&g->mem, g->attrs, g->attrs_cap, g->nattrs + d->nattr))
        return 0;
    ir_id id = (ir_id)g->nnodes;
    ir_node *x = &g->nodes[id];
    *x = (ir_node){
        .hash = hash,
        .op = (uint16_t)d->op,
        .dtype = (uint8_t)d->dtype,
        .phase = g->cur_phase,
        .shape = shape,
        .src = (uint32_t)g->nuse,
        .nsrc = d->nsrc,
        .attr = (uint32_t)g->nattrs,
        .nattr = d->nattr,
        .step = g->cur_step,
        .scope = g->cur_scope,
        .uses = 0,
    };
    for (uint32_t i = 0; i < d->nsrc; i++) {
        uint32_t slot = (uint32_t)g->nuse++;
        ir_node *s = &g->nodes[d->srcs[i]];
        g->use[slot] = (ir_use){ .src = d->srcs[i], .owner = id, .next = s->uses };
        s->uses = slot + 1;
    }
    if (d->nattr)
        memcpy(g->attrs + g->nattrs, d->attrs, d->nattr * sizeof(int64_t));
    g->nattrs += d->nattr;
    g->nnodes++;

    if (2 * g->nnodes > g->cse_cap) {
        if (!cse_rehash(g, g->cse_cap * 2))
            return 0;
    } else {
        g->cse[h] = id;
    }
    return id;
}

ir_id ir_add(ir_graph *g, const ir_desc *d) { return add_node(g, d, true); }

ir_id ir_add_unique(ir_graph *g, const ir_desc *d) { return add_node(g, d, false); }
