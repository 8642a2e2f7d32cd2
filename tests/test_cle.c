/*
 * test_cle.c - Cross-Layer Equalization (engine/cle.c, spec optimization.md §4) against
 * shared/golden/cle/{resnet18,resnet50,resnet18-hbf-variant}: per layer max|W| per output
 * channel, biases, the pairs' scaling factors and absorbed amounts, the first 8 weights of every
 * layer. Comparison rules of golden/cle/README.md: everything bit-exact, except the biases of
 * the second layer of a pair, which may differ by 1e-6*max(1,|b|) (§4.3 BLAS freedom; bit-exact
 * differences are counted and printed). Also: the BN-free state dict round-trips through the
 * torch-zip writer and loads as a prefolded checkpoint; a BN-free input is refused.
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cle.h"
#include "qe_util.h"
#include "qtest.h"
#include "resnet.h"
#include "statedict.h"

static float *read_f32(const char *dir, const char *file, size_t *n)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    uint8_t *data;
    size_t len;
    if (qe_read_file(path, (size_t)1 << 30, &data, &len, NULL)) {
        fprintf(stderr, "cannot read %s\n", path);
        return NULL;
    }
    *n = len / 4;
    float *v = qe_malloc(len + 4);
    memcpy(v, data, len);
    free(data);
    return v;
}

static int conv_index(const qe_resnet_desc *d, const char *name)
{
    for (int i = 0; i < d->nconvs; i++)
        if (strcmp(d->convs[i].name, name) == 0)
            return i;
    return -1;
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* True if conv index i is the second layer of some pair (gets the high-bias correction). */
static int is_pair_l2(const qe_cle_info *info, int i)
{
    for (int k = 0; k < info->npairs; k++)
        if (info->l2[k] == i)
            return 1;
    return 0;
}

static void check_golden(const char *golden, qe_arch arch, const char *input, int expect_absorb)
{
    fprintf(stderr, "-- %s (input %s)\n", golden, input);
    char gdir[2048], mpath[2100];
    snprintf(gdir, sizeof gdir, "%s", qtest_shared(golden));
    snprintf(mpath, sizeof mpath, "%s/manifest.json", gdir);
    json_error_t je;
    json_t *man = json_load_file(mpath, 0, &je);
    REQUIRE(man != NULL);
    qe_statedict sd;
    char err[QE_ERR_LEN];
    int rc = qe_statedict_load(input, (size_t)1 << 30, &sd, err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    REQUIRE(rc == 0);
    qe_resnet_params p;
    qe_cle_info info;
    rc = qe_cle_equalize(arch, &sd, &p, &info, err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    qe_statedict_free(&sd);
    REQUIRE(rc == 0);
    CHECK(p.prefolded);
    const qe_resnet_desc *d = p.desc;

    size_t nmax, nbias, nsc, nab;
    float *gmax = read_f32(gdir, "maxabs.f32", &nmax), *gbias = read_f32(gdir, "bias.f32", &nbias);
    float *gsc = read_f32(gdir, "scales.f32", &nsc), *gab = read_f32(gdir, "absorbed.f32", &nab);
    REQUIRE(gmax && gbias && gsc && gab);

    /* layers: every conv in forward order, then fc */
    json_t *layers = json_object_get(man, "layers"), *first8 = json_object_get(man, "first8_weights");
    CHECK(json_array_size(layers) == (size_t)d->nconvs + 1);
    int bad_max = 0, bad_bias = 0, bad_w8 = 0, l2_inexact = 0, l2_bad = 0;
    for (size_t li = 0; li < json_array_size(layers); li++) {
        json_t *L = json_array_get(layers, li);
        const char *name = json_string_value(json_object_get(L, "name"));
        size_t off = (size_t)json_integer_value(json_object_get(L, "offset"));
        int cnt = (int)json_integer_value(json_object_get(L, "count"));
        int ci = strcmp(name, "fc") == 0 ? -2 : conv_index(d, name);
        CHECKF(ci != -1, "unknown layer %s", name);
        if (ci == -1 || off + (size_t)cnt > nmax || off + (size_t)cnt > nbias) {
            CHECK(0);
            continue;
        }
        const float *w = ci == -2 ? p.fc_w : p.w[ci], *b = ci == -2 ? p.fc_b : p.b[ci];
        size_t per = ci == -2 ? (size_t)d->fc_in : (size_t)d->convs[ci].cin * d->convs[ci].k * d->convs[ci].k;
        CHECKF(cnt == (ci == -2 ? 1000 : d->convs[ci].cout), "%s count", name);
        int l2 = ci >= 0 && is_pair_l2(&info, ci);
        for (int c = 0; c < cnt; c++) {
            float m = 0.0f;
            for (size_t i = 0; i < per; i++) {
                float a = fabsf(w[(size_t)c * per + i]);
                m = a > m ? a : m;
            }
            if (!same_bits(m, gmax[off + c]) && bad_max++ < 5)
                fprintf(stderr, "  maxabs %s[%d]: %.9g != golden %.9g\n", name, c, m, gmax[off + c]);
            float gb = gbias[off + c];
            if (!same_bits(b[c], gb)) {
                if (l2) {   /* README comparison rules: |d| <= 1e-6*max(1,|b|) */
                    l2_inexact++;
                    if (fabs((double)b[c] - gb) > 1e-6 * fmax(1.0, fabs(gb)) && l2_bad++ < 5)
                        fprintf(stderr, "  bias %s[%d]: %.9g != golden %.9g\n", name, c, b[c], gb);
                } else if (bad_bias++ < 5) {
                    fprintf(stderr, "  bias %s[%d]: %.9g != golden %.9g\n", name, c, b[c], gb);
                }
            }
        }
        json_t *f8 = json_object_get(first8, name);
        CHECKF(json_array_size(f8) == 8, "first8_weights of %s", name);
        for (size_t i = 0; i < json_array_size(f8) && i < 8; i++) {
            float g = (float)json_number_value(json_array_get(f8, i));
            if (!same_bits(w[i], g) && bad_w8++ < 5)
                fprintf(stderr, "  weight %s[%zu]: %.9g != golden %.9g\n", name, i, w[i], g);
        }
    }
    CHECKF(bad_max == 0, "%d max|W| differ", bad_max);
    CHECKF(bad_bias == 0, "%d biases differ", bad_bias);
    CHECKF(l2_bad == 0, "%d pair-L2 biases beyond 1e-6 relative", l2_bad);
    CHECKF(bad_w8 == 0, "%d first-8 weights differ", bad_w8);
    if (l2_inexact)
        fprintf(stderr, "  note: %d pair-L2 biases within tolerance but not bit-identical\n", l2_inexact);

    /* pairs: names, order, scaling factors and absorbed amounts, bit-exact */
    json_t *pairs = json_object_get(man, "pairs");
    CHECK(json_array_size(pairs) == (size_t)info.npairs);
    int bad_s = 0, bad_a = 0, absorbed = 0;
    for (size_t k = 0; k < json_array_size(pairs) && k < (size_t)info.npairs; k++) {
        json_t *P = json_array_get(pairs, k);
        const char *n1 = json_string_value(json_object_get(P, "layer1"));
        const char *n2 = json_string_value(json_object_get(P, "layer2"));
        size_t off = (size_t)json_integer_value(json_object_get(P, "offset"));
        int cnt = (int)json_integer_value(json_object_get(P, "count"));
        CHECKF(n1 && strcmp(n1, d->convs[info.l1[k]].name) == 0, "pair %zu layer1 %s", k, n1);
        CHECKF(n2 && strcmp(n2, d->convs[info.l2[k]].name) == 0, "pair %zu layer2 %s", k, n2);
        CHECKF(cnt == info.n[k], "pair %zu count", k);
        if (cnt != info.n[k] || off + (size_t)cnt > nsc || off + (size_t)cnt > nab)
            continue;
        for (int c = 0; c < cnt; c++) {
            if (!same_bits(info.scales[k][c], gsc[off + c]) && bad_s++ < 5)
                fprintf(stderr, "  scale pair %zu[%d]: %.9g != golden %.9g\n", k, c, info.scales[k][c], gsc[off + c]);
            if (!same_bits(info.absorbed[k][c], gab[off + c]) && bad_a++ < 5)
                fprintf(stderr, "  absorbed pair %zu[%d]: %.9g != golden %.9g\n", k, c, info.absorbed[k][c], gab[off + c]);
            absorbed += gab[off + c] != 0.0f;
        }
    }
    CHECKF(bad_s == 0, "%d scaling factors differ", bad_s);
    CHECKF(bad_a == 0, "%d absorbed amounts differ", bad_a);
    CHECKF(info.absorbed_channels == absorbed, "absorbed channels %d, golden %d", info.absorbed_channels, absorbed);
    /* the variant must really exercise the high-bias fold, the plain models never do (§4.6) */
    CHECK(expect_absorb ? absorbed > 0 : absorbed == 0);
    fprintf(stderr, "  %d pairs, %d channels absorbed bias\n", info.npairs, info.absorbed_channels);

    /* the BN-free state dict written as torch zip loads back as a prefolded checkpoint, same bits */
    if (arch == QE_ARCH_RESNET18) {
        char out[1024];
        snprintf(out, sizeof out, "%s/tmp/test_cle-%d.pth", getenv("QE_BUILD"), expect_absorb);
        qe_statedict o;
        qe_cle_to_statedict(&p, &o);
        CHECK(o.count == 2 * d->nconvs + 2);
        CHECK(qe_statedict_save_torch(&o, out, err) == 0);
        qe_statedict_free(&o);
        qe_statedict back;
        REQUIRE(qe_statedict_load(out, (size_t)1 << 30, &back, err) == 0);
        qe_resnet_params q;
        CHECK(qe_resnet_params_load(arch, &back, &q, err) == 0);
        CHECK(q.prefolded);
        int diff = 0;
        for (int i = 0; i < d->nconvs; i++) {
            size_t nw = (size_t)d->convs[i].cout * d->convs[i].cin * d->convs[i].k * d->convs[i].k;
            diff += memcmp(q.w[i], p.w[i], nw * 4) != 0 || memcmp(q.b[i], p.b[i], (size_t)d->convs[i].cout * 4) != 0;
        }
        diff += memcmp(q.fc_w, p.fc_w, (size_t)1000 * d->fc_in * 4) != 0;
        CHECKF(diff == 0, "%d tensors changed through save/load", diff);
        /* a BN-free checkpoint cannot be equalized again (no BN gamma/beta for §4.3) */
        qe_resnet_params r;
        qe_cle_info ri;
        CHECK(qe_cle_equalize(arch, &back, &r, &ri, err) != 0);
        CHECK(strstr(err, "BN-free") != NULL);
        qe_resnet_params_free(&q);
        qe_statedict_free(&back);
    }
    free(gmax);
    free(gbias);
    free(gsc);
    free(gab);
    qe_cle_info_free(&info);
    qe_resnet_params_free(&p);
    json_decref(man);
}

int main(void)
{
    char cmd[4096], variant[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/tmp", getenv("QE_BUILD"));
    CHECK(system(cmd) == 0);
    check_golden("golden/cle/resnet18", QE_ARCH_RESNET18, qtest_build("models/resnet18.pth"), 0);
    /* The golden's source is the npz of the same model: the result must not depend on the format. */
    check_golden("golden/cle/resnet18", QE_ARCH_RESNET18, qtest_build("models/resnet18.npz"), 0);
    check_golden("golden/cle/resnet50", QE_ARCH_RESNET50, qtest_build("models/resnet50.pth"), 0);
    /* The hbf variant: BN-perturbed synthetic ResNet18 (golden/cle/README.md, seed 7). */
    snprintf(variant, sizeof variant, "%s/tmp/resnet18-hbf-variant.npz", getenv("QE_BUILD"));
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/gen_cle_variant.py %s 7 %s", getenv("QE_SRC"),
             qtest_build("models/resnet18.npz"), variant);
    CHECK(system(cmd) == 0);
    check_golden("golden/cle/resnet18-hbf-variant", QE_ARCH_RESNET18, variant, 1);
    return qtest_done("test_cle");
}
