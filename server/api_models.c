/*
 * api_models.c - health, models, classify and metrics (README, HTTP daemon).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "classes.h"
#include "image.h"

static const char *state_name(qe_model_state st)
{
    return st == QE_MODEL_READY ? "ready" : st == QE_MODEL_LOADING ? "loading" : "unavailable";
}

void qe_api_observe(void *app, const char *route, const char *capture, int status, double seconds)
{
    qe_server *s = app;
    /* Only configured model names become label values (bounded series). */
    int about_model = strcmp(route, "classify") == 0 || strcmp(route, "predictions") == 0 || strcmp(route, "model") == 0;
    const char *model = about_model && capture && qe_registry_find(s->reg, capture) >= 0 ? capture : "";
    qe_metrics_request(s->metrics, route, model, status, seconds);
}

void qe_api_ping(void *app, qe_http_req *r)
{
    qe_http_reply_json(r, 200, json_pack("{s:s}", "status", "Healthy"));
}

void qe_api_health_live(void *app, qe_http_req *r)
{
    qe_http_reply_json(r, 200, json_pack("{s:b}", "live", 1));
}

void qe_api_health_ready(void *app, qe_http_req *r)
{
    qe_server *s = app;
    int n = qe_registry_count(s->reg), ready = 0, loading = 0;
    for (int i = 0; i < n; i++) {
        qe_model_info info;
        qe_registry_info(s->reg, i, &info);
        ready += info.state == QE_MODEL_READY;
        loading += info.state == QE_MODEL_LOADING;
    }
    if (!qe_registry_loaded(s->reg)) {
        qe_http_add_header(r, "Retry-After", "5");
        qe_http_reply_error(r, 503, "not ready: %d of %d models loaded, %d loading", ready, n, loading);
        return;
    }
    qe_http_reply_json(r, 200, json_pack("{s:b,s:i,s:i}", "ready", 1, "models_ready", ready, "models", n));
}

/* ---- models -------------------------------------------------------------------------------- */

static json_t *real_or_null(double v)
{
    return v > 0 ? json_real(v) : json_null();
}

static json_t *model_json(qe_server *s, int i)
{
    qe_model_info info;
    qe_registry_info(s->reg, i, &info);
    json_t *o = json_pack("{s:s,s:s}", "model_config", info.name, "status", state_name(info.state));
    qe_modelcfg cfg;
    char err[QE_ERR_LEN];
    const qe_modelcfg *c = info.model ? &info.model->cfg : NULL;
    if (!c && qe_modelcfg_get(qe_registry_spec(s->reg, i)->config, &cfg, err) == 0)
        c = &cfg;
    if (c) {
        json_object_set_new(o, "architecture", json_string(qe_resnet_desc_get(c->arch)->name));
        json_object_set_new(o, "precision", json_string(c->precision));
        json_object_set_new(o, "quantized", json_boolean(c->quantized));
        json_object_set_new(o, "param_bw", c->quantized ? json_integer(c->param_bw) : json_null());
        json_object_set_new(o, "act_bw", c->quantized ? json_integer(c->act_bw) : json_null());
        json_object_set_new(o, "description", json_string(c->description));
        json_object_set_new(o, "reference_top1", real_or_null(c->ref_top1));
        json_object_set_new(o, "reference_fp32_top1", real_or_null(c->ref_fp32_top1));
    }
    if (info.state == QE_MODEL_UNAVAILABLE)
        json_object_set_new(o, "reason", json_string(info.reason));
    qe_model *m = info.model;
    if (m) {
        json_object_set_new(o, "weights", json_string(m->weights_desc));
        json_object_set_new(o, "synthetic", json_boolean(m->synthetic));
        json_object_set_new(o, "weights_sha256", m->weights_sha256[0] ? json_string(m->weights_sha256) : json_null());
        json_object_set_new(o, "encodings_source", m->qsim ? json_string(info.encodings_source) : json_null());
        json_object_set_new(o, "encodings_sha256", m->encodings_sha256[0] ? json_string(m->encodings_sha256) : json_null());
        json_object_set_new(o, "memory_bytes", json_integer((json_int_t)qe_model_bytes(m)));
        json_object_set_new(o, "load_seconds", json_real(m->load_seconds));
        if (info.reason[0])
            json_object_set_new(o, "warning", json_string(info.reason));
        pthread_mutex_lock(&s->mu);
        int depth = s->batchers[i] ? qe_batcher_depth(s->batchers[i]) : 0;
        pthread_mutex_unlock(&s->mu);
        json_object_set_new(o, "queue_depth", json_integer(depth));
    }
    if (c == &cfg)
        qe_modelcfg_free(&cfg);
    return o;
}

void qe_api_models_list(void *app, qe_http_req *r)
{
    qe_server *s = app;
    json_t *a = json_array();
    for (int i = 0; i < qe_registry_count(s->reg); i++)
        json_array_append_new(a, model_json(s, i));
    qe_http_reply_json(r, 200, json_pack("{s:o}", "models", a));
}

void qe_api_model_get(void *app, qe_http_req *r)
{
    qe_server *s = app;
    int i = qe_registry_find(s->reg, r->captures[0]);
    if (i < 0) {
        qe_http_reply_error(r, 404, "unknown model config '%s' (GET /v1/models lists them)", r->captures[0]);
        return;
    }
    qe_http_reply_json(r, 200, model_json(s, i));
}

/* ---- classify ------------------------------------------------------------------------------ */

typedef struct classify_state {
    qe_server *s;
    qe_http_req *r;
    int model, torchserve;
    int rejected;                    /* 1: the queue is full, 2: no batcher (starting or stopping) */
    double t0;
    uint8_t *crop;
    qe_batch_item item;
} classify_state;

static void classify_free(void *p)
{
    classify_state *c = p;
    free(c->crop);
    free(c);
}

static void classify_done(qe_batch_item *it)
{
    classify_state *c = it->ctx;
    qe_http_resume(c->r);
}

static void classify_resume(void *app, qe_http_req *r)
{
    classify_state *c = r->state;
    if (c->rejected || c->item.failed) {
        qe_http_add_header(r, "Retry-After", "1");
        if (c->rejected == 1)
            qe_http_reply_error(r, 503, "overloaded: the classify queue of %s is full, retry later", r->captures[0]);
        else
            qe_http_reply_error(r, 503, "%s is not serving (starting or shutting down)", r->captures[0]);
        return;
    }
    qe_model_info info;
    qe_registry_info(c->s->reg, c->model, &info);
    char label[128];
    json_t *o;
    if (c->torchserve) {
        /* TorchServe's image classifier answers {label: probability} for the top-5. */
        o = json_object();
        for (int k = 0; k < 5; k++) {
            qe_classes_short_label(c->item.top5[k], label, sizeof label);
            json_object_set_new(o, label, json_real(c->item.prob[k]));
        }
    } else {
        json_t *top = json_array();
        for (int k = 0; k < 5; k++) {
            int idx = c->item.top5[k];
            json_array_append_new(top, json_pack("{s:i,s:s,s:s,s:f}", "index", idx, "wnid", qe_classes()[idx].wnid, "label",
                                                 qe_classes_short_label(idx, label, sizeof label), "probability",
                                                 c->item.prob[k]));
        }
        o = json_pack("{s:s,s:b,s:o,s:f,s:i}", "model_config", info.name, "synthetic", info.model->synthetic, "top5", top,
                      "latency_ms", (qe_now() - c->t0) * 1e3, "batch_size", c->item.batch_size);
    }
    qe_http_reply_json(r, 200, o);
}

/* The image bytes of a classify request: a raw JPEG body, or the multipart field "image" (or
 * "data", TorchServe's name). Replies and returns -1 when there is none. */
static int request_image(qe_http_req *r, const uint8_t **img, size_t *len)
{
    char mt[128], pt[128], err[QE_ERR_LEN];
    qe_http_media_type(r, mt, sizeof mt);
    if (strcmp(mt, "image/jpeg") == 0 || strcmp(mt, "image/jpg") == 0 || strcmp(mt, "application/octet-stream") == 0) {
        *img = r->body;
        *len = r->body_len;
    } else if (strcmp(mt, "multipart/form-data") == 0) {
        if (qe_http_multipart_field(r, "image", img, len, pt, sizeof pt, err) &&
            qe_http_multipart_field(r, "data", img, len, pt, sizeof pt, NULL)) {
            qe_http_reply_error(r, 400, "%s", err);
            return -1;
        }
        if (pt[0] && strcmp(pt, "image/jpeg") && strcmp(pt, "image/jpg") && strcmp(pt, "application/octet-stream")) {
            qe_http_reply_error(r, 415, "unsupported image type '%s': only JPEG images are classified", pt);
            return -1;
        }
    } else {
        qe_http_reply_error(r, 415,
                            "unsupported media type '%s': send image/jpeg or multipart/form-data with a field 'image'", mt);
        return -1;
    }
    if (*len == 0) {
        qe_http_reply_error(r, 400, "empty image");
        return -1;
    }
    return 0;
}

static void classify(qe_server *s, qe_http_req *r, int torchserve)
{
    int i = qe_registry_find(s->reg, r->captures[0]);
    if (i < 0) {
        qe_http_reply_error(r, 404, "unknown model config '%s' (GET /v1/models lists them)", r->captures[0]);
        return;
    }
    qe_model_info info;
    qe_registry_info(s->reg, i, &info);
    if (info.state != QE_MODEL_READY) {
        qe_http_add_header(r, "Retry-After", "5");
        if (info.state == QE_MODEL_LOADING)
            qe_http_reply_error(r, 503, "model %s is still loading", info.name);
        else
            qe_http_reply_error(r, 503, "model %s is unavailable: %s", info.name, info.reason);
        return;
    }
    const uint8_t *img;
    size_t len;
    if (request_image(r, &img, &len))
        return;
    classify_state *c = qe_calloc(1, sizeof *c);
    c->s = s;
    c->r = r;
    c->model = i;
    c->torchserve = torchserve;
    c->t0 = qe_now();
    r->state = c;
    r->free_state = classify_free;
    /* Decoding runs here, on the HTTP threads, in parallel with the model's forward passes. */
    c->crop = qe_malloc(QE_CROP_BYTES);
    char err[QE_ERR_LEN];
    if (qe_image_load_crop(img, len, s->max_pixels, c->crop, err)) {
        qe_http_reply_error(r, 422, "cannot classify the image: %s", err);
        return;
    }
    c->item.crop = c->crop;
    c->item.done = classify_done;
    c->item.ctx = c;
    qe_http_defer(r, classify_resume);
    pthread_mutex_lock(&s->mu);
    c->rejected = !s->batchers[i] ? 2 : qe_batcher_submit(s->batchers[i], &c->item) ? 1 : 0;
    pthread_mutex_unlock(&s->mu);
    if (c->rejected)
        qe_http_resume(r);
}

void qe_api_classify(void *app, qe_http_req *r)
{
    classify(app, r, 0);
}

void qe_api_predictions(void *app, qe_http_req *r)
{
    classify(app, r, 1);
}

/* ---- metrics ------------------------------------------------------------------------------- */

void qe_api_metrics(void *app, qe_http_req *r)
{
    qe_server *s = app;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        qe_http_reply_error(r, 500, "out of memory");
        return;
    }
    qe_metrics_write(s->metrics, f);
    int n = qe_registry_count(s->reg);
    fputs("# HELP quanteval_model_ready 1 if the model serves, 0 while loading or if unavailable.\n"
          "# TYPE quanteval_model_ready gauge\n", f);
    for (int i = 0; i < n; i++) {
        qe_model_info info;
        qe_registry_info(s->reg, i, &info);
        fprintf(f, "quanteval_model_ready{model=\"");
        qe_metrics_label(f, info.name);
        fprintf(f, "\",status=\"%s\"} %d\n", state_name(info.state), info.state == QE_MODEL_READY);
    }
    fputs("# HELP quanteval_model_memory_bytes Resident bytes of a loaded model.\n"
          "# TYPE quanteval_model_memory_bytes gauge\n", f);
    for (int i = 0; i < n; i++) {
        qe_model_info info;
        qe_registry_info(s->reg, i, &info);
        if (!info.model)
            continue;
        fprintf(f, "quanteval_model_memory_bytes{model=\"");
        qe_metrics_label(f, info.name);
        fprintf(f, "\"} %zu\n", qe_model_bytes(info.model));
    }
    fputs("# HELP quanteval_classify_queue_depth Classify requests waiting for a batch.\n"
          "# TYPE quanteval_classify_queue_depth gauge\n", f);
    for (int i = 0; i < n; i++) {
        qe_model_info info;
        qe_registry_info(s->reg, i, &info);
        pthread_mutex_lock(&s->mu);
        int depth = s->batchers[i] ? qe_batcher_depth(s->batchers[i]) : -1;
        pthread_mutex_unlock(&s->mu);
        if (depth < 0)
            continue;
        fprintf(f, "quanteval_classify_queue_depth{model=\"");
        qe_metrics_label(f, info.name);
        fprintf(f, "\"} %d\n", depth);
    }
    qe_jobs_write_metrics(s->jobs, f);
    fprintf(f, "# HELP quanteval_uptime_seconds Seconds since the daemon started.\n"
               "# TYPE quanteval_uptime_seconds gauge\nquanteval_uptime_seconds %.3f\n",
            qe_now() - s->started_at);
    fclose(f);
    qe_http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}
