/*
 * args.c — the small option parser every `loom` command shares: options
 * as a table (name, kind, destination, range or choices, help), parsed
 * GNU-style (--name value, --name=value, -o value, -- ends options), with
 * --help generated from the same table. A bad argument is reported by
 * name with what was expected, and the caller exits with status 2.
 *
 * Not here: what the options mean (each command's file says).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "loom %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Help                                                               */
/* ------------------------------------------------------------------ */

static void print_default(const cli_opt *o, FILE *out)
{
    switch (o->kind) {
    case CLI_OPT_INT:
        fprintf(out, " (default %lld)", *(const long long *)o->dst);
        break;
    case CLI_OPT_DOUBLE:
        fprintf(out, " (default %g)", *(const double *)o->dst);
        break;
    case CLI_OPT_STRING:
        if (*(const char *const *)o->dst)
            fprintf(out, " (default %s)", *(const char *const *)o->dst);
        break;
    case CLI_OPT_CHOICE:
        fprintf(out, " (default %s)", o->choices[*(const int *)o->dst]);
        break;
    case CLI_OPT_FLAG:
        break;
    }
}

void cli_help(const cli_cmd *cmd, FILE *out)
{
    fprintf(out, "usage: %s\n\n%s\n", cmd->usage, cmd->summary);
    if (cmd->nopts)
        fprintf(out, "\noptions:\n");
    for (int i = 0; i < cmd->nopts; i++) {
        const cli_opt *o = &cmd->opts[i];
        char left[96];
        int n = 0;
        if (o->short_name)
            n = snprintf(left, sizeof left, "-%c, ", o->short_name);
        if (o->kind == CLI_OPT_CHOICE) {
            n += snprintf(left + n, sizeof left - (size_t)n, "%s ", o->name);
            for (int c = 0; o->choices[c] && n < (int)sizeof left - 1; c++)
                n += snprintf(left + n, sizeof left - (size_t)n, "%s%s", c ? "|" : "", o->choices[c]);
        } else if (o->kind == CLI_OPT_FLAG) {
            snprintf(left + n, sizeof left - (size_t)n, "%s", o->name);
        } else {
            snprintf(left + n, sizeof left - (size_t)n, "%s %s", o->name, o->metavar ? o->metavar : "X");
        }
        fprintf(out, "  %-34s %s", left, o->help);
        if (!strstr(o->help, "(default"))
            print_default(o, out);
        fputc('\n', out);
    }
    fprintf(out, "  %-34s %s\n", "-h, --help", "print this help and exit");
}

/* ------------------------------------------------------------------ */
/* Parsing                                                            */
/* ------------------------------------------------------------------ */

cli_opt *cli_find_opt(cli_cmd *cmd, const char *name)
{
    for (int i = 0; i < cmd->nopts; i++)
        if (strcmp(cmd->opts[i].name, name) == 0)
            return &cmd->opts[i];
    return NULL;
}

/* Levenshtein distance, for "did you mean". Names are short. */
static int edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > 63 || nb > 63)
        return 99;
    int row[64];
    for (size_t j = 0; j <= nb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

static int unknown_option(cli_cmd *cmd, const char *arg, size_t len)
{
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), arg);
    const char *near = NULL;
    int best = 3;
    for (int i = 0; i < cmd->nopts; i++) {
        int d = edit_distance(name, cmd->opts[i].name);
        if (d < best)
            best = d, near = cmd->opts[i].name;
    }
    if (near)
        cli_error(cmd->name, "unknown option %s (did you mean %s?); see loom %s --help", name, near, cmd->name);
    else
        cli_error(cmd->name, "unknown option %s; see loom %s --help", name, cmd->name);
    return CLI_USAGE;
}

static int set_value(cli_cmd *cmd, cli_opt *o, const char *v)
{
    char *end;
    switch (o->kind) {
    case CLI_OPT_INT: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno == ERANGE) {
            cli_error(cmd->name, "%s: \"%s\" is not an integer", o->name, v);
            return CLI_USAGE;
        }
        if ((double)x < o->min || (double)x > o->max) {
            cli_error(cmd->name, "%s: %lld is out of range (%.0f to %.0f)", o->name, x, o->min, o->max);
            return CLI_USAGE;
        }
        *(long long *)o->dst = x;
        break;
    }
    case CLI_OPT_DOUBLE: {
        errno = 0;
        double x = strtod(v, &end);
        if (!*v || *end || errno == ERANGE || !isfinite(x)) {
            cli_error(cmd->name, "%s: \"%s\" is not a finite number", o->name, v);
            return CLI_USAGE;
        }
        if (x < o->min || (o->min_open && x == o->min) || x > o->max) {
            cli_error(cmd->name, "%s: %g is out of range (%s %g, at most %g)", o->name, x,
                      o->min_open ? "above" : "at least", o->min, o->max);
            return CLI_USAGE;
        }
        *(double *)o->dst = x;
        break;
    }
    case CLI_OPT_STRING:
        if (!*v) {
            cli_error(cmd->name, "%s: the value is empty", o->name);
            return CLI_USAGE;
        }
        *(const char **)o->dst = v;
        break;
    case CLI_OPT_CHOICE: {
        for (int c = 0; o->choices[c]; c++)
            if (strcmp(o->choices[c], v) == 0) {
                *(int *)o->dst = c;
                o->seen = true;
                return CLI_OK;
            }
        char list[256];
        int n = 0;
        for (int c = 0; o->choices[c] && n < (int)sizeof list - 1; c++)
            n += snprintf(list + n, sizeof list - (size_t)n, "%s%s", c ? ", " : "", o->choices[c]);
        cli_error(cmd->name, "%s: \"%s\" is not one of %s", o->name, v, list);
        return CLI_USAGE;
    }
    case CLI_OPT_FLAG: /* cli_parse sets flags itself */
        *(bool *)o->dst = true;
        break;
    }
    o->seen = true;
    return CLI_OK;
}

int cli_parse(cli_cmd *cmd, int argc, char **argv, const char **pos, int *npos)
{
    *npos = 0;
    /* --help wins wherever it is, before any value is checked */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli_help(cmd, stdout);
            return -1;
        }
    bool options = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && strcmp(a, "--") == 0) {
            options = false;
            continue;
        }
        if (options && a[0] == '-' && a[1]) {
            cli_opt *o = NULL;
            const char *v = NULL;
            if (a[1] == '-') {
                const char *eq = strchr(a, '=');
                size_t len = eq ? (size_t)(eq - a) : strlen(a);
                for (int k = 0; k < cmd->nopts && !o; k++)
                    if (strlen(cmd->opts[k].name) == len && strncmp(cmd->opts[k].name, a, len) == 0)
                        o = &cmd->opts[k];
                if (!o)
                    return unknown_option(cmd, a, len);
                if (eq)
                    v = eq + 1;
            } else {
                for (int k = 0; k < cmd->nopts && !o; k++)
                    if (cmd->opts[k].short_name && cmd->opts[k].short_name == a[1])
                        o = &cmd->opts[k];
                if (!o)
                    return unknown_option(cmd, a, strlen(a));
                if (a[2])
                    v = a + 2;
            }
            if (o->kind == CLI_OPT_FLAG) {
                if (v) {
                    cli_error(cmd->name, "%s takes no value", o->name);
                    return CLI_USAGE;
                }
                *(bool *)o->dst = true;
                o->seen = true;
                continue;
            }
            if (!v) {
                if (i + 1 >= argc) {
                    cli_error(cmd->name, "%s needs a value (%s)", o->name, o->metavar ? o->metavar : "X");
                    return CLI_USAGE;
                }
                v = argv[++i];
            }
            int rc = set_value(cmd, o, v);
            if (rc != CLI_OK)
                return rc;
            continue;
        }
        if (*npos >= cmd->max_pos) {
            cli_error(cmd->name, "unexpected argument \"%s\"; see loom %s --help", a, cmd->name);
            return CLI_USAGE;
        }
        pos[(*npos)++] = a;
    }
    if (*npos < cmd->min_pos) {
        cli_error(cmd->name, "missing %s; usage: %s", cmd->pos_name ? cmd->pos_name : "argument", cmd->usage);
        return CLI_USAGE;
    }
    return CLI_OK;
}
