#include "evaluate.h"

#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "pipeline.h"

static void score(const int *top, int label, size_t *c1, size_t *c5)
{
    *c1 += top[0] == label;
    for (int k = 0; k < 5; k++)
        *c5 += top[k] == label;
}

int qe_evaluate(qe_model *m, const qe_dataset_item *items, size_t first, size_t count, int batch, int workers,
                int64_t max_pixels, int with_fp32, qe_eval_fn fn, void *ctx, qe_eval_counts *c)
{
    memset(c, 0, sizeof *c);
    if (batch < 1)
        batch = 1;
    with_fp32 = with_fp32 && m->f32 && m->qsim;
    float *logits = qe_malloc((size_t)batch * 1000 * sizeof(float));
    int (*top5)[5] = qe_malloc((size_t)batch * sizeof *top5);
    int (*ftop5)[5] = with_fp32 ? qe_malloc((size_t)batch * sizeof *ftop5) : NULL;
    qe_pipeline *p = qe_pipeline_start(items + first, count, batch, workers, max_pixels);
    double t0 = qe_now();
    int stopped = 0;
    qe_batch *b;
    while (!stopped && (b = qe_pipeline_next(p)) != NULL) {
        qe_model_forward(m, b->crops, b->n, logits);
        for (int i = 0; i < b->n; i++)
            qe_topk(logits + (size_t)i * 1000, 1000, 5, top5[i]);
        if (with_fp32) {
            qe_model_forward_f32(m, b->crops, b->n, logits);
            for (int i = 0; i < b->n; i++)
                qe_topk(logits + (size_t)i * 1000, 1000, 5, ftop5[i]);
        }
        for (int i = 0; i < b->n; i++) {
            const qe_dataset_item *it = &items[first + b->first + (size_t)i];
            if (b->error[i][0]) {
                c->failed++;
                for (int k = 0; k < 5; k++)
                    top5[i][k] = -1;
                continue;
            }
            c->images++;
            score(top5[i], it->label, &c->correct1, &c->correct5);
            if (with_fp32) {
                score(ftop5[i], it->label, &c->fp32_correct1, &c->fp32_correct5);
                c->agree += top5[i][0] == ftop5[i][0];
            }
        }
        c->seconds = qe_now() - t0;
        qe_eval_batch eb = {first + b->first, b->n, &items[first + b->first], (const int(*)[5])top5,
                            (const int(*)[5])ftop5, b->error};
        if (fn && fn(ctx, &eb, c))
            stopped = 1;
        qe_pipeline_release(p, b);
    }
    c->seconds = qe_now() - t0;
    qe_pipeline_stop(p);
    free(logits);
    free(top5);
    free(ftop5);
    return stopped;
}
