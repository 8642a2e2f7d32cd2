/*
 * image_resize.h - the two resampling passes of Resize(248) (spec preprocessing-and-formats.md
 * §3.2), shared between image_resize.c and its AVX2 kernels (internal to those two files).
 *
 * The portable resample_row() and resample_column() in image_resize.c are the reference: the
 * kernels below must write exactly the bytes they write, for any coefficients meeting the
 * contract below. The sums are exact integers, so only their evaluation order may differ.
 */
#ifndef QE_IMAGE_RESIZE_H
#define QE_IMAGE_RESIZE_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

#define QE_RESIZE_PRECISION_BITS 22     /* §3.2 normalize_coeffs_8bpc: 32 - 8 - 2 */

/* The resampling of one axis restricted to QE_CROP consecutive outputs. */
typedef struct qe_resize_axis {
    int stride;                     /* coefficient slots per output: the largest tap count */
    int start[QE_CROP];             /* first input sample of each output ("xmin") */
    int taps[QE_CROP];              /* number of input samples of each output ("n"), 0..stride */
    int32_t *k;                     /* [QE_CROP][stride] 22-bit fixed-point weights */
} qe_resize_axis;

/*
 * The horizontal pass of §3.2 over `rows` source rows: row r (RGB, 3 bytes a pixel) starts at
 * src + r * src_stride, and its QE_CROP output pixels go to dst + r * QE_CROP * 3. Output
 * pixel i, band c is clip8(2^21 + sum over x < taps[i] of src[(start[i] + x) * 3 + c] * k[i][x]).
 * Reads only the pixels from the lowest start[i] to the highest start[i] + taps[i] - 1 among
 * the outputs with taps[i] > 0.
 */
void qe_resize_horizontal__avx2(const uint8_t *src, size_t src_stride, int rows,
                                const qe_resize_axis *a, uint8_t *dst);

/*
 * The vertical pass of §3.2: output row i (QE_CROP * 3 bytes at dst + i * QE_CROP * 3) from
 * rows start[i] .. start[i] + taps[i] - 1 of a source whose row first_row starts at src, rows
 * src_stride apart: byte j is clip8(2^21 + sum over y < taps[i] of row(start[i] + y)[j] * k[i][y]).
 * Reads only bytes 0 .. QE_CROP * 3 - 1 of those rows.
 *
 * Contract of both kernels: every |k| < 2^26 (each splits into two int16 halves) and each of
 * those sums fits int32, as Pillow's coefficients guarantee.
 */
void qe_resize_vertical__avx2(const uint8_t *src, size_t src_stride, int first_row,
                              const qe_resize_axis *a, uint8_t *dst);

#endif
