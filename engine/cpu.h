/*
 * cpu.h - the CPU features the kernels dispatch on, read once with cpuid.
 *
 * The features form a ladder: each rung implies the ones below it (the engine only enables a
 * rung when all below are usable). QE_ISA in the environment caps the ladder: "portable"
 * forces the portable C kernels, "avx2" and "avx512vnni" stop at those rungs (used by tests to
 * compare paths, and by users to rule out a fast path).
 */
#ifndef QE_CPU_H
#define QE_CPU_H

typedef enum qe_isa {
    QE_ISA_PORTABLE = 0,
    QE_ISA_AVX2 = 1,       /* AVX2 + FMA + F16C, OS support for YMM state */
    QE_ISA_AVX512VNNI = 2, /* AVX-512 F/BW/DQ/VL + VNNI, OS support for ZMM and opmask state */
    QE_ISA_AMX = 3,        /* AMX-TILE + AMX-INT8, tile state enabled by the OS for this process */
    QE_ISA_BEST = 4        /* as a cap: no cap */
} qe_isa;

typedef struct qe_cpu {
    int avx2;
    int avx512vnni;        /* never set without avx2 */
    int amx;               /* never set without avx512vnni */
    int avx512vbmi;        /* byte permutes (vpermi2b), only with avx512vnni; not a rung */
} qe_cpu;

/* Thread-safe; the first call detects, later calls return the cached result (under the cap). */
const qe_cpu *qe_cpu_get(void);
/* The highest rung in use, after QE_ISA and qe_cpu_cap(). */
qe_isa qe_cpu_isa(void);
/* Tests and benchmarks: use no rung above isa from now on (QE_ISA_BEST lifts the cap). Kernels
 * are chosen when a layer is initialised, so call this before building the layers to compare. */
void qe_cpu_cap(qe_isa isa);
/* "amx", "avx512vnni", "avx2" or "portable": a rung's name, and that of the rung in use. */
const char *qe_isa_name(qe_isa isa);
const char *qe_cpu_isa_name(void);

#endif
