/*
 * ops.h — the primitive ops. Each op is one line of ops.def and one file
 * in ops/defs/ holding its properties (as data: kind, flags, arity), its
 * shape rule, its VJP written with these same builders (so gradients are
 * ordinary graph nodes and differentiate again), its plain-C reference
 * kernel, and its gradient-check case. This layer also owns the node
 * builders every higher layer records with, numpy broadcasting, and the
 * reference executor: the op-by-op oracle every compiled result is checked
 * against. It depends on ir/ only.
 *
 * Builders are sticky: once the graph has failed, or when given a 0
 * operand, they return 0 and record nothing.
 */
#ifndef LOOM_OPS_H
#define LOOM_OPS_H

#include "ir.h"
#include "lower.h"

typedef enum op_id {
#define OP(NAME, name) OP_##NAME,
#include "ops.def"
#undef OP
    OP_COUNT
} op_id;

typedef enum op_kind {
    OPK_SOURCE,  /* no tensor operands (random takes its key) */
    OPK_UNARY,   /* elementwise, one operand */
    OPK_BINARY,  /* elementwise, two operands of one shape */
    OPK_TERNARY, /* where */
    OPK_REDUCE,
    OPK_MOVE,
    OPK_MATMUL,
    OPK_INDEX,   /* gather, scatter-add */
    OPK_SINK,    /* assign */
} op_kind;

enum op_flags {
    OPF_DIFF = 1u << 0,        /* has a VJP for some operand */
    OPF_ELEMENTWISE = 1u << 1, /* out[i] depends on in[i] only */
    OPF_COMMUTATIVE = 1u << 2,
    OPF_FLOAT = 1u << 3,       /* f32/f64 only */
    OPF_EXTERNAL = 1u << 4,    /* value lives outside the graph (input, param) */
    OPF_COMPARE = 1u << 5,     /* result is 1/0 */
};

/* Attribute words of the sources, shared with the frontend. */
enum { RANDOM_UNIFORM = 0, RANDOM_NORMAL = 1, RANDOM_BERNOULLI = 2 };

typedef struct op_infer op_infer;
typedef struct op_exec op_exec;
typedef struct op_check op_check;

typedef struct op_def {
    const char *name;
    op_kind kind;
    unsigned flags;
    int nsrc;  /* operands; -1: one or more */
    int nattr; /* attribute words; -1: checked by the shape rule */

    /* Shape rule: checks operands and attributes, sets b->dtype and
     * b->shape (which arrive holding the caller's request). */
    loom_code (*infer)(op_infer *b);
    /* VJP: given node n and the gradient dy of its output, sets dx[i] to
     * the gradient of operand i where need[i] (dx[] arrives zeroed; 0 means
     * no gradient). Nothing is built for operands that are not needed. */
    void (*vjp)(ir_graph *g, ir_id n, ir_id dy, const bool *need, ir_id *dx);
    /* Reference kernel in plain C, for f32, f64 (and i32 where legal). */
    loom_code (*ref)(const op_exec *e);
    /* Elementwise ops: the computation of one element for code
     * generators (see lower.h). */
    op_lower_fn lower;
    /* Scalar functions used by the shared elementwise kernels. */
    double (*f1)(double x);
    double (*f2)(double a, double b);
    /* Attributes as text for the printers; NULL prints the raw words. */
    void (*format)(const ir_graph *g, ir_id n, char *buf, size_t size);
    /* Gradient check: builds a small random use of the op in f64 (the
     * generic unary/binary cases use check_lo..check_hi as the domain). */
    ir_id (*check)(op_check *c);
    double check_lo, check_hi;
} op_def;

#define OP(NAME, name) extern const op_def op_def_##name;
#include "ops.def"
#undef OP

extern const op_def *const op_defs[OP_COUNT];
extern const ir_opset op_opset;

static inline const op_def *op_get(int op) { return op_defs[op]; }

/* Appends to buf as snprintf would, keeping it terminated (messages and
 * labels built in pieces). */
void op_catf(char *buf, size_t size, const char *fmt, ...) LM_PRINTF(3, 4);

/* ------------------------------------------------------------------ */
/* Shape rules                                                        */
/* ------------------------------------------------------------------ */

struct op_infer {
    ir_graph *g;
    int op;
    const ir_id *srcs;
    uint32_t nsrc;
    const int64_t *attrs;
    uint32_t nattr;
    loom_dtype dtype; /* in: the request; out: the result */
    loom_shape shape; /* in: the request; out: the result */
};

/* Records a shape error "<op>: <message> (operands f32[3,4], f32[5])". */
loom_code op_fail(op_infer *b, loom_code code, const char *fmt, ...) LM_PRINTF(3, 4);

static inline const loom_shape *op_in_shape(const op_infer *b, uint32_t i)
{
    return ir_shape(b->g, b->srcs[i]);
}
static inline loom_dtype op_in_dtype(const op_infer *b, uint32_t i)
{
    return ir_dtype(b->g, b->srcs[i]);
}

/* ------------------------------------------------------------------ */
/* Builders (node level; used by VJPs, the frontend and passes)       */
/* ------------------------------------------------------------------ */

/* The general builder: runs the shape rule, then inserts. dt and shape
 * are requests the rule may use (sources, reshape, expand) or ignore. */
ir_id op_make(ir_graph *g, int op, loom_dtype dt, const loom_shape *shape, const ir_id *srcs,
              uint32_t nsrc, const int64_t *attrs, uint32_t nattr);

ir_id op_const(ir_graph *g, loom_dtype dt, loom_shape s, double v);
ir_id op_const_like(ir_graph *g, ir_id x, double v); /* same shape and dtype */
ir_id op_input(ir_graph *g, loom_dtype dt, loom_shape s, uint32_t slot);
ir_id op_param(ir_graph *g, loom_dtype dt, loom_shape s, uint32_t pid);
ir_id op_iota(ir_graph *g, loom_dtype dt, loom_shape s, int axis);
/* key: an i32 [4] input {seed lo, seed hi, run lo, run hi}. */
ir_id op_random(ir_graph *g, loom_dtype dt, loom_shape s, ir_id key, int kind, uint32_t stream,
                double p);

ir_id op_unary(ir_graph *g, int op, ir_id x);
ir_id op_binary(ir_graph *g, int op, ir_id a, ir_id b); /* equal shapes */
ir_id op_cast(ir_graph *g, ir_id x, loom_dtype dt);
ir_id op_where(ir_graph *g, ir_id c, ir_id a, ir_id b);  /* equal shapes */
/* x, ordered after dep (one element of any shape and dtype, broadcast to
 * x's shape): see ops/defs/after.c. */
ir_id op_after(ir_graph *g, ir_id x, ir_id dep);

static inline ir_id op_neg(ir_graph *g, ir_id x) { return op_unary(g, OP_NEG, x); }
static inline ir_id op_add(ir_graph *g, ir_id a, ir_id b) { return op_binary(g, OP_ADD, a, b); }
static inline ir_id op_sub(ir_graph *g, ir_id a, ir_id b) { return op_binary(g, OP_SUB, a, b); }
static inline ir_id op_mul(ir_graph *g, ir_id a, ir_id b) { return op_binary(g, OP_MUL, a, b); }
static inline ir_id op_div(ir_graph *g, ir_id a, ir_id b) { return op_binary(g, OP_DIV, a, b); }
/* x op scalar (the scalar expanded to x's shape and dtype). */
ir_id op_adds(ir_graph *g, ir_id x, double v);
ir_id op_muls(ir_graph *g, ir_id x, double v);

/* Whether a reduction's bit mask of axes holds axis. */
static inline bool op_axis_in(uint32_t mask, int axis) { return (mask >> axis) & 1u; }

/* Reductions over a bit mask of axes. */
ir_id op_reduce(ir_graph *g, int op, ir_id x, uint32_t axes, bool keepdim);
static inline ir_id op_sum(ir_graph *g, ir_id x, uint32_t axes, bool keepdim)
{
    return op_reduce(g, OP_SUM, x, axes, keepdim);
}

ir_id op_reshape(ir_graph *g, ir_id x, loom_shape s); /* no -1 here */
ir_id op_permute(ir_graph *g, ir_id x, const int *perm);
ir_id op_expand(ir_graph *g, ir_id x, loom_shape s);  /* same rank, 1 -> n */
/* Per-axis start, stop, step (step >= 1, 0 <= start <= stop <= dim). */
ir_id op_slice(ir_graph *g, ir_id x, const int64_t *start, const int64_t *stop,
               const int64_t *step);
/* Per-axis lo, hi, interior (>= 0) padding with value (XLA's pad). */
ir_id op_pad(ir_graph *g, ir_id x, const int64_t *lo, const int64_t *hi, const int64_t *interior,
             double value);
ir_id op_concat(ir_graph *g, uint32_t n, const ir_id *xs, int axis);
ir_id op_matmul(ir_graph *g, ir_id a, ir_id b, bool ta, bool tb);
ir_id op_gather(ir_graph *g, ir_id x, ir_id idx, int axis);
ir_id op_scatter_add(ir_graph *g, ir_id src, ir_id idx, int axis, int64_t size);
ir_id op_assign(ir_graph *g, ir_id value, uint32_t pid);

/* numpy broadcasting: the common shape of a and b, or false. */
bool op_broadcast_shape(const loom_shape *a, const loom_shape *b, loom_shape *out);
/* x broadcast to s (leading 1s prepended, then expanded); x itself if its
 * shape is s. The caller has checked that it broadcasts. */
ir_id op_broadcast_to(ir_graph *g, ir_id x, loom_shape s);
/* Sums x down to shape s (the adjoint of op_broadcast_to). */
ir_id op_sum_to(ir_graph *g, ir_id x, loom_shape s);

/* ------------------------------------------------------------------ */
/* Reference executor                                                 */
/* ------------------------------------------------------------------ */

/* Where external values live during a run. */
typedef struct op_env {
    void *const *inputs; /* by input slot */
    const char *const *input_names; /* by slot, for messages; may be NULL */
    uint32_t ninputs;
    void *const *params; /* by parameter id; assignments are written here */
    uint32_t nparams;
    /* when set, called with each value as it is made (inputs and
     * parameters as they are read); an error stops the run */
    loom_code (*check)(void *ud, const ir_graph *g, ir_id n, const void *value);
    void *check_ud;
} op_env;

struct op_exec {
    const ir_graph *g;
    ir_id n;
    void *out;
    const void *const *in; /* one per operand */
    const op_env *env;
    lm_err *err;
};

/* Runs the graph op by op to compute roots[0..nroots), then commits every
 * assign among the roots to env->params. values[i] receives root i's value
 * (64-byte aligned, from g->mem; free with lm_free_aligned), or NULL for
 * an assign. Buffers of other nodes are freed as soon as their last user
 * has run. Errors (NOMEM, INDEX) are recorded in g->err. */
loom_code op_ref_run(ir_graph *g, const op_env *env, const ir_id *roots, uint32_t nroots,
                     void **values);

/* ------------------------------------------------------------------ */
/* Element access and index helpers for kernels                       */
/* ------------------------------------------------------------------ */

/* double to i32 the way the reference defines it: truncation toward
 * zero, saturating at the ends, NaN to 0 (C leaves these undefined). */
static inline int32_t op_to_i32(double v)
{
    if (v != v)
        return 0;
    if (v >= 2147483647.0)
        return INT32_MAX;
    if (v <= -2147483648.0)
        return INT32_MIN;
    return (int32_t)v;
}

static inline double op_load(const void *p, loom_dtype dt, int64_t i)
{
    switch (dt) {
    case LOOM_F32: return ((const float *)p)[i];
    case LOOM_F64: return ((const double *)p)[i];
    default: return ((const int32_t *)p)[i];
    }
}

static inline void op_store(void *p, loom_dtype dt, int64_t i, double v)
{
    switch (dt) {
    case LOOM_F32: ((float *)p)[i] = (float)v; break;
    case LOOM_F64: ((double *)p)[i] = v; break;
    default: ((int32_t *)p)[i] = op_to_i32(v); break;
    }
}

/* Row-major strides (in elements) of s. */
void op_strides(const loom_shape *s, int64_t *strides);

/* For a reduction of shape `in` over the axes in mask: the stride of each
 * input axis in the output (0 for reduced axes), and the output shape with
 * and without the kept size-1 dims. */
void op_reduce_layout(const loom_shape *in, uint32_t mask, int64_t *ost, loom_shape *keep,
                      loom_shape *drop);


/* ------------------------------------------------------------------ */
/* Gradient-check cases                                               */
/* ------------------------------------------------------------------ */

/* The harness behind op_def.check: cases create their inputs here, and
 * the harness (autograd/gradcheck.c) perturbs them. */
typedef struct op_check_input {
    ir_id node;
    uint32_t slot;
    bool diff;     /* differentiated (float inputs) */
    loom_dtype dtype;
    void *data;    /* [numel] of dtype */
    int64_t numel;
} op_check_input;

struct op_check {
    ir_graph *g;
    lm_rng rng;
    op_check_input *in;
    size_t nin, cap;
    int op;
    double eps;        /* finite-difference step; cases may raise it (default 1e-6) */
    loom_dtype dtype;  /* of the inputs op_check_input_new makes (gradchecks: f64) */
};

ir_graph *op_check_graph(op_check *c);
/* A differentiable input (of c->dtype) with values uniform in [lo, hi]. */
ir_id op_check_input_new(op_check *c, loom_shape s, double lo, double hi);
/* An i32 input with values in [0, bound). */
ir_id op_check_index(op_check *c, loom_shape s, int64_t bound);
/* A random integer in [lo, hi]. */
int op_check_int(op_check *c, int lo, int hi);
/* A random shape of rank in [rmin, rmax], dims in [1, 4]. */
loom_shape op_check_shape(op_check *c, int rmin, int rmax);
/* The generic cases for unary and binary elementwise ops: random shapes
 * (binary: broadcasting ones), values in [check_lo, check_hi]. */
ir_id op_check_unary(op_check *c);
ir_id op_check_binary(op_check *c);

void op_check_free(op_check *c);

#endif /* LOOM_OPS_H */
