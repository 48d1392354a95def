/*
 * cli.h — the `loom` command line: a character-level language model
 * trained, sampled, evaluated and plotted from the shell, built on the
 * public API (include/loom.h) alone. This header is what the cli/ files
 * share: the option parser (args.c), the corpus and its batching
 * (data.c), the model and its checkpoints (model.c), and the commands
 * (train.c, sample.c, eval.c, plot.c), dispatched by main.c.
 *
 * Exit statuses, for every command: 0 done, 1 a run-time failure (a file
 * missing or corrupt, a loom error), 2 a bad argument or value (the
 * message names it), 130 training stopped by SIGINT or SIGTERM after
 * writing its checkpoint.
 */
#ifndef LOOM_CLI_H
#define LOOM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "loom.h"

enum {
    CLI_OK = 0,
    CLI_FAIL = 1,        /* run-time failure */
    CLI_USAGE = 2,       /* bad argument or value */
    CLI_INTERRUPTED = 130,
};

#define CLI_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Prints "loom <cmd>: <message>\n" on stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Seconds on a monotonic clock. */
double cli_now(void);

/* ------------------------------------------------------------------ */
/* Options (args.c)                                                   */
/* ------------------------------------------------------------------ */

typedef enum cli_opt_kind {
    CLI_OPT_INT,    /* long long, in [min, max] */
    CLI_OPT_DOUBLE, /* double, finite, in [min, max] (min excluded if min_open) */
    CLI_OPT_STRING, /* const char * into argv */
    CLI_OPT_CHOICE, /* int: the index of the value in choices */
    CLI_OPT_FLAG,   /* bool, set by the option alone (no value) */
} cli_opt_kind;

typedef struct cli_opt {
    const char *name;             /* "--hidden" */
    char short_name;              /* 'o' for -o, or 0 */
    cli_opt_kind kind;
    void *dst;                    /* long long *, double *, const char **, int *, bool * */
    const char *metavar;          /* "N" */
    const char *help;             /* one line; the default is appended from *dst */
    double min, max;              /* INT, DOUBLE */
    bool min_open;                /* DOUBLE: min itself is refused */
    const char *const *choices;   /* CHOICE: NULL-terminated */
    bool seen;                    /* set by the parser when given */
} cli_opt;

typedef struct cli_cmd {
    const char *name;     /* "train" */
    const char *usage;    /* "loom train [options]" */
    const char *summary;  /* a paragraph printed by --help */
    cli_opt *opts;
    int nopts;
    int min_pos, max_pos; /* positional arguments */
    const char *pos_name; /* "CKPT", named in errors */
} cli_cmd;

/* Parses argv[1..argc-1] (argv[0] is the command's name) into the
 * options' destinations; positional arguments go to pos[0..*npos-1].
 * Returns CLI_OK, CLI_USAGE after printing what is wrong, or -1 after
 * printing --help (the caller exits 0). */
int cli_parse(cli_cmd *cmd, int argc, char **argv, const char **pos, int *npos);
/* Prints the command's help on out. */
void cli_help(const cli_cmd *cmd, FILE *out);
/* The option of that name (for ->seen). */
cli_opt *cli_find_opt(cli_cmd *cmd, const char *name);

/* ------------------------------------------------------------------ */
/* Data (data.c)                                                      */
/* ------------------------------------------------------------------ */

/* A corpus as bytes and as ids into a vocabulary of the bytes present. */
typedef struct cli_text {
    uint8_t *bytes; /* [n] */
    size_t n;
    char *origin;   /* the file name, or "the loom sources under <root>" */
} cli_text;

/* Reads a whole file; returns CLI_OK or prints why not (CLI_FAIL). */
int cli_text_read(cli_text *t, const char *cmd, const char *path);
/* The default corpus: every *.c and *.h under the source root compiled in
 * (LOOM_SOURCE_ROOT), concatenated in sorted path order. */
int cli_text_sources(cli_text *t, const char *cmd);
void cli_text_free(cli_text *t);

typedef struct cli_vocab {
    int size;
    uint8_t byte[256];   /* id -> byte */
    int16_t id[256];     /* byte -> id, -1 if absent */
} cli_vocab;

/* The bytes present in t, in increasing order. */
void cli_vocab_build(cli_vocab *v, const uint8_t *bytes, size_t n);
/* Fills v->id from v->byte[0..size-1]; false if a byte repeats. */
bool cli_vocab_index(cli_vocab *v);
/* Maps bytes to ids in place; returns the offset of the first byte not in
 * the vocabulary, or n if all are. */
size_t cli_vocab_encode(const cli_vocab *v, uint8_t *bytes, size_t n);
/* A byte as a readable token for messages: 'a', '\n', 0xe2. */
const char *cli_byte_str(uint8_t b, char buf[8]);

/* Contiguous streams over ids for truncated BPTT: stream b holds the
 * prediction pairs (x_i, x_i+1) for i in [b * len, min((b + 1) * len,
 * n - 1)); chunk k of the streams is positions k * T .. k * T + T - 1 of
 * each. Past a stream's end ids are 0 and targets -1 (ignored).
 * Evaluation covers every pair (len rounded up, the last chunk padded);
 * training (whole) takes len = (n - 1) / B rounded down and whole chunks
 * only, so no target is ever ignored. */
typedef struct cli_streams {
    const uint8_t *ids;
    size_t n;      /* ids */
    int B, T;
    size_t len;    /* pairs per stream */
    size_t chunks; /* ceil(len / T) */
} cli_streams;

void cli_streams_init(cli_streams *s, const uint8_t *ids, size_t n, int B, int T, bool whole);
/* Fills x [T, B] and y [T * B] with chunk k; returns the targets that
 * count. */
size_t cli_streams_chunk(const cli_streams *s, size_t k, int32_t *x, int32_t *y);

/* ------------------------------------------------------------------ */
/* The model (model.c)                                                */
/* ------------------------------------------------------------------ */

enum { CLI_MODEL_LSTM = 0, CLI_MODEL_GRU, CLI_MODEL_RNN, CLI_MODEL_COUNT };
extern const char *const cli_model_names[CLI_MODEL_COUNT + 1];   /* "lstm", "gru", "rnn", NULL */
enum { CLI_OPT_COUNT = 4 };
extern const char *const cli_optimizer_names[CLI_OPT_COUNT + 1]; /* "adam", "adamw", "sgd", "rmsprop", NULL */
enum { CLI_SCHEDULE_COUNT = 2 };
extern const char *const cli_schedule_names[CLI_SCHEDULE_COUNT + 1]; /* "constant", "cosine", NULL */

/* What a checkpoint's "config" metadata holds: the model (enough to
 * rebuild it), its vocabulary, and the training settings a --resume
 * starts from. */
typedef struct charlm_config {
    int model;            /* CLI_MODEL_* */
    int64_t hidden;       /* also the embedding's width */
    int layers;
    double dropout;       /* embeddings, between layers, outputs; training only */
    cli_vocab vocab;
    /* training */
    int optimizer;        /* index into cli_optimizer_names */
    double lr, clip, momentum, weight_decay;
    int schedule;         /* index into cli_schedule_names */
    long long warmup;
    int seq_len, batch;
    double val_frac;
    long long val_chars;  /* validate on at most this many held-out bytes (0: all) */
    long long val_every, total_steps;
    unsigned long long seed;
    char data[4096];      /* the --data path, "" for the loom sources */
    /* at the save */
    long long step;
    double loss, val_loss; /* NAN if unknown */
} charlm_config;

/* The config as JSON, into buf; false if it does not fit. */
bool charlm_config_write(const charlm_config *c, char *buf, size_t size);
/* Reads JSON written by charlm_config_write; false with a reason in why. */
bool charlm_config_parse(charlm_config *c, const char *json, char *why, size_t why_size);
/* Reads the config of a checkpoint file; prints why not (CLI_FAIL). */
int charlm_config_load(charlm_config *c, const char *cmd, const char *path);

/* The "config" metadata of a checkpoint as a string to free(); NULL after
 * printing why not (no file, not a checkpoint, no config). */
char *cli_checkpoint_config(const char *cmd, const char *path);
/* The top-level "model" string of a config into model; false if there is
 * none (or the JSON is bad). A char-LM names its cell, a forecaster
 * FORECAST_MODEL. */
bool cli_config_model(const char *json, char *model, size_t size);

/* The config examples/forecast.c saves with its checkpoint: a one-layer
 * LSTM or GRU ("rnn", input 1, hidden H) over a window of W values, each
 * relative to the window's last, and a linear head ("head", H -> 1)
 * predicting the change to the next value, all in z-scores of the series
 * (mean, std of its training part). */
#define FORECAST_MODEL "forecast-rnn"
typedef struct forecast_config {
    int cell;               /* CLI_MODEL_LSTM or CLI_MODEL_GRU */
    double mean, std;       /* z = (y - mean) / std */
    int64_t window, hidden;
    int64_t season;         /* of its seasonal-naive baseline; 0 if absent */
} forecast_config;

/* Reads that config; false with a reason in why. */
bool forecast_config_parse(forecast_config *c, const char *json, char *why, size_t why_size);

/* The model's parameters in a context of their own:
 *   ids [T, B] -> embedding (V, H) -> dropout -> RNN stack (H, H, layers)
 *   -> dropout -> linear (H, V) -> logits [T * B, V] */
typedef struct charlm {
    loom_ctx *ctx;
    charlm_config cfg;
    loom_embedding emb; /* weight [V, H] */
    loom_rnn *rnn;      /* PyTorch names under "rnn." */
    loom_linear head;   /* weight [V, H], bias [V] */
} charlm;

/* A tape over [T, B] with the state carried in buffers between runs. */
typedef struct charlm_tape {
    int T, B;
    loom_t ids;      /* i32 [T, B] input */
    loom_t targets;  /* i32 [T * B] input; -1 is ignored */
    loom_t logits;   /* [T * B, V] */
    loom_t loss;     /* training: the mean over targets; else the sum */
    loom_t h, c;     /* buffers [layers, B, H]; c null but for the LSTM */
} charlm_tape;

/* Makes the context and parameters (initialised from seed). Prints the
 * loom error on failure (CLI_FAIL). */
int charlm_new(charlm *m, const charlm_config *cfg, uint64_t seed, int threads, const char *cmd);
void charlm_free(charlm *m);
/* Makes the state buffers "<prefix>.h" and "<prefix>.c" [layers, B, H]. */
int charlm_state_new(charlm *m, charlm_tape *tp, const char *prefix, int T, int B, const char *cmd);
/* Records the tape (after charlm_state_new): training with dropout and
 * opt attached, or evaluation (loss summed over the counted targets). */
int charlm_record(charlm *m, charlm_tape *tp, bool training, loom_optimizer *opt, const char *cmd);
/* Zeroes the carried state. */
int charlm_state_zero(charlm *m, charlm_tape *tp, const char *cmd);
/* Copies the model's weights from another context with the same names. */
int charlm_copy_weights(charlm *dst, loom_ctx *src, const char *cmd);
/* Opens a checkpoint written by `loom train`: config, model, weights.
 * Prints why not (CLI_FAIL). */
int charlm_open(charlm *m, const char *path, int threads, const char *cmd);

/* Mean loss (nats per target) of ids under the model, streamed as B
 * streams of T-chunks with the state carried (tp from an evaluation
 * tape). Sets *count to the targets counted. NAN after printing an
 * error. */
double charlm_evaluate(charlm *m, charlm_tape *tp, const uint8_t *ids, size_t n, size_t *count, const char *cmd);
/* The streams evaluating n ids in T-chunks uses: at most max, each at
 * least 4 chunks long where n allows (each starts from a zero state).
 * Validation and `loom eval` share it, so they agree on the same text. */
int charlm_eval_batch(size_t n, int T, int max);

/* ------------------------------------------------------------------ */
/* Commands                                                           */
/* ------------------------------------------------------------------ */

int cli_train(int argc, char **argv);
int cli_sample(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_plot(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_graph(int argc, char **argv);

/* Writes <dir>/loss.svg from <dir>/log.csv; prints why not (CLI_FAIL). */
int cli_plot_run(const char *dir, const char *cmd, bool quiet);

#endif /* LOOM_CLI_H */
