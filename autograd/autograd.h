/*
 * autograd.h — reverse mode over the tape. Differentiating appends the
 * gradient graph to the same IR graph, built from each op's VJP with the
 * primitive builders, so gradients are ordinary nodes: fused and compiled
 * like the forward pass, and differentiable again. Gradient nodes carry
 * the time step of the node they differentiate and the IR_BWD phase, so
 * later passes see the backward cell of each step too.
 *
 * Also here: the finite-difference gradient checker that walks the op
 * list. Depends on ops/ and ir/.
 */
#ifndef LOOM_AUTOGRAD_H
#define LOOM_AUTOGRAD_H

#include "ops.h"

/* Gradients by node id: grad[n] for n < n_nodes (0 = none). */
typedef struct ad_grads {
    ir_id *grad;
    size_t n;
} ad_grads;

/* Appends the gradient of ys (each seeded by dys[i], or by 1 when dys is
 * NULL or dys[i] is 0, which needs a one-element y) to g. wants[n] != 0
 * (for n up to the largest y) marks the nodes whose gradients are wanted;
 * only paths from them to a y are differentiated, so nothing is built for
 * frozen parameters or constants. On success *out holds the table
 * (allocated from g->mem; release with ad_grads_free). */
loom_code ad_backward(ir_graph *g, uint32_t ny, const ir_id *ys, const ir_id *dys,
                      const uint8_t *wants, ad_grads *out);

/* How the backward pass is built. */
typedef struct ad_options {
    /* Gradient checkpointing (0: off). Time steps are grouped into
     * segments [j k, (j + 1) k); each run of consecutive forward nodes of
     * one segment (a layer's k steps, say) is recorded again just before
     * its VJPs, which read the recomputed values, so the forward values
     * they would have kept alive from the forward pass to the backward
     * pass die within the forward pass instead. Values enter a
     * recomputation through `after` ops (ops/defs/after.c) ordered after
     * the gradient reaching the run and after every gradient the runs
     * before gave outside themselves; parameters, constants and what is
     * computed from them alone are read as they are (by matmuls through
     * after too, so time-batching groups each segment's products apart
     * from the forward pass's). Weight gradients are summed run by run.
     * The run recorded last is not recomputed: the backward pass starts
     * with it, so its values are alive anyway. */
    int checkpoint_every;
} ad_options;

/* ad_backward with options (NULL: the defaults, as ad_backward). A
 * negative checkpoint_every is LOOM_ERR_ARG. */
loom_code ad_backward_ex(ir_graph *g, uint32_t ny, const ir_id *ys, const ir_id *dys,
                         const uint8_t *wants, const ad_options *o, ad_grads *out);
void ad_grads_free(ir_graph *g, ad_grads *gr);

/* Finite-difference check of one op's VJP in f64, on the random case its
 * definition builds: loss = sum(R * y) with a random R, analytic gradients
 * of every float input against central differences. */
typedef struct ad_check_stats {
    double max_abs;  /* worst |analytic - numeric| */
    double max_rel;  /* worst |a - n| / max(|a|, |n|) where max(|a|, |n|) > 1e-3 */
    int64_t checked; /* elements compared */
} ad_check_stats;

loom_code ad_gradcheck_op(lm_mem mem, lm_err *err, int op, uint64_t seed, ad_check_stats *st);

/* The same check for a case built by the caller (composite ops, cells):
 * build() creates inputs with op_check_input_new and returns the output. */
loom_code ad_gradcheck_case(lm_mem mem, lm_err *err, ir_id (*build)(op_check *c, void *ud),
                            void *ud, uint64_t seed, ad_check_stats *st);

#endif /* LOOM_AUTOGRAD_H */
