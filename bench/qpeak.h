/*
 * qpeak.h - the machine's peak integer multiply-add rates, the yardsticks of bench_qlayers.
 *
 * Register-resident loops of independent multiply-adds run on `threads` OpenMP threads for about
 * 0.3 s; results are in GMAC/s, one MAC per multiplied pair. Without AVX2 (or with
 * QE_ISA=portable) both loops are plain C int32 multiply-adds.
 */
#ifndef QE_QPEAK_H
#define QE_QPEAK_H

/* Exact 16-bit rate: vpmaddwd (16 MACs) with its vpaddd into an int32 accumulator, the inner
 * step of the qu8s8 kernels. */
double qe_peak_madd16_gmacs(int threads);
/* vpmaddubsw rate (32 MACs) with a vpaddw into an int16 accumulator, the inner step of the qu8s4
 * kernels (and of saturating u8s8 GEMMs such as ONNX Runtime's). */
double qe_peak_maddubs_gmacs(int threads);

/* The u8s8 cell of saturating u8 x s8 GEMMs such as ONNX Runtime's MLAS on AVX2: vpmaddubsw
 * (32 MACs), vpmaddwd with ones to widen its pair sums, vpaddd. The yardstick of such runtimes,
 * so their published ratios compare with ours. */
double qe_peak_u8s8_gmacs(int threads);

/* Exact u8 x s8 rates of the engine's AVX-512 VNNI and AMX kernels: vpdpbusd (64 MACs) and
 * tdpbusd (16384 MACs). 0 when the CPU (or QE_ISA) does not provide them. */
double qe_peak_dpbusd_gmacs(int threads);
double qe_peak_tdpbusd_gmacs(int threads);

/* The loops: `iters` rounds of independent steps, returning a value derived from the
 * accumulators so the work cannot be optimised away. */
int qe_peak_dpbusd_loop__avx512vnni(long iters);
int qe_peak_tdpbusd_loop__amx(long iters);
int qe_peak_madd16_loop__avx2(long iters);
int qe_peak_maddubs_loop__avx2(long iters);
int qe_peak_u8s8_loop__avx2(long iters);

#endif
