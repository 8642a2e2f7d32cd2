/*
 * image_resize__avx2.c - AVX2 kernels of both passes of Resize(248) (contract in
 * image_resize.h).
 *
 * The weights have 22 fractional bits (§3.2), too many for the 16-bit multipliers of vpmaddwd,
 * so each is split as k = kh * 2^11 + kl with both halves in int16, and
 * sum(p * k) = (sum(p * kh) << 11) + sum(p * kl): the same integer as the scalar sum (the
 * partial sums may wrap mod 2^32, the final value fits int32 by the contract). vpmaddwd
 * multiplies two taps at a time, so both passes feed it (tap x, tap x + 1) pairs of one band.
 *
 * Vertical pass: the two taps are two rows, so a pair is an unpack of two row loads.
 *
 * Horizontal pass: all source rows share the coefficients, so it resamples eight rows at once
 * with one row per 32-bit lane. Every multiply-add is then a plain vertical vector operation
 * with a broadcast weight and no per-pixel horizontal reduction is needed; the price is a
 * transposition of the eight rows on the way in and back on the way out. The transposed source
 * holds, for each byte column j, the eight rows' (byte j, byte j + 3) pairs: one band of two
 * neighbouring pixels.
 */
#include "image_resize.h"
#include "qe_util.h"

#include <immintrin.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define LANES 8                         /* source rows per block, one per 32-bit lane */
#define SPLIT_BITS 11                   /* k = kh << 11 + kl */
#define ROUND_HALF (1 << (QE_RESIZE_PRECISION_BITS - 1))
#define ROW_BYTES (QE_CROP * 3)
#define PAIR_BYTES (2 * LANES)          /* one transposed column: (j, j + 3) for each row */

/* In each 128-bit lane, an 8 x 8 transpose of 16-bit elements: v[r] element q -> v[q] element r. */
static inline void transpose_8x8_epi16(__m256i v[8])
{
    __m256i s[8], u[8];
#pragma GCC unroll 8
    for (int i = 0; i < 4; i++) {
        s[2 * i] = _mm256_unpacklo_epi16(v[2 * i], v[2 * i + 1]);
        s[2 * i + 1] = _mm256_unpackhi_epi16(v[2 * i], v[2 * i + 1]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < 2; i++) {
        u[4 * i + 0] = _mm256_unpacklo_epi32(s[4 * i + 0], s[4 * i + 2]);
        u[4 * i + 1] = _mm256_unpackhi_epi32(s[4 * i + 0], s[4 * i + 2]);
        u[4 * i + 2] = _mm256_unpacklo_epi32(s[4 * i + 1], s[4 * i + 3]);
        u[4 * i + 3] = _mm256_unpackhi_epi32(s[4 * i + 1], s[4 * i + 3]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < 4; i++) {
        v[2 * i] = _mm256_unpacklo_epi64(u[i], u[i + 4]);
        v[2 * i + 1] = _mm256_unpackhi_epi64(u[i], u[i + 4]);
    }
}

/* Stores the transposed columns of transpose_8x8_epi16: v[q] holds column q in its low lane
 * and column q + 16 in its high lane. */
static inline void store_columns(const __m256i v[8], uint8_t *t)
{
#pragma GCC unroll 8
    for (int q = 0; q < 8; q++) {
        _mm_storeu_si128((__m128i *)(t + q * PAIR_BYTES), _mm256_castsi256_si128(v[q]));
        _mm_storeu_si128((__m128i *)(t + (q + 16) * PAIR_BYTES), _mm256_extracti128_si256(v[q], 1));
    }
}

/* One 8 x 16-column tile of transpose_rows: columns c + first .. c + first + 7 and
 * c + first + 16 .. c + first + 23 (first = 0 or 8, the two halves of vpunpck{l,h}bw). The
 * halves are separate calls so the eight rows' registers plus the transpose's fit the sixteen
 * YMM registers; the second call's loads hit L1. */
static inline __attribute__((always_inline)) void
transpose_tile(const uint8_t *const row[LANES], size_t c, int first, uint8_t *t)
{
    __m256i v[8];
#pragma GCC unroll 8
    for (int r = 0; r < LANES; r++) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(row[r] + c));
        __m256i b = _mm256_loadu_si256((const __m256i *)(row[r] + c + 3));
        v[r] = first ? _mm256_unpackhi_epi8(a, b) : _mm256_unpacklo_epi8(a, b);
    }
    transpose_8x8_epi16(v);
    store_columns(v, t + (c + (size_t)first) * PAIR_BYTES);
}

/* t[j * PAIR_BYTES + 2r + {0, 1}] = row[r][j], row[r][j + 3] for j < ncols, where the pair's
 * second byte is 0 past the last column: it only ever meets the zero weight that pads an odd
 * tap count. Reads row[r][0 .. ncols-1] only. */
static void transpose_rows(const uint8_t *const row[LANES], size_t ncols, uint8_t *t)
{
    /* 32 columns a step, which reads columns c .. c + 34. The last step may overlap the one
     * before it (rewriting identical bytes) so that only the three columns without a right
     * neighbour are left to the scalar loop. */
    size_t done = 0;
    if (ncols >= 35) {
        for (size_t c = 0;; c += 32) {
            if (c + 35 > ncols)
                c = ncols - 35;
            transpose_tile(row, c, 0, t);
            transpose_tile(row, c, 8, t);
            if (c + 35 == ncols)
                break;
        }
        done = ncols - 3;
    }
    for (size_t j = done; j < ncols; j++)
        for (int r = 0; r < LANES; r++) {
            t[j * PAIR_BYTES + 2 * r] = row[r][j];
            t[j * PAIR_BYTES + 2 * r + 1] = j + 3 < ncols ? row[r][j + 3] : 0;
        }
}

/* The QE_CROP output pixels of one block. o receives, for each output byte, its eight rows:
 * o[(i * 3 + c) * LANES + r]; it needs 8 bytes of slack past 3 * QE_CROP * LANES. */
static void resample_block(const uint8_t *t, size_t b0, const qe_resize_axis *a,
                           const uint32_t *kh, const uint32_t *kl, int pairs, uint8_t *o)
{
    const __m256i round = _mm256_set1_epi32(ROUND_HALF);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int i = 0; i < QE_CROP; i++, kh += pairs, kl += pairs, o += 3 * LANES) {
        __m256i hr = _mm256_setzero_si256(), hg = hr, hb = hr;
        __m256i lr = round, lg = round, lb = round;
        int n = (a->taps[i] + 1) / 2;
        for (int m = 0; m < n; m++) {                   /* pixels 2m and 2m + 1 of the taps */
            const uint8_t *p = t + ((size_t)(a->start[i] + 2 * m) * 3 - b0) * PAIR_BYTES;
            __m256i ch = _mm256_set1_epi32((int32_t)kh[m]), cl = _mm256_set1_epi32((int32_t)kl[m]);
            __m256i r = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
            __m256i g = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p + PAIR_BYTES)));
            __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p + 2 * PAIR_BYTES)));
            hr = _mm256_add_epi32(hr, _mm256_madd_epi16(r, ch));
            lr = _mm256_add_epi32(lr, _mm256_madd_epi16(r, cl));
            hg = _mm256_add_epi32(hg, _mm256_madd_epi16(g, ch));
            lg = _mm256_add_epi32(lg, _mm256_madd_epi16(g, cl));
            hb = _mm256_add_epi32(hb, _mm256_madd_epi16(b, ch));
            lb = _mm256_add_epi32(lb, _mm256_madd_epi16(b, cl));
        }
        /* clip8 of §3.2: the arithmetic shift, then the two saturating packs clamp to 0..255
         * (the shifted sums lie in -512..511, so the int16 pack changes nothing). */
        __m256i r = _mm256_srai_epi32(_mm256_add_epi32(_mm256_slli_epi32(hr, SPLIT_BITS), lr),
                                      QE_RESIZE_PRECISION_BITS);
        __m256i g = _mm256_srai_epi32(_mm256_add_epi32(_mm256_slli_epi32(hg, SPLIT_BITS), lg),
                                      QE_RESIZE_PRECISION_BITS);
        __m256i b = _mm256_srai_epi32(_mm256_add_epi32(_mm256_slli_epi32(hb, SPLIT_BITS), lb),
                                      QE_RESIZE_PRECISION_BITS);
        /* Bytes [r 0-3, g 0-3, b 0-3, b 0-3 | r 4-7, g 4-7, b 4-7, b 4-7] -> r 0-7, g 0-7, b 0-7;
         * the trailing 8 bytes are overwritten by the next pixel or land in the slack. */
        __m256i w = _mm256_packus_epi16(_mm256_packs_epi32(r, g), _mm256_packs_epi32(b, b));
        _mm256_storeu_si256((__m256i *)o, _mm256_permutevar8x32_epi32(w, order));
    }
}

/* The inverse of the layout of resample_block: 8 output bytes x 8 rows a step, rows < nrows
 * stored to dst + r * ROW_BYTES. */
static void untranspose_rows(const uint8_t *o, uint8_t *dst, int nrows)
{
    /* Per 128-bit lane: row r's bytes j0 j4 j1 j5 and j2 j6 j3 j7 -> j0 .. j7. */
    const __m256i order = _mm256_setr_epi8(0, 2, 8, 10, 1, 3, 9, 11, 4, 6, 12, 14, 5, 7, 13, 15,
                                           0, 2, 8, 10, 1, 3, 9, 11, 4, 6, 12, 14, 5, 7, 13, 15);
    for (int j = 0; j < ROW_BYTES; j += 8) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(o + (size_t)j * LANES));      /* j0 j1 | j2 j3 */
        __m256i y = _mm256_loadu_si256((const __m256i *)(o + (size_t)j * LANES + 32)); /* j4 j5 | j6 j7 */
        __m256i u = _mm256_unpacklo_epi8(x, y), v = _mm256_unpackhi_epi8(x, y);
        /* Rows 0-3 and 4-7, each row's dword holding j0 j4 j1 j5 (low lane), j2 j6 j3 j7 (high). */
        __m256i w[2] = {_mm256_unpacklo_epi16(u, v), _mm256_unpackhi_epi16(u, v)};
        __m128i q[4];                   /* rows 0-1, 2-3, 4-5, 6-7 */
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
            __m256i z = _mm256_shuffle_epi8(_mm256_permute4x64_epi64(w[h], 0xD8), order);
            q[2 * h] = _mm256_castsi256_si128(z);
            q[2 * h + 1] = _mm256_extracti128_si256(z, 1);
        }
        uint8_t *d = dst + j;
        if (nrows == LANES) {
#pragma GCC unroll 8
            for (int h = 0; h < 4; h++, d += 2 * ROW_BYTES) {
                _mm_storel_epi64((__m128i *)d, q[h]);
                _mm_storel_epi64((__m128i *)(d + ROW_BYTES), _mm_unpackhi_epi64(q[h], q[h]));
            }
        } else {
            uint8_t rows8[LANES * 8];
            memcpy(rows8, q, sizeof rows8);
            for (int r = 0; r < nrows; r++)
                memcpy(d + (size_t)r * ROW_BYTES, rows8 + r * 8, 8);
        }
    }
}

/* The weights of a in vpmaddwd pairs: taps 2m and 2m+1 of output i as the two int16 halves of
 * kh[i * pairs + m] (their k >> 11) and of kl[i * pairs + m] (their k & 2047, never negative);
 * the tap past an odd count gets weight 0. One allocation, kh first; free(kh) releases both. */
static uint32_t *split_weights(const qe_resize_axis *a, int *pairs_out)
{
    int pairs = (a->stride + 1) / 2;
    uint32_t *kh = qe_malloc((size_t)QE_CROP * (size_t)pairs * 2 * sizeof *kh);
    uint32_t *kl = kh + (size_t)QE_CROP * (size_t)pairs;
    for (int i = 0; i < QE_CROP; i++)
        for (int m = 0; m < pairs; m++) {
            uint32_t h = 0, l = 0;
            for (int x = 2 * m; x < 2 * m + 2 && x < a->taps[i]; x++) {
                int32_t k = a->k[(size_t)i * (size_t)a->stride + (size_t)x];
                int shift = x == 2 * m ? 0 : 16;
                h |= (uint32_t)(uint16_t)(k >> SPLIT_BITS) << shift;       /* arithmetic shift */
                l |= (uint32_t)(k & ((1 << SPLIT_BITS) - 1)) << shift;
            }
            kh[(size_t)i * (size_t)pairs + (size_t)m] = h;
            kl[(size_t)i * (size_t)pairs + (size_t)m] = l;
        }
    *pairs_out = pairs;
    return kh;
}

void qe_resize_horizontal__avx2(const uint8_t *src, size_t src_stride, int rows,
                                const qe_resize_axis *a, uint8_t *dst)
{
    /* The byte columns any output reads, b0 .. b0 + ncols - 1. */
    int lo = INT_MAX, hi = 0;
    for (int i = 0; i < QE_CROP; i++)
        if (a->taps[i] > 0) {
            if (a->start[i] < lo)
                lo = a->start[i];
            if (a->start[i] + a->taps[i] > hi)
                hi = a->start[i] + a->taps[i];
        }
    if (hi == 0)
        lo = 0;
    size_t b0 = (size_t)lo * 3, ncols = (size_t)(hi - lo) * 3;

    int pairs;
    uint32_t *kh = split_weights(a, &pairs), *kl = kh + (size_t)QE_CROP * (size_t)pairs;
    uint8_t *t = qe_malloc((ncols > 0 ? ncols : 1) * PAIR_BYTES);
    _Alignas(32) uint8_t o[ROW_BYTES * LANES + 8];
    for (int y = 0; y < rows; y += LANES) {
        /* A short last block repeats its last row in the spare lanes and stores only its own. */
        int nrows = rows - y < LANES ? rows - y : LANES;
        const uint8_t *row[LANES];
        for (int r = 0; r < LANES; r++)
            row[r] = src + (size_t)(y + (r < nrows ? r : nrows - 1)) * src_stride + b0;
        transpose_rows(row, ncols, t);
        resample_block(t, b0, a, kh, kl, pairs, o);
        untranspose_rows(o, dst + (size_t)y * ROW_BYTES, nrows);
    }
    free(t);
    free(kh);
}

/* ---- vertical pass ------------------------------------------------------------------------ */

/* 32 bytes of two rows as the 32 (a, b) int16 pairs of vpmaddwd, in the order of the unpacks:
 * w[0] columns 0-3 | 16-19, w[1] 4-7 | 20-23, w[2] 8-11 | 24-27, w[3] 12-15 | 28-31. The
 * in-lane packs of the final clip undo exactly this order. */
static inline void pair_rows(__m256i a, __m256i b, __m256i w[4])
{
    const __m256i zero = _mm256_setzero_si256();
    __m256i lo = _mm256_unpacklo_epi8(a, b), hi = _mm256_unpackhi_epi8(a, b);
    w[0] = _mm256_unpacklo_epi8(lo, zero);
    w[1] = _mm256_unpackhi_epi8(lo, zero);
    w[2] = _mm256_unpacklo_epi8(hi, zero);
    w[3] = _mm256_unpackhi_epi8(hi, zero);
}

void qe_resize_vertical__avx2(const uint8_t *src, size_t src_stride, int first_row,
                              const qe_resize_axis *a, uint8_t *dst)
{
    int pairs;
    uint32_t *kh = split_weights(a, &pairs), *kl = kh + (size_t)QE_CROP * (size_t)pairs;
    const __m256i round = _mm256_set1_epi32(ROUND_HALF);
    for (int i = 0; i < QE_CROP; i++, dst += ROW_BYTES) {
        size_t row = (size_t)(a->start[i] - first_row);     /* used only when taps > 0 */
        const uint32_t *ph = kh + (size_t)i * (size_t)pairs, *pl = kl + (size_t)i * (size_t)pairs;
        int taps = a->taps[i];
        for (int j = 0; j < ROW_BYTES; j += 32) {
            __m256i h[4], l[4], w[4];
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                h[q] = _mm256_setzero_si256();
                l[q] = round;
            }
            int y = 0;
            for (; y + 2 <= taps; y += 2) {
                const uint8_t *p = src + (row + (size_t)y) * src_stride + (size_t)j;
                pair_rows(_mm256_loadu_si256((const __m256i *)p),
                          _mm256_loadu_si256((const __m256i *)(p + src_stride)), w);
                __m256i ch = _mm256_set1_epi32((int32_t)ph[y / 2]), cl = _mm256_set1_epi32((int32_t)pl[y / 2]);
#pragma GCC unroll 4
                for (int q = 0; q < 4; q++) {
                    h[q] = _mm256_add_epi32(h[q], _mm256_madd_epi16(w[q], ch));
                    l[q] = _mm256_add_epi32(l[q], _mm256_madd_epi16(w[q], cl));
                }
            }
            if (y < taps) {             /* an odd last tap: its pair partner has weight 0 */
                const uint8_t *p = src + (row + (size_t)y) * src_stride + (size_t)j;
                pair_rows(_mm256_loadu_si256((const __m256i *)p), _mm256_setzero_si256(), w);
                __m256i ch = _mm256_set1_epi32((int32_t)ph[y / 2]), cl = _mm256_set1_epi32((int32_t)pl[y / 2]);
#pragma GCC unroll 4
                for (int q = 0; q < 4; q++) {
                    h[q] = _mm256_add_epi32(h[q], _mm256_madd_epi16(w[q], ch));
                    l[q] = _mm256_add_epi32(l[q], _mm256_madd_epi16(w[q], cl));
                }
            }
            __m256i r[4];
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++)
                r[q] = _mm256_srai_epi32(_mm256_add_epi32(_mm256_slli_epi32(h[q], SPLIT_BITS), l[q]),
                                         QE_RESIZE_PRECISION_BITS);
            /* clip8 as in resample_block; the in-lane packs restore the column order. */
            __m256i v = _mm256_packus_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
            _mm256_storeu_si256((__m256i *)(dst + j), v);
        }
    }
    free(kh);
}
