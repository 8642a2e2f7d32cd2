/*
 * qpeak__avx2.c - the integer multiply-add loops behind qpeak.h, built with -mavx2.
 *
 * Each round: eight independent products (four multiplicands times two multipliers), each
 * added into its own accumulator, 14 of the 16 YMM registers. The products do not depend on
 * the previous round, so the only loop-carried chains are 1-cycle adds. Every instruction is a
 * one-line volatile asm statement: with intrinsics GCC 12 shuffles the accumulators through the
 * stack each round and measures its own register allocation instead of the multiplier, and
 * non-volatile asm would let it hoist the loop-invariant products out of the loop.
 */
#include "qpeak.h"

#include <immintrin.h>

#define QPEAK_STEP(MUL, ADD, s, a, m)                                \
    do {                                                             \
        __m256i t_;                                                  \
        __asm__ volatile(MUL " %2, %1, %0" : "=x"(t_) : "x"(a), "x"(m)); \
        __asm__ volatile(ADD " %1, %0, %0" : "+x"(s) : "x"(t_));    \
    } while (0)

#define QPEAK_BODY(SET1, MUL, ADD, VADD)                                            \
    __m256i x = SET1(3), y = SET1(5);                                              \
    __m256i a0 = SET1(1), a1 = SET1(2), a2 = SET1(3), a3 = SET1(4);                \
    __m256i s0 = a0, s1 = a0, s2 = a0, s3 = a0, s4 = a0, s5 = a0, s6 = a0, s7 = a0;  \
    for (long i = 0; i < iters; i++) {                                             \
        QPEAK_STEP(MUL, ADD, s0, a0, x);                                           \
        QPEAK_STEP(MUL, ADD, s1, a1, x);                                           \
        QPEAK_STEP(MUL, ADD, s2, a2, x);                                           \
        QPEAK_STEP(MUL, ADD, s3, a3, x);                                           \
        QPEAK_STEP(MUL, ADD, s4, a0, y);                                           \
        QPEAK_STEP(MUL, ADD, s5, a1, y);                                           \
        QPEAK_STEP(MUL, ADD, s6, a2, y);                                           \
        QPEAK_STEP(MUL, ADD, s7, a3, y);                                           \
    }                                                                              \
    __m256i s = VADD(VADD(VADD(s0, s1), VADD(s2, s3)), VADD(VADD(s4, s5), VADD(s6, s7))); \
    return _mm256_extract_epi32(s, 0)

int qe_peak_madd16_loop__avx2(long iters)
{
    QPEAK_BODY(_mm256_set1_epi16, "vpmaddwd", "vpaddd", _mm256_add_epi32);
}

int qe_peak_maddubs_loop__avx2(long iters)
{
    QPEAK_BODY(_mm256_set1_epi8, "vpmaddubsw", "vpaddw", _mm256_add_epi16);
}

/* The u8s8 cell: vpmaddubsw, its pair sums widened by vpmaddwd with ones, vpaddd. */
#define U8S8_STEP(s, a, m, ones)                                                  \
    do {                                                                          \
        __m256i t_;                                                               \
        __asm__ volatile("vpmaddubsw %2, %1, %0" : "=x"(t_) : "x"(a), "x"(m));    \
        __asm__ volatile("vpmaddwd %1, %0, %0" : "+x"(t_) : "x"(ones));           \
        __asm__ volatile("vpaddd %1, %0, %0" : "+x"(s) : "x"(t_));                \
    } while (0)

int qe_peak_u8s8_loop__avx2(long iters)
{
    __m256i x = _mm256_set1_epi8(3), y = _mm256_set1_epi8(5), ones = _mm256_set1_epi16(1);
    __m256i a0 = _mm256_set1_epi8(1), a1 = _mm256_set1_epi8(2), a2 = _mm256_set1_epi8(3);
    __m256i s0 = a0, s1 = a0, s2 = a0, s3 = a0, s4 = a0, s5 = a0, s6 = a0, s7 = a0;
    for (long i = 0; i < iters; i++) {
        U8S8_STEP(s0, a0, x, ones);
        U8S8_STEP(s1, a1, x, ones);
        U8S8_STEP(s2, a2, x, ones);
        U8S8_STEP(s3, a0, y, ones);
        U8S8_STEP(s4, a1, y, ones);
        U8S8_STEP(s5, a2, y, ones);
        U8S8_STEP(s6, a0, x, ones);
        U8S8_STEP(s7, a1, y, ones);
    }
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(s0, s1), _mm256_add_epi32(s2, s3)),
                                 _mm256_add_epi32(_mm256_add_epi32(s4, s5), _mm256_add_epi32(s6, s7)));
    return _mm256_extract_epi32(s, 0);
}
