#include "cpu.h"

#include <cpuid.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Linux: a process must ask for the AMX tile data state before using it (arch_prctl(2)). */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static qe_cpu g_capped[QE_ISA_BEST + 1];   /* the rungs found under QE_ISA, per cap */
static int g_cap = QE_ISA_BEST;
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
    int avx2 = 0, vnni = 0, amx = 0, vbmi = 0;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
        /* The OS must save YMM state (XCR0 bits 1 and 2) before AVX registers may be used, and
         * the opmask and both halves of the ZMM state (bits 5-7) before AVX-512 ones. */
        unsigned long long xcr0 = fma && osxsave && avx ? xgetbv0() : 0;
        if ((xcr0 & 6) == 6 && __get_cpuid_max(0, NULL) >= 7) {
            __cpuid_count(7, 0, a, b, c, d);
            avx2 = (b >> 5) & 1 && f16c;
            int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
            int vnni_bit = (c >> 11) & 1;
            vnni = avx2 && f && dq && bw && vl && vnni_bit && (xcr0 & 0xE6) == 0xE6;
            vbmi = vnni && ((c >> 1) & 1);
            int tile = (d >> 24) & 1, int8 = (d >> 25) & 1;
            amx = vnni && tile && int8 && (xcr0 & 0x60000) == 0x60000;
        }
    }
    const char *isa = getenv("QE_ISA");
    if (isa && strcmp(isa, "portable") == 0)
        avx2 = vnni = amx = vbmi = 0;
    if (isa && strcmp(isa, "avx2") == 0)
        vnni = amx = vbmi = 0;
    if (isa && strcmp(isa, "avx512vnni") == 0)
        amx = 0;
    if (amx && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
        amx = 0;
    for (int i = 0; i <= QE_ISA_BEST; i++) {
        g_capped[i].avx2 = avx2 && i >= QE_ISA_AVX2;
        g_capped[i].avx512vnni = vnni && i >= QE_ISA_AVX512VNNI;
        g_capped[i].amx = amx && i >= QE_ISA_AMX;
        g_capped[i].avx512vbmi = vbmi && i >= QE_ISA_AVX512VNNI;
    }
}

const qe_cpu *qe_cpu_get(void)
{
    /* Detection is idempotent, so a benign race between threads writes identical values. */
    if (!__atomic_load_n(&g_detected, __ATOMIC_ACQUIRE)) {
        detect();
        __atomic_store_n(&g_detected, 1, __ATOMIC_RELEASE);
    }
    return &g_capped[g_cap];
}

qe_isa qe_cpu_isa(void)
{
    const qe_cpu *c = qe_cpu_get();
    return c->amx ? QE_ISA_AMX : c->avx512vnni ? QE_ISA_AVX512VNNI : c->avx2 ? QE_ISA_AVX2 : QE_ISA_PORTABLE;
}

void qe_cpu_cap(qe_isa isa) { g_cap = isa < QE_ISA_PORTABLE || isa > QE_ISA_BEST ? QE_ISA_BEST : isa; }

const char *qe_isa_name(qe_isa isa)
{
    static const char *const names[] = {"portable", "avx2", "avx512vnni", "amx"};
    return isa >= QE_ISA_PORTABLE && isa <= QE_ISA_AMX ? names[isa] : "best";
}

const char *qe_cpu_isa_name(void) { return qe_isa_name(qe_cpu_isa()); }
