/*
 * qgemm_scalar.c - the portable micro-kernels of qgemm.h: plain C over the same packed panels and
 * indirection as the AVX2 kernels, and the reference those kernels are tested against.
 */
#include "qgemm.h"

#define MR 4               /* rows per tile, in the indirection layout of qgemm.h */

/* kr and the element types are compile-time constants at both call sites, so each wrapper
 * becomes its own specialised loop. Sums are unsigned: wrapping is defined and, as qgemm.h
 * explains, harmless. */
static inline void gemm_rows(size_t m, size_t nc, size_t ks, size_t kc, const void *const *ind,
                             const void *w, uint8_t *c, size_t c_stride, const qe_qgemm_out *o,
                             size_t n0, int kr)
{
    for (size_t i = 0; i < m; i++) {
        uint32_t acc[QE_QGEMM_NR];
        for (int j = 0; j < QE_QGEMM_NR; j++)
            acc[j] = (uint32_t)o->acc0[n0 + (size_t)j];
        for (size_t e = 0; e < ks; e++) {
            const void *seg = ind[(i / MR * ks + e) * MR + i % MR];
            for (size_t k = 0; k < kc; k += (size_t)kr) {
                size_t kk = e * kc + k;   /* position in the packed K */
                for (int j = 0; j < QE_QGEMM_NR; j++) {
                    for (int t = 0; t < kr; t++) {
                        size_t wi = (kk / (size_t)kr * QE_QGEMM_NR + (size_t)j) * (size_t)kr +
                                    (size_t)t;
                        int32_t q, wk;
                        if (kr == 2) {
                            q = ((const uint16_t *)seg)[k + (size_t)t];
                            wk = ((const int16_t *)w)[wi];
                        } else {
                            q = ((const uint8_t *)seg)[k + (size_t)t];
                            wk = ((const int8_t *)w)[wi];
                        }
                        acc[j] += (uint32_t)(q * wk);
                    }
                }
            }
        }
        uint8_t *crow = c + i * c_stride;
        for (size_t j = 0; j < nc; j++)
            crow[j] = qe_qgemm_requant((int32_t)acc[j], o, n0 + j);
        if (o->add) {
            const uint8_t *rrow = o->res_base + (crow - o->out_base);
            for (size_t j = 0; j < nc; j++)
                crow[j] = o->add->lut[(size_t)crow[j] * 256 + rrow[j]];
        }
    }
}

void qe_qu8s8_gemm_ukernel_4x16c2__scalar(size_t m, size_t nc, size_t ks, size_t kc,
                                          const void *const *ind, const void *w, uint8_t *c,
                                          size_t c_stride, const qe_qgemm_out *o, size_t n0)
{
    gemm_rows(m, nc, ks, kc, ind, w, c, c_stride, o, n0, 2);
}

void qe_qu8s4_gemm_ukernel_4x16c4__scalar(size_t m, size_t nc, size_t ks, size_t kc,
                                          const void *const *ind, const void *w, uint8_t *c,
                                          size_t c_stride, const qe_qgemm_out *o, size_t n0)
{
    gemm_rows(m, nc, ks, kc, ind, w, c, c_stride, o, n0, 4);
}
