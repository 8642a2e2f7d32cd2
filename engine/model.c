#include "model.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encfile.h"
#include "image.h"
#include "pipeline.h"
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

/* Hashes the weights file (recorded with every run), recognises the synthetic checkpoints by
 * their hash, and checks the hash against the published one or the 8 hex digits in a
 * torchvision-style name. */
static void check_sha(qe_model *m, const char *path, char *warn)
{
    char err[QE_ERR_LEN], prefix[9];
    if (qe_sha256_file(path, m->weights_sha256, err) != 0) {
        snprintf(warn, QE_ERR_LEN, "could not hash %s: %s", path, err);
        return;
    }
    if (strcmp(m->weights_sha256, QE_SYNTH_SHA256_RESNET18) == 0 || strcmp(m->weights_sha256, QE_SYNTH_SHA256_RESNET50) == 0) {
        m->synthetic = 1;
        return;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    int named = torchvision_prefix(path, prefix);
    int known = m->cfg.weights_sha256[0] && strcmp(base, m->cfg.weights_file) == 0;
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
            return qe_err(err, "cannot load weights %s", e);   /* e names the file */
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

static void drop_tensors(qe_model *m)
{
    qe_free_aligned(m->x);
    m->x = NULL;
    m->xcap = 0;
}

/* The normalised tensors of n crops, in m's scratch buffer. */
static const float *normalised(qe_model *m, const uint8_t *crops, int n)
{
    if (n > m->xcap) {
        qe_free_aligned(m->x);
        m->x = qe_malloc_aligned((size_t)n * QE_TENSOR_FLOATS * sizeof(float));
        m->xcap = n;
    }
    qe_image_normalize_batch(crops, n, m->x);
    return m->x;
}

/* Runs the calibration images through the pipeline in batches of `batch` (§3.6). */
static int calibrate(qe_model *m, const qe_model_opts *o, char *err)
{
    const qe_dataset *ds = o->calib;
    if (!ds || ds->count == 0)
        return qe_err(err, "%s needs calibration images (or an encodings file)", m->cfg.name);
    int batch = o->calib_batch > 0 ? o->calib_batch : (m->cfg.calib_batch > 0 ? m->cfg.calib_batch : 128);
    double t0 = qe_now();
    qe_pipeline *p = qe_pipeline_start(ds->items, ds->count, batch, o->workers > 0 ? o->workers : 2, QE_DEFAULT_MAX_PIXELS);
    qe_batch *b;
    size_t done = 0;
    int rc = 0;
    while ((b = qe_pipeline_next(p)) != NULL) {
        for (int i = 0; i < b->n && rc == 0; i++)
            if (b->error[i][0])
                rc = qe_err(err, "calibration image %s: %s", ds->items[b->first + (size_t)i].path, b->error[i]);
        if (rc == 0)
            qe_qsim_calibrate_batch(m->qsim, normalised(m, b->crops, b->n), b->n);
        done += (size_t)b->n;
        qe_pipeline_release(p, b);
        if (rc)
            break;
        if (o->progress)
            o->progress(o->progress_ctx, "calibration", done, ds->count);
    }
    qe_pipeline_stop(p);
    drop_tensors(m);   /* a calibration batch of tensors is large (77 MB at 128) */
    if (rc == 0 && qe_qsim_calibrate_finish(m->qsim, err))
        rc = -1;
    m->calib_seconds = qe_now() - t0;
    snprintf(m->encodings_source, sizeof m->encodings_source, "calibrated on %zu images, batch %d", ds->count, batch);
    return rc;
}

/* Sets up the quantized network of m from p: frozen parameter encodings, then loaded or
 * calibrated activation encodings; keeps the §6.1 text of the result. */
static int open_quantized(qe_model *m, const qe_resnet_params *p, const qe_model_opts *o, char *warn, char *err)
{
    m->qsim = qe_qsim_create(p, m->cfg.param_bw, QE_SCHEME_TF_ENHANCED, err);
    if (!m->qsim)
        return -1;
    char path[4096];
    const char *penc = o->param_encodings;
    if (!penc && !o->encodings && !o->encodings_text && !m->synthetic &&
        qe_modelcfg_find_file(m->cfg.param_encodings_file, path, sizeof path) == 0)
        penc = path;
    if (penc) {
        qe_enctable t;
        qe_enctable_init(&t);
        int rc = qe_encfile_read(penc, &t, err);
        if (rc == 0)
            rc = qe_qsim_freeze_params(m->qsim, &t, err);
        qe_enctable_free(&t);
        if (rc)
            return qe_err(err, "parameter encodings %s: %s", penc, err);
    } else if (!o->encodings && !o->encodings_text && !m->synthetic) {
        snprintf(warn, QE_ERR_LEN, "no AdaRound parameter encodings (%s) found: weight encodings are computed (§2.3)",
                 m->cfg.param_encodings_file);
    }
    if (o->encodings || o->encodings_text) {
        qe_enctable t;
        qe_enctable_init(&t);
        int rc = o->encodings_text ? qe_encfile_parse(o->encodings_text, strlen(o->encodings_text), &t, err)
                                   : qe_encfile_read(o->encodings, &t, err);
        if (rc == 0)
            rc = qe_qsim_load_encodings(m->qsim, &t, err);
        qe_enctable_free(&t);
        if (rc)
            return -1;
        snprintf(m->encodings_source, sizeof m->encodings_source, "%s", o->encodings ? o->encodings : "cached encodings");
    } else if (calibrate(m, o, err)) {
        return -1;
    }
    qe_enctable t;
    qe_enctable_init(&t);
    size_t len;
    int rc = qe_qsim_export(m->qsim, &t, err);
    if (rc == 0)
        rc = qe_encfile_format(&t, &m->encodings_json, &len, err);
    qe_enctable_free(&t);
    if (rc == 0)
        qe_sha256_hex(m->encodings_json, len, m->encodings_sha256);
    return rc;
}

int qe_model_open(const char *config, const qe_model_opts *opts, qe_model **out, char *warn, char *err)
{
    static const qe_model_opts defaults;
    const qe_model_opts *o = opts ? opts : &defaults;
    double t0 = qe_now();
    qe_model *m = qe_calloc(1, sizeof *m);
    char wbuf[QE_ERR_LEN] = "", wbuf2[QE_ERR_LEN] = "";
    if (warn)
        warn[0] = 0;
    if (qe_modelcfg_get(config, &m->cfg, err)) {
        free(m);
        return -1;
    }
    const char *path = NULL;
    char found[4096];
    if (o->weights) {
        path = o->weights;
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
        snprintf(m->weights_desc, sizeof m->weights_desc, "%s%s", base ? base + 1 : path,
                 m->synthetic ? " (the synthetic checkpoint: random weights)" : "");
    } else {
        m->synthetic = 1;
        snprintf(m->weights_sha256, sizeof m->weights_sha256, "%s",
                 m->cfg.arch == QE_ARCH_RESNET18 ? QE_SYNTH_SHA256_RESNET18 : QE_SYNTH_SHA256_RESNET50);
        snprintf(m->weights_desc, sizeof m->weights_desc, "synthetic %s (built-in, random weights)",
                 qe_resnet_desc_get(m->cfg.arch)->name);
    }
    if (!m->cfg.quantized || !o->no_fp32)
        m->f32 = qe_f32net_create(&p);
    int rc = m->cfg.quantized ? open_quantized(m, &p, o, wbuf2, err) : 0;
    qe_resnet_params_free(&p);
    if (rc) {
        qe_model_close(m);
        return -1;
    }
    m->load_seconds = qe_now() - t0;
    if (warn)
        snprintf(warn, QE_ERR_LEN, "%s%s%s", wbuf, wbuf[0] && wbuf2[0] ? "; " : "", wbuf2);
    *out = m;
    return 0;
}

void qe_model_close(qe_model *m)
{
    if (!m)
        return;
    qe_f32net_free(m->f32);
    qe_qsim_free(m->qsim);
    qe_free_aligned(m->x);
    free(m->encodings_json);
    qe_modelcfg_free(&m->cfg);
    free(m);
}

void qe_model_forward(qe_model *m, const uint8_t *crops, int n, float *logits)
{
    if (m->qsim)
        qe_qsim_forward_crops(m->qsim, crops, n, logits);
    else
        qe_model_forward_f32(m, crops, n, logits);
}

void qe_model_forward_f32(qe_model *m, const uint8_t *crops, int n, float *logits)
{
    qe_f32net_forward(m->f32, normalised(m, crops, n), n, logits);
}

void qe_model_trim(qe_model *m)
{
    if (m->f32)
        qe_f32net_trim(m->f32);
    if (m->qsim)
        qe_qsim_trim(m->qsim);
    drop_tensors(m);
}

size_t qe_model_bytes(const qe_model *m)
{
    return (m->f32 ? qe_f32net_bytes(m->f32) : 0) + (m->qsim ? qe_qsim_bytes(m->qsim) : 0);
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
