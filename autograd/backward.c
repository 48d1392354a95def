/*
 * backward.c — reverse-mode differentiation over the tape: one forward
 * sweep decides which nodes need a gradient, one reverse sweep calls their
 * VJPs and sums fan-out. Both are linear in the number of nodes.
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

loom_code ad_backward(ir_graph *g, uint32_t ny, const ir_id *ys, const ir_id *dys,
                      const uint8_t *wants, ad_grads *out)
{
    out->grad = NULL;
    out->n = 0;
    if (ir_failed(g))
        return g->err->code;
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
    uint8_t *rg = lm_zalloc(&mem, n);
    ir_id *grad = lm_zalloc(&mem, n * sizeof *grad);
    bool *need = NULL;
    ir_id *dx = NULL;
    size_t scratch = 0;
    if (!rg || !grad)
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
        g->cur_step = g->nodes[v].step;
        g->cur_phase = IR_BWD;
        d->vjp(g, v, grad[v], need, dx);
        for (uint32_t i = 0; i < ns; i++) {
            ir_id s = ir_src(g, v, i);
            if (!dx[i] || !need[i])
                continue;
            grad[s] = grad[s] ? op_add(g, grad[s], dx[i]) : dx[i];
        }
    }
    g->cur_step = saved_step;
    g->cur_phase = saved_phase;
    if (ir_failed(g))
        goto fail;
    lm_free(&mem, need, scratch * sizeof *need);
    lm_free(&mem, dx, scratch * sizeof *dx);
    lm_free(&mem, rg, n);
    out->grad = grad;
    out->n = n;
    return LOOM_OK;

fail:
    g->cur_step = saved_step;
    g->cur_phase = saved_phase;
    lm_free(&mem, need, scratch * sizeof *need);
    lm_free(&mem, dx, scratch * sizeof *dx);
    lm_free(&mem, rg, n);
    lm_free(&mem, grad, n * sizeof *grad);
    return g->err->code;
}
