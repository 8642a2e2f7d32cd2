/*
 * bn_fold.c - BatchNorm folding (§3.1).
 */
#include "bn_fold.h"

#include <math.h>

void qe_bn_fold(int cout, size_t per_channel, const float *w, const float *bias,
                const float *gamma, const float *beta, const float *mean, const float *var,
                float eps, float *w_out, float *bias_out)
{
    for (int c = 0; c < cout; c++) {
        float b = bias ? bias[c] : 0.0f;
        float inv = 1.0f / sqrtf(var[c] + eps);
        /* AIMET scales the weights by the f64 product gamma * inv rounded to f32, which equals
         * the f32 product: both are the correctly rounded product of two floats. */
        float scale = gamma[c] * inv;

        bias_out[c] = beta[c] - ((mean[c] - b) * gamma[c]) * inv;
        for (size_t i = 0; i < per_channel; i++)
            w_out[(size_t)c * per_channel + i] = w[(size_t)c * per_channel + i] * scale;
    }
}
