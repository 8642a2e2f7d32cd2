/* quanteval preprocess: the zoo's transform of images, written raw for comparison with PyTorch. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "image.h"
#include "qe_util.h"

static void help(void)
{
    puts("usage: quanteval preprocess [--stage crop|tensor] --out FILE IMAGE...\n"
         "\n"
         "  --stage crop    uint8 RGB 224x224x3 (HWC) after Resize(248) + CenterCrop(224) (default)\n"
         "  --stage tensor  float32 3x224x224 (CHW, little-endian) after ToTensor + Normalize\n"
         "  --out FILE      output, the images concatenated in argument order\n"
         "  --max-pixels N  refuse images declaring more than N pixels (default 89478485)");
}

int qe_cli_preprocess(int argc, char **argv)
{
    enum { O_STAGE = 1, O_OUT, O_HELP, O_MAXPIX };
    static const struct option opts[] = {{"stage", required_argument, 0, O_STAGE},
                                         {"max-pixels", required_argument, 0, O_MAXPIX},
                                         {"out", required_argument, 0, O_OUT},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    const char *out = NULL;
    int tensor = 0;
    long max_pixels = QE_DEFAULT_MAX_PIXELS;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_STAGE:
            if (strcmp(optarg, "crop") == 0)
                tensor = 0;
            else if (strcmp(optarg, "tensor") == 0)
                tensor = 1;
            else {
                qe_cli_error("preprocess", "--stage must be crop or tensor, got '%s'", optarg);
                return 2;
            }
            break;
        case O_OUT: out = optarg; break;
        case O_MAXPIX: if (qe_cli_int("preprocess", "--max-pixels", optarg, 1, 1L << 40, &max_pixels)) return 2; break;
        case O_HELP: help(); return 0;
        default:
            qe_cli_error("preprocess", "unknown or incomplete option '%s' (see quanteval preprocess --help)", argv[optind - 1]);
            return 2;
        }
    }
    if (!out || optind >= argc) {
        qe_cli_error("preprocess", "usage: quanteval preprocess [--stage crop|tensor] --out FILE IMAGE...");
        return 2;
    }
    FILE *f = fopen(out, "wb");
    if (!f) {
        qe_cli_error("preprocess", "cannot write %s", out);
        return 2;
    }
    uint8_t *crop = qe_malloc(QE_CROP_BYTES);
    float *x = qe_malloc(QE_TENSOR_FLOATS * sizeof(float));
    int rc = 0;
    for (int i = optind; i < argc && rc == 0; i++) {
        char err[QE_ERR_LEN];
        uint8_t *buf;
        size_t len;
        int bad = qe_read_file(argv[i], (size_t)256 << 20, &buf, &len, err);
        if (!bad) {
            bad = qe_image_load_crop(buf, len, max_pixels, crop, err);
            free(buf);
        }
        if (bad) {
            qe_cli_error("preprocess", "%s: %s", argv[i], err);
            rc = 1;
            break;
        }
        if (tensor) {
            qe_image_normalize(crop, x);
            fwrite(x, sizeof(float), QE_TENSOR_FLOATS, f);
        } else {
            fwrite(crop, 1, QE_CROP_BYTES, f);
        }
    }
    if (fclose(f) != 0 && rc == 0) {
        qe_cli_error("preprocess", "error writing %s", out);
        rc = 1;
    }
    if (rc)
        remove(out);
    free(crop);
    free(x);
    return rc;
}
