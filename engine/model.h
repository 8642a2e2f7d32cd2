/*
 * model.h - a resident model: a model config with its weights loaded and its network packed.
 *
 * Weights come from, in order: the explicit path given, the config's default file found in
 * the model directories (modelcfg.h), or the built-in synthetic checkpoint of the architecture
 * (synth.h), which is then reported as synthetic everywhere.
 */
#ifndef QE_MODEL_H
#define QE_MODEL_H

#include "f32net.h"
#include "modelcfg.h"
#include "qe_util.h"

typedef struct qe_model {
    qe_modelcfg cfg;
    int synthetic;                 /* weights are the built-in synthetic checkpoint */
    char weights_path[1024];       /* "" when synthetic */
    char weights_sha256[65];       /* of the file; of the generated pth bytes when synthetic */
    char weights_desc[128];        /* e.g. "synthetic resnet18 (built-in)" or the file name */
    qe_f32net *f32;
    double load_seconds;
} qe_model;

/* Opens `config` (name or JSON path, modelcfg.h). weights: explicit checkpoint path or NULL.
 * A mismatching sha256 of a file named like torchvision's (<arch>-<8 hex>.pth) is not fatal: it
 * is reported in warn (warn[0] == 0 if nothing to report). */
int qe_model_open(const char *config, const char *weights, qe_model **out, char *warn, char *err);
void qe_model_close(qe_model *m);

/* FP32 logits of n normalised images (n x 3x224x224) into logits (n x 1000). One call at a time
 * per model. */
void qe_model_forward_f32(qe_model *m, const float *x, int n, float *logits);

/* Top-k of a logit row: the k largest, ties broken by the lower index (torch.max/topk order). */
void qe_topk(const float *logits, int n, int k, int *idx);

#endif
