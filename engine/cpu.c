#include "cpu.h"

#include <cpuid.h>
#include <stdlib.h>
#include <string.h>

static qe_cpu g_cpu;
static int g_forced_portable;
static int g_detected;

static unsigned long long xgetbv0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void detect(void)
{
    unsigned int a, b, c, d;
    int avx2 = 0;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
        /* The OS must save YMM state (XCR0 bits 1 and 2) before AVX registers may be used. */
        if (fma && osxsave && avx && (xgetbv0() & 6) == 6 && __get_cpuid_max(0, NULL) >= 7) {
            __cpuid_count(7, 0, a, b, c, d);
            avx2 = (b >> 5) & 1;
        }
    }
    const char *isa = getenv("QE_ISA");
    if (isa && strcmp(isa, "portable") == 0)
        avx2 = 0;
    g_cpu.avx2 = avx2;
}

const qe_cpu *qe_cpu_get(void)
{
    /* Detection is idempotent, so a benign race between threads writes identical values. */
    if (!__atomic_load_n(&g_detected, __ATOMIC_ACQUIRE)) {
        detect();
        __atomic_store_n(&g_detected, 1, __ATOMIC_RELEASE);
    }
    if (g_forced_portable) {
        static const qe_cpu portable = {0};
        return &portable;
    }
    return &g_cpu;
}

void qe_cpu_force_portable(int on) { g_forced_portable = on; }

const char *qe_cpu_isa_name(void) { return qe_cpu_get()->avx2 ? "avx2" : "portable"; }
