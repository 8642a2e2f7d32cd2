/*
 * peak_body.h - the body of the FMA peak loops, shared by the files of each ISA
 * (peak_f32__avx2.c, peak_f32__avx512vnni.c): T the vector type, SET1/FMA/ADD its intrinsics,
 * REDUCE one scalar out of it.
 *
 * Twelve accumulators: more than FMA latency (4-5 cycles) x throughput (2 per cycle) needs, so
 * the loop is bound by the FMA ports alone. acc = acc * x + y with x just below 1 converges to
 * y / (1 - x): no overflow, no denormals.
 */
#ifndef QE_PEAK_BODY_H
#define QE_PEAK_BODY_H

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

#endif
