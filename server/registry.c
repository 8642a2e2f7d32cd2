/*
 * registry.c - resident models, their background loading and the calibration cache (registry.h).
 */
#include "registry.h"

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sha256.h"
#include "synth.h"

typedef struct entry {
    qe_model_spec spec;
    qe_model_info info;
} entry;

struct qe_registry {
    entry *e;
    int n;
    char db[4096];
    int threads;
    pthread_mutex_t mu;              /* guards every entry's info */
    pthread_t loader;
    int loader_started, stop, loaded;
    qe_registry_ready_fn fn;
    void *ctx;
    /* compute lock: a ticket lock, so waiters are served in arrival order */
    pthread_mutex_t cmu;
    pthread_cond_t ccv;
    unsigned long next_ticket, serving;
};

qe_registry *qe_registry_create(const qe_model_spec *specs, int n, const char *db, int threads)
{
    qe_registry *r = qe_calloc(1, sizeof *r);
    r->e = qe_calloc((size_t)n, sizeof *r->e);
    r->n = n;
    snprintf(r->db, sizeof r->db, "%s", db);
    r->threads = threads;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->cmu, NULL);
    pthread_cond_init(&r->ccv, NULL);
    for (int i = 0; i < n; i++) {
        r->e[i].spec = specs[i];
        qe_modelcfg cfg;
        /* The entry is named after its config; an unreadable config is reported by the loader. */
        const char *name = specs[i].config;
        char err[QE_ERR_LEN];
        if (qe_modelcfg_get(specs[i].config, &cfg, err) == 0) {
            snprintf(r->e[i].info.name, sizeof r->e[i].info.name, "%s", cfg.name);
            qe_modelcfg_free(&cfg);
        } else {
            const char *slash = strrchr(name, '/');
            snprintf(r->e[i].info.name, sizeof r->e[i].info.name, "%s", slash ? slash + 1 : name);
        }
        r->e[i].info.state = QE_MODEL_LOADING;
    }
    return r;
}

int qe_registry_count(const qe_registry *r)
{
    return r->n;
}

int qe_registry_find(const qe_registry *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->e[i].info.name, name) == 0)
            return i;
    return -1;
}

void qe_registry_info(qe_registry *r, int i, qe_model_info *out)
{
    pthread_mutex_lock(&r->mu);
    *out = r->e[i].info;
    pthread_mutex_unlock(&r->mu);
}

const qe_model_spec *qe_registry_spec(const qe_registry *r, int i)
{
    return &r->e[i].spec;
}

int qe_registry_loaded(qe_registry *r)
{
    pthread_mutex_lock(&r->mu);
    int done = r->loaded;
    pthread_mutex_unlock(&r->mu);
    return done;
}

/* ---- opening with the calibration cache ---------------------------------------------------- */

/* The weights file the model loads, resolved as model.h documents (explicit, the config's file,
 * for quantized configs the plain torchvision checkpoint; "" for the built-in synthetic one) and,
 * if want_sha, its sha256. The cache key needs the hash before the model is opened, hence the
 * resolution here rather than in qe_model_open. */
static int resolve_weights(const qe_model_spec *spec, const qe_modelcfg *cfg, int want_sha, char *path,
                           size_t pathlen, char sha[65], char *err)
{
    path[0] = 0;
    if (spec->weights[0]) {
        if (access(spec->weights, R_OK) != 0)
            return qe_err(err, "weights file %s not found", spec->weights);
        snprintf(path, pathlen, "%s", spec->weights);
    } else if (qe_modelcfg_find_file(cfg->weights_file, path, pathlen) != 0 &&
               !(cfg->quantized && qe_modelcfg_find_file(cfg->fp32_weights_file, path, pathlen) == 0)) {
        path[0] = 0;
        if (!spec->allow_synthetic)
            return qe_err(err, "weights %s not found in the model directories ($QUANTEVAL_MODELS, ./models, "
                               "~/.cache/quanteval, ~/.cache/torch/hub/checkpoints)", cfg->weights_file);
    }
    if (!path[0]) {
        snprintf(sha, 65, "%s", cfg->arch == QE_ARCH_RESNET18 ? QE_SYNTH_SHA256_RESNET18 : QE_SYNTH_SHA256_RESNET50);
        return 0;
    }
    sha[0] = 0;
    return want_sha ? qe_sha256_file(path, sha, err) : 0;
}

/* The calibration settings string of the cache key: everything the encodings depend on besides
 * the weights and the config (§3.6 selection, batch boundaries, frozen AdaRound parameters). */
static int calib_key(const qe_model_spec *spec, const qe_modelcfg *cfg, int synthetic, char *key, size_t keylen,
                     char *err)
{
    int per_class = spec->calib.per_class >= 0 ? spec->calib.per_class : cfg->calib_per_class;
    int batch = spec->calib.batch > 0 ? spec->calib.batch : cfg->calib_batch;
    char penc[4096], psha[65] = "none";
    if (!synthetic && cfg->param_encodings_file[0] &&
        qe_modelcfg_find_file(cfg->param_encodings_file, penc, sizeof penc) == 0 && qe_sha256_file(penc, psha, err) != 0)
        return -1;
    snprintf(key, keylen, "tf_enhanced dataset=%s path=%s per_class=%d images=%ld batch=%d param_encodings=%s",
             spec->calib.dataset, spec->calib.path, per_class, spec->calib.images, batch, psha);
    return 0;
}

static int open_calibrated(const qe_model_spec *spec, qe_model_opts *mo, int per_class, qe_model **out, char *warn,
                           char *err)
{
    qe_dataset all, sel;
    char e[QE_ERR_LEN];
    if (qe_dataset_open(spec->calib.path, NULL, &all, e))
        return qe_err(err, "calibration dataset %s: %s", spec->calib.dataset, e);
    qe_dataset_subset(&all, per_class, (size_t)spec->calib.images, &sel);
    mo->calib = &sel;
    int rc = qe_model_open(spec->config, mo, out, warn, err);
    mo->calib = NULL;
    qe_dataset_free_subset(&sel);
    qe_dataset_free(&all);
    return rc;
}

int qe_registry_open_model(const qe_model_spec *spec, qe_store *store, qe_model **out, char source[320],
                           char *warn, char *err)
{
    qe_modelcfg cfg;
    if (qe_modelcfg_get(spec->config, &cfg, err))
        return -1;
    char path[4096], sha[65], key[8192];
    int calibrated = cfg.quantized && !spec->encodings[0];
    int rc = resolve_weights(spec, &cfg, calibrated, path, sizeof path, sha, err);
    qe_model_opts mo = {.weights = path[0] ? path : NULL, .no_fp32 = 1};
    source[0] = 0;
    if (rc || !cfg.quantized) {
        if (rc == 0)
            rc = qe_model_open(spec->config, &mo, out, warn, err);
        qe_modelcfg_free(&cfg);
        return rc;
    }
    if (spec->encodings[0]) {
        mo.encodings = spec->encodings;
        rc = qe_model_open(spec->config, &mo, out, warn, err);
        snprintf(source, 320, "file %s", spec->encodings);
        qe_modelcfg_free(&cfg);
        return rc;
    }
    int per_class = spec->calib.per_class >= 0 ? spec->calib.per_class : cfg.calib_per_class;
    mo.calib_batch = spec->calib.batch;
    if (calib_key(spec, &cfg, !path[0], key, sizeof key, err)) {
        qe_modelcfg_free(&cfg);
        return -1;
    }
    qe_store_cache_key ck = {.weights_sha256 = sha, .model_config = cfg.name, .calib = key};
    uint8_t *text = NULL;
    size_t len;
    int found = 0;
    char e[QE_ERR_LEN];
    if (store && qe_store_cache_get(store, &ck, &text, &len, &found, e))
        fprintf(stderr, "quanteval serve: warning: calibration cache: %s\n", e);
    rc = -1;
    if (found) {
        mo.encodings_text = (const char *)text;
        rc = qe_model_open(spec->config, &mo, out, warn, e);
        mo.encodings_text = NULL;
        if (rc)
            fprintf(stderr, "quanteval serve: warning: %s: cached encodings unusable (%s), calibrating\n", cfg.name, e);
        else
            snprintf(source, 320, "cache (calibrated on %s, %d per class)", spec->calib.dataset, per_class);
    }
    free(text);
    if (rc) {
        rc = open_calibrated(spec, &mo, per_class, out, warn, err);
        if (rc == 0) {
            snprintf(source, 320, "%s (%s, %d per class)", (*out)->encodings_source, spec->calib.dataset, per_class);
            if (store && qe_store_cache_put(store, &ck, (*out)->encodings_json, strlen((*out)->encodings_json), e))
                fprintf(stderr, "quanteval serve: warning: calibration cache: %s\n", e);
        }
    }
    qe_modelcfg_free(&cfg);
    return rc;
}

/* ---- background loading -------------------------------------------------------------------- */

static void *loader_main(void *arg)
{
    qe_registry *r = arg;
    if (r->threads > 0)
        omp_set_num_threads(r->threads);
    qe_store *store = NULL;
    char err[QE_ERR_LEN], warn[QE_ERR_LEN];
    if (qe_store_open(r->db, &store, err)) {
        fprintf(stderr, "quanteval serve: warning: calibration cache unavailable: %s\n", err);
        store = NULL;
    }
    for (int i = 0; i < r->n; i++) {
        pthread_mutex_lock(&r->mu);
        int stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
        entry *e = &r->e[i];
        qe_model *m = NULL;
        char source[320];
        double t0 = qe_now();
        int rc = qe_registry_open_model(&e->spec, store, &m, source, warn, err);
        pthread_mutex_lock(&r->mu);
        if (rc) {
            e->info.state = QE_MODEL_UNAVAILABLE;
            snprintf(e->info.reason, sizeof e->info.reason, "%s", err);
        } else {
            e->info.state = QE_MODEL_READY;
            e->info.model = m;
            snprintf(e->info.reason, sizeof e->info.reason, "%s", warn);
            snprintf(e->info.encodings_source, sizeof e->info.encodings_source, "%s", source);
        }
        pthread_mutex_unlock(&r->mu);
        if (rc)
            fprintf(stderr, "quanteval serve: %s unavailable: %s\n", e->info.name, err);
        else
            fprintf(stderr, "quanteval serve: %s ready (%s%s%s) in %.1f s\n", e->info.name, m->weights_desc,
                    source[0] ? "; encodings: " : "", source, qe_now() - t0);
        if (r->fn)
            r->fn(r->ctx, i);
    }
    qe_store_close(store);
    pthread_mutex_lock(&r->mu);
    r->loaded = !r->stop;
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

void qe_registry_start(qe_registry *r, qe_registry_ready_fn fn, void *ctx)
{
    r->fn = fn;
    r->ctx = ctx;
    if (pthread_create(&r->loader, NULL, loader_main, r) != 0) {
        fprintf(stderr, "quanteval serve: cannot start the model loader thread\n");
        abort();
    }
    r->loader_started = 1;
}

void qe_registry_stop_loading(qe_registry *r)
{
    if (!r->loader_started)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->loader, NULL);
    r->loader_started = 0;
}

void qe_registry_free(qe_registry *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        qe_model_close(r->e[i].info.model);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->cmu);
    pthread_cond_destroy(&r->ccv);
    free(r->e);
    free(r);
}

/* ---- compute lock -------------------------------------------------------------------------- */

void qe_registry_compute_begin(qe_registry *r)
{
    pthread_mutex_lock(&r->cmu);
    unsigned long me = r->next_ticket++;
    while (r->serving != me)
        pthread_cond_wait(&r->ccv, &r->cmu);
    pthread_mutex_unlock(&r->cmu);
}

void qe_registry_compute_end(qe_registry *r)
{
    pthread_mutex_lock(&r->cmu);
    r->serving++;
    pthread_cond_broadcast(&r->ccv);
    pthread_mutex_unlock(&r->cmu);
}
