/* quanteval optimize: BN fold + Cross-Layer Equalization of a torchvision checkpoint (spec
 * optimization.md §4), written as the zoo's BN-free optimized state dict (torch zip format). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cle.h"
#include "cli.h"
#include "modelcfg.h"
#include "qe_util.h"
#include "statedict.h"
#include "synth.h"

/* Same cap as the model loader: a ResNet50 checkpoint is ~100 MB. */
#define OPT_MAX_CKPT_BYTES ((size_t)2 << 30)

static void help(void)
{
    puts("usage: quanteval optimize --arch resnet18|resnet50 [--weights FILE] --out FILE [--cle]\n"
         "\n"
         "Applies AIMET 1.24's BN fold + Cross-Layer Equalization to a torchvision checkpoint and\n"
         "writes the BN-free state dict (conv/fc weight and bias) the zoo's optimized checkpoints\n"
         "use, in torch's zip format.\n"
         "\n"
         "  --arch A        resnet18 or resnet50\n"
         "  --weights FILE  torchvision checkpoint (default: the <arch>_fp32 config's file in the\n"
         "                  model directories, else the built-in synthetic checkpoint)\n"
         "  --out FILE      where to write the optimized state dict\n"
         "  --cle           Cross-Layer Equalization (the default, and the only technique so far)\n"
         "  --adaround      not supported yet");
}

/* Loads --weights, or the default torchvision file of the arch, or the synthetic checkpoint.
 * *desc names what was loaded, for the summary line. */
static int load_input(const char *arch_name, const char *weights, qe_statedict *sd, char *desc,
                      size_t desclen, char *err)
{
    char path[4096];
    if (!weights) {
        char cfgname[64];
        qe_modelcfg cfg;
        snprintf(cfgname, sizeof cfgname, "%s_fp32", arch_name);
        if (qe_modelcfg_get(cfgname, &cfg, err))
            return -1;
        int found = qe_modelcfg_find_file(cfg.weights_file, path, sizeof path) == 0;
        qe_modelcfg_free(&cfg);
        if (!found) {
            snprintf(desc, desclen, "synthetic %s (built-in, random weights)", arch_name);
            return qe_synth_statedict(arch_name, sd, err);
        }
        weights = path;
    }
    snprintf(desc, desclen, "%s", weights);
    /* the loader's message already names the file */
    return qe_statedict_load(weights, OPT_MAX_CKPT_BYTES, sd, err);
}

int qe_cli_optimize(int argc, char **argv)
{
    enum { O_ARCH = 1, O_WEIGHTS, O_OUT, O_CLE, O_ADAROUND, O_HELP };
    static const struct option opts[] = {{"arch", required_argument, 0, O_ARCH},
                                         {"weights", required_argument, 0, O_WEIGHTS},
                                         {"out", required_argument, 0, O_OUT},
                                         {"cle", no_argument, 0, O_CLE},
                                         {"adaround", no_argument, 0, O_ADAROUND},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    const char *arch_name = NULL, *weights = NULL, *out = NULL;
    int adaround = 0;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_ARCH: arch_name = optarg; break;
        case O_WEIGHTS: weights = optarg; break;
        case O_OUT: out = optarg; break;
        case O_CLE: break;   /* the default */
        case O_ADAROUND: adaround = 1; break;
        case O_HELP: help(); return 0;
        default:
            qe_cli_error("optimize", "unknown or incomplete option '%s'", argv[optind - 1]);
            return 2;
        }
    }
    if (adaround) {
        qe_cli_error("optimize", "--adaround is not supported yet (only BN fold + CLE)");
        return 2;
    }
    if (!arch_name || !out || optind < argc) {
        qe_cli_error("optimize", "usage: quanteval optimize --arch resnet18|resnet50 [--weights FILE] --out FILE [--cle]");
        return 2;
    }
    qe_arch arch;
    if (qe_resnet_arch_parse(arch_name, &arch)) {
        qe_cli_error("optimize", "--arch must be resnet18 or resnet50, got '%s'", arch_name);
        return 2;
    }
    char err[QE_ERR_LEN], desc[4200];
    qe_statedict sd;
    memset(&sd, 0, sizeof sd);
    if (load_input(arch_name, weights, &sd, desc, sizeof desc, err)) {
        qe_cli_error("optimize", "%s", err);
        return 2;
    }
    /* A checkpoint of the other architecture: say so, instead of listing 100+ missing keys. */
    qe_arch found;
    if (qe_resnet_arch_detect(&sd, &found) == 0 && found != arch) {
        qe_cli_error("optimize", "%s is a %s checkpoint, not %s", desc,
                     qe_resnet_desc_get(found)->name, arch_name);
        qe_statedict_free(&sd);
        return 2;
    }
    qe_resnet_params p;
    qe_cle_info info;
    int rc = qe_cle_equalize(arch, &sd, &p, &info, err);
    qe_statedict_free(&sd);
    if (rc) {
        qe_cli_error("optimize", "%s", err);
        return 2;
    }
    qe_statedict outsd;
    qe_cle_to_statedict(&p, &outsd);
    rc = qe_statedict_save_torch(&outsd, out, err);
    qe_statedict_free(&outsd);
    int total = 0;
    for (int i = 0; i < info.npairs; i++)
        total += info.n[i];
    if (rc)
        qe_cli_error("optimize", "%s", err);
    else
        printf("optimize %s: BN fold + CLE of %s: %d pairs scaled, %d of %d channels absorbed bias; wrote %s\n",
               arch_name, desc, info.npairs, info.absorbed_channels, total, out);
    qe_cle_info_free(&info);
    qe_resnet_params_free(&p);
    return rc ? 1 : 0;
}
