/*
 * f32net.h - the FP32 ResNet forward pass (BN folded, NHWC, OpenMP-parallel kernels of conv.h).
 *
 * Results match PyTorch within float rounding (the summation order is the kernels' own).
 * A net is immutable after creation except for its scratch buffers: one forward at a time per
 * net (callers serialise), any number of nets side by side.
 */
#ifndef QE_F32NET_H
#define QE_F32NET_H

#include "resnet.h"

typedef struct qe_f32net qe_f32net;

/* Packs the weights of p (p may be freed afterwards). */
qe_f32net *qe_f32net_create(const qe_resnet_params *p);
void qe_f32net_free(qe_f32net *net);
/* x: n normalised images, each 3x224x224 CHW (image.h layout); logits: n x 1000. */
void qe_f32net_forward(qe_f32net *net, const float *x, int n, float *logits);
/* Frees the activation buffers that forward keeps between calls (a resident model at rest then
 * holds only its weights; the next forward allocates them again). */
void qe_f32net_trim(qe_f32net *net);
/* Bytes held by the packed weights and the scratch buffers. */
size_t qe_f32net_bytes(const qe_f32net *net);

/* Shared by the FP32 and calibration passes: NHWC helpers on float tensors. */
void qe_f32_chw_to_nhwc(const float *x, int n, float *out);          /* 3x224x224 images */
void qe_f32_maxpool_3x3s2(const float *in, int n, int h, int w, int c, float *out);
void qe_f32_avgpool(const float *in, int n, int hw, int c, float *out);   /* (float)(f64 sum / hw), §3.6.2 */

#endif
