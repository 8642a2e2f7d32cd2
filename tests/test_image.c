/*
 * test_image.c - JPEG decoding and the evaluation transform (spec preprocessing-and-formats.md
 * §2-§5) against the Pillow/torchvision goldens, the numpy reference on all 600 dev images,
 * and hostile input; the AVX2 resampling kernels against the portable ones.
 */
#include "cpu.h"
#include "image.h"
#include "qe_util.h"
#include "qtest.h"

#include <jansson.h>
#include <stdint.h>

#define MAX_FILE (64u << 20)

static uint8_t *load(const char *path, size_t *len)
{
    uint8_t *data = NULL;
    char err[QE_ERR_LEN];
    if (qe_read_file(path, MAX_FILE, &data, len, err) != 0) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    return data;
}

/* Decodes + crops the JPEG bytes and compares with the raw golden crop at `golden`. */
static int crop_matches_bytes(const uint8_t *buf, size_t n, const char *name, const char *golden)
{
    size_t gn;
    uint8_t *want = load(golden, &gn);
    uint8_t crop[QE_CROP_BYTES];
    char err[QE_ERR_LEN] = "";
    int ok = want && gn == QE_CROP_BYTES;
    if (ok && qe_image_load_crop(buf, n, QE_DEFAULT_MAX_PIXELS, crop, err) != 0) {
        fprintf(stderr, "%s: %s\n", name, err);
        ok = 0;
    }
    if (ok && memcmp(crop, want, QE_CROP_BYTES) != 0) {
        int first = 0;
        while (crop[first] == want[first])
            first++;
        fprintf(stderr, "%s: crop differs from %s, first at byte %d (%d vs %d)\n", name, golden,
                first, crop[first], want[first]);
        ok = 0;
    }
    free(want);
    return ok;
}

static int crop_matches(const char *jpeg, const char *golden)
{
    size_t n;
    uint8_t *buf = load(jpeg, &n);
    int ok = buf && crop_matches_bytes(buf, n, jpeg, golden);
    free(buf);
    return ok;
}

/* The decoded size Pillow reported (manifest "decoded_size", [width, height]). */
static int decoded_size_is(const char *jpeg, json_t *size)
{
    size_t n;
    uint8_t *buf = load(jpeg, &n);
    qe_image img = {0};
    int ok = buf && qe_image_decode(buf, n, QE_DEFAULT_MAX_PIXELS, &img, NULL) == 0 &&
             img.width == json_integer_value(json_array_get(size, 0)) &&
             img.height == json_integer_value(json_array_get(size, 1));
    qe_image_free(&img);
    free(buf);
    return ok;
}

/* golden/preprocess/manifest.json: `list` entries name a source image under `root` and its crop. */
static void check_golden_list(json_t *list, const char *root_path, int *count)
{
    char root[1024];
    snprintf(root, sizeof root, "%s", root_path);    /* qtest_shared's buffers get reused */
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        const char *src = json_string_value(json_object_get(e, "source"));
        const char *file = json_string_value(json_object_get(json_object_get(e, "u8"), "file"));
        REQUIRE(src && file);
        char jpeg[2048], golden[1024];
        snprintf(jpeg, sizeof jpeg, "%s/%s", root, src);
        snprintf(golden, sizeof golden, "golden/preprocess/%s", file);
        CHECKF(crop_matches(jpeg, qtest_shared(golden)), "%s", src);
        CHECKF(decoded_size_is(jpeg, json_object_get(e, "decoded_size")), "%s", src);
        (*count)++;
    }
}

static void test_goldens(void)
{
    json_error_t jerr;
    json_t *m = json_load_file(qtest_shared("golden/preprocess/manifest.json"), 0, &jerr);
    REQUIRE(m);
    int n = 0, ny = 0;
    check_golden_list(json_object_get(m, "images"), qtest_shared("data/dev"), &n);
    check_golden_list(json_object_get(m, "ycck_images"), qtest_shared("data"), &ny);
    CHECK(n == 28);
    CHECK(ny == 2);

    /* The one float32 tensor: §5 must reproduce torchvision's bits, not just its values. */
    int tensors = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(m, "images"), i, e) {
        json_t *f32 = json_object_get(e, "f32");
        if (!f32)
            continue;
        char path[1024], golden[1024];
        snprintf(path, sizeof path, "data/dev/%s", json_string_value(json_object_get(e, "source")));
        snprintf(golden, sizeof golden, "golden/preprocess/%s", json_string_value(json_object_get(f32, "file")));
        size_t n1, n2;
        uint8_t *buf = load(qtest_shared(path), &n1), *want = load(qtest_shared(golden), &n2);
        REQUIRE(buf && want && n2 == QE_TENSOR_FLOATS * sizeof(float));
        static uint8_t crop[QE_CROP_BYTES];
        static float x[QE_TENSOR_FLOATS];
        char err[QE_ERR_LEN];
        CHECK(qe_image_load_crop(buf, n1, QE_DEFAULT_MAX_PIXELS, crop, err) == 0);
        qe_image_normalize(crop, x);
        CHECKF(memcmp(x, want, sizeof x) == 0, "tensor of %s", path);   /* little-endian host */
        free(buf);
        free(want);
        tensors++;
    }
    CHECK(tensors == 1);
    json_decref(m);
}

/* The AVX2 kernels of image_resize__avx2.c must match the portable passes byte for byte
 * (image_resize.h): the crop of img under both ISA caps. The kernels are chosen per call. The
 * AVX2 crop runs first: run second, its scratch buffer would likely be the block the portable
 * run just freed, still holding the right bytes wherever a kernel bug left a hole. */
static int paths_agree(const qe_image *img, const char *what)
{
    static uint8_t ref[QE_CROP_BYTES], fast[QE_CROP_BYTES];
    char err[QE_ERR_LEN] = "";
    qe_cpu_cap(QE_ISA_BEST);
    int rc = qe_image_crop(img, fast, err);
    qe_cpu_cap(QE_ISA_PORTABLE);
    rc = rc != 0 ? rc : qe_image_crop(img, ref, err);
    qe_cpu_cap(QE_ISA_BEST);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", what, err);
        return 0;
    }
    if (memcmp(ref, fast, QE_CROP_BYTES) == 0)
        return 1;
    int first = 0;
    while (ref[first] == fast[first])
        first++;
    fprintf(stderr, "%s (%dx%d): AVX2 crop differs from portable, first at row %d column %d band %d "
            "(%d vs %d)\n", what, img->width, img->height, first / (QE_CROP * 3), first / 3 % QE_CROP,
            first % 3, fast[first], ref[first]);
    return 0;
}

typedef struct dev_image {
    char rel[256];
    uint8_t *data;
    size_t len;
} dev_image;

/* Single-thread images/s of decode (+ crop), best of `runs` passes: the machine is shared, and
 * the fastest pass is the one least disturbed by other processes. */
static double throughput(const dev_image *imgs, int n, int with_crop, int runs)
{
    static uint8_t crop[QE_CROP_BYTES];
    double best = 1e30;
    for (int r = 0; r < runs; r++) {
        double t0 = qe_now();
        for (int i = 0; i < n; i++) {
            if (with_crop) {
                qe_image_load_crop(imgs[i].data, imgs[i].len, QE_DEFAULT_MAX_PIXELS, crop, NULL);
            } else {
                qe_image img;
                if (qe_image_decode(imgs[i].data, imgs[i].len, QE_DEFAULT_MAX_PIXELS, &img, NULL) == 0)
                    qe_image_free(&img);
            }
        }
        double t = qe_now() - t0;
        if (t < best)
            best = t;
    }
    return n / best;
}

/* Every dev image against reference/preprocess.py, run once per build tree by
 * tests/gen_preprocess_ref.py; then the throughput of the same work. */
static void test_dev_set(void)
{
    const char *src_dir = getenv("QE_SRC");
    REQUIRE(src_dir);
    char refdir[4096], cmd[8192];
    snprintf(refdir, sizeof refdir, "%s", qtest_build("tmp/preprocess_ref"));
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/gen_preprocess_ref.py' '%s' '%s'", src_dir,
             qtest_shared(""), refdir);
    REQUIRE(system(cmd) == 0);

    FILE *f = fopen(qtest_shared("data/dev-manifest.tsv"), "r");
    REQUIRE(f);
    static dev_image imgs[1024];
    int n = 0, same = 0, agree = 0;
    char line[4096];
    CHECK(fgets(line, sizeof line, f) != NULL);             /* header */
    while (n < 1024 && fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\t");
        if (line[len] != '\t' || len >= sizeof imgs[n].rel)
            continue;
        dev_image *im = &imgs[n];
        memcpy(im->rel, line, len);
        im->rel[len] = 0;
        char path[sizeof im->rel + 16], ref[sizeof refdir + sizeof im->rel + 16];
        snprintf(path, sizeof path, "data/dev/%s", im->rel);
        snprintf(ref, sizeof ref, "%s/%s.u8.hwc", refdir, im->rel);
        im->data = load(qtest_shared(path), &im->len);
        CHECKF(im->data != NULL, "%s", path);
        if (!im->data)
            continue;
        same += crop_matches_bytes(im->data, im->len, im->rel, ref);
        qe_image img;
        if (qe_image_decode(im->data, im->len, QE_DEFAULT_MAX_PIXELS, &img, NULL) == 0) {
            agree += paths_agree(&img, im->rel);
            qe_image_free(&img);
        }
        n++;
    }
    fclose(f);
    fprintf(stderr, "test_image: %d/%d dev crops identical to reference/preprocess.py, %d with "
            "the portable and %s kernels alike\n", same, n, agree,
            qe_cpu_get()->avx2 ? "AVX2" : "portable (no AVX2)");
    CHECK(n == 600);
    CHECK(same == 600);
    CHECK(agree == 600);

    double crop_rate = throughput(imgs, n, 1, 3), decode_rate = throughput(imgs, n, 0, 2);
    fprintf(stderr, "test_image: %d dev images, single thread: decode+crop %.0f images/s "
            "(decode alone %.0f images/s)\n", n, crop_rate, decode_rate);
    for (int i = 0; i < n; i++)
        free(imgs[i].data);
}

/* ---- hostile input ----------------------------------------------------------------------- */

static int decode_fails(const uint8_t *buf, size_t len, int64_t max_pixels, const char *expect)
{
    qe_image img = {0};
    char err[QE_ERR_LEN] = "";
    if (qe_image_decode(buf, len, max_pixels, &img, err) == 0) {
        qe_image_free(&img);
        fprintf(stderr, "decode of %zu bytes unexpectedly succeeded\n", len);
        return 0;
    }
    if (img.rgb || !err[0] || (expect && !strstr(err, expect))) {
        fprintf(stderr, "bad error for %zu bytes: \"%s\" (want \"%s\")\n", len, err, expect ? expect : "");
        return 0;
    }
    return 1;
}

/* Offset of the SOFn marker (FF Cn): walks the marker segments that precede it. */
static size_t find_sof(const uint8_t *b, size_t n)
{
    size_t p = 2;
    while (p + 4 <= n && b[p] == 0xFF) {
        int m = b[p + 1];
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC)
            return p;
        p += 2 + ((size_t)b[p + 2] << 8 | b[p + 3]);
    }
    return 0;
}

static const char *BASELINE = "data/dev/n01484850/ILSVRC2012_val_00006817.JPEG";     /* 500x375 4:2:0 */
static const char *PROGRESSIVE = "data/dev/n01514668/ILSVRC2012_val_00005579.JPEG";  /* 375x500 */
static const char *CMYK = "data/dev/n03109150/ILSVRC2012_val_00033762.JPEG";         /* 359x562 */
static const char *TINY = "data/dev/n01773157/ILSVRC2012_val_00035362.JPEG";         /* 32x32 */
static const char *ONE = "data/dev/n03710193/ILSVRC2012_val_00003657.JPEG";          /* 1x1 */

static void test_not_jpeg(void)
{
    static const uint8_t png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    uint8_t garbage[4096];
    uint32_t s = 12345;
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (uint8_t)((s = s * 1103515245u + 12345u) >> 24);
    garbage[0] = 0x42;                                   /* whatever the generator gave, not FF */
    CHECK(decode_fails(garbage, 0, QE_DEFAULT_MAX_PIXELS, "unsupported image format"));
    CHECK(decode_fails(NULL, 0, QE_DEFAULT_MAX_PIXELS, "unsupported image format"));
    CHECK(decode_fails(garbage, sizeof garbage, QE_DEFAULT_MAX_PIXELS, "unsupported image format"));
    CHECK(decode_fails(png, sizeof png, QE_DEFAULT_MAX_PIXELS, "unsupported image format"));
    /* The SOI signature alone, then garbage: libjpeg's own error, not a crash. */
    garbage[0] = 0xFF, garbage[1] = 0xD8, garbage[2] = 0xFF;
    CHECK(decode_fails(garbage, sizeof garbage, QE_DEFAULT_MAX_PIXELS, NULL));
    CHECK(decode_fails(garbage, 3, QE_DEFAULT_MAX_PIXELS, NULL));
    uint8_t crop[QE_CROP_BYTES];
    char err[QE_ERR_LEN];
    CHECK(qe_image_load_crop(png, sizeof png, QE_DEFAULT_MAX_PIXELS, crop, err) == -1);
}

/* Pillow fails on every one of these cut points ("image file is truncated"), so must we. */
static void test_truncated(void)
{
    const char *files[] = {BASELINE, PROGRESSIVE, CMYK};
    for (int f = 0; f < 3; f++) {
        size_t n;
        uint8_t *buf = load(qtest_shared(files[f]), &n);
        REQUIRE(buf);
        size_t cuts[] = {3, 20, 200, 600, n / 4, n / 2, n - 100, n - 3, n - 2, n - 1};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            /* An exact-size copy, so ASan sees any read past the cut. */
            uint8_t *cut = qe_malloc(cuts[i]);
            memcpy(cut, buf, cuts[i]);
            CHECKF(decode_fails(cut, cuts[i], QE_DEFAULT_MAX_PIXELS, cuts[i] >= 600 ? "truncated" : NULL),
                   "%s cut at %zu", files[f], cuts[i]);
            free(cut);
        }
        free(buf);
    }
}

/* Flipped bytes in headers and entropy data: an error or a decoded image, never a crash or a
 * sanitizer report. The decoded image, if any, must still crop. */
static void test_corrupted(void)
{
    const char *files[] = {BASELINE, PROGRESSIVE, CMYK, TINY};
    uint32_t s = 2024;
    int failed = 0, decoded = 0;
    for (int f = 0; f < 4; f++) {
        size_t n;
        uint8_t *orig = load(qtest_shared(files[f]), &n);
        REQUIRE(orig);
        size_t sof = find_sof(orig, n);
        CHECK(sof > 0);
        uint8_t *buf = qe_malloc(n);
        for (int trial = 0; trial < 60; trial++) {
            memcpy(buf, orig, n);
            /* Even trials hit the header segments (up to the SOF and a bit beyond), odd ones anywhere. */
            size_t span = trial % 2 == 0 ? sof + 32 : n;
            int flips = 1 + trial % 4;
            for (int k = 0; k < flips; k++) {
                s = s * 1103515245u + 12345u;
                size_t at = 3 + (s >> 8) % (span - 3);
                buf[at] ^= (uint8_t)(1u << (s >> 4 & 7));
            }
            qe_image img;
            char err[QE_ERR_LEN] = "";
            if (qe_image_decode(buf, n, QE_DEFAULT_MAX_PIXELS, &img, err) == 0) {
                uint8_t crop[QE_CROP_BYTES];
                CHECK(img.width > 0 && img.height > 0 && img.rgb);
                CHECK(qe_image_crop(&img, crop, err) == 0);
                qe_image_free(&img);
                decoded++;
            } else {
                CHECK(err[0] != 0);
                failed++;
            }
        }
        free(buf);
        free(orig);
    }
    fprintf(stderr, "test_image: corrupted inputs: %d decoded, %d refused\n", decoded, failed);
    CHECK(failed > 0);
}

static void test_sof_patches(void)
{
    size_t n;
    uint8_t *buf = load(qtest_shared(TINY), &n);
    REQUIRE(buf);
    size_t sof = find_sof(buf, n);
    REQUIRE(sof > 0 && sof + 9 < n);
    /* SOF: FF Cn, length(2), precision(1), height(2), width(2), components(1). */
    uint8_t *big = qe_malloc(n);
    memcpy(big, buf, n);
    big[sof + 5] = 65000 >> 8, big[sof + 6] = 65000 & 0xFF;
    big[sof + 7] = 65000 >> 8, big[sof + 8] = 65000 & 0xFF;
    CHECK(decode_fails(big, n, QE_DEFAULT_MAX_PIXELS, "exceeds the limit"));
    uint8_t crop[QE_CROP_BYTES];
    char err[QE_ERR_LEN] = "";
    CHECK(qe_image_load_crop(big, n, QE_DEFAULT_MAX_PIXELS, crop, err) == -1 && strstr(err, "limit"));
    free(big);

    /* The limit is inclusive of width*height itself. */
    qe_image img;
    CHECK(decode_fails(buf, n, 32 * 32 - 1, "exceeds the limit"));
    CHECK(qe_image_decode(buf, n, 32 * 32, &img, err) == 0 && img.width == 32 && img.height == 32);
    qe_image_free(&img);

    uint8_t *p12 = qe_malloc(n);
    memcpy(p12, buf, n);
    p12[sof + 4] = 12;
    CHECK(decode_fails(p12, n, QE_DEFAULT_MAX_PIXELS, "precision"));
    free(p12);
    free(buf);
}

static void test_tiny(void)
{
    size_t n;
    uint8_t *buf = load(qtest_shared(ONE), &n);
    REQUIRE(buf);
    qe_image img;
    char err[QE_ERR_LEN] = "";
    CHECKF(qe_image_decode(buf, n, QE_DEFAULT_MAX_PIXELS, &img, err) == 0, "%s", err);
    CHECK(img.width == 1 && img.height == 1 && img.rgb);
    uint8_t crop[QE_CROP_BYTES];
    /* Upscaling one pixel (1x1 -> 248x248) spreads it unchanged over the whole crop. */
    CHECK(qe_image_crop(&img, crop, err) == 0);
    int flat = 1;
    for (int i = 0; i < QE_CROP_BYTES; i++)
        flat &= crop[i] == img.rgb[i % 3];
    CHECK(flat);
    qe_image_free(&img);
    free(buf);
}

/* Shapes the dev set lacks, extreme aspect ratios included. A constant image must resize to the
 * same constant (the normalised weights sum to 2^22 within far less than the rounding margin),
 * and a 248-pixel short side must give a plain crop (§3.1: no resampling at all). */
static void test_crop_shapes(void)
{
    static const int shapes[][2] = {{1, 65500}, {65500, 1}, {3, 7}, {248, 248}, {248, 1000},
                                    {1000, 248}, {249, 248}, {7919, 250}, {250, 7919}, {224, 2}};
    uint8_t crop[QE_CROP_BYTES];
    char err[QE_ERR_LEN];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        qe_image img = {shapes[s][0], shapes[s][1], NULL};
        size_t bytes = (size_t)img.width * img.height * 3;
        img.rgb = qe_malloc(bytes);
        for (size_t i = 0; i < bytes; i++)
            img.rgb[i] = (uint8_t)(i % 3 == 0 ? 17 : i % 3 == 1 ? 128 : 255);
        CHECKF(qe_image_crop(&img, crop, err) == 0, "%dx%d", img.width, img.height);
        int flat = 1;
        for (int i = 0; i < QE_CROP_BYTES; i++)
            flat &= crop[i] == img.rgb[i % 3];
        CHECKF(flat, "constant %dx%d", img.width, img.height);
        free(img.rgb);
    }

    /* 248 x 300 gradient: the crop is rows 38..261, columns 12..235 of the source itself. */
    qe_image img = {248, 300, qe_malloc(248 * 300 * 3)};
    for (int i = 0; i < 248 * 300 * 3; i++)
        img.rgb[i] = (uint8_t)(i * 7 + i / 977);
    CHECK(qe_image_crop(&img, crop, err) == 0);
    int same = 1;
    for (int y = 0; y < QE_CROP; y++)
        same &= memcmp(crop + y * QE_CROP * 3, img.rgb + ((y + 38) * 248 + 12) * 3, QE_CROP * 3) == 0;
    CHECK(same);
    free(img.rgb);

    qe_image bad = {0, 10, NULL};
    CHECK(qe_image_crop(&bad, crop, err) == -1);
}

/* Random images of every size class the vector code has an edge for: 1-7 pixel sides (fewer
 * than 8 rows in a block, fewer columns than one transpose step), sizes around 224/248 (odd
 * and even tap counts, upscaling, one pass only: a side of 248 skips its pass), and long thin
 * images (thousands of taps or columns). Random bytes, and random 0/255 for the extremes of
 * the sums. */
static void test_kernels_agree(void)
{
    if (!qe_cpu_get()->avx2) {
        fprintf(stderr, "test_image: no AVX2 on this machine (or QE_ISA caps it): kernel "
                "comparison skipped\n");
        return;
    }
    static const int sides[] = {1, 2, 3, 7, 223, 224, 225, 248, 249, 500, 1001};
    static const int extra[][2] = {{4000, 1}, {1, 4000}, {4000, 3}, {3, 4000}, {4000, 224},
                                   {224, 4000}, {4000, 249}, {249, 4000}, {4000, 1001}, {1001, 4000},
                                   {65500, 1}, {1, 65500}, {20000, 7}, {7, 20000}, {7919, 250},
                                   {250, 7919}, {4000, 4000}};
    const int ns = (int)(sizeof sides / sizeof sides[0]), ne = (int)(sizeof extra / sizeof extra[0]);
    uint32_t s = 777;
    int tried = 0, agree = 0;
    for (int t = 0; t < ns * ns + ne; t++) {
        int w = t < ns * ns ? sides[t / ns] : extra[t - ns * ns][0];
        int h = t < ns * ns ? sides[t % ns] : extra[t - ns * ns][1];
        if (qtest_quick() && (int64_t)w * h > 4000000)
            continue;
        qe_image img = {w, h, qe_malloc((size_t)w * h * 3)};
        for (int extremes = 0; extremes < 2; extremes++) {
            for (size_t i = 0; i < (size_t)w * h * 3; i++) {
                s = s * 1103515245u + 12345u;
                img.rgb[i] = extremes ? (uint8_t)(s >> 31 ? 255 : 0) : (uint8_t)(s >> 23);
            }
            char what[64];
            snprintf(what, sizeof what, "random %dx%d%s", w, h, extremes ? " 0/255" : "");
            agree += paths_agree(&img, what);
            tried++;
        }
        free(img.rgb);
    }
    fprintf(stderr, "test_image: %d/%d random images with the portable and AVX2 kernels alike\n",
            agree, tried);
    CHECK(agree == tried);
}

int main(void)
{
    test_goldens();
    test_not_jpeg();
    test_truncated();
    test_corrupted();
    test_sof_patches();
    test_tiny();
    test_crop_shapes();
    test_kernels_agree();
    test_dev_set();
    return qtest_done("test_image");
}
