/*
 * batcher.c - one worker thread per model gathering classify requests into forward passes
 * (batcher.h).
 */
#include "batcher.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct qe_batcher {
    qe_model *m;
    char name[64];
    qe_registry *reg;
    qe_metrics *metrics;
    qe_batcher_opts o;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;               /* on CLOCK_MONOTONIC, the clock of qe_now() */
    qe_batch_item *head, *tail;
    int depth, stop;
};

double qe_batcher_softmax_at(const float *logits, int n, int idx)
{
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    double s = 0;
    for (int i = 0; i < n; i++)
        s += exp((double)logits[i] - mx);
    return exp((double)logits[idx] - mx) / s;
}

static void wait_until(qe_batcher *b, double deadline)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9, dt = deadline - now;
    if (dt <= 0)
        return;
    ts.tv_sec += (time_t)dt;
    ts.tv_nsec += (long)((dt - floor(dt)) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&b->cv, &b->mu, &ts);
}

/* Runs items as one forward pass and hands out their results. */
static void run_batch(qe_batcher *b, qe_batch_item **items, int n, uint8_t *crops, float *logits)
{
    for (int i = 0; i < n; i++)
        memcpy(crops + (size_t)i * QE_CROP_BYTES, items[i]->crop, QE_CROP_BYTES);
    qe_registry_compute_begin(b->reg);
    double t0 = qe_now();
    qe_model_forward(b->m, crops, n, logits);
    double dt = qe_now() - t0;
    qe_registry_compute_end(b->reg);
    if (b->metrics) {
        qe_metrics_batch(b->metrics, b->name, n, dt);
        qe_metrics_images(b->metrics, "classify", b->name, n);
    }
    for (int i = 0; i < n; i++) {
        qe_batch_item *it = items[i];
        const float *l = logits + (size_t)i * 1000;
        qe_topk(l, 1000, 5, it->top5);
        for (int k = 0; k < 5; k++)
            it->prob[k] = qe_batcher_softmax_at(l, 1000, it->top5[k]);
        it->batch_size = n;
        it->failed = 0;
        it->done(it);
    }
}

static void *worker_main(void *arg)
{
    qe_batcher *b = arg;
    if (b->o.threads > 0)
        omp_set_num_threads(b->o.threads);
    int cap = b->o.max_batch;
    uint8_t *crops = qe_malloc((size_t)cap * QE_CROP_BYTES);
    float *logits = qe_malloc((size_t)cap * 1000 * sizeof(float));
    qe_batch_item **items = qe_malloc((size_t)cap * sizeof *items);
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->head && !b->stop)
            pthread_cond_wait(&b->cv, &b->mu);
        if (b->stop)
            break;
        /* Give the batch until the oldest request has waited max_delay to fill up. */
        while (b->depth < cap && !b->stop && qe_now() < b->head->queued_at + b->o.max_delay)
            wait_until(b, b->head->queued_at + b->o.max_delay);
        if (b->stop)
            break;
        int n = 0;
        while (b->head && n < cap) {
            items[n++] = b->head;
            b->head = b->head->next;
            b->depth--;
        }
        if (!b->head)
            b->tail = NULL;
        pthread_mutex_unlock(&b->mu);
        run_batch(b, items, n, crops, logits);
        pthread_mutex_lock(&b->mu);
        if (!b->head) {
            /* Going idle: give back the activation buffers (under the compute lock, which
             * serialises every use of the model). */
            pthread_mutex_unlock(&b->mu);
            qe_registry_compute_begin(b->reg);
            qe_model_trim(b->m);
            qe_registry_compute_end(b->reg);
            pthread_mutex_lock(&b->mu);
        }
    }
    /* Stopping: whatever still waits is answered as dropped. */
    qe_batch_item *rest = b->head;
    b->head = b->tail = NULL;
    b->depth = 0;
    pthread_mutex_unlock(&b->mu);
    while (rest) {
        qe_batch_item *next = rest->next;
        rest->failed = 1;
        rest->done(rest);
        rest = next;
    }
    free(items);
    free(logits);
    free(crops);
    return NULL;
}

qe_batcher *qe_batcher_start(qe_model *m, const char *name, qe_registry *reg, qe_metrics *metrics,
                             const qe_batcher_opts *o)
{
    qe_batcher *b = qe_calloc(1, sizeof *b);
    b->m = m;
    snprintf(b->name, sizeof b->name, "%s", name);
    b->reg = reg;
    b->metrics = metrics;
    b->o = *o;
    if (b->o.max_batch < 1)
        b->o.max_batch = 1;
    if (b->o.queue_max < 1)
        b->o.queue_max = 1;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&b->thread, NULL, worker_main, b) != 0) {
        fprintf(stderr, "quanteval serve: cannot start the batcher thread of %s\n", name);
        abort();
    }
    return b;
}

int qe_batcher_submit(qe_batcher *b, qe_batch_item *it)
{
    pthread_mutex_lock(&b->mu);
    if (b->stop || b->depth >= b->o.queue_max) {
        pthread_mutex_unlock(&b->mu);
        return -1;
    }
    it->next = NULL;
    it->queued_at = qe_now();
    if (b->tail)
        b->tail->next = it;
    else
        b->head = it;
    b->tail = it;
    b->depth++;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

int qe_batcher_depth(qe_batcher *b)
{
    pthread_mutex_lock(&b->mu);
    int d = b->depth;
    pthread_mutex_unlock(&b->mu);
    return d;
}

void qe_batcher_stop(qe_batcher *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}
