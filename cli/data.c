/*
 * data.c — the corpus of the character-level model: a text file read as
 * bytes (or, with no --data, loom's own C sources found under the source
 * root compiled in), its vocabulary (the bytes present), and the
 * contiguous streams that truncated BPTT and evaluation walk through.
 *
 * Not here: which part is for validation (train.c), the model (model.c).
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

#ifndef LOOM_SOURCE_ROOT
#define LOOM_SOURCE_ROOT ""
#endif

/* ------------------------------------------------------------------ */
/* Files                                                              */
/* ------------------------------------------------------------------ */

/* Makes room for need bytes in *buf (capacity *cap), at least doubling
 * it, so that appending file after file stays linear. */
static bool reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap <= SIZE_MAX / 2 && *cap * 2 > need ? *cap * 2 : need;
    uint8_t *nb = realloc(*buf, ncap);
    if (!nb)
        return false;
    *buf = nb, *cap = ncap;
    return true;
}

/* Appends the whole file to *buf (size *n, capacity *cap). The room made
 * is the file's size as fstat says (a byte more, to see its end), not a
 * doubling past it; a file that grows while read, or a pipe, grows the
 * buffer as it goes. On failure *why says why. */
static bool append_file(const char *path, uint8_t **buf, size_t *n, size_t *cap, const char **why)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *why = strerror(errno);
        return false;
    }
    struct stat st;
    bool dir = false;
    if (fstat(fileno(f), &st) != 0 || (dir = S_ISDIR(st.st_mode))) {
        *why = dir ? "it is a directory" : strerror(errno);
        fclose(f);
        return false;
    }
    size_t size = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size : 0;
    bool room = size < SIZE_MAX - *n && reserve(buf, cap, *n + size + 1);
    while (room) {
        if (*cap == *n && !(room = *n < SIZE_MAX - 65536 && reserve(buf, cap, *n + 65536)))
            break;
        size_t got = fread(*buf + *n, 1, *cap - *n, f);
        *n += got;
        if (got == 0)
            break;
    }
    if (!room) {
        *why = "out of memory";
        fclose(f);
        return false;
    }
    bool ok = !ferror(f);
    if (!ok)
        *why = strerror(errno ? errno : EIO);
    fclose(f);
    return ok;
}

int cli_text_read(cli_text *t, const char *cmd, const char *path)
{
    memset(t, 0, sizeof *t);
    size_t cap = 0;
    const char *why = NULL;
    if (!append_file(path, &t->bytes, &t->n, &cap, &why)) {
        cli_error(cmd, "cannot read --data \"%s\": %s", path, why);
        cli_text_free(t);
        return CLI_FAIL;
    }
    if (t->n == 0) {
        cli_error(cmd, "--data \"%s\" is empty", path);
        cli_text_free(t);
        return CLI_FAIL;
    }
    t->origin = strdup(path);
    return t->origin ? CLI_OK : CLI_FAIL;
}

void cli_text_free(cli_text *t)
{
    if (!t)
        return;
    free(t->bytes);
    free(t->origin);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------------ */
/* The loom sources                                                   */
/* ------------------------------------------------------------------ */

typedef struct path_list {
    char **p;
    size_t n, cap;
} path_list;

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

static bool exists(const char *dir, const char *name)
{
    char p[4096];
    struct stat st;
    return snprintf(p, sizeof p, "%s/%s", dir, name) < (int)sizeof p && lstat(p, &st) == 0;
}

/* Every *.c and *.h under dir, skipping hidden directories, symbolic
 * links and build directories (meson's: they hold build.ninja). */
static bool collect(const char *dir, path_list *out, int depth)
{
    if (depth > 32 || exists(dir, "build.ninja") || exists(dir, "meson-private"))
        return true;
    DIR *d = opendir(dir);
    if (!d)
        return depth > 0; /* an unreadable subdirectory is skipped */
    struct dirent *e;
    bool ok = true;
    while (ok && (e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "subprojects") == 0)
            continue;
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p)
            continue;
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            ok = collect(p, out, depth + 1);
        } else if (S_ISREG(st.st_mode) && (has_suffix(e->d_name, ".c") || has_suffix(e->d_name, ".h"))) {
            if (out->n == out->cap) {
                size_t ncap = out->cap ? out->cap * 2 : 64;
                char **np = realloc(out->p, ncap * sizeof *np);
                if (!np) {
                    ok = false;
                    break;
                }
                out->p = np, out->cap = ncap;
            }
            if (!(out->p[out->n] = strdup(p)))
                ok = false;
            else
                out->n++;
        }
    }
    closedir(d);
    return ok;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int cli_text_sources(cli_text *t, const char *cmd)
{
    memset(t, 0, sizeof *t);
    const char *root = getenv("LOOM_SOURCE_ROOT");
    if (!root || !*root)
        root = LOOM_SOURCE_ROOT;
    struct stat st;
    if (!*root || stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cli_error(cmd, "no --data given, and loom's sources (the default corpus) are not at \"%s\"; "
                  "pass --data FILE (any text file)", root);
        return CLI_FAIL;
    }
    path_list files = { 0 };
    int rc = CLI_OK;
    if (!collect(root, &files, 0)) {
        cli_error(cmd, "cannot list loom's sources under \"%s\": %s", root, strerror(errno ? errno : ENOMEM));
        rc = CLI_FAIL;
    }
    qsort(files.p, files.n, sizeof *files.p, cmp_str); /* deterministic: sorted paths */
    size_t cap = 0;
    for (size_t i = 0; rc == CLI_OK && i < files.n; i++) {
        const char *why;
        if (!append_file(files.p[i], &t->bytes, &t->n, &cap, &why)) {
            cli_error(cmd, "cannot read \"%s\": %s", files.p[i], why);
            rc = CLI_FAIL;
        }
    }
    if (rc == CLI_OK && t->n == 0) {
        cli_error(cmd, "no *.c or *.h files under \"%s\"; pass --data FILE", root);
        rc = CLI_FAIL;
    }
    for (size_t i = 0; i < files.n; i++)
        free(files.p[i]);
    free(files.p);
    if (rc == CLI_OK) {
        size_t len = strlen(root) + 64;
        if ((t->origin = malloc(len)))
            snprintf(t->origin, len, "loom's C sources under %s (%zu files)", root, files.n);
        else
            rc = CLI_FAIL;
    }
    if (rc != CLI_OK)
        cli_text_free(t);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Vocabulary                                                         */
/* ------------------------------------------------------------------ */

void cli_vocab_build(cli_vocab *v, const uint8_t *bytes, size_t n)
{
    bool present[256] = { false };
    for (size_t i = 0; i < n; i++)
        present[bytes[i]] = true;
    v->size = 0;
    for (int b = 0; b < 256; b++)
        if (present[b])
            v->byte[v->size++] = (uint8_t)b;
    cli_vocab_index(v);
}

bool cli_vocab_index(cli_vocab *v)
{
    for (int b = 0; b < 256; b++)
        v->id[b] = -1;
    for (int i = 0; i < v->size; i++) {
        if (v->id[v->byte[i]] >= 0)
            return false;
        v->id[v->byte[i]] = (int16_t)i;
    }
    return true;
}

size_t cli_vocab_encode(const cli_vocab *v, uint8_t *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int id = v->id[bytes[i]];
        if (id < 0)
            return i;
        bytes[i] = (uint8_t)id;
    }
    return n;
}

const char *cli_byte_str(uint8_t b, char buf[8])
{
    static const char esc[] = "\n\\n\t\\t\r\\r";
    for (const char *e = esc; *e; e += 3)
        if ((uint8_t)*e == b) {
            snprintf(buf, 8, "'%.2s'", e + 1);
            return buf;
        }
    if (b >= 0x20 && b < 0x7f)
        snprintf(buf, 8, "'%c'", b);
    else
        snprintf(buf, 8, "0x%02x", b);
    return buf;
}

/* ------------------------------------------------------------------ */
/* Streams                                                            */
/* ------------------------------------------------------------------ */

void cli_streams_init(cli_streams *s, const uint8_t *ids, size_t n, int B, int T, bool whole)
{
    s->ids = ids;
    s->n = n;
    s->B = B;
    s->T = T;
    size_t pairs = n > 1 ? n - 1 : 0;
    if (whole) { /* training: whole chunks only, the remainder unused */
        s->len = pairs / (size_t)B;
        s->chunks = s->len / (size_t)T;
    } else {
        s->len = (pairs + (size_t)B - 1) / (size_t)B;
        s->chunks = (s->len + (size_t)T - 1) / (size_t)T;
    }
}

size_t cli_streams_chunk(const cli_streams *s, size_t k, int32_t *x, int32_t *y)
{
    size_t pairs = s->n > 1 ? s->n - 1 : 0, counted = 0;
    for (int b = 0; b < s->B; b++) {
        size_t begin = (size_t)b * s->len, end = begin + s->len < pairs ? begin + s->len : pairs;
        for (int t = 0; t < s->T; t++) {
            size_t i = begin + k * (size_t)s->T + (size_t)t;
            size_t at = (size_t)t * (size_t)s->B + (size_t)b; /* [T, B] */
            if (i < end) {
                x[at] = s->ids[i];
                y[at] = s->ids[i + 1];
                counted++;
            } else {
                x[at] = 0;
                y[at] = -1;
            }
        }
    }
    return counted;
}
