/*
 * eval.c — `loom eval CKPT --data FILE`: the model's loss on a text, in
 * nats per byte, with bits per character (loss / ln 2) and perplexity
 * (e^loss). The text is streamed as up to --batch contiguous streams of
 * --seq-len chunks with the state carried, so every byte after the first
 * is predicted once, from all that precedes it in its stream.
 *
 * Not here: the model (model.c), the streams (data.c).
 */
#include <math.h>
#include <stdlib.h>

#include "cli.h"

static const char CMD[] = "eval";

int cli_eval(int argc, char **argv)
{
    const char *data = NULL;
    long long batch = 32, seq_len = 0, threads = 0;
    cli_opt opts[] = {
        { "--data", 0, CLI_OPT_STRING, &data, "FILE", "the text to evaluate on (required)", 0, 0, false, NULL, false },
        { "--batch", 0, CLI_OPT_INT, &batch, "B", "at most this many streams (each starts from a zero state)", 1, 65536, false, NULL, false },
        { "--seq-len", 0, CLI_OPT_INT, &seq_len, "T", "bytes per stream per run (default: the checkpoint's --seq-len)", 1, 100000, false, NULL, false },
        { "--threads", 0, CLI_OPT_INT, &threads, "N", "threads (0: LOOM_THREADS or every core)", 0, 1024, false, NULL, false },
    };
    cli_cmd cmd = {
        .name = CMD,
        .usage = "loom eval CKPT --data FILE [--batch B] [--seq-len T] [--threads N]",
        .summary = "Evaluates a checkpoint of loom train on a text: the mean loss over every predicted byte\n"
                   "(nats per character), bits per character and perplexity.",
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
    if (!data) {
        cli_error(CMD, "--data FILE is required: the text to evaluate on");
        return CLI_USAGE;
    }

    cli_text text;
    if (cli_text_read(&text, CMD, data) != CLI_OK)
        return CLI_FAIL;
    charlm m;
    if (charlm_open(&m, pos[0], (int)threads, CMD) != CLI_OK) {
        cli_text_free(&text);
        return CLI_FAIL;
    }
    int rc = CLI_OK;
    size_t bad = cli_vocab_encode(&m.cfg.vocab, text.bytes, text.n);
    if (bad < text.n) {
        char b[8];
        cli_error(CMD, "\"%s\": byte %s at offset %zu is not in the model's vocabulary of %d bytes", data,
                  cli_byte_str(text.bytes[bad], b), bad, m.cfg.vocab.size);
        rc = CLI_FAIL;
        goto out;
    }
    if (text.n < 2) {
        cli_error(CMD, "\"%s\" holds %zu byte: nothing to predict", data, text.n);
        rc = CLI_FAIL;
        goto out;
    }
    if (!cli_find_opt(&cmd, "--seq-len")->seen)
        seq_len = m.cfg.seq_len;
    int B = charlm_eval_batch(text.n, (int)seq_len, (int)batch);
    charlm_tape tp;
    if (charlm_state_new(&m, &tp, "eval", (int)seq_len, B, CMD) != CLI_OK ||
        charlm_record(&m, &tp, false, NULL, CMD) != CLI_OK) {
        rc = CLI_FAIL;
        goto out;
    }
    size_t count;
    double loss = charlm_evaluate(&m, &tp, text.bytes, text.n, &count, CMD);
    if (isnan(loss)) {
        rc = CLI_FAIL;
        goto out;
    }
    printf("loss %.6f nats/char, bpc %.6f, perplexity %.6f over %zu characters of %s\n", loss, loss / log(2.0),
           exp(loss), count, data);
out:
    charlm_free(&m);
    cli_text_free(&text);
    return rc;
}
