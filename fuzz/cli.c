/*
 * cli.c — libFuzzer target: the `loom` command line (cli/main.c's
 * dispatch and cli/args.c's option parser) with the real commands and
 * their real option tables, parsing only.
 *
 * The input is argv after "loom", split at NUL bytes (at most 64
 * arguments). cli/main.c is compiled with main renamed to loom_cli_main,
 * and the target is linked with --wrap=cli_parse: every command's call of
 * cli_parse comes here, runs the parser, checks what it produced, and
 * then answers -1 (what the parser answers after printing --help), on
 * which every command returns at once. So nothing is trained, read or
 * written; everything up to the end of parsing runs as in `loom`.
 *
 * Checked after a successful parse: the positional arguments are within
 * the command's bounds and are arguments; every option given holds a
 * value of its kind within its range (finite, above an open minimum, a
 * valid choice, a non-empty string that lies inside an argument). The
 * exit status of `loom` is 0 or 2.
 */
#include <math.h>

#include "fuzz.h"

#include "cli.h"

int loom_cli_main(int argc, char **argv);
int __real_cli_parse(cli_cmd *cmd, int argc, char **argv, const char **pos, int *npos);
int __wrap_cli_parse(cli_cmd *cmd, int argc, char **argv, const char **pos, int *npos);

static bool inside_arg(const char *p, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
            return true;
    return false;
}

static void check_parsed(const cli_cmd *cmd, int argc, char **argv, const char **pos, int npos)
{
    FZ_CHECK(npos >= cmd->min_pos && npos <= cmd->max_pos, "loom %s: %d positional arguments (%d to %d)", cmd->name,
             npos, cmd->min_pos, cmd->max_pos);
    for (int i = 0; i < npos; i++) {
        bool found = false;
        for (int j = 1; j < argc && !found; j++)
            found = pos[i] == argv[j];
        FZ_CHECK(found, "loom %s: positional argument %d is not an argument", cmd->name, i);
    }
    for (int i = 0; i < cmd->nopts; i++) {
        const cli_opt *o = &cmd->opts[i];
        if (!o->seen)
            continue;
        switch (o->kind) {
        case CLI_OPT_INT: {
            long long x = *(const long long *)o->dst;
            FZ_CHECK((double)x >= o->min && (double)x <= o->max, "%s %s = %lld, outside [%g, %g]", cmd->name, o->name,
                     x, o->min, o->max);
            break;
        }
        case CLI_OPT_DOUBLE: {
            double x = *(const double *)o->dst;
            FZ_CHECK(isfinite(x) && x >= o->min && x <= o->max && !(o->min_open && x == o->min),
                     "%s %s = %g, outside %s%g, %g]", cmd->name, o->name, x, o->min_open ? "(" : "[", o->min, o->max);
            break;
        }
        case CLI_OPT_STRING: {
            const char *s = *(const char *const *)o->dst;
            FZ_CHECK(s && *s && inside_arg(s, argc, argv), "%s %s: the string is empty or not in argv", cmd->name,
                     o->name);
            break;
        }
        case CLI_OPT_CHOICE: {
            int c = *(const int *)o->dst, n = 0;
            while (o->choices[n])
                n++;
            FZ_CHECK(c >= 0 && c < n, "%s %s = choice %d of %d", cmd->name, o->name, c, n);
            break;
        }
        case CLI_OPT_FLAG:
            FZ_CHECK(*(const bool *)o->dst, "%s %s seen but not set", cmd->name, o->name);
            break;
        }
    }
}

int __wrap_cli_parse(cli_cmd *cmd, int argc, char **argv, const char **pos, int *npos)
{
    int rc = __real_cli_parse(cmd, argc, argv, pos, npos);
    FZ_CHECK(rc == CLI_OK || rc == CLI_USAGE || rc == -1, "loom %s: cli_parse returned %d", cmd->name, rc);
    if (rc != CLI_OK)
        return rc;
    check_parsed(cmd, argc, argv, pos, *npos);
    return -1; /* as after --help: the command returns CLI_OK at once */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum { MAX_ARGS = 64 };
    char *argv[MAX_ARGS + 2];
    char loom[] = "loom";
    argv[0] = loom;
    int n = fz_strings(data, size, argv + 1, MAX_ARGS);
    argv[n + 1] = NULL;
    int rc = loom_cli_main(n + 1, argv);
    FZ_CHECK(rc == CLI_OK || rc == CLI_USAGE, "loom exited %d", rc);
    fz_strings_free(argv + 1, n);
    return 0;
}
