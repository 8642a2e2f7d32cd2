/*
 * qops__avx2.c - AVX2 row kernels of qops_ukernel.h (built with -mavx2; no FMA).
 */
#include "qops_ukernel.h"

#include <immintrin.h>
#include <string.h>

#include "qdq__avx2.h"

void qe_qops_quantize_chw3__avx2(const qe_qparams *qp, const float *x, size_t hw, size_t p0,
                                 size_t p1, uint8_t *out)
{
    const __m256 max_f = _mm256_set1_ps(qp->max_f), min_f = _mm256_set1_ps(qp->min_f);
    const __m256 delta_f = _mm256_set1_ps(qp->delta_f), offset_f = _mm256_set1_ps(qp->offset_f);
    /* (uint8_t) keeps the low byte: mask it, then neither pack saturates. */
    const __m256i low = _mm256_set1_epi32(0xFF);
    /* Per 128-bit lane the packs leave [c0 x4 | c1 x4 | c2 x4 | c2 x4] for 4 pixels; this
     * interleaves them into 12 bytes of NHWC codes. */
    const __m256i order = _mm256_setr_epi8(0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, -1, -1, -1, -1,
                                           0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, -1, -1, -1, -1);
    size_t p = p0;
    for (; p + 8 <= p1; p += 8) {
        __m256i q0 = _mm256_and_si256(qe_quantize8__avx2(_mm256_loadu_ps(x + p), max_f, min_f, delta_f, offset_f), low);
        __m256i q1 = _mm256_and_si256(qe_quantize8__avx2(_mm256_loadu_ps(x + hw + p), max_f, min_f, delta_f, offset_f), low);
        __m256i q2 = _mm256_and_si256(qe_quantize8__avx2(_mm256_loadu_ps(x + 2 * hw + p), max_f, min_f, delta_f, offset_f),
                                      low);
        __m256i w01 = _mm256_packus_epi32(q0, q1), w22 = _mm256_packus_epi32(q2, q2);
        __m256i b = _mm256_shuffle_epi8(_mm256_packus_epi16(w01, w22), order);
        __m128i lo = _mm256_castsi256_si128(b), hi = _mm256_extracti128_si256(b, 1);
        uint8_t *o = out + p * 3;
        int32_t t;
        _mm_storel_epi64((__m128i *)o, lo);
        t = _mm_extract_epi32(lo, 2);
        memcpy(o + 8, &t, 4);
        _mm_storel_epi64((__m128i *)(o + 12), hi);
        t = _mm_extract_epi32(hi, 2);
        memcpy(o + 20, &t, 4);
    }
    if (p < p1)
        qe_qops_quantize_chw3__scalar(qp, x, hw, p, p1, out);
}

/* §9.3, 32 codes a step (qdq__avx2.h); the tail goes through the table. */
void qe_qops_add_row__avx2(uint8_t *a, const uint8_t *b, size_t count, const qe_qops_add_op *op)
{
    const qe_add8_consts k = qe_add8_consts_load(op);
    /* The packs work per 128-bit lane: of each group g's 8 codes they leave the first 4 in
     * dword g and the last 4 in dword 4 + g; this gathers them back in memory order. */
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        __m256i q[4];
        for (int g = 0; g < 4; g++) {
            __m128i ca = _mm_loadl_epi64((const __m128i *)(a + i + 8 * g));
            __m128i cb = _mm_loadl_epi64((const __m128i *)(b + i + 8 * g));
            q[g] = qe_add8__avx2(_mm256_cvtepu8_epi32(ca), cb, &k);
        }
        __m256i w = _mm256_packus_epi16(_mm256_packus_epi32(q[0], q[1]), _mm256_packus_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)(a + i), _mm256_permutevar8x32_epi32(w, order));
    }
    if (i < count)
        qe_qops_add_row__scalar(a + i, b + i, count - i, op);
}
