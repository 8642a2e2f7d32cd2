/*
 * gemm_f32__avx512vnni.c - AVX-512 f32 indirect-GEMM microkernels (contract in gemm_f32.h), for
 * the AVX-512 rung of cpu.h.
 *
 * The AVX2 kernels' broadcast form with one 16-float ZMM vector per panel row: per k, one weight
 * load and one embedded broadcast per row feed MR independent FMA chains, 12 at most. Each
 * output is still bias (or C) plus its products added in k order by FMA, then the residual and
 * the ReLU: the same operations as the AVX2 kernels, so both give the same bits.
 */
#include "gemm_f32.h"

#include <immintrin.h>

static inline __attribute__((always_inline)) void
igemm_tile(const int mr, size_t nc, size_t ks, size_t kc, const float *const *a, const float *w,
           float *c, size_t c_stride, const qe_f32_gemm_params *params)
{
    __m512 s[QE_F32_GEMM_MR_MAX];
    const __mmask16 mask = (__mmask16)((1u << nc) - 1);

    if (params->bias) {
        const __m512 b = _mm512_loadu_ps(params->bias);
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++)
            s[r] = b;
    } else {
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++)
            s[r] = _mm512_maskz_loadu_ps(mask, c + r * c_stride);
    }

    for (size_t sg = 0; sg < ks; sg++, a += mr) {
        const float *ar[QE_F32_GEMM_MR_MAX];
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++)
            ar[r] = a[r];
#pragma GCC unroll 2
        for (size_t k = 0; k < kc; k++) {
            const __m512 w0 = _mm512_load_ps(w);
            w += QE_F32_GEMM_NR;
#pragma GCC unroll 12
            for (int r = 0; r < mr; r++)
                s[r] = _mm512_fmadd_ps(_mm512_set1_ps(ar[r][k]), w0, s[r]);
        }
    }

    if (params->residual) {
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++)
            s[r] = _mm512_add_ps(s[r], _mm512_maskz_loadu_ps(mask, params->residual + r * c_stride));
    }
    if (params->relu) {
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++)
            s[r] = _mm512_max_ps(s[r], _mm512_setzero_ps());
    }
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * c_stride;
        if (nc == QE_F32_GEMM_NR && params->stream) {   /* rows are 32-byte aligned */
            _mm256_stream_ps(cr, _mm512_castps512_ps256(s[r]));
            _mm256_stream_ps(cr + 8, _mm512_extractf32x8_ps(s[r], 1));
        } else {
            _mm512_mask_storeu_ps(cr, mask, s[r]);
        }
    }
}

#define DEFINE_UKERNEL(MR)                                                                      \
    void qe_f32_igemm_ukernel_##MR##x16__avx512vnni(size_t nc, size_t ks, size_t kc,            \
                                                    const float *const *a, const float *w,      \
                                                    float *c, size_t c_stride,                  \
                                                    const qe_f32_gemm_params *p)                \
    {                                                                                           \
        igemm_tile(MR, nc, ks, kc, a, w, c, c_stride, p);                                       \
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
