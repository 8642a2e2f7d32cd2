/*
 * qpeak.c - peak integer multiply-add rates (qpeak.h): calibration, threading, portable loop.
 */
#include "qpeak.h"

#include <stdint.h>

#include "cpu.h"
#include "qe_util.h"

#define QPEAK_SECONDS 0.3
#define QPEAK_ROUNDS 10    /* best of: the first round also absorbs the clock ramp-up */
#define QPEAK_STEPS 8      /* independent steps per round in every loop */

typedef int (*qpeak_loop_fn)(long iters);

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

static double timed_run(qpeak_loop_fn loop, long iters, int threads)
{
    volatile int sink = 0;
    double t0 = qe_now();
#pragma omp parallel num_threads(threads)
    {
        int s = loop(iters);
#pragma omp atomic
        sink += s;
    }
    (void)sink;
    return qe_now() - t0;
}

static double peak_gmacs(qpeak_loop_fn loop, int macs_per_step, int threads)
{
    if (threads < 1)
        threads = 1;
    long iters = 1 << 12;
    double t;
    while ((t = timed_run(loop, iters, threads)) < 0.01 && iters < (1L << 40))
        iters *= 2;
    iters = (long)(iters * (QPEAK_SECONDS / QPEAK_ROUNDS) / t) + 1;
    double best = 0;
    for (int r = 0; r < QPEAK_ROUNDS; r++) {
        t = timed_run(loop, iters, threads);
        double rate = (double)threads * iters * QPEAK_STEPS * macs_per_step / t * 1e-9;
        if (rate > best)
            best = rate;
    }
    return best;
}

double qe_peak_madd16_gmacs(int threads)
{
    if (qe_cpu_get()->avx2)
        return peak_gmacs(qe_peak_madd16_loop__avx2, 16, threads);
    return peak_gmacs(loop_scalar, 1, threads);
}

double qe_peak_maddubs_gmacs(int threads)
{
    if (qe_cpu_get()->avx2)
        return peak_gmacs(qe_peak_maddubs_loop__avx2, 32, threads);
    return peak_gmacs(loop_scalar, 1, threads);
}
