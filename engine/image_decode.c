/*
 * image_decode.c - JPEG -> RGB exactly as Pillow 9.4's open().convert('RGB') (spec §2).
 *
 * libjpeg-turbo does all the decoding; this file only reproduces Pillow's choices around it:
 * the mode from the SOF component count, out_color_space as the only non-default setting
 * (§2.1), Pillow's inverted-CMYK conversion, and its treatment of truncated files as errors.
 */
#include "image.h"
#include "qe_util.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

/* Adversarial progressive files can hold thousands of tiny scans that each re-walk the whole
 * coefficient buffer (a CPU-time bomb). Pillow has no limit, but real photographs have about
 * ten scans; TurboJPEG's own "limit scans" option draws the line at 500. */
#define MAX_SCANS 1000

/* Rows handed to one jpeg_read_scanlines call. */
#define ROW_BATCH 16

typedef struct decoder {
    struct jpeg_error_mgr pub;      /* first member: libjpeg sees a jpeg_error_mgr */
    struct jpeg_progress_mgr progress;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX + 32];
    /* Owned buffers live here, outside decode_jpeg's frame, so they stay valid across longjmp. */
    uint8_t *rgb;
    uint8_t *row;                   /* CMYK scanline */
} decoder;

static void on_error(j_common_ptr cinfo)
{
    decoder *d = (decoder *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    cinfo->err->format_message(cinfo, text);
    snprintf(d->msg, sizeof d->msg, "invalid JPEG: %s", text);
    longjmp(d->jmp, 1);
}

/* Warnings (corrupt entropy data, extraneous bytes) are ignored as Pillow ignores them, except
 * the premature end of data: libjpeg pads a truncated stream with a fake EOI and carries on,
 * whereas Pillow reports "image file is truncated" (spec §2.1; LOAD_TRUNCATED_IMAGES is off). */
static void on_message(j_common_ptr cinfo, int msg_level)
{
    decoder *d = (decoder *)cinfo->err;
    if (msg_level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        snprintf(d->msg, sizeof d->msg, "truncated JPEG");
        longjmp(d->jmp, 1);
    }
}

static void on_progress(j_common_ptr cinfo)
{
    j_decompress_ptr dinfo = (j_decompress_ptr)cinfo;
    if (dinfo->is_decompressor && dinfo->input_scan_number > MAX_SCANS) {
        decoder *d = (decoder *)cinfo->err;
        snprintf(d->msg, sizeof d->msg, "JPEG has more than %d scans", MAX_SCANS);
        longjmp(d->jmp, 1);
    }
}

/* Pillow's cmyk2rgb on the inverted bytes it holds (CMYK;I), rewritten in terms of the bytes
 * libjpeg returns for JCS_CMYK (§2.1): R = CLIP8(K - MULDIV255(255 - C, K)). */
static inline uint8_t cmyk_channel(int c, int k)
{
    int t = (255 - c) * k + 128;
    int v = k - (((t >> 8) + t) >> 8);
    return (uint8_t)(v <= 0 ? 0 : v < 256 ? v : 255);
}

static void cmyk_row_to_rgb(const uint8_t *cmyk, int width, uint8_t *rgb)
{
    for (int x = 0; x < width; x++, cmyk += 4, rgb += 3) {
        int k = cmyk[3];
        rgb[0] = cmyk_channel(cmyk[0], k);
        rgb[1] = cmyk_channel(cmyk[1], k);
        rgb[2] = cmyk_channel(cmyk[2], k);
    }
}

/* l2rgb, in place: the gray samples occupy the first `width` bytes of the RGB row. Walking
 * backwards never overwrites a gray sample before it is read (3x >= x). */
static void gray_row_to_rgb(uint8_t *row, int width)
{
    for (int x = width - 1; x >= 0; x--)
        row[3 * x] = row[3 * x + 1] = row[3 * x + 2] = row[x];
}

/* Runs the libjpeg session. Every exit path after setjmp leaves d->rgb / d->row for the caller
 * to free (or to keep, on success); cinfo is destroyed here. */
static int decode_jpeg(decoder *d, struct jpeg_decompress_struct *cinfo, const uint8_t *buf,
                       size_t len, int64_t max_pixels, qe_image *img, char *err)
{
    cinfo->err = jpeg_std_error(&d->pub);
    d->pub.error_exit = on_error;
    d->pub.emit_message = on_message;
    d->msg[0] = 0;
    if (setjmp(d->jmp)) {
        jpeg_destroy_decompress(cinfo);
        return qe_err(err, "%s", d->msg);
    }
    jpeg_create_decompress(cinfo);
    d->progress.progress_monitor = on_progress;
    cinfo->progress = &d->progress;
    jpeg_mem_src(cinfo, buf, (unsigned long)len);
    jpeg_read_header(cinfo, TRUE);

    /* Pillow's SOF() rules (§2.1): 8-bit samples, 1 / 3 / 4 components -> L / RGB / CMYK. */
    int ncomp = cinfo->num_components;
    if (cinfo->data_precision != 8) {
        snprintf(d->msg, sizeof d->msg, "unsupported JPEG sample precision %d (only 8 bits)",
                 cinfo->data_precision);
        longjmp(d->jmp, 1);
    }
    if (ncomp != 1 && ncomp != 3 && ncomp != 4) {
        snprintf(d->msg, sizeof d->msg, "unsupported JPEG with %d components", ncomp);
        longjmp(d->jmp, 1);
    }
    int64_t w = cinfo->image_width, h = cinfo->image_height;
    if (w <= 0 || h <= 0 || w * h > max_pixels) {
        snprintf(d->msg, sizeof d->msg, "image of %lldx%lld pixels exceeds the limit of %lld pixels",
                 (long long)w, (long long)h, (long long)max_pixels);
        longjmp(d->jmp, 1);
    }
    cinfo->out_color_space = ncomp == 1 ? JCS_GRAYSCALE : ncomp == 3 ? JCS_RGB : JCS_CMYK;

    jpeg_start_decompress(cinfo);
    if ((int64_t)cinfo->output_width != w || (int64_t)cinfo->output_height != h ||
        cinfo->output_components != ncomp) {
        snprintf(d->msg, sizeof d->msg, "JPEG decoder returned an unexpected output shape");
        longjmp(d->jmp, 1);
    }
    size_t stride = (size_t)w * 3;
    d->rgb = qe_malloc(stride * (size_t)h);
    if (ncomp == 4)
        d->row = qe_malloc((size_t)w * 4);

    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW rows[ROW_BATCH];
        JDIMENSION y = cinfo->output_scanline, n = 0, got;
        if (ncomp == 4) {
            rows[n++] = d->row;
        } else {
            while (n < ROW_BATCH && y + n < cinfo->output_height) {
                rows[n] = d->rgb + (y + n) * stride;
                n++;
            }
        }
        got = jpeg_read_scanlines(cinfo, rows, n);
        if (got == 0) {
            /* Only a suspending data source returns no rows; the memory source never does. */
            snprintf(d->msg, sizeof d->msg, "JPEG decoder made no progress");
            longjmp(d->jmp, 1);
        }
        for (JDIMENSION i = 0; i < got; i++) {
            uint8_t *out = d->rgb + (y + i) * stride;
            if (ncomp == 4)
                cmyk_row_to_rgb(d->row, (int)w, out);
            else if (ncomp == 1)
                gray_row_to_rgb(out, (int)w);
        }
    }
    /* No jpeg_finish_decompress: the pixels are complete, and Pillow ignores whatever follows
     * the last scanline (its finish call runs on a suspending source and is not checked). */
    jpeg_destroy_decompress(cinfo);
    img->width = (int)w;
    img->height = (int)h;
    img->rgb = d->rgb;
    d->rgb = NULL;
    return 0;
}

int qe_image_decode(const uint8_t *buf, size_t len, int64_t max_pixels, qe_image *img, char *err)
{
    img->width = img->height = 0;
    img->rgb = NULL;
    /* §6.1: identify the format by content, never by file name. */
    if (!buf || len < 3 || buf[0] != 0xFF || buf[1] != 0xD8 || buf[2] != 0xFF)
        return qe_err(err, "unsupported image format (not a JPEG file)");

    decoder d;
    struct jpeg_decompress_struct cinfo;
    memset(&d, 0, sizeof d);
    memset(&cinfo, 0, sizeof cinfo);
    int rc = decode_jpeg(&d, &cinfo, buf, len, max_pixels, img, err);
    free(d.rgb);
    free(d.row);
    return rc;
}

void qe_image_free(qe_image *img)
{
    if (!img)
        return;
    free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}
