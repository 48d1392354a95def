/*
 * csv.c — ex_csv_column (csv.h): a CSV file read whole (ex_read_file),
 * then walked line by line for one column's numbers.
 */
#include "csv.h"

#include "common.h"

/* Field k (0-based) of a comma-separated line, copied without spaces or
 * quotes into buf (cut to size - 1 bytes); its length before the cut, or
 * -1 if the line has fewer fields. */
static long csv_field(const char *line, long k, char *buf, size_t size)
{
    for (long i = 0; i < k; i++) {
        line += strcspn(line, ",\n");
        if (*line != ',')
            return -1;
        line++;
    }
    size_t n = strcspn(line, ",\r\n"), len;
    while (n > 0 && (*line == ' ' || *line == '\t' || *line == '"'))
        line++, n--;
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '"'))
        n--;
    len = n;
    if (n >= size)
        n = size - 1;
    memcpy(buf, line, n);
    buf[n] = 0;
    return (long)len;
}

static bool is_number(const char *s, double *x)
{
    char *end;
    *x = strtod(s, &end);
    return end != s && *end == 0 && isfinite(*x);
}

double *ex_csv_column(const char *prog, const char *path, const char *column, long *n)
{
    size_t size;
    char *text = ex_read_file(prog, path, &size);
    if (!text)
        return NULL;
    /* the reading stops at a NUL: a file holding one is not text (UTF-16,
     * say), and its values past the NUL would be dropped unseen */
    const char *nul = memchr(text, 0, size);
    if (nul) {
        long at = 1;
        for (const char *c = text; c < nul; c++)
            at += *c == '\n';
        fprintf(stderr, "%s: %s:%ld: a NUL byte: not a text file\n", prog, path, at);
        free(text);
        return NULL;
    }
    char *end;
    long col = strtol(column, &end, 10);
    bool by_name = end == column || *end || col < 0;
    double *y = NULL;
    long count = 0, cap = 0, lineno = 0;
    char field[256];
    bool ok = true, first = true;
    for (char *line = text; ok && *line; line += strcspn(line, "\n"), line += *line == '\n') {
        lineno++;
        if (line[strspn(line, " \t\r")] == '\n' || line[strspn(line, " \t\r")] == 0)
            continue; /* blank */
        if (first) { /* a header, if the column's field is not a number */
            first = false;
            double x;
            if (by_name) {
                col = -1;
                long len;
                for (long k = 0; (len = csv_field(line, k, field, sizeof field)) >= 0; k++)
                    if (len < (long)sizeof field && !strcmp(field, column)) {
                        col = k;
                        break;
                    }
                if (col < 0) {
                    fprintf(stderr, "%s: %s: no column named \"%s\" in the header\n", prog, path, column);
                    ok = false;
                }
                continue;
            }
            long len = csv_field(line, col, field, sizeof field);
            if (len >= 0 && (len >= (long)sizeof field || !is_number(field, &x)))
                continue;
        }
        double x;
        long len = csv_field(line, col, field, sizeof field);
        if (len < 0 || len >= (long)sizeof field || !is_number(field, &x)) {
            fprintf(stderr, "%s: %s:%ld: column %s is \"%s%s\", not a number\n", prog, path, lineno, column,
                    len >= 0 ? field : "(missing)", len >= (long)sizeof field ? "..." : "");
            ok = false;
            break;
        }
        if (count == cap) {
            cap = cap ? 2 * cap : 1024;
            double *more = realloc(y, (size_t)cap * sizeof *y);
            if (!more) {
                fprintf(stderr, "%s: out of memory\n", prog);
                ok = false;
                break;
            }
            y = more;
        }
        y[count++] = x;
    }
    free(text);
    if (ok && count == 0) {
        fprintf(stderr, "%s: %s: no values in column %s\n", prog, path, column);
        ok = false;
    }
    if (!ok) {
        free(y);
        return NULL;
    }
    *n = count;
    return y;
}

