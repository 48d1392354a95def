/*
 * lower.h — how an elementwise op computes one element, written against a
 * small set of primitives that a code generator implements (the JIT turns
 * them into LLVM IR; nothing here knows LLVM). Each elementwise op's file
 * holds its lowering next to its reference kernel, so the two definitions
 * of what the op means stay side by side.
 *
 * Values are the generator's opaque handles. Comparisons give 1 or 0 in
 * the operands' type, as the ops do; select takes such a 1/0 (or any
 * nonzero) condition.
 */
#ifndef LOOM_OPS_LOWER_H
#define LOOM_OPS_LOWER_H

#include "ir.h"

typedef void *kx_val;

typedef enum kx_prim {
    /* binary */
    KX_ADD,
    KX_SUB,
    KX_MUL,
    KX_DIV,
    KX_EQ,
    KX_NE,
    KX_LT,
    KX_LE,
    KX_GT,
    KX_GE,
    /* unary (the second operand is ignored) */
    KX_NEG,
    KX_ABS,
    KX_SQRT,
    KX_EXP,
    KX_LOG,
    KX_LOG1P,
    KX_TANH,
    KX_SIGMOID,
    KX_SIN,
    KX_COS,
    KX_PRIM_COUNT
} kx_prim;

typedef struct kx kx;

/* The generator's side. dtype is the node's being lowered. */
struct kx {
    loom_dtype dtype;
    kx_val (*op)(kx *k, kx_prim p, kx_val a, kx_val b);
    kx_val (*select)(kx *k, kx_val cond, kx_val a, kx_val b);
    kx_val (*konst)(kx *k, loom_dtype dt, double v);
    kx_val (*cast)(kx *k, kx_val a, loom_dtype from, loom_dtype to);
    /* The element's coordinate along an axis of the kernel's iteration
     * space (which is the node's shape), as a value of dtype dt. */
    kx_val (*coord)(kx *k, int axis, loom_dtype dt);
    /* The random op's value for this element (see ops/defs/random.c); key is
     * the value the generator gave the key operand. */
    kx_val (*random)(kx *k, kx_val key, int kind, uint32_t stream, double p);
};

/* What a lowering may know of its node. */
typedef struct kx_node {
    int op;
    loom_dtype dtype;
    loom_dtype src_dtype[3];
    const int64_t *attrs; /* the op's attribute words */
} kx_node;

/* An elementwise op's lowering: the node's value given its operands'
 * values (in[i] for operand i; sources have none). */
typedef kx_val (*op_lower_fn)(kx *k, const kx_node *nd, const kx_val *in);

static inline kx_val kx_un(kx *k, kx_prim p, kx_val a) { return k->op(k, p, a, NULL); }
static inline kx_val kx_bin(kx *k, kx_prim p, kx_val a, kx_val b) { return k->op(k, p, a, b); }
static inline kx_val kx_const(kx *k, double v) { return k->konst(k, k->dtype, v); }

#endif /* LOOM_OPS_LOWER_H */
