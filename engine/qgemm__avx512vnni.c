/*
 * qgemm__avx512vnni.c - the AVX-512 VNNI micro-kernel of qgemm.h (built with -mavx512f
 * -mavx512bw -mavx512dq -mavx512vl -mavx512vnni; no FMA is used: the build's -ffp-contract=off
 * keeps the epilogue's f64 multiply and add apart, §9.8).
 *
 * vpdpbusd multiplies four uint8 activation codes by four int8 weight codes and adds the four
 * products to an int32 lane in one step, without the int16 intermediate (and its saturation)
 * of vpmaddubsw: exact for every int8 weight, so 8-bit and 4-bit layers share this kernel.
 */
#include "qgemm.h"

#include <immintrin.h>
#include <string.h>

#include "qdq__avx512.h"

#define MR 12
#define NR 32

/* One quad of A (four uint8 codes), broadcast to every 32-bit lane: GCC folds the load into
 * vpdpbusd's embedded broadcast. */
static inline __m512i bcast32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

typedef struct rq16_consts {
    __m512 max_f, min_f, offset_f, zero, c255, half;
    __m512 delta_f;
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

/* The vectors of a tile that the fast path did not settle (ok[v] != 0xFFFF), exactly. Out of
 * line: a few percent of the vectors need it. */
static __attribute__((noinline)) void exact_tile(const int32_t (*acc)[NR], size_t rows,
                                                 const qe_qgemm_out *o, size_t n0,
                                                 const __mmask16 *ok, __m512i *q)
{
    const rq16_consts k = rq16_consts_load(o);
    for (size_t v = 0; v < 2 * rows; v++)
        if (ok[v] != 0xFFFF)
            q[v] = exact16(acc[v / 2] + v % 2 * 16, n0 + v % 2 * 16, o, &k);
}

/*
 * The epilogue of a tile: rows (<= MR) x NR int32 sums (acc, 64-byte aligned) of channels
 * n0 .., requantized (by the fast path of qgemm.h where it settles a whole vector, else
 * exactly), the residual added when o->add is set, and the first nc codes of each row stored.
 * Masked loads and stores keep short rows from touching bytes past nc.
 */
static __attribute__((noinline)) void requant_tile(const int32_t (*acc)[NR], size_t rows,
                                                   const qe_qgemm_out *o, size_t n0, uint8_t *c,
                                                   size_t c_stride, size_t nc)
{
    const __mmask32 mask = nc >= NR ? ~(__mmask32)0 : ((__mmask32)1 << nc) - 1;
    __m512i q[2 * MR];
    __mmask16 ok[2 * MR], all = 0;
    if (o->fa) {
        const fast16_consts f = fast16_consts_load(o);
        all = 0xFFFF;
        for (size_t v = 0; v < 2 * rows; v++) {
            size_t j = n0 + v % 2 * 16;
            ok[v] = fast16(acc[v / 2] + v % 2 * 16, o->fa + j, o->fb + j, &f, &q[v]);
            all &= ok[v];
        }
    } else {
        for (size_t v = 0; v < 2 * rows; v++)
            ok[v] = 0;
    }
    if (all != 0xFFFF)
        exact_tile(acc, rows, o, n0, ok, q);
    qe_add16_consts ak;
    if (o->add)
        ak = qe_add16_consts_load(o->add);
    for (size_t r = 0; r < rows; r++, c += c_stride) {
        __m512i q0 = q[2 * r], q1 = q[2 * r + 1];
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

/* Segment pointers of a tile of mr <= 12 rows (p: its 12 indirection slots): missing rows alias
 * the last real one, so they are computed for nothing but never read out of bounds. */
#define TILE_ROWS12(p, mr)                                                    \
    const uint8_t *a0 = (const uint8_t *)(p)[0];                            \
    const uint8_t *a1 = (mr) > 1 ? (const uint8_t *)(p)[1] : a0;            \
    const uint8_t *a2 = (mr) > 2 ? (const uint8_t *)(p)[2] : a1;            \
    const uint8_t *a3 = (mr) > 3 ? (const uint8_t *)(p)[3] : a2;            \
    const uint8_t *a4 = (mr) > 4 ? (const uint8_t *)(p)[4] : a3;            \
    const uint8_t *a5 = (mr) > 5 ? (const uint8_t *)(p)[5] : a4;            \
    const uint8_t *a6 = (mr) > 6 ? (const uint8_t *)(p)[6] : a5;            \
    const uint8_t *a7 = (mr) > 7 ? (const uint8_t *)(p)[7] : a6;            \
    const uint8_t *a8 = (mr) > 8 ? (const uint8_t *)(p)[8] : a7;            \
    const uint8_t *a9 = (mr) > 9 ? (const uint8_t *)(p)[9] : a8;            \
    const uint8_t *a10 = (mr) > 10 ? (const uint8_t *)(p)[10] : a9;         \
    const uint8_t *a11 = (mr) > 11 ? (const uint8_t *)(p)[11] : a10

#define DPBUSD_ROW(i)                                                        \
    do {                                                                     \
        __m512i x_ = bcast32(a##i + k);                                      \
        s##i##0 = _mm512_dpbusd_epi32(s##i##0, x_, b0);                      \
        s##i##1 = _mm512_dpbusd_epi32(s##i##1, x_, b1);                      \
    } while (0)

/*
 * 12 rows x 32 channels, K four at a time: 24 accumulators, the two weight vectors of a quad and
 * the broadcast A quad in 27 of the 32 ZMM registers. Per quad, 24 vpdpbusd against 2 vector
 * loads and 12 broadcasts; 12 rows measured 7% faster than 8 over ResNet50's layers, as each
 * weight panel streamed from L2 serves more rows.
 */
void qe_qu8s8_gemm_ukernel_12x32c4__avx512vnni(size_t m, size_t nc, size_t ks, size_t kc,
                                              const void *const *ind, const void *w, uint8_t *c,
                                              size_t c_stride, const qe_qgemm_out *o, size_t n0)
{
    for (size_t mr; m > 0; m -= mr, ind += MR * ks, c += MR * c_stride) {
        mr = m < MR ? m : MR;
        __m512i s00 = _mm512_loadu_si512(o->acc0 + n0);
        __m512i s01 = _mm512_loadu_si512(o->acc0 + n0 + 16);
        __m512i s10 = s00, s11 = s01, s20 = s00, s21 = s01, s30 = s00, s31 = s01;
        __m512i s40 = s00, s41 = s01, s50 = s00, s51 = s01, s60 = s00, s61 = s01;
        __m512i s70 = s00, s71 = s01, s80 = s00, s81 = s01, s90 = s00, s91 = s01;
        __m512i s100 = s00, s101 = s01, s110 = s00, s111 = s01;
        const __m512i *wp = w;
        for (size_t e = 0; e < ks; e++) {
            TILE_ROWS12(ind + MR * e, mr);
            for (size_t k = 0; k < kc; k += 4, wp += 2) {
                __m512i b0 = _mm512_load_si512(wp);
                __m512i b1 = _mm512_load_si512(wp + 1);
                DPBUSD_ROW(0);
                DPBUSD_ROW(1);
                DPBUSD_ROW(2);
                DPBUSD_ROW(3);
                DPBUSD_ROW(4);
                DPBUSD_ROW(5);
                DPBUSD_ROW(6);
                DPBUSD_ROW(7);
                DPBUSD_ROW(8);
                DPBUSD_ROW(9);
                DPBUSD_ROW(10);
                DPBUSD_ROW(11);
            }
        }

        _Alignas(64) int32_t acc[MR][NR];
        _mm512_store_si512(acc[0], s00);
        _mm512_store_si512(acc[0] + 16, s01);
        _mm512_store_si512(acc[1], s10);
        _mm512_store_si512(acc[1] + 16, s11);
        _mm512_store_si512(acc[2], s20);
        _mm512_store_si512(acc[2] + 16, s21);
        _mm512_store_si512(acc[3], s30);
        _mm512_store_si512(acc[3] + 16, s31);
        _mm512_store_si512(acc[4], s40);
        _mm512_store_si512(acc[4] + 16, s41);
        _mm512_store_si512(acc[5], s50);
        _mm512_store_si512(acc[5] + 16, s51);
        _mm512_store_si512(acc[6], s60);
        _mm512_store_si512(acc[6] + 16, s61);
        _mm512_store_si512(acc[7], s70);
        _mm512_store_si512(acc[7] + 16, s71);
        _mm512_store_si512(acc[8], s80);
        _mm512_store_si512(acc[8] + 16, s81);
        _mm512_store_si512(acc[9], s90);
        _mm512_store_si512(acc[9] + 16, s91);
        _mm512_store_si512(acc[10], s100);
        _mm512_store_si512(acc[10] + 16, s101);
        _mm512_store_si512(acc[11], s110);
        _mm512_store_si512(acc[11] + 16, s111);
        requant_tile(acc, mr, o, n0, c, c_stride, nc);
    }
}
