/* analyzer_tfe_bucket__avx512vnni.c - the AVX-512 build of the histogram bucket index
 * (analyzer_tfe_bucket.h), 16-wide: the same body in 512-bit vectors. */
#include "analyzer_tfe_bucket.h"

void
qe_tfe_bucket_index__avx512(const float *restrict x, size_t m, float b, float off, float *restrict t,
                            int32_t *restrict idx)
{
    tfe_bucket_index(x, m, b, off, t, idx);
}
