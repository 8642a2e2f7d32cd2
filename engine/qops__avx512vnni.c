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
