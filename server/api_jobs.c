/*
 * api_jobs.c - evaluation jobs and the run history (README, HTTP daemon). A job's id is the id of the run it
 * records, so /v1/jobs/{id} and /v1/runs/{id} name the same evaluation.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "classes.h"

#define RUNS_PAGE_DEFAULT 50

/* ---- JSON of runs and jobs ----------------------------------------------------------------- */

static json_t *real_or_null(double v)
{
    return isnan(v) ? json_null() : json_real(v);
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *run_json(const qe_store_run *run)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(run->id));
    json_object_set_new(o, "model_config", str_or_null(run->model_config));
    json_object_set_new(o, "dataset", str_or_null(run->dataset_name));
    json_object_set_new(o, "source", str_or_null(run->source));
    json_object_set_new(o, "status", json_string(qe_store_status_name(run->status)));
    json_object_set_new(o, "created_at", real_or_null(run->created_at));
    json_object_set_new(o, "started_at", real_or_null(run->started_at));
    json_object_set_new(o, "finished_at", real_or_null(run->finished_at));
    json_object_set_new(o, "images_total", json_integer(run->images_total));
    json_object_set_new(o, "images", json_integer(run->images_done));
    json_object_set_new(o, "image_limit", run->image_limit ? json_integer(run->image_limit) : json_null());
    json_object_set_new(o, "correct1", json_integer(run->correct1));
    json_object_set_new(o, "correct5", json_integer(run->correct5));
    json_object_set_new(o, "top1", real_or_null(run->top1));
    json_object_set_new(o, "top5", real_or_null(run->top5));
    json_object_set_new(o, "images_per_second", real_or_null(run->images_per_second));
    json_object_set_new(o, "fp32_top1", real_or_null(run->fp32_top1));
    json_object_set_new(o, "fp32_top5", real_or_null(run->fp32_top5));
    json_object_set_new(o, "agreement", real_or_null(run->agreement));
    json_object_set_new(o, "build_id", str_or_null(run->build_id));
    json_object_set_new(o, "weights_sha256", str_or_null(run->weights_sha256));
    json_object_set_new(o, "encodings_sha256", str_or_null(run->encodings_sha256));
    json_object_set_new(o, "calib", str_or_null(run->calib));
    json_object_set_new(o, "synthetic", json_boolean(run->synthetic));
    json_object_set_new(o, "error", str_or_null(run->error));
    return o;
}

static json_t *job_json(qe_server *s, const qe_store_run *run, const qe_store_job *job)
{
    json_t *o = json_object();
    char loc[64];
    snprintf(loc, sizeof loc, "/v1/runs/%lld", (long long)run->id);
    json_object_set_new(o, "id", json_integer(run->id));
    json_object_set_new(o, "status", json_string(qe_store_status_name(run->status)));
    json_object_set_new(o, "model_config", str_or_null(run->model_config));
    json_object_set_new(o, "dataset", str_or_null(run->dataset_name));
    json_object_set_new(o, "done", json_integer(run->images_done));
    json_object_set_new(o, "total", json_integer(run->images_total));
    json_object_set_new(o, "top1", real_or_null(run->top1));
    json_object_set_new(o, "top5", real_or_null(run->top5));
    qe_job_progress p;
    if (run->status == QE_RUN_RUNNING && qe_jobs_progress(s->jobs, run->id, &p)) {
        json_object_set_new(o, "position", json_integer(p.done));
        json_object_set_new(o, "images_per_second", json_real(p.images_per_second));
        json_object_set_new(o, "eta_seconds", p.eta_seconds >= 0 ? json_real(p.eta_seconds) : json_null());
    } else {
        json_object_set_new(o, "images_per_second", real_or_null(run->images_per_second));
        json_object_set_new(o, "eta_seconds", run->status == QE_RUN_DONE ? json_real(0) : json_null());
    }
    json_object_set_new(o, "attempts", json_integer(job ? job->attempts : 0));
    json_object_set_new(o, "params", job && job->params ? json_loads(job->params, 0, NULL) : json_null());
    json_object_set_new(o, "created_at", real_or_null(run->created_at));
    json_object_set_new(o, "started_at", real_or_null(run->started_at));
    json_object_set_new(o, "finished_at", real_or_null(run->finished_at));
    json_object_set_new(o, "error", str_or_null(run->error));
    json_object_set_new(o, "run", json_string(loc));
    return o;
}

/* A positive id from a path segment; 0 if it is not one. */
static int64_t parse_id(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return errno || *end || end == s || v <= 0 ? 0 : (int64_t)v;
}

/* Optional integer query argument in [min, max]; replies 400 and returns -1 when malformed. */
static int query_int(qe_http_req *r, const char *name, long long min, long long max, long long *out)
{
    const char *v = qe_http_query(r, name);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || end == v || x < min || x > max) {
        qe_http_reply_error(r, 400, "query argument '%s' must be an integer in %lld..%lld", name, min, max);
        return -1;
    }
    *out = x;
    return 0;
}

/* Replies 401 (and returns 0) unless the request carries the configured token. */
static int authorized(qe_server *s, qe_http_req *r)
{
    if (!s->token[0] || qe_http_bearer_ok(r, s->token))
        return 1;
    qe_http_add_header(r, "WWW-Authenticate", "Bearer realm=\"quanteval\"");
    qe_http_reply_error(r, 401, qe_http_header(r, "Authorization") ? "wrong API token"
                                                                   : "missing API token (Authorization: Bearer <token>)");
    return 0;
}

static qe_store *store_or_reply(qe_server *s, qe_http_req *r)
{
    char err[QE_ERR_LEN];
    qe_store *st = qe_server_store_get(s, err);
    if (!st) {
        qe_http_add_header(r, "Retry-After", "1");
        qe_http_reply_error(r, 503, "run database unavailable: %s", err);
    }
    return st;
}

/* ---- jobs ---------------------------------------------------------------------------------- */

/* Describes the calibration a job's run uses, for its record. */
static void calib_desc(const qe_calib_spec *c, char *out, size_t len)
{
    snprintf(out, len, "tf_enhanced dataset=%s per_class=%d images=%ld batch=%d", c->dataset, c->per_class, c->images,
             c->batch);
}

void qe_api_jobs_submit(void *app, qe_http_req *r)
{
    qe_server *s = app;
    if (!authorized(s, r))
        return;
    char mt[128], err[QE_ERR_LEN];
    qe_http_media_type(r, mt, sizeof mt);
    /* curl -d labels its bodies as forms unless told otherwise: read them as JSON too. */
    if (mt[0] && strcmp(mt, "application/json") != 0 && strcmp(mt, "application/x-www-form-urlencoded") != 0) {
        qe_http_reply_error(r, 415, "unsupported media type '%s': send application/json", mt);
        return;
    }
    if (memchr(r->body, 0, r->body_len)) {
        qe_http_reply_error(r, 400, "bad JSON: NUL byte in the body");
        return;
    }
    char *text = qe_malloc(r->body_len + 1);
    memcpy(text, r->body, r->body_len);
    text[r->body_len] = 0;
    qe_job_request req;
    int rc = qe_jobs_parse_request(text, s->reg, s->datasets, s->ndatasets, &req, err);
    free(text);
    if (rc) {
        qe_http_reply_error(r, 400, "%s", err);
        return;
    }
    int i = qe_registry_find(s->reg, req.model_config);
    qe_model_info info;
    qe_registry_info(s->reg, i, &info);
    if (info.state == QE_MODEL_UNAVAILABLE) {
        qe_http_reply_error(r, 400, "model config %s is unavailable: %s", info.name, info.reason);
        return;
    }
    /* Store the request in its checked form: the runner re-reads it after a restart. */
    json_t *p = json_pack("{s:s,s:s}", "model_config", req.model_config, "dataset", req.dataset);
    if (req.limit)
        json_object_set_new(p, "limit", json_integer(req.limit));
    char calib[512] = "";
    const qe_model_spec *spec = qe_registry_spec(s->reg, i);
    if (req.own_calib) {
        /* Settings left to the model config's defaults stay out, as the request parser wants. */
        json_t *c = json_pack("{s:s}", "dataset", req.calib.dataset);
        if (req.calib.per_class >= 0)
            json_object_set_new(c, "per_class", json_integer(req.calib.per_class));
        if (req.calib.images > 0)
            json_object_set_new(c, "images", json_integer(req.calib.images));
        if (req.calib.batch > 0)
            json_object_set_new(c, "batch", json_integer(req.calib.batch));
        json_object_set_new(p, "calib", c);
        calib_desc(&req.calib, calib, sizeof calib);
    } else if (info.model && info.model->qsim) {
        snprintf(calib, sizeof calib, "%s", info.encodings_source);
    } else if (!info.model && spec->calib.dataset[0]) {
        calib_desc(&spec->calib, calib, sizeof calib);
    }
    char *params = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    qe_store *st = store_or_reply(s, r);
    if (!st) {
        free(params);
        return;
    }
    qe_model *m = info.model;
    qe_store_run_info ri = {.model_config = req.model_config, .dataset_name = req.dataset,
                            .dataset_path = qe_jobs_dataset_path(s->datasets, s->ndatasets, req.dataset),
                            .source = "server", .image_limit = req.limit, .build_id = QE_BUILD_ID,
                            .weights_sha256 = m && m->weights_sha256[0] ? m->weights_sha256 : NULL,
                            .encodings_sha256 = m && m->encodings_sha256[0] && !req.own_calib ? m->encodings_sha256 : NULL,
                            .calib = calib[0] ? calib : NULL, .synthetic = m ? m->synthetic : 0};
    int64_t id;
    qe_store_run run;
    int found = 0;
    qe_store_job job = {0};
    if (qe_store_job_submit(st, &ri, params, &id, err) || qe_store_run_get(st, id, &run, &found, err) ||
        qe_store_job_get(st, id, &job, &found, err)) {
        qe_http_reply_error(r, 500, "cannot queue the job: %s", err);
    } else {
        qe_jobs_wake(s->jobs);
        char loc[64];
        snprintf(loc, sizeof loc, "/v1/jobs/%lld", (long long)id);
        qe_http_add_header(r, "Location", loc);
        qe_http_reply_json(r, 202, job_json(s, &run, &job));
        qe_store_run_clear(&run);
        qe_store_job_clear(&job);
    }
    free(params);
    qe_server_store_put(s, st);
}

void qe_api_jobs_list(void *app, qe_http_req *r)
{
    qe_server *s = app;
    long long limit = RUNS_PAGE_DEFAULT, before = 0;
    if (query_int(r, "limit", 1, QE_STORE_LIST_MAX, &limit) || query_int(r, "before", 0, INT64_MAX, &before))
        return;
    qe_store *st = store_or_reply(s, r);
    if (!st)
        return;
    char err[QE_ERR_LEN];
    qe_store_run *runs;
    size_t n;
    if (qe_store_runs_list(st, NULL, (int)limit, before, &runs, &n, err)) {
        qe_http_reply_error(r, 500, "%s", err);
        qe_server_store_put(s, st);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        qe_store_job job;
        int found = 0;
        if (qe_store_job_get(st, runs[i].id, &job, &found, err) == 0 && found) {
            json_array_append_new(a, job_json(s, &runs[i], &job));
            qe_store_job_clear(&job);
        }
    }
    json_t *next = n == (size_t)limit ? json_integer(runs[n - 1].id) : json_null();
    qe_store_runs_free(runs, n);
    qe_server_store_put(s, st);
    qe_http_reply_json(r, 200, json_pack("{s:o,s:o}", "jobs", a, "next_before", next));
}

/* Reads the run and job of /v1/jobs/{id}; replies 404 (returns -1) if there is no such job, 500
 * if the store cannot be read. */
static int load_job(qe_server *s, qe_http_req *r, qe_store *st, qe_store_run *run, qe_store_job *job)
{
    int64_t id = parse_id(r->captures[0]);
    char err[QE_ERR_LEN];
    int found = 0, jfound = 0;
    /* A store that cannot be read is the server's fault (500); a missing job the client's (404). */
    if (id && qe_store_run_get(st, id, run, &found, err) != 0) {
        qe_http_reply_error(r, 500, "cannot read job %lld: %s", (long long)id, err);
        return -1;
    }
    if (found && qe_store_job_get(st, id, job, &jfound, err) != 0) {
        qe_store_run_clear(run);
        qe_http_reply_error(r, 500, "cannot read job %lld: %s", (long long)id, err);
        return -1;
    }
    if (!found || !jfound) {
        if (found)
            qe_store_run_clear(run);
        qe_http_reply_error(r, 404, "no job '%s'", r->captures[0]);
        return -1;
    }
    return 0;
}

void qe_api_job_get(void *app, qe_http_req *r)
{
    qe_server *s = app;
    qe_store *st = store_or_reply(s, r);
    if (!st)
        return;
    qe_store_run run;
    qe_store_job job;
    if (load_job(s, r, st, &run, &job) == 0) {
        qe_http_reply_json(r, 200, job_json(s, &run, &job));
        qe_store_run_clear(&run);
        qe_store_job_clear(&job);
    }
    qe_server_store_put(s, st);
}

void qe_api_job_cancel(void *app, qe_http_req *r)
{
    qe_server *s = app;
    if (!authorized(s, r))
        return;
    qe_store *st = store_or_reply(s, r);
    if (!st)
        return;
    qe_store_run run;
    qe_store_job job;
    char err[QE_ERR_LEN];
    if (load_job(s, r, st, &run, &job) == 0) {
        int64_t id = run.id;
        int cancelled = 0, found = 0;
        qe_store_run_clear(&run);
        if (qe_store_run_cancel(st, id, &cancelled, err) || qe_store_run_get(st, id, &run, &found, err) || !found) {
            qe_http_reply_error(r, 500, "cannot cancel job %lld: %s", (long long)id, found ? err : "run vanished");
        } else {
            qe_jobs_cancel(s->jobs, id);
            json_t *o = job_json(s, &run, &job);
            json_object_set_new(o, "cancelled", json_boolean(cancelled));
            qe_http_reply_json(r, 200, o);
            qe_store_run_clear(&run);
        }
        qe_store_job_clear(&job);
    }
    qe_server_store_put(s, st);
}

/* ---- runs ---------------------------------------------------------------------------------- */

void qe_api_runs_list(void *app, qe_http_req *r)
{
    qe_server *s = app;
    long long limit = RUNS_PAGE_DEFAULT, before = 0;
    if (query_int(r, "limit", 1, QE_STORE_LIST_MAX, &limit) || query_int(r, "before", 0, INT64_MAX, &before))
        return;
    const char *model = qe_http_query(r, "model_config");
    if (model && !model[0])
        model = NULL;
    qe_store *st = store_or_reply(s, r);
    if (!st)
        return;
    char err[QE_ERR_LEN];
    qe_store_run *runs;
    size_t n;
    if (qe_store_runs_list(st, model, (int)limit, before, &runs, &n, err)) {
        qe_http_reply_error(r, 500, "%s", err);
    } else {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, run_json(&runs[i]));
        json_t *next = n == (size_t)limit ? json_integer(runs[n - 1].id) : json_null();
        qe_store_runs_free(runs, n);
        qe_http_reply_json(r, 200, json_pack("{s:o,s:o}", "runs", a, "next_before", next));
    }
    qe_server_store_put(s, st);
}

static int class_row(void *ctx, const qe_store_class *c)
{
    json_t *a = ctx;
    int known = c->label >= 0 && c->label < QE_NUM_CLASSES;
    char name[128] = "";
    const char *wnid = known ? qe_classes()[c->label].wnid : "";
    if (known)
        qe_classes_short_label((int)c->label, name, sizeof name);
    json_array_append_new(a, json_pack("{s:i,s:s,s:s,s:I,s:I,s:I}", "label", (int)c->label, "wnid", wnid, "name", name,
                                       "total", (json_int_t)c->total, "correct1", (json_int_t)c->correct1, "correct5",
                                       (json_int_t)c->correct5));
    return 0;
}

/* Reads /v1/runs/{id}; replies 404 (returns -1) if there is no such run, 500 if the store cannot
 * be read. */
static int load_run(qe_http_req *r, qe_store *st, qe_store_run *run)
{
    int64_t id = parse_id(r->captures[0]);
    int found = 0;
    char err[QE_ERR_LEN];
    if (id && qe_store_run_get(st, id, run, &found, err) != 0) {
        qe_http_reply_error(r, 500, "cannot read run %lld: %s", (long long)id, err);
        return -1;
    }
    if (!found) {
        qe_http_reply_error(r, 404, "no run '%s'", r->captures[0]);
        return -1;
    }
    return 0;
}

void qe_api_run_get(void *app, qe_http_req *r)
{
    qe_server *s = app;
    qe_store *st = store_or_reply(s, r);
    if (!st)
        return;
    qe_store_run run;
    char err[QE_ERR_LEN];
    if (load_run(r, st, &run) == 0) {
        json_t *o = run_json(&run), *classes = json_array();
        if (qe_store_run_classes(st, run.id, class_row, classes, err)) {
            json_decref(o);
            json_decref(classes);
            qe_http_reply_error(r, 500, "%s", err);
        } else {
            json_object_set_new(o, "per_class", classes);
            qe_http_reply_json(r, 200, o);
        }
        qe_store_run_clear(&run);
    }
    qe_server_store_put(s, st);
}

/* Writes a CSV field, quoted when it holds a comma, quote or line break (RFC 4180). */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int pred_row(void *ctx, int64_t idx, const qe_store_pred *p)
{
    FILE *f = ctx;
    fprintf(f, "%lld,", (long long)idx);
    csv_field(f, p->path);
    fprintf(f, ",%d,%d,%d,%d,%d,%d\n", p->label, p->top5[0], p->top5[1], p->top5[2], p->top5[3], p->top5[4]);
    return 0;
}

void qe_api_run_predictions(void *app, qe_http_req *r)
{
    qe_server *s = app;
    qe_store *st = store_or_reply(s, r);
    if (!st)
        return;
    qe_store_run run;
    char err[QE_ERR_LEN];
    if (load_run(r, st, &run) == 0) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f) {
            qe_http_reply_error(r, 500, "out of memory");
        } else {
            fputs("index,path,label,pred1,pred2,pred3,pred4,pred5\n", f);
            int rc = qe_store_run_predictions(st, run.id, pred_row, f, err);
            fclose(f);
            if (rc)
                qe_http_reply_error(r, 500, "%s", err);
            else
                qe_http_reply(r, 200, "text/csv; charset=utf-8", text, len);
            free(text);
        }
        qe_store_run_clear(&run);
    }
    qe_server_store_put(s, st);
}
