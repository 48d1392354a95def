/*
 * test_badinput.c — every public entry point of loom.h fed bad input.
 *
 * The core is one table, cases[], a row per case: the entry point, what is
 * wrong with the call, a function that sets up and makes the bad call, the
 * loom_code it must give and fragments its message must hold (the op or
 * entry point, the argument, the shapes). Rows come in the order of
 * loom.h. Each row runs in a child process with its own contexts on a
 * counting allocator, so a crash, an abort or a hang names the row instead
 * of ending the suite, and so does a byte still allocated after
 * loom_ctx_free. After the bad call the child also checks that the error
 * is sticky as loom.h documents it (builders return null, runs return the
 * same code, the message stays the first one), then clears it and runs a
 * small computation whose value it knows: the context must still work.
 *
 * Coverage is checked, not promised: test_badinput_covers_loom_h reads
 * include/loom.h and fails for a public function with neither a row nor a
 * reason in no_case[] below. test_badinput_harness_can_fail runs rows that
 * are wrong on purpose (a wrong code, a missing fragment, a crash, an
 * abort, a leak, a handle where null was due) and checks each is reported.
 * Rows run on the JIT unless they name the reference backend (the run-time
 * index cases run on both). LOOM_BADINPUT_ONLY=<text> runs the rows whose
 * "entry point: what" holds the text; LOOM_BADINPUT_VERBOSE=1 prints every
 * row's message.
 *
 * Not here: what valid calls compute (test_ops, test_autograd ...), and
 * allocation failure (test_frontend injects it at every request).
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, truncate */

#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <regex.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* A counting allocator                                               */
/* ------------------------------------------------------------------ */

/* tu_counting_alloc (testutil.c): sizes checked, blocks counted. */

/* ------------------------------------------------------------------ */
/* The environment of a case                                          */
/* ------------------------------------------------------------------ */

/* What a case function returns besides a loom_code: a handle came back
 * where the call should have failed, or a value is wrong (e->why says
 * which). */
enum { BI_NOT_NULL = 1000, BI_WRONG };

typedef struct bi_env {
    tu_counting *ca;
    loom_options opts; /* the counting allocator and the row's backend */
    loom_ctx *ctx;     /* the context under test */
    loom_ctx *other;   /* another live context: its handles are foreign */
    /* on ctx's tape (made after a loom_reset, so stale is stale) */
    loom_t x23;  /* f32[2,3] = 1..6 */
    loom_t x32;  /* f32[3,2] */
    loom_t d23;  /* f64[2,3] */
    loom_t i3;   /* i32[3] = 0, 1, 2 */
    loom_t v3;   /* f32[3] */
    loom_t s;    /* f32[] = 1 */
    loom_t in23; /* an input f32[2,3], never fed */
    /* parameters of ctx */
    loom_t w;    /* "w" f32[3,2] */
    loom_t b;    /* "b" f32[2] */
    loom_t buf;  /* buffer "buf" f32[2] */
    loom_t wi;   /* "wi" i32[2,2] */
    loom_t stale;     /* an input of ctx's previous tape */
    loom_t foreign;   /* an input of other */
    loom_t foreign_p; /* a parameter of other */
    loom_t freed;     /* an input of a context since freed */
    char dir[256];    /* a scratch directory, removed after the case */
    /* rows without a context: the text the call gave, to check */
    const char *msg;
    char msgbuf[600];
    char why[300]; /* BI_WRONG: what was wrong */
    /* objects a case made, freed after it (as a caller would) */
    loom_optimizer *opt[2];
    loom_rnn *rnn[2];
} bi_env;

static int wrong(bi_env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int wrong(bi_env *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->why, sizeof e->why, fmt, ap);
    va_end(ap);
    return BI_WRONG;
}

/* What a builder reported: its context's code when it gave null. */
static int H(bi_env *e, loom_t h) { return loom_is_null(h) ? (int)loom_status(e->ctx) : BI_NOT_NULL; }

/* A path in the case's scratch directory. */
static const char *at(bi_env *e, const char *name)
{
    static char bufs[4][512];
    static int k;
    char *p = bufs[k++ % 4];
    snprintf(p, sizeof bufs[0], "%s/%s", e->dir, name);
    return p;
}

/* A case that builds: H of the expression. */
#define BUILD(id, expr)                   \
    static int id(bi_env *e)              \
    {                                     \
        loom_ctx *ctx = e->ctx;           \
        return H(e, (expr));              \
    }
/* A case whose call returns a loom_code. */
#define CODE(id, expr)                    \
    static int id(bi_env *e)              \
    {                                     \
        loom_ctx *ctx = e->ctx;           \
        (void)ctx;                        \
        return (int)(expr);               \
    }
/* A case whose call returns something else: cond says whether it gave the
 * documented value for bad input; the code is then the context's. */
#define QUERY(id, cond)                                                        \
    static int id(bi_env *e)                                                   \
    {                                                                          \
        loom_ctx *ctx = e->ctx;                                                \
        (void)ctx;                                                             \
        return (cond) ? (int)loom_status(e->ctx) : wrong(e, "%s", #cond " is false"); \
    }

/* NULL-context cases: no context to hold an error, so what the caller
 * sees is the return value and loom_status(NULL) / loom_errmsg(NULL). */
#define NULL_H(id, expr)                                                         \
    static int id(bi_env *e)                                                     \
    {                                                                            \
        loom_t h_ = (expr);                                                      \
        e->msg = loom_errmsg(NULL);                                              \
        return loom_is_null(h_) ? (int)loom_status(NULL) : BI_NOT_NULL;          \
    }
#define NULL_C(id, expr)                   \
    static int id(bi_env *e)               \
    {                                      \
        int c_ = (int)(expr);              \
        e->msg = loom_errmsg(NULL);        \
        return c_;                         \
    }
#define NULL_Q(id, cond)                                                               \
    static int id(bi_env *e)                                                           \
    {                                                                                  \
        bool ok_ = (cond);                                                             \
        e->msg = loom_errmsg(NULL);                                                    \
        return ok_ ? (int)loom_status(NULL) : wrong(e, "%s", #cond " is false");       \
    }

/* Reads or writes a whole file with libc (not the contexts' allocator). */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static bool spill(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static char long_name[300];
static const char *name300(void)
{
    memset(long_name, 'n', 299);
    long_name[299] = 0;
    return long_name;
}

/* ------------------------------------------------------------------ */
/* Cases: status codes, value types                                   */
/* ------------------------------------------------------------------ */

/* Functions without a context: they must return their documented value
 * for bad input; the text they give is what the row checks. */
static int c_code_name_neg(bi_env *e)
{
    e->msg = loom_code_name((loom_code)-1);
    return e->msg ? LOOM_OK : wrong(e, "NULL name");
}
static int c_code_name_count(bi_env *e)
{
    e->msg = loom_code_name(LOOM_CODE_COUNT);
    return e->msg ? LOOM_OK : wrong(e, "NULL name");
}
static int c_dtype_name_bad(bi_env *e)
{
    e->msg = loom_dtype_name((loom_dtype)7);
    return e->msg ? LOOM_OK : wrong(e, "NULL name");
}
static int c_dtype_name_neg(bi_env *e)
{
    e->msg = loom_dtype_name((loom_dtype)-1);
    return e->msg ? LOOM_OK : wrong(e, "NULL name");
}
static int c_dtype_size_bad(bi_env *e)
{
    e->msg = "";
    return loom_dtype_size(LOOM_DTYPE_COUNT) == 0 && loom_dtype_size((loom_dtype)-3) == 0
               ? LOOM_OK
               : wrong(e, "a size for a non-dtype");
}
/* A shape struct filled past LOOM_MAX_RANK, as a caller's bug would. */
static loom_shape rank9(void)
{
    loom_shape s = { .rank = 9 };
    for (int i = 0; i < LOOM_MAX_RANK; i++)
        s.d[i] = 2;
    return s;
}
static int c_numel_rank9(bi_env *e)
{
    e->msg = "";
    int64_t n = loom_shape_numel(rank9());
    return n == -1 ? LOOM_OK : wrong(e, "numel of rank 9 is %lld, not -1", (long long)n);
}
static int c_numel_rank_neg(bi_env *e)
{
    e->msg = "";
    int64_t n = loom_shape_numel((loom_shape){ .rank = -1 });
    return n == -1 ? LOOM_OK : wrong(e, "numel of rank -1 is %lld, not -1", (long long)n);
}
static int c_equal_rank9(bi_env *e)
{
    e->msg = "";
    return !loom_shape_equal(rank9(), rank9()) ? LOOM_OK : wrong(e, "two rank-9 shapes compare equal");
}
static int c_shape_str_null(bi_env *e)
{
    e->msg = "";
    return loom_shape_str(LOOM_SHAPE(2), 0, NULL, 0) == NULL ? LOOM_OK : wrong(e, "no NULL back");
}
static int c_shape_str_rank9(bi_env *e)
{
    loom_shape_str(rank9(), 0, e->msgbuf, sizeof e->msgbuf);
    e->msg = e->msgbuf;
    return LOOM_OK;
}
static int c_shape_str_small(bi_env *e)
{
    char tiny[4];
    loom_shape_str(LOOM_SHAPE(1000, 2000), LOOM_F64, tiny, sizeof tiny);
    snprintf(e->msgbuf, sizeof e->msgbuf, "%s", tiny);
    e->msg = e->msgbuf;
    return strlen(tiny) == 3 ? LOOM_OK : wrong(e, "\"%s\" in a 4-byte buffer", tiny);
}

/* ------------------------------------------------------------------ */
/* Cases: context, tape                                               */
/* ------------------------------------------------------------------ */

/* A context made with bad options holds the error from the start. */
static int ctx_with(bi_env *e, loom_options o)
{
    o.alloc = e->opts.alloc;
    o.alloc_ud = e->opts.alloc_ud;
    loom_ctx *c = loom_ctx_new(&o);
    if (!c)
        return wrong(e, "no context");
    snprintf(e->msgbuf, sizeof e->msgbuf, "%s", loom_errmsg(c));
    e->msg = e->msgbuf;
    int code = (int)loom_status(c);
    loom_ctx_free(c);
    return code;
}
static int c_ctx_new_ckpt(bi_env *e) { return ctx_with(e, (loom_options){ .checkpoint_every = -1 }); }
static int c_ctx_new_threads(bi_env *e) { return ctx_with(e, (loom_options){ .threads = -4 }); }
static int c_ctx_new_threads_big(bi_env *e) { return ctx_with(e, (loom_options){ .threads = 5000 }); }
static int c_ctx_new_backend(bi_env *e) { return ctx_with(e, (loom_options){ .backend = (loom_backend)9 }); }
NULL_Q(c_ctx_free_null, (loom_ctx_free(NULL), true))
NULL_C(c_status_null, loom_status(NULL))
NULL_Q(c_failed_null, loom_failed(NULL))
NULL_Q(c_errmsg_null, loom_errmsg(NULL) != NULL)
NULL_Q(c_clear_null, (loom_clear_error(NULL), true))
NULL_Q(c_reset_null, (loom_reset(NULL), true))
static int c_step_neg(bi_env *e)
{
    loom_step_begin(e->ctx, -1);
    return (int)loom_status(e->ctx);
}
NULL_Q(c_step_begin_null, (loom_step_begin(NULL, 3), true))
NULL_Q(c_step_end_null, (loom_step_end(NULL), true))
CODE(c_scope_null_name, loom_scope_begin(ctx, NULL))
CODE(c_scope_empty, loom_scope_begin(ctx, ""))
CODE(c_scope_slash, loom_scope_begin(ctx, "enc/dec"))
CODE(c_scope_long, loom_scope_begin(ctx, name300()))
static int c_scope_deep(bi_env *e)
{
    for (int i = 0; i < 64; i++)
        if (loom_scope_begin(e->ctx, "s") != LOOM_OK)
            return wrong(e, "scope %d failed: %s", i, loom_errmsg(e->ctx));
    return (int)loom_scope_begin(e->ctx, "one_too_many");
}
NULL_C(c_scope_null_ctx, loom_scope_begin(NULL, "s"))
static int c_scope_end_none(bi_env *e)
{
    /* an end without a begin closes nothing, and is no error */
    loom_scope_end(e->ctx);
    return (int)loom_status(e->ctx);
}
NULL_Q(c_scope_end_null_ctx, (loom_scope_end(NULL), true))
NULL_Q(c_node_count_null, loom_node_count(NULL) == 0)
CODE(c_print_null_file, loom_print_graph(ctx, NULL))
NULL_C(c_print_null_ctx, loom_print_graph(NULL, stderr))
CODE(c_wdot_null_file, loom_write_dot(ctx, NULL))
NULL_C(c_wdot_null_ctx, loom_write_dot(NULL, stderr))
QUERY(c_shape_of_null, loom_shape_of(ctx, LOOM_NULL).rank == 0)
QUERY(c_shape_of_stale, loom_shape_of(ctx, e->stale).rank == 0)
QUERY(c_shape_of_foreign_p, loom_shape_of(ctx, e->foreign_p).rank == 0)
NULL_Q(c_shape_of_null_ctx, loom_shape_of(NULL, e->x23).rank == 0)
QUERY(c_dtype_of_foreign, loom_dtype_of(ctx, e->foreign) == LOOM_DTYPE_COUNT)
QUERY(c_dtype_of_freed, loom_dtype_of(ctx, e->freed) == LOOM_DTYPE_COUNT)
NULL_Q(c_dtype_of_null_ctx, loom_dtype_of(NULL, e->x23) == LOOM_DTYPE_COUNT)

/* ------------------------------------------------------------------ */
/* Cases: sources                                                     */
/* ------------------------------------------------------------------ */

BUILD(c_input_dtype, loom_input(ctx, "x", (loom_dtype)7, LOOM_SHAPE(2)))
BUILD(c_input_neg_dim, loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(2, -1)))
BUILD(c_input_rank9, loom_input(ctx, "x", LOOM_F32, rank9()))
BUILD(c_input_rank_neg, loom_input(ctx, "x", LOOM_F32, ((loom_shape){ .rank = -1 })))
BUILD(c_input_huge, loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(1 << 30, 1 << 30, 1 << 30)))
NULL_H(c_input_null_ctx, loom_input(NULL, "x", LOOM_F32, LOOM_SHAPE(2)))
static int c_feed_bytes(bi_env *e)
{
    float v[5] = { 0 };
    return (int)loom_feed(e->ctx, e->in23, v, sizeof v);
}
CODE(c_feed_null_data, loom_feed(ctx, e->in23, NULL, 24))
static int c_feed_not_input(bi_env *e)
{
    float v[6] = { 0 };
    return (int)loom_feed(e->ctx, loom_neg(e->ctx, e->x23), v, sizeof v);
}
static int c_feed_param(bi_env *e)
{
    float v[6] = { 0 };
    return (int)loom_feed(e->ctx, e->w, v, sizeof v);
}
CODE(c_feed_null, loom_feed(ctx, LOOM_NULL, "", 0))
static int c_feed_stale(bi_env *e)
{
    float v[6] = { 0 };
    return (int)loom_feed(e->ctx, e->stale, v, sizeof v);
}
static int c_feed_foreign(bi_env *e)
{
    float v[6] = { 0 };
    return (int)loom_feed(e->ctx, e->foreign, v, sizeof v);
}
static int c_feed_freed(bi_env *e)
{
    float v[6] = { 0 };
    return (int)loom_feed(e->ctx, e->freed, v, sizeof v);
}
NULL_C(c_feed_null_ctx, loom_feed(NULL, e->in23, e->msgbuf, 24))
BUILD(c_tensor_null_data, loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(2, 3), NULL))
BUILD(c_tensor_dtype, loom_tensor(ctx, (loom_dtype)-1, LOOM_SHAPE(2), e->msgbuf))
BUILD(c_tensor_rank9, loom_tensor(ctx, LOOM_F32, rank9(), e->msgbuf))
NULL_H(c_tensor_null_ctx, loom_tensor(NULL, LOOM_F32, LOOM_SHAPE(2), e->msgbuf))
BUILD(c_full_dtype, loom_full(ctx, (loom_dtype)3, LOOM_SHAPE(2), 1))
BUILD(c_full_neg_dim, loom_full(ctx, LOOM_F64, LOOM_SHAPE(-2), 1))
NULL_H(c_full_null_ctx, loom_full(NULL, LOOM_F32, LOOM_SHAPE(2), 1))
BUILD(c_scalar_dtype, loom_scalar(ctx, (loom_dtype)5, 1))
NULL_H(c_scalar_null_ctx, loom_scalar(NULL, LOOM_F32, 1))
BUILD(c_iota_axis, loom_iota(ctx, LOOM_I32, LOOM_SHAPE(2, 3), 2))
BUILD(c_iota_axis_neg, loom_iota(ctx, LOOM_F32, LOOM_SHAPE(2, 3), -3))
BUILD(c_iota_scalar, loom_iota(ctx, LOOM_F32, LOOM_SCALAR, 0))
BUILD(c_iota_dtype, loom_iota(ctx, (loom_dtype)9, LOOM_SHAPE(2), 0))
NULL_H(c_iota_null_ctx, loom_iota(NULL, LOOM_F32, LOOM_SHAPE(2), 0))
BUILD(c_uniform_i32, loom_rand_uniform(ctx, LOOM_I32, LOOM_SHAPE(2)))
BUILD(c_uniform_rank9, loom_rand_uniform(ctx, LOOM_F32, rank9()))
NULL_H(c_uniform_null_ctx, loom_rand_uniform(NULL, LOOM_F32, LOOM_SHAPE(2)))
BUILD(c_normal_dtype, loom_rand_normal(ctx, (loom_dtype)4, LOOM_SHAPE(2)))
NULL_H(c_normal_null_ctx, loom_rand_normal(NULL, LOOM_F32, LOOM_SHAPE(2)))
BUILD(c_bernoulli_p, loom_rand_bernoulli(ctx, LOOM_F32, LOOM_SHAPE(2), 1.5))
BUILD(c_bernoulli_nan, loom_rand_bernoulli(ctx, LOOM_F32, LOOM_SHAPE(2), NAN))
BUILD(c_bernoulli_i32, loom_rand_bernoulli(ctx, LOOM_I32, LOOM_SHAPE(2), 0.5))
NULL_H(c_bernoulli_null_ctx, loom_rand_bernoulli(NULL, LOOM_F32, LOOM_SHAPE(2), 0.5))

/* ------------------------------------------------------------------ */
/* Cases: parameters                                                  */
/* ------------------------------------------------------------------ */

BUILD(c_param_dup, loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(3, 2)))
BUILD(c_param_empty, loom_param(ctx, "", LOOM_F32, LOOM_SHAPE(2)))
BUILD(c_param_long, loom_param(ctx, name300(), LOOM_F32, LOOM_SHAPE(2)))
BUILD(c_param_dtype, loom_param(ctx, "p", (loom_dtype)3, LOOM_SHAPE(2)))
BUILD(c_param_neg_dim, loom_param(ctx, "p", LOOM_F32, LOOM_SHAPE(4, -3)))
BUILD(c_param_rank9, loom_param(ctx, "p", LOOM_F32, rank9()))
NULL_H(c_param_null_ctx, loom_param(NULL, "p", LOOM_F32, LOOM_SHAPE(2)))
BUILD(c_buffer_dup, loom_buffer(ctx, "w", LOOM_F32, LOOM_SHAPE(2)))
BUILD(c_buffer_rank_neg, loom_buffer(ctx, "q", LOOM_F32, ((loom_shape){ .rank = -2 })))
NULL_H(c_buffer_null_ctx, loom_buffer(NULL, "q", LOOM_F32, LOOM_SHAPE(2)))
CODE(c_set_trainable_node, loom_param_set_trainable(ctx, e->x23, false))
CODE(c_set_trainable_buffer, loom_param_set_trainable(ctx, e->buf, true))
CODE(c_set_trainable_foreign, loom_param_set_trainable(ctx, e->foreign_p, false))
NULL_C(c_set_trainable_null_ctx, loom_param_set_trainable(NULL, e->w, false))
QUERY(c_trainable_node, !loom_param_trainable(ctx, e->x23))
NULL_Q(c_trainable_null_ctx, !loom_param_trainable(NULL, e->w))
NULL_Q(c_param_count_null_ctx, loom_param_count(NULL) == 0)
/* H gives the context's code with the null: LOOM_OK, as a lookup should */
BUILD(c_param_at_range, loom_param_at(ctx, 99))
BUILD(c_param_at_huge, loom_param_at(ctx, (size_t)-1))
NULL_H(c_param_at_null_ctx, loom_param_at(NULL, 0))
BUILD(c_param_find_null, loom_param_find(ctx, NULL))
static int c_param_find_absent(bi_env *e)
{
    /* a lookup that finds nothing is no error */
    return loom_is_null(loom_param_find(e->ctx, "nope")) ? (int)loom_status(e->ctx) : BI_NOT_NULL;
}
NULL_H(c_param_find_null_ctx, loom_param_find(NULL, "w"))
QUERY(c_param_name_node, loom_param_name(ctx, e->x23) == NULL)
QUERY(c_param_name_stale, loom_param_name(ctx, e->stale) == NULL)
NULL_Q(c_param_name_null_ctx, loom_param_name(NULL, e->w) == NULL)
QUERY(c_is_param_node, !loom_is_param(ctx, e->x23))
QUERY(c_is_param_foreign, !loom_is_param(ctx, e->foreign_p))
NULL_Q(c_is_param_null_ctx, !loom_is_param(NULL, e->w))
QUERY(c_param_data_node, loom_param_data(ctx, e->x23) == NULL)
QUERY(c_param_data_foreign, loom_param_data(ctx, e->foreign_p) == NULL)
NULL_Q(c_param_data_null_ctx, loom_param_data(NULL, e->w) == NULL)
static int c_param_set_bytes(bi_env *e)
{
    float v[2] = { 0 };
    return (int)loom_param_set(e->ctx, e->w, v, sizeof v);
}
CODE(c_param_set_null_data, loom_param_set(ctx, e->w, NULL, 24))
static int c_param_set_node(bi_env *e)
{
    float v[6] = { 0 };
    return (int)loom_param_set(e->ctx, e->x23, v, sizeof v);
}
NULL_C(c_param_set_null_ctx, loom_param_set(NULL, e->w, e->msgbuf, 24))
CODE(c_uniform_order, loom_param_init_uniform(ctx, e->w, 1, -1))
CODE(c_uniform_nan, loom_param_init_uniform(ctx, e->w, NAN, 1))
CODE(c_uniform_node, loom_param_init_uniform(ctx, e->x23, 0, 1))
NULL_C(c_uniform_init_null_ctx, loom_param_init_uniform(NULL, e->w, 0, 1))
CODE(c_normal_std, loom_param_init_normal(ctx, e->w, 0, -1))
CODE(c_normal_stale, loom_param_init_normal(ctx, e->stale, 0, 1))
NULL_C(c_normal_init_null_ctx, loom_param_init_normal(NULL, e->w, 0, 1))
CODE(c_const_nan, loom_param_init_const(ctx, e->w, NAN))
CODE(c_const_foreign, loom_param_init_const(ctx, e->foreign_p, 1))
NULL_C(c_const_null_ctx, loom_param_init_const(NULL, e->w, 1))
CODE(c_assign_node, loom_assign(ctx, e->x23, e->x23))
CODE(c_assign_shape, loom_assign(ctx, e->w, e->x23))
CODE(c_assign_dtype, loom_assign(ctx, e->w, loom_cast(ctx, e->x32, LOOM_F64)))
CODE(c_assign_null, loom_assign(ctx, e->w, LOOM_NULL))
CODE(c_assign_foreign, loom_assign(ctx, e->w, e->foreign))
NULL_C(c_assign_null_ctx, loom_assign(NULL, e->w, e->x32))

/* ------------------------------------------------------------------ */
/* Cases: elementwise                                                 */
/* ------------------------------------------------------------------ */

/* The families, walked by the macros below for functions and rows. */
#define UNARY_FLOAT(X) X(exp) X(log) X(log1p) X(tanh) X(sigmoid) X(sqrt) X(recip) X(sin) X(cos)
#define UNARY_ANY(X) X(neg) X(relu) X(abs) X(sign) X(square) X(detach)
#define BINARY(X) X(add) X(sub) X(mul) X(div) X(maximum) X(minimum) X(eq) X(ne) X(lt) X(le) X(gt) X(ge)
#define SCALAR_OPS(X) X(adds) X(muls) X(maxs)

#define UN_FNS(op)                                                    \
    BUILD(c_##op##_null, loom_##op(ctx, LOOM_NULL))                   \
    BUILD(c_##op##_stale, loom_##op(ctx, e->stale))                   \
    NULL_H(c_##op##_null_ctx, loom_##op(NULL, e->x23))
UNARY_FLOAT(UN_FNS)
UNARY_ANY(UN_FNS)
#define UN_I32_FN(op) BUILD(c_##op##_i32, loom_##op(ctx, e->i3))
UNARY_FLOAT(UN_I32_FN)
BUILD(c_tanh_foreign, loom_tanh(ctx, e->foreign))
BUILD(c_relu_foreign_p, loom_relu(ctx, e->foreign_p))
BUILD(c_abs_freed, loom_abs(ctx, e->freed))
BUILD(c_cast_dtype, loom_cast(ctx, e->x23, (loom_dtype)3))
BUILD(c_cast_null, loom_cast(ctx, LOOM_NULL, LOOM_F64))
NULL_H(c_cast_null_ctx, loom_cast(NULL, e->x23, LOOM_F64))

#define BIN_FNS(op)                                                   \
    BUILD(c_##op##_shape, loom_##op(ctx, e->x23, e->x32))             \
    BUILD(c_##op##_dtype, loom_##op(ctx, e->x23, e->d23))             \
    BUILD(c_##op##_null2, loom_##op(ctx, e->x23, LOOM_NULL))          \
    BUILD(c_##op##_foreign1, loom_##op(ctx, e->foreign, e->x23))      \
    NULL_H(c_##op##_null_ctx, loom_##op(NULL, e->x23, e->x23))
BINARY(BIN_FNS)
BUILD(c_div_i32, loom_div(ctx, e->i3, e->i3))
BUILD(c_pow_null, loom_pow(ctx, LOOM_NULL, 2.5))
BUILD(c_pow_one_stale, loom_pow(ctx, e->stale, 1.0))
BUILD(c_pow_i32, loom_pow(ctx, e->i3, 0.5))
BUILD(c_pow_i32_frac, loom_pow(ctx, e->i3, 2.5))
NULL_H(c_pow_null_ctx, loom_pow(NULL, e->x23, 2.0))
BUILD(c_where_null_cond, loom_where(ctx, LOOM_NULL, e->x23, e->x23))
BUILD(c_where_dtype, loom_where(ctx, e->x23, e->x23, e->d23))
BUILD(c_where_shape, loom_where(ctx, e->x23, e->x23, e->x32))
BUILD(c_where_stale, loom_where(ctx, e->x23, e->stale, e->x23))
NULL_H(c_where_null_ctx, loom_where(NULL, e->x23, e->x23, e->x23))
#define SC_FNS(op)                                                    \
    BUILD(c_##op##_null, loom_##op(ctx, LOOM_NULL, 2))                \
    BUILD(c_##op##_foreign, loom_##op(ctx, e->foreign, 2))            \
    NULL_H(c_##op##_null_ctx, loom_##op(NULL, e->x23, 2))
SCALAR_OPS(SC_FNS)

/* ------------------------------------------------------------------ */
/* Cases: reductions                                                  */
/* ------------------------------------------------------------------ */

BUILD(c_sum_axis, loom_sum(ctx, e->x23, LOOM_AXES(2), false))
BUILD(c_sum_axis_neg, loom_sum(ctx, e->x23, LOOM_AXES(-3), false))
BUILD(c_sum_dup, loom_sum(ctx, e->x23, LOOM_AXES(0, -2), false))
BUILD(c_sum_naxes_neg, loom_sum(ctx, e->x23, -1, NULL, false))
BUILD(c_sum_no_list, loom_sum(ctx, e->x23, 2, NULL, true))
/* (LOOM_AXES counts up to 8) */
BUILD(c_sum_nine, loom_sum(ctx, e->x23, 9, ((const int[]){ 0, 1, 0, 1, 0, 1, 0, 1, 0 }), false))
BUILD(c_sum_null, loom_sum(ctx, LOOM_NULL, LOOM_AXES(0), false))
NULL_H(c_sum_null_ctx, loom_sum(NULL, e->x23, LOOM_AXES(0), false))
BUILD(c_max_axis, loom_max(ctx, e->x23, LOOM_AXES(5), true))
BUILD(c_max_dup, loom_max(ctx, e->x23, LOOM_AXES(1, 1), false))
BUILD(c_max_scalar_axis, loom_max(ctx, e->s, LOOM_AXES(0), false))
NULL_H(c_max_null_ctx, loom_max(NULL, e->x23, LOOM_AXES(0), false))
BUILD(c_mean_i32, loom_mean(ctx, e->i3, LOOM_AXES(0), false))
BUILD(c_mean_axis, loom_mean(ctx, e->x23, LOOM_AXES(-3), false))
BUILD(c_mean_dup, loom_mean(ctx, e->x23, LOOM_AXES(1, -1), false))
NULL_H(c_mean_null_ctx, loom_mean(NULL, e->x23, LOOM_AXES(0), false))
BUILD(c_sum_all_null, loom_sum_all(ctx, LOOM_NULL))
BUILD(c_sum_all_stale, loom_sum_all(ctx, e->stale))
NULL_H(c_sum_all_null_ctx, loom_sum_all(NULL, e->x23))
BUILD(c_mean_all_i32, loom_mean_all(ctx, e->i3))
BUILD(c_mean_all_foreign, loom_mean_all(ctx, e->foreign))
NULL_H(c_mean_all_null_ctx, loom_mean_all(NULL, e->x23))

/* ------------------------------------------------------------------ */
/* Cases: movement                                                    */
/* ------------------------------------------------------------------ */

BUILD(c_reshape_numel, loom_reshape(ctx, e->x23, LOOM_SHAPE(4, 2)))
BUILD(c_reshape_two_infer, loom_reshape(ctx, e->x23, LOOM_SHAPE(-1, -1)))
BUILD(c_reshape_infer_zero, loom_reshape(ctx, e->x23, LOOM_SHAPE(0, -1)))
BUILD(c_reshape_infer_rest, loom_reshape(ctx, e->x23, LOOM_SHAPE(4, -1)))
BUILD(c_reshape_neg, loom_reshape(ctx, e->x23, LOOM_SHAPE(-2, -3)))
BUILD(c_reshape_rank9, loom_reshape(ctx, e->x23, rank9()))
BUILD(c_reshape_null, loom_reshape(ctx, LOOM_NULL, LOOM_SHAPE(6)))
NULL_H(c_reshape_null_ctx, loom_reshape(NULL, e->x23, LOOM_SHAPE(6)))
BUILD(c_permute_count, loom_permute(ctx, e->x23, LOOM_AXES(0)))
BUILD(c_permute_dup, loom_permute(ctx, e->x23, LOOM_AXES(0, 0)))
BUILD(c_permute_range, loom_permute(ctx, e->x23, LOOM_AXES(0, 2)))
BUILD(c_permute_no_list, loom_permute(ctx, e->x23, 2, NULL))
BUILD(c_permute_nine, loom_permute(ctx, e->x23, 9, ((const int[]){ 0, 1, 2, 3, 4, 5, 6, 7, 8 })))
BUILD(c_permute_neg, loom_permute(ctx, e->x23, -1, NULL))
BUILD(c_permute_null, loom_permute(ctx, LOOM_NULL, LOOM_AXES(1, 0)))
NULL_H(c_permute_null_ctx, loom_permute(NULL, e->x23, LOOM_AXES(1, 0)))
BUILD(c_transpose_axis1, loom_transpose(ctx, e->x23, 0, 2))
BUILD(c_transpose_axis0, loom_transpose(ctx, e->x23, -3, 0))
BUILD(c_transpose_null, loom_transpose(ctx, LOOM_NULL, 0, 1))
NULL_H(c_transpose_null_ctx, loom_transpose(NULL, e->x23, 0, 1))
BUILD(c_expand_shape, loom_expand(ctx, e->x23, LOOM_SHAPE(4, 3)))
BUILD(c_expand_fewer, loom_expand(ctx, e->x23, LOOM_SHAPE(3)))
BUILD(c_expand_rank9, loom_expand(ctx, e->x23, rank9()))
BUILD(c_expand_neg, loom_expand(ctx, e->v3, LOOM_SHAPE(-1, 3)))
BUILD(c_expand_null, loom_expand(ctx, LOOM_NULL, LOOM_SHAPE(2, 3)))
NULL_H(c_expand_null_ctx, loom_expand(NULL, e->v3, LOOM_SHAPE(2, 3)))
BUILD(c_slice_step, loom_slice(ctx, e->x23, 1, 0, 2, 0))
BUILD(c_slice_step_neg, loom_slice(ctx, e->x23, 1, 2, 0, -1))
BUILD(c_slice_axis, loom_slice(ctx, e->x23, 2, 0, 1, 1))
BUILD(c_slice_scalar, loom_slice(ctx, e->s, 0, 0, 1, 1))
BUILD(c_slice_null, loom_slice(ctx, LOOM_NULL, 0, 0, 1, 1))
NULL_H(c_slice_null_ctx, loom_slice(NULL, e->x23, 0, 0, 1, 1))
BUILD(c_concat_zero, loom_concat(ctx, 0, &e->x23, 0))
BUILD(c_concat_neg, loom_concat(ctx, -1, &e->x23, 0))
BUILD(c_concat_no_list, loom_concat(ctx, 2, NULL, 0))
BUILD(c_concat_shape, loom_concat(ctx, 2, ((const loom_t[]){ e->x23, e->x32 }), 0))
BUILD(c_concat_rank, loom_concat(ctx, 2, ((const loom_t[]){ e->x23, e->v3 }), 0))
BUILD(c_concat_dtype, loom_concat(ctx, 2, ((const loom_t[]){ e->x23, e->d23 }), 1))
BUILD(c_concat_axis, loom_concat(ctx, 2, ((const loom_t[]){ e->x23, e->x23 }), 2))
BUILD(c_concat_stale, loom_concat(ctx, 2, ((const loom_t[]){ e->x23, e->stale }), 0))
static int c_concat_17_null(bi_env *e)
{
    /* past the builder's 16 on the stack: the list it allocates must be
     * freed on the error too */
    loom_t xs[17];
    for (int i = 0; i < 16; i++)
        xs[i] = e->x23;
    xs[16] = LOOM_NULL;
    return H(e, loom_concat(e->ctx, 17, xs, 0));
}
static int c_concat_17_shape(bi_env *e)
{
    loom_t xs[17];
    for (int i = 0; i < 17; i++)
        xs[i] = i == 9 ? e->x32 : e->x23;
    return H(e, loom_concat(e->ctx, 17, xs, 0));
}
NULL_H(c_concat_null_ctx, loom_concat(NULL, 1, &e->x23, 0))
BUILD(c_pad_neg, loom_pad(ctx, e->x23, 0, -1, 0, 0))
BUILD(c_pad_axis, loom_pad(ctx, e->x23, 2, 1, 1, 0))
BUILD(c_pad_null, loom_pad(ctx, LOOM_NULL, 0, 1, 1, 0))
NULL_H(c_pad_null_ctx, loom_pad(NULL, e->x23, 0, 1, 1, 0))

/* ------------------------------------------------------------------ */
/* Cases: contraction and indexing                                    */
/* ------------------------------------------------------------------ */

BUILD(c_matmul_inner, loom_matmul(ctx, e->x23, e->x23))
BUILD(c_matmul_scalar, loom_matmul(ctx, e->s, e->x23))
BUILD(c_matmul_i32, loom_matmul(ctx, e->i3, e->i3))
BUILD(c_matmul_mixed, loom_matmul(ctx, e->x23, loom_cast(ctx, e->x32, LOOM_F64)))
static int c_matmul_batch(bi_env *e)
{
    loom_t a = loom_full(e->ctx, LOOM_F32, LOOM_SHAPE(2, 2, 3), 1);
    loom_t b = loom_full(e->ctx, LOOM_F32, LOOM_SHAPE(3, 3, 2), 1);
    return H(e, loom_matmul(e->ctx, a, b));
}
BUILD(c_matmul_null, loom_matmul(ctx, e->x23, LOOM_NULL))
BUILD(c_matmul_foreign, loom_matmul(ctx, e->foreign, e->x32))
NULL_H(c_matmul_null_ctx, loom_matmul(NULL, e->x23, e->x32))
BUILD(c_matmul_t_inner, loom_matmul_t(ctx, e->x23, e->x32, true, false))
BUILD(c_matmul_t_inner_b, loom_matmul_t(ctx, e->x23, e->x32, false, true))
BUILD(c_matmul_t_stale, loom_matmul_t(ctx, e->stale, e->x32, false, false))
NULL_H(c_matmul_t_null_ctx, loom_matmul_t(NULL, e->x23, e->x32, false, false))
BUILD(c_gather_float_idx, loom_gather(ctx, e->x32, e->v3, 0))
BUILD(c_gather_axis, loom_gather(ctx, e->x32, e->i3, 2))
BUILD(c_gather_null_idx, loom_gather(ctx, e->x32, LOOM_NULL, 0))
BUILD(c_gather_scalar, loom_gather(ctx, e->s, e->i3, 0))
NULL_H(c_gather_null_ctx, loom_gather(NULL, e->x32, e->i3, 0))
/* Runs a gather of x32 (3 rows) with these indices along axis. */
static int gather_run(bi_env *e, int32_t a, int32_t b, int axis)
{
    loom_t idx = loom_tensor(e->ctx, LOOM_I32, LOOM_SHAPE(2), (int32_t[]){ a, b });
    loom_t y = loom_gather(e->ctx, e->x32, idx, axis);
    if (loom_failed(e->ctx))
        return wrong(e, "building the gather failed: %s", loom_errmsg(e->ctx));
    return (int)loom_eval(e->ctx, 1, &y);
}
/* Runs a cross-entropy of x23 (2 rows, 3 classes) against labels a, b
 * (ignoring -100 when asked). */
static int ce_run(bi_env *e, int32_t a, int32_t b, bool ignore)
{
    loom_t labels = loom_tensor(e->ctx, LOOM_I32, LOOM_SHAPE(2), (int32_t[]){ a, b });
    loom_t y = loom_cross_entropy_ex(e->ctx, e->x23, labels,
                                     &(loom_ce_options){ .use_ignore_index = ignore, .ignore_index = -100 });
    if (loom_failed(e->ctx))
        return wrong(e, "building the loss failed: %s", loom_errmsg(e->ctx));
    return (int)loom_eval(e->ctx, 1, &y);
}
static int c_ce_run_high(bi_env *e) { return ce_run(e, 0, 3, false); }
static int c_ce_run_neg(bi_env *e) { return ce_run(e, -1, 2, false); }
static int c_ce_run_ignored_and_high(bi_env *e) { return ce_run(e, -100, 5, true); }
static int c_gather_run_high(bi_env *e) { return gather_run(e, 0, 7, 0); }
static int c_gather_run_neg(bi_env *e) { return gather_run(e, -1, 1, 0); }
static int c_gather_run_axis1(bi_env *e) { return gather_run(e, 1, 2, 1); }
static int c_gather_run_huge(bi_env *e) { return gather_run(e, INT32_MAX, 0, 0); }
static int c_gather_run_commit(bi_env *e)
{
    /* a run that fails on an index commits nothing */
    loom_t idx = loom_tensor(e->ctx, LOOM_I32, LOOM_SHAPE(2), (int32_t[]){ 0, 3 });
    loom_t y = loom_gather(e->ctx, e->w, idx, 0);
    loom_assign(e->ctx, e->w, loom_adds(e->ctx, e->w, 1));
    if (loom_failed(e->ctx))
        return wrong(e, "building failed: %s", loom_errmsg(e->ctx));
    int c = (int)loom_run(e->ctx, 1, &y);
    const float *w = loom_param_data(e->ctx, e->w);
    return w && w[0] != 0.5f ? wrong(e, "the failed run committed w (w[0] = %g)", w[0]) : c;
}
BUILD(c_scatter_axis, loom_scatter_add(ctx, e->x32, e->i3, 3, 4))
BUILD(c_scatter_float_idx, loom_scatter_add(ctx, e->x32, e->v3, 0, 4))
BUILD(c_scatter_size, loom_scatter_add(ctx, e->x32, e->i3, 0, -1))
BUILD(c_scatter_shape, loom_scatter_add(ctx, e->x23, e->i3, 0, 4))
BUILD(c_scatter_null, loom_scatter_add(ctx, LOOM_NULL, e->i3, 0, 4))
NULL_H(c_scatter_null_ctx, loom_scatter_add(NULL, e->x32, e->i3, 0, 4))
static int scatter_run(bi_env *e, int32_t bad)
{
    loom_t idx = loom_tensor(e->ctx, LOOM_I32, LOOM_SHAPE(3), (int32_t[]){ 0, bad, 1 });
    loom_t y = loom_scatter_add(e->ctx, e->x32, idx, 0, 3);
    if (loom_failed(e->ctx))
        return wrong(e, "building the scatter failed: %s", loom_errmsg(e->ctx));
    return (int)loom_eval(e->ctx, 1, &y);
}
static int c_scatter_run_high(bi_env *e) { return scatter_run(e, 5); }
static int c_scatter_run_neg(bi_env *e) { return scatter_run(e, -2); }

/* ------------------------------------------------------------------ */
/* Cases: composite ops, losses                                       */
/* ------------------------------------------------------------------ */

BUILD(c_softmax_axis, loom_softmax(ctx, e->x23, 2))
BUILD(c_softmax_i32, loom_softmax(ctx, e->i3, 0))
BUILD(c_softmax_null, loom_softmax(ctx, LOOM_NULL, 0))
NULL_H(c_softmax_null_ctx, loom_softmax(NULL, e->x23, 0))
BUILD(c_log_softmax_axis, loom_log_softmax(ctx, e->x23, -3))
BUILD(c_log_softmax_stale, loom_log_softmax(ctx, e->stale, 1))
BUILD(c_log_softmax_i32, loom_log_softmax(ctx, e->i3, 0))
NULL_H(c_log_softmax_null_ctx, loom_log_softmax(NULL, e->x23, 1))
BUILD(c_logsumexp_axis, loom_logsumexp(ctx, e->x23, 2, false))
BUILD(c_logsumexp_scalar, loom_logsumexp(ctx, e->s, 0, true))
BUILD(c_logsumexp_foreign, loom_logsumexp(ctx, e->foreign, 0, false))
NULL_H(c_logsumexp_null_ctx, loom_logsumexp(NULL, e->x23, 0, false))
static loom_t labels2(bi_env *e, loom_dtype dt)
{
    return dt == LOOM_I32 ? loom_tensor(e->ctx, LOOM_I32, LOOM_SHAPE(2), (int32_t[]){ 0, 2 })
                          : loom_tensor(e->ctx, dt, LOOM_SHAPE(2), (float[]){ 0, 2 });
}
BUILD(c_ce_label_dtype, loom_cross_entropy(ctx, e->x23, labels2(e, LOOM_F32)))
BUILD(c_ce_logits_i32, loom_cross_entropy(ctx, loom_cast(ctx, e->x23, LOOM_I32), labels2(e, LOOM_I32)))
BUILD(c_ce_rank, loom_cross_entropy(ctx, e->v3, labels2(e, LOOM_I32)))
BUILD(c_ce_count, loom_cross_entropy(ctx, e->x23, e->i3))
BUILD(c_ce_null, loom_cross_entropy(ctx, LOOM_NULL, labels2(e, LOOM_I32)))
BUILD(c_ce_stale_labels, loom_cross_entropy(ctx, e->x23, e->stale))
NULL_H(c_ce_null_ctx, loom_cross_entropy(NULL, e->x23, e->i3))
BUILD(c_mse_shape, loom_mse(ctx, e->x23, e->x32))
BUILD(c_mse_dtype, loom_mse(ctx, e->x23, e->d23))
BUILD(c_mse_null, loom_mse(ctx, e->x23, LOOM_NULL))
NULL_H(c_mse_null_ctx, loom_mse(NULL, e->x23, e->x23))
BUILD(c_ce_ex_reduction,
      loom_cross_entropy_ex(ctx, e->x23, labels2(e, LOOM_I32), &(loom_ce_options){ .reduction = (loom_reduction)9 }))
BUILD(c_ce_ex_smoothing,
      loom_cross_entropy_ex(ctx, e->x23, labels2(e, LOOM_I32), &(loom_ce_options){ .label_smoothing = 1.5 }))
BUILD(c_ce_ex_smoothing_nan,
      loom_cross_entropy_ex(ctx, e->x23, labels2(e, LOOM_I32), &(loom_ce_options){ .label_smoothing = NAN }))
BUILD(c_ce_ex_shape, loom_cross_entropy_ex(ctx, e->x32, labels2(e, LOOM_I32), NULL))
NULL_H(c_ce_ex_null_ctx, loom_cross_entropy_ex(NULL, e->x23, e->i3, NULL))
BUILD(c_bce_reduction, loom_bce_with_logits(ctx, e->x23, e->x23, (loom_reduction)5))
BUILD(c_bce_shape, loom_bce_with_logits(ctx, e->x23, e->x32, LOOM_REDUCE_MEAN))
BUILD(c_bce_i32, loom_bce_with_logits(ctx, e->i3, e->i3, LOOM_REDUCE_SUM))
BUILD(c_bce_null, loom_bce_with_logits(ctx, LOOM_NULL, e->x23, LOOM_REDUCE_MEAN))
NULL_H(c_bce_null_ctx, loom_bce_with_logits(NULL, e->x23, e->x23, LOOM_REDUCE_MEAN))
BUILD(c_mse_ex_reduction, loom_mse_ex(ctx, e->x23, e->x23, (loom_reduction)-1))
BUILD(c_mse_ex_shape, loom_mse_ex(ctx, e->x23, e->x32, LOOM_REDUCE_NONE))
NULL_H(c_mse_ex_null_ctx, loom_mse_ex(NULL, e->x23, e->x23, LOOM_REDUCE_MEAN))

/* ------------------------------------------------------------------ */
/* Cases: modules                                                     */
/* ------------------------------------------------------------------ */

CODE(c_linear_init_null_m, loom_linear_init(ctx, NULL, "lin", 3, 2, true, LOOM_F32))
static int c_linear_init_size(bi_env *e)
{
    loom_linear m;
    return (int)loom_linear_init(e->ctx, &m, "lin", 0, 2, true, LOOM_F32);
}
static int c_linear_init_out(bi_env *e)
{
    loom_linear m;
    return (int)loom_linear_init(e->ctx, &m, "lin", 3, -1, false, LOOM_F32);
}
static int c_linear_init_i32(bi_env *e)
{
    loom_linear m;
    return (int)loom_linear_init(e->ctx, &m, "lin", 3, 2, true, LOOM_I32);
}
static int c_linear_init_dtype(bi_env *e)
{
    loom_linear m;
    return (int)loom_linear_init(e->ctx, &m, "lin", 3, 2, true, (loom_dtype)6);
}
static int c_linear_init_taken(bi_env *e)
{
    loom_linear m;
    loom_param(e->ctx, "lin.bias", LOOM_F32, LOOM_SHAPE(2));
    int c = (int)loom_linear_init(e->ctx, &m, "lin", 3, 2, true, LOOM_F32);
    return c;
}
static int c_linear_init_null_ctx(bi_env *e)
{
    loom_linear m;
    int c = (int)loom_linear_init(NULL, &m, "lin", 3, 2, true, LOOM_F32);
    e->msg = loom_errmsg(NULL);
    return c;
}
BUILD(c_linear_fwd_null_m, loom_linear_forward(ctx, NULL, e->x23))
static int c_linear_fwd_width(bi_env *e)
{
    loom_linear m;
    if (loom_linear_init(e->ctx, &m, "lin", 3, 2, true, LOOM_F32) != LOOM_OK)
        return wrong(e, "linear_init failed: %s", loom_errmsg(e->ctx));
    return H(e, loom_linear_forward(e->ctx, &m, e->x32));
}
static int c_linear_fwd_zero_m(bi_env *e)
{
    loom_linear m = { LOOM_NULL, LOOM_NULL };
    return H(e, loom_linear_forward(e->ctx, &m, e->x23));
}
static int c_linear_fwd_foreign(bi_env *e)
{
    loom_linear m;
    if (loom_linear_init(e->other, &m, "lin", 3, 2, true, LOOM_F32) != LOOM_OK)
        return wrong(e, "linear_init failed: %s", loom_errmsg(e->other));
    return H(e, loom_linear_forward(e->ctx, &m, e->x23));
}
NULL_H(c_linear_fwd_null_ctx, loom_linear_forward(NULL, &(loom_linear){ e->w, LOOM_NULL }, e->x32))
CODE(c_emb_init_null_m, loom_embedding_init(ctx, NULL, "emb", 4, 2, LOOM_F32))
static int c_emb_init_num(bi_env *e)
{
    loom_embedding m;
    return (int)loom_embedding_init(e->ctx, &m, "emb", 0, 2, LOOM_F32);
}
static int c_emb_init_i32(bi_env *e)
{
    loom_embedding m;
    return (int)loom_embedding_init(e->ctx, &m, "emb", 4, 2, LOOM_I32);
}
static int c_emb_init_null_ctx(bi_env *e)
{
    loom_embedding m;
    int c = (int)loom_embedding_init(NULL, &m, "emb", 4, 2, LOOM_F32);
    e->msg = loom_errmsg(NULL);
    return c;
}
static int emb(bi_env *e, loom_embedding *m)
{
    return loom_embedding_init(e->ctx, m, "emb", 4, 2, LOOM_F32) == LOOM_OK
               ? 0
               : wrong(e, "embedding_init failed: %s", loom_errmsg(e->ctx));
}
static int c_emb_fwd_float_ids(bi_env *e)
{
    loom_embedding m;
    int w = emb(e, &m);
    return w ? w : H(e, loom_embedding_forward(e->ctx, &m, e->v3));
}
BUILD(c_emb_fwd_null_m, loom_embedding_forward(ctx, NULL, e->i3))
static int c_emb_fwd_run(bi_env *e)
{
    loom_embedding m;
    int w = emb(e, &m);
    if (w)
        return w;
    loom_t ids = loom_tensor(e->ctx, LOOM_I32, LOOM_SHAPE(3), (int32_t[]){ 1, 9, 0 });
    loom_t y = loom_embedding_forward(e->ctx, &m, ids);
    if (loom_failed(e->ctx))
        return wrong(e, "building failed: %s", loom_errmsg(e->ctx));
    return (int)loom_eval(e->ctx, 1, &y);
}
NULL_H(c_emb_fwd_null_ctx, loom_embedding_forward(NULL, &(loom_embedding){ e->w }, e->i3))
CODE(c_ln_init_null_m, loom_layernorm_init(ctx, NULL, "ln", 3, 1e-5, LOOM_F32))
static int c_ln_init_dim(bi_env *e)
{
    loom_layernorm m;
    return (int)loom_layernorm_init(e->ctx, &m, "ln", 0, 1e-5, LOOM_F32);
}
static int c_ln_init_eps(bi_env *e)
{
    loom_layernorm m;
    return (int)loom_layernorm_init(e->ctx, &m, "ln", 3, -1, LOOM_F32);
}
static int c_ln_init_i32(bi_env *e)
{
    loom_layernorm m;
    return (int)loom_layernorm_init(e->ctx, &m, "ln", 3, 1e-5, LOOM_I32);
}
static int c_ln_init_null_ctx(bi_env *e)
{
    loom_layernorm m;
    int c = (int)loom_layernorm_init(NULL, &m, "ln", 3, 1e-5, LOOM_F32);
    e->msg = loom_errmsg(NULL);
    return c;
}
static int c_ln_fwd_width(bi_env *e)
{
    loom_layernorm m;
    if (loom_layernorm_init(e->ctx, &m, "ln", 4, 1e-5, LOOM_F32) != LOOM_OK)
        return wrong(e, "layernorm_init failed: %s", loom_errmsg(e->ctx));
    return H(e, loom_layernorm_forward(e->ctx, &m, e->x23));
}
BUILD(c_ln_fwd_null_m, loom_layernorm_forward(ctx, NULL, e->x23))
NULL_H(c_ln_fwd_null_ctx, loom_layernorm_forward(NULL, &(loom_layernorm){ e->b, e->b, 1e-5 }, e->x32))
BUILD(c_layer_norm_null, loom_layer_norm(ctx, LOOM_NULL, LOOM_NULL, LOOM_NULL, 1e-5))
BUILD(c_layer_norm_eps, loom_layer_norm(ctx, e->x23, LOOM_NULL, LOOM_NULL, -1))
BUILD(c_layer_norm_weight, loom_layer_norm(ctx, e->x23, e->b, LOOM_NULL, 1e-5))
BUILD(c_layer_norm_i32, loom_layer_norm(ctx, e->i3, LOOM_NULL, LOOM_NULL, 1e-5))
NULL_H(c_layer_norm_null_ctx, loom_layer_norm(NULL, e->x23, LOOM_NULL, LOOM_NULL, 1e-5))
BUILD(c_dropout_p, loom_dropout(ctx, e->x23, 1.5, true))
BUILD(c_dropout_p_neg, loom_dropout(ctx, e->x23, -0.1, false))
BUILD(c_dropout_null_eval, loom_dropout(ctx, LOOM_NULL, 0.5, false))
BUILD(c_dropout_stale_eval, loom_dropout(ctx, e->stale, 0.0, true))
BUILD(c_dropout_i32, loom_dropout(ctx, e->i3, 0.5, true))
NULL_H(c_dropout_null_ctx, loom_dropout(NULL, e->x23, 0.5, true))
static int c_weight_null(bi_env *e)
{
    /* null passes through without an error: a module's absent bias */
    return loom_is_null(loom_weight(e->ctx, LOOM_NULL)) ? (int)loom_status(e->ctx) : BI_NOT_NULL;
}
static int c_weight_node(bi_env *e)
{
    /* any tensor passes through: the builder using it checks it */
    loom_t h = loom_weight(e->ctx, e->stale);
    return h.id == e->stale.id && h.tag == e->stale.tag ? (int)loom_status(e->ctx)
                                                          : wrong(e, "the handle did not pass through");
}
NULL_H(c_weight_null_ctx, loom_weight(NULL, LOOM_NULL))

/* ------------------------------------------------------------------ */
/* Cases: recurrent cells and layers                                  */
/* ------------------------------------------------------------------ */

/* Weights of an RNN cell of input 3, hidden 2 (gates g: 1, 3 or 4). */
typedef struct cellw {
    loom_t w_ih, w_hh, b;
} cellw;
static cellw cell_weights(bi_env *e, int g)
{
    cellw c = {
        loom_param(e->ctx, "cell.w_ih", LOOM_F32, LOOM_SHAPE(g * 2, 3)),
        loom_param(e->ctx, "cell.w_hh", LOOM_F32, LOOM_SHAPE(g * 2, 2)),
        loom_param(e->ctx, "cell.b", LOOM_F32, LOOM_SHAPE(g * 2)),
    };
    return c;
}
/* h [2, 2] */
static loom_t h22(bi_env *e) { return loom_full(e->ctx, LOOM_F32, LOOM_SHAPE(2, 2), 0); }
static int c_rnn_cell_width(bi_env *e)
{
    cellw w = cell_weights(e, 1);
    return H(e, loom_rnn_cell(e->ctx, e->x32, h22(e), w.w_ih, w.w_hh, w.b, w.b, false));
}
static int c_rnn_cell_null_w(bi_env *e)
{
    cellw w = cell_weights(e, 1);
    return H(e, loom_rnn_cell(e->ctx, e->x23, h22(e), LOOM_NULL, w.w_hh, w.b, w.b, true));
}
static int c_rnn_cell_h(bi_env *e)
{
    cellw w = cell_weights(e, 1);
    return H(e, loom_rnn_cell(e->ctx, e->x23, e->x23, w.w_ih, w.w_hh, LOOM_NULL, LOOM_NULL, false));
}
NULL_H(c_rnn_cell_null_ctx, loom_rnn_cell(NULL, e->x23, e->x23, e->w, e->w, LOOM_NULL, LOOM_NULL, false))
static int lstm_call(bi_env *e, loom_t x, loom_t h, loom_t c, const loom_lstm_weights *w, bool outs)
{
    loom_t ho, co;
    return (int)loom_lstm_cell(e->ctx, x, h, c, w, outs ? &ho : NULL, outs ? &co : NULL);
}
static int c_lstm_null_w(bi_env *e) { return lstm_call(e, e->x23, h22(e), h22(e), NULL, true); }
static int c_lstm_null_out(bi_env *e)
{
    cellw w = cell_weights(e, 4);
    return lstm_call(e, e->x23, h22(e), h22(e), &(loom_lstm_weights){ .w_ih = w.w_ih, .w_hh = w.w_hh }, false);
}
static int c_lstm_w_hh(bi_env *e)
{
    cellw w = cell_weights(e, 4);
    loom_t w_hh = loom_param(e->ctx, "cell.w_hh3", LOOM_F32, LOOM_SHAPE(6, 2));
    return lstm_call(e, e->x23, h22(e), h22(e), &(loom_lstm_weights){ .w_ih = w.w_ih, .w_hh = w_hh }, true);
}
static int c_lstm_null_w_hh(bi_env *e)
{
    cellw w = cell_weights(e, 4);
    return lstm_call(e, e->x23, h22(e), h22(e), &(loom_lstm_weights){ .w_ih = w.w_ih }, true);
}
static int c_lstm_width(bi_env *e)
{
    cellw w = cell_weights(e, 4);
    return lstm_call(e, e->x32, h22(e), h22(e), &(loom_lstm_weights){ .w_ih = w.w_ih, .w_hh = w.w_hh }, true);
}
static int c_lstm_null_c(bi_env *e)
{
    cellw w = cell_weights(e, 4);
    return lstm_call(e, e->x23, h22(e), LOOM_NULL, &(loom_lstm_weights){ .w_ih = w.w_ih, .w_hh = w.w_hh }, true);
}
static int c_lstm_null_ctx(bi_env *e)
{
    loom_t ho, co;
    int c = (int)loom_lstm_cell(NULL, e->x23, e->x23, e->x23, &(loom_lstm_weights){ .w_ih = e->w }, &ho, &co);
    e->msg = loom_errmsg(NULL);
    return c;
}
static int c_gru_scalar_h(bi_env *e)
{
    cellw w = cell_weights(e, 3);
    return H(e, loom_gru_cell(e->ctx, e->x23, e->s, w.w_ih, w.w_hh, w.b, w.b));
}
static int c_gru_null_h(bi_env *e)
{
    cellw w = cell_weights(e, 3);
    return H(e, loom_gru_cell(e->ctx, e->x23, LOOM_NULL, w.w_ih, w.w_hh, w.b, w.b));
}
static int c_gru_width(bi_env *e)
{
    cellw w = cell_weights(e, 3);
    return H(e, loom_gru_cell(e->ctx, e->x32, h22(e), w.w_ih, w.w_hh, w.b, w.b));
}
static int c_gru_w_hh(bi_env *e)
{
    cellw w = cell_weights(e, 3);
    loom_t w_hh = loom_param(e->ctx, "cell.w_hh4", LOOM_F32, LOOM_SHAPE(8, 2));
    return H(e, loom_gru_cell(e->ctx, e->x23, h22(e), w.w_ih, w_hh, LOOM_NULL, LOOM_NULL));
}
static int c_gru_w_ih(bi_env *e)
{
    cellw w = cell_weights(e, 3);
    loom_t w_ih = loom_param(e->ctx, "cell.w_ih4", LOOM_F32, LOOM_SHAPE(8, 3));
    return H(e, loom_gru_cell(e->ctx, e->x23, h22(e), w_ih, w.w_hh, w.b, w.b));
}
NULL_H(c_gru_null_ctx, loom_gru_cell(NULL, e->x23, e->x23, e->w, e->w, LOOM_NULL, LOOM_NULL))

static const loom_rnn_config lstm_cfg = { .mode = LOOM_LSTM, .input_size = 3, .hidden_size = 4 };
static int rnn_new_with(bi_env *e, loom_rnn_config c)
{
    e->rnn[0] = loom_rnn_new(e->ctx, "rnn", &c);
    return e->rnn[0] ? BI_NOT_NULL : (int)loom_status(e->ctx);
}
static int c_rnn_new_null_cfg(bi_env *e)
{
    e->rnn[0] = loom_rnn_new(e->ctx, "rnn", NULL);
    return e->rnn[0] ? BI_NOT_NULL : (int)loom_status(e->ctx);
}
static int c_rnn_new_mode(bi_env *e) { return rnn_new_with(e, (loom_rnn_config){ .mode = (loom_rnn_mode)9, .input_size = 3, .hidden_size = 4 }); }
static int c_rnn_new_hidden(bi_env *e) { return rnn_new_with(e, (loom_rnn_config){ .mode = LOOM_GRU, .input_size = 3 }); }
static int c_rnn_new_input(bi_env *e) { return rnn_new_with(e, (loom_rnn_config){ .input_size = -3, .hidden_size = 4 }); }
static int c_rnn_new_layers(bi_env *e)
{
    loom_rnn_config c = lstm_cfg;
    c.num_layers = -1;
    return rnn_new_with(e, c);
}
static int c_rnn_new_layers_big(bi_env *e)
{
    loom_rnn_config c = lstm_cfg;
    c.num_layers = 65;
    return rnn_new_with(e, c);
}
static int c_rnn_new_dropout(bi_env *e)
{
    loom_rnn_config c = lstm_cfg;
    c.dropout = 1.0;
    return rnn_new_with(e, c);
}
static int c_rnn_new_dropout_nan(bi_env *e)
{
    loom_rnn_config c = lstm_cfg;
    c.dropout = NAN;
    return rnn_new_with(e, c);
}
static int c_rnn_new_proj_gru(bi_env *e)
{
    return rnn_new_with(e, (loom_rnn_config){ .mode = LOOM_GRU, .input_size = 3, .hidden_size = 4, .proj_size = 2 });
}
static int c_rnn_new_proj_big(bi_env *e)
{
    loom_rnn_config c = lstm_cfg;
    c.proj_size = 4;
    return rnn_new_with(e, c);
}
static int c_rnn_new_peep_gru(bi_env *e)
{
    return rnn_new_with(e, (loom_rnn_config){ .mode = LOOM_GRU, .input_size = 3, .hidden_size = 4, .peepholes = true });
}
static int c_rnn_new_i32(bi_env *e)
{
    loom_rnn_config c = lstm_cfg;
    c.dtype = LOOM_I32;
    return rnn_new_with(e, c);
}
static int c_rnn_new_dtype(bi_env *e)
{
    loom_rnn_config c = lstm_cfg;
    c.dtype = (loom_dtype)8;
    return rnn_new_with(e, c);
}
static int c_rnn_new_taken(bi_env *e)
{
    /* a name taken after others: nothing is made, not even those */
    loom_param(e->ctx, "rnn.bias_hh_l0", LOOM_F32, LOOM_SHAPE(16));
    size_t before = loom_param_count(e->ctx);
    int c = rnn_new_with(e, lstm_cfg);
    if (loom_param_count(e->ctx) != before)
        return wrong(e, "a failed rnn_new left %zu new parameters (%s)", loom_param_count(e->ctx) - before,
                     loom_errmsg(e->ctx));
    return c;
}
static int c_rnn_new_null_ctx(bi_env *e)
{
    loom_rnn *m = loom_rnn_new(NULL, "rnn", &lstm_cfg);
    e->msg = loom_errmsg(NULL);
    loom_rnn_free(m);
    return m ? BI_NOT_NULL : (int)loom_status(NULL);
}
NULL_Q(c_rnn_free_null, (loom_rnn_free(NULL), true))
NULL_Q(c_rnn_get_config_null, loom_rnn_get_config(NULL) == NULL)
/* An LSTM stack on ctx (or other) and a call of loom_rnn_forward. */
static loom_rnn *lstm(bi_env *e, loom_ctx *ctx, int k)
{
    return e->rnn[k] = loom_rnn_new(ctx, "rnn", &lstm_cfg);
}
/* input [T=2, B=2, I=3] */
static loom_t seq(bi_env *e, loom_dtype dt, int64_t t, int64_t i)
{
    return loom_full(e->ctx, dt, LOOM_SHAPE(t, 2, i), 0.5);
}
static int fwd(bi_env *e, const loom_rnn *m, loom_t x, const loom_rnn_state *init, loom_t lengths)
{
    loom_t out;
    loom_rnn_state fin;
    if (!m && loom_failed(e->ctx))
        return wrong(e, "loom_rnn_new failed: %s", loom_errmsg(e->ctx));
    return (int)loom_rnn_forward(e->ctx, m, x, init, lengths, false, &out, &fin);
}
static int c_rnn_fwd_null_m(bi_env *e) { return fwd(e, NULL, seq(e, LOOM_F32, 2, 3), NULL, LOOM_NULL); }
static int c_rnn_fwd_foreign_m(bi_env *e)
{
    loom_rnn *m = lstm(e, e->other, 1);
    if (!m)
        return wrong(e, "loom_rnn_new failed: %s", loom_errmsg(e->other));
    return fwd(e, m, seq(e, LOOM_F32, 2, 3), NULL, LOOM_NULL);
}
static int c_rnn_fwd_null_out(bi_env *e)
{
    loom_rnn *m = lstm(e, e->ctx, 0);
    if (!m)
        return wrong(e, "loom_rnn_new failed: %s", loom_errmsg(e->ctx));
    return (int)loom_rnn_forward(e->ctx, m, seq(e, LOOM_F32, 2, 3), NULL, LOOM_NULL, false, NULL, NULL);
}
static int c_rnn_fwd_rank(bi_env *e) { return fwd(e, lstm(e, e->ctx, 0), e->x23, NULL, LOOM_NULL); }
static int c_rnn_fwd_width(bi_env *e) { return fwd(e, lstm(e, e->ctx, 0), seq(e, LOOM_F32, 2, 5), NULL, LOOM_NULL); }
static int c_rnn_fwd_dtype(bi_env *e) { return fwd(e, lstm(e, e->ctx, 0), seq(e, LOOM_F64, 2, 3), NULL, LOOM_NULL); }
static int c_rnn_fwd_no_steps(bi_env *e) { return fwd(e, lstm(e, e->ctx, 0), seq(e, LOOM_F32, 0, 3), NULL, LOOM_NULL); }
static int c_rnn_fwd_null_input(bi_env *e) { return fwd(e, lstm(e, e->ctx, 0), LOOM_NULL, NULL, LOOM_NULL); }
static int c_rnn_fwd_stale_input(bi_env *e) { return fwd(e, lstm(e, e->ctx, 0), e->stale, NULL, LOOM_NULL); }
static int c_rnn_fwd_lengths_dtype(bi_env *e)
{
    return fwd(e, lstm(e, e->ctx, 0), seq(e, LOOM_F32, 2, 3), NULL, loom_full(e->ctx, LOOM_F32, LOOM_SHAPE(2), 1));
}
static int c_rnn_fwd_lengths_shape(bi_env *e) { return fwd(e, lstm(e, e->ctx, 0), seq(e, LOOM_F32, 2, 3), NULL, e->i3); }
static int c_rnn_fwd_lengths_stale(bi_env *e) { return fwd(e, lstm(e, e->ctx, 0), seq(e, LOOM_F32, 2, 3), NULL, e->stale); }
static int c_rnn_fwd_init_h(bi_env *e)
{
    loom_rnn_state init = { .h = loom_full(e->ctx, LOOM_F32, LOOM_SHAPE(1, 2, 3), 0) };
    return fwd(e, lstm(e, e->ctx, 0), seq(e, LOOM_F32, 2, 3), &init, LOOM_NULL);
}
static int c_rnn_fwd_init_c(bi_env *e)
{
    loom_rnn_state init = { .h = loom_full(e->ctx, LOOM_F32, LOOM_SHAPE(1, 2, 4), 0),
                            .c = loom_full(e->ctx, LOOM_F32, LOOM_SHAPE(2, 2, 4), 0) };
    return fwd(e, lstm(e, e->ctx, 0), seq(e, LOOM_F32, 2, 3), &init, LOOM_NULL);
}
static int c_rnn_fwd_init_dtype(bi_env *e)
{
    loom_rnn_state init = { .h = loom_full(e->ctx, LOOM_F64, LOOM_SHAPE(1, 2, 4), 0) };
    return fwd(e, lstm(e, e->ctx, 0), seq(e, LOOM_F32, 2, 3), &init, LOOM_NULL);
}
static int c_rnn_fwd_init_stale(bi_env *e)
{
    loom_rnn_state init = { .h = e->stale };
    return fwd(e, lstm(e, e->ctx, 0), seq(e, LOOM_F32, 2, 3), &init, LOOM_NULL);
}
static int c_rnn_fwd_null_ctx(bi_env *e)
{
    loom_t out;
    int c = (int)loom_rnn_forward(NULL, NULL, e->x23, NULL, LOOM_NULL, false, &out, NULL);
    e->msg = loom_errmsg(NULL);
    return c;
}

/* ------------------------------------------------------------------ */
/* Cases: fine-tuning                                                 */
/* ------------------------------------------------------------------ */

static int c_set_trainable_prefix_null(bi_env *e)
{
    long n = loom_params_set_trainable(e->ctx, NULL, false);
    return n == -1 ? (int)loom_status(e->ctx) : wrong(e, "%ld matched a NULL prefix", n);
}
static int c_set_trainable_prefix_null_ctx(bi_env *e)
{
    long n = loom_params_set_trainable(NULL, "", false);
    e->msg = loom_errmsg(NULL);
    return n == -1 ? (int)loom_status(NULL) : wrong(e, "%ld matched without a context", n);
}
CODE(c_lora_node, loom_lora_add(ctx, e->x23, 1, 1))
CODE(c_lora_vector, loom_lora_add(ctx, e->b, 1, 1))
CODE(c_lora_buffer, loom_lora_add(ctx, e->buf, 1, 1))
CODE(c_lora_i32, loom_lora_add(ctx, e->wi, 1, 1))
CODE(c_lora_rank0, loom_lora_add(ctx, e->w, 0, 1))
CODE(c_lora_rank_big, loom_lora_add(ctx, e->w, 3, 1))
CODE(c_lora_alpha, loom_lora_add(ctx, e->w, 1, 0))
CODE(c_lora_alpha_nan, loom_lora_add(ctx, e->w, 1, NAN))
CODE(c_lora_foreign, loom_lora_add(ctx, e->foreign_p, 1, 1))
static int c_lora_twice(bi_env *e)
{
    if (loom_lora_add(e->ctx, e->w, 1, 1) != LOOM_OK)
        return wrong(e, "the first lora_add failed: %s", loom_errmsg(e->ctx));
    return (int)loom_lora_add(e->ctx, e->w, 2, 1);
}
static int c_lora_name_taken(bi_env *e)
{
    /* the second adapter name is taken: nothing is made, not even A */
    loom_param(e->ctx, "w.lora_B", LOOM_F32, LOOM_SHAPE(3, 1));
    size_t before = loom_param_count(e->ctx);
    int c = (int)loom_lora_add(e->ctx, e->w, 1, 1);
    if (loom_param_count(e->ctx) != before)
        return wrong(e, "a failed lora_add left %zu new parameters (%s)", loom_param_count(e->ctx) - before,
                     loom_errmsg(e->ctx));
    return c;
}
NULL_C(c_lora_null_ctx, loom_lora_add(NULL, e->w, 1, 1))
CODE(c_merge_none, loom_lora_merge(ctx, e->w))
CODE(c_merge_node, loom_lora_merge(ctx, e->x23))
NULL_C(c_merge_null_ctx, loom_lora_merge(NULL, e->w))
QUERY(c_attached_node, !loom_lora_attached(ctx, e->x23))
NULL_Q(c_attached_null_ctx, !loom_lora_attached(NULL, e->w))

/* ------------------------------------------------------------------ */
/* Cases: optimizers                                                  */
/* ------------------------------------------------------------------ */

static int opt_with(bi_env *e, loom_optim_config c)
{
    e->opt[0] = loom_optimizer_new(e->ctx, &c);
    return e->opt[0] ? BI_NOT_NULL : (int)loom_status(e->ctx);
}
static int c_opt_null_cfg(bi_env *e)
{
    e->opt[0] = loom_optimizer_new(e->ctx, NULL);
    return e->opt[0] ? BI_NOT_NULL : (int)loom_status(e->ctx);
}
static int c_opt_kind(bi_env *e) { return opt_with(e, (loom_optim_config){ .kind = (loom_opt_kind)9, .lr = 0.1 }); }
static int c_opt_lr_neg(bi_env *e) { return opt_with(e, (loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = -0.1 }); }
static int c_opt_lr_nan(bi_env *e) { return opt_with(e, (loom_optim_config){ .lr = NAN }); }
static int c_opt_lr_inf(bi_env *e) { return opt_with(e, (loom_optim_config){ .kind = LOOM_OPT_RMSPROP, .lr = INFINITY }); }
static int c_opt_sgd_lr0(bi_env *e) { return opt_with(e, (loom_optim_config){ .kind = LOOM_OPT_SGD }); }
static int c_opt_momentum(bi_env *e) { return opt_with(e, (loom_optim_config){ .lr = 0.1, .momentum = -0.5 }); }
static int c_opt_nesterov(bi_env *e) { return opt_with(e, (loom_optim_config){ .lr = 0.1, .nesterov = true }); }
static int c_opt_beta1(bi_env *e) { return opt_with(e, (loom_optim_config){ .kind = LOOM_OPT_ADAM, .beta1 = 1.0 }); }
static int c_opt_beta2(bi_env *e) { return opt_with(e, (loom_optim_config){ .kind = LOOM_OPT_ADAMW, .beta2 = -0.5 }); }
static int c_opt_alpha(bi_env *e) { return opt_with(e, (loom_optim_config){ .kind = LOOM_OPT_RMSPROP, .alpha = 2 }); }
static int c_opt_eps(bi_env *e) { return opt_with(e, (loom_optim_config){ .kind = LOOM_OPT_ADAM, .eps = -1e-8 }); }
static int c_opt_wd(bi_env *e) { return opt_with(e, (loom_optim_config){ .kind = LOOM_OPT_ADAM, .weight_decay = -1 }); }
static int c_opt_clip(bi_env *e) { return opt_with(e, (loom_optim_config){ .lr = 0.1, .clip_norm = -1 }); }
static int c_opt_warmup(bi_env *e) { return opt_with(e, (loom_optim_config){ .lr = 0.1, .warmup_steps = -3 }); }
static int c_opt_schedule(bi_env *e) { return opt_with(e, (loom_optim_config){ .lr = 0.1, .schedule = (loom_schedule)9 }); }
static int c_opt_step_size(bi_env *e)
{
    return opt_with(e, (loom_optim_config){ .lr = 0.1, .schedule = LOOM_SCHEDULE_STEP });
}
static int c_opt_gamma(bi_env *e)
{
    return opt_with(e, (loom_optim_config){ .lr = 0.1, .schedule = LOOM_SCHEDULE_STEP, .step_size = 2, .gamma = -1 });
}
static int c_opt_total(bi_env *e)
{
    return opt_with(e, (loom_optim_config){ .lr = 0.1, .schedule = LOOM_SCHEDULE_COSINE, .total_steps = -5 });
}
static int c_opt_min_lr(bi_env *e)
{
    return opt_with(e, (loom_optim_config){ .lr = 0.1, .schedule = LOOM_SCHEDULE_COSINE, .total_steps = 5,
                                            .min_lr = -1 });
}
static int c_opt_new_null_ctx(bi_env *e)
{
    loom_optimizer *o = loom_optimizer_new(NULL, &(loom_optim_config){ .lr = 0.1 });
    e->msg = loom_errmsg(NULL);
    loom_optimizer_free(o);
    return o ? BI_NOT_NULL : (int)loom_status(NULL);
}
NULL_Q(c_opt_free_null, (loom_optimizer_free(NULL), true))
/* A valid SGD optimizer on ctx and a scalar loss of w. */
static loom_optimizer *sgd(bi_env *e, loom_ctx *ctx, int k)
{
    return e->opt[k] = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_SGD, .lr = 0.1 });
}
static loom_t loss_of_w(bi_env *e) { return loom_sum_all(e->ctx, loom_tanh(e->ctx, e->w)); }
static int need(bi_env *e, const void *p, loom_ctx *ctx)
{
    return p ? 0 : wrong(e, "setting up failed: %s", loom_errmsg(ctx));
}
CODE(c_attach_null_o, loom_optimizer_attach(ctx, NULL, loss_of_w(e)))
static int c_attach_foreign(bi_env *e)
{
    loom_optimizer *o = sgd(e, e->other, 1);
    int w = need(e, o, e->other);
    return w ? w : (int)loom_optimizer_attach(e->ctx, o, loss_of_w(e));
}
static int c_attach_null_loss(bi_env *e)
{
    loom_optimizer *o = sgd(e, e->ctx, 0);
    int w = need(e, o, e->ctx);
    return w ? w : (int)loom_optimizer_attach(e->ctx, o, LOOM_NULL);
}
static int c_attach_stale_loss(bi_env *e)
{
    loom_optimizer *o = sgd(e, e->ctx, 0);
    int w = need(e, o, e->ctx);
    return w ? w : (int)loom_optimizer_attach(e->ctx, o, e->stale);
}
static int c_attach_vector(bi_env *e)
{
    loom_optimizer *o = sgd(e, e->ctx, 0);
    int w = need(e, o, e->ctx);
    return w ? w : (int)loom_optimizer_attach(e->ctx, o, e->x23);
}
static int c_attach_i32(bi_env *e)
{
    loom_optimizer *o = sgd(e, e->ctx, 0);
    int w = need(e, o, e->ctx);
    return w ? w : (int)loom_optimizer_attach(e->ctx, o, loom_sum_all(e->ctx, e->i3));
}
static int c_attach_twice(bi_env *e)
{
    loom_optimizer *o = sgd(e, e->ctx, 0);
    int w = need(e, o, e->ctx);
    if (w)
        return w;
    if (loom_optimizer_attach(e->ctx, o, loss_of_w(e)) != LOOM_OK)
        return wrong(e, "the first attach failed: %s", loom_errmsg(e->ctx));
    return (int)loom_optimizer_attach(e->ctx, o, loss_of_w(e));
}
NULL_C(c_attach_null_ctx, loom_optimizer_attach(NULL, NULL, e->x23))
CODE(c_step_null_o, loom_optimizer_step(ctx, NULL, 0, NULL))
static int c_step_unattached(bi_env *e)
{
    loom_optimizer *o = sgd(e, e->ctx, 0);
    int w = need(e, o, e->ctx);
    return w ? w : (int)loom_optimizer_step(e->ctx, o, 0, NULL);
}
static int c_step_after_reset(bi_env *e)
{
    loom_optimizer *o = sgd(e, e->ctx, 0);
    int w = need(e, o, e->ctx);
    if (w)
        return w;
    if (loom_optimizer_attach(e->ctx, o, loss_of_w(e)) != LOOM_OK)
        return wrong(e, "attach failed: %s", loom_errmsg(e->ctx));
    loom_reset(e->ctx);
    return (int)loom_optimizer_step(e->ctx, o, 0, NULL);
}
static int c_step_foreign(bi_env *e)
{
    loom_optimizer *o = sgd(e, e->other, 1);
    int w = need(e, o, e->other);
    return w ? w : (int)loom_optimizer_step(e->ctx, o, 0, NULL);
}
static int c_step_outputs(bi_env *e)
{
    loom_optimizer *o = sgd(e, e->ctx, 0);
    int w = need(e, o, e->ctx);
    if (w)
        return w;
    if (loom_optimizer_attach(e->ctx, o, loss_of_w(e)) != LOOM_OK)
        return wrong(e, "attach failed: %s", loom_errmsg(e->ctx));
    int c = (int)loom_optimizer_step(e->ctx, o, -1, NULL);
    return loom_optimizer_steps(o) != 0 ? wrong(e, "a failed step counted") : c;
}
NULL_C(c_step_null_ctx, loom_optimizer_step(NULL, NULL, 0, NULL))
/* loom_optimizer_attach_grads(ctx, o, n, params, grads) with one thing wrong. */
static int grads_call(bi_env *e, int n, const loom_t *ps, const loom_t *gs)
{
    loom_optimizer *o = sgd(e, e->ctx, 0);
    int w = need(e, o, e->ctx);
    return w ? w : (int)loom_optimizer_attach_grads(e->ctx, o, n, ps, gs);
}
static int c_ag_n0(bi_env *e) { return grads_call(e, 0, &e->w, &e->x32); }
static int c_ag_no_params(bi_env *e) { return grads_call(e, 1, NULL, &e->x32); }
static int c_ag_no_grads(bi_env *e) { return grads_call(e, 1, &e->w, NULL); }
static int c_ag_node(bi_env *e) { return grads_call(e, 1, &e->x32, &e->x32); }
static int c_ag_foreign_p(bi_env *e) { return grads_call(e, 1, &e->foreign_p, &e->x32); }
static int c_ag_frozen(bi_env *e)
{
    loom_param_set_trainable(e->ctx, e->b, false);
    return grads_call(e, 1, &e->b, &e->v3);
}
static int c_ag_buffer(bi_env *e) { return grads_call(e, 1, &e->buf, &e->v3); }
static int c_ag_twice(bi_env *e) { return grads_call(e, 2, (loom_t[]){ e->w, e->w }, (loom_t[]){ e->x32, e->x32 }); }
static int c_ag_null_grad(bi_env *e) { return grads_call(e, 1, &e->w, (loom_t[]){ LOOM_NULL }); }
static int c_ag_stale_grad(bi_env *e) { return grads_call(e, 1, &e->w, &e->stale); }
static int c_ag_shape(bi_env *e) { return grads_call(e, 1, &e->w, &e->x23); }
static int c_ag_dtype(bi_env *e) { return grads_call(e, 1, &e->w, (loom_t[]){ loom_cast(e->ctx, e->x32, LOOM_F64) }); }
static int c_ag_again(bi_env *e)
{
    int w = grads_call(e, 1, &e->w, &e->x32);
    if (w != LOOM_OK)
        return w == BI_WRONG ? w : wrong(e, "the first attach_grads failed: %s", loom_errmsg(e->ctx));
    return (int)loom_optimizer_attach_grads(e->ctx, e->opt[0], 1, &e->w, &e->x32);
}
static int c_ag_foreign_o(bi_env *e)
{
    loom_optimizer *o = sgd(e, e->other, 1);
    int w = need(e, o, e->other);
    return w ? w : (int)loom_optimizer_attach_grads(e->ctx, o, 1, &e->w, &e->x32);
}
CODE(c_ag_null_o, loom_optimizer_attach_grads(ctx, NULL, 1, &e->w, &e->x32))
NULL_C(c_ag_null_ctx, loom_optimizer_attach_grads(NULL, NULL, 1, &e->w, &e->x32))
NULL_Q(c_grad_norm_null, loom_is_null(loom_optimizer_grad_norm(NULL)))
static int c_grad_norm_unattached(bi_env *e)
{
    loom_optimizer *o = sgd(e, e->ctx, 0);
    int w = need(e, o, e->ctx);
    return w ? w : H(e, loom_optimizer_grad_norm(o));
}
NULL_Q(c_steps_null, loom_optimizer_steps(NULL) == 0)
NULL_C(c_set_steps_null, loom_optimizer_set_steps(NULL, 3))
static int c_set_steps_neg(bi_env *e)
{
    loom_optimizer *o = sgd(e, e->ctx, 0);
    int w = need(e, o, e->ctx);
    return w ? w : (int)loom_optimizer_set_steps(o, -1);
}
NULL_Q(c_lr_null, isnan(loom_optimizer_lr(NULL)))

/* ------------------------------------------------------------------ */
/* Cases: checkpoints                                                 */
/* ------------------------------------------------------------------ */

typedef struct pspec {
    const char *name;
    loom_dtype dt;
    loom_shape s;
    bool buffer;
} pspec;

/* Saves, at path, a checkpoint of a model with parameters ps[0..n). */
static bool save_model(bi_env *e, const char *path, const pspec *ps, size_t n)
{
    loom_ctx *c = loom_ctx_new(&e->opts);
    for (size_t i = 0; c && i < n; i++) {
        loom_t p = ps[i].buffer ? loom_buffer(c, ps[i].name, ps[i].dt, ps[i].s)
                                : loom_param(c, ps[i].name, ps[i].dt, ps[i].s);
        loom_param_init_const(c, p, 0.25);
    }
    bool ok = c && loom_checkpoint_save(c, path, NULL, "{\"model\": \"other\"}") == LOOM_OK;
    if (!ok && c)
        snprintf(e->why, sizeof e->why, "saving %s: %s", path, loom_errmsg(c));
    loom_ctx_free(c);
    return ok;
}

/* ctx's own parameters, with one changed as asked. */
enum { SP_SAME, SP_SHAPE, SP_DTYPE, SP_MISSING, SP_EXTRA, SP_OPTIM };
static int save_variant(bi_env *e, const char *path, int how)
{
    pspec ps[6] = {
        { "w", LOOM_F32, LOOM_SHAPE(3, 2), false },
        { "b", LOOM_F32, LOOM_SHAPE(2), false },
        { "buf", LOOM_F32, LOOM_SHAPE(2), true },
        { "wi", LOOM_I32, LOOM_SHAPE(2, 2), false },
    };
    size_t n = 4;
    if (how == SP_SHAPE)
        ps[0].s = LOOM_SHAPE(2, 3);
    if (how == SP_DTYPE)
        ps[0].dt = LOOM_F64;
    if (how == SP_MISSING)
        ps[1] = ps[--n];
    if (how == SP_EXTRA)
        ps[n++] = (pspec){ "extra", LOOM_F32, LOOM_SHAPE(5), false };
    if (how == SP_OPTIM)
        ps[n++] = (pspec){ "optim.w.exp_avg", LOOM_F32, LOOM_SHAPE(3, 2), true };
    return save_model(e, path, ps, n) ? 0 : BI_WRONG;
}

/* Loads path into ctx and checks that a failed load changed nothing. */
static int load_checked(bi_env *e, const char *path, unsigned flags)
{
    float before[6];
    memcpy(before, loom_param_data(e->ctx, e->w), sizeof before);
    int c = (int)loom_checkpoint_load(e->ctx, path, NULL, flags);
    if (c != LOOM_OK && memcmp(before, loom_param_data(e->ctx, e->w), sizeof before))
        return wrong(e, "a failed load changed \"w\" (%s)", loom_errmsg(e->ctx));
    return c;
}
static int load_variant(bi_env *e, int how, unsigned flags)
{
    const char *path = at(e, "other.safetensors");
    int w = save_variant(e, path, how);
    return w ? w : load_checked(e, path, flags);
}
static int c_load_shape(bi_env *e) { return load_variant(e, SP_SHAPE, 0); }
static int c_load_dtype(bi_env *e) { return load_variant(e, SP_DTYPE, LOOM_LOAD_ALLOW_MISSING); }
static int c_load_missing(bi_env *e) { return load_variant(e, SP_MISSING, LOOM_LOAD_ALLOW_UNEXPECTED); }
static int c_load_extra(bi_env *e) { return load_variant(e, SP_EXTRA, LOOM_LOAD_ALLOW_MISSING); }
static int c_load_optim_state(bi_env *e) { return load_variant(e, SP_OPTIM, 0); }
static int c_load_flags(bi_env *e) { return load_variant(e, SP_SAME, 0x10); }
static int c_load_no_file(bi_env *e) { return load_checked(e, at(e, "absent.safetensors"), 0); }
static int c_load_dir(bi_env *e) { return load_checked(e, e->dir, 0); }
CODE(c_load_null_path, loom_checkpoint_load(ctx, NULL, NULL, 0))
CODE(c_load_empty_path, loom_checkpoint_load(ctx, "", NULL, 0))
NULL_C(c_load_null_ctx, loom_checkpoint_load(NULL, "x.safetensors", NULL, 0))
/* ctx's own checkpoint, damaged by damage(bytes, &len). */
static int load_damaged(bi_env *e, void (*damage)(unsigned char *, size_t *))
{
    const char *path = at(e, "own.safetensors");
    if (loom_checkpoint_save(e->ctx, path, NULL, NULL) != LOOM_OK)
        return wrong(e, "saving failed: %s", loom_errmsg(e->ctx));
    size_t len;
    unsigned char *b = slurp(path, &len);
    if (!b)
        return wrong(e, "cannot read %s back", path);
    damage(b, &len);
    bool ok = spill(path, b, len);
    free(b);
    if (!ok)
        return wrong(e, "cannot write %s", path);
    loom_param_init_const(e->ctx, e->w, 3.0); /* so a load that went through would show */
    return load_checked(e, path, 0);
}
static void cut_tail(unsigned char *b, size_t *len) { (void)b, *len -= 4; }
static void cut_half(unsigned char *b, size_t *len) { (void)b, *len /= 2; }
static void cut_all(unsigned char *b, size_t *len) { (void)b, *len = 3; }
static void flip_data(unsigned char *b, size_t *len) { b[*len - 5] ^= 0x40; }
static void break_json(unsigned char *b, size_t *len) { (void)len, b[8] = 'X'; }
static void huge_header(unsigned char *b, size_t *len) { (void)len, memset(b, 0xff, 8); }
static int c_load_truncated(bi_env *e) { return load_damaged(e, cut_tail); }
static int c_load_half(bi_env *e) { return load_damaged(e, cut_half); }
static int c_load_tiny(bi_env *e) { return load_damaged(e, cut_all); }
static int c_load_corrupt(bi_env *e) { return load_damaged(e, flip_data); }
static int c_load_json(bi_env *e) { return load_damaged(e, break_json); }
static int c_load_header_len(bi_env *e) { return load_damaged(e, huge_header); }
CODE(c_save_null_path, loom_checkpoint_save(ctx, NULL, NULL, NULL))
CODE(c_save_no_dir, loom_checkpoint_save(ctx, at(e, "no/such/dir/ck.safetensors"), NULL, NULL))
CODE(c_save_over_dir, loom_checkpoint_save(ctx, e->dir, NULL, NULL))
CODE(c_save_utf8, loom_checkpoint_save(ctx, at(e, "ck.safetensors"), NULL, "{\"x\": \"\xff\xfe\"}"))
NULL_C(c_save_null_ctx, loom_checkpoint_save(NULL, "x.safetensors", NULL, NULL))
static int c_config_null_buf(bi_env *e)
{
    const char *path = at(e, "other.safetensors");
    int w = save_variant(e, path, SP_SAME);
    return w ? w : (int)loom_checkpoint_config(e->ctx, path, NULL, 0);
}
static int c_config_small(bi_env *e)
{
    const char *path = at(e, "other.safetensors");
    int w = save_variant(e, path, SP_SAME);
    char buf[8];
    return w ? w : (int)loom_checkpoint_config(e->ctx, path, buf, sizeof buf);
}
static int c_config_no_file(bi_env *e)
{
    char buf[64];
    return (int)loom_checkpoint_config(e->ctx, at(e, "absent.safetensors"), buf, sizeof buf);
}
static int c_config_null_ctx(bi_env *e)
{
    char buf[64];
    int c = (int)loom_checkpoint_config(NULL, "x.safetensors", buf, sizeof buf);
    e->msg = loom_errmsg(NULL);
    return c;
}

/* ------------------------------------------------------------------ */
/* Cases: autograd                                                    */
/* ------------------------------------------------------------------ */

CODE(c_backward_vector, loom_backward(ctx, loom_tanh(ctx, e->w)))
CODE(c_backward_i32, loom_backward(ctx, loom_sum_all(ctx, e->i3)))
CODE(c_backward_null, loom_backward(ctx, LOOM_NULL))
CODE(c_backward_stale, loom_backward(ctx, e->stale))
CODE(c_backward_foreign, loom_backward(ctx, e->foreign))
NULL_C(c_backward_null_ctx, loom_backward(NULL, e->s))
BUILD(c_grad_stale, loom_grad(ctx, e->stale))
BUILD(c_grad_foreign_p, loom_grad(ctx, e->foreign_p))
static int c_grad_unreached(bi_env *e)
{
    /* documented: null, and no error, for what does not reach the loss */
    if (loom_backward(e->ctx, loss_of_w(e)) != LOOM_OK)
        return wrong(e, "backward failed: %s", loom_errmsg(e->ctx));
    return H(e, loom_grad(e->ctx, e->b));
}
NULL_H(c_grad_null_ctx, loom_grad(NULL, e->w))
static int vjp(bi_env *e, int ny, const loom_t *ys, const loom_t *dys, int nx, const loom_t *xs, bool room)
{
    loom_t dxs[4];
    return (int)loom_vjp(e->ctx, ny, ys, dys, nx, xs, room ? dxs : NULL);
}
static int c_vjp_ny0(bi_env *e) { return vjp(e, 0, &e->s, NULL, 1, &e->w, true); }
static int c_vjp_ny_neg(bi_env *e) { return vjp(e, -1, &e->s, NULL, 1, &e->w, true); }
static int c_vjp_nx_neg(bi_env *e) { return vjp(e, 1, &e->s, NULL, -1, &e->w, true); }
static int c_vjp_no_ys(bi_env *e) { return vjp(e, 1, NULL, NULL, 1, &e->w, true); }
static int c_vjp_no_xs(bi_env *e) { return vjp(e, 1, &e->s, NULL, 1, NULL, true); }
static int c_vjp_no_room(bi_env *e) { return vjp(e, 1, &e->s, NULL, 1, &e->w, false); }
static int c_vjp_null_y(bi_env *e) { return vjp(e, 1, (loom_t[]){ LOOM_NULL }, NULL, 1, &e->w, true); }
static int c_vjp_stale_x(bi_env *e)
{
    loom_t y = loss_of_w(e);
    return vjp(e, 1, &y, NULL, 2, (loom_t[]){ e->w, e->stale }, true);
}
static int c_vjp_seed_shape(bi_env *e)
{
    loom_t y = loom_tanh(e->ctx, e->w); /* [3,2] */
    return vjp(e, 1, &y, &e->x23, 1, &e->w, true);
}
static int c_vjp_seed_dtype(bi_env *e)
{
    loom_t y = loom_tanh(e->ctx, e->x23);
    return vjp(e, 1, &y, &e->d23, 1, &e->x23, true);
}
static int c_vjp_no_seed(bi_env *e)
{
    loom_t y = loom_tanh(e->ctx, e->w);
    return vjp(e, 1, &y, NULL, 1, &e->w, true);
}
static int c_vjp_foreign_seed(bi_env *e)
{
    loom_t y = loom_tanh(e->ctx, e->x23);
    return vjp(e, 1, &y, &e->foreign, 1, &e->x23, true);
}
NULL_C(c_vjp_null_ctx, loom_vjp(NULL, 1, &e->s, NULL, 0, NULL, NULL))
CODE(c_ckpt_every_neg, loom_set_checkpoint_every(ctx, -1))
NULL_C(c_ckpt_every_null_ctx, loom_set_checkpoint_every(NULL, 2))
NULL_Q(c_get_ckpt_every_null, loom_get_checkpoint_every(NULL) == 0)

/* ------------------------------------------------------------------ */
/* Cases: running                                                     */
/* ------------------------------------------------------------------ */

CODE(c_run_n_neg, loom_run(ctx, -1, &e->x23))
CODE(c_run_no_list, loom_run(ctx, 2, NULL))
CODE(c_run_null, loom_run(ctx, 2, ((const loom_t[]){ e->x23, LOOM_NULL })))
CODE(c_run_stale, loom_run(ctx, 1, &e->stale))
CODE(c_run_foreign, loom_run(ctx, 1, &e->foreign))
CODE(c_run_foreign_p, loom_run(ctx, 1, &e->foreign_p))
static int c_run_unfed(bi_env *e)
{
    loom_t y = loom_tanh(e->ctx, e->in23);
    return (int)loom_run(e->ctx, 1, &y);
}
NULL_C(c_run_null_ctx, loom_run(NULL, 1, &e->x23))
CODE(c_eval_n_neg, loom_eval(ctx, -2, NULL))
static int c_eval_unfed(bi_env *e)
{
    loom_t y = loom_sum_all(e->ctx, e->in23);
    return (int)loom_eval(e->ctx, 1, &y);
}
CODE(c_eval_freed, loom_eval(ctx, 1, &e->freed))
NULL_C(c_eval_null_ctx, loom_eval(NULL, 0, NULL))
CODE(c_stats_null, loom_get_stats(ctx, NULL))
static int c_stats_null_ctx(bi_env *e)
{
    loom_stats st;
    int c = (int)loom_get_stats(NULL, &st);
    e->msg = loom_errmsg(NULL);
    return c;
}
QUERY(c_report_null_buf, loom_fusion_report(ctx, NULL, 100) == 0)
static int c_report_null_ctx(bi_env *e)
{
    char buf[8] = "junk";
    size_t n = loom_fusion_report(NULL, buf, sizeof buf);
    e->msg = loom_errmsg(NULL);
    return n == 0 && buf[0] == 0 ? (int)loom_status(NULL) : wrong(e, "%zu bytes, \"%s\" without a context", n, buf);
}
CODE(c_dot_null_path, loom_plan_dot(ctx, 1, &e->x23, false, NULL))
CODE(c_dot_nothing, loom_plan_dot(ctx, 0, NULL, true, at(e, "g.dot")))
CODE(c_dot_n_neg, loom_plan_dot(ctx, -1, &e->x23, false, at(e, "g.dot")))
CODE(c_dot_bad_dir, loom_plan_dot(ctx, 1, &e->x23, false, at(e, "no/such/g.dot")))
CODE(c_dot_null_handle, loom_plan_dot(ctx, 1, ((const loom_t[]){ LOOM_NULL }), false, at(e, "g.dot")))
NULL_C(c_dot_null_ctx, loom_plan_dot(NULL, 1, &e->x23, false, "g.dot"))
NULL_Q(c_backend_null, loom_get_backend(NULL) == LOOM_BACKEND_JIT)
NULL_C(c_anomaly_null_ctx, loom_set_anomaly(NULL, true))
NULL_Q(c_get_anomaly_null, !loom_get_anomaly(NULL))
CODE(c_threads_zero, loom_set_threads(ctx, 0))
CODE(c_threads_neg, loom_set_threads(ctx, -1))
CODE(c_threads_big, loom_set_threads(ctx, 1025))
NULL_C(c_threads_null_ctx, loom_set_threads(NULL, 2))
NULL_Q(c_get_threads_null, loom_get_threads(NULL) == 0)
QUERY(c_data_not_output, loom_data(ctx, loom_neg(ctx, e->x23)) == NULL)
QUERY(c_data_null, loom_data(ctx, LOOM_NULL) == NULL)
QUERY(c_data_stale, loom_data(ctx, e->stale) == NULL)
NULL_Q(c_data_null_ctx, loom_data(NULL, e->w) == NULL)
/* x23 after a run, read into a buffer of bytes bytes. */
static int read_run(bi_env *e, size_t bytes, bool dst)
{
    if (loom_run(e->ctx, 1, &e->x23) != LOOM_OK)
        return wrong(e, "the run failed: %s", loom_errmsg(e->ctx));
    float buf[8];
    return (int)loom_read(e->ctx, e->x23, dst ? buf : NULL, bytes);
}
static int c_read_short(bi_env *e) { return read_run(e, 8, true); }
static int c_read_long(bi_env *e) { return read_run(e, 32, true); }
static int c_read_null_dst(bi_env *e) { return read_run(e, 24, false); }
static int c_read_not_output(bi_env *e)
{
    float buf[6];
    return (int)loom_read(e->ctx, e->x23, buf, sizeof buf);
}
static int c_read_foreign(bi_env *e)
{
    float buf[6];
    return (int)loom_read(e->ctx, e->foreign, buf, sizeof buf);
}
static int c_read_param_short(bi_env *e)
{
    float buf[2];
    return (int)loom_read(e->ctx, e->w, buf, sizeof buf);
}
NULL_C(c_read_null_ctx, loom_read(NULL, e->w, e->msgbuf, 24))
static int c_item_many(bi_env *e)
{
    if (loom_run(e->ctx, 1, &e->x23) != LOOM_OK)
        return wrong(e, "the run failed: %s", loom_errmsg(e->ctx));
    double v = loom_item(e->ctx, e->x23);
    return isnan(v) ? (int)loom_status(e->ctx) : wrong(e, "item of 6 elements is %g, not NaN", v);
}
QUERY(c_item_null, isnan(loom_item(ctx, LOOM_NULL)))
QUERY(c_item_param, isnan(loom_item(ctx, e->w)))
NULL_Q(c_item_null_ctx, isnan(loom_item(NULL, e->s)))

/* ------------------------------------------------------------------ */
/* Cases: ahead-of-time compilation                                   */
/* ------------------------------------------------------------------ */

/* A valid export of y = tanh(x) with one thing changed by edit. */
typedef struct aot_case {
    loom_t x, y, outs[2];
    loom_aot_entry ent[2];
    loom_aot_options o;
} aot_case;
static void aot_base(bi_env *e, aot_case *a)
{
    a->x = loom_input(e->ctx, "x", LOOM_F32, LOOM_SHAPE(2, 3));
    a->y = loom_tanh(e->ctx, a->x);
    a->outs[0] = a->y;
    a->ent[0] = (loom_aot_entry){ .name = "step", .ninputs = 1, .inputs = &a->x, .noutputs = 1, .outputs = a->outs };
    a->ent[1] = a->ent[0];
    a->o = (loom_aot_options){ .prefix = "m", .nentries = 1, .entries = a->ent };
}
#define AOT(id, edit, dir)                                           \
    static int id(bi_env *e)                                         \
    {                                                                \
        aot_case a;                                                  \
        aot_base(e, &a);                                             \
        loom_aot_options *o = &a.o;                                  \
        loom_aot_entry *en = a.ent;                                  \
        (void)o, (void)en;                                           \
        edit;                                                        \
        return (int)loom_aot_emit(e->ctx, (dir), o, NULL);           \
    }
AOT(c_aot_null_dir, (void)0, NULL)
AOT(c_aot_null_opts, o = NULL, e->dir)
AOT(c_aot_prefix_digit, o->prefix = "9lives", e->dir)
AOT(c_aot_prefix_keyword, o->prefix = "int", e->dir)
AOT(c_aot_prefix_long, o->prefix = name300(), e->dir)
AOT(c_aot_cpu, o->cpu = "pentium-mmx-turbo", e->dir)
AOT(c_aot_no_entries, o->nentries = 0, e->dir)
AOT(c_aot_entries_null, o->entries = NULL, e->dir)
AOT(c_aot_no_such_dir, (void)0, at(e, "no/such/dir"))
AOT(c_aot_dir_file, spill(at(e, "file"), "x", 1), at(e, "file"))
AOT(c_aot_entry_name, en[0].name = "two words", e->dir)
AOT(c_aot_entry_name_null, en[0].name = NULL, e->dir)
AOT(c_aot_entry_twice, o->nentries = 2, e->dir)
AOT(c_aot_not_input, en[0].inputs = &a.y, e->dir)
AOT(c_aot_input_twice, (en[0].inputs = (const loom_t[]){ a.x, a.x }, en[0].ninputs = 2), e->dir)
AOT(c_aot_no_outputs, en[0].noutputs = 0, e->dir)
AOT(c_aot_ninputs_neg, en[0].ninputs = -1, e->dir)
AOT(c_aot_commit, en[0].commit = true, e->dir)
AOT(c_aot_output_name, en[0].output_names = (const char *const[]){ "memory" }, e->dir)
AOT(c_aot_stale_output, a.outs[0] = e->stale, e->dir)
AOT(c_aot_unfed, (a.outs[0] = loom_add(e->ctx, a.y, e->in23)), e->dir)
NULL_C(c_aot_null_ctx, loom_aot_emit(NULL, "/tmp", &(loom_aot_options){ 0 }, NULL))

/* ------------------------------------------------------------------ */
/* The table                                                          */
/* ------------------------------------------------------------------ */

typedef enum bi_kind {
    K_NULLCTX,  /* a NULL context */
    K_NULLPTR,  /* a NULL pointer, a missing list or output */
    K_HANDLE,   /* a null, stale, foreign or freed handle; a non-parameter */
    K_DTYPE,    /* a bad or mismatched dtype */
    K_SHAPE,    /* shapes that do not fit, bad dimensions or ranks */
    K_AXIS,     /* an axis out of range or given twice */
    K_COUNT,    /* a count below 1, negative or past a limit */
    K_VALUE,    /* a number out of its domain (probability, lr, threads ...) */
    K_NAME,     /* a name taken, empty, too long or not an identifier */
    K_INDEX,    /* a gather/scatter index out of range at run time */
    K_STATE,    /* a call that does not fit the state (not attached, not fed ...) */
    K_FILE,     /* missing, mismatched, truncated or corrupt files; bad paths */
    K_KIND_COUNT
} bi_kind;

static const char *const kind_names[K_KIND_COUNT] = {
    "NULL context", "NULL pointer / list", "bad handle", "dtype", "shape", "axis",
    "count", "value", "name", "index at run time", "state", "file / path",
};

enum { BI_NOCTX = 1, BI_REF = 2 };

typedef struct bi_case {
    const char *fn;           /* the entry point */
    const char *what;         /* what is wrong */
    int (*call)(bi_env *);    /* sets up and makes the bad call; returns what it reported */
    loom_code code;           /* what it must report */
    const char *frag1, *frag2; /* its message must contain both (NULL: no check) */
    unsigned flags;           /* BI_NOCTX: the call has no context; BI_REF: the reference backend */
    bi_kind kind;
} bi_case;

#define R(fn, what, call, code, f1, f2, kind) { fn, what, call, code, f1, f2, 0, kind }
#define R_REF(fn, what, call, code, f1, f2, kind) { fn, what, call, code, f1, f2, BI_REF, kind }
/* The call takes no context, or is given NULL for it: loom_status(NULL)
 * is LOOM_ERR_HANDLE and loom_errmsg(NULL) says "NULL". */
#define R_NULL(fn, call) { fn, "NULL context", call, LOOM_ERR_HANDLE, "NULL", NULL, BI_NOCTX, K_NULLCTX }
#define R_NULL_CODE(fn, call, code) { fn, "NULL context", call, code, "NULL", NULL, BI_NOCTX, K_NULLCTX }
/* A call without a context that must give its documented value. */
#define R_PURE(fn, what, call, f1) { fn, what, call, LOOM_OK, f1, NULL, BI_NOCTX, K_VALUE }

#define UN_ROWS(op)                                                                                       \
    R("loom_" #op, "a null handle", c_##op##_null, LOOM_ERR_HANDLE, "loom_" #op, "null", K_HANDLE),      \
    R("loom_" #op, "a stale handle", c_##op##_stale, LOOM_ERR_HANDLE, "loom_" #op, "stale", K_HANDLE),   \
    R_NULL("loom_" #op, c_##op##_null_ctx),
#define UN_I32_ROWS(op) \
    R("loom_" #op, "i32 to a float op", c_##op##_i32, LOOM_ERR_DTYPE, "loom_" #op, "i32[3]", K_DTYPE),
#define BIN_ROWS(op)                                                                                           \
    R("loom_" #op, "shapes do not broadcast", c_##op##_shape, LOOM_ERR_SHAPE, "loom_" #op, "f32[2,3] and f32[3,2]", \
      K_SHAPE),                                                                                                \
    R("loom_" #op, "mixed dtypes", c_##op##_dtype, LOOM_ERR_DTYPE, "loom_" #op, "f64[2,3]", K_DTYPE),         \
    R("loom_" #op, "operand 2 null", c_##op##_null2, LOOM_ERR_HANDLE, "loom_" #op, "operand 2", K_HANDLE),    \
    R("loom_" #op, "operand 1 foreign", c_##op##_foreign1, LOOM_ERR_HANDLE, "loom_" #op, "operand 1", K_HANDLE), \
    R_NULL("loom_" #op, c_##op##_null_ctx),
#define SC_ROWS(op)                                                                                      \
    R("loom_" #op, "a null handle", c_##op##_null, LOOM_ERR_HANDLE, "loom_" #op, "null", K_HANDLE),     \
    R("loom_" #op, "a foreign handle", c_##op##_foreign, LOOM_ERR_HANDLE, "loom_" #op, "foreign", K_HANDLE), \
    R_NULL("loom_" #op, c_##op##_null_ctx),

static const bi_case cases[] = {
    /* status codes, value types */
    R_PURE("loom_code_name", "code -1", c_code_name_neg, "LOOM_ERR_?"),
    R_PURE("loom_code_name", "LOOM_CODE_COUNT", c_code_name_count, "LOOM_ERR_?"),
    R_PURE("loom_dtype_name", "dtype 7", c_dtype_name_bad, "?"),
    R_PURE("loom_dtype_name", "dtype -1", c_dtype_name_neg, "?"),
    R_PURE("loom_dtype_size", "dtypes 3 and -3: size 0", c_dtype_size_bad, NULL),
    R_PURE("loom_shape_numel", "rank 9: -1", c_numel_rank9, NULL),
    R_PURE("loom_shape_numel", "rank -1: -1", c_numel_rank_neg, NULL),
    R_PURE("loom_shape_equal", "rank 9 shapes: not equal", c_equal_rank9, NULL),
    R_PURE("loom_shape_str", "NULL buffer of size 0", c_shape_str_null, NULL),
    R_PURE("loom_shape_str", "rank 9: no more than 8 dims printed", c_shape_str_rank9, "f32[2,2,2,2,2,2,2,2]"),
    R_PURE("loom_shape_str", "a 4-byte buffer: cut and terminated", c_shape_str_small, "f64"),
    /* context */
    { "loom_ctx_new", "checkpoint_every -1", c_ctx_new_ckpt, LOOM_ERR_ARG, "loom_ctx_new", "checkpoint_every is -1",
      BI_NOCTX, K_VALUE },
    { "loom_ctx_new", "threads -4", c_ctx_new_threads, LOOM_ERR_ARG, "loom_ctx_new", "threads", BI_NOCTX, K_VALUE },
    { "loom_ctx_new", "threads 5000", c_ctx_new_threads_big, LOOM_ERR_ARG, "loom_ctx_new", "5000", BI_NOCTX,
      K_VALUE },
    { "loom_ctx_new", "backend 9", c_ctx_new_backend, LOOM_ERR_ARG, "loom_ctx_new", "backend 9", BI_NOCTX,
      K_VALUE },
    R_NULL("loom_ctx_free", c_ctx_free_null),
    R_NULL("loom_status", c_status_null),
    R_NULL("loom_failed", c_failed_null),
    R_NULL("loom_errmsg", c_errmsg_null),
    R_NULL("loom_clear_error", c_clear_null),
    /* tape */
    R_NULL("loom_reset", c_reset_null),
    R("loom_step_begin", "step -1", c_step_neg, LOOM_ERR_ARG, "loom_step_begin", "step -1", K_VALUE),
    R_NULL("loom_step_begin", c_step_begin_null),
    R_NULL("loom_step_end", c_step_end_null),
    R("loom_scope_begin", "a NULL name", c_scope_null_name, LOOM_ERR_ARG, "loom_scope_begin", "NULL", K_NULLPTR),
    R("loom_scope_begin", "an empty name", c_scope_empty, LOOM_ERR_ARG, "loom_scope_begin", "empty", K_NAME),
    R("loom_scope_begin", "a name with '/'", c_scope_slash, LOOM_ERR_ARG, "loom_scope_begin", "'/'", K_NAME),
    R("loom_scope_begin", "a 299-byte name", c_scope_long, LOOM_ERR_ARG, "loom_scope_begin", "200 bytes", K_NAME),
    R("loom_scope_begin", "a 65th open scope", c_scope_deep, LOOM_ERR_STATE, "loom_scope_begin", "64 scopes",
      K_COUNT),
    R_NULL("loom_scope_begin", c_scope_null_ctx),
    R("loom_scope_end", "no scope open: nothing, no error", c_scope_end_none, LOOM_OK, NULL, NULL, K_STATE),
    R_NULL("loom_scope_end", c_scope_end_null_ctx),
    R_NULL("loom_node_count", c_node_count_null),
    R("loom_print_graph", "NULL stream", c_print_null_file, LOOM_ERR_ARG, "loom_print_graph", "stream", K_NULLPTR),
    R_NULL_CODE("loom_print_graph", c_print_null_ctx, LOOM_ERR_ARG),
    R("loom_write_dot", "NULL stream", c_wdot_null_file, LOOM_ERR_ARG, "loom_write_dot", "stream", K_NULLPTR),
    R_NULL_CODE("loom_write_dot", c_wdot_null_ctx, LOOM_ERR_ARG),
    R("loom_shape_of", "a null handle", c_shape_of_null, LOOM_ERR_HANDLE, "loom_shape_of", "null", K_HANDLE),
    R("loom_shape_of", "a stale handle", c_shape_of_stale, LOOM_ERR_HANDLE, "loom_shape_of", "stale", K_HANDLE),
    R("loom_shape_of", "a parameter of another context", c_shape_of_foreign_p, LOOM_ERR_HANDLE, "loom_shape_of",
      "not a parameter of this context", K_HANDLE),
    R_NULL("loom_shape_of", c_shape_of_null_ctx),
    R("loom_dtype_of", "a foreign handle", c_dtype_of_foreign, LOOM_ERR_HANDLE, "loom_dtype_of", "foreign", K_HANDLE),
    R("loom_dtype_of", "a handle of a freed context", c_dtype_of_freed, LOOM_ERR_HANDLE, "loom_dtype_of", "foreign",
      K_HANDLE),
    R_NULL("loom_dtype_of", c_dtype_of_null_ctx),
    /* sources */
    R("loom_input", "dtype 7", c_input_dtype, LOOM_ERR_DTYPE, "loom_input", "7 is not a loom dtype", K_DTYPE),
    R("loom_input", "a negative dimension", c_input_neg_dim, LOOM_ERR_SHAPE, "loom_input", "[2,-1]", K_SHAPE),
    R("loom_input", "rank 9", c_input_rank9, LOOM_ERR_SHAPE, "loom_input", "rank 9", K_SHAPE),
    R("loom_input", "rank -1", c_input_rank_neg, LOOM_ERR_SHAPE, "loom_input", "rank -1", K_SHAPE),
    R("loom_input", "2^90 elements", c_input_huge, LOOM_ERR_SHAPE, "loom_input", "too large", K_SHAPE),
    R_NULL("loom_input", c_input_null_ctx),
    R("loom_feed", "20 bytes for 24", c_feed_bytes, LOOM_ERR_ARG, "loom_feed", "24 bytes, 20 given", K_VALUE),
    R("loom_feed", "NULL data", c_feed_null_data, LOOM_ERR_ARG, "loom_feed", "0 given", K_NULLPTR),
    R("loom_feed", "a node that is not an input", c_feed_not_input, LOOM_ERR_ARG, "loom_feed",
      "(neg f32[2,3]) is not an input", K_HANDLE),
    R("loom_feed", "a parameter", c_feed_param, LOOM_ERR_ARG, "loom_feed", "\"w\" is a parameter, not an input",
      K_HANDLE),
    R("loom_feed", "a null handle", c_feed_null, LOOM_ERR_HANDLE, "loom_feed", "null", K_HANDLE),
    R("loom_feed", "a stale handle", c_feed_stale, LOOM_ERR_HANDLE, "loom_feed", "stale", K_HANDLE),
    R("loom_feed", "a foreign handle", c_feed_foreign, LOOM_ERR_HANDLE, "loom_feed", "foreign", K_HANDLE),
    R("loom_feed", "a handle of a freed context", c_feed_freed, LOOM_ERR_HANDLE, "loom_feed", "foreign", K_HANDLE),
    R_NULL("loom_feed", c_feed_null_ctx),
    R("loom_tensor", "NULL data", c_tensor_null_data, LOOM_ERR_ARG, "loom_tensor", "f32[2,3] = 24 bytes, 0 given (NULL data)",
      K_NULLPTR),
    R("loom_tensor", "dtype -1", c_tensor_dtype, LOOM_ERR_DTYPE, "loom_tensor", "-1 is not a loom dtype", K_DTYPE),
    R("loom_tensor", "rank 9", c_tensor_rank9, LOOM_ERR_SHAPE, "loom_tensor", "rank 9", K_SHAPE),
    R_NULL("loom_tensor", c_tensor_null_ctx),
    R("loom_full", "dtype 3", c_full_dtype, LOOM_ERR_DTYPE, "loom_full", "3 is not a loom dtype", K_DTYPE),
    R("loom_full", "a negative dimension", c_full_neg_dim, LOOM_ERR_SHAPE, "loom_full", "[-2]", K_SHAPE),
    R_NULL("loom_full", c_full_null_ctx),
    R("loom_scalar", "dtype 5", c_scalar_dtype, LOOM_ERR_DTYPE, "loom_scalar", "5 is not a loom dtype", K_DTYPE),
    R_NULL("loom_scalar", c_scalar_null_ctx),
    R("loom_iota", "axis 2 of rank 2", c_iota_axis, LOOM_ERR_ARG, "loom_iota", "axis 2", K_AXIS),
    R("loom_iota", "axis -3 of rank 2", c_iota_axis_neg, LOOM_ERR_ARG, "loom_iota", "axis -3", K_AXIS),
    R("loom_iota", "axis 0 of a scalar", c_iota_scalar, LOOM_ERR_ARG, "loom_iota", "axis 0", K_AXIS),
    R("loom_iota", "dtype 9", c_iota_dtype, LOOM_ERR_DTYPE, "loom_iota", "9 is not a loom dtype", K_DTYPE),
    R_NULL("loom_iota", c_iota_null_ctx),
    R("loom_rand_uniform", "i32", c_uniform_i32, LOOM_ERR_DTYPE, "loom_rand_uniform", "f32 or f64", K_DTYPE),
    R("loom_rand_uniform", "rank 9", c_uniform_rank9, LOOM_ERR_SHAPE, "loom_rand_uniform", "rank 9", K_SHAPE),
    R_NULL("loom_rand_uniform", c_uniform_null_ctx),
    R("loom_rand_normal", "dtype 4", c_normal_dtype, LOOM_ERR_DTYPE, "loom_rand_normal", "4 is not a loom dtype",
      K_DTYPE),
    R_NULL("loom_rand_normal", c_normal_null_ctx),
    R("loom_rand_bernoulli", "p = 1.5", c_bernoulli_p, LOOM_ERR_ARG, "loom_rand_bernoulli", "1.5", K_VALUE),
    R("loom_rand_bernoulli", "p = NaN", c_bernoulli_nan, LOOM_ERR_ARG, "loom_rand_bernoulli", "nan", K_VALUE),
    R("loom_rand_bernoulli", "i32", c_bernoulli_i32, LOOM_ERR_DTYPE, "loom_rand_bernoulli", "f32 or f64", K_DTYPE),
    R_NULL("loom_rand_bernoulli", c_bernoulli_null_ctx),
    /* parameters */
    R("loom_param", "a duplicate name", c_param_dup, LOOM_ERR_ARG, "loom_param", "\"w\" exists already", K_NAME),
    R("loom_param", "an empty name", c_param_empty, LOOM_ERR_ARG, "loom_param", "1 to 255", K_NAME),
    R("loom_param", "a 299-character name", c_param_long, LOOM_ERR_ARG, "loom_param", "1 to 255", K_NAME),
    R("loom_param", "dtype 3", c_param_dtype, LOOM_ERR_DTYPE, "loom_param", "3 is not a loom dtype", K_DTYPE),
    R("loom_param", "a negative dimension", c_param_neg_dim, LOOM_ERR_SHAPE, "loom_param", "[4,-3]", K_SHAPE),
    R("loom_param", "rank 9", c_param_rank9, LOOM_ERR_SHAPE, "loom_param", "rank 9", K_SHAPE),
    R_NULL("loom_param", c_param_null_ctx),
    R("loom_buffer", "the name of a parameter", c_buffer_dup, LOOM_ERR_ARG, "loom_buffer", "\"w\" exists already",
      K_NAME),
    R("loom_buffer", "rank -2", c_buffer_rank_neg, LOOM_ERR_SHAPE, "loom_buffer", "rank -2", K_SHAPE),
    R_NULL("loom_buffer", c_buffer_null_ctx),
    R("loom_param_set_trainable", "a tape node", c_set_trainable_node, LOOM_ERR_HANDLE, "loom_param_set_trainable",
      "not a parameter", K_HANDLE),
    R("loom_param_set_trainable", "a buffer made trainable", c_set_trainable_buffer, LOOM_ERR_ARG,
      "loom_param_set_trainable", "\"buf\" is a buffer", K_STATE),
    R("loom_param_set_trainable", "a parameter of another context", c_set_trainable_foreign, LOOM_ERR_HANDLE,
      "loom_param_set_trainable", "not a parameter of this context", K_HANDLE),
    R_NULL("loom_param_set_trainable", c_set_trainable_null_ctx),
    R("loom_param_trainable", "a tape node: false", c_trainable_node, LOOM_ERR_HANDLE, "loom_param_trainable",
      "not a parameter", K_HANDLE),
    R_NULL("loom_param_trainable", c_trainable_null_ctx),
    R_NULL("loom_param_count", c_param_count_null_ctx),
    /* lookups: finding nothing is null and no error (test_frontend's contract) */
    R("loom_param_at", "index 99 of 4: null, no error", c_param_at_range, LOOM_OK, NULL, NULL, K_COUNT),
    R("loom_param_at", "index SIZE_MAX: null, no error", c_param_at_huge, LOOM_OK, NULL, NULL, K_COUNT),
    R_NULL("loom_param_at", c_param_at_null_ctx),
    R("loom_param_find", "a NULL name: null, no error", c_param_find_null, LOOM_OK, NULL, NULL, K_NULLPTR),
    R("loom_param_find", "an absent name: null, no error", c_param_find_absent, LOOM_OK, NULL, NULL, K_NAME),
    R_NULL("loom_param_find", c_param_find_null_ctx),
    R("loom_param_name", "a tape node", c_param_name_node, LOOM_ERR_HANDLE, "loom_param_name", "not a parameter",
      K_HANDLE),
    R("loom_param_name", "a stale handle", c_param_name_stale, LOOM_ERR_HANDLE, "loom_param_name", "not a parameter",
      K_HANDLE),
    R_NULL("loom_param_name", c_param_name_null_ctx),
    R("loom_is_param", "a tape node: false, no error", c_is_param_node, LOOM_OK, NULL, NULL, K_HANDLE),
    R("loom_is_param", "a parameter of another context: false", c_is_param_foreign, LOOM_OK, NULL, NULL, K_HANDLE),
    R_NULL("loom_is_param", c_is_param_null_ctx),
    R("loom_param_data", "a tape node", c_param_data_node, LOOM_ERR_HANDLE, "loom_param_data", "not a parameter",
      K_HANDLE),
    R("loom_param_data", "a parameter of another context", c_param_data_foreign, LOOM_ERR_HANDLE, "loom_param_data",
      "not a parameter of this context", K_HANDLE),
    R_NULL("loom_param_data", c_param_data_null_ctx),
    R("loom_param_set", "8 bytes for 24", c_param_set_bytes, LOOM_ERR_ARG, "loom_param_set", "24 bytes, 8 given",
      K_VALUE),
    R("loom_param_set", "NULL data", c_param_set_null_data, LOOM_ERR_ARG, "loom_param_set", "0 given", K_NULLPTR),
    R("loom_param_set", "a tape node", c_param_set_node, LOOM_ERR_HANDLE, "loom_param_set", "not a parameter",
      K_HANDLE),
    R_NULL("loom_param_set", c_param_set_null_ctx),
    R("loom_param_init_uniform", "lo > hi", c_uniform_order, LOOM_ERR_ARG, "loom_param_init_uniform", "(1, -1)",
      K_VALUE),
    R("loom_param_init_uniform", "lo NaN", c_uniform_nan, LOOM_ERR_ARG, "loom_param_init_uniform", "nan", K_VALUE),
    R("loom_param_init_uniform", "a tape node", c_uniform_node, LOOM_ERR_HANDLE, "loom_param_init_uniform",
      "not a parameter", K_HANDLE),
    R_NULL("loom_param_init_uniform", c_uniform_init_null_ctx),
    R("loom_param_init_normal", "std -1", c_normal_std, LOOM_ERR_ARG, "loom_param_init_normal", "(0, -1)", K_VALUE),
    R("loom_param_init_normal", "a stale handle", c_normal_stale, LOOM_ERR_HANDLE, "loom_param_init_normal",
      "not a parameter", K_HANDLE),
    R_NULL("loom_param_init_normal", c_normal_init_null_ctx),
    R("loom_param_init_const", "NaN", c_const_nan, LOOM_ERR_ARG, "loom_param_init_const", "nan", K_VALUE),
    R("loom_param_init_const", "a parameter of another context", c_const_foreign, LOOM_ERR_HANDLE,
      "loom_param_init_const", "not a parameter of this context", K_HANDLE),
    R_NULL("loom_param_init_const", c_const_null_ctx),
    R("loom_assign", "a tape node as target", c_assign_node, LOOM_ERR_HANDLE, "loom_assign", "not a parameter",
      K_HANDLE),
    R("loom_assign", "a value of another shape", c_assign_shape, LOOM_ERR_SHAPE, "loom_assign",
      "f32[2,3] value cannot be assigned to \"w\" f32[3,2]", K_SHAPE),
    R("loom_assign", "a value of another dtype", c_assign_dtype, LOOM_ERR_DTYPE, "loom_assign", "f64[3,2]", K_DTYPE),
    R("loom_assign", "a null value", c_assign_null, LOOM_ERR_HANDLE, "loom_assign", "operand 2", K_HANDLE),
    R("loom_assign", "a foreign value", c_assign_foreign, LOOM_ERR_HANDLE, "loom_assign", "foreign", K_HANDLE),
    R_NULL("loom_assign", c_assign_null_ctx),
    /* elementwise */
    UNARY_FLOAT(UN_ROWS)
    UNARY_FLOAT(UN_I32_ROWS)
    UNARY_ANY(UN_ROWS)
    R("loom_tanh", "a foreign handle", c_tanh_foreign, LOOM_ERR_HANDLE, "loom_tanh", "foreign", K_HANDLE),
    R("loom_relu", "a parameter of another context", c_relu_foreign_p, LOOM_ERR_HANDLE, "loom_relu",
      "parameter of another context", K_HANDLE),
    R("loom_abs", "a handle of a freed context", c_abs_freed, LOOM_ERR_HANDLE, "loom_abs", "foreign", K_HANDLE),
    R("loom_cast", "dtype 3", c_cast_dtype, LOOM_ERR_DTYPE, "loom_cast", "3 is not a loom dtype", K_DTYPE),
    R("loom_cast", "a null handle", c_cast_null, LOOM_ERR_HANDLE, "loom_cast", "null", K_HANDLE),
    R_NULL("loom_cast", c_cast_null_ctx),
    BINARY(BIN_ROWS)
    R("loom_div", "i32", c_div_i32, LOOM_ERR_DTYPE, "loom_div", "i32", K_DTYPE),
    R("loom_pow", "a null handle", c_pow_null, LOOM_ERR_HANDLE, "loom_pow", "null", K_HANDLE),
    R("loom_pow", "a stale handle with p = 1", c_pow_one_stale, LOOM_ERR_HANDLE, "loom_pow", "stale", K_HANDLE),
    R("loom_pow", "i32 ^ 0.5", c_pow_i32, LOOM_ERR_DTYPE, "loom_pow", "i32[3]", K_DTYPE),
    R("loom_pow", "i32 ^ 2.5", c_pow_i32_frac, LOOM_ERR_DTYPE, "loom_pow", "i32[3]", K_DTYPE),
    R_NULL("loom_pow", c_pow_null_ctx),
    R("loom_where", "a null condition", c_where_null_cond, LOOM_ERR_HANDLE, "loom_where", "operand 1", K_HANDLE),
    R("loom_where", "branches of two dtypes", c_where_dtype, LOOM_ERR_DTYPE, "loom_where", "f64[2,3]", K_DTYPE),
    R("loom_where", "branches that do not broadcast", c_where_shape, LOOM_ERR_SHAPE, "loom_where", "f32[3,2]",
      K_SHAPE),
    R("loom_where", "a stale branch", c_where_stale, LOOM_ERR_HANDLE, "loom_where", "operand 2", K_HANDLE),
    R_NULL("loom_where", c_where_null_ctx),
    SCALAR_OPS(SC_ROWS)
    /* reductions */
    R("loom_sum", "axis 2 of rank 2", c_sum_axis, LOOM_ERR_ARG, "loom_sum", "axis 2 is out of range for f32[2,3]",
      K_AXIS),
    R("loom_sum", "axis -3 of rank 2", c_sum_axis_neg, LOOM_ERR_ARG, "loom_sum", "axis -3", K_AXIS),
    R("loom_sum", "axes 0 and -2 (the same)", c_sum_dup, LOOM_ERR_ARG, "loom_sum", "named twice", K_AXIS),
    R("loom_sum", "naxes -1", c_sum_naxes_neg, LOOM_ERR_ARG, "loom_sum", "-1 axes", K_COUNT),
    R("loom_sum", "2 axes, no list", c_sum_no_list, LOOM_ERR_ARG, "loom_sum", "without a list", K_NULLPTR),
    R("loom_sum", "9 axes of rank 2", c_sum_nine, LOOM_ERR_ARG, "loom_sum", "named twice", K_COUNT),
    R("loom_sum", "a null handle", c_sum_null, LOOM_ERR_HANDLE, "loom_sum", "null", K_HANDLE),
    R_NULL("loom_sum", c_sum_null_ctx),
    R("loom_max", "axis 5", c_max_axis, LOOM_ERR_ARG, "loom_max", "axis 5", K_AXIS),
    R("loom_max", "axis 1 twice", c_max_dup, LOOM_ERR_ARG, "loom_max", "named twice", K_AXIS),
    R("loom_max", "axis 0 of a scalar", c_max_scalar_axis, LOOM_ERR_ARG, "loom_max", "rank 0", K_AXIS),
    R_NULL("loom_max", c_max_null_ctx),
    R("loom_mean", "i32", c_mean_i32, LOOM_ERR_DTYPE, "loom_mean", "i32", K_DTYPE),
    R("loom_mean", "axis -3", c_mean_axis, LOOM_ERR_ARG, "loom_mean", "axis -3", K_AXIS),
    R("loom_mean", "axes 1 and -1 (the same)", c_mean_dup, LOOM_ERR_ARG, "loom_mean", "named twice", K_AXIS),
    R_NULL("loom_mean", c_mean_null_ctx),
    R("loom_sum_all", "a null handle", c_sum_all_null, LOOM_ERR_HANDLE, "loom_sum_all", "null", K_HANDLE),
    R("loom_sum_all", "a stale handle", c_sum_all_stale, LOOM_ERR_HANDLE, "loom_sum_all", "stale", K_HANDLE),
    R_NULL("loom_sum_all", c_sum_all_null_ctx),
    R("loom_mean_all", "i32", c_mean_all_i32, LOOM_ERR_DTYPE, "loom_mean_all", "i32", K_DTYPE),
    R("loom_mean_all", "a foreign handle", c_mean_all_foreign, LOOM_ERR_HANDLE, "loom_mean_all", "foreign", K_HANDLE),
    R_NULL("loom_mean_all", c_mean_all_null_ctx),
    /* movement */
    R("loom_reshape", "6 elements to 8", c_reshape_numel, LOOM_ERR_SHAPE, "loom_reshape", "f32[2,3] to [4,2]",
      K_SHAPE),
    R("loom_reshape", "two -1", c_reshape_two_infer, LOOM_ERR_SHAPE, "loom_reshape", "[-1,-1]", K_SHAPE),
    R("loom_reshape", "-1 beside a 0", c_reshape_infer_zero, LOOM_ERR_SHAPE, "loom_reshape", "[0,-1]", K_SHAPE),
    R("loom_reshape", "-1 that does not divide", c_reshape_infer_rest, LOOM_ERR_SHAPE, "loom_reshape", "[4,-1]",
      K_SHAPE),
    R("loom_reshape", "negative dimensions", c_reshape_neg, LOOM_ERR_SHAPE, "loom_reshape", "[-2,-3]", K_SHAPE),
    R("loom_reshape", "rank 9", c_reshape_rank9, LOOM_ERR_SHAPE, "loom_reshape", "rank 9", K_SHAPE),
    R("loom_reshape", "a null handle", c_reshape_null, LOOM_ERR_HANDLE, "loom_reshape", "null", K_HANDLE),
    R_NULL("loom_reshape", c_reshape_null_ctx),
    R("loom_permute", "1 axis for rank 2", c_permute_count, LOOM_ERR_ARG, "loom_permute", "1 axes given for f32[2,3]",
      K_COUNT),
    R("loom_permute", "axis 0 twice", c_permute_dup, LOOM_ERR_ARG, "loom_permute", "twice", K_AXIS),
    R("loom_permute", "axis 2 of rank 2", c_permute_range, LOOM_ERR_ARG, "loom_permute", "axis 2", K_AXIS),
    R("loom_permute", "2 axes, no list", c_permute_no_list, LOOM_ERR_ARG, "loom_permute", "2 axes", K_NULLPTR),
    R("loom_permute", "9 axes", c_permute_nine, LOOM_ERR_ARG, "loom_permute", "9 axes", K_COUNT),
    R("loom_permute", "-1 axes", c_permute_neg, LOOM_ERR_ARG, "loom_permute", "-1 axes", K_COUNT),
    R("loom_permute", "a null handle", c_permute_null, LOOM_ERR_HANDLE, "loom_permute", "null", K_HANDLE),
    R_NULL("loom_permute", c_permute_null_ctx),
    R("loom_transpose", "axis1 2 of rank 2", c_transpose_axis1, LOOM_ERR_ARG, "loom_transpose", "axis 2", K_AXIS),
    R("loom_transpose", "axis0 -3 of rank 2", c_transpose_axis0, LOOM_ERR_ARG, "loom_transpose", "axis -3", K_AXIS),
    R("loom_transpose", "a null handle", c_transpose_null, LOOM_ERR_HANDLE, "loom_transpose", "null", K_HANDLE),
    R_NULL("loom_transpose", c_transpose_null_ctx),
    R("loom_expand", "[2,3] to [4,3]", c_expand_shape, LOOM_ERR_SHAPE, "loom_expand", "f32[2,3] does not broadcast to [4,3]",
      K_SHAPE),
    R("loom_expand", "[2,3] to [3]", c_expand_fewer, LOOM_ERR_SHAPE, "loom_expand", "to [3]", K_SHAPE),
    R("loom_expand", "rank 9", c_expand_rank9, LOOM_ERR_SHAPE, "loom_expand", "rank 9", K_SHAPE),
    R("loom_expand", "a negative dimension", c_expand_neg, LOOM_ERR_SHAPE, "loom_expand", "[-1,3]", K_SHAPE),
    R("loom_expand", "a null handle", c_expand_null, LOOM_ERR_HANDLE, "loom_expand", "null", K_HANDLE),
    R_NULL("loom_expand", c_expand_null_ctx),
    R("loom_slice", "step 0", c_slice_step, LOOM_ERR_ARG, "loom_slice", "step 0", K_VALUE),
    R("loom_slice", "step -1", c_slice_step_neg, LOOM_ERR_ARG, "loom_slice", "step -1", K_VALUE),
    R("loom_slice", "axis 2 of rank 2", c_slice_axis, LOOM_ERR_ARG, "loom_slice", "axis 2", K_AXIS),
    R("loom_slice", "a scalar", c_slice_scalar, LOOM_ERR_ARG, "loom_slice", "rank 0", K_AXIS),
    R("loom_slice", "a null handle", c_slice_null, LOOM_ERR_HANDLE, "loom_slice", "null", K_HANDLE),
    R_NULL("loom_slice", c_slice_null_ctx),
    R("loom_concat", "n = 0", c_concat_zero, LOOM_ERR_ARG, "loom_concat", "0 given", K_COUNT),
    R("loom_concat", "n = -1", c_concat_neg, LOOM_ERR_ARG, "loom_concat", "-1 given", K_COUNT),
    R("loom_concat", "2 operands, no list", c_concat_no_list, LOOM_ERR_ARG, "loom_concat", "operand", K_NULLPTR),
    R("loom_concat", "[2,3] and [3,2] on axis 0", c_concat_shape, LOOM_ERR_SHAPE, "concat", "f32[3,2]", K_SHAPE),
    R("loom_concat", "ranks 2 and 1", c_concat_rank, LOOM_ERR_SHAPE, "concat", "rank", K_SHAPE),
    R("loom_concat", "f32 and f64", c_concat_dtype, LOOM_ERR_DTYPE, "concat", "f64[2,3]", K_DTYPE),
    R("loom_concat", "axis 2 of rank 2", c_concat_axis, LOOM_ERR_ARG, "loom_concat", "axis 2", K_AXIS),
    R("loom_concat", "operand 2 stale", c_concat_stale, LOOM_ERR_HANDLE, "loom_concat", "operand 2", K_HANDLE),
    R("loom_concat", "17 operands, the 17th null", c_concat_17_null, LOOM_ERR_HANDLE, "loom_concat", "operand 17",
      K_HANDLE),
    R("loom_concat", "17 operands, the 10th of another shape", c_concat_17_shape, LOOM_ERR_SHAPE, "concat",
      "operand 9", K_SHAPE),
    R_NULL("loom_concat", c_concat_null_ctx),
    R("loom_pad", "lo -1", c_pad_neg, LOOM_ERR_ARG, "loom_pad", "-1/0", K_VALUE),
    R("loom_pad", "axis 2 of rank 2", c_pad_axis, LOOM_ERR_ARG, "loom_pad", "axis 2", K_AXIS),
    R("loom_pad", "a null handle", c_pad_null, LOOM_ERR_HANDLE, "loom_pad", "null", K_HANDLE),
    R_NULL("loom_pad", c_pad_null_ctx),
    /* contraction and indexing */
    R("loom_matmul", "[2,3] . [2,3]", c_matmul_inner, LOOM_ERR_SHAPE, "loom_matmul", "inner dimensions differ (3 vs 2)",
      K_SHAPE),
    R("loom_matmul", "a scalar operand", c_matmul_scalar, LOOM_ERR_SHAPE, "loom_matmul", "scalars", K_SHAPE),
    R("loom_matmul", "i32", c_matmul_i32, LOOM_ERR_DTYPE, "loom_matmul", "i32[3]", K_DTYPE),
    R("loom_matmul", "f32 . f64", c_matmul_mixed, LOOM_ERR_DTYPE, "loom_matmul", "f32[2,3] and f64[3,2]", K_DTYPE),
    R("loom_matmul", "batch dims 2 and 3", c_matmul_batch, LOOM_ERR_SHAPE, "loom_matmul", "batch dimensions", K_SHAPE),
    R("loom_matmul", "a null operand", c_matmul_null, LOOM_ERR_HANDLE, "loom_matmul", "operand 2", K_HANDLE),
    R("loom_matmul", "a foreign operand", c_matmul_foreign, LOOM_ERR_HANDLE, "loom_matmul", "operand 1", K_HANDLE),
    R_NULL("loom_matmul", c_matmul_null_ctx),
    R("loom_matmul_t", "[2,3]^T . [3,2]", c_matmul_t_inner, LOOM_ERR_SHAPE, "loom_matmul_t", "inner dimensions differ",
      K_SHAPE),
    R("loom_matmul_t", "[2,3] . [3,2]^T", c_matmul_t_inner_b, LOOM_ERR_SHAPE, "loom_matmul_t", "(3 vs 2)", K_SHAPE),
    R("loom_matmul_t", "a stale operand", c_matmul_t_stale, LOOM_ERR_HANDLE, "loom_matmul_t", "stale", K_HANDLE),
    R_NULL("loom_matmul_t", c_matmul_t_null_ctx),
    R("loom_gather", "f32 indices", c_gather_float_idx, LOOM_ERR_DTYPE, "gather", "i32", K_DTYPE),
    R("loom_gather", "axis 2 of rank 2", c_gather_axis, LOOM_ERR_ARG, "loom_gather", "axis 2", K_AXIS),
    R("loom_gather", "null indices", c_gather_null_idx, LOOM_ERR_HANDLE, "loom_gather", "operand 2", K_HANDLE),
    R("loom_gather", "a scalar table", c_gather_scalar, LOOM_ERR_ARG, "loom_gather", "rank 0", K_AXIS),
    R_NULL("loom_gather", c_gather_null_ctx),
    R("loom_cross_entropy_ex", "label 3 of 3 classes at run time (JIT)", c_ce_run_high, LOOM_ERR_INDEX, "index 3",
      "scope \"cross_entropy labels\"", K_INDEX),
    R_REF("loom_cross_entropy_ex", "label 3 of 3 classes at run time (reference)", c_ce_run_high, LOOM_ERR_INDEX,
          "index 3", "[0, 3)", K_INDEX),
    R("loom_cross_entropy_ex", "label -1 at run time (JIT)", c_ce_run_neg, LOOM_ERR_INDEX, "index -1", "[0, 3)",
      K_INDEX),
    R("loom_cross_entropy_ex", "an ignored label and label 5 at run time (JIT)", c_ce_run_ignored_and_high,
      LOOM_ERR_INDEX, "index 5", "[0, 3)", K_INDEX),
    R("loom_gather", "index 7 of 3 rows at run time (JIT)", c_gather_run_high, LOOM_ERR_INDEX, "index 7", "[0, 3)",
      K_INDEX),
    R_REF("loom_gather", "index 7 of 3 rows at run time (reference)", c_gather_run_high, LOOM_ERR_INDEX, "index 7",
          "[0, 3)", K_INDEX),
    R("loom_gather", "index -1 at run time (JIT)", c_gather_run_neg, LOOM_ERR_INDEX, "index -1", "[0, 3)", K_INDEX),
    R_REF("loom_gather", "index -1 at run time (reference)", c_gather_run_neg, LOOM_ERR_INDEX, "index -1", "[0, 3)",
          K_INDEX),
    R("loom_gather", "index 2 of 2 columns at run time (JIT)", c_gather_run_axis1, LOOM_ERR_INDEX, "index 2",
      "[0, 2)", K_INDEX),
    R_REF("loom_gather", "index 2 of 2 columns at run time (reference)", c_gather_run_axis1, LOOM_ERR_INDEX,
          "index 2", "[0, 2)", K_INDEX),
    R("loom_gather", "index INT32_MAX at run time (JIT)", c_gather_run_huge, LOOM_ERR_INDEX, "index 2147483647",
      "[0, 3)", K_INDEX),
    R_REF("loom_gather", "index INT32_MAX at run time (reference)", c_gather_run_huge, LOOM_ERR_INDEX,
          "index 2147483647", "[0, 3)", K_INDEX),
    R("loom_gather", "a bad index in a run with an assignment (JIT): nothing committed", c_gather_run_commit,
      LOOM_ERR_INDEX, "index 3", "[0, 3)", K_INDEX),
    R_REF("loom_gather", "a bad index in a run with an assignment (reference): nothing committed",
          c_gather_run_commit, LOOM_ERR_INDEX, "index 3", "[0, 3)", K_INDEX),
    R("loom_scatter_add", "axis 3", c_scatter_axis, LOOM_ERR_ARG, "loom_scatter_add", "axis 3", K_AXIS),
    R("loom_scatter_add", "f32 indices", c_scatter_float_idx, LOOM_ERR_DTYPE, "scatter_add", "i32", K_DTYPE),
    R("loom_scatter_add", "size -1", c_scatter_size, LOOM_ERR_ARG, "scatter_add", "-1", K_VALUE),
    R("loom_scatter_add", "source rows 2, indices 3", c_scatter_shape, LOOM_ERR_SHAPE, "scatter_add", "i32[3]",
      K_SHAPE),
    R("loom_scatter_add", "a null source", c_scatter_null, LOOM_ERR_HANDLE, "loom_scatter_add", "null", K_HANDLE),
    R_NULL("loom_scatter_add", c_scatter_null_ctx),
    R("loom_scatter_add", "index 5 of size 3 at run time (JIT)", c_scatter_run_high, LOOM_ERR_INDEX, "index 5",
      "[0, 3)", K_INDEX),
    R_REF("loom_scatter_add", "index 5 of size 3 at run time (reference)", c_scatter_run_high, LOOM_ERR_INDEX,
          "index 5", "[0, 3)", K_INDEX),
    R("loom_scatter_add", "index -2 at run time (JIT)", c_scatter_run_neg, LOOM_ERR_INDEX, "index -2", "[0, 3)",
      K_INDEX),
    R_REF("loom_scatter_add", "index -2 at run time (reference)", c_scatter_run_neg, LOOM_ERR_INDEX, "index -2",
          "[0, 3)", K_INDEX),
    /* composite ops, losses */
    R("loom_softmax", "axis 2 of rank 2", c_softmax_axis, LOOM_ERR_ARG, "loom_softmax", "axis 2", K_AXIS),
    R("loom_softmax", "i32", c_softmax_i32, LOOM_ERR_DTYPE, "loom_softmax", "i32[3]", K_DTYPE),
    R("loom_softmax", "a null handle", c_softmax_null, LOOM_ERR_HANDLE, "loom_softmax", "null", K_HANDLE),
    R_NULL("loom_softmax", c_softmax_null_ctx),
    R("loom_log_softmax", "axis -3", c_log_softmax_axis, LOOM_ERR_ARG, "loom_log_softmax", "axis -3", K_AXIS),
    R("loom_log_softmax", "a stale handle", c_log_softmax_stale, LOOM_ERR_HANDLE, "loom_log_softmax", "stale",
      K_HANDLE),
    R("loom_log_softmax", "i32", c_log_softmax_i32, LOOM_ERR_DTYPE, "loom_log_softmax", "i32[3]", K_DTYPE),
    R_NULL("loom_log_softmax", c_log_softmax_null_ctx),
    R("loom_logsumexp", "axis 2", c_logsumexp_axis, LOOM_ERR_ARG, "loom_logsumexp", "axis 2", K_AXIS),
    R("loom_logsumexp", "a scalar", c_logsumexp_scalar, LOOM_ERR_ARG, "loom_logsumexp", "rank 0", K_AXIS),
    R("loom_logsumexp", "a foreign handle", c_logsumexp_foreign, LOOM_ERR_HANDLE, "loom_logsumexp", "foreign",
      K_HANDLE),
    R_NULL("loom_logsumexp", c_logsumexp_null_ctx),
    R("loom_cross_entropy", "f32 labels", c_ce_label_dtype, LOOM_ERR_DTYPE, "loom_cross_entropy", "f32[2]", K_DTYPE),
    R("loom_cross_entropy", "i32 logits", c_ce_logits_i32, LOOM_ERR_DTYPE, "loom_cross_entropy", "i32[2,3]",
      K_DTYPE),
    R("loom_cross_entropy", "logits of rank 1", c_ce_rank, LOOM_ERR_SHAPE, "loom_cross_entropy", "f32[3]", K_SHAPE),
    R("loom_cross_entropy", "2 rows, 3 labels", c_ce_count, LOOM_ERR_SHAPE, "loom_cross_entropy", "i32[3]", K_SHAPE),
    R("loom_cross_entropy", "null logits", c_ce_null, LOOM_ERR_HANDLE, "loom_cross_entropy", "null", K_HANDLE),
    R("loom_cross_entropy", "stale labels", c_ce_stale_labels, LOOM_ERR_HANDLE, "loom_cross_entropy", "stale",
      K_HANDLE),
    R_NULL("loom_cross_entropy", c_ce_null_ctx),
    R("loom_mse", "[2,3] against [3,2]", c_mse_shape, LOOM_ERR_SHAPE, "loom_mse", "f32[3,2]", K_SHAPE),
    R("loom_mse", "f32 against f64", c_mse_dtype, LOOM_ERR_DTYPE, "loom_mse", "f64[2,3]", K_DTYPE),
    R("loom_mse", "a null target", c_mse_null, LOOM_ERR_HANDLE, "loom_mse", "null", K_HANDLE),
    R_NULL("loom_mse", c_mse_null_ctx),
    R("loom_cross_entropy_ex", "reduction 9", c_ce_ex_reduction, LOOM_ERR_ARG, "loom_cross_entropy_ex",
      "reduction 9", K_VALUE),
    R("loom_cross_entropy_ex", "label smoothing 1.5", c_ce_ex_smoothing, LOOM_ERR_ARG, "loom_cross_entropy_ex",
      "1.5", K_VALUE),
    R("loom_cross_entropy_ex", "label smoothing NaN", c_ce_ex_smoothing_nan, LOOM_ERR_ARG, "loom_cross_entropy_ex",
      "nan", K_VALUE),
    R("loom_cross_entropy_ex", "3 rows, 2 labels", c_ce_ex_shape, LOOM_ERR_SHAPE, "loom_cross_entropy_ex",
      "f32[3,2]", K_SHAPE),
    R_NULL("loom_cross_entropy_ex", c_ce_ex_null_ctx),
    R("loom_bce_with_logits", "reduction 5", c_bce_reduction, LOOM_ERR_ARG, "loom_bce_with_logits", "reduction 5",
      K_VALUE),
    R("loom_bce_with_logits", "[2,3] against [3,2]", c_bce_shape, LOOM_ERR_SHAPE, "loom_bce_with_logits", "f32[3,2]",
      K_SHAPE),
    R("loom_bce_with_logits", "i32", c_bce_i32, LOOM_ERR_DTYPE, "loom_bce_with_logits", "i32", K_DTYPE),
    R("loom_bce_with_logits", "null logits", c_bce_null, LOOM_ERR_HANDLE, "loom_bce_with_logits", "null", K_HANDLE),
    R_NULL("loom_bce_with_logits", c_bce_null_ctx),
    R("loom_mse_ex", "reduction -1", c_mse_ex_reduction, LOOM_ERR_ARG, "loom_mse_ex", "reduction -1", K_VALUE),
    R("loom_mse_ex", "[2,3] against [3,2]", c_mse_ex_shape, LOOM_ERR_SHAPE, "loom_mse_ex", "f32[3,2]", K_SHAPE),
    R_NULL("loom_mse_ex", c_mse_ex_null_ctx),
    /* modules */
    R("loom_linear_init", "NULL module", c_linear_init_null_m, LOOM_ERR_ARG, "loom_linear_init", "module",
      K_NULLPTR),
    R("loom_linear_init", "in = 0", c_linear_init_size, LOOM_ERR_ARG, "loom_linear_init", "0 -> 2", K_VALUE),
    R("loom_linear_init", "out = -1", c_linear_init_out, LOOM_ERR_ARG, "loom_linear_init", "3 -> -1", K_VALUE),
    R("loom_linear_init", "i32", c_linear_init_i32, LOOM_ERR_DTYPE, "loom_linear_init", "i32", K_DTYPE),
    R("loom_linear_init", "dtype 6", c_linear_init_dtype, LOOM_ERR_DTYPE, "loom_linear_init", "6 is not a loom dtype",
      K_DTYPE),
    R("loom_linear_init", "lin.bias taken", c_linear_init_taken, LOOM_ERR_ARG, "loom_linear_init", "\"lin.bias\"",
      K_NAME),
    R_NULL("loom_linear_init", c_linear_init_null_ctx),
    R("loom_linear_forward", "NULL module", c_linear_fwd_null_m, LOOM_ERR_ARG, "loom_linear_forward", "module",
      K_NULLPTR),
    R("loom_linear_forward", "x [3,2] into Linear(3, 2)", c_linear_fwd_width, LOOM_ERR_SHAPE, "loom_linear_forward",
      "f32[3,2]", K_SHAPE),
    R("loom_linear_forward", "a module with a null weight", c_linear_fwd_zero_m, LOOM_ERR_HANDLE,
      "loom_linear_forward", "null", K_HANDLE),
    R("loom_linear_forward", "a module of another context", c_linear_fwd_foreign, LOOM_ERR_HANDLE,
      "loom_linear_forward", "another context", K_HANDLE),
    R_NULL("loom_linear_forward", c_linear_fwd_null_ctx),
    R("loom_embedding_init", "NULL module", c_emb_init_null_m, LOOM_ERR_ARG, "loom_embedding_init", "module",
      K_NULLPTR),
    R("loom_embedding_init", "num = 0", c_emb_init_num, LOOM_ERR_ARG, "loom_embedding_init", "0 x 2", K_VALUE),
    R("loom_embedding_init", "i32", c_emb_init_i32, LOOM_ERR_DTYPE, "loom_embedding_init", "i32", K_DTYPE),
    R_NULL("loom_embedding_init", c_emb_init_null_ctx),
    R("loom_embedding_forward", "f32 ids", c_emb_fwd_float_ids, LOOM_ERR_DTYPE, "loom_embedding_forward", "i32",
      K_DTYPE),
    R("loom_embedding_forward", "NULL module", c_emb_fwd_null_m, LOOM_ERR_ARG, "loom_embedding_forward", "module",
      K_NULLPTR),
    R("loom_embedding_forward", "id 9 of 4 at run time (JIT)", c_emb_fwd_run, LOOM_ERR_INDEX, "index 9", "[0, 4)",
      K_INDEX),
    R_REF("loom_embedding_forward", "id 9 of 4 at run time (reference)", c_emb_fwd_run, LOOM_ERR_INDEX, "index 9",
          "[0, 4)", K_INDEX),
    R_NULL("loom_embedding_forward", c_emb_fwd_null_ctx),
    R("loom_layernorm_init", "NULL module", c_ln_init_null_m, LOOM_ERR_ARG, "loom_layernorm_init", "module",
      K_NULLPTR),
    R("loom_layernorm_init", "dim 0", c_ln_init_dim, LOOM_ERR_ARG, "loom_layernorm_init", "dim 0", K_VALUE),
    R("loom_layernorm_init", "eps -1", c_ln_init_eps, LOOM_ERR_ARG, "loom_layernorm_init", "eps -1", K_VALUE),
    R("loom_layernorm_init", "i32", c_ln_init_i32, LOOM_ERR_DTYPE, "loom_layernorm_init", "i32", K_DTYPE),
    R_NULL("loom_layernorm_init", c_ln_init_null_ctx),
    R("loom_layernorm_forward", "x [2,3] into LayerNorm(4)", c_ln_fwd_width, LOOM_ERR_SHAPE, "loom_layernorm_forward",
      "f32[4]", K_SHAPE),
    R("loom_layernorm_forward", "NULL module", c_ln_fwd_null_m, LOOM_ERR_ARG, "loom_layernorm_forward", "module",
      K_NULLPTR),
    R_NULL("loom_layernorm_forward", c_ln_fwd_null_ctx),
    R("loom_layer_norm", "a null x", c_layer_norm_null, LOOM_ERR_HANDLE, "loom_layer_norm", "null", K_HANDLE),
    R("loom_layer_norm", "eps -1", c_layer_norm_eps, LOOM_ERR_ARG, "loom_layer_norm", "eps -1", K_VALUE),
    R("loom_layer_norm", "a weight [2] for x [2,3]", c_layer_norm_weight, LOOM_ERR_SHAPE, "loom_layer_norm", "f32[2]",
      K_SHAPE),
    R("loom_layer_norm", "i32", c_layer_norm_i32, LOOM_ERR_DTYPE, "loom_layer_norm", "i32", K_DTYPE),
    R_NULL("loom_layer_norm", c_layer_norm_null_ctx),
    R("loom_dropout", "p = 1.5", c_dropout_p, LOOM_ERR_ARG, "loom_dropout", "1.5", K_VALUE),
    R("loom_dropout", "p = -0.1, not training", c_dropout_p_neg, LOOM_ERR_ARG, "loom_dropout", "-0.1", K_VALUE),
    R("loom_dropout", "a null x, not training", c_dropout_null_eval, LOOM_ERR_HANDLE, "loom_dropout", "null",
      K_HANDLE),
    R("loom_dropout", "a stale x, p = 0", c_dropout_stale_eval, LOOM_ERR_HANDLE, "loom_dropout", "stale", K_HANDLE),
    R("loom_dropout", "i32 when training", c_dropout_i32, LOOM_ERR_DTYPE, "loom_dropout", "i32", K_DTYPE),
    R_NULL("loom_dropout", c_dropout_null_ctx),
    R("loom_weight", "null: passes through, no error", c_weight_null, LOOM_OK, NULL, NULL, K_HANDLE),
    R("loom_weight", "a stale node: passes through to the builder", c_weight_node, LOOM_OK, NULL, NULL, K_HANDLE),
    R_NULL("loom_weight", c_weight_null_ctx),
    /* recurrent cells and layers */
    R("loom_rnn_cell", "x [3,2] for w_ih [2,3]", c_rnn_cell_width, LOOM_ERR_SHAPE, "loom_rnn_cell", "f32[3,2]",
      K_SHAPE),
    R("loom_rnn_cell", "a null w_ih", c_rnn_cell_null_w, LOOM_ERR_HANDLE, "loom_rnn_cell", "null", K_HANDLE),
    R("loom_rnn_cell", "h [2,3] for w_hh [2,2]", c_rnn_cell_h, LOOM_ERR_SHAPE, "loom_rnn_cell", "f32[2,3]", K_SHAPE),
    R_NULL("loom_rnn_cell", c_rnn_cell_null_ctx),
    R("loom_lstm_cell", "NULL weights", c_lstm_null_w, LOOM_ERR_ARG, "loom_lstm_cell", "weights", K_NULLPTR),
    R("loom_lstm_cell", "NULL outputs", c_lstm_null_out, LOOM_ERR_ARG, "loom_lstm_cell", "h'", K_NULLPTR),
    R("loom_lstm_cell", "w_hh [6,2] for H 2", c_lstm_w_hh, LOOM_ERR_SHAPE, "loom_lstm_cell", "weight_hh [6,2]", K_SHAPE),
    R("loom_lstm_cell", "a null w_hh", c_lstm_null_w_hh, LOOM_ERR_HANDLE, "loom_lstm_cell", "null", K_HANDLE),
    R("loom_lstm_cell", "x [3,2] for w_ih [8,3]", c_lstm_width, LOOM_ERR_SHAPE, "loom_lstm_cell", "f32[3,2]",
      K_SHAPE),
    R("loom_lstm_cell", "a null c", c_lstm_null_c, LOOM_ERR_HANDLE, "loom_lstm_cell", "null", K_HANDLE),
    R_NULL("loom_lstm_cell", c_lstm_null_ctx),
    R("loom_gru_cell", "a scalar h", c_gru_scalar_h, LOOM_ERR_SHAPE, "loom_gru_cell", "f32[]", K_SHAPE),
    R("loom_gru_cell", "a null h", c_gru_null_h, LOOM_ERR_HANDLE, "loom_gru_cell", "null", K_HANDLE),
    R("loom_gru_cell", "x [3,2] for w_ih [6,3]", c_gru_width, LOOM_ERR_SHAPE, "loom_gru_cell", "f32[3,2]", K_SHAPE),
    R("loom_gru_cell", "w_hh [8,2] for H 2", c_gru_w_hh, LOOM_ERR_SHAPE, "loom_gru_cell", "weight_hh [8,2]", K_SHAPE),
    R("loom_gru_cell", "w_ih [8,3] for H 2", c_gru_w_ih, LOOM_ERR_SHAPE, "loom_gru_cell", "weight_ih [8,3]", K_SHAPE),
    R_NULL("loom_gru_cell", c_gru_null_ctx),
    R("loom_rnn_new", "NULL config", c_rnn_new_null_cfg, LOOM_ERR_ARG, "loom_rnn_new", "configuration", K_NULLPTR),
    R("loom_rnn_new", "mode 9", c_rnn_new_mode, LOOM_ERR_ARG, "loom_rnn_new", "mode 9", K_VALUE),
    R("loom_rnn_new", "hidden 0", c_rnn_new_hidden, LOOM_ERR_ARG, "loom_rnn_new", "hidden 0", K_VALUE),
    R("loom_rnn_new", "input -3", c_rnn_new_input, LOOM_ERR_ARG, "loom_rnn_new", "input -3", K_VALUE),
    R("loom_rnn_new", "layers -1", c_rnn_new_layers, LOOM_ERR_ARG, "loom_rnn_new", "layers -1", K_COUNT),
    R("loom_rnn_new", "layers 65", c_rnn_new_layers_big, LOOM_ERR_ARG, "loom_rnn_new", "layers 65", K_COUNT),
    R("loom_rnn_new", "dropout 1", c_rnn_new_dropout, LOOM_ERR_ARG, "loom_rnn_new", "dropout 1", K_VALUE),
    R("loom_rnn_new", "dropout NaN", c_rnn_new_dropout_nan, LOOM_ERR_ARG, "loom_rnn_new", "dropout nan", K_VALUE),
    R("loom_rnn_new", "proj_size on a GRU", c_rnn_new_proj_gru, LOOM_ERR_ARG, "loom_rnn_new", "proj 2", K_VALUE),
    R("loom_rnn_new", "proj_size = hidden", c_rnn_new_proj_big, LOOM_ERR_ARG, "loom_rnn_new", "proj 4", K_VALUE),
    R("loom_rnn_new", "peepholes on a GRU", c_rnn_new_peep_gru, LOOM_ERR_ARG, "loom_rnn_new", "peepholes", K_VALUE),
    R("loom_rnn_new", "i32", c_rnn_new_i32, LOOM_ERR_DTYPE, "loom_rnn_new", "i32", K_DTYPE),
    R("loom_rnn_new", "dtype 8", c_rnn_new_dtype, LOOM_ERR_DTYPE, "loom_rnn_new", "8 is not a loom dtype", K_DTYPE),
    R("loom_rnn_new", "a parameter name taken: nothing made", c_rnn_new_taken, LOOM_ERR_ARG, "loom_rnn_new",
      "\"rnn.bias_hh_l0\"", K_NAME),
    R_NULL("loom_rnn_new", c_rnn_new_null_ctx),
    R_NULL("loom_rnn_free", c_rnn_free_null),
    R_NULL("loom_rnn_get_config", c_rnn_get_config_null),
    R("loom_rnn_forward", "NULL stack", c_rnn_fwd_null_m, LOOM_ERR_ARG, "loom_rnn_forward", "stack", K_NULLPTR),
    R("loom_rnn_forward", "a stack of another context", c_rnn_fwd_foreign_m, LOOM_ERR_ARG, "loom_rnn_forward",
      "another context", K_HANDLE),
    R("loom_rnn_forward", "NULL output", c_rnn_fwd_null_out, LOOM_ERR_ARG, "loom_rnn_forward", "output", K_NULLPTR),
    R("loom_rnn_forward", "input of rank 2", c_rnn_fwd_rank, LOOM_ERR_SHAPE, "loom_rnn_forward", "f32[2,3]", K_SHAPE),
    R("loom_rnn_forward", "input width 5 for 3", c_rnn_fwd_width, LOOM_ERR_SHAPE, "loom_rnn_forward", "f32[2,2,5]",
      K_SHAPE),
    R("loom_rnn_forward", "f64 input for f32 weights", c_rnn_fwd_dtype, LOOM_ERR_DTYPE, "loom_rnn_forward",
      "f64[2,2,3]", K_DTYPE),
    R("loom_rnn_forward", "T = 0", c_rnn_fwd_no_steps, LOOM_ERR_SHAPE, "loom_rnn_forward", "no time steps", K_SHAPE),
    R("loom_rnn_forward", "a null input", c_rnn_fwd_null_input, LOOM_ERR_HANDLE, "loom_rnn_forward", "null",
      K_HANDLE),
    R("loom_rnn_forward", "a stale input", c_rnn_fwd_stale_input, LOOM_ERR_HANDLE, "loom_rnn_forward", "stale",
      K_HANDLE),
    R("loom_rnn_forward", "f32 lengths", c_rnn_fwd_lengths_dtype, LOOM_ERR_DTYPE, "loom_rnn_forward", "f32[2]",
      K_DTYPE),
    R("loom_rnn_forward", "3 lengths for batch 2", c_rnn_fwd_lengths_shape, LOOM_ERR_SHAPE, "loom_rnn_forward",
      "i32[3]", K_SHAPE),
    R("loom_rnn_forward", "stale lengths", c_rnn_fwd_lengths_stale, LOOM_ERR_HANDLE, "loom_rnn_forward", "stale",
      K_HANDLE),
    R("loom_rnn_forward", "initial h [1,2,3] for [1,2,4]", c_rnn_fwd_init_h, LOOM_ERR_SHAPE, "loom_rnn_forward",
      "initial h f32[1,2,3] is not f32[1,2,4]", K_SHAPE),
    R("loom_rnn_forward", "initial c [2,2,4] for [1,2,4]", c_rnn_fwd_init_c, LOOM_ERR_SHAPE, "loom_rnn_forward",
      "initial c f32[2,2,4] is not f32[1,2,4]", K_SHAPE),
    R("loom_rnn_forward", "f64 initial h", c_rnn_fwd_init_dtype, LOOM_ERR_DTYPE, "loom_rnn_forward", "f64[1,2,4]",
      K_DTYPE),
    R("loom_rnn_forward", "a stale initial h", c_rnn_fwd_init_stale, LOOM_ERR_HANDLE, "loom_rnn_forward", "stale",
      K_HANDLE),
    R_NULL("loom_rnn_forward", c_rnn_fwd_null_ctx),
    /* fine-tuning */
    R("loom_params_set_trainable", "a NULL prefix", c_set_trainable_prefix_null, LOOM_ERR_ARG,
      "loom_params_set_trainable", "prefix", K_NULLPTR),
    R_NULL("loom_params_set_trainable", c_set_trainable_prefix_null_ctx),
    R("loom_lora_add", "a tape node", c_lora_node, LOOM_ERR_HANDLE, "loom_lora_add", "not a parameter", K_HANDLE),
    R("loom_lora_add", "a 1-D parameter", c_lora_vector, LOOM_ERR_ARG, "loom_lora_add", "\"b\" is not a 2-D float",
      K_SHAPE),
    R("loom_lora_add", "a buffer", c_lora_buffer, LOOM_ERR_ARG, "loom_lora_add", "\"buf\"", K_HANDLE),
    R("loom_lora_add", "an i32 parameter", c_lora_i32, LOOM_ERR_ARG, "loom_lora_add", "\"wi\" is not a 2-D float",
      K_DTYPE),
    R("loom_lora_add", "rank 0", c_lora_rank0, LOOM_ERR_ARG, "loom_lora_add", "rank 0", K_VALUE),
    R("loom_lora_add", "rank 3 for [3,2]", c_lora_rank_big, LOOM_ERR_ARG, "loom_lora_add", "rank 3", K_VALUE),
    R("loom_lora_add", "alpha 0", c_lora_alpha, LOOM_ERR_ARG, "loom_lora_add", "alpha 0", K_VALUE),
    R("loom_lora_add", "alpha NaN", c_lora_alpha_nan, LOOM_ERR_ARG, "loom_lora_add", "alpha nan", K_VALUE),
    R("loom_lora_add", "a parameter of another context", c_lora_foreign, LOOM_ERR_HANDLE, "loom_lora_add",
      "not a parameter of this context", K_HANDLE),
    R("loom_lora_add", "twice", c_lora_twice, LOOM_ERR_STATE, "loom_lora_add", "adapter already", K_STATE),
    R("loom_lora_add", "w.lora_B taken: nothing made", c_lora_name_taken, LOOM_ERR_ARG, "loom_lora_add",
      "\"w.lora_B\"", K_NAME),
    R_NULL("loom_lora_add", c_lora_null_ctx),
    R("loom_lora_merge", "no adapter", c_merge_none, LOOM_ERR_STATE, "loom_lora_merge", "no adapter", K_STATE),
    R("loom_lora_merge", "a tape node", c_merge_node, LOOM_ERR_HANDLE, "loom_lora_merge", "not a parameter",
      K_HANDLE),
    R_NULL("loom_lora_merge", c_merge_null_ctx),
    R("loom_lora_attached", "a tape node: false, no error", c_attached_node, LOOM_OK, NULL, NULL, K_HANDLE),
    R_NULL("loom_lora_attached", c_attached_null_ctx),
    /* optimizers */
    R("loom_optimizer_new", "NULL config", c_opt_null_cfg, LOOM_ERR_ARG, "loom_optimizer_new", "no config", K_NULLPTR),
    R("loom_optimizer_new", "kind 9", c_opt_kind, LOOM_ERR_ARG, "loom_optimizer_new", "config.kind 9", K_VALUE),
    R("loom_optimizer_new", "lr -0.1", c_opt_lr_neg, LOOM_ERR_ARG, "loom_optimizer_new", "config.lr = -0.1",
      K_VALUE),
    R("loom_optimizer_new", "lr NaN", c_opt_lr_nan, LOOM_ERR_ARG, "loom_optimizer_new", "config.lr = nan", K_VALUE),
    R("loom_optimizer_new", "lr infinite", c_opt_lr_inf, LOOM_ERR_ARG, "loom_optimizer_new", "config.lr = inf",
      K_VALUE),
    R("loom_optimizer_new", "SGD without lr", c_opt_sgd_lr0, LOOM_ERR_ARG, "loom_optimizer_new", "config.lr is 0",
      K_VALUE),
    R("loom_optimizer_new", "momentum -0.5", c_opt_momentum, LOOM_ERR_ARG, "loom_optimizer_new", "config.momentum",
      K_VALUE),
    R("loom_optimizer_new", "Nesterov without momentum", c_opt_nesterov, LOOM_ERR_ARG, "loom_optimizer_new",
      "config.nesterov", K_VALUE),
    R("loom_optimizer_new", "beta1 1", c_opt_beta1, LOOM_ERR_ARG, "loom_optimizer_new", "config.beta1 = 1",
      K_VALUE),
    R("loom_optimizer_new", "beta2 -0.5", c_opt_beta2, LOOM_ERR_ARG, "loom_optimizer_new", "config.beta2 = -0.5",
      K_VALUE),
    R("loom_optimizer_new", "RMSprop alpha 2", c_opt_alpha, LOOM_ERR_ARG, "loom_optimizer_new", "config.alpha = 2",
      K_VALUE),
    R("loom_optimizer_new", "eps -1e-8", c_opt_eps, LOOM_ERR_ARG, "loom_optimizer_new", "config.eps", K_VALUE),
    R("loom_optimizer_new", "Adam weight decay -1", c_opt_wd, LOOM_ERR_ARG, "loom_optimizer_new",
      "config.weight_decay = -1", K_VALUE),
    R("loom_optimizer_new", "clip_norm -1", c_opt_clip, LOOM_ERR_ARG, "loom_optimizer_new", "config.clip_norm",
      K_VALUE),
    R("loom_optimizer_new", "warmup_steps -3", c_opt_warmup, LOOM_ERR_ARG, "loom_optimizer_new",
      "config.warmup_steps = -3", K_VALUE),
    R("loom_optimizer_new", "schedule 9", c_opt_schedule, LOOM_ERR_ARG, "loom_optimizer_new", "config.schedule 9",
      K_VALUE),
    R("loom_optimizer_new", "step schedule without step_size", c_opt_step_size, LOOM_ERR_ARG, "loom_optimizer_new",
      "config.step_size = 0", K_VALUE),
    R("loom_optimizer_new", "gamma -1", c_opt_gamma, LOOM_ERR_ARG, "loom_optimizer_new", "config.gamma = -1",
      K_VALUE),
    R("loom_optimizer_new", "cosine total_steps -5", c_opt_total, LOOM_ERR_ARG, "loom_optimizer_new",
      "config.total_steps = -5", K_VALUE),
    R("loom_optimizer_new", "cosine min_lr -1", c_opt_min_lr, LOOM_ERR_ARG, "loom_optimizer_new",
      "config.min_lr = -1", K_VALUE),
    R_NULL("loom_optimizer_new", c_opt_new_null_ctx),
    R_NULL("loom_optimizer_free", c_opt_free_null),
    R("loom_optimizer_attach", "NULL optimizer", c_attach_null_o, LOOM_ERR_ARG, "loom_optimizer_attach",
      "no optimizer", K_NULLPTR),
    R("loom_optimizer_attach", "an optimizer of another context", c_attach_foreign, LOOM_ERR_ARG,
      "loom_optimizer_attach", "another context", K_HANDLE),
    R("loom_optimizer_attach", "a null loss", c_attach_null_loss, LOOM_ERR_HANDLE, "loom_optimizer_attach", "null",
      K_HANDLE),
    R("loom_optimizer_attach", "a stale loss", c_attach_stale_loss, LOOM_ERR_HANDLE, "loom_optimizer_attach",
      "stale", K_HANDLE),
    R("loom_optimizer_attach", "a [2,3] loss", c_attach_vector, LOOM_ERR_SHAPE, "loom_optimizer_attach", "f32[2,3]",
      K_SHAPE),
    R("loom_optimizer_attach", "an i32 loss", c_attach_i32, LOOM_ERR_DTYPE, "loom_optimizer_attach", "i32[]",
      K_DTYPE),
    R("loom_optimizer_attach", "twice on one tape", c_attach_twice, LOOM_ERR_STATE, "loom_optimizer_attach",
      "attached to this tape already", K_STATE),
    R_NULL("loom_optimizer_attach", c_attach_null_ctx),
    R("loom_optimizer_step", "NULL optimizer", c_step_null_o, LOOM_ERR_ARG, "loom_optimizer_step", "no optimizer",
      K_NULLPTR),
    R("loom_optimizer_step", "without attach", c_step_unattached, LOOM_ERR_STATE, "loom_optimizer_step",
      "not attached", K_STATE),
    R("loom_optimizer_step", "after loom_reset", c_step_after_reset, LOOM_ERR_STATE, "loom_optimizer_step",
      "not attached", K_STATE),
    R("loom_optimizer_step", "an optimizer of another context", c_step_foreign, LOOM_ERR_ARG, "loom_optimizer_step",
      "another context", K_HANDLE),
    R("loom_optimizer_step", "n = -1: no step counted", c_step_outputs, LOOM_ERR_ARG, "loom_optimizer_step",
      "-1 outputs", K_COUNT),
    R_NULL("loom_optimizer_step", c_step_null_ctx),
    R("loom_optimizer_attach_grads", "n = 0", c_ag_n0, LOOM_ERR_ARG, "loom_optimizer_attach_grads", "n = 0", K_COUNT),
    R("loom_optimizer_attach_grads", "NULL params", c_ag_no_params, LOOM_ERR_ARG, "loom_optimizer_attach_grads",
      "no list of parameters", K_NULLPTR),
    R("loom_optimizer_attach_grads", "NULL grads", c_ag_no_grads, LOOM_ERR_ARG, "loom_optimizer_attach_grads",
      "no list of gradients", K_NULLPTR),
    R("loom_optimizer_attach_grads", "a tape node as a parameter", c_ag_node, LOOM_ERR_HANDLE,
      "loom_optimizer_attach_grads", "params[0] is not a parameter", K_HANDLE),
    R("loom_optimizer_attach_grads", "a parameter of another context", c_ag_foreign_p, LOOM_ERR_HANDLE,
      "loom_optimizer_attach_grads", "params[0] is not a parameter of this context", K_HANDLE),
    R("loom_optimizer_attach_grads", "a frozen parameter", c_ag_frozen, LOOM_ERR_ARG, "loom_optimizer_attach_grads",
      "\"b\" is frozen", K_STATE),
    R("loom_optimizer_attach_grads", "a buffer", c_ag_buffer, LOOM_ERR_ARG, "loom_optimizer_attach_grads",
      "\"buf\" is a buffer", K_HANDLE),
    R("loom_optimizer_attach_grads", "a parameter twice", c_ag_twice, LOOM_ERR_ARG, "loom_optimizer_attach_grads",
      "params[1] is params[0]", K_HANDLE),
    R("loom_optimizer_attach_grads", "a null gradient", c_ag_null_grad, LOOM_ERR_HANDLE,
      "loom_optimizer_attach_grads", "grads[0]", K_HANDLE),
    R("loom_optimizer_attach_grads", "a stale gradient", c_ag_stale_grad, LOOM_ERR_HANDLE,
      "loom_optimizer_attach_grads", "grads[0] is a stale", K_HANDLE),
    R("loom_optimizer_attach_grads", "a gradient [2,3] for [3,2]", c_ag_shape, LOOM_ERR_SHAPE,
      "loom_optimizer_attach_grads", "grads[0] is f32[2,3], but parameter \"w\" is f32[3,2]", K_SHAPE),
    R("loom_optimizer_attach_grads", "an f64 gradient for f32", c_ag_dtype, LOOM_ERR_DTYPE,
      "loom_optimizer_attach_grads", "grads[0] is f64[3,2]", K_DTYPE),
    R("loom_optimizer_attach_grads", "twice on one tape", c_ag_again, LOOM_ERR_STATE, "loom_optimizer_attach_grads",
      "attached to this tape already", K_STATE),
    R("loom_optimizer_attach_grads", "an optimizer of another context", c_ag_foreign_o, LOOM_ERR_ARG,
      "loom_optimizer_attach_grads", "another context", K_HANDLE),
    R("loom_optimizer_attach_grads", "NULL optimizer", c_ag_null_o, LOOM_ERR_ARG, "loom_optimizer_attach_grads",
      "no optimizer", K_NULLPTR),
    R_NULL("loom_optimizer_attach_grads", c_ag_null_ctx),
    R_NULL("loom_optimizer_grad_norm", c_grad_norm_null),
    R("loom_optimizer_grad_norm", "not attached: null, no error", c_grad_norm_unattached, LOOM_OK, NULL, NULL,
      K_STATE),
    R_NULL("loom_optimizer_steps", c_steps_null),
    R_NULL_CODE("loom_optimizer_set_steps", c_set_steps_null, LOOM_ERR_ARG),
    R("loom_optimizer_set_steps", "steps -1", c_set_steps_neg, LOOM_ERR_ARG, "loom_optimizer_set_steps", "-1",
      K_VALUE),
    R_NULL("loom_optimizer_lr", c_lr_null),
    /* checkpoints */
    R("loom_checkpoint_save", "NULL path", c_save_null_path, LOOM_ERR_ARG, "loom_checkpoint_save", "NULL", K_NULLPTR),
    R("loom_checkpoint_save", "a directory that does not exist", c_save_no_dir, LOOM_ERR_IO, "loom_checkpoint_save",
      "no/such/dir", K_FILE),
    R("loom_checkpoint_save", "a path that is a directory", c_save_over_dir, LOOM_ERR_IO, "loom_checkpoint_save",
      "directory", K_FILE),
    R("loom_checkpoint_save", "a config that is not UTF-8", c_save_utf8, LOOM_ERR_ARG, "loom_checkpoint_save",
      "UTF-8", K_VALUE),
    R_NULL("loom_checkpoint_save", c_save_null_ctx),
    R("loom_checkpoint_load", "a missing file", c_load_no_file, LOOM_ERR_IO, "loom_checkpoint_load",
      "absent.safetensors", K_FILE),
    R("loom_checkpoint_load", "a directory", c_load_dir, LOOM_ERR_IO, "loom_checkpoint_load", "directory", K_FILE),
    R("loom_checkpoint_load", "NULL path", c_load_null_path, LOOM_ERR_ARG, "loom_checkpoint_load", "NULL", K_NULLPTR),
    R("loom_checkpoint_load", "an empty path", c_load_empty_path, LOOM_ERR_ARG, "loom_checkpoint_load", "empty",
      K_NULLPTR),
    R("loom_checkpoint_load", "unknown flags", c_load_flags, LOOM_ERR_ARG, "loom_checkpoint_load", "0x10", K_VALUE),
    R("loom_checkpoint_load", "a model with other shapes", c_load_shape, LOOM_ERR_FORMAT, "\"w\" is F32[2,3]",
      "F32[3,2]", K_FILE),
    R("loom_checkpoint_load", "a model with another dtype", c_load_dtype, LOOM_ERR_FORMAT, "\"w\" is F64[3,2]",
      "F32[3,2]", K_FILE),
    R("loom_checkpoint_load", "a model without a parameter", c_load_missing, LOOM_ERR_FORMAT, "\"b\"", "missing",
      K_FILE),
    R("loom_checkpoint_load", "a model with an extra parameter", c_load_extra, LOOM_ERR_FORMAT, "\"extra\"",
      "unexpected", K_FILE),
    R("loom_checkpoint_load", "optimizer state this model lacks", c_load_optim_state, LOOM_ERR_FORMAT,
      "\"optim.w.exp_avg\"", "unexpected", K_FILE),
    R("loom_checkpoint_load", "4 bytes cut", c_load_truncated, LOOM_ERR_FORMAT, "loom_checkpoint_load", "truncated",
      K_FILE),
    R("loom_checkpoint_load", "half the file cut", c_load_half, LOOM_ERR_FORMAT, "loom_checkpoint_load", "truncated",
      K_FILE),
    R("loom_checkpoint_load", "3 bytes left", c_load_tiny, LOOM_ERR_FORMAT, "loom_checkpoint_load", "too short",
      K_FILE),
    R("loom_checkpoint_load", "a data byte flipped", c_load_corrupt, LOOM_ERR_FORMAT, "loom_checkpoint_load",
      "checksum mismatch", K_FILE),
    R("loom_checkpoint_load", "the header not JSON", c_load_json, LOOM_ERR_FORMAT, "loom_checkpoint_load",
      "not valid JSON", K_FILE),
    R("loom_checkpoint_load", "a header length of 2^64 - 1", c_load_header_len, LOOM_ERR_FORMAT,
      "loom_checkpoint_load", "header length", K_FILE),
    R_NULL("loom_checkpoint_load", c_load_null_ctx),
    R("loom_checkpoint_config", "NULL buffer", c_config_null_buf, LOOM_ERR_ARG, "loom_checkpoint_config", "buffer",
      K_NULLPTR),
    R("loom_checkpoint_config", "an 8-byte buffer", c_config_small, LOOM_ERR_ARG, "loom_checkpoint_config",
      "holds 8", K_VALUE),
    R("loom_checkpoint_config", "a missing file", c_config_no_file, LOOM_ERR_IO, "loom_checkpoint_config",
      "absent.safetensors", K_FILE),
    R_NULL("loom_checkpoint_config", c_config_null_ctx),
    /* autograd */
    R("loom_backward", "a [3,2] loss", c_backward_vector, LOOM_ERR_SHAPE, "loom_backward", "f32[3,2]", K_SHAPE),
    R("loom_backward", "an i32 loss", c_backward_i32, LOOM_ERR_DTYPE, "loom_backward", "i32[]", K_DTYPE),
    R("loom_backward", "a null loss", c_backward_null, LOOM_ERR_HANDLE, "loom_backward", "null", K_HANDLE),
    R("loom_backward", "a stale loss", c_backward_stale, LOOM_ERR_HANDLE, "loom_backward", "stale", K_HANDLE),
    R("loom_backward", "a foreign loss", c_backward_foreign, LOOM_ERR_HANDLE, "loom_backward", "foreign", K_HANDLE),
    R_NULL("loom_backward", c_backward_null_ctx),
    R("loom_grad", "a stale handle", c_grad_stale, LOOM_ERR_HANDLE, "loom_grad", "stale", K_HANDLE),
    R("loom_grad", "a parameter of another context", c_grad_foreign_p, LOOM_ERR_HANDLE, "loom_grad",
      "another context", K_HANDLE),
    R("loom_grad", "a parameter the loss does not reach: null, no error", c_grad_unreached, LOOM_OK, NULL, NULL,
      K_STATE),
    R_NULL("loom_grad", c_grad_null_ctx),
    R("loom_vjp", "ny = 0", c_vjp_ny0, LOOM_ERR_ARG, "loom_vjp", "0 outputs", K_COUNT),
    R("loom_vjp", "ny = -1", c_vjp_ny_neg, LOOM_ERR_ARG, "loom_vjp", "-1 outputs", K_COUNT),
    R("loom_vjp", "nx = -1", c_vjp_nx_neg, LOOM_ERR_ARG, "loom_vjp", "-1 inputs", K_COUNT),
    R("loom_vjp", "NULL ys", c_vjp_no_ys, LOOM_ERR_ARG, "loom_vjp", "outputs", K_NULLPTR),
    R("loom_vjp", "NULL xs", c_vjp_no_xs, LOOM_ERR_ARG, "loom_vjp", "inputs", K_NULLPTR),
    R("loom_vjp", "NULL dxs", c_vjp_no_room, LOOM_ERR_ARG, "loom_vjp", "gradients", K_NULLPTR),
    R("loom_vjp", "a null y", c_vjp_null_y, LOOM_ERR_HANDLE, "loom_vjp", "ys[0] is a null handle", K_HANDLE),
    R("loom_vjp", "a stale x", c_vjp_stale_x, LOOM_ERR_HANDLE, "loom_vjp", "xs[1] is a stale", K_HANDLE),
    R("loom_vjp", "a seed [2,3] for y [3,2]", c_vjp_seed_shape, LOOM_ERR_SHAPE, "loom_vjp", "f32[2,3]", K_SHAPE),
    R("loom_vjp", "an f64 seed for f32 y", c_vjp_seed_dtype, LOOM_ERR_DTYPE, "loom_vjp", "f64[2,3]", K_DTYPE),
    R("loom_vjp", "no seed for y [3,2]", c_vjp_no_seed, LOOM_ERR_SHAPE, "loom_vjp", "f32[3,2]", K_SHAPE),
    R("loom_vjp", "a foreign seed", c_vjp_foreign_seed, LOOM_ERR_HANDLE, "loom_vjp", "dys[0] is a stale or foreign", K_HANDLE),
    R_NULL("loom_vjp", c_vjp_null_ctx),
    R("loom_set_checkpoint_every", "k = -1", c_ckpt_every_neg, LOOM_ERR_ARG, "loom_set_checkpoint_every", "k is -1",
      K_VALUE),
    R_NULL("loom_set_checkpoint_every", c_ckpt_every_null_ctx),
    R_NULL("loom_get_checkpoint_every", c_get_ckpt_every_null),
    /* running */
    R("loom_run", "n = -1", c_run_n_neg, LOOM_ERR_ARG, "loom_run", "-1 outputs", K_COUNT),
    R("loom_run", "2 outputs, no list", c_run_no_list, LOOM_ERR_ARG, "loom_run", "without a list", K_NULLPTR),
    R("loom_run", "a null output", c_run_null, LOOM_ERR_HANDLE, "loom_run", "operand 2", K_HANDLE),
    R("loom_run", "a stale output", c_run_stale, LOOM_ERR_HANDLE, "loom_run", "stale", K_HANDLE),
    R("loom_run", "a foreign output", c_run_foreign, LOOM_ERR_HANDLE, "loom_run", "foreign", K_HANDLE),
    R("loom_run", "a parameter of another context", c_run_foreign_p, LOOM_ERR_HANDLE, "loom_run", "another context",
      K_HANDLE),
    R("loom_run", "an input never fed (JIT)", c_run_unfed, LOOM_ERR_STATE, "loom_run", "\"in\"", K_STATE),
    R_REF("loom_run", "an input never fed (reference)", c_run_unfed, LOOM_ERR_STATE, "loom_run", "\"in\"", K_STATE),
    R_NULL("loom_run", c_run_null_ctx),
    R("loom_eval", "n = -2", c_eval_n_neg, LOOM_ERR_ARG, "loom_eval", "-2 outputs", K_COUNT),
    R("loom_eval", "an input never fed (JIT)", c_eval_unfed, LOOM_ERR_STATE, "loom_eval", "\"in\"", K_STATE),
    R_REF("loom_eval", "an input never fed (reference)", c_eval_unfed, LOOM_ERR_STATE, "loom_eval", "\"in\"",
          K_STATE),
    R("loom_eval", "a handle of a freed context", c_eval_freed, LOOM_ERR_HANDLE, "loom_eval", "foreign", K_HANDLE),
    R_NULL("loom_eval", c_eval_null_ctx),
    R("loom_get_stats", "NULL out", c_stats_null, LOOM_ERR_ARG, "loom_get_stats", "NULL", K_NULLPTR),
    R_NULL_CODE("loom_get_stats", c_stats_null_ctx, LOOM_ERR_ARG),
    R("loom_fusion_report", "NULL buffer: a length, no error", c_report_null_buf, LOOM_OK, NULL, NULL, K_NULLPTR),
    R_NULL("loom_fusion_report", c_report_null_ctx),
    R("loom_plan_dot", "NULL path", c_dot_null_path, LOOM_ERR_ARG, "loom_plan_dot", "no path", K_NULLPTR),
    R("loom_plan_dot", "nothing to compile", c_dot_nothing, LOOM_ERR_ARG, "loom_plan_dot", "nothing to compile",
      K_COUNT),
    R("loom_plan_dot", "n = -1", c_dot_n_neg, LOOM_ERR_ARG, "loom_plan_dot", "-1 outputs", K_COUNT),
    R("loom_plan_dot", "a directory that does not exist", c_dot_bad_dir, LOOM_ERR_IO, "loom_plan_dot", "no/such",
      K_FILE),
    R("loom_plan_dot", "a null output", c_dot_null_handle, LOOM_ERR_HANDLE, "loom_plan_dot", "null", K_HANDLE),
    R_NULL("loom_plan_dot", c_dot_null_ctx),
    R_NULL("loom_get_backend", c_backend_null),
    R_NULL("loom_set_anomaly", c_anomaly_null_ctx),
    R_NULL("loom_get_anomaly", c_get_anomaly_null),
    R("loom_set_threads", "0", c_threads_zero, LOOM_ERR_ARG, "loom_set_threads", "0 threads", K_VALUE),
    R("loom_set_threads", "-1", c_threads_neg, LOOM_ERR_ARG, "loom_set_threads", "-1 threads", K_VALUE),
    R("loom_set_threads", "1025", c_threads_big, LOOM_ERR_ARG, "loom_set_threads", "1025 threads", K_VALUE),
    R_NULL("loom_set_threads", c_threads_null_ctx),
    R_NULL("loom_get_threads", c_get_threads_null),
    R("loom_data", "a node that was not an output", c_data_not_output, LOOM_ERR_STATE, "loom_data",
      "not an output of the last run", K_STATE),
    R("loom_data", "a null handle", c_data_null, LOOM_ERR_HANDLE, "loom_data", "a null handle", K_HANDLE),
    R("loom_data", "a stale handle", c_data_stale, LOOM_ERR_HANDLE, "loom_data", "stale", K_HANDLE),
    R_NULL("loom_data", c_data_null_ctx),
    R("loom_read", "an 8-byte buffer for 24", c_read_short, LOOM_ERR_ARG, "loom_read", "24 bytes, 8 asked",
      K_VALUE),
    R("loom_read", "a 32-byte buffer for 24", c_read_long, LOOM_ERR_ARG, "loom_read", "24 bytes, 32 asked",
      K_VALUE),
    R("loom_read", "NULL destination", c_read_null_dst, LOOM_ERR_ARG, "loom_read", "0 asked", K_NULLPTR),
    R("loom_read", "a node not run", c_read_not_output, LOOM_ERR_STATE, "loom_read", "not an output", K_STATE),
    R("loom_read", "a foreign handle", c_read_foreign, LOOM_ERR_HANDLE, "loom_read", "foreign", K_HANDLE),
    R("loom_read", "8 bytes of a 24-byte parameter", c_read_param_short, LOOM_ERR_ARG, "loom_read",
      "24 bytes, 8 asked", K_VALUE),
    R_NULL("loom_read", c_read_null_ctx),
    R("loom_item", "6 elements", c_item_many, LOOM_ERR_SHAPE, "loom_item", "6 elements", K_SHAPE),
    R("loom_item", "a null handle", c_item_null, LOOM_ERR_HANDLE, "loom_item", "null", K_HANDLE),
    R("loom_item", "a parameter of 6 elements", c_item_param, LOOM_ERR_SHAPE, "loom_item", "6 elements", K_SHAPE),
    R_NULL("loom_item", c_item_null_ctx),
    /* ahead-of-time compilation */
    R("loom_aot_emit", "NULL directory", c_aot_null_dir, LOOM_ERR_ARG, "loom_aot_emit", "directory", K_NULLPTR),
    R("loom_aot_emit", "NULL options", c_aot_null_opts, LOOM_ERR_ARG, "loom_aot_emit", "options", K_NULLPTR),
    R("loom_aot_emit", "prefix \"9lives\"", c_aot_prefix_digit, LOOM_ERR_ARG, "loom_aot_emit", "\"9lives\"", K_NAME),
    R("loom_aot_emit", "prefix \"int\"", c_aot_prefix_keyword, LOOM_ERR_ARG, "loom_aot_emit", "\"int\"", K_NAME),
    R("loom_aot_emit", "a 299-character prefix", c_aot_prefix_long, LOOM_ERR_ARG, "loom_aot_emit", "prefix",
      K_NAME),
    R("loom_aot_emit", "an unknown CPU", c_aot_cpu, LOOM_ERR_ARG, "loom_aot_emit", "pentium-mmx-turbo", K_VALUE),
    R("loom_aot_emit", "no entries", c_aot_no_entries, LOOM_ERR_ARG, "loom_aot_emit", "nentries 0", K_COUNT),
    R("loom_aot_emit", "NULL entries", c_aot_entries_null, LOOM_ERR_ARG, "loom_aot_emit", "no entries", K_NULLPTR),
    R("loom_aot_emit", "a directory that does not exist", c_aot_no_such_dir, LOOM_ERR_IO, "loom_aot_emit",
      "no/such/dir", K_FILE),
    R("loom_aot_emit", "a file for a directory", c_aot_dir_file, LOOM_ERR_IO, "loom_aot_emit", "not a directory",
      K_FILE),
    R("loom_aot_emit", "entry \"two words\"", c_aot_entry_name, LOOM_ERR_ARG, "loom_aot_emit", "\"two words\"",
      K_NAME),
    R("loom_aot_emit", "an entry without a name", c_aot_entry_name_null, LOOM_ERR_ARG, "loom_aot_emit", "entry 0",
      K_NAME),
    R("loom_aot_emit", "two entries named \"step\"", c_aot_entry_twice, LOOM_ERR_ARG, "loom_aot_emit",
      "two entries are named \"step\"", K_NAME),
    R("loom_aot_emit", "an input that is a tanh", c_aot_not_input, LOOM_ERR_ARG, "loom_aot_emit",
      "not a loom_input", K_HANDLE),
    R("loom_aot_emit", "an input listed twice", c_aot_input_twice, LOOM_ERR_ARG, "loom_aot_emit", "again", K_HANDLE),
    R("loom_aot_emit", "no outputs", c_aot_no_outputs, LOOM_ERR_ARG, "loom_aot_emit", "0 outputs", K_COUNT),
    R("loom_aot_emit", "ninputs -1", c_aot_ninputs_neg, LOOM_ERR_ARG, "loom_aot_emit", "-1 inputs", K_COUNT),
    R("loom_aot_emit", "commit without assignments", c_aot_commit, LOOM_ERR_ARG, "loom_aot_emit", "no loom_assign",
      K_STATE),
    R("loom_aot_emit", "output named \"memory\"", c_aot_output_name, LOOM_ERR_ARG, "loom_aot_emit", "\"memory\"",
      K_NAME),
    R("loom_aot_emit", "a stale output", c_aot_stale_output, LOOM_ERR_HANDLE, "loom_aot_emit", "outputs[0] is a stale", K_HANDLE),
    R("loom_aot_emit", "an input neither listed nor fed", c_aot_unfed, LOOM_ERR_ARG, "loom_aot_emit", "\"in\"",
      K_STATE),
    R_NULL("loom_aot_emit", c_aot_null_ctx),
};

/* Public functions with no bad-input row, and why. */
static const struct {
    const char *fn, *why;
} no_case[] = {
    { "loom_is_null", "static inline on a value: every loom_t is a fine question" },
};
/* Beyond any table: a handle to a freed optimizer, stack or context, or a
 * pointer to too short an array, cannot be told from a good one in C;
 * those are the caller's to avoid (as with free() itself). */

/* ------------------------------------------------------------------ */
/* Running a case                                                     */
/* ------------------------------------------------------------------ */

static int say(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int say(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, size, fmt, ap);
    va_end(ap);
    return 1;
}

static const char *rc_name(int rc)
{
    return rc == BI_NOT_NULL ? "a handle" : rc == BI_WRONG ? "a wrong value" : loom_code_name((loom_code)rc);
}

/* The contexts and the handles every case may use. */
static int setup(bi_env *e, char *out, size_t size)
{
    e->ctx = loom_ctx_new(&e->opts);
    e->other = loom_ctx_new(&e->opts);
    loom_ctx *gone = loom_ctx_new(&e->opts);
    if (!e->ctx || !e->other || !gone)
        return say(out, size, "setup: no context");
    loom_ctx *ctx = e->ctx;
    e->stale = loom_input(ctx, "old", LOOM_F32, LOOM_SHAPE(2, 3));
    loom_reset(ctx);
    e->freed = loom_input(gone, "gone", LOOM_F32, LOOM_SHAPE(2, 3));
    loom_ctx_free(gone);
    e->x23 = loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(2, 3), (float[]){ 1, 2, 3, 4, 5, 6 });
    e->x32 = loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(3, 2), (float[]){ 1, 2, 3, 4, 5, 6 });
    e->d23 = loom_tensor(ctx, LOOM_F64, LOOM_SHAPE(2, 3), (double[]){ 1, 2, 3, 4, 5, 6 });
    e->i3 = loom_tensor(ctx, LOOM_I32, LOOM_SHAPE(3), (int32_t[]){ 0, 1, 2 });
    e->v3 = loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(3), (float[]){ 0, 1, 2 });
    e->s = loom_tensor(ctx, LOOM_F32, LOOM_SCALAR, (float[]){ 1 });
    e->in23 = loom_input(ctx, "in", LOOM_F32, LOOM_SHAPE(2, 3));
    e->w = loom_param(ctx, "w", LOOM_F32, LOOM_SHAPE(3, 2));
    e->b = loom_param(ctx, "b", LOOM_F32, LOOM_SHAPE(2));
    e->buf = loom_buffer(ctx, "buf", LOOM_F32, LOOM_SHAPE(2));
    e->wi = loom_param(ctx, "wi", LOOM_I32, LOOM_SHAPE(2, 2));
    loom_param_init_const(ctx, e->w, 0.5);
    e->foreign = loom_input(e->other, "y", LOOM_F32, LOOM_SHAPE(2, 3));
    e->foreign_p = loom_param(e->other, "w", LOOM_F32, LOOM_SHAPE(3, 2));
    if (loom_failed(ctx) || loom_failed(e->other))
        return say(out, size, "setup: %s%s", loom_errmsg(ctx), loom_errmsg(e->other));
    const char *base = getenv("TMPDIR");
    snprintf(e->dir, sizeof e->dir, "%s/loom-badinput-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(e->dir))
        return say(out, size, "setup: mkdtemp %s: %s", e->dir, strerror(errno));
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void teardown(bi_env *e)
{
    for (int i = 0; i < 2; i++) {
        loom_optimizer_free(e->opt[i]);
        loom_rnn_free(e->rnn[i]);
    }
    loom_ctx_free(e->ctx);
    loom_ctx_free(e->other);
    if (e->dir[0])
        nftw(e->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* The call gave the row's code, and the message names the cause. */
static int check_result(const bi_case *c, bi_env *e, int rc, char *out, size_t size)
{
    bool noctx = c->flags & BI_NOCTX;
    const char *msg = noctx ? (e->msg ? e->msg : "") : loom_errmsg(e->ctx);
    if (rc == BI_WRONG)
        return say(out, size, "wrong result: %s", e->why);
    if (rc == BI_NOT_NULL)
        return say(out, size, "gave a handle (or object) where it should fail with %s", loom_code_name(c->code));
    if (rc != (int)c->code)
        return say(out, size, "gave %s, expected %s: \"%s\"", rc_name(rc), loom_code_name(c->code), msg);
    if (noctx && loom_failed(e->ctx))
        return say(out, size, "a call without the context left an error on it: %s", loom_errmsg(e->ctx));
    if (!noctx && (int)loom_status(e->ctx) != rc)
        return say(out, size, "returned %s, but the context holds %s: \"%s\"", rc_name(rc),
                   loom_code_name(loom_status(e->ctx)), msg);
    if (c->frag1 && !strstr(msg, c->frag1))
        return say(out, size, "message \"%s\" does not name \"%s\"", msg, c->frag1);
    if (c->frag2 && !strstr(msg, c->frag2))
        return say(out, size, "message \"%s\" does not name \"%s\"", msg, c->frag2);
    if (!noctx && c->code != LOOM_OK && (!msg[0] || strstr(msg, "(null)")))
        return say(out, size, "message \"%s\" is empty or prints a NULL string", msg);
    return 0;
}

/* loom.h: after the first error every builder returns null, and the
 * error stays the first one until loom_clear_error. */
static int check_sticky(const bi_case *c, bi_env *e, char *out, size_t size)
{
    if ((c->flags & BI_NOCTX) || c->code == LOOM_OK)
        return 0;
    loom_ctx *ctx = e->ctx;
    char first[600];
    snprintf(first, sizeof first, "%s", loom_errmsg(ctx));
    if (!loom_is_null(loom_scalar(ctx, LOOM_F32, 1)))
        return say(out, size, "not sticky: a builder recorded a node after the error");
    loom_code r = loom_run(ctx, 0, NULL);
    if (r != c->code)
        return say(out, size, "not sticky: loom_run after the error gave %s", loom_code_name(r));
    if (loom_status(ctx) != c->code || strcmp(first, loom_errmsg(ctx)) != 0)
        return say(out, size, "not sticky: the error changed from \"%s\" to %s \"%s\"", first,
                   loom_code_name(loom_status(ctx)), loom_errmsg(ctx));
    return 0;
}

/* Cleared, the context computes again: sum(2 x) of x = 1, 2, 3 is 12. */
static int check_usable(bi_env *e, char *out, size_t size)
{
    loom_ctx *ctx = e->ctx;
    loom_clear_error(ctx);
    if (loom_failed(ctx) || loom_errmsg(ctx)[0])
        return say(out, size, "loom_clear_error left %s \"%s\"", loom_code_name(loom_status(ctx)), loom_errmsg(ctx));
    loom_t x = loom_tensor(ctx, LOOM_F32, LOOM_SHAPE(3), (float[]){ 1, 2, 3 });
    loom_t y = loom_sum_all(ctx, loom_muls(ctx, x, 2));
    loom_code r = loom_eval(ctx, 1, &y);
    if (r != LOOM_OK)
        return say(out, size, "after the error was cleared a valid run fails: %s \"%s\"", loom_code_name(r),
                   loom_errmsg(ctx));
    double v = loom_item(ctx, y);
    if (v != 12)
        return say(out, size, "after the error was cleared a valid run gives %g, not 12", v);
    return 0;
}

/* The whole case, in the child: 0 if it passed, else a report in out. */
static int case_body(const bi_case *c, char *out, size_t size)
{
    tu_counting ca = { .fail_at = -1 };
    static bi_env env;
    bi_env *e = &env;
    *e = (bi_env){ .ca = &ca };
    e->opts = (loom_options){ .alloc = tu_counting_alloc, .alloc_ud = &ca, .threads = 1,
                              .backend = (c->flags & BI_REF) ? LOOM_BACKEND_REFERENCE : LOOM_BACKEND_JIT };
    int bad = setup(e, out, size);
    if (!bad) {
        int rc = c->call(e);
        bad = check_result(c, e, rc, out, size);
        if (!bad) /* the message, for LOOM_BADINPUT_VERBOSE */
            snprintf(out, size, "%s", (c->flags & BI_NOCTX) ? (e->msg ? e->msg : "") : loom_errmsg(e->ctx));
        if (!bad)
            bad = check_sticky(c, e, out, size);
        if (!bad)
            bad = check_usable(e, out, size);
    }
    teardown(e);
    if (!bad && ca.bad_osize)
        bad = say(out, size, "%zu frees or resizes gave a wrong old size", ca.bad_osize);
    if (!bad && (ca.live_bytes || ca.live_blocks))
        bad = say(out, size, "leak: %lld bytes in %lld blocks still allocated after loom_ctx_free", ca.live_bytes,
                  ca.live_blocks);
    return bad;
}

/* Runs c in a child process; 0 if it passed, else 1 with a report. */
static int run_case(const bi_case *c, char *out, size_t size)
{
    int fd[2];
    out[0] = 0;
    if (pipe(fd) != 0)
        return say(out, size, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return say(out, size, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        /* cmocka's handlers would resume the suite inside the child */
        const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
        for (size_t i = 0; i < TU_LEN(sigs); i++)
            signal(sigs[i], SIG_DFL);
        close(fd[0]);
        setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 }); /* the crashes on purpose leave no cores */
        alarm(120);
        char msg[2048] = "";
        int bad = case_body(c, msg, sizeof msg);
        if (write(fd[1], msg, strlen(msg)) < 0)
            bad = 2;
        _exit(bad ? 1 : 0);
    }
    close(fd[1]);
    size_t n = 0;
    for (;;) {
        ssize_t k = read(fd[0], out + n, size - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
        if (n + 1 >= size)
            break;
    }
    out[n] = 0;
    close(fd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(st)) {
        snprintf(out + n, size - n, "%skilled by signal %d (%s)", n ? "; " : "", WTERMSIG(st), strsignal(WTERMSIG(st)));
        return 1;
    }
    if (WEXITSTATUS(st) != 0 && n == 0)
        snprintf(out, size, "exit code %d without a report (a crash under a sanitizer?)", WEXITSTATUS(st));
    return WEXITSTATUS(st) != 0;
}

/* ------------------------------------------------------------------ */
/* Tests                                                              */
/* ------------------------------------------------------------------ */

static bool in_table(const char *fn)
{
    for (size_t i = 0; i < TU_LEN(cases); i++)
        if (!strcmp(cases[i].fn, fn))
            return true;
    return false;
}

static void test_badinput_table(void **state)
{
    (void)state;
    const char *only = getenv("LOOM_BADINPUT_ONLY"); /* a substring of "fn: what", to run a few */
    const char *v = getenv("LOOM_BADINPUT_VERBOSE");      /* 1: every case's message */
    bool verbose = v && *v && strcmp(v, "0") != 0;
    char report[2048] = "", out[2048];
    size_t used = 0;
    int bad = 0, ran = 0, by_kind[K_KIND_COUNT] = { 0 };
    const char *fns[TU_LEN(cases)];
    int nfns = 0;
    /* LLVM's one-time set-up here, inherited by every child */
    loom_ctx *warm = loom_ctx_new(&(loom_options){ .threads = 1 });
    loom_t one = loom_scalar(warm, LOOM_F32, 1);
    assert_int_equal(loom_eval(warm, 1, &one), LOOM_OK);
    loom_ctx_free(warm);
    for (size_t i = 0; i < TU_LEN(cases); i++) {
        const bi_case *c = &cases[i];
        char label[300];
        snprintf(label, sizeof label, "%s: %s", c->fn, c->what);
        if (only && !strstr(label, only))
            continue;
        ran++;
        by_kind[c->kind]++;
        int k = 0;
        while (k < nfns && strcmp(fns[k], c->fn))
            k++;
        if (k == nfns)
            fns[nfns++] = c->fn;
        if (!run_case(c, out, sizeof out)) {
            if (verbose)
                print_message("badinput: ok %s -> %s \"%s\"\n", label, loom_code_name(c->code), out);
            continue;
        }
        bad++;
        print_message("badinput: FAILED %s (%s): %s\n", label, loom_code_name(c->code), out);
        if (used < sizeof report)
            used += (size_t)snprintf(report + used, sizeof report - used, "\n  %s", label);
    }
    print_message("badinput: %d cases over %d entry points ran, %d failed\n", ran, nfns, bad);
    for (int k = 0; k < K_KIND_COUNT; k++)
        print_message("badinput:   %-20s %3d\n", kind_names[k], by_kind[k]);
    if (bad)
        fail_msg("%d of %d bad-input cases failed:%s", bad, ran, report);
}

/* Every function loom.h declares has a row or a reason. */
static void test_badinput_covers_loom_h(void **state)
{
    (void)state;
    const char *root = getenv("LOOM_SOURCE_ROOT");
    if (!root)
        skip();
    char path[1024];
    snprintf(path, sizeof path, "%s/include/loom.h", root);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    regex_t re;
    assert_int_equal(regcomp(&re, "^[A-Za-z_][A-Za-z0-9_ ]*[ *](loom_[a-z0-9_]+)\\(", REG_EXTENDED), 0);
    char line[1024], missing[4096] = "";
    size_t used = 0;
    int declared = 0, uncovered = 0;
    while (fgets(line, sizeof line, f)) {
        regmatch_t m[2];
        if (!strncmp(line, "typedef", 7) || regexec(&re, line, 2, m, 0) != 0)
            continue;
        char fn[128];
        int len = (int)(m[1].rm_eo - m[1].rm_so);
        snprintf(fn, sizeof fn, "%.*s", len, line + m[1].rm_so);
        declared++;
        bool excused = false;
        for (size_t i = 0; i < TU_LEN(no_case); i++)
            excused |= !strcmp(no_case[i].fn, fn);
        if (in_table(fn) || excused)
            continue;
        uncovered++;
        if (used < sizeof missing)
            used += (size_t)snprintf(missing + used, sizeof missing - used, " %s", fn);
    }
    regfree(&re);
    fclose(f);
    print_message("badinput: loom.h declares %d functions; %zu without a row, each with a reason\n", declared,
                  TU_LEN(no_case));
    assert_true(declared > 100);
    if (uncovered)
        fail_msg("%d public functions have no bad-input row and no reason in no_case[]:%s", uncovered, missing);
    /* and no row names a function loom.h does not declare (a typo) */
    for (size_t i = 0; i < TU_LEN(cases); i++) {
        f = fopen(path, "r");
        bool found = false;
        char want[140];
        snprintf(want, sizeof want, "%s(", cases[i].fn);
        while (!found && fgets(line, sizeof line, f))
            found = strstr(line, want) != NULL;
        fclose(f);
        if (!found)
            fail_msg("row %zu names %s, which loom.h does not declare", i, cases[i].fn);
    }
}

/* Rows that are wrong on purpose: the harness must report each. */
static int m_wrong_code(bi_env *e) { return H(e, loom_neg(e->ctx, LOOM_NULL)); }
static int m_crash(bi_env *e)
{
    (void)e;
    raise(SIGSEGV);
    return 0;
}
static int m_abort(bi_env *e)
{
    (void)e;
    abort();
}
static int m_leak(bi_env *e)
{
    tu_counting_alloc(e->ca, NULL, 0, 32); /* a block never freed */
    return H(e, loom_neg(e->ctx, LOOM_NULL));
}
static int m_not_null(bi_env *e) { return H(e, loom_neg(e->ctx, e->x23)); }
static void test_badinput_harness_can_fail(void **state)
{
    (void)state;
    static const struct {
        bi_case c;
        const char *report;
    } meta[] = {
        { R("loom_neg", "wrong code", m_wrong_code, LOOM_ERR_SHAPE, NULL, NULL, K_HANDLE), "expected LOOM_ERR_SHAPE" },
        { R("loom_neg", "missing fragment", m_wrong_code, LOOM_ERR_HANDLE, "loom_neg", "zebra", K_HANDLE), "zebra" },
        { R("loom_neg", "crash", m_crash, LOOM_ERR_HANDLE, NULL, NULL, K_HANDLE), NULL },
        { R("loom_neg", "abort", m_abort, LOOM_ERR_HANDLE, NULL, NULL, K_HANDLE), NULL },
        { R("loom_neg", "leak", m_leak, LOOM_ERR_HANDLE, NULL, NULL, K_HANDLE), "leak: 32 bytes in 1 blocks" },
        { R("loom_neg", "a handle back", m_not_null, LOOM_ERR_HANDLE, NULL, NULL, K_HANDLE), "gave a handle" },
    };
    char out[2048];
    for (size_t i = 0; i < TU_LEN(meta); i++) {
        if (!run_case(&meta[i].c, out, sizeof out))
            fail_msg("the harness passed a case that is wrong on purpose (%s)", meta[i].c.what);
        if (meta[i].report && !strstr(out, meta[i].report))
            fail_msg("the harness reported \"%s\" for %s; expected it to say \"%s\"", out, meta[i].c.what,
                     meta[i].report);
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    /* UBSan only prints unless told otherwise (meson 1.0 does not tell
     * it): undefined behaviour must end the child, so its row fails */
    if (!getenv("UBSAN_OPTIONS")) {
        setenv("UBSAN_OPTIONS", "halt_on_error=1:abort_on_error=1:print_stacktrace=1", 1);
        execv("/proc/self/exe", argv); /* if that fails, go on as we are */
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_badinput_harness_can_fail),
        cmocka_unit_test(test_badinput_covers_loom_h),
        cmocka_unit_test(test_badinput_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
