/*
 * metrics.h - the daemon's counters and histograms, rendered in the Prometheus text exposition
 * format (version 0.0.4) by GET /metrics. Gauges that are read from live state at scrape time
 * (queue depths, job progress) are written by the API next to these.
 *
 * Label values come from the server's own vocabulary (route names, configured model names, status
 * codes), never from arbitrary request text, so the number of series stays bounded.
 */
#ifndef QE_METRICS_H
#define QE_METRICS_H

#include <stdio.h>

typedef struct qe_metrics qe_metrics;

qe_metrics *qe_metrics_create(void);
void qe_metrics_free(qe_metrics *m);

/* A finished HTTP request: counted per (endpoint, model, status), timed per (endpoint, model).
 * model may be "" (requests not about one model). Thread-safe, like every call below. */
void qe_metrics_request(qe_metrics *m, const char *endpoint, const char *model, int status, double seconds);
/* A classify forward pass of `size` images that took `seconds`. */
void qe_metrics_batch(qe_metrics *m, const char *model, int size, double seconds);
/* Images evaluated, by source ("classify" or "job"). */
void qe_metrics_images(qe_metrics *m, const char *source, const char *model, long n);

/* Writes every counter and histogram (with HELP and TYPE lines). */
void qe_metrics_write(qe_metrics *m, FILE *f);
/* Writes one label value with the format's escapes (\\, \", \n) and no quotes. */
void qe_metrics_label(FILE *f, const char *s);

#endif
