/*
 * cpu.h - the CPU features the kernels dispatch on, read once with cpuid.
 *
 * The features form a ladder: AVX512-VNNI implies AVX2 here (the engine only enables it when
 * both are usable). QE_ISA in the environment caps the ladder: "portable" forces the portable
 * C kernels, "avx2" the AVX2 ones (used by tests to compare paths, and by users to rule out a
 * fast path).
 */
#ifndef QE_CPU_H
#define QE_CPU_H

typedef enum qe_isa {
    QE_ISA_PORTABLE = 0,
    QE_ISA_AVX2 = 1,       /* AVX2 + FMA + F16C, OS support for YMM state */
    QE_ISA_AVX512VNNI = 2, /* AVX-512 F/BW/DQ/VL + VNNI, OS support for ZMM and opmask state */
    QE_ISA_BEST = 3        /* as a cap: no cap */
} qe_isa;

typedef struct qe_cpu {
    int avx2;
    int avx512vnni;        /* never set without avx2 */
} qe_cpu;

/* Thread-safe; the first call detects, later calls return the cached result (under the cap). */
const qe_cpu *qe_cpu_get(void);
/* The highest rung in use, after QE_ISA and qe_cpu_cap(). */
qe_isa qe_cpu_isa(void);
/* Tests and benchmarks: use no rung above isa from now on (QE_ISA_BEST lifts the cap). Kernels
 * are chosen when a layer is initialised, so call this before building the layers to compare. */
void qe_cpu_cap(qe_isa isa);
/* "avx512vnni", "avx2" or "portable": the rung in use. */
const char *qe_cpu_isa_name(void);

#endif
