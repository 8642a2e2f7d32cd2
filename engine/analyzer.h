/*
 * analyzer.h - AIMET 1.24 encoding analyzers, bit for bit (spec quantsim.md §2).
 *
 * One analyzer per tensor quantizer, or per weight channel (§1.7). Each update is one AIMET
 * updateStats() call on a whole batch tensor; compute is computeEncoding() with
 * strict_symmetric = False and unsigned_symmetric = True, the only settings of this project
 * (§1.3).
 *
 *   TF           (§2.1)  running min/max, then getComputedEncodings (§1.2).
 *   TF-enhanced  (§2.2)  512-bucket histogram whose range is fixed by the first non-zero
 *                        tensor; the running mean of the normalised histograms is searched for
 *                        the (delta, offset) of least quantization + saturation cost.
 *
 * Input values that are NaN are ignored by the min/max and dropped by the histogram (AIMET
 * leaves this case undefined); infinities give a meaningless but well-defined encoding. No
 * input makes the analyzer crash or invoke undefined behaviour.
 *
 * An analyzer is not thread-safe; distinct analyzers may be used from distinct threads.
 * Updates of large tensors run on the OpenMP thread team and must then be called from outside
 * a parallel region to use it (inside one they run on the calling thread).
 */
#ifndef QE_ANALYZER_H
#define QE_ANALYZER_H

#include <stddef.h>

#include "qdq.h"

typedef enum qe_scheme {
    QE_SCHEME_TF,                  /* "tf": min/max */
    QE_SCHEME_TF_ENHANCED          /* "tf_enhanced": histogram search (the zoo's scheme) */
} qe_scheme;

#define QE_TFE_PDF_SIZE 512        /* §2.2: PDF_SIZE */

typedef struct qe_analyzer {
    qe_scheme scheme;
    int updated;                   /* at least one non-empty update, even an all-zero one */
    double acc_min, acc_max;       /* TF: running extremes, initially +DBL_MAX / -DBL_MAX */
    int iterations;                /* TF-enhanced: histograms averaged into pdf so far */
    double *xleft;                 /* TF-enhanced: [512] bucket positions, NULL until fixed (§2.2.1) */
    double *pdf;                   /* TF-enhanced: [512] running mean of the histograms (§2.2.2) */
} qe_analyzer;

/* Starts an empty analyzer; never allocates, never fails. */
void qe_analyzer_init(qe_analyzer *a, qe_scheme scheme);

/* One updateStats() call on the n values of x (a whole batch tensor, any layout: only the
 * multiset of values matters). n == 0 is a no-op. TF-enhanced: the first call whose tensor is
 * not all zeros fixes the histogram range forever (§2.2.1); values outside it are dropped but
 * still count in n (§2.2.2). Exact and independent of the number of threads. */
void qe_analyzer_update(qe_analyzer *a, const float *x, size_t n);

/* computeEncoding(bw, symmetric) for bw in 1..16 (§2.1 / §2.2.3-§2.2.8). Returns -1, leaving
 * *out untouched, if the analyzer saw no data (AIMET then disables the quantizer) or bw is out
 * of range; 0 otherwise. Does not modify the analyzer. */
int qe_analyzer_compute(const qe_analyzer *a, int bw, int symmetric, qe_encoding *out);

/* Releases the histogram; the analyzer may be initialised again afterwards. */
void qe_analyzer_free(qe_analyzer *a);

/* Smallest and largest non-NaN value of x[0..n) (+INF and -INF if there is none), on the
 * OpenMP thread team for large n. Order independent except for the sign of a zero result. */
void qe_f32_minmax(const float *x, size_t n, float *min, float *max);

/* Scheme-specific halves of the functions above, called only by them. */
void qe_analyzer_tfe_update(qe_analyzer *a, const float *x, size_t n);
int qe_analyzer_tfe_compute(const qe_analyzer *a, int bw, int symmetric, qe_encoding *out);

#endif
