/*
 * qdq__avx2.h - §1.5 quantize, §9.1 dequantize and the §9.3 residual add on 8 lanes, shared by
 * the AVX2 element-wise kernels (qops__avx2.c) and the GEMM epilogue (qgemm__avx2.c). Include
 * only from files built with -mavx2. Each function is bit-identical to its scalar definition in
 * qdq.h / qops.c, as the tests check.
 */
#ifndef QE_QDQ_AVX2_H
#define QE_QDQ_AVX2_H

#include <immintrin.h>

#include "qops.h"

/*
 * qe_quantize() on 8 floats, as int32: the clamp (vminps/vmaxps return their second operand
 * when one is NaN, as fminf(NaN, max_f) = max_f), the true division of §1.5, and roundf as
 * trunc(v + copysign(0.5 - 2^-25, v)): adding 0.5 itself would round 0.5 - 2^-25 up to 1, the
 * slightly smaller constant never crosses an integer the wrong way (checked for every float of
 * magnitude below 2^31 against roundf).
 */
static inline __m256i qe_quantize8__avx2(__m256 x, __m256 max_f, __m256 min_f, __m256 delta_f,
                                         __m256 offset_f)
{
    const __m256 half = _mm256_set1_ps(0.49999997f);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v = _mm256_max_ps(_mm256_min_ps(x, max_f), min_f);
    v = _mm256_sub_ps(_mm256_div_ps(v, delta_f), offset_f);
    __m256 h = _mm256_or_ps(half, _mm256_and_ps(v, sign));
    return _mm256_cvttps_epi32(_mm256_add_ps(v, h));
}

/* §9.1 D(q) of 8 int32 codes: (float)((double)delta_f * (q - z)) is one rounding of an exact
 * product of at most 24 + 9 bits, which the f32 multiply performs too. */
static inline __m256 qe_dequantize8__avx2(__m256i q, __m256i z, __m256 delta_f)
{
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, z)), delta_f);
}

typedef struct qe_add8_consts {
    __m256i za, zb, low;
    __m256 da, db, max_f, min_f, delta_f, offset_f, zero;
} qe_add8_consts;

static inline qe_add8_consts qe_add8_consts_load(const qe_qops_add_op *op)
{
    qe_add8_consts k;
    k.za = _mm256_set1_epi32(op->qa.z), k.zb = _mm256_set1_epi32(op->qb.z);
    k.low = _mm256_set1_epi32(0xFF);
    k.da = _mm256_set1_ps(op->qa.delta_f), k.db = _mm256_set1_ps(op->qb.delta_f);
    k.max_f = _mm256_set1_ps(op->qo.max_f), k.min_f = _mm256_set1_ps(op->qo.min_f);
    k.delta_f = _mm256_set1_ps(op->qo.delta_f), k.offset_f = _mm256_set1_ps(op->qo.offset_f);
    k.zero = _mm256_setzero_ps();
    return k;
}

/* §9.3 on 8 lanes: qa the A codes (int32 0..255), b8 the low 8 bytes of the B codes. The sum of
 * the dequantized operands, max(s, 0) as vmaxps(s, 0) (which also takes NaN to 0, as
 * s > 0 ? s : 0 does), qe_quantize(), and the low byte as (uint8_t) keeps it: int32 codes
 * 0..255 that no later pack saturates. */
static inline __m256i qe_add8__avx2(__m256i qa, __m128i b8, const qe_add8_consts *k)
{
    __m256 s = _mm256_add_ps(qe_dequantize8__avx2(qa, k->za, k->da),
                             qe_dequantize8__avx2(_mm256_cvtepu8_epi32(b8), k->zb, k->db));
    __m256i q = qe_quantize8__avx2(_mm256_max_ps(s, k->zero), k->max_f, k->min_f, k->delta_f, k->offset_f);
    return _mm256_and_si256(q, k->low);
}

#endif
