/*
 * qconv.h - exact integer convolution of spec quantsim.md §9.2, NHWC uint8 activation codes.
 *
 *   acc[c,p] = sum (q[ci, p+(ky,kx)] - z_x) * k[c,ci,ky,kx]        exact int32
 *   y        = (double)acc * scale[c] + bias[c]                      two rounded f64 ops, no FMA
 *   yf       = (float)y ;  if relu: yf = max(yf, 0)
 *   out      = qe_quantize(yf, out_qparams)                          (qdq.h, §1.5)
 *
 * scale[c] = (double)delta_x * (double)delta_w[c] and bias[c] = (double)bias'[c] are given by the
 * caller. Padding positions contribute zero (code z_x). Weights are packed once at init; the
 * accumulation never depends on saturating instructions. Kernels: AMX, AVX-512 VNNI, AVX2 and
 * portable C, chosen at run time (cpu.h), tested equal. fc is a 1x1 convolution on a 1x1 image.
 */
#ifndef QE_QCONV_H
#define QE_QCONV_H

#include <stddef.h>
#include <stdint.h>

#include "qdq.h"
#include "qops.h"

typedef struct qe_qconv {
    int cin, cout, kh, kw, stride, pad;
    int wbits;             /* 8 or 4: codes in [-2^(wbits-1), 2^(wbits-1)-1], or [0, 2^wbits-1] (unsigned, §1.6) */
    void *wpack;           /* kernel-specific packed weights (owned) */
    int32_t *wsum;         /* [cout] sum of the weight codes, for the zero-point compensation (owned) */
    void *priv;
} qe_qconv;

typedef struct qe_requant {
    const double *scale;   /* [cout] (double)delta_x * (double)delta_w[c] */
    const double *bias;    /* [cout] (double)bias'[c] */
    int relu;
    qe_qparams out;        /* encoding of the output codes */
    /* Optional, §9.3 fused into the epilogue: each output code q becomes add(q, r), r the code
     * at the same position of residual (shaped like the output; may not alias it). */
    const qe_qops_add_op *add;
    const uint8_t *residual;
} qe_requant;

/* Longest dot product whose int32 accumulator cannot overflow: 255 * 255 * K < 2^31. */
#define QE_QCONV_K_MAX 33025

/* k: [cout][cin][kh][kw] weight codes k = code - z (§9.1), each channel's signed (-128..127
 * for 8 bits) or unsigned (0..255, §1.6), both kinds possibly in one layer. Any codes in
 * -255..255 (those of every encoding of at most 8 bits, encoding.h) give the exact result
 * while K = kh * kw * cin <= QE_QCONV_K_MAX (§9.2); a longer K is refused: -1, c left empty
 * (free it all the same). The kernels are chosen from the codes themselves (qconv.c); wbits is
 * recorded only. */
int qe_qconv_init(qe_qconv *c, int cin, int cout, int kh, int kw, int stride, int pad, int wbits,
                  const int16_t *k);
void qe_qconv_free(qe_qconv *c);
/* in: [n][h][w][cin] codes with zero point zx; out: [n][oh][ow][cout] codes. */
void qe_qconv_forward(const qe_qconv *c, const uint8_t *in, int n, int h, int w, int zx,
                      const qe_requant *rq, uint8_t *out);
/* Packed weight bytes (for the resident-memory report). */
size_t qe_qconv_bytes(const qe_qconv *c);

#endif
