/*
 * gemm_f32.c - the portable f32 indirect-GEMM microkernels and the per-ISA kernel tables
 * (gemm_f32.h).
 *
 * Plain C over the same packed layout and tile shape as the AVX2 kernels, so the convolution
 * driver is the same for both; the 16-wide column loops are left for the compiler to vectorise.
 * Each product is rounded before its add (the build forbids contraction), so this path's sums
 * differ from the FMA path's within float rounding.
 */
#include "gemm_f32.h"

#include "cpu.h"

static inline void igemm_tile(const int mr, size_t nc, size_t ks, size_t kc,
                              const float *const *a, const float *w, float *c, size_t c_stride,
                              const qe_f32_gemm_params *params)
{
    float acc[QE_F32_GEMM_MR_MAX][QE_F32_GEMM_NR];

    for (int r = 0; r < mr; r++)
        for (size_t j = 0; j < QE_F32_GEMM_NR; j++)
            acc[r][j] = params->bias ? params->bias[j] : j < nc ? c[r * c_stride + j] : 0.0f;
    for (size_t s = 0; s < ks; s++, a += mr)
        for (size_t k = 0; k < kc; k++, w += QE_F32_GEMM_NR)
            for (int r = 0; r < mr; r++) {
                const float x = a[r][k];
                for (size_t j = 0; j < QE_F32_GEMM_NR; j++)
                    acc[r][j] += x * w[j];
            }
    for (int r = 0; r < mr; r++)
        for (size_t j = 0; j < nc; j++) {
            float v = acc[r][j];
            if (params->residual)
                v += params->residual[r * c_stride + j];
            if (params->relu && !(v > 0.0f))
                v = 0.0f;
            c[r * c_stride + j] = v;
        }
}

#define DEFINE_UKERNEL(MR)                                                                    \
    void qe_f32_igemm_ukernel_##MR##x16__scalar(size_t nc, size_t ks, size_t kc,              \
                                                const float *const *a, const float *w,        \
                                                float *c, size_t c_stride,                    \
                                                const qe_f32_gemm_params *p)                  \
    {                                                                                         \
        igemm_tile(MR, nc, ks, kc, a, w, c, c_stride, p);                                     \
    }
DEFINE_UKERNEL(1)
DEFINE_UKERNEL(2)
DEFINE_UKERNEL(3)
DEFINE_UKERNEL(4)
DEFINE_UKERNEL(5)
DEFINE_UKERNEL(6)
/* Taller tiles: not used by this path (6 rows), but the reference of the AVX-512 kernels. */
DEFINE_UKERNEL(7)
DEFINE_UKERNEL(8)
DEFINE_UKERNEL(9)
DEFINE_UKERNEL(10)
DEFINE_UKERNEL(11)
DEFINE_UKERNEL(12)

static const qe_f32_gemm_config config_scalar = {
    "scalar", 6,
    {NULL, qe_f32_igemm_ukernel_1x16__scalar, qe_f32_igemm_ukernel_2x16__scalar,
     qe_f32_igemm_ukernel_3x16__scalar, qe_f32_igemm_ukernel_4x16__scalar,
     qe_f32_igemm_ukernel_5x16__scalar, qe_f32_igemm_ukernel_6x16__scalar,
     qe_f32_igemm_ukernel_7x16__scalar, qe_f32_igemm_ukernel_8x16__scalar,
     qe_f32_igemm_ukernel_9x16__scalar, qe_f32_igemm_ukernel_10x16__scalar,
     qe_f32_igemm_ukernel_11x16__scalar, qe_f32_igemm_ukernel_12x16__scalar},
    {NULL},
};

static const qe_f32_gemm_config config_avx2 = {
    "avx2", 6,
    {NULL, qe_f32_igemm_ukernel_1x16__avx2, qe_f32_igemm_ukernel_2x16__avx2,
     qe_f32_igemm_ukernel_3x16__avx2, qe_f32_igemm_ukernel_4x16__avx2,
     qe_f32_igemm_ukernel_5x16__avx2, qe_f32_igemm_ukernel_6x16__avx2},
    {NULL},
};

static const qe_f32_gemm_config config_avx512 = {
    "avx512vnni", 12,
    {NULL, qe_f32_igemm_ukernel_1x16__avx512vnni, qe_f32_igemm_ukernel_2x16__avx512vnni,
     qe_f32_igemm_ukernel_3x16__avx512vnni, qe_f32_igemm_ukernel_4x16__avx512vnni,
     qe_f32_igemm_ukernel_5x16__avx512vnni, qe_f32_igemm_ukernel_6x16__avx512vnni,
     qe_f32_igemm_ukernel_7x16__avx512vnni, qe_f32_igemm_ukernel_8x16__avx512vnni,
     qe_f32_igemm_ukernel_9x16__avx512vnni, qe_f32_igemm_ukernel_10x16__avx512vnni,
     qe_f32_igemm_ukernel_11x16__avx512vnni, qe_f32_igemm_ukernel_12x16__avx512vnni},
    {NULL, qe_f32_igemm_ukernel_1x32__avx512vnni, qe_f32_igemm_ukernel_2x32__avx512vnni,
     qe_f32_igemm_ukernel_3x32__avx512vnni, qe_f32_igemm_ukernel_4x32__avx512vnni,
     qe_f32_igemm_ukernel_5x32__avx512vnni, qe_f32_igemm_ukernel_6x32__avx512vnni,
     qe_f32_igemm_ukernel_7x32__avx512vnni, qe_f32_igemm_ukernel_8x32__avx512vnni,
     qe_f32_igemm_ukernel_9x32__avx512vnni, qe_f32_igemm_ukernel_10x32__avx512vnni,
     qe_f32_igemm_ukernel_11x32__avx512vnni, qe_f32_igemm_ukernel_12x32__avx512vnni},
};

const qe_f32_gemm_config *qe_f32_gemm_config_get(void)
{
    const qe_cpu *c = qe_cpu_get();
    return c->avx512vnni ? &config_avx512 : c->avx2 ? &config_avx2 : &config_scalar;
}

const qe_f32_gemm_config *qe_f32_gemm_config_scalar(void) { return &config_scalar; }
