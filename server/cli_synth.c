/* quanteval synth: the built-in deterministic synthetic checkpoints, written as torch zip files. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "qe_util.h"
#include "synth.h"

int qe_cli_synth(int argc, char **argv)
{
    enum { O_ARCH = 1, O_OUT, O_HELP };
    static const struct option opts[] = {{"arch", required_argument, 0, O_ARCH},
                                         {"out", required_argument, 0, O_OUT},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    const char *arch = NULL, *out = NULL;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_ARCH: arch = optarg; break;
        case O_OUT: out = optarg; break;
        case O_HELP:
            puts("usage: quanteval synth --arch resnet18|resnet50 --out FILE\n\n"
                 "Writes a deterministic synthetic checkpoint (random weights, torchvision key names)\n"
                 "in torch's zip format. It loads with torch.load; its accuracy is meaningless.");
            return 0;
        default:
            qe_cli_error("synth", "unknown or incomplete option '%s'", argv[optind - 1]);
            return 2;
        }
    }
    if (!arch || !out || optind < argc) {
        qe_cli_error("synth", "usage: quanteval synth --arch resnet18|resnet50 --out FILE");
        return 2;
    }
    if (strcmp(arch, "resnet18") != 0 && strcmp(arch, "resnet50") != 0) {
        qe_cli_error("synth", "--arch must be resnet18 or resnet50, got '%s'", arch);
        return 2;
    }
    char err[QE_ERR_LEN];
    if (qe_synth_write(arch, out, err)) {
        qe_cli_error("synth", "%s", err);
        return 1;
    }
    fprintf(stderr, "wrote synthetic %s checkpoint to %s\n", arch, out);
    return 0;
}
