/*
 * modelcfg.h - model configs (configs/<name>.json), shaped like the AIMET zoo's model cards:
 * architecture, precision and quantization settings, default weights (file name, URL, sha256),
 * preprocessing, and the zoo's published reference accuracy. The configs of the repository are
 * compiled into the binary; a path to a JSON file of the same shape is accepted too.
 */
#ifndef QE_MODELCFG_H
#define QE_MODELCFG_H

#include "resnet.h"

typedef struct qe_modelcfg {
    char name[64];                 /* "resnet18_w8a8" */
    qe_arch arch;
    char precision[8];             /* "fp32", "w8a8", "w4a8" */
    int quantized;
    int param_bw, act_bw;          /* 0 for fp32 */
    int calib_per_class, calib_batch;
    char description[256];
    char weights_file[256];        /* default weights file name (searched in the model dirs) */
    char weights_url[512];
    char weights_sha256[65];       /* "" if unknown */
    int weights_optimized;         /* the weights are the zoo's BN-free optimized state dict */
    char fp32_weights_file[256];   /* quantized configs: the plain torchvision checkpoint */
    char fp32_weights_sha256[65];
    char param_encodings_file[256];/* AdaRound parameter encodings (flat layout), "" if none */
    double ref_top1, ref_fp32_top1;/* zoo reference, percent; 0 if unknown */
    char *json;                    /* the config text (owned) */
} qe_modelcfg;

/* Looks `name` up among the built-in configs, or reads it as a JSON file path if it contains a
 * '/' or ends in ".json". */
int qe_modelcfg_get(const char *name, qe_modelcfg *cfg, char *err);
void qe_modelcfg_free(qe_modelcfg *cfg);
/* Names of the built-in configs, NULL-terminated. */
const char *const *qe_modelcfg_names(void);

/* Where default weights are looked for, in order: $QUANTEVAL_MODELS, ./models,
 * $XDG_CACHE_HOME/quanteval (or ~/.cache/quanteval), ~/.cache/torch/hub/checkpoints.
 * Writes the first existing path of `file` into out; -1 if none exists. */
int qe_modelcfg_find_file(const char *file, char *out, size_t outlen);

#endif
