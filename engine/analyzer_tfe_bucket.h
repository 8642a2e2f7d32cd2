/*
 * analyzer_tfe_bucket.h - the bucket index of the TF-enhanced histogram (spec quantsim.md
 * §2.2.2), the hot loop of calibration (internal to analyzer_tfe.c).
 *
 * One C body, compiled three times: qe_tfe_bucket_index__scalar with the build's baseline flags,
 * qe_tfe_bucket_index__avx2 with -mavx2 (8-wide vdivps and conversions) and
 * qe_tfe_bucket_index__avx512 with AVX-512 (16-wide). All are exact IEEE f32 operations in the
 * same order (no contraction), so they agree bit for bit; the caller picks one from the CPU's
 * features.
 */
#ifndef QE_ANALYZER_TFE_BUCKET_H
#define QE_ANALYZER_TFE_BUCKET_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "analyzer.h"

#define QE_TFE_DROPPED QE_TFE_PDF_SIZE   /* extra histogram slot for values outside the range */

/* idx[j] for x[0..m-1]; t is scratch of m floats. */
void qe_tfe_bucket_index__scalar(const float *restrict x, size_t m, float b, float off,
                                 float *restrict t, int32_t *restrict idx);
void qe_tfe_bucket_index__avx2(const float *restrict x, size_t m, float b, float off,
                               float *restrict t, int32_t *restrict idx);
void qe_tfe_bucket_index__avx512(const float *restrict x, size_t m, float b, float off,
                                 float *restrict t, int32_t *restrict idx);

/*
 * idx = int(round(v / b - off)) of §2.2.2 for m values, QE_TFE_DROPPED when outside 0..511.
 *
 * Two loops so that both vectorise: under the default -ftrapping-math GCC will not if-convert
 * a float-to-int conversion whose operand comes from a select, so the clamp and the conversion
 * live in separate loops. Clamping t to [-1, 512] changes no
 * bucket (whatever lies outside rounds outside 0..511 either way) and makes the conversion
 * defined; NaN becomes -1, i.e. dropped. The quiet comparisons (isless...) keep the selects
 * free of FP traps, which if-conversion also requires.
 */
static inline void tfe_bucket_index(const float *restrict x, size_t m, float b, float off,
                                    float *restrict t, int32_t *restrict idx)
{
#pragma omp simd
    for (size_t j = 0; j < m; j++) {
        float v = x[j] / b - off;
        v = isgreaterequal(v, -1.0f) ? v : -1.0f;
        t[j] = islessequal(v, 512.0f) ? v : 512.0f;
    }
    /* roundf (halves away from zero) of a value in [-1, 512]: t - trunc(t) is exact. */
#pragma omp simd
    for (size_t j = 0; j < m; j++) {
        int32_t i = (int32_t)t[j];
        float frac = t[j] - (float)i;
        i += isgreaterequal(frac, 0.5f) - islessequal(frac, -0.5f);
        idx[j] = (uint32_t)i < QE_TFE_PDF_SIZE ? i : QE_TFE_DROPPED;
    }
}

#endif
