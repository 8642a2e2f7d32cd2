/*
 * qgemm_fast.c - the set-up of the epilogue's fast path (qgemm.h), and why it is exact.
 *
 * The exact epilogue (qe_qgemm_requant) costs some 26 vector operations per 16 outputs, with a
 * division, and dominates the layers with small K. Its result is the rounding of
 *
 *   v_exact = fl(fl(clamp(fl(acc * s + b)) / d) - off)          (f64 then three f32 roundings)
 *
 * where the real value is v = (acc * s + b) / d - off. The fast path computes
 * v_fast = fl(fl(acc) * fa + fb) with fa = fl(s / d) and fb = fl(b / d - off), and takes
 * round(v_fast), clamped to the codes [qlo, qhi] of the clamp bounds, whenever v_fast is more than
 * EPS = 2^-10 away from every half-integer. Bounds, for the encodings accepted below
 * (W = max(|min_f|, |max_f|) / d <= 256, |off| <= 256, |fb| <= 512; an 8-bit encoding has
 * W <= 255 and |off| <= 255) and a lane with |v| <= 512:
 *   - |acc * s / d| <= |v| + |b / d - off| <= 1024, so the relative errors of fl(acc), fa and
 *     fb (2^-24 each) and of the fma give |v_fast - v| <= (2 * 1024 + 512 + 512) 2^-24
 *     < 2^-12.4;
 *   - the exact chain's f32 roundings (of y, whose clamp is 1-Lipschitz, of the quotient, at
 *     most W, and of the difference, at most W + |off|) give |v_exact - v| <= (3W + |off|) 2^-23
 *     <= 2^-13; its f64 steps add far less.
 * So |v_fast - v_exact| < 2^-11.7, under half of EPS, and both round to the same integer. The
 * clamp: v_exact is monotone in y, so below min_f it is v_min = fl(fl(min_f / d) - off), whose
 * code is qlo, and v_fast < v_min + 2^-11 there; since v_min is itself kept EPS_BOUND away from
 * every half-integer, round(v_fast) <= qlo, which the clamp lifts to qlo. Likewise above max_f
 * (qhi), for any |v| (v_max <= W + |off| <= 512, and beyond 512 the relative error bounds keep
 * v_fast on the same side), and after a ReLU, where a negative y gives v_exact = fl(0 - off) =
 * -off exactly and max(v_fast, -off) stays within 2^-11 of it. NaN, an infinite fa or an overflowing product
 * make v_fast - rint(v_fast) NaN, which fails the distance test: those lanes take the exact
 * path. The tests compare both paths over every accumulator value across whole code ranges.
 */
#include <math.h>

#include "qgemm.h"

#define EPS_BOUND (1.0f / 64.0f)   /* margin of the clamp and ReLU values from half-integers */

/* Distance of v from the nearest half-integer. */
static float half_dist(float v) { return fabsf(fabsf(v - rintf(v)) - 0.5f); }

void qe_qgemm_fast_init(qe_qgemm_out *o, size_t n, float *fa, float *fb)
{
    o->fa = o->fb = NULL;
    float d = o->delta_f, off = o->offset_f;
    if (!(d >= 1e-30f && d <= 1e30f) || !(o->min_f <= o->max_f) || !isfinite(o->min_f) ||
        !isfinite(o->max_f) || !(fabsf(off) <= 256.0f))
        return;
    if (!(fmaxf(fabsf(o->min_f), fabsf(o->max_f)) / d <= 256.0f))
        return;
    float vmin = o->min_f / d - off, vmax = o->max_f / d - off;
    if (half_dist(vmin) < EPS_BOUND || half_dist(vmax) < EPS_BOUND ||
        (o->relu && half_dist(-off) < EPS_BOUND))
        return;
    for (size_t c = 0; c < n; c++) {
        double a = o->scale[c] / (double)d, b = o->bias[c] / (double)d - (double)off;
        int ok = isfinite(a) && fabs(a) < 1e30 && fabs(b) <= 512.0;
        fa[c] = ok ? (float)a : NAN;
        fb[c] = ok ? (float)b : 0.0f;
    }
    o->vrelu = -off;
    o->qlo = (float)qe_qgemm_code(o->min_f, o);
    o->qhi = (float)qe_qgemm_code(o->max_f, o);
    o->fa = fa;
    o->fb = fb;
}
