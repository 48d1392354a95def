/*
 * plan_impl.h — the compiler's internals shared by its files: the state of
 * the fusion walk and the kernel under construction. Internal to compile/.
 */
#ifndef LOOM_COMPILE_PLAN_IMPL_H
#define LOOM_COMPILE_PLAN_IMPL_H

#include "plan.h"

/* A node's memory: buffer, element offset and strides over its shape. */
typedef struct view {
    uint32_t buf;
    int64_t off;
    int64_t st[LOOM_MAX_RANK];
} view;

enum { S_NONE = 0, S_CONST, S_GROUP, S_VIEW };

/* Time steps an elementwise kernel may span (its members' step marks;
 * fuse.c, and the fusion report's WHY_STEPS line prints it). */
#define MAX_GROUP_STEPS 4

typedef struct group {
    loom_shape shape;
    uint32_t parent; /* union-find: groups merge where they meet */
    bool open;
    ir_id first, last; /* members, chained through fz.next */
    uint32_t nmembers;
    int64_t ext;       /* uses of members by non-members (+ outputs) */
    int32_t step_lo, step_hi; /* time steps of its members (step_lo > step_hi: none) */
} group;

/* The kernel being built. */
typedef struct kbuild {
    kn_kind kind;
    loom_shape space;
    kn_instr *code;
    size_t ncode, code_cap;
    int64_t *strides; /* LOOM_MAX_RANK per view */
    size_t nviews, strides_cap;
    plan_arg *args;
    size_t nargs, args_cap;
    uint8_t *arg_dtype;
    size_t arg_dtype_cap;
    int reduce_op;
    uint32_t reduce_mask, reduce_value;
    kn_gemm gemm;
    kn_index index;
} kbuild;

typedef struct fz {
    ir_graph *g;
    plan *p;
    lm_mem mem;
    compile_opts o;
    size_t n;          /* nodes + 1 */
    uint8_t *state;    /* [n] S_* */
    uint8_t *root;     /* [n] an output of the plan */
    uint32_t *grp;     /* [n] group of a member (0: none) */
    uint32_t *vid;     /* [n] view of a node with memory */
    ir_id *next;       /* [n] member chain */
    uint32_t *instr_of; /* [n] the node's instruction in the kernel being built */
    uint32_t *mark;    /* [n] instr_of is valid when mark == stamp */
    uint32_t *gcall;   /* [n] the GEMM call whose output is n's value, or UINT32_MAX */
    ir_id *slab;       /* [n] the concatenation n is computed in place in (0: none) */
    int64_t *slab_at;  /* [n] n's position along that concatenation's axis */
    uint32_t stamp;
    view *views;
    size_t nviews, views_cap;
    group *groups;     /* [0] unused */
    size_t ngroups, groups_cap;
    uint32_t status;   /* the index-error word's buffer, UINT32_MAX until needed */
    uint32_t *born;    /* per buffer: the call that first writes it (0 for external memory) */
    size_t born_cap;
    kbuild kb;
    /* the fusion report: the node being placed, and a reason that
     * overrides the one its op gives (WHY_COUNT: none) */
    ir_id consumer;
    plan_why why;
    uint32_t *kcall;   /* [n] 1 + the call computing the node (0: none), for compile_opts.dot */
    /* kernels of the plan by hash, for sharing */
    uint32_t *ktab;
    size_t ktab_cap;
} fz;

/* n's memory, making it (closing its group, filling a constant) if need
 * be; NULL on error. */
const view *view_of(fz *f, ir_id n);
/* Turns the kernel under construction into a plan kernel (shared with an
 * equal one) and a call. */
void fz_finish_kernel(fz *f);
/* The kernel part alone: the plan kernel's index, or -1. */
long fz_make_kernel(fz *f);
/* Points call ci at kernel ki with the arguments under construction. */
bool fz_set_call(fz *f, uint32_t ci, long ki);
/* The walk over the graph. */
loom_code fz_run(fz *f, const ir_id *roots, uint32_t nroots);
/* Row chains (rows.c): consecutive row-local map and reduce calls become
 * one KN_ROWS call. Before memory planning. */
loom_code fz_rows(fz *f);
/* Prepacked weights (prepack.c): GEMM calls with few rows sharing their
 * B operand read it packed once, by a call before the first of them. */
loom_code fz_prepack(fz *f);

/* Kernels (plan.c): the hash and cost of a finished kernel, its arrays
 * freed, and an equal kernel of the plan found or k added (k's arrays
 * then belong to the plan, or are freed): the index, or -1. */
void plan_kernel_hash(kernel *k);
double plan_kernel_cost(const kernel *k);
void plan_kernel_free(lm_mem *m, kernel *k);
long fz_intern_kernel(fz *f, kernel *k);

#endif /* LOOM_COMPILE_PLAN_IMPL_H */
