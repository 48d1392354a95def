/*
 * test_train.c — training end to end with the built-in stacks and the
 * optimizers: LSTM and GRU learn the adding problem (a dependency across
 * the whole sequence); truncated BPTT with the state carried in buffers,
 * checkpointed halfway and resumed bit-exactly; fine-tuning a pretrained
 * checkpoint fully, with frozen lower layers, and with LoRA adapters,
 * each changing exactly what it should.
 */
#include "testutil.h"

#include <stdlib.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* The adding problem                                                 */
/* ------------------------------------------------------------------ */

enum { AT = 30, AB = 32, AH = 24 };

/* x [T, B, 2]: a value in [0, 1) and a marker, set at one step of each
 * half; the target is the sum of the two marked values. */
static void adding_batch(unsigned *seed, float x[AT][AB][2], float y[AB])
{
    for (int b = 0; b < AB; b++) {
        int m1 = (int)((*seed = *seed * 1103515245u + 12345u) >> 8) % (AT / 2);
        int m2 = AT / 2 + (int)((*seed = *seed * 1103515245u + 12345u) >> 8) % (AT / 2);
        y[b] = 0;
        for (int t = 0; t < AT; t++) {
            *seed = *seed * 1103515245u + 12345u;
            x[t][b][0] = (float)((*seed >> 8) & 0xffff) / 65536.0f;
            x[t][b][1] = t == m1 || t == m2;
            if (t == m1 || t == m2)
                y[b] += x[t][b][0];
        }
    }
}

static double learn_adding(loom_rnn_mode mode, int steps)
{
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .seed = 11 });
    loom_rnn_config cfg = { .mode = mode, .input_size = 2, .hidden_size = AH };
    loom_rnn *m = loom_rnn_new(ctx, "rnn", &cfg);
    loom_linear head;
    loom_linear_init(ctx, &head, "head", AH, 1, true, LOOM_F32);
    loom_optimizer *opt = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = 1e-2, .clip_norm = 1.0 });
    loom_t x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(AT, AB, 2));
    loom_t y = loom_input(ctx, "y", LOOM_F32, LOOM_SHAPE(AB, 1));
    loom_t out;
    loom_rnn_state fin;
    loom_rnn_forward(ctx, m, x, NULL, LOOM_NULL, true, &out, &fin);
    loom_t pred = loom_linear_forward(ctx, &head, loom_reshape(ctx, fin.h, LOOM_SHAPE(AB, AH)));
    loom_t loss = loom_mse(ctx, pred, y);
    assert_int_equal(loom_optimizer_attach(ctx, opt, loss), LOOM_OK);
    TU_OK(ctx);
    static float xs[AT][AB][2], ys[AB];
    unsigned seed = 7;
    double avg = 0;
    for (int s = 0; s < steps; s++) {
        adding_batch(&seed, xs, ys);
        loom_feed(ctx, x, xs, sizeof xs);
        loom_feed(ctx, y, ys, sizeof ys);
        assert_int_equal(loom_optimizer_step(ctx, opt, 1, &loss), LOOM_OK);
        if (s >= steps - 50)
            avg += loom_item(ctx, loss) / 50;
    }
    loom_optimizer_free(opt);
    loom_rnn_free(m);
    loom_ctx_free(ctx);
    return avg;
}

/* Predicting the mean (1.0) leaves an MSE of 1/6; learning the task
 * brings it near 0. */
static void test_train_lstm_learns_adding_problem(void **state)
{
    (void)state;
    double mse = learn_adding(LOOM_LSTM, 1500);
    print_message("adding problem, T=%d: LSTM MSE %.4f over the last 50 batches (chance 0.167)\n", AT, mse);
    assert_true(mse < 0.01);
}

static void test_train_gru_learns_adding_problem(void **state)
{
    (void)state;
    double mse = learn_adding(LOOM_GRU, 1500);
    print_message("adding problem, T=%d: GRU MSE %.4f over the last 50 batches (chance 0.167)\n", AT, mse);
    assert_true(mse < 0.01);
}

/* ------------------------------------------------------------------ */
/* A small char LM with truncated BPTT                                */
/* ------------------------------------------------------------------ */

enum { LT = 8, LB = 4, LV = 16, LE = 8, LH = 16 };

static const char corpus[] =
    "abcab cabba cacab bcaab abcab abcba ccbab dadab ababd dcdab abcda bacda cdbad ababc ddbca "
    "ebcea aebce cebad edeca abcde edcba acebd bdace ceabd decab ebdca adbec bcdea eabcd deabc ";

typedef struct lm {
    loom_ctx *ctx;
    loom_embedding emb;
    loom_rnn *rnn;
    loom_linear head;
    loom_optimizer *opt;
    loom_t h, c;          /* buffers: the state carried from batch to batch */
    loom_t ids, targets;  /* inputs */
    loom_t loss;
} lm;

/* Records one truncated-BPTT step: the stack starts from the carried
 * state (buffers are leaves: the gradient stops there, the value goes on)
 * and hands its final state back to the buffers for the next batch. An
 * evaluation tape has no dropout and no update. */
static void lm_record_mode(lm *m, bool training)
{
    loom_ctx *ctx = m->ctx;
    m->ids = loom_input(ctx, "ids", LOOM_I32, LOOM_SHAPE(LT, LB));
    m->targets = loom_input(ctx, "targets", LOOM_I32, LOOM_SHAPE(LT * LB));
    loom_t x = loom_dropout(ctx, loom_embedding_forward(ctx, &m->emb, m->ids), 0.1, training);
    loom_rnn_state init = { m->h, m->c }, fin;
    loom_t out;
    loom_rnn_forward(ctx, m->rnn, x, &init, LOOM_NULL, true, &out, &fin);
    loom_t logits = loom_linear_forward(ctx, &m->head, loom_reshape(ctx, out, LOOM_SHAPE(LT * LB, LH)));
    m->loss = loom_cross_entropy(ctx, logits, m->targets);
    loom_assign(ctx, m->h, fin.h);
    loom_assign(ctx, m->c, fin.c);
    if (training)
        assert_int_equal(loom_optimizer_attach(ctx, m->opt, m->loss), LOOM_OK);
    TU_OK(ctx);
}

static void lm_record(lm *m) { lm_record_mode(m, true); }

static void lm_init(lm *m, uint64_t seed, int layers)
{
    m->ctx = loom_ctx_new(&(loom_options){ .seed = seed });
    loom_ctx *ctx = m->ctx;
    loom_embedding_init(ctx, &m->emb, "emb", LV, LE, LOOM_F32);
    loom_rnn_config cfg = { .mode = LOOM_LSTM, .input_size = LE, .hidden_size = LH, .num_layers = layers };
    m->rnn = loom_rnn_new(ctx, "lstm", &cfg);
    loom_linear_init(ctx, &m->head, "head", LH, LV, true, LOOM_F32);
    m->h = loom_buffer(ctx, "state.h", LOOM_F32, LOOM_SHAPE(layers, LB, LH));
    m->c = loom_buffer(ctx, "state.c", LOOM_F32, LOOM_SHAPE(layers, LB, LH));
    m->opt = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = 5e-3, .clip_norm = 2.0 });
    lm_record(m);
}

static void lm_free(lm *m)
{
    loom_optimizer_free(m->opt);
    loom_rnn_free(m->rnn);
    loom_ctx_free(m->ctx);
}

/* Step s reads the text at LB streams, each continuing where it stopped:
 * stream b is at b * (len / LB) + s * LT. */
static double lm_step(lm *m, const char *text, size_t len)
{
    int32_t ids[LT * LB], next[LT * LB];
    int64_t s = loom_optimizer_steps(m->opt);
    for (int b = 0; b < LB; b++)
        for (int t = 0; t < LT; t++) {
            size_t at = ((size_t)b * (len / LB) + (size_t)(s * LT + t)) % (len - 1);
            ids[t * LB + b] = (text[at] - 'a' + 1) & (LV - 1);
            next[t * LB + b] = (text[at + 1] - 'a' + 1) & (LV - 1);
        }
    loom_feed(m->ctx, m->ids, ids, sizeof ids);
    loom_feed(m->ctx, m->targets, next, sizeof next);
    assert_int_equal(loom_optimizer_step(m->ctx, m->opt, 1, &m->loss), LOOM_OK);
    return loom_item(m->ctx, m->loss);
}

static char *temp_path(const char *name)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "/tmp/loom-test-%d-%s", (int)getpid(), name);
    return buf;
}

/* 20 steps straight, against 10 steps, a checkpoint, a fresh context
 * loaded from it, and 10 more: the losses and the weights are the same
 * bits (the carried state, the optimizer's moments and step, and the
 * dropout stream all come back). */
static void test_train_truncated_bptt_resume_lstm_bit_exact(void **state)
{
    (void)state;
    size_t len = sizeof corpus - 1;
    double straight[20], resumed[20];
    lm a;
    lm_init(&a, 5, 2);
    for (int s = 0; s < 20; s++)
        straight[s] = lm_step(&a, corpus, len);

    lm b;
    lm_init(&b, 5, 2);
    for (int s = 0; s < 10; s++)
        resumed[s] = lm_step(&b, corpus, len);
    char *path = temp_path("resume.safetensors");
    assert_int_equal(loom_checkpoint_save(b.ctx, path, b.opt, "{\"model\": \"test lm\"}"), LOOM_OK);
    lm_free(&b);

    lm c;
    lm_init(&c, 999, 2); /* another seed: everything must come from the file */
    assert_int_equal(loom_checkpoint_load(c.ctx, path, c.opt, LOOM_LOAD_STRICT), LOOM_OK);
    assert_int_equal(loom_optimizer_steps(c.opt), 10);
    for (int s = 10; s < 20; s++)
        resumed[s] = lm_step(&c, corpus, len);
    for (int s = 0; s < 20; s++)
        if (straight[s] != resumed[s])
            fail_msg("step %d: loss %.9g straight, %.9g resumed", s, straight[s], resumed[s]);
    assert_int_equal(loom_param_count(a.ctx), loom_param_count(c.ctx));
    for (size_t i = 0; i < loom_param_count(a.ctx); i++) {
        loom_t pa = loom_param_at(a.ctx, i), pc = loom_param_find(c.ctx, loom_param_name(a.ctx, pa));
        assert_false(loom_is_null(pc));
        size_t bytes = (size_t)loom_shape_numel(loom_shape_of(a.ctx, pa)) * loom_dtype_size(loom_dtype_of(a.ctx, pa));
        if (memcmp(loom_param_data(a.ctx, pa), loom_param_data(c.ctx, pc), bytes) != 0)
            fail_msg("%s differs after resuming", loom_param_name(a.ctx, pa));
    }
    print_message("resume: 20 losses and %zu tensors bit-identical (loss %.4f -> %.4f)\n", loom_param_count(a.ctx),
                  straight[0], straight[19]);
    unlink(path);
    lm_free(&a);
    lm_free(&c);
}

/* ------------------------------------------------------------------ */
/* Fine-tuning a pretrained checkpoint                                */
/* ------------------------------------------------------------------ */

static const char corpus_b[] =
    "the cat sat on the mat. the bat ate the hat. a cat and a bat sat. the mat is flat. "
    "that cat, this bat; the hat on the mat. a fat cat sat at the mat and ate. ";

static double lm_eval(lm *m, const char *text, size_t len)
{
    /* mean loss over a few batches, without an update */
    int32_t ids[LT * LB], next[LT * LB];
    double total = 0;
    for (int k = 0; k < 6; k++) {
        for (int b = 0; b < LB; b++)
            for (int t = 0; t < LT; t++) {
                size_t at = ((size_t)b * 17 + (size_t)(k * LT + t)) % (len - 1);
                ids[t * LB + b] = (text[at] - 'a' + 1) & (LV - 1);
                next[t * LB + b] = (text[at + 1] - 'a' + 1) & (LV - 1);
            }
        loom_feed(m->ctx, m->ids, ids, sizeof ids);
        loom_feed(m->ctx, m->targets, next, sizeof next);
        assert_int_equal(loom_eval(m->ctx, 1, &m->loss), LOOM_OK);
        total += loom_item(m->ctx, m->loss);
    }
    return total / 6;
}

typedef struct snapshot {
    size_t n;
    char **name;
    void **data;
    size_t *bytes;
} snapshot;

static snapshot take(loom_ctx *ctx)
{
    snapshot s = { .n = loom_param_count(ctx) };
    s.name = calloc(s.n, sizeof *s.name);
    s.data = calloc(s.n, sizeof *s.data);
    s.bytes = calloc(s.n, sizeof *s.bytes);
    for (size_t i = 0; i < s.n; i++) {
        loom_t p = loom_param_at(ctx, i);
        s.name[i] = strdup(loom_param_name(ctx, p));
        s.bytes[i] = (size_t)loom_shape_numel(loom_shape_of(ctx, p)) * loom_dtype_size(loom_dtype_of(ctx, p));
        s.data[i] = malloc(s.bytes[i] ? s.bytes[i] : 1);
        memcpy(s.data[i], loom_param_data(ctx, p), s.bytes[i]);
    }
    return s;
}

static bool changed(loom_ctx *ctx, const snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->name[i], name))
            return memcmp(loom_param_data(ctx, loom_param_find(ctx, name)), s->data[i], s->bytes[i]) != 0;
    fail_msg("no parameter %s", name);
    return false;
}

static void drop(snapshot *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->name[i]);
        free(s->data[i]);
    }
    free(s->name);
    free(s->data);
    free(s->bytes);
}

/* Pretrain on one text; fine-tune on another fully, with the first layer
 * frozen, and with LoRA on the output layer and the second layer's
 * recurrent weights. Each lowers the loss on the new text and changes
 * exactly the parameters it should; frozen ones get no optimizer state. */
static void test_train_finetune_full_frozen_and_lora(void **state)
{
    (void)state;
    size_t la = sizeof corpus - 1, lb = sizeof corpus_b - 1;
    char *path = temp_path("pretrained.safetensors");
    {
        lm pre;
        lm_init(&pre, 3, 2);
        for (int s = 0; s < 150; s++)
            lm_step(&pre, corpus, la);
        assert_int_equal(loom_checkpoint_save(pre.ctx, path, NULL, "{\"layers\": 2}"), LOOM_OK);
        lm_free(&pre);
    }
    for (int mode = 0; mode < 3; mode++) {
        static const char *const names[] = { "full", "frozen layer 0", "lora" };
        lm m;
        m.ctx = loom_ctx_new(&(loom_options){ .seed = 4 });
        loom_ctx *ctx = m.ctx;
        loom_embedding_init(ctx, &m.emb, "emb", LV, LE, LOOM_F32);
        loom_rnn_config cfg = { .mode = LOOM_LSTM, .input_size = LE, .hidden_size = LH, .num_layers = 2 };
        m.rnn = loom_rnn_new(ctx, "lstm", &cfg);
        loom_linear_init(ctx, &m.head, "head", LH, LV, true, LOOM_F32);
        m.h = loom_buffer(ctx, "state.h", LOOM_F32, LOOM_SHAPE(2, LB, LH));
        m.c = loom_buffer(ctx, "state.c", LOOM_F32, LOOM_SHAPE(2, LB, LH));
        /* the pretrained weights; the file also holds the pretraining
         * optimizer's state, which this fresh optimizer does not take */
        assert_int_equal(loom_checkpoint_load(ctx, path, NULL, LOOM_LOAD_ALLOW_UNEXPECTED), LOOM_OK);
        if (mode == 1) { /* freeze the stack, then give layer 1 back */
            assert_int_equal(loom_params_set_trainable(ctx, "lstm.", false), 8);
            long back = 0;
            static const char *const layer1[] = { "lstm.weight_ih_l1", "lstm.weight_hh_l1", "lstm.bias_ih_l1",
                                                  "lstm.bias_hh_l1" };
            for (size_t i = 0; i < TU_LEN(layer1); i++)
                back += loom_params_set_trainable(ctx, layer1[i], true);
            assert_int_equal(back, 4);
        }
        if (mode == 2) {
            loom_params_set_trainable(ctx, "", false);
            assert_int_equal(loom_lora_add(ctx, m.head.weight, 4, 8.0), LOOM_OK);
            assert_int_equal(loom_lora_add(ctx, loom_param_find(ctx, "lstm.weight_hh_l1"), 4, 8.0), LOOM_OK);
        }
        m.opt = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = 1e-2 });
        lm_record(&m);
        snapshot before = take(ctx);
        double l0 = lm_eval(&m, corpus_b, lb);
        for (int s = 0; s < 120; s++)
            lm_step(&m, corpus_b, lb);
        double l1 = lm_eval(&m, corpus_b, lb);
        print_message("fine-tune %-15s: val loss on the new text %.3f -> %.3f\n", names[mode], l0, l1);
        assert_true(l1 < l0);
        if (mode == 0) {
            assert_true(changed(ctx, &before, "lstm.weight_ih_l0"));
            assert_true(changed(ctx, &before, "head.weight"));
        } else if (mode == 1) {
            assert_false(changed(ctx, &before, "lstm.weight_ih_l0"));
            assert_false(changed(ctx, &before, "lstm.bias_hh_l0"));
            assert_true(changed(ctx, &before, "lstm.weight_hh_l1"));
            assert_true(loom_is_null(loom_param_find(ctx, "optim.lstm.weight_ih_l0.exp_avg")));
            assert_false(loom_is_null(loom_param_find(ctx, "optim.lstm.weight_hh_l1.exp_avg")));
        } else {
            /* only the adapters moved */
            assert_false(changed(ctx, &before, "head.weight"));
            assert_false(changed(ctx, &before, "head.bias"));
            assert_false(changed(ctx, &before, "lstm.weight_hh_l1"));
            assert_false(changed(ctx, &before, "emb.weight"));
            assert_true(changed(ctx, &before, "head.weight.lora_B"));
            assert_true(changed(ctx, &before, "lstm.weight_hh_l1.lora_A"));
            assert_true(loom_is_null(loom_param_find(ctx, "optim.head.weight.exp_avg")));
            /* merged, the plain model computes what the adapted one did
             * (on evaluation tapes: no dropout, no update) */
            loom_reset(ctx);
            lm_record_mode(&m, false);
            double adapted = lm_eval(&m, corpus_b, lb);
            assert_int_equal(loom_lora_merge(ctx, m.head.weight), LOOM_OK);
            assert_int_equal(loom_lora_merge(ctx, loom_param_find(ctx, "lstm.weight_hh_l1")), LOOM_OK);
            loom_reset(ctx);
            lm_record_mode(&m, false);
            double merged = lm_eval(&m, corpus_b, lb);
            print_message("LoRA merged: loss %.7f adapted, %.7f merged\n", adapted, merged);
            assert_true(fabs(merged - adapted) < 1e-5);
        }
        drop(&before);
        lm_free(&m);
    }
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_lstm_learns_adding_problem),
        cmocka_unit_test(test_train_gru_learns_adding_problem),
        cmocka_unit_test(test_train_truncated_bptt_resume_lstm_bit_exact),
        cmocka_unit_test(test_train_finetune_full_frozen_and_lora),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
