/*
 * gemm_f64__avx2.c - AVX2+FMA f64 GEMM microkernels (contract in gemm_f64.h).
 *
 * The f32 kernel's broadcast scheme at half the lanes: per k, two 4-double loads of the weight
 * panel and one broadcast per row feed 2*MR FMA chains (12 accumulators at MR = 6). The FMA is
 * exact here, not an approximation: the product of two widened f32 values needs no rounding.
 */
#include "gemm_f64.h"

#include <immintrin.h>

static inline __attribute__((always_inline)) void
gemm_tile(const int mr, size_t nc, size_t kc, const double *a, size_t a_stride, const double *w,
          double *acc, size_t acc_stride, const qe_f64_gemm_params *params)
{
    const double *ar[6];
    __m256d lo[6], hi[6];

#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) {
        ar[r] = a + r * a_stride;
        if (params->first) {
            lo[r] = _mm256_setzero_pd();
            hi[r] = _mm256_setzero_pd();
        } else {
            lo[r] = _mm256_loadu_pd(acc + r * acc_stride);
            hi[r] = _mm256_loadu_pd(acc + r * acc_stride + 4);
        }
    }

#pragma GCC unroll 4
    for (size_t k = 0; k < kc; k++) {
        const __m256d w0 = _mm256_load_pd(w), w1 = _mm256_load_pd(w + 4);
        w += QE_F64_GEMM_NR;
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            const __m256d x = _mm256_broadcast_sd(ar[r] + k);
            lo[r] = _mm256_fmadd_pd(x, w0, lo[r]);
            hi[r] = _mm256_fmadd_pd(x, w1, hi[r]);
        }
    }

    if (!params->out) {
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            _mm256_storeu_pd(acc + r * acc_stride, lo[r]);
            _mm256_storeu_pd(acc + r * acc_stride + 4, hi[r]);
        }
        return;
    }
    const __m256d b0 = _mm256_loadu_pd(params->bias), b1 = _mm256_loadu_pd(params->bias + 4);
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) {
        /* One f64 add of the bias, then the one rounding to f32 (§3.6.2). */
        __m128 y0 = _mm256_cvtpd_ps(_mm256_add_pd(lo[r], b0));
        __m128 y1 = _mm256_cvtpd_ps(_mm256_add_pd(hi[r], b1));
        if (params->relu) {   /* maxps(y, 0) is y > 0 ? y : 0, NaN and -0 included */
            y0 = _mm_max_ps(y0, _mm_setzero_ps());
            y1 = _mm_max_ps(y1, _mm_setzero_ps());
        }
        float *o = params->out + r * params->out_stride;
        if (nc == QE_F64_GEMM_NR) {
            _mm_storeu_ps(o, y0);
            _mm_storeu_ps(o + 4, y1);
        } else {
            float y[QE_F64_GEMM_NR];
            _mm_storeu_ps(y, y0);
            _mm_storeu_ps(y + 4, y1);
            for (size_t j = 0; j < nc; j++)
                o[j] = y[j];
        }
    }
}

#define DEFINE_UKERNEL(MR)                                                                    \
    void qe_f64_gemm_ukernel_##MR##x8__avx2(size_t nc, size_t kc, const double *a,            \
                                            size_t a_stride, const double *w, double *acc,    \
                                            size_t acc_stride, const qe_f64_gemm_params *p)   \
    {                                                                                         \
        gemm_tile(MR, nc, kc, a, a_stride, w, acc, acc_stride, p);                            \
    }
DEFINE_UKERNEL(1)
DEFINE_UKERNEL(2)
DEFINE_UKERNEL(3)
DEFINE_UKERNEL(4)
DEFINE_UKERNEL(5)
DEFINE_UKERNEL(6)
