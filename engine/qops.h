/*
 * qops.h - the exact element-wise operations of the integer network (spec quantsim.md §9),
 * on NHWC uint8 codes. Each is bit-identical to the scalar formulas of §9 and qdq.h.
 */
#ifndef QE_QOPS_H
#define QE_QOPS_H

#include <stddef.h>
#include <stdint.h>

#include "qdq.h"

/* §9.6: n normalised 3x224x224 CHW images -> NHWC codes of the input quantizer. */
void qe_qops_quantize_input(const qe_qparams *qp, const float *x, int n, uint8_t *out);
/* §9.6 from the crops themselves: n HWC u8 crops (image.h) -> NHWC codes, the same codes as
 * qe_qops_quantize_input of their normalised tensors. */
void qe_qops_quantize_crops(const qe_qparams *qp, const uint8_t *crops, int n, uint8_t *out);
/* §9.4: 3x3 stride-2 pad-1 max over the valid window of h x h x c codes, then lut (the
 * requantisation of a relu code into the maxpool encoding). */
void qe_qops_maxpool_3x3s2(const uint8_t *in, int n, int h, int c, const uint8_t lut[256], uint8_t *out);
/* §9.3, the residual add of one block: the encodings of its operands and output, and the
 * whole function as a table, lut[a * 256 + b] = Q(max(D_A(a) + D_B(b), 0); qo). */
typedef struct qe_qops_add_op {
    qe_qparams qa, qb, qo;
    uint8_t lut[256 * 256];
} qe_qops_add_op;

void qe_qops_add_init(qe_qops_add_op *op, const qe_qparams *qa, const qe_qparams *qb, const qe_qparams *qo);
/* a[i] = the op's result for (a[i], b[i]): the table on the portable path, the formula in f32
 * vectors on AVX2 (identical results, tested over all 65536 pairs). */
void qe_qops_add(uint8_t *a, const uint8_t *b, const qe_qops_add_op *op, size_t count);
/* §9.5: per image and channel, the mean of hw codes (encoding qi) requantised into qo. */
void qe_qops_avgpool(const uint8_t *in, int n, int hw, int c, const qe_qparams *qi, const qe_qparams *qo,
                     uint8_t *out);

#endif
