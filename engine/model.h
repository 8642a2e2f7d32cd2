/*
 * model.h - a resident model: a model config with its weights loaded and its networks packed.
 *
 * Weights come from, in order: the explicit path given, the config's default file found in the
 * model directories (modelcfg.h; for quantized configs the zoo's optimized state dict, then the
 * plain torchvision checkpoint), or the built-in synthetic checkpoint of the architecture
 * (synth.h), which is then reported as synthetic everywhere.
 *
 * A quantized config also gets its encodings (qsim.h): loaded from an encodings file, or
 * calibrated on images the caller names (the zoo's selection: the first K images per class).
 * It keeps the FP32 network too unless asked not to, so that one model answers both the
 * quantized and the FP32 question as the zoo's script does.
 */
#ifndef QE_MODEL_H
#define QE_MODEL_H

#include "dataset.h"
#include "f32net.h"
#include "modelcfg.h"
#include "qe_util.h"
#include "qsim.h"

typedef struct qe_model_opts {
    const char *weights;           /* explicit checkpoint, or NULL */
    const char *encodings;         /* §6.1 encodings file: no calibration (NULL: calibrate) */
    const char *encodings_text;    /* same, already in memory (e.g. from a cache) */
    const char *param_encodings;   /* AdaRound parameter encodings (§6.3); NULL: the config's file if found */
    const qe_dataset *calib;       /* calibration images (already selected by the caller); required
                                    * for a quantized config without encodings */
    int calib_batch;               /* 0: the config's (128) */
    int no_fp32;                   /* quantized configs: do not keep the FP32 network */
    int workers;                   /* image decoding threads for calibration (0: 2) */
    /* Progress of long steps (calibration), may be NULL. */
    void (*progress)(void *ctx, const char *stage, size_t done, size_t total);
    void *progress_ctx;
} qe_model_opts;

typedef struct qe_model {
    qe_modelcfg cfg;
    int synthetic;                 /* weights are the built-in synthetic checkpoint */
    char weights_path[1024];       /* "" when synthetic */
    char weights_sha256[65];       /* of the weights file ("" if not hashed) */
    char weights_desc[160];        /* e.g. "synthetic resnet18 (built-in, random weights)" */
    qe_f32net *f32;                /* FP32 network (NULL for a quantized config opened with no_fp32) */
    qe_qsim *qsim;                 /* quantized network (quantized configs) */
    char encodings_source[160];    /* "calibrated on N images (...)" or the file it came from */
    char *encodings_json;          /* the §6.1 text of the encodings in use (owned), quantized only */
    char encodings_sha256[65];
    double load_seconds, calib_seconds;
    float *x;                      /* private: normalised tensors of the FP32 network's input */
    int xcap;                      /* images x holds */
} qe_model;

/* Opens `config` (name or JSON path, modelcfg.h). A mismatching sha256 of a file named like
 * torchvision's (<arch>-<8 hex>.pth) is not fatal: it is reported in warn (warn[0] == 0 if
 * nothing to report). opts may be NULL (FP32 defaults). */
int qe_model_open(const char *config, const qe_model_opts *opts, qe_model **out, char *warn, char *err);
void qe_model_close(qe_model *m);

/* Logits (n x 1000) of n center crops (n x QE_CROP_BYTES, HWC u8 as qe_image_crop makes them):
 * the quantized network for a quantized config, else FP32. One call at a time per model
 * (callers serialise). */
void qe_model_forward(qe_model *m, const uint8_t *crops, int n, float *logits);
/* FP32 logits; requires m->f32. */
void qe_model_forward_f32(qe_model *m, const uint8_t *crops, int n, float *logits);

/* Frees the scratch buffers the networks keep between forwards (for a model going idle). */
void qe_model_trim(qe_model *m);

/* Resident bytes of the packed networks. */
size_t qe_model_bytes(const qe_model *m);

/* Top-k of a logit row: the k largest, ties broken by the lower index (torch.max/topk order). */
void qe_topk(const float *logits, int n, int k, int *idx);

#endif
