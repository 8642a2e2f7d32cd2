/*
 * qops_ukernel.h - the row kernels behind qops.c (internal to the engine): a portable C version,
 * which is the reference, and an AVX2 (or AVX-512) version chosen at run time (cpu.h),
 * bit-identical.
 */
#ifndef QE_QOPS_UKERNEL_H
#define QE_QOPS_UKERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "qdq.h"
#include "qops.h"

/*
 * §9.6 for pixels p0 .. p1-1 of one image: x holds 3 planes of hw floats (CHW), out gets
 * out[p * 3 + c] = (uint8_t)qe_quantize(x[c * hw + p], qp) (the NHWC codes).
 */
void qe_qops_quantize_chw3__scalar(const qe_qparams *qp, const float *x, size_t hw, size_t p0,
                                   size_t p1, uint8_t *out);
void qe_qops_quantize_chw3__avx2(const qe_qparams *qp, const float *x, size_t hw, size_t p0,
                                 size_t p1, uint8_t *out);

/* out[i] = tab[i % 3][in[i]] for i < 3 * pixels: a per-channel table over HWC bytes. */
void qe_qops_lut_hwc3__scalar(const uint8_t tab[3][256], const uint8_t *in, size_t pixels, uint8_t *out);
void qe_qops_lut_hwc3__avx512vbmi(const uint8_t tab[3][256], const uint8_t *in, size_t pixels, uint8_t *out);

/* §9.3 on count codes in place: a[i] = op(a[i], b[i]). */
void qe_qops_add_row__scalar(uint8_t *a, const uint8_t *b, size_t count, const qe_qops_add_op *op);
void qe_qops_add_row__avx2(uint8_t *a, const uint8_t *b, size_t count, const qe_qops_add_op *op);

/* §9.4, output row y of one h x h x c image of codes: the max over each valid 3x3 stride-2
 * window, through lut. AVX-512 VBMI only (cpu.h avx512vbmi). */
void qe_qops_maxpool_row__avx512vbmi(const uint8_t *in, int h, int c, int y, const uint8_t lut[256],
                                     uint8_t *out);

#endif
