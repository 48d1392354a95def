/*
 * loom.h — the public C API of loom, a dataflow/autograd framework with a
 * graph compiler, made for recurrent networks.
 *
 * A model is written as ordinary calls that record a tape: nothing is
 * computed when you call loom_tanh(); a node is appended and a handle comes
 * back. A recurrent model is a C loop over time steps, so the tape is the
 * network unrolled through time. loom_backward() appends the gradient graph
 * to the same tape (BPTT), and loom_run() evaluates what you ask for.
 *
 *     loom_ctx *ctx = loom_ctx_new(NULL);
 *     loom_t W = loom_param(ctx, "W", LOOM_F32, LOOM_SHAPE(4, 3));
 *     loom_param_init_normal(ctx, W, 0.0, 0.1);
 *     loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(8, 4));
 *     loom_t loss = loom_mean_all(ctx, loom_tanh(ctx, loom_matmul(ctx, x, W)));
 *     loom_backward(ctx, loss);
 *     loom_assign(ctx, W, loom_sub(ctx, W, loom_muls(ctx, loom_grad(ctx, W), 0.1)));
 *     if (loom_failed(ctx))                 // builders are sticky: check once
 *         fprintf(stderr, "%s\n", loom_errmsg(ctx));
 *     loom_feed(ctx, x, data, sizeof data);
 *     loom_run(ctx, 1, &loss);              // one training step
 *     printf("loss %g\n", loom_item(ctx, loss));
 *
 * Conventions. Everything public is loom_ / LOOM_. Objects with a lifetime
 * are opaque and come in _new/_free pairs; _free accepts NULL. Tensor
 * handles (loom_t) and shapes are small values. Errors are status codes
 * plus a message on the context; after the first error every builder
 * returns a null handle, so model code reads as expressions and checks
 * once. Nothing in loom aborts on user input.
 */
#ifndef LOOM_H
#define LOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOOM_VERSION_MAJOR 0
#define LOOM_VERSION_MINOR 1
#define LOOM_VERSION_PATCH 0

/* ------------------------------------------------------------------ */
/* Status codes                                                       */
/* ------------------------------------------------------------------ */

typedef enum loom_code {
    LOOM_OK = 0,
    LOOM_ERR_ARG,         /* an argument is out of its domain (axis, count, value) */
    LOOM_ERR_SHAPE,       /* shapes do not fit the op; the message names both */
    LOOM_ERR_DTYPE,       /* the op does not take this dtype, or dtypes differ */
    LOOM_ERR_HANDLE,      /* null, stale (tape was reset) or foreign handle */
    LOOM_ERR_NOMEM,       /* an allocation failed; the context stays usable */
    LOOM_ERR_INDEX,       /* a gather/scatter index is out of range at run time */
    LOOM_ERR_STATE,       /* the call does not fit the context's state */
    LOOM_ERR_IO,          /* a file could not be read or written */
    LOOM_ERR_FORMAT,      /* a file is corrupt, truncated or of another version */
    LOOM_ERR_UNSUPPORTED, /* valid, but not implemented by this build */
    LOOM_ERR_INTERNAL,    /* a bug in loom: please report the message */
    LOOM_ERR_NUMERIC,     /* anomaly mode: a run computed a NaN or an infinity (the message says
                             which op, and where in the model: scope, time step, pass) */
    LOOM_CODE_COUNT
} loom_code;

/* A static string naming the code ("LOOM_ERR_SHAPE"). */
const char *loom_code_name(loom_code code);

/* ------------------------------------------------------------------ */
/* Value types                                                        */
/* ------------------------------------------------------------------ */

typedef enum loom_dtype {
    LOOM_F32 = 0,
    LOOM_F64,
    LOOM_I32, /* indices and labels */
    LOOM_DTYPE_COUNT
} loom_dtype;

const char *loom_dtype_name(loom_dtype dt); /* "f32", "f64", "i32" */
size_t loom_dtype_size(loom_dtype dt);      /* bytes per element */

enum { LOOM_MAX_RANK = 8 };

/* A static shape. rank 0 is a scalar. */
typedef struct loom_shape {
    int32_t rank;
    int64_t d[LOOM_MAX_RANK];
} loom_shape;

/* LOOM_SHAPE(32, 128) is a rank-2 shape (1 to 8 dims); LOOM_SCALAR is
 * rank 0. */
#define LOOM_NARGS_(...) LOOM_NARGS_I_(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define LOOM_NARGS_I_(a, b, c, d, e, f, g, h, n, ...) n
#define LOOM_SHAPE(...) \
    ((loom_shape){ .rank = LOOM_NARGS_(__VA_ARGS__), .d = { __VA_ARGS__ } })
#define LOOM_SCALAR ((loom_shape){ .rank = 0 })
/* LOOM_AXES(0, 2) expands to the two arguments `2, (const int[]){0, 2}`. */
#define LOOM_AXES(...) LOOM_NARGS_(__VA_ARGS__), ((const int[]){ __VA_ARGS__ })

/* -1, and false, for a rank outside [0, LOOM_MAX_RANK] (not a shape). */
int64_t loom_shape_numel(loom_shape s);
bool loom_shape_equal(loom_shape a, loom_shape b);
/* Writes "f32[32,128]" style text (dtype omitted when dt < 0). Returns buf. */
char *loom_shape_str(loom_shape s, int dt, char *buf, size_t size);

/* A tensor handle: a node on the current tape, or a parameter. Handles to
 * tape nodes stay valid until loom_reset(); parameter handles for the
 * life of the context. The all-zero handle is null. */
typedef struct loom_t {
    uint32_t id;
    uint32_t tag;
} loom_t;

#define LOOM_NULL ((loom_t){ 0, 0 })
static inline bool loom_is_null(loom_t t) { return t.id == 0; }

/* ------------------------------------------------------------------ */
/* Context                                                            */
/* ------------------------------------------------------------------ */

typedef struct loom_ctx loom_ctx;

/* A Lua-style allocator: nsize == 0 frees ptr and returns NULL; otherwise
 * it returns a block of nsize bytes (ptr NULL: new; else resized, osize
 * being the old size) or NULL on failure. Every allocation loom makes for a
 * context goes through it. */
typedef void *(*loom_alloc_fn)(void *ud, void *ptr, size_t osize, size_t nsize);

typedef enum loom_backend {
    LOOM_BACKEND_JIT = 0,   /* compile plans to native kernels with LLVM (default) */
    LOOM_BACKEND_REFERENCE, /* run op by op in plain C: the oracle, slow */
} loom_backend;

typedef struct loom_options {
    loom_alloc_fn alloc;  /* NULL: libc */
    void *alloc_ud;
    uint64_t seed;        /* random ops and initialisers; 0 means 0x10011 */
    loom_backend backend; /* the environment's LOOM_BACKEND=reference|jit overrides */
    int threads;          /* 0: LOOM_THREADS, else the online cores */
    int checkpoint_every; /* gradient checkpointing, as loom_set_checkpoint_every (0: off) */
    bool anomaly;         /* the anomaly mode, as loom_set_anomaly (LOOM_ANOMALY=1 also turns it on) */
} loom_options;

/* A new context with an empty tape. opts may be NULL (defaults). Returns
 * NULL only if memory for the context itself cannot be had. */
loom_ctx *loom_ctx_new(const loom_options *opts);
/* Frees the context, its tapes, parameters and values. NULL is fine. */
void loom_ctx_free(loom_ctx *ctx);

/* The first error since the last loom_clear_error() (LOOM_OK if none). */
loom_code loom_status(const loom_ctx *ctx);
bool loom_failed(const loom_ctx *ctx);
/* The message of that error ("" if none). Owned by ctx. */
const char *loom_errmsg(const loom_ctx *ctx);
/* Forgets the error so building can go on. The tape is kept. */
void loom_clear_error(loom_ctx *ctx);

/* ------------------------------------------------------------------ */
/* Tape                                                               */
/* ------------------------------------------------------------------ */

/* Starts a new, empty tape. Every handle to the old tape becomes stale;
 * parameters and their values are kept. Clears the error. */
void loom_reset(loom_ctx *ctx);

/* Time-step marks: nodes recorded between loom_step_begin(ctx, t) and
 * loom_step_end(ctx) carry step t (t >= 0), and so do their gradients.
 * Passes use the marks to find the repeated cell. */
void loom_step_begin(loom_ctx *ctx, int t);
void loom_step_end(loom_ctx *ctx);

/* Scopes name the parts of a model: nodes recorded between
 * loom_scope_begin(ctx, "encoder") and the matching loom_scope_end(ctx)
 * belong to "encoder", and so do their gradients; nested scopes join
 * with '/' ("encoder/rnn.l1"). loom_rnn_forward opens one per layer and
 * direction ("<prefix>.l<k>", "<prefix>.l<k>_reverse"), and the modules
 * one each, named by their parameters' prefix. The anomaly mode names the
 * scope of the op that made a NaN. A name is 1 to 200 bytes without '/';
 * LOOM_ERR_ARG otherwise, LOOM_ERR_STATE past 64 open scopes. A new tape
 * (loom_reset) closes them all. */
loom_code loom_scope_begin(loom_ctx *ctx, const char *name);
void loom_scope_end(loom_ctx *ctx);

/* Number of nodes on the tape (hash-consing folds repeated expressions). */
size_t loom_node_count(const loom_ctx *ctx);

/* Writes the tape as text, or as a Graphviz DOT graph. */
loom_code loom_print_graph(loom_ctx *ctx, FILE *out);
loom_code loom_write_dot(loom_ctx *ctx, FILE *out);

/* Shape and dtype of a handle (a zero shape / LOOM_DTYPE_COUNT on error). */
loom_shape loom_shape_of(loom_ctx *ctx, loom_t t);
loom_dtype loom_dtype_of(loom_ctx *ctx, loom_t t);

/* ------------------------------------------------------------------ */
/* Sources                                                            */
/* ------------------------------------------------------------------ */

/* A placeholder fed before each run with loom_feed(). name may be NULL. */
loom_t loom_input(loom_ctx *ctx, const char *name, loom_dtype dt, loom_shape s);
/* Copies bytes (exactly numel * dtype size) into the input's buffer. */
loom_code loom_feed(loom_ctx *ctx, loom_t input, const void *data, size_t bytes);
/* loom_input + loom_feed: a tensor holding a copy of data. */
loom_t loom_tensor(loom_ctx *ctx, loom_dtype dt, loom_shape s, const void *data);

loom_t loom_full(loom_ctx *ctx, loom_dtype dt, loom_shape s, double value);
loom_t loom_scalar(loom_ctx *ctx, loom_dtype dt, double value);
/* 0, 1, 2 ... along axis, repeated along the other axes. */
loom_t loom_iota(loom_ctx *ctx, loom_dtype dt, loom_shape s, int axis);

/* Random tensors from a counter-based generator (Philox4x32-10). The
 * stream is fixed by the context seed, the op's place on the tape and the
 * run counter (advanced by every loom_run), so a run is reproducible and
 * the next run draws fresh numbers without recompiling anything. */
loom_t loom_rand_uniform(loom_ctx *ctx, loom_dtype dt, loom_shape s); /* [0,1) */
loom_t loom_rand_normal(loom_ctx *ctx, loom_dtype dt, loom_shape s);  /* N(0,1) */
loom_t loom_rand_bernoulli(loom_ctx *ctx, loom_dtype dt, loom_shape s, double p);

/* ------------------------------------------------------------------ */
/* Parameters                                                         */
/* ------------------------------------------------------------------ */

/* A parameter lives as long as the context and may be used on any tape.
 * Values start at zero. Parameters are trainable unless frozen;
 * loom_buffer() makes non-trainable state (optimizer moments, running
 * statistics) that the plan may update with loom_assign(). */
loom_t loom_param(loom_ctx *ctx, const char *name, loom_dtype dt, loom_shape s);
loom_t loom_buffer(loom_ctx *ctx, const char *name, loom_dtype dt, loom_shape s);

/* A frozen parameter gets no gradient graph and no gradient. */
loom_code loom_param_set_trainable(loom_ctx *ctx, loom_t p, bool trainable);
bool loom_param_trainable(loom_ctx *ctx, loom_t p);

/* Number of parameters and buffers; the i-th (0-based) as a handle. */
size_t loom_param_count(const loom_ctx *ctx);
loom_t loom_param_at(loom_ctx *ctx, size_t i);
loom_t loom_param_find(loom_ctx *ctx, const char *name);
const char *loom_param_name(loom_ctx *ctx, loom_t p);
bool loom_is_param(loom_ctx *ctx, loom_t t);

/* The parameter's storage (numel * dtype size bytes, 64-byte aligned),
 * owned by the context. NULL on error. */
void *loom_param_data(loom_ctx *ctx, loom_t p);
loom_code loom_param_set(loom_ctx *ctx, loom_t p, const void *data, size_t bytes);
/* Initialisers draw from the context's host generator. */
loom_code loom_param_init_uniform(loom_ctx *ctx, loom_t p, double lo, double hi);
loom_code loom_param_init_normal(loom_ctx *ctx, loom_t p, double mean, double std);
loom_code loom_param_init_const(loom_ctx *ctx, loom_t p, double value);

/* Records new_value as the parameter's (or buffer's) value after the run.
 * All reads in a run see the old values; assignments commit at its end. */
loom_code loom_assign(loom_ctx *ctx, loom_t p, loom_t new_value);

/* ------------------------------------------------------------------ */
/* Elementwise ops (binary ops broadcast like numpy)                  */
/* ------------------------------------------------------------------ */

loom_t loom_neg(loom_ctx *ctx, loom_t x);
loom_t loom_exp(loom_ctx *ctx, loom_t x);
loom_t loom_log(loom_ctx *ctx, loom_t x);
loom_t loom_log1p(loom_ctx *ctx, loom_t x);
loom_t loom_tanh(loom_ctx *ctx, loom_t x);
loom_t loom_sigmoid(loom_ctx *ctx, loom_t x);
loom_t loom_sqrt(loom_ctx *ctx, loom_t x);
loom_t loom_recip(loom_ctx *ctx, loom_t x);
loom_t loom_relu(loom_ctx *ctx, loom_t x);
loom_t loom_abs(loom_ctx *ctx, loom_t x);
loom_t loom_sign(loom_ctx *ctx, loom_t x);
loom_t loom_sin(loom_ctx *ctx, loom_t x);
loom_t loom_cos(loom_ctx *ctx, loom_t x);
loom_t loom_square(loom_ctx *ctx, loom_t x);
loom_t loom_cast(loom_ctx *ctx, loom_t x, loom_dtype dt);
/* Identity whose gradient is zero: cuts BPTT at a step boundary. */
loom_t loom_detach(loom_ctx *ctx, loom_t x);

loom_t loom_add(loom_ctx *ctx, loom_t a, loom_t b);
loom_t loom_sub(loom_ctx *ctx, loom_t a, loom_t b);
loom_t loom_mul(loom_ctx *ctx, loom_t a, loom_t b);
loom_t loom_div(loom_ctx *ctx, loom_t a, loom_t b);
loom_t loom_maximum(loom_ctx *ctx, loom_t a, loom_t b);
loom_t loom_minimum(loom_ctx *ctx, loom_t a, loom_t b);
loom_t loom_pow(loom_ctx *ctx, loom_t x, double p); /* x > 0 unless p is a small integer */
/* Comparisons give 1 or 0 in the operands' dtype; no gradient. */
loom_t loom_eq(loom_ctx *ctx, loom_t a, loom_t b);
loom_t loom_ne(loom_ctx *ctx, loom_t a, loom_t b);
loom_t loom_lt(loom_ctx *ctx, loom_t a, loom_t b);
loom_t loom_le(loom_ctx *ctx, loom_t a, loom_t b);
loom_t loom_gt(loom_ctx *ctx, loom_t a, loom_t b);
loom_t loom_ge(loom_ctx *ctx, loom_t a, loom_t b);
/* cond != 0 ? a : b, all three broadcast together. */
loom_t loom_where(loom_ctx *ctx, loom_t cond, loom_t a, loom_t b);

/* x op scalar, the scalar taking x's dtype. */
loom_t loom_adds(loom_ctx *ctx, loom_t x, double v);
loom_t loom_muls(loom_ctx *ctx, loom_t x, double v);
loom_t loom_maxs(loom_ctx *ctx, loom_t x, double v);

/* ------------------------------------------------------------------ */
/* Reductions (axes may be negative; keepdim keeps them as size 1)    */
/* ------------------------------------------------------------------ */

loom_t loom_sum(loom_ctx *ctx, loom_t x, int naxes, const int *axes, bool keepdim);
loom_t loom_max(loom_ctx *ctx, loom_t x, int naxes, const int *axes, bool keepdim);
loom_t loom_mean(loom_ctx *ctx, loom_t x, int naxes, const int *axes, bool keepdim);
loom_t loom_sum_all(loom_ctx *ctx, loom_t x);  /* a scalar */
loom_t loom_mean_all(loom_ctx *ctx, loom_t x); /* a scalar */

/* ------------------------------------------------------------------ */
/* Movement                                                           */
/* ------------------------------------------------------------------ */

/* One dimension may be -1 (inferred). */
loom_t loom_reshape(loom_ctx *ctx, loom_t x, loom_shape s);
loom_t loom_permute(loom_ctx *ctx, loom_t x, int n, const int *perm);
loom_t loom_transpose(loom_ctx *ctx, loom_t x, int axis0, int axis1);
/* Broadcast to s with numpy rules. */
loom_t loom_expand(loom_ctx *ctx, loom_t x, loom_shape s);
/* x[start:stop:step] along one axis (step >= 1; negative start/stop count
 * from the end, as in Python; stop is clamped to the size). */
loom_t loom_slice(loom_ctx *ctx, loom_t x, int axis, int64_t start, int64_t stop,
                  int64_t step);
loom_t loom_concat(loom_ctx *ctx, int n, const loom_t *xs, int axis);
/* Pads one axis with lo and hi elements of value. */
loom_t loom_pad(loom_ctx *ctx, loom_t x, int axis, int64_t lo, int64_t hi, double value);

/* ------------------------------------------------------------------ */
/* Contraction and indexing                                           */
/* ------------------------------------------------------------------ */

/* a [..., M, K] · b [..., K, N]; batch dims broadcast; a 2-D b against a
 * higher-rank a is a plain [.. * M, K] · [K, N] product. */
loom_t loom_matmul(loom_ctx *ctx, loom_t a, loom_t b);
/* The same with either operand transposed in its last two axes. */
loom_t loom_matmul_t(loom_ctx *ctx, loom_t a, loom_t b, bool trans_a, bool trans_b);

/* Rows of x along axis picked by an i32 index tensor:
 * x [P..., A, Q...], idx [J...] -> [P..., J..., Q...]. Embedding lookup is
 * loom_gather(ctx, table, ids, 0). Out-of-range indices fail the run. */
loom_t loom_gather(loom_ctx *ctx, loom_t x, loom_t idx, int axis);
/* The adjoint of gather: src [P..., J..., Q...] summed into a zero tensor
 * [P..., size, Q...] at the rows idx names. */
loom_t loom_scatter_add(loom_ctx *ctx, loom_t src, loom_t idx, int axis, int64_t size);

/* ------------------------------------------------------------------ */
/* Composite ops (written with the ops above)                         */
/* ------------------------------------------------------------------ */

loom_t loom_softmax(loom_ctx *ctx, loom_t x, int axis);
loom_t loom_log_softmax(loom_ctx *ctx, loom_t x, int axis);
loom_t loom_logsumexp(loom_ctx *ctx, loom_t x, int axis, bool keepdim);
/* Mean cross-entropy of logits [N, C] against i32 labels [N]. A label
 * outside [0, C) fails the run that computes the loss (LOOM_ERR_INDEX). */
loom_t loom_cross_entropy(loom_ctx *ctx, loom_t logits, loom_t labels);
/* Mean squared error. */
loom_t loom_mse(loom_ctx *ctx, loom_t pred, loom_t target);

/* ------------------------------------------------------------------ */
/* Losses                                                             */
/* ------------------------------------------------------------------ */

typedef enum loom_reduction {
    LOOM_REDUCE_MEAN = 0,
    LOOM_REDUCE_SUM,
    LOOM_REDUCE_NONE, /* one loss per example */
} loom_reduction;

typedef struct loom_ce_options {
    loom_reduction reduction;
    bool use_ignore_index; /* labels equal to ignore_index add nothing ... */
    int32_t ignore_index;  /* ... and the mean is over the other labels */
    double label_smoothing;
} loom_ce_options;

/* Cross-entropy of logits [N, C] (log-sum-exp, stable) against i32
 * labels [N]; o may be NULL (mean, nothing ignored). A label outside
 * [0, C), other than an ignored one, fails the run (LOOM_ERR_INDEX). */
loom_t loom_cross_entropy_ex(loom_ctx *ctx, loom_t logits, loom_t labels, const loom_ce_options *o);
/* Binary cross-entropy of logits against targets in [0, 1] (same shape),
 * computed as max(x, 0) - x y + log1p(exp(-|x|)). */
loom_t loom_bce_with_logits(loom_ctx *ctx, loom_t logits, loom_t targets, loom_reduction r);
loom_t loom_mse_ex(loom_ctx *ctx, loom_t pred, loom_t target, loom_reduction r);

/* ------------------------------------------------------------------ */
/* Modules (made of the ops above; parameters named like PyTorch's)   */
/* ------------------------------------------------------------------ */

/* Modules are small value structs of parameter handles. Their parameters
 * are named "<prefix>.<name>" with PyTorch's names, shapes and layouts
 * (a Linear's weight is [out, in]), so a PyTorch state dict saved as
 * safetensors loads with loom_checkpoint_load as it is. Initialisation
 * follows PyTorch's defaults. */

typedef struct loom_linear {
    loom_t weight; /* [out, in] */
    loom_t bias;   /* [out], or null */
} loom_linear;

loom_code loom_linear_init(loom_ctx *ctx, loom_linear *m, const char *prefix, int64_t in, int64_t out,
                           bool bias, loom_dtype dt);
/* x [..., in] -> x W^T + b [..., out] */
loom_t loom_linear_forward(loom_ctx *ctx, const loom_linear *m, loom_t x);

typedef struct loom_embedding {
    loom_t weight; /* [num, dim] */
} loom_embedding;

loom_code loom_embedding_init(loom_ctx *ctx, loom_embedding *m, const char *prefix, int64_t num, int64_t dim,
                              loom_dtype dt);
/* i32 ids [...] -> [..., dim] */
loom_t loom_embedding_forward(loom_ctx *ctx, const loom_embedding *m, loom_t ids);

typedef struct loom_layernorm {
    loom_t weight, bias; /* [dim] */
    double eps;
} loom_layernorm;

loom_code loom_layernorm_init(loom_ctx *ctx, loom_layernorm *m, const char *prefix, int64_t dim, double eps,
                              loom_dtype dt);
/* Normalises over the last axis. */
loom_t loom_layernorm_forward(loom_ctx *ctx, const loom_layernorm *m, loom_t x);
/* The same with explicit weight and bias (either may be null). */
loom_t loom_layer_norm(loom_ctx *ctx, loom_t x, loom_t weight, loom_t bias, double eps);

/* Inverted dropout: zeroes elements with probability p and scales the
 * rest by 1 / (1 - p) when training; the identity otherwise. */
loom_t loom_dropout(loom_ctx *ctx, loom_t x, double p, bool training);

/* The weight a model should use for parameter w: w itself, or with a
 * low-rank adapter attached, w + (alpha / rank) B A. The built-in modules
 * call it; custom cells should too, so adapters reach them. */
loom_t loom_weight(loom_ctx *ctx, loom_t w);

/* ------------------------------------------------------------------ */
/* Recurrent cells and layers                                         */
/* ------------------------------------------------------------------ */

/* One step of torch.nn.RNNCell: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh),
 * act tanh or relu. Biases may be null. */
loom_t loom_rnn_cell(loom_ctx *ctx, loom_t x, loom_t h, loom_t w_ih, loom_t w_hh, loom_t b_ih, loom_t b_hh,
                     bool relu);

/* The LSTM's weights (torch.nn.LSTM layout, gates in the order i, f, g,
 * o): w_ih [4H, I], w_hh [4H, P], biases [4H] (may be null), the optional
 * projection w_hr [P, H] (P = proj_size; null: P = H) and the optional
 * peephole vectors w_ci, w_cf, w_co [H] (loom's extension, null: none). */
typedef struct loom_lstm_weights {
    loom_t w_ih, w_hh, b_ih, b_hh;
    loom_t w_hr;
    loom_t w_ci, w_cf, w_co;
} loom_lstm_weights;

/* One step of an LSTM: from x [B, I], h [B, P], c [B, H] to h' and c'. */
loom_code loom_lstm_cell(loom_ctx *ctx, loom_t x, loom_t h, loom_t c, const loom_lstm_weights *w, loom_t *h_out,
                         loom_t *c_out);

/* One step of torch.nn.GRUCell (gates r, z, n; the reset gate multiplies
 * the hidden projection after the matmul):
 *   r = s(x W_ir^T + b_ir + h W_hr^T + b_hr), z likewise,
 *   n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn)), h' = (1 - z) n + z h. */
loom_t loom_gru_cell(loom_ctx *ctx, loom_t x, loom_t h, loom_t w_ih, loom_t w_hh, loom_t b_ih, loom_t b_hh);

typedef enum loom_rnn_mode {
    LOOM_RNN_TANH = 0,
    LOOM_RNN_RELU,
    LOOM_LSTM,
    LOOM_GRU,
} loom_rnn_mode;

/* torch.nn.RNN / LSTM / GRU. Zero values are PyTorch's defaults except
 * num_layers (0 means 1) and no_bias (false: with biases). */
typedef struct loom_rnn_config {
    loom_rnn_mode mode;
    int64_t input_size, hidden_size;
    int num_layers;
    bool no_bias;
    bool batch_first;   /* input and output [B, T, ...] instead of [T, B, ...] */
    double dropout;     /* on the outputs of every layer but the last, when training */
    bool bidirectional;
    int64_t proj_size;  /* LSTM only: project h to this size (0: none) */
    bool peepholes;     /* LSTM only (loom's extension): weight_ci/cf/co_l{k} */
    loom_dtype dtype;
} loom_rnn_config;

typedef struct loom_rnn loom_rnn;

/* A stack of recurrent layers with parameters "<prefix>.weight_ih_l{k}",
 * "weight_hh_l{k}", "bias_ih_l{k}", "bias_hh_l{k}", "weight_hr_l{k}", with
 * "_reverse" for the backward direction, initialised U(-1/sqrt(H),
 * 1/sqrt(H)) like PyTorch. NULL on error (recorded on ctx). */
loom_rnn *loom_rnn_new(loom_ctx *ctx, const char *prefix, const loom_rnn_config *cfg);
void loom_rnn_free(loom_rnn *m);
const loom_rnn_config *loom_rnn_get_config(const loom_rnn *m);

/* States, as PyTorch returns them: h [layers * directions, B, P] and, for
 * the LSTM, c [layers * directions, B, H]. */
typedef struct loom_rnn_state {
    loom_t h, c;
} loom_rnn_state;

/* Runs the stack over input [T, B, I] (or [B, T, I] batch_first), the
 * network unrolled over T steps on the tape (each step marked). init may
 * be NULL (zeros) or hold null handles. lengths (i32 [B], optional) masks
 * each example past its length: its state stops changing, its outputs are
 * zero and send no gradient (packed-sequence semantics, both directions).
 * Sets *output [T, B, D * P] (or batch-first) and, if final is not NULL,
 * the last states. */
loom_code loom_rnn_forward(loom_ctx *ctx, const loom_rnn *m, loom_t input, const loom_rnn_state *init,
                           loom_t lengths, bool training, loom_t *output, loom_rnn_state *final);

/* ------------------------------------------------------------------ */
/* Fine-tuning                                                        */
/* ------------------------------------------------------------------ */

/* Sets trainable for every parameter whose name starts with prefix ("" is
 * all of them); returns how many matched, or -1 on error. */
long loom_params_set_trainable(loom_ctx *ctx, const char *prefix, bool trainable);

/* Attaches a low-rank adapter to the 2-D weight w [out, in]: parameters
 * "<w>.lora_A" [rank, in] (Kaiming-uniform) and "<w>.lora_B" [out, rank]
 * (zeros); w is frozen, and loom_weight(w) becomes w + (alpha / rank) B A. */
loom_code loom_lora_add(loom_ctx *ctx, loom_t w, int rank, double alpha);
/* Folds the adapter into w (w += (alpha / rank) B A, computed now) and
 * detaches it; A and B are frozen and left in the context. */
loom_code loom_lora_merge(loom_ctx *ctx, loom_t w);
bool loom_lora_attached(loom_ctx *ctx, loom_t w);

/* ------------------------------------------------------------------ */
/* Optimizers                                                         */
/* ------------------------------------------------------------------ */

typedef enum loom_opt_kind {
    LOOM_OPT_SGD = 0,
    LOOM_OPT_ADAM,
    LOOM_OPT_ADAMW,
    LOOM_OPT_RMSPROP,
} loom_opt_kind;

typedef enum loom_schedule {
    LOOM_SCHEDULE_CONSTANT = 0,
    LOOM_SCHEDULE_STEP,   /* lr * gamma^(step / step_size) */
    LOOM_SCHEDULE_COSINE, /* min_lr + (lr - min_lr) (1 + cos(pi step / total_steps)) / 2 */
} loom_schedule;

/* Zero fields take torch.optim's defaults (betas 0.9/0.999, eps 1e-8,
 * RMSprop alpha 0.99 and eps 1e-8; AdamW weight decay 0.01 unless
 * weight_decay is set, negative for none). */
typedef struct loom_optim_config {
    loom_opt_kind kind;
    double lr;
    double momentum;     /* SGD, RMSprop */
    bool nesterov;       /* SGD */
    double weight_decay; /* SGD, Adam, RMSprop: added to the gradient; AdamW: decoupled */
    double beta1, beta2, eps;
    double alpha;        /* RMSprop */
    double clip_norm;    /* clip the global gradient norm to this (0: no clipping) */
    loom_schedule schedule;
    int64_t step_size;   /* STEP */
    double gamma;        /* STEP */
    int64_t total_steps; /* COSINE */
    double min_lr;       /* COSINE */
    int64_t warmup_steps; /* linear warm-up from 0 before any schedule */
} loom_optim_config;

typedef struct loom_optimizer loom_optimizer;

/* An optimizer for the context's trainable parameters. Its state (moments,
 * momentum) lives in buffers named "optim.<param>.<state>", so checkpoints
 * carry it. NULL on error (recorded on ctx). */
loom_optimizer *loom_optimizer_new(loom_ctx *ctx, const loom_optim_config *cfg);
void loom_optimizer_free(loom_optimizer *o);

/* Records on the current tape the gradient of loss, the clipping and the
 * update of every trainable parameter (frozen ones get no gradient and no
 * state). Once per tape. */
loom_code loom_optimizer_attach(loom_ctx *ctx, loom_optimizer *o, loom_t loss);
/* The same clipping (the global norm over grads) and update as
 * loom_optimizer_attach, recorded from gradients the caller gives instead
 * of a loss's backward: grads[i] (a node of the current tape, usually a
 * loom_input fed each step, of params[i]'s dtype and shape) updates the
 * trainable parameter params[i]; other parameters are left alone. For
 * gradients computed elsewhere or summed over micro-batches, and for an
 * update entry of loom_aot_emit (a commit entry applies the assignments
 * that read none of another entry's inputs, so one export can hold this
 * update and loom_optimizer_attach's one-call step, each recorded by an
 * optimizer of its own over the same state buffers). The arrays are the
 * caller's, read during the call only. Once per tape, as
 * loom_optimizer_attach (either of the two). LOOM_ERR_ARG for n < 1, no
 * lists, a frozen parameter, a buffer or a parameter given twice;
 * LOOM_ERR_HANDLE for a handle that is not a parameter (params) or not of
 * this tape (grads); LOOM_ERR_DTYPE or LOOM_ERR_SHAPE when a gradient does
 * not match its parameter; LOOM_ERR_STATE when the optimizer is attached
 * to this tape already. */
loom_code loom_optimizer_attach_grads(loom_ctx *ctx, loom_optimizer *o, int n, const loom_t *params,
                                      const loom_t *grads);
/* One training step: feeds this step's learning rate (schedule, warm-up)
 * and Adam's bias corrections, runs the tape for outputs (forward,
 * backward and update in one compiled plan) and advances the step. */
loom_code loom_optimizer_step(loom_ctx *ctx, loom_optimizer *o, int n, const loom_t *outputs);
/* The global gradient norm before clipping, as a node of the current
 * tape (after attach), for logging. */
loom_t loom_optimizer_grad_norm(const loom_optimizer *o);
int64_t loom_optimizer_steps(const loom_optimizer *o);
loom_code loom_optimizer_set_steps(loom_optimizer *o, int64_t steps);
/* The learning rate the next step will use. */
double loom_optimizer_lr(const loom_optimizer *o);

/* ------------------------------------------------------------------ */
/* Checkpoints                                                        */
/* ------------------------------------------------------------------ */

/* Checkpoints are safetensors files: 8-byte little-endian header length,
 * a JSON header, raw little-endian tensors, every parameter and buffer by
 * name (so optimizer state too). The header's "__metadata__" holds
 * "format": "loom", "format_version", "step" (the optimizer's), "rng" (the
 * context's seed and run counter), "config" (a JSON string of the caller's)
 * and "checksum" (XXH3-64 of the data section). Writing is atomic (a
 * temporary file, fsync, rename): a crash leaves the old file or the new
 * one, never a torn one. */
loom_code loom_checkpoint_save(loom_ctx *ctx, const char *path, const loom_optimizer *opt, const char *config_json);

typedef enum loom_load_flags {
    LOOM_LOAD_STRICT = 0,          /* every parameter in the file and in the context */
    LOOM_LOAD_ALLOW_MISSING = 1,   /* parameters absent from the file keep their values */
    LOOM_LOAD_ALLOW_UNEXPECTED = 2, /* tensors with no parameter of their name are skipped */
} loom_load_flags;

/* Loads every tensor of the file into the parameter of the same name,
 * after checking every size, dtype, shape and the checksum (files without
 * loom metadata, like PyTorch's, are read without one); restores the
 * optimizer's step (opt may be NULL) and the random stream. Nothing is
 * changed unless the whole file is good. */
loom_code loom_checkpoint_load(loom_ctx *ctx, const char *path, loom_optimizer *opt, unsigned flags);

/* The "config" metadata of a checkpoint, copied into buf (a terminating
 * NUL included); LOOM_ERR_ARG when it does not fit. */
loom_code loom_checkpoint_config(loom_ctx *ctx, const char *path, char *buf, size_t size);

/* ------------------------------------------------------------------ */
/* Autograd                                                           */
/* ------------------------------------------------------------------ */

/* Appends the gradient graph of a scalar loss to the tape, for every
 * trainable parameter it depends on. Gradients are ordinary nodes: they
 * can be run, used in updates and differentiated again. */
loom_code loom_backward(loom_ctx *ctx, loom_t loss);
/* The gradient of the last loom_backward's loss with respect to x (a
 * parameter or any node on the path). Null if x does not reach the loss
 * or is frozen; no error is set then. */
loom_t loom_grad(loom_ctx *ctx, loom_t x);
/* Vector-Jacobian product: dxs[i] = sum_j dys[j]^T dys_j/dxs_i for
 * arbitrary nodes. dys may be NULL when every y is a scalar (seed 1).
 * dxs[i] is null where xs[i] does not reach any y. */
loom_code loom_vjp(loom_ctx *ctx, int ny, const loom_t *ys, const loom_t *dys,
                   int nx, const loom_t *xs, loom_t *dxs);

/* Gradient checkpointing for backpropagation through time: activation
 * memory O(T / k + k) instead of O(T), for about one more forward pass.
 * With k > 0, every backward built afterwards (loom_backward, loom_vjp,
 * loom_optimizer_attach) groups the time steps marked on the tape into
 * segments [j k, (j + 1) k) and, just before the gradient of a segment,
 * records its forward computation again; the gradient reads those
 * recomputed values, so the compiled plan keeps only the values crossing
 * segment boundaries (a cell's state every k steps), not every step's
 * gate activations. It works for any cell, built-in or written from
 * ops: all it needs are the loom_step_begin/end marks. Steps recorded
 * layer by layer (loom_rnn_forward does) are recomputed layer by layer;
 * values recorded outside any step (an embedding of the whole sequence)
 * are kept as they are, and the stretch of steps recorded last is not
 * recomputed (the backward starts with it). Random ops draw the same
 * numbers again, so dropout masks match. Weight gradients are summed
 * segment by segment, so they equal those without checkpointing up to
 * rounding (about 1e-6 of their size in f32). k = 0 turns it off (the
 * default); negative k is LOOM_ERR_ARG. A k near sqrt(T) is the usual
 * choice. */
loom_code loom_set_checkpoint_every(loom_ctx *ctx, int k);
int loom_get_checkpoint_every(const loom_ctx *ctx);

/* ------------------------------------------------------------------ */
/* Running                                                            */
/* ------------------------------------------------------------------ */

/* Evaluates outputs (and every loom_assign on the tape) with the values
 * fed to inputs. Each run advances the random stream. Values of outputs
 * remain readable until the next run or reset. */
loom_code loom_run(loom_ctx *ctx, int n, const loom_t *outputs);
/* The same without committing assignments: evaluation on a training tape. */
loom_code loom_eval(loom_ctx *ctx, int n, const loom_t *outputs);

/* Compilation and cache counters. With LOOM_VERBOSE=1 in the environment
 * each plan built is also reported on stderr. */
typedef struct loom_stats {
    uint64_t runs;             /* runs of either backend */
    uint64_t plans_built;      /* graphs compiled to plans */
    uint64_t plan_hits;        /* runs that found their plan cached */
    uint64_t kernels;          /* kernels in plans built (shared ones once per plan) */
    uint64_t kernels_compiled; /* compiled by LLVM */
    uint64_t kernel_hits;      /* found in the kernel cache */
    double compile_ms;         /* LLVM: building, optimising, compiling */
    double plan_ms;            /* passes, fusion and memory planning */
    uint64_t plan_bytes;       /* arena and scratch of the last plan run */
    double gemm_flops;         /* GEMM flops (2·M·N·K each) of one run of the last plan: the
                                  work it does, after passes that save some (fold.c) */
} loom_stats;

loom_code loom_get_stats(loom_ctx *ctx, loom_stats *out);
/* The fusion report of the plan the JIT ran last, as text: what it
 * compiled to (kernels, calls by kind, arena), what time-batching merged
 * and what it left alone, and every place a value went to memory between
 * kernels instead of staying fused, counted by reason with a first case
 * (op, shape, time step, phase). Writes at most size bytes (always
 * terminated when size > 0) and returns the length of the whole text, as
 * snprintf does; 0 when no plan has run. LOOM_VERBOSE=1 prints it for
 * every plan built. */
size_t loom_fusion_report(loom_ctx *ctx, char *buf, size_t size);
/* Compiles the plan computing outputs (and, with commit, the tape's
 * assignments) as loom_run would, and writes the compiled graph to path
 * as Graphviz DOT: every kernel call a cluster of the nodes it computes
 * (GEMMs salmon, reductions blue, maps yellow; before row chains merge
 * calls), time steps on the labels, outputs in bold. Nothing runs. */
loom_code loom_plan_dot(loom_ctx *ctx, int n, const loom_t *outputs, bool commit, const char *path);
loom_backend loom_get_backend(const loom_ctx *ctx);

/* The anomaly mode (like PyTorch's detect_anomaly): with it on, a run
 * checks every value it stores (each kernel's outputs, on the reference
 * backend each op's), and the inputs and parameters it reads, for NaN and
 * infinity. The first one found stops the run with LOOM_ERR_NUMERIC,
 * nothing committed, and a message naming the op that made it, its scope
 * (loom_scope_begin: the layer), time step and pass (forward, backward,
 * optimizer update), the element and its value; a fused kernel's element
 * is evaluated again op by op to find the op, and the message names the
 * value that reached memory and the ops fused with it:
 *
 *     loom_run: anomaly: log made nan at [0,0] of f32[4,3] in scope
 *     "enc/cell" at time step 4 (forward pass), from finite operands; it
 *     reached memory as the output of tanh; the kernel fuses it with add, tanh
 *
 * The cost: every stored value is read once more, and plans made for the
 * mode place no value over a dying operand (a separate plan, compiled at
 * the first run with the mode on). Infinities made on purpose (a -inf
 * mask) stop a run too. Integer values are not checked. */
loom_code loom_set_anomaly(loom_ctx *ctx, bool on);
bool loom_get_anomaly(const loom_ctx *ctx);
/* Threads kernels are split across (1 to 1024); takes effect at the next
 * run. */
loom_code loom_set_threads(loom_ctx *ctx, int threads);
int loom_get_threads(const loom_ctx *ctx);

/* The value of an output of the last run, or of a parameter. */
const void *loom_data(loom_ctx *ctx, loom_t t);
loom_code loom_read(loom_ctx *ctx, loom_t t, void *dst, size_t bytes);
/* The single element of a one-element tensor as a double (NAN on error). */
double loom_item(loom_ctx *ctx, loom_t t);

/* ------------------------------------------------------------------ */
/* Ahead-of-time compilation                                          */
/* ------------------------------------------------------------------ */

/* loom_aot_emit compiles graphs of the current tape, as loom_run would,
 * into a native object that needs neither LLVM nor loom at run time:
 *
 *     <dir>/<prefix>.o        the code (position independent; libc, libm)
 *     <dir>/<prefix>.h        its C interface, generated
 *     <dir>/<prefix>.weights  the weights, only with weights_file
 *
 * Each entry becomes a function of the object:
 *
 *     int <prefix>_<name>(void *memory, const void *weights,
 *                         const T *in_0, ..., T *out_0, ...);
 *
 * memory is the caller's (<PREFIX>_<NAME>_MEMORY_BYTES, 64-byte aligned,
 * no need to keep it between calls); weights NULL means the ones inside
 * the object; inputs and outputs are plain arrays in the tape's shapes.
 * Outputs are written after every input has been read, so a recurrent
 * state is carried by passing the same array as h_in and h_out: a
 * single-step entry for generation is just a step graph with the state
 * among its inputs and outputs. A full sequence of up to T_max steps is a
 * graph unrolled over T_max steps with a lengths input masking each
 * example (loom_rnn_forward's lengths). The header states every entry's
 * argument shapes, the memory sizes, the weights' layout, the graph hash
 * and the format version, and carries a checked loader for weights files
 * (magic, format version, graph hash, size and an XXH64 checksum). A
 * commit entry also writes the tape's loom_assign updates into the
 * weights (which the caller then owns and passes, non-NULL): a training
 * step with no LLVM at run time.
 *
 * The code is the JIT's: the same plan, the same kernels; on the CPU the
 * JIT uses ("host") the results are bitwise those of loom_run with one
 * thread. Entries run single-threaded. Inputs an entry reads but does not
 * list are compiled in with the value last fed (loom_tensor constants),
 * except the ones a run fills by itself, which become the last input
 * arguments: the key of random ops (dropout when training), "rng_key"
 * (i32[4]: seed low, high, counter low, high), and the scalars
 * loom_optimizer_step feeds (this step's learning rate, Adam's bias
 * corrections), "optim_<what>_<dtype>", each explained in the header. */
typedef struct loom_aot_entry {
    const char *name;                /* C identifier: the function <prefix>_<name> */
    int ninputs;
    const loom_t *inputs;            /* loom_input handles, in argument order */
    int noutputs;
    const loom_t *outputs;           /* values written back, in argument order */
    const char *const *output_names; /* C identifiers, or NULL: out0, out1 ... */
    bool commit;                     /* also apply the tape's assignments to the weights */
} loom_aot_entry;

typedef struct loom_aot_options {
    const char *prefix;   /* C identifier for the files and every symbol; NULL: "model" */
    const char *cpu;      /* NULL or "host" (this machine), "x86-64-v3" (AVX2), "x86-64-v4" (AVX-512) */
    bool weights_file;    /* the weights in <prefix>.weights, not inside the object */
    int nentries;
    const loom_aot_entry *entries;
} loom_aot_options;

/* What an export made. */
typedef struct loom_aot_info {
    uint64_t graph_hash;     /* of the entries' computations and the weights' layout */
    uint64_t object_bytes;   /* <prefix>.o */
    uint64_t weights_bytes;  /* the weights (in the object or the file, without its header) */
    uint64_t memory_bytes;   /* the largest entry's memory */
    uint32_t kernels;        /* distinct kernels compiled */
    char cpu[64];            /* the CPU the code is for ("znver5", "x86-64-v4") */
} loom_aot_info;

/* Compiles opts->entries from the current tape and writes the files into
 * dir (which must exist), each atomically (a temporary file, then a
 * rename). info may be NULL. LOOM_ERR_ARG for a bad name, an input that
 * is not a loom_input, a CPU name not listed above; LOOM_ERR_IO when dir
 * cannot be written. Nothing is left half-written on failure. */
loom_code loom_aot_emit(loom_ctx *ctx, const char *dir, const loom_aot_options *opts, loom_aot_info *info);

#ifdef __cplusplus
}
#endif
#endif /* LOOM_H */
