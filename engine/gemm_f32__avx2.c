/*
 * gemm_f32__avx2.c - AVX2+FMA f32 indirect-GEMM microkernels (contract in gemm_f32.h).
 *
 * Broadcast form, as XNNPACK's f32-gemm "avx-broadcast": per k, two 8-float loads of the weight
 * panel and one broadcast per row feed 2*MR independent FMA chains. At MR = 6 that is 12
 * accumulators + 2 weight registers + 1 broadcast = 15 of the 16 YMM registers, and 8 loads per
 * 12 FMAs stays under the load ports' rate, so the loop is bound by the two FMA ports.
 */
#include "gemm_f32.h"

#include <immintrin.h>
#include <stdint.h>

/* loadu(mask_table + 8 - n) enables the first n of 8 lanes (0 <= n <= 8). */
static const int32_t mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

static inline __m256i lane_mask(size_t n)
{
    return _mm256_loadu_si256((const __m256i *)(mask_table + 8 - n));
}

/* The body shared by all row counts; mr is a constant in every caller, so the row loops unroll
 * and the accumulator arrays live in registers. */
static inline __attribute__((always_inline)) void
igemm_tile(const int mr, size_t nc, size_t ks, size_t kc, const float *const *a, const float *w,
           float *c, size_t c_stride, const qe_f32_gemm_params *params)
{
    __m256 lo[6], hi[6];
    const int full = nc == QE_F32_GEMM_NR;
    const __m256i mlo = lane_mask(nc < 8 ? nc : 8), mhi = lane_mask(nc > 8 ? nc - 8 : 0);

    if (params->bias) {
        const __m256 b0 = _mm256_loadu_ps(params->bias), b1 = _mm256_loadu_ps(params->bias + 8);
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            lo[r] = b0;
            hi[r] = b1;
        }
    } else {
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            const float *cr = c + r * c_stride;
            lo[r] = full ? _mm256_loadu_ps(cr) : _mm256_maskload_ps(cr, mlo);
            hi[r] = full ? _mm256_loadu_ps(cr + 8) : _mm256_maskload_ps(cr + 8, mhi);
        }
    }

    for (size_t s = 0; s < ks; s++, a += mr) {
        const float *ar[6];
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++)
            ar[r] = a[r];
        /* Unrolled so the loop counter costs a fraction of an issue slot per 12 FMAs. */
#pragma GCC unroll 4
        for (size_t k = 0; k < kc; k++) {
            const __m256 w0 = _mm256_load_ps(w), w1 = _mm256_load_ps(w + 8);
            w += QE_F32_GEMM_NR;
#pragma GCC unroll 6
            for (int r = 0; r < mr; r++) {
                const __m256 x = _mm256_broadcast_ss(ar[r] + k);
                lo[r] = _mm256_fmadd_ps(x, w0, lo[r]);
                hi[r] = _mm256_fmadd_ps(x, w1, hi[r]);
            }
        }
    }

    if (params->residual) {
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            const float *rr = params->residual + r * c_stride;
            lo[r] = _mm256_add_ps(lo[r], full ? _mm256_loadu_ps(rr) : _mm256_maskload_ps(rr, mlo));
            hi[r] = _mm256_add_ps(hi[r], full ? _mm256_loadu_ps(rr + 8) : _mm256_maskload_ps(rr + 8, mhi));
        }
    }
    if (params->relu) {
        const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            lo[r] = _mm256_max_ps(lo[r], zero);
            hi[r] = _mm256_max_ps(hi[r], zero);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * c_stride;
        if (full && params->stream) {
            _mm256_stream_ps(cr, lo[r]);
            _mm256_stream_ps(cr + 8, hi[r]);
        } else if (full) {
            _mm256_storeu_ps(cr, lo[r]);
            _mm256_storeu_ps(cr + 8, hi[r]);
        } else {
            _mm256_maskstore_ps(cr, mlo, lo[r]);
            _mm256_maskstore_ps(cr + 8, mhi, hi[r]);
        }
    }
}

#define DEFINE_UKERNEL(MR)                                                                   \
    void qe_f32_igemm_ukernel_##MR##x16__avx2(size_t nc, size_t ks, size_t kc,               \
                                              const float *const *a, const float *w, float *c, \
                                              size_t c_stride, const qe_f32_gemm_params *p)   \
    {                                                                                        \
        igemm_tile(MR, nc, ks, kc, a, w, c, c_stride, p);                                    \
    }
DEFINE_UKERNEL(1)
DEFINE_UKERNEL(2)
DEFINE_UKERNEL(3)
DEFINE_UKERNEL(4)
DEFINE_UKERNEL(5)
DEFINE_UKERNEL(6)
