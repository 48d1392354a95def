/*
 * plan.h — what the compiler makes of a graph: kernels (LLVM-free
 * descriptions, canonical so that equal kernels hash equal whichever
 * buffers they touch), the buffers of one arena, and the list of kernel
 * calls that is a run. A plan holds no pointers to memory it does not own
 * and no code: the JIT turns kernels into functions, the runtime binds
 * buffers to memory, and an ahead-of-time bundle can emit the same plan.
 *
 * This layer (compile/) holds the passes: dead-code elimination and
 * simplification (graph to graph), fusion into kernels, memory planning.
 * It depends on ops/ and ir/; nothing here knows LLVM.
 */
#ifndef LOOM_COMPILE_PLAN_H
#define LOOM_COMPILE_PLAN_H

#include "ops.h"

/* ------------------------------------------------------------------ */
/* Kernels                                                            */
/* ------------------------------------------------------------------ */

typedef enum kn_kind {
    KN_MAP,     /* elementwise program over an iteration space, any outputs */
    KN_REDUCE,  /* elementwise program whose value is summed or maxed over axes */
    KN_GEMM,    /* batched matrix product */
    KN_GATHER,
    KN_SCATTER,
    KN_ROWS,    /* map and reduce kernels run one after another row by row (rows.c) */
    KN_KIND_COUNT
} kn_kind;

/* An instruction of a map or reduce program. Loads and stores address an
 * argument through a view: element offset sum_k coord_k * stride[k] over
 * the iteration space (the argument's base already points at the view's
 * first element). */
enum {
    KI_LOAD = -1,  /* a = argument, view */
    KI_STORE = -2, /* a = argument, b = value, view */
};

typedef struct kn_instr {
    int32_t op;      /* an elementwise op id, or KI_LOAD / KI_STORE */
    uint8_t dtype;
    uint32_t src[3]; /* operand instructions (op); b = value (store) */
    uint32_t arg;    /* load/store: argument index */
    uint32_t view;   /* load/store: index into the kernel's strides */
    int64_t attr[3]; /* the op's attribute words (const value, iota axis, random attrs) */
} kn_instr;

/* How a GEMM kernel treats op(B) (prepack.c): as given, or packed
 * beforehand by a kernel of its own (KN_BPACK_PACK: that kernel's only
 * job, from its argument 1 into its argument 2, in the layout below) and
 * read so (KN_BPACK_PACKED: argument 1 is such a buffer). */
enum { KN_BPACK_NONE = 0, KN_BPACK_PACK, KN_BPACK_PACKED };

typedef struct kn_gemm {
    loom_dtype dtype;
    int64_t batch, m, n, k;
    bool ta, tb;
    int64_t lda, ldb, ldc;
    int64_t stride_a, stride_b, stride_c;
    bool accumulate, bias;
    int act;       /* jit_act */
    uint8_t bpack; /* KN_BPACK_* */
} kn_gemm;

/* The GEMM generator's register tile (mr rows x nr vectors) and deepest
 * K block, which fix the packed layout of op(B): K in nk blocks of kc
 * (the last kc_last), and per block `strips` strips of tw columns, each
 * a kc_pad-deep panel (one tw-wide row per k): strip s of block q at
 * (q * strips + s) * kc_pad * tw elements, elems in all. The generator
 * blocks K so for every packed kernel (jit/gemm.c), so a prepacked B and
 * the kernels reading it agree. */
enum { KN_GEMM_MR = 8, KN_GEMM_NR = 3, KN_GEMM_KC_MAX = 384 };
typedef struct kn_b_layout {
    int64_t kc, nk, kc_last, kc_pad, tw, strips, elems;
} kn_b_layout;
void kn_gemm_b_layout(loom_dtype dt, int64_t n, int64_t k, kn_b_layout *l);
/* " (packs B)", " B packed" or "": the kernel's bpack in descriptions. */
const char *kn_gemm_bpack_note(const kn_gemm *g);

typedef struct kn_index {
    loom_dtype dtype;
    int64_t outer, rows, inner; /* gather: x [outer, rows, inner]; scatter: out likewise */
    int64_t count;              /* indices */
} kn_index;

/* A kernel. Map and reduce kernels run a program over an iteration space:
 * a reduce kernel's store (the program's last instruction) goes through a
 * view with zero strides on the reduced axes, and combines (sum or max)
 * instead of overwriting. Gemm, gather and scatter kernels are described
 * by their spec. Arguments are numbered in order of first use. */
typedef struct kernel {
    kn_kind kind;
    uint32_t nargs;
    uint8_t *arg_dtype; /* [nargs] */
    /* map / reduce */
    loom_shape space;   /* iteration space (dims collapsed where the views allow) */
    kn_instr *code;
    uint32_t ncode;
    int64_t *strides;   /* space.rank words per view */
    uint32_t nviews;
    int reduce_op;      /* OP_SUM or OP_MAX */
    uint32_t reduce_mask;
    /* gemm, gather, scatter */
    kn_gemm gemm;
    kn_index index;
    /* rows: for each row r < rows, every sub-kernel's work items of row r
     * (sub-kernels' spaces have rows as their first dim; their loads and
     * stores name this kernel's arguments). arg_shared[a]: another
     * argument may point into the same buffer, so a is not noalias.
     * arg_scratch[a] >= 0: a lives in the calling thread's scratch, that
     * many bytes into its row_scratch bytes (after the sub-kernels'
     * reduction scratch), and the sub-kernels' views of it have no
     * stride along rows: a buffer only the chain touches, one row's band
     * of it at a time. */
    struct kernel *subs;
    uint32_t nsubs;
    int64_t rows;
    uint8_t *arg_shared;
    int64_t *arg_scratch;
    int64_t row_scratch;
    /* derived */
    uint64_t hash[2];   /* XXH3-128 of the canonical form above */
    double cost;        /* rough work (element operations or flops) */
} kernel;

/* ------------------------------------------------------------------ */
/* Buffers and calls                                                  */
/* ------------------------------------------------------------------ */

typedef enum pb_kind {
    PB_ARENA,  /* in the plan's arena at offset */
    PB_INPUT,  /* the input in slot ext */
    PB_PARAM,  /* the parameter ext */
} pb_kind;

/* What a buffer holds, for tools and bundles: flags over pb_kind. */
enum {
    PR_OUTPUT = 1u << 0,   /* read by the caller after the run */
    PR_UPDATE = 1u << 1,   /* a parameter's (or optimizer state's) next value */
    PR_BACKWARD = 1u << 2, /* computed by the backward pass (gradients) */
};

typedef struct plan_buffer {
    pb_kind kind;
    uint32_t role;    /* PR_* flags */
    uint32_t ext;     /* input slot or parameter id */
    uint64_t offset;  /* arena */
    uint64_t bytes;
    ir_id node;       /* the node whose value it holds (in the compiled graph) */
} plan_buffer;

typedef struct plan_arg {
    uint32_t buffer;
    uint32_t origin; /* the value the call stores through it (plan.origins), 0: none or not known */
    uint64_t offset; /* bytes into the buffer (views) */
} plan_arg;

/* What a stored value is, for the anomaly mode's messages: its node's
 * op and place in the model (the graph compiled is gone by then). */
typedef struct plan_origin {
    uint16_t op;
    uint8_t phase;    /* IR_FWD / IR_BWD / IR_UPD */
    uint8_t dtype;
    int32_t step;     /* time step, -1: none */
    uint32_t scope;   /* the context's scope id, 0: none */
    loom_shape shape;
} plan_origin;

typedef struct plan_call {
    uint32_t kernel;
    uint32_t arg; /* first argument in plan.args */
} plan_call;

typedef struct plan_output {
    uint32_t buffer;
    uint64_t offset;
} plan_output;

typedef struct plan_commit { /* after the run: param <- buffer */
    uint32_t buffer;
    uint64_t offset;
    uint32_t param;
    uint64_t bytes;
} plan_commit;

/* ------------------------------------------------------------------ */
/* The fusion report                                                  */
/* ------------------------------------------------------------------ */

/* Why a value went to memory between kernels instead of staying in a
 * fused kernel's registers, or why a kernel was not folded away. */
typedef enum plan_why {
    WHY_MATMUL,   /* a matmul reads it from memory */
    WHY_REDUCE,   /* a reduction reads it, and so does another kernel */
    WHY_VIEW,     /* a slice, permute, expand or reshape of it is read by another kernel */
    WHY_INDEX,    /* gather or scatter-add reads it */
    WHY_PAD,      /* a zero pad of it */
    WHY_CONCAT,   /* a concatenation that could not place it in its memory */
    WHY_OUTPUT,   /* an output of the plan or a parameter update */
    WHY_MAX_FUSE, /* the kernel reached compile_opts.max_fuse members */
    WHY_STEPS,    /* the kernel reached MAX_GROUP_STEPS time steps (plan_impl.h) */
    WHY_EPILOGUE, /* a GEMM's result read by a map kernel: not foldable into the GEMM */
    WHY_COPY,     /* a strided view copied into contiguous memory */
    WHY_FILL,     /* a constant written to memory */
    WHY_OTHER,
    WHY_COUNT
} plan_why;

typedef struct plan_why_count {
    uint64_t calls;   /* kernel boundaries (or extra kernels) of this kind */
    uint64_t values;  /* values stored at them */
    char example[96]; /* the first: "mul [32,512] step 3 fwd -> matmul" */
} plan_why_count;

typedef struct plan_report {
    plan_why_count why[WHY_COUNT];
    uint64_t nodes;              /* in the graph compiled */
    uint64_t matmuls_in;         /* matmuls before time-batching */
    uint64_t matmuls_out;        /* after */
    uint64_t matmuls_shared;     /* of matmuls_out, sharing an operand with another matmul: each
                                    depends on another's result (recurrent), so left alone */
    bool batching_off;           /* LOOM_BATCH=0 */
    uint64_t row_chains;         /* KN_ROWS calls made */
    uint64_t row_members;        /* map and reduce calls they replaced */
    uint64_t remat_trees;        /* backward readers given a recomputed forward value (remat.c) */
    uint64_t folds;              /* products of looked-up rows folded into products of the table (fold.c) */
    bool fold_off;               /* LOOM_FOLD=0 */
    uint64_t prepacked;          /* operands B packed once for several GEMM calls (prepack.c) */
    uint64_t prepacked_calls;    /* the GEMM calls reading them */
    bool remat_off;              /* LOOM_REMAT=0 */
} plan_report;

typedef struct plan {
    lm_mem mem;
    kernel *kernels;
    size_t nkernels, kernels_cap;
    plan_buffer *buffers;
    size_t nbuffers, buffers_cap;
    plan_call *calls;
    size_t ncalls, calls_cap;
    plan_arg *args;
    size_t nargs, args_cap;
    plan_output *outputs; /* one per root that is not an assignment */
    size_t noutputs;
    plan_commit *commits;
    size_t ncommits;
    plan_origin *origins; /* [0] unused */
    size_t norigins, origins_cap;
    size_t roots_cap;     /* outputs and commits were allocated for this many */
    uint64_t arena_bytes;
    uint64_t inplace;       /* buffers placed over an input that died at their first call */
    uint64_t commits_in_place; /* assignments written over their parameter by a call (commit_in_place) */
    uint64_t status_offset; /* an int64 in the arena: index errors */
    size_t scratch_bytes;   /* per thread, the largest any kernel needs */
    uint64_t key[2];        /* the graph's structural key */
    plan_report report;     /* what was not fused, and why */
} plan;

/* The report as text (snprintf semantics: the length it needs). */
size_t plan_report_text(const struct plan *p, char *buf, size_t size);

/* Compiles the graph computing roots (assignments among them commit to
 * their parameters). The plan owns its arrays; free with plan_free. */
typedef struct compile_opts {
    bool verify;      /* run the IR verifier between passes */
    bool no_batch;    /* skip time-batching */
    bool no_rows;     /* skip row chains */
    bool no_remat;    /* keep every forward value the backward pass reads (no recomputation) */
    bool no_prepack;  /* no prepacked GEMM operands (prepack.c) */
    bool no_fold;     /* no lookups folded into products (fold.c) */
    int threads;      /* threads the plan runs on (0: not known). Row chains are made for more
                         than one: they save a wake-up of the pool per member; on one thread
                         the members' own calls stream through the cache better (rows.c) */
    bool no_inplace;  /* never place a value over an operand dying at its call (the anomaly mode
                         evaluates a call's element again from its operands) */
    bool commit_in_place; /* a parameter's new value may be written over it by the call computing it,
                             when no later call reads it or checks an index (the runtime checks
                             those as they run: a failed run still commits nothing) */
    FILE *dot;        /* when set: the compiled graph as Graphviz DOT, kernels as clusters */
    int max_fuse;     /* instructions per map kernel at most (0: default) */
} compile_opts;

plan *plan_compile(ir_graph *g, const ir_id *roots, uint32_t nroots, const compile_opts *o);
void plan_free(plan *p);

/* The structural key of (g, roots): equal keys, equal computations. */
void plan_key(const ir_graph *g, const ir_id *roots, uint32_t nroots, uint64_t key[2]);

/* Flops of the plan's GEMM calls, 2·M·N·K·batch each (packing calls none). */
double plan_gemm_flops(const plan *p);

/* Prints kernels and calls (LOOM_VERBOSE, tests). */
void plan_print(const plan *p, FILE *out);

/* ------------------------------------------------------------------ */
/* Passes (graph to graph)                                            */
/* ------------------------------------------------------------------ */

/* Each builds a new graph in `to` from the nodes of `from` the roots
 * reach, rewriting roots[] to the new ids. Linear in nodes. */
loom_code pass_dce(const ir_graph *from, ir_graph *to, ir_id *roots, uint32_t nroots);
loom_code pass_simplify(const ir_graph *from, ir_graph *to, ir_id *roots, uint32_t nroots);
/* Time-batching (batch.c): matmuls sharing an operand, and sums of
 * matmuls of one structure, whose operands do not depend on them, become
 * one GEMM over the stacked operands. */
loom_code pass_batch(const ir_graph *from, ir_graph *to, ir_id *roots, uint32_t nroots);
/* Lookups folded into products (fold.c): gather(E, idx) · W becomes
 * gather(E · W, idx) when E has at most half as many rows as are looked
 * up, and likewise the two backward products; *folds counts them. */
loom_code pass_fold_lookups(const ir_graph *from, ir_graph *to, ir_id *roots, uint32_t nroots, uint64_t *folds);
/* Slice sinking (passes.c): slices of elementwise expressions used only
 * through slices become the expressions over the slices. */
loom_code pass_sink_slices(const ir_graph *from, ir_graph *to, ir_id *roots, uint32_t nroots);
/* Cheap forward values recomputed by their backward readers instead of
 * kept (remat.c); *trees: how many readers were given one. Runs last: it
 * makes duplicates on purpose, which hash-consing would fold. */
loom_code pass_remat(const ir_graph *from, ir_graph *to, ir_id *roots, uint32_t nroots, uint64_t *trees);
/* The copying driver of the graph passes (passes.c): the nodes the roots
 * reach, copied into `to` in order, each with its step and phase marks,
 * its operands the copies map[] gives. rw (may be NULL) sees each node
 * first, with those operands in srcs: it returns the node's rewrite, or
 * 0 to have it copied with srcs as rw left them. */
typedef ir_id (*pass_rewrite_fn)(const ir_graph *from, ir_graph *to, ir_id n, ir_id *srcs, const ir_id *map,
                                 void *ud);
loom_code pass_copy(const ir_graph *from, ir_graph *to, ir_id *roots, uint32_t nroots, pass_rewrite_fn rw, void *ud);

#endif /* LOOM_COMPILE_PLAN_H */
