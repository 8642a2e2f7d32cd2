/*
 * qgemm.h - the integer GEMM micro-kernels behind qconv.c (internal to the engine).
 *
 * A micro-kernel computes an m x nc block (nc <= its nr, 16 or 32) of
 *
 *   acc[i][c] = acc0[c] + sum_k A[i][k] * B[k][c]            exact, modulo 2^32
 *
 * in tiles of its mr rows, where A holds the uint8 activation codes (padding already filled
 * with z_x), B the weight codes packed by qconv.c and acc0[c] = -z_x * wsum[c], then runs the
 * §9.2 epilogue on each element and stores uint8 codes. acc equals the true accumulator of §9.2
 * modulo 2^32, and §9.2 guarantees that the true one fits in int32, so wrapping int32
 * arithmetic gives it exactly.
 *
 * Two packings, chosen per layer from the weight codes at init (qconv.c):
 *   c2 ("qu8s8"): B as int16 pairs [K/2][16][2], A as zero-extended uint16 codes. vpmaddwd sums
 *                 two products of at most 255 * 255 each in int32: exact for any code of an
 *                 8-bit encoding, signed (-128..127) or unsigned (0..255, §1.6), which int8
 *                 could not hold.
 *   c4 ("qu8s4"): B as int8 quads [K/4][16][4], A as uint8 codes. vpmaddubsw forms int16 sums of
 *                 two products of at most 255 * |k|, and the kernels add d of those in int16
 *                 before widening: 2 * d * 255 * |k| <= 32767 keeps every int16 sum exact, so
 *                 vpmaddubsw's saturation never triggers and vpaddw never wraps. d = 8 for
 *                 |k| <= 8 (signed 4-bit codes, -8..7, §1.6), d = 4 for |k| <= 16 (unsigned
 *                 4-bit codes, 0..15).
 *   c4 VNNI ("qu8s8 c4"): B as int8 quads [K/4][32][4], A as uint8 codes. vpdpbusd adds the four
 *                 u8 x s8 products of a quad to an int32 lane with no intermediate int16 (and
 *                 so no saturation): exact for every signed code of 8 bits or fewer (-128..127).
 *                 AMX's tdpbusd does the same on tiles, from the same packing. Unsigned 8-bit
 *                 channels (up to 255) do not fit int8 and keep the c2 packing.
 *
 * A packing's panels hold nr channels each, [npad/nr][kp/kr][nr][kr] with npad = cout rounded up
 * to nr; padding channels and the K padding are zero weights.
 */
#ifndef QE_QGEMM_H
#define QE_QGEMM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "qops.h"

#define QE_QGEMM_NR 16         /* channels per panel of the c2 and c4 kernels */
#define QE_QGEMM_NR_MAX 32     /* the widest panel (c4 VNNI) */
#define QE_QGEMM_SUM8_KMAX 8   /* largest |k| for int16 sums of 8 vpmaddubsw (16 * 255 * 8) */
#define QE_QGEMM_SUM4_KMAX 16  /* the same for sums of 4 (8 * 255 * 16 <= 32767) */

/* The §9.2 epilogue of one forward call. The per-channel arrays are indexed by absolute output
 * channel and padded with zeros to a multiple of the kernel's nr. */
typedef struct qe_qgemm_out {
    const int32_t *acc0;   /* -z_x * wsum[c] (mod 2^32), the accumulators' starting value */
    const double *scale;   /* (double)delta_x * (double)delta_w[c] */
    const double *bias;
    int relu;
    float min_f, max_f, delta_f, offset_f;
    /* §9.3 fused: when add is not NULL, the code q stored at address p becomes add(q, r), r the
     * residual code at res_base + (p - out_base) (the residual tensor is shaped like the output). */
    const qe_qops_add_op *add;
    const uint8_t *out_base, *res_base;
    /* The epilogue's fast path (qe_qgemm_fast_init): when fa is not NULL, a vector epilogue may
     * take the code of acc in channel c from v = fma(float(acc), fa[c], fb[c]), after a ReLU
     * max(v, vrelu), as v rounded to nearest and clamped to [qlo, qhi], provided v lies more
     * than QE_QGEMM_FAST_EPS from every half-integer; other lanes must run the exact epilogue.
     * A channel whose fa is NaN always fails that test. */
    const float *fa, *fb;
    float vrelu, qlo, qhi;
} qe_qgemm_out;

#define QE_QGEMM_FAST_EPS (1.0f / 1024.0f)

/*
 * Fills fa[0..n) and fb[0..n) for o's epilogue (scale, bias and output encoding already set)
 * and sets o->fa, o->fb, vrelu, qlo and qhi; or leaves o->fa NULL when the output encoding
 * is outside the range the fast path is proven for. See qgemm_fast.c for the proof.
 */
void qe_qgemm_fast_init(qe_qgemm_out *o, size_t n, float *fa, float *fb);

/*
 * Indirect A (as XNNPACK's IGEMM): row i (0 <= i < m) is ks segments of kc elements (uint16
 * codes for c2, uint8 for c4), segment e of row i at ind[(i / mr * ks + e) * mr + i % mr] with
 * the kernel's mr; slots of rows beyond m in the last tile are not read. A segment is a whole
 * im2col row (ks = 1) or one kernel row of the window read in place from the NHWC input
 * (qconv.c). ks * kc is K rounded up to the kernel's kc_align, kc a multiple of it; the padding
 * meets zero weights. w: the packed panel of columns n0 .. n0+nr-1; c: the output row 0 at column
 * n0, rows c_stride bytes apart. Rows beyond m and columns beyond nc are not written.
 */
typedef void (*qe_qgemm_ukernel_fn)(size_t m, size_t nc, size_t ks, size_t kc,
                                    const void *const *ind, const void *w, uint8_t *c,
                                    size_t c_stride, const qe_qgemm_out *o, size_t n0);

typedef struct qe_qgemm_kernel {
    qe_qgemm_ukernel_fn gemm;
    int mr;                /* rows per tile */
    int nr;                /* channels per panel and per call */
    int kr;                /* K granule of the packing: 2 (c2) or 4 (c4) */
    int kc_align;          /* kc must be a multiple of this (a multiple of kr) */
    int fast_epilogue;     /* reads the fast path of qe_qgemm_out (fa, fb, ...) */
} qe_qgemm_kernel;

void qe_qu8s8_gemm_ukernel_4x16c2__scalar(size_t m, size_t nc, size_t ks, size_t kc,
                                          const void *const *ind, const void *w, uint8_t *c,
                                          size_t c_stride, const qe_qgemm_out *o, size_t n0);
void qe_qu8s4_gemm_ukernel_4x16c4__scalar(size_t m, size_t nc, size_t ks, size_t kc,
                                          const void *const *ind, const void *w, uint8_t *c,
                                          size_t c_stride, const qe_qgemm_out *o, size_t n0);
void qe_qu8s8_gemm_ukernel_6x16c2__avx2_madd16(size_t m, size_t nc, size_t ks, size_t kc,
                                               const void *const *ind, const void *w, uint8_t *c,
                                               size_t c_stride, const qe_qgemm_out *o, size_t n0);
void qe_qu8s4_gemm_ukernel_6x16c4__avx2_sum8(size_t m, size_t nc, size_t ks, size_t kc,
                                             const void *const *ind, const void *w, uint8_t *c,
                                             size_t c_stride, const qe_qgemm_out *o, size_t n0);
void qe_qu8s4_gemm_ukernel_6x16c4__avx2_sum4(size_t m, size_t nc, size_t ks, size_t kc,
                                             const void *const *ind, const void *w, uint8_t *c,
                                             size_t c_stride, const qe_qgemm_out *o, size_t n0);
void qe_qu8s8_gemm_ukernel_32x32c4__amx(size_t m, size_t nc, size_t ks, size_t kc,
                                        const void *const *ind, const void *w, uint8_t *c,
                                        size_t c_stride, const qe_qgemm_out *o, size_t n0);
void qe_qu8s8_gemm_ukernel_12x32c4__avx512vnni(size_t m, size_t nc, size_t ks, size_t kc,
                                              const void *const *ind, const void *w, uint8_t *c,
                                              size_t c_stride, const qe_qgemm_out *o, size_t n0);

/*
 * The scalar epilogue, the definition every vector epilogue reproduces bit for bit: §9.2's two
 * rounded f64 operations and the f32 conversion, the optional ReLU, then qe_quantize() (§1.5),
 * which qe_qgemm_code() performs on the f32 value.
 * The code is clamped to 0..255 before rounding, which changes nothing for the codes of a §1.4
 * encoding (always 0..255) but keeps the conversion defined for any input. Vector versions must
 * also agree on NaN (from a bad scale or bias): fminf/fmaxf return the other operand, vminps and
 * vmaxps their second one.
 */
static inline uint8_t qe_qgemm_code(float yf, const qe_qgemm_out *o)
{
    float x = fmaxf(fminf(yf, o->max_f), o->min_f);
    x = x / o->delta_f - o->offset_f;
    x = fminf(fmaxf(x, 0.0f), 255.0f);
    return (uint8_t)roundf(x);
}

static inline uint8_t qe_qgemm_requant(int32_t acc, const qe_qgemm_out *o, size_t c)
{
    double y = (double)acc * o->scale[c];
    y = y + o->bias[c];
    float yf = (float)y;
    if (o->relu)
        yf = fmaxf(yf, 0.0f);
    return qe_qgemm_code(yf, o);
}

#endif
