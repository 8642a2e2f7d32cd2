/*
 * gemm_f64.c - the portable f64 GEMM microkernels and the per-ISA kernel tables (gemm_f64.h).
 *
 * The product x*w is exact and the add rounds once, exactly as the AVX2 kernel's FMA does, so
 * this path is the bit-exact reference of the fast one, not merely a close one.
 */
#include "gemm_f64.h"

#include "cpu.h"

static inline void gemm_tile(const int mr, size_t nc, size_t kc, const double *a,
                             size_t a_stride, const double *w, double *acc, size_t acc_stride,
                             const qe_f64_gemm_params *params)
{
    double s[QE_F64_GEMM_MR_MAX][QE_F64_GEMM_NR];

    for (int r = 0; r < mr; r++)
        for (int j = 0; j < QE_F64_GEMM_NR; j++)
            s[r][j] = params->first ? 0.0 : acc[r * acc_stride + j];
    for (size_t k = 0; k < kc; k++, w += QE_F64_GEMM_NR)
        for (int r = 0; r < mr; r++) {
            const double x = a[r * a_stride + k];
            for (int j = 0; j < QE_F64_GEMM_NR; j++)
                s[r][j] += x * w[j];
        }
    for (int r = 0; r < mr; r++) {
        if (params->out)
            for (size_t j = 0; j < nc; j++) {
                const float y = (float)(s[r][j] + params->bias[j]);
                params->out[r * params->out_stride + j] = !params->relu || y > 0.0f ? y : 0.0f;
            }
        else
            for (int j = 0; j < QE_F64_GEMM_NR; j++)
                acc[r * acc_stride + j] = s[r][j];
    }
}

#define DEFINE_UKERNEL(MR)                                                                    \
    void qe_f64_gemm_ukernel_##MR##x8__scalar(size_t nc, size_t kc, const double *a,          \
                                              size_t a_stride, const double *w, double *acc,  \
                                              size_t acc_stride, const qe_f64_gemm_params *p) \
    {                                                                                         \
        gemm_tile(MR, nc, kc, a, a_stride, w, acc, acc_stride, p);                            \
    }
DEFINE_UKERNEL(1)
DEFINE_UKERNEL(2)
DEFINE_UKERNEL(3)
DEFINE_UKERNEL(4)
DEFINE_UKERNEL(5)
DEFINE_UKERNEL(6)

static const qe_f64_gemm_config config_scalar = {
    "scalar", 6,
    {NULL, qe_f64_gemm_ukernel_1x8__scalar, qe_f64_gemm_ukernel_2x8__scalar,
     qe_f64_gemm_ukernel_3x8__scalar, qe_f64_gemm_ukernel_4x8__scalar,
     qe_f64_gemm_ukernel_5x8__scalar, qe_f64_gemm_ukernel_6x8__scalar},
    {NULL},
};

static const qe_f64_gemm_config config_avx2 = {
    "avx2", 6,
    {NULL, qe_f64_gemm_ukernel_1x8__avx2, qe_f64_gemm_ukernel_2x8__avx2,
     qe_f64_gemm_ukernel_3x8__avx2, qe_f64_gemm_ukernel_4x8__avx2,
     qe_f64_gemm_ukernel_5x8__avx2, qe_f64_gemm_ukernel_6x8__avx2},
    {NULL},
};

static const qe_f64_gemm_config config_avx512 = {
    "avx512vnni", 8,
    {NULL, qe_f64_gemm_ukernel_1x8__avx512vnni, qe_f64_gemm_ukernel_2x8__avx512vnni,
     qe_f64_gemm_ukernel_3x8__avx512vnni, qe_f64_gemm_ukernel_4x8__avx512vnni,
     qe_f64_gemm_ukernel_5x8__avx512vnni, qe_f64_gemm_ukernel_6x8__avx512vnni,
     qe_f64_gemm_ukernel_7x8__avx512vnni, qe_f64_gemm_ukernel_8x8__avx512vnni,
     qe_f64_gemm_ukernel_9x8__avx512vnni, qe_f64_gemm_ukernel_10x8__avx512vnni,
     qe_f64_gemm_ukernel_11x8__avx512vnni, qe_f64_gemm_ukernel_12x8__avx512vnni},
    {NULL, qe_f64_gemm_ukernel_1x16__avx512vnni, qe_f64_gemm_ukernel_2x16__avx512vnni,
     qe_f64_gemm_ukernel_3x16__avx512vnni, qe_f64_gemm_ukernel_4x16__avx512vnni,
     qe_f64_gemm_ukernel_5x16__avx512vnni, qe_f64_gemm_ukernel_6x16__avx512vnni,
     qe_f64_gemm_ukernel_7x16__avx512vnni, qe_f64_gemm_ukernel_8x16__avx512vnni,
     qe_f64_gemm_ukernel_9x16__avx512vnni, qe_f64_gemm_ukernel_10x16__avx512vnni,
     qe_f64_gemm_ukernel_11x16__avx512vnni, qe_f64_gemm_ukernel_12x16__avx512vnni},
};

const qe_f64_gemm_config *qe_f64_gemm_config_get(void)
{
    const qe_cpu *c = qe_cpu_get();
    return c->avx512vnni ? &config_avx512 : c->avx2 ? &config_avx2 : &config_scalar;
}
