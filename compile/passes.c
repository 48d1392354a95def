/*
 * passes.c — graph-to-graph passes: dead-code elimination and algebraic
 * simplification. Each copies the nodes the roots reach into a new graph
 * in order (so hash-consing re-does CSE for free), rewriting on the way.
 * Both are linear in the number of nodes.
 */
#include "plan.h"

#include <math.h>

/* Marks the nodes the roots reach. live has ir_count(g) + 1 entries. */
static void mark_live(const ir_graph *g, const ir_id *roots, uint32_t nroots, uint8_t *live)
{
    for (uint32_t i = 0; i < nroots; i++)
        live[roots[i]] = 1;
    for (ir_id n = ir_last(g); n >= 1; n--)
        if (live[n])
            for (uint32_t i = 0; i < ir_nsrc(g, n); i++)
                live[ir_src(g, n, i)] = 1;
}

/* Copies node n of `from` into `to` with the operands map[]; the step and
 * phase marks come along. */
static ir_id copy_node(const ir_graph *from, ir_graph *to, ir_id n, const ir_id *srcs)
{
    const ir_node *x = ir_node_at(from, n);
    to->cur_step = x->step;
    to->cur_phase = x->phase;
    to->cur_scope = x->scope;
    return ir_add(to, &(ir_desc){ .op = x->op, .dtype = (loom_dtype)x->dtype, .shape = ir_shapev(from, n),
                                  .srcs = srcs, .nsrc = x->nsrc, .attrs = ir_attrs(from, n),
                                  .nattr = x->nattr });
}

loom_code pass_copy(const ir_graph *from, ir_graph *to, ir_id *roots, uint32_t nroots, pass_rewrite_fn rw, void *ud)
{
    size_t n = ir_count(from) + 1;
    lm_mem mem = to->mem;
    uint8_t *live = lm_zalloc(&mem, n);
    ir_id *map = lm_zalloc(&mem, n * sizeof *map);
    ir_id small[8], *srcs = small;
    size_t srcs_cap = LM_ARRAY_LEN(small);
    if (!live || !map)
        goto done;
    mark_live(from, roots, nroots, live);
    for (ir_id v = 1; v < n && !ir_failed(to); v++) {
        if (!live[v])
            continue;
        uint32_t ns = ir_nsrc(from, v);
        if (ns > srcs_cap) {
            ir_id *bigger = lm_alloc(&mem, ns * sizeof *bigger);
            if (!bigger)
                break;
            if (srcs != small)
                lm_free(&mem, srcs, srcs_cap * sizeof *srcs);
            srcs = bigger;
            srcs_cap = ns;
        }
        for (uint32_t i = 0; i < ns; i++)
            srcs[i] = map[ir_src(from, v, i)];
        ir_id r = rw ? rw(from, to, v, srcs, map, ud) : 0;
        map[v] = r ? r : copy_node(from, to, v, srcs);
    }
    for (uint32_t i = 0; i < nroots && !ir_failed(to); i++)
        roots[i] = map[roots[i]];
done:
    if (srcs != small)
        lm_free(&mem, srcs, srcs_cap * sizeof *srcs);
    lm_free(&mem, map, n * sizeof *map);
    lm_free(&mem, live, n);
    to->cur_step = -1;
    to->cur_phase = IR_FWD;
    to->cur_scope = 0;
    return to->err->code;
}

loom_code pass_dce(const ir_graph *from, ir_graph *to, ir_id *roots, uint32_t nroots)
{
    return pass_copy(from, to, roots, nroots, NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* Simplification                                                     */
/* ------------------------------------------------------------------ */

static bool is_const(const ir_graph *g, ir_id n, double *v)
{
    if (ir_op(g, n) != OP_CONST)
        return false;
    if (v)
        *v = ir_a2f(ir_attrs(g, n)[0]);
    return true;
}

static bool is_const_eq(const ir_graph *g, ir_id n, double want)
{
    double v;
    return is_const(g, n, &v) && v == want;
}

/* The rewrite of node n (of `from`) whose operands are already in `to`,
 * or 0 to copy it as it is. Every rewrite keeps dtype and shape. */
static ir_id simplify(const ir_graph *from, ir_graph *to, ir_id n, ir_id *s, const ir_id *map, void *ud)
{
    (void)map;
    (void)ud;
    int op = ir_op(from, n);
    const op_def *d = op_get(op);
    loom_shape shape = ir_shapev(from, n);
    loom_dtype dt = ir_dtype(from, n);
    double a, b;
    switch (op) {
    case OP_DETACH: /* gradients are built: the cut is no longer needed */
        return s[0];
    case OP_CAST:
        return ir_dtype(to, s[0]) == dt ? s[0] : 0;
    case OP_NEG:
        return ir_op(to, s[0]) == OP_NEG ? ir_src(to, s[0], 0) : 0;
    case OP_ADD:
        if (is_const_eq(to, s[1], 0))
            return s[0];
        if (is_const_eq(to, s[0], 0))
            return s[1];
        break;
    case OP_SUB:
        if (is_const_eq(to, s[1], 0))
            return s[0];
        break;
    case OP_MUL:
        if (is_const_eq(to, s[1], 1))
            return s[0];
        if (is_const_eq(to, s[0], 1))
            return s[1];
        break;
    case OP_DIV:
        if (is_const_eq(to, s[1], 1))
            return s[0];
        break;
    case OP_WHERE:
        if (is_const(to, s[0], &a))
            return a != 0 ? s[1] : s[2];
        break;
    case OP_MATMUL:
        /* a zero operand (an RNN's first step from a zero state) makes a
         * zero product; like most compilers this takes 0 * inf as 0 */
        if (is_const_eq(to, s[0], 0) || is_const_eq(to, s[1], 0))
            return op_const(to, dt, shape, 0.0);
        break;
    case OP_RESHAPE:
    case OP_EXPAND:
    case OP_PERMUTE:
    case OP_SLICE:
        /* a moved constant is a constant of the new shape */
        if (is_const(to, s[0], &a))
            return op_const(to, dt, shape, a);
        if (loom_shape_equal(shape, ir_shapev(to, s[0])) && op != OP_PERMUTE && op != OP_SLICE)
            return s[0];
        if (op == OP_RESHAPE && ir_op(to, s[0]) == OP_RESHAPE)
            return op_reshape(to, ir_src(to, s[0], 0), shape);
        if (op == OP_PERMUTE && ir_op(to, s[0]) == OP_PERMUTE) {
            /* out axis i = inner axis p[i] = source axis q[p[i]] */
            const int64_t *p = ir_attrs(from, n), *q = ir_attrs(to, s[0]);
            int perm[LOOM_MAX_RANK];
            for (int i = 0; i < shape.rank; i++)
                perm[i] = (int)q[p[i]];
            return op_permute(to, ir_src(to, s[0], 0), perm);
        }
        break;
    case OP_SUM:
    case OP_MAX: {
        /* reducing only size-1 axes moves nothing */
        loom_shape in = ir_shapev(to, s[0]);
        uint32_t mask = (uint32_t)ir_attrs(from, n)[0];
        bool trivial = true;
        for (int i = 0; i < in.rank; i++)
            trivial &= !op_axis_in(mask, i) || in.d[i] == 1;
        if (trivial)
            return op_reshape(to, s[0], shape);
        break;
    }
    default:
        break;
    }
    /* Elementwise ops on constants fold, with the reference's own scalar
     * function so the value is the one the reference computes. */
    if (d->kind == OPK_UNARY && d->f1 && is_const(to, s[0], &a)) {
        if (op == OP_CAST)
            return 0;
        return op_const(to, dt, shape, d->f1(a));
    }
    if (d->kind == OPK_BINARY && d->f2 && is_const(to, s[0], &a) && is_const(to, s[1], &b))
        return op_const(to, dt, shape, d->f2(a, b));
    return 0;
}

loom_code pass_simplify(const ir_graph *from, ir_graph *to, ir_id *roots, uint32_t nroots)
{
    return pass_copy(from, to, roots, nroots, simplify, NULL);
}

/* ------------------------------------------------------------------ */
/* Slice sinking                                                      */
/* ------------------------------------------------------------------ */

/* A cell computes its gates as one [B, 4H] sum and cuts it into four
 * [B, H] slices; a slice is a view, and a view needs memory, so the sum
 * would be a kernel of its own and the gate math another. Sinking the
 * slices into the elementwise expression (slice(a + b) = slice(a) +
 * slice(b), down to operands that have memory anyway) lets one kernel
 * compute the sum and the gate math together, reading the operands'
 * blocks in place.
 *
 * A sinking root is an elementwise node used by slices alone (at most
 * SINK_USES of them); the nodes used only by it, and theirs, dissolve
 * into it (a tree of at most SINK_TREE nodes). Neither is built: each
 * slice rebuilds the tree over its block. Slices that cover the root once
 * (the gates) recompute nothing. */
enum { SINK_USES = 16, SINK_TREE = 64 };

static bool sinkable(const ir_graph *g, ir_id n, const uint8_t *root)
{
    int op = ir_op(g, n);
    const op_def *d = op_get(op);
    if (!d->lower || !(d->flags & OPF_ELEMENTWISE) || op == OP_RANDOM || op == OP_IOTA || ir_nsrc(g, n) == 0 ||
        ir_nsrc(g, n) > 3 ||
        root[n])
        return false;
    for (uint32_t i = 0; i < ir_nsrc(g, n); i++)
        if (!loom_shape_equal(ir_shapev(g, ir_src(g, n, i)), ir_shapev(g, n)))
            return false;
    return true;
}

typedef struct sinker {
    const ir_graph *from;
    ir_graph *to;
    ir_id *map;
    uint8_t *dissolved;
} sinker;

/* v over the block that slice s cuts (v has s's operand's shape). */
static ir_id sink(sinker *k, ir_id v, ir_id s)
{
    const ir_graph *g = k->from;
    const int64_t *a = ir_attrs(g, s);
    int r = ir_shape(g, s)->rank;
    if (!k->dissolved[v])
        return op_slice(k->to, k->map[v], a, a + r, a + 2 * r);
    const ir_node *x = ir_node_at(g, v);
    ir_id srcs[3];
    for (uint32_t i = 0; i < x->nsrc; i++)
        if (!(srcs[i] = sink(k, ir_src(g, v, i), s)))
            return 0;
    k->to->cur_step = x->step;
    k->to->cur_phase = x->phase;
    k->to->cur_scope = x->scope;
    return ir_add(k->to, &(ir_desc){ .op = x->op, .dtype = (loom_dtype)x->dtype, .shape = ir_shapev(g, s),
                                     .srcs = srcs, .nsrc = x->nsrc, .attrs = ir_attrs(g, v), .nattr = x->nattr });
}

loom_code pass_sink_slices(const ir_graph *from, ir_graph *to, ir_id *roots, uint32_t nroots)
{
    size_t n = ir_count(from) + 1;
    lm_mem mem = to->mem;
    uint8_t *root = lm_zalloc(&mem, n), *dissolved = lm_zalloc(&mem, n);
    ir_id *tree = lm_zalloc(&mem, n * sizeof *tree); /* the sinking root a dissolved node belongs to */
    uint32_t *size = lm_zalloc(&mem, n * sizeof *size);
    ir_id *map = lm_zalloc(&mem, n * sizeof *map);
    ir_id small[8], *srcs = small;
    size_t srcs_cap = LM_ARRAY_LEN(small);
    if (!root || !dissolved || !tree || !size || !map)
        goto done;
    for (uint32_t i = 0; i < nroots; i++)
        root[roots[i]] = 1;
    /* users come after their operands: decide from the last node back */
    for (ir_id v = (ir_id)(n - 1); v >= 1; v--) {
        if (!sinkable(from, v, root) || ir_use_count(from, v) == 0)
            continue;
        uint32_t uses = ir_use_count(from, v);
        ir_id user = ir_use_owner(from, ir_first_use(from, v));
        if (uses == 1 && dissolved[user] && size[tree[user]] < SINK_TREE) {
            /* the only operand use of a dissolved node (x * x uses x twice) */
            dissolved[v] = 1;
            tree[v] = tree[user];
            size[tree[v]]++;
            continue;
        }
        bool all_slices = uses <= SINK_USES;
        for (uint32_t u = ir_first_use(from, v); u && all_slices; u = ir_next_use(from, u))
            all_slices = ir_op(from, ir_use_owner(from, u)) == OP_SLICE;
        if (all_slices) {
            dissolved[v] = 1;
            tree[v] = v;
            size[v] = 1;
        }
    }
    for (ir_id v = 1; v < n && !ir_failed(to); v++) {
        if (dissolved[v])
            continue;
        const ir_node *x = ir_node_at(from, v);
        if (x->op == OP_SLICE && dissolved[ir_src(from, v, 0)]) {
            sinker k = { from, to, map, dissolved };
            map[v] = sink(&k, ir_src(from, v, 0), v);
            continue;
        }
        if (x->nsrc > srcs_cap) {
            ir_id *bigger = lm_alloc(&mem, x->nsrc * sizeof *bigger);
            if (!bigger)
                break;
            if (srcs != small)
                lm_free(&mem, srcs, srcs_cap * sizeof *srcs);
            srcs = bigger;
            srcs_cap = x->nsrc;
        }
        for (uint32_t i = 0; i < x->nsrc; i++)
            srcs[i] = map[ir_src(from, v, i)];
        map[v] = copy_node(from, to, v, srcs);
    }
    for (uint32_t i = 0; i < nroots && !ir_failed(to); i++)
        roots[i] = map[roots[i]];
done:
    if (srcs != small)
        lm_free(&mem, srcs, srcs_cap * sizeof *srcs);
    lm_free(&mem, root, n);
    lm_free(&mem, dissolved, n);
    lm_free(&mem, tree, n * sizeof *tree);
    lm_free(&mem, size, n * sizeof *size);
    lm_free(&mem, map, n * sizeof *map);
    to->cur_step = -1;
    to->cur_phase = IR_FWD;
    to->cur_scope = 0;
    return to->err->code;
}
