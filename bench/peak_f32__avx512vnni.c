/*
 * peak_f32__avx512vnni.c - the FMA loops of peak_f32__avx2.c on 512-bit vectors, the yardstick
 * of the AVX-512 f32 and f64 kernels (built with the AVX-512 flags).
 */
#include "peak.h"
#include "peak_body.h"

#include <immintrin.h>

float qe_peak_f32_loop__avx512vnni(long iters)
{
    PEAK_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_reduce_add_ps);
}

double qe_peak_f64_loop__avx512vnni(long iters)
{
    PEAK_BODY(__m512d, _mm512_set1_pd, _mm512_fmadd_pd, _mm512_add_pd, _mm512_reduce_add_pd);
}
