/*
 * csv.h — one numeric column of a CSV file, as the examples read their
 * series (forecast --csv; fuzz/ fuzzes it). Not a general CSV reader:
 * fields are split at every comma (a quoted comma splits too), and the
 * spaces, tabs and double quotes around a field are dropped. Not part of
 * loom's API; it depends on common.h only.
 */
#ifndef LOOM_EXAMPLE_CSV_H
#define LOOM_EXAMPLE_CSV_H

/* The values of one column of the CSV file at path, in file order: column
 * is a header name or a 0-based index (a file without a header needs the
 * index; with an index, a first line whose field there is not a number is
 * taken for a header). Blank lines are skipped; the header is the first
 * line that is not blank. On success *n is the number of values (at
 * least one) and the caller frees the array with free(). NULL after a
 * message on stderr, prefixed "prog: ", naming the file and line when the
 * file cannot be read or holds a NUL byte (not text), the column is not
 * in the header, a value is missing or not a finite number (a field of
 * 256 bytes or more is not one), or the column has no values. */
double *ex_csv_column(const char *prog, const char *path, const char *column, long *n);

#endif /* LOOM_EXAMPLE_CSV_H */
