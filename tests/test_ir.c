/*
 * test_ir.c — the graph IR: hash-consing and structural hashing, use
 * lists, shape interning, the verifier (accepting and rejecting), the text
 * and DOT printers, and growth to 10^6 nodes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* open_memstream */
#endif
#include "testutil.h"

#include <stdlib.h>
#include <time.h>

#include "ops.h"

typedef struct fixture {
    lm_err err;
    ir_graph *g;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->g = ir_graph_new((lm_mem){ .fn = lm_default_alloc }, &f->err, &op_opset);
    *state = f;
    return f->g ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ir_graph_free(f->g);
    free(f);
    return 0;
}

static void test_ir_hash_consing_returns_existing_node(void **state)
{
    ir_graph *g = ((fixture *)*state)->g;
    ir_id a = op_input(g, LOOM_F32, LOOM_SHAPE(2, 3), 0), b = op_input(g, LOOM_F32, LOOM_SHAPE(2, 3), 1);
    ir_id s1 = op_add(g, a, b);
    size_t n = ir_count(g);
    ir_id s2 = op_add(g, a, b);
    assert_int_equal(s1, s2);
    assert_int_equal(ir_count(g), n);
    /* operand order matters (no commutative canonicalisation here) */
    assert_int_not_equal(op_add(g, b, a), s1);
    /* a chain rebuilt is folded at every level */
    ir_id t1 = op_unary(g, OP_TANH, op_mul(g, s1, a));
    n = ir_count(g);
    assert_int_equal(op_unary(g, OP_TANH, op_mul(g, op_add(g, a, b), a)), t1);
    assert_int_equal(ir_count(g), n);
}

static void test_ir_cse_tells_attributes_dtypes_shapes_apart(void **state)
{
    ir_graph *g = ((fixture *)*state)->g;
    ir_id c1 = op_const(g, LOOM_F32, LOOM_SHAPE(4), 1.0);
    assert_int_equal(op_const(g, LOOM_F32, LOOM_SHAPE(4), 1.0), c1);
    assert_int_not_equal(op_const(g, LOOM_F32, LOOM_SHAPE(4), 2.0), c1);
    assert_int_not_equal(op_const(g, LOOM_F64, LOOM_SHAPE(4), 1.0), c1);
    assert_int_not_equal(op_const(g, LOOM_F32, LOOM_SHAPE(2, 2), 1.0), c1);
    /* -0.0 and 0.0 are one constant; f32 constants are canonical in f32 */
    assert_int_equal(op_const(g, LOOM_F32, LOOM_SHAPE(4), -0.0), op_const(g, LOOM_F32, LOOM_SHAPE(4), 0.0));
    assert_int_equal(op_const(g, LOOM_F32, LOOM_SHAPE(4), 0.1), op_const(g, LOOM_F32, LOOM_SHAPE(4), (float)0.1));
    ir_id x = op_input(g, LOOM_F32, LOOM_SHAPE(6, 4), 0);
    int64_t st[2] = { 0, 0 }, sp[2] = { 3, 4 }, sp2[2] = { 4, 4 }, k[2] = { 1, 1 };
    assert_int_not_equal(op_slice(g, x, st, sp, k), op_slice(g, x, st, sp2, k));
    assert_int_equal(op_slice(g, x, st, sp, k), op_slice(g, x, st, sp, k));
    /* inputs and parameters are distinct by slot / id */
    assert_int_not_equal(op_input(g, LOOM_F32, LOOM_SHAPE(6, 4), 1), x);
    assert_int_not_equal(op_param(g, LOOM_F32, LOOM_SHAPE(6, 4), 0), x);
}

/* The structural hash does not depend on node numbering: the same
 * expression built after unrelated nodes hashes the same. */
static void test_ir_hash_is_structural(void **state)
{
    ir_graph *g = ((fixture *)*state)->g;
    lm_err err2 = { 0 };
    ir_graph *h = ir_graph_new((lm_mem){ .fn = lm_default_alloc }, &err2, &op_opset);
    for (int i = 0; i < 10; i++) /* shift h's numbering */
        op_const(h, LOOM_F64, LOOM_SHAPE(i + 1), i);
    ir_id ids[2];
    ir_graph *gs[2] = { g, h };
    for (int k = 0; k < 2; k++) {
        ir_graph *q = gs[k];
        ir_id a = op_input(q, LOOM_F32, LOOM_SHAPE(3, 3), 0), w = op_param(q, LOOM_F32, LOOM_SHAPE(3, 3), 5);
        ids[k] = op_unary(q, OP_SIGMOID, op_matmul(q, a, w, false, true));
    }
    assert_int_not_equal(ids[0], ids[1]);
    assert_true(ir_node_at(g, ids[0])->hash == ir_node_at(h, ids[1])->hash);
    ir_graph_free(h);
}

static void test_ir_use_lists_name_every_consumer(void **state)
{
    ir_graph *g = ((fixture *)*state)->g;
    ir_id x = op_input(g, LOOM_F64, LOOM_SHAPE(5), 0);
    ir_id a = op_unary(g, OP_EXP, x), b = op_mul(g, x, x), c = op_add(g, a, x);
    assert_int_equal(ir_use_count(g, x), 4); /* exp, mul twice, add */
    int seen_exp = 0, seen_mul = 0, seen_add = 0;
    for (uint32_t u = ir_first_use(g, x); u; u = ir_next_use(g, u)) {
        ir_id o = ir_use_owner(g, u);
        seen_exp += o == a;
        seen_mul += o == b;
        seen_add += o == c;
    }
    assert_int_equal(seen_exp, 1);
    assert_int_equal(seen_mul, 2);
    assert_int_equal(seen_add, 1);
    assert_int_equal(ir_use_count(g, c), 0);
}

static void test_ir_shapes_are_interned(void **state)
{
    ir_graph *g = ((fixture *)*state)->g;
    ir_id a = op_input(g, LOOM_F32, LOOM_SHAPE(7, 9), 0), b = op_input(g, LOOM_F64, LOOM_SHAPE(7, 9), 1);
    ir_id c = op_input(g, LOOM_F32, LOOM_SHAPE(9, 7), 2);
    assert_int_equal(ir_node_at(g, a)->shape, ir_node_at(g, b)->shape);
    assert_int_not_equal(ir_node_at(g, a)->shape, ir_node_at(g, c)->shape);
    for (int i = 0; i < 500; i++) /* many shapes: the table grows */
        op_const(g, LOOM_F32, LOOM_SHAPE(i + 1, 2), 0);
    assert_true(g->nshapes >= 502);
    assert_true(loom_shape_equal(*ir_shape(g, a), LOOM_SHAPE(7, 9)));
    assert_int_equal(ir_verify(g), LOOM_OK);
}

static void build_sample(ir_graph *g)
{
    ir_id x = op_input(g, LOOM_F32, LOOM_SHAPE(4, 3), 0), w = op_param(g, LOOM_F32, LOOM_SHAPE(3, 2), 0);
    g->cur_step = 0;
    ir_id h = op_unary(g, OP_TANH, op_matmul(g, x, w, false, false));
    g->cur_step = 1;
    h = op_unary(g, OP_TANH, op_matmul(g, x, w, false, false));
    ir_id r = op_reduce(g, OP_SUM, op_mul(g, h, h), 3, false);
    g->cur_step = -1;
    (void)r;
}

static void test_ir_verify_accepts_valid_graphs(void **state)
{
    ir_graph *g = ((fixture *)*state)->g;
    build_sample(g);
    assert_int_equal(ir_verify(g), LOOM_OK);
}

/* Each corruption is caught and named. */
static void test_ir_verify_rejects_corruption(void **state)
{
    (void)state;
    const char *expect[] = { "stale structural hash", "does not precede", "wrong owner" };
    for (int k = 0; k < 3; k++) {
        lm_err err = { 0 };
        ir_graph *g = ir_graph_new((lm_mem){ .fn = lm_default_alloc }, &err, &op_opset);
        ir_id x = op_input(g, LOOM_F32, LOOM_SHAPE(2, 2), 0), y = op_input(g, LOOM_F32, LOOM_SHAPE(2, 2), 1);
        ir_id s = op_add(g, x, y);
        ir_id e = op_unary(g, OP_EXP, s);
        assert_int_equal(ir_verify(g), LOOM_OK);
        if (k == 0)
            g->nodes[s].hash ^= 1;
        else if (k == 1)
            g->use[g->nodes[s].src].src = e; /* s would use a later node */
        else
            g->use[g->nodes[e].src].owner = s;
        assert_int_equal(ir_verify(g), LOOM_ERR_INTERNAL);
        if (!strstr(err.msg, expect[k]))
            fail_msg("corruption %d: message \"%s\" lacks \"%s\"", k, err.msg, expect[k]);
        ir_graph_free(g);
    }
}

/* A node whose shape disagrees with its op's rule, with a consistent hash,
 * fails through the opset's check. */
static void test_ir_verify_runs_the_op_rules(void **state)
{
    (void)state;
    lm_err err = { 0 };
    ir_graph *g = ir_graph_new((lm_mem){ .fn = lm_default_alloc }, &err, &op_opset);
    ir_id x = op_input(g, LOOM_F32, LOOM_SHAPE(2, 3), 0);
    /* insert a transpose-less "matmul" of [2,3]x[2,3] straight into the IR */
    ir_id srcs[2] = { x, x };
    int64_t attrs[2] = { 0, 0 };
    ir_add(g, &(ir_desc){ .op = OP_MATMUL, .dtype = LOOM_F32, .shape = LOOM_SHAPE(2, 3), .srcs = srcs,
                          .nsrc = 2, .attrs = attrs, .nattr = 2 });
    assert_int_equal(ir_verify(g), LOOM_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "matmul"));
    assert_non_null(strstr(err.msg, "inner dimensions"));
    ir_graph_free(g);
}

static char *capture(const ir_graph *g, bool dot)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (dot)
        ir_write_dot(g, f, NULL, NULL);
    else
        ir_print(g, f, NULL, NULL);
    fclose(f);
    return buf;
}

static void test_ir_printer_writes_one_line_per_node(void **state)
{
    ir_graph *g = ((fixture *)*state)->g;
    build_sample(g);
    char *text = capture(g, false);
    size_t lines = 0;
    for (char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, ir_count(g));
    assert_non_null(strstr(text, "%1 = input [#0] : f32[4,3]"));
    assert_non_null(strstr(text, "= matmul %1, %2 [a b] : f32[4,2] @t0"));
    assert_non_null(strstr(text, "= tanh"));
    assert_non_null(strstr(text, "@t1"));
    assert_non_null(strstr(text, "sum"));
    assert_non_null(strstr(text, "[axes=0,1]"));
    free(text);
}

static const char *quoted_label(void *ud, const ir_graph *g, ir_id n)
{
    (void)ud;
    return ir_op(g, n) == OP_INPUT ? "say \"hi\"" : NULL;
}

static void test_ir_dot_groups_steps(void **state)
{
    ir_graph *g = ((fixture *)*state)->g;
    build_sample(g);
    char *dot = capture(g, true);
    assert_true(strncmp(dot, "digraph loom {", 14) == 0);
    assert_non_null(strstr(dot, "subgraph cluster_t0"));
    assert_non_null(strstr(dot, "subgraph cluster_t1"));
    assert_non_null(strstr(dot, "n1 -> n3;"));
    assert_non_null(strstr(dot, "label=\"%1 input"));
    size_t open = 0, close = 0;
    for (char *p = dot; *p; p++) {
        open += *p == '{';
        close += *p == '}';
    }
    assert_int_equal(open, close);
    free(dot);
    /* labels are quoted DOT strings: quotes in names are escaped */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ir_write_dot(g, f, quoted_label, NULL);
    fclose(f);
    assert_non_null(strstr(buf, "say \\\"hi\\\""));
    free(buf);
}

/* 10^6 nodes: an unrolled chain where every step differs (distinct
 * inputs), so nothing folds. Growth has no cap and stays fast. */
static void test_ir_grows_to_a_million_nodes(void **state)
{
    (void)state;
    lm_err err = { 0 };
    ir_graph *g = ir_graph_new((lm_mem){ .fn = lm_default_alloc }, &err, &op_opset);
    clock_t t0 = clock();
    ir_id w = op_param(g, LOOM_F32, LOOM_SHAPE(8, 8), 0);
    ir_id h = op_const(g, LOOM_F32, LOOM_SHAPE(1, 8), 0);
    uint32_t steps = 250000;
    for (uint32_t t = 0; t < steps; t++) {
        g->cur_step = (int32_t)t;
        ir_id x = op_input(g, LOOM_F32, LOOM_SHAPE(1, 8), t);
        h = op_unary(g, OP_TANH, op_add(g, op_matmul(g, h, w, false, false), x));
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_int_equal(ir_count(g), 2 + 4 * (size_t)steps);
    assert_false(ir_failed(g));
    print_message("1,000,002 nodes recorded in %.2f s\n", secs);
    assert_int_equal(ir_verify(g), LOOM_OK);
    ir_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ir_hash_consing_returns_existing_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ir_cse_tells_attributes_dtypes_shapes_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ir_hash_is_structural, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ir_use_lists_name_every_consumer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ir_shapes_are_interned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ir_verify_accepts_valid_graphs, setup, teardown),
        cmocka_unit_test(test_ir_verify_rejects_corruption),
        cmocka_unit_test(test_ir_verify_runs_the_op_rules),
        cmocka_unit_test_setup_teardown(test_ir_printer_writes_one_line_per_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ir_dot_groups_steps, setup, teardown),
        cmocka_unit_test(test_ir_grows_to_a_million_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
