/*
 * gemm_f64.h - f64 GEMM microkernels of the exact calibration convolution (conv_f64acc.c,
 * spec quantsim.md §3.6.2).
 *
 * A microkernel adds the products of one K block into an MR x 8 tile of f64 accumulators:
 *   A: MR rows of kc doubles (f32 activations widened), row r at a + r * a_stride;
 *   B: one packed weight panel, kc rows of 8 doubles (f32 weights widened), 64-byte aligned;
 *   acc: MR rows of 8 doubles at acc + r * acc_stride, starting from 0 when params->first.
 * On the last K block (params->out != NULL) the kernel stores y = (float)(acc + bias), then
 * y > 0 ? y : 0 if params->relu (an f32 ReLU, §3.6.2), into the first nc (1..8) columns of out
 * instead of writing acc back.
 *
 * Every x*w of two f32 values is exact in f64 (24 + 24 significant bits <= 53), so an f64 FMA
 * rounds exactly like the product-then-add of the portable kernel: both paths sum each output
 * in k order with the same roundings and give bit-identical results.
 */
#ifndef QE_GEMM_F64_H
#define QE_GEMM_F64_H

#include <stddef.h>

#define QE_F64_GEMM_MR_MAX 12   /* the tallest tile of any ISA's kernels */
#define QE_F64_GEMM_NR 8

typedef struct qe_f64_gemm_params {
    int first;             /* accumulators start from 0 rather than from acc */
    const double *bias;    /* [8], used with out */
    float *out;            /* NULL: write acc back; else the last K block's f32 output rows */
    size_t out_stride;
    int relu;
} qe_f64_gemm_params;

typedef void (*qe_f64_gemm_ukernel_fn)(size_t nc, size_t kc, const double *a, size_t a_stride,
                                       const double *w, double *acc, size_t acc_stride,
                                       const qe_f64_gemm_params *params);

/* The same over two adjacent panels, an MR x 16 tile: the second panel's block starts at
 * w + w_next, nc is 9..16, acc and out rows hold 16 columns (bias 16 values). One broadcast of
 * each A value then feeds two FMAs. Each output still sums its products in k order, so the
 * results are those of the one-panel kernel, bit for bit. */
typedef void (*qe_f64_gemm_ukernel2_fn)(size_t nc, size_t kc, const double *a, size_t a_stride,
                                        const double *w, size_t w_next, double *acc,
                                        size_t acc_stride, const qe_f64_gemm_params *params);

/* The kernels of one ISA, indexed by the number of rows of the tile (1..mr). */
typedef struct qe_f64_gemm_config {
    const char *isa;
    int mr;                /* rows of a full tile */
    qe_f64_gemm_ukernel_fn ukernel[QE_F64_GEMM_MR_MAX + 1];
    qe_f64_gemm_ukernel2_fn ukernel2[QE_F64_GEMM_MR_MAX + 1];   /* all NULL: one panel at a time */
} qe_f64_gemm_config;

/* AVX-512 (8-row tiles) on the AVX-512 rung of cpu.h, AVX2+FMA (6 rows) on the AVX2 one, else
 * portable (6 rows); read on every call (see gemm_f32.h). */
const qe_f64_gemm_config *qe_f64_gemm_config_get(void);

#define QE_F64_GEMM_DECLARE(isa)                                                                 \
    void qe_f64_gemm_ukernel_1x8__##isa(size_t, size_t, const double *, size_t, const double *,  \
                                        double *, size_t, const qe_f64_gemm_params *);           \
    void qe_f64_gemm_ukernel_2x8__##isa(size_t, size_t, const double *, size_t, const double *,  \
                                        double *, size_t, const qe_f64_gemm_params *);           \
    void qe_f64_gemm_ukernel_3x8__##isa(size_t, size_t, const double *, size_t, const double *,  \
                                        double *, size_t, const qe_f64_gemm_params *);           \
    void qe_f64_gemm_ukernel_4x8__##isa(size_t, size_t, const double *, size_t, const double *,  \
                                        double *, size_t, const qe_f64_gemm_params *);           \
    void qe_f64_gemm_ukernel_5x8__##isa(size_t, size_t, const double *, size_t, const double *,  \
                                        double *, size_t, const qe_f64_gemm_params *);           \
    void qe_f64_gemm_ukernel_6x8__##isa(size_t, size_t, const double *, size_t, const double *,  \
                                        double *, size_t, const qe_f64_gemm_params *);
QE_F64_GEMM_DECLARE(scalar)
QE_F64_GEMM_DECLARE(avx2)
#define QE_F64_GEMM_DECLARE_AVX512(MR)                                                             \
    void qe_f64_gemm_ukernel_##MR##x8__avx512vnni(size_t, size_t, const double *, size_t,        \
                                                  const double *, double *, size_t,              \
                                                  const qe_f64_gemm_params *);                   \
    void qe_f64_gemm_ukernel_##MR##x16__avx512vnni(size_t, size_t, const double *, size_t,       \
                                                   const double *, size_t, double *, size_t,     \
                                                   const qe_f64_gemm_params *);
QE_F64_GEMM_DECLARE_AVX512(1)
QE_F64_GEMM_DECLARE_AVX512(2)
QE_F64_GEMM_DECLARE_AVX512(3)
QE_F64_GEMM_DECLARE_AVX512(4)
QE_F64_GEMM_DECLARE_AVX512(5)
QE_F64_GEMM_DECLARE_AVX512(6)
QE_F64_GEMM_DECLARE_AVX512(7)
QE_F64_GEMM_DECLARE_AVX512(8)
QE_F64_GEMM_DECLARE_AVX512(9)
QE_F64_GEMM_DECLARE_AVX512(10)
QE_F64_GEMM_DECLARE_AVX512(11)
QE_F64_GEMM_DECLARE_AVX512(12)

#endif
