/*
 * test_frontend.c — the public C API's contracts: handles (null, stale,
 * foreign), sticky errors, parameters, inputs, running and reading values,
 * time-step marks, hash-consing as the user sees it, the allocator hook
 * (counting, failure injection), and the shape helpers.
 *
 * Not here: the forward values of every op (test_ops.c) and gradients
 * (test_autograd.c); values computed here are only what a contract needs.
 * Cases that may crash run in a child process, so a crash is reported as
 * a failure and the rest of the suite still runs.
 */
#include "testutil.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fe.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

/* ------------------------------------------------------------------ */
/* Helpers                                                            */
/* ------------------------------------------------------------------ */

/* The unary builders, so a table can walk them. */
typedef loom_t (*unary_fn)(loom_ctx *, loom_t);
#define UNARY(f) { f, #f }
static const struct {
    unary_fn fn;
    const char *name;
} unaries[] = {
    UNARY(loom_neg),     UNARY(loom_exp),    UNARY(loom_log),    UNARY(loom_log1p),
    UNARY(loom_tanh),    UNARY(loom_sigmoid), UNARY(loom_sqrt),  UNARY(loom_recip),
    UNARY(loom_relu),    UNARY(loom_abs),    UNARY(loom_sign),   UNARY(loom_sin),
    UNARY(loom_cos),     UNARY(loom_detach), UNARY(loom_sum_all), UNARY(loom_mean_all),
};

static bool same_handle(loom_t a, loom_t b) { return a.id == b.id && a.tag == b.tag; }

/* Asserts the error (code and message fragments), then clears it. */
static void expect(loom_ctx *ctx, loom_code code, const char *frag1, const char *frag2)
{
    tu_assert_error(ctx, code, frag1, frag2);
    loom_clear_error(ctx);
}

/* What a printer writes; the caller frees the text. */
static char *capture(loom_ctx *ctx, loom_code (*print)(loom_ctx *, FILE *))
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(print(ctx, f), LOOM_OK);
    fclose(f);
    return text;
}

static size_t count_substr(const char *s, const char *what)
{
    size_t k = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
        k++;
    return k;
}

/* The allocator tests check the frontend's contract with the reference
 * backend: a fresh JIT per failure point would compile every kernel
 * again, thousands of times. */
static loom_ctx *counting_ctx(tu_counting *c)
{
    loom_options o = { .alloc = tu_counting_alloc, .alloc_ud = c, .backend = LOOM_BACKEND_REFERENCE };
    return loom_ctx_new(&o);
}

/* A child for a case that may crash. cmocka's signal handlers are reset,
 * so a crash ends the child instead of resuming the suite inside it. */
static pid_t fork_child(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
        for (size_t i = 0; i < LM_ARRAY_LEN(sigs); i++)
            signal(sigs[i], SIG_DFL);
    }
    return pid;
}

/* The child's exit code, or 100 + the signal that ended it. */
static int wait_child(pid_t pid)
{
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFSIGNALED(st) ? 100 + WTERMSIG(st) : WEXITSTATUS(st);
}

/* ------------------------------------------------------------------ */
/* Handles                                                            */
/* ------------------------------------------------------------------ */

static void test_handle_null_operand_names_function(void **state)
{
    loom_ctx *ctx = *state;
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(2, 3));
    TU_OK(ctx);
    assert_true(loom_is_null(loom_add(ctx, LOOM_NULL, x)));
    tu_assert_error(ctx, LOOM_ERR_HANDLE, "loom_add", "null");
    expect(ctx, LOOM_ERR_HANDLE, "operand 1", NULL);
    assert_true(loom_is_null(loom_mul(ctx, x, LOOM_NULL)));
    expect(ctx, LOOM_ERR_HANDLE, "loom_mul", "operand 2");
    for (size_t i = 0; i < LM_ARRAY_LEN(unaries); i++) {
        assert_true(loom_is_null(unaries[i].fn(ctx, LOOM_NULL)));
        expect(ctx, LOOM_ERR_HANDLE, unaries[i].name, "null");
    }
    assert_true(loom_is_null(loom_reshape(ctx, LOOM_NULL, LOOM_SHAPE(6))));
    expect(ctx, LOOM_ERR_HANDLE, "loom_reshape", "null");
    assert_true(loom_is_null(loom_matmul(ctx, x, LOOM_NULL)));
    expect(ctx, LOOM_ERR_HANDLE, "loom_matmul", "null");
    assert_int_equal(loom_feed(ctx, LOOM_NULL, "", 0), LOOM_ERR_HANDLE);
    expect(ctx, LOOM_ERR_HANDLE, "loom_feed", "null");
    assert_int_equal(loom_backward(ctx, LOOM_NULL), LOOM_ERR_HANDLE);
    expect(ctx, LOOM_ERR_HANDLE, "loom_backward", "null");
}

/* loom_pow's shortcut for p == 1 must not skip the handle check: a null
 * or foreign operand is an error as for every other builder. */
static void test_handle_pow_checks_its_operand(void **state)
{
    loom_ctx *ctx = *state, *other = loom_ctx_new(NULL);
    loom_t foreign = loom_input(other, "y", LOOM_F32, LOOM_SHAPE(2));
    loom_ctx_free(other);
    assert_true(loom_is_null(loom_pow(ctx, LOOM_NULL, 1.0)));
    expect(ctx, LOOM_ERR_HANDLE, "null", NULL);
    assert_true(loom_is_null(loom_pow(ctx, foreign, 1.0))); /* it hands the foreign handle back */
    assert_int_equal(loom_status(ctx), LOOM_ERR_HANDLE);
}

static void test_handle_stale_after_reset_is_refused(void **state)
{
    loom_ctx *ctx = *state;
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(3));
    loom_t y = loom_neg(ctx, x);
    TU_OK(ctx);
    loom_reset(ctx);
    assert_int_equal(loom_node_count(ctx), 0);
    /* the new tape reuses the ids; the old handles still must not match */
    loom_t x2 = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(3));
    assert_int_equal(x2.id, x.id);
    assert_true(loom_is_null(loom_exp(ctx, x)));
    expect(ctx, LOOM_ERR_HANDLE, "loom_exp", "stale");
    float v[3] = { 1, 2, 3 };
    assert_int_equal(loom_feed(ctx, x, v, sizeof v), LOOM_ERR_HANDLE);
    expect(ctx, LOOM_ERR_HANDLE, "loom_feed", "stale");
    assert_int_equal(loom_run(ctx, 1, &y), LOOM_ERR_HANDLE);
    expect(ctx, LOOM_ERR_HANDLE, "loom_run", NULL);
    assert_null(loom_data(ctx, y));
    expect(ctx, LOOM_ERR_HANDLE, "loom_data", "stale");
    assert_int_equal(loom_shape_of(ctx, y).rank, 0);
    assert_int_equal(loom_dtype_of(ctx, y), LOOM_DTYPE_COUNT);
    assert_int_equal(loom_status(ctx), LOOM_ERR_HANDLE);
}

/* Handles of another context, tape nodes and parameters alike, even where
 * their ids match handles of this one. */
static void test_handle_foreign_is_refused(void **state)
{
    loom_ctx *b = *state, *a = loom_ctx_new(NULL);
    loom_t xa = loom_input(a, "x", LOOM_F32, LOOM_SHAPE(2)), xb = loom_input(b, "x", LOOM_F32, LOOM_SHAPE(2));
    loom_t pa = loom_param(a, "w", LOOM_F32, LOOM_SHAPE(2)), pb = loom_param(b, "w", LOOM_F32, LOOM_SHAPE(2));
    assert_true(xa.id == xb.id && pa.id == pb.id);
    assert_true(loom_is_null(loom_add(b, xb, xa)));
    tu_assert_error(b, LOOM_ERR_HANDLE, "loom_add", "operand 2");
    expect(b, LOOM_ERR_HANDLE, "another context", NULL);
    assert_int_equal(loom_status(a), LOOM_OK); /* the owner is untouched */
    float v[2] = { 1, 2 };
    assert_int_equal(loom_feed(b, xa, v, sizeof v), LOOM_ERR_HANDLE);
    expect(b, LOOM_ERR_HANDLE, "loom_feed", NULL);
    assert_false(loom_is_param(b, pa));
    assert_true(loom_is_null(loom_neg(b, pa)));
    expect(b, LOOM_ERR_HANDLE, "loom_neg", "parameter of another context");
    assert_int_equal(loom_param_set(b, pa, v, sizeof v), LOOM_ERR_HANDLE);
    expect(b, LOOM_ERR_HANDLE, "loom_param_set", NULL);
    assert_int_equal(loom_assign(b, pa, pb), LOOM_ERR_HANDLE);
    expect(b, LOOM_ERR_HANDLE, "loom_assign", NULL);
    assert_int_equal(loom_param_init_const(b, pa, 1.0), LOOM_ERR_HANDLE);
    expect(b, LOOM_ERR_HANDLE, NULL, NULL);
    assert_true(loom_param_name(b, pa) == NULL && loom_param_data(b, pa) == NULL);
    const float *d = loom_param_data(a, pa); /* nothing was written through b */
    assert_true(d[0] == 0 && d[1] == 0);
    loom_ctx_free(a);
}

static void test_handle_param_survives_reset(void **state)
{
    loom_ctx *ctx = *state;
    loom_t w = loom_param(ctx, "w", LOOM_F64, LOOM_SHAPE(2));
    assert_int_equal(loom_param_set(ctx, w, (double[]){ 1.5, -2 }, 16), LOOM_OK);
    assert_int_equal(loom_assign(ctx, w, loom_muls(ctx, w, 3)), LOOM_OK);
    assert_int_equal(loom_run(ctx, 0, NULL), LOOM_OK);
    loom_reset(ctx);
    /* the handle is still good and the assigned value persists */
    assert_true(loom_is_param(ctx, w));
    assert_string_equal(loom_param_name(ctx, w), "w");
    const double *d = loom_param_data(ctx, w);
    assert_true(d[0] == 4.5 && d[1] == -6);
    loom_t y = loom_adds(ctx, w, 1);
    TU_OK(ctx);
    assert_int_equal(loom_run(ctx, 1, &y), LOOM_OK);
    double got[2];
    assert_int_equal(loom_read(ctx, y, got, sizeof got), LOOM_OK);
    assert_true(got[0] == 5.5 && got[1] == -5);
    loom_reset(ctx);
    loom_reset(ctx);
    assert_true(same_handle(loom_param_find(ctx, "w"), w));
    assert_true(loom_shape_equal(loom_shape_of(ctx, w), LOOM_SHAPE(2)));
    assert_int_equal(loom_dtype_of(ctx, w), LOOM_F64);
}

/* ------------------------------------------------------------------ */
/* Sticky errors                                                      */
/* ------------------------------------------------------------------ */

static void test_sticky_failed_builder_records_nothing(void **state)
{
    loom_ctx *ctx = *state;
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(3, 2));
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(4, 3));
    loom_t y = loom_input(ctx, "y", LOOM_F32, LOOM_SHAPE(5, 3));
    TU_OK(ctx);
    assert_true(loom_is_null(loom_add(ctx, x, y)));
    tu_assert_error(ctx, LOOM_ERR_SHAPE, "loom_add", "f32[4,3]");
    assert_non_null(strstr(loom_errmsg(ctx), "f32[5,3]"));
    char first[600];
    snprintf(first, sizeof first, "%s", loom_errmsg(ctx));
    size_t nodes = loom_node_count(ctx), params = loom_param_count(ctx);
    float data[12] = { 0 };
    /* every builder is a no-op now, good handles or not */
    loom_t got[] = {
        loom_neg(ctx, x), loom_matmul(ctx, x, w), loom_neg(ctx, LOOM_NULL),
        loom_input(ctx, "z", LOOM_F32, LOOM_SHAPE(2)), loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(12), data),
        loom_full(ctx, LOOM_F32, LOOM_SHAPE(2), 1), loom_rand_normal(ctx, LOOM_F32, LOOM_SHAPE(2)),
        loom_param(ctx, "q", LOOM_F32, LOOM_SHAPE(2)), loom_softmax(ctx, x, 1), loom_grad(ctx, w),
    };
    for (size_t i = 0; i < LM_ARRAY_LEN(got); i++)
        assert_true(loom_is_null(got[i]));
    assert_int_equal(loom_assign(ctx, w, w), LOOM_ERR_SHAPE);
    assert_int_equal(loom_backward(ctx, loom_sum_all(ctx, w)), LOOM_ERR_SHAPE);
    assert_int_equal(loom_feed(ctx, x, data, sizeof data), LOOM_ERR_SHAPE);
    assert_int_equal(loom_run(ctx, 1, &x), LOOM_ERR_SHAPE);
    loom_step_begin(ctx, -4); /* a second, different error */
    assert_int_equal(loom_node_count(ctx), nodes);
    assert_int_equal(loom_param_count(ctx), params);
    assert_int_equal(loom_status(ctx), LOOM_ERR_SHAPE);
    assert_string_equal(loom_errmsg(ctx), first);
}

static void test_sticky_clear_error_and_reset_resume_building(void **state)
{
    loom_ctx *ctx = *state;
    loom_t x = loom_tensor(ctx, LOOM_F64, LOOM_SHAPE(2), (double[]){ 1, 2 });
    loom_t y = loom_muls(ctx, x, 10);
    TU_OK(ctx);
    size_t nodes = loom_node_count(ctx);
    assert_true(loom_is_null(loom_reshape(ctx, y, LOOM_SHAPE(3))));
    assert_int_equal(loom_status(ctx), LOOM_ERR_SHAPE);
    loom_clear_error(ctx);
    assert_false(loom_failed(ctx));
    assert_int_equal(loom_status(ctx), LOOM_OK);
    assert_string_equal(loom_errmsg(ctx), "");
    /* the tape was kept: old handles work, new nodes are recorded */
    assert_int_equal(loom_node_count(ctx), nodes);
    loom_t z = loom_adds(ctx, y, 1);
    TU_OK(ctx);
    assert_true(loom_node_count(ctx) > nodes);
    assert_int_equal(loom_run(ctx, 1, &z), LOOM_OK);
    double got[2];
    assert_int_equal(loom_read(ctx, z, got, sizeof got), LOOM_OK);
    assert_true(got[0] == 11 && got[1] == 21);
    /* loom_reset clears the error too */
    assert_true(loom_is_null(loom_sum(ctx, z, 1, (const int[]){ 5 }, false)));
    tu_assert_error(ctx, LOOM_ERR_ARG, "loom_sum", "axis 5");
    loom_reset(ctx);
    assert_int_equal(loom_status(ctx), LOOM_OK);
    assert_string_equal(loom_errmsg(ctx), "");
    loom_t s = loom_scalar(ctx, LOOM_F32, 2.5);
    assert_int_equal(loom_run(ctx, 1, &s), LOOM_OK);
    assert_true(loom_item(ctx, s) == 2.5);
}

static void test_sticky_null_ctx_never_crashes(void **state)
{
    (void)state;
    loom_t h = { .id = 1, .tag = 1 };
    float buf[4] = { 0 };
    assert_int_equal(loom_status(NULL), LOOM_ERR_HANDLE);
    assert_true(loom_failed(NULL));
    assert_non_null(strstr(loom_errmsg(NULL), "NULL"));
    loom_ctx_free(NULL);
    loom_clear_error(NULL);
    loom_reset(NULL);
    loom_step_begin(NULL, 1);
    loom_step_end(NULL);
    assert_int_equal(loom_node_count(NULL), 0);
    assert_int_equal(loom_shape_of(NULL, h).rank, 0);
    assert_int_equal(loom_dtype_of(NULL, h), LOOM_DTYPE_COUNT);
    assert_int_equal(loom_param_count(NULL), 0);
    assert_null(loom_data(NULL, h));
    assert_null(loom_param_name(NULL, h));
    assert_null(loom_param_data(NULL, h));
    assert_false(loom_param_trainable(NULL, h));
    assert_true(isnan(loom_item(NULL, h)));
    loom_t handles[] = {
        loom_input(NULL, "x", LOOM_F32, LOOM_SHAPE(2)), loom_tensor(NULL, LOOM_F32, LOOM_SHAPE(2), buf),
        loom_full(NULL, LOOM_F32, LOOM_SHAPE(2), 1), loom_scalar(NULL, LOOM_F32, 1),
        loom_iota(NULL, LOOM_F32, LOOM_SHAPE(2), 0), loom_rand_uniform(NULL, LOOM_F32, LOOM_SHAPE(2)),
        loom_param(NULL, "w", LOOM_F32, LOOM_SHAPE(2)), loom_buffer(NULL, "b", LOOM_F32, LOOM_SHAPE(2)),
        loom_add(NULL, h, h), loom_where(NULL, h, h, h), loom_matmul(NULL, h, h),
        loom_concat(NULL, 1, &h, 0), loom_softmax(NULL, h, 0), loom_logsumexp(NULL, h, 0, false),
        loom_cross_entropy(NULL, h, h), loom_mse(NULL, h, h), loom_pow(NULL, h, 1.0),
        loom_grad(NULL, h), loom_param_at(NULL, 0), loom_param_find(NULL, "w"),
    };
    for (size_t i = 0; i < LM_ARRAY_LEN(handles); i++)
        assert_true(loom_is_null(handles[i]));
    for (size_t i = 0; i < LM_ARRAY_LEN(unaries); i++)
        assert_true(loom_is_null(unaries[i].fn(NULL, h)));
    loom_code handle_codes[] = {
        loom_feed(NULL, h, buf, 8), loom_assign(NULL, h, h), loom_backward(NULL, h),
        loom_vjp(NULL, 1, &h, NULL, 1, &h, &h), loom_run(NULL, 1, &h), loom_eval(NULL, 0, NULL),
        loom_read(NULL, h, buf, 8), loom_param_set_trainable(NULL, h, true),
        loom_param_set(NULL, h, buf, 8), loom_param_init_normal(NULL, h, 0, 1),
        loom_param_init_uniform(NULL, h, 0, 1), loom_param_init_const(NULL, h, 0),
    };
    for (size_t i = 0; i < LM_ARRAY_LEN(handle_codes); i++)
        assert_int_equal(handle_codes[i], LOOM_ERR_HANDLE);
    assert_int_equal(loom_print_graph(NULL, stdout), LOOM_ERR_ARG);
    assert_int_equal(loom_write_dot(NULL, stdout), LOOM_ERR_ARG);
}

/* ------------------------------------------------------------------ */
/* Parameters                                                         */
/* ------------------------------------------------------------------ */

static void test_param_names_are_unique(void **state)
{
    loom_ctx *ctx = *state;
    loom_t w = loom_param(ctx, "encoder.W", LOOM_F32, LOOM_SHAPE(2));
    TU_OK(ctx);
    assert_true(loom_is_null(loom_param(ctx, "encoder.W", LOOM_F32, LOOM_SHAPE(2))));
    expect(ctx, LOOM_ERR_ARG, "loom_param", "\"encoder.W\"");
    /* buffers share the name space */
    assert_true(loom_is_null(loom_buffer(ctx, "encoder.W", LOOM_F64, LOOM_SHAPE(3))));
    expect(ctx, LOOM_ERR_ARG, "loom_buffer", "\"encoder.W\"");
    assert_true(loom_is_null(loom_param(ctx, "", LOOM_F32, LOOM_SHAPE(2))));
    expect(ctx, LOOM_ERR_ARG, "loom_param", "name");
    assert_int_equal(loom_param_count(ctx), 1);
    assert_true(same_handle(loom_param_at(ctx, 0), w));
}

static void test_param_automatic_names(void **state)
{
    loom_ctx *ctx = *state;
    loom_t h[3] = { loom_param(ctx, NULL, LOOM_F32, LOOM_SHAPE(2)), loom_param(ctx, NULL, LOOM_F32, LOOM_SHAPE(2)),
                    loom_buffer(ctx, NULL, LOOM_F32, LOOM_SHAPE(2)) };
    TU_OK(ctx);
    for (int i = 0; i < 3; i++) {
        const char *name = loom_param_name(ctx, h[i]);
        assert_true(name && name[0]);
        assert_true(same_handle(loom_param_find(ctx, name), h[i]));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(name, loom_param_name(ctx, h[j]));
    }
}

/* An automatic name must not collide with a name the user chose: the
 * generated "param<count>" / "buffer<count>" may already be taken. */
static void test_param_automatic_name_avoids_user_names(void **state)
{
    loom_ctx *ctx = *state;
    loom_param(ctx, "param1", LOOM_F32, LOOM_SHAPE(2));
    loom_param(ctx, NULL, LOOM_F32, LOOM_SHAPE(2)); /* the second parameter */
    TU_OK(ctx);
    loom_param(ctx, "buffer3", LOOM_F32, LOOM_SHAPE(2));
    loom_buffer(ctx, NULL, LOOM_F32, LOOM_SHAPE(2)); /* the fourth */
    TU_OK(ctx);
    assert_int_equal(loom_param_count(ctx), 4);
}

static void test_param_lookup(void **state)
{
    loom_ctx *ctx = *state;
    assert_int_equal(loom_param_count(ctx), 0);
    assert_true(loom_is_null(loom_param_at(ctx, 0)));
    const char *names[] = { "a", "b.weight", "c" };
    loom_t h[3] = { loom_param(ctx, names[0], LOOM_F32, LOOM_SHAPE(1)),
                    loom_buffer(ctx, names[1], LOOM_F64, LOOM_SHAPE(2, 2)),
                    loom_param(ctx, names[2], LOOM_I32, LOOM_SCALAR) };
    TU_OK(ctx);
    assert_int_equal(loom_param_count(ctx), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_true(loom_is_param(ctx, h[i]));
        assert_true(same_handle(loom_param_at(ctx, i), h[i]));
        assert_true(same_handle(loom_param_find(ctx, names[i]), h[i]));
        assert_string_equal(loom_param_name(ctx, h[i]), names[i]);
    }
    assert_true(loom_is_null(loom_param_at(ctx, 3)));
    assert_true(loom_is_null(loom_param_find(ctx, "b")) && loom_is_null(loom_param_find(ctx, NULL)));
    assert_true(loom_shape_equal(loom_shape_of(ctx, h[1]), LOOM_SHAPE(2, 2)));
    assert_int_equal(loom_dtype_of(ctx, h[2]), LOOM_I32);
    /* parameters train unless frozen; buffers never */
    assert_true(loom_param_trainable(ctx, h[0]));
    assert_false(loom_param_trainable(ctx, h[1]));
    assert_int_equal(loom_param_set_trainable(ctx, h[1], true), LOOM_ERR_ARG);
    expect(ctx, LOOM_ERR_ARG, "\"b.weight\"", "buffer");
    assert_false(loom_param_trainable(ctx, h[1]));
    assert_int_equal(loom_param_set_trainable(ctx, h[1], false), LOOM_OK);
    assert_int_equal(loom_param_set_trainable(ctx, h[0], false), LOOM_OK);
    assert_false(loom_param_trainable(ctx, h[0]));
    assert_int_equal(loom_param_set_trainable(ctx, h[0], true), LOOM_OK);
    assert_true(loom_param_trainable(ctx, h[0]));
    /* tape nodes, null and made-up handles are not parameters */
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(1)), beyond = h[0];
    beyond.id = 4;
    assert_false(loom_is_param(ctx, x) || loom_is_param(ctx, loom_neg(ctx, h[0])));
    assert_false(loom_is_param(ctx, LOOM_NULL) || loom_is_param(ctx, beyond) || loom_is_param(NULL, h[0]));
    TU_OK(ctx); /* lookups that find nothing are not errors */
    assert_null(loom_param_name(ctx, x));
    expect(ctx, LOOM_ERR_HANDLE, "loom_param_name", "not a parameter");
}

static void test_param_starts_at_zero_aligned_and_set_checks_bytes(void **state)
{
    loom_ctx *ctx = *state;
    const int64_t sizes[] = { 1, 3, 17, 1000 };
    char name[16];
    for (int dt = 0; dt < LOOM_DTYPE_COUNT; dt++)
        for (size_t i = 0; i < LM_ARRAY_LEN(sizes); i++) {
            snprintf(name, sizeof name, "p%d_%zu", dt, i);
            const char *d = loom_param_data(ctx, loom_param(ctx, name, (loom_dtype)dt, LOOM_SHAPE(sizes[i])));
            assert_non_null(d);
            assert_int_equal((uintptr_t)d % 64, 0);
            for (size_t k = 0; k < (size_t)sizes[i] * loom_dtype_size((loom_dtype)dt); k++)
                assert_int_equal(d[k], 0);
        }
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(2, 3));
    const float *d = loom_param_data(ctx, w);
    float v[6] = { 1, 2, 3, 4, 5, 6 };
    assert_int_equal(loom_param_set(ctx, w, v, 5 * sizeof(float)), LOOM_ERR_ARG);
    expect(ctx, LOOM_ERR_ARG, "\"w\"", "24 bytes, 20 given");
    assert_true(d[0] == 0.0f); /* nothing copied */
    assert_int_equal(loom_param_set(ctx, w, v, 7 * sizeof(float)), LOOM_ERR_ARG);
    loom_clear_error(ctx);
    assert_int_equal(loom_param_set(ctx, w, NULL, sizeof v), LOOM_ERR_ARG);
    loom_clear_error(ctx);
    assert_int_equal(loom_param_set(ctx, w, v, sizeof v), LOOM_OK);
    assert_memory_equal(d, v, sizeof v);
    v[0] = 99; /* copied, not kept */
    assert_true(d[0] == 1.0f);
    /* const fills, i32 too */
    loom_t b = loom_buffer(ctx, "b", LOOM_I32, LOOM_SHAPE(3));
    assert_int_equal(loom_param_init_const(ctx, w, 0.25), LOOM_OK);
    assert_int_equal(loom_param_init_const(ctx, b, -3), LOOM_OK);
    const int32_t *db = loom_param_data(ctx, b);
    for (int i = 0; i < 6; i++)
        assert_true(d[i] == 0.25f && db[i % 3] == -3);
}

static void test_param_init_uniform_within_range(void **state)
{
    enum { N = 10000 };
    loom_ctx *ctx = *state;
    loom_t w = loom_param(ctx, "w", LOOM_F64, LOOM_SHAPE(100, 100));
    assert_int_equal(loom_param_init_uniform(ctx, w, -0.5, 1.5), LOOM_OK);
    const double *d = loom_param_data(ctx, w);
    double sum = 0, lo = 1e9, hi = -1e9;
    int below = 0;
    for (int i = 0; i < N; i++) {
        assert_true(d[i] >= -0.5 && d[i] < 1.5);
        sum += d[i];
        lo = fmin(lo, d[i]);
        hi = fmax(hi, d[i]);
        below += d[i] < 0.5;
    }
    /* mean 0.5 (sd of the mean 0.0058), both ends reached, halves even */
    assert_true(fabs(sum / N - 0.5) < 0.03);
    assert_true(lo < -0.49 && hi > 1.49);
    assert_true(below > 4700 && below < 5300);
    assert_int_equal(loom_param_init_uniform(ctx, w, 1, 0), LOOM_ERR_ARG);
    expect(ctx, LOOM_ERR_ARG, "loom_param_init_uniform", NULL);
}

static void test_param_init_normal_moments(void **state)
{
    enum { N = 10000 };
    loom_ctx *ctx = *state;
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(N));
    assert_int_equal(loom_param_init_normal(ctx, w, 2.0, 0.5), LOOM_OK);
    const float *d = loom_param_data(ctx, w);
    double s = 0, s2 = 0;
    int within1 = 0;
    for (int i = 0; i < N; i++) {
        s += d[i];
        s2 += (double)d[i] * d[i];
        within1 += fabs(d[i] - 2.0) < 0.5;
    }
    double mean = s / N, sd = sqrt(s2 / N - mean * mean);
    assert_true(fabs(mean - 2.0) < 0.025); /* 5 standard errors */
    assert_true(fabs(sd - 0.5) < 0.025);
    assert_true(within1 > 6500 && within1 < 7150); /* 68.3% within one sd */
    /* another context with the same (default) seed draws the same numbers */
    loom_ctx *again = loom_ctx_new(NULL);
    loom_t w2 = loom_param(again, "w", LOOM_F32, LOOM_SHAPE(N));
    loom_param_init_normal(again, w2, 2.0, 0.5);
    assert_memory_equal(loom_param_data(again, w2), d, N * sizeof(float));
    loom_ctx_free(again);
    assert_int_equal(loom_param_init_normal(ctx, w, 0, -1), LOOM_ERR_ARG);
}

/* ------------------------------------------------------------------ */
/* Inputs                                                             */
/* ------------------------------------------------------------------ */

static void test_input_feed_wrong_size_names_input(void **state)
{
    loom_ctx *ctx = *state;
    loom_t x = loom_input(ctx, "tokens", LOOM_F32, LOOM_SHAPE(2, 3));
    loom_t u = loom_input(ctx, NULL, LOOM_I32, LOOM_SHAPE(5));
    float v[6] = { 0 };
    assert_int_equal(loom_feed(ctx, x, v, 5 * sizeof(float)), LOOM_ERR_ARG);
    tu_assert_error(ctx, LOOM_ERR_ARG, "\"tokens\"", "f32[2,3]");
    expect(ctx, LOOM_ERR_ARG, "loom_feed", "24 bytes, 20 given");
    assert_int_equal(loom_feed(ctx, u, v, sizeof v), LOOM_ERR_ARG);
    expect(ctx, LOOM_ERR_ARG, "i32[5]", "20");
    assert_int_equal(loom_feed(ctx, x, NULL, sizeof v), LOOM_ERR_ARG);
    loom_clear_error(ctx);
    loom_t y = loom_neg(ctx, x); /* only inputs take data */
    assert_int_equal(loom_feed(ctx, y, v, sizeof v), LOOM_ERR_ARG);
    expect(ctx, LOOM_ERR_ARG, "loom_feed", "not an input");
}

static void test_input_unfed_run_fails_then_runs_with_each_feed(void **state)
{
    loom_ctx *ctx = *state;
    loom_t x = loom_input(ctx, "x", LOOM_F64, LOOM_SHAPE(3));
    loom_t y = loom_adds(ctx, loom_mul(ctx, x, x), 1);
    TU_OK(ctx);
    assert_int_equal(loom_run(ctx, 1, &y), LOOM_ERR_STATE);
    tu_assert_error(ctx, LOOM_ERR_STATE, "not fed", NULL);
    assert_null(loom_data(ctx, y));
    loom_clear_error(ctx);
    /* one recording, many runs: each feed gives new results */
    size_t nodes = loom_node_count(ctx);
    for (int r = 0; r < 4; r++) {
        double v[3] = { r, -r, 0.5 * r }, got[3], want[3] = { r * r + 1.0, r * r + 1.0, 0.25 * r * r + 1 };
        assert_int_equal(loom_feed(ctx, x, v, sizeof v), LOOM_OK);
        assert_int_equal(loom_run(ctx, 1, &y), LOOM_OK);
        assert_int_equal(loom_read(ctx, y, got, sizeof got), LOOM_OK);
        tu_assert_close(got, want, 3, 0, "run after a new feed");
    }
    assert_int_equal(loom_node_count(ctx), nodes);
}

static void test_input_tensor_and_feed_copy_data(void **state)
{
    loom_ctx *ctx = *state;
    float a[3] = { 1, 2, 3 }, b[3] = { 10, 20, 30 };
    loom_t ta = loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(3), a);
    loom_t xb = loom_input(ctx, "b", LOOM_F32, LOOM_SHAPE(3));
    assert_int_equal(loom_feed(ctx, xb, b, sizeof b), LOOM_OK);
    loom_t s = loom_add(ctx, ta, xb);
    TU_OK(ctx);
    a[0] = a[1] = a[2] = -100; /* after loom_tensor and loom_feed */
    b[0] = b[1] = b[2] = -100;
    assert_int_equal(loom_run(ctx, 1, &s), LOOM_OK);
    const float *d = loom_data(ctx, s);
    assert_true(d[0] == 11 && d[1] == 22 && d[2] == 33);
    /* a tensor is an input under the hood, distinct per call */
    assert_false(same_handle(ta, loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(3), a)));
}

/* ------------------------------------------------------------------ */
/* Running and reading                                                */
/* ------------------------------------------------------------------ */

static void test_run_outputs_and_reads(void **state)
{
    loom_ctx *ctx = *state;
    loom_t x = loom_tensor(ctx, LOOM_F64, LOOM_SHAPE(2, 3), (double[]){ 1, 2, 3, 4, 5, 6 });
    loom_t w = loom_param(ctx, "w", LOOM_F64, LOOM_SHAPE(2));
    loom_param_set(ctx, w, (double[]){ 7, 8 }, 16);
    loom_t s = loom_sum_all(ctx, x), y = loom_muls(ctx, x, -1);
    loom_t outs[3] = { y, s, w }; /* a parameter may be an output */
    TU_OK(ctx);
    assert_int_equal(loom_run(ctx, 3, outs), LOOM_OK);
    assert_true(loom_item(ctx, s) == 21);
    double got[6], want[6] = { -1, -2, -3, -4, -5, -6 };
    assert_int_equal(loom_read(ctx, y, got, sizeof got), LOOM_OK);
    tu_assert_close(got, want, 6, 0, "loom_read");
    tu_assert_close(loom_data(ctx, y), want, 6, 0, "loom_data");
    assert_ptr_equal(loom_data(ctx, w), loom_param_data(ctx, w)); /* a parameter reads its storage */
    assert_int_equal(loom_read(ctx, w, got, 16), LOOM_OK);
    assert_true(got[0] == 7 && got[1] == 8);
    assert_int_equal(loom_read(ctx, y, got, 5 * sizeof(double)), LOOM_ERR_ARG);
    expect(ctx, LOOM_ERR_ARG, "loom_read", "48 bytes");
    assert_int_equal(loom_read(ctx, y, NULL, sizeof got), LOOM_ERR_ARG);
    loom_clear_error(ctx);
    assert_true(isnan(loom_item(ctx, y)));
    expect(ctx, LOOM_ERR_SHAPE, "loom_item", "6 elements");
    assert_null(loom_data(ctx, x)); /* x was not an output */
    expect(ctx, LOOM_ERR_STATE, "loom_data", "not an output of the last run");
    assert_int_equal(loom_read(ctx, x, got, sizeof got), LOOM_ERR_STATE);
    loom_clear_error(ctx);
    assert_true(isnan(loom_item(ctx, LOOM_NULL)));
    expect(ctx, LOOM_ERR_HANDLE, "loom_item", NULL);
    assert_int_equal(loom_run(ctx, -1, outs), LOOM_ERR_ARG);
    loom_clear_error(ctx);
    assert_int_equal(loom_run(ctx, 2, NULL), LOOM_ERR_ARG);
    loom_clear_error(ctx);
    loom_reset(ctx); /* a parameter stays readable without a run */
    assert_int_equal(loom_read(ctx, w, got, 16), LOOM_OK);
    assert_true(got[1] == 8);
}

/* A list with duplicates hands each value over once: the values are right
 * and nothing leaks or is freed twice. */
static void test_run_same_output_twice(void **state)
{
    (void)state;
    tu_counting ca = { .fail_at = -1 };
    loom_ctx *ctx = counting_ctx(&ca);
    loom_t x = loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(4), (float[]){ 1, 2, 3, 4 });
    loom_t y = loom_exp(ctx, x), z = loom_neg(ctx, y);
    loom_t outs[5] = { y, z, y, y, z };
    for (int r = 0; r < 3; r++) {
        assert_int_equal(loom_run(ctx, 5, outs), LOOM_OK);
        const float *dz = loom_data(ctx, z), *dy = loom_data(ctx, y);
        for (int i = 0; i < 4; i++)
            assert_true(dz[i] == -dy[i] && dy[i] == expf((float)(i + 1)));
    }
    loom_ctx_free(ctx);
    assert_int_equal(ca.live_bytes, 0);
    assert_int_equal(ca.live_blocks, 0);
    assert_int_equal(ca.bad_osize, 0);
}

static void test_run_values_replaced_by_next_run(void **state)
{
    loom_ctx *ctx = *state;
    loom_t x = loom_input(ctx, "x", LOOM_F64, LOOM_SCALAR);
    loom_t a = loom_adds(ctx, x, 1), b = loom_muls(ctx, x, 3);
    double v = 2;
    loom_feed(ctx, x, &v, sizeof v);
    assert_int_equal(loom_run(ctx, 1, &a), LOOM_OK);
    assert_true(loom_item(ctx, a) == 3);
    assert_int_equal(loom_run(ctx, 1, &b), LOOM_OK);
    assert_true(loom_item(ctx, b) == 6);
    assert_true(isnan(loom_item(ctx, a))); /* not an output of the last run */
    expect(ctx, LOOM_ERR_STATE, "loom_item", "not an output");
    v = 10;
    loom_feed(ctx, x, &v, sizeof v);
    assert_int_equal(loom_eval(ctx, 1, &a), LOOM_OK);
    assert_true(loom_item(ctx, a) == 11);
    loom_reset(ctx); /* values go with the tape */
    assert_null(loom_data(ctx, a));
    assert_int_equal(loom_status(ctx), LOOM_ERR_HANDLE);
}

static void test_run_eval_does_not_commit_assign(void **state)
{
    loom_ctx *ctx = *state;
    loom_t w = loom_param(ctx, "w", LOOM_F64, LOOM_SHAPE(2));
    loom_param_set(ctx, w, (double[]){ 1, 2 }, 16);
    loom_t s = loom_sum_all(ctx, w);
    assert_int_equal(loom_assign(ctx, w, loom_muls(ctx, w, 10)), LOOM_OK);
    const double *d = loom_param_data(ctx, w);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(loom_eval(ctx, 1, &s), LOOM_OK);
        assert_true(loom_item(ctx, s) == 3);
        assert_true(d[0] == 1 && d[1] == 2);
    }
    /* the run reads the old value and commits the new one at its end */
    assert_int_equal(loom_run(ctx, 1, &s), LOOM_OK);
    assert_true(loom_item(ctx, s) == 3);
    assert_true(d[0] == 10 && d[1] == 20);
    assert_int_equal(loom_run(ctx, 1, &s), LOOM_OK);
    assert_true(loom_item(ctx, s) == 30);
    assert_true(d[0] == 100 && d[1] == 200);
    assert_int_equal(loom_run(ctx, 0, NULL), LOOM_OK); /* updates only */
    assert_true(d[0] == 1000);
}

/* "All reads in a run see the old values": two assignments that swap two
 * parameters, read in the same run through a * 1 and through reshape(a),
 * which (same shape) is a's own node on the tape. */
static void test_run_assign_reads_see_old_values(void **state)
{
    loom_ctx *ctx = *state;
    loom_t a = loom_param(ctx, "a", LOOM_F64, LOOM_SHAPE(2));
    loom_t b = loom_param(ctx, "b", LOOM_F64, LOOM_SHAPE(2));
    const double old_a[2] = { 1, 2 }, old_b[2] = { 3, 4 };
    loom_param_set(ctx, a, old_a, sizeof old_a);
    loom_param_set(ctx, b, old_b, sizeof old_b);
    loom_assign(ctx, a, b);
    loom_assign(ctx, b, a);
    loom_t outs[2] = { loom_muls(ctx, a, 1), loom_reshape(ctx, a, LOOM_SHAPE(2)) };
    TU_OK(ctx);
    assert_int_equal(loom_run(ctx, 2, outs), LOOM_OK);
    tu_assert_close(loom_param_data(ctx, a), old_b, 2, 0, "a after the swap");
    tu_assert_close(loom_param_data(ctx, b), old_a, 2, 0, "b after the swap");
    tu_assert_close(loom_data(ctx, outs[0]), old_a, 2, 0, "a * 1 in the swapping run");
    tu_assert_close(loom_data(ctx, outs[1]), old_a, 2, 0, "reshape(a) in the swapping run");
}

static void test_run_assign_refuses_wrong_shape_or_dtype(void **state)
{
    loom_ctx *ctx = *state;
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(2, 3));
    loom_t v3 = loom_full(ctx, LOOM_F32, LOOM_SHAPE(3, 2), 1);
    size_t nodes = loom_node_count(ctx);
    assert_int_equal(loom_assign(ctx, w, v3), LOOM_ERR_SHAPE);
    tu_assert_error(ctx, LOOM_ERR_SHAPE, "\"w\"", "f32[3,2]");
    expect(ctx, LOOM_ERR_SHAPE, "f32[2,3]", NULL);
    assert_int_equal(loom_node_count(ctx), nodes);
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(2, 3)); /* not a parameter */
    assert_int_equal(loom_assign(ctx, x, x), LOOM_ERR_HANDLE);
    expect(ctx, LOOM_ERR_HANDLE, "loom_assign", "not a parameter");
    /* a value that broadcasts to the parameter's shape is fine */
    assert_int_equal(loom_assign(ctx, w, loom_scalar(ctx, LOOM_F32, 7)), LOOM_OK);
    assert_int_equal(loom_run(ctx, 0, NULL), LOOM_OK);
    const float *d = loom_param_data(ctx, w);
    for (int i = 0; i < 6; i++)
        assert_true(d[i] == 7);
    /* "dtypes differ" is LOOM_ERR_DTYPE (loom.h), as in every binary op */
    loom_t f64 = loom_full(ctx, LOOM_F64, LOOM_SHAPE(2, 3), 1);
    nodes = loom_node_count(ctx);
    loom_assign(ctx, w, f64);
    assert_int_equal(loom_node_count(ctx), nodes);
    tu_assert_error(ctx, LOOM_ERR_DTYPE, "\"w\"", "f64[2,3]");
}

/* loss = sum((w - t)^2), SGD with lr 0.1: w <- w - 0.2 (w - t), so
 * w - t shrinks by 0.8 and the loss by 0.64 per run. */
static void test_run_sgd_steps_on_quadratic(void **state)
{
    loom_ctx *ctx = *state;
    loom_t w = loom_param(ctx, "w", LOOM_F64, LOOM_SHAPE(2));
    loom_param_set(ctx, w, (double[]){ 1, -2 }, 16);
    loom_t t = loom_tensor(ctx, LOOM_F64, LOOM_SHAPE(2), (double[]){ 3, 0.5 });
    loom_t d = loom_sub(ctx, w, t);
    loom_t loss = loom_sum_all(ctx, loom_mul(ctx, d, d));
    assert_int_equal(loom_backward(ctx, loss), LOOM_OK);
    loom_t g = loom_grad(ctx, w);
    assert_false(loom_is_null(g));
    assert_int_equal(loom_assign(ctx, w, loom_sub(ctx, w, loom_muls(ctx, g, 0.1))), LOOM_OK);
    TU_OK(ctx);
    size_t nodes = loom_node_count(ctx);
    /* by hand: w0 - t = (-2, -2.5), loss 10.25, gradient (-4, -5);
     * w1 = (1.4, -1.5), loss 6.56; w2 = (1.72, -1.1), loss 4.1984;
     * w3 = (1.976, -0.78) */
    const double want_loss[3] = { 10.25, 6.56, 4.1984 };
    const double want_w[3][2] = { { 1.4, -1.5 }, { 1.72, -1.1 }, { 1.976, -0.78 } };
    const double want_g[3][2] = { { -4, -5 }, { -3.2, -4 }, { -2.56, -3.2 } };
    double prev = INFINITY;
    for (int k = 0; k < 3; k++) {
        loom_t outs[2] = { loss, g };
        assert_int_equal(loom_run(ctx, 2, outs), LOOM_OK);
        double l = loom_item(ctx, loss);
        assert_true(fabs(l - want_loss[k]) < 1e-12);
        assert_true(l < prev);
        prev = l;
        tu_assert_close(loom_data(ctx, g), want_g[k], 2, 1e-14, "gradient");
        tu_assert_close(loom_param_data(ctx, w), want_w[k], 2, 1e-14, "w after the run");
    }
    assert_int_equal(loom_node_count(ctx), nodes); /* one recording, many runs */
}

/* ------------------------------------------------------------------ */
/* Time-step marks                                                    */
/* ------------------------------------------------------------------ */

static void test_step_marks_nodes(void **state)
{
    loom_ctx *ctx = *state;
    ir_graph *g = ctx->g;
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(2));
    size_t before = loom_node_count(ctx);
    loom_step_begin(ctx, 3);
    loom_t y = loom_tanh(ctx, loom_adds(ctx, x, 0.5));
    loom_step_end(ctx);
    size_t in_step = loom_node_count(ctx);
    loom_step_begin(ctx, 4);
    loom_t z = loom_exp(ctx, y);
    loom_step_end(ctx);
    loom_t out = loom_neg(ctx, z);
    TU_OK(ctx);
    assert_int_equal(ir_node_at(g, x.id)->step, -1);
    assert_true(in_step >= before + 3); /* constant, add, tanh */
    for (ir_id n = (ir_id)before + 1; n <= in_step; n++)
        assert_int_equal(ir_node_at(g, n)->step, 3);
    assert_int_equal(ir_node_at(g, z.id)->step, 4);
    assert_int_equal(ir_node_at(g, out.id)->step, -1);
    loom_step_begin(ctx, 100000);
    loom_t big = loom_sin(ctx, out);
    loom_step_end(ctx);
    assert_int_equal(ir_node_at(g, big.id)->step, 100000);
    /* a negative step is refused and marks nothing */
    loom_step_begin(ctx, -1);
    expect(ctx, LOOM_ERR_ARG, "loom_step_begin", "-1");
    loom_t after = loom_cos(ctx, out);
    TU_OK(ctx);
    assert_int_equal(ir_node_at(g, after.id)->step, -1);
}

static void test_step_marks_in_printer_and_dot(void **state)
{
    loom_ctx *ctx = *state;
    loom_t w = loom_param(ctx, "w_rec", LOOM_F32, LOOM_SHAPE(2, 2));
    loom_t h = loom_input(ctx, "h0", LOOM_F32, LOOM_SHAPE(1, 2));
    loom_neg(ctx, w); /* w's node, outside any step */
    for (int t = 2; t <= 3; t++) {
        loom_step_begin(ctx, t);
        h = loom_tanh(ctx, loom_matmul(ctx, h, w));
        loom_step_end(ctx);
    }
    TU_OK(ctx);
    size_t marked3 = 0, marked2 = 0;
    for (ir_id n = 1; n <= ir_last(ctx->g); n++) {
        marked2 += ir_node_at(ctx->g, n)->step == 2;
        marked3 += ir_node_at(ctx->g, n)->step == 3;
    }
    assert_true(marked3 >= 2);
    char *text = capture(ctx, loom_print_graph);
    assert_int_equal(count_substr(text, "\n"), loom_node_count(ctx));
    assert_int_equal(count_substr(text, "@t3"), marked3);
    assert_int_equal(count_substr(text, "@t2"), marked2);
    assert_non_null(strstr(text, "\"w_rec\""));
    assert_non_null(strstr(text, "\"h0\""));
    free(text);
    char *dot = capture(ctx, loom_write_dot);
    assert_true(strncmp(dot, "digraph", 7) == 0);
    assert_int_equal(count_substr(dot, "subgraph cluster_t3"), 1);
    assert_int_equal(count_substr(dot, "subgraph cluster_t2"), 1);
    assert_null(strstr(dot, "cluster_t1"));
    assert_non_null(strstr(dot, "w_rec"));
    free(dot);
    assert_int_equal(loom_print_graph(ctx, NULL), LOOM_ERR_ARG);
}

/* ------------------------------------------------------------------ */
/* Hash-consing as the user sees it                                   */
/* ------------------------------------------------------------------ */

static loom_t affine_tanh(loom_ctx *ctx, loom_t x, loom_t w, double b)
{
    return loom_tanh(ctx, loom_add(ctx, loom_matmul(ctx, x, w), loom_full(ctx, LOOM_F32, LOOM_SHAPE(3), b)));
}

static void test_cse_same_expression_same_handle(void **state)
{
    loom_ctx *ctx = *state;
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(3, 3));
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(2, 3));
    loom_t y1 = affine_tanh(ctx, x, w, 0.5);
    size_t nodes = loom_node_count(ctx);
    loom_t y2 = affine_tanh(ctx, x, w, 0.5);
    TU_OK(ctx);
    assert_true(same_handle(y1, y2));
    assert_int_equal(loom_node_count(ctx), nodes);
    /* another constant, another input, or a random draw is a new node */
    assert_false(same_handle(y1, affine_tanh(ctx, x, w, 0.25)));
    assert_false(same_handle(x, loom_input(ctx, "x2", LOOM_F32, LOOM_SHAPE(2, 3))));
    loom_t r1 = loom_rand_uniform(ctx, LOOM_F32, LOOM_SHAPE(4));
    assert_false(same_handle(r1, loom_rand_uniform(ctx, LOOM_F32, LOOM_SHAPE(4))));
    TU_OK(ctx);
}

/* h = tanh(h * w + x_t), 1000 steps, one new input per step: each step
 * adds the same four nodes (input, mul, add, tanh; w's broadcast is
 * shared), and the value is right. */
static void test_cse_unrolled_loop_grows_linearly(void **state)
{
    enum { T = 1000, B = 2, H = 4 };
    loom_ctx *ctx = *state;
    float w0[H] = { 0.9f, -0.5f, 0.3f, 1.1f }, xt[B * H], href[B * H];
    loom_t w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(H));
    loom_param_set(ctx, w, w0, sizeof w0);
    loom_t h = loom_full(ctx, LOOM_F32, LOOM_SHAPE(B, H), 0.1);
    for (int i = 0; i < B * H; i++)
        href[i] = 0.1f;
    size_t prev = 0;
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < B * H; i++)
            xt[i] = 0.001f * (float)((t * 7 + i) % 13) - 0.006f;
        loom_step_begin(ctx, t);
        h = loom_tanh(ctx, loom_add(ctx, loom_mul(ctx, h, w), loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(B, H), xt)));
        loom_step_end(ctx);
        if (t > 0 && loom_node_count(ctx) - prev != 4)
            fail_msg("step %d added %zu nodes, not 4", t, loom_node_count(ctx) - prev);
        prev = loom_node_count(ctx);
        for (int i = 0; i < B * H; i++)
            href[i] = tanhf(href[i] * w0[i % H] + xt[i]);
    }
    TU_OK(ctx);
    assert_int_equal(loom_run(ctx, 1, &h), LOOM_OK);
    double want[B * H];
    for (int i = 0; i < B * H; i++)
        want[i] = href[i];
    tu_assert_close_f(loom_data(ctx, h), want, B * H, 1e-5, "h after 1000 steps");
}

/* ------------------------------------------------------------------ */
/* The allocator hook                                                 */
/* ------------------------------------------------------------------ */

/* A recurrent model unrolled over T steps (enough nodes to grow every
 * table), a 20-way concat, a random term, backward, a vjp, momentum in a
 * buffer, a run, the DOT printer, a reset and an eval. The parameters are
 * set first, so running it again from scratch gives the same results. */
typedef struct scenario_out {
    double loss;
    float w[6], u[4], m[6], y[2];
} scenario_out;

static loom_code scenario(loom_ctx *ctx, scenario_out *o)
{
    enum { T = 40, K = 20 };
    static const float w0[6] = { 0.5f, -0.25f, 0.75f, 1.0f, -0.5f, 0.125f };
    static const float u0[4] = { 0.3f, -0.4f, 0.2f, 0.1f }, zero[6] = { 0 };
    static const float x0[12] = { 0.1f, -0.2f, 0.3f, 0.4f, 0.5f, -0.6f, 0.7f, 0.8f, -0.9f, 1.0f, 1.1f, 1.2f };
    memset(o, 0, sizeof *o);
    loom_t w = loom_param_find(ctx, "W"), u = loom_param_find(ctx, "U"), m = loom_param_find(ctx, "m");
    if (loom_is_null(w))
        w = loom_param(ctx, "W", LOOM_F32, LOOM_SHAPE(3, 2));
    if (loom_is_null(u))
        u = loom_param(ctx, "U", LOOM_F32, LOOM_SHAPE(2, 2));
    if (loom_is_null(m))
        m = loom_buffer(ctx, "m", LOOM_F32, LOOM_SHAPE(3, 2));
    loom_param_set(ctx, w, w0, sizeof w0);
    loom_param_set(ctx, u, u0, sizeof u0);
    loom_param_set(ctx, m, zero, sizeof zero);
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(4, 3));
    loom_t xw = loom_matmul(ctx, x, w), h = loom_full(ctx, LOOM_F32, LOOM_SHAPE(4, 2), 0), hs[K];
    for (int t = 0; t < T; t++) {
        loom_step_begin(ctx, t);
        h = loom_tanh(ctx, loom_adds(ctx, loom_add(ctx, loom_matmul(ctx, h, u), xw), 0.01 * t));
        loom_step_end(ctx);
        if (t >= T - K)
            hs[t - (T - K)] = h;
    }
    loom_t all = loom_concat(ctx, K, hs, 0);
    loom_t noise = loom_muls(ctx, loom_sum_all(ctx, loom_rand_uniform(ctx, LOOM_F32, LOOM_SHAPE(3))), 0.0);
    loom_t loss = loom_add(ctx, loom_mean_all(ctx, loom_mul(ctx, all, all)), noise);
    loom_backward(ctx, loss);
    loom_t m1 = loom_add(ctx, loom_muls(ctx, m, 0.9), loom_grad(ctx, w)), du;
    loom_assign(ctx, m, m1);
    loom_assign(ctx, w, loom_sub(ctx, w, loom_muls(ctx, m1, 0.5)));
    loom_vjp(ctx, 1, &loss, NULL, 1, &u, &du);
    loom_assign(ctx, u, loom_sub(ctx, u, loom_muls(ctx, du, 0.5)));
    loom_feed(ctx, x, x0, sizeof x0);
    loom_run(ctx, 1, &loss);
    if (loom_failed(ctx))
        return loom_status(ctx);
    o->loss = loom_item(ctx, loss);
    loom_read(ctx, w, o->w, sizeof o->w);
    loom_read(ctx, u, o->u, sizeof o->u);
    loom_read(ctx, m, o->m, sizeof o->m);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f) {
        loom_write_dot(ctx, f);
        fclose(f);
        free(text);
    }
    if (loom_failed(ctx))
        return loom_status(ctx);
    loom_reset(ctx);
    if (loom_failed(ctx))
        return loom_status(ctx);
    loom_t y = loom_matmul(ctx, loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(1, 3), x0), w);
    loom_eval(ctx, 1, &y);
    loom_read(ctx, y, o->y, sizeof o->y);
    return loom_status(ctx);
}

static void test_alloc_counting_sees_everything(void **state)
{
    (void)state;
    tu_counting ca = { .fail_at = -1 };
    loom_ctx *ctx = counting_ctx(&ca);
    assert_non_null(ctx);
    assert_true(ca.calls > 0);
    scenario_out o;
    assert_int_equal(scenario(ctx, &o), LOOM_OK);
    assert_true(o.loss > 0.01 && o.y[0] != 0);
    assert_true(ca.calls > 300 && ca.live_bytes > 0);
    /* the run's buffers come from it too */
    size_t before = ca.calls;
    loom_t s = loom_sum_all(ctx, loom_param_find(ctx, "W"));
    assert_int_equal(loom_run(ctx, 1, &s), LOOM_OK);
    assert_true(ca.calls > before + 1);
    loom_ctx_free(ctx);
    assert_int_equal(ca.failures, 0);
    assert_int_equal(ca.bad_osize, 0);
    assert_int_equal(ca.live_blocks, 0);
    assert_int_equal(ca.live_bytes, 0);
}

/* One failure-injection case, in a child. Exit codes: 0 clean after a
 * reported NOMEM, 9 clean without one (the failure was absorbed, or came
 * after the end), 1 leak, 2 wrong osize, 3 wrong result, 4 an error other
 * than NOMEM, 5 no recovery after a one-shot failure; 100 + n: signal n. */
static int nomem_case(long fail_at, bool one_shot, const scenario_out *ref)
{
    pid_t pid = fork_child();
    if (pid != 0)
        return wait_child(pid);
    tu_counting ca = { .fail_at = fail_at, .one_shot = one_shot };
    loom_ctx *ctx = counting_ctx(&ca);
    int rc = ctx ? 9 : 0;
    if (ctx) {
        scenario_out o;
        loom_code c = scenario(ctx, &o);
        if (c == LOOM_OK)
            rc = memcmp(&o, ref, sizeof o) ? 3 : 9;
        else if (c != LOOM_ERR_NOMEM)
            rc = 4;
        else if (!one_shot)
            rc = 0;
        else {
            /* the context stays usable: clear, reset, do it all again */
            loom_clear_error(ctx);
            loom_reset(ctx);
            c = scenario(ctx, &o);
            rc = c != LOOM_OK ? 5 : memcmp(&o, ref, sizeof o) ? 3 : 0;
        }
        loom_ctx_free(ctx);
    }
    if ((rc == 0 || rc == 9) && ca.bad_osize)
        rc = 2;
    if ((rc == 0 || rc == 9) && (ca.live_bytes || ca.live_blocks))
        rc = 1;
    _exit(rc);
}

static void test_alloc_failure_never_crashes_or_leaks(void **state)
{
    (void)state;
    scenario_out ref;
    tu_counting ca = { .fail_at = -1 };
    loom_ctx *ctx = counting_ctx(&ca);
    assert_int_equal(scenario(ctx, &ref), LOOM_OK);
    loom_ctx_free(ctx);
    long total = (long)ca.calls;
    char report[2048] = "";
    size_t used = 0;
    int bad = 0, nomem = 0;
    for (int mode = 0; mode < 2; mode++)
        for (long n = 0; n <= total; n++) {
            int rc = nomem_case(n, mode == 1, &ref);
            nomem += rc == 0;
            if (rc == 0 || rc == 9 || bad++ >= 12 || used >= sizeof report)
                continue;
            used += (size_t)snprintf(report + used, sizeof report - used, "\n  %s failure of request %ld: %s %d",
                                     mode ? "one-shot" : "persistent", n, rc >= 100 ? "signal" : "exit code",
                                     rc >= 100 ? rc - 100 : rc);
        }
    print_message("alloc failure: %ld requests, %d of %ld cases reported NOMEM\n", total, nomem, 2 * (total + 1));
    if (bad)
        fail_msg("%d of %ld failure-injection cases did not end cleanly:%s", bad, 2 * (total + 1), report);
    assert_true(nomem >= total); /* nearly every failure surfaces as NOMEM */
}

/* A loom_run that fails must not have committed its assignments: a
 * caller that sees NOMEM and runs the step again would apply it twice. */
static void test_alloc_failed_run_commits_nothing(void **state)
{
    (void)state;
    char report[256] = "";
    size_t used = 0;
    int committed = 0, failed = 0;
    for (long k = 0; k < 64; k++) {
        tu_counting ca = { .fail_at = -1, .one_shot = true };
        loom_ctx *ctx = counting_ctx(&ca);
        loom_t w = loom_param(ctx, "w", LOOM_F64, LOOM_SHAPE(2)), s = loom_muls(ctx, w, 2);
        loom_assign(ctx, w, loom_adds(ctx, w, 1));
        TU_OK(ctx);
        ca.fail_at = (long)ca.calls + k; /* the k-th request of the run */
        loom_code c = loom_run(ctx, 1, &s);
        const double *d = loom_param_data(ctx, w);
        bool changed = d[0] != 0 || d[1] != 0;
        loom_ctx_free(ctx);
        assert_int_equal(ca.live_bytes, 0);
        if (c == LOOM_OK) {
            assert_true(changed);
            break;
        }
        assert_int_equal(c, LOOM_ERR_NOMEM);
        failed++;
        if (changed && committed++ < 4 && used < sizeof report)
            used += (size_t)snprintf(report + used, sizeof report - used, " %ld", k);
    }
    assert_true(failed > 5);
    if (committed)
        fail_msg("%d of %d failed runs committed the assignment (failing request of the run:%s)", committed,
                 failed, report);
}

/* A whole training step on the JIT: the model built (an LSTM and a
 * head), its tape recorded, an Adam step compiled and run, a checkpoint
 * saved, a second step, the checkpoint loaded back. Every allocation
 * request of it is made to fail, in a child forked at that request (the
 * parent's prefix of the work is shared, so each case costs only what
 * follows its failure). */
typedef struct train_out {
    double loss[2];
    float head[4 * 6];
} train_out;

typedef struct train_model {
    loom_rnn *rnn;
    loom_linear head;
    loom_optimizer *opt;
} train_model;

static void train_model_free(train_model *m)
{
    loom_optimizer_free(m->opt);
    loom_rnn_free(m->rnn);
    memset(m, 0, sizeof *m);
}

static loom_code train_build(loom_ctx *ctx, train_model *m)
{
    memset(m, 0, sizeof *m);
    m->rnn = loom_rnn_new(ctx, "rnn", &(loom_rnn_config){ .mode = LOOM_LSTM, .input_size = 3, .hidden_size = 6 });
    loom_linear_init(ctx, &m->head, "head", 6, 4, true, LOOM_F32);
    m->opt = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = 0.01, .clip_norm = 1 });
    return loom_status(ctx);
}

static loom_code train_steps(loom_ctx *ctx, train_model *m, const char *ckpt, train_out *o)
{
    static float x0[5 * 2 * 3];
    static const int32_t y0[10] = { 0, 1, 2, 3, 0, 1, 2, 3, 3, 2 };
    for (int i = 0; i < 30; i++)
        x0[i] = 0.1f * (float)(i % 7) - 0.3f;
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(5, 2, 3)), y = loom_input(ctx, "y", LOOM_I32, LOOM_SHAPE(10));
    loom_t out;
    loom_rnn_forward(ctx, m->rnn, x, NULL, LOOM_NULL, true, &out, NULL);
    loom_t logits = loom_linear_forward(ctx, &m->head, loom_reshape(ctx, out, LOOM_SHAPE(10, 6)));
    loom_t loss = loom_cross_entropy(ctx, logits, y);
    loom_optimizer_attach(ctx, m->opt, loss);
    loom_feed(ctx, x, x0, sizeof x0);
    loom_feed(ctx, y, y0, sizeof y0);
    if (loom_optimizer_step(ctx, m->opt, 1, &loss) != LOOM_OK)
        return loom_status(ctx);
    o->loss[0] = loom_item(ctx, loss);
    if (loom_checkpoint_save(ctx, ckpt, m->opt, "{\"model\": \"test\"}") != LOOM_OK ||
        loom_optimizer_step(ctx, m->opt, 1, &loss) != LOOM_OK)
        return loom_status(ctx);
    o->loss[1] = loom_item(ctx, loss);
    if (loom_checkpoint_load(ctx, ckpt, m->opt, 0) != LOOM_OK)
        return loom_status(ctx);
    loom_read(ctx, m->head.weight, o->head, sizeof o->head);
    return loom_status(ctx);
}

typedef struct forking {
    tu_counting c;
    bool child;         /* this process is a case */
    bool one_shot;      /* cases fail their request only (else every later one too) */
    long every;         /* fork at requests divisible by this */
    int *rc;            /* parent: each request's case result, -2 when not forked */
    size_t rc_cap;
    char ckpt[96];      /* the checkpoint's path; a child writes its own */
} forking;

/* The counting allocator, which in the parent forks a case at each
 * request it reaches: the child fails that request, the parent waits for
 * it and goes on without a failure. */
static void *forking_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    forking *f = ud;
    long k = (long)f->c.calls;
    if (nsize && !f->child && (size_t)k < f->rc_cap && k % f->every == 0) {
        pid_t pid = fork_child();
        if (pid == 0) {
            f->child = true;
            f->c.fail_at = k;
            f->c.one_shot = f->one_shot;
            strcat(f->ckpt, ".case");
        } else {
            f->rc[k] = wait_child(pid);
        }
    }
    return tu_counting_alloc(&f->c, ptr, osize, nsize);
}

/* Runs the step with f's allocator; in a case's child it never returns.
 * Exit codes: 0 NOMEM reported, the context freed clean (and, after a
 * one-shot failure, usable again: a new tape trains); 9 no failure seen
 * (absorbed, or past the end) and the results are the reference's; 1 a
 * leak; 2 a wrong old size; 3 a wrong result; 4 an error other than
 * NOMEM; 5 no recovery after a one-shot failure; 6 LeakSanitizer found
 * a leak (ASan builds). */
static loom_code forked_training(forking *f, const train_out *ref, train_out *o)
{
    memset(o, 0, sizeof *o);
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .alloc = forking_alloc, .alloc_ud = f, .threads = 1, .seed = 3 });
    train_model m = { 0 };
    loom_code c = !ctx ? LOOM_ERR_NOMEM : train_build(ctx, &m);
    if (c == LOOM_OK)
        c = train_steps(ctx, &m, f->ckpt, o);
    if (!f->child) {
        train_model_free(&m);
        loom_ctx_free(ctx);
        return c;
    }
    int rc = c == LOOM_OK ? (memcmp(o, ref, sizeof *o) ? 3 : 9) : c != LOOM_ERR_NOMEM ? 4 : 0;
    if (rc == 0 && f->one_shot && m.rnn && m.opt && !loom_is_null(m.head.bias)) {
        /* the model is whole: the context must train on */
        loom_clear_error(ctx);
        loom_reset(ctx);
        train_out again;
        rc = train_steps(ctx, &m, f->ckpt, &again) == LOOM_OK && isfinite(again.loss[1]) ? 0 : 5;
    }
    train_model_free(&m);
    loom_ctx_free(ctx);
    if ((rc == 0 || rc == 9) && f->c.bad_osize)
        rc = 2;
    if ((rc == 0 || rc == 9) && (f->c.live_bytes || f->c.live_blocks))
        rc = 1;
#ifdef __SANITIZE_ADDRESS__
    /* under ASan, LeakSanitizer over the whole process (LLVM's side
     * too) in some cases: it scans the heap, which takes a while */
    if ((rc == 0 || rc == 9) && f->c.fail_at % 48 == 0 && __lsan_do_recoverable_leak_check())
        rc = 6;
#endif
    _exit(rc);
}

static void test_alloc_failure_whole_training_step_jit(void **state)
{
    (void)state;
    char dir[] = "/tmp/loom-nomem-XXXXXX", ckpt[96];
    assert_non_null(mkdtemp(dir));
    snprintf(ckpt, sizeof ckpt, "%s/step.safetensors", dir);
    /* the reference run, counting its requests */
    train_out ref, o;
    forking f = { .c = { .fail_at = -1 }, .every = 1 };
    strcpy(f.ckpt, ckpt);
    assert_int_equal(forked_training(&f, NULL, &ref), LOOM_OK);
    assert_true(isfinite(ref.loss[0]) && ref.loss[1] < ref.loss[0]);
    size_t total = f.c.calls;
    int *rc = malloc((total + 1) * sizeof *rc);
    assert_non_null(rc);
    char report[2048] = "";
    size_t used = 0;
    long cases = 0, nomem = 0, bad = 0;
    /* every request fails for good; every 24th once, and the context
     * must then train on (each of those compiles the plan again). Under
     * ASan a fork costs its shadow memory: every 6th and 48th there. */
#ifdef __SANITIZE_ADDRESS__
    const long every[2] = { 6, 48 };
#else
    const long every[2] = { 1, 24 };
#endif
    for (int mode = 0; mode < 2; mode++) {
        for (size_t i = 0; i <= total; i++)
            rc[i] = -2;
        f = (forking){ .c = { .fail_at = -1 }, .one_shot = mode == 1, .every = every[mode], .rc = rc,
                       .rc_cap = total + 1 };
        strcpy(f.ckpt, ckpt);
        assert_int_equal(forked_training(&f, &ref, &o), LOOM_OK);
        assert_memory_equal(&o, &ref, sizeof o); /* the parent saw no failure */
        for (size_t i = 0; i < total; i++) {
            if (rc[i] == -2)
                continue;
            cases++;
            nomem += rc[i] == 0;
            if (rc[i] == 0 || rc[i] == 9 || bad++ >= 12 || used >= sizeof report)
                continue;
            used += (size_t)snprintf(report + used, sizeof report - used, "\n  %s failure of request %zu: %s %d",
                                     mode ? "one-shot" : "persistent", i, rc[i] >= 100 ? "signal" : "exit code",
                                     rc[i] >= 100 ? rc[i] - 100 : rc[i]);
        }
    }
    free(rc);
    unlink(ckpt);
    strcat(ckpt, ".case");
    unlink(ckpt);
    rmdir(dir);
    print_message("alloc failure, whole JIT training step: %zu requests, %ld cases, %ld reported NOMEM\n", total,
                  cases, nomem);
    if (bad)
        fail_msg("%ld of %ld failure-injection cases did not end cleanly:%s", bad, cases, report);
    assert_true(nomem * 10 >= cases * 9);
}

/* After loom_reset fails for want of memory the context must stay safe to
 * print, to clear and build on, to run. Each use runs in its own child,
 * so a crash names the use. */
static void test_alloc_context_usable_after_failed_reset(void **state)
{
    (void)state;
    static const char *const uses[] = { "loom_print_graph", "loom_write_dot", "loom_input after clear_error",
                                        "loom_run of a parameter after clear_error", "loom_reset again, run" };
    char report[512] = "";
    size_t used = 0;
    for (int use = 0; use < (int)LM_ARRAY_LEN(uses); use++) {
        pid_t pid = fork_child();
        if (pid == 0) {
            tu_counting ca = { .fail_at = -1 };
            loom_ctx *ctx = counting_ctx(&ca);
            loom_t p = loom_param(ctx, "p", LOOM_F32, LOOM_SCALAR), y;
            ca.fail_at = (long)ca.calls; /* every allocation from here on fails */
            loom_reset(ctx);
            int rc = loom_status(ctx) == LOOM_ERR_NOMEM ? 0 : 3;
            ca.fail_at = -1; /* memory is back */
            FILE *devnull = fopen("/dev/null", "w");
            if (use >= 2)
                loom_clear_error(ctx);
            switch (use) {
            case 0: loom_print_graph(ctx, devnull); break;
            case 1: loom_write_dot(ctx, devnull); break;
            case 2: loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(2)); break;
            case 3: loom_run(ctx, 1, &p); break;
            default:
                loom_reset(ctx);
                y = loom_scalar(ctx, LOOM_F32, 2);
                rc = loom_run(ctx, 1, &y) == LOOM_OK && loom_item(ctx, y) == 2 ? rc : 4;
            }
            fclose(devnull);
            loom_ctx_free(ctx);
            _exit(rc);
        }
        int rc = wait_child(pid);
        if (rc != 0 && used < sizeof report)
            used += (size_t)snprintf(report + used, sizeof report - used, "\n  %s: %s %d", uses[use],
                                     rc >= 100 ? "signal" : "exit code", rc >= 100 ? rc - 100 : rc);
    }
    if (used)
        fail_msg("after a failed loom_reset:%s", report);
}

/* ------------------------------------------------------------------ */
/* Shapes, dtypes, codes                                              */
/* ------------------------------------------------------------------ */

static void test_shape_macros(void **state)
{
    loom_ctx *ctx = *state;
    loom_shape a = LOOM_SHAPE(32, 128), one = LOOM_SHAPE(7), eight = LOOM_SHAPE(1, 2, 3, 4, 5, 6, 7, 8);
    assert_true(a.rank == 2 && a.d[0] == 32 && a.d[1] == 128);
    assert_true(one.rank == 1 && one.d[0] == 7);
    assert_int_equal(eight.rank, 8);
    for (int i = 0; i < 8; i++)
        assert_true(eight.d[i] == i + 1);
    assert_int_equal(LOOM_SCALAR.rank, 0);
    assert_true(loom_shape_numel(LOOM_SCALAR) == 1);
    /* LOOM_AXES(0, 2) is the two arguments `2, (const int[]){0, 2}` */
    loom_t x = loom_iota(ctx, LOOM_F32, LOOM_SHAPE(2, 3, 4), 1);
    loom_t r = loom_sum(ctx, x, LOOM_AXES(0, 2), false), r1 = loom_sum(ctx, x, LOOM_AXES(-1), true);
    assert_true(loom_shape_equal(loom_shape_of(ctx, r), LOOM_SHAPE(3)));
    assert_true(loom_shape_equal(loom_shape_of(ctx, r1), LOOM_SHAPE(2, 3, 1)));
    assert_int_equal(loom_run(ctx, 1, &r), LOOM_OK);
    const float *d = loom_data(ctx, r);
    assert_true(d[0] == 0 && d[1] == 8 && d[2] == 16);
}

static void test_shape_numel_equal_str(void **state)
{
    (void)state;
    assert_true(loom_shape_numel(LOOM_SHAPE(2, 3, 4)) == 24);
    assert_true(loom_shape_numel(LOOM_SHAPE(5, 0, 3)) == 0);
    assert_true(loom_shape_numel(LOOM_SHAPE(1 << 20, 1 << 20)) == (int64_t)1 << 40);
    assert_true(loom_shape_equal(LOOM_SHAPE(2, 3), LOOM_SHAPE(2, 3)));
    assert_false(loom_shape_equal(LOOM_SHAPE(2, 3), LOOM_SHAPE(3, 2)));
    assert_false(loom_shape_equal(LOOM_SHAPE(6), LOOM_SHAPE(6, 1)));
    assert_true(loom_shape_equal(LOOM_SCALAR, (loom_shape){ 0 }));
    loom_shape a = LOOM_SHAPE(4), b = LOOM_SHAPE(4);
    b.d[3] = 99; /* dims beyond the rank do not count */
    assert_true(loom_shape_equal(a, b));
    char buf[64], small[6];
    assert_string_equal(loom_shape_str(LOOM_SHAPE(2, 3), LOOM_F32, buf, sizeof buf), "f32[2,3]");
    assert_string_equal(loom_shape_str(LOOM_SCALAR, LOOM_F64, buf, sizeof buf), "f64[]");
    assert_string_equal(loom_shape_str(LOOM_SHAPE(7), LOOM_I32, buf, sizeof buf), "i32[7]");
    assert_string_equal(loom_shape_str(LOOM_SHAPE(32, 128), -1, buf, sizeof buf), "[32,128]");
    assert_ptr_equal(loom_shape_str(LOOM_SHAPE(1, 2, 3, 4, 5, 6, 7, 8), LOOM_F32, buf, sizeof buf), buf);
    assert_string_equal(buf, "f32[1,2,3,4,5,6,7,8]");
    memset(small, 'x', sizeof small); /* a short buffer truncates and stays terminated */
    assert_string_equal(loom_shape_str(LOOM_SHAPE(1234, 5), LOOM_F32, small, sizeof small), "f32[1");
}

static void test_shape_dtype_and_code_names(void **state)
{
    loom_ctx *ctx = *state;
    static const char *const dtypes[LOOM_DTYPE_COUNT] = { "f32", "f64", "i32" };
    static const size_t sizes[LOOM_DTYPE_COUNT] = { 4, 8, 4 };
    for (int dt = 0; dt < LOOM_DTYPE_COUNT; dt++) {
        assert_string_equal(loom_dtype_name((loom_dtype)dt), dtypes[dt]);
        assert_int_equal(loom_dtype_size((loom_dtype)dt), sizes[dt]);
    }
    assert_true(loom_dtype_size(LOOM_DTYPE_COUNT) == 0 && loom_dtype_size((loom_dtype)-1) == 0);
    assert_non_null(loom_dtype_name(LOOM_DTYPE_COUNT));
    static const char *const codes[LOOM_CODE_COUNT] = {
        "LOOM_OK",         "LOOM_ERR_ARG",    "LOOM_ERR_SHAPE", "LOOM_ERR_DTYPE",       "LOOM_ERR_HANDLE",
        "LOOM_ERR_NOMEM",  "LOOM_ERR_INDEX",  "LOOM_ERR_STATE", "LOOM_ERR_IO",          "LOOM_ERR_FORMAT",
        "LOOM_ERR_UNSUPPORTED", "LOOM_ERR_INTERNAL", "LOOM_ERR_NUMERIC",
    };
    for (int c = 0; c < LOOM_CODE_COUNT; c++)
        assert_string_equal(loom_code_name((loom_code)c), codes[c]);
    assert_non_null(loom_code_name((loom_code)-1));
    assert_string_not_equal(loom_code_name(LOOM_CODE_COUNT), "LOOM_OK");
    /* builders refuse what is not a dtype or a shape */
    assert_true(loom_is_null(loom_input(ctx, "x", LOOM_DTYPE_COUNT, LOOM_SHAPE(2))));
    expect(ctx, LOOM_ERR_DTYPE, "loom_input", "not a loom dtype");
    assert_true(loom_is_null(loom_param(ctx, "p", LOOM_F32, LOOM_SHAPE(2, -3))));
    expect(ctx, LOOM_ERR_SHAPE, "loom_param", "[2,-3]");
    assert_true(loom_is_null(loom_full(ctx, LOOM_F32, (loom_shape){ .rank = 9 }, 0)));
    expect(ctx, LOOM_ERR_SHAPE, "loom_full", "rank 9");
}

static int setup(void **state)
{
    *state = loom_ctx_new(NULL);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    loom_ctx_free(*state);
    return 0;
}

/* C: the test gets a fresh context in *state, freed even if it fails. */
#define C(name) cmocka_unit_test_setup_teardown(test_##name, setup, teardown)
#define P(name) cmocka_unit_test(test_##name)

int main(void)
{
    const struct CMUnitTest tests[] = {
        C(handle_null_operand_names_function), C(handle_pow_checks_its_operand),
        C(handle_stale_after_reset_is_refused), C(handle_foreign_is_refused),
        C(handle_param_survives_reset),
        C(sticky_failed_builder_records_nothing),
        C(sticky_clear_error_and_reset_resume_building), P(sticky_null_ctx_never_crashes),
        C(param_names_are_unique), C(param_automatic_names), C(param_automatic_name_avoids_user_names),
        C(param_lookup), C(param_starts_at_zero_aligned_and_set_checks_bytes),
        C(param_init_uniform_within_range), C(param_init_normal_moments),
        C(input_feed_wrong_size_names_input), C(input_unfed_run_fails_then_runs_with_each_feed),
        C(input_tensor_and_feed_copy_data),
        C(run_outputs_and_reads), P(run_same_output_twice),
        C(run_values_replaced_by_next_run), C(run_eval_does_not_commit_assign),
        C(run_assign_reads_see_old_values), C(run_assign_refuses_wrong_shape_or_dtype),
        C(run_sgd_steps_on_quadratic),
        C(step_marks_nodes), C(step_marks_in_printer_and_dot),
        C(cse_same_expression_same_handle), C(cse_unrolled_loop_grows_linearly),
        P(alloc_counting_sees_everything), P(alloc_failure_never_crashes_or_leaks),
        P(alloc_failed_run_commits_nothing), P(alloc_context_usable_after_failed_reset),
        P(alloc_failure_whole_training_step_jit),
        C(shape_macros), P(shape_numel_equal_str), C(shape_dtype_and_code_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
