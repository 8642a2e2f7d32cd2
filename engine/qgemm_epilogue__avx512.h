/*
 * qgemm_epilogue__avx512.h - the §9.2 epilogue of qgemm.h on 16 lanes, shared by the AVX-512
 * micro-kernels (qgemm__avx512vnni.c, qgemm__amx.c): the exact chain, bit-identical to
 * qe_qgemm_requant(), and the fast path of qe_qgemm_fast_init(). Include only from files built
 * with the AVX-512 flags; every function is static.
 */
#ifndef QE_QGEMM_EPILOGUE_AVX512_H
#define QE_QGEMM_EPILOGUE_AVX512_H

#include <immintrin.h>

#include "qdq__avx512.h"
#include "qgemm.h"

typedef struct rq16_consts {
    __m512 max_f, min_f, delta_f, offset_f, zero, c255, half;
    int relu;
    int clamp_min;         /* 0 when the ReLU already keeps y >= 0 >= min_f */
} rq16_consts;

static inline rq16_consts rq16_consts_load(const qe_qgemm_out *o)
{
    rq16_consts k;
    k.max_f = _mm512_set1_ps(o->max_f);
    k.min_f = _mm512_set1_ps(o->min_f);
    k.delta_f = _mm512_set1_ps(o->delta_f);
    k.offset_f = _mm512_set1_ps(o->offset_f);
    k.zero = _mm512_setzero_ps();
    k.c255 = _mm512_set1_ps(255.0f);
    k.half = _mm512_set1_ps(0.49999997f);
    k.relu = o->relu;
    k.clamp_min = !(o->relu && o->min_f <= 0.0f && o->max_f >= 0.0f);
    return k;
}

/*
 * qe_qgemm_requant() on the int32 sums acc[0..15]: the operations and their order of the AVX2
 * epilogue (qgemm__avx2.c, requant8, where the clamp-and-round sequence is explained), on 16
 * lanes. AVX-512's vmaxps/vminps return their second operand on NaN as the AVX2 ones do. The
 * result is at most 255; a negative lane (NaN, or v < 0) stands for code 0.
 */
static inline __m512i requant16(const int32_t *acc, const double *sc, const double *bi,
                                const rq16_consts *k)
{
    __m512d lo = _mm512_cvtepi32_pd(_mm256_load_si256((const __m256i *)acc));
    __m512d hi = _mm512_cvtepi32_pd(_mm256_load_si256((const __m256i *)(acc + 8)));
    lo = _mm512_mul_pd(lo, _mm512_loadu_pd(sc));
    hi = _mm512_mul_pd(hi, _mm512_loadu_pd(sc + 8));
    lo = _mm512_add_pd(lo, _mm512_loadu_pd(bi));
    hi = _mm512_add_pd(hi, _mm512_loadu_pd(bi + 8));
    __m512 y = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)), _mm512_cvtpd_ps(hi), 1);
    if (k->relu)
        y = _mm512_max_ps(y, k->zero);
    y = _mm512_min_ps(y, k->max_f);
    if (k->clamp_min)
        y = _mm512_max_ps(y, k->min_f);
    y = _mm512_sub_ps(_mm512_div_ps(y, k->delta_f), k->offset_f);
    y = _mm512_min_ps(k->c255, y);
    return _mm512_cvttps_epi32(_mm512_add_ps(y, k->half));
}

typedef struct fast16_consts {
    __m512 vrelu, qlo, qhi, lim;
    int relu;
} fast16_consts;

static inline fast16_consts fast16_consts_load(const qe_qgemm_out *o)
{
    fast16_consts f;
    f.vrelu = _mm512_set1_ps(o->vrelu);
    f.qlo = _mm512_set1_ps(o->qlo);
    f.qhi = _mm512_set1_ps(o->qhi);
    f.lim = _mm512_set1_ps(0.5f - QE_QGEMM_FAST_EPS);
    f.relu = o->relu;
    return f;
}

/*
 * The fast path of qgemm.h on acc[0..15] (channels at fa, fb): the codes in *q, and the mask of
 * the lanes where they are exact (v farther than QE_QGEMM_FAST_EPS from a half-integer; never
 * a NaN lane, which the ordered compare rejects). The ReLU's vmaxps has v second so that a NaN
 * v stays NaN. On a passing lane, rounding to nearest even equals roundf's halves away.
 */
static inline __mmask16 fast16(const int32_t *acc, const float *fa, const float *fb,
                               const fast16_consts *f, __m512i *q)
{
    __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(acc)), _mm512_loadu_ps(fa),
                               _mm512_loadu_ps(fb));
    if (f->relu)
        v = _mm512_max_ps(f->vrelu, v);
    __m512 r = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 t = _mm512_abs_ps(_mm512_sub_ps(v, r));
    *q = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r, f->qlo), f->qhi));
    return _mm512_cmp_ps_mask(t, f->lim, _CMP_LT_OQ);
}

/* The exact codes of the 16 sums at acc (channels c ..), 0..255. */
static inline __m512i exact16(const int32_t *acc, size_t c, const qe_qgemm_out *o,
                              const rq16_consts *k)
{
    return _mm512_max_epi32(requant16(acc, o->scale + c, o->bias + c, k), _mm512_setzero_si512());
}

/* The vectors v of a group that the fast path did not settle (ok[v] != 0xFFFF), exactly: vector
 * v is row v / 2, channels n0 + 16 (v % 2) ... Out of line: a few percent of the vectors need it. */
static __attribute__((noinline)) void exact_group(const int32_t (*acc)[QE_QGEMM_NR_MAX], size_t nvec,
                                                  const qe_qgemm_out *o, size_t n0,
                                                  const __mmask16 *ok, __m512i *q)
{
    const rq16_consts k = rq16_consts_load(o);
    for (size_t v = 0; v < nvec; v++)
        if (ok[v] != 0xFFFF)
            q[v] = exact16(acc[v / 2] + v % 2 * 16, n0 + v % 2 * 16, o, &k);
}

/* Rows per group of the epilogue: their codes are held (8 vectors) until the group is settled. */
#define EPI_GROUP_ROWS 4

/*
 * The epilogue of a tile of 32 channels: rows x 32 int32 sums (acc, 64-byte aligned) of channels
 * n0 .., requantized (by the fast path of qgemm.h where it settles a whole vector, else
 * exactly), the residual added when o->add is set, and the first nc codes of each row stored at
 * c, rows c_stride apart. Masked loads and stores keep short rows from touching bytes past nc.
 */
static __attribute__((noinline)) void requant_tile(const int32_t (*acc)[QE_QGEMM_NR_MAX], size_t rows,
                                                   const qe_qgemm_out *o, size_t n0, uint8_t *c,
                                                   size_t c_stride, size_t nc)
{
    const __mmask32 mask = nc >= 32 ? ~(__mmask32)0 : ((__mmask32)1 << nc) - 1;
    const fast16_consts f = fast16_consts_load(o);
    qe_add16_consts ak;
    if (o->add)
        ak = qe_add16_consts_load(o->add);
    for (size_t r0 = 0; r0 < rows; r0 += EPI_GROUP_ROWS, acc += EPI_GROUP_ROWS) {
        size_t nvec = 2 * (rows - r0 < EPI_GROUP_ROWS ? rows - r0 : EPI_GROUP_ROWS);
        __m512i q[2 * EPI_GROUP_ROWS];
        __mmask16 ok[2 * EPI_GROUP_ROWS], all = 0;
        if (o->fa) {
            all = 0xFFFF;
            for (size_t v = 0; v < nvec; v++) {
                size_t j = n0 + v % 2 * 16;
                ok[v] = fast16(acc[v / 2] + v % 2 * 16, o->fa + j, o->fb + j, &f, &q[v]);
                all &= ok[v];
            }
        } else {
            for (size_t v = 0; v < nvec; v++)
                ok[v] = 0;
        }
        if (all != 0xFFFF)
            exact_group(acc, nvec, o, n0, ok, q);
        for (size_t v = 0; v < nvec; v += 2, c += c_stride) {
            __m512i q0 = q[v], q1 = q[v + 1];
            if (o->add) {
                __m256i res = _mm256_maskz_loadu_epi8(mask, o->res_base + (c - o->out_base));
                q0 = qe_add16__avx512(q0, _mm256_castsi256_si128(res), &ak);
                q1 = qe_add16__avx512(q1, _mm256_extracti128_si256(res, 1), &ak);
            }
            __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtepi32_epi8(q0)),
                                                _mm512_cvtepi32_epi8(q1), 1);
            _mm256_mask_storeu_epi8(c, mask, b);
        }
    }
}

#endif
