/*
 * train.c — `loom train`: trains the character-level model of model.c on
 * a text file (or on loom's own sources) with truncated BPTT, validates
 * on the held-out tail, and keeps checkpoints, a log and a loss plot in a
 * run directory.
 *
 * The batching is char-rnn's: the training text is cut into B contiguous
 * streams, step j of an epoch reads the j-th T characters of every
 * stream, and the recurrent state is carried from step to step (zeroed at
 * each epoch's start), the gradient cut at the step boundary. Validation
 * streams through the last --val-frac of the text the same way, without
 * dropout, and reports the exact mean loss over it (nats per character).
 *
 * The run directory (--out) holds:
 *   step-NNNNNN-val-X.XXXX.safetensors  after each validation (the last
 *                                       --keep of them are kept)
 *   best.safetensors                    the lowest validation loss so far
 *   step-NNNNNN-interrupted.safetensors after SIGINT / SIGTERM
 *   log.csv, loss.svg                   step, loss, val_loss, tokens/s, time
 * Checkpoints are written atomically (loom_checkpoint_save writes a
 * temporary, syncs and renames) and carry the weights, the optimizer's
 * state and step, the carried state, the random stream and the config
 * (model, vocabulary, training settings), so --resume continues where
 * the run stopped.
 *
 * Not here: the model (model.c), the data layout (data.c), the plot
 * (plot.c).
 */
#define _XOPEN_SOURCE 700 /* realpath */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char CMD[] = "train";

enum { DEFAULT_EPOCHS = 10 };

/* ------------------------------------------------------------------ */
/* Signals                                                            */
/* ------------------------------------------------------------------ */

static volatile sig_atomic_t interrupted; /* the signal's number */

static void on_signal(int sig) { interrupted = sig; }

/* The first SIGINT or SIGTERM asks for a checkpoint at the end of the
 * step; the handler then falls back to the default, so a second one quits
 * at once (the last checkpoint stays whole: writes are atomic). */
static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ------------------------------------------------------------------ */
/* Files                                                              */
/* ------------------------------------------------------------------ */

/* mkdir -p */
static int make_dirs(const char *path)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) {
        cli_error(CMD, "--out \"%.100s...\" is too long", path);
        return CLI_USAGE;
    }
    for (char *s = p + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = 0;
            struct stat st;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                cli_error(CMD, "cannot make the run directory \"%s\": %s", p, strerror(errno));
                return CLI_FAIL;
            }
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
                cli_error(CMD, "\"%s\" is not a directory", p);
                return CLI_FAIL;
            }
            *s = c;
            if (!c)
                break;
        }
    }
    return CLI_OK;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Copies src to dst atomically (temporary, fsync, rename). */
static bool copy_file(const char *src, const char *dst)
{
    char tmp[PATH_MAX + 160];
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    int in = open(src, O_RDONLY), out = in >= 0 ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
    bool ok = in >= 0 && out >= 0;
    char buf[1 << 16];
    ssize_t got;
    while (ok && (got = read(in, buf, sizeof buf)) != 0) {
        if (got < 0) {
            if (errno == EINTR)
                continue;
            ok = false;
            break;
        }
        for (ssize_t off = 0; ok && off < got;) {
            ssize_t w = write(out, buf + off, (size_t)(got - off));
            if (w < 0 && errno != EINTR)
                ok = false;
            else if (w > 0)
                off += w;
        }
    }
    ok = ok && fsync(out) == 0;
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0)
        ok = false;
    ok = ok && rename(tmp, dst) == 0;
    if (!ok && out >= 0)
        unlink(tmp);
    return ok;
}

/* Syncs the directory holding path, so a rename into it survives a power
 * cut (best effort: some filesystems cannot sync a directory). */
static void sync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* dst becomes the same file as src: a hard link put in place by rename
 * (atomic, no copy), or a copy where links are not to be had; then the
 * directory is synced, as loom_checkpoint_save does for src. */
static bool link_or_copy(const char *src, const char *dst)
{
    char tmp[PATH_MAX + 160];
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    unlink(tmp);
    bool ok = link(src, tmp) == 0 && rename(tmp, dst) == 0;
    if (!ok) {
        unlink(tmp);
        ok = copy_file(src, dst);
    }
    if (ok)
        sync_parent(dst);
    return ok;
}

/* Removes the temporaries that killed runs left in dir. loom_checkpoint_save
 * writes "<checkpoint>.tmp.<pid>.<serial>" and renames it when whole; one
 * whose process is gone will never be renamed, and each is as large as a
 * checkpoint, so a job killed again and again would fill the disk. A
 * temporary of a live process (another run writing here) is left alone.
 * Returns how many were removed. */
static int sweep_temporaries(const char *dir)
{
    static const char mark[] = ".safetensors.tmp.";
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *t = strstr(e->d_name, mark);
        if (!t)
            continue;
        char *end;
        long pid = strtol(t + sizeof mark - 1, &end, 10);
        if (end == t + sizeof mark - 1 || *end != '.' || pid <= 0 || pid > INT_MAX || pid == (long)getpid())
            continue;
        const char *serial = end + 1;
        strtoul(serial, &end, 10);
        if (end == serial || *end || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* not ours, or its process lives (EPERM: another user's) */
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        removed += unlink(path) == 0;
    }
    closedir(d);
    return removed;
}

/* ------------------------------------------------------------------ */
/* The log                                                            */
/* ------------------------------------------------------------------ */

static const char LOG_HEADER[] = "step,loss,val_loss,tokens_per_s,time_s\n";

/* Opens <dir>/log.csv for appending. Resuming at step `keep_upto` keeps
 * the rows up to it (a run killed after its last checkpoint logged steps
 * that will now be trained again) and sets *time0 to the last time kept;
 * a fresh run starts the file. */
static FILE *log_open(const char *dir, long long keep_upto, bool resume, double *time0)
{
    char path[PATH_MAX + 16], tmp[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/log.csv", dir);
    snprintf(tmp, sizeof tmp, "%s/log.csv.tmp", dir);
    *time0 = 0;
    FILE *out = fopen(tmp, "w");
    if (!out)
        return NULL;
    fputs(LOG_HEADER, out);
    FILE *in = resume ? fopen(path, "r") : NULL;
    if (in) {
        char line[512];
        while (fgets(line, sizeof line, in)) {
            char *end;
            long long step = strtoll(line, &end, 10);
            if (end == line || *end != ',' || step > keep_upto)
                continue; /* the header, or a step to be trained again */
            fputs(line, out);
            /* the last field is the time */
            char *last = strrchr(line, ',');
            if (last)
                *time0 = strtod(last + 1, NULL);
        }
        fclose(in);
    }
    if (fflush(out) != 0 || fclose(out) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return NULL;
    }
    return fopen(path, "a");
}

/* ------------------------------------------------------------------ */
/* Progress                                                           */
/* ------------------------------------------------------------------ */

static char *fmt_duration(double s, char buf[32])
{
    if (!isfinite(s) || s < 0)
        snprintf(buf, 32, "?");
    else if (s >= 3600)
        snprintf(buf, 32, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60)
        snprintf(buf, 32, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, 32, "%.0fs", s);
    return buf;
}

typedef struct progress {
    bool tty;
    bool line_open;  /* a \r line is on screen */
    double last_draw;
} progress;

/* Ends the in-place line before ordinary output. */
static void progress_break(progress *p)
{
    if (p->line_open) {
        fputc('\n', stdout);
        p->line_open = false;
    }
}

/* ------------------------------------------------------------------ */
/* The run                                                            */
/* ------------------------------------------------------------------ */

typedef struct run {
    charlm_config cfg;
    const char *out;
    long long keep, log_every, val_chars;
    /* data */
    cli_text text;
    size_t n_train, n_val;
    cli_streams train;    /* whole chunks of the training part */
    /* models */
    charlm m;             /* training */
    loom_optimizer *opt;
    charlm_tape tp;
    charlm vm;            /* validation: its own context, the weights copied */
    charlm_tape vtp;
    bool validate;
    /* state */
    long long step, start_step;
    double best;          /* lowest val loss (NAN: none yet) */
    char **kept;          /* step checkpoints written by this run, oldest first */
    long long nkept;
    FILE *log;
    double time0;         /* log time of the runs before this one */
    progress pr;
} run;

static double count_params(loom_ctx *ctx)
{
    double n = 0;
    for (size_t i = 0; i < loom_param_count(ctx); i++) {
        loom_t p = loom_param_at(ctx, i);
        if (loom_param_trainable(ctx, p))
            n += (double)loom_shape_numel(loom_shape_of(ctx, p));
    }
    return n;
}

/* The mean loss over the validation text. */
static double validate(run *r)
{
    if (charlm_copy_weights(&r->vm, r->m.ctx, CMD) != CLI_OK)
        return NAN;
    size_t count;
    size_t nv = r->n_val;
    if (r->val_chars > 0 && nv > (size_t)r->val_chars)
        nv = (size_t)r->val_chars;
    return charlm_evaluate(&r->vm, &r->vtp, r->text.bytes + r->n_train, nv, &count, CMD);
}

/* Writes the checkpoint of this step (val NAN: none was run; tag
 * "interrupted" names it so). Returns CLI_OK or prints why not. */
static int save(run *r, double loss, double val, const char *tag)
{
    char name[96], path[PATH_MAX + 128];
    static char json[1 << 16]; /* CONFIG_MAX: a --data path of PATH_MAX bytes, all escaped, fits */
    if (tag)
        snprintf(name, sizeof name, "step-%06lld-%s.safetensors", r->step, tag);
    else if (isfinite(val))
        snprintf(name, sizeof name, "step-%06lld-val-%.4f.safetensors", r->step, val);
    else
        snprintf(name, sizeof name, "step-%06lld-loss-%.4f.safetensors", r->step, loss);
    snprintf(path, sizeof path, "%s/%s", r->out, name);
    r->cfg.step = r->step;
    r->cfg.loss = loss;
    r->cfg.val_loss = val;
    if (!charlm_config_write(&r->cfg, json, sizeof json)) {
        cli_error(CMD, "the config does not fit its buffer (a --data path this long?)");
        return CLI_FAIL;
    }
    if (loom_checkpoint_save(r->m.ctx, path, r->opt, json) != LOOM_OK) {
        cli_error(CMD, "cannot write checkpoint: %s", loom_errmsg(r->m.ctx));
        loom_clear_error(r->m.ctx);
        return CLI_FAIL;
    }
    bool best = isfinite(val) && !(val >= r->best);
    progress_break(&r->pr);
    if (best) {
        char bpath[PATH_MAX + 32];
        snprintf(bpath, sizeof bpath, "%s/best.safetensors", r->out);
        if (!link_or_copy(path, bpath))
            cli_error(CMD, "cannot update \"%s\": %s (\"%s\" is the best so far)", bpath, strerror(errno), path);
        r->best = val;
    }
    if (tag)
        printf("step %lld: %s checkpoint %s\n", r->step, tag, path);
    else if (isfinite(val))
        printf("step %lld: val loss %.4f%s, saved %s\n", r->step, val, best ? " (best)" : "", path);
    else
        printf("step %lld: saved %s\n", r->step, path);
    fflush(stdout);
    /* rotation: only this run's periodic checkpoints, never the best */
    if (!tag) {
        char **k = realloc(r->kept, (size_t)(r->nkept + 1) * sizeof *k);
        if (k && (k[r->nkept] = strdup(path))) {
            r->kept = k;
            r->nkept++;
        } else if (k) {
            r->kept = k;
        }
        while (r->keep > 0 && r->nkept > r->keep) {
            unlink(r->kept[0]);
            free(r->kept[0]);
            memmove(r->kept, r->kept + 1, (size_t)(r->nkept - 1) * sizeof *r->kept);
            r->nkept--;
        }
    }
    return CLI_OK;
}

static void log_row(run *r, double loss, double val, double tok_s, double elapsed)
{
    if (!r->log)
        return;
    fprintf(r->log, "%lld,", r->step);
    if (isfinite(loss))
        fprintf(r->log, "%.6f", loss);
    fputc(',', r->log);
    if (isfinite(val))
        fprintf(r->log, "%.6f", val);
    fprintf(r->log, ",%.1f,%.3f\n", tok_s, r->time0 + elapsed);
    fflush(r->log);
}

static void run_free(run *r)
{
    for (long long i = 0; i < r->nkept; i++)
        free(r->kept[i]);
    free(r->kept);
    if (r->log)
        fclose(r->log);
    loom_optimizer_free(r->opt);
    charlm_free(&r->m);
    charlm_free(&r->vm);
    cli_text_free(&r->text);
}

/* ------------------------------------------------------------------ */
/* Setting up                                                         */
/* ------------------------------------------------------------------ */

typedef struct train_args {
    const char *data, *out, *resume;
    int model, optimizer, schedule;
    long long hidden, layers, seq_len, batch, steps, epochs, val_every, log_every, keep, threads, warmup,
        val_chars;
    double dropout, lr, clip, momentum, weight_decay, val_frac;
    long long seed_ll;
} train_args;

/* A value given on the command line that contradicts the checkpoint's
 * model. */
static int conflict(const char *opt, const char *given, const char *saved, const char *ckpt)
{
    cli_error(CMD, "%s %s differs from the checkpoint's %s (\"%s\"): a resumed model keeps its shape", opt, given,
              saved, ckpt);
    return CLI_USAGE;
}

static int setup_resume(run *r, cli_cmd *cmd, const train_args *a, charlm_config *ck)
{
    if (charlm_config_load(ck, CMD, a->resume) != CLI_OK)
        return CLI_FAIL;
    char g[32], s[32];
    if (cli_find_opt(cmd, "--model")->seen && a->model != ck->model)
        return conflict("--model", cli_model_names[a->model], cli_model_names[ck->model], a->resume);
    if (cli_find_opt(cmd, "--hidden")->seen && a->hidden != ck->hidden) {
        snprintf(g, sizeof g, "%lld", a->hidden), snprintf(s, sizeof s, "%lld", (long long)ck->hidden);
        return conflict("--hidden", g, s, a->resume);
    }
    if (cli_find_opt(cmd, "--layers")->seen && a->layers != ck->layers) {
        snprintf(g, sizeof g, "%lld", a->layers), snprintf(s, sizeof s, "%d", ck->layers);
        return conflict("--layers", g, s, a->resume);
    }
    /* the checkpoint's settings, unless given again */
    charlm_config *c = &r->cfg;
    *c = *ck;
#define KEEP_OR(opt, field, value)                  \
    do {                                            \
        if (cli_find_opt(cmd, opt)->seen)           \
            c->field = (value);                     \
    } while (0)
    KEEP_OR("--dropout", dropout, a->dropout);
    KEEP_OR("--optimizer", optimizer, a->optimizer);
    KEEP_OR("--lr", lr, a->lr);
    KEEP_OR("--clip", clip, a->clip);
    KEEP_OR("--momentum", momentum, a->momentum);
    KEEP_OR("--weight-decay", weight_decay, a->weight_decay);
    KEEP_OR("--schedule", schedule, a->schedule);
    KEEP_OR("--warmup", warmup, a->warmup);
    KEEP_OR("--seq-len", seq_len, (int)a->seq_len);
    KEEP_OR("--batch", batch, (int)a->batch);
    KEEP_OR("--val-frac", val_frac, a->val_frac);
    KEEP_OR("--val-every", val_every, a->val_every);
    KEEP_OR("--val-chars", val_chars, a->val_chars);
#undef KEEP_OR
    if (!c->val_every)
        c->val_every = a->val_every;
    if (a->data) {
        char *real = realpath(a->data, NULL);
        snprintf(c->data, sizeof c->data, "%s", real ? real : a->data);
        free(real);
    }
    return CLI_OK;
}

static int setup_data(run *r)
{
    charlm_config *c = &r->cfg;
    int rc = c->data[0] ? cli_text_read(&r->text, CMD, c->data) : cli_text_sources(&r->text, CMD);
    if (rc != CLI_OK)
        return rc;
    if (c->vocab.size == 0) /* a new run; a resumed one keeps the checkpoint's */
        cli_vocab_build(&c->vocab, r->text.bytes, r->text.n);
    size_t bad = cli_vocab_encode(&c->vocab, r->text.bytes, r->text.n);
    if (bad < r->text.n) {
        char b[8];
        cli_error(CMD, "%s: byte %s at offset %zu is not in the checkpoint's vocabulary of %d", r->text.origin,
                  cli_byte_str(r->text.bytes[bad], b), bad, c->vocab.size);
        return CLI_FAIL;
    }
    r->n_val = (size_t)((double)r->text.n * c->val_frac);
    r->n_train = r->text.n - r->n_val;
    r->validate = c->val_frac > 0;
    if (r->validate && r->n_val < 2) {
        cli_error(CMD, "--val-frac %g holds out %zu bytes of %zu: too few to validate on (use more, or 0 for none)",
                  c->val_frac, r->n_val, r->text.n);
        return CLI_USAGE;
    }
    cli_streams_init(&r->train, r->text.bytes, r->n_train, c->batch, c->seq_len, true);
    if (r->train.chunks == 0) {
        cli_error(CMD, "the training text (%zu bytes after holding out --val-frac %g) is too short for --batch %d "
                  "--seq-len %d: it needs at least %lld bytes",
                  r->n_train, c->val_frac, c->batch, c->seq_len, (long long)c->batch * c->seq_len + 1);
        return CLI_USAGE;
    }
    return CLI_OK;
}

static int setup_models(run *r, const char *resume, int threads)
{
    charlm_config *c = &r->cfg;
    if (charlm_new(&r->m, c, c->seed, threads, CMD) != CLI_OK)
        return CLI_FAIL;
    static const loom_opt_kind kinds[CLI_OPT_COUNT] = { LOOM_OPT_ADAM, LOOM_OPT_ADAMW, LOOM_OPT_SGD,
                                                        LOOM_OPT_RMSPROP };
    loom_optim_config oc = {
        .kind = kinds[c->optimizer],
        .lr = c->lr,
        .momentum = c->momentum,
        .weight_decay = c->weight_decay,
        .clip_norm = c->clip,
        .schedule = c->schedule == 1 ? LOOM_SCHEDULE_COSINE : LOOM_SCHEDULE_CONSTANT,
        .total_steps = c->total_steps,
        .warmup_steps = c->warmup,
    };
    r->opt = loom_optimizer_new(r->m.ctx, &oc);
    if (!r->opt) {
        cli_error(CMD, "making the optimizer: %s", loom_errmsg(r->m.ctx));
        return CLI_FAIL;
    }
    /* the carried state, named by its batch: a resumed run with another
     * --batch starts its state from zero instead of failing on a shape */
    char state[32];
    snprintf(state, sizeof state, "state.b%d", c->batch);
    if (charlm_state_new(&r->m, &r->tp, state, c->seq_len, c->batch, CMD) != CLI_OK ||
        charlm_record(&r->m, &r->tp, true, r->opt, CMD) != CLI_OK)
        return CLI_FAIL;
    if (resume) {
        /* after recording: attaching the optimizer made its buffers */
        charlm_config ck;
        if (charlm_config_load(&ck, CMD, resume) != CLI_OK)
            return CLI_FAIL;
        bool same_state = ck.batch == c->batch, same_opt = ck.optimizer == c->optimizer;
        unsigned flags = same_state && same_opt ? LOOM_LOAD_STRICT
                                                : LOOM_LOAD_ALLOW_MISSING | LOOM_LOAD_ALLOW_UNEXPECTED;
        if (loom_checkpoint_load(r->m.ctx, resume, r->opt, flags) != LOOM_OK) {
            cli_error(CMD, "cannot resume from \"%s\": %s", resume, loom_errmsg(r->m.ctx));
            return CLI_FAIL;
        }
        r->start_step = loom_optimizer_steps(r->opt);
        if (!same_state)
            printf("note: --batch %d differs from the checkpoint's %d: the carried state starts from zero\n",
                   c->batch, ck.batch);
        if (!same_opt)
            printf("note: --optimizer %s differs from the checkpoint's %s: its state starts fresh\n",
                   cli_optimizer_names[c->optimizer], cli_optimizer_names[ck.optimizer]);
        r->best = ck.val_loss;
        /* the best of the earlier runs, if it is still there */
        char bpath[PATH_MAX + 32];
        snprintf(bpath, sizeof bpath, "%s/best.safetensors", r->out);
        charlm_config bc;
        if (file_exists(bpath) && charlm_config_load(&bc, CMD, bpath) == CLI_OK && isfinite(bc.val_loss) &&
            !(bc.val_loss >= r->best))
            r->best = bc.val_loss;
    }
    if (r->validate) {
        size_t nv = r->val_chars > 0 && r->n_val > (size_t)r->val_chars ? (size_t)r->val_chars : r->n_val;
        int bv = charlm_eval_batch(nv, c->seq_len, 32);
        if (charlm_new(&r->vm, c, c->seed, threads, CMD) != CLI_OK ||
            charlm_state_new(&r->vm, &r->vtp, "val", c->seq_len, bv, CMD) != CLI_OK ||
            charlm_record(&r->vm, &r->vtp, false, NULL, CMD) != CLI_OK)
            return CLI_FAIL;
    }
    return CLI_OK;
}

/* ------------------------------------------------------------------ */
/* The loop                                                           */
/* ------------------------------------------------------------------ */

static int train_loop(run *r)
{
    charlm_config *c = &r->cfg;
    size_t cells = (size_t)c->seq_len * (size_t)c->batch;
    int32_t *x = malloc(cells * sizeof *x), *y = malloc(cells * sizeof *y); /* [T, B], [T * B] */
    if (!x || !y) {
        free(x);
        free(y);
        cli_error(CMD, "out of memory");
        return CLI_FAIL;
    }
    long long epoch_steps = (long long)r->train.chunks;
    double t_start = cli_now(), t_first = 0, t_interval = t_start;
    double interval_loss = 0, ema = NAN, last_val = NAN, last_loss = NAN;
    long long interval_steps = 0, interval_tokens = 0, first_done_step = -1, last_ckpt_step = -1;
    int rc = CLI_OK;
    catch_signals();
    if (r->pr.tty && r->step < c->total_steps) {
        printf("step %lld/%lld | compiling the training step...", r->step, c->total_steps);
        fflush(stdout);
        r->pr.line_open = true;
    }
    while (r->step < c->total_steps && !interrupted) {
        long long j = r->step % epoch_steps;
        if (j == 0 && charlm_state_zero(&r->m, &r->tp, CMD) != CLI_OK) {
            rc = CLI_FAIL;
            break;
        }
        cli_streams_chunk(&r->train, (size_t)j, x, y);
        loom_feed(r->m.ctx, r->tp.ids, x, cells * sizeof *x);
        loom_feed(r->m.ctx, r->tp.targets, y, cells * sizeof *y);
        if (loom_optimizer_step(r->m.ctx, r->opt, 1, &r->tp.loss) != LOOM_OK) {
            progress_break(&r->pr);
            cli_error(CMD, "step %lld: %s", r->step + 1, loom_errmsg(r->m.ctx));
            rc = CLI_FAIL;
            break;
        }
        double loss = loom_item(r->m.ctx, r->tp.loss), now = cli_now();
        r->step++;
        if (!isfinite(loss)) {
            progress_break(&r->pr);
            cli_error(CMD, "step %lld: the loss is %g; try a lower --lr or a --clip (the last checkpoint is kept)",
                      r->step, loss);
            rc = CLI_FAIL;
            break;
        }
        if (first_done_step < 0) {
            first_done_step = r->step;
            t_first = now;
            t_interval = now; /* the first step compiles: left out of the rates */
        } else {
            interval_tokens += (long long)cells;
        }
        last_loss = loss;
        interval_loss += loss;
        interval_steps++;
        ema = isnan(ema) ? loss : 0.95 * ema + 0.05 * loss;

        /* rates: tokens per second over this interval, the ETA from the
         * mean time per step since the first (validation included) */
        double tok_s = interval_tokens > 0 && now > t_interval ? (double)interval_tokens / (now - t_interval) : 0;
        double per_step = r->step > first_done_step ? (now - t_first) / (double)(r->step - first_done_step) : NAN;
        char eta[32];
        fmt_duration(per_step * (double)(c->total_steps - r->step), eta);

        bool ckpt_now = r->step % c->val_every == 0 || r->step == c->total_steps;
        bool log_now = r->step % r->log_every == 0 || ckpt_now || interrupted;
        if (r->pr.tty && (now - r->pr.last_draw > 0.1 || log_now)) {
            printf("\r\033[Kstep %lld/%lld | loss %.4f", r->step, c->total_steps, ema);
            if (isfinite(last_val))
                printf(" | val %.4f", last_val);
            printf(" | %.0f tok/s | ETA %s", tok_s, eta);
            fflush(stdout);
            r->pr.line_open = true;
            r->pr.last_draw = now;
        }
        if (log_now) {
            double mean = interval_loss / (double)interval_steps;
            double val = NAN;
            if (!r->pr.tty) {
                printf("step %lld/%lld loss %.4f %.0f tok/s ETA %s\n", r->step, c->total_steps, mean, tok_s, eta);
                fflush(stdout);
            }
            if (ckpt_now) {
                if (r->validate) {
                    val = validate(r);
                    if (isnan(val)) {
                        rc = CLI_FAIL;
                        break;
                    }
                    last_val = val;
                }
                last_ckpt_step = r->step;
                if (save(r, mean, val, NULL) != CLI_OK) {
                    rc = CLI_FAIL;
                    break;
                }
            }
            log_row(r, mean, val, tok_s, cli_now() - t_start);
            interval_loss = 0;
            interval_steps = 0;
            interval_tokens = 0;
            t_interval = cli_now(); /* validation is not training time */
        }
    }
    free(x);
    free(y);
    if (rc != CLI_OK)
        return rc;
    if (interrupted) {
        progress_break(&r->pr);
        printf("%s: stopping after step %lld\n", interrupted == SIGINT ? "interrupted" : "terminated", r->step);
        if (save(r, last_loss, NAN, "interrupted") != CLI_OK)
            return CLI_FAIL;
        cli_plot_run(r->out, CMD, true);
        printf("resume with: loom train --resume %s/step-%06lld-interrupted.safetensors\n", r->out, r->step);
        return CLI_INTERRUPTED;
    }
    progress_break(&r->pr);
    if (last_ckpt_step != r->step && r->step > r->start_step) {
        /* the end of the run always leaves a checkpoint */
        if (save(r, last_loss, NAN, NULL) != CLI_OK)
            return CLI_FAIL;
    }
    return CLI_OK;
}

/* ------------------------------------------------------------------ */
/* The command                                                        */
/* ------------------------------------------------------------------ */

int cli_train(int argc, char **argv)
{
    train_args a = {
        .hidden = 256, .layers = 2, .seq_len = 64, .batch = 32, .lr = 2e-3, .clip = 5, .val_frac = 0.1,
        .val_every = 200, .log_every = 10, .keep = 3, .val_chars = 1 << 18, .seed_ll = 1,
    };
    cli_opt opts[] = {
        { "--data", 0, CLI_OPT_STRING, &a.data, "FILE", "text to train on, bytes or UTF-8 (default: loom's own C sources)", 0, 0, false, NULL, false },
        { "--model", 0, CLI_OPT_CHOICE, &a.model, NULL, "recurrent layer", 0, 0, false, cli_model_names, false },
        { "--hidden", 0, CLI_OPT_INT, &a.hidden, "N", "hidden and embedding size", 1, 65536, false, NULL, false },
        { "--layers", 0, CLI_OPT_INT, &a.layers, "N", "recurrent layers", 1, 64, false, NULL, false },
        { "--dropout", 0, CLI_OPT_DOUBLE, &a.dropout, "P", "dropout on embeddings, between layers and on outputs", 0, 0.99, false, NULL, false },
        { "--seq-len", 0, CLI_OPT_INT, &a.seq_len, "T", "characters per stream per step (BPTT length)", 1, 100000, false, NULL, false },
        { "--batch", 0, CLI_OPT_INT, &a.batch, "B", "parallel streams", 1, 65536, false, NULL, false },
        { "--lr", 0, CLI_OPT_DOUBLE, &a.lr, "X", "learning rate", 0, 100, true, NULL, false },
        { "--optimizer", 0, CLI_OPT_CHOICE, &a.optimizer, NULL, "optimizer", 0, 0, false, cli_optimizer_names, false },
        { "--momentum", 0, CLI_OPT_DOUBLE, &a.momentum, "X", "momentum (sgd, rmsprop)", 0, 0.9999, false, NULL, false },
        { "--weight-decay", 0, CLI_OPT_DOUBLE, &a.weight_decay, "X", "weight decay (0: torch's default, none but for adamw's 0.01)", 0, 10, false, NULL, false },
        { "--schedule", 0, CLI_OPT_CHOICE, &a.schedule, NULL, "learning-rate schedule over the run", 0, 0, false, cli_schedule_names, false },
        { "--warmup", 0, CLI_OPT_INT, &a.warmup, "N", "linear learning-rate warm-up steps", 0, 1e12, false, NULL, false },
        { "--clip", 0, CLI_OPT_DOUBLE, &a.clip, "X", "clip the global gradient norm to X (0: off)", 0, 1e9, false, NULL, false },
        { "--steps", 0, CLI_OPT_INT, &a.steps, "N", "train until step N, counted from the run's start (default: 10 epochs)", 1, 1e12, false, NULL, false },
        { "--epochs", 0, CLI_OPT_INT, &a.epochs, "N", "or train for N passes over the training text (default 10)", 1, 1e6, false, NULL, false },
        { "--val-frac", 0, CLI_OPT_DOUBLE, &a.val_frac, "F", "hold out the last F of the text for validation (0: none)", 0, 0.9, false, NULL, false },
        { "--val-every", 0, CLI_OPT_INT, &a.val_every, "N", "validate and checkpoint every N steps", 1, 1e12, false, NULL, false },
        { "--val-chars", 0, CLI_OPT_INT, &a.val_chars, "N", "validate on at most N held-out bytes (0: all)", 0, 1e15, false, NULL, false },
        { "--log-every", 0, CLI_OPT_INT, &a.log_every, "N", "log.csv row (and a plain progress line) every N steps", 1, 1e12, false, NULL, false },
        { "--keep", 0, CLI_OPT_INT, &a.keep, "N", "step checkpoints kept besides best.safetensors (0: all)", 0, 1e9, false, NULL, false },
        { "--out", 'o', CLI_OPT_STRING, &a.out, "DIR", "run directory (default runs/<date-time>; with --resume the checkpoint's)", 0, 0, false, NULL, false },
        { "--resume", 0, CLI_OPT_STRING, &a.resume, "CKPT", "continue from a checkpoint: weights, optimizer, step, state", 0, 0, false, NULL, false },
        { "--threads", 0, CLI_OPT_INT, &a.threads, "N", "threads (0: LOOM_THREADS or every core)", 0, 1024, false, NULL, false },
        { "--seed", 0, CLI_OPT_INT, &a.seed_ll, "S", "initialisation and dropout seed", 0, 9.2e18, false, NULL, false },
    };
    cli_cmd cmd = {
        .name = CMD,
        .usage = "loom train [--data FILE] [--model lstm|gru|rnn] [--hidden N] [--layers N] [options]",
        .summary =
            "Trains a character-level language model (embedding -> LSTM/GRU/RNN stack -> linear,\n"
            "cross-entropy on the next byte) with truncated BPTT over --batch contiguous streams,\n"
            "--seq-len bytes per step, the state carried between steps. Validates on the last\n"
            "--val-frac of the text every --val-every steps and writes checkpoints, best.safetensors,\n"
            "log.csv and loss.svg in the run directory. Ctrl-C writes a checkpoint and stops.",
        .opts = opts,
        .nopts = (int)CLI_LEN(opts),
        .min_pos = 0,
        .max_pos = 0,
    };
    const char *pos[1];
    int npos;
    int prc = cli_parse(&cmd, argc, argv, pos, &npos);
    if (prc != CLI_OK)
        return prc < 0 ? CLI_OK : prc;
    if (cli_find_opt(&cmd, "--steps")->seen && cli_find_opt(&cmd, "--epochs")->seen) {
        cli_error(CMD, "--steps and --epochs both given; pass one");
        return CLI_USAGE;
    }

    run r;
    memset(&r, 0, sizeof r);
    r.best = NAN;
    r.keep = a.keep;
    r.log_every = a.log_every;
    r.pr.tty = isatty(STDOUT_FILENO);
    int rc = CLI_OK;
    char outbuf[PATH_MAX];
    if (a.resume) {
        charlm_config ck;
        if ((rc = setup_resume(&r, &cmd, &a, &ck)) != CLI_OK)
            goto out;
        r.start_step = ck.step;
        if (!a.out) {
            snprintf(outbuf, sizeof outbuf, "%s", a.resume);
            char *slash = strrchr(outbuf, '/');
            if (slash)
                *slash = 0;
            else
                snprintf(outbuf, sizeof outbuf, ".");
            a.out = outbuf;
        }
    } else {
        charlm_config *c = &r.cfg;
        c->model = a.model;
        c->hidden = a.hidden;
        c->layers = (int)a.layers;
        c->dropout = a.dropout;
        c->optimizer = a.optimizer;
        c->lr = a.lr;
        c->clip = a.clip;
        c->momentum = a.momentum;
        c->weight_decay = a.weight_decay;
        c->schedule = a.schedule;
        c->warmup = a.warmup;
        c->seq_len = (int)a.seq_len;
        c->batch = (int)a.batch;
        c->val_frac = a.val_frac;
        c->val_every = a.val_every;
        c->val_chars = a.val_chars;
        c->seed = (unsigned long long)a.seed_ll;
        c->loss = c->val_loss = NAN;
        if (a.data) {
            char *real = realpath(a.data, NULL); /* a --resume from elsewhere finds it */
            snprintf(c->data, sizeof c->data, "%s", real ? real : a.data);
            free(real);
        }
        if (!a.out) {
            time_t now = time(NULL);
            struct tm tm;
            localtime_r(&now, &tm);
            strftime(outbuf, sizeof outbuf, "runs/%Y%m%d-%H%M%S", &tm);
            a.out = outbuf;
        }
    }
    r.out = a.out;
    r.val_chars = r.cfg.val_chars; /* --val-chars, or the checkpoint's when resuming without it */
    if ((rc = setup_data(&r)) != CLI_OK)
        goto out;
    /* the length of the run */
    long long epoch_steps = (long long)r.train.chunks;
    if (cli_find_opt(&cmd, "--steps")->seen)
        r.cfg.total_steps = a.steps;
    else if (cli_find_opt(&cmd, "--epochs")->seen)
        r.cfg.total_steps = a.epochs * epoch_steps;
    else if (!a.resume || r.cfg.total_steps == 0)
        r.cfg.total_steps = DEFAULT_EPOCHS * epoch_steps;
    if (a.resume && r.start_step >= r.cfg.total_steps) {
        cli_error(CMD, "the checkpoint is at step %lld, at or past the end of the run (%lld); pass a larger --steps "
                  "or --epochs", r.start_step, r.cfg.total_steps);
        rc = CLI_USAGE;
        goto out;
    }

    if ((rc = make_dirs(r.out)) != CLI_OK)
        goto out;
    char lpath[PATH_MAX + 16];
    snprintf(lpath, sizeof lpath, "%s/log.csv", r.out);
    if (!a.resume && file_exists(lpath)) {
        cli_error(CMD, "--out \"%s\" already holds a run (log.csv); pass another --out, or --resume one of its "
                  "checkpoints", r.out);
        rc = CLI_USAGE;
        goto out;
    }
    if ((rc = setup_models(&r, a.resume, (int)a.threads)) != CLI_OK)
        goto out;
    int swept = sweep_temporaries(r.out);
    if (swept)
        printf("note: removed %d unfinished checkpoint temporar%s of killed runs from %s\n", swept,
               swept > 1 ? "ies" : "y", r.out);
    r.step = r.start_step;
    if (!(r.log = log_open(r.out, r.start_step, a.resume != NULL, &r.time0)))
        cli_error(CMD, "cannot write \"%s\": %s (training goes on without a log)", lpath, strerror(errno));

    charlm_config *c = &r.cfg;
    printf("data: %s, %zu bytes, vocabulary %d; training %zu, validation %zu%s\n", r.text.origin, r.text.n,
           c->vocab.size, r.n_train, r.n_val,
           r.val_chars > 0 && r.n_val > (size_t)r.val_chars ? " (the first --val-chars of it used)" : "");
    printf("model: %s, hidden %lld, %d layer%s, dropout %g; %.0f parameters\n", cli_model_names[c->model],
           (long long)c->hidden, c->layers, c->layers > 1 ? "s" : "", c->dropout, count_params(r.m.ctx));
    printf("training: %s lr %g%s, clip %g, batch %d x seq-len %d, %lld steps per epoch, steps %lld to %lld; "
           "%d thread%s\n",
           cli_optimizer_names[c->optimizer], c->lr, c->schedule ? " cosine" : "", c->clip, c->batch, c->seq_len,
           epoch_steps, r.step, c->total_steps, loom_get_threads(r.m.ctx), loom_get_threads(r.m.ctx) > 1 ? "s" : "");
    printf("run directory: %s\n", r.out);
    fflush(stdout);

    double t0 = cli_now();
    rc = train_loop(&r);
    if (rc == CLI_OK) {
        cli_plot_run(r.out, CMD, true);
        char d[32];
        printf("done: step %lld in %s", r.step, fmt_duration(cli_now() - t0, d));
        if (isfinite(r.best))
            printf(", best val loss %.4f (%s/best.safetensors)", r.best, r.out);
        printf("; log %s/log.csv, plot %s/loss.svg\n", r.out, r.out);
    }
out:
    run_free(&r);
    return rc;
}
