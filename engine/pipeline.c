#include "pipeline.h"

#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "image.h"

/* Batches in flight: the consumer holds one, workers fill the others. */
#define QE_PIPE_DEPTH 3
#define QE_MAX_FILE_BYTES ((size_t)256 << 20)

typedef struct slot {
    qe_batch b;
    int filled;                    /* images finished in this slot */
    int64_t seq;                   /* batch number the slot currently holds, -1 if free */
} slot;

struct qe_pipeline {
    const qe_dataset_item *items;
    size_t count;
    int batch, nworkers;
    int64_t max_pixels;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot slots[QE_PIPE_DEPTH];
    size_t next_item;              /* next image a worker takes */
    int64_t next_out;              /* next batch the consumer gets */
    int64_t released;              /* batches handed back (a batch b may be filled once b < released + depth) */
    int stop;
    struct by_size *order;         /* workers == 0: the batch's images, largest file first */
};

struct by_size {
    int64_t size;
    int j;                         /* image of the batch */
};

/* Larger files first; equal sizes in batch order. */
static int cmp_by_size(const void *a, const void *b)
{
    const struct by_size *x = a, *y = b;
    return x->size != y->size ? (x->size < y->size) - (x->size > y->size) : (x->j > y->j) - (x->j < y->j);
}

int qe_pipeline_load_crop(const char *path, int64_t max_pixels, uint8_t *crop, char *err)
{
    uint8_t *buf;
    size_t len;
    if (qe_read_file(path, QE_MAX_FILE_BYTES, &buf, &len, err))
        return -1;
    int rc = qe_image_load_crop(buf, len, max_pixels, crop, err);
    free(buf);
    return rc;
}

int qe_pipeline_load_tensor(const char *path, int64_t max_pixels, float *x, char *err)
{
    uint8_t *crop = qe_malloc(QE_CROP_BYTES);
    int rc = qe_pipeline_load_crop(path, max_pixels, crop, err);
    if (rc == 0)
        qe_image_normalize(crop, x);
    free(crop);
    return rc;
}

/* Item idx into crop, or zeros into crop and the reason into err. */
static void load_item(qe_pipeline *p, size_t idx, uint8_t *crop, char *err)
{
    err[0] = 0;
    if (qe_pipeline_load_crop(p->items[idx].path, p->max_pixels, crop, err) != 0) {
        memset(crop, 0, QE_CROP_BYTES);
        if (!err[0])
            strcpy(err, "unreadable image");
    }
}

static void *worker(void *arg)
{
    qe_pipeline *p = arg;
    char err[QE_ERR_LEN];
    pthread_mutex_lock(&p->mu);
    for (;;) {
        /* Take the next image once its batch's slot is free to fill. */
        while (!p->stop && p->next_item < p->count &&
               (int64_t)(p->next_item / (size_t)p->batch) >= p->released + QE_PIPE_DEPTH)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop || p->next_item >= p->count)
            break;
        size_t idx = p->next_item++;
        int64_t seq = (int64_t)(idx / (size_t)p->batch);
        slot *s = &p->slots[seq % QE_PIPE_DEPTH];
        if (s->seq != seq) {           /* first image of this batch claims the slot */
            s->seq = seq;
            s->filled = 0;
            s->b.first = (size_t)seq * (size_t)p->batch;
            size_t left = p->count - s->b.first;
            s->b.n = left < (size_t)p->batch ? (int)left : p->batch;
        }
        int j = (int)(idx - s->b.first);
        pthread_mutex_unlock(&p->mu);

        load_item(p, idx, s->b.crops + (size_t)j * QE_CROP_BYTES, err);

        pthread_mutex_lock(&p->mu);
        memcpy(s->b.error[j], err, QE_ERR_LEN);
        if (++s->filled == s->b.n)
            pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

qe_pipeline *qe_pipeline_start(const qe_dataset_item *items, size_t count, int batch, int workers,
                               int64_t max_pixels)
{
    qe_pipeline *p = qe_calloc(1, sizeof *p);
    p->items = items;
    p->count = count;
    p->batch = batch > 0 ? batch : 1;
    p->nworkers = workers > 0 ? workers : 0;
    p->max_pixels = max_pixels;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    /* Decoding inline needs the one batch being filled; workers fill ahead. */
    for (int i = 0; i < (p->nworkers ? QE_PIPE_DEPTH : 1); i++) {
        p->slots[i].seq = -1;
        p->slots[i].b.crops = qe_malloc((size_t)p->batch * QE_CROP_BYTES);
        p->slots[i].b.error = qe_calloc((size_t)p->batch, QE_ERR_LEN);
    }
    if (!p->nworkers)
        p->order = qe_calloc((size_t)p->batch, sizeof *p->order);
    p->threads = qe_calloc((size_t)p->nworkers, sizeof *p->threads);
    for (int i = 0; i < p->nworkers; i++)
        pthread_create(&p->threads[i], NULL, worker, p);
    return p;
}

/* workers == 0: batch seq decoded here, one image per OpenMP iteration, into slot 0. */
static qe_batch *fill_inline(qe_pipeline *p, int64_t seq)
{
    slot *s = &p->slots[0];
    s->b.first = (size_t)seq * (size_t)p->batch;
    size_t left = p->count - s->b.first;
    s->b.n = left < (size_t)p->batch ? (int)left : p->batch;
    /* Largest files first: decoding time grows with the file, and taking the long ones early
     * leaves short ones to even out the threads' finishing times (LPT scheduling). */
    for (int j = 0; j < s->b.n; j++) {
        struct stat st;
        p->order[j].size = stat(p->items[s->b.first + (size_t)j].path, &st) == 0 ? (int64_t)st.st_size : 0;
        p->order[j].j = j;
    }
    qsort(p->order, (size_t)s->b.n, sizeof *p->order, cmp_by_size);
#pragma omp parallel for schedule(dynamic, 1)
    for (int t = 0; t < s->b.n; t++) {
        const int j = p->order[t].j;
        load_item(p, s->b.first + (size_t)j, s->b.crops + (size_t)j * QE_CROP_BYTES, s->b.error[j]);
    }
    return &s->b;
}

qe_batch *qe_pipeline_next(qe_pipeline *p)
{
    int64_t total = (int64_t)((p->count + (size_t)p->batch - 1) / (size_t)p->batch);
    if (p->nworkers == 0)
        return p->next_out < total ? fill_inline(p, p->next_out++) : NULL;
    pthread_mutex_lock(&p->mu);
    if (p->next_out >= total) {
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    slot *s = &p->slots[p->next_out % QE_PIPE_DEPTH];
    while (!(s->seq == p->next_out && s->filled == s->b.n))
        pthread_cond_wait(&p->cv, &p->mu);
    p->next_out++;
    pthread_mutex_unlock(&p->mu);
    return &s->b;
}

void qe_pipeline_release(qe_pipeline *p, qe_batch *b)
{
    (void)b;
    pthread_mutex_lock(&p->mu);
    p->released++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void qe_pipeline_stop(qe_pipeline *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nworkers; i++)
        pthread_join(p->threads[i], NULL);
    for (int i = 0; i < QE_PIPE_DEPTH; i++) {
        free(p->slots[i].b.crops);
        free(p->slots[i].b.error);
    }
    free(p->threads);
    free(p->order);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
