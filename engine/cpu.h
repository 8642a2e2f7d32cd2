/*
 * cpu.h - the CPU features the kernels dispatch on, read once with cpuid.
 *
 * QE_ISA=portable in the environment forces the portable C kernels (used by tests to compare
 * paths, and by users to rule out a fast path).
 */
#ifndef QE_CPU_H
#define QE_CPU_H

typedef struct qe_cpu {
    int avx2;              /* AVX2 + FMA + OS support for YMM state */
} qe_cpu;

/* Thread-safe; the first call detects, later calls return the cached result. */
const qe_cpu *qe_cpu_get(void);
/* Tests: override the detected features (call before any kernel runs). */
void qe_cpu_force_portable(int on);
/* "avx2" or "portable". */
const char *qe_cpu_isa_name(void);

#endif
