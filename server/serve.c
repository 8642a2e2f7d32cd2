/*
 * quanteval serve: the HTTP daemon. Reads the server config (or starts on the built-in
 * defaults), binds, loads the models in the background, runs jobs, and on SIGTERM/SIGINT stops
 * accepting, checkpoints the running job and exits 0.
 *
 * Threads: libmicrohttpd's pool (http_threads) parses requests and decodes images; one batcher
 * per ready model and the job runners run forward passes, one at a time under the registry's
 * compute lock, each with an OpenMP team of `threads`; one loader thread loads the models. The
 * main thread only waits for a signal.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "cli.h"

#define MAX_MODELS 32
#define MAX_DATASETS 32

typedef struct serve_conf {
    char listen[256], db[4096], token[256];
    long threads, http_threads, max_connections;
    long max_body, max_pixels, max_batch, max_delay_ms, queue;
    long job_concurrency, job_batch, job_workers;
    qe_model_spec models[MAX_MODELS];
    int nmodels;
    qe_named_dataset datasets[MAX_DATASETS];
    int ndatasets;
    qe_calib_spec calib;             /* default calibration of quantized configs */
} serve_conf;

static void help(void)
{
    puts("usage: quanteval serve [options]\n"
         "\n"
         "  --config FILE        server config (JSON; see configs/server.example.json). Without one: the six\n"
         "                       built-in model configs on their default (or synthetic) weights, and the\n"
         "                       bundled sample images as dataset 'samples'\n"
         "  --listen HOST:PORT   address to listen on (default 127.0.0.1:8080; port 0 picks a free one)\n"
         "  --db PATH            run database (default $QUANTEVAL_DB or ~/.local/share/quanteval/quanteval.db,\n"
         "                       shared with quanteval eval)\n"
         "  --threads N          compute threads per forward pass (default: all cores)\n"
         "  --http-threads N     HTTP threads (default 4)\n"
         "\n"
         "The API token (job submit/cancel) comes from the config's \"token\" or $QUANTEVAL_TOKEN.\n"
         "SIGTERM or SIGINT: stop accepting, checkpoint the running job, exit 0. The API is in the README.");
}

/* ---- server config ------------------------------------------------------------------------- */

static void conf_defaults(serve_conf *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen, sizeof c->listen, "127.0.0.1:8080");
    c->http_threads = 4;
    c->max_connections = 256;
    c->max_body = 16L << 20;
    c->max_pixels = QE_DEFAULT_MAX_PIXELS;
    c->max_batch = 8;
    c->max_delay_ms = 10;
    c->queue = 64;
    c->job_concurrency = 1;
    c->job_batch = 16;
    c->job_workers = 0;
    snprintf(c->calib.dataset, sizeof c->calib.dataset, "samples");
    c->calib.per_class = -1;
    snprintf(c->datasets[0].name, sizeof c->datasets[0].name, "samples");
    snprintf(c->datasets[0].path, sizeof c->datasets[0].path, "%s", qe_cli_samples_dir());
    c->ndatasets = 1;
}

/* Paths in a config file are relative to the file's directory. */
static void conf_path(const char *base_dir, const char *p, char *out, size_t len)
{
    if (p[0] == '/' || !base_dir[0])
        snprintf(out, len, "%s", p);
    else
        snprintf(out, len, "%s/%s", base_dir, p);
}

static int only_keys(json_t *o, const char *what, const char *const *keys, char *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        int known = 0;
        for (int i = 0; keys[i] && !known; i++)
            known = strcmp(k, keys[i]) == 0;
        if (!known)
            return qe_err(err, "unknown key '%s' in %s", k, what);
    }
    return 0;
}

static int conf_int(json_t *o, const char *key, long min, long max, long *out, char *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return qe_err(err, "'%s' must be an integer in %ld..%ld", key, min, max);
    *out = (long)json_integer_value(v);
    return 0;
}

static int conf_str(json_t *o, const char *key, char *out, size_t len, char *err)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_string(v) || json_string_length(v) >= len)
        return qe_err(err, "'%s' must be a string of at most %zu bytes", key, len - 1);
    snprintf(out, len, "%s", json_string_value(v));
    return 0;
}

static int parse_calib(json_t *o, qe_calib_spec *c, char *err)
{
    static const char *const keys[] = {"dataset", "per_class", "images", "batch", NULL};
    if (!json_is_object(o))
        return qe_err(err, "'calib' must be an object");
    long per_class = c->per_class, batch = c->batch;
    if (only_keys(o, "calib", keys, err) || conf_str(o, "dataset", c->dataset, sizeof c->dataset, err) ||
        conf_int(o, "per_class", 0, 100000000, &per_class, err) || conf_int(o, "images", 0, 100000000, &c->images, err) ||
        conf_int(o, "batch", 1, 4096, &batch, err))
        return -1;
    c->per_class = (int)per_class;
    c->batch = (int)batch;
    return 0;
}

static int parse_model(json_t *o, const char *dir, const qe_calib_spec *calib, qe_model_spec *m, char *err)
{
    static const char *const keys[] = {"config", "weights", "encodings", "synthetic", "calib", NULL};
    memset(m, 0, sizeof *m);
    m->allow_synthetic = 1;
    m->calib = *calib;
    if (json_is_string(o)) {
        snprintf(m->config, sizeof m->config, "%s", json_string_value(o));
        return 0;
    }
    char buf[4096] = "";
    if (!json_is_object(o))
        return qe_err(err, "a model entry must be a config name or an object");
    if (only_keys(o, "a model entry", keys, err))
        return -1;
    if (conf_str(o, "config", buf, sizeof buf, err))
        return -1;
    if (!buf[0])
        return qe_err(err, "a model entry needs \"config\"");
    /* A config given as a JSON file is a path too. */
    if (strchr(buf, '/') || strstr(buf, ".json"))
        conf_path(dir, buf, m->config, sizeof m->config);
    else
        snprintf(m->config, sizeof m->config, "%s", buf);
    buf[0] = 0;
    if (conf_str(o, "weights", buf, sizeof buf, err))
        return -1;
    if (buf[0])
        conf_path(dir, buf, m->weights, sizeof m->weights);
    buf[0] = 0;
    if (conf_str(o, "encodings", buf, sizeof buf, err))
        return -1;
    if (buf[0])
        conf_path(dir, buf, m->encodings, sizeof m->encodings);
    json_t *syn = json_object_get(o, "synthetic");
    if (syn && !json_is_boolean(syn))
        return qe_err(err, "'synthetic' must be true or false");
    if (syn)
        m->allow_synthetic = json_is_true(syn);
    json_t *c = json_object_get(o, "calib");
    return c ? parse_calib(c, &m->calib, err) : 0;
}

static int parse_config(const char *path, serve_conf *c, char *err)
{
    static const char *const top[] = {"listen", "db", "threads", "http_threads", "token", "models", "datasets",
                                      "calib", "limits", "jobs", NULL};
    static const char *const limits[] = {"max_body_bytes", "max_image_pixels", "max_batch", "max_delay_ms", "queue",
                                         "max_connections", NULL};
    static const char *const jobs[] = {"concurrency", "batch", "workers", NULL};
    json_error_t je;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return qe_err(err, "%s: %s (line %d)", path, je.text, je.line);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        dir[0] = 0;
    int rc = -1;
    char buf[4096] = "";
    json_t *l = json_object_get(o, "limits"), *j = json_object_get(o, "jobs"), *ds = json_object_get(o, "datasets");
    json_t *models = json_object_get(o, "models"), *cal = json_object_get(o, "calib");
    if (!json_is_object(o) || only_keys(o, "the server config", top, err))
        goto out;
    if ((l && !json_is_object(l)) || (j && !json_is_object(j))) {
        qe_err(err, "'limits' and 'jobs' must be objects");
        goto out;
    }
    if ((l && only_keys(l, "limits", limits, err)) || (j && only_keys(j, "jobs", jobs, err)))
        goto out;
    if (conf_str(o, "listen", c->listen, sizeof c->listen, err) || conf_str(o, "db", buf, sizeof buf, err) ||
        conf_str(o, "token", c->token, sizeof c->token, err) || conf_int(o, "threads", 0, 1024, &c->threads, err) ||
        conf_int(o, "http_threads", 1, 64, &c->http_threads, err) ||
        conf_int(l, "max_body_bytes", 1024, 1L << 30, &c->max_body, err) ||
        conf_int(l, "max_image_pixels", 1, QE_DEFAULT_MAX_PIXELS, &c->max_pixels, err) ||
        conf_int(l, "max_batch", 1, 256, &c->max_batch, err) ||
        conf_int(l, "max_delay_ms", 0, 10000, &c->max_delay_ms, err) ||
        conf_int(l, "queue", 1, 100000, &c->queue, err) ||
        conf_int(l, "max_connections", 4, 100000, &c->max_connections, err) ||
        conf_int(j, "concurrency", 1, 16, &c->job_concurrency, err) ||
        conf_int(j, "batch", 1, 1024, &c->job_batch, err) ||
        conf_int(j, "workers", 0, 64, &c->job_workers, err))
        goto out;
    if (buf[0])
        conf_path(dir, buf, c->db, sizeof c->db);
    if (cal && parse_calib(cal, &c->calib, err))
        goto out;
    if (ds) {
        const char *name;
        json_t *v;
        if (!json_is_object(ds)) {
            qe_err(err, "'datasets' must be an object {\"name\": \"path\"}");
            goto out;
        }
        json_object_foreach(ds, name, v) {
            int k = 0;
            while (k < c->ndatasets && strcmp(c->datasets[k].name, name) != 0)
                k++;
            size_t nlen = strlen(name);
            if (!json_is_string(v) || nlen == 0 || nlen >= sizeof c->datasets[0].name || k == MAX_DATASETS) {
                qe_err(err, "dataset '%s': want a name of 1..63 bytes mapped to a path (at most %d datasets)", name,
                       MAX_DATASETS);
                goto out;
            }
            snprintf(c->datasets[k].name, sizeof c->datasets[k].name, "%s", name);
            conf_path(dir, json_string_value(v), c->datasets[k].path, sizeof c->datasets[k].path);
            if (k == c->ndatasets)
                c->ndatasets++;
        }
    }
    if (models) {
        if (!json_is_array(models) || json_array_size(models) == 0 || json_array_size(models) > MAX_MODELS) {
            qe_err(err, "'models' must be an array of 1..%d entries", MAX_MODELS);
            goto out;
        }
        size_t i;
        json_t *v;
        json_array_foreach(models, i, v) {
            if (parse_model(v, dir, &c->calib, &c->models[i], err))
                goto out;
        }
        c->nmodels = (int)json_array_size(models);
    }
    rc = 0;
out:
    json_decref(o);
    if (rc && !strstr(err, path)) {
        char e[QE_ERR_LEN];
        snprintf(e, sizeof e, "%s", err);
        qe_err(err, "%s: %s", path, e);
    }
    return rc;
}

/* Fills what the config left to the defaults and checks the result as a whole. */
static int conf_finish(serve_conf *c, char *err)
{
    if (c->nmodels == 0) {
        for (const char *const *n = qe_modelcfg_names(); *n && c->nmodels < MAX_MODELS; n++) {
            qe_model_spec *m = &c->models[c->nmodels++];
            memset(m, 0, sizeof *m);
            snprintf(m->config, sizeof m->config, "%s", *n);
            m->allow_synthetic = 1;
            m->calib = c->calib;
        }
    }
    for (int i = 0; i < c->nmodels; i++) {
        qe_model_spec *m = &c->models[i];
        qe_modelcfg cfg;
        if (qe_modelcfg_get(m->config, &cfg, err))
            return -1;
        for (int k = 0; k < i; k++) {
            qe_modelcfg other;
            if (qe_modelcfg_get(c->models[k].config, &other, NULL) == 0) {
                int dup = strcmp(other.name, cfg.name) == 0;
                qe_modelcfg_free(&other);
                if (dup) {
                    qe_modelcfg_free(&cfg);
                    return qe_err(err, "model config %s is listed twice", m->config);
                }
            }
        }
        int quantized = cfg.quantized;
        qe_modelcfg_free(&cfg);
        if (!quantized || m->encodings[0])
            continue;
        const char *path = qe_jobs_dataset_path(c->datasets, c->ndatasets, m->calib.dataset);
        if (!path)
            return qe_err(err, "model %s calibrates on dataset '%s', which is not configured", m->config, m->calib.dataset);
        snprintf(m->calib.path, sizeof m->calib.path, "%s", path);
    }
    if (!c->db[0])
        qe_cli_default_db(c->db, sizeof c->db);
    const char *tok = getenv("QUANTEVAL_TOKEN");
    if (tok && tok[0])
        snprintf(c->token, sizeof c->token, "%s", tok);
    return 0;
}

static int parse_args(int argc, char **argv, serve_conf *c, int *done)
{
    enum { O_CONFIG = 1, O_LISTEN, O_DB, O_THREADS, O_HTTP, O_HELP };
    static const struct option opts[] = {
        {"config", required_argument, 0, O_CONFIG}, {"listen", required_argument, 0, O_LISTEN},
        {"db", required_argument, 0, O_DB},         {"threads", required_argument, 0, O_THREADS},
        {"http-threads", required_argument, 0, O_HTTP}, {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0}};
    const char *config = NULL, *listen = NULL, *db = NULL;
    long threads = -1, http = -1;
    char err[QE_ERR_LEN] = "";
    opterr = 0;
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_CONFIG: config = optarg; break;
        case O_LISTEN: listen = optarg; break;
        case O_DB: db = optarg; break;
        case O_THREADS: if (qe_cli_int("serve", "--threads", optarg, 1, 1024, &threads)) return -1; break;
        case O_HTTP: if (qe_cli_int("serve", "--http-threads", optarg, 1, 64, &http)) return -1; break;
        case O_HELP: help(); *done = 1; return 0;
        default:
            qe_cli_error("serve", "unknown or incomplete option '%s' (see quanteval serve --help)", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        qe_cli_error("serve", "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    conf_defaults(c);
    if (config && parse_config(config, c, err)) {
        qe_cli_error("serve", "%s", err);
        return -1;
    }
    /* The command line wins over the config file. */
    if (listen)
        snprintf(c->listen, sizeof c->listen, "%s", listen);
    if (db)
        snprintf(c->db, sizeof c->db, "%s", db);
    if (threads > 0)
        c->threads = threads;
    if (http > 0)
        c->http_threads = http;
    if (conf_finish(c, err)) {
        qe_cli_error("serve", "%s", err);
        return -1;
    }
    return 0;
}

/* ---- server state -------------------------------------------------------------------------- */

qe_store *qe_server_store_get(qe_server *s, char *err)
{
    pthread_mutex_lock(&s->mu);
    qe_store *st = s->npool ? s->pool[--s->npool] : NULL;
    pthread_mutex_unlock(&s->mu);
    if (!st && qe_store_open(s->db, &st, err))
        return NULL;
    return st;
}

void qe_server_store_put(qe_server *s, qe_store *st)
{
    pthread_mutex_lock(&s->mu);
    if (s->npool < QE_SERVER_POOL) {
        s->pool[s->npool++] = st;
        st = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    qe_store_close(st);
}

static const qe_http_route routes[] = {
    {"GET", "/", "dashboard", qe_api_web},
    {"GET", "/app.js", "dashboard", qe_api_web},
    {"GET", "/style.css", "dashboard", qe_api_web},
    {"GET", "/ping", "health", qe_api_ping},
    {"GET", "/v2/health/live", "health", qe_api_health_live},
    {"GET", "/v2/health/ready", "health", qe_api_health_ready},
    {"GET", "/v1/models", "models", qe_api_models_list},
    {"GET", "/v1/models/{}", "model", qe_api_model_get},
    {"POST", "/v1/models/{}/classify", "classify", qe_api_classify},
    {"POST", "/predictions/{}", "predictions", qe_api_predictions},
    {"POST", "/v1/jobs", "jobs", qe_api_jobs_submit},
    {"GET", "/v1/jobs", "jobs", qe_api_jobs_list},
    {"GET", "/v1/jobs/{}", "job", qe_api_job_get},
    {"DELETE", "/v1/jobs/{}", "job", qe_api_job_cancel},
    {"GET", "/v1/runs", "runs", qe_api_runs_list},
    {"GET", "/v1/runs/{}", "run", qe_api_run_get},
    {"GET", "/v1/runs/{}/predictions", "run_predictions", qe_api_run_predictions},
    {"GET", "/metrics", "metrics", qe_api_metrics},
};

typedef struct loaded_ctx {
    qe_server *s;
    qe_batcher_opts bo;
} loaded_ctx;

/* Loader thread: a model is ready, give it its batcher. */
static void on_model_loaded(void *ctx, int i)
{
    loaded_ctx *l = ctx;
    qe_model_info info;
    qe_registry_info(l->s->reg, i, &info);
    if (info.state != QE_MODEL_READY)
        return;
    qe_batcher *b = qe_batcher_start(info.model, info.name, l->s->reg, l->s->metrics, &l->bo);
    pthread_mutex_lock(&l->s->mu);
    l->s->batchers[i] = b;
    pthread_mutex_unlock(&l->s->mu);
}

/* Records the served configs in the database and requeues jobs a previous daemon left running. */
static int prepare_db(const serve_conf *c, char *err)
{
    qe_store *st;
    if (qe_store_open(c->db, &st, err))
        return -1;
    int requeued = 0;
    for (int i = 0; i < c->nmodels; i++) {
        qe_modelcfg cfg;
        if (qe_modelcfg_get(c->models[i].config, &cfg, NULL))
            continue;
        qe_store_config sc = {.name = cfg.name, .arch = qe_resnet_desc_get(cfg.arch)->name, .precision = cfg.precision,
                              .description = cfg.json};
        char e[QE_ERR_LEN];
        if (qe_store_config_put(st, &sc, e))
            fprintf(stderr, "quanteval serve: warning: recording config %s: %s\n", cfg.name, e);
        qe_modelcfg_free(&cfg);
    }
    int rc = qe_store_jobs_recover(st, &requeued, err);
    if (rc == 0 && requeued)
        fprintf(stderr, "quanteval serve: %d interrupted job%s will resume\n", requeued, requeued > 1 ? "s" : "");
    qe_store_close(st);
    return rc;
}

int qe_cli_serve(int argc, char **argv)
{
    serve_conf *c = qe_calloc(1, sizeof *c);
    int done = 0;
    if (parse_args(argc, argv, c, &done) || done) {
        free(c);
        return done ? 0 : 2;
    }
    char err[QE_ERR_LEN];
    if (prepare_db(c, err)) {
        qe_cli_error("serve", "run database %s: %s", c->db, err);
        free(c);
        return 2;
    }
    /* Every thread inherits this mask; the main thread takes the signals with sigwait(). */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    qe_cli_set_threads((int)c->threads);

    qe_server *s = qe_calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->started_at = qe_now();
    s->metrics = qe_metrics_create();
    s->datasets = c->datasets;
    s->ndatasets = c->ndatasets;
    s->max_pixels = c->max_pixels;
    snprintf(s->token, sizeof s->token, "%s", c->token);
    snprintf(s->db, sizeof s->db, "%s", c->db);
    s->reg = qe_registry_create(c->models, c->nmodels, c->db, (int)c->threads);
    s->batchers = qe_calloc((size_t)c->nmodels, sizeof *s->batchers);
    qe_jobs_opts jo = {.db = c->db, .concurrency = (int)c->job_concurrency, .batch = (int)c->job_batch,
                       .workers = (int)c->job_workers, .threads = (int)c->threads,
                       .max_pixels = c->max_pixels, .datasets = c->datasets,
                       .ndatasets = c->ndatasets};
    s->jobs = qe_jobs_start(&jo, s->reg, s->metrics);

    qe_http_opts ho = {.listen = c->listen, .threads = (int)c->http_threads, .max_body = (size_t)c->max_body,
                       .max_connections = (int)c->max_connections, .routes = routes,
                       .nroutes = (int)(sizeof routes / sizeof routes[0]), .observe = qe_api_observe, .app = s};
    qe_http_server *http = NULL;
    char bound[300];
    int rc = 0;
    if (qe_http_start(&ho, &http, bound, sizeof bound, err)) {
        qe_cli_error("serve", "%s", err);
        rc = 1;
    } else {
        fprintf(stderr, "quanteval serve: listening on http://%s (%d model%s loading, database %s%s)\n", bound,
                c->nmodels, c->nmodels > 1 ? "s" : "", c->db, c->token[0] ? ", API token required for jobs" : "");
        fflush(stderr);
        loaded_ctx lc = {.s = s, .bo = {.max_batch = (int)c->max_batch, .max_delay = (double)c->max_delay_ms / 1e3,
                                        .queue_max = (int)c->queue, .threads = (int)c->threads}};
        qe_registry_start(s->reg, on_model_loaded, &lc);
        int sig = 0;
        while (sigwait(&sigs, &sig) != 0)
            ;
        fprintf(stderr, "quanteval serve: %s: shutting down\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        qe_http_quiesce(http);
        qe_registry_stop_loading(s->reg);
    }
    /* Jobs first (they checkpoint after their batch), then the batchers answer what still waits,
     * then the HTTP threads finish the replies and close. */
    qe_jobs_stop(s->jobs);
    for (int i = 0; i < c->nmodels; i++) {
        pthread_mutex_lock(&s->mu);
        qe_batcher *b = s->batchers[i];
        s->batchers[i] = NULL;
        pthread_mutex_unlock(&s->mu);
        qe_batcher_stop(b);
    }
    if (http) {
        usleep(100 * 1000);
        qe_http_stop(http);
    }
    for (int i = 0; i < s->npool; i++)
        qe_store_close(s->pool[i]);
    qe_registry_free(s->reg);
    qe_metrics_free(s->metrics);
    free(s->batchers);
    pthread_mutex_destroy(&s->mu);
    free(s);
    free(c);
    if (rc == 0)
        fprintf(stderr, "quanteval serve: stopped\n");
    return rc;
}
