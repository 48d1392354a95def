/*
 * ir.h — the graph IR: SSA nodes with a dtype and a static shape, kept in
 * insertion order (which is a topological order), with consumer lists and
 * structural hashing. Inserting a node that is structurally equal to one
 * already present returns the existing node (hash-consing), so common
 * subexpressions are shared from the start.
 *
 * The IR owns its arrays (nodes, operands, attributes, interned shapes,
 * the hash-consing table); nothing is freed node by node, and nothing has a
 * fixed cap: a 10^6-node unrolled graph is normal. It knows nothing of what
 * ops mean; the ops layer hands it an ir_opset (names, attribute
 * formatting, semantic verification). It depends on base.h and xxHash.
 */
#ifndef LOOM_IR_H
#define LOOM_IR_H

#include <stdio.h>

#include "base.h"

/* Node ids count from 1 in insertion order; 0 means "no node". */
typedef uint32_t ir_id;

/* What recorded a node: the model, its gradient, or an update. */
enum { IR_FWD = 0, IR_BWD = 1, IR_UPD = 2 };

typedef struct ir_node {
    uint64_t hash;   /* op, dtype, shape, attrs and the sources' hashes */
    uint16_t op;
    uint8_t dtype;   /* loom_dtype */
    uint8_t phase;   /* IR_FWD / IR_BWD / IR_UPD */
    uint32_t shape;  /* index into the interned shape table */
    uint32_t src;    /* first operand slot */
    uint32_t nsrc;
    uint32_t attr;   /* first attribute word */
    uint32_t nattr;
    int32_t step;    /* time-step mark, -1 outside any step */
    uint32_t scope;  /* the model part it belongs to (the context's scope table), 0: none */
    uint32_t uses;   /* head of the use list: operand slot + 1, 0 = none */
} ir_node;

/* One operand slot: owner uses src; next links the uses of src. */
typedef struct ir_use {
    ir_id src;
    ir_id owner;
    uint32_t next; /* slot + 1 of the next use of src, 0 = end */
} ir_use;

typedef struct ir_graph ir_graph;

/* What the IR needs to know about ops, supplied by the ops layer. */
typedef struct ir_opset {
    int count;
    const char *(*name)(int op);
    /* Writes the node's attributes as text; may be NULL. */
    void (*format)(const ir_graph *g, ir_id n, char *buf, size_t size);
    /* Checks the node against its op's rules (operand count, dtypes,
     * shape); records an error and returns it. May be NULL. */
    loom_code (*verify)(ir_graph *g, ir_id n);
} ir_opset;

struct ir_graph {
    lm_mem mem;
    lm_err *err;
    const ir_opset *ops;

    ir_node *nodes; /* [0] is a placeholder so ids start at 1 */
    size_t nnodes, nodes_cap;
    ir_use *use;
    size_t nuse, use_cap;
    int64_t *attrs;
    size_t nattrs, attrs_cap;

    loom_shape *shapes; /* interned */
    size_t nshapes, shapes_cap;
    uint32_t *shape_tab; /* open addressing: shape index + 1 */
    size_t shape_tab_cap;

    ir_id *cse; /* open addressing over node hashes: id, 0 = empty */
    size_t cse_cap;

    uint8_t *scratch; /* hashing buffer */
    size_t scratch_cap;

    int32_t cur_step; /* stamped on new nodes */
    uint8_t cur_phase;
    uint32_t cur_scope;
};

/* What to insert. shape/attrs/srcs are copied. */
typedef struct ir_desc {
    int op;
    loom_dtype dtype;
    loom_shape shape;
    const ir_id *srcs;
    uint32_t nsrc;
    const int64_t *attrs;
    uint32_t nattr;
} ir_desc;

/* A new empty graph whose allocations go through mem and whose errors go
 * to err (both must outlive it). NULL on NOMEM (recorded in err). */
ir_graph *ir_graph_new(lm_mem mem, lm_err *err, const ir_opset *ops);
void ir_graph_free(ir_graph *g);

/* Inserts a node, or returns the structurally equal node already present.
 * The caller has checked the node (the ops layer's builders do). Returns
 * 0 on NOMEM or when the graph has already failed. */
ir_id ir_add(ir_graph *g, const ir_desc *d);

/* Inserts a node even when a structurally equal one is present: a value
 * computed twice on purpose (recomputation), which hash-consing would
 * otherwise fold back into the first. Copying passes that rebuild the
 * graph through ir_add fold it again, so it is made by the last pass. */
ir_id ir_add_unique(ir_graph *g, const ir_desc *d);

static inline size_t ir_count(const ir_graph *g) { return g->nnodes - 1; }
static inline ir_id ir_last(const ir_graph *g) { return (ir_id)(g->nnodes - 1); }
static inline const ir_node *ir_node_at(const ir_graph *g, ir_id n) { return &g->nodes[n]; }
static inline int ir_op(const ir_graph *g, ir_id n) { return g->nodes[n].op; }
static inline loom_dtype ir_dtype(const ir_graph *g, ir_id n) { return (loom_dtype)g->nodes[n].dtype; }
static inline const loom_shape *ir_shape(const ir_graph *g, ir_id n)
{
    return &g->shapes[g->nodes[n].shape];
}
/* By value: the pointer above moves when a later insertion interns a new
 * shape, so code that builds nodes keeps copies. */
static inline loom_shape ir_shapev(const ir_graph *g, ir_id n) { return g->shapes[g->nodes[n].shape]; }
static inline int64_t ir_numel(const ir_graph *g, ir_id n) { return loom_shape_numel(*ir_shape(g, n)); }
static inline uint32_t ir_nsrc(const ir_graph *g, ir_id n) { return g->nodes[n].nsrc; }
static inline ir_id ir_src(const ir_graph *g, ir_id n, uint32_t i)
{
    return g->use[g->nodes[n].src + i].src;
}
static inline const int64_t *ir_attrs(const ir_graph *g, ir_id n) { return g->attrs + g->nodes[n].attr; }
static inline uint32_t ir_nattr(const ir_graph *g, ir_id n) { return g->nodes[n].nattr; }
static inline bool ir_valid(const ir_graph *g, ir_id n) { return n > 0 && n < g->nnodes; }
static inline bool ir_failed(const ir_graph *g) { return g->err->code != LOOM_OK; }

/* Iterating consumers: for (uint32_t u = ir_first_use(g, n); u; u = ir_next_use(g, u))
 *     ir_use_owner(g, u) ... */
static inline uint32_t ir_first_use(const ir_graph *g, ir_id n) { return g->nodes[n].uses; }
static inline uint32_t ir_next_use(const ir_graph *g, uint32_t u) { return g->use[u - 1].next; }
static inline ir_id ir_use_owner(const ir_graph *g, uint32_t u) { return g->use[u - 1].owner; }
size_t ir_use_count(const ir_graph *g, ir_id n);

/* Doubles stored in attribute words bit for bit. */
static inline int64_t ir_f2a(double v)
{
    int64_t a;
    memcpy(&a, &v, sizeof a);
    return a;
}
static inline double ir_a2f(int64_t a)
{
    double v;
    memcpy(&v, &a, sizeof v);
    return v;
}

const char *ir_op_name(const ir_graph *g, int op);

/* Structure (ids topological, operands and uses consistent, shapes
 * interned, hashes and the CSE table right) and, through the opset, each
 * node's semantics. LOOM_OK or the first problem, recorded in g->err. */
loom_code ir_verify(ir_graph *g);

/* Labels for the printers (names of inputs and parameters); may be NULL. */
typedef const char *(*ir_label_fn)(void *ud, const ir_graph *g, ir_id n);

/* One line per node: `%5 = add %3, %4 : f32[8,3] @t2 bwd`. */
void ir_print(const ir_graph *g, FILE *out, ir_label_fn label, void *ud);
void ir_print_node(const ir_graph *g, ir_id n, FILE *out, ir_label_fn label, void *ud);
/* A Graphviz DOT graph; nodes of one time step are grouped in a cluster. */
void ir_write_dot(const ir_graph *g, FILE *out, ir_label_fn label, void *ud);

#endif /* LOOM_IR_H */
