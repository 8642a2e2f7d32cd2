/*
 * peak_f32__avx2.c - the FMA loops behind qe_peak_*_gmacs (peak.h), built with -mavx2 -mfma.
 *
 * Twelve accumulators: more than FMA latency (4-5 cycles) x throughput (2 per cycle) needs, so
 * the loop is bound by the FMA ports alone. The f64 twin lives here too because it needs the
 * same ISA flags.
 */
#include "peak.h"

#include <immintrin.h>

/* acc = acc * x + y with x just below 1 converges to y / (1 - x): no overflow, no denormals. */
#define PEAK_BODY(T, SET1, FMA, ADD, REDUCE)                                    \
    T x = SET1(0.999999), y = SET1(1e-7);                                       \
    T a0 = SET1(0.0), a1 = SET1(0.1), a2 = SET1(0.2), a3 = SET1(0.3);         \
    T a4 = SET1(0.4), a5 = SET1(0.5), a6 = SET1(0.6), a7 = SET1(0.7);         \
    T a8 = SET1(0.8), a9 = SET1(0.9), a10 = SET1(1.0), a11 = SET1(1.1);       \
    for (long i = 0; i < iters; i++) {                                          \
        a0 = FMA(a0, x, y); a1 = FMA(a1, x, y); a2 = FMA(a2, x, y);             \
        a3 = FMA(a3, x, y); a4 = FMA(a4, x, y); a5 = FMA(a5, x, y);             \
        a6 = FMA(a6, x, y); a7 = FMA(a7, x, y); a8 = FMA(a8, x, y);             \
        a9 = FMA(a9, x, y); a10 = FMA(a10, x, y); a11 = FMA(a11, x, y);         \
    }                                                                           \
    T s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));   \
    s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));                                \
    return REDUCE(s)

static float first_f32(__m256 v) { return _mm256_cvtss_f32(v); }
static double first_f64(__m256d v) { return _mm256_cvtsd_f64(v); }

float qe_peak_f32_loop__avx2(long iters)
{
    PEAK_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, first_f32);
}

double qe_peak_f64_loop__avx2(long iters)
{
    PEAK_BODY(__m256d, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_add_pd, first_f64);
}
