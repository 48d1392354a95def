/*
 * fuzz.h — what loom's libFuzzer targets share: the input as a file the
 * readers open by path (they read files, not buffers), the input split
 * into strings at NUL bytes, and a check that aborts (a finding, for
 * libFuzzer) with a message when an invariant of a reader is broken.
 *
 * Each target (fuzz/<name>.c, built with -Dfuzz=true, see fuzz/meson.build)
 * defines LLVMFuzzerTestOneInput and calls the readers as loom's programs
 * do. Readers print their messages on stderr; the targets are run with
 * -close_fd_mask=3 so those do not flood the log (libFuzzer and the
 * sanitizers still report).
 */
#ifndef LOOM_FUZZ_H
#define LOOM_FUZZ_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Where a check's message goes: a copy of stderr made before libFuzzer
 * runs, since -close_fd_mask closes stderr itself before the first input. */
static FILE *fz_err;

__attribute__((constructor)) static void fz_err_open(void)
{
    int fd = dup(2);
    if (fd >= 0 && (fz_err = fdopen(fd, "w")))
        setvbuf(fz_err, NULL, _IONBF, 0);
}

/* An invariant of the code under test is broken: a finding. */
#define FZ_CHECK(cond, ...)                                                         \
    do {                                                                            \
        if (!(cond)) {                                                              \
            FILE *fz_out_ = fz_err ? fz_err : stderr;                               \
            fprintf(fz_out_, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(fz_out_, __VA_ARGS__);                                          \
            fputc('\n', fz_out_);                                                   \
            abort();                                                                \
        }                                                                           \
    } while (0)

/* The harness itself cannot go on (no memory, no file): not a finding of
 * the reader, but nothing can be tested either. */
static inline void fz_die(const char *what)
{
    perror(what);
    abort();
}

static inline void fz_write_all(int fd, const uint8_t *data, size_t size)
{
    if (ftruncate(fd, 0) != 0)
        fz_die("fuzz: ftruncate");
    for (size_t done = 0; done < size;) {
        ssize_t k = pwrite(fd, data + done, size - done, (off_t)done);
        if (k <= 0)
            fz_die("fuzz: writing the input file");
        done += (size_t)k;
    }
}

static char fz_path[4096];

static inline void fz_file_remove(void)
{
    if (strncmp(fz_path, "/proc/", 6) != 0)
        unlink(fz_path);
}

/* A path naming a regular file that holds exactly data[0, size), valid
 * until the next call: /proc/self/fd/N of a memfd (no disk, nothing left
 * behind), or a file in $TMPDIR where /proc is not mounted. */
static inline const char *fz_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    char *path = fz_path;
    if (fd < 0) {
        fd = memfd_create("loom-fuzz-input", MFD_CLOEXEC);
        snprintf(path, sizeof fz_path, "/proc/self/fd/%d", fd);
        if (fd >= 0 && access(path, R_OK) != 0) {
            close(fd);
            fd = -1;
        }
        if (fd < 0) {
            const char *tmp = getenv("TMPDIR");
            snprintf(path, sizeof fz_path, "%s/loom-fuzz-%ld.XXXXXX", tmp && *tmp ? tmp : "/tmp", (long)getpid());
            if ((fd = mkstemp(path)) < 0)
                fz_die("fuzz: a file for the input");
            atexit(fz_file_remove);
        }
    }
    fz_write_all(fd, data, size);
    return path;
}

/* The input as strings: split at NUL bytes (a final piece without its
 * NUL counts too), at most max of them, each its own heap block so that
 * a read past a string's end is caught. Returns the count; free with
 * fz_strings_free. */
static inline int fz_strings(const uint8_t *data, size_t size, char **out, int max)
{
    int n = 0;
    size_t at = 0;
    while (at < size && n < max) {
        const uint8_t *nul = memchr(data + at, 0, size - at);
        size_t len = nul ? (size_t)(nul - (data + at)) : size - at;
        char *s = malloc(len + 1);
        if (!s)
            fz_die("fuzz: malloc");
        memcpy(s, data + at, len);
        s[len] = 0;
        out[n++] = s;
        at += len + 1;
    }
    return n;
}

static inline void fz_strings_free(char **s, int n)
{
    for (int i = 0; i < n; i++)
        free(s[i]);
}

#endif /* LOOM_FUZZ_H */
