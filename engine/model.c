#include "model.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "synth.h"

#define QE_MAX_CKPT_BYTES ((size_t)2 << 30)

/* torchvision names its files <arch>-<first 8 hex digits of the sha256>.pth. */
static int torchvision_prefix(const char *path, char prefix[9])
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dash = strrchr(base, '-');
    if (!dash || strlen(dash) != 13 || strcmp(dash + 9, ".pth") != 0)
        return 0;
    for (int i = 1; i <= 8; i++)
        if (!isxdigit((unsigned char)dash[i]) || isupper((unsigned char)dash[i]))
            return 0;
    memcpy(prefix, dash + 1, 8);
    prefix[8] = 0;
    return 1;
}

static void check_sha(qe_model *m, const char *path, char *warn)
{
    char prefix[9];
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    int named = torchvision_prefix(path, prefix);
    int known = m->cfg.weights_sha256[0] && strcmp(base, m->cfg.weights_file) == 0;
    if (!named && !known)
        return;
    char err[QE_ERR_LEN];
    if (qe_sha256_file(path, m->weights_sha256, err) != 0) {
        snprintf(warn, QE_ERR_LEN, "could not hash %s: %s", path, err);
        return;
    }
    if (known && strcmp(m->weights_sha256, m->cfg.weights_sha256) != 0)
        snprintf(warn, QE_ERR_LEN, "%s: sha256 %s differs from the published %s (file corrupt or not the torchvision release)",
                 path, m->weights_sha256, m->cfg.weights_sha256);
    else if (named && strncmp(m->weights_sha256, prefix, 8) != 0)
        snprintf(warn, QE_ERR_LEN, "%s: sha256 %.8s... does not match the %s in its name (file corrupt or renamed)",
                 path, m->weights_sha256, prefix);
}

static int load_params(qe_model *m, const char *path, qe_resnet_params *p, char *warn, char *err)
{
    qe_statedict sd;
    char e[QE_ERR_LEN];
    if (path) {
        if (qe_statedict_load(path, QE_MAX_CKPT_BYTES, &sd, e))
            return qe_err(err, "cannot load weights %s: %s", path, e);
        check_sha(m, path, warn);
    } else {
        if (qe_synth_statedict(qe_resnet_desc_get(m->cfg.arch)->name, &sd, e))
            return qe_err(err, "cannot build the synthetic checkpoint: %s", e);
    }
    qe_arch found;
    int rc = 0;
    if (qe_resnet_arch_detect(&sd, &found) == 0 && found != m->cfg.arch)
        rc = qe_err(err, "%s holds a %s state dict, but model config %s needs %s", path ? path : "checkpoint",
                    qe_resnet_desc_get(found)->name, m->cfg.name, qe_resnet_desc_get(m->cfg.arch)->name);
    else if (qe_resnet_params_load(m->cfg.arch, &sd, p, e))
        rc = qe_err(err, "%s: %s", path ? path : "synthetic checkpoint", e);
    qe_statedict_free(&sd);
    return rc;
}

int qe_model_open(const char *config, const char *weights, qe_model **out, char *warn, char *err)
{
    double t0 = qe_now();
    qe_model *m = qe_calloc(1, sizeof *m);
    if (warn)
        warn[0] = 0;
    char wbuf[QE_ERR_LEN] = "";
    if (qe_modelcfg_get(config, &m->cfg, err)) {
        free(m);
        return -1;
    }
    const char *path = NULL;
    char found[4096];
    if (weights) {
        path = weights;
    } else if (qe_modelcfg_find_file(m->cfg.weights_file, found, sizeof found) == 0) {
        path = found;
    } else if (m->cfg.quantized && qe_modelcfg_find_file(m->cfg.fp32_weights_file, found, sizeof found) == 0) {
        path = found;
    }
    qe_resnet_params p;
    if (load_params(m, path, &p, wbuf, err)) {
        qe_model_close(m);
        return -1;
    }
    if (path) {
        snprintf(m->weights_path, sizeof m->weights_path, "%s", path);
        const char *base = strrchr(path, '/');
        snprintf(m->weights_desc, sizeof m->weights_desc, "%s", base ? base + 1 : path);
    } else {
        m->synthetic = 1;
        snprintf(m->weights_desc, sizeof m->weights_desc, "synthetic %s (built-in, random weights)",
                 qe_resnet_desc_get(m->cfg.arch)->name);
    }
    m->f32 = qe_f32net_create(&p);
    qe_resnet_params_free(&p);
    m->load_seconds = qe_now() - t0;
    if (warn)
        memcpy(warn, wbuf, QE_ERR_LEN);
    *out = m;
    return 0;
}

void qe_model_close(qe_model *m)
{
    if (!m)
        return;
    qe_f32net_free(m->f32);
    qe_modelcfg_free(&m->cfg);
    free(m);
}

void qe_model_forward_f32(qe_model *m, const float *x, int n, float *logits)
{
    qe_f32net_forward(m->f32, x, n, logits);
}

void qe_topk(const float *logits, int n, int k, int *idx)
{
    for (int j = 0; j < k; j++)
        idx[j] = -1;
    for (int i = 0; i < n; i++) {
        float v = logits[i];
        /* Strictly greater moves an entry down, so among equal values the earlier index stays first. */
        int pos = k;
        while (pos > 0 && (idx[pos - 1] < 0 || v > logits[idx[pos - 1]]))
            pos--;
        if (pos >= k)
            continue;
        for (int j = k - 1; j > pos; j--)
            idx[j] = idx[j - 1];
        idx[pos] = i;
    }
}
