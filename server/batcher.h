/*
 * batcher.h - dynamic batching of classify requests for one resident model.
 *
 * Requests queue up; a worker thread takes the first one, waits at most max_delay for more (up
 * to max_batch), runs them as one forward pass under the registry's compute lock, and hands
 * every request its top-5. The queue is bounded: a full queue refuses new requests at once (the
 * API answers 503 with Retry-After) instead of letting latency grow without limit.
 */
#ifndef QE_BATCHER_H
#define QE_BATCHER_H

#include "image.h"
#include "metrics.h"
#include "model.h"
#include "registry.h"

typedef struct qe_batcher_opts {
    int max_batch;           /* images per forward pass (>= 1) */
    double max_delay;        /* seconds the first request of a batch may wait for others */
    int queue_max;           /* requests waiting at most (>= 1) */
    int threads;             /* OpenMP team size of the worker (0: all cores) */
} qe_batcher_opts;

/* One classify request. The caller owns it and keeps it alive until done() has been called. */
typedef struct qe_batch_item {
    const uint8_t *crop;     /* QE_CROP_BYTES: the image's center crop (image.h) */
    /* results, valid in done() */
    int top5[5];
    double prob[5];          /* softmax probabilities of the top-5 */
    int batch_size;          /* size of the forward pass it ran in */
    int failed;              /* 1: dropped unprocessed (the batcher is stopping) */
    void (*done)(struct qe_batch_item *it);  /* called once, on the worker thread */
    void *ctx;
    struct qe_batch_item *next;  /* private */
    double queued_at;            /* private */
} qe_batch_item;

typedef struct qe_batcher qe_batcher;

/* Starts the worker of model m (entry `name` in metrics, which may be NULL). */
qe_batcher *qe_batcher_start(qe_model *m, const char *name, qe_registry *reg, qe_metrics *metrics,
                             const qe_batcher_opts *o);
/* Queues it; -1 (it->done not called) when the queue is full or the batcher is stopping. */
int qe_batcher_submit(qe_batcher *b, qe_batch_item *it);
/* Requests waiting (not yet in a forward pass). */
int qe_batcher_depth(qe_batcher *b);
/* Finishes the batch in progress, fails the waiting requests, joins the worker, frees. */
void qe_batcher_stop(qe_batcher *b);

/* Softmax probability of logits[idx] over n logits, in double (what classify reports). */
double qe_batcher_softmax_at(const float *logits, int n, int idx);

#endif
