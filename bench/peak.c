/*
 * peak.c - machine peak multiply-add rates (peak.h): calibration, threading, portable loops.
 */
#include "peak.h"

#include <omp.h>

#include "cpu.h"
#include "qe_util.h"

#define PEAK_SECONDS 0.3         /* per measurement, over all rounds */
#define PEAK_ROUNDS 3      /* best of: the first round also absorbs the clock ramp-up */
#define PEAK_ACCS 12

typedef double (*peak_loop_fn)(long iters);

/* Portable loops: a multiply then an add (the build forbids contraction), one MAC each. */
#define SCALAR_PEAK(T)                                                           \
    T x = (T)0.999999, y = (T)1e-7, a[PEAK_ACCS];                                \
    for (int j = 0; j < PEAK_ACCS; j++)                                          \
        a[j] = (T)j / 10;                                                        \
    for (long i = 0; i < iters; i++)                                             \
        for (int j = 0; j < PEAK_ACCS; j++)                                      \
            a[j] = a[j] * x + y;                                                 \
    T s = 0;                                                                     \
    for (int j = 0; j < PEAK_ACCS; j++)                                          \
        s += a[j];                                                               \
    return s

static double loop_f32_scalar(long iters) { SCALAR_PEAK(float); }
static double loop_f64_scalar(long iters) { SCALAR_PEAK(double); }
static double loop_f32_avx2(long iters) { return qe_peak_f32_loop__avx2(iters); }
static double loop_f64_avx2(long iters) { return qe_peak_f64_loop__avx2(iters); }
static double loop_f32_avx512(long iters) { return qe_peak_f32_loop__avx512vnni(iters); }
static double loop_f64_avx512(long iters) { return qe_peak_f64_loop__avx512vnni(iters); }

/* Seconds of wall time for `iters` rounds on each of `threads` threads. */
static double timed_run(peak_loop_fn loop, long iters, int threads)
{
    volatile double sink = 0;
    double t0 = qe_now();
#pragma omp parallel num_threads(threads)
    {
        double s = loop(iters);
#pragma omp atomic
        sink += s;
    }
    (void)sink;
    return qe_now() - t0;
}

double qe_peak_measure(double (*loop)(long iters), double macs_per_iter, int rounds, int threads)
{
    if (threads < 1)
        threads = 1;
    long iters = 1 << 12;
    double t;
    timed_run(loop, iters, threads);   /* start the thread team before timing anything */
    while ((t = timed_run(loop, iters, threads)) < 0.01 && iters < (1L << 40))
        iters *= 2;
    iters = (long)(iters * (PEAK_SECONDS / rounds) / t) + 1;
    double best = 0;
    for (int r = 0; r < rounds; r++) {
        t = timed_run(loop, iters, threads);
        double rate = (double)threads * iters * macs_per_iter / t * 1e-9;
        if (rate > best)
            best = rate;
    }
    return best;
}

double qe_peak_f32_gmacs(int threads)
{
    if (qe_cpu_get()->avx512vnni)
        return qe_peak_measure(loop_f32_avx512, PEAK_ACCS * 16, PEAK_ROUNDS, threads);
    if (qe_cpu_get()->avx2)
        return qe_peak_measure(loop_f32_avx2, PEAK_ACCS * 8, PEAK_ROUNDS, threads);
    return qe_peak_measure(loop_f32_scalar, PEAK_ACCS, PEAK_ROUNDS, threads);
}

double qe_peak_f64_gmacs(int threads)
{
    if (qe_cpu_get()->avx512vnni)
        return qe_peak_measure(loop_f64_avx512, PEAK_ACCS * 8, PEAK_ROUNDS, threads);
    if (qe_cpu_get()->avx2)
        return qe_peak_measure(loop_f64_avx2, PEAK_ACCS * 4, PEAK_ROUNDS, threads);
    return qe_peak_measure(loop_f64_scalar, PEAK_ACCS, PEAK_ROUNDS, threads);
}
