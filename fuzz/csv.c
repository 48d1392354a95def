/*
 * csv.c — libFuzzer target: the examples' CSV column reader
 * (examples/csv.c, ex_csv_column), as forecast --csv FILE --column C
 * calls it.
 *
 * The input: the --column value, a NUL, then the file's bytes (which may
 * hold NULs of their own). Without a NUL the column is "0" and the whole
 * input is the file. Checked: a result has at least one value, every
 * value finite, no more values than the file has lines, and no result
 * from a file with a NUL byte (the reader would stop there).
 */
#include <math.h>

#include "fuzz.h"

#include "csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    char *column = nul ? strndup((const char *)data, (size_t)(nul - data)) : strdup("0");
    if (!column)
        fz_die("fuzz: strdup");
    const uint8_t *file = nul ? nul + 1 : data;
    size_t n_file = size - (size_t)(file - data);

    long n = -1;
    double *y = ex_csv_column("fuzz", fz_file(file, n_file), column, &n);
    if (y) {
        size_t lines = 1;
        for (size_t i = 0; i < n_file; i++)
            lines += file[i] == '\n';
        FZ_CHECK(n >= 1 && (size_t)n <= lines, "%ld values from %zu lines", n, lines);
        FZ_CHECK(!memchr(file, 0, n_file), "values from a file with a NUL byte (the rest unread)");
        for (long i = 0; i < n; i++)
            FZ_CHECK(isfinite(y[i]), "value %ld is %g", i, y[i]);
    }
    free(y);
    free(column);
    return 0;
}
