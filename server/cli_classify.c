/* quanteval classify: top-5 classes of individual images. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classes.h"
#include "dataset.h"
#include "cli.h"
#include "image.h"
#include "model.h"
#include "pipeline.h"

static void help(void)
{
    puts("usage: quanteval classify [options] IMAGE...\n"
         "\n"
         "  --model-config NAME   model config (default resnet18_fp32)\n"
         "  --weights FILE        checkpoint\n"
         "  --json                one JSON object per image, one per line\n"
         "  --logits-out FILE     raw little-endian float32 logits [N,1000] in argument order\n"
         "                        (the quantized logits for a quantized config)\n"
         "  --encodings FILE      quantized configs: AIMET _torch.encodings to load (no calibration)\n"
         "  --save-encodings FILE quantized configs: write the encodings in use\n"
         "  --calib-path DIR      quantized configs: calibration images (default: bundled samples)\n"
         "  --calib-per-class K   first K images per class for calibration (default 2; 0 = all)\n"
         "  --threads N           compute threads (default: all cores)\n"
         "  --max-pixels N        refuse images declaring more than N pixels (default 89478485)");
}

/* Softmax probability of class `idx`, computed in double for a stable result. */
static double softmax_at(const float *l, int idx)
{
    float mx = l[0];
    for (int i = 1; i < 1000; i++)
        mx = l[i] > mx ? l[i] : mx;
    double s = 0;
    for (int i = 0; i < 1000; i++)
        s += exp((double)l[i] - mx);
    return exp((double)l[idx] - mx) / s;
}

int qe_cli_classify(int argc, char **argv)
{
    enum { O_MODEL = 1, O_WEIGHTS, O_JSON, O_LOGITS, O_THREADS, O_HELP, O_ENC, O_SAVE, O_CPATH, O_CPC, O_MAXPIX };
    static const struct option opts[] = {
        {"model-config", required_argument, 0, O_MODEL}, {"weights", required_argument, 0, O_WEIGHTS},
        {"json", no_argument, 0, O_JSON},                {"logits-out", required_argument, 0, O_LOGITS},
        {"threads", required_argument, 0, O_THREADS},    {"help", no_argument, 0, O_HELP},
        {"encodings", required_argument, 0, O_ENC},      {"save-encodings", required_argument, 0, O_SAVE},
        {"calib-path", required_argument, 0, O_CPATH},   {"calib-per-class", required_argument, 0, O_CPC},
        {"max-pixels", required_argument, 0, O_MAXPIX},
        {0, 0, 0, 0}};
    const char *config = "resnet18_fp32", *weights = NULL, *logits_out = NULL, *encodings = NULL;
    const char *save_encodings = NULL, *calib_path = NULL;
    long calib_per_class = 2, max_pixels = QE_DEFAULT_MAX_PIXELS;
    int json = 0;
    long threads = 0;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: config = optarg; break;
        case O_WEIGHTS: weights = optarg; break;
        case O_JSON: json = 1; break;
        case O_LOGITS: logits_out = optarg; break;
        case O_THREADS: if (qe_cli_int("classify", "--threads", optarg, 1, 1024, &threads)) return 2; break;
        case O_ENC: encodings = optarg; break;
        case O_MAXPIX: if (qe_cli_int("classify", "--max-pixels", optarg, 1, 1L << 40, &max_pixels)) return 2; break;
        case O_SAVE: save_encodings = optarg; break;
        case O_CPATH: calib_path = optarg; break;
        case O_CPC: if (qe_cli_int("classify", "--calib-per-class", optarg, 0, 100000000, &calib_per_class)) return 2; break;
        case O_HELP: help(); return 0;
        default:
            qe_cli_error("classify", "unknown or incomplete option '%s' (see quanteval classify --help)", argv[optind - 1]);
            return 2;
        }
    }
    int n = argc - optind;
    if (n <= 0) {
        qe_cli_error("classify", "no image given (usage: quanteval classify [options] IMAGE...)");
        return 2;
    }
    qe_cli_set_threads((int)threads);
    char err[QE_ERR_LEN], warn[QE_ERR_LEN];
    qe_model *m;
    qe_model_opts mo = {.weights = weights, .encodings = encodings, .no_fp32 = 1};
    qe_dataset calib_all, calib;
    memset(&calib, 0, sizeof calib);
    memset(&calib_all, 0, sizeof calib_all);
    qe_modelcfg cfg;
    if (qe_modelcfg_get(config, &cfg, err)) {
        qe_cli_error("classify", "%s", err);
        return 2;
    }
    int quantized = cfg.quantized;
    qe_modelcfg_free(&cfg);
    if (quantized && !encodings) {
        /* Calibration needs images: the zoo's selection from --calib-path, or the bundled samples. */
        if (qe_dataset_open(calib_path ? calib_path : qe_cli_samples_dir(), NULL, &calib_all, err)) {
            qe_cli_error("classify", "calibration set: %s", err);
            return 2;
        }
        qe_dataset_subset(&calib_all, (int)calib_per_class, 0, &calib);
        mo.calib = &calib;
        if (!calib_path)
            fprintf(stderr, "quanteval classify: calibrating %s on the bundled sample images (give --calib-path DIR or --encodings FILE)\n", config);
    }
    int orc = qe_model_open(config, &mo, &m, warn, err);
    qe_dataset_free_subset(&calib);
    if (calib_all.items)
        qe_dataset_free(&calib_all);
    if (orc == 0 && save_encodings && m->encodings_json) {
        FILE *f = fopen(save_encodings, "w");
        if (!f || fputs(m->encodings_json, f) < 0 || fclose(f) != 0) {
            qe_cli_error("classify", "cannot write %s", save_encodings);
            qe_model_close(m);
            return 2;
        }
    }
    if (orc) {
        qe_cli_error("classify", "%s", err);
        return 2;
    }
    if (warn[0])
        fprintf(stderr, "quanteval classify: warning: %s\n", warn);
    if (m->synthetic)
        fprintf(stderr, "quanteval classify: %s uses %s: predictions are meaningless\n", m->cfg.name, m->weights_desc);

    FILE *lf = NULL;
    if (logits_out && !(lf = fopen(logits_out, "wb"))) {
        qe_cli_error("classify", "cannot write %s", logits_out);
        qe_model_close(m);
        return 2;
    }
    enum { CHUNK = 16 };
    uint8_t *crops = qe_malloc((size_t)CHUNK * QE_CROP_BYTES);
    float *logits = qe_malloc((size_t)CHUNK * 1000 * sizeof(float));
    char (*errs)[QE_ERR_LEN] = qe_calloc(CHUNK, QE_ERR_LEN);
    int failed = 0;
    for (int first = 0; first < n; first += CHUNK) {
        int k = n - first < CHUNK ? n - first : CHUNK;
        for (int i = 0; i < k; i++) {
            errs[i][0] = 0;
            if (qe_pipeline_load_crop(argv[optind + first + i], max_pixels, crops + (size_t)i * QE_CROP_BYTES, errs[i]))
                memset(crops + (size_t)i * QE_CROP_BYTES, 0, QE_CROP_BYTES);
        }
        double t0 = qe_now();
        qe_model_forward(m, crops, k, logits);
        double ms = (qe_now() - t0) * 1e3 / k;
        for (int i = 0; i < k; i++) {
            const char *path = argv[optind + first + i];
            const float *l = logits + (size_t)i * 1000;
            if (errs[i][0]) {
                failed++;
                qe_cli_error("classify", "%s: %s", path, errs[i]);
                continue;
            }
            if (lf)
                fwrite(l, sizeof(float), 1000, lf);
            int top[5];
            qe_topk(l, 1000, 5, top);
            if (json) {
                printf("{\"path\": ");
                qe_cli_json_str(stdout, path);
                printf(", \"model_config\": ");
                qe_cli_json_str(stdout, m->cfg.name);
                printf(", \"synthetic\": %s, \"top5\": [", m->synthetic ? "true" : "false");
                for (int j = 0; j < 5; j++) {
                    char sl[128];
                    printf("%s{\"index\": %d, \"wnid\": \"%s\", \"label\": ", j ? ", " : "", top[j], qe_classes()[top[j]].wnid);
                    qe_cli_json_str(stdout, qe_classes_short_label(top[j], sl, sizeof sl));
                    printf(", \"probability\": %.6f, \"logit\": %.6g}", softmax_at(l, top[j]), (double)l[top[j]]);
                }
                printf("], \"latency_ms\": %.2f}\n", ms);
            } else {
                printf("%s\n", path);
                for (int j = 0; j < 5; j++) {
                    char sl[128];
                    printf("  %d. %-40s %5.1f%%  (%d %s)\n", j + 1, qe_classes_short_label(top[j], sl, sizeof sl),
                           100.0 * softmax_at(l, top[j]), top[j], qe_classes()[top[j]].wnid);
                }
            }
        }
    }
    if (lf && fclose(lf) != 0) {
        qe_cli_error("classify", "error writing %s", logits_out);
        failed++;
    }
    free(errs);
    free(logits);
    free(crops);
    qe_model_close(m);
    return failed ? 1 : 0;
}
