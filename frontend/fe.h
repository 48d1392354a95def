/*
 * fe.h — the frontend's internals: the context behind loom.h, handle
 * resolution, the tape's inputs and values. The frontend owns parameters,
 * fed data, run results and the current tape (an IR graph); it checks
 * every public argument and turns it into node-level builder calls. It
 * depends on autograd/, ops/ and ir/.
 */
#ifndef LOOM_FE_H
#define LOOM_FE_H

#include "autograd.h"
#include "jit.h"
#include "loom.h"
#include "pool.h"

typedef struct fe_param {
    char *name;
    loom_dtype dtype;
    loom_shape shape;
    void *data; /* 64-byte aligned, bytes long */
    size_t bytes;
    bool trainable;
    bool buffer; /* state, never trained */
    /* a low-rank adapter: loom_weight(w) = w + lora_scale * B A, where
     * A = params[lora_a - 1] and B = params[lora_b - 1] (0: none) */
    uint32_t lora_a, lora_b;
    double lora_scale;
} fe_param;

typedef struct fe_input {
    char *name;   /* may be NULL */
    ir_id node;
    void *data;   /* fed value, bytes long; NULL until fed */
    size_t bytes;
} fe_input;

struct loom_ctx {
    lm_mem mem;
    lm_err err;
    uint32_t serial; /* tags parameter handles of this context */
    uint64_t seed;
    lm_rng host_rng; /* initialisers */
    uint64_t runs;   /* run counter: the random ops' counter word */

    fe_param *params;
    size_t nparams, params_cap;

    /* the tape */
    ir_graph *g;
    uint32_t tape_tag;
    fe_input *inputs; /* by slot */
    size_t ninputs, inputs_cap;
    ir_id rng_key;     /* the random ops' key input, 0 until one is recorded */
    uint32_t rng_slot;
    uint32_t nstreams; /* random streams handed out on this tape */
    ir_id *assigns;
    size_t nassigns, assigns_cap;
    ad_grads grads;    /* of the last loom_backward */
    int checkpoint_every; /* for the backward passes to come (0: off) */
    uint32_t *scope_open;  /* the open scopes, innermost last (ids) */
    size_t nscope_open, scope_open_cap;

    /* scope names by id (0: none), for the context's life: plans made
     * on earlier tapes name them too */
    char **scopes;
    size_t nscopes, scopes_cap;

    /* values of the last run, by node id (owned only by the reference
     * backend; the JIT's live in its plan's arena) */
    void **vals;
    size_t vals_n;
    bool vals_owned;

    /* compiling and running */
    loom_backend backend;
    int threads;
    int verbose;  
    bool no_batch;   /* LOOM_BATCH=0: skip time-batching (for comparisons) */
    bool no_rows;    /* LOOM_ROWS=0: no row chains (for comparisons) */
    bool no_remat;   /* LOOM_REMAT=0: keep every value the backward pass reads (for comparisons) */
    bool no_fold;    /* LOOM_FOLD=0: lookups are not folded into the products they feed (for comparisons) */
    bool no_prepack; /* LOOM_PREPACK=0: each GEMM call packs (or reads) its B itself (for comparisons) */
    bool anomaly;    /* check every value computed for NaN and infinity */
    jit *jit;       /* made at the first JIT run */
    rt_pool *pool;
    struct fe_plan *plans; /* the plan cache, by structural key */
    size_t nplans, plans_cap;
    size_t last_plan;      /* 1 + the index of the plan run last (0: none) */
    loom_stats stats;
};

typedef struct fe_plan {
    uint64_t key[2];
    uint32_t nout;  /* outputs; the rest of the roots were assignments */
    bool anomaly;   /* made for the anomaly mode (no values in place) */
    plan *plan;
    rt_exec *exec;
    double gemm_flops; /* plan_gemm_flops, for loom_stats */
} fe_plan;

/* The compile options the context's settings give (LOOM_BATCH, LOOM_ROWS,
 * LOOM_REMAT, LOOM_PREPACK, LOOM_FOLD, threads); callers add their own. */
compile_opts fe_compile_opts(const loom_ctx *ctx);

/* Runs the tape's roots with the JIT (outputs then assignments); fills
 * values[] for the outputs with pointers into the plan's arena. */
loom_code fe_run_jit(loom_ctx *ctx, const ir_id *roots, uint32_t nout, uint32_t nroots, void **values,
                     const char *fn);
void fe_plans_free(loom_ctx *ctx);

enum { FE_PARAM_TAG = 0x80000000u };

/* The node of handle t on the current tape (parameters get their node
 * here), or 0 with an error naming fn and the argument. */
ir_id fe_node(loom_ctx *ctx, loom_t t, const char *fn, int arg);
/* fe_node for an argument the message calls what ("the input", "weight
 * w_hh") rather than "operand <arg>". */
ir_id fe_node_as(loom_ctx *ctx, loom_t t, const char *fn, const char *what);
/* The roots of a run: the nodes of outputs[0..n), then, with commit, the
 * tape's assignments; roots holds n + ctx->nassigns. Names a bad handle. */
loom_code fe_roots(loom_ctx *ctx, int n, const loom_t *outputs, bool commit, const char *fn, ir_id *roots);
/* The parameter index of a parameter handle, or -1 with an error. */
long fe_param_index(loom_ctx *ctx, loom_t t, const char *fn);
/* A handle for node n of the current tape (null for 0). */
loom_t fe_handle(loom_ctx *ctx, ir_id n);
/* Records an error on the context, prefixed with fn; returns the code
 * the context holds (an earlier error stays the first). */
loom_code fe_fail(loom_ctx *ctx, loom_code code, const char *fn, const char *fmt, ...) LM_PRINTF(4, 5);
/* For public functions made of other public calls, which return with the
 * error of the call that failed: prefixes its message with fn (unless it
 * names fn already), so "loom_mse: loom_sub: shapes f32[2,3] and f32[3,2]
 * do not broadcast" says which call of the caller's it was. Only for an
 * error that arose within fn: call it only when ctx had none on entry. */
void fe_name_error(loom_ctx *ctx, const char *fn);
/* fe_name_error, then result, or null if ctx failed. */
loom_t fe_named(loom_ctx *ctx, const char *fn, loom_t result);
/* Normalises a possibly negative axis of a tensor of shape s and dtype dt
 * (named in the message), or -1 with an error. */
int fe_axis(loom_ctx *ctx, int axis, loom_shape s, int dt, const char *fn);
/* fe_axis for node n. */
int fe_node_axis(loom_ctx *ctx, int axis, ir_id n, const char *fn);
/* Checks a user shape (rank, non-negative dims). */
bool fe_check_shape(loom_ctx *ctx, loom_shape s, const char *fn);
bool fe_check_dtype(loom_ctx *ctx, loom_dtype dt, const char *fn);

/* Frees the tape's values, inputs, grads and graph (not parameters). */
void fe_tape_clear(loom_ctx *ctx);
/* The anomaly mode (anomaly.c). fe_anomaly_outside checks the inputs
 * and parameters plan p reads; fe_anomaly_call words what the plan
 * executor found; fe_anomaly_node is the reference executor's check
 * (op_env.check with an fe_anomaly_ud). Each returns LOOM_ERR_NUMERIC
 * with the message, or LOOM_OK. */
typedef struct fe_anomaly_ud {
    loom_ctx *ctx;
    const char *fn;
} fe_anomaly_ud;
bool fe_first_nonfinite(const void *data, loom_dtype dt, int64_t n, int64_t *index, double *value);
loom_code fe_anomaly_fail(loom_ctx *ctx, const char *fn, const plan_origin *o, int64_t index, double value,
                          const char *fused);
loom_code fe_anomaly_outside(loom_ctx *ctx, const char *fn, const plan *p);
loom_code fe_anomaly_call(loom_ctx *ctx, const char *fn, const plan *p, const rt_anomaly *an);
loom_code fe_anomaly_node(void *ud, const ir_graph *g, ir_id n, const void *value);
/* Appends to the context's index error where in the model (scope, time
 * step, pass) the gather or scatter of plan origin `origin` is. */
void fe_index_place(loom_ctx *ctx, const plan *p, uint32_t origin);

/* Opens the scope of a module: its parameter's name up to the last dot,
 * then ".suffix" ("head"; "rnn" + "l1"). Whether it opened one (close it
 * with loom_scope_end). */
bool fe_scope_of(loom_ctx *ctx, loom_t param, const char *suffix);
/* A scope's full name ("encoder/rnn.l1"), NULL for none. */
const char *fe_scope_name(const loom_ctx *ctx, uint32_t scope);
void fe_values_clear(loom_ctx *ctx);

#endif /* LOOM_FE_H */
