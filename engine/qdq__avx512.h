/*
 * qdq__avx512.h - qdq__avx2.h on 16 lanes: §1.5 quantize, §9.1 dequantize and the §9.3 residual
 * add, for the AVX-512 GEMM epilogue (qgemm__avx512vnni.c). Include only from files built with
 * the AVX-512 flags. Each function performs the operations of its 8-lane namesake in the same
 * order (AVX-512's vminps/vmaxps treat NaN as the AVX2 ones do), so both are bit-identical to
 * the scalar definitions in qdq.h / qops.c, as the tests check.
 */
#ifndef QE_QDQ_AVX512_H
#define QE_QDQ_AVX512_H

#include <immintrin.h>

#include "qops.h"

/* qe_quantize8__avx2() on 16 floats. */
static inline __m512i qe_quantize16__avx512(__m512 x, __m512 max_f, __m512 min_f, __m512 delta_f,
                                            __m512 offset_f)
{
    const __m512 half = _mm512_set1_ps(0.49999997f);
    const __m512 sign = _mm512_set1_ps(-0.0f);
    __m512 v = _mm512_max_ps(_mm512_min_ps(x, max_f), min_f);
    v = _mm512_sub_ps(_mm512_div_ps(v, delta_f), offset_f);
    __m512 h = _mm512_or_ps(half, _mm512_and_ps(v, sign));
    return _mm512_cvttps_epi32(_mm512_add_ps(v, h));
}

/* qe_dequantize8__avx2() on 16 codes. */
static inline __m512 qe_dequantize16__avx512(__m512i q, __m512i z, __m512 delta_f)
{
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, z)), delta_f);
}

typedef struct qe_add16_consts {
    __m512i za, zb;
    __m512 da, db, max_f, min_f, delta_f, offset_f, zero;
} qe_add16_consts;

static inline qe_add16_consts qe_add16_consts_load(const qe_qops_add_op *op)
{
    qe_add16_consts k;
    k.za = _mm512_set1_epi32(op->qa.z), k.zb = _mm512_set1_epi32(op->qb.z);
    k.da = _mm512_set1_ps(op->qa.delta_f), k.db = _mm512_set1_ps(op->qb.delta_f);
    k.max_f = _mm512_set1_ps(op->qo.max_f), k.min_f = _mm512_set1_ps(op->qo.min_f);
    k.delta_f = _mm512_set1_ps(op->qo.delta_f), k.offset_f = _mm512_set1_ps(op->qo.offset_f);
    k.zero = _mm512_setzero_ps();
    return k;
}

/* qe_add8__avx2() on 16 lanes, qa int32 codes 0..255 and b16 16 byte codes, without the final
 * mask: the result's low byte is the code (the caller narrows with truncation). */
static inline __m512i qe_add16__avx512(__m512i qa, __m128i b16, const qe_add16_consts *k)
{
    __m512 s = _mm512_add_ps(qe_dequantize16__avx512(qa, k->za, k->da),
                             qe_dequantize16__avx512(_mm512_cvtepu8_epi32(b16), k->zb, k->db));
    return qe_quantize16__avx512(_mm512_max_ps(s, k->zero), k->max_f, k->min_f, k->delta_f,
                                 k->offset_f);
}

#endif
