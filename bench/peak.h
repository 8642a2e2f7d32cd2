/*
 * peak.h - the machine's peak multiply-add rate, the yardstick of the benchmarks.
 *
 * A register-resident loop of independent fused multiply-adds runs on `threads` OpenMP threads
 * for about 0.3 s; the result is in GMAC/s, one MAC per FMA lane (an 8-lane f32 FMA counts 8).
 * The loops use the widest vectors the FP32 kernels use: 512-bit on the AVX-512 rung of cpu.h,
 * else 256-bit with AVX2+FMA; without either (or with QE_ISA=portable) they are plain C and the
 * result is the scalar multiply-add rate.
 */
#ifndef QE_PEAK_H
#define QE_PEAK_H

/* The shared harness: runs `loop` (a register-resident loop doing macs_per_iter multiply-adds per
 * iteration, returning a value derived from its accumulators) on `threads` OpenMP threads for
 * about 0.3 s in `rounds` rounds, and returns the best rate in GMAC/s. */
double qe_peak_measure(double (*loop)(long iters), double macs_per_iter, int rounds, int threads);

/* Peak f32 multiply-add rate on `threads` threads (>= 1), GMAC/s. */
double qe_peak_f32_gmacs(int threads);
/* Same in f64 (4-lane FMAs with AVX2). */
double qe_peak_f64_gmacs(int threads);

/* The register loops themselves: `iters` rounds of 12 independent vector FMAs, returning a value
 * derived from the accumulators so the work cannot be optimised away. */
float qe_peak_f32_loop__avx2(long iters);
double qe_peak_f64_loop__avx2(long iters);
float qe_peak_f32_loop__avx512vnni(long iters);
double qe_peak_f64_loop__avx512vnni(long iters);

#endif
