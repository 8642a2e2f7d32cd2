#include "qops.h"

#include <string.h>

#include "image.h"

/* §9.3: lut[a][b] = Q(max(D_A(a) + D_B(b), 0); relu), the f32 sum of the two dequantized operands. */
void qe_qops_add_table(const qe_qparams *qa, const qe_qparams *qb, const qe_qparams *qo, uint8_t *lut)
{
    for (int a = 0; a < 256; a++) {
        float da = qe_dequantize(a, qa);
        for (int b = 0; b < 256; b++) {
            float s = da + qe_dequantize(b, qb);
            lut[a * 256 + b] = (uint8_t)qe_quantize(s > 0.0f ? s : 0.0f, qo);
        }
    }
}

/* §9.6: the model input, NCHW floats -> NHWC codes. */
void qe_qops_quantize_input(const qe_qparams *qp, const float *x, int n, uint8_t *out)
{
    const int hw = QE_CROP * QE_CROP;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < hw; p++)
                out[((size_t)i * hw + p) * 3 + c] = (uint8_t)qe_quantize(x[((size_t)i * 3 + c) * hw + p], qp);
}

/* §9.4 on codes: max over the valid window, then the maxpool requantisation table. */
void qe_qops_maxpool_3x3s2(const uint8_t *in, int n, int h, int c, const uint8_t lut[256], uint8_t *out)
{
    int oh = (h + 2 - 3) / 2 + 1;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < oh; x++) {
                uint8_t m[512];
                memset(m, 0, (size_t)c);
                for (int dy = -1; dy <= 1; dy++) {
                    int sy = 2 * y + dy;
                    if (sy < 0 || sy >= h)
                        continue;
                    for (int dx = -1; dx <= 1; dx++) {
                        int sx = 2 * x + dx;
                        if (sx < 0 || sx >= h)
                            continue;
                        const uint8_t *s = in + (((size_t)i * h + sy) * h + sx) * c;
                        for (int k = 0; k < c; k++)
                            m[k] = s[k] > m[k] ? s[k] : m[k];
                    }
                }
                uint8_t *o = out + (((size_t)i * oh + y) * oh + x) * c;
                for (int k = 0; k < c; k++)
                    o[k] = lut[m[k]];
            }
}

void qe_qops_add(uint8_t *a, const uint8_t *b, const uint8_t *lut, size_t count)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++)
        a[i] = lut[(size_t)a[i] * 256 + b[i]];
}

/* §9.5: S = sum of codes over the 49 positions, a = (float)((delta * (S - n*z)) / n). */
void qe_qops_avgpool(const uint8_t *in, int n, int hw, int c, const qe_qparams *qi, const qe_qparams *qo,
                          uint8_t *out)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++) {
            long s = 0;
            for (int p = 0; p < hw; p++)
                s += in[((size_t)i * hw + p) * c + k];
            float a = (float)(((double)qi->delta_f * (double)(s - (long)hw * qi->z)) / (double)hw);
            out[(size_t)i * c + k] = (uint8_t)qe_quantize(a, qo);
        }
}

