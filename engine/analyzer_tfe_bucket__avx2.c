/* analyzer_tfe_bucket__avx2.c - the AVX2 build of the histogram bucket index (analyzer_tfe_bucket.h). */
#include "analyzer_tfe_bucket.h"

void qe_tfe_bucket_index__avx2(const float *restrict x, size_t m, float b, float off,
                               float *restrict t, int32_t *restrict idx)
{
    tfe_bucket_index(x, m, b, off, t, idx);
}
