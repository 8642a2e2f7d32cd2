/*
 * image_resize.c - Resize(248) + CenterCrop(224), bit-exact with Pillow 9.4's fixed-point
 * BILINEAR resampling and torchvision 0.14 (spec §3, §4).
 *
 * Pillow resizes the whole image and torchvision then crops it. Every resized pixel depends
 * only on its own coefficients and the source, so this file computes the coefficients of the
 * 224 crop rows/columns only, runs the horizontal pass over just the source rows those 224
 * rows read, and the vertical pass over just the crop: the same integers as the full resize.
 *
 * With AVX2 both passes run in image_resize__avx2.c instead, which must match resample_row()
 * and resample_column() here byte for byte (image_resize.h).
 */
#include "image.h"
#include "image_resize.h"
#include "cpu.h"
#include "qe_util.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS QE_RESIZE_PRECISION_BITS
#define ROUND_HALF (1 << (PRECISION_BITS - 1))
#define CROP_ROW_BYTES (QE_CROP * 3)

/* Keeps every size exact in float (Pillow's box is float) and all index math in int. */
#define MAX_SIDE (1 << 24)

typedef qe_resize_axis axis;       /* image_resize.h */

static double bilinear_filter(double x)
{
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return 1.0 - x;
    return 0.0;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc (§3.2) for outputs first .. first+QE_CROP-1
 * of an in_size -> out_size resize. The double arithmetic follows the spec's order operation by
 * operation; the build's -ffp-contract=off keeps `center` from being fused. (Pillow's ksize
 * only sizes its coefficient storage; the largest n, which never exceeds it, does here.) */
static void axis_init(axis *a, int in_size, int out_size, int first)
{
    double scale = (double)in_size / out_size;          /* (in1 - in0) / out, box = whole axis */
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;                  /* BILINEAR support is 1 */
    double ss = 1.0 / filterscale;
    double center[QE_CROP];

    a->stride = 1;
    for (int i = 0; i < QE_CROP; i++) {
        center[i] = (first + i + 0.5) * scale;           /* in0 + ..., in0 = 0 */
        int xmin = (int)(center[i] - support + 0.5);
        int xmax = (int)(center[i] + support + 0.5);
        if (xmin < 0)
            xmin = 0;
        if (xmax > in_size)
            xmax = in_size;
        a->start[i] = xmin;
        a->taps[i] = xmax - xmin;
        if (a->taps[i] > a->stride)
            a->stride = a->taps[i];
    }

    a->k = qe_calloc((size_t)QE_CROP * (size_t)a->stride, sizeof *a->k);
    double *w = qe_malloc((size_t)a->stride * sizeof *w);
    for (int i = 0; i < QE_CROP; i++) {
        int n = a->taps[i];
        double ww = 0.0;
        for (int x = 0; x < n; x++) {
            w[x] = bilinear_filter((x + a->start[i] - center[i] + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = a->k + (size_t)i * (size_t)a->stride;
        for (int x = 0; x < n; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
    }
    free(w);
}

static inline uint8_t clip8(int32_t acc)
{
    acc >>= PRECISION_BITS;         /* arithmetic shift, as Pillow's int32 code */
    return (uint8_t)(acc < 0 ? 0 : acc > 255 ? 255 : acc);
}

/* Horizontal pass over one source row: the QE_CROP output pixels of `a`. */
static void resample_row(const uint8_t *src, const axis *a, uint8_t *dst)
{
    for (int i = 0; i < QE_CROP; i++, dst += 3) {
        const uint8_t *p = src + (size_t)a->start[i] * 3;
        const int32_t *k = a->k + (size_t)i * (size_t)a->stride;
        int32_t r = ROUND_HALF, g = ROUND_HALF, b = ROUND_HALF;
        for (int x = 0; x < a->taps[i]; x++, p += 3) {
            r += p[0] * k[x];
            g += p[1] * k[x];
            b += p[2] * k[x];
        }
        dst[0] = clip8(r);
        dst[1] = clip8(g);
        dst[2] = clip8(b);
    }
}

/* Vertical pass for one output row: taps rows of CROP_ROW_BYTES starting at src, stride apart.
 * Integer sums are exact in any order, so the loop runs row by row over contiguous bytes. */
static void resample_column(const uint8_t *src, size_t stride, const int32_t *k, int taps,
                            uint8_t *dst)
{
    int32_t acc[CROP_ROW_BYTES];
    for (int j = 0; j < CROP_ROW_BYTES; j++)
        acc[j] = ROUND_HALF;
    for (int y = 0; y < taps; y++, src += stride)
        for (int j = 0; j < CROP_ROW_BYTES; j++)
            acc[j] += src[j] * k[y];
    for (int j = 0; j < CROP_ROW_BYTES; j++)
        dst[j] = clip8(acc[j]);
}

/* torchvision 0.14 Resize(int) output size (§3.1). 248 * long < 2^53 converts to double
 * exactly, so the division rounds like Python's int / int. */
static int64_t resized_long(int64_t lng, int64_t shrt)
{
    return (int64_t)((double)(QE_RESIZE * lng) / (double)shrt);
}

/* CenterCrop offset (§4): round((size - 224) / 2.0) with Python's half-to-even. */
static int crop_offset(int size)
{
    int d = size - QE_CROP;
    if (d % 2 == 0)
        return d / 2;
    int q = d >> 1;
    return q % 2 == 0 ? q : q + 1;
}

int qe_image_crop(const qe_image *img, uint8_t crop[QE_CROP_BYTES], char *err)
{
    if (!img || !img->rgb || img->width < 1 || img->height < 1 || img->width > MAX_SIDE ||
        img->height > MAX_SIDE)
        return qe_err(err, "crop: invalid image (%dx%d)", img ? img->width : 0, img ? img->height : 0);
    int w = img->width, h = img->height;
    int64_t rw64, rh64;
    if (w <= h) {
        rw64 = QE_RESIZE;
        rh64 = resized_long(h, w);
    } else {
        rw64 = resized_long(w, h);
        rh64 = QE_RESIZE;
    }
    if (rw64 > INT_MAX || rh64 > INT_MAX)
        return qe_err(err, "crop: %dx%d image has too extreme an aspect ratio", w, h);
    int rw = (int)rw64, rh = (int)rh64;
    int left = crop_offset(rw), top = crop_offset(rh);
    size_t stride = (size_t)w * 3;
    const uint8_t *src = img->rgb;

    /* §3.2: a pass whose axis keeps its length is skipped, as in Pillow; with neither pass
     * (the short side is already 248) this is a plain crop. */
    int need_h = rw != w, need_v = rh != h;
    int avx2 = qe_cpu_get()->avx2;
    axis ax, ay;
    int row0 = top, row1 = top + QE_CROP;   /* source rows the crop reads */
    if (need_v) {
        axis_init(&ay, h, rh, top);
        row0 = ay.start[0];
        row1 = ay.start[QE_CROP - 1] + ay.taps[QE_CROP - 1];
    }

    /* The vertical pass reads `vsrc` rows row0..row1-1, `vstride` apart: the horizontal
     * pass output when there is one, else the crop columns of the source. */
    const uint8_t *vsrc;
    size_t vstride;
    uint8_t *tmp = NULL;
    if (need_h) {
        axis_init(&ax, w, rw, left);
        uint8_t *dst = crop;
        if (need_v)
            dst = tmp = qe_malloc((size_t)(row1 - row0) * CROP_ROW_BYTES);
        if (avx2)
            qe_resize_horizontal__avx2(src + (size_t)row0 * stride, stride, row1 - row0, &ax, dst);
        else
            for (int y = row0; y < row1; y++)
                resample_row(src + (size_t)y * stride, &ax, dst + (size_t)(y - row0) * CROP_ROW_BYTES);
        free(ax.k);
        vsrc = tmp;
        vstride = CROP_ROW_BYTES;
    } else {
        vsrc = src + (size_t)row0 * stride + (size_t)left * 3;
        vstride = stride;
    }

    if (need_v) {
        if (avx2)
            qe_resize_vertical__avx2(vsrc, vstride, row0, &ay, crop);
        else
            for (int i = 0; i < QE_CROP; i++)
                resample_column(vsrc + (size_t)(ay.start[i] - row0) * vstride, vstride,
                                ay.k + (size_t)i * (size_t)ay.stride, ay.taps[i],
                                crop + (size_t)i * CROP_ROW_BYTES);
        free(ay.k);
    } else if (!need_h) {
        for (int i = 0; i < QE_CROP; i++)
            memcpy(crop + (size_t)i * CROP_ROW_BYTES, vsrc + (size_t)i * vstride, CROP_ROW_BYTES);
    }
    free(tmp);
    return 0;
}
