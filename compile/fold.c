/*
 * fold.c — lookups folded into the products they feed.
 *
 * An embedding feeding a linear map looks up rows of a table E [V, H]
 * and multiplies each by W: R rows of [H] times W. When the table has
 * fewer rows than are looked up (V < R: a character model looks up
 * T·B = 2048 rows of a 65-row table), the same values come from
 * multiplying the table once and looking up rows of the product:
 *
 *   gather(E, idx) · W                = gather(E · W, idx)
 *   dY^T · gather(E, idx)             = scatter_add(dY, idx)^T · E
 *   scatter_add(dY · W, idx)          = scatter_add(dY, idx) · W
 *
 * the forward product, and the two the backward pass makes of it (the
 * weight's gradient, and the table's through the product). Each turns an
 * R-row GEMM into a V-row one plus a lookup or a scatter of R rows; the
 * two backward ones share their scatter. After time-batching, layer 0's
 * input projection of an unrolled character model is one such product
 * over all time steps, and its three GEMMs — a quarter of a 2-layer
 * model's work — shrink by a factor R / V.
 *
 * The results are the same sums in another order (rounding differs in
 * the last bits, as between two BLAS). An index out of range still fails
 * the run: every rewrite keeps a lookup or scatter of the same indices
 * into the same V rows.
 *
 * One pass_copy over the nodes, a constant amount of work at each:
 * linear.
 */
#include "plan.h"

/* A fold must shrink the product at least this many times (R >= RATIO·V). */
enum { FOLD_RATIO = 2 };

typedef struct folder {
    uint64_t folds;
} folder;

/* Whether v (in g) is rows looked up from a table: gather(E, idx, axis 0)
 * of a 2-D E, itself or reshaped to [numel(idx), H]. */
static bool lookup_rows(const ir_graph *g, ir_id v, ir_id *table, ir_id *idx)
{
    if (ir_shape(g, v)->rank != 2)
        return false;
    ir_id x = ir_op(g, v) == OP_RESHAPE ? ir_src(g, v, 0) : v;
    if (ir_op(g, x) != OP_GATHER || ir_attrs(g, x)[0] != 0 || ir_shape(g, ir_src(g, x, 0))->rank != 2)
        return false;
    *table = ir_src(g, x, 0);
    *idx = ir_src(g, x, 1);
    return ir_shape(g, v)->d[0] == ir_numel(g, *idx);
}

static bool worth_it(const ir_graph *g, ir_id table, ir_id idx)
{
    return ir_shape(g, table)->d[0] * FOLD_RATIO <= ir_numel(g, idx);
}

/* v [R, N] as [idx..., N], the layout gather and scatter_add use. */
static ir_id by_index(ir_graph *g, ir_id v, ir_id idx)
{
    const loom_shape *is = ir_shape(g, idx);
    loom_shape s = *is;
    s.d[s.rank++] = ir_shape(g, v)->d[1];
    return op_reshape(g, v, s);
}

enum { PUSH_DEPTH = 8 }; /* sums of products a scatter goes through, nested */

/* scatter_add(y, idx) into v rows, y [R, N] a product Q · op(W) with R
 * rows or a sum of such: the scatters of the Qs times the Ws, or 0 when
 * some term is not such a product. Counts the products folded. */
static ir_id push_scatter(ir_graph *g, ir_id y, ir_id idx, int64_t v, int depth, uint64_t *folds)
{
    if (ir_op(g, y) == OP_MATMUL && !ir_attrs(g, y)[0]) {
        ir_id p = op_scatter_add(g, by_index(g, ir_src(g, y, 0), idx), idx, 0, v);
        (*folds)++;
        return op_matmul(g, p, ir_src(g, y, 1), false, ir_attrs(g, y)[1] != 0);
    }
    if (ir_op(g, y) != OP_ADD || depth >= PUSH_DEPTH)
        return 0;
    ir_id a = ir_src(g, y, 0), b = ir_src(g, y, 1);
    if (!loom_shape_equal(ir_shapev(g, a), ir_shapev(g, y)) || !loom_shape_equal(ir_shapev(g, b), ir_shapev(g, y)))
        return 0;
    uint64_t before = *folds;
    ir_id sa = push_scatter(g, a, idx, v, depth + 1, folds);
    ir_id sb = sa ? push_scatter(g, b, idx, v, depth + 1, folds) : 0;
    if (!sb) {
        *folds = before; /* what was built is dead: the next pass drops it */
        return 0;
    }
    return op_add(g, sa, sb);
}

static ir_id fold(const ir_graph *from, ir_graph *to, ir_id n, ir_id *s, const ir_id *map, void *ud)
{
    (void)map;
    folder *f = ud;
    int op = ir_op(from, n);
    if ((op != OP_MATMUL && op != OP_SCATTER_ADD) || ir_shape(from, n)->rank != 2)
        return 0;
    const ir_node *x = ir_node_at(from, n);
    const int64_t *at = ir_attrs(from, n);
    ir_id table, idx, r = 0;
    to->cur_step = x->step;
    to->cur_phase = x->phase;
    to->cur_scope = x->scope;
    if (op == OP_MATMUL) {
        bool ta = at[0] != 0, tb = at[1] != 0;
        if (!ta && lookup_rows(to, s[0], &table, &idx) && worth_it(to, table, idx)) {
            /* gather(E, idx) · op(W) = gather(E · op(W), idx) */
            ir_id y = op_gather(to, op_matmul(to, table, s[1], false, tb), idx, 0);
            r = op_reshape(to, y, ir_shapev(from, n));
        } else if (ta && !tb && lookup_rows(to, s[1], &table, &idx) && worth_it(to, table, idx)) {
            /* P^T · gather(E, idx) = scatter_add(P, idx)^T · E */
            ir_id p = op_scatter_add(to, by_index(to, s[0], idx), idx, 0, ir_shape(to, table)->d[0]);
            r = op_matmul(to, p, table, true, false);
        } else if (ta && !tb && lookup_rows(to, s[0], &table, &idx) && worth_it(to, table, idx)) {
            /* gather(E, idx)^T · P = E^T · scatter_add(P, idx) */
            ir_id p = op_scatter_add(to, by_index(to, s[1], idx), idx, 0, ir_shape(to, table)->d[0]);
            r = op_matmul(to, table, p, true, false);
        }
    } else if (at[0] == 0 && ir_shape(to, s[1])->rank + 1 == ir_shape(to, s[0])->rank &&
               at[1] * FOLD_RATIO <= ir_numel(to, s[1])) {
        /* scatter_add(Q · op(W), idx) = scatter_add(Q, idx) · op(W), and
         * through sums of such products */
        ir_id y = ir_op(to, s[0]) == OP_RESHAPE ? ir_src(to, s[0], 0) : s[0];
        const loom_shape *ys = ir_shape(to, y), *ss = ir_shape(to, s[0]);
        if (ys->rank == 2 && ys->d[0] == ir_numel(to, s[1]) && ys->d[1] == ss->d[ss->rank - 1])
            r = push_scatter(to, y, s[1], at[1], 0, &f->folds);
        return r;
    }
    if (r)
        f->folds++;
    return r;
}

loom_code pass_fold_lookups(const ir_graph *from, ir_graph *to, ir_id *roots, uint32_t nroots, uint64_t *folds)
{
    folder f = { 0 };
    loom_code c = pass_copy(from, to, roots, nroots, fold, &f);
    if (folds)
        *folds += f.folds;
    return c;
}
