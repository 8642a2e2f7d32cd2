/*
 * qsim.h - a ResNet under AIMET 1.24 QuantSim (spec quantsim.md): quantizer placement (§3.4,
 * §3.5), calibration (§3.6) and the exact integer evaluation (§9).
 *
 * Life cycle:
 *   qe_qsim_create          weights BN-folded (resnet.h); parameter encodings computed (§2.3)
 *   qe_qsim_freeze_params   optional: AdaRound / file parameter encodings, frozen (§6.3)
 *   then either
 *     qe_qsim_calibrate_batch ... qe_qsim_calibrate_finish   (§3.6, activations f32, f64 sums)
 *   or
 *     qe_qsim_load_encodings (§6.2: every activation encoding, and the parameters in the file)
 *   qe_qsim_forward         §9 exact integer logits, any number of times
 *
 * Not thread-safe: one call at a time per object.
 */
#ifndef QE_QSIM_H
#define QE_QSIM_H

#include <stddef.h>
#include <stdint.h>

#include "analyzer.h"
#include "encfile.h"
#include "resnet.h"

typedef struct qe_qsim qe_qsim;

/* p is copied. param_bw: 8 or 4; scheme: of all analyzers (the zoo: QE_SCHEME_TF_ENHANCED). */
qe_qsim *qe_qsim_create(const qe_resnet_params *p, int param_bw, qe_scheme scheme, char *err);
void qe_qsim_free(qe_qsim *q);

/* §6.3: takes the "<conv>.weight" entries of t that exist (each must list one encoding per
 * output channel) and freezes them; other parameters keep their computed encodings. */
int qe_qsim_freeze_params(qe_qsim *q, const qe_enctable *t, char *err);

/* §3.6: one calibration batch (n normalised CHW images) through the f32 pass with QDQ'd
 * weights; every activation quantizer's analyzer sees its tensor once per invocation. */
void qe_qsim_calibrate_batch(qe_qsim *q, const float *x, int n);
/* Computes the activation encodings and builds the integer network. Fails if no batch ran. */
int qe_qsim_calibrate_finish(qe_qsim *q, char *err);

/* §6.2: loads parameter encodings present in t (verbatim, frozen) and every activation
 * encoding (all must be present), then builds the integer network. */
int qe_qsim_load_encodings(qe_qsim *q, const qe_enctable *t, char *err);

/* All encodings (§6.1 content) into t (t initialised by the caller). Requires calibration or
 * loaded encodings. */
int qe_qsim_export(const qe_qsim *q, qe_enctable *t, char *err);

/* §9: logits (n x 1000) of n normalised CHW images. */
void qe_qsim_forward(qe_qsim *q, const float *x, int n, float *logits);
/* The same logits from the images' center crops (n HWC u8 crops, image.h), without the float
 * tensors: the model input is quantized straight from the crop bytes (§9.6). */
void qe_qsim_forward_crops(qe_qsim *q, const uint8_t *crops, int n, float *logits);

/* Debugging a mismatch layer by layer: makes the next forward copy the codes of image 0 after
 * the named activation quantizer (e.g. "layer2.0.relu.output") into out, in C,H,W order.
 * Returns the number of codes, or -1 for an unknown name. */
long qe_qsim_capture(qe_qsim *q, const char *quantizer, uint8_t *out, size_t cap);

/* Frees the activation buffers that forward keeps between calls. */
void qe_qsim_trim(qe_qsim *q);

/* Resident bytes of the integer network (packed weights, requantisation tables). */
size_t qe_qsim_bytes(const qe_qsim *q);

#endif
