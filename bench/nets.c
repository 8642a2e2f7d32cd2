/*
 * nets.c - the benchmarks' networks and inputs (nets.h).
 */
#include "nets.h"

#include <stdio.h>
#include <stdlib.h>

#include "image.h"
#include "qe_util.h"
#include "synth.h"

void qe_bench_params(const char *arch_name, qe_resnet_params *p)
{
    char err[QE_ERR_LEN];
    qe_statedict sd;
    qe_arch arch;
    if (qe_resnet_arch_parse(arch_name, &arch) || qe_synth_statedict(arch_name, &sd, err) ||
        qe_resnet_params_load(arch, &sd, p, err)) {
        fprintf(stderr, "bench: cannot build %s: %s\n", arch_name, err);
        exit(2);
    }
    qe_statedict_free(&sd);
}

uint8_t *qe_bench_random_crops(int n)
{
    uint8_t *c = qe_malloc((size_t)n * QE_CROP_BYTES);
    unsigned s = 12345;
    for (size_t i = 0; i < (size_t)n * QE_CROP_BYTES; i++) {
        s = s * 1103515245u + 12345u;
        c[i] = (uint8_t)(s >> 16);
    }
    return c;
}

float *qe_bench_random_images(int n)
{
    uint8_t *c = qe_bench_random_crops(n);
    float *x = qe_malloc_aligned((size_t)n * QE_TENSOR_FLOATS * sizeof(float));
    qe_image_normalize_batch(c, n, x);
    free(c);
    return x;
}

qe_qsim *qe_bench_quantized(const qe_resnet_params *p, int bw, int calib_n, double *calib_seconds,
                          double *zoo_seconds)
{
    char err[QE_ERR_LEN];
    qe_qsim *q = qe_qsim_create(p, bw, QE_SCHEME_TF_ENHANCED, err);
    const int total = calib_n < 8 ? 8 : calib_n;
    float *x = qe_bench_random_images(total < 128 ? total : 128);
    double t0 = qe_now(), t_first = 0;
    for (int done = 0; done < total; done += 128) {
        int n = total - done;
        qe_qsim_calibrate_batch(q, x, n < 128 ? n : 128);
        if (done == 0)
            t_first = qe_now() - t0;
    }
    double t_batches = qe_now() - t0;
    if (qe_qsim_calibrate_finish(q, err)) {
        fprintf(stderr, "bench: %s\n", err);
        exit(2);
    }
    double t_all = qe_now() - t0;
    if (calib_seconds)
        *calib_seconds = t_all;
    if (zoo_seconds)
        *zoo_seconds = total > 128 ? t_all + (t_batches - t_first) * (2000.0 - total) / (total - 128)
                                   : t_all * 2000.0 / total;
    qe_free_aligned(x);
    return q;
}

