/*
 * common.h — the small things every example program needs and none of
 * them is about: reading numbers from the command line with a clear
 * message (exit status 2), reading a whole file, a seeded random stream
 * for generated data. Not part of loom's API; header-only so each example
 * stays one translation unit.
 */
#ifndef LOOM_EXAMPLE_COMMON_H
#define LOOM_EXAMPLE_COMMON_H

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Exit statuses shared by the examples: 2 is a bad command line, 1 any
 * other failure (a file that cannot be read, a loom error). */
enum { EX_FAIL = 1, EX_USAGE = 2 };

/* Prints "prog: message" and a pointer to --help, then exits with 2. */
static inline void ex_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(%s --help lists the options)\n", prog);
    exit(EX_USAGE);
}

/* The value of option argv[*i]: the next argument, which must exist. */
static inline const char *ex_value(const char *prog, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        ex_usage_error(prog, "%s needs a value", argv[*i]);
    return argv[++*i];
}

/* An integer option in [lo, hi]; anything else exits with 2. */
static inline long ex_int(const char *prog, int argc, char **argv, int *i, long lo, long hi)
{
    const char *opt = argv[*i], *v = ex_value(prog, argc, argv, i);
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        ex_usage_error(prog, "%s takes an integer from %ld to %ld, not \"%s\"", opt, lo, hi, v);
    return x;
}

/* A real option in [lo, hi]; anything else (NaN too) exits with 2. */
static inline double ex_real(const char *prog, int argc, char **argv, int *i, double lo, double hi)
{
    const char *opt = argv[*i], *v = ex_value(prog, argc, argv, i);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        ex_usage_error(prog, "%s takes a number from %g to %g, not \"%s\"", opt, lo, hi, v);
    return x;
}

/* --cell lstm|gru: the recurrent layer of loom_rnn_new. */
static inline bool ex_cell(const char *prog, int argc, char **argv, int *i)
{
    const char *v = ex_value(prog, argc, argv, i);
    if (strcmp(v, "lstm") && strcmp(v, "gru"))
        ex_usage_error(prog, "--cell takes lstm or gru, not \"%s\"", v);
    return !strcmp(v, "gru");
}

/* The whole file, NUL-terminated (*n excludes the NUL); NULL with a
 * message on stderr when it cannot be read. Free with free(). */
static inline char *ex_read_file(const char *prog, const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open %s: %s\n", prog, path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    errno = 0;
    for (size_t k; buf;) {
        if (len + 1 >= cap) {
            char *more = realloc(buf, cap * 2);
            if (!more) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = more;
            cap *= 2;
        }
        k = fread(buf + len, 1, cap - len - 1, f);
        if (k == 0)
            break;
        len += k;
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (!buf || err) {
        fprintf(stderr, "%s: cannot read %s: %s\n", prog, path, buf ? strerror(err) : "out of memory");
        free(buf);
        return NULL;
    }
    buf[len] = 0;
    *n = len;
    return buf;
}

/* The number after "key": in a flat JSON object such as the config string
 * an example saved in its checkpoint; NAN when the key is absent. */
static inline double ex_json_number(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(json, pat);
    return at ? strtod(at + strlen(pat), NULL) : NAN;
}

/* A small, seeded generator for the data the examples make up
 * (SplitMix64), so every run sees the same series, tokens and texts. */
typedef struct ex_rng {
    uint64_t s;
} ex_rng;

static inline uint64_t ex_next(ex_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double ex_uniform(ex_rng *r) { return (double)(ex_next(r) >> 11) * 0x1.0p-53; }

/* Uniform in [0, n). */
static inline int ex_below(ex_rng *r, int n) { return (int)(ex_uniform(r) * n); }

/* Standard normal (Box-Muller). */
static inline double ex_normal(ex_rng *r)
{
    double u = ex_uniform(r), v = ex_uniform(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

#endif /* LOOM_EXAMPLE_COMMON_H */
