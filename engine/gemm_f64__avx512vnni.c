/*
 * gemm_f64__avx512vnni.c - AVX-512 f64 GEMM microkernels of the calibration convolution
 * (contract in gemm_f64.h), for the AVX-512 rung of cpu.h.
 *
 * One 8-double ZMM vector is a whole panel row, so a tile of 8 rows keeps 8 FMA chains in
 * flight from one weight load and one broadcast per row and k: twice the AVX2 kernel's
 * multiply-adds per instruction (ResNet50's convolutions 1.4x faster; 12-row tiles measured
 * slower on the large-K and wide layers). Kernels exist up to 12 rows. As there, the FMA is exact: the product of two widened f32
 * values needs no rounding, and each output sums its products in k order.
 */
#include "gemm_f64.h"

#include <immintrin.h>

static inline __attribute__((always_inline)) void
gemm_tile(const int mr, size_t nc, size_t kc, const double *a, size_t a_stride, const double *w,
          double *acc, size_t acc_stride, const qe_f64_gemm_params *params)
{
    const double *ar[QE_F64_GEMM_MR_MAX];
    __m512d s[QE_F64_GEMM_MR_MAX];

#pragma GCC unroll 12
    for (int r = 0; r < mr; r++) {
        ar[r] = a + r * a_stride;
        s[r] = params->first ? _mm512_setzero_pd() : _mm512_loadu_pd(acc + r * acc_stride);
    }

#pragma GCC unroll 2
    for (size_t k = 0; k < kc; k++) {
        const __m512d w0 = _mm512_load_pd(w);
        w += QE_F64_GEMM_NR;
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++)
            s[r] = _mm512_fmadd_pd(_mm512_set1_pd(ar[r][k]), w0, s[r]);
    }

    if (!params->out) {
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++)
            _mm512_storeu_pd(acc + r * acc_stride, s[r]);
        return;
    }
    const __m512d b = _mm512_loadu_pd(params->bias);
    const __mmask8 mask = (__mmask8)((1u << nc) - 1);
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++) {
        /* One f64 add of the bias, then the one rounding to f32 (§3.6.2). */
        __m256 y = _mm512_cvtpd_ps(_mm512_add_pd(s[r], b));
        if (params->relu)   /* maxps(y, 0) is y > 0 ? y : 0, NaN and -0 included */
            y = _mm256_max_ps(y, _mm256_setzero_ps());
        _mm256_mask_storeu_ps(params->out + r * params->out_stride, mask, y);
    }
}

/* gemm_tile over two adjacent panels (gemm_f64.h, qe_f64_gemm_ukernel2_fn): 2 * mr chains of
 * FMAs from two weight loads and mr broadcasts per k, where the one-panel tile issues one
 * broadcast per FMA and keeps only mr chains in flight. */
static inline __attribute__((always_inline)) void
gemm_tile2(const int mr, size_t nc, size_t kc, const double *a, size_t a_stride, const double *w,
           size_t w_next, double *acc, size_t acc_stride, const qe_f64_gemm_params *params)
{
    const double *ar[QE_F64_GEMM_MR_MAX];
    __m512d s0[QE_F64_GEMM_MR_MAX], s1[QE_F64_GEMM_MR_MAX];

#pragma GCC unroll 12
    for (int r = 0; r < mr; r++) {
        ar[r] = a + r * a_stride;
        s0[r] = params->first ? _mm512_setzero_pd() : _mm512_loadu_pd(acc + r * acc_stride);
        s1[r] = params->first ? _mm512_setzero_pd() : _mm512_loadu_pd(acc + r * acc_stride + 8);
    }

    const double *w1 = w + w_next;
    for (size_t k = 0; k < kc; k++) {
        const __m512d w0v = _mm512_load_pd(w), w1v = _mm512_load_pd(w1);
        w += QE_F64_GEMM_NR;
        w1 += QE_F64_GEMM_NR;
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++) {
            const __m512d x = _mm512_set1_pd(ar[r][k]);
            s0[r] = _mm512_fmadd_pd(x, w0v, s0[r]);
            s1[r] = _mm512_fmadd_pd(x, w1v, s1[r]);
        }
    }

    if (!params->out) {
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++) {
            _mm512_storeu_pd(acc + r * acc_stride, s0[r]);
            _mm512_storeu_pd(acc + r * acc_stride + 8, s1[r]);
        }
        return;
    }
    const __m512d b0 = _mm512_loadu_pd(params->bias), b1 = _mm512_loadu_pd(params->bias + 8);
    const __mmask8 mask1 = (__mmask8)((1u << (nc - 8)) - 1);
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++) {
        __m256 y0 = _mm512_cvtpd_ps(_mm512_add_pd(s0[r], b0));
        __m256 y1 = _mm512_cvtpd_ps(_mm512_add_pd(s1[r], b1));
        if (params->relu) {
            y0 = _mm256_max_ps(y0, _mm256_setzero_ps());
            y1 = _mm256_max_ps(y1, _mm256_setzero_ps());
        }
        _mm256_storeu_ps(params->out + r * params->out_stride, y0);
        _mm256_mask_storeu_ps(params->out + r * params->out_stride + 8, mask1, y1);
    }
}

#define DEFINE_UKERNEL(MR)                                                                       \
    void qe_f64_gemm_ukernel_##MR##x8__avx512vnni(size_t nc, size_t kc, const double *a,         \
                                                  size_t a_stride, const double *w, double *acc, \
                                                  size_t acc_stride, const qe_f64_gemm_params *p) \
    {                                                                                            \
        gemm_tile(MR, nc, kc, a, a_stride, w, acc, acc_stride, p);                               \
    }                                                                                            \
    void qe_f64_gemm_ukernel_##MR##x16__avx512vnni(size_t nc, size_t kc, const double *a,        \
                                                   size_t a_stride, const double *w,             \
                                                   size_t w_next, double *acc,                   \
                                                   size_t acc_stride, const qe_f64_gemm_params *p) \
    {                                                                                            \
        gemm_tile2(MR, nc, kc, a, a_stride, w, w_next, acc, acc_stride, p);                      \
    }
DEFINE_UKERNEL(1)
DEFINE_UKERNEL(2)
DEFINE_UKERNEL(3)
DEFINE_UKERNEL(4)
DEFINE_UKERNEL(5)
DEFINE_UKERNEL(6)
DEFINE_UKERNEL(7)
DEFINE_UKERNEL(8)
DEFINE_UKERNEL(9)
DEFINE_UKERNEL(10)
DEFINE_UKERNEL(11)
DEFINE_UKERNEL(12)
