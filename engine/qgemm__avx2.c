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
 * qe_qgemm_requant() on the accumulators of channels n .. n+7, the same operations in the same
 * order up to the division, which is a true one (vdivps, §1.5). Then, for v = x / delta_f -
 * offset_f, the clamp to [0, 255] and roundf (halves away from zero) in four instructions:
 * vminps(255, v) (which passes a NaN through), and trunc(v + 0.5) where v >= 0.5, else 0. The
 * f32 addition v + 0.5 may round, but never across an integer (checked for every float in
 * [-2, 300], infinities and NaN against fminf/fmaxf/roundf); the mask gives 0 for v < 0.5,
 * negative values and NaN, as fmaxf(v, 0) followed by roundf does.
 */
static inline __m256i requant8(__m256i acc, const qe_qgemm_out *o, size_t n, const rq_consts *k)
{
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
    y = _mm256_min_ps(k->c255, y);
    __m256i t = _mm256_cvttps_epi32(_mm256_add_ps(y, k->half));
    __m256 keep = _mm256_cmp_ps(y, k->half, _CMP_GE_OQ);
    return _mm256_and_si256(t, _mm256_castps_si256(keep));
}

/* Requantizes the 16 sums of one row (channels n0 ..) and stores the first nc codes. */
static inline void requant_store16(__m256i s0, __m256i s1, const qe_qgemm_out *o, size_t n0,
                                   const rq_consts *k, uint8_t *c, size_t nc)
{
    __m256i q0 = requant8(s0, o, n0, k);
    __m256i q1 = requant8(s1, o, n0 + 8, k);
    /* Codes are 0..255, so neither pack saturates; the permute undoes their lane interleave. */
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

    __m256i s00 = _mm256_loadu_si256((const __m256i *)(o->acc0 + n0));
    __m256i s01 = _mm256_loadu_si256((const __m256i *)(o->acc0 + n0 + 8));
    __m256i s10 = s00, s11 = s01, s20 = s00, s21 = s01, s30 = s00, s31 = s01;
    __m256i s40 = s00, s41 = s01, s50 = s00, s51 = s01;
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

/*
 * 8 rows x 16 channels, K sixteen at a time. vpmaddubsw multiplies unsigned A bytes by signed
 * weight bytes into int16 pair sums; four of them are added in int16 (8 products, within 32767
 * for |k| <= QE_QGEMM_S4_MAX) before vpmaddwd by ones widens them into the int32 accumulators:
 * the widening costs a quarter of an instruction per vpmaddubsw.
 *
 * The 16 K x 16 channel slice of the panel (8 vectors) stays in registers while every row
 * passes over it, so the accumulators live in memory (an L1-resident tile, one load and one
 * store per 256 multiply-adds). That takes weight loads out of the inner loop, which is what
 * limits a register-tiled layout here, and lets a call cover 8 rows.
 */
void qe_qu8s4_gemm_ukernel_8x16c4__avx2_maddubs(size_t mr, size_t nc, size_t kc, const void *a,
                                                size_t a_stride, const void *w, uint8_t *c,
                                                size_t c_stride, const qe_qgemm_out *o, size_t n0)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i acc00 = _mm256_loadu_si256((const __m256i *)(o->acc0 + n0));
    const __m256i acc01 = _mm256_loadu_si256((const __m256i *)(o->acc0 + n0 + 8));
    __m256i acc[8][2];
    for (size_t r = 0; r < mr; r++) {
        acc[r][0] = acc00;
        acc[r][1] = acc01;
    }
    const __m256i *wp = w;
    size_t k = 0;
    for (; k + 16 <= kc; k += 16, wp += 8) {
        __m256i b0 = _mm256_load_si256(wp + 0), b1 = _mm256_load_si256(wp + 1);
        __m256i b2 = _mm256_load_si256(wp + 2), b3 = _mm256_load_si256(wp + 3);
        __m256i b4 = _mm256_load_si256(wp + 4), b5 = _mm256_load_si256(wp + 5);
        __m256i b6 = _mm256_load_si256(wp + 6), b7 = _mm256_load_si256(wp + 7);
        const uint8_t *ar = (const uint8_t *)a + k;
        for (size_t r = 0; r < mr; r++, ar += a_stride) {
            __m256i x0 = bcast32(ar), x1 = bcast32(ar + 4);
            __m256i x2 = bcast32(ar + 8), x3 = bcast32(ar + 12);
            __m256i t0 = _mm256_maddubs_epi16(x0, b0), t1 = _mm256_maddubs_epi16(x0, b1);
            t0 = _mm256_add_epi16(t0, _mm256_maddubs_epi16(x1, b2));
            t1 = _mm256_add_epi16(t1, _mm256_maddubs_epi16(x1, b3));
            t0 = _mm256_add_epi16(t0, _mm256_maddubs_epi16(x2, b4));
            t1 = _mm256_add_epi16(t1, _mm256_maddubs_epi16(x2, b5));
            t0 = _mm256_add_epi16(t0, _mm256_maddubs_epi16(x3, b6));
            t1 = _mm256_add_epi16(t1, _mm256_maddubs_epi16(x3, b7));
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(t0, ones));
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(t1, ones));
        }
    }
    for (; k < kc; k += 4, wp += 2) {
        __m256i b0 = _mm256_load_si256(wp), b1 = _mm256_load_si256(wp + 1);
        const uint8_t *ar = (const uint8_t *)a + k;
        for (size_t r = 0; r < mr; r++, ar += a_stride) {
            __m256i x = bcast32(ar);
            __m256i t0 = _mm256_madd_epi16(_mm256_maddubs_epi16(x, b0), ones);
            __m256i t1 = _mm256_madd_epi16(_mm256_maddubs_epi16(x, b1), ones);
            acc[r][0] = _mm256_add_epi32(acc[r][0], t0);
            acc[r][1] = _mm256_add_epi32(acc[r][1], t1);
        }
    }

    rq_consts rk = rq_consts_load(o);
    for (size_t r = 0; r < mr; r++)
        requant_store16(acc[r][0], acc[r][1], o, n0, &rk, c + r * c_stride, nc);
}
