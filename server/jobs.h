/*
 * jobs.h - the daemon's evaluation jobs: runner threads that claim queued jobs from the run
 * database (store.h) and evaluate a model config on a named dataset, recording every batch.
 *
 * Crash safety comes from the store: each batch is one transaction, so a job resumes at
 * qe_store_run_next_index() after a crash or a restart, and its final counts equal those of an
 * uninterrupted run. On shutdown a running job stops after its current batch and stays
 * "running" in the database; the next daemon puts it back in the queue (qe_store_jobs_recover)
 * and continues it.
 */
#ifndef QE_JOBS_H
#define QE_JOBS_H

#include <stdint.h>

#include "metrics.h"
#include "registry.h"

/* A dataset the server may read, by name: clients never name paths. */
typedef struct qe_named_dataset {
    char name[64];
    char path[4096];
} qe_named_dataset;

typedef struct qe_jobs_opts {
    const char *db;                  /* run database */
    int concurrency;                 /* jobs running at once (>= 1) */
    int batch;                       /* images per forward pass */
    int workers;                     /* image decoding threads per job */
    int threads;                     /* OpenMP team size (0: all cores) */
    int64_t max_pixels;              /* images declaring more pixels are refused */
    const qe_named_dataset *datasets;
    int ndatasets;
} qe_jobs_opts;

/* In-memory progress of a running job (the database has the counts; this adds the rate). */
typedef struct qe_job_progress {
    int64_t done, total;
    double images_per_second;        /* over this attempt */
    double eta_seconds;              /* -1 when unknown */
} qe_job_progress;

typedef struct qe_jobs qe_jobs;

/* Starts the runners; they claim jobs once every model has finished loading. opts is copied
 * (the datasets array must outlive the runners). */
qe_jobs *qe_jobs_start(const qe_jobs_opts *opts, qe_registry *reg, qe_metrics *metrics);
/* A job was queued: wake an idle runner. */
void qe_jobs_wake(qe_jobs *j);
/* Tells the runner of run_id (if any) to stop after its current batch; the caller has already
 * marked the run cancelled in the database. */
void qe_jobs_cancel(qe_jobs *j, int64_t run_id);
/* 1 and *p filled if run_id is running in this process, else 0. */
int qe_jobs_progress(qe_jobs *j, int64_t run_id, qe_job_progress *p);
/* Writes the jobs' Prometheus gauges (running jobs, their progress). */
void qe_jobs_write_metrics(qe_jobs *j, FILE *f);
/* Checkpoint and stop: running jobs stop after their current batch, left resumable; joins. */
void qe_jobs_stop(qe_jobs *j);

/* The path of dataset `name`, or NULL. */
const char *qe_jobs_dataset_path(const qe_named_dataset *ds, int n, const char *name);

/* A job request: {"model_config", "dataset", "limit"?, "calib"?: {"dataset"?, "per_class"?,
 * "images"?, "batch"?}}. Calibration fields not given are those of the resident model. */
typedef struct qe_job_request {
    char model_config[64];
    char dataset[64];
    long limit;                      /* 0: the whole dataset */
    int own_calib;                   /* calibration differs from the resident model's */
    qe_calib_spec calib;
} qe_job_request;

/* Parses and checks a request against the served models and datasets (the rules of the 400
 * answers); -1 with the reason in err. */
int qe_jobs_parse_request(const char *json_text, qe_registry *reg, const qe_named_dataset *ds, int nds,
                          qe_job_request *out, char *err);

#endif
