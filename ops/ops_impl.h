/*
 * ops_impl.h — what the op definition files in ops/defs/ share: common
 * shape rules, the elementwise reference kernels driven by an op's scalar
 * function, attribute formatting. Internal to ops/.
 */
#ifndef LOOM_OPS_IMPL_H
#define LOOM_OPS_IMPL_H

#include <math.h>
#include <stdio.h>

#include "ops.h"

/* Shape rules. */
loom_code op_infer_unary(op_infer *b);   /* out = in; OPF_FLOAT ops reject i32 */
loom_code op_infer_binary(op_infer *b);  /* equal shapes and dtypes */
loom_code op_infer_source(op_infer *b);  /* the request, validated */

/* Reference kernels for elementwise ops from def->f1 / def->f2. */
loom_code op_ref_unary(const op_exec *e);
loom_code op_ref_binary(const op_exec *e);

/* out[i] = in[base + sum_k coord_k(i) * st[k]] over the coordinates of
 * out_shape: permute, expand and slice are all such views. */
void op_copy_strided(void *out, const void *in, loom_dtype dt, const loom_shape *out_shape,
                     int64_t base, const int64_t *st);

loom_code op_infer_reduce(op_infer *b);
/* A reduction's reference: acc = combine(acc, x) from init, in f64. */
loom_code op_ref_reduce(const op_exec *e, double init, double (*combine)(double acc, double x));
void op_format_reduce(const ir_graph *g, ir_id n, char *buf, size_t size);
ir_id op_check_reduce(op_check *c);

/* VJP of maximum / minimum: the gradient goes to the operand that wins
 * (a win_op b, win_op being OP_GT or OP_LT); a tie splits it in halves. */
void op_vjp_extremum(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx, int win_op);

/* Raw attribute words, comma separated (the default format). */
void op_format_words(const ir_graph *g, ir_id n, char *buf, size_t size);


/* The def of node n. */
static inline const op_def *op_def_of(const ir_graph *g, ir_id n) { return op_get(ir_op(g, n)); }

/* Common VJP helpers. */
static inline ir_id op_src(const ir_graph *g, ir_id n, uint32_t i) { return ir_src(g, n, i); }

#endif /* LOOM_OPS_IMPL_H */
