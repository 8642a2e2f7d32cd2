/*
 * image.h - JPEG decoding and the zoo's evaluation transform, bit-exact with Pillow 9.4 +
 * torchvision 0.14 (spec preprocessing-and-formats.md §1-§5).
 *
 *   bytes --qe_image_decode--> RGB (HWC u8) --qe_image_crop--> 224x224x3 u8 --qe_image_normalize--> 3x224x224 f32
 */
#ifndef QE_IMAGE_H
#define QE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define QE_CROP 224
#define QE_RESIZE 248
#define QE_CROP_BYTES (QE_CROP * QE_CROP * 3)
#define QE_TENSOR_FLOATS (3 * QE_CROP * QE_CROP)
#define QE_DEFAULT_MAX_PIXELS 89478485LL   /* Pillow's MAX_IMAGE_PIXELS */

typedef struct qe_image {
    int width, height;
    uint8_t *rgb;          /* width*height*3, row-major HWC, owned (free with qe_image_free) */
} qe_image;

/* Decodes a JPEG as Pillow's open().convert('RGB') does (§2): grayscale and CMYK/YCCK are
 * converted to RGB, EXIF orientation is ignored. Non-JPEG content gives an "unsupported image
 * format" error; images whose declared width*height exceeds max_pixels are refused before any
 * pixel buffer is allocated. Never crashes on corrupt or truncated data. */
int qe_image_decode(const uint8_t *buf, size_t len, int64_t max_pixels, qe_image *img, char *err);
void qe_image_free(qe_image *img);

/* Resize(248) with Pillow's fixed-point antialiased BILINEAR (§3) followed by CenterCrop(224)
 * (§4). Only the resized pixels inside the crop are computed (bit-identical to resizing the
 * whole image, since every output pixel depends only on its own coefficients). */
int qe_image_crop(const qe_image *img, uint8_t crop[QE_CROP_BYTES], char *err);

/* ToTensor + Normalize (§5): HWC u8 crop -> CHW float32, true float32 division. */
void qe_image_normalize(const uint8_t crop[QE_CROP_BYTES], float out[QE_TENSOR_FLOATS]);
/* n crops (n x QE_CROP_BYTES) -> n tensors, images in parallel on the OpenMP threads. */
void qe_image_normalize_batch(const uint8_t *crops, int n, float *out);
/* The value qe_image_normalize gives byte v of channel c: lut[c][v]. Any function of the
 * normalised input (such as the model input's quantization) can be tabulated from it exactly. */
void qe_image_normalize_table(float lut[3][256]);

/* decode + crop in one call (what the data pipeline runs per file). */
int qe_image_load_crop(const uint8_t *buf, size_t len, int64_t max_pixels, uint8_t crop[QE_CROP_BYTES], char *err);

#endif
