/*
 * tiny.h — the model the checkpoint target loads into, and its seeds are
 * saved from: `loom train`'s character model (cli/model.c) at its
 * smallest, set up the way a resumed training run sets it up (the model,
 * Adam, the carried state, the recorded training tape that makes the
 * optimizer's buffers), so its parameter names and shapes are those of
 * a real checkpoint. Shared by fuzz/checkpoint.c and fuzz/seeds.c.
 */
#ifndef LOOM_FUZZ_TINY_H
#define LOOM_FUZZ_TINY_H

#include <math.h>
#include <string.h>

#include "cli.h"

enum { FZ_TINY_SEQ = 4, FZ_TINY_BATCH = 2 };

static inline charlm_config fz_tiny_config(void)
{
    static const char text[] = "\n abc";
    charlm_config c;
    memset(&c, 0, sizeof c);
    c.model = CLI_MODEL_LSTM;
    c.hidden = 3;
    c.layers = 1;
    cli_vocab_build(&c.vocab, (const uint8_t *)text, sizeof text - 1);
    c.optimizer = 0; /* adam */
    c.lr = 2e-3;
    c.clip = 5;
    c.seq_len = FZ_TINY_SEQ;
    c.batch = FZ_TINY_BATCH;
    c.val_frac = 0.1;
    c.val_every = 10;
    c.total_steps = 20;
    c.seed = 1;
    snprintf(c.data, sizeof c.data, "tiny.txt");
    c.step = 3;
    c.loss = 1.25;
    c.val_loss = NAN;
    return c;
}

/* The model with Adam attached and its state buffers, as cli/train.c's
 * setup_models makes it; CLI_OK or CLI_FAIL after a message. */
static inline int fz_tiny_new(charlm *m, charlm_tape *tp, loom_optimizer **opt)
{
    charlm_config c = fz_tiny_config();
    if (charlm_new(m, &c, c.seed, 1, "fuzz") != CLI_OK)
        return CLI_FAIL;
    *opt = loom_optimizer_new(m->ctx, &(loom_optim_config){ .kind = LOOM_OPT_ADAM, .lr = c.lr, .clip_norm = c.clip });
    if (!*opt) {
        fprintf(stderr, "fuzz: the optimizer: %s\n", loom_errmsg(m->ctx));
        return CLI_FAIL;
    }
    char state[32];
    snprintf(state, sizeof state, "state.b%d", c.batch);
    if (charlm_state_new(m, tp, state, c.seq_len, c.batch, "fuzz") != CLI_OK ||
        charlm_record(m, tp, true, *opt, "fuzz") != CLI_OK)
        return CLI_FAIL;
    return CLI_OK;
}

#endif /* LOOM_FUZZ_TINY_H */
