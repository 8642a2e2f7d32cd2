/*
 * store.h - the run history of quanteval: one SQLite database that holds every evaluation run
 * (from `quanteval eval` or the daemon), its per-class counts and per-image predictions, the
 * daemon's job queue, and a cache of calibration encodings.
 *
 * Crash safety. Every call that changes the database is one transaction, so a process killed at
 * any instant (kill -9) leaves the database as it was after the last call that returned. A
 * job is resumed by asking qe_store_run_next_index() where to continue; re-submitting a batch
 * that was in flight is harmless because qe_store_run_add_batch() counts an image only the first
 * time its index is recorded. The final counters of a resumed run therefore equal those of an
 * uninterrupted one.
 *
 * Threads and processes. A qe_store is one SQLite connection and must be used by one thread at
 * a time: give every thread its own handle (opening is cheap once the schema exists). Any number
 * of handles in any number of threads and processes may share one database file: it runs in WAL
 * mode, so readers never wait for the writer, and writers queue behind each other for up to
 * QE_STORE_BUSY_MS instead of failing with SQLITE_BUSY. Never use a handle across fork(); the
 * child opens its own. Each run has one writer at a time (the CLI process or the daemon worker
 * that owns it); the cancel call is the only other writer of a live run.
 *
 * Errors follow engine/qe_util.h: 0 on success, -1 with one line in err (which may be NULL).
 * Strings passed in are copied; strings handed out are owned by the structure they sit in.
 * Timestamps are wall-clock unix seconds. Missing real values read back as NAN, missing strings
 * as NULL. Accuracies are fractions in [0, 1], not percentages.
 */
#ifndef QE_STORE_H
#define QE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "qe_util.h"

/* Schema version this build writes (PRAGMA user_version). Older databases are migrated forward
 * on open; newer ones are refused, since an older build cannot know what their columns mean. */
#define QE_STORE_SCHEMA_VERSION 3
/* How long a writer waits for another writer's transaction before giving up. */
#define QE_STORE_BUSY_MS 5000
/* Most runs one qe_store_runs_list() call returns; larger limits are clamped to it. */
#define QE_STORE_LIST_MAX 500

typedef struct qe_store qe_store;

typedef enum qe_run_status {
    QE_RUN_QUEUED,
    QE_RUN_RUNNING,
    QE_RUN_DONE,
    QE_RUN_FAILED,
    QE_RUN_CANCELLED
} qe_run_status;

/* "queued", "running", "done", "failed", "cancelled" (the words stored in the database). */
const char *qe_store_status_name(qe_run_status status);
/* Inverse of qe_store_status_name; -1 for an unknown word. */
int qe_store_status_parse(const char *name, qe_run_status *status);

/* ---- opening ------------------------------------------------------------------------------ */

/* Opens the database at path, creating the file (not its directory) if missing, and migrates its
 * schema to QE_STORE_SCHEMA_VERSION in one transaction. Refuses a database of a newer schema
 * version and an SQLite file that is not a quanteval database (left untouched in both cases).
 * On success *out is a handle to release with qe_store_close. */
int qe_store_open(const char *path, qe_store **out, char *err);
/* Finalizes cached statements and closes the connection. NULL is allowed. */
void qe_store_close(qe_store *s);

/* ---- model configs ------------------------------------------------------------------------ */

typedef struct qe_store_config {
    const char *name;        /* e.g. "resnet50_w8a8" */
    const char *arch;        /* "resnet18" / "resnet50", NULL if never described */
    const char *precision;   /* "fp32", "w8a8", ... NULL if never described */
    const char *description; /* a JSON document, NULL if never described */
} qe_store_config;

/* Inserts or replaces the description of a model config. description must be valid JSON or
 * NULL. Runs may name a config before it is described (qe_store_run_create adds a bare row). */
int qe_store_config_put(qe_store *s, const qe_store_config *cfg, char *err);
/* Calls fn for every config in name order; the strings live until fn returns. fn returns 0 to
 * continue; anything else stops the walk, which then fails with "stopped by callback". */
typedef int (*qe_store_config_fn)(void *ctx, const qe_store_config *cfg);
int qe_store_configs_each(qe_store *s, qe_store_config_fn fn, void *ctx, char *err);

/* ---- runs --------------------------------------------------------------------------------- */

/* What is known about a run when it is created. */
typedef struct qe_store_run_info {
    const char *model_config;     /* required */
    const char *dataset_name;     /* required, e.g. "dev" or "imagenet-val" */
    const char *dataset_path;     /* required, as the user gave it */
    const char *source;           /* "cli" or "server" */
    int64_t images_total;         /* 0 when not known yet (qe_store_run_start can set it) */
    int64_t image_limit;          /* --limit of the run, 0 for the whole dataset */
    const char *build_id;         /* optional: build that ran it (git revision) */
    const char *weights_sha256;   /* optional: 64 lowercase hex digits */
    const char *encodings_sha256; /* optional: 64 lowercase hex digits, quantized configs */
    const char *calib;            /* optional: calibration settings, e.g. "tf_enhanced,n=500" */
    int synthetic;                /* 1 if the weights are the synthetic test checkpoints */
} qe_store_run_info;

/* A run as read back. Release the strings with qe_store_run_clear. */
typedef struct qe_store_run {
    int64_t id;
    char *model_config, *dataset_name, *dataset_path, *source;
    qe_run_status status;
    double created_at, started_at, finished_at; /* NAN until reached */
    int64_t images_total, images_done, correct1, correct5, image_limit;
    double top1, top5;                       /* correct / images_done; NAN before the first image */
    double images_per_second;                /* NAN until finished with a measured rate */
    double fp32_top1, fp32_top5, agreement;  /* NAN unless compared against the FP32 model */
    char *build_id, *weights_sha256, *encodings_sha256, *calib, *error; /* NULL if absent */
    int synthetic;
} qe_store_run;

/* One evaluated image. Its index is implied by its position in a batch. */
typedef struct qe_store_pred {
    const char *path; /* image path as the evaluator saw it, required */
    int32_t label;    /* ground-truth class, >= 0 */
    int32_t top5[5];  /* predicted classes, best first */
} qe_store_pred;

/* Per-class counts of a run. */
typedef struct qe_store_class {
    int32_t label;
    int64_t total, correct1, correct5;
} qe_store_class;

/* How a run ended. */
typedef struct qe_store_finish {
    qe_run_status status;                   /* QE_RUN_DONE, QE_RUN_FAILED or QE_RUN_CANCELLED */
    double images_per_second;               /* NAN if not measured */
    double fp32_top1, fp32_top5, agreement; /* NAN if not compared */
    const char *error;                      /* required for QE_RUN_FAILED, else optional */
} qe_store_finish;

/* Records a new run in status queued (also registering info->model_config as a bare config
 * if unknown) and returns its id; ids only grow, so newer runs have larger ids. */
int qe_store_run_create(qe_store *s, const qe_store_run_info *info, int64_t *id, char *err);
/* Moves a queued run to running, or confirms a running one (a resumed job), stamping
 * started_at the first time. images_total >= 0 replaces the stored total, -1 keeps it.
 * Fails for a missing or finished run. */
int qe_store_run_start(qe_store *s, int64_t id, int64_t images_total, char *err);
/* Records preds[0..n) as images first_idx .. first_idx+n-1 of a running run, in one
 * transaction: inserts the predictions, adds them to the per-class rows and to the run's
 * counters and top1/top5. An index already recorded is skipped (not counted again) provided it
 * holds the same prediction; a different one fails the whole batch, as it means the evaluation is
 * not deterministic. Fails, recording nothing, if the run is not running (e.g. cancelled) or an
 * index reaches a known images_total. */
int qe_store_run_add_batch(qe_store *s, int64_t id, int64_t first_idx, size_t n,
                           const qe_store_pred *preds, char *err);
/* The smallest index not yet recorded for the run: where a resumed job continues. Batches
 * recorded in order make this the number of images done. */
int qe_store_run_next_index(qe_store *s, int64_t id, int64_t *next, char *err);
/* Ends a queued or running run with fin->status and its figures. Fails for a missing run or
 * one that already ended (a cancelled run stays cancelled). */
int qe_store_run_finish(qe_store *s, int64_t id, const qe_store_finish *fin, char *err);
/* Cancels a queued or running run; its worker notices when its next add_batch fails.
 * *cancelled is 1 if the run was live, 0 if it had already ended. Fails for a missing run. */
int qe_store_run_cancel(qe_store *s, int64_t id, int *cancelled, char *err);

/* Reads one run into *run (*found = 1), or sets *found = 0 if there is none with that id. */
int qe_store_run_get(qe_store *s, int64_t id, qe_store_run *run, int *found, char *err);
void qe_store_run_clear(qe_store_run *run);
/* Newest-first page of runs: at most limit (1 .. QE_STORE_LIST_MAX, larger is clamped) runs with
 * id < before_id (before_id <= 0: from the newest), only those of model_config unless it is NULL.
 * The next page starts before the last id returned. Free with qe_store_runs_free. */
int qe_store_runs_list(qe_store *s, const char *model_config, int limit, int64_t before_id,
                       qe_store_run **runs, size_t *n, char *err);
void qe_store_runs_free(qe_store_run *runs, size_t n);
/* Ids of the runs still queued or running, oldest first (free() the array). */
int qe_store_runs_unfinished(qe_store *s, int64_t **ids, size_t *n, char *err);

/* Walk a run's per-class rows in label order / its predictions in index order. The pointers
 * passed to fn live until it returns; fn may call other read functions on the same handle. fn
 * returns 0 to continue; anything else stops the walk, which then fails with
 * "stopped by callback". */
typedef int (*qe_store_class_fn)(void *ctx, const qe_store_class *c);
typedef int (*qe_store_pred_fn)(void *ctx, int64_t idx, const qe_store_pred *p);
int qe_store_run_classes(qe_store *s, int64_t id, qe_store_class_fn fn, void *ctx, char *err);
int qe_store_run_predictions(qe_store *s, int64_t id, qe_store_pred_fn fn, void *ctx, char *err);

/* ---- daemon jobs -------------------------------------------------------------------------- */

/* A dataset-evaluation job of the daemon: a run with source "server" plus the request it came
 * from, kept so that a restarted daemon can rebuild the job. */
typedef struct qe_store_job {
    int64_t run_id;
    char *params;    /* the request as JSON */
    int attempts;    /* times a worker claimed it; > 1 means it was resumed */
} qe_store_job;

/* Creates a queued run (info->source is ignored, "server" is stored) and its job in one
 * transaction. params must be valid JSON of at most 64 KiB. */
int qe_store_job_submit(qe_store *s, const qe_store_run_info *info, const char *params,
                        int64_t *run_id, char *err);
/* Takes the oldest queued job, marks its run running and counts the attempt. *found = 0 when the
 * queue is empty. Release *job with qe_store_job_clear. Safe against concurrent claimers: each
 * job is handed to one of them. */
int qe_store_job_claim(qe_store *s, qe_store_job *job, int *found, char *err);
/* Reads the job of a run; *found = 0 if the run has none (e.g. it came from the CLI). */
int qe_store_job_get(qe_store *s, int64_t run_id, qe_store_job *job, int *found, char *err);
void qe_store_job_clear(qe_store_job *job);
/* Daemon start-up: puts every job left running by a previous daemon process back in the queue,
 * so the normal claim loop resumes it (*requeued = how many). Assumes one daemon per database. */
int qe_store_jobs_recover(qe_store *s, int *requeued, char *err);

/* ---- blob cache --------------------------------------------------------------------------- */

/* Calibration encodings depend on the weights, the model config and the calibration settings;
 * a computed blob is reused whenever all three match. */
typedef struct qe_store_cache_key {
    const char *weights_sha256; /* 64 lowercase hex digits */
    const char *model_config;
    const char *calib;          /* settings string, "" allowed */
} qe_store_cache_key;

/* Stores (or replaces) the blob for key. */
int qe_store_cache_put(qe_store *s, const qe_store_cache_key *key, const void *data, size_t len,
                       char *err);
/* *found = 1 and a malloc'd copy in *data (free() it, NUL-terminated beyond len for text) if the
 * key is cached; *found = 0 and *data = NULL otherwise. */
int qe_store_cache_get(qe_store *s, const qe_store_cache_key *key, uint8_t **data, size_t *len,
                       int *found, char *err);

#endif
