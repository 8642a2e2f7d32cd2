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
    float *buf[4];                    /* activations of cap_n images: buf[0] the largest, see reserve */
    float *chunk[4];                  /* first-stage activations of QE_STAGE1_CHUNK images */
    int cap_n;
    size_t later_max;                 /* largest activation per image after the first stage */
};

/* Largest activation of one image: 112x112x64 (stem) = 56x56x256 (ResNet50 layer1). */
#define QE_ACT_MAX (112 * 112 * 64)
/* The first stage (stem, then the blocks at 56x56) holds the largest activations, 3.2 MB per
 * image in ResNet50: at batch 16 each of its layers would stream input, residual and output
 * through DRAM. It runs this many images at a time, which stay in the last-level cache; the
 * later stages, 2-8x smaller, run at full batch where their GEMMs get enough rows. */
#define QE_STAGE1_CHUNK 2
/* Side of the stem's output: 224 -> 112 (7x7 stride 2) -> 56 (max-pool). */
#define QE_STEM_OUT 56

/* Largest activation, in floats per image, of blocks [b0, nblocks) entered at side h. */
static size_t blocks_act_max(const qe_resnet_desc *d, int b0, int h)
{
    size_t m = 0;
    for (int b = b0; b < d->nblocks; b++) {
        const qe_block_desc *blk = &d->blocks[b];
        for (int i = 0; i < blk->nconv; i++) {
            const qe_conv_desc *cd = &d->convs[blk->conv[i]];
            h = qe_conv_out_size(h, cd->k, cd->stride, cd->pad);
            size_t e = (size_t)h * h * cd->cout;
            m = e > m ? e : m;
        }
    }
    return m;
}

qe_f32net *qe_f32net_create(const qe_resnet_params *p)
{
    qe_f32net *net = qe_calloc(1, sizeof *net);
    net->desc = p->desc;
    for (int i = 0; i < p->desc->nconvs; i++) {
        const qe_conv_desc *c = &p->desc->convs[i];
        qe_conv_f32_init(&net->conv[i], c->cin, c->cout, c->k, c->k, c->stride, c->pad, p->w[i], p->b[i]);
    }
    qe_conv_f32_init(&net->fc, p->desc->fc_in, 1000, 1, 1, 1, 0, p->fc_w, p->fc_b);
    net->later_max = blocks_act_max(p->desc, p->desc->stage1_blocks, QE_STEM_OUT);
    return net;
}

void qe_f32net_free(qe_f32net *net)
{
    if (!net)
        return;
    for (int i = 0; i < net->desc->nconvs; i++)
        qe_conv_f32_free(&net->conv[i]);
    qe_conv_f32_free(&net->fc);
    qe_f32net_trim(net);
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
    size_t acts = (size_t)net->cap_n * (QE_ACT_MAX + 3 * net->later_max);
    if (net->cap_n)
        acts += 4 * (size_t)QE_STAGE1_CHUNK * QE_ACT_MAX;
    return b + acts * sizeof(float);
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

/* Runs the stem on images [0, n) of x (CHW) into out (NHWC after the max-pool); t0, t1 are
 * scratch. Returns the output side. */
static int run_stem(qe_f32net *net, const float *x, int n, float *t0, float *t1, float *out)
{
    qe_f32_chw_to_nhwc(x, n, t0);
    qe_conv_f32_forward(&net->conv[0], t0, n, QE_CROP, QE_CROP, t1, NULL, 1);
    int h = qe_conv_out_size(QE_CROP, 7, 2, 3);
    qe_f32_maxpool_3x3s2(t1, n, h, h, 64, out);
    return (h + 2 - 3) / 2 + 1;
}

/* Runs blocks [b0, b1) on n images. buf[0] holds the input; buf[1..3] are scratch, each big
 * enough for any tensor of these blocks. On return buf[0] holds the output (the four pointers
 * are rotated, not the data). *h and *c follow the spatial side and channels. */
static void run_blocks(qe_f32net *net, int b0, int b1, int n, float *buf[4], int *h, int *c)
{
    const qe_resnet_desc *d = net->desc;
    float *cur = buf[0], *t1 = buf[1], *t2 = buf[2], *t3 = buf[3];
    for (int b = b0; b < b1; b++) {
        const qe_block_desc *blk = &d->blocks[b];
        float *identity = cur;
        float *bufs[2] = {t1, t2};
        const float *in = cur;
        int ih = *h;
        /* Every conv but the last is followed by ReLU; the last adds the identity first. */
        for (int i = 0; i < blk->nconv - 1; i++) {
            const qe_conv_desc *cd = &d->convs[blk->conv[i]];
            qe_conv_f32_forward(&net->conv[blk->conv[i]], in, n, ih, ih, bufs[i], NULL, 1);
            ih = qe_conv_out_size(ih, cd->k, cd->stride, cd->pad);
            in = bufs[i];
        }
        if (blk->downsample >= 0) {
            qe_conv_f32_forward(&net->conv[blk->downsample], cur, n, *h, *h, t3, NULL, 0);
            identity = t3;
        }
        /* The last conv adds the identity in place (conv.h): the block's output lands in the
         * identity's buffer, whose contents are not needed afterwards. */
        const qe_conv_desc *last = &d->convs[blk->conv[blk->nconv - 1]];
        qe_conv_f32_forward(&net->conv[blk->conv[blk->nconv - 1]], in, n, ih, ih, identity, identity, 1);
        *h = qe_conv_out_size(ih, last->k, last->stride, last->pad);
        *c = last->cout;
        if (identity == t3) {
            t3 = cur;
            cur = identity;
        }
    }
    buf[0] = cur, buf[1] = t1, buf[2] = t2, buf[3] = t3;
}

static void reserve(qe_f32net *net, int n)
{
    if (n <= net->cap_n)
        return;
    qe_f32net_trim(net);
    /* One full-size buffer receives the first stage's output; the later stages need less. */
    size_t first = (size_t)n * QE_ACT_MAX, later = (size_t)n * net->later_max;
    for (int i = 0; i < 4; i++)
        net->buf[i] = qe_malloc_aligned((i == 0 ? first : later) * sizeof(float));
    for (int i = 0; i < 4; i++)
        net->chunk[i] = qe_malloc_aligned((size_t)QE_STAGE1_CHUNK * QE_ACT_MAX * sizeof(float));
    net->cap_n = n;
}

void qe_f32net_forward(qe_f32net *net, const float *x, int n, float *logits)
{
    const qe_resnet_desc *d = net->desc;
    const int b1 = d->stage1_blocks;
    reserve(net, n);

    /* First stage, a few images at a time (see QE_STAGE1_CHUNK), gathered in buf[0]. */
    int h = 0, c = 64;
    for (int i0 = 0; i0 < n; i0 += QE_STAGE1_CHUNK) {
        const int m = n - i0 < QE_STAGE1_CHUNK ? n - i0 : QE_STAGE1_CHUNK;
        float *cb[4] = {net->chunk[0], net->chunk[1], net->chunk[2], net->chunk[3]};
        h = run_stem(net, x + (size_t)i0 * QE_TENSOR_FLOATS, m, cb[3], cb[1], cb[0]);
        c = 64;
        run_blocks(net, 0, b1, m, cb, &h, &c);
        const size_t per = (size_t)h * h * c;
        memcpy(net->buf[0] + (size_t)i0 * per, cb[0], (size_t)m * per * sizeof(float));
    }

    float *bufs[4] = {net->buf[0], net->buf[1], net->buf[2], net->buf[3]};
    run_blocks(net, b1, d->nblocks, n, bufs, &h, &c);
    /* avgpool + fc: the pooled features are a 1x1 image per sample. */
    qe_f32_avgpool(bufs[0], n, h * h, c, bufs[1]);
    qe_conv_f32_forward(&net->fc, bufs[1], n, 1, 1, logits, NULL, 0);
}

void qe_f32net_trim(qe_f32net *net)
{
    for (int i = 0; i < 4; i++) {
        qe_free_aligned(net->buf[i]);
        qe_free_aligned(net->chunk[i]);
        net->buf[i] = net->chunk[i] = NULL;
    }
    net->cap_n = 0;
}
