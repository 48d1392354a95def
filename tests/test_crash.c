/*
 * test_crash.c — crash safety of checkpoints. Training processes are
 * killed with SIGKILL many times, at random moments concentrated around
 * checkpoint writes; after every kill the newest checkpoint must load, must
 * be one that was written whole, and training must resume from it.
 *
 * The victims:
 *   - `loom train` (the binary is argv[1]) on a tiny LSTM that validates
 *     and checkpoints every step (a new file per step, three kept, and
 *     best.safetensors linked to the best), on the reference backend, which
 *     starts in milliseconds, and for a few kills on the JIT;
 *   - a child forked from this test running a training loop of its own (a
 *     512 x 512 linear model, SGD with momentum) that saves one 2 MB
 *     checkpoint over itself with loom_checkpoint_save every step, so kills
 *     also land inside write() and before the rename that replaces a file.
 * Every checkpoint is checked against an uninterrupted run of the same
 * training: byte for byte against the file of the same step (loom train
 * at one thread gives the same bytes resumed or not), or the hash of every
 * parameter and optimizer buffer after that step (the in-test loop).
 *
 * Kills: a quarter at a random time after the start, the rest at a random
 * moment up to a save's duration (2.5 ms for loom train's small files, a
 * save measured here for the in-test loop) after inotify reports a
 * temporary checkpoint created in the run directory: inside the write, the
 * fsync, or the renames and syncs after it.
 * A kill "landed mid-write" when a temporary it made is still there.
 * A checkpoint is lost when one the victim reported saved (its "saved"
 * line, or a step number on a pipe), or one seen whole after an earlier
 * kill, is gone with nothing newer in its place, or when the newest file
 * does not load or differs from the uninterrupted run's: the test fails.
 *
 * The seed is printed; LOOM_CRASH_SEED=N repeats the kill schedule (not
 * the processes' own timing), LOOM_CRASH_KILLS=N sets the number of kills
 * per victim (default 100; the JIT victim gets a tenth).
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "child.h"
#include "testutil.h"

static const char *loom_bin;
static char tmpdir[64];
static int kills_wanted = 100;

/* ------------------------------------------------------------------ */
/* The kill schedule                                                  */
/* ------------------------------------------------------------------ */

static uint64_t seed, rng_state;

/* splitmix64 */
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rnd01(void) { return (double)(rnd() >> 11) * 0x1p-53; }

static long rnd_range(long lo, long hi) { return lo + (long)(rnd() % (uint64_t)(hi - lo + 1)); }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of this process and its reaped children. */
static double cpu_s(void)
{
    struct rusage self, kids;
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &kids);
    return (double)(self.ru_utime.tv_sec + self.ru_stime.tv_sec + kids.ru_utime.tv_sec + kids.ru_stime.tv_sec) +
           1e-6 * (double)(self.ru_utime.tv_usec + self.ru_stime.tv_usec + kids.ru_utime.tv_usec +
                           kids.ru_stime.tv_usec);
}

static void sleep_us(long us)
{
    struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Whether pid has ended, without reaping it (tc_finish or waitpid does). */
static bool ended(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid;
}

/* inotify on one directory, for the files created in it. */
static int watch_new(const char *dir)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    assert_true(fd >= 0);
    assert_true(inotify_add_watch(fd, dir, IN_CREATE) >= 0);
    return fd;
}

static void watch_drain(int fd)
{
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

/* Waits for the n-th file created whose name contains needle. False when
 * pid ended first, or after timeout_s. */
static bool watch_wait(int fd, const char *needle, int n, pid_t pid, double timeout_s)
{
    double t0 = now_s();
    for (int seen = 0; seen < n;) {
        if (ended(pid) || now_s() - t0 > timeout_s)
            return false;
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, 5) <= 0)
            continue;
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        ssize_t k = read(fd, buf, sizeof buf);
        for (char *q = buf; k > 0 && q < buf + k;) {
            const struct inotify_event *e = (const struct inotify_event *)q;
            if (e->len && strstr(e->name, needle))
                seen++;
            q += sizeof *e + e->len;
        }
    }
    return true;
}

/* Sends SIGKILL at a moment of the schedule: a random time up to
 * random_max_s after the start, or a random 0 to window_us microseconds
 * after the 1st to 3rd temporary checkpoint is created. */
static void kill_sometime(pid_t pid, int watch_fd, double random_max_s, long window_us)
{
    if (rnd01() < 0.25) {
        double until = now_s() + rnd01() * random_max_s;
        while (now_s() < until && !ended(pid))
            sleep_us(200);
    } else if (watch_wait(watch_fd, ".safetensors.tmp", (int)rnd_range(1, 3), pid, 60)) {
        sleep_us(rnd_range(0, window_us));
    }
    kill(pid, SIGKILL);
}

/* ------------------------------------------------------------------ */
/* Files                                                              */
/* ------------------------------------------------------------------ */

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    char chunk[1 << 16];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        tc_append(&buf, &len, chunk, k);
    fclose(f);
    if (!buf)
        tc_append(&buf, &len, "", 0);
    *n = len;
    return buf;
}

static bool same_bytes(const char *a, const char *b)
{
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    bool same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_tree(const char *dir) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

/* A temporary of loom_checkpoint_save: "<path>.tmp.<pid>.<serial>". */
static bool tmp_pid(const char *name, long *pid)
{
    const char *t = strstr(name, ".safetensors.tmp.");
    char *end;
    if (!t)
        return false;
    *pid = strtol(t + strlen(".safetensors.tmp."), &end, 10);
    return *end == '.';
}

/* The names of a directory's temporaries (anything with ".tmp"), kept to
 * tell the temporaries a victim made from those of earlier ones. */
typedef struct name_set {
    int n;
    char names[512][128];
} name_set;

static bool name_set_has(const name_set *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* The tally                                                          */
/* ------------------------------------------------------------------ */

typedef struct tally {
    int kills;          /* SIGKILLs that ended a victim */
    int mid_write;      /* ... that left a temporary of their own: killed between creating it and the rename */
    int torn;           /* ... of which the temporary was short: killed inside write() */
    int verified;       /* checkpoint files loaded and compared with the uninterrupted run */
    int newest;         /* newest checkpoints verified after a kill */
    int resumed;        /* victims seen resuming from the newest checkpoint */
    int completed;      /* resumed runs that reached the end equal to the uninterrupted run */
    int lost;           /* must stay 0 */
    char first_loss[1024];
} tally;

static void lose(tally *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lose(tally *t, const char *fmt, ...)
{
    if (!t->lost++) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->first_loss, sizeof t->first_loss, fmt, ap);
        va_end(ap);
    }
}

static void report(const char *what, const tally *t, double t0, double cpu0)
{
    print_message("%s: %d kills, %d mid-write (%d inside write()), %d checkpoint files verified (%d newest "
                  "after a kill), %d resumed, %d runs completed, %d lost; %.1f s (%.1f s CPU)\n",
                  what, t->kills, t->mid_write, t->torn, t->verified, t->newest, t->resumed, t->completed, t->lost,
                  now_s() - t0, cpu_s() - cpu0);
    if (t->lost)
        fail_msg("%s: %d checkpoint(s) lost; the first: %s (seed %llu)", what, t->lost, t->first_loss,
                 (unsigned long long)seed);
    if (t->kills == 0 || t->newest == 0)
        fail_msg("%s: no kill was verified", what);
}

/* Full validation through the library: the header, every tensor's
 * offsets and the checksum over the data (a context with no parameters
 * takes every tensor as unexpected, allowed here). */
static bool loads(const char *path, char *why, size_t why_size)
{
    loom_ctx *ctx = loom_ctx_new(&(loom_options){ .backend = LOOM_BACKEND_REFERENCE, .threads = 1 });
    assert_non_null(ctx);
    bool ok = loom_checkpoint_load(ctx, path, NULL, LOOM_LOAD_ALLOW_UNEXPECTED) == LOOM_OK;
    if (!ok)
        snprintf(why, why_size, "%s", loom_errmsg(ctx));
    loom_ctx_free(ctx);
    return ok;
}

/* The "step" metadata of a checkpoint (-1 if none). */
static long header_step(const char *path)
{
    size_t n;
    char *text = slurp(path, &n);
    const char *s = text ? strstr(text + 8, "\"step\":\"") : NULL;
    long step = s ? strtol(s + 8, NULL, 10) : -1;
    free(text);
    return step;
}

/* ------------------------------------------------------------------ */
/* Victim 1: loom train                                               */
/* ------------------------------------------------------------------ */

typedef struct train_victim {
    const char *backend;  /* LOOM_BACKEND of the processes */
    int steps;            /* --steps of every run */
    int kills;
    double random_max_s;  /* the latest random-time kill */
    char data[600], ref[600];
    char env[64];
} train_victim;

static void write_text(const char *path, size_t n)
{
    static const char *const words[] = { "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog",
                                         "and", "then", "runs", "into", "forest", "where", "it", "sleeps" };
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t s = 42;
    for (size_t len = 0; len < n;) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        const char *w = words[(s >> 33) % TU_LEN(words)];
        len += (size_t)fprintf(f, "%s%s", w, len % 64 > 56 ? "\n" : " ");
    }
    assert_int_equal(fclose(f), 0);
}

/* Starts `loom train`: a fresh run into out, or (resume non-NULL) one
 * resumed from that checkpoint into its own directory. */
static void train_spawn(const train_victim *v, const char *out, const char *resume, int keep, pid_t *pid, int *o,
                        int *e)
{
    char steps[32], keeps[32];
    snprintf(steps, sizeof steps, "%d", v->steps);
    snprintf(keeps, sizeof keeps, "%d", keep);
    const char *const env[] = { v->env, NULL };
    if (resume)
        tc_spawn(loom_bin,
                 (const char *const[]){ "train", "--resume", resume, "--steps", steps, "--val-chars", "64",
                                        "--log-every", "100000", "--threads", "1", "--keep", keeps, NULL },
                 env, NULL, pid, o, e);
    else
        tc_spawn(loom_bin,
                 (const char *const[]){ "train", "--data", v->data, "--hidden", "8", "--layers", "1", "--seq-len",
                                        "8", "--batch", "2", "--steps", steps, "--val-every", "1", "--val-frac",
                                        "0.1", "--val-chars", "64", "--log-every", "100000", "--threads", "1", "--seed", "5", "--keep",
                                        keeps, "--out", out, NULL },
                 env, NULL, pid, o, e);
}

/* The last checkpoint a run reported saved ("step N: ... saved PATH" on a
 * whole line): its step, or -1. */
static long last_saved(const char *out, char *path, size_t size)
{
    long step = -1;
    for (const char *line = out; *line;) {
        const char *nl = strchr(line, '\n');
        if (!nl)
            break; /* cut by the kill */
        const char *saved = strstr(line, " saved ");
        long s;
        if (saved && saved < nl && sscanf(line, "step %ld:", &s) == 1) {
            step = s;
            snprintf(path, size, "%.*s", (int)(nl - saved - 7), saved + 7);
        }
        line = nl + 1;
    }
    return step;
}

/* The step checkpoint of the uninterrupted run with this step. */
static bool ref_file(const train_victim *v, long step, char *path, size_t size)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "step-%06ld-", step);
    DIR *d = opendir(v->ref);
    assert_non_null(d);
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(d));)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            snprintf(path, size, "%s/%s", v->ref, e->d_name);
            found = true;
        }
    closedir(d);
    return found;
}

/* A checkpoint of a crashed run: it loads and has the bytes of the
 * uninterrupted run's checkpoint of its step. */
static bool train_check_file(const train_victim *v, const char *path, long step, tally *t)
{
    char why[600], ref[1200];
    if (!loads(path, why, sizeof why)) {
        lose(t, "%s does not load: %s", path, why);
        return false;
    }
    if (!ref_file(v, step, ref, sizeof ref)) {
        lose(t, "%s: the uninterrupted run has no checkpoint of step %ld", path, step);
        return false;
    }
    if (!same_bytes(path, ref)) {
        lose(t, "%s differs from %s, the uninterrupted run's checkpoint of step %ld", path, ref, step);
        return false;
    }
    t->verified++;
    return true;
}

/* Checks every file of a run directory after a kill. Returns the newest
 * step checkpoint's step (-1: none) and its path; *new_tmp counts the
 * temporaries not in *before (then updated), *torn those short of a whole
 * checkpoint. */
static long train_check_dir(const train_victim *v, const char *dir, name_set *before, int *new_tmp, int *torn,
                            char *newest, size_t newest_size, tally *t)
{
    long best = -1;
    name_set now = { 0 };
    DIR *d = opendir(dir);
    assert_non_null(d);
    char path[1200];
    *new_tmp = *torn = 0;
    for (struct dirent *e; (e = readdir(d));) {
        const char *name = e->d_name;
        size_t len = strlen(name);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        long step;
        char rest[256];
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strcmp(name, "log.csv") == 0 ||
            strcmp(name, "loss.svg") == 0)
            continue;
        if (strstr(name, ".tmp")) {
            /* a temporary must not pass for a checkpoint by its name */
            if (len >= 12 && strcmp(name + len - 12, ".safetensors") == 0)
                fail_msg("the temporary %s ends in .safetensors", path);
            assert_true(now.n < (int)TU_LEN(now.names));
            snprintf(now.names[now.n++], sizeof now.names[0], "%s", name);
            long pid;
            if (tmp_pid(name, &pid) && !name_set_has(before, name)) {
                (*new_tmp)++;
                if (!loads(path, rest, sizeof rest))
                    (*torn)++;
            }
            continue;
        }
        if (strcmp(name, "best.safetensors") == 0) {
            long s = header_step(path);
            if (s < 1)
                lose(t, "%s has no step", path);
            else
                train_check_file(v, path, s, t);
            continue;
        }
        if (sscanf(name, "step-%6ld-%255s", &step, rest) == 2 && len > 12 &&
            strcmp(name + len - 12, ".safetensors") == 0) {
            if (train_check_file(v, path, step, t) && step > best) {
                best = step;
                snprintf(newest, newest_size, "%s", path);
            }
            continue;
        }
        fail_msg("an unexpected file %s", path);
    }
    closedir(d);
    *before = now;
    return best;
}

/* Kills `loom train` v->kills times, resuming each time from the newest
 * checkpoint; a run that reaches the end starts a new round. */
static void train_campaign(train_victim *v, const char *what)
{
    double t0 = now_s(), cpu0 = cpu_s();
    tally t = { 0 };
    snprintf(v->env, sizeof v->env, "LOOM_BACKEND=%s", v->backend);
    snprintf(v->data, sizeof v->data, "%s/data.txt", tmpdir);
    snprintf(v->ref, sizeof v->ref, "%s/%s-ref", tmpdir, v->backend);
    /* the uninterrupted run, every checkpoint kept */
    pid_t pid;
    int o, e;
    tc_result r;
    train_spawn(v, v->ref, NULL, 0, &pid, &o, &e);
    tc_finish(pid, o, e, &r);
    tc_expect_status(&r, 0, "the uninterrupted loom train");
    tc_result_free(&r);

    static name_set temps;
    char dir[600], newest[1200], saved[1200];
    for (int round = 0; t.kills < v->kills; round++) {
        snprintf(dir, sizeof dir, "%s/%s-round%d", tmpdir, v->backend, round);
        assert_int_equal(mkdir(dir, 0777), 0);
        int wfd = watch_new(dir);
        long known = -1; /* the newest step known saved whole */
        newest[0] = 0;
        temps.n = 0;
        bool done = false, swept = false;
        while (!done) {
            bool last = t.kills >= v->kills; /* the budget is spent: run to the end */
            const char *resume = newest[0] ? newest : NULL;
            long resumed_from = resume ? known : 0;
            watch_drain(wfd);
            train_spawn(v, dir, resume, 3, &pid, &o, &e);
            if (!last)
                kill_sometime(pid, wfd, v->random_max_s, 2500);
            tc_finish(pid, o, e, &r);
            bool killed = r.signaled && r.status == 128 + SIGKILL;
            if (!killed)
                tc_expect_status(&r, 0, resume ? "loom train --resume" : "loom train");
            /* a resumed run says where it starts once it is set up */
            const char *from = strstr(r.out, "per epoch, steps ");
            if (resume && from) {
                long s0 = strtol(from + strlen("per epoch, steps "), NULL, 10);
                if (s0 != resumed_from)
                    fail_msg("resumed from %s (step %ld) but training started at step %ld", resume, resumed_from,
                             s0);
                t.resumed++;
            }
            long reported = last_saved(r.out, saved, sizeof saved);
            int new_tmp, torn;
            long step = train_check_dir(v, dir, &temps, &new_tmp, &torn, newest, sizeof newest, &t);
            if (reported > known)
                known = reported;
            if (step < known)
                lose(&t, "after kill %d the newest checkpoint in %s is step %ld; step %ld was saved (%s)", t.kills,
                     dir, step, known, saved);
            else if (step >= 0)
                t.newest++;
            if (step > known)
                known = step;
            if (killed) {
                t.kills++;
                t.mid_write += new_tmp > 0;
                t.torn += torn > 0;
            }
            tc_result_free(&r);
            if (!killed || step == v->steps) {
                /* the end of the run: its last checkpoint is the uninterrupted run's last */
                if (step != v->steps)
                    fail_msg("a run that ended by itself left step %ld, not %d", step, v->steps);
                t.completed += !killed;
                swept = !killed;
                done = true;
            } else if (step < 0) {
                /* killed before its first checkpoint: start afresh (a run directory with a log refuses) */
                close(wfd);
                rm_tree(dir);
                assert_int_equal(mkdir(dir, 0777), 0);
                wfd = watch_new(dir);
                temps.n = 0;
            }
        }
        /* the finished run swept the temporaries of the killed ones */
        for (int i = 0; swept && i < temps.n; i++) {
            long p;
            if (tmp_pid(temps.names[i], &p) && kill((pid_t)p, 0) != 0 && errno == ESRCH)
                fail_msg("%s/%s, a temporary of a dead process, is still there after a complete run", dir,
                         temps.names[i]);
        }
        close(wfd);
        rm_tree(dir);
    }
    report(what, &t, t0, cpu0);
}

static void test_crash_loom_train_reference(void **state)
{
    (void)state;
    train_victim v = { .backend = "reference", .steps = 300, .kills = kills_wanted, .random_max_s = 0.15 };
    train_campaign(&v, "loom train (reference backend)");
}

static void test_crash_loom_train_jit(void **state)
{
    (void)state;
    train_victim v = { .backend = "jit", .steps = 60, .kills = kills_wanted / 20 > 0 ? kills_wanted / 20 : 1,
                       .random_max_s = 1.5 };
    train_campaign(&v, "loom train (JIT)");
}

/* ------------------------------------------------------------------ */
/* Victim 2: a training loop of this test, one checkpoint overwritten */
/* ------------------------------------------------------------------ */

enum { LIN_N = 256, LIN_B = 4, LIN_STEPS = 40 };

typedef struct lin {
    loom_ctx *ctx;
    loom_optimizer *opt;
    loom_t x, y, loss; /* x, y: [B, N] */
} lin;

static bool lin_new(lin *m)
{
    m->ctx = loom_ctx_new(&(loom_options){ .seed = 7, .backend = LOOM_BACKEND_REFERENCE, .threads = 1 });
    if (!m->ctx)
        return false;
    loom_ctx *ctx = m->ctx;
    loom_t w = loom_param(ctx, "W", LOOM_F32, LOOM_SHAPE(LIN_N, LIN_N)); /* [N, N] */
    loom_param_init_normal(ctx, w, 0.0, 0.05);
    m->x = loom_input(ctx, "x", LOOM_F32, LOOM_SHAPE(LIN_B, LIN_N));
    m->y = loom_input(ctx, "y", LOOM_F32, LOOM_SHAPE(LIN_B, LIN_N));
    m->loss = loom_mse(ctx, loom_matmul(ctx, m->x, w), m->y);
    m->opt = loom_optimizer_new(ctx, &(loom_optim_config){ .kind = LOOM_OPT_SGD, .lr = 0.05, .momentum = 0.9 });
    return m->opt && loom_optimizer_attach(ctx, m->opt, m->loss) == LOOM_OK && !loom_failed(ctx);
}

static void lin_free(lin *m)
{
    loom_optimizer_free(m->opt);
    loom_ctx_free(m->ctx);
}

/* Step s (1, 2, ...) trains on data made from s alone. */
static bool lin_step(lin *m, int64_t s)
{
    static float x[LIN_B * LIN_N], y[LIN_B * LIN_N];
    for (int i = 0; i < LIN_B * LIN_N; i++) {
        x[i] = (float)sin(0.37 * (double)s + 0.011 * i);
        y[i] = (float)cos(0.23 * (double)s - 0.007 * i);
    }
    loom_feed(m->ctx, m->x, x, sizeof x);
    loom_feed(m->ctx, m->y, y, sizeof y);
    return loom_optimizer_step(m->ctx, m->opt, 1, &m->loss) == LOOM_OK;
}

/* Every parameter and buffer (the weights and the momentum). */
static uint64_t lin_hash(lin *m)
{
    XXH64_state_t *h = XXH64_createState();
    XXH64_reset(h, 0);
    for (size_t i = 0; i < loom_param_count(m->ctx); i++) {
        loom_t p = loom_param_at(m->ctx, i);
        size_t bytes = (size_t)loom_shape_numel(loom_shape_of(m->ctx, p)) * loom_dtype_size(loom_dtype_of(m->ctx, p));
        XXH64_update(h, loom_param_data(m->ctx, p), bytes);
    }
    uint64_t d = XXH64_digest(h);
    XXH64_freeState(h);
    return d;
}

/* The child: resumes from path if it exists, then trains to LIN_STEPS,
 * saving over path after every step and then writing the step to fd. */
static _Noreturn void lin_child(const char *path, bool resume, int fd)
{
    lin m;
    if (!lin_new(&m))
        _exit(3);
    if (resume && loom_checkpoint_load(m.ctx, path, m.opt, LOOM_LOAD_STRICT) != LOOM_OK)
        _exit(4);
    for (int64_t s = loom_optimizer_steps(m.opt) + 1; s <= LIN_STEPS; s++) {
        char cfg[64];
        snprintf(cfg, sizeof cfg, "{\"step\": %lld}", (long long)s);
        if (!lin_step(&m, s))
            _exit(5);
        if (loom_checkpoint_save(m.ctx, path, m.opt, cfg) != LOOM_OK)
            _exit(6);
        if (write(fd, &s, sizeof s) != sizeof s)
            _exit(7);
    }
    _exit(0);
}

static void test_crash_checkpoint_save_overwriting(void **state)
{
    (void)state;
    double t0 = now_s(), cpu0 = cpu_s();
    tally t = { 0 };
    /* the uninterrupted run: the hash after every step */
    static uint64_t want[LIN_STEPS + 1];
    lin m;
    assert_true(lin_new(&m));
    want[0] = lin_hash(&m);
    double ts = now_s();
    for (int s = 1; s <= LIN_STEPS; s++) {
        assert_true(lin_step(&m, s));
        want[s] = lin_hash(&m);
    }
    double step_s = (now_s() - ts) / LIN_STEPS;
    /* how long a save takes here: the window the kills aim at */
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/lin", tmpdir);
    snprintf(path, sizeof path, "%s/lin.safetensors", dir);
    assert_int_equal(mkdir(dir, 0777), 0);
    ts = now_s();
    for (int i = 0; i < 3; i++)
        assert_int_equal(loom_checkpoint_save(m.ctx, path, m.opt, NULL), LOOM_OK);
    long save_us = (long)((now_s() - ts) / 3 * 1e6);
    print_message("in-test loop: a step takes %.1f ms, a save of %d KB %.1f ms\n", step_s * 1e3,
                  (int)(2 * LIN_N * LIN_N * sizeof(float) / 1024), (double)save_us * 1e-3);
    assert_int_equal(unlink(path), 0);

    int wfd = watch_new(dir);
    int64_t known = 0; /* the newest step known saved whole */
    for (int runs = 0; t.kills < kills_wanted; runs++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        bool resume = known > 0;
        watch_drain(wfd);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            lin_child(path, resume, p[1]);
        }
        close(p[1]);
        /* the child's steps are at least as slow as ours: a few of them */
        kill_sometime(pid, wfd, 4 * step_s, save_us);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        bool killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
        if (!killed && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            fail_msg("the training child ended with status 0x%x (%s); %d checkpoint(s) lost before: %s", st,
                     WIFEXITED(st) && WEXITSTATUS(st) == 4 ? "it could not load the checkpoint to resume from" : "",
                     t.lost, t.lost ? t.first_loss : "none");
        /* the steps it reported saved: the first follows the checkpoint it resumed from */
        int64_t s, first = -1, reported = 0;
        while (read(p[0], &s, sizeof s) == sizeof s) {
            if (first < 0)
                first = s;
            reported = s;
        }
        close(p[0]);
        if (first >= 0 && first != known + 1)
            fail_msg("the child resumed at step %lld; the newest checkpoint was step %lld", (long long)first,
                     (long long)known);
        t.resumed += resume && first >= 0;
        if (reported > known)
            known = reported;

        /* the file: whole, the newest step saved or later, that step's weights and momenta */
        if (access(path, F_OK) == 0) {
            loom_clear_error(m.ctx);
            char cfg[256];
            if (loom_checkpoint_load(m.ctx, path, m.opt, LOOM_LOAD_STRICT) != LOOM_OK ||
                loom_checkpoint_config(m.ctx, path, cfg, sizeof cfg) != LOOM_OK) {
                lose(&t, "%s does not load after kill %d: %s", path, t.kills, loom_errmsg(m.ctx));
            } else {
                int64_t step = loom_optimizer_steps(m.opt);
                const char *c = strstr(cfg, "\"step\": ");
                if (!c || strtoll(c + 8, NULL, 10) != step)
                    lose(&t, "%s: the optimizer's step %lld and the config \"%s\" differ", path, (long long)step, cfg);
                else if (step < known || step > LIN_STEPS)
                    lose(&t, "%s holds step %lld after kill %d; step %lld was saved", path, (long long)step, t.kills,
                         (long long)known);
                else if (lin_hash(&m) != want[step])
                    lose(&t, "%s: the weights and momenta are not those of step %lld", path, (long long)step);
                else {
                    t.verified++;
                    t.newest++;
                    known = step;
                }
            }
        } else if (known > 0) {
            lose(&t, "%s is gone after kill %d; step %lld was saved", path, t.kills, (long long)known);
        }

        /* the temporaries it left: counted, then removed (nobody else would) */
        DIR *d = opendir(dir);
        assert_non_null(d);
        bool mid = false, torn = false;
        for (struct dirent *e; (e = readdir(d));) {
            long tp;
            if (!tmp_pid(e->d_name, &tp))
                continue;
            char tmp[1200];
            struct stat sb, sf;
            snprintf(tmp, sizeof tmp, "%s/%s", dir, e->d_name);
            mid |= tp == (long)pid;
            torn |= tp == (long)pid && stat(tmp, &sb) == 0 && stat(path, &sf) == 0 && sb.st_size < sf.st_size;
            unlink(tmp);
        }
        closedir(d);
        if (killed) {
            t.kills++;
            t.mid_write += mid;
            t.torn += torn;
        } else {
            /* it trained to the end: the last step, then a new run from scratch */
            if (known != LIN_STEPS)
                fail_msg("a child that ended by itself left step %lld", (long long)known);
            t.completed++;
            unlink(path);
            known = 0;
        }
    }
    close(wfd);
    lin_free(&m);
    report("loom_checkpoint_save over one file (in-test loop)", &t, t0, cpu0);
}

/* ------------------------------------------------------------------ */
/* Main                                                               */
/* ------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/loom-test-crash-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    char data[600];
    snprintf(data, sizeof data, "%s/data.txt", tmpdir);
    write_text(data, 3000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_tree(tmpdir);
    return 0;
}

int main(int argc, char **argv)
{
    loom_bin = argc > 1 ? argv[1] : getenv("LOOM_CLI");
    if (!loom_bin || access(loom_bin, X_OK) != 0) {
        fprintf(stderr, "test_crash: pass the loom binary's path as the first argument (or LOOM_CLI)\n");
        return 1;
    }
    const char *env = getenv("LOOM_CRASH_SEED");
    seed = env && *env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    rng_state = seed;
    env = getenv("LOOM_CRASH_KILLS");
    if (env && atoi(env) > 0)
        kills_wanted = atoi(env);
    printf("test_crash: seed %llu (LOOM_CRASH_SEED=%llu repeats the schedule), %d kills per victim\n",
           (unsigned long long)seed, (unsigned long long)seed, kills_wanted);
    fflush(stdout);
    /* the in-test loop forks: no JIT, no threads in this process */
    setenv("LOOM_BACKEND", "reference", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_checkpoint_save_overwriting),
        cmocka_unit_test(test_crash_loom_train_reference),
        cmocka_unit_test(test_crash_loom_train_jit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
