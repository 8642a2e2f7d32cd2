/*
 * nets.h - the networks and inputs the benchmarks run: the built-in synthetic checkpoints
 * (speed does not depend on the weights) and random inputs.
 */
#ifndef QE_BENCH_NETS_H
#define QE_BENCH_NETS_H

#include <stdint.h>

#include "qsim.h"
#include "resnet.h"

/* The synthetic checkpoint of arch_name ("resnet18" | "resnet50") as parameters; exits on failure. */
void qe_bench_params(const char *arch_name, qe_resnet_params *p);

/* n center crops of random bytes (n x QE_CROP_BYTES, free()), the input the data pipeline
 * hands the networks; and their normalised tensors (qe_free_aligned()). */
uint8_t *qe_bench_random_crops(int n);
float *qe_bench_random_images(int n);

/* A quantized net calibrated on calib_n random images in batches of 128. *zoo_seconds (if not
 * NULL) receives the time extrapolated to the zoo's 2000 images: the first batch (which also
 * maps the buffers) and the final encoding search once, the later batches in proportion. */
qe_qsim *qe_bench_quantized(const qe_resnet_params *p, int bw, int calib_n, double *calib_seconds,
                            double *zoo_seconds);

#endif
