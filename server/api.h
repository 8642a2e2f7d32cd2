/*
 * api.h - the daemon's HTTP API (the README documents it endpoint by endpoint): the server
 * state the handlers share, and the handlers themselves.
 *
 *   api_models.c  health, models, classify (raw JPEG or multipart), TorchServe predictions,
 *                 metrics
 *   api_jobs.c    jobs (submit, list, progress, cancel) and runs (history, per class, CSV)
 *   api_web.c     the dashboard's page, script and style sheet (embedded web/ files)
 *   serve.c       the route table, the server state's lifetime and the database handle pool
 */
#ifndef QE_API_H
#define QE_API_H

#include <pthread.h>
#include <stdint.h>

#include "batcher.h"
#include "http.h"
#include "jobs.h"
#include "metrics.h"
#include "registry.h"
#include "store.h"

#define QE_SERVER_POOL 8

typedef struct qe_server {
    qe_registry *reg;
    qe_jobs *jobs;
    qe_metrics *metrics;
    const qe_named_dataset *datasets;
    int ndatasets;
    char token[256];                 /* "" when job submit/cancel are open */
    int64_t max_pixels;              /* larger images get 422 */
    char db[4096];
    double started_at;
    pthread_mutex_t mu;              /* guards batchers[] and the handle pool */
    qe_batcher **batchers;           /* per registry entry; NULL until ready and after shutdown */
    qe_store *pool[QE_SERVER_POOL];
    int npool;
} qe_server;

/* A database handle for the calling thread's request (opened when the pool is empty); give it
 * back with qe_server_store_put. NULL with err on failure. */
qe_store *qe_server_store_get(qe_server *s, char *err);
void qe_server_store_put(qe_server *s, qe_store *st);

/* Request observer for metrics (qe_http_observe_fn). */
void qe_api_observe(void *app, const char *route, const char *capture, int status, double seconds);

/* api_models.c */
void qe_api_ping(void *app, qe_http_req *r);
void qe_api_health_live(void *app, qe_http_req *r);
void qe_api_health_ready(void *app, qe_http_req *r);
void qe_api_models_list(void *app, qe_http_req *r);
void qe_api_model_get(void *app, qe_http_req *r);
void qe_api_classify(void *app, qe_http_req *r);
void qe_api_predictions(void *app, qe_http_req *r);
void qe_api_metrics(void *app, qe_http_req *r);

/* api_jobs.c */
void qe_api_jobs_submit(void *app, qe_http_req *r);
void qe_api_jobs_list(void *app, qe_http_req *r);
void qe_api_job_get(void *app, qe_http_req *r);
void qe_api_job_cancel(void *app, qe_http_req *r);
void qe_api_runs_list(void *app, qe_http_req *r);
void qe_api_run_get(void *app, qe_http_req *r);
void qe_api_run_predictions(void *app, qe_http_req *r);

/* api_web.c: GET /, /app.js and /style.css (the route's path picks the file). */
void qe_api_web(void *app, qe_http_req *r);

#endif
