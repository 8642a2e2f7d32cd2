/*
 * qgemm__avx2.c - AVX2 micro-kernels of qgemm.h (built with -mavx2 -mfma; no FMA is used: the
 * build's -ffp-contract=off keeps the epilogue's f64 multiply and add apart, §9.8).
 *
 * Both kernels broadcast a few K values of one A row into every 32-bit lane and multiply them
 * with 8 output channels' packed weights, so the accumulators hold finished sums per channel and
 * no horizontal reduction is needed. The epilogue runs in registers on 8 channels at a time.
 */
#include "qgemm.h"

#include <immintrin.h>
#include <string.h>

/* One 32-bit lane's worth of A (two uint16 codes or four uint8 codes), broadcast. */
static inline __m256i bcast32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm256_set1_epi32(v);
}

typedef struct rq_consts {
    __m256 max_f, min_f, delta_f, offset_f, zero, c255, half;
    int relu;
} rq_consts;

static inline rq_consts rq_consts_load(const qe_qgemm_out *o)
{
    rq_consts k;
    k.max_f = _mm256_set1_ps(o->max_f);
    k.min_f = _mm256_set1_ps(o->min_f);
    k.delta_f = _mm256_set1_ps(o->delta_f);
    k.offset_f = _mm256_set1_ps(o->offset_f);
    k.zero = _mm256_setzero_ps();
    k.c255 = _mm256_set1_ps(255.0f);
    k.half = _mm256_set1_ps(0.5f);
    k.relu = o->relu;
    return k;
}

/*
 * qe_qgemm_requant() on the 8 sums of channels n .. n+7, same operations in the same order:
 * vdivps is a true division (§1.5). The clamp to [0, 255] makes the value non-negative, so
 * roundf (halves away from zero) is truncation plus one when the exact fraction v - trunc(v)
 * is at least 0.5.
 */
static inline __m256i requant8(__m256i sum, const qe_qgemm_out *o, size_t n, const rq_consts *k)
{
    __m256i acc = _mm256_sub_epi32(sum, _mm256_loadu_si256((const __m256i *)(o->zw + n)));
    __m256d lo = _mm256_cvtepi32_pd(_mm256_castsi256_si128(acc));
    __m256d hi = _mm256_cvtepi32_pd(_mm256_extracti128_si256(acc, 1));
    lo = _mm256_mul_pd(lo, _mm256_loadu_pd(o->scale + n));
    hi = _mm256_mul_pd(hi, _mm256_loadu_pd(o->scale + n + 4));
    lo = _mm256_add_pd(lo, _mm256_loadu_pd(o->bias + n));
    hi = _mm256_add_pd(hi, _mm256_loadu_pd(o->bias + n + 4));
    __m256 y = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
    if (k->relu)
        y = _mm256_max_ps(y, k->zero);
    y = _mm256_max_ps(_mm256_min_ps(y, k->max_f), k->min_f);
    y = _mm256_sub_ps(_mm256_div_ps(y, k->delta_f), k->offset_f);
    y = _mm256_min_ps(_mm256_max_ps(y, k->zero), k->c255);
    __m256i t = _mm256_cvttps_epi32(y);
    __m256 frac = _mm256_sub_ps(y, _mm256_cvtepi32_ps(t));
    __m256i up = _mm256_castps_si256(_mm256_cmp_ps(frac, k->half, _CMP_GE_OQ));
    return _mm256_sub_epi32(t, up);
}

/* Requantizes the 16 sums of one row (channels n0 ..) and stores the first nc codes. */
static inline void requant_store16(__m256i s0, __m256i s1, const qe_qgemm_out *o, size_t n0,
                                   const rq_consts *k, uint8_t *c, size_t nc)
{
    __m256i q0 = requant8(s0, o, n0, k);
    __m256i q1 = requant8(s1, o, n0 + 8, k);
    /* Codes are 0..255, so neither pack saturates; the permute undoes packs' lane interleave. */
    __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8);
    __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
    if (nc == QE_QGEMM_NR) {
        _mm_storeu_si128((__m128i *)c, b);
    } else {
        uint8_t tmp[QE_QGEMM_NR];
        _mm_storeu_si128((__m128i *)tmp, b);
        memcpy(c, tmp, nc);
    }
}

/*
 * 6 rows x 16 channels, K two at a time: the 12 accumulators, 2 weight vectors and the
 * broadcast A pair fill 15 of the 16 YMM registers.
 */
void qe_qu8s8_gemm_ukernel_6x16c2__avx2_madd16(size_t mr, size_t nc, size_t kc, const void *a,
                                               size_t a_stride, const void *w, uint8_t *c,
                                               size_t c_stride, const qe_qgemm_out *o, size_t n0)
{
    /* Missing rows alias the previous one: computed twice, stored twice to the same place. */
    const uint8_t *a0 = a;
    const uint8_t *a1 = mr > 1 ? a0 + a_stride : a0;
    const uint8_t *a2 = mr > 2 ? a1 + a_stride : a1;
    const uint8_t *a3 = mr > 3 ? a2 + a_stride : a2;
    const uint8_t *a4 = mr > 4 ? a3 + a_stride : a3;
    const uint8_t *a5 = mr > 5 ? a4 + a_stride : a4;
    uint8_t *c0 = c;
    uint8_t *c1 = mr > 1 ? c0 + c_stride : c0;
    uint8_t *c2 = mr > 2 ? c1 + c_stride : c1;
    uint8_t *c3 = mr > 3 ? c2 + c_stride : c2;
    uint8_t *c4 = mr > 4 ? c3 + c_stride : c3;
    uint8_t *c5 = mr > 5 ? c4 + c_stride : c4;

    __m256i s00 = _mm256_setzero_si256(), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00;
    __m256i s30 = s00, s31 = s00, s40 = s00, s41 = s00, s50 = s00, s51 = s00;
    const __m256i *wp = w;
    for (size_t k = 0; k < 2 * kc; k += 4) {   /* k: byte offset into the uint16 A rows */
        __m256i b0 = _mm256_load_si256(wp);
        __m256i b1 = _mm256_load_si256(wp + 1);
        wp += 2;
        __m256i x = bcast32(a0 + k);
        s00 = _mm256_add_epi32(s00, _mm256_madd_epi16(x, b0));
        s01 = _mm256_add_epi32(s01, _mm256_madd_epi16(x, b1));
        x = bcast32(a1 + k);
        s10 = _mm256_add_epi32(s10, _mm256_madd_epi16(x, b0));
        s11 = _mm256_add_epi32(s11, _mm256_madd_epi16(x, b1));
        x = bcast32(a2 + k);
        s20 = _mm256_add_epi32(s20, _mm256_madd_epi16(x, b0));
        s21 = _mm256_add_epi32(s21, _mm256_madd_epi16(x, b1));
        x = bcast32(a3 + k);
        s30 = _mm256_add_epi32(s30, _mm256_madd_epi16(x, b0));
        s31 = _mm256_add_epi32(s31, _mm256_madd_epi16(x, b1));
        x = bcast32(a4 + k);
        s40 = _mm256_add_epi32(s40, _mm256_madd_epi16(x, b0));
        s41 = _mm256_add_epi32(s41, _mm256_madd_epi16(x, b1));
        x = bcast32(a5 + k);
        s50 = _mm256_add_epi32(s50, _mm256_madd_epi16(x, b0));
        s51 = _mm256_add_epi32(s51, _mm256_madd_epi16(x, b1));
    }

    rq_consts rk = rq_consts_load(o);
    requant_store16(s50, s51, o, n0, &rk, c5, nc);
    requant_store16(s40, s41, o, n0, &rk, c4, nc);
    requant_store16(s30, s31, o, n0, &rk, c3, nc);
    requant_store16(s20, s21, o, n0, &rk, c2, nc);
    requant_store16(s10, s11, o, n0, &rk, c1, nc);
    requant_store16(s00, s01, o, n0, &rk, c0, nc);
}

/* One row's int16 partial sums of 4 K-quads (16 K values) for both channel halves. */
#define MADDUBS_ROW4(ar, t0, t1)                                                        \
    do {                                                                                \
        __m256i x_ = bcast32((ar) + k);                                                 \
        t0 = _mm256_maddubs_epi16(x_, _mm256_load_si256(wp + 0));                       \
        t1 = _mm256_maddubs_epi16(x_, _mm256_load_si256(wp + 1));                       \
        x_ = bcast32((ar) + k + 4);                                                     \
        t0 = _mm256_add_epi16(t0, _mm256_maddubs_epi16(x_, _mm256_load_si256(wp + 2))); \
        t1 = _mm256_add_epi16(t1, _mm256_maddubs_epi16(x_, _mm256_load_si256(wp + 3))); \
        x_ = bcast32((ar) + k + 8);                                                     \
        t0 = _mm256_add_epi16(t0, _mm256_maddubs_epi16(x_, _mm256_load_si256(wp + 4))); \
        t1 = _mm256_add_epi16(t1, _mm256_maddubs_epi16(x_, _mm256_load_si256(wp + 5))); \
        x_ = bcast32((ar) + k + 12);                                                    \
        t0 = _mm256_add_epi16(t0, _mm256_maddubs_epi16(x_, _mm256_load_si256(wp + 6))); \
        t1 = _mm256_add_epi16(t1, _mm256_maddubs_epi16(x_, _mm256_load_si256(wp + 7))); \
    } while (0)

/*
 * 4 rows x 16 channels, K sixteen at a time. vpmaddubsw multiplies unsigned A bytes by signed
 * weight bytes into int16 pair sums; four of them are added in int16 (8 products, within 32767
 * for |k| <= QE_QGEMM_S4_MAX) before vpmaddwd by ones widens to the int32 accumulators, so the
 * widening costs a quarter of an instruction per vpmaddubsw.
 */
void qe_qu8s4_gemm_ukernel_4x16c4__avx2_maddubs(size_t mr, size_t nc, size_t kc, const void *a,
                                                size_t a_stride, const void *w, uint8_t *c,
                                                size_t c_stride, const qe_qgemm_out *o, size_t n0)
{
    const uint8_t *a0 = a;
    const uint8_t *a1 = mr > 1 ? a0 + a_stride : a0;
    const uint8_t *a2 = mr > 2 ? a1 + a_stride : a1;
    const uint8_t *a3 = mr > 3 ? a2 + a_stride : a2;
    uint8_t *c0 = c;
    uint8_t *c1 = mr > 1 ? c0 + c_stride : c0;
    uint8_t *c2 = mr > 2 ? c1 + c_stride : c1;
    uint8_t *c3 = mr > 3 ? c2 + c_stride : c2;

    const __m256i ones = _mm256_set1_epi16(1);
    __m256i s00 = _mm256_setzero_si256(), s01 = s00, s10 = s00, s11 = s00;
    __m256i s20 = s00, s21 = s00, s30 = s00, s31 = s00;
    __m256i t0, t1;
    const __m256i *wp = w;
    size_t k = 0;
    for (; k + 16 <= kc; k += 16) {
        MADDUBS_ROW4(a0, t0, t1);
        s00 = _mm256_add_epi32(s00, _mm256_madd_epi16(t0, ones));
        s01 = _mm256_add_epi32(s01, _mm256_madd_epi16(t1, ones));
        MADDUBS_ROW4(a1, t0, t1);
        s10 = _mm256_add_epi32(s10, _mm256_madd_epi16(t0, ones));
        s11 = _mm256_add_epi32(s11, _mm256_madd_epi16(t1, ones));
        MADDUBS_ROW4(a2, t0, t1);
        s20 = _mm256_add_epi32(s20, _mm256_madd_epi16(t0, ones));
        s21 = _mm256_add_epi32(s21, _mm256_madd_epi16(t1, ones));
        MADDUBS_ROW4(a3, t0, t1);
        s30 = _mm256_add_epi32(s30, _mm256_madd_epi16(t0, ones));
        s31 = _mm256_add_epi32(s31, _mm256_madd_epi16(t1, ones));
        wp += 8;
    }
    for (; k < kc; k += 4) {
        __m256i b0 = _mm256_load_si256(wp);
        __m256i b1 = _mm256_load_si256(wp + 1);
        wp += 2;
        __m256i x = bcast32(a0 + k);
        s00 = _mm256_add_epi32(s00, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b0), ones));
        s01 = _mm256_add_epi32(s01, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b1), ones));
        x = bcast32(a1 + k);
        s10 = _mm256_add_epi32(s10, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b0), ones));
        s11 = _mm256_add_epi32(s11, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b1), ones));
        x = bcast32(a2 + k);
        s20 = _mm256_add_epi32(s20, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b0), ones));
        s21 = _mm256_add_epi32(s21, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b1), ones));
        x = bcast32(a3 + k);
        s30 = _mm256_add_epi32(s30, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b0), ones));
        s31 = _mm256_add_epi32(s31, _mm256_madd_epi16(_mm256_maddubs_epi16(x, b1), ones));
    }

    rq_consts rk = rq_consts_load(o);
    requant_store16(s30, s31, o, n0, &rk, c3, nc);
    requant_store16(s20, s21, o, n0, &rk, c2, nc);
    requant_store16(s10, s11, o, n0, &rk, c1, nc);
    requant_store16(s00, s01, o, n0, &rk, c0, nc);
}
