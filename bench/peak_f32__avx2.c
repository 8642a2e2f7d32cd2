/*
 * peak_f32__avx2.c - the FMA loops behind qe_peak_*_gmacs (peak.h), built with -mavx2 -mfma.
 * The f64 twin lives here too because it needs the same ISA flags.
 */
#include "peak.h"
#include "peak_body.h"

#include <immintrin.h>

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
