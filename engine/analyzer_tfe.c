/*
 * analyzer_tfe.c - AIMET's TF-enhanced analyzer (spec quantsim.md §2.2): a histogram of the
 * calibration data and a search over candidate encodings for the least quantization plus
 * saturation cost.
 *
 * Every step keeps the C++ code's types (f32 where AIMET uses float, f64 where it uses
 * double) and its order of operations, quirks included; the build never contracts or
 * reassociates floating point. Float-to-int conversions go through x86_f2i() because the
 * search does convert NaN and huge values (§2.2.6) and C leaves that undefined.
 */
#include "analyzer.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "analyzer_tfe_bucket.h"
#include "cpu.h"
#include "qe_util.h"

#define PDF_SIZE QE_TFE_PDF_SIZE
#define GAMMA 3.0f                 /* §2.2.5 weight of the saturation cost */
#define MIN_RANGE 0.01f            /* §2.2.4 */
#define BLOCK 1024                 /* values per bucket-index batch (scratch on the stack) */
#define PARALLEL_MIN 65536         /* smaller tensors are counted by the calling thread */
#define MAX_CANDIDATES (17 * 21 + 1)

/* C's float -> int conversion as x86-64 performs it (cvttss2si): truncation toward zero, and
 * INT_MIN for NaN and out-of-range values (§0). A float argument widens to double exactly. */
static int x86_f2i(double v)
{
    if (!(v > -2147483649.0 && v < 2147483648.0))
        return INT_MIN;
    return (int)v;
}

/* §2.2.1 InitializePdf, f32: the range is three times the first tensor's, centred on it. */
static void init_buckets(qe_analyzer *a, float mn, float mx)
{
    a->xleft = qe_malloc(2 * PDF_SIZE * sizeof(double));
    a->pdf = a->xleft + PDF_SIZE;
    memset(a->pdf, 0, PDF_SIZE * sizeof(double));

    if (mn == mx) {
        float widened = mn + 0.01f;
        if (widened > mx)
            mx = widened;
    }
    float center = (mx + mn) / 2.0f;
    float lo = center - 3.0f * (center - mn);
    float hi = center + 3.0f * (mx - center);
    float bucket = (hi - lo) / (float)PDF_SIZE;
    for (int i = 0; i < PDF_SIZE; i++)
        a->xleft[i] = (double)(lo + (float)i * bucket);
}

/* Bucket counts of x (GetHistogram_cpu). Integer counts merge exactly in any order, so the
 * result does not depend on the number of threads. Four interleaved sub-histograms keep
 * runs of equal indices from serialising on one counter. */
static void count_buckets(const float *x, size_t n, float b, float off, uint64_t *hist)
{
    memset(hist, 0, (PDF_SIZE + 1) * sizeof *hist);
    const qe_cpu *cpu = qe_cpu_get();
    void (*index_fn)(const float *, size_t, float, float, float *, int32_t *) =
        cpu->avx512vnni ? qe_tfe_bucket_index__avx512
        : cpu->avx2     ? qe_tfe_bucket_index__avx2
                        : qe_tfe_bucket_index__scalar;

#pragma omp parallel if (n >= PARALLEL_MIN)
    {
        uint64_t local[4][PDF_SIZE + 1];
        float t[BLOCK];
        int32_t idx[BLOCK];

        memset(local, 0, sizeof local);
#pragma omp for schedule(static)
        for (size_t s = 0; s < n; s += BLOCK) {
            size_t m = n - s < BLOCK ? n - s : BLOCK;
            size_t j = 0;

            index_fn(x + s, m, b, off, t, idx);
            for (; j + 4 <= m; j += 4) {
                local[0][idx[j]]++;
                local[1][idx[j + 1]]++;
                local[2][idx[j + 2]]++;
                local[3][idx[j + 3]]++;
            }
            for (; j < m; j++)
                local[0][idx[j]]++;
        }
#pragma omp critical(qe_tfe_count_buckets)
        for (int i = 0; i <= PDF_SIZE; i++)
            hist[i] += local[0][i] + local[1][i] + local[2][i] + local[3][i];
    }
}

/* §2.2.2 UpdatePdf: one histogram per call, averaged into pdf with equal weight per call. */
void qe_analyzer_tfe_update(qe_analyzer *a, const float *x, size_t n)
{
    uint64_t hist[PDF_SIZE + 1];

    if (!a->xleft) {
        float mn, mx;
        qe_f32_minmax(x, n, &mn, &mx);
        if (mn == 0.0f && mx == 0.0f)
            return;                /* all zeros: nothing recorded, iterations unchanged */
        init_buckets(a, mn, mx);
    }
    float b = (float)(a->xleft[1] - a->xleft[0]);
    float off = (float)a->xleft[0] / b;
    count_buckets(x, n, b, off, hist);

    /* n includes the dropped values. */
    for (int i = 0; i < PDF_SIZE; i++) {
        double prob = (double)hist[i] / (double)n;
        a->pdf[i] = (a->pdf[i] * a->iterations + prob) / (a->iterations + 1);
    }
    a->iterations++;
}

/* What the cost function needs of a histogram, computed once per computeEncoding. */
typedef struct tfe_stats {
    const double *pdf;
    float start, step;             /* (float)xLeft[0], (float)(xLeft[1] - xLeft[0]) */
    float mid[PDF_SIZE];           /* bucket centres: start + (float)i*step + step/2, that order */
    int nonzero[PDF_SIZE];         /* buckets with pdf > 0, ascending */
    int n_nonzero;
    float num_steps;               /* S = (float)(2^bw - 1) */
} tfe_stats;

static void stats_init(tfe_stats *s, const qe_analyzer *a, int bw)
{
    s->pdf = a->pdf;
    s->start = (float)a->xleft[0];
    s->step = (float)(a->xleft[1] - a->xleft[0]);
    s->n_nonzero = 0;
    for (int i = 0; i < PDF_SIZE; i++) {
        s->mid[i] = s->start + (float)i * s->step + s->step / 2.0f;
        if (a->pdf[i] > 0.0)
            s->nonzero[s->n_nonzero++] = i;
    }
    s->num_steps = (float)((1 << bw) - 1);
}

/* §2.2.4 _findRangeOfAggregateStats: left edges of the first and last non-empty buckets,
 * widened to contain 0 and at least MIN_RANGE. A last bucket of 0 does not count. */
static void find_range(const qe_analyzer *a, const tfe_stats *s, float *min, float *max)
{
    float mn = (float)a->xleft[0];
    float mx = (float)a->xleft[PDF_SIZE - 1];

    if (s->n_nonzero > 0) {
        int last = s->nonzero[s->n_nonzero - 1];
        mn = (float)a->xleft[s->nonzero[0]];
        if (last > 0)
            mx = (float)a->xleft[last];
    }
    if (0.0f < mn)
        mn = 0.0f;
    if (0.0f > mx)
        mx = 0.0f;
    if (mn + MIN_RANGE > mx)
        mx = mn + MIN_RANGE;
    *min = mn;
    *max = mx;
}

static int bucket_of(const tfe_stats *s, float v)
{
    int i = x86_f2i(floorf((v - s->start) / s->step));
    return i < 0 ? 0 : i > PDF_SIZE - 1 ? PDF_SIZE - 1 : i;
}

/*
 * §2.2.5 _quantAndSatCost of the candidate (delta, offset). The three accumulators are f32
 * and each addition is done in f64 (pdf is double) and rounded back, in ascending bucket
 * order. Empty buckets are skipped: they would add an exact 0.0, leaving the sum unchanged.
 */
static float candidate_cost(const tfe_stats *s, float delta, int offset)
{
    float offset_f = (float)offset;
    float lo = delta * offset_f;
    float hi = delta * s->num_steps + lo;
    int i_lo = bucket_of(s, lo);
    int i_hi = bucket_of(s, hi);
    float mid_lo = s->mid[i_lo];
    float mid_hi = s->mid[i_hi];
    float sat_bottom = 0.0f, sat_top = 0.0f, quant = 0.0f;

    for (int k = 0; k < s->n_nonzero; k++) {
        int i = s->nonzero[k];
        double p = s->pdf[i];
        double d;

        if (i < i_lo) {
            d = (double)(s->mid[i] - mid_lo);
            sat_bottom = (float)((double)sat_bottom + p * (d * d));
        }
        if (i >= i_hi) {
            d = (double)(s->mid[i] - mid_hi);
            sat_top = (float)((double)sat_top + p * (d * d));
        }
        if (i >= i_lo && i < i_hi) {
            int q = x86_f2i(roundf(s->mid[i] / delta - offset_f));
            /* In 64 bits: AIMET's int sum would wrap for the INT_MIN offsets of degenerate
             * candidates (whose loop is empty anyway), in C it would be undefined. */
            float deq = delta * (float)((int64_t)q + offset);
            d = (double)(s->mid[i] - deq);
            quant = (float)((double)quant + p * (d * d));
        }
    }
    return GAMMA * (sat_bottom + sat_top) + quant;
}

/*
 * §2.2.6 _pickTestCandidatesAsymmetric with _clampToObservedMinMax. t_delta is narrowed by
 * every candidate that is kept and the narrowed value is used by the following offsets of the
 * same f (AIMET passes it by reference). When mn == 0 the clamp yields t_delta = 0 and
 * t_min / t_delta = NaN, giving the degenerate (0, INT_MIN) candidates the spec requires.
 */
static int asym_candidates(float mn, float mx, float num_steps, float *cand_delta, int *cand_offset)
{
    float o_delta = (mx - mn) / num_steps;
    int o_offset = x86_f2i(roundf(mn / o_delta));
    float o_min = o_delta * (float)o_offset;
    float o_max = o_min + o_delta * num_steps;
    int n = 0;

    /* f = 1/16 .. 17/16, a float advanced in double as in the C++ loop. */
    for (float f = 1.0f / 16; (double)f <= 1.0 + 1.0 / 16; f = (float)((double)f + 1.0 / 16)) {
        float t_delta = f * o_delta;
        for (int i = 0; i <= 20; i++) {
            int t_offset = x86_f2i(-(double)num_steps + (double)num_steps / 20.0 * i);
            float t_min = t_delta * (float)t_offset;
            float t_max = t_min + t_delta * num_steps;
            if (t_min < o_min && t_max > o_max)
                continue;
            t_min = o_min < t_min ? t_min : o_min;       /* std::max(o_min, t_min) */
            t_max = t_max < o_max ? t_max : o_max;       /* std::min(o_max, t_max) */
            t_delta = (t_max - t_min) / num_steps;
            cand_delta[n] = t_delta;
            cand_offset[n] = x86_f2i(roundf(t_min / t_delta));
            n++;
        }
    }
    cand_delta[n] = o_delta;
    cand_offset[n] = o_offset;
    return n + 1;
}

/* §2.2.7 _pickTestCandidatesSymmetric (strict = false, unsigned = true): 101 fractions of
 * the largest useful delta, all with the same offset. */
static int sym_candidates(float mn, float mx, float num_steps, float *cand_delta, int *cand_offset)
{
    float delta_max;
    int offset;
    int n = 0;

    if (mn == 0.0f) {
        delta_max = mx / num_steps;
        offset = 0;
    } else {
        float abs_max = fabsf(mn) > fabsf(mx) ? fabsf(mn) : fabsf(mx);
        delta_max = (2.0f * abs_max) / num_steps;
        offset = x86_f2i(floorf(-num_steps / 2.0f));
    }
    for (float f = 0.01f; (double)f <= 1.0 + 1.0 / 100; f = (float)((double)f + 1.0 / 100)) {
        cand_delta[n] = f * delta_max;
        cand_offset[n] = offset;
        n++;
    }
    return n;
}

/* §2.2.3: only all-zero tensors were seen; a fixed encoding covering about [-1, 1]. */
static void all_zero_encoding(int bw, int symmetric, qe_encoding *out)
{
    int num_steps = (1 << bw) - 1;
    double delta = 2.0 / num_steps;
    double offset = floor(-1.0 / delta);

    out->bw = bw;
    out->symmetric = symmetric;
    out->delta = delta;
    out->offset = offset;
    out->min = offset * delta;
    out->max = out->min + num_steps * delta;
}

int qe_analyzer_tfe_compute(const qe_analyzer *a, int bw, int symmetric, qe_encoding *out)
{
    tfe_stats s;
    float cand_delta[MAX_CANDIDATES];
    int cand_offset[MAX_CANDIDATES];
    float mn, mx;
    int n;

    if (!a->xleft) {
        all_zero_encoding(bw, symmetric, out);
        return 0;
    }
    stats_init(&s, a, bw);
    find_range(a, &s, &mn, &mx);
    if (symmetric)
        n = sym_candidates(mn, mx, s.num_steps, cand_delta, cand_offset);
    else
        n = asym_candidates(mn, mx, s.num_steps, cand_delta, cand_offset);

    /* §2.2.8: strict '<' in generation order, so the first of equal costs wins. The initial
     * (-1, -1) survives only if every cost is NaN or infinite (non-finite input data). */
    float best_cost = FLT_MAX, best_delta = -1.0f;
    int best_offset = -1;
    for (int k = 0; k < n; k++) {
        float cost = candidate_cost(&s, cand_delta[k], cand_offset[k]);
        if (cost < best_cost) {
            best_cost = cost;
            best_delta = cand_delta[k];
            best_offset = cand_offset[k];
        }
    }
    out->bw = bw;
    out->symmetric = symmetric;
    out->delta = best_delta;
    out->offset = best_offset;
    out->min = (double)(best_delta * (float)best_offset);
    out->max = (double)(best_delta * s.num_steps) + out->min;
    return 0;
}
