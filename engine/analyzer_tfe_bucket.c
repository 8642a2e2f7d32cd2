/* analyzer_tfe_bucket.c - the portable build of the histogram bucket index (analyzer_tfe_bucket.h). */
#include "analyzer_tfe_bucket.h"

void qe_tfe_bucket_index__scalar(const float *restrict x, size_t m, float b, float off,
                                 float *restrict t, int32_t *restrict idx)
{
    tfe_bucket_index(x, m, b, off, t, idx);
}
