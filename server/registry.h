/*
 * registry.h - the daemon's resident models: one entry per model config of the server config,
 * loaded in the background (loading -> ready, or unavailable with the reason), and the one
 * compute lock every forward pass of the daemon takes.
 *
 * Quantized configs need encodings. They come from an encodings file named in the server
 * config, or from calibration on a named dataset; calibrated encodings are cached in the run
 * database keyed by (weights sha256, config, calibration settings), so a restart loads them
 * instead of calibrating again.
 */
#ifndef QE_REGISTRY_H
#define QE_REGISTRY_H

#include <stddef.h>

#include "model.h"
#include "store.h"

/* How a quantized config is calibrated (the zoo's selection, quantsim.md §3.6). */
typedef struct qe_calib_spec {
    char dataset[64];        /* dataset name, for records */
    char path[4096];         /* its directory */
    int per_class;           /* first K images per class; -1: the config's */
    long images;             /* at most this many (0: no cap) */
    int batch;               /* 0: the config's */
} qe_calib_spec;

/* One model of the server config. */
typedef struct qe_model_spec {
    char config[512];        /* built-in config name or JSON path */
    char weights[4096];      /* explicit checkpoint, "" for the config's default file */
    char encodings[4096];    /* §6.1 encodings file, "" to calibrate */
    int allow_synthetic;     /* no weights file found: use the synthetic checkpoint (else unavailable) */
    qe_calib_spec calib;
} qe_model_spec;

typedef enum qe_model_state { QE_MODEL_LOADING, QE_MODEL_READY, QE_MODEL_UNAVAILABLE } qe_model_state;

/* What the API reports about an entry (a copy taken under the registry's lock). */
typedef struct qe_model_info {
    char name[64];
    qe_model_state state;
    char reason[QE_ERR_LEN];         /* unavailable: why; ready: warnings ("" if none) */
    char encodings_source[320];      /* quantized: "cache (...)", "calibrated on ...", or the file */
    qe_model *model;                 /* ready only; lives as long as the registry */
} qe_model_info;

typedef struct qe_registry qe_registry;

/* Called on the loader thread when entry i has finished loading (ready or unavailable). */
typedef void (*qe_registry_ready_fn)(void *ctx, int i);

/* Creates the registry with every entry loading. db is the run database (calibration cache);
 * threads is the OpenMP team size of the loader (0: all cores). */
qe_registry *qe_registry_create(const qe_model_spec *specs, int n, const char *db, int threads);
/* Loads the entries one by one on a background thread, calling fn after each. */
void qe_registry_start(qe_registry *r, qe_registry_ready_fn fn, void *ctx);
/* Asks the loader to stop after the model in progress, and joins it. */
void qe_registry_stop_loading(qe_registry *r);
/* Frees every model; the loader must be stopped and nothing may run on the models. */
void qe_registry_free(qe_registry *r);

int qe_registry_count(const qe_registry *r);
/* Index of the entry named name (its config's name), or -1. */
int qe_registry_find(const qe_registry *r, const char *name);
void qe_registry_info(qe_registry *r, int i, qe_model_info *out);
const qe_model_spec *qe_registry_spec(const qe_registry *r, int i);
/* 1 once every entry has finished loading. */
int qe_registry_loaded(qe_registry *r);

/* Opens a model for spec, reusing or filling the calibration cache in store (which may be
 * NULL). source receives where the encodings came from. Used by the loader and by jobs that ask
 * for their own calibration. */
int qe_registry_open_model(const qe_model_spec *spec, qe_store *store, qe_model **out, char source[320],
                           char *warn, char *err);

/* The compute lock: one forward pass at a time in the whole daemon, granted in request order, so
 * that a job's batches and classify batches alternate instead of oversubscribing the cores. */
void qe_registry_compute_begin(qe_registry *r);
void qe_registry_compute_end(qe_registry *r);

#endif
