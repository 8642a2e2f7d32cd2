#include "f32net.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "image.h"
#include "qe_util.h"

struct qe_f32net {
    const qe_resnet_desc *desc;
    qe_conv_f32 conv[QE_MAX_CONVS];
    qe_conv_f32 fc;                   /* a 1x1 convolution over a 1x1 image */
    float *buf[4];                    /* activation ping-pong, each cap_n images of the largest tensor */
    int cap_n;
};

/* Largest activation of one image: 112x112x64 (stem) = 56x56x256 (ResNet50 layer1). */
#define QE_ACT_MAX (112 * 112 * 64)

qe_f32net *qe_f32net_create(const qe_resnet_params *p)
{
    qe_f32net *net = qe_calloc(1, sizeof *net);
    net->desc = p->desc;
    for (int i = 0; i < p->desc->nconvs; i++) {
        const qe_conv_desc *c = &p->desc->convs[i];
        qe_conv_f32_init(&net->conv[i], c->cin, c->cout, c->k, c->k, c->stride, c->pad, p->w[i], p->b[i]);
    }
    qe_conv_f32_init(&net->fc, p->desc->fc_in, 1000, 1, 1, 1, 0, p->fc_w, p->fc_b);
    return net;
}

void qe_f32net_free(qe_f32net *net)
{
    if (!net)
        return;
    for (int i = 0; i < net->desc->nconvs; i++)
        qe_conv_f32_free(&net->conv[i]);
    qe_conv_f32_free(&net->fc);
    for (int i = 0; i < 4; i++)
        qe_free_aligned(net->buf[i]);
    free(net);
}

size_t qe_f32net_bytes(const qe_f32net *net)
{
    size_t b = 0;
    for (int i = 0; i < net->desc->nconvs; i++) {
        const qe_conv_desc *c = &net->desc->convs[i];
        b += (size_t)c->cout * (c->cin * c->k * c->k + 1) * sizeof(float);
    }
    b += (size_t)1000 * (net->desc->fc_in + 1) * sizeof(float);
    return b + 4 * (size_t)net->cap_n * QE_ACT_MAX * sizeof(float);
}

void qe_f32_chw_to_nhwc(const float *x, int n, float *out)
{
    const int hw = QE_CROP * QE_CROP;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        for (int p = 0; p < hw; p++)
            for (int c = 0; c < 3; c++)
                out[((size_t)i * hw + p) * 3 + c] = x[((size_t)i * 3 + c) * hw + p];
}

/* 3x3 stride 2 pad 1 over the valid window elements (padding never wins). */
void qe_f32_maxpool_3x3s2(const float *in, int n, int h, int w, int c, float *out)
{
    int oh = (h + 2 - 3) / 2 + 1, ow = (w + 2 - 3) / 2 + 1;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                float *o = out + (((size_t)i * oh + y) * ow + x) * c;
                for (int k = 0; k < c; k++)
                    o[k] = -FLT_MAX;
                for (int dy = -1; dy <= 1; dy++) {
                    int sy = 2 * y + dy;
                    if (sy < 0 || sy >= h)
                        continue;
                    for (int dx = -1; dx <= 1; dx++) {
                        int sx = 2 * x + dx;
                        if (sx < 0 || sx >= w)
                            continue;
                        const float *s = in + (((size_t)i * h + sy) * w + sx) * c;
                        for (int k = 0; k < c; k++)
                            o[k] = s[k] > o[k] ? s[k] : o[k];
                    }
                }
            }
}

void qe_f32_avgpool(const float *in, int n, int hw, int c, float *out)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++) {
            double s = 0;
            for (int p = 0; p < hw; p++)
                s += in[((size_t)i * hw + p) * c + k];
            out[(size_t)i * c + k] = (float)(s / hw);
        }
}

static void reserve(qe_f32net *net, int n)
{
    if (n <= net->cap_n)
        return;
    for (int i = 0; i < 4; i++) {
        qe_free_aligned(net->buf[i]);
        net->buf[i] = qe_malloc_aligned((size_t)n * QE_ACT_MAX * sizeof(float));
    }
    net->cap_n = n;
}

void qe_f32net_forward(qe_f32net *net, const float *x, int n, float *logits)
{
    const qe_resnet_desc *d = net->desc;
    reserve(net, n);
    float *cur = net->buf[0], *t1 = net->buf[1], *t2 = net->buf[2], *t3 = net->buf[3];

    /* Stem: the NHWC input (n x 224x224x3) fits in t3, whose capacity is 112*112*64 floats per image. */
    qe_f32_chw_to_nhwc(x, n, t3);
    qe_conv_f32_forward(&net->conv[0], t3, n, QE_CROP, QE_CROP, t1, NULL, 1);
    int h = qe_conv_out_size(QE_CROP, 7, 2, 3), c = 64;
    qe_f32_maxpool_3x3s2(t1, n, h, h, c, cur);
    h = (h + 2 - 3) / 2 + 1;

    for (int b = 0; b < d->nblocks; b++) {
        const qe_block_desc *blk = &d->blocks[b];
        const float *identity = cur;
        float *bufs[2] = {t1, t2};
        const float *in = cur;
        int ih = h;
        /* Every conv but the last is followed by ReLU; the last adds the identity first. */
        for (int i = 0; i < blk->nconv - 1; i++) {
            const qe_conv_desc *cd = &d->convs[blk->conv[i]];
            qe_conv_f32_forward(&net->conv[blk->conv[i]], in, n, ih, ih, bufs[i], NULL, 1);
            ih = qe_conv_out_size(ih, cd->k, cd->stride, cd->pad);
            in = bufs[i];
        }
        if (blk->downsample >= 0) {
            qe_conv_f32_forward(&net->conv[blk->downsample], cur, n, h, h, t3, NULL, 0);
            identity = t3;
        }
        const qe_conv_desc *last = &d->convs[blk->conv[blk->nconv - 1]];
        /* The block output must not alias its input or residual: write it where the first
         * intermediate was (no longer needed), then rotate the buffers. */
        float *out = blk->nconv == 3 ? t1 : t2;
        if (out == in)
            out = t1;
        qe_conv_f32_forward(&net->conv[blk->conv[blk->nconv - 1]], in, n, ih, ih, out, identity, 1);
        h = qe_conv_out_size(ih, last->k, last->stride, last->pad);
        c = last->cout;
        if (out == t1) {
            t1 = cur;
        } else {
            t2 = cur;
        }
        cur = out;
    }
    /* avgpool + fc: the pooled features are a 1x1 image per sample. */
    qe_f32_avgpool(cur, n, h * h, c, t1);
    qe_conv_f32_forward(&net->fc, t1, n, 1, 1, logits, NULL, 0);
}

void qe_f32net_trim(qe_f32net *net)
{
    for (int i = 0; i < 4; i++) {
        qe_free_aligned(net->buf[i]);
        net->buf[i] = NULL;
    }
    net->cap_n = 0;
}
