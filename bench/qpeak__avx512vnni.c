/*
 * qpeak__avx512vnni.c - the vpdpbusd loop behind qpeak.h, built with the AVX-512 VNNI flags.
 *
 * Twelve independent 512-bit accumulators (64 MACs per instruction): enough to cover the
 * instruction's latency at two per cycle. One-line volatile asm per step, as in qpeak__avx2.c.
 */
#include "qpeak.h"

#include <immintrin.h>

#define DPBUSD(s, a, m) __asm__ volatile("vpdpbusd %2, %1, %0" : "+v"(s) : "v"(a), "v"(m))

int qe_peak_dpbusd_loop__avx512vnni(long iters)
{
    __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(5), a = _mm512_set1_epi8(1);
    __m512i s0 = a, s1 = a, s2 = a, s3 = a, s4 = a, s5 = a, s6 = a, s7 = a, s8 = a, s9 = a,
            s10 = a, s11 = a;
    for (long i = 0; i < iters; i++) {
        DPBUSD(s0, a, x);
        DPBUSD(s1, a, y);
        DPBUSD(s2, a, x);
        DPBUSD(s3, a, y);
        DPBUSD(s4, a, x);
        DPBUSD(s5, a, y);
        DPBUSD(s6, a, x);
        DPBUSD(s7, a, y);
        DPBUSD(s8, a, x);
        DPBUSD(s9, a, y);
        DPBUSD(s10, a, x);
        DPBUSD(s11, a, y);
    }
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3)),
                                 _mm512_add_epi32(_mm512_add_epi32(s4, s5), _mm512_add_epi32(s6, s7)));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(s8, s9), _mm512_add_epi32(s10, s11)));
    return _mm512_reduce_add_epi32(s) & 0x7fffffff;
}
