/*
 * FP32 engine against PyTorch (shared/golden/fp32): logits of the 32 golden images within
 * 1e-4 x max|logit| with identical top-5, and top-1 of all 600 dev images equal to the golden
 * top-1 except where the golden margin is below that tolerance. Both synthetic models, through
 * the whole pipeline (JPEG bytes -> logits), on the dispatched kernels and on the portable ones.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "cpu.h"
#include "dataset.h"
#include "f32net.h"
#include "image.h"
#include "model.h"
#include "pipeline.h"
#include "qtest.h"
#include "resnet.h"

static qe_f32net *open_net(const char *arch_name)
{
    char path[256], err[QE_ERR_LEN];
    snprintf(path, sizeof path, "models/%s.pth", arch_name);
    qe_statedict sd;
    if (qe_statedict_load(qtest_build(path), (size_t)1 << 30, &sd, err)) {
        fprintf(stderr, "load: %s\n", err);
        return NULL;
    }
    qe_arch arch;
    qe_resnet_arch_parse(arch_name, &arch);
    qe_resnet_params p;
    int rc = qe_resnet_params_load(arch, &sd, &p, err);
    qe_statedict_free(&sd);
    if (rc) {
        fprintf(stderr, "params: %s\n", err);
        return NULL;
    }
    qe_f32net *net = qe_f32net_create(&p);
    qe_resnet_params_free(&p);
    return net;
}

static float *read_f32(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    float *v = malloc(n * sizeof *v);
    size_t got = fread(v, sizeof *v, n, f);
    fclose(f);
    if (got != n) {
        free(v);
        return NULL;
    }
    return v;
}

/* The 32 golden images: logits and top-5. */
static void check_golden_logits(qe_f32net *net, const char *arch, float *out)
{
    json_error_t je;
    json_t *man = json_load_file(qtest_shared("golden/fp32/manifest.json"), 0, &je);
    REQUIRE(man);
    json_t *imgs = json_object_get(man, "logits_images");
    int n = (int)json_array_size(imgs);
    REQUIRE(n == 32);
    char rel[128];
    snprintf(rel, sizeof rel, "golden/fp32/logits-%s.f32", arch);
    float *golden = read_f32(qtest_shared(rel), (size_t)n * 1000);
    REQUIRE(golden);
    float *x = malloc((size_t)n * QE_TENSOR_FLOATS * sizeof(float));
    float *logits = malloc((size_t)n * 1000 * sizeof(float));
    for (int i = 0; i < n; i++) {
        char p[256], err[QE_ERR_LEN];
        snprintf(p, sizeof p, "data/dev/%s", json_string_value(json_array_get(imgs, (size_t)i)));
        CHECKF(qe_pipeline_load_tensor(qtest_shared(p), QE_DEFAULT_MAX_PIXELS, x + (size_t)i * QE_TENSOR_FLOATS, err) == 0, "%s", err);
    }
    /* Two batch sizes: results must not depend on how images are grouped beyond rounding. The
     * sanitizer run checks the first 8 images. */
    if (qtest_quick())
        n = 8;
    qe_f32net_forward(net, x, 5, logits);
    qe_f32net_forward(net, x + 5 * (size_t)QE_TENSOR_FLOATS, n - 5, logits + 5000);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        const float *g = golden + (size_t)i * 1000, *l = logits + (size_t)i * 1000;
        float mx = 0;
        for (int k = 0; k < 1000; k++)
            mx = fabsf(g[k]) > mx ? fabsf(g[k]) : mx;
        double tol = 1e-4 * mx, err = 0;
        for (int k = 0; k < 1000; k++)
            err = fmax(err, fabs((double)l[k] - g[k]));
        worst = fmax(worst, err / mx);
        CHECKF(err <= tol, "%s image %d: max |logit diff| %.3g > %.3g", arch, i, err, tol);
        int ta[5], tb[5];
        qe_topk(g, 1000, 5, ta);
        qe_topk(l, 1000, 5, tb);
        for (int k = 0; k < 5; k++)
            CHECKF(ta[k] == tb[k], "%s image %d: top-5[%d] %d vs golden %d", arch, i, k, tb[k], ta[k]);
    }
    fprintf(stderr, "%s (%s): %d golden images, worst |diff|/max|logit| = %.2e\n", arch, qe_cpu_isa_name(), n, worst);
    if (out)
        memcpy(out, logits, (size_t)n * 1000 * sizeof *logits);
    free(x);
    free(logits);
    free(golden);
    json_decref(man);
}

/* All 600 dev images through the pipeline: top-1 vs top5-<arch>.csv. */
static void check_dev_top1(qe_f32net *net, const char *arch)
{
    char rel[128], line[512];
    snprintf(rel, sizeof rel, "golden/fp32/top5-%s.csv", arch);
    FILE *f = fopen(qtest_shared(rel), "r");
    REQUIRE(f);
    REQUIRE(fgets(line, sizeof line, f));   /* header */
    qe_dataset ds;
    char err[QE_ERR_LEN];
    REQUIRE(qe_dataset_open(qtest_shared("data/dev"), NULL, &ds, err) == 0);
    REQUIRE(ds.count == 600);
    float *logits = malloc(16 * 1000 * sizeof(float));
    float *x = qe_malloc_aligned(16 * (size_t)QE_TENSOR_FLOATS * sizeof(float));
    qe_pipeline *p = qe_pipeline_start(ds.items, ds.count, 16, 2, QE_DEFAULT_MAX_PIXELS);
    qe_batch *b;
    int agree = 0, excused = 0, rows = 0;
    while ((b = qe_pipeline_next(p)) != NULL) {
        qe_image_normalize_batch(b->crops, b->n, x);
        qe_f32net_forward(net, x, b->n, logits);
        for (int i = 0; i < b->n; i++) {
            const qe_dataset_item *it = &ds.items[b->first + (size_t)i];
            char path[256];
            int label, pred[5];
            double logit1, margin;
            REQUIRE(fgets(line, sizeof line, f));
            REQUIRE(sscanf(line, "%255[^,],%d,%d,%d,%d,%d,%d,%lf,%lf", path, &label, &pred[0], &pred[1], &pred[2],
                           &pred[3], &pred[4], &logit1, &margin) == 9);
            CHECKF(strcmp(path, it->rel) == 0 && label == it->label, "dataset order/label differ at %s", path);
            CHECKF(b->error[i][0] == 0, "%s: %s", path, b->error[i]);
            int top[5];
            const float *l = logits + (size_t)i * 1000;
            qe_topk(l, 1000, 5, top);
            float mx = 0;
            for (int k = 0; k < 1000; k++)
                mx = fabsf(l[k]) > mx ? fabsf(l[k]) : mx;
            rows++;
            if (top[0] == pred[0])
                agree++;
            else if (margin < 1e-4 * mx)
                excused++;
            else
                CHECKF(0, "%s %s: top-1 %d, golden %d (margin %.4g)", arch, path, top[0], pred[0], margin);
        }
        qe_pipeline_release(p, b);
    }
    qe_pipeline_stop(p);
    fprintf(stderr, "%s: top-1 agrees on %d/%d dev images (%d near-ties excused)\n", arch, agree, rows, excused);
    CHECK(rows == 600);
    free(logits);
    qe_free_aligned(x);
    fclose(f);
    qe_dataset_free(&ds);
}

/* check_golden_logits with the kernels of no rung above isa (the network built under the cap). */
static void check_golden_logits_capped(qe_isa isa, const char *arch, float *out)
{
    qe_cpu_cap(isa);
    qe_f32net *net = open_net(arch);
    CHECK(net != NULL);
    if (net)
        check_golden_logits(net, arch, out);
    qe_f32net_free(net);
    qe_cpu_cap(QE_ISA_BEST);
}

int main(void)
{
    static const char *archs[] = {"resnet18", "resnet50"};
    for (int a = 0; a < 2; a++) {
        qe_f32net *net = open_net(archs[a]);
        CHECK(net != NULL);
        if (!net)
            continue;
        float *best = calloc(32 * 1000, sizeof *best);
        check_golden_logits(net, archs[a], best);
        if (!qtest_quick())   /* the sanitizer run's cli_eval covers the pipeline on 96 of them */
            check_dev_top1(net, archs[a]);
        qe_f32net_free(net);
        /* The portable kernels on the whole network: ResNet18 is enough (test_conv covers every
         * layer shape of both networks on both paths). */
        if (qe_cpu_get()->avx2 && a == 0)
            check_golden_logits_capped(QE_ISA_PORTABLE, archs[a], NULL);
        /* The AVX2 and AVX-512 kernels perform the same operations in the same order (gemm_f32.h):
         * the whole network's logits must be the same bits. */
        if (qe_cpu_get()->avx512vnni) {
            float *avx2 = calloc(32 * 1000, sizeof *avx2);
            check_golden_logits_capped(QE_ISA_AVX2, archs[a], avx2);
            CHECKF(memcmp(best, avx2, 32 * 1000 * sizeof *best) == 0, "%s: AVX2 and AVX-512 logits differ",
                   archs[a]);
            free(avx2);
        }
        free(best);
    }
    return qtest_done("test_fp32");
}
