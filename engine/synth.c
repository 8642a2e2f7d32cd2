/*
 * synth.c - the synthetic checkpoints of spec preprocessing-and-formats.md §8.
 *
 * Bit-exactness with make_synthetic.py rests on three rules:
 *  - random numbers are consumed in state-dict order, one PCG64 output per value;
 *  - every formula runs in float64 with numpy's operation order (no FMA: the build uses
 *    -ffp-contract=off; v^9 is v8 * v by repeated squaring, as the script writes it, not pow),
 *    then rounds once to float32 where the script calls astype(np.float32);
 *  - the measured statistics replace the placeholders exactly as state_dict() does.
 */
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcg64.h"
#include "qe_util.h"

/* Defined by the build from configs/synthetic/bn-stats-<arch>.bin (CMakeLists.txt). */
extern const unsigned char qe_embed_bnstats_resnet18[];
extern const unsigned long qe_embed_bnstats_resnet18_len;
extern const unsigned char qe_embed_bnstats_resnet50[];
extern const unsigned long qe_embed_bnstats_resnet50_len;

#define NUM_CLASSES 1000
#define NUM_BATCHES_TRACKED 100

typedef struct arch_desc {
    const char *name;
    int expansion;                 /* 1: BasicBlock, 4: Bottleneck v1.5 */
    int layers[4];
    uint64_t state[2], inc[2];     /* PCG64 state and increment, high word first */
    const unsigned char *stats;
    const unsigned long *stats_len;
} arch_desc;

/* The script's PRNG table: fixed 128-bit constants (both increments are already odd, so the
 * script's `| 1` changes nothing). */
static const arch_desc archs[] = {
    {"resnet18", 1, {2, 2, 2, 2},
     {0x243F6A8885A308D3ull, 0x13198A2E03707344ull}, {0xA4093822299F31D0ull, 0x082EFA98EC4E6C89ull},
     qe_embed_bnstats_resnet18, &qe_embed_bnstats_resnet18_len},
    {"resnet50", 4, {3, 4, 6, 3},
     {0x452821E638D01377ull, 0xBE5466CF34E90C6Cull}, {0xC0AC29B7C97C50DDull, 0x3F84D5B5B5470917ull},
     qe_embed_bnstats_resnet50, &qe_embed_bnstats_resnet50_len},
};

/* ------------------------------------------------------------------ measured statistics */

/* bn-stats-<arch>.bin (shared/models/README.md): "QEBNST01", u32 number of BNs, u32 fc
 * in-features, u32 classes, u32 0; per BN: u32 C, C means, C variances; fc scale per
 * in-feature; fc bias per class. All little-endian, like the host (x86-64). */
typedef struct stats_reader {
    const unsigned char *p, *end;
    uint32_t nbn, nfeat, ncls;
} stats_reader;

static int stats_take(stats_reader *r, size_t n, const unsigned char **out)
{
    if ((size_t)(r->end - r->p) < n)
        return -1;
    *out = r->p;
    r->p += n;
    return 0;
}

static int stats_u32(stats_reader *r, uint32_t *v)
{
    const unsigned char *p;
    if (stats_take(r, 4, &p) < 0)
        return -1;
    *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return 0;
}

/* Copies n float32 values out of the blob (which has no alignment guarantee). */
static int stats_f32(stats_reader *r, size_t n, float *dst)
{
    const unsigned char *p;
    if (stats_take(r, n * sizeof(float), &p) < 0)
        return -1;
    memcpy(dst, p, n * sizeof(float));
    return 0;
}

static int stats_open(stats_reader *r, const unsigned char *data, size_t len)
{
    const unsigned char *magic;
    uint32_t zero;
    r->p = data;
    r->end = data + len;
    if (stats_take(r, 8, &magic) < 0 || memcmp(magic, "QEBNST01", 8) != 0 ||
        stats_u32(r, &r->nbn) < 0 || stats_u32(r, &r->nfeat) < 0 || stats_u32(r, &r->ncls) < 0 ||
        stats_u32(r, &zero) < 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ random values */

/* The script's Stream.uniform01: the top 53 bits times 2^-53, exact in float64. */
static double next_u01(qe_pcg64 *g)
{
    return (double)(qe_pcg64_next(g) >> 11) * (1.0 / 9007199254740992.0);
}

/* §8 conv / fc weight, the script's tailed(): scale is std / sqrt(1/3 + 6/11 + 9/19). */
static float tailed(double u, double scale)
{
    double v = 2.0 * u - 1.0;
    double v2 = v * v;
    double v4 = v2 * v2;
    double v8 = v4 * v4;
    return (float)((v + 3.0 * (v8 * v)) * scale);
}

static double tailed_scale(double std)
{
    return std / sqrt(1.0 / 3.0 + 6.0 / 11.0 + 9.0 / 19.0);
}

/* ------------------------------------------------------------------ state dict builder */

typedef struct builder {
    qe_statedict *sd;
    qe_pcg64 rng;
    stats_reader stats;
    uint32_t bn_seen;
    const char *prefix;            /* "layer2.0." inside a block, "" outside */
    int failed;                    /* first error is in err; later adds are no-ops */
    char *err;
} builder;

static void fail(builder *b, const char *what)
{
    if (!b->failed)
        qe_err(b->err, "synth: embedded bn-stats blob is corrupt (%s)", what);
    b->failed = 1;
}

static qe_tensor *push(builder *b, const char *module, const char *field, qe_dtype dt, int ndim,
                       const int64_t *shape)
{
    char name[128];
    snprintf(name, sizeof name, "%s%s.%s", b->prefix, module, field);
    qe_tensor *t = qe_statedict_push(b->sd, name);
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= shape[i];
    }
    /* Aligned like a loaded tensor: qe_statedict_free releases data with qe_free_aligned. */
    t->data = qe_malloc_aligned((size_t)t->numel * qe_dtype_size(dt));
    return t;
}

/* §8: He-scaled conv weight, std sqrt(2 / fan_in). */
static void add_conv(builder *b, const char *module, int cout, int cin, int k)
{
    const int64_t shape[4] = {cout, cin, k, k};
    qe_tensor *t = push(b, module, "weight", QE_DT_F32, 4, shape);
    double scale = tailed_scale(sqrt(2.0 / (double)(cin * k * k)));
    float *w = t->data;
    for (int64_t i = 0; i < t->numel; i++)
        w[i] = tailed(next_u01(&b->rng), scale);
}

/* §8: BN affine parameters are drawn; running statistics come from the stats blob, in the same
 * (state-dict) order. `last`: the last BN of a residual branch gets small gammas and betas. */
static void add_bn(builder *b, const char *module, int c, int last)
{
    const int64_t shape[1] = {c};
    float *g = push(b, module, "weight", QE_DT_F32, 1, shape)->data;
    for (int i = 0; i < c; i++) {
        double u = next_u01(&b->rng);
        g[i] = last ? (float)(0.1 + 0.6 * (u * u)) : (float)(0.25 + 1.5 * (u * u));
    }
    float *beta = push(b, module, "bias", QE_DT_F32, 1, shape)->data;
    for (int i = 0; i < c; i++) {
        double u = next_u01(&b->rng);
        beta[i] = last ? (float)(-0.15 + 0.3 * u) : (float)(-0.3 + 0.45 * u);
    }

    float *mean = push(b, module, "running_mean", QE_DT_F32, 1, shape)->data;
    float *var = push(b, module, "running_var", QE_DT_F32, 1, shape)->data;
    /* Shape [1], not torchvision's 0-d: the script passes every array through
     * np.ascontiguousarray, which returns at least one dimension, so its files hold [1]
     * (torch's load_state_dict accepts that for a 0-d buffer). */
    const int64_t one[1] = {1};
    int64_t *nbt = push(b, module, "num_batches_tracked", QE_DT_I64, 1, one)->data;
    *nbt = NUM_BATCHES_TRACKED;

    uint32_t sc;
    if (b->failed)
        return;
    if (b->bn_seen++ >= b->stats.nbn)
        fail(b, "fewer BNs than the architecture");
    else if (stats_u32(&b->stats, &sc) < 0 || sc != (uint32_t)c)
        fail(b, "BN channel count");
    else if (stats_f32(&b->stats, (size_t)c, mean) < 0 || stats_f32(&b->stats, (size_t)c, var) < 0)
        fail(b, "truncated");
}

/* §8: fc.weight = W * fc_scale[j] per input column j, computed in float64 from the float32 draw as
 * state_dict() does. The script also draws an fc bias and then replaces it with the measured
 * one; it is the last tensor, so skipping that draw changes nothing. */
static void add_fc(builder *b, int in)
{
    const int64_t wshape[2] = {NUM_CLASSES, in}, bshape[1] = {NUM_CLASSES};
    float *w = push(b, "fc", "weight", QE_DT_F32, 2, wshape)->data;
    float *bias = push(b, "fc", "bias", QE_DT_F32, 1, bshape)->data;
    float *fc_scale = qe_malloc((size_t)in * sizeof(float));

    if (!b->failed) {
        if (b->bn_seen != b->stats.nbn || b->stats.nfeat != (uint32_t)in ||
            b->stats.ncls != NUM_CLASSES)
            fail(b, "counts do not match the architecture");
        else if (stats_f32(&b->stats, (size_t)in, fc_scale) < 0 ||
                 stats_f32(&b->stats, NUM_CLASSES, bias) < 0)
            fail(b, "truncated");
        else if (b->stats.p != b->stats.end)
            fail(b, "trailing bytes");
    }
    if (!b->failed) {
        double scale = tailed_scale(sqrt(1.0 / (double)in));
        for (int i = 0; i < NUM_CLASSES; i++)
            for (int j = 0; j < in; j++) {
                float raw = tailed(next_u01(&b->rng), scale);
                w[(size_t)i * in + j] = (float)((double)raw * (double)fc_scale[j]);
            }
    }
    free(fc_scale);
}

/* torchvision's ResNet in state-dict order (the script's layout()). */
static void build_resnet(builder *b, const arch_desc *a)
{
    const int exp = a->expansion;
    char prefix[32];

    add_conv(b, "conv1", 64, 3, 7);
    add_bn(b, "bn1", 64, 0);
    int inplanes = 64;
    for (int li = 0; li < 4; li++) {
        int planes = 64 << li;
        for (int blk = 0; blk < a->layers[li]; blk++) {
            int stride = (li > 0 && blk == 0) ? 2 : 1;
            snprintf(prefix, sizeof prefix, "layer%d.%d.", li + 1, blk);
            b->prefix = prefix;
            if (exp == 1) {
                add_conv(b, "conv1", planes, inplanes, 3);
                add_bn(b, "bn1", planes, 0);
                add_conv(b, "conv2", planes, planes, 3);
                add_bn(b, "bn2", planes, 1);
            } else {
                /* v1.5: the stride sits on the 3x3 conv, which does not change the layout. */
                add_conv(b, "conv1", planes, inplanes, 1);
                add_bn(b, "bn1", planes, 0);
                add_conv(b, "conv2", planes, planes, 3);
                add_bn(b, "bn2", planes, 0);
                add_conv(b, "conv3", planes * exp, planes, 1);
                add_bn(b, "bn3", planes * exp, 1);
            }
            if (blk == 0 && (stride != 1 || inplanes != planes * exp)) {
                add_conv(b, "downsample.0", planes * exp, inplanes, 1);
                add_bn(b, "downsample.1", planes * exp, 0);
            }
            inplanes = planes * exp;
        }
    }
    b->prefix = "";
    add_fc(b, 512 * exp);
}

int qe_synth_statedict(const char *arch, qe_statedict *sd, char *err)
{
    memset(sd, 0, sizeof *sd);
    const arch_desc *a = NULL;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (arch && strcmp(arch, archs[i].name) == 0)
            a = &archs[i];
    if (!a)
        return qe_err(err, "synth: unknown arch '%s' (expected resnet18 or resnet50)",
                      arch ? arch : "(null)");

    builder b = {.sd = sd, .prefix = "", .err = err};
    qe_pcg64_set_state(&b.rng, a->state[0], a->state[1], a->inc[0], a->inc[1]);
    if (stats_open(&b.stats, a->stats, *a->stats_len) < 0)
        fail(&b, "header");
    build_resnet(&b, a);
    if (b.failed) {
        qe_statedict_free(sd);
        memset(sd, 0, sizeof *sd);
        return -1;
    }
    snprintf(sd->format, sizeof sd->format, "synthetic");
    return 0;
}

int qe_synth_write(const char *arch, const char *path, char *err)
{
    qe_statedict sd;
    if (qe_synth_statedict(arch, &sd, err) < 0)
        return -1;
    int rc = qe_statedict_save_torch(&sd, path, err);
    qe_statedict_free(&sd);
    return rc;
}
