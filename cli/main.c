/*
 * main.c — `loom`, the command line: dispatches to the commands (train,
 * sample, eval, plot, export, graph) and prints the overview. Each command
 * parses its own options (args.c) and returns the exit status (cli.h
 * lists them).
 */
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    { "train", cli_train, "train a character-level language model on a text file" },
    { "sample", cli_sample, "generate text from a checkpoint" },
    { "eval", cli_eval, "loss, bits per character and perplexity of a checkpoint on a text" },
    { "plot", cli_plot, "write the loss curves of a run directory as SVG" },
    { "export", cli_export, "compile a checkpoint into a native object, header and sampler" },
    { "graph", cli_graph, "the compiled graph of a checkpoint's model as Graphviz DOT, kernels grouped" },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: loom COMMAND [options]   (loom COMMAND --help for its options)\n\n"
                 "loom %d.%d.%d: recurrent networks compiled to native code.\n\ncommands:\n",
            LOOM_VERSION_MAJOR, LOOM_VERSION_MINOR, LOOM_VERSION_PATCH);
    for (size_t i = 0; i < CLI_LEN(commands); i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nexample:\n"
                 "  loom train --data input.txt --hidden 512 --layers 2 --steps 5000 --out runs/shakespeare\n"
                 "  loom sample runs/shakespeare/best.safetensors --length 1000 --temperature 0.8\n"
                 "  loom export runs/shakespeare/best.safetensors -o shakespeare --main\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("loom %d.%d.%d\n", LOOM_VERSION_MAJOR, LOOM_VERSION_MINOR, LOOM_VERSION_PATCH);
        return CLI_OK;
    }
    for (size_t i = 0; i < CLI_LEN(commands); i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "loom: unknown command \"%s\"; the commands are train, sample, eval, plot, export (loom --help)\n", name);
    return CLI_USAGE;
}
