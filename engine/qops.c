/*
 * qops.c - the element-wise operations of the integer network (qops.h, spec quantsim.md §9):
 * threading, the portable row code, and the AVX2 row kernels of qops__avx2.c where the scalar
 * code is slow (the true division and roundf of §1.5 per element).
 */
#include "qops.h"

#include <string.h>

#include "cpu.h"
#include "image.h"
#include "qops_ukernel.h"

/* §9.3: lut[a][b] = Q(max(D_A(a) + D_B(b), 0); relu), the f32 sum of the two dequantized operands. */
void qe_qops_add_init(qe_qops_add_op *op, const qe_qparams *qa, const qe_qparams *qb, const qe_qparams *qo)
{
    op->qa = *qa, op->qb = *qb, op->qo = *qo;
    for (int a = 0; a < 256; a++) {
        float da = qe_dequantize(a, qa);
        for (int b = 0; b < 256; b++) {
            float s = da + qe_dequantize(b, qb);
            op->lut[a * 256 + b] = (uint8_t)qe_quantize(s > 0.0f ? s : 0.0f, qo);
        }
    }
}

void qe_qops_quantize_chw3__scalar(const qe_qparams *qp, const float *x, size_t hw, size_t p0,
                                   size_t p1, uint8_t *out)
{
    for (size_t p = p0; p < p1; p++)
        for (size_t c = 0; c < 3; c++)
            out[p * 3 + c] = (uint8_t)qe_quantize(x[c * hw + p], qp);
}

/* Pixels per work item of the input quantization: 49 items per 224 x 224 image, enough to keep
 * two threads busy at batch 1. */
#define QUANTIZE_CHUNK 1024
#define INPUT_PIXELS ((size_t)QE_CROP * QE_CROP)
#define INPUT_CHUNKS ((INPUT_PIXELS + QUANTIZE_CHUNK - 1) / QUANTIZE_CHUNK)

/* Work item `it` of the input's n * INPUT_CHUNKS: returns its image, and its pixels [*p0, *p1). */
static size_t input_chunk(size_t it, size_t *p0, size_t *p1)
{
    *p0 = it % INPUT_CHUNKS * QUANTIZE_CHUNK;
    *p1 = *p0 + QUANTIZE_CHUNK < INPUT_PIXELS ? *p0 + QUANTIZE_CHUNK : INPUT_PIXELS;
    return it / INPUT_CHUNKS;
}

/* §9.6: the model input, NCHW floats -> NHWC codes. */
void qe_qops_quantize_input(const qe_qparams *qp, const float *x, int n, uint8_t *out)
{
    const size_t hw = INPUT_PIXELS;
    const int avx2 = qe_cpu_get()->avx2;
#pragma omp parallel for schedule(static)
    for (size_t it = 0; it < (size_t)(n > 0 ? n : 0) * INPUT_CHUNKS; it++) {
        size_t p0, p1, i = input_chunk(it, &p0, &p1);
        const float *xi = x + i * 3 * hw;
        uint8_t *oi = out + i * 3 * hw;
        if (avx2)
            qe_qops_quantize_chw3__avx2(qp, xi, hw, p0, p1, oi);
        else
            qe_qops_quantize_chw3__scalar(qp, xi, hw, p0, p1, oi);
    }
}

void qe_qops_lut_hwc3__scalar(const uint8_t tab[3][256], const uint8_t *in, size_t pixels, uint8_t *out)
{
    for (size_t p = 0; p < pixels; p++, in += 3, out += 3) {
        out[0] = tab[0][in[0]];
        out[1] = tab[1][in[1]];
        out[2] = tab[2][in[2]];
    }
}

/* The code of a crop byte depends only on the byte and its channel (the normalised value is
 * qe_image_normalize_table's), so a 3 x 256 table of qe_quantize gives the same codes as
 * normalising and quantizing each element, without the float tensor. */
void qe_qops_quantize_crops(const qe_qparams *qp, const uint8_t *crops, int n, uint8_t *out)
{
    float norm[3][256];
    uint8_t tab[3][256];
    qe_image_normalize_table(norm);
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            tab[c][v] = (uint8_t)qe_quantize(norm[c][v], qp);
    const int vbmi = qe_cpu_get()->avx512vbmi;
#pragma omp parallel for schedule(static)
    for (size_t it = 0; it < (size_t)(n > 0 ? n : 0) * INPUT_CHUNKS; it++) {
        size_t p0, p1, i = input_chunk(it, &p0, &p1);
        const uint8_t *src = crops + (i * INPUT_PIXELS + p0) * 3;
        uint8_t *dst = out + (i * INPUT_PIXELS + p0) * 3;
        if (vbmi)
            qe_qops_lut_hwc3__avx512vbmi(tab, src, p1 - p0, dst);
        else
            qe_qops_lut_hwc3__scalar(tab, src, p1 - p0, dst);
    }
}

/* m = max(m, s) over 16 codes: a fixed-length loop, which GCC's -O2 vectorizer turns into one
 * byte-wise vector maximum. */
static inline void max16(uint8_t *restrict m, const uint8_t *restrict s)
{
    for (int t = 0; t < 16; t++)
        m[t] = s[t] > m[t] ? s[t] : m[t];
}

/* Output row y of one h x h x c image. */
static void maxpool_row(const uint8_t *in, int h, int c, int y, const uint8_t lut[256],
                        uint8_t *out)
{
    int oh = (h + 2 - 3) / 2 + 1;
    int sy0 = 2 * y - 1 < 0 ? 0 : 2 * y - 1, sy1 = 2 * y + 2 < h ? 2 * y + 2 : h;
    for (int x = 0; x < oh; x++) {
        int sx0 = 2 * x - 1 < 0 ? 0 : 2 * x - 1, sx1 = 2 * x + 2 < h ? 2 * x + 2 : h;
        uint8_t *o = out + (size_t)x * (size_t)c;
        for (int k = 0; k < c; k += 16) {
            int kn = c - k < 16 ? c - k : 16;
            uint8_t m[16] = {0};
            for (int sy = sy0; sy < sy1; sy++) {
                for (int sx = sx0; sx < sx1; sx++) {
                    const uint8_t *s = in + ((size_t)sy * (size_t)h + (size_t)sx) * (size_t)c +
                                       (size_t)k;
                    if (kn == 16) {
                        max16(m, s);
                    } else {
                        for (int t = 0; t < kn; t++)
                            m[t] = s[t] > m[t] ? s[t] : m[t];
                    }
                }
            }
            for (int t = 0; t < kn; t++)
                o[k + t] = lut[m[t]];
        }
    }
}

/* §9.4 on codes: the max over the valid window (padding never wins; the codes share one
 * encoding and D is monotone), then the maxpool requantisation table. */
void qe_qops_maxpool_3x3s2(const uint8_t *in, int n, int h, int c, const uint8_t lut[256], uint8_t *out)
{
    int oh = (h + 2 - 3) / 2 + 1;
    if (n <= 0 || h <= 0 || c <= 0)
        return;
    size_t img_in = (size_t)h * (size_t)h * (size_t)c;
    size_t img_out = (size_t)oh * (size_t)oh * (size_t)c;
    const int vbmi = qe_cpu_get()->avx512vbmi;
#pragma omp parallel for schedule(static)
    for (long it = 0; it < (long)n * oh; it++) {
        long i = it / oh;
        int y = (int)(it % oh);
        uint8_t *o = out + (size_t)i * img_out + (size_t)y * (size_t)oh * (size_t)c;
        if (vbmi)
            qe_qops_maxpool_row__avx512vbmi(in + (size_t)i * img_in, h, c, y, lut, o);
        else
            maxpool_row(in + (size_t)i * img_in, h, c, y, lut, o);
    }
}

/* Four independent table reads per step: the loop is bound by loads, and the stores in place
 * would otherwise keep the compiler from overlapping them (a may alias the table). */
void qe_qops_add_row__scalar(uint8_t *a, const uint8_t *b, size_t count, const qe_qops_add_op *op)
{
    const uint8_t *lut = op->lut;
    size_t i = 0;
    for (; i + 4 <= count; i += 4) {
        uint8_t r0 = lut[(size_t)a[i] * 256 + b[i]], r1 = lut[(size_t)a[i + 1] * 256 + b[i + 1]];
        uint8_t r2 = lut[(size_t)a[i + 2] * 256 + b[i + 2]], r3 = lut[(size_t)a[i + 3] * 256 + b[i + 3]];
        a[i] = r0;
        a[i + 1] = r1;
        a[i + 2] = r2;
        a[i + 3] = r3;
    }
    for (; i < count; i++)
        a[i] = lut[(size_t)a[i] * 256 + b[i]];
}

/* Codes per work item of the residual add. */
#define ADD_CHUNK 16384

void qe_qops_add(uint8_t *a, const uint8_t *b, const qe_qops_add_op *op, size_t count)
{
    void (*row)(uint8_t *, const uint8_t *, size_t, const qe_qops_add_op *) =
        qe_cpu_get()->avx2 ? qe_qops_add_row__avx2 : qe_qops_add_row__scalar;
    const size_t chunks = (count + ADD_CHUNK - 1) / ADD_CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < chunks; k++) {
        size_t i0 = k * ADD_CHUNK, m = count - i0 < ADD_CHUNK ? count - i0 : ADD_CHUNK;
        row(a + i0, b + i0, m, op);
    }
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
