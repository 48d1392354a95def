/*
 * test_autograd.c — reverse mode: the finite-difference check of every
 * differentiable primitive (walking the op list), second derivatives,
 * fan-out, detach, frozen parameters, step marks on gradients.
 */
#include "testutil.h"

#include "fe.h"

enum { SEEDS_PER_OP = 12 };

/* Every op with OPF_DIFF must have a VJP and a check case, every op
 * without it must have neither VJP: adding an op without them fails here. */
static void test_gradcheck_every_differentiable_op(void **state)
{
    (void)state;
    lm_err err = { 0 };
    lm_mem mem = { .fn = lm_default_alloc };
    double worst_rel = 0, worst_abs = 0;
    const char *worst_op = "";
    int checked_ops = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        const op_def *d = op_get(op);
        if (!(d->flags & OPF_DIFF)) {
            if (d->vjp)
                fail_msg("%s has a VJP but is not marked differentiable", d->name);
            continue;
        }
        if (!d->vjp)
            fail_msg("%s is differentiable but has no VJP", d->name);
        if (!d->check)
            fail_msg("%s is differentiable but has no gradient-check case", d->name);
        double op_rel = 0, op_abs = 0;
        int64_t elems = 0;
        for (uint64_t seed = 1; seed <= SEEDS_PER_OP; seed++) {
            ad_check_stats st;
            lm_err_clear(&err);
            if (ad_gradcheck_op(mem, &err, op, seed, &st) != LOOM_OK)
                fail_msg("gradcheck %s (seed %llu): %s", d->name, (unsigned long long)seed, err.msg);
            if (!(st.max_rel <= 1e-6) || !(st.max_abs <= 1e-6))
                fail_msg("gradcheck %s (seed %llu): relative error %.3g, absolute %.3g", d->name,
                         (unsigned long long)seed, st.max_rel, st.max_abs);
            op_rel = fmax(op_rel, st.max_rel);
            op_abs = fmax(op_abs, st.max_abs);
            elems += st.checked;
        }
        if (elems == 0)
            fail_msg("gradcheck %s compared no elements", d->name);
        print_message("gradcheck %-12s %5lld elements  worst rel %.2e  abs %.2e\n", d->name,
                      (long long)elems, op_rel, op_abs);
        if (op_rel > worst_rel) {
            worst_rel = op_rel;
            worst_op = d->name;
        }
        worst_abs = fmax(worst_abs, op_abs);
        checked_ops++;
    }
    print_message("gradcheck: %d differentiable ops, worst relative error %.2e (%s), worst absolute %.2e\n",
                  checked_ops, worst_rel, worst_op, worst_abs);
    assert_true(checked_ops >= 25);
}

/* The checker must be able to fail: x * detach(x) has the analytic
 * gradient x (detach cuts one path) while finite differences see 2x. */
static ir_id build_cut(op_check *c, void *ud)
{
    (void)ud;
    ir_graph *g = op_check_graph(c);
    ir_id x = op_check_input_new(c, LOOM_SHAPE(5), 0.5, 1.5);
    return op_mul(g, x, op_unary(g, OP_DETACH, x));
}

static void test_gradcheck_catches_a_wrong_gradient(void **state)
{
    (void)state;
    lm_err err = { 0 };
    lm_mem mem = { .fn = lm_default_alloc };
    ad_check_stats st;
    assert_int_equal(ad_gradcheck_case(mem, &err, build_cut, NULL, 3, &st), LOOM_OK);
    assert_int_equal(st.checked, 5);
    assert_true(st.max_rel > 0.3);
}

/* ------------------------------------------------------------------ */

static double run1(loom_ctx *ctx, loom_t t)
{
    assert_int_equal(loom_eval(ctx, 1, &t), LOOM_OK);
    return loom_item(ctx, t);
}

/* A Hessian-vector product through the gradient graph, against finite
 * differences of the first derivative. f(x) = sum(tanh(x) * x * x). */
static void test_grad_second_derivative(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(NULL);
    double x0[4] = { -0.7, 0.2, 0.9, 1.3 }, v[4] = { 0.3, -1.1, 0.5, 0.8 };
    loom_t x = loom_input(ctx, "x", LOOM_F64, LOOM_SHAPE(4));
    loom_t vv = loom_tensor(ctx, LOOM_F64, LOOM_SHAPE(4), v);
    loom_t f = loom_sum_all(ctx, loom_mul(ctx, loom_tanh(ctx, x), loom_mul(ctx, x, x)));
    loom_t g;
    assert_int_equal(loom_vjp(ctx, 1, &f, NULL, 1, &x, &g), LOOM_OK);
    loom_t gv = loom_sum_all(ctx, loom_mul(ctx, g, vv));
    loom_t hv;
    assert_int_equal(loom_vjp(ctx, 1, &gv, NULL, 1, &x, &hv), LOOM_OK);
    TU_OK(ctx);
    assert_int_equal(loom_feed(ctx, x, x0, sizeof x0), LOOM_OK);
    assert_int_equal(loom_eval(ctx, 1, &hv), LOOM_OK);
    double analytic[4];
    assert_int_equal(loom_read(ctx, hv, analytic, sizeof analytic), LOOM_OK);
    /* numeric: d/dx_i of (g . v) */
    double numeric[4], eps = 1e-6;
    for (int i = 0; i < 4; i++) {
        double xp[4], xm[4];
        memcpy(xp, x0, sizeof xp);
        memcpy(xm, x0, sizeof xm);
        xp[i] += eps;
        xm[i] -= eps;
        loom_feed(ctx, x, xp, sizeof xp);
        double p = run1(ctx, gv);
        loom_feed(ctx, x, xm, sizeof xm);
        double m = run1(ctx, gv);
        numeric[i] = (p - m) / (2 * eps);
    }
    tu_assert_close(analytic, numeric, 4, 1e-7, "Hessian-vector product");
    /* and by hand: f'' for one coordinate, v_i * (t'' x^2 + 4 t' x + 2 t) */
    for (int i = 0; i < 4; i++) {
        double t = tanh(x0[i]), t1 = 1 - t * t, t2 = -2 * t * t1, xi = x0[i];
        double h = t2 * xi * xi + 4 * t1 * xi + 2 * t;
        assert_true(fabs(analytic[i] - h * v[i]) < 1e-12);
    }
    loom_ctx_free(ctx);
}

static void test_grad_fanout_is_summed(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(NULL);
    loom_t p = loom_param(ctx, "p", LOOM_F64, LOOM_SHAPE(3));
    double pv[3] = { 1, -2, 0.5 };
    loom_param_set(ctx, p, pv, sizeof pv);
    /* loss = sum(p*p + 3p + p): gradient 2p + 4 */
    loom_t loss = loom_sum_all(ctx, loom_add(ctx, loom_add(ctx, loom_mul(ctx, p, p), loom_muls(ctx, p, 3)), p));
    assert_int_equal(loom_backward(ctx, loss), LOOM_OK);
    loom_t gp = loom_grad(ctx, p);
    assert_false(loom_is_null(gp));
    assert_int_equal(loom_eval(ctx, 1, &gp), LOOM_OK);
    const double *g = loom_data(ctx, gp);
    double want[3] = { 6, 0, 5 };
    tu_assert_close(g, want, 3, 1e-15, "fan-out gradient");
    loom_ctx_free(ctx);
}

static void test_grad_detach_stops_gradient(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(NULL);
    loom_t p = loom_param(ctx, "p", LOOM_F64, LOOM_SHAPE(2));
    double pv[2] = { 2, 3 };
    loom_param_set(ctx, p, pv, sizeof pv);
    /* loss = sum(p * detach(p)): gradient is detach(p) = p, not 2p */
    loom_t loss = loom_sum_all(ctx, loom_mul(ctx, p, loom_detach(ctx, p)));
    assert_int_equal(loom_backward(ctx, loss), LOOM_OK);
    loom_t gp = loom_grad(ctx, p);
    assert_int_equal(loom_eval(ctx, 1, &gp), LOOM_OK);
    tu_assert_close(loom_data(ctx, gp), pv, 2, 0, "gradient through detach");
    loom_ctx_free(ctx);
}

/* A frozen parameter gets no gradient, and no gradient node is built on
 * the path that only it needs. */
static void test_grad_frozen_param_builds_nothing(void **state)
{
    (void)state;
    size_t nodes[2];
    for (int frozen = 0; frozen < 2; frozen++) {
        loom_ctx *ctx = loom_ctx_new(NULL);
        loom_t a = loom_param(ctx, "a", LOOM_F32, LOOM_SHAPE(4, 4));
        loom_t b = loom_param(ctx, "b", LOOM_F32, LOOM_SHAPE(4, 4));
        loom_param_init_normal(ctx, a, 0, 1);
        loom_param_init_normal(ctx, b, 0, 1);
        if (frozen)
            assert_int_equal(loom_param_set_trainable(ctx, b, false), LOOM_OK);
        loom_t x = loom_full(ctx, LOOM_F32, LOOM_SHAPE(2, 4), 0.5);
        /* b's branch: tanh(x b) feeds the loss */
        loom_t h = loom_add(ctx, loom_matmul(ctx, x, a), loom_tanh(ctx, loom_matmul(ctx, x, b)));
        loom_t loss = loom_sum_all(ctx, loom_mul(ctx, h, h));
        size_t before = loom_node_count(ctx);
        assert_int_equal(loom_backward(ctx, loss), LOOM_OK);
        nodes[frozen] = loom_node_count(ctx) - before;
        assert_false(loom_is_null(loom_grad(ctx, a)));
        assert_int_equal(loom_is_null(loom_grad(ctx, b)), frozen);
        TU_OK(ctx);
        loom_ctx_free(ctx);
    }
    /* the frozen run builds neither tanh's VJP nor b's matmul gradient */
    assert_true(nodes[1] + 4 <= nodes[0]);
}

/* Gradient nodes carry the step of the node they differentiate. */
static void test_grad_step_marks_reach_backward(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(NULL);
    loom_t w = loom_param(ctx, "w", LOOM_F64, LOOM_SHAPE(3, 3));
    loom_param_init_normal(ctx, w, 0, 0.5);
    loom_t h = loom_full(ctx, LOOM_F64, LOOM_SHAPE(1, 3), 0.1);
    for (int t = 0; t < 4; t++) {
        loom_step_begin(ctx, t);
        h = loom_tanh(ctx, loom_matmul(ctx, h, w));
        loom_step_end(ctx);
    }
    loom_t loss = loom_sum_all(ctx, h);
    assert_int_equal(loom_backward(ctx, loss), LOOM_OK);
    ir_graph *g = ctx->g;
    int fwd_tanh[4] = { 0 }, bwd_mm[4] = { 0 };
    for (ir_id n = 1; n <= ir_last(g); n++) {
        int32_t t = ir_node_at(g, n)->step;
        if (ir_op(g, n) == OP_TANH && ir_node_at(g, n)->phase == IR_FWD) {
            assert_true(t >= 0 && t < 4);
            fwd_tanh[t]++;
        }
        if (ir_op(g, n) == OP_MATMUL && ir_node_at(g, n)->phase == IR_BWD) {
            assert_true(t >= 0 && t < 4);
            bwd_mm[t]++;
        }
    }
    for (int t = 0; t < 4; t++) {
        assert_int_equal(fwd_tanh[t], 1);
        /* dW and dh of each step's matmul (step 0's dh is not needed) */
        assert_int_equal(bwd_mm[t], t == 0 ? 1 : 2);
    }
    assert_int_equal(ir_verify(g), LOOM_OK);
    loom_ctx_free(ctx);
}

static void test_grad_backward_errors(void **state)
{
    (void)state;
    loom_ctx *ctx = loom_ctx_new(NULL);
    loom_t p = loom_param(ctx, "p", LOOM_F32, LOOM_SHAPE(2, 3));
    assert_int_equal(loom_backward(ctx, loom_mul(ctx, p, p)), LOOM_ERR_SHAPE);
    tu_assert_error(ctx, LOOM_ERR_SHAPE, "loom_backward", "f32[2,3]");
    loom_clear_error(ctx);
    /* a gradient that cannot be had is null, without an error */
    loom_t q = loom_param(ctx, "q", LOOM_F32, LOOM_SHAPE(2, 3));
    assert_int_equal(loom_backward(ctx, loom_sum_all(ctx, p)), LOOM_OK);
    assert_true(loom_is_null(loom_grad(ctx, q)));
    TU_OK(ctx);
    loom_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck_every_differentiable_op),
        cmocka_unit_test(test_gradcheck_catches_a_wrong_gradient),
        cmocka_unit_test(test_grad_second_derivative),
        cmocka_unit_test(test_grad_fanout_is_summed),
        cmocka_unit_test(test_grad_detach_stops_gradient),
        cmocka_unit_test(test_grad_frozen_param_builds_nothing),
        cmocka_unit_test(test_grad_step_marks_reach_backward),
        cmocka_unit_test(test_grad_backward_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
