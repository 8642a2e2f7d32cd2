/*
 * metrics.c - fixed-size series tables behind one mutex (metrics.h). A scrape or an update costs
 * a linear search over at most a few hundred series, which is nothing next to a forward pass.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "qe_util.h"

#define MAX_SERIES 256
#define LABEL_LEN 64

static const double latency_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64};
#define NLAT (int)(sizeof latency_bounds / sizeof latency_bounds[0])
#define NBATCH (int)(sizeof batch_bounds / sizeof batch_bounds[0])

typedef struct counter {
    char a[LABEL_LEN], b[LABEL_LEN];
    int code;
    double value;
} counter;

typedef struct histogram {
    char a[LABEL_LEN], b[LABEL_LEN];
    unsigned long bucket[16];        /* cumulative counts are formed when written */
    unsigned long count;
    double sum;
} histogram;

struct qe_metrics {
    pthread_mutex_t mu;
    counter requests[MAX_SERIES], images[MAX_SERIES];
    histogram latency[MAX_SERIES], batch_size[MAX_SERIES], batch_seconds[MAX_SERIES];
    int nrequests, nimages, nlatency, nbatch_size, nbatch_seconds;
};

qe_metrics *qe_metrics_create(void)
{
    qe_metrics *m = qe_calloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void qe_metrics_free(qe_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* The series of (a, b, code), created if new; NULL when the table is full. */
static counter *counter_get(counter *t, int *n, const char *a, const char *b, int code)
{
    for (int i = 0; i < *n; i++)
        if (t[i].code == code && strcmp(t[i].a, a) == 0 && strcmp(t[i].b, b) == 0)
            return &t[i];
    if (*n == MAX_SERIES)
        return NULL;
    counter *c = &t[(*n)++];
    snprintf(c->a, LABEL_LEN, "%s", a);
    snprintf(c->b, LABEL_LEN, "%s", b);
    c->code = code;
    return c;
}

static histogram *histogram_get(histogram *t, int *n, const char *a, const char *b)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(t[i].a, a) == 0 && strcmp(t[i].b, b) == 0)
            return &t[i];
    if (*n == MAX_SERIES)
        return NULL;
    histogram *h = &t[(*n)++];
    snprintf(h->a, LABEL_LEN, "%s", a);
    snprintf(h->b, LABEL_LEN, "%s", b);
    return h;
}

static void observe(histogram *h, const double *bounds, int nb, double v)
{
    if (!h)
        return;
    for (int i = 0; i < nb; i++)
        if (v <= bounds[i]) {
            h->bucket[i]++;
            break;
        }
    h->count++;
    h->sum += v;
}

void qe_metrics_request(qe_metrics *m, const char *endpoint, const char *model, int status, double seconds)
{
    pthread_mutex_lock(&m->mu);
    counter *c = counter_get(m->requests, &m->nrequests, endpoint, model, status);
    if (c)
        c->value++;
    observe(histogram_get(m->latency, &m->nlatency, endpoint, model), latency_bounds, NLAT, seconds);
    pthread_mutex_unlock(&m->mu);
}

void qe_metrics_batch(qe_metrics *m, const char *model, int size, double seconds)
{
    pthread_mutex_lock(&m->mu);
    observe(histogram_get(m->batch_size, &m->nbatch_size, model, ""), batch_bounds, NBATCH, size);
    observe(histogram_get(m->batch_seconds, &m->nbatch_seconds, model, ""), latency_bounds, NLAT, seconds);
    pthread_mutex_unlock(&m->mu);
}

void qe_metrics_images(qe_metrics *m, const char *source, const char *model, long n)
{
    pthread_mutex_lock(&m->mu);
    counter *c = counter_get(m->images, &m->nimages, source, model, 0);
    if (c)
        c->value += (double)n;
    pthread_mutex_unlock(&m->mu);
}

void qe_metrics_label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

/* `name{la="a",lb="b"` without the closing brace, so callers can add labels. */
static void series_open(FILE *f, const char *name, const char *la, const char *a, const char *lb, const char *b)
{
    fprintf(f, "%s{%s=\"", name, la);
    qe_metrics_label(f, a);
    if (lb) {
        fprintf(f, "\",%s=\"", lb);
        qe_metrics_label(f, b);
    }
    fputc('"', f);
}

static void write_histograms(FILE *f, const char *name, const char *help, const histogram *t, int n,
                             const double *bounds, int nb, const char *la, const char *lb)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    char bucket[128], sum[128], count[128];
    snprintf(bucket, sizeof bucket, "%s_bucket", name);
    snprintf(sum, sizeof sum, "%s_sum", name);
    snprintf(count, sizeof count, "%s_count", name);
    for (int i = 0; i < n; i++) {
        const histogram *h = &t[i];
        unsigned long cum = 0;
        for (int k = 0; k < nb; k++) {
            cum += h->bucket[k];
            series_open(f, bucket, la, h->a, lb, h->b);
            fprintf(f, ",le=\"%g\"} %lu\n", bounds[k], cum);
        }
        series_open(f, bucket, la, h->a, lb, h->b);
        fprintf(f, ",le=\"+Inf\"} %lu\n", h->count);
        series_open(f, sum, la, h->a, lb, h->b);
        fprintf(f, "} %.6f\n", h->sum);
        series_open(f, count, la, h->a, lb, h->b);
        fprintf(f, "} %lu\n", h->count);
    }
}

void qe_metrics_write(qe_metrics *m, FILE *f)
{
    pthread_mutex_lock(&m->mu);
    fputs("# HELP quanteval_http_requests_total HTTP requests by endpoint, model and status code.\n"
          "# TYPE quanteval_http_requests_total counter\n", f);
    for (int i = 0; i < m->nrequests; i++) {
        series_open(f, "quanteval_http_requests_total", "endpoint", m->requests[i].a, "model", m->requests[i].b);
        fprintf(f, ",code=\"%d\"} %.0f\n", m->requests[i].code, m->requests[i].value);
    }
    write_histograms(f, "quanteval_http_request_duration_seconds", "HTTP request latency by endpoint and model.",
                     m->latency, m->nlatency, latency_bounds, NLAT, "endpoint", "model");
    write_histograms(f, "quanteval_batch_size", "Images per classify forward pass (dynamic batching).", m->batch_size,
                     m->nbatch_size, batch_bounds, NBATCH, "model", NULL);
    write_histograms(f, "quanteval_batch_duration_seconds", "Duration of classify forward passes.", m->batch_seconds,
                     m->nbatch_seconds, latency_bounds, NLAT, "model", NULL);
    fputs("# HELP quanteval_images_evaluated_total Images run through a model, by source (classify or job).\n"
          "# TYPE quanteval_images_evaluated_total counter\n", f);
    for (int i = 0; i < m->nimages; i++) {
        series_open(f, "quanteval_images_evaluated_total", "source", m->images[i].a, "model", m->images[i].b);
        fprintf(f, "} %.0f\n", m->images[i].value);
    }
    pthread_mutex_unlock(&m->mu);
}
