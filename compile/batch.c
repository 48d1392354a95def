/*
 * batch.c — time-batching: matmuls that could run as one large GEMM.
 *
 * An unrolled recurrent model multiplies every time step's input by the
 * same weight (x_t W), and its backward pass does the same with the gate
 * gradients (dG_t W) and sums per-step weight gradients (sum_t dG_t^T x_t).
 * Each is T small GEMMs of B rows where one GEMM of T*B rows would do, and
 * would run near peak. This pass finds such groups in any graph, from two
 * shapes, without knowing what a cell is:
 *
 *   shared operand:  matmul(x_i, W) for many i, the same W, flags and
 *                    shapes -> slices of matmul(concat_i x_i, W);
 *   sum of products: an add tree over matmul(a_i, b_i) of one structure ->
 *                    matmul(concat_i a_i, concat_i b_i) along the
 *                    contraction axis (plus the tree's other leaves).
 *
 * Candidates of both kinds are collected first; a matmul can be in two
 * (dG2_t W_ih2 is both one of the dG W_ih2 over all t and a term of the
 * gradient dh1_t = dG2_t W_ih2 + dG1_{t+1} W_hh1), and the larger batch
 * takes it. Members must come from at least two time steps: a group
 * within one step (x_t W + h U in a cell) would pay for stacking its
 * operands and gain little.
 *
 * A group is batched only when no operand depends on any member (else the
 * batched GEMM would be needed to compute its own input: the recurrent
 * h_{t-1} U is left alone). Dependencies are found in one sweep per 64
 * groups with a bit per group; a group found dependent gives its members
 * back to the smaller candidates, and the choice runs again (a few
 * rounds). The rewrite then builds a new graph in an order that respects
 * the dependencies: a batched GEMM is placed once all its operands exist,
 * whatever order the tape recorded them in.
 */
#include "plan_impl.h"

#include <stdlib.h>

enum { MAX_GROUPS = 4096, ROUNDS = 4 };

/* A pad of a sum of pads, at its position along the padded axis. */
typedef struct piece {
    int64_t lo;
    ir_id pad;
} piece;

/* A set of matmuls that could run as one. */
typedef struct cand {
    int kind;      /* 0: shared operand, 1: sum of products */
    uint32_t wpos; /* shared operand: which operand is shared (0 or 1) */
    ir_id root;    /* sum of products: the add tree's root */
    size_t off;    /* members: cm[off .. off + n), in time order */
    uint32_t n;
    bool dead;     /* found dependent on itself */
    bool used;     /* a group was made of it */
} cand;

typedef struct bgroup {
    int kind;
    uint32_t wpos;
    ir_id root;
    uint32_t cand;
    ir_id first, last; /* members, a chain through bnext in time order */
    uint32_t n;
    bool valid;
    ir_id built; /* the batched matmul in the new graph */
} bgroup;

typedef struct batcher {
    const ir_graph *g;
    ir_graph *to;
    lm_mem mem;
    size_t n;
    uint32_t *grp;     /* [n] group + 1 of a member matmul, 0: none */
    ir_id *bnext;      /* [n] next member of the same group */
    uint32_t *midx;    /* [n] a member's index in its group */
    uint32_t *tree;    /* [n] group + 1 at the root of a batched add tree */
    uint8_t *absorbed; /* [n] a batched tree's interior add or member: not built */
    uint8_t *seen;     /* [n] scratch of the shared-operand search */
    ir_id *map;        /* [n] node in the new graph, 0: not built */
    cand *cands;
    size_t ncands, cands_cap;
    ir_id *cm; /* candidates' members */
    size_t ncm, cm_cap;
    bgroup *groups;
    size_t ngroups, groups_cap;
    uint8_t *ptree;    /* [n] the root of an add tree of pads */
    piece *pieces;
    size_t pieces_cap;
    ir_id *leaves, *tstack; /* tree walks */
    size_t leaves_cap, tstack_cap;
    ir_id *stack; /* the rewrite's work stack */
    size_t nstack, stack_cap;
    size_t unbuilt; /* count_unbuilt's */
} batcher;

/* ------------------------------------------------------------------ */
/* Candidates                                                         */
/* ------------------------------------------------------------------ */

static bool is_mm2(const ir_graph *g, ir_id m)
{
    return ir_op(g, m) == OP_MATMUL && ir_shape(g, m)->rank == 2;
}

/* Two matmuls of one structure: flags, dtype and operand shapes. */
static bool same_structure(const ir_graph *g, ir_id a, ir_id b)
{
    const int64_t *fa = ir_attrs(g, a), *fb = ir_attrs(g, b);
    return fa[0] == fb[0] && fa[1] == fb[1] && ir_dtype(g, a) == ir_dtype(g, b) &&
           loom_shape_equal(ir_shapev(g, ir_src(g, a, 0)), ir_shapev(g, ir_src(g, b, 0))) &&
           loom_shape_equal(ir_shapev(g, ir_src(g, a, 1)), ir_shapev(g, ir_src(g, b, 1)));
}

/* Members in time order: by step mark, then id. A backward pass records
 * its steps last to first; every group listing them in time order lets
 * the stacked operands of different groups share one layout (and the
 * memory planner lay them out once, without copies). */
typedef struct tkey {
    int64_t step;
    ir_id id;
} tkey;

static int cmp_tkey(const void *a, const void *b)
{
    const tkey *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Appends a candidate of the n members at ms (any order) if they span
 * two steps at least. */
static bool add_cand(batcher *b, int kind, uint32_t wpos, ir_id root, ir_id *ms, size_t n)
{
    if (n < 2)
        return true;
    bool spans = false;
    for (size_t i = 1; i < n && !spans; i++)
        spans = ir_node_at(b->g, ms[i])->step != ir_node_at(b->g, ms[0])->step;
    if (!spans)
        return true;
    if (!LM_GROW(&b->mem, b->cands, b->cands_cap, b->ncands + 1) ||
        !LM_GROW(&b->mem, b->cm, b->cm_cap, b->ncm + n))
        return false;
    tkey *keys = lm_alloc(&b->mem, n * sizeof *keys);
    if (!keys)
        return false;
    for (size_t i = 0; i < n; i++)
        keys[i] = (tkey){ ir_node_at(b->g, ms[i])->step, ms[i] };
    qsort(keys, n, sizeof *keys, cmp_tkey);
    for (size_t i = 0; i < n; i++)
        b->cm[b->ncm + i] = keys[i].id;
    lm_free(&b->mem, keys, n * sizeof *keys);
    b->cands[b->ncands++] = (cand){ .kind = kind, .wpos = wpos, .root = root, .off = b->ncm, .n = (uint32_t)n };
    b->ncm += n;
    return true;
}

/* Matmuls sharing an operand: for each node and operand position, one
 * candidate per structure among its matmul uses (the forward x_t W and
 * the backward dG_t W both use W). */
static bool find_shared(batcher *b)
{
    const ir_graph *g = b->g;
    for (ir_id w = 1; w < b->n; w++) {
        for (uint32_t pos = 0; pos < 2; pos++) {
            for (;;) {
                ir_id lead = 0;
                size_t k = 0;
                for (uint32_t u = ir_first_use(g, w); u; u = ir_next_use(g, u)) {
                    ir_id m = ir_use_owner(g, u);
                    if (!is_mm2(g, m) || b->seen[m] || ir_src(g, m, pos) != w || ir_src(g, m, 1 - pos) == w)
                        continue;
                    if (!lead)
                        lead = m;
                    if (!same_structure(g, lead, m))
                        continue;
                    if (!LM_GROW(&b->mem, b->stack, b->stack_cap, k + 1))
                        return false;
                    b->stack[k++] = m;
                    b->seen[m] = 1;
                }
                if (!lead)
                    break;
                if (!add_cand(b, 0, pos, 0, b->stack, k))
                    return false;
            }
            for (uint32_t u = ir_first_use(g, w); u; u = ir_next_use(g, u))
                b->seen[ir_use_owner(g, u)] = 0;
        }
    }
    return true;
}

/* The leaves of the add tree at root (interior: adds used once) into
 * b->leaves; returns their count, or -1 when out of memory. */
static long tree_leaves(batcher *b, ir_id root)
{
    const ir_graph *g = b->g;
    size_t nl = 0, ns = 0;
    if (!LM_GROW(&b->mem, b->tstack, b->tstack_cap, 1))
        return -1;
    b->tstack[ns++] = root;
    while (ns) {
        ir_id v = b->tstack[--ns];
        if (!(ir_op(g, v) == OP_ADD && (v == root || ir_use_count(g, v) == 1))) {
            if (!LM_GROW(&b->mem, b->leaves, b->leaves_cap, nl + 1))
                return -1;
            b->leaves[nl++] = v;
            continue;
        }
        if (!LM_GROW(&b->mem, b->tstack, b->tstack_cap, ns + 2))
            return -1;
        b->tstack[ns++] = ir_src(g, v, 1);
        b->tstack[ns++] = ir_src(g, v, 0);
    }
    return (long)nl;
}

/* A matmul leaf a batched tree can take: used by the tree alone. */
static bool tree_member(const ir_graph *g, ir_id lead, ir_id m)
{
    return is_mm2(g, m) && ir_use_count(g, m) == 1 && same_structure(g, lead, m);
}

/* Sums of products: for each add tree (a rank-2 add not interior to a
 * bigger one), its matmul leaves of the first leaf matmul's structure. */
static bool find_sums(batcher *b)
{
    const ir_graph *g = b->g;
    for (ir_id v = 1; v < b->n; v++) {
        if (ir_op(g, v) != OP_ADD || ir_shape(g, v)->rank != 2)
            continue;
        if (ir_use_count(g, v) == 1 && ir_op(g, ir_use_owner(g, ir_first_use(g, v))) == OP_ADD)
            continue;
        long nl = tree_leaves(b, v);
        if (nl < 0)
            return false;
        ir_id lead = 0;
        size_t k = 0;
        for (long i = 0; i < nl; i++) {
            ir_id m = b->leaves[i];
            if (!lead && is_mm2(g, m) && ir_use_count(g, m) == 1)
                lead = m;
            if (lead && tree_member(g, lead, m))
                b->leaves[k++] = m; /* compacts in place: k <= i */
        }
        if (!add_cand(b, 1, 0, v, b->leaves, k))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* Choosing groups                                                    */
/* ------------------------------------------------------------------ */

/* A candidate's place in the order: larger first, then in id order. */
typedef struct rank {
    uint32_t n, cand;
} rank;

static int cmp_rank(const void *x, const void *y)
{
    const rank *a = x, *c = y;
    if (a->n != c->n)
        return a->n > c->n ? -1 : 1;
    return (a->cand > c->cand) - (a->cand < c->cand);
}

/* Largest candidates first, each taking the members still free; the
 * members of a smaller one may be left in one step or fewer than two. */
static bool choose(batcher *b, const rank *order)
{
    const ir_graph *g = b->g;
    for (size_t j = 0; j < b->ncands; j++) {
        cand *c = &b->cands[order[j].cand];
        if (c->dead || c->used)
            continue;
        const ir_id *ms = b->cm + c->off;
        uint32_t free = 0;
        ir_id first = 0;
        bool spans = false;
        for (uint32_t i = 0; i < c->n; i++) {
            if (b->grp[ms[i]])
                continue;
            free++;
            if (!first)
                first = ms[i];
            else if (ir_node_at(g, ms[i])->step != ir_node_at(g, first)->step)
                spans = true;
        }
        if (free < 2 || !spans)
            continue;
        if (b->ngroups >= MAX_GROUPS)
            return true;
        if (!LM_GROW(&b->mem, b->groups, b->groups_cap, b->ngroups + 1))
            return false;
        uint32_t gi = (uint32_t)b->ngroups++;
        bgroup *G = &b->groups[gi];
        *G = (bgroup){ .kind = c->kind, .wpos = c->wpos, .root = c->root, .cand = order[j].cand, .valid = true };
        c->used = true;
        for (uint32_t i = 0; i < c->n; i++) {
            ir_id m = ms[i];
            if (b->grp[m])
                continue;
            b->grp[m] = gi + 1;
            b->midx[m] = G->n++;
            if (G->first)
                b->bnext[G->last] = m;
            else
                G->first = m;
            G->last = m;
        }
    }
    return true;
}

/* Marks dependent groups invalid (their operands would need their own
 * result) and frees their members; returns whether any was. One forward
 * sweep ORs a bit per group, 64 groups a sweep. */
static bool check_independence(batcher *b, size_t from_group)
{
    const ir_graph *g = b->g;
    bool any = false;
    uint64_t *dep = lm_alloc(&b->mem, b->n * sizeof *dep);
    if (!dep) {
        lm_fail(b->to->err, LOOM_ERR_NOMEM, "batch: out of memory");
        return false;
    }
    for (size_t base = from_group; base < b->ngroups; base += 64) {
        memset(dep, 0, b->n * sizeof *dep);
        for (ir_id v = 1; v < b->n; v++) {
            uint64_t d = 0;
            for (uint32_t i = 0; i < ir_nsrc(g, v); i++)
                d |= dep[ir_src(g, v, i)];
            uint32_t gi = b->grp[v];
            if (gi && gi - 1 >= base && gi - 1 < base + 64) {
                uint64_t bit = 1ull << (gi - 1 - base);
                if (d & bit)
                    b->groups[gi - 1].valid = false;
                d |= bit;
            }
            dep[v] = d;
        }
    }
    lm_free(&b->mem, dep, b->n * sizeof *dep);
    for (size_t i = from_group; i < b->ngroups; i++) {
        bgroup *G = &b->groups[i];
        if (G->valid)
            continue;
        any = true;
        b->cands[G->cand].dead = true;
        for (ir_id m = G->first, next; m; m = next) {
            next = b->bnext[m];
            b->grp[m] = 0;
            b->bnext[m] = 0;
        }
        G->first = G->last = 0;
        G->n = 0;
    }
    return any;
}

/* Marks the interior adds of the tree at root as not to be built. */
static bool absorb_interior(batcher *b, ir_id root)
{
    size_t ns = 0;
    if (!LM_GROW(&b->mem, b->tstack, b->tstack_cap, 1))
        return false;
    b->tstack[ns++] = root;
    while (ns) {
        ir_id v = b->tstack[--ns];
        if (ir_op(b->g, v) != OP_ADD || (v != root && ir_use_count(b->g, v) != 1))
            continue;
        if (v != root)
            b->absorbed[v] = 1;
        if (!LM_GROW(&b->mem, b->tstack, b->tstack_cap, ns + 2))
            return false;
        b->tstack[ns++] = ir_src(b->g, v, 1);
        b->tstack[ns++] = ir_src(b->g, v, 0);
    }
    return true;
}

/* Candidates, then rounds of choosing and checking; then a batched
 * tree's root is marked to be built from its group, and its interior
 * adds and member products not to be built at all. */
static bool find_groups(batcher *b)
{
    if (!find_shared(b) || !find_sums(b))
        return false;
    rank *order = lm_alloc(&b->mem, (b->ncands + 1) * sizeof *order);
    if (!order)
        return false;
    for (size_t i = 0; i < b->ncands; i++)
        order[i] = (rank){ b->cands[i].n, (uint32_t)i };
    qsort(order, b->ncands, sizeof *order, cmp_rank);
    bool ok = true;
    for (int round = 0; round < ROUNDS && ok; round++) {
        size_t before = b->ngroups;
        ok = choose(b, order);
        if (!ok || !check_independence(b, before))
            break;
    }
    lm_free(&b->mem, order, (b->ncands + 1) * sizeof *order);
    if (!ok || ir_failed(b->to))
        return false;
    for (size_t i = 0; i < b->ngroups; i++) {
        bgroup *G = &b->groups[i];
        if (G->kind != 1 || !G->valid)
            continue;
        b->tree[G->root] = (uint32_t)i + 1;
        for (ir_id m = G->first; m; m = b->bnext[m])
            b->absorbed[m] = 1;
        if (!absorb_interior(b, G->root))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* Sums of pads                                                       */
/* ------------------------------------------------------------------ */

/* The gradient of a tensor cut into per-step slices is a sum of T pads,
 * each zero but for its step's block: T full-size fills and a T-way add
 * where one concatenation of the blocks would do. */

/* The axis a zero pad pads along (0 when it pads nothing), or -1 when it
 * pads with another value, has interior padding or pads two axes. */
static int pad_axis(const ir_graph *g, ir_id p)
{
    if (ir_op(g, p) != OP_PAD)
        return -1;
    const int64_t *a = ir_attrs(g, p);
    int r = ir_shape(g, p)->rank, axis = -1;
    if (ir_a2f(a[3 * r]) != 0.0)
        return -1;
    for (int i = 0; i < r; i++) {
        if (a[2 * r + i])
            return -1;
        if (a[i] || a[r + i]) {
            if (axis >= 0)
                return -1;
            axis = i;
        }
    }
    return axis < 0 ? 0 : axis;
}

static int cmp_piece(const void *x, const void *y)
{
    const piece *a = x, *c = y;
    return (a->lo > c->lo) - (a->lo < c->lo);
}

/* The pads of the tree at root that become one concatenation, sorted by
 * position, into b->pieces; their count (0: none, -1: no memory). Pads
 * used elsewhere too, or overlapping, stay ordinary leaves. */
static long tree_pads(batcher *b, ir_id root, int *axis_out)
{
    const ir_graph *g = b->g;
    long nl = tree_leaves(b, root);
    if (nl < 0)
        return -1;
    int axis = -1;
    size_t k = 0;
    for (long i = 0; i < nl; i++) {
        ir_id p = b->leaves[i];
        int ax = pad_axis(g, p);
        if (ax < 0 || ir_use_count(g, p) != 1 || (axis >= 0 && ax != axis) ||
            !loom_shape_equal(ir_shapev(g, p), ir_shapev(g, root)))
            continue;
        axis = ax;
        if (!LM_GROW(&b->mem, b->pieces, b->pieces_cap, k + 1))
            return -1;
        b->pieces[k++] = (piece){ ir_attrs(g, p)[ax], p };
    }
    if (k < 2)
        return 0;
    qsort(b->pieces, k, sizeof *b->pieces, cmp_piece);
    for (size_t i = 0; i + 1 < k; i++) /* disjoint */
        if (b->pieces[i].lo + ir_shape(g, ir_src(g, b->pieces[i].pad, 0))->d[axis] > b->pieces[i + 1].lo)
            return 0;
    *axis_out = axis;
    return (long)k;
}

/* Marks every add tree with two disjoint pads or more: its root becomes
 * a concatenation (plus the other leaves), its pads are not built. */
static bool find_pad_trees(batcher *b)
{
    const ir_graph *g = b->g;
    for (ir_id v = 1; v < b->n; v++) {
        if (ir_op(g, v) != OP_ADD)
            continue;
        if (ir_use_count(g, v) == 1 && ir_op(g, ir_use_owner(g, ir_first_use(g, v))) == OP_ADD)
            continue;
        int axis;
        long k = tree_pads(b, v, &axis);
        if (k < 0)
            return false;
        if (k == 0)
            continue;
        b->ptree[v] = 1;
        for (long i = 0; i < k; i++)
            b->absorbed[b->pieces[i].pad] = 1;
        if (!absorb_interior(b, v))
            return false;
    }
    return true;
}

static ir_id concat(batcher *b, ir_id *xs, uint32_t n, int axis);

/* The concatenation of a pad tree's pads' operands, zeros in the gaps. */
static ir_id build_pads(batcher *b, ir_id root)
{
    const ir_graph *g = b->g;
    int axis = 0;
    long k = tree_pads(b, root, &axis);
    if (k <= 0)
        return 0;
    loom_shape rs = ir_shapev(g, root);
    ir_id *xs = lm_alloc(&b->mem, (2 * (size_t)k + 1) * sizeof *xs);
    if (!xs)
        return 0;
    uint32_t n = 0;
    int64_t at = 0;
    b->to->cur_step = ir_node_at(g, root)->step;
    b->to->cur_phase = ir_node_at(g, root)->phase;
    b->to->cur_scope = ir_node_at(g, root)->scope;
    for (long i = 0; i <= k; i++) {
        int64_t lo = i < k ? b->pieces[i].lo : rs.d[axis];
        if (lo > at) {
            loom_shape zs = rs;
            zs.d[axis] = lo - at;
            xs[n++] = op_const(b->to, ir_dtype(g, root), zs, 0.0);
        }
        if (i < k) {
            ir_id x = ir_src(g, b->pieces[i].pad, 0);
            xs[n++] = b->map[x];
            at = lo + ir_shape(g, x)->d[axis];
        }
    }
    ir_id r = n == 1 ? xs[0] : concat(b, xs, n, axis);
    lm_free(&b->mem, xs, (2 * (size_t)k + 1) * sizeof *xs);
    return r;
}

/* ------------------------------------------------------------------ */
/* Rewriting                                                          */
/* ------------------------------------------------------------------ */

static ir_id copy_node(batcher *b, ir_id v)
{
    const ir_graph *g = b->g;
    const ir_node *x = ir_node_at(g, v);
    ir_id small[8], *srcs = small;
    if (x->nsrc > LM_ARRAY_LEN(small) && !(srcs = lm_alloc(&b->mem, x->nsrc * sizeof *srcs)))
        return 0;
    for (uint32_t i = 0; i < x->nsrc; i++)
        srcs[i] = b->map[ir_src(g, v, i)];
    b->to->cur_step = x->step;
    b->to->cur_phase = x->phase;
    b->to->cur_scope = x->scope;
    ir_id r = ir_add(b->to, &(ir_desc){ .op = x->op, .dtype = (loom_dtype)x->dtype, .shape = ir_shapev(g, v),
                                        .srcs = srcs, .nsrc = x->nsrc, .attrs = ir_attrs(g, v), .nattr = x->nattr });
    if (srcs != small)
        lm_free(&b->mem, srcs, x->nsrc * sizeof *srcs);
    return r;
}

/* concat along axis, but the concatenation along axis 0 of consecutive
 * row blocks of one tensor (each step's input cut from a [T, B, I]
 * input, each step's block of a batched product) is that tensor's block:
 * row blocks are contiguous memory, so reshapes do not matter. */
static ir_id concat(batcher *b, ir_id *xs, uint32_t n, int axis)
{
    ir_graph *to = b->to;
    ir_id base = 0;
    int64_t first = 0, next = 0;
    bool run = axis == 0;
    for (uint32_t i = 0; i < n && run; i++) {
        ir_id r = xs[i], sl = ir_op(to, r) == OP_RESHAPE ? ir_src(to, r, 0) : r;
        if (ir_op(to, sl) != OP_SLICE) {
            run = false;
            break;
        }
        ir_id bs = ir_src(to, sl, 0);
        const int64_t *a = ir_attrs(to, sl);
        loom_shape bsh = ir_shapev(to, bs);
        int rank = bsh.rank;
        for (int k = 1; k < rank && run; k++) /* whole along the other axes */
            run = a[k] == 0 && a[rank + k] == bsh.d[k] && a[2 * rank + k] == 1;
        run = run && a[2 * rank] == 1 && (i == 0 ? (base = bs, first = a[0], true) : bs == base && a[0] == next);
        next = a[rank];
    }
    if (!run || !base)
        return op_concat(to, n, xs, axis);
    loom_shape bsh = ir_shapev(to, base), want = ir_shapev(to, xs[0]);
    int64_t st[LOOM_MAX_RANK] = { 0 }, sp[LOOM_MAX_RANK], sk[LOOM_MAX_RANK];
    for (int k = 0; k < bsh.rank; k++) {
        sp[k] = bsh.d[k];
        sk[k] = 1;
    }
    st[0] = first;
    sp[0] = next;
    want.d[0] = 0;
    for (uint32_t i = 0; i < n; i++)
        want.d[0] += ir_shape(to, xs[i])->d[0];
    return op_reshape(to, op_slice(to, base, st, sp, sk), want);
}

/* Builds group gi's batched matmul (its operands built first). */
static ir_id build_group(batcher *b, uint32_t gi)
{
    bgroup *G = &b->groups[gi];
    if (G->built)
        return G->built;
    const ir_graph *g = b->g;
    ir_graph *to = b->to;
    ir_id *xa = lm_alloc(&b->mem, 2 * (size_t)G->n * sizeof *xa);
    if (!xa)
        return 0;
    ir_id *xb = xa + G->n, m0 = G->first;
    const int64_t *f = ir_attrs(g, m0);
    bool ta = f[0] != 0, tb = f[1] != 0;
    uint32_t k = 0;
    for (ir_id m = G->first; m; m = b->bnext[m], k++) {
        xa[k] = b->map[ir_src(g, m, 0)];
        xb[k] = b->map[ir_src(g, m, 1)];
    }
    to->cur_step = -1; /* the batched GEMM belongs to no single step */
    to->cur_phase = ir_node_at(g, m0)->phase;
    to->cur_scope = ir_node_at(g, m0)->scope;
    ir_id r;
    if (G->kind == 0) {
        /* the varying operand stacked on its row axis (rows of the
         * result when it is the left one, columns when the right one) */
        if (G->wpos == 1) {
            ir_id x = concat(b, xa, G->n, ta ? 1 : 0);
            r = op_matmul(to, x, xb[0], ta, tb);
        } else {
            ir_id x = concat(b, xb, G->n, tb ? 0 : 1);
            r = op_matmul(to, xa[0], x, ta, tb);
        }
    } else {
        /* both operands stacked along the contraction axis */
        ir_id a = concat(b, xa, G->n, ta ? 0 : 1), c = concat(b, xb, G->n, tb ? 1 : 0);
        r = op_matmul(to, a, c, ta, tb);
    }
    lm_free(&b->mem, xa, 2 * (size_t)G->n * sizeof *xa);
    G->built = r;
    return r;
}

/* Member m of a shared-operand group: its block of the batched result. */
static ir_id member_slice(batcher *b, ir_id m)
{
    const ir_graph *g = b->g;
    bgroup *G = &b->groups[b->grp[m] - 1];
    ir_id y = G->built;
    loom_shape ys = ir_shapev(b->to, y), ms = ir_shapev(g, m);
    uint32_t idx = b->midx[m];
    int axis = G->wpos == 1 ? 0 : 1;
    int64_t st[2] = { 0, 0 }, sp[2] = { ys.d[0], ys.d[1] }, sk[2] = { 1, 1 };
    st[axis] = (int64_t)idx * ms.d[axis];
    sp[axis] = st[axis] + ms.d[axis];
    return op_slice(b->to, y, st, sp, sk);
}


/* The nodes v needs before it can be built: its operands; for a group
 * member, every member's operands; for the root of a batched tree, its
 * leaves, or the operands of those it absorbs (members, pads). */
static bool needs(batcher *b, ir_id v, void (*push)(batcher *, ir_id))
{
    const ir_graph *g = b->g;
    if (b->tree[v] || b->ptree[v]) {
        long nl = tree_leaves(b, v);
        if (nl < 0)
            return false;
        for (long i = 0; i < nl; i++) {
            ir_id m = b->leaves[i];
            if (b->absorbed[m])
                for (uint32_t k = 0; k < ir_nsrc(g, m); k++)
                    push(b, ir_src(g, m, k));
            else
                push(b, m);
        }
        return true;
    }
    if (b->grp[v] && b->groups[b->grp[v] - 1].kind == 0) {
        for (ir_id m = b->groups[b->grp[v] - 1].first; m; m = b->bnext[m]) {
            push(b, ir_src(g, m, 0));
            push(b, ir_src(g, m, 1));
        }
        return true;
    }
    for (uint32_t i = 0; i < ir_nsrc(g, v); i++)
        push(b, ir_src(g, v, i));
    return true;
}

static void push_node(batcher *b, ir_id v)
{
    if (!b->map[v] && LM_GROW(&b->mem, b->stack, b->stack_cap, b->nstack + 1))
        b->stack[b->nstack++] = v;
}

static void count_unbuilt(batcher *b, ir_id v)
{
    if (!b->map[v])
        b->unbuilt++;
}

/* Builds v in the new graph (everything it needs is built). */
static ir_id build(batcher *b, ir_id v)
{
    const ir_graph *g = b->g;
    if (b->tree[v] || b->ptree[v]) {
        /* the batched products, the pads' concatenation, the other leaves */
        ir_id sum = 0;
        if (b->tree[v] && !(sum = build_group(b, b->tree[v] - 1)))
            return 0;
        if (b->ptree[v]) {
            ir_id c = build_pads(b, v);
            if (!c)
                return 0;
            sum = sum ? op_add(b->to, sum, c) : c;
        }
        long nl = tree_leaves(b, v);
        if (nl < 0)
            return 0;
        b->to->cur_step = ir_node_at(g, v)->step;
        b->to->cur_phase = ir_node_at(g, v)->phase;
        b->to->cur_scope = ir_node_at(g, v)->scope;
        for (long i = 0; i < nl; i++)
            if (!b->absorbed[b->leaves[i]])
                sum = op_add(b->to, sum, b->map[b->leaves[i]]);
        return sum;
    }
    if (b->grp[v] && b->groups[b->grp[v] - 1].kind == 0) {
        if (!build_group(b, b->grp[v] - 1))
            return 0;
        b->to->cur_step = ir_node_at(g, v)->step;
        b->to->cur_phase = ir_node_at(g, v)->phase;
        b->to->cur_scope = ir_node_at(g, v)->scope;
        return member_slice(b, v);
    }
    return copy_node(b, v);
}

loom_code pass_batch(const ir_graph *from, ir_graph *to, ir_id *roots, uint32_t nroots)
{
    batcher b = { .g = from, .to = to, .mem = to->mem, .n = ir_count(from) + 1 };
    b.grp = lm_zalloc(&b.mem, b.n * sizeof *b.grp);
    b.bnext = lm_zalloc(&b.mem, b.n * sizeof *b.bnext);
    b.midx = lm_zalloc(&b.mem, b.n * sizeof *b.midx);
    b.tree = lm_zalloc(&b.mem, b.n * sizeof *b.tree);
    b.map = lm_zalloc(&b.mem, b.n * sizeof *b.map);
    b.absorbed = lm_zalloc(&b.mem, b.n);
    b.seen = lm_zalloc(&b.mem, b.n);
    b.ptree = lm_zalloc(&b.mem, b.n);
    bool ok = b.grp && b.bnext && b.midx && b.tree && b.map && b.absorbed && b.seen && b.ptree && find_groups(&b) &&
              find_pad_trees(&b);
    if (!ok && !ir_failed(to))
        lm_fail(to->err, LOOM_ERR_NOMEM, "batch: out of memory");
    /* every node in id order, each pulling in what it needs first: a
     * batched node comes right after its last operand. A node on the
     * stack is looked at twice at most: once to push what it needs, once
     * to be built. */
    for (ir_id v = 1; v < b.n && !ir_failed(to); v++) {
        if (b.map[v] || b.absorbed[v])
            continue;
        push_node(&b, v);
        while (b.nstack && !ir_failed(to)) {
            ir_id top = b.stack[b.nstack - 1];
            if (b.map[top]) {
                b.nstack--;
                continue;
            }
            b.unbuilt = 0;
            if (!needs(&b, top, count_unbuilt)) {
                lm_fail(to->err, LOOM_ERR_NOMEM, "batch: out of memory");
                break;
            }
            if (b.unbuilt) {
                needs(&b, top, push_node);
                continue;
            }
            b.nstack--;
            b.map[top] = build(&b, top);
            if (!b.map[top] && !ir_failed(to))
                lm_fail(to->err, LOOM_ERR_INTERNAL, "batch: could not build node %%%u", top);
        }
    }
    for (uint32_t i = 0; i < nroots && !ir_failed(to); i++)
        roots[i] = b.map[roots[i]];
    to->cur_step = -1;
    to->cur_phase = IR_FWD;
    to->cur_scope = 0;
    lm_free(&b.mem, b.grp, b.n * sizeof *b.grp);
    lm_free(&b.mem, b.bnext, b.n * sizeof *b.bnext);
    lm_free(&b.mem, b.midx, b.n * sizeof *b.midx);
    lm_free(&b.mem, b.tree, b.n * sizeof *b.tree);
    lm_free(&b.mem, b.map, b.n * sizeof *b.map);
    lm_free(&b.mem, b.absorbed, b.n);
    lm_free(&b.mem, b.seen, b.n);
    lm_free(&b.mem, b.ptree, b.n);
    lm_free(&b.mem, b.pieces, b.pieces_cap * sizeof *b.pieces);
    lm_free(&b.mem, b.cands, b.cands_cap * sizeof *b.cands);
    lm_free(&b.mem, b.cm, b.cm_cap * sizeof *b.cm);
    lm_free(&b.mem, b.groups, b.groups_cap * sizeof *b.groups);
    lm_free(&b.mem, b.leaves, b.leaves_cap * sizeof *b.leaves);
    lm_free(&b.mem, b.tstack, b.tstack_cap * sizeof *b.tstack);
    lm_free(&b.mem, b.stack, b.stack_cap * sizeof *b.stack);
    return to->err->code;
}
