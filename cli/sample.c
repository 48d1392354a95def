/*
 * sample.c — `loom sample CKPT`: generates text from a trained model one
 * byte at a time. The model is rebuilt from the checkpoint alone (its
 * config holds the architecture and vocabulary), and a single-step tape
 * (B = 1, T = 1: x_t and the carried state in, logits and the next state
 * out) is recorded once and run per byte. The prime text goes through the
 * same step first; each next byte is drawn on the host from
 * softmax(logits / temperature) with a seeded generator.
 *
 * Not here: batching (data.c), the model (model.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char CMD[] = "sample";

/* splitmix64: a small, good generator for the host-side draws. */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double next_uniform(uint64_t *s) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }

/* An id drawn from softmax(logits / temperature); the most likely one at
 * temperature 0. */
static int draw(const float *logits, int V, double temperature, double *p, uint64_t *rng)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best])
            best = i;
    if (temperature == 0)
        return best;
    double sum = 0;
    for (int i = 0; i < V; i++)
        sum += p[i] = exp(((double)logits[i] - (double)logits[best]) / temperature);
    double u = next_uniform(rng) * sum;
    for (int i = 0; i < V; i++) {
        u -= p[i];
        if (u < 0)
            return i;
    }
    return best; /* rounding left u >= 0 */
}

int cli_sample(int argc, char **argv)
{
    long long length = 500, threads = 1, seed = -1;
    double temperature = 1.0;
    const char *prime = NULL;
    cli_opt opts[] = {
        { "--length", 'n', CLI_OPT_INT, &length, "N", "bytes to generate (after the prime text)", 0, 1e12, false, NULL, false },
        { "--temperature", 't', CLI_OPT_DOUBLE, &temperature, "T", "softmax temperature (0: always the likeliest)", 0, 100, false, NULL, false },
        { "--prime", 'p', CLI_OPT_STRING, &prime, "TEXT", "text to start from, printed first (default: a newline)", 0, 0, false, NULL, false },
        { "--seed", 0, CLI_OPT_INT, &seed, "S", "seed of the draws (-1: from the clock)", -1, 9.2e18, false, NULL, false },
        { "--threads", 0, CLI_OPT_INT, &threads, "N", "threads (one suits a single stream)", 0, 1024, false, NULL, false },
    };
    cli_cmd cmd = {
        .name = CMD,
        .usage = "loom sample CKPT [--length N] [--temperature T] [--prime TEXT] [--seed S]",
        .summary = "Generates text from a checkpoint of loom train: the prime text, then --length bytes\n"
                   "drawn one at a time from the model's distribution at --temperature.",
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
    if (charlm_open(&m, pos[0], (int)threads, CMD) != CLI_OK)
        return CLI_FAIL;
    const cli_vocab *v = &m.cfg.vocab;
    int V = v->size, rc = CLI_OK;
    /* the prime, checked against the vocabulary before any work */
    const char *start = prime;
    if (!start)
        start = v->id['\n'] >= 0 ? "\n" : (const char[]){ (char)v->byte[0], 0 };
    size_t nprime = strlen(start);
    for (size_t i = 0; i < nprime; i++)
        if (v->id[(uint8_t)start[i]] < 0) {
            char b[8];
            cli_error(CMD, "--prime: byte %s (offset %zu) is not in the model's vocabulary of %d bytes",
                      cli_byte_str((uint8_t)start[i], b), i, V);
            charlm_free(&m);
            return CLI_USAGE;
        }

    charlm_tape tp;
    double *p = malloc((size_t)V * sizeof *p); /* [V] */
    if (!p || charlm_state_new(&m, &tp, "sample", 1, 1, CMD) != CLI_OK ||
        charlm_record(&m, &tp, false, NULL, CMD) != CLI_OK || charlm_state_zero(&m, &tp, CMD) != CLI_OK) {
        rc = CLI_FAIL;
        goto out;
    }
    uint64_t rng = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    const int32_t ignore = -1;
    loom_feed(m.ctx, tp.targets, &ignore, sizeof ignore);
    if (prime)
        fwrite(prime, 1, nprime, stdout);
    int32_t id = 0;
    int last = -1;
    for (long long i = 0; i < (long long)nprime - 1 + length; i++) {
        id = i < (long long)nprime ? v->id[(uint8_t)start[i]] : id;
        if (loom_feed(m.ctx, tp.ids, &id, sizeof id) != LOOM_OK || loom_run(m.ctx, 1, &tp.logits) != LOOM_OK) {
            fflush(stdout);
            cli_error(CMD, "%s", loom_errmsg(m.ctx));
            rc = CLI_FAIL;
            goto out;
        }
        if (i < (long long)nprime - 1)
            continue; /* still reading the prime */
        const float *logits = loom_data(m.ctx, tp.logits); /* [1, V] */
        id = draw(logits, V, temperature, p, &rng);
        last = v->byte[id];
        putchar(last);
    }
    if (isatty(STDOUT_FILENO) && last != '\n')
        putchar('\n');
    if (fflush(stdout) != 0) {
        cli_error(CMD, "cannot write the sample");
        rc = CLI_FAIL;
    }
out:
    free(p);
    charlm_free(&m);
    return rc;
}
