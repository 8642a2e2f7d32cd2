/*
 * QuantSim against the goldens (shared/golden/quantsim/<config>, shared/golden/cle/resnet18):
 *  - §9 with the golden encodings loaded: every logit and the captured intermediate codes
 *    identical bit for bit for the 32 evaluation images;
 *  - calibration (§3.6) on the 64 golden calibration images in 2 batches of 32: every
 *    encoding's min/max/scale/offset identical as doubles, parameters and activations.
 * All four configs, plus the CLE'd ResNet18 written as a BN-free zoo-style checkpoint, and
 * unsigned 8-bit weight channels (§1.6), which the goldens lack, against §9.2 written here.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conv.h"
#include "cpu.h"
#include "encfile.h"
#include "encoding.h"
#include "image.h"
#include "pipeline.h"
#include "qsim.h"
#include "qtest.h"
#include "resnet.h"

static int load_params(const char *path, qe_arch arch, qe_resnet_params *p)
{
    char err[QE_ERR_LEN];
    qe_statedict sd;
    if (qe_statedict_load(path, (size_t)1 << 30, &sd, err)) {
        fprintf(stderr, "%s: %s\n", path, err);
        return -1;
    }
    int rc = qe_resnet_params_load(arch, &sd, p, err);
    if (rc)
        fprintf(stderr, "%s: %s\n", path, err);
    qe_statedict_free(&sd);
    return rc;
}

/* Reads an image list (paths relative to `base`) into normalised tensors, and their center
 * crops into *crops_out unless it is NULL. */
static float *load_list(const char *list, const char *base, int *count, uint8_t **crops_out)
{
    FILE *f = fopen(list, "r");
    if (!f)
        return NULL;
    char line[512];
    int n = 0, cap = 0;
    float *x = NULL;
    uint8_t *crops = NULL;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0])
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            x = realloc(x, (size_t)cap * QE_TENSOR_FLOATS * sizeof(float));
            crops = realloc(crops, (size_t)cap * QE_CROP_BYTES);
        }
        char path[1024], err[QE_ERR_LEN];
        snprintf(path, sizeof path, "%s/%s", base, line);
        uint8_t *crop = crops + (size_t)n * QE_CROP_BYTES;
        if (qe_pipeline_load_crop(path, QE_DEFAULT_MAX_PIXELS, crop, err)) {
            fprintf(stderr, "%s: %s\n", path, err);
            fclose(f);
            free(x);
            free(crops);
            return NULL;
        }
        qe_image_normalize(crop, x + (size_t)n * QE_TENSOR_FLOATS);
        n++;
    }
    fclose(f);
    *count = n;
    if (crops_out)
        *crops_out = crops;
    else
        free(crops);
    return x;
}

static int read_enc(const char *dir, qe_enctable *t)
{
    char path[1024], err[QE_ERR_LEN];
    snprintf(path, sizeof path, "%s/encodings.json", dir);
    qe_enctable_init(t);
    if (access(path, R_OK) != 0) {   /* ResNet50 goldens are gzip-compressed */
        char out[1024], cmd[2300];
        const char *base = strrchr(dir, '/');
        snprintf(out, sizeof out, "%s/tmp/%s-encodings.json", getenv("QE_BUILD"), base ? base + 1 : dir);
        snprintf(cmd, sizeof cmd, "mkdir -p %s/tmp && gzip -dc %s/encodings.json.gz > %s", getenv("QE_BUILD"), dir, out);
        if (system(cmd) != 0)
            return -1;
        snprintf(path, sizeof path, "%s", out);
    }
    if (qe_encfile_read(path, t, err)) {
        fprintf(stderr, "%s: %s\n", path, err);
        return -1;
    }
    return 0;
}

static float *read_bytes(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    float *v = malloc(n);
    size_t got = fread(v, 1, n, f);
    fclose(f);
    if (got != n) {
        free(v);
        return NULL;
    }
    return v;
}

/* §9 with the golden encodings: logits and every codes-*.u8 file identical. */
static void check_exact(const char *dir, const char *eval_list, const char *list_base, const qe_resnet_params *p,
                        int bw, const char *const *codes, int ncodes)
{
    qe_enctable t;
    REQUIRE(read_enc(dir, &t) == 0);
    char err[QE_ERR_LEN], path[1024];
    qe_qsim *q = qe_qsim_create(p, bw, QE_SCHEME_TF_ENHANCED, err);
    REQUIRE(q);
    CHECKF(qe_qsim_load_encodings(q, &t, err) == 0, "%s", err);
    int n = 0;
    snprintf(path, sizeof path, "%s/%s", dir, eval_list);
    uint8_t *crops = NULL;
    float *x = load_list(path, list_base, &n, &crops);
    REQUIRE(x && n == 32);
    snprintf(path, sizeof path, "%s/logits.f32", dir);
    float *golden = read_bytes(path, 32 * 1000 * sizeof(float));
    REQUIRE(golden);
    float *logits = malloc(32 * 1000 * sizeof(float));
    /* Codes of image 0, one quantizer per forward of image 0 alone; then all 32 in two batches. */
    for (int i = 0; i < ncodes; i++) {
        snprintf(path, sizeof path, "%s/codes-%s.u8", dir, codes[i]);
        FILE *f = fopen(path, "rb");
        CHECKF(f != NULL, "%s", path);
        if (!f)
            continue;
        uint8_t *want = malloc(1 << 20), *got = calloc(1, 1 << 20);
        size_t len = fread(want, 1, 1 << 20, f);
        fclose(f);
        REQUIRE(qe_qsim_capture(q, codes[i], got, len) == 0);
        qe_qsim_forward(q, x, 1, logits);
        size_t diff = 0;
        for (size_t k = 0; k < len; k++)
            diff += got[k] != want[k];
        CHECKF(diff == 0, "%s: %zu of %zu codes of %s differ", dir, diff, len, codes[i]);
        free(want);
        free(got);
    }
    /* All 32 images in two uneven batches (the sanitizer run: the first 8). */
    int m = qtest_quick() ? 8 : 32;
    qe_qsim_forward(q, x, 7, logits);
    qe_qsim_forward(q, x + 7 * (size_t)QE_TENSOR_FLOATS, m - 7, logits + 7000);
    int bad = 0;
    for (int i = 0; i < m * 1000; i++)
        bad += memcmp(&logits[i], &golden[i], sizeof(float)) != 0;
    CHECKF(bad == 0, "%s: %d of %d logits differ from the golden", dir, bad, m * 1000);
    fprintf(stderr, "%s: exact evaluation: %d/%d logits differ\n", dir, bad, m * 1000);
    /* The same images from their crops, the input codes tabulated per byte (§9.6). */
    memset(logits, 0, 32 * 1000 * sizeof(float));
    qe_qsim_forward_crops(q, crops, 5, logits);
    qe_qsim_forward_crops(q, crops + 5 * (size_t)QE_CROP_BYTES, m - 5, logits + 5000);
    bad = 0;
    for (int i = 0; i < m * 1000; i++)
        bad += memcmp(&logits[i], &golden[i], sizeof(float)) != 0;
    CHECKF(bad == 0, "%s: from the crops, %d of %d logits differ from the golden", dir, bad, m * 1000);
    free(crops);
    free(x);
    free(golden);
    free(logits);
    qe_qsim_free(q);
    qe_enctable_free(&t);
}

/* Calibration on the 64 golden images (2 batches of 32) reproduces every encoding. */
static void check_calibration(const char *dir, const char *calib_list, const char *list_base,
                              const qe_resnet_params *p, int bw)
{
    qe_enctable gold, ours;
    REQUIRE(read_enc(dir, &gold) == 0);
    char err[QE_ERR_LEN], path[1024];
    qe_qsim *q = qe_qsim_create(p, bw, QE_SCHEME_TF_ENHANCED, err);
    REQUIRE(q);
    int n = 0;
    snprintf(path, sizeof path, "%s/%s", dir, calib_list);
    float *x = load_list(path, list_base, &n, NULL);
    REQUIRE(x && n == 64);
    qe_qsim_calibrate_batch(q, x, 32);
    qe_qsim_calibrate_batch(q, x + 32 * (size_t)QE_TENSOR_FLOATS, 32);
    CHECKF(qe_qsim_calibrate_finish(q, err) == 0, "%s", err);
    qe_enctable_init(&ours);
    CHECKF(qe_qsim_export(q, &ours, err) == 0, "%s", err);
    CHECK(ours.count == gold.count);
    int bad_act = 0, bad_par = 0, checked = 0;
    for (int i = 0; i < gold.count; i++) {
        const qe_encentry *g = &gold.entries[i], *o = qe_enctable_find(&ours, g->key);
        CHECKF(o && o->n == g->n, "%s: missing or wrong length", g->key);
        if (!o || o->n != g->n)
            continue;
        for (int c = 0; c < g->n; c++) {
            const qe_encoding *a = &g->enc[c], *b = &o->enc[c];
            checked++;
            if (a->min != b->min || a->max != b->max || a->delta != b->delta || a->offset != b->offset || a->bw != b->bw) {
                if (g->kind == QE_ENC_PARAM)
                    bad_par++;
                else
                    bad_act++;
                if (bad_act + bad_par <= 5)
                    fprintf(stderr, "  %s[%d]: min %.17g/%.17g max %.17g/%.17g (ours/golden)\n", g->key, c, b->min, a->min,
                            b->max, a->max);
            }
        }
    }
    CHECKF(bad_act == 0 && bad_par == 0, "%s: %d activation and %d parameter encodings differ (of %d)", dir, bad_act,
           bad_par, checked);
    fprintf(stderr, "%s: calibration: %d encodings compared, %d differ\n", dir, checked, bad_act + bad_par);
    free(x);
    qe_qsim_free(q);
    qe_enctable_free(&gold);
    qe_enctable_free(&ours);
}

/* §9.2 literally for image 0 of a layer (square input, CHW codes as captured), int64 sums over
 * the valid window; the number of output codes (CHW) that differ from it. */
static long ref_layer_diff(const uint8_t *in, int cin, int h, const qe_qparams *qin,
                           const int16_t *k, const float *dw, const float *bias, int cout, int ks,
                           int stride, int pad, int relu, const qe_qparams *qout, const uint8_t *out)
{
    int oh = qe_conv_out_size(h, ks, stride, pad);
    long bad = 0;
    for (int c = 0; c < cout; c++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < oh; ox++) {
                int64_t acc = 0;
                for (int ci = 0; ci < cin; ci++)
                    for (int ky = 0; ky < ks; ky++)
                        for (int kx = 0; kx < ks; kx++) {
                            int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                            if (iy >= 0 && iy < h && ix >= 0 && ix < h)
                                acc += (int64_t)(in[((size_t)ci * h + iy) * h + ix] - qin->z) *
                                       k[(((size_t)c * cin + ci) * ks + ky) * ks + kx];
                        }
                double y = (double)acc * ((double)qin->delta_f * (double)dw[c]);
                y = y + (double)bias[c];
                float yf = (float)y;
                if (relu)
                    yf = fmaxf(yf, 0.0f);
                bad += out[((size_t)c * oh + oy) * oh + ox] != qe_quantize(yf, qout);
            }
    return bad;
}

static qe_qparams table_qparams(const qe_enctable *t, const char *key)
{
    const qe_encentry *e = qe_enctable_find(t, key);
    qe_qparams p = {0};
    CHECKF(e != NULL, "%s", key);
    return e ? qe_qparams_from_encoding(&e->enc[0]) : p;
}

/*
 * §1.6: one channel each of the stem, of layer2.1.conv1 and of fc made entirely non-negative
 * gets the unsigned 8-bit encoding (offset 0, codes up to 255). After calibration on two
 * random images the network builds; image 0's stem relu codes and fc codes equal §9.2 computed
 * here from the exported encodings, its logits are the fc codes dequantized (§9.7), and the
 * portable kernels, in a network built from the same encodings, give the same logits.
 */
static void check_unsigned_channels(void)
{
    enum { N = 2, STEM_CH = 5, MID_CH = 100, FC_CH = 7 };
    const size_t stem_per = 3 * 7 * 7, fc_per = 512, stem_out = 64 * 112 * 112;
    qe_resnet_params p;
    REQUIRE(load_params(qtest_build("models/resnet18.pth"), QE_ARCH_RESNET18, &p) == 0);
    int mid = -1;
    for (int i = 0; i < p.desc->nconvs; i++)
        if (strcmp(p.desc->convs[i].name, "layer2.1.conv1") == 0)
            mid = i;
    REQUIRE(mid >= 0);
    size_t mid_per = (size_t)p.desc->convs[mid].cin * 9;
    for (size_t i = 0; i < stem_per; i++)
        p.w[0][STEM_CH * stem_per + i] = fabsf(p.w[0][STEM_CH * stem_per + i]);
    for (size_t i = 0; i < mid_per; i++)
        p.w[mid][MID_CH * mid_per + i] = fabsf(p.w[mid][MID_CH * mid_per + i]);
    for (size_t i = 0; i < fc_per; i++)
        p.fc_w[FC_CH * fc_per + i] = fabsf(p.fc_w[FC_CH * fc_per + i]);

    float *x = malloc(N * QE_TENSOR_FLOATS * sizeof *x);
    uint32_t s = 2024;
    for (size_t i = 0; i < N * QE_TENSOR_FLOATS; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = -2.0f + 4.5f * (float)(s >> 8) / 16777216.0f;   /* about the normalised range */
    }
    char err[QE_ERR_LEN];
    qe_qsim *q = qe_qsim_create(&p, 8, QE_SCHEME_TF_ENHANCED, err);
    REQUIRE(q);
    qe_qsim_calibrate_batch(q, x, N);
    CHECKF(qe_qsim_calibrate_finish(q, err) == 0, "%s", err);
    qe_enctable t;
    qe_enctable_init(&t);
    CHECKF(qe_qsim_export(q, &t, err) == 0, "%s", err);
    const qe_encentry *ws = qe_enctable_find(&t, "conv1.weight"), *wf = qe_enctable_find(&t, "fc.weight");
    const qe_encentry *wm = qe_enctable_find(&t, "layer2.1.conv1.weight");
    REQUIRE(ws && wf && wm);
    CHECK(ws->enc[STEM_CH].offset == 0 && wm->enc[MID_CH].offset == 0 && wf->enc[FC_CH].offset == 0);
    CHECK(ws->enc[0].offset == -128 && wf->enc[0].offset == -128);

    int16_t *ks = malloc(64 * stem_per * sizeof *ks), *kf = malloc(1000 * fc_per * sizeof *kf);
    float dws[64], dwf[1000];
    CHECKF(qe_encoding_weight_codes(p.w[0], 64, stem_per, ws->enc, ks, dws, NULL, err) == 0, "%s", err);
    CHECKF(qe_encoding_weight_codes(p.fc_w, 1000, fc_per, wf->enc, kf, dwf, NULL, err) == 0, "%s", err);
    int kmax_stem = 0, kmax_fc = 0;
    for (size_t i = 0; i < stem_per; i++)
        kmax_stem = ks[STEM_CH * stem_per + i] > kmax_stem ? ks[STEM_CH * stem_per + i] : kmax_stem;
    for (size_t i = 0; i < fc_per; i++)
        kmax_fc = kf[FC_CH * fc_per + i] > kmax_fc ? kf[FC_CH * fc_per + i] : kmax_fc;
    CHECKF(kmax_stem > 127 && kmax_fc > 127, "largest codes %d, %d: within int8", kmax_stem, kmax_fc);

    uint8_t *in = malloc(QE_CROP_BYTES), *relu = malloc(stem_out), avg[512], fcc[1000];
    float *logits = malloc(N * 1000 * sizeof *logits), *logits_p = malloc(N * 1000 * sizeof *logits_p);
    REQUIRE(qe_qsim_capture(q, "conv1.input", in, QE_CROP_BYTES) == 0);
    qe_qsim_forward(q, x, 1, logits);
    REQUIRE(qe_qsim_capture(q, "relu.output", relu, stem_out) == 0);
    qe_qsim_forward(q, x, 1, logits);
    REQUIRE(qe_qsim_capture(q, "avgpool.output", avg, sizeof avg) == 0);
    qe_qsim_forward(q, x, 1, logits);
    REQUIRE(qe_qsim_capture(q, "fc.output", fcc, sizeof fcc) == 0);
    qe_qsim_forward(q, x, N, logits);

    qe_qparams qin = table_qparams(&t, "conv1.input"), qrelu = table_qparams(&t, "relu.output");
    qe_qparams qavg = table_qparams(&t, "avgpool.output"), qfc = table_qparams(&t, "fc.output");
    long bad_stem = ref_layer_diff(in, 3, QE_CROP, &qin, ks, dws, p.b[0], 64, 7, 2, 3, 1, &qrelu, relu);
    long bad_fc = ref_layer_diff(avg, 512, 1, &qavg, kf, dwf, p.fc_b, 1000, 1, 1, 0, 0, &qfc, fcc);
    CHECKF(bad_stem == 0 && bad_fc == 0, "%ld stem and %ld fc codes differ from §9.2", bad_stem, bad_fc);
    int varied = 0, bad_logit = 0;
    for (size_t i = 1; i < 112 * 112; i++)
        varied |= relu[STEM_CH * 112 * 112 + i] != relu[STEM_CH * 112 * 112];
    CHECKF(varied, "the unsigned stem channel's codes are constant");
    for (int c = 0; c < 1000; c++) {
        float want = qe_dequantize(fcc[c], &qfc);
        bad_logit += memcmp(&logits[c], &want, sizeof want) != 0;
    }
    CHECK(bad_logit == 0);

    qe_cpu_cap(QE_ISA_PORTABLE);
    qe_qsim *qp = qe_qsim_create(&p, 8, QE_SCHEME_TF_ENHANCED, err);
    CHECK(qp != NULL);
    if (qp) {
        CHECKF(qe_qsim_load_encodings(qp, &t, err) == 0, "%s", err);
        qe_qsim_forward(qp, x, N, logits_p);
        CHECKF(memcmp(logits, logits_p, N * 1000 * sizeof *logits) == 0, "portable logits differ");
    }
    qe_cpu_cap(QE_ISA_BEST);
    fprintf(stderr, "unsigned channels: largest codes %d (stem) %d (fc), %ld + %ld codes differ\n",
            kmax_stem, kmax_fc, bad_stem, bad_fc);
    qe_qsim_free(qp);
    qe_qsim_free(q);
    qe_enctable_free(&t);
    qe_resnet_params_free(&p);
    free(x), free(ks), free(kf), free(in), free(relu), free(logits), free(logits_p);
}

int main(int argc, char **argv)
{
    static const char *codes18[] = {"conv1.input", "maxpool.output", "layer2.0.relu.output", "layer4.1.relu.output",
                                    "avgpool.output", "fc.output"};
    const char *only = argc > 1 ? argv[1] : NULL;
    if (!only || strcmp(only, "unsigned8") == 0)
        check_unsigned_channels();
    static const struct { const char *cfg, *arch; int bw; } cfgs[] = {
        {"resnet18_w8a8", "resnet18", 8}, {"resnet18_w4a8", "resnet18", 4},
        {"resnet50_w8a8", "resnet50", 8}, {"resnet50_w4a8", "resnet50", 4}};
    for (int i = 0; i < 4; i++) {
        if (only && strcmp(only, cfgs[i].cfg) != 0)
            continue;
        qe_arch arch;
        qe_resnet_arch_parse(cfgs[i].arch, &arch);
        char rel[256];
        snprintf(rel, sizeof rel, "models/%s.pth", cfgs[i].arch);
        qe_resnet_params p;
        CHECK(load_params(qtest_build(rel), arch, &p) == 0);
        snprintf(rel, sizeof rel, "golden/quantsim/%s", cfgs[i].cfg);
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", qtest_shared(rel));
        /* Which codes files exist differs per config: use the ones present. */
        const char *codes[16];
        int nc = 0;
        for (size_t k = 0; k < sizeof codes18 / sizeof codes18[0]; k++) {
            char path[1200];
            snprintf(path, sizeof path, "%s/codes-%s.u8", dir, codes18[k]);
            if (access(path, R_OK) == 0)
                codes[nc++] = codes18[k];
        }
        check_exact(dir, "eval-images.txt", getenv("QE_SHARED"), &p, cfgs[i].bw, codes, nc);
        /* The f64 calibration pass is minutes under the sanitizers: the quick run calibrates
         * resnet18_w8a8 only. */
        if (!qtest_quick() || i == 0)
            check_calibration(dir, "calib-images.txt", getenv("QE_SHARED"), &p, cfgs[i].bw);
        qe_resnet_params_free(&p);
    }
    if (!only || strcmp(only, "cle") == 0) {
        /* The CLE'd ResNet18 as the zoo ships optimized weights: a BN-free state dict. */
        char cmd[4096], out[1024];
        snprintf(out, sizeof out, "%s/tmp/resnet18-cle.pth", getenv("QE_BUILD"));
        snprintf(cmd, sizeof cmd, "mkdir -p %s/tmp && /usr/bin/python3 %s/reference/cle.py --arch resnet18 --in %s --out %s >/dev/null",
                 getenv("QE_BUILD"), getenv("QE_SHARED"), qtest_build("models/resnet18.npz"), out);
        CHECK(system(cmd) == 0);
        qe_resnet_params p;
        if (load_params(out, QE_ARCH_RESNET18, &p) == 0) {
            CHECK(p.prefolded);
            const char *dir = qtest_shared("golden/cle/resnet18");
            char base[1024];
            snprintf(base, sizeof base, "%s/data/dev", getenv("QE_SHARED"));
            check_exact(dir, "eval.txt", base, &p, 8, NULL, 0);
            if (!qtest_quick())
                check_calibration(dir, "calib.txt", base, &p, 8);
            qe_resnet_params_free(&p);
        } else {
            CHECK(0);
        }
    }
    return qtest_done("test_quantsim");
}
