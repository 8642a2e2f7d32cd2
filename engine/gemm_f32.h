/*
 * gemm_f32.h - f32 indirect-GEMM microkernels of the float convolution (internal to conv_f32.c).
 *
 * A microkernel computes one MR x 16 tile of C = A * B over one K block made of ks segments of
 * kc floats each (XNNPACK's "igemm": A is read in place through pointers, never copied):
 *   A: a[s * MR + r] points at the kc floats of row r in segment s (any alignment);
 *   B: one packed weight panel, ks * kc rows of 16 floats (64-byte aligned), zero beyond cout;
 *   C: MR rows of 16 floats at c + r * c_stride, of which the first nc (1..16) are stored.
 * Accumulators start from params->bias (first K block) or from C (later blocks); params->residual
 * is added at the end of the call (the caller passes it on one K block, usually the last), then
 * max(., 0) if params->relu (last block only), and params->stream may ask
 * for non-temporal stores of a C that will not be read again soon. Names follow XNNPACK:
 * qe_f32_igemm_ukernel_<MR>x16__<isa>. Every MR from 1 to the ISA's tile height has its own
 * kernel so a short tail of rows costs in proportion to its rows.
 */
#ifndef QE_GEMM_F32_H
#define QE_GEMM_F32_H

#include <stddef.h>

#define QE_F32_GEMM_MR_MAX 12   /* the tallest tile of any ISA's kernels */
#define QE_F32_GEMM_NR 16

typedef struct qe_f32_gemm_params {
    const float *bias;      /* [16]: accumulators start here; NULL: they start from C */
    const float *residual;  /* NULL, or MR rows shaped like C (same stride), added at the end */
    int relu;
    int stream;             /* a hint: store C past the caches (rows 32-byte aligned) */
} qe_f32_gemm_params;

typedef void (*qe_f32_igemm_ukernel_fn)(size_t nc, size_t ks, size_t kc,
                                        const float *const *a, const float *w, float *c,
                                        size_t c_stride, const qe_f32_gemm_params *params);

/* The same over two adjacent weight panels, an MR x 32 tile: the second panel's block starts at
 * w + w_next floats, nc is 17..32, and bias, C and the residual rows hold 32 columns. One
 * broadcast of each A value feeds two FMAs. Each output still gets the same operations in the
 * same order as from the one-panel kernel, so the bits are the same. */
typedef void (*qe_f32_igemm2_ukernel_fn)(size_t nc, size_t ks, size_t kc, const float *const *a,
                                         const float *w, size_t w_next, float *c, size_t c_stride,
                                         const qe_f32_gemm_params *params);

/* The kernels of one ISA, indexed by the number of rows of the tile (1..mr). */
typedef struct qe_f32_gemm_config {
    const char *isa;
    int mr;                 /* rows of a full tile */
    qe_f32_igemm_ukernel_fn igemm[QE_F32_GEMM_MR_MAX + 1];
    qe_f32_igemm2_ukernel_fn igemm2[QE_F32_GEMM_MR_MAX + 1];   /* all NULL: one panel at a time */
} qe_f32_gemm_config;

/* The AVX-512 table on the AVX-512 rung of cpu.h, AVX2+FMA with AVX2, else the portable one;
 * read on every call so a test can switch paths with qe_cpu_cap(). */
const qe_f32_gemm_config *qe_f32_gemm_config_get(void);
/* The portable table (tests compare every path against it; it has kernels up to
 * QE_F32_GEMM_MR_MAX rows for that purpose). */
const qe_f32_gemm_config *qe_f32_gemm_config_scalar(void);

#define QE_F32_IGEMM_DECLARE(mr, isa)                                                      \
    void qe_f32_igemm_ukernel_##mr##x16__##isa(size_t nc, size_t ks, size_t kc,            \
                                               const float *const *a, const float *w,      \
                                               float *c, size_t c_stride,                  \
                                               const qe_f32_gemm_params *params);
#define QE_F32_IGEMM_DECLARE_ALL(isa)                                                      \
    QE_F32_IGEMM_DECLARE(1, isa) QE_F32_IGEMM_DECLARE(2, isa) QE_F32_IGEMM_DECLARE(3, isa) \
    QE_F32_IGEMM_DECLARE(4, isa) QE_F32_IGEMM_DECLARE(5, isa) QE_F32_IGEMM_DECLARE(6, isa)
QE_F32_IGEMM_DECLARE_ALL(scalar)
QE_F32_IGEMM_DECLARE_ALL(avx2)
QE_F32_IGEMM_DECLARE_ALL(avx512vnni)
#define QE_F32_IGEMM_DECLARE_TALL(isa)                                                       \
    QE_F32_IGEMM_DECLARE(7, isa) QE_F32_IGEMM_DECLARE(8, isa) QE_F32_IGEMM_DECLARE(9, isa)   \
    QE_F32_IGEMM_DECLARE(10, isa) QE_F32_IGEMM_DECLARE(11, isa) QE_F32_IGEMM_DECLARE(12, isa)
QE_F32_IGEMM_DECLARE_TALL(scalar)
QE_F32_IGEMM_DECLARE_TALL(avx512vnni)
#define QE_F32_IGEMM2_DECLARE(mr)                                                            \
    void qe_f32_igemm_ukernel_##mr##x32__avx512vnni(size_t nc, size_t ks, size_t kc,         \
                                                    const float *const *a, const float *w,   \
                                                    size_t w_next, float *c, size_t c_stride, \
                                                    const qe_f32_gemm_params *params);
QE_F32_IGEMM2_DECLARE(1) QE_F32_IGEMM2_DECLARE(2) QE_F32_IGEMM2_DECLARE(3) QE_F32_IGEMM2_DECLARE(4)
QE_F32_IGEMM2_DECLARE(5) QE_F32_IGEMM2_DECLARE(6) QE_F32_IGEMM2_DECLARE(7) QE_F32_IGEMM2_DECLARE(8)
QE_F32_IGEMM2_DECLARE(9) QE_F32_IGEMM2_DECLARE(10) QE_F32_IGEMM2_DECLARE(11) QE_F32_IGEMM2_DECLARE(12)

#endif
