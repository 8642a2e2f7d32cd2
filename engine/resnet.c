#include "resnet.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bn_fold.h"
#include "qe_util.h"

static qe_resnet_desc g_desc18, g_desc50;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static int add_conv(qe_resnet_desc *d, const char *name, const char *bn, int cin, int cout, int k, int stride)
{
    qe_conv_desc *c = &d->convs[d->nconvs];
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->bn, sizeof c->bn, "%s", bn);
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    c->stride = stride;
    c->pad = k / 2;
    return d->nconvs++;
}

/* torchvision resnet.py: _make_layer with BasicBlock (expansion 1) or Bottleneck (expansion 4). */
static void build(qe_resnet_desc *d, qe_arch arch)
{
    static const int blocks18[4] = {2, 2, 2, 2}, blocks50[4] = {3, 4, 6, 3};
    const int *nb = arch == QE_ARCH_RESNET18 ? blocks18 : blocks50;
    int bottleneck = arch == QE_ARCH_RESNET50, expansion = bottleneck ? 4 : 1;
    memset(d, 0, sizeof *d);
    d->arch = arch;
    d->name = bottleneck ? "resnet50" : "resnet18";
    add_conv(d, "conv1", "bn1", 3, 64, 7, 2);
    int inplanes = 64;
    for (int l = 0; l < 4; l++) {
        int planes = 64 << l;
        for (int b = 0; b < nb[l]; b++) {
            qe_block_desc *blk = &d->blocks[d->nblocks++];
            snprintf(blk->name, sizeof blk->name, "layer%d.%d", l + 1, b);
            int stride = (b == 0 && l > 0) ? 2 : 1;
            char n[32], bn[32];
            int width = planes;
            blk->nconv = bottleneck ? 3 : 2;
            for (int i = 0; i < blk->nconv; i++) {
                int cin, cout, k, s;
                if (!bottleneck) {
                    cin = i == 0 ? inplanes : planes;
                    cout = planes;
                    k = 3;
                    s = i == 0 ? stride : 1;
                } else {
                    cin = i == 0 ? inplanes : width;
                    cout = i == 2 ? planes * expansion : width;
                    k = i == 1 ? 3 : 1;
                    s = i == 1 ? stride : 1;
                }
                snprintf(n, sizeof n, "%s.conv%d", blk->name, i + 1);
                snprintf(bn, sizeof bn, "%s.bn%d", blk->name, i + 1);
                blk->conv[i] = add_conv(d, n, bn, cin, cout, k, s);
            }
            blk->downsample = -1;
            if (b == 0 && (stride != 1 || inplanes != planes * expansion)) {
                snprintf(n, sizeof n, "%s.downsample.0", blk->name);
                snprintf(bn, sizeof bn, "%s.downsample.1", blk->name);
                blk->downsample = add_conv(d, n, bn, inplanes, planes * expansion, 1, stride);
                d->convs[blk->downsample].pad = 0;
            }
            inplanes = planes * expansion;
        }
    }
    d->fc_in = inplanes;
    /* MAC count: walk the spatial sizes as the forward pass does. */
    double macs = 0;
    int hw = 112;
    macs += (double)hw * hw * 64 * 3 * 49;
    hw = 56;
    for (int bi = 0; bi < d->nblocks; bi++) {
        const qe_block_desc *blk = &d->blocks[bi];
        int in_hw = hw;
        for (int i = 0; i < blk->nconv; i++) {
            const qe_conv_desc *c = &d->convs[blk->conv[i]];
            hw = (hw + 2 * c->pad - c->k) / c->stride + 1;
            macs += (double)hw * hw * c->cout * c->cin * c->k * c->k;
        }
        if (blk->downsample >= 0) {
            const qe_conv_desc *c = &d->convs[blk->downsample];
            int o = (in_hw - 1) / c->stride + 1;
            macs += (double)o * o * c->cout * c->cin;
        }
    }
    macs += (double)d->fc_in * 1000;
    d->gmacs = macs * 1e-9;
    for (d->stage1_blocks = 0; d->stage1_blocks < d->nblocks; d->stage1_blocks++) {
        const qe_block_desc *blk = &d->blocks[d->stage1_blocks];
        int strided = 0;
        for (int i = 0; i < blk->nconv; i++)
            strided |= d->convs[blk->conv[i]].stride > 1;
        if (strided)
            break;
    }
}

static void build_all(void)
{
    build(&g_desc18, QE_ARCH_RESNET18);
    build(&g_desc50, QE_ARCH_RESNET50);
}

const qe_resnet_desc *qe_resnet_desc_get(qe_arch arch)
{
    pthread_once(&g_once, build_all);
    return arch == QE_ARCH_RESNET18 ? &g_desc18 : &g_desc50;
}

int qe_resnet_arch_parse(const char *name, qe_arch *arch)
{
    if (strcmp(name, "resnet18") == 0)
        *arch = QE_ARCH_RESNET18;
    else if (strcmp(name, "resnet50") == 0)
        *arch = QE_ARCH_RESNET50;
    else
        return -1;
    return 0;
}

int qe_resnet_arch_detect(const qe_statedict *sd, qe_arch *arch)
{
    if (qe_statedict_find(sd, "layer1.0.conv3.weight"))
        *arch = QE_ARCH_RESNET50;
    else if (qe_statedict_find(sd, "layer1.0.conv2.weight"))
        *arch = QE_ARCH_RESNET18;
    else
        return -1;
    return 0;
}

/* ---- key checking: one pass marks every expected key, then reports what is left. ---- */

typedef struct {
    const qe_statedict *sd;
    char *used;            /* per tensor of sd */
    char msg[QE_ERR_LEN];
    int missing, mismatched;
} keycheck;

static void note(keycheck *kc, const char *fmt, const char *a, const char *b)
{
    size_t n = strlen(kc->msg);
    if (n < sizeof kc->msg - 64)
        snprintf(kc->msg + n, sizeof kc->msg - n, fmt, a, b);
}

static void shape_str(const int64_t *s, int nd, char *buf, size_t len)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < nd && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ",%lld" : "%lld", (long long)s[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

/* Finds `name` with the expected shape; records a missing key or a mismatch otherwise. */
static const qe_tensor *expect(keycheck *kc, const char *name, int nd, const int64_t *shape)
{
    const qe_tensor *t = qe_statedict_find(kc->sd, name);
    if (!t) {
        kc->missing++;
        note(kc, " missing '%s'%s;", name, "");
        return NULL;
    }
    kc->used[t - kc->sd->tensors] = 1;
    int ok = t->ndim == nd;
    for (int i = 0; ok && i < nd; i++)
        ok = t->shape[i] == shape[i];
    if (!ok) {
        char want[64], got[64], both[140];
        shape_str(shape, nd, want, sizeof want);
        shape_str(t->shape, t->ndim, got, sizeof got);
        snprintf(both, sizeof both, "checkpoint %s, model %s", got, want);
        kc->mismatched++;
        note(kc, " shape mismatch for '%s': %s;", name, both);
        return NULL;
    }
    return t;
}

static float *to_f32(const qe_tensor *t)
{
    float *d = qe_malloc((size_t)t->numel * sizeof(float));
    qe_tensor_to_f32(t, d);
    return d;
}

int qe_resnet_params_load(qe_arch arch, const qe_statedict *sd, qe_resnet_params *p, char *err)
{
    const qe_resnet_desc *d = qe_resnet_desc_get(arch);
    memset(p, 0, sizeof *p);
    p->desc = d;
    keycheck kc = {.sd = sd, .used = qe_calloc((size_t)sd->count + 1, 1)};
    char key[64];
    /* The zoo's optimized state dicts carry conv biases instead of BatchNorms. */
    snprintf(key, sizeof key, "%s.bias", d->convs[0].name);
    p->prefolded = qe_statedict_find(sd, key) != NULL && !qe_statedict_find(sd, "bn1.weight");

    for (int i = 0; i < d->nconvs; i++) {
        const qe_conv_desc *c = &d->convs[i];
        int64_t wshape[4] = {c->cout, c->cin, c->k, c->k}, vshape[1] = {c->cout};
        snprintf(key, sizeof key, "%s.weight", c->name);
        const qe_tensor *w = expect(&kc, key, 4, wshape);
        if (p->prefolded) {
            snprintf(key, sizeof key, "%s.bias", c->name);
            const qe_tensor *b = expect(&kc, key, 1, vshape);
            if (w && b) {
                p->w[i] = to_f32(w);
                p->b[i] = to_f32(b);
            }
            continue;
        }
        static const char *bn_keys[4] = {"weight", "bias", "running_mean", "running_var"};
        const qe_tensor *bn[4];
        for (int j = 0; j < 4; j++) {
            snprintf(key, sizeof key, "%s.%s", c->bn, bn_keys[j]);
            bn[j] = expect(&kc, key, 1, vshape);
        }
        snprintf(key, sizeof key, "%s.num_batches_tracked", c->bn);
        const qe_tensor *nbt = qe_statedict_find(sd, key);   /* optional, ignored */
        if (nbt)
            kc.used[nbt - sd->tensors] = 1;
        if (!w || !bn[0] || !bn[1] || !bn[2] || !bn[3])
            continue;
        p->w[i] = to_f32(w);
        p->b[i] = qe_malloc((size_t)c->cout * sizeof(float));
        float *v[4];
        for (int j = 0; j < 4; j++)
            v[j] = to_f32(bn[j]);
        /* torchvision convs have no bias (NULL: zeros). */
        qe_bn_fold(c->cout, (size_t)c->cin * c->k * c->k, p->w[i], NULL, v[0], v[1], v[2], v[3], 1e-5f, p->w[i], p->b[i]);
        for (int j = 0; j < 4; j++)
            free(v[j]);
    }
    int64_t fcw[2] = {1000, d->fc_in}, fcb[1] = {1000};
    const qe_tensor *fw = expect(&kc, "fc.weight", 2, fcw), *fb = expect(&kc, "fc.bias", 1, fcb);
    if (fw && fb) {
        p->fc_w = to_f32(fw);
        p->fc_b = to_f32(fb);
    }
    int unexpected = 0;
    for (int i = 0; i < sd->count; i++)
        if (!kc.used[i]) {
            unexpected++;
            note(&kc, " unexpected '%s'%s;", sd->tensors[i].name, "");
        }
    free(kc.used);
    if (kc.missing || kc.mismatched || unexpected) {
        qe_resnet_params_free(p);
        return qe_err(err, "checkpoint does not match %s (%d missing, %d unexpected, %d shape mismatches):%s",
                      d->name, kc.missing, unexpected, kc.mismatched, kc.msg);
    }
    return 0;
}

void qe_resnet_params_free(qe_resnet_params *p)
{
    for (int i = 0; i < QE_MAX_CONVS; i++) {
        free(p->w[i]);
        free(p->b[i]);
    }
    free(p->fc_w);
    free(p->fc_b);
    memset(p, 0, sizeof *p);
}
