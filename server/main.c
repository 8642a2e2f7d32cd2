/*
 * quanteval - evaluates FP32 and AIMET-QuantSim-quantized ResNets on ImageNet-style datasets.
 * One binary, one subcommand per job (see usage()).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fputs("usage: quanteval <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve       run the HTTP daemon (resident models, classify API, evaluation jobs)\n"
          "  eval        evaluate a model config on a dataset (top-1/top-5, images/s)\n"
          "  classify    top-5 classes of images\n"
          "  preprocess  write the preprocessed crops or tensors of images\n"
          "  synth       write a deterministic synthetic checkpoint (torch zip format)\n"
          "  optimize    BN fold + Cross-Layer Equalization of a checkpoint (zoo BN-free layout)\n"
          "  version     print the version\n"
          "\n"
          "Run 'quanteval <command> --help' for the options of a command.\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "eval") == 0)
        return qe_cli_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "classify") == 0)
        return qe_cli_classify(argc - 1, argv + 1);
    if (strcmp(cmd, "preprocess") == 0)
        return qe_cli_preprocess(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0)
        return qe_cli_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "synth") == 0)
        return qe_cli_synth(argc - 1, argv + 1);
    if (strcmp(cmd, "optimize") == 0)
        return qe_cli_optimize(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("quanteval %s\n", QE_BUILD_ID);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "quanteval: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
