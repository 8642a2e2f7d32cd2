/*
 * pipeline.h - reads, decodes and preprocesses images on worker threads ahead of the consumer,
 * so that evaluation is not bound by one core's JPEG decoding.
 *
 * Batches come out in dataset order; each holds the normalised CHW tensors (image.h) of up to
 * `batch` consecutive items. An image that cannot be read or decoded does not stop the run: its
 * slot is flagged with the error text and its tensor is zeros.
 */
#ifndef QE_PIPELINE_H
#define QE_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "qe_util.h"

typedef struct qe_batch {
    size_t first;                  /* index (into the item array) of the batch's first image */
    int n;
    float *x;                      /* n x QE_TENSOR_FLOATS */
    char (*error)[QE_ERR_LEN];     /* error[i][0] != 0: image i failed, text says why */
} qe_batch;

typedef struct qe_pipeline qe_pipeline;

/* Starts `workers` threads over items[0..count). items must outlive the pipeline. With
 * workers = 0 no thread is started: next() decodes each batch itself on the OpenMP threads,
 * which then do not compete for the cores with decoding threads (no overlap either). */
qe_pipeline *qe_pipeline_start(const qe_dataset_item *items, size_t count, int batch, int workers,
                               int64_t max_pixels);
/* Blocks until the next batch is ready; NULL after the last one. */
qe_batch *qe_pipeline_next(qe_pipeline *p);
/* Hands a batch back for reuse (every batch from next() must be released). */
void qe_pipeline_release(qe_pipeline *p, qe_batch *b);
/* Stops the workers (also mid-run) and frees everything. */
void qe_pipeline_stop(qe_pipeline *p);

/* Reads and preprocesses one file into a normalised tensor (what the workers do per image). */
int qe_pipeline_load_tensor(const char *path, int64_t max_pixels, float *x, char *err);

#endif
