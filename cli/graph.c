/*
 * graph.c — `loom graph CKPT`: the model of a checkpoint of loom train,
 * compiled as loom would run it, written as Graphviz DOT with every fused
 * kernel a cluster of the graph nodes it computes (loom_plan_dot). By
 * default the evaluation of --seq-len steps of one stream; with --train
 * the training step (forward, backward through time and the optimizer's
 * update) at the checkpoint's batch.
 */
#include <string.h>

#include "cli.h"

#define CMD "graph"

int cli_graph(int argc, char **argv)
{
    long long seq_len = 4;
    bool train = false;
    const char *out = NULL;
    cli_opt opts[] = {
        { "--out", 'o', CLI_OPT_STRING, &out, "FILE", "the DOT file to write (default: standard output)", 0, 0, false, NULL, false },
        { "--seq-len", 0, CLI_OPT_INT, &seq_len, "T", "time steps to unroll", 1, 4096, false, NULL, false },
        { "--train", 0, CLI_OPT_FLAG, &train, NULL, "the training step (forward, backward, update) instead of evaluation", 0, 0, false, NULL, false },
    };
    cli_cmd cmd = {
        .name = CMD,
        .usage = "loom graph CKPT [-o FILE] [--seq-len T] [--train]",
        .summary = "Writes the compiled graph of a checkpoint's model as Graphviz DOT: every kernel loom\n"
                   "runs is a cluster of the nodes it computes (GEMMs salmon, reductions blue, fused maps\n"
                   "yellow), time steps on the node labels. Render with: dot -Tsvg FILE -o graph.svg",
        .opts = opts,
        .nopts = (int)CLI_LEN(opts),
        .min_pos = 1,
        .max_pos = 1,
        .pos_name = "CKPT (a .safetensors file written by loom train)",
    };
    const char *pos[1];
    int npos;
    int prc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (prc != CLI_OK)
        return prc < 0 ? CLI_OK : prc;

    charlm m;
    if (charlm_open(&m, pos[0], 1, CMD) != CLI_OK)
        return CLI_FAIL;
    int rc = CLI_OK;
    loom_optimizer *opt = NULL;
    if (train) {
        static const loom_opt_kind kinds[] = { LOOM_OPT_ADAM, LOOM_OPT_ADAMW, LOOM_OPT_SGD, LOOM_OPT_RMSPROP };
        const charlm_config *c = &m.cfg;
        opt = loom_optimizer_new(m.ctx, &(loom_optim_config){ .kind = kinds[c->optimizer], .lr = c->lr,
                                                              .momentum = c->momentum,
                                                              .weight_decay = c->weight_decay,
                                                              .clip_norm = c->clip });
        if (!opt) {
            cli_error(CMD, "making the optimizer: %s", loom_errmsg(m.ctx));
            charlm_free(&m);
            return CLI_FAIL;
        }
    }
    charlm_tape tp;
    const char *path = out ? out : "/dev/stdout";
    if (charlm_state_new(&m, &tp, "graph", (int)seq_len, train ? m.cfg.batch : 1, CMD) != CLI_OK ||
        charlm_record(&m, &tp, train, opt, CMD) != CLI_OK) {
        rc = CLI_FAIL;
    } else if (loom_plan_dot(m.ctx, 1, &tp.loss, true, path) != LOOM_OK) {
        cli_error(CMD, "%s", loom_errmsg(m.ctx));
        rc = CLI_FAIL;
    } else if (out) {
        printf("%s: the %s of %lld step%s as DOT; render with: dot -Tsvg %s -o graph.svg\n", out,
               train ? "training step" : "evaluation", seq_len, seq_len > 1 ? "s" : "", out);
    }
    loom_optimizer_free(opt);
    charlm_free(&m);
    return rc;
}
