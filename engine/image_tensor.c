/*
 * image_tensor.c - ToTensor + Normalize (spec §5) and the per-file decode + crop entry point.
 */
#include "image.h"
#include "qe_util.h"

#define PLANE (QE_CROP * QE_CROP)

/* Each output value is a function of (channel, byte) only, so a 3x256 table computed with the
 * exact float32 expression gives the same bits as evaluating it per pixel, with 768 divisions
 * instead of 300k. The table lives on the stack: no shared state between threads. */
void qe_image_normalize_table(float lut[3][256])
{
    static const float mean[3] = {0.485f, 0.456f, 0.406f};
    static const float std[3] = {0.229f, 0.224f, 0.225f};
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float x = (float)v / 255.0f;             /* ToTensor: float32 true division */
            lut[c][v] = (x - mean[c]) / std[c];      /* Normalize: subtract, then divide */
        }
}

void qe_image_normalize(const uint8_t crop[QE_CROP_BYTES], float out[QE_TENSOR_FLOATS])
{
    float lut[3][256];
    qe_image_normalize_table(lut);
    for (int i = 0; i < PLANE; i++) {
        const uint8_t *p = crop + 3 * i;
        out[i] = lut[0][p[0]];
        out[PLANE + i] = lut[1][p[1]];
        out[2 * PLANE + i] = lut[2][p[2]];
    }
}

void qe_image_normalize_batch(const uint8_t *crops, int n, float *out)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        qe_image_normalize(crops + (size_t)i * QE_CROP_BYTES, out + (size_t)i * QE_TENSOR_FLOATS);
}

int qe_image_load_crop(const uint8_t *buf, size_t len, int64_t max_pixels, uint8_t crop[QE_CROP_BYTES], char *err)
{
    qe_image img;
    if (qe_image_decode(buf, len, max_pixels, &img, err) != 0)
        return -1;
    int rc = qe_image_crop(&img, crop, err);
    qe_image_free(&img);
    return rc;
}
