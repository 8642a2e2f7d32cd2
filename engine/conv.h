/*
 * conv.h - float convolutions of the ResNet engine, NHWC activations.
 *
 * qe_conv_f32:    the FP32 inference path. out = act(conv(in) + bias [+ residual]).
 *                 Summation order is the kernel's own (results within float rounding of PyTorch).
 * qe_conv_f64acc: the exact calibration convolution of spec quantsim.md §3.6.2:
 *                 y = (float)(sum of the exact f32*f32 products accumulated in f64 + bias).
 *
 * Both pack their weights once at init (from torch's OIHW layout) and run on the OpenMP thread
 * team: call forward from outside any parallel region. Kernels are picked once from the CPU's
 * features (AVX2+FMA or portable C, see cpu.h); every path is tested against the portable one.
 */
#ifndef QE_CONV_H
#define QE_CONV_H

#include <stddef.h>

static inline int qe_conv_out_size(int in, int k, int stride, int pad)
{
    return (in + 2 * pad - k) / stride + 1;
}

typedef struct qe_conv_f32 {
    int cin, cout, kh, kw, stride, pad;
    float *wpack;          /* kernel-specific packed weights (owned) */
    float *bias;           /* [cout] (owned; zeros when none was given) */
    void *priv;            /* kernel-private data (owned) */
} qe_conv_f32;

/* w: [cout][cin][kh][kw]; bias: [cout] or NULL. */
void qe_conv_f32_init(qe_conv_f32 *c, int cin, int cout, int kh, int kw, int stride, int pad,
                      const float *w, const float *bias);
void qe_conv_f32_free(qe_conv_f32 *c);
/* in: [n][h][w][cin]; out: [n][oh][ow][cout]; residual: NULL or shaped like out, added after the
 * bias and before the ReLU (relu != 0). out must not alias in; it may be residual itself (the
 * block's sum then forms in place, saving a tensor's worth of memory traffic). */
void qe_conv_f32_forward(const qe_conv_f32 *c, const float *in, int n, int h, int w,
                         float *out, const float *residual, int relu);

typedef struct qe_conv_f64acc {
    int cin, cout, kh, kw, stride, pad;
    double *wpack;         /* packed weights, each an exact f32 value widened to f64 (owned) */
    double *bias;          /* [cout] (owned) */
    void *priv;
} qe_conv_f64acc;

void qe_conv_f64acc_init(qe_conv_f64acc *c, int cin, int cout, int kh, int kw, int stride, int pad,
                         const float *w, const float *bias);
void qe_conv_f64acc_free(qe_conv_f64acc *c);
/* Same shapes as qe_conv_f32_forward; no residual (the calibration pass adds it itself in f32,
 * §3.6.2); relu != 0 applies the f32 ReLU y > 0 ? y : 0 to the rounded output. */
void qe_conv_f64acc_forward(const qe_conv_f64acc *c, const float *in, int n, int h, int w, float *out,
                            int relu);

#endif
