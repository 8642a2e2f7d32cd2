/*
 * evaluate.h - one evaluation pass of a model over dataset items, shared by `quanteval eval`
 * and the daemon's jobs: decode (pipeline.h) overlapped with inference, the model's logits
 * (quantized for quantized configs) and optionally the FP32 logits of the same images, top-5
 * per image handed to the caller batch by batch (to record, print or stream).
 */
#ifndef QE_EVALUATE_H
#define QE_EVALUATE_H

#include <stddef.h>

#include "dataset.h"
#include "model.h"

typedef struct qe_eval_batch {
    size_t first;                  /* index of the batch's first item (into the items array) */
    int n;
    const qe_dataset_item *items;  /* items[0..n) of this batch */
    const int (*top5)[5];          /* model predictions (quantized for quantized configs) */
    const int (*fp32_top5)[5];     /* FP32 predictions, NULL unless requested */
    char (*error)[QE_ERR_LEN];     /* error[i][0] != 0: image i unreadable (its top5 are -1) */
} qe_eval_batch;

typedef struct qe_eval_counts {
    size_t images, failed;         /* evaluated, unreadable */
    size_t correct1, correct5;
    size_t fp32_correct1, fp32_correct5, agree;   /* agree: top-1 equal to the FP32 top-1 */
    double seconds;
} qe_eval_counts;

/* Called after every batch; a non-zero return stops the pass (counts so far are kept). */
typedef int (*qe_eval_fn)(void *ctx, const qe_eval_batch *b, const qe_eval_counts *so_far);

/* Evaluates items[first .. first+count); images declaring more than max_pixels pixels count as
 * unreadable. with_fp32 requires m->f32. Returns 1 if stopped by
 * the callback, 0 when complete. */
int qe_evaluate(qe_model *m, const qe_dataset_item *items, size_t first, size_t count, int batch, int workers,
                int64_t max_pixels, int with_fp32, qe_eval_fn fn, void *ctx, qe_eval_counts *counts);

#endif
