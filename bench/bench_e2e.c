/*
 * bench_e2e - end-to-end evaluation speed against inference alone, on the same images, in the
 * same process, alternating the two so that a noisy neighbour hits both alike.
 *
 *   bench_e2e [--dataset DIR] [--arch resnet18|resnet50|all] [--bits 8|4] [--batch N]
 *             [--threads N] [--rounds R] [--json]
 *
 * Each round times two passes over the dataset (default ../shared/data/dev, the 600 dev images):
 *   inference  the quantized network on crops decoded beforehand and held in memory;
 *   end-to-end what `quanteval eval --no-fp32` runs: the data pipeline (read, decode, resize,
 *              crop on the compute threads between batches, its default) feeding the network.
 * The ratio end-to-end / inference is printed per round with the median over rounds. The
 * network is the synthetic checkpoint calibrated on random inputs (speed does not depend on
 * the values). A single-thread decode pass gives the per-image cost of the preprocessing.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "dataset.h"
#include "image.h"
#include "model.h"
#include "nets.h"
#include "pipeline.h"
#include "qe_util.h"
#include "qsim.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Images/s of the network over crops already in memory. */
static double pass_inference(qe_qsim *q, const uint8_t *crops, size_t count, int batch, float *logits)
{
    double t0 = qe_now();
    for (size_t i = 0; i < count; i += (size_t)batch) {
        int n = count - i < (size_t)batch ? (int)(count - i) : batch;
        qe_qsim_forward_crops(q, crops + i * QE_CROP_BYTES, n, logits);
        int top[5];
        for (int k = 0; k < n; k++)
            qe_topk(logits + (size_t)k * 1000, 1000, 5, top);
    }
    return (double)count / (qe_now() - t0);
}

/* Images/s of the pipeline feeding the network, as evaluation runs them. */
static double pass_e2e(qe_qsim *q, const qe_dataset *ds, int batch, float *logits)
{
    double t0 = qe_now();
    qe_pipeline *p = qe_pipeline_start(ds->items, ds->count, batch, 0, QE_DEFAULT_MAX_PIXELS);
    qe_batch *b;
    while ((b = qe_pipeline_next(p)) != NULL) {
        qe_qsim_forward_crops(q, b->crops, b->n, logits);
        int top[5];
        for (int k = 0; k < b->n; k++)
            qe_topk(logits + (size_t)k * 1000, 1000, 5, top);
        qe_pipeline_release(p, b);
    }
    qe_pipeline_stop(p);
    return (double)ds->count / (qe_now() - t0);
}

/* Decodes every image once (single thread): the crops for the inference pass and the per-image
 * cost of the preprocessing. Exits if an image fails. */
static uint8_t *load_all(const qe_dataset *ds, double *ms_per_image)
{
    uint8_t *crops = qe_malloc(ds->count * QE_CROP_BYTES);
    char err[QE_ERR_LEN];
    double t0 = qe_now();
    for (size_t i = 0; i < ds->count; i++)
        if (qe_pipeline_load_crop(ds->items[i].path, QE_DEFAULT_MAX_PIXELS, crops + i * QE_CROP_BYTES, err)) {
            fprintf(stderr, "bench_e2e: %s: %s\n", ds->items[i].path, err);
            exit(2);
        }
    *ms_per_image = (qe_now() - t0) * 1e3 / (double)ds->count;
    return crops;
}

int main(int argc, char **argv)
{
    const char *dataset = "../shared/data/dev", *archs = "all";
    int bits = 8, batch = 16, threads = 2, rounds = 5, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if (!v || strncmp(a, "--", 2)) {
            fprintf(stderr, "usage: bench_e2e [--dataset DIR] [--arch resnet18|resnet50|all] [--bits 8|4]\n"
                            "                 [--batch N] [--threads N] [--rounds R] [--json]\n");
            return 2;
        }
        i++;
        if (!strcmp(a, "--dataset")) dataset = v;
        else if (!strcmp(a, "--arch")) archs = v;
        else if (!strcmp(a, "--bits")) bits = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--rounds")) rounds = atoi(v);
        else {
            fprintf(stderr, "bench_e2e: unknown option %s\n", a);
            return 2;
        }
    }
    if ((bits != 8 && bits != 4) || batch < 1 || threads < 1 || rounds < 1 || rounds > 99) {
        fprintf(stderr, "bench_e2e: --bits is 8 or 4; --batch, --threads >= 1; --rounds 1..99\n");
        return 2;
    }
    omp_set_num_threads(threads);
    qe_dataset ds;
    char err[QE_ERR_LEN];
    if (qe_dataset_open(dataset, NULL, &ds, err)) {
        fprintf(stderr, "bench_e2e: %s\n", err);
        return 2;
    }
    double decode_ms;
    uint8_t *crops = load_all(&ds, &decode_ms);
    float *logits = qe_malloc((size_t)batch * 1000 * sizeof(float));
    if (!json)
        printf("%zu images of %s; read + decode + resize + crop %.3f ms per image on one core; isa %s, "
               "%d threads, batch %d\n", ds.count, dataset, decode_ms, qe_cpu_isa_name(), threads, batch);
    if (json)
        printf("[");
    static const char *names[2] = {"resnet18", "resnet50"};
    int first = 1;
    for (int a = 0; a < 2; a++) {
        if (strcmp(archs, "all") && strcmp(archs, names[a]))
            continue;
        qe_resnet_params p;
        qe_bench_params(names[a], &p);
        qe_qsim *q = qe_bench_quantized(&p, bits, 8, NULL, NULL);
        qe_resnet_params_free(&p);
        pass_inference(q, crops, (size_t)batch < ds.count ? (size_t)batch : ds.count, batch, logits);   /* warm-up */
        double inf[99] = {0}, e2e[99] = {0}, ratio[99] = {0};
        for (int r = 0; r < rounds; r++) {
            inf[r] = pass_inference(q, crops, ds.count, batch, logits);
            e2e[r] = pass_e2e(q, &ds, batch, logits);
            ratio[r] = e2e[r] / inf[r];
            if (!json)
                printf("%s w%da8 round %d: inference %.1f images/s, end-to-end %.1f images/s = %.1f%%\n", names[a],
                       bits, r + 1, inf[r], e2e[r], 100 * ratio[r]);
        }
        qsort(inf, (size_t)rounds, sizeof *inf, cmp_double);
        qsort(e2e, (size_t)rounds, sizeof *e2e, cmp_double);
        qsort(ratio, (size_t)rounds, sizeof *ratio, cmp_double);
        double mi = inf[rounds / 2], me = e2e[rounds / 2], mr = ratio[rounds / 2];
        if (json)
            printf("%s{\"arch\": \"%s\", \"precision\": \"w%da8\", \"batch\": %d, \"threads\": %d, \"images\": %zu, "
                   "\"inference_ips\": %.2f, \"e2e_ips\": %.2f, \"ratio\": %.4f, \"ratio_min\": %.4f, "
                   "\"decode_ms\": %.4f}",
                   first ? "" : ", ", names[a], bits, batch, threads, ds.count, mi, me, mr, ratio[0], decode_ms);
        else
            printf("%s w%da8 median of %d rounds: inference %.1f, end-to-end %.1f images/s; ratio %.1f%% "
                   "(lowest %.1f%%)\n", names[a], bits, rounds, mi, me, 100 * mr, 100 * ratio[0]);
        first = 0;
        qe_qsim_free(q);
    }
    if (json)
        printf("]\n");
    free(logits);
    free(crops);
    qe_dataset_free(&ds);
    return 0;
}
