/*
 * cle.c - Cross-Layer Equalization (spec optimization.md §4), bit-exact with
 * shared/reference/cle.py. Every expression below keeps the float32/float64 types and the
 * operation order of the spec (the build uses -ffp-contract=off, so nothing is fused or
 * reassociated): one changed rounding changes the param encodings and the logits (§4.5).
 */
#include "cle.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qe_util.h"

/* §4.2.1: the pairs in processing order: per block (conv1, conv2), and for a Bottleneck also
 * (conv2, conv3). Stem, downsample and the block's last conv are never scaled. */
static int cle_pairs(const qe_resnet_desc *d, int *l1, int *l2)
{
    int n = 0;
    for (int b = 0; b < d->nblocks; b++) {
        const qe_block_desc *blk = &d->blocks[b];
        for (int j = 0; j + 1 < blk->nconv; j++) {
            l1[n] = blk->conv[j];
            l2[n] = blk->conv[j + 1];
            n++;
        }
    }
    return n;
}

/* §4.2.2: scales one pair in place. w1 [n][per1], b1 [n], w2 [o2][n][k2] (k2 = kh*kw of L2);
 * writes the float32 factors s [n]. */
static void cle_scale_pair(int n, size_t per1, float *w1, float *b1, int o2, size_t k2, float *w2,
                           float *s)
{
    for (int c = 0; c < n; c++) {
        /* r1, r2: exact maxima of |W| (computeRangeAlongFirstAxis; L2 transposed first) */
        float r1 = 0.0f, r2 = 0.0f;
        const float *row = w1 + (size_t)c * per1;
        for (size_t i = 0; i < per1; i++) {
            float a = fabsf(row[i]);
            r1 = a > r1 ? a : r1;
        }
        for (int o = 0; o < o2; o++) {
            const float *blk = w2 + ((size_t)o * n + c) * k2;
            for (size_t i = 0; i < k2; i++) {
                float a = fabsf(blk[i]);
                r2 = a > r2 ? a : r2;
            }
        }
        float p = r1 * r2;
        float sq = sqrtf(p);
        /* s = sqrt(r1/r2) computed as r1 * (1/sqrt(r1*r2)), exactly as AIMET does */
        float sc = (sq != 0.0f) ? r1 * (1.0f / sq) : 1.0f;
        float inv = 1.0f / sc;
        float *w = w1 + (size_t)c * per1;
        for (size_t i = 0; i < per1; i++)
            w[i] = w[i] * inv;
        b1[c] = b1[c] * inv;
        for (int o = 0; o < o2; o++) {
            float *blk = w2 + ((size_t)o * n + c) * k2;
            for (size_t i = 0; i < k2; i++)
                blk[i] = blk[i] * sc;
        }
        s[c] = sc;
    }
}

/* §4.3: high-bias fold of one pair (ReLU between L1 and L2: true for every ResNet pair).
 * gamma/beta are the ORIGINAL BN parameters of L1 (§4.1), s the pair's factors. w2 is L2's final
 * weight [o2][n][kh][kw]. Writes the absorbed amounts a [n]; returns how many are non-zero. */
static int cle_high_bias_fold(int n, float *b1, int o2, int kh, int kw, const float *w2, float *b2,
                              const float *gamma, const float *beta, const float *s, float *a)
{
    int absorbed = 0;
    for (int c = 0; c < n; c++) {
        /* float64 divide rounded once to float32 (numpy divide, then the binding's cast) */
        float gs = (float)((double)gamma[c] / (double)s[c]);
        float bs = (float)((double)beta[c] / (double)s[c]);
        float g3 = 3.0f * fabsf(gs);
        float t = bs - g3;
        a[c] = t > 0.0f ? t : 0.0f;
        b1[c] = b1[c] - a[c];
        absorbed += a[c] != 0.0f;
    }
    size_t k2 = (size_t)kh * kw;
    for (int o = 0; o < o2; o++) {
        double corr = 0.0;
        for (int c = 0; c < n; c++) {
            /* R[o][c]: float32 running sum, y outer, x inner (sumAlongThirdAndFourthAxis) */
            const float *blk = w2 + ((size_t)o * n + c) * k2;
            float r = 0.0f;
            for (size_t i = 0; i < k2; i++)
                r = r + blk[i];
            /* OpenCV gemm: float32 products accumulated in float64, rounded once (§4.3) */
            corr += (double)r * (double)a[c];
        }
        b2[o] = b2[o] + (float)corr;
    }
    return absorbed;
}

/* A 1-d BN tensor of length n as float32 (resnet.c has already checked its shape). */
static float *cle_bn_param(const qe_statedict *sd, const char *bn, const char *what, int n,
                           char *err)
{
    char key[64];
    snprintf(key, sizeof key, "%s.%s", bn, what);
    const qe_tensor *t = qe_statedict_find(sd, key);
    if (!t || t->numel != n) {
        qe_err(err, "checkpoint lacks '%s'", key);
        return NULL;
    }
    float *v = qe_malloc((size_t)n * sizeof(float));
    qe_tensor_to_f32(t, v);
    return v;
}

void qe_cle_info_free(qe_cle_info *info)
{
    if (!info)
        return;
    for (int i = 0; i < QE_CLE_MAX_PAIRS; i++) {
        free(info->scales[i]);
        free(info->absorbed[i]);
    }
    memset(info, 0, sizeof *info);
}

int qe_cle_equalize(qe_arch arch, const qe_statedict *sd, qe_resnet_params *p, qe_cle_info *info,
                    char *err)
{
    qe_cle_info local;
    qe_cle_info *inf = info ? info : &local;
    memset(inf, 0, sizeof *inf);
    /* §4.1: the BN fold is resnet.c's (quantsim.md §3.1), shared with every other engine path */
    if (qe_resnet_params_load(arch, sd, p, err))
        return -1;
    const qe_resnet_desc *d = p->desc;
    if (p->prefolded) {
        qe_resnet_params_free(p);
        return qe_err(err, "checkpoint is already BN-free (an optimized state dict): CLE needs the "
                           "torchvision checkpoint with its BatchNorm parameters");
    }
    inf->npairs = cle_pairs(d, inf->l1, inf->l2);
    /* §4.2: scale all pairs, in order, in place */
    for (int i = 0; i < inf->npairs; i++) {
        const qe_conv_desc *c1 = &d->convs[inf->l1[i]], *c2 = &d->convs[inf->l2[i]];
        int n = c1->cout;
        inf->n[i] = n;
        inf->scales[i] = qe_malloc((size_t)n * sizeof(float));
        inf->absorbed[i] = qe_calloc((size_t)n, sizeof(float));
        cle_scale_pair(n, (size_t)c1->cin * c1->k * c1->k, p->w[inf->l1[i]], p->b[inf->l1[i]],
                       c2->cout, (size_t)c2->k * c2->k, p->w[inf->l2[i]], inf->scales[i]);
    }
    /* §4.3: then high-bias fold all pairs, in the same order, with the pre-fold BN gamma/beta */
    int rc = 0;
    for (int i = 0; i < inf->npairs && rc == 0; i++) {
        const qe_conv_desc *c1 = &d->convs[inf->l1[i]], *c2 = &d->convs[inf->l2[i]];
        float *gamma = cle_bn_param(sd, c1->bn, "weight", c1->cout, err);
        float *beta = gamma ? cle_bn_param(sd, c1->bn, "bias", c1->cout, err) : NULL;
        if (!gamma || !beta)
            rc = -1;
        else
            inf->absorbed_channels += cle_high_bias_fold(
                c1->cout, p->b[inf->l1[i]], c2->cout, c2->k, c2->k, p->w[inf->l2[i]],
                p->b[inf->l2[i]], gamma, beta, inf->scales[i], inf->absorbed[i]);
        free(gamma);
        free(beta);
    }
    if (rc) {
        qe_resnet_params_free(p);
        qe_cle_info_free(inf);
        return -1;
    }
    p->prefolded = 1;   /* now the zoo's BN-free layout */
    if (!info)
        qe_cle_info_free(&local);
    return 0;
}

static void cle_add(qe_statedict *sd, const char *name, int ndim, const int64_t *shape,
                    const float *data)
{
    qe_tensor *t = qe_statedict_push(sd, name);
    t->dtype = QE_DT_F32;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->numel *= shape[i];
    }
    size_t bytes = (size_t)t->numel * sizeof(float);
    t->data = qe_malloc_aligned(bytes ? bytes : 1);
    memcpy(t->data, data, bytes);
}

void qe_cle_to_statedict(const qe_resnet_params *p, qe_statedict *out)
{
    const qe_resnet_desc *d = p->desc;
    memset(out, 0, sizeof *out);
    snprintf(out->format, sizeof out->format, "cle");
    char key[64];
    /* reference/cle.py's order: convs in forward order (weight, bias), then fc */
    for (int i = 0; i < d->nconvs; i++) {
        const qe_conv_desc *c = &d->convs[i];
        int64_t ws[4] = {c->cout, c->cin, c->k, c->k}, bs[1] = {c->cout};
        snprintf(key, sizeof key, "%s.weight", c->name);
        cle_add(out, key, 4, ws, p->w[i]);
        snprintf(key, sizeof key, "%s.bias", c->name);
        cle_add(out, key, 1, bs, p->b[i]);
    }
    int64_t fws[2] = {1000, d->fc_in}, fbs[1] = {1000};
    cle_add(out, "fc.weight", 2, fws, p->fc_w);
    cle_add(out, "fc.bias", 1, fbs, p->fc_b);
}
