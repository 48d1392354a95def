/*
 * remat.c — recomputation: cheap forward values that the backward pass
 * reads are computed again where it reads them, instead of being kept in
 * memory from the forward pass to the backward pass.
 *
 * In an unrolled model every value the backward pass reads is written to
 * fresh memory at each time step and read back much later: traffic to
 * main memory, twice. A layer norm written from primitives keeps its
 * centred input x - mean and its normalised input (x - mean) * rstd, two
 * [B, N] values per step, where x itself and the [B, 1] statistics would
 * do. Such a value is a small tree of adds, subtracts, multiplies,
 * divides and negations whose leaves are free to keep (constants,
 * parameters, inputs, values much smaller than it, read through
 * broadcasts) but for at most one of its own size. Recomputing it keeps
 * that one leaf instead of the value — never more memory, and less when
 * several values share the leaf — and costs a few instructions in a
 * kernel that was reading memory anyway.
 *
 * Each backward reader gets its own copy of the tree, inserted without
 * hash-consing (ir_add_unique): a copy read by one node fuses into that
 * node's kernel, where one shared by kernels would have to be stored
 * again. Copies within one kernel are merged by LLVM. The pass runs last
 * among the graph passes, since a pass that rebuilds the graph through
 * ir_add would fold the copies back into the forward values.
 *
 * One sweep decides (trees are sized bottom-up, a node at a time) and
 * pass_copy copies: linear in nodes, each reader adding at most TREE_MAX
 * nodes.
 */
#include "plan.h"

enum {
    TREE_MAX = 8,   /* nodes in a recomputed tree */
    SMALL_RATIO = 16, /* a leaf this many times smaller than the value is free to keep */
    SIZE_MASK = 0x7f, /* size[]: the tree's nodes ... */
    HAS_BIG = 0x80,   /* ... and whether one of its leaves is a big one */
};

/* Whether op n is cheap enough to compute twice. */
static bool cheap(const ir_graph *g, ir_id n)
{
    switch (ir_op(g, n)) {
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_NEG:
        return ir_node_at(g, n)->phase == IR_FWD &&
               (ir_dtype(g, n) == LOOM_F32 || ir_dtype(g, n) == LOOM_F64);
    default:
        return false;
    }
}

/* The elements of memory that keeping leaf o costs: a broadcast or a
 * reshape keeps its operand; constants, parameters and inputs are kept
 * anyway. */
static int64_t kept_elements(const ir_graph *g, ir_id o)
{
    while (ir_op(g, o) == OP_EXPAND || ir_op(g, o) == OP_RESHAPE)
        o = ir_src(g, o, 0);
    int op = ir_op(g, o);
    if (op == OP_CONST || op == OP_PARAM || op == OP_INPUT)
        return 0;
    return ir_numel(g, o);
}

typedef struct remat {
    const ir_graph *from;
    const ir_id *map; /* pass_copy's: a node's copy in `to` */
    uint8_t *size;    /* [n] the tree recomputing it (SIZE_MASK, HAS_BIG); 0: not recomputed */
    uint64_t trees;
} remat;

/* A copy of v's tree in `to`, its leaves the kept values. */
static ir_id recompute(remat *r, ir_graph *to, ir_id v)
{
    const ir_graph *g = r->from;
    if (!r->size[v])
        return r->map[v];
    ir_id srcs[3];
    uint32_t ns = ir_nsrc(g, v);
    for (uint32_t i = 0; i < ns; i++)
        if (!(srcs[i] = recompute(r, to, ir_src(g, v, i))))
            return 0;
    const ir_node *x = ir_node_at(g, v);
    return ir_add_unique(to, &(ir_desc){ .op = x->op, .dtype = (loom_dtype)x->dtype, .shape = ir_shapev(g, v),
                                         .srcs = srcs, .nsrc = ns, .attrs = ir_attrs(g, v), .nattr = x->nattr });
}

/* pass_copy's rewrite: a backward node's cheap forward operands become
 * copies of their trees, marked as the node is (its step, the backward
 * phase), so that they fuse into its kernel. */
static ir_id reread(const ir_graph *from, ir_graph *to, ir_id n, ir_id *srcs, const ir_id *map, void *ud)
{
    remat *r = ud;
    const ir_node *x = ir_node_at(from, n);
    if (x->phase != IR_BWD)
        return 0;
    r->map = map;
    to->cur_step = x->step;
    to->cur_phase = x->phase;
    to->cur_scope = x->scope;
    for (uint32_t i = 0; i < x->nsrc; i++) {
        ir_id o = ir_src(from, n, i);
        if (r->size[o]) {
            srcs[i] = recompute(r, to, o);
            r->trees++;
        }
    }
    return 0;
}

loom_code pass_remat(const ir_graph *from, ir_graph *to, ir_id *roots, uint32_t nroots, uint64_t *trees)
{
    size_t n = ir_count(from) + 1;
    lm_mem mem = to->mem;
    remat r = { .from = from };
    r.size = lm_zalloc(&mem, n);
    if (!r.size)
        return lm_fail(to->err, LOOM_ERR_NOMEM, "remat: out of memory");
    /* decide: operands come first, so their trees are sized */
    for (ir_id v = 1; v < n; v++) {
        if (!cheap(from, v) || ir_nsrc(from, v) > 3)
            continue;
        int64_t numel = ir_numel(from, v);
        unsigned size = 1, big = 0;
        for (uint32_t i = 0; i < ir_nsrc(from, v); i++) {
            ir_id o = ir_src(from, v, i);
            if (i > 0 && o == ir_src(from, v, i - 1))
                continue; /* x * x keeps x once */
            if (r.size[o]) {
                size += r.size[o] & SIZE_MASK;
                big += (r.size[o] & HAS_BIG) != 0;
            } else if (kept_elements(from, o) * SMALL_RATIO > numel) {
                big++;
            }
        }
        if (size <= TREE_MAX && big <= 1)
            r.size[v] = (uint8_t)(size | (big ? HAS_BIG : 0));
    }
    loom_code c = pass_copy(from, to, roots, nroots, reread, &r);
    lm_free(&mem, r.size, n);
    if (trees)
        *trees = r.trees;
    return c;
}
