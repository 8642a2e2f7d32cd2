/*
 * gemm_f32__avx512vnni.c - AVX-512 f32 indirect-GEMM microkernels (contract in gemm_f32.h), for
 * the AVX-512 rung of cpu.h.
 *
 * The AVX2 kernels' broadcast form with one 16-float ZMM vector per panel row: per k, one weight
 * load and one embedded broadcast per row feed MR independent FMA chains, 12 at most. Each
 * output is still bias (or C) plus its products added in k order by FMA, then the residual and
 * the ReLU: the same operations as the AVX2 kernels, so both give the same bits. The convolution
 * runs the two-panel form (MR x 32) wherever two panels remain: ResNet's convolutions went from
 * 61-64% to 73% of the FMA peak at batch 16.
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

/* igemm_tile over two adjacent panels (gemm_f32.h, qe_f32_igemm2_ukernel_fn): per k, two weight
 * loads and mr broadcasts feed 2 * mr FMA chains, where the one-panel tile needs a broadcast
 * per FMA. */
static inline __attribute__((always_inline)) void
igemm_tile2(const int mr, size_t nc, size_t ks, size_t kc, const float *const *a, const float *w,
            size_t w_next, float *c, size_t c_stride, const qe_f32_gemm_params *params)
{
    __m512 s0[QE_F32_GEMM_MR_MAX], s1[QE_F32_GEMM_MR_MAX];
    const __mmask16 mask1 = (__mmask16)((1u << (nc - QE_F32_GEMM_NR)) - 1);

    if (params->bias) {
        const __m512 b0 = _mm512_loadu_ps(params->bias), b1 = _mm512_loadu_ps(params->bias + 16);
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++)
            s0[r] = b0, s1[r] = b1;
    } else {
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++) {
            s0[r] = _mm512_loadu_ps(c + r * c_stride);
            s1[r] = _mm512_maskz_loadu_ps(mask1, c + r * c_stride + 16);
        }
    }

    const float *w1 = w + w_next;
    for (size_t sg = 0; sg < ks; sg++, a += mr) {
        const float *ar[QE_F32_GEMM_MR_MAX];
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++)
            ar[r] = a[r];
        for (size_t k = 0; k < kc; k++) {
            const __m512 w0v = _mm512_load_ps(w), w1v = _mm512_load_ps(w1);
            w += QE_F32_GEMM_NR;
            w1 += QE_F32_GEMM_NR;
#pragma GCC unroll 12
            for (int r = 0; r < mr; r++) {
                const __m512 x = _mm512_set1_ps(ar[r][k]);
                s0[r] = _mm512_fmadd_ps(x, w0v, s0[r]);
                s1[r] = _mm512_fmadd_ps(x, w1v, s1[r]);
            }
        }
    }

    if (params->residual) {
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++) {
            const float *rr = params->residual + r * c_stride;
            s0[r] = _mm512_add_ps(s0[r], _mm512_loadu_ps(rr));
            s1[r] = _mm512_add_ps(s1[r], _mm512_maskz_loadu_ps(mask1, rr + 16));
        }
    }
    if (params->relu) {
#pragma GCC unroll 12
        for (int r = 0; r < mr; r++) {
            s0[r] = _mm512_max_ps(s0[r], _mm512_setzero_ps());
            s1[r] = _mm512_max_ps(s1[r], _mm512_setzero_ps());
        }
    }
#pragma GCC unroll 12
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * c_stride;
        if (nc == 2 * QE_F32_GEMM_NR && params->stream) {   /* rows are 32-byte aligned */
            _mm256_stream_ps(cr, _mm512_castps512_ps256(s0[r]));
            _mm256_stream_ps(cr + 8, _mm512_extractf32x8_ps(s0[r], 1));
            _mm256_stream_ps(cr + 16, _mm512_castps512_ps256(s1[r]));
            _mm256_stream_ps(cr + 24, _mm512_extractf32x8_ps(s1[r], 1));
        } else {
            _mm512_storeu_ps(cr, s0[r]);
            _mm512_mask_storeu_ps(cr + 16, mask1, s1[r]);
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
    }                                                                                           \
    void qe_f32_igemm_ukernel_##MR##x32__avx512vnni(size_t nc, size_t ks, size_t kc,            \
                                                    const float *const *a, const float *w,      \
                                                    size_t w_next, float *c, size_t c_stride,   \
                                                    const qe_f32_gemm_params *p)                \
    {                                                                                           \
        igemm_tile2(MR, nc, ks, kc, a, w, w_next, c, c_stride, p);                              \
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
