/*
 * bn_fold.h - folding a BatchNorm2d into the convolution before it (spec quantsim.md §3.1),
 * bit for bit as AIMET's BatchNormFold::fold.
 */
#ifndef QE_BN_FOLD_H
#define QE_BN_FOLD_H

#include <stddef.h>

/* Folds BN (gamma, beta, running mean, running var: [cout] each; eps = 1e-5f for
 * torchvision) into the conv weight w [cout][per_channel] and bias [cout] (NULL: a conv
 * without bias, taken as zeros). All arithmetic is f32 in the order of §3.1:
 *   sigma = sqrtf(var + eps);  inv = 1/sigma
 *   bias' = beta - ((mean - bias) * gamma) * inv;   w' = w * (gamma * inv)
 * Writes w_out [cout][per_channel] and bias_out [cout]; either may alias its input. */
void qe_bn_fold(int cout, size_t per_channel, const float *w, const float *bias,
                const float *gamma, const float *beta, const float *mean, const float *var,
                float eps, float *w_out, float *bias_out);

#endif
