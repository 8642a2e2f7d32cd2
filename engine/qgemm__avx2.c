/*
 * qgemm__avx2.c - AVX2 micro-kernels of qgemm.h (built with -mavx2 -mfma; no FMA is used: the
 * build's -ffp-contract=off keeps the epilogue's f64 multiply and add apart, §9.8).
 *
 * Every kernel broadcasts a few K values of one A row into every 32-bit lane and multiplies them
 * with 8 output channels' packed weights, so the sums are finished per channel and need no
 * horizontal reduction. They end in an int32 tile in L1, which the shared epilogue reads.
 */
#include "qgemm.h"

#include <immintrin.h>
#include <string.h>

#include "qdq__avx2.h"

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
    int clamp_min;         /* 0 when the ReLU already keeps y >= 0 >= min_f */
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
    k.half = _mm256_set1_ps(0.49999997f);   /* 0.5 - 2^-25, see requant8() */
    k.relu = o->relu;
    k.clamp_min = !(o->relu && o->min_f <= 0.0f && o->max_f >= 0.0f);
    return k;
}

/*
 * qe_qgemm_requant() on the int32 sums acc[0..7] of the channels whose scale and bias start at
 * sc and bi: the same operations in the same order, the division a true one (vdivps, §1.5).
 *
 * After a ReLU, max(y, 0) >= 0 >= min_f already, so the min_f clamp is skipped when every §1.4
 * encoding's min_f <= 0 <= max_f holds. vmaxps/vminps return their second operand when one is
 * NaN, which here matches fmaxf(NaN, 0) = 0 and fminf(NaN, max_f) = max_f.
 *
 * For v = x / delta_f - offset_f, the clamp to [0, 255] and roundf (halves away from zero) take
 * three instructions: t = trunc(min(255, v) + (0.5 - 2^-25)), and the saturating packs of the
 * caller turn t < 0 (negative v, and NaN, which converts to INT_MIN) into 0. Adding 0.5 itself
 * would round 0.5 - 2^-25 up to 1; with 0.5 - 2^-25 the f32 sum never crosses an integer the
 * wrong way: checked for all 2^32 floats against fminf/fmaxf/roundf, every quiet NaN included
 * (signalling NaNs cannot come out of the f64 arithmetic above).
 */
static inline __m256i requant8(const int32_t *acc, const double *sc, const double *bi,
                               const rq_consts *k)
{
    __m256d lo = _mm256_cvtepi32_pd(_mm_load_si128((const __m128i *)acc));
    __m256d hi = _mm256_cvtepi32_pd(_mm_load_si128((const __m128i *)(acc + 4)));
    lo = _mm256_mul_pd(lo, _mm256_loadu_pd(sc));
    hi = _mm256_mul_pd(hi, _mm256_loadu_pd(sc + 4));
    lo = _mm256_add_pd(lo, _mm256_loadu_pd(bi));
    hi = _mm256_add_pd(hi, _mm256_loadu_pd(bi + 4));
    __m256 y = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
    if (k->relu)
        y = _mm256_max_ps(y, k->zero);
    y = _mm256_min_ps(y, k->max_f);
    if (k->clamp_min)
        y = _mm256_max_ps(y, k->min_f);
    y = _mm256_sub_ps(_mm256_div_ps(y, k->delta_f), k->offset_f);
    y = _mm256_min_ps(k->c255, y);
    return _mm256_cvttps_epi32(_mm256_add_ps(y, k->half));
}

/* The fused §9.3 residual add of a tile's codes: row r's 16 codes are q[2 * r], q[2 * r + 1] (as
 * requant8 leaves them: at most 255, negative meaning 0) and its output is at c + r * c_stride
 * (qgemm.h). A short row's residual is copied first so that no byte past the tensor is read.
 * Kept out of line: inlined into the kernels, it costs their GEMM loops registers. */
static __attribute__((noinline)) void add_residual_tile(__m256i *q, size_t rows, const qe_qgemm_out *o,
                                                        const uint8_t *c, size_t c_stride, size_t nc)
{
    const qe_add8_consts ak = qe_add8_consts_load(o->add);
    const __m256i zero = _mm256_setzero_si256();
    for (size_t r = 0; r < rows; r++, c += c_stride) {
        const uint8_t *res = o->res_base + (c - o->out_base);
        uint8_t tmp[QE_QGEMM_NR];
        if (nc < QE_QGEMM_NR) {
            memcpy(tmp, res, nc);
            res = tmp;
        }
        q[2 * r] = qe_add8__avx2(_mm256_max_epi32(q[2 * r], zero), _mm_loadl_epi64((const __m128i *)res), &ak);
        q[2 * r + 1] = qe_add8__avx2(_mm256_max_epi32(q[2 * r + 1], zero),
                                     _mm_loadl_epi64((const __m128i *)(res + 8)), &ak);
    }
}

/*
 * The epilogue of a tile: rows (<= 6) x 16 int32 sums (acc, 32-byte aligned, 16 per row) of
 * channels n0 .., requantized (and the residual added when o->add is set); the first nc codes
 * of each row are stored. Reading the sums from memory lets vcvtdq2pd take its operand straight
 * from L1, without the lane-crossing shuffle it needs from a register.
 */
static inline __attribute__((always_inline)) void
requant_tile(const int32_t *acc, size_t rows, const qe_qgemm_out *o, const rq_consts *k,
             size_t n0, uint8_t *c, size_t c_stride, size_t nc)
{
    const double *sc = o->scale + n0, *bi = o->bias + n0;
    __m256i q[12];
    for (size_t r = 0; r < rows; r++) {
        q[2 * r] = requant8(acc + r * QE_QGEMM_NR, sc, bi, k);
        q[2 * r + 1] = requant8(acc + r * QE_QGEMM_NR + 8, sc + 8, bi + 8, k);
    }
    if (o->add)
        add_residual_tile(q, rows, o, c, c_stride, nc);
    for (size_t r = 0; r < rows; r++, c += c_stride) {
        /* Saturating packs (see requant8); the permute undoes their lane interleave. */
        __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[2 * r], q[2 * r + 1]), 0xD8);
        __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(w16),
                                     _mm256_extracti128_si256(w16, 1));
        if (nc == QE_QGEMM_NR) {
            _mm_storeu_si128((__m128i *)c, b);
        } else {
            uint8_t tmp[QE_QGEMM_NR];
            _mm_storeu_si128((__m128i *)tmp, b);
            memcpy(c, tmp, nc);
        }
    }
}

/* Segment pointers of a tile of mr <= 6 rows (p: its 6 indirection slots): missing rows alias
 * the last real one, so they are computed for nothing but never read out of bounds. */
#define TILE_ROWS6(p, mr)                                                    \
    const uint8_t *a0 = (const uint8_t *)(p)[0];                            \
    const uint8_t *a1 = (mr) > 1 ? (const uint8_t *)(p)[1] : a0;            \
    const uint8_t *a2 = (mr) > 2 ? (const uint8_t *)(p)[2] : a1;            \
    const uint8_t *a3 = (mr) > 3 ? (const uint8_t *)(p)[3] : a2;            \
    const uint8_t *a4 = (mr) > 4 ? (const uint8_t *)(p)[4] : a3;            \
    const uint8_t *a5 = (mr) > 5 ? (const uint8_t *)(p)[5] : a4

/*
 * 6 rows x 16 channels, K two at a time: the 12 accumulators, 2 weight vectors and the
 * broadcast A pair fill 15 of the 16 YMM registers.
 */
void qe_qu8s8_gemm_ukernel_6x16c2__avx2_madd16(size_t m, size_t nc, size_t ks, size_t kc,
                                               const void *const *ind, const void *w, uint8_t *c,
                                               size_t c_stride, const qe_qgemm_out *o, size_t n0)
{
    rq_consts rk = rq_consts_load(o);
    for (size_t mr; m > 0; m -= mr, ind += 6 * ks, c += 6 * c_stride) {
        mr = m < 6 ? m : 6;
        __m256i s00 = _mm256_loadu_si256((const __m256i *)(o->acc0 + n0));
        __m256i s01 = _mm256_loadu_si256((const __m256i *)(o->acc0 + n0 + 8));
        __m256i s10 = s00, s11 = s01, s20 = s00, s21 = s01, s30 = s00, s31 = s01;
        __m256i s40 = s00, s41 = s01, s50 = s00, s51 = s01;
        const __m256i *wp = w;
        for (size_t e = 0; e < ks; e++) {
            TILE_ROWS6(ind + 6 * e, mr);
            for (size_t k = 0; k < 2 * kc; k += 4) {   /* k: byte offset into uint16 codes */
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
        }

        _Alignas(32) int32_t acc[6][QE_QGEMM_NR];
        _mm256_store_si256((__m256i *)acc[0], s00);
        _mm256_store_si256((__m256i *)(acc[0] + 8), s01);
        _mm256_store_si256((__m256i *)acc[1], s10);
        _mm256_store_si256((__m256i *)(acc[1] + 8), s11);
        _mm256_store_si256((__m256i *)acc[2], s20);
        _mm256_store_si256((__m256i *)(acc[2] + 8), s21);
        _mm256_store_si256((__m256i *)acc[3], s30);
        _mm256_store_si256((__m256i *)(acc[3] + 8), s31);
        _mm256_store_si256((__m256i *)acc[4], s40);
        _mm256_store_si256((__m256i *)(acc[4] + 8), s41);
        _mm256_store_si256((__m256i *)acc[5], s50);
        _mm256_store_si256((__m256i *)(acc[5] + 8), s51);
        requant_tile(acc[0], mr, o, &rk, n0, c, c_stride, nc);
    }
}

/*
 * 6 rows x 16 channels, K four at a time: vpmaddubsw multiplies the broadcast A quad of a row
 * (unsigned bytes) by two weight vectors (signed bytes) into int16 pair sums, and `depth` of
 * them are added in int16 before one vpmaddwd widens the sum into the int32 accumulators. A
 * pair sum is at most 2 * 255 * kmax, so `depth` of them stay within 32767 when
 * depth * 510 * kmax <= 32767: depth 8 for |k| <= 8, depth 4 for |k| <= 16 (qgemm.h). kc is a
 * multiple of 4 * depth (the kernel's kc_align): each block of `depth` quads is straight code.
 *
 * The 12 int16 sums, the two weight vectors, the broadcast and a product fill the 16 YMM
 * registers, so the int32 accumulators live in an L1 tile touched once per block. Per block
 * of 8 quads: 96 vpmaddubsw, 84 vpaddw, 12 vpmaddwd and 12 vpaddd, 17 vector operations per 8
 * vpmaddubsw where the peak loop (qpeak.h) needs 16 (measured: 84% of it at large K, 94%
 * without the widening).
 */
#define MADDUBS_ROW(i, q, b0, b1, t0, t1)                                        \
    do {                                                                         \
        __m256i x_ = bcast32(a##i + k + 4 * (q));                                \
        if ((q) == 0) {                                                          \
            t0 = _mm256_maddubs_epi16(x_, b0);                                   \
            t1 = _mm256_maddubs_epi16(x_, b1);                                   \
        } else {                                                                 \
            t0 = _mm256_add_epi16(t0, _mm256_maddubs_epi16(x_, b0));             \
            t1 = _mm256_add_epi16(t1, _mm256_maddubs_epi16(x_, b1));             \
        }                                                                        \
    } while (0)

/* The empty asm ends each quad with the 12 sums in registers: without it GCC 12 reassociates
 * the int16 additions of a block into trees that keep every product alive, and spills. */
#define MADDUBS_QUAD(q)                                                          \
    do {                                                                         \
        __m256i b0 = _mm256_load_si256(wp + 2 * (q));                            \
        __m256i b1 = _mm256_load_si256(wp + 2 * (q) + 1);                        \
        MADDUBS_ROW(0, q, b0, b1, t00, t01);                                     \
        MADDUBS_ROW(1, q, b0, b1, t10, t11);                                     \
        MADDUBS_ROW(2, q, b0, b1, t20, t21);                                     \
        MADDUBS_ROW(3, q, b0, b1, t30, t31);                                     \
        MADDUBS_ROW(4, q, b0, b1, t40, t41);                                     \
        MADDUBS_ROW(5, q, b0, b1, t50, t51);                                     \
        __asm__("" : "+x"(t00), "+x"(t01), "+x"(t10), "+x"(t11), "+x"(t20),      \
                "+x"(t21), "+x"(t30), "+x"(t31), "+x"(t40), "+x"(t41), "+x"(t50),  \
                "+x"(t51));                                                      \
    } while (0)

/* dst = src + the pairwise int32 sums of t's int16 lanes: src is the tile's own running sums,
 * or acc0 for its first block (saving an initial copy of acc0 into the tile). */
static inline void widen_add(int32_t *dst, const int32_t *src, __m256i t)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i s = _mm256_loadu_si256((const __m256i *)src);
    _mm256_store_si256((__m256i *)dst, _mm256_add_epi32(s, _mm256_madd_epi16(t, ones)));
}

/* One block of `depth` K quads at byte offset k of the segments, widened into the tile acc
 * from src (rows src_row apart). */
static inline __attribute__((always_inline)) void
block_6x16c4(const uint8_t *a0, const uint8_t *a1, const uint8_t *a2, const uint8_t *a3,
             const uint8_t *a4, const uint8_t *a5, size_t k, const __m256i *wp, int depth,
             int32_t (*acc)[QE_QGEMM_NR], const int32_t *src, size_t src_row)
{
    __m256i t00, t01, t10, t11, t20, t21, t30, t31, t40, t41, t50, t51;
    MADDUBS_QUAD(0);
    MADDUBS_QUAD(1);
    MADDUBS_QUAD(2);
    MADDUBS_QUAD(3);
    if (depth == 8) {
        MADDUBS_QUAD(4);
        MADDUBS_QUAD(5);
        MADDUBS_QUAD(6);
        MADDUBS_QUAD(7);
    }
    widen_add(acc[0], src, t00);
    widen_add(acc[0] + 8, src + 8, t01);
    widen_add(acc[1], src + src_row, t10);
    widen_add(acc[1] + 8, src + src_row + 8, t11);
    widen_add(acc[2], src + 2 * src_row, t20);
    widen_add(acc[2] + 8, src + 2 * src_row + 8, t21);
    widen_add(acc[3], src + 3 * src_row, t30);
    widen_add(acc[3] + 8, src + 3 * src_row + 8, t31);
    widen_add(acc[4], src + 4 * src_row, t40);
    widen_add(acc[4] + 8, src + 4 * src_row + 8, t41);
    widen_add(acc[5], src + 5 * src_row, t50);
    widen_add(acc[5] + 8, src + 5 * src_row + 8, t51);
    /* Keeps acc in memory: otherwise GCC holds it in 12 more registers across the K loop and
     * spills the int16 sums instead. */
    __asm__ volatile("" : : "r"(acc) : "memory");
}

static inline __attribute__((always_inline)) void
gemm_6x16c4_maddubs(size_t m, size_t nc, size_t ks, size_t kc, const void *const *ind,
                    const void *w, uint8_t *c, size_t c_stride, const qe_qgemm_out *o, size_t n0,
                    int depth)
{
    rq_consts rk = rq_consts_load(o);
    for (size_t mr; m > 0; m -= mr, ind += 6 * ks, c += 6 * c_stride) {
        mr = m < 6 ? m : 6;
        _Alignas(32) int32_t acc[6][QE_QGEMM_NR];
        const int32_t *src = o->acc0 + n0;
        size_t src_row = 0;
        const __m256i *wp = w;
        for (size_t e = 0; e < ks; e++) {
            TILE_ROWS6(ind + 6 * e, mr);
            for (size_t k = 0; k < kc; k += 4 * (size_t)depth, wp += 2 * depth) {
                block_6x16c4(a0, a1, a2, a3, a4, a5, k, wp, depth, acc, src, src_row);
                src = acc[0];
                src_row = QE_QGEMM_NR;
            }
        }
        if (src != acc[0])   /* no K at all: the sums are acc0 */
            for (int r = 0; r < 6; r++)
                memcpy(acc[r], o->acc0 + n0, sizeof acc[r]);
        requant_tile(acc[0], mr, o, &rk, n0, c, c_stride, nc);
    }
}

void qe_qu8s4_gemm_ukernel_6x16c4__avx2_sum8(size_t m, size_t nc, size_t ks, size_t kc,
                                             const void *const *ind, const void *w, uint8_t *c,
                                             size_t c_stride, const qe_qgemm_out *o, size_t n0)
{
    gemm_6x16c4_maddubs(m, nc, ks, kc, ind, w, c, c_stride, o, n0, 8);
}

void qe_qu8s4_gemm_ukernel_6x16c4__avx2_sum4(size_t m, size_t nc, size_t ks, size_t kc,
                                             const void *const *ind, const void *w, uint8_t *c,
                                             size_t c_stride, const qe_qgemm_out *o, size_t n0)
{
    gemm_6x16c4_maddubs(m, nc, ks, kc, ind, w, c, c_stride, o, n0, 4);
}
