/*
 * analyzer_tf.c - the analyzer object and the TF (min/max) scheme (spec quantsim.md §2.1).
 * The TF-enhanced scheme lives in analyzer_tfe.c.
 */
#include "analyzer.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "encoding.h"

/* Below this many values a tensor is reduced by the calling thread alone. */
#define PARALLEL_MIN 65536

void qe_f32_minmax(const float *x, size_t n, float *min, float *max)
{
    float lo = INFINITY, hi = -INFINITY;

    /* The ordered comparisons ignore NaN; min and max of a set do not depend on the visiting
     * order, so the split across threads and SIMD lanes is exact. */
#pragma omp parallel for simd if (parallel : n >= PARALLEL_MIN) schedule(static) \
    reduction(min : lo) reduction(max : hi)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    *min = lo;
    *max = hi;
}

void qe_analyzer_init(qe_analyzer *a, qe_scheme scheme)
{
    a->scheme = scheme;
    a->updated = 0;
    a->acc_min = DBL_MAX;
    a->acc_max = -DBL_MAX;
    a->iterations = 0;
    a->xleft = NULL;
    a->pdf = NULL;
}

void qe_analyzer_free(qe_analyzer *a)
{
    /* xleft and pdf share one allocation (analyzer_tfe.c). */
    free(a->xleft);
    a->xleft = NULL;
    a->pdf = NULL;
}

/* §2.1 updateStats: accMin = min(accMin, (double)min(tensor)), likewise for max. */
static void tf_update(qe_analyzer *a, const float *x, size_t n)
{
    float mn, mx;

    qe_f32_minmax(x, n, &mn, &mx);
    if ((double)mn < a->acc_min)
        a->acc_min = mn;
    if ((double)mx > a->acc_max)
        a->acc_max = mx;
}

/* §2.1 computeEncoding: widen to include 0 and at least MIN_RANGE, then §1.2. The comparisons
 * keep std::min / std::max's choice of operand. */
static void tf_compute(const qe_analyzer *a, int bw, int symmetric, qe_encoding *out)
{
    double mn = a->acc_min < 0.0 ? a->acc_min : 0.0;
    double mx = a->acc_max > 0.0 ? a->acc_max : 0.0;
    double floor_max = mn + 0.01;

    if (floor_max > mx)
        mx = floor_max;
    qe_encoding_from_minmax(bw, mn, mx, symmetric, out);
}

void qe_analyzer_update(qe_analyzer *a, const float *x, size_t n)
{
    if (n == 0)
        return;
    a->updated = 1;
    if (a->scheme == QE_SCHEME_TF)
        tf_update(a, x, n);
    else
        qe_analyzer_tfe_update(a, x, n);
}

int qe_analyzer_compute(const qe_analyzer *a, int bw, int symmetric, qe_encoding *out)
{
    if (bw < 1 || bw > 16 || !a->updated)
        return -1;
    if (a->scheme == QE_SCHEME_TF) {
        tf_compute(a, bw, symmetric, out);
        return 0;
    }
    return qe_analyzer_tfe_compute(a, bw, symmetric, out);
}
