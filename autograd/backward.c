/*
 * backward.c — reverse-mode differentiation over the tape: one forward
 * sweep decides which nodes need a gradient, one reverse sweep calls their
 * VJPs and sums fan-out. Both are linear in the number of nodes, and so is
 * gradient checkpointing (each forward node is recomputed at most once).
 */
#include "autograd.h"

void ad_grads_free(ir_graph *g, ad_grads *gr)
{
    if (gr->grad)
        lm_free(&g->mem, gr->grad, gr->n * sizeof *gr->grad);
    gr->grad = NULL;
    gr->n = 0;
}

static bool is_float(loom_dtype dt) { return dt == LOOM_F32 || dt == LOOM_F64; }

/* ------------------------------------------------------------------ */
/* Checkpointing                                                      */
/* ------------------------------------------------------------------ */

/* A run is a maximal range of consecutive node ids recorded in the
 * forward phase at steps of one segment: a layer's k steps in a stack
 * recorded layer by layer, or all layers' if the model records each step
 * whole. The reverse sweep meets a run's nodes in one stretch, so the run
 * is recomputed once, when the sweep first reaches a node of it that
 * needs a VJP, from its first node up to that one. */
typedef struct ckpt {
    int k;
    ir_id *lo;      /* [n] first node of v's run, 0: in no run */
    uint8_t *fixed; /* [n] computed from parameters and constants alone */
    ir_id *rep;     /* [n] v's value in its run's recomputation */
    uint8_t *own;   /* [n] v's VJP runs on v itself, not on a recomputation */
    ir_id last;     /* lo of the run recorded last (not recomputed), 0: none */
    ir_id cur;      /* lo of the run recomputed last, 0: none */
    ir_id dep;      /* the ordering element of the last recomputation */
    ir_id *srcs;    /* scratch: a clone's operands ... */
    size_t srcs_cap;
    int64_t *attrs; /* ... and attributes (ir_add may move the graph's) */
    size_t attrs_cap;
    /* gradients of fixed nodes (weights) summed per run */
    ir_id *part;    /* [n] the sum of the current run's terms, 0: none */
    ir_id *touched; /* nodes with a part */
    size_t ntouched, touched_cap;
    ir_id part_run; /* lo of the run the parts belong to */
    /* gradients the run gave nodes of other runs */
    ir_id *out;
    size_t nout, out_cap;
    uint32_t *out_mark; /* [n] flush count + 1 when listed */
    uint32_t flushes;
    ir_id done;     /* f64 scalar: one element of each gradient finished since the last recomputation */
} ckpt;

static void ckpt_free(lm_mem *mem, ckpt *ck, size_t n)
{
    lm_free(mem, ck->lo, n * sizeof *ck->lo);
    lm_free(mem, ck->fixed, n);
    lm_free(mem, ck->rep, n * sizeof *ck->rep);
    lm_free(mem, ck->own, n);
    lm_free(mem, ck->srcs, ck->srcs_cap * sizeof *ck->srcs);
    lm_free(mem, ck->attrs, ck->attrs_cap * sizeof *ck->attrs);
    lm_free(mem, ck->part, n * sizeof *ck->part);
    lm_free(mem, ck->touched, ck->touched_cap * sizeof *ck->touched);
    lm_free(mem, ck->out, ck->out_cap * sizeof *ck->out);
    lm_free(mem, ck->out_mark, n * sizeof *ck->out_mark);
}

/* Runs, fixed nodes and the last run, for nodes 1..top. */
static bool ckpt_init(ir_graph *g, lm_mem *mem, ckpt *ck, ir_id top)
{
    size_t n = (size_t)top + 1;
    ck->lo = lm_zalloc(mem, n * sizeof *ck->lo);
    ck->fixed = lm_zalloc(mem, n);
    ck->rep = lm_zalloc(mem, n * sizeof *ck->rep);
    ck->own = lm_zalloc(mem, n);
    ck->part = lm_zalloc(mem, n * sizeof *ck->part);
    ck->out_mark = lm_zalloc(mem, n * sizeof *ck->out_mark);
    if (!ck->lo || !ck->fixed || !ck->rep || !ck->own || !ck->part || !ck->out_mark)
        return false;
    int64_t prev_seg = -1;
    ir_id run = 0;
    for (ir_id v = 1; v <= top; v++) {
        const ir_node *x = ir_node_at(g, v);
        int64_t seg = x->phase == IR_FWD && x->step >= 0 ? x->step / ck->k : -1;
        if (seg >= 0 && seg != prev_seg)
            run = v;
        prev_seg = seg;
        /* inputs and random draws vary from one execution to the next;
         * what depends on neither is the same for every step, kept
         * anyway, and in no run (though a parameter first used in a step
         * carries its mark) */
        bool fixed = x->op != OP_INPUT;
        for (uint32_t i = 0; i < x->nsrc && fixed; i++)
            fixed = ck->fixed[ir_src(g, v, i)];
        ck->fixed[v] = fixed;
        if (seg >= 0 && !fixed)
            ck->lo[v] = ck->last = run;
    }
    return true;
}

static bool is_view(int op) { return op == OP_RESHAPE || op == OP_PERMUTE || op == OP_EXPAND || op == OP_SLICE; }

/* The first element of x, as a one-element view. */
static ir_id first_element(ir_graph *g, ir_id x)
{
    loom_shape s = ir_shapev(g, x);
    int64_t start[LOOM_MAX_RANK] = { 0 }, stop[LOOM_MAX_RANK], step[LOOM_MAX_RANK];
    for (int i = 0; i < s.rank; i++)
        stop[i] = step[i] = 1;
    return op_slice(g, x, start, stop, step);
}

/* Whether s is recomputed with the run at lo. */
static bool in_run(const ckpt *ck, ir_id s, ir_id lo) { return ck->lo[s] == lo; }

/* Whether x is a constant, or a view of one. */
static bool is_constant(const ir_graph *g, ir_id x)
{
    while (is_view(ir_op(g, x)))
        x = ir_src(g, x, 0);
    return ir_op(g, x) == OP_CONST;
}

/* Records the recomputation of nodes lo..hi of one run, ordered after
 * dy (the gradient reaching the run): a node computed from nodes of the
 * run is cloned (same op, dtype, shape and attributes, operands
 * replaced by their recomputations); a value from outside the run
 * enters through after(value, dy) unless it is fixed. A view of an
 * outside value that is no larger than it enters whole (no copy of, say,
 * the whole embedding for one step's slice), and its VJP runs on the
 * view itself; so does an input recorded in the step. Random ops are recomputed from the same key and
 * attributes, so they draw the same numbers. */
static void recompute(ir_graph *g, lm_mem *mem, ckpt *ck, ir_id lo, ir_id hi, ir_id dy)
{
    g->cur_step = -1;
    g->cur_phase = IR_BWD;
    /* one element of the gradient orders the recomputation after it; a
     * constant gradient orders nothing, so an earlier one serves. The
     * gradients the runs before gave outside themselves order it too
     * (ck->done): they are then made, and the per-step terms they read
     * freed, before this segment's values are; else a compiler free to
     * place a batched product where its result is first read would keep
     * every segment's terms until the end. */
    if (!is_constant(g, dy) || !ck->dep)
        ck->dep = first_element(g, dy);
    if (ck->done) {
        loom_shape one = ir_shapev(g, ck->dep);
        ck->dep = op_add(g, ck->dep, op_reshape(g, op_cast(g, ck->done, ir_dtype(g, ck->dep)), one));
        ck->done = 0;
    }
    ir_id dep = ck->dep;
    ck->cur = lo;
    for (ir_id u = lo; u <= hi && !ir_failed(g); u++) {
        ir_node x = *ir_node_at(g, u); /* by value: insertions move the array */
        ck->rep[u] = u;
        ck->own[u] = 1;
        if (!ck->lo[u] || op_get(x.op)->kind == OPK_SINK)
            continue;
        bool inner = false;
        for (uint32_t i = 0; i < x.nsrc && !inner; i++)
            inner = in_run(ck, ir_src(g, u, i), lo);
        g->cur_step = x.step;
        g->cur_phase = IR_BWD;
        g->cur_scope = x.scope;
        /* an input fed for this step enters like a view of one */
        if (!inner && (x.nsrc == 0 || (is_view(x.op) && ir_numel(g, u) <= ir_numel(g, ir_src(g, u, 0))))) {
            ck->rep[u] = op_after(g, u, dep);
            continue;
        }
        if (!LM_GROW(mem, ck->srcs, ck->srcs_cap, x.nsrc) || !LM_GROW(mem, ck->attrs, ck->attrs_cap, x.nattr))
            return;
        if (x.nattr)
            memcpy(ck->attrs, ir_attrs(g, u), x.nattr * sizeof *ck->attrs);
        for (uint32_t i = 0; i < x.nsrc; i++) {
            ir_id s = ir_src(g, u, i);
            /* a matmul reads even a weight through after: the
             * time-batching pass groups products by their shared
             * operand, and this keeps the forward's products (batched
             * over the whole sequence), each segment's recomputed ones
             * and their gradients in groups of their own */
            bool direct = ck->fixed[s] && (x.op != OP_MATMUL || is_constant(g, s));
            ck->srcs[i] = in_run(ck, s, lo) ? ck->rep[s] : direct ? s : op_after(g, s, dep);
        }
        ir_id c = ir_add(g, &(ir_desc){ .op = x.op, .dtype = (loom_dtype)x.dtype, .shape = ir_shapev(g, u),
                                        .srcs = ck->srcs, .nsrc = x.nsrc, .attrs = ck->attrs,
                                        .nattr = x.nattr });
        if (!c)
            return;
        ck->rep[u] = c;
        ck->own[u] = 0;
    }
}

/* Weight gradients are summed run by run, each run's sum entering the
 * total through after (not an add), so the time-batching pass sums each
 * segment's products on its own: one GEMM over the whole sequence would
 * hold every step's gate gradients until the end of the backward pass,
 * the very O(T) memory checkpointing is for. */
static void part_add(ir_graph *g, lm_mem *mem, ckpt *ck, ir_id s, ir_id d)
{
    if (ck->part[s]) {
        ck->part[s] = op_add(g, ck->part[s], d);
        return;
    }
    if (!LM_GROW(mem, ck->touched, ck->touched_cap, ck->ntouched + 1))
        return;
    ck->touched[ck->ntouched++] = s;
    ck->part[s] = d;
}

/* ck->done += an element of x (a scalar in f64, so any float adds). */
static void mark_done(ir_graph *g, ckpt *ck, ir_id x)
{
    ir_id e = op_reshape(g, op_cast(g, first_element(g, x), LOOM_F64), LOOM_SCALAR);
    ck->done = ck->done ? op_add(g, ck->done, e) : e;
}

/* grad[s] += the run's sum for s, which is then none. */
static void part_flush_one(ir_graph *g, ckpt *ck, ir_id *grad, ir_id s)
{
    ir_id p = ck->part[s];
    if (!p)
        return;
    ck->part[s] = 0;
    ir_id sum = op_after(g, p, first_element(g, p));
    grad[s] = grad[s] ? op_add(g, grad[s], sum) : sum;
    mark_done(g, ck, grad[s]);
}

/* At the end of a run: its weight gradients summed, and what it gave
 * other runs marked done. */
static void part_flush(ir_graph *g, ckpt *ck, ir_id *grad)
{
    g->cur_step = -1;
    g->cur_phase = IR_BWD;
    for (size_t i = 0; i < ck->ntouched; i++)
        part_flush_one(g, ck, grad, ck->touched[i]);
    ck->ntouched = 0;
    for (size_t i = 0; i < ck->nout; i++)
        if (grad[ck->out[i]])
            mark_done(g, ck, grad[ck->out[i]]);
    ck->nout = 0;
    ck->flushes++;
}

/* Lists s (of another run) as given a gradient by the current run. */
static void out_add(lm_mem *mem, ckpt *ck, ir_id s)
{
    if (ck->out_mark[s] == ck->flushes + 1 || !LM_GROW(mem, ck->out, ck->out_cap, ck->nout + 1))
        return;
    ck->out_mark[s] = ck->flushes + 1;
    ck->out[ck->nout++] = s;
}

/* The node whose VJP stands for v's: v, or its recomputation (whose
 * operands correspond one to one to v's). */
static ir_id vjp_node(ir_graph *g, lm_mem *mem, ckpt *ck, ir_id v, ir_id dy)
{
    ir_id lo = ck->k ? ck->lo[v] : 0;
    if (!lo || lo == ck->last)
        return v;
    if (lo != ck->cur)
        recompute(g, mem, ck, lo, v, dy);
    return ck->own[v] ? v : ck->rep[v];
}

/* ------------------------------------------------------------------ */
/* The sweeps                                                         */
/* ------------------------------------------------------------------ */

loom_code ad_backward(ir_graph *g, uint32_t ny, const ir_id *ys, const ir_id *dys,
                      const uint8_t *wants, ad_grads *out)
{
    return ad_backward_ex(g, ny, ys, dys, wants, NULL, out);
}

loom_code ad_backward_ex(ir_graph *g, uint32_t ny, const ir_id *ys, const ir_id *dys,
                         const uint8_t *wants, const ad_options *o, ad_grads *out)
{
    out->grad = NULL;
    out->n = 0;
    if (ir_failed(g))
        return g->err->code;
    int every = o ? o->checkpoint_every : 0;
    if (every < 0)
        return lm_fail(g->err, LOOM_ERR_ARG, "backward: checkpoint_every is %d; it counts time steps (0: off)",
                       every);
    ir_id top = 0;
    for (uint32_t i = 0; i < ny; i++) {
        if (!ir_valid(g, ys[i]))
            return lm_fail(g->err, LOOM_ERR_HANDLE, "backward: output %u is not a node", i);
        top = LM_MAX(top, ys[i]);
    }
    size_t n = (size_t)top + 1;
    lm_mem mem = g->mem;
    int32_t saved_step = g->cur_step;
    uint8_t saved_phase = g->cur_phase;
    uint32_t saved_scope = g->cur_scope;
    uint8_t *rg = lm_zalloc(&mem, n);
    ir_id *grad = lm_zalloc(&mem, n * sizeof *grad);
    bool *need = NULL;
    ir_id *dx = NULL;
    size_t scratch = 0;
    ckpt ck = { .k = every };
    if (!rg || !grad || (every && !ckpt_init(g, &mem, &ck, top)))
        goto fail;

    /* requires-grad: wanted float nodes, and differentiable float nodes
     * with a requiring operand */
    for (ir_id v = 1; v <= top; v++) {
        if (!is_float(ir_dtype(g, v)))
            continue;
        if (wants[v]) {
            rg[v] = 1;
            continue;
        }
        if (!(op_get(ir_op(g, v))->flags & OPF_DIFF))
            continue;
        for (uint32_t i = 0; i < ir_nsrc(g, v) && !rg[v]; i++)
            rg[v] = rg[ir_src(g, v, i)];
    }

    for (uint32_t i = 0; i < ny; i++) {
        ir_id y = ys[i], seed = dys ? dys[i] : 0;
        if (!rg[y])
            continue;
        if (seed) {
            if (!ir_valid(g, seed) || ir_dtype(g, seed) != ir_dtype(g, y) ||
                !loom_shape_equal(ir_shapev(g, seed), ir_shapev(g, y))) {
                lm_fail(g->err, LOOM_ERR_SHAPE, "backward: the seed of output %u does not match its shape and dtype", i);
                goto fail;
            }
        } else {
            if (ir_numel(g, y) != 1) {
                char sh[160];
                lm_fail(g->err, LOOM_ERR_SHAPE,
                        "backward: output %u is %s; a gradient without a seed needs one element", i,
                        loom_shape_str(ir_shapev(g, y), ir_dtype(g, y), sh, sizeof sh));
                goto fail;
            }
            g->cur_phase = IR_BWD;
            seed = op_const_like(g, y, 1.0);
        }
        grad[y] = grad[y] ? op_add(g, grad[y], seed) : seed;
    }

    for (ir_id v = top; v >= 1 && !ir_failed(g); v--) {
        if (every) {
            /* v's gradient is complete before its own VJP */
            g->cur_step = -1;
            g->cur_phase = IR_BWD;
            part_flush_one(g, &ck, grad, v);
            if (ck.lo[v] != ck.part_run && ck.lo[v] && grad[v] && rg[v]) {
                part_flush(g, &ck, grad);
                ck.part_run = ck.lo[v];
            }
        }
        if (!grad[v] || !rg[v])
            continue;
        const op_def *d = op_get(ir_op(g, v));
        if (!(d->flags & OPF_DIFF))
            continue; /* a leaf: params, inputs */
        uint32_t ns = ir_nsrc(g, v);
        if (ns > scratch) {
            lm_free(&mem, need, scratch * sizeof *need);
            lm_free(&mem, dx, scratch * sizeof *dx);
            scratch = ns;
            need = lm_alloc(&mem, scratch * sizeof *need);
            dx = lm_alloc(&mem, scratch * sizeof *dx);
            if (!need || !dx)
                break;
        }
        bool any = false;
        for (uint32_t i = 0; i < ns; i++) {
            need[i] = rg[ir_src(g, v, i)];
            any |= need[i];
            dx[i] = 0;
        }
        if (!any)
            continue;
        ir_id at = vjp_node(g, &mem, &ck, v, grad[v]);
        g->cur_step = g->nodes[v].step;
        g->cur_phase = IR_BWD;
        g->cur_scope = g->nodes[v].scope;
        if (!at)
            break;
        d->vjp(g, at, grad[v], need, dx);
        for (uint32_t i = 0; i < ns; i++) {
            ir_id s = ir_src(g, v, i);
            if (!dx[i] || !need[i])
                continue;
            if (every && ck.lo[v] && ck.fixed[s]) {
                part_add(g, &mem, &ck, s, dx[i]);
                continue;
            }
            grad[s] = grad[s] ? op_add(g, grad[s], dx[i]) : dx[i];
            if (every && ck.lo[v] && ck.lo[s] && ck.lo[s] != ck.lo[v])
                out_add(&mem, &ck, s);
        }
    }
    if (every)
        part_flush(g, &ck, grad);
    g->cur_step = saved_step;
    g->cur_phase = saved_phase;
    g->cur_scope = saved_scope;
    if (ir_failed(g))
        goto fail;
    lm_free(&mem, need, scratch * sizeof *need);
    lm_free(&mem, dx, scratch * sizeof *dx);
    lm_free(&mem, rg, n);
    ckpt_free(&mem, &ck, n);
    out->grad = grad;
    out->n = n;
    return LOOM_OK;

fail:
    g->cur_step = saved_step;
    g->cur_phase = saved_phase;
    g->cur_scope = saved_scope;
    lm_free(&mem, need, scratch * sizeof *need);
    lm_free(&mem, dx, scratch * sizeof *dx);
    lm_free(&mem, rg, n);
    lm_free(&mem, grad, n * sizeof *grad);
    ckpt_free(&mem, &ck, n);
    return g->err->code;
}
