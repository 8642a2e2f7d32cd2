/*
 * encoding.h - encodings from a range, parameter (weight) encodings and integer weight codes
 * (spec quantsim.md §1.2, §1.6, §2.3, §9.1).
 *
 * Weights are [channels][per_channel] f32, channel = output channel (axis 0 of a Conv2d
 * [Cout,Cin,kh,kw] or Linear [out,in] weight, §1.7).
 */
#ifndef QE_ENCODING_H
#define QE_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#include "qdq.h"

/* §1.2 getComputedEncodings in f64, strict_symmetric = False, unsigned_symmetric = True.
 * Expects min <= 0 <= max and max - min >= 0.01 (the TF analyzer's gating, §2.1); bw 1..16.
 * Symmetric with min < 0 gives the signed grid offset -2^(bw-1); symmetric with min == 0
 * falls back to the asymmetric (unsigned) grid. */
void qe_encoding_from_minmax(int bw, double min, double max, int symmetric, qe_encoding *out);

/* §2.3: the TF-enhanced symmetric encoding of each channel of w, each from a fresh analyzer
 * given the channel as one tensor. out: [channels]. Channels run in parallel on the OpenMP
 * thread team (call from outside a parallel region). Returns -1 for channels < 1,
 * per_channel == 0 or bw outside 1..16, else 0. */
int qe_encoding_params_per_channel(const float *w, int channels, size_t per_channel, int bw,
                                   qe_encoding *out);

/* Integer weight codes are produced for encodings of at most this many bits. Their codes
 * and zero points lie in 0..255 (§1.4, §1.5), so k = code - z lies in -255..255: int16 holds
 * it, and the §9.2 accumulator of up to 255 * 255 * K stays within int32 for every ResNet
 * layer (K <= 4608). */
#define QE_WCODE_MAX_BW 8

/* §1.5, §1.6, §9.1: quantizes each channel c of w with enc[c] (as the QDQ kernel does, from
 * min/max/bw only, §1.4). Outputs, each optional (NULL):
 *   k        [channels][per_channel]  integer codes k = Q(w) - z: -128..127 for a signed
 *                                     symmetric 8-bit channel, 0..255 for an unsigned one
 *                                     (entirely non-negative, offset 0, §1.6)
 *   delta_w  [channels]               delta_f of each channel
 *   wq       [channels][per_channel]  QDQ'd weights (float)((double)delta_f * k)
 * Fails (-1, message in err) if k is requested and a channel's bw exceeds QE_WCODE_MAX_BW
 * (its codes k are then left 0); wq and delta_w are still complete then. */
int qe_encoding_weight_codes(const float *w, int channels, size_t per_channel,
                             const qe_encoding *enc, int16_t *k, float *delta_w, float *wq,
                             char *err);

#endif
