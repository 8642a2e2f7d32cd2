/*
 * gemm_f32.h - f32 GEMM microkernels of the float convolution (internal to conv_f32.c).
 *
 * A microkernel computes one MR x 16 tile of C = A * B over a K block of kc:
 *   A: MR rows of kc floats, row r at a + r * a_stride (any alignment);
 *   B: one packed weight panel, kc rows of 16 floats (64-byte aligned), zero beyond cout;
 *   C: MR rows of 16 floats at c + r * c_stride, of which the first nc (1..16) are stored.
 * Accumulators start from params->bias (first K block) or from C (later blocks); on the last
 * block params->residual is added, then max(., 0) if params->relu. Names follow XNNPACK:
 * qe_f32_gemm_ukernel_<MR>x16__<isa>. Every MR from 1 to 6 has its own kernel so a short tail
 * of rows costs in proportion to its rows.
 */
#ifndef QE_GEMM_F32_H
#define QE_GEMM_F32_H

#include <stddef.h>

#define QE_F32_GEMM_MR 6
#define QE_F32_GEMM_NR 16

typedef struct qe_f32_gemm_params {
    const float *bias;      /* [16]: accumulators start here; NULL: they start from C */
    const float *residual;  /* NULL, or MR rows shaped like C (same stride), added at the end */
    int relu;
} qe_f32_gemm_params;

typedef void (*qe_f32_gemm_ukernel_fn)(size_t nc, size_t kc, const float *a, size_t a_stride,
                                       const float *w, float *c, size_t c_stride,
                                       const qe_f32_gemm_params *params);

/* The kernels of one ISA, indexed by the number of rows of the tile (1..QE_F32_GEMM_MR). */
typedef struct qe_f32_gemm_config {
    const char *isa;
    qe_f32_gemm_ukernel_fn ukernel[QE_F32_GEMM_MR + 1];
} qe_f32_gemm_config;

/* The AVX2+FMA table when qe_cpu_get()->avx2, else the portable one; read on every call so a
 * test can switch paths with qe_cpu_force_portable(). */
const qe_f32_gemm_config *qe_f32_gemm_config_get(void);
/* The portable table (tests compare every path against it). */
const qe_f32_gemm_config *qe_f32_gemm_config_scalar(void);

#define QE_F32_GEMM_DECLARE(isa)                                                              \
    void qe_f32_gemm_ukernel_1x16__##isa(size_t, size_t, const float *, size_t, const float *, \
                                         float *, size_t, const qe_f32_gemm_params *);         \
    void qe_f32_gemm_ukernel_2x16__##isa(size_t, size_t, const float *, size_t, const float *, \
                                         float *, size_t, const qe_f32_gemm_params *);         \
    void qe_f32_gemm_ukernel_3x16__##isa(size_t, size_t, const float *, size_t, const float *, \
                                         float *, size_t, const qe_f32_gemm_params *);         \
    void qe_f32_gemm_ukernel_4x16__##isa(size_t, size_t, const float *, size_t, const float *, \
                                         float *, size_t, const qe_f32_gemm_params *);         \
    void qe_f32_gemm_ukernel_5x16__##isa(size_t, size_t, const float *, size_t, const float *, \
                                         float *, size_t, const qe_f32_gemm_params *);         \
    void qe_f32_gemm_ukernel_6x16__##isa(size_t, size_t, const float *, size_t, const float *, \
                                         float *, size_t, const qe_f32_gemm_params *);
QE_F32_GEMM_DECLARE(scalar)
QE_F32_GEMM_DECLARE(avx2)

#endif
