/*
 * qdq.h - AIMET's encoding record and its quantize-dequantize, the scalar ground truth of
 * every quantized kernel (spec quantsim.md §1).
 *
 * All functions are exact: compiled with -ffp-contract=off, one IEEE operation per step in the
 * type the spec names. Vector kernels must reproduce qe_quantize() bit for bit and are tested
 * against it.
 */
#ifndef QE_QDQ_H
#define QE_QDQ_H

#include <math.h>
#include <stdint.h>

/* §1.1: the encoding as AIMET stores it (all f64) plus the quantizer's symmetric flag. */
typedef struct qe_encoding {
    int bw;
    int symmetric;
    double min, max, delta, offset;
} qe_encoding;

/* §1.4: what the QDQ kernel really uses, recomputed from min/max/bw only. z = -offset_f is the
 * zero point: the real value of code q is delta_f * (q - z). */
typedef struct qe_qparams {
    float min_f, max_f, delta_f, offset_f;
    int z;
    int qmax;                      /* 2^bw - 1 */
} qe_qparams;

/* §1.4 (gateMinMax + the strict-symmetric detection + f64 delta/offset). */
static inline qe_qparams qe_qparams_from_encoding(const qe_encoding *e)
{
    double mn = e->min < 0.0 ? e->min : 0.0;
    double mx = e->max > 0.0 ? e->max : 0.0;
    double floor_max = mn + 1e-5;
    if (mx < floor_max)
        mx = floor_max;
    double num_steps = (double)((1 << e->bw) - 1);
    if (mn == -mx)
        num_steps -= 1.0;
    double delta = (mx - mn) / num_steps;
    double offset = round(mn / delta);
    qe_qparams p;
    p.min_f = (float)mn;
    p.max_f = (float)mx;
    p.delta_f = (float)delta;
    p.offset_f = (float)offset;
    p.z = -(int)p.offset_f;
    p.qmax = (1 << e->bw) - 1;
    return p;
}

/* §1.5 first two lines: clamp, true f32 division, subtract offset, roundf (halves away from 0). */
static inline int qe_quantize(float x, const qe_qparams *p)
{
    float c = fmaxf(fminf(x, p->max_f), p->min_f);
    return (int)roundf(c / p->delta_f - p->offset_f);
}

/* §1.5 / §9.1: D(q) = (float)((double)delta_f * (double)(q - z)). */
static inline float qe_dequantize(int code, const qe_qparams *p)
{
    return (float)((double)p->delta_f * (double)(code - p->z));
}

#endif
