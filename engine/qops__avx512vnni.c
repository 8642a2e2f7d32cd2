/*
 * qops__avx512vnni.c - AVX-512 row kernels of qops_ukernel.h, for the AVX-512 rung of cpu.h.
 */
#include "qops_ukernel.h"

#include <immintrin.h>

/* The 256-entry table on 64 codes: vpermi2b looks a byte up in 128 table bytes held in two
 * registers, once for each half of the table, and the code's top bit picks the half. */
__attribute__((target("avx512vbmi"))) static inline __m512i lut64(const __m512i t[4], __m512i v)
{
    __m512i lo = _mm512_permutex2var_epi8(t[0], v, t[1]);
    __m512i hi = _mm512_permutex2var_epi8(t[2], v, t[3]);
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi);
}

__attribute__((target("avx512vbmi"))) void
qe_qops_maxpool_row__avx512vbmi(const uint8_t *in, int h, int c, int y, const uint8_t lut[256],
                                uint8_t *out)
{
    const __m512i t[4] = {_mm512_loadu_si512(lut), _mm512_loadu_si512(lut + 64),
                          _mm512_loadu_si512(lut + 128), _mm512_loadu_si512(lut + 192)};
    const int oh = (h + 2 - 3) / 2 + 1;
    const int sy0 = 2 * y - 1 < 0 ? 0 : 2 * y - 1, sy1 = 2 * y + 2 < h ? 2 * y + 2 : h;
    for (int x = 0; x < oh; x++) {
        const int sx0 = 2 * x - 1 < 0 ? 0 : 2 * x - 1, sx1 = 2 * x + 2 < h ? 2 * x + 2 : h;
        for (int k = 0; k < c; k += 64) {
            const __mmask64 mask = c - k >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (c - k)) - 1;
            __m512i m = _mm512_setzero_si512();
            for (int sy = sy0; sy < sy1; sy++)
                for (int sx = sx0; sx < sx1; sx++)
                    m = _mm512_max_epu8(m, _mm512_maskz_loadu_epi8(
                                               mask, in + ((size_t)sy * (size_t)h + (size_t)sx) * (size_t)c + (size_t)k));
            _mm512_mask_storeu_epi8(out + (size_t)x * (size_t)c + (size_t)k, mask, lut64(t, m));
        }
    }
}

/* 64 bytes of HWC pixels: 64 = 1 (mod 3), so the vector at byte 64q has channel (q + l) % 3 in
 * lane l, and the lanes of channel c are those with l % 3 == (c - q) % 3. */
__attribute__((target("avx512vbmi"))) void
qe_qops_lut_hwc3__avx512vbmi(const uint8_t tab[3][256], const uint8_t *in, size_t pixels, uint8_t *out)
{
    static const uint64_t lanes_mod3[3] = {0x9249249249249249ull, 0x2492492492492492ull, 0x4924924924924924ull};
    __m512i t[3][4];
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < 4; k++)
            t[c][k] = _mm512_loadu_si512(tab[c] + 64 * k);
    const size_t bytes = pixels * 3;
    for (size_t i = 0, q = 0; i < bytes; i += 64, q = q == 2 ? 0 : q + 1) {
        const size_t left = bytes - i;
        const __mmask64 m = left >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << left) - 1;
        const __m512i v = _mm512_maskz_loadu_epi8(m, in + i);
        __m512i r = lut64(t[0], v);
        r = _mm512_mask_blend_epi8(lanes_mod3[(4 - q) % 3], r, lut64(t[1], v));
        r = _mm512_mask_blend_epi8(lanes_mod3[(5 - q) % 3], r, lut64(t[2], v));
        _mm512_mask_storeu_epi8(out + i, m, r);
    }
}
