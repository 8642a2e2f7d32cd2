/*
 * test_encoding.c - analyzers, parameter encodings, BN folding and encodings files against
 * the reference implementation and the goldens (spec quantsim.md §1, §2, §3.1, §6).
 *
 * Expected values come from shared/reference/quantsim.py through tests/gen_encodings.py (run
 * into $QE_BUILD/tmp) and from the golden encodings files; every double is compared bit for
 * bit.
 */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analyzer.h"
#include "analyzer_tfe_bucket.h"
#include "cpu.h"
#include "bn_fold.h"
#include "encfile.h"
#include "encoding.h"
#include "qe_util.h"
#include "qtest.h"
#include "sha256.h"
#include "statedict.h"

#define PY "/usr/bin/python3"

static const char *golden_configs[] = {"resnet18_w8a8", "resnet18_w4a8", "resnet50_w8a8",
                                       "resnet50_w4a8"};

static const char *tmp_path(const char *name)
{
    static char buf[4][4096];
    static int slot;
    char *b = buf[slot++ & 3];
    snprintf(b, sizeof buf[0], "%s/tmp/%s", getenv("QE_BUILD"), name);
    return b;
}

/* Runs tests/gen_encodings.py with the given arguments. */
static int run_gen(const char *args)
{
    char cmd[8192];
    const char *src = getenv("QE_SRC");

    mkdir(tmp_path(""), 0777);
    snprintf(cmd, sizeof cmd, "%s %s/tests/gen_encodings.py %s", PY, src ? src : ".", args);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}

static int same_double(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static int same_encoding(const qe_encoding *a, const qe_encoding *b)
{
    return a->bw == b->bw && a->symmetric == b->symmetric && same_double(a->min, b->min) &&
           same_double(a->max, b->max) && same_double(a->delta, b->delta) &&
           same_double(a->offset, b->offset);
}

static void print_encoding(const char *what, const qe_encoding *e)
{
    fprintf(stderr, "  %s: bw %d sym %d min %.17g max %.17g delta %.17g offset %.17g\n", what,
            e->bw, e->symmetric, e->min, e->max, e->delta, e->offset);
}

/* "expect MIN MAX DELTA OFFSET" (hex doubles) or "expect none". */
static int parse_expect(const char *line, qe_encoding *e, int bw, int sym)
{
    char a[64], b[64], c[64], d[64];

    if (strncmp(line, "expect none", 11) == 0)
        return 0;
    if (sscanf(line, "expect %63s %63s %63s %63s", a, b, c, d) != 4)
        return -1;
    e->bw = bw;
    e->symmetric = sym;
    e->min = strtod(a, NULL);
    e->max = strtod(b, NULL);
    e->delta = strtod(c, NULL);
    e->offset = strtod(d, NULL);
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* (a) analyzers and per-channel encodings vs the reference on random tensors                */
/* ---------------------------------------------------------------------------------------- */

static int run_case(qe_scheme scheme, int bw, int sym, const float *data, const size_t *sizes,
                    int nb, qe_encoding *out)
{
    qe_analyzer a;
    qe_analyzer_init(&a, scheme);
    for (int i = 0; i < nb; i++) {
        qe_analyzer_update(&a, data, sizes[i]);
        data += sizes[i];
    }
    int rc = qe_analyzer_compute(&a, bw, sym, out);
    qe_analyzer_free(&a);
    return rc;
}

/* Channels of the reference's cases with codes beyond int8 (unsigned 8-bit, §1.6). */
static int unsigned8_channels;

static void check_perchannel(FILE *man, const float *blob, size_t *pos, size_t blob_n,
                             const char *name, int bw, int C, int P)
{
    char line[512];
    size_t cp = (size_t)C * P;
    REQUIRE(*pos + 3 * cp <= blob_n);
    const float *w = blob + *pos, *k_ref = w + cp, *wq_ref = k_ref + cp;
    *pos += 3 * cp;

    qe_encoding *enc = qe_calloc((size_t)C, sizeof *enc);
    int16_t *k = qe_malloc(cp * sizeof *k);
    float *wq = qe_malloc(cp * sizeof(float));
    float *delta = qe_malloc((size_t)C * sizeof(float));
    char err[QE_ERR_LEN] = "";
    int k_ok = 1, wq_ok = 1;

    CHECK(qe_encoding_params_per_channel(w, C, (size_t)P, bw, enc) == 0);
    for (int c = 0; c < C; c++) {
        qe_encoding ref;
        REQUIRE(fgets(line, sizeof line, man));
        REQUIRE(parse_expect(line, &ref, bw, 1) == 1);
        CHECKF(same_encoding(&enc[c], &ref), "%s channel %d", name, c);
        if (!same_encoding(&enc[c], &ref)) {
            print_encoding("got", &enc[c]);
            print_encoding("reference", &ref);
        }
    }
    for (int c = 0; c < C; c++) {
        int beyond_int8 = 0;
        for (size_t i = (size_t)c * P; i < (size_t)(c + 1) * P; i++)
            beyond_int8 |= k_ref[i] > 127;
        unsigned8_channels += beyond_int8;
    }

    /* Unsigned channels (§1.6, codes up to 255 at 8 bits) included. */
    int rc = qe_encoding_weight_codes(w, C, (size_t)P, enc, k, delta, wq, err);
    CHECKF(rc == 0, "%s: weight_codes rc %d (%s)", name, rc, err);
    for (size_t i = 0; i < cp; i++) {
        wq_ok &= memcmp(&wq[i], &wq_ref[i], sizeof(float)) == 0;
        k_ok &= k[i] == (int)k_ref[i];
    }
    CHECKF(wq_ok, "%s: QDQ'd weights differ from the reference", name);
    CHECKF(k_ok, "%s: weight codes differ from the reference", name);
    for (int c = 0; c < C; c++)
        CHECK(delta[c] == qe_qparams_from_encoding(&enc[c]).delta_f);
    free(enc);
    free(k);
    free(wq);
    free(delta);
}

static void test_analyzers_vs_reference(void)
{
    char line[4096], args[4096];
    uint8_t *raw;
    size_t raw_len, pos = 0;
    int cases = 0, threaded = 0;
    char err[QE_ERR_LEN];

    snprintf(args, sizeof args, "analyzers %s %s", getenv("QE_SHARED"), tmp_path(""));
    REQUIRE(run_gen(args) == 0);
    REQUIRE(qe_read_file(tmp_path("analyzers.f32"), (size_t)1 << 30, &raw, &raw_len, err) == 0);
    FILE *man = fopen(tmp_path("analyzers.txt"), "r");
    REQUIRE(man);
    const float *blob = (const float *)raw;
    size_t blob_n = raw_len / sizeof(float);

    while (fgets(line, sizeof line, man)) {
        char name[128], scheme[8];
        int bw, sym, nb, C, P, used;
        size_t sizes[8], total = 0;

        if (sscanf(line, "perchannel %127s %d %d %d", name, &bw, &C, &P) == 4) {
            check_perchannel(man, blob, &pos, blob_n, name, bw, C, P);
            cases++;
            continue;
        }
        REQUIRE(sscanf(line, "case %127s %7s %d %d %d%n", name, scheme, &bw, &sym, &nb, &used) == 5);
        REQUIRE(nb >= 1 && nb <= 8);
        const char *p = line + used;
        for (int i = 0; i < nb; i++) {
            char *end;
            sizes[i] = strtoul(p, &end, 10);
            p = end;
            total += sizes[i];
        }
        REQUIRE(pos + total <= blob_n);
        REQUIRE(fgets(line, sizeof line, man));
        qe_encoding ref, got;
        int expect = parse_expect(line, &ref, bw, sym);
        REQUIRE(expect >= 0);

        qe_scheme sc = strcmp(scheme, "tf") == 0 ? QE_SCHEME_TF : QE_SCHEME_TF_ENHANCED;
        int rc = run_case(sc, bw, sym, blob + pos, sizes, nb, &got);
        CHECKF(rc == (expect ? 0 : -1), "%s: compute returned %d", name, rc);
        if (expect && rc == 0) {
            CHECKF(same_encoding(&got, &ref), "%s", name);
            if (!same_encoding(&got, &ref)) {
                print_encoding("got", &got);
                print_encoding("reference", &ref);
            }
        }
        /* Large tensors take the parallel paths: the result must not depend on the team. */
        if (total >= 65536 && expect) {
            int saved = omp_get_max_threads();
            for (int t = 1; t <= 3; t += 2) {
                qe_encoding again;
                omp_set_num_threads(t);
                CHECK(run_case(sc, bw, sym, blob + pos, sizes, nb, &again) == 0);
                CHECKF(same_encoding(&again, &ref), "%s with %d threads", name, t);
            }
            omp_set_num_threads(saved);
            threaded++;
        }
        pos += total;
        cases++;
    }
    fclose(man);
    CHECK(pos == blob_n);
    CHECK(cases > 300);
    CHECK(threaded >= 3);
    CHECK(unsigned8_channels >= 1);
    fprintf(stderr, "analyzers: %d cases vs reference (%d unsigned 8-bit channels)\n", cases,
            unsigned8_channels);
    free(raw);
}

/* Inputs AIMET leaves undefined must still give a defined result, without UB (UBSan). */
static void test_analyzer_edge_inputs(void)
{
    const float nan_mix[] = {NAN, 1.0f, -2.0f, NAN, 0.5f};
    const float infs[] = {INFINITY, -INFINITY, 3.0f};
    const float all_nan[] = {NAN, NAN};
    const float *inputs[] = {nan_mix, infs, all_nan};
    const size_t sizes[] = {5, 3, 2};
    qe_encoding e, e_clean;

    for (int s = 0; s < 2; s++) {
        qe_scheme sc = s ? QE_SCHEME_TF_ENHANCED : QE_SCHEME_TF;
        for (int i = 0; i < 3; i++)
            for (int sym = 0; sym < 2; sym++)
                CHECK(run_case(sc, 8, sym, inputs[i], &sizes[i], 1, &e) == 0);

        /* NaN is ignored by min/max and dropped by the histogram (but counted in n). */
        const float clean[] = {1.0f, -2.0f, 0.5f};
        const size_t n3 = 3;
        CHECK(run_case(sc, 8, 0, clean, &n3, 1, &e_clean) == 0);
        CHECK(run_case(sc, 8, 0, nan_mix, &sizes[0], 1, &e) == 0);
        CHECK(same_double(e.min, e_clean.min) && (sc == QE_SCHEME_TF_ENHANCED ||
                                                  same_double(e.max, e_clean.max)));

        qe_analyzer a;
        qe_analyzer_init(&a, sc);
        CHECK(qe_analyzer_compute(&a, 8, 0, &e) == -1);          /* never updated */
        qe_analyzer_update(&a, clean, 0);                       /* empty: no-op */
        CHECK(qe_analyzer_compute(&a, 8, 0, &e) == -1);
        qe_analyzer_update(&a, clean, 3);
        CHECK(qe_analyzer_compute(&a, 0, 0, &e) == -1);
        CHECK(qe_analyzer_compute(&a, 17, 0, &e) == -1);
        CHECK(qe_analyzer_compute(&a, 1, 1, &e) == 0);
        CHECK(qe_analyzer_compute(&a, 16, 0, &e) == 0);
        qe_analyzer_free(&a);
        qe_analyzer_free(&a);                                   /* idempotent */
    }
    float w[4] = {1, 2, 3, 4};
    qe_encoding pc[2];
    CHECK(qe_encoding_params_per_channel(w, 0, 4, 8, pc) == -1);
    CHECK(qe_encoding_params_per_channel(w, 2, 0, 8, pc) == -1);
    CHECK(qe_encoding_params_per_channel(w, 2, 2, 0, pc) == -1);
}

/* The AVX2 and AVX-512 builds of the histogram's bucket index against the portable one, value for value:
 * bucket edges and half-way points, values just outside the range, NaN, infinities, denormals,
 * every tail length of the vector loops. */
static void test_bucket_index_paths(void)
{
    if (!qe_cpu_get()->avx2)
        return;
    enum { M = 4099 };
    float *x = qe_malloc(M * sizeof *x), *t = qe_malloc(M * sizeof *t);
    int32_t *i0 = qe_malloc(M * sizeof *i0), *i1 = qe_malloc(M * sizeof *i1);
    const float specials[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, FLT_MIN / 4, FLT_MAX, -FLT_MAX};
    const float b = 0.01171875f * 1.1f, off = -217.3f;
    uint32_t s = 99;
    for (int j = 0; j < M; j++) {
        s = s * 1664525u + 1013904223u;
        float edge = ((float)(int)(s % 1100) - 300.0f) * 0.5f;   /* half-integers around 0..511 */
        float v = (edge + off) * b;
        switch (s >> 29) {
        case 0: x[j] = specials[(s >> 8) % (sizeof specials / sizeof specials[0])]; break;
        case 1: x[j] = nextafterf(v, INFINITY); break;
        case 2: x[j] = nextafterf(v, -INFINITY); break;
        default: x[j] = v; break;
        }
    }
    void (*const fast[2])(const float *, size_t, float, float, float *, int32_t *) = {
        qe_tfe_bucket_index__avx2, qe_tfe_bucket_index__avx512};
    for (int f = 0; f < (qe_cpu_get()->avx512vnni ? 2 : 1); f++) {
        long differ = 0;
        for (size_t m = 0; m <= 40; m++) {          /* every tail */
            qe_tfe_bucket_index__scalar(x, m, b, off, t, i0);
            fast[f](x, m, b, off, t, i1);
            differ += memcmp(i0, i1, m * sizeof *i0) != 0;
        }
        qe_tfe_bucket_index__scalar(x, M, b, off, t, i0);
        fast[f](x, M, b, off, t, i1);
        for (int j = 0; j < M; j++)
            differ += i0[j] != i1[j];
        CHECKF(differ == 0, "bucket index: the %s and portable builds differ in %ld places",
               f ? "AVX-512" : "AVX2", differ);
    }
    free(x), free(t), free(i0), free(i1);
}

/* §1.2 against hand-derived values of the formulas (8 bit: 255 steps). */
static void test_from_minmax(void)
{
    qe_encoding e;

    qe_encoding_from_minmax(8, -1.0, 1.0, 1, &e);         /* signed symmetric */
    CHECK(e.offset == -128 && e.delta == 1.0 / 127 && e.min == -128 * (1.0 / 127) &&
          e.max == (1.0 / 127) * 127);
    qe_encoding_from_minmax(8, 0.0, 2.55, 1, &e);         /* unsigned: the asymmetric grid */
    CHECK(e.offset == 0 && e.delta == 2.55 / 255 && e.min == 0.0 && e.max == 2.55);
    qe_encoding_from_minmax(8, -1.0, 3.0, 0, &e);
    CHECK(e.delta == 4.0 / 255 && e.offset == -round(1.0 / (4.0 / 255)));
    CHECK(e.min == e.delta * e.offset && e.max == 4.0 + e.min);
}

/* §1.6 and §2.2.7: the per-channel symmetric encoding of an entirely non-negative channel is
 * the unsigned one, offset 0, so its codes k = code run over 0..2^bw-1 (up to 255, beyond int8),
 * next to a signed channel's -2^(bw-1)..2^(bw-1)-1; all against the formulas of §2.2.8, §1.4
 * and §1.5 written out here. Encodings of more than QE_WCODE_MAX_BW bits have no integer codes. */
static void test_weight_codes_unsigned(void)
{
    enum { C = 3, P = 300 };
    float w[C * P], wq[C * P], wq8[C * P], dw[C];
    int16_t k[C * P], k8[C * P];
    qe_encoding enc[C], enc16[C];
    char err[QE_ERR_LEN];
    uint32_t s = 12345;

    for (int i = 0; i < P; i++) {
        s = s * 1664525u + 1013904223u;
        float u = (float)(s >> 8) / 16777216.0f;                /* [0, 1) */
        w[i] = u * 0.3f;                                         /* non-negative */
        w[P + i] = (u - 0.5f) * 0.3f;                            /* signed */
        w[2 * P + i] = i % 7 == 0 ? 0.0f : u * u * 0.05f;        /* non-negative, zeros */
    }
    for (int bw = 8; bw >= 4; bw -= 4) {
        const float S = (float)((1 << bw) - 1);
        int kmax = 0, ok = 1;
        REQUIRE(qe_encoding_params_per_channel(w, C, P, bw, enc) == 0);
        for (int c = 0; c < C; c++) {
            if (c == 1) {
                CHECK(enc[c].offset == -(1 << (bw - 1)));
                continue;
            }
            /* §2.2.8 with the winner (d, 0): min = d * 0, max = d * S + min */
            float d = (float)enc[c].delta;
            CHECKF(enc[c].symmetric && enc[c].offset == 0.0 && enc[c].min == 0.0 &&
                   enc[c].max == (double)(d * S), "bw %d channel %d", bw, c);
        }
        CHECKF(qe_encoding_weight_codes(w, C, P, enc, k, dw, wq, err) == 0, "bw %d: %s", bw, err);
        for (int c = 0; c < C; c++) {
            qe_qparams p = qe_qparams_from_encoding(&enc[c]);
            int lo = c == 1 ? -(1 << (bw - 1)) : 0;
            int hi = c == 1 ? (1 << (bw - 1)) - 1 : (1 << bw) - 1;
            CHECK(p.z == -lo);
            CHECK(dw[c] == p.delta_f);
            for (int i = c * P; i < (c + 1) * P; i++) {
                float x = fmaxf(fminf(w[i], p.max_f), p.min_f);
                int code = (int)roundf(x / p.delta_f - p.offset_f);
                float want_wq = (float)((double)p.delta_f * (double)(code - p.z));
                ok &= k[i] == code - p.z && k[i] >= lo && k[i] <= hi &&
                      memcmp(&wq[i], &want_wq, sizeof want_wq) == 0;
                if (c != 1)
                    kmax = k[i] > kmax ? k[i] : kmax;
            }
        }
        CHECKF(ok, "bw %d: codes or QDQ'd weights differ from §1.5", bw);
        /* the channels must reach past the signed range for the test to mean anything */
        CHECKF(kmax > (1 << (bw - 1)) - 1, "bw %d: largest unsigned code %d", bw, kmax);
        if (bw == 8) {
            memcpy(k8, k, sizeof k);
            memcpy(wq8, wq, sizeof wq);
        }
    }

    /* Wider encodings: k is refused (naming the channel and its width), wq still computed. */
    REQUIRE(qe_encoding_params_per_channel(w, C, P, 16, enc16) == 0);
    err[0] = '\0';
    CHECK(qe_encoding_weight_codes(w, C, P, enc16, k, dw, wq, err) == -1);
    CHECKF(strstr(err, "channel 0") && strstr(err, "16 bits"), "'%s'", err);
    CHECK(qe_encoding_weight_codes(w, C, P, enc16, NULL, dw, wq, err) == 0);
    REQUIRE(qe_encoding_params_per_channel(w, C, P, 8, enc) == 0);
    enc[2] = enc16[2];
    CHECK(qe_encoding_weight_codes(w, C, P, enc, k, dw, wq, err) == -1);
    CHECKF(strstr(err, "channel 2") != NULL, "'%s'", err);
    int rest_ok = 1;
    for (int i = 0; i < C * P; i++)
        rest_ok &= i < 2 * P ? k[i] == k8[i] && memcmp(&wq[i], &wq8[i], sizeof wq[i]) == 0
                             : k[i] == 0;
    CHECK(rest_ok);
}

/* ---------------------------------------------------------------------------------------- */
/* (b) BN fold and parameter encodings of the synthetic models vs the goldens               */
/* ---------------------------------------------------------------------------------------- */

typedef struct conv_pair {
    char conv[64], bn[64];
} conv_pair;

/* The conv/BN pairs AIMET folds in a torchvision ResNet (§3.1), in module order. */
static int conv_bn_pairs(const char *arch, conv_pair *out)
{
    int bottleneck = strcmp(arch, "resnet50") == 0;
    const int blocks[4] = {bottleneck ? 3 : 2, bottleneck ? 4 : 2, bottleneck ? 6 : 2,
                           bottleneck ? 3 : 2};
    int n = 0;

    snprintf(out[n].conv, 64, "conv1");
    snprintf(out[n++].bn, 64, "bn1");
    for (int l = 1; l <= 4; l++)
        for (int b = 0; b < blocks[l - 1]; b++) {
            for (int k = 1; k <= (bottleneck ? 3 : 2); k++) {
                snprintf(out[n].conv, 64, "layer%d.%d.conv%d", l, b, k);
                snprintf(out[n++].bn, 64, "layer%d.%d.bn%d", l, b, k);
            }
            if (b == 0 && (l > 1 || bottleneck)) {
                snprintf(out[n].conv, 64, "layer%d.%d.downsample.0", l, b);
                snprintf(out[n++].bn, 64, "layer%d.%d.downsample.1", l, b);
            }
        }
    return n;
}

static float *tensor_f32(const qe_statedict *sd, const char *module, const char *field,
                         int64_t *numel, int64_t *dim0)
{
    char name[128];
    snprintf(name, sizeof name, "%.100s.%.20s", module, field);
    const qe_tensor *t = qe_statedict_find(sd, name);
    if (!t)
        return NULL;
    float *d = qe_malloc((size_t)t->numel * sizeof(float));
    qe_tensor_to_f32(t, d);
    if (numel)
        *numel = t->numel;
    if (dim0)
        *dim0 = t->ndim > 0 ? t->shape[0] : 1;
    return d;
}

/* The f32 tensors of one conv and its BN. */
enum { T_WEIGHT, T_BIAS, T_GAMMA, T_BETA, T_MEAN, T_VAR, T_COUNT };

typedef struct conv_bn {
    float *t[T_COUNT];             /* t[T_BIAS] is NULL for a conv without bias */
    int cout;
    size_t numel, per_channel;
} conv_bn;

static int conv_bn_load(const qe_statedict *sd, const conv_pair *p, conv_bn *cb)
{
    static const char *bn_fields[] = {"weight", "bias", "running_mean", "running_var"};
    int64_t numel = 0, cout = 0;

    cb->t[T_WEIGHT] = tensor_f32(sd, p->conv, "weight", &numel, &cout);
    cb->t[T_BIAS] = tensor_f32(sd, p->conv, "bias", NULL, NULL);
    for (int i = 0; i < 4; i++)
        cb->t[T_GAMMA + i] = tensor_f32(sd, p->bn, bn_fields[i], NULL, NULL);
    cb->cout = (int)cout;
    cb->numel = (size_t)numel;
    cb->per_channel = cout > 0 ? (size_t)(numel / cout) : 0;
    for (int i = 0; i < T_COUNT; i++)
        if (i != T_BIAS && !cb->t[i])
            return -1;
    return cout > 0 ? 0 : -1;
}

static void conv_bn_free(conv_bn *cb)
{
    for (int i = 0; i < T_COUNT; i++)
        free(cb->t[i]);
}

/* Compares the per-channel encodings of one folded weight with the four golden tables. */
static void check_param_vs_goldens(const char *arch, const char *module, const float *w, int cout,
                                   size_t per_channel, qe_enctable *golden)
{
    char key[128];
    snprintf(key, sizeof key, "%s.weight", module);
    for (int g = 0; g < 4; g++) {
        if (strncmp(golden_configs[g], arch, strlen(arch)) != 0)
            continue;
        int bw = strstr(golden_configs[g], "_w4") ? 4 : 8;
        const qe_encentry *ge = qe_enctable_find(&golden[g], key);
        CHECKF(ge && ge->n == cout, "%s: %s missing or wrong length", golden_configs[g], key);
        if (!ge || ge->n != cout)
            continue;
        qe_encoding *enc = qe_malloc((size_t)cout * sizeof *enc);
        CHECK(qe_encoding_params_per_channel(w, cout, per_channel, bw, enc) == 0);
        int bad = 0;
        for (int c = 0; c < cout; c++)
            if (!same_encoding(&enc[c], &ge->enc[c])) {
                if (bad++ == 0) {
                    fprintf(stderr, "%s %s channel %d:\n", golden_configs[g], key, c);
                    print_encoding("got", &enc[c]);
                    print_encoding("golden", &ge->enc[c]);
                }
            }
        CHECKF(bad == 0, "%s %s: %d of %d channels differ", golden_configs[g], key, bad, cout);
        free(enc);
    }
}

/* The golden encodings file of config g; the gzip'd ResNet50 ones are decompressed into
 * $QE_BUILD/tmp on first use. */
static const char *golden_path(int g)
{
    static char buf[4096];
    char rel[256], name[128], cmd[8400];
    struct stat st;

    snprintf(rel, sizeof rel, "golden/quantsim/%s/encodings.json", golden_configs[g]);
    snprintf(buf, sizeof buf, "%s", qtest_shared(rel));
    if (stat(buf, &st) == 0)
        return buf;
    snprintf(name, sizeof name, "%s.encodings.json", golden_configs[g]);
    snprintf(cmd, sizeof cmd, "gzip -dc '%s.gz' > '%s.part' && mv '%s.part' '%s'", buf,
             tmp_path(name), tmp_path(name), tmp_path(name));
    snprintf(buf, sizeof buf, "%s", tmp_path(name));
    if (stat(buf, &st) != 0 && system(cmd) != 0)
        fprintf(stderr, "failed: %s\n", cmd);
    return buf;
}

static void load_goldens(qe_enctable *golden)
{
    char err[QE_ERR_LEN];

    mkdir(tmp_path(""), 0777);
    for (int g = 0; g < 4; g++)
        CHECKF(qe_encfile_read(golden_path(g), &golden[g], err) == 0, "%s: %s",
               golden_configs[g], err);
}

static void test_params_vs_goldens(const char *arch, qe_enctable *golden)
{
    char err[QE_ERR_LEN], rel[64], args[4096], line[512];
    qe_statedict sd;
    conv_pair pairs[64];
    int n_pairs = conv_bn_pairs(arch, pairs), n_checked = 0;
    double t0 = qe_now();

    snprintf(rel, sizeof rel, "models/%s.pth", arch);
    snprintf(args, sizeof args, "fold %s %s %s %s", getenv("QE_SHARED"), arch, qtest_build(rel),
             tmp_path(""));
    REQUIRE(run_gen(args) == 0);
    snprintf(args, sizeof args, "fold-%s.txt", arch);
    FILE *ref = fopen(tmp_path(args), "r");
    REQUIRE(ref);
    REQUIRE(qe_statedict_load(qtest_build(rel), (size_t)1 << 30, &sd, err) == 0);

    for (int i = 0; i < n_pairs; i++) {
        char conv[64], w_hex[65], b_hex[65], got_w[65], got_b[65];
        conv_bn cb;
        float **t = cb.t;

        REQUIRE(conv_bn_load(&sd, &pairs[i], &cb) == 0);
        float *wf = qe_malloc(cb.numel * sizeof(float));
        float *bf = qe_malloc((size_t)cb.cout * sizeof(float));
        qe_bn_fold(cb.cout, cb.per_channel, t[T_WEIGHT], t[T_BIAS], t[T_GAMMA], t[T_BETA],
                   t[T_MEAN], t[T_VAR], 1e-5f, wf, bf);
        qe_sha256_hex(wf, cb.numel * sizeof(float), got_w);
        qe_sha256_hex(bf, (size_t)cb.cout * sizeof(float), got_b);
        REQUIRE(fgets(line, sizeof line, ref));
        REQUIRE(sscanf(line, "%63s %64s %64s", conv, w_hex, b_hex) == 3);
        CHECK(strcmp(conv, pairs[i].conv) == 0);
        CHECKF(strcmp(got_w, w_hex) == 0 && strcmp(got_b, b_hex) == 0,
               "%s: folded tensors differ from the reference fold_bn", pairs[i].conv);

        /* In place gives the same result. */
        qe_bn_fold(cb.cout, cb.per_channel, t[T_WEIGHT], t[T_BIAS], t[T_GAMMA], t[T_BETA],
                   t[T_MEAN], t[T_VAR], 1e-5f, t[T_WEIGHT], t[T_GAMMA]);
        CHECK(memcmp(t[T_WEIGHT], wf, cb.numel * sizeof(float)) == 0);
        CHECK(memcmp(t[T_GAMMA], bf, (size_t)cb.cout * sizeof(float)) == 0);

        check_param_vs_goldens(arch, pairs[i].conv, wf, cb.cout, cb.per_channel, golden);
        n_checked++;
        conv_bn_free(&cb);
        free(wf);
        free(bf);
    }
    fclose(ref);

    /* fc is not folded (§3.1) and per-channel in the zoo configuration (§3.3). */
    int64_t numel, cout;
    float *fc = tensor_f32(&sd, "fc", "weight", &numel, &cout);
    REQUIRE(fc && cout == 1000);
    check_param_vs_goldens(arch, "fc", fc, 1000, (size_t)(numel / 1000), golden);
    free(fc);
    n_checked++;

    /* Every golden parameter entry was covered. */
    for (int g = 0; g < 4; g++) {
        int params = 0;
        if (strncmp(golden_configs[g], arch, strlen(arch)) != 0)
            continue;
        for (int i = 0; i < golden[g].count; i++)
            params += golden[g].entries[i].kind == QE_ENC_PARAM;
        CHECKF(params == n_checked, "%s: %d param entries, %d checked", golden_configs[g], params,
               n_checked);
    }
    qe_statedict_free(&sd);
    fprintf(stderr, "%s: %d folded weights, param encodings checked in %.1f s\n", arch, n_checked,
            qe_now() - t0);
}

/* ---------------------------------------------------------------------------------------- */
/* (c) encodings files                                                                       */
/* ---------------------------------------------------------------------------------------- */

static int same_table(const qe_enctable *a, const qe_enctable *b)
{
    if (a->count != b->count)
        return 0;
    for (int i = 0; i < a->count; i++) {
        const qe_encentry *x = &a->entries[i], *y = &b->entries[i];
        if (strcmp(x->key, y->key) || x->kind != y->kind || x->n != y->n)
            return 0;
        for (int k = 0; k < x->n; k++)
            if (!same_encoding(&x->enc[k], &y->enc[k]))
                return 0;
    }
    return 1;
}

static void test_encfile_roundtrip(qe_enctable *golden)
{
    char err[QE_ERR_LEN];

    for (int g = 0; g < 4; g++) {
        uint8_t *orig;
        size_t orig_len, len;
        char *text;
        qe_enctable again, flat;
        int acts = 0, params = 0;
        int r50 = strstr(golden_configs[g], "resnet50") != NULL;

        REQUIRE(qe_read_file(golden_path(g), (size_t)1 << 30, &orig, &orig_len, err) == 0);
        /* §3.4: 24 activation + 21 weight quantizers (ResNet18), 41 + 54 (ResNet50). */
        for (int i = 0; i < golden[g].count; i++) {
            acts += golden[g].entries[i].kind != QE_ENC_PARAM;
            params += golden[g].entries[i].kind == QE_ENC_PARAM;
        }
        CHECK(acts == (r50 ? 41 : 24) && params == (r50 ? 54 : 21));
        const qe_encentry *e = qe_enctable_find(&golden[g], "conv1.input");
        CHECK(e && e->kind == QE_ENC_INPUT && e->n == 1 && !e->enc[0].symmetric);
        e = qe_enctable_find(&golden[g], "layer1.0.relu.output");
        CHECK(e && e->kind == QE_ENC_OUTPUT && e->enc[0].min == 0.0);
        e = qe_enctable_find(&golden[g], "fc.weight");
        CHECK(e && e->kind == QE_ENC_PARAM && e->n == 1000 && e->enc[0].symmetric &&
              e->enc[0].bw == (strstr(golden_configs[g], "_w4") ? 4 : 8));
        CHECK(qe_enctable_find(&golden[g], "conv1.output") == NULL);
        CHECK(golden[g].param_bw == (strstr(golden_configs[g], "_w4") ? 4 : 8));

        /* Written text equals the golden byte for byte: every number as Python wrote it. */
        REQUIRE(qe_encfile_format(&golden[g], &text, &len, err) == 0);
        CHECKF(len == orig_len && memcmp(text, orig, len) == 0, "%s: written text differs",
               golden_configs[g]);
        if (len != orig_len || memcmp(text, orig, len) != 0) {
            size_t i = 0;
            while (i < len && i < orig_len && text[i] == (char)orig[i])
                i++;
            fprintf(stderr, "  first difference at byte %zu: ...%.60s\n  golden: ...%.60s\n", i,
                    text + (i > 20 ? i - 20 : 0), (const char *)orig + (i > 20 ? i - 20 : 0));
        }
        CHECK(qe_encfile_parse(text, len, &again, err) == 0);
        CHECK(same_table(&golden[g], &again));

        /* Through a file too. */
        CHECK(qe_encfile_write(&again, tmp_path("roundtrip.encodings"), err) == 0);
        qe_enctable_free(&again);
        CHECK(qe_encfile_read(tmp_path("roundtrip.encodings"), &again, err) == 0);
        CHECK(same_table(&golden[g], &again));
        qe_enctable_free(&again);

        /* §6.3: the param_encodings object alone is the flat AdaRound layout. */
        char *start = strstr(text, "\"param_encodings\":") + strlen("\"param_encodings\":");
        char *end = strstr(text, ",\"excluded_layers\"");
        REQUIRE(start && end && end > start);
        CHECK(qe_encfile_parse(start, (size_t)(end - start), &flat, err) == 0);
        CHECK(flat.count == params);
        int flat_ok = 1;
        for (int i = 0; i < flat.count; i++) {
            const qe_encentry *x = &flat.entries[i], *y = qe_enctable_find(&golden[g], x->key);
            flat_ok &= y && y->kind == QE_ENC_PARAM && y->n == x->n &&
                       memcmp(x->enc, y->enc, (size_t)x->n * sizeof *x->enc) == 0;
        }
        CHECK(flat_ok);
        qe_enctable_free(&flat);
        free(text);
        free(orig);
    }
}

/* Python repr() of doubles of every magnitude, as json.dump writes them. */
static void test_encfile_number_text(void)
{
    char line[512], err[QE_ERR_LEN];
    qe_encoding enc[512];
    int n = 0;
    uint8_t *expect;
    size_t expect_len, len;
    char *text;
    qe_enctable t, back;

    char args[4096];
    snprintf(args, sizeof args, "repr %s", tmp_path(""));
    REQUIRE(run_gen(args) == 0);
    FILE *f = fopen(tmp_path("repr.txt"), "r");
    REQUIRE(f);
    while (n < 512 && fgets(line, sizeof line, f)) {
        char a[64], b[64], c[64];
        int off;
        REQUIRE(sscanf(line, "enc %63s %63s %63s %d", a, b, c, &off) == 4);
        enc[n].bw = 8;
        enc[n].symmetric = 0;
        enc[n].min = strtod(a, NULL);
        enc[n].max = strtod(b, NULL);
        enc[n].delta = strtod(c, NULL);
        enc[n].offset = off;
        n++;
    }
    fclose(f);
    REQUIRE(n > 200);
    qe_enctable_init(&t);
    REQUIRE(qe_enctable_put(&t, "p.weight", QE_ENC_PARAM, n, enc, err) == 0);
    REQUIRE(qe_encfile_format(&t, &text, &len, err) == 0);
    REQUIRE(qe_read_file(tmp_path("repr.json"), (size_t)1 << 24, &expect, &expect_len, err) == 0);
    CHECKF(len == expect_len && memcmp(text, expect, len) == 0, "number text differs from json.dump");
    if (len != expect_len || memcmp(text, expect, len) != 0) {
        size_t i = 0;
        while (i < len && i < expect_len && text[i] == (char)expect[i])
            i++;
        fprintf(stderr, "  at byte %zu: ours ...%.50s\n  python ...%.50s\n", i,
                text + (i > 20 ? i - 20 : 0), (const char *)expect + (i > 20 ? i - 20 : 0));
    }
    /* The parser reads every one of them back exactly. */
    CHECK(qe_encfile_parse((const char *)expect, expect_len, &back, err) == 0);
    CHECK(same_table(&t, &back));
    qe_enctable_free(&back);
    qe_enctable_free(&t);
    free(text);
    free(expect);
}

static void test_enctable_put(void)
{
    qe_enctable t;
    qe_encoding e = {8, 0, -1.0, 1.0, 2.0 / 255, -128}, e2 = e;
    char err[QE_ERR_LEN];

    qe_enctable_init(&t);
    CHECK(qe_enctable_put(&t, "conv1.input", QE_ENC_INPUT, 1, &e, err) == 0);
    CHECK(qe_enctable_put(&t, "conv1.input", QE_ENC_OUTPUT, 1, &e, err) == -1);
    CHECK(qe_enctable_put(&t, "relu", QE_ENC_OUTPUT, 1, &e, err) == -1);
    CHECK(qe_enctable_put(&t, "relu.output", QE_ENC_OUTPUT, 2, &e, err) == -1);
    CHECK(qe_enctable_put(&t, "fc.weight", QE_ENC_PARAM, 0, &e, err) == -1);
    e2.max = 3.0;
    CHECK(qe_enctable_put(&t, "conv1.input", QE_ENC_INPUT, 1, &e2, err) == 0);   /* replaces */
    CHECK(t.count == 1 && qe_enctable_find(&t, "conv1.input")->enc[0].max == 3.0);
    e.min = NAN;
    CHECK(qe_enctable_put(&t, "fc.weight", QE_ENC_PARAM, 1, &e, err) == 0);
    char *text;
    size_t len;
    CHECK(qe_encfile_format(&t, &text, &len, err) == -1 && strstr(err, "fc.weight"));
    qe_enctable_free(&t);
    CHECK(t.count == 0);
}

static void test_encfile_rejects(void)
{
    static const char ok_enc[] = "{\"bitwidth\":8,\"dtype\":\"int\",\"is_symmetric\":\"False\","
                                 "\"max\":1.5,\"min\":-0.5,\"offset\":-64,\"scale\":0.0078125}";
    static const struct {
        const char *enc;           /* replaces the ENC of a valid document */
        const char *message;       /* expected in the error */
    } bad_enc[] = {
        {"{\"dtype\":\"int\",\"is_symmetric\":\"False\",\"max\":1,\"min\":0,\"offset\":0,\"scale\":1}", "bitwidth"},
        {"{\"bitwidth\":0,\"is_symmetric\":\"False\",\"max\":1,\"min\":0,\"offset\":0,\"scale\":1}", "1..16"},
        {"{\"bitwidth\":17,\"is_symmetric\":\"False\",\"max\":1,\"min\":0,\"offset\":0,\"scale\":1}", "1..16"},
        {"{\"bitwidth\":8.0,\"is_symmetric\":\"False\",\"max\":1,\"min\":0,\"offset\":0,\"scale\":1}", "bitwidth"},
        {"{\"bitwidth\":8,\"is_symmetric\":true,\"max\":1,\"min\":0,\"offset\":0,\"scale\":1}", "is_symmetric"},
        {"{\"bitwidth\":8,\"is_symmetric\":\"yes\",\"max\":1,\"min\":0,\"offset\":0,\"scale\":1}", "is_symmetric"},
        {"{\"bitwidth\":8,\"max\":1,\"min\":0,\"offset\":0,\"scale\":1}", "is_symmetric"},
        {"{\"bitwidth\":8,\"is_symmetric\":\"False\",\"min\":0,\"offset\":0,\"scale\":1}", "\"max\""},
        {"{\"bitwidth\":8,\"is_symmetric\":\"False\",\"max\":\"1\",\"min\":0,\"offset\":0,\"scale\":1}", "\"max\" is not a number"},
        {"{\"bitwidth\":8,\"is_symmetric\":\"False\",\"max\":1,\"min\":2,\"offset\":0,\"scale\":1}", "min"},
        {"{\"bitwidth\":8,\"is_symmetric\":\"False\",\"max\":1,\"min\":0,\"offset\":0.5,\"scale\":1}", "offset"},
        {"{\"bitwidth\":8,\"is_symmetric\":\"False\",\"max\":1,\"min\":0,\"offset\":1e12,\"scale\":1}", "offset"},
        {"{\"bitwidth\":8,\"is_symmetric\":\"False\",\"max\":1,\"min\":0,\"offset\":0}", "scale"},
        {"{\"bitwidth\":8,\"dtype\":\"float\",\"is_symmetric\":\"False\",\"max\":1,\"min\":0,\"offset\":0,\"scale\":1}", "dtype"},
        {"{\"bitwidth\":8,\"is_symmetric\":\"False\",\"max\":NaN,\"min\":0,\"offset\":0,\"scale\":1}", "line"},
        {"{\"bitwidth\":8,\"is_symmetric\":\"False\",\"max\":1e999,\"min\":0,\"offset\":0,\"scale\":1}", "line"},
        {"[1,2]", "not an object"},
    };
    static const struct {
        const char *doc, *message;
    } bad_doc[] = {
        {"", "line"},
        {"{\"activation_encodings\":{\"conv1\":{\"input\":{\"0\":", "line"},
        {"[]", "top level"},
        {"{\"activation_encodings\":[],\"param_encodings\":{}}", "activation_encodings"},
        {"{\"activation_encodings\":{},\"param_encodings\":[]}", "param_encodings"},
        {"{\"activation_encodings\":{\"conv1\":{\"weight\":{\"0\":%s}}},\"param_encodings\":{}}", "unknown quantizer"},
        {"{\"activation_encodings\":{\"conv1\":{\"input\":{\"1\":%s}}},\"param_encodings\":{}}", "index"},
        {"{\"activation_encodings\":{\"conv1\":{\"input\":{}}},\"param_encodings\":{}}", "conv1"},
        {"{\"activation_encodings\":{\"conv1\":7},\"param_encodings\":{}}", "conv1"},
        {"{\"activation_encodings\":{},\"param_encodings\":{\"fc.weight\":[]}}", "non-empty"},
        {"{\"activation_encodings\":{},\"param_encodings\":{\"fc.weight\":%s}}", "non-empty"},
        {"{\"fc.weight\":[%s],\"fc.weight\":[%s]}", "duplicate"},
        {"{\"activation_encodings\":{\"a\":{\"output\":{\"0\":%s}}},\"param_encodings\":{\"a.output\":[%s]}}", "duplicate"},
        {"{\"version\":\"0.6.1\"}", "version"},
        {"{\"conv1.weight\":[%s],\"conv2.weight\":{}}", "conv2.weight"},
    };
    char doc[2048], err[QE_ERR_LEN];
    qe_enctable t;

    for (size_t i = 0; i < sizeof bad_enc / sizeof bad_enc[0]; i++) {
        snprintf(doc, sizeof doc, "{\"activation_encodings\":{},\"param_encodings\":"
                 "{\"conv1.weight\":[%s,%s]}}", ok_enc, bad_enc[i].enc);
        err[0] = '\0';
        CHECKF(qe_encfile_parse(doc, strlen(doc), &t, err) == -1, "accepted: %s", bad_enc[i].enc);
        CHECKF(strstr(err, bad_enc[i].message) != NULL, "'%s' lacks '%s'", err, bad_enc[i].message);
        CHECK(t.count == 0);
        if (bad_enc[i].message[0] != 'l')                   /* not a JSON syntax error */
            CHECKF(strstr(err, "\"conv1.weight\"[1]") != NULL, "'%s' does not name the entry", err);
    }
    for (size_t i = 0; i < sizeof bad_doc / sizeof bad_doc[0]; i++) {
        snprintf(doc, sizeof doc, bad_doc[i].doc, ok_enc, ok_enc);
        err[0] = '\0';
        CHECKF(qe_encfile_parse(doc, strlen(doc), &t, err) == -1, "accepted: %s", doc);
        CHECKF(strstr(err, bad_doc[i].message) != NULL, "'%s' lacks '%s'", err, bad_doc[i].message);
    }
    /* The valid forms around them are accepted, integers included where reals are expected. */
    snprintf(doc, sizeof doc, "{\"conv1.weight\":[%s,{\"bitwidth\":4,\"is_symmetric\":\"True\","
             "\"max\":1,\"min\":-1,\"offset\":-8.0,\"scale\":0.125}]}", ok_enc);
    CHECKF(qe_encfile_parse(doc, strlen(doc), &t, err) == 0, "%s", err);
    const qe_encentry *e = qe_enctable_find(&t, "conv1.weight");
    CHECK(e && e->n == 2 && e->enc[0].min == -0.5 && e->enc[0].offset == -64 &&
          e->enc[1].bw == 4 && e->enc[1].symmetric && e->enc[1].offset == -8);
    qe_enctable_free(&t);
    CHECK(qe_encfile_read("/nonexistent/x.encodings", &t, err) == -1 && strstr(err, "nonexistent"));
}

int main(void)
{
    qe_enctable golden[4];

    test_from_minmax();
    test_weight_codes_unsigned();
    test_analyzer_edge_inputs();
    test_bucket_index_paths();
    test_analyzers_vs_reference();
    test_enctable_put();
    test_encfile_rejects();
    test_encfile_number_text();
    load_goldens(golden);
    test_encfile_roundtrip(golden);
    test_params_vs_goldens("resnet18", golden);
    test_params_vs_goldens("resnet50", golden);
    for (int g = 0; g < 4; g++)
        qe_enctable_free(&golden[g]);
    return qtest_done("test_encoding");
}
