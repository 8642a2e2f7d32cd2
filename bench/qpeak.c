/*
 * qpeak.c - peak integer multiply-add rates (qpeak.h): calibration, threading, portable loop.
 */
#include "qpeak.h"

#include <stdint.h>

#include "cpu.h"
#include "peak.h"
#include "qe_util.h"

#define QPEAK_ROUNDS 10    /* best of: the first round also absorbs the clock ramp-up */
#define QPEAK_STEPS 8      /* independent steps per round in every loop */


/* One int32 multiply-add per step; unsigned so that the wrap-around is defined. */
static int loop_scalar(long iters)
{
    uint32_t x = 3, a[QPEAK_STEPS];
    for (int j = 0; j < QPEAK_STEPS; j++)
        a[j] = (uint32_t)j;
    for (long i = 0; i < iters; i++) {
        __asm__ volatile("" : "+r"(x));
        for (int j = 0; j < QPEAK_STEPS; j++)
            a[j] = a[j] * x + (uint32_t)j;
    }
    uint32_t s = 0;
    for (int j = 0; j < QPEAK_STEPS; j++)
        s += a[j];
    return (int)(s & 0x7fffffff);
}

/* The integer loops return int; the shared harness (peak.h) takes double-returning loops. */
static double madd16_avx2(long iters) { return qe_peak_madd16_loop__avx2(iters); }
static double maddubs_avx2(long iters) { return qe_peak_maddubs_loop__avx2(iters); }
static double u8s8_avx2(long iters) { return qe_peak_u8s8_loop__avx2(iters); }
static double scalar(long iters) { return loop_scalar(iters); }

double qe_peak_madd16_gmacs(int threads)
{
    if (qe_cpu_get()->avx2)
        return qe_peak_measure(madd16_avx2, QPEAK_STEPS * 16, QPEAK_ROUNDS, threads);
    return qe_peak_measure(scalar, QPEAK_STEPS, QPEAK_ROUNDS, threads);
}

double qe_peak_maddubs_gmacs(int threads)
{
    if (qe_cpu_get()->avx2)
        return qe_peak_measure(maddubs_avx2, QPEAK_STEPS * 32, QPEAK_ROUNDS, threads);
    return qe_peak_measure(scalar, QPEAK_STEPS, QPEAK_ROUNDS, threads);
}

double qe_peak_u8s8_gmacs(int threads)
{
    if (qe_cpu_get()->avx2)
        return qe_peak_measure(u8s8_avx2, QPEAK_STEPS * 32, QPEAK_ROUNDS, threads);
    return qe_peak_measure(scalar, QPEAK_STEPS, QPEAK_ROUNDS, threads);
}

static double dpbusd_avx512vnni(long iters) { return qe_peak_dpbusd_loop__avx512vnni(iters); }
static double tdpbusd_amx(long iters) { return qe_peak_tdpbusd_loop__amx(iters); }

double qe_peak_dpbusd_gmacs(int threads)
{
    if (!qe_cpu_get()->avx512vnni)
        return 0;
    return qe_peak_measure(dpbusd_avx512vnni, 12 * 64, QPEAK_ROUNDS, threads);
}

double qe_peak_tdpbusd_gmacs(int threads)
{
    if (!qe_cpu_get()->amx)
        return 0;
    return qe_peak_measure(tdpbusd_amx, 4 * 16 * 16 * 64, QPEAK_ROUNDS, threads);
}
