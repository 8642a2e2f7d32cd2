/*
 * pipeline.h - reads, decodes and preprocesses images on worker threads ahead of the consumer,
 * so that evaluation is not bound by one core's JPEG decoding.
 *
 * Batches come out in dataset order; each holds the center crops (HWC u8, image.h) of up to
 * `batch` consecutive items, a quarter of the bytes of their float tensors: the quantized
 * network reads the crops directly, the FP32 one normalises them. An image that cannot be read
 * or decoded does not stop the run: its slot is flagged with the error text and its crop is
 * zeros.
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
    uint8_t *crops;                /* n x QE_CROP_BYTES */
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

/* Reads, decodes and crops one file (what the workers do per image). */
int qe_pipeline_load_crop(const char *path, int64_t max_pixels, uint8_t *crop, char *err);
/* The same, then normalised into a tensor. */
int qe_pipeline_load_tensor(const char *path, int64_t max_pixels, float *x, char *err);

#endif
