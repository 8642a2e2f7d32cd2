/*
 * jobs.c - job runners (jobs.h): claim, evaluate batch by batch under the compute lock, record,
 * and stop cleanly on cancel or shutdown.
 */
#include "jobs.h"

#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evaluate.h"

typedef struct runner {
    struct qe_jobs *j;
    pthread_t thread;
    /* the job in progress, guarded by j->mu */
    int64_t run_id;                  /* 0: idle */
    int cancel;
    char model[64];
    int64_t done, total, resumed_at;
    double t0;
} runner;

struct qe_jobs {
    qe_jobs_opts o;
    qe_registry *reg;
    qe_metrics *metrics;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    runner *r;
};

/* Why a job's evaluation pass ended early. */
enum { RUN_COMPLETE, RUN_CANCELLED, RUN_SHUTDOWN, RUN_FAILED };

typedef struct run_ctx {
    runner *r;
    qe_store *st;
    const char *model;
    int64_t id;
    int outcome;
    char err[QE_ERR_LEN];
} run_ctx;

const char *qe_jobs_dataset_path(const qe_named_dataset *ds, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(ds[i].name, name) == 0)
            return ds[i].path;
    return NULL;
}

/* ---- requests ------------------------------------------------------------------------------ */

/* An optional integer field in [min, max]; absent leaves *out unchanged. */
static int int_field(json_t *o, const char *key, long min, long max, long *out, char *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return qe_err(err, "field '%s' must be an integer in %ld..%ld", key, min, max);
    *out = (long)json_integer_value(v);
    return 0;
}

static int parse_calib(json_t *c, const qe_model_spec *resident, const qe_named_dataset *ds, int nds,
                       qe_job_request *req, char *err)
{
    if (!json_is_object(c))
        return qe_err(err, "field 'calib' must be an object {\"dataset\", \"per_class\", \"images\", \"batch\"}");
    const char *key;
    json_t *v;
    json_object_foreach(c, key, v)
        if (strcmp(key, "dataset") && strcmp(key, "per_class") && strcmp(key, "images") && strcmp(key, "batch"))
            return qe_err(err, "unknown field 'calib.%s'", key);
    qe_calib_spec *cs = &req->calib;
    *cs = resident->calib;
    json_t *name = json_object_get(c, "dataset");
    if (name) {
        const char *path = json_is_string(name) ? qe_jobs_dataset_path(ds, nds, json_string_value(name)) : NULL;
        if (!path)
            return qe_err(err, "field 'calib.dataset' must name a configured dataset");
        snprintf(cs->dataset, sizeof cs->dataset, "%s", json_string_value(name));
        snprintf(cs->path, sizeof cs->path, "%s", path);
    }
    long per_class = cs->per_class, batch = cs->batch;
    if (int_field(c, "per_class", 0, 100000000, &per_class, err) ||
        int_field(c, "images", 0, 100000000, &cs->images, err) || int_field(c, "batch", 1, 4096, &batch, err))
        return -1;
    cs->per_class = (int)per_class;
    cs->batch = (int)batch;
    req->own_calib = strcmp(cs->path, resident->calib.path) != 0 || cs->per_class != resident->calib.per_class ||
                     cs->images != resident->calib.images || cs->batch != resident->calib.batch;
    if (resident->encodings[0])
        req->own_calib = 1;
    return 0;
}

int qe_jobs_parse_request(const char *json_text, qe_registry *reg, const qe_named_dataset *ds, int nds,
                          qe_job_request *out, char *err)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *o = json_loads(json_text, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return qe_err(err, "bad JSON: %s (line %d)", je.text, je.line);
    int rc = -1;
    const char *key;
    json_t *v;
    if (!json_is_object(o)) {
        qe_err(err, "the request must be a JSON object");
        goto out;
    }
    json_object_foreach(o, key, v)
        if (strcmp(key, "model_config") && strcmp(key, "dataset") && strcmp(key, "limit") && strcmp(key, "calib")) {
            qe_err(err, "unknown field '%s'", key);
            goto out;
        }
    const char *model = json_string_value(json_object_get(o, "model_config"));
    const char *dataset = json_string_value(json_object_get(o, "dataset"));
    int i = model ? qe_registry_find(reg, model) : -1;
    if (!model || i < 0) {
        qe_err(err, "field 'model_config' must name a served model config");
        goto out;
    }
    if (!dataset || !qe_jobs_dataset_path(ds, nds, dataset)) {
        qe_err(err, "field 'dataset' must name a configured dataset");
        goto out;
    }
    snprintf(out->model_config, sizeof out->model_config, "%s", model);
    snprintf(out->dataset, sizeof out->dataset, "%s", dataset);
    if (int_field(o, "limit", 1, 100000000, &out->limit, err))
        goto out;
    json_t *calib = json_object_get(o, "calib");
    if (calib) {
        qe_modelcfg cfg;
        char e[QE_ERR_LEN];
        const qe_model_spec *spec = qe_registry_spec(reg, i);
        if (qe_modelcfg_get(spec->config, &cfg, e) == 0) {
            int quantized = cfg.quantized;
            qe_modelcfg_free(&cfg);
            if (!quantized) {
                qe_err(err, "field 'calib' applies to quantized model configs only");
                goto out;
            }
        }
        if (parse_calib(calib, spec, ds, nds, out, err))
            goto out;
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

/* ---- running ------------------------------------------------------------------------------- */

static void fail_run(qe_store *st, int64_t id, const char *msg)
{
    qe_store_finish fin = {.status = QE_RUN_FAILED, .images_per_second = NAN, .fp32_top1 = NAN, .fp32_top5 = NAN,
                           .agreement = NAN, .error = msg};
    char err[QE_ERR_LEN];
    if (qe_store_run_finish(st, id, &fin, err))
        fprintf(stderr, "quanteval serve: job %lld: %s\n", (long long)id, err);
    fprintf(stderr, "quanteval serve: job %lld failed: %s\n", (long long)id, msg);
}

static int on_batch(void *ctx, const qe_eval_batch *b, const qe_eval_counts *c)
{
    run_ctx *x = ctx;
    runner *r = x->r;
    qe_jobs *j = r->j;
    qe_store_pred preds[1024];
    /* Unreadable images are left out of the record (as `quanteval eval` does); each contiguous
     * stretch of readable ones is one add_batch with its own first index. */
    for (int i = 0; i < b->n;) {
        if (b->error[i][0]) {
            i++;
            continue;
        }
        int k = i, np = 0;
        for (; k < b->n && !b->error[k][0] && np < 1024; k++, np++) {
            preds[np].path = b->items[k].rel;
            preds[np].label = b->items[k].label;
            memcpy(preds[np].top5, b->top5[k], sizeof preds[np].top5);
        }
        if (qe_store_run_add_batch(x->st, x->id, (int64_t)(b->first + (size_t)i), (size_t)np, preds, x->err)) {
            qe_store_run run;
            int found = 0;
            char e[QE_ERR_LEN];
            if (qe_store_run_get(x->st, x->id, &run, &found, e) == 0 && found) {
                x->outcome = run.status == QE_RUN_CANCELLED ? RUN_CANCELLED : RUN_FAILED;
                qe_store_run_clear(&run);
            } else {
                x->outcome = RUN_FAILED;
            }
            return 1;
        }
        i = k;
    }
    if (j->metrics)
        qe_metrics_images(j->metrics, "job", x->model, b->n);
    pthread_mutex_lock(&j->mu);
    r->done = (int64_t)(b->first + (size_t)b->n);
    int stop = r->cancel ? RUN_CANCELLED : j->stop ? RUN_SHUTDOWN : RUN_COMPLETE;
    pthread_mutex_unlock(&j->mu);
    if (stop != RUN_COMPLETE) {
        x->outcome = stop;
        return 1;
    }
    /* Between batches, hand the cores to any classify batch waiting for them. */
    qe_registry_compute_end(j->reg);
    qe_registry_compute_begin(j->reg);
    return 0;
}

static void run_job(runner *r, qe_store *st, const qe_store_job *job)
{
    qe_jobs *j = r->j;
    int64_t id = job->run_id;
    char err[QE_ERR_LEN], warn[QE_ERR_LEN], source[320];
    qe_job_request req;
    if (qe_jobs_parse_request(job->params, j->reg, j->o.datasets, j->o.ndatasets, &req, err)) {
        fail_run(st, id, err);
        return;
    }
    int i = qe_registry_find(j->reg, req.model_config);
    qe_model_info info;
    qe_registry_info(j->reg, i, &info);
    if (info.state != QE_MODEL_READY) {
        snprintf(err, sizeof err, "model config %s is unavailable: %s", req.model_config, info.reason);
        fail_run(st, id, err);
        return;
    }
    qe_dataset ds;
    const char *path = qe_jobs_dataset_path(j->o.datasets, j->o.ndatasets, req.dataset);
    if (qe_dataset_open(path, NULL, &ds, err)) {
        fail_run(st, id, err);
        return;
    }
    qe_model *m = info.model, *own = NULL;
    if (req.own_calib) {
        qe_model_spec spec = *qe_registry_spec(j->reg, i);
        spec.calib = req.calib;
        spec.encodings[0] = 0;
        if (qe_registry_open_model(&spec, st, &own, source, warn, err)) {
            fail_run(st, id, err);
            qe_dataset_free(&ds);
            return;
        }
        m = own;
    }
    int64_t total = req.limit > 0 && (size_t)req.limit < ds.count ? req.limit : (int64_t)ds.count, next = 0;
    if (qe_store_run_start(st, id, total, err) || qe_store_run_next_index(st, id, &next, err)) {
        fail_run(st, id, err);
        goto out;
    }
    pthread_mutex_lock(&j->mu);
    r->run_id = id;
    r->cancel = 0;
    snprintf(r->model, sizeof r->model, "%s", req.model_config);
    r->done = r->resumed_at = next;
    r->total = total;
    r->t0 = qe_now();
    pthread_mutex_unlock(&j->mu);
    fprintf(stderr, "quanteval serve: job %lld: %s on %s, %s at image %lld of %lld\n", (long long)id, req.model_config,
            req.dataset, next ? "resuming" : "starting", (long long)next, (long long)total);
    run_ctx x = {.r = r, .st = st, .model = req.model_config, .id = id, .outcome = RUN_COMPLETE};
    qe_eval_counts c = {0};
    if (next < total) {
        qe_registry_compute_begin(j->reg);
        qe_evaluate(m, ds.items, (size_t)next, (size_t)(total - next), j->o.batch, j->o.workers,
                    j->o.max_pixels, 0, on_batch, &x, &c);
        qe_model_trim(m);
        qe_registry_compute_end(j->reg);
    }
    if (x.outcome == RUN_COMPLETE) {
        qe_store_finish fin = {.status = QE_RUN_DONE, .fp32_top1 = NAN, .fp32_top5 = NAN, .agreement = NAN,
                               .images_per_second = c.seconds > 0 ? (double)(c.images + c.failed) / c.seconds : NAN};
        if (qe_store_run_finish(st, id, &fin, err))
            fprintf(stderr, "quanteval serve: job %lld: %s\n", (long long)id, err);
        else
            fprintf(stderr, "quanteval serve: job %lld done\n", (long long)id);
    } else if (x.outcome == RUN_FAILED) {
        fail_run(st, id, x.err);
    } else {
        pthread_mutex_lock(&j->mu);
        int64_t done = r->done;
        pthread_mutex_unlock(&j->mu);
        fprintf(stderr, "quanteval serve: job %lld %s at image %lld of %lld\n", (long long)id,
                x.outcome == RUN_CANCELLED ? "cancelled" : "checkpointed (resumes on restart)", (long long)done,
                (long long)total);
    }
    pthread_mutex_lock(&j->mu);
    r->run_id = 0;
    pthread_mutex_unlock(&j->mu);
out:
    qe_model_close(own);
    qe_dataset_free(&ds);
}

/* Waits on the runners' condition for at most `seconds`; returns the stop flag. */
static int idle_wait(qe_jobs *j, double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)seconds;
    ts.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&j->mu);
    if (!j->stop)
        pthread_cond_timedwait(&j->cv, &j->mu, &ts);
    int stop = j->stop;
    pthread_mutex_unlock(&j->mu);
    return stop;
}

static void *runner_main(void *arg)
{
    runner *r = arg;
    qe_jobs *j = r->j;
    if (j->o.threads > 0)
        omp_set_num_threads(j->o.threads);
    char err[QE_ERR_LEN];
    qe_store *st;
    if (qe_store_open(j->o.db, &st, err)) {
        fprintf(stderr, "quanteval serve: job runner: %s (no jobs will run)\n", err);
        return NULL;
    }
    /* Jobs (also those recovered from a previous daemon) wait for the models to be loaded. */
    while (!qe_registry_loaded(j->reg))
        if (idle_wait(j, 0.2))
            goto out;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int stop = j->stop;
        pthread_mutex_unlock(&j->mu);
        if (stop)
            break;
        qe_store_job job;
        int found = 0;
        if (qe_store_job_claim(st, &job, &found, err))
            fprintf(stderr, "quanteval serve: job queue: %s\n", err);
        if (found) {
            run_job(r, st, &job);
            qe_store_job_clear(&job);
        } else if (idle_wait(j, 1.0)) {
            break;
        }
    }
out:
    qe_store_close(st);
    return NULL;
}

qe_jobs *qe_jobs_start(const qe_jobs_opts *opts, qe_registry *reg, qe_metrics *metrics)
{
    qe_jobs *j = qe_calloc(1, sizeof *j);
    j->o = *opts;
    if (j->o.concurrency < 1)
        j->o.concurrency = 1;
    j->reg = reg;
    j->metrics = metrics;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    j->r = qe_calloc((size_t)j->o.concurrency, sizeof *j->r);
    for (int i = 0; i < j->o.concurrency; i++) {
        j->r[i].j = j;
        if (pthread_create(&j->r[i].thread, NULL, runner_main, &j->r[i]) != 0) {
            fprintf(stderr, "quanteval serve: cannot start a job runner thread\n");
            abort();
        }
    }
    return j;
}

void qe_jobs_wake(qe_jobs *j)
{
    pthread_mutex_lock(&j->mu);
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

void qe_jobs_cancel(qe_jobs *j, int64_t run_id)
{
    pthread_mutex_lock(&j->mu);
    for (int i = 0; i < j->o.concurrency; i++)
        if (j->r[i].run_id == run_id)
            j->r[i].cancel = 1;
    pthread_mutex_unlock(&j->mu);
}

int qe_jobs_progress(qe_jobs *j, int64_t run_id, qe_job_progress *p)
{
    int found = 0;
    pthread_mutex_lock(&j->mu);
    for (int i = 0; i < j->o.concurrency && !found; i++) {
        runner *r = &j->r[i];
        if (r->run_id != run_id)
            continue;
        double dt = qe_now() - r->t0, n = (double)(r->done - r->resumed_at);
        p->done = r->done;
        p->total = r->total;
        p->images_per_second = dt > 0 && n > 0 ? n / dt : 0;
        p->eta_seconds = p->images_per_second > 0 ? (double)(r->total - r->done) / p->images_per_second : -1;
        found = 1;
    }
    pthread_mutex_unlock(&j->mu);
    return found;
}

void qe_jobs_write_metrics(qe_jobs *j, FILE *f)
{
    fputs("# HELP quanteval_jobs_running Evaluation jobs running now.\n# TYPE quanteval_jobs_running gauge\n", f);
    int running = 0;
    pthread_mutex_lock(&j->mu);
    for (int i = 0; i < j->o.concurrency; i++)
        running += j->r[i].run_id != 0;
    fprintf(f, "quanteval_jobs_running %d\n", running);
    fputs("# HELP quanteval_job_images_done Images done by a running job.\n# TYPE quanteval_job_images_done gauge\n"
          "# HELP quanteval_job_images_total Images a running job evaluates.\n# TYPE quanteval_job_images_total gauge\n",
          f);
    for (int i = 0; i < j->o.concurrency; i++) {
        runner *r = &j->r[i];
        if (!r->run_id)
            continue;
        fprintf(f, "quanteval_job_images_done{job=\"%lld\",model=\"", (long long)r->run_id);
        qe_metrics_label(f, r->model);
        fprintf(f, "\"} %lld\n", (long long)r->done);
        fprintf(f, "quanteval_job_images_total{job=\"%lld\",model=\"", (long long)r->run_id);
        qe_metrics_label(f, r->model);
        fprintf(f, "\"} %lld\n", (long long)r->total);
    }
    pthread_mutex_unlock(&j->mu);
}

void qe_jobs_stop(qe_jobs *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    j->stop = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    for (int i = 0; i < j->o.concurrency; i++)
        pthread_join(j->r[i].thread, NULL);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j->r);
    free(j);
}
