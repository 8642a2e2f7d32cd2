#include "qsim.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "encoding.h"
#include "f32net.h"
#include "image.h"
#include "qconv.h"
#include "qops.h"
#include "qe_util.h"

#define QE_MAX_ACTQ 64
#define QE_ACT_MAX (112 * 112 * 64)   /* largest activation of one image (both archs) */
#define QE_NBUF 4

/* An activation quantizer (§3.4): module name + input/output, its analyzer and encoding. */
typedef struct actq {
    char module[40];
    qe_enckind kind;
    qe_analyzer an;
    qe_encoding enc;
    qe_qparams qp;
    int has_enc;
} actq;

struct qe_qsim {
    const qe_resnet_desc *d;
    int param_bw;
    qe_scheme scheme;
    int nlayers;                       /* convs + fc; layer nconvs is fc */
    /* Float parameters (BN folded), needed until the integer network is built. */
    float *w[QE_MAX_CONVS + 1], *b[QE_MAX_CONVS + 1];
    int cout[QE_MAX_CONVS + 1];
    size_t per[QE_MAX_CONVS + 1];      /* weights per output channel */
    float *bias[QE_MAX_CONVS + 1];     /* kept for the integer network */
    qe_encoding *penc[QE_MAX_CONVS + 1];
    int in_q[QE_MAX_CONVS + 1];        /* activation quantizer of each layer's input */

    actq aq[QE_MAX_ACTQ];
    int naq;
    int q_input, q_relu, q_maxpool, q_avgpool, q_fc;
    int q_out[QE_MAX_BLOCKS], q_ds[QE_MAX_BLOCKS], q_brelu[QE_MAX_BLOCKS];

    /* Calibration (§3.6.2). */
    qe_conv_f64acc *cal;               /* [nlayers], created on the first batch */
    float *fbuf[QE_NBUF + 1];
    int fcap, batches;

    /* Integer network (§9). */
    int built;
    qe_qconv qc[QE_MAX_CONVS + 1];
    double *scale[QE_MAX_CONVS + 1];   /* (double)delta_x * (double)delta_w[c] (§9.2) */
    double *biasd[QE_MAX_CONVS + 1];   /* (double)bias'[c] */
    uint8_t maxpool_lut[256];
    qe_qops_add_op *add[QE_MAX_BLOCKS];   /* §9.3 per block */
    uint8_t *ibuf[QE_NBUF];
    int icap;

    /* Capture of one quantizer's codes of image 0. */
    int cap_q;
    uint8_t *cap_out;
    size_t cap_size;
};

static int add_q(qe_qsim *q, const char *module, qe_enckind kind)
{
    actq *a = &q->aq[q->naq];
    snprintf(a->module, sizeof a->module, "%s", module);
    a->kind = kind;
    qe_analyzer_init(&a->an, q->scheme);
    return q->naq++;
}

/* §3.4: the activation quantizers in forward order. */
static void place_quantizers(qe_qsim *q)
{
    const qe_resnet_desc *d = q->d;
    char name[48];
    q->q_input = add_q(q, "conv1", QE_ENC_INPUT);
    q->q_relu = add_q(q, "relu", QE_ENC_OUTPUT);
    q->q_maxpool = add_q(q, "maxpool", QE_ENC_OUTPUT);
    q->in_q[0] = q->q_input;
    int block_in = q->q_maxpool;
    for (int b = 0; b < d->nblocks; b++) {
        const qe_block_desc *blk = &d->blocks[b];
        q->q_out[b] = add_q(q, d->convs[blk->conv[blk->nconv - 1]].name, QE_ENC_OUTPUT);
        q->q_ds[b] = blk->downsample >= 0 ? add_q(q, d->convs[blk->downsample].name, QE_ENC_OUTPUT) : -1;
        snprintf(name, sizeof name, "%s.relu", blk->name);
        q->q_brelu[b] = add_q(q, name, QE_ENC_OUTPUT);
        /* conv1 reads the block input; every later conv reads the shared relu's codes (§3.5). */
        q->in_q[blk->conv[0]] = block_in;
        for (int i = 1; i < blk->nconv; i++)
            q->in_q[blk->conv[i]] = q->q_brelu[b];
        if (blk->downsample >= 0)
            q->in_q[blk->downsample] = block_in;
        block_in = q->q_brelu[b];
    }
    q->q_avgpool = add_q(q, "avgpool", QE_ENC_OUTPUT);
    q->q_fc = add_q(q, "fc", QE_ENC_OUTPUT);
    q->in_q[d->nconvs] = q->q_avgpool;
}

static const char *layer_name(const qe_qsim *q, int i)
{
    return i < q->d->nconvs ? q->d->convs[i].name : "fc";
}

/* §2.3 with the scheme of the model: one fresh analyzer per output channel, symmetric. */
static void param_encodings(qe_qsim *q, int i)
{
    if (q->scheme == QE_SCHEME_TF_ENHANCED) {
        qe_encoding_params_per_channel(q->w[i], q->cout[i], q->per[i], q->param_bw, q->penc[i]);
        return;
    }
    for (int c = 0; c < q->cout[i]; c++) {
        qe_analyzer a;
        qe_analyzer_init(&a, q->scheme);
        qe_analyzer_update(&a, q->w[i] + (size_t)c * q->per[i], q->per[i]);
        qe_analyzer_compute(&a, q->param_bw, 1, &q->penc[i][c]);
        qe_analyzer_free(&a);
    }
}

qe_qsim *qe_qsim_create(const qe_resnet_params *p, int param_bw, qe_scheme scheme, char *err)
{
    if (param_bw != 8 && param_bw != 4) {
        qe_err(err, "parameter bit width %d is not supported (8 or 4)", param_bw);
        return NULL;
    }
    qe_qsim *q = qe_calloc(1, sizeof *q);
    q->d = p->desc;
    q->param_bw = param_bw;
    q->scheme = scheme;
    q->nlayers = q->d->nconvs + 1;
    q->cap_q = -1;
    for (int i = 0; i < q->nlayers; i++) {
        int fc = i == q->d->nconvs;
        const qe_conv_desc *c = fc ? NULL : &q->d->convs[i];
        q->cout[i] = fc ? 1000 : c->cout;
        q->per[i] = fc ? (size_t)q->d->fc_in : (size_t)c->cin * c->k * c->k;
        size_t nw = (size_t)q->cout[i] * q->per[i];
        q->w[i] = qe_malloc(nw * sizeof(float));
        memcpy(q->w[i], fc ? p->fc_w : p->w[i], nw * sizeof(float));
        q->bias[i] = qe_malloc((size_t)q->cout[i] * sizeof(float));
        memcpy(q->bias[i], fc ? p->fc_b : p->b[i], (size_t)q->cout[i] * sizeof(float));
        q->penc[i] = qe_calloc((size_t)q->cout[i], sizeof(qe_encoding));
    }
    place_quantizers(q);
#pragma omp parallel for schedule(dynamic)
    for (int i = 0; i < q->nlayers; i++)
        param_encodings(q, i);
    return q;
}

static void free_calibration(qe_qsim *q)
{
    if (q->cal) {
        for (int i = 0; i < q->nlayers; i++)
            qe_conv_f64acc_free(&q->cal[i]);
        free(q->cal);
        q->cal = NULL;
    }
    for (int i = 0; i <= QE_NBUF; i++) {
        qe_free_aligned(q->fbuf[i]);
        q->fbuf[i] = NULL;
    }
    q->fcap = 0;
}

void qe_qsim_free(qe_qsim *q)
{
    if (!q)
        return;
    free_calibration(q);
    for (int i = 0; i < q->nlayers; i++) {
        free(q->w[i]);
        free(q->bias[i]);
        free(q->penc[i]);
        free(q->scale[i]);
        free(q->biasd[i]);
        if (q->built)
            qe_qconv_free(&q->qc[i]);
    }
    for (int i = 0; i < q->naq; i++)
        qe_analyzer_free(&q->aq[i].an);
    for (int i = 0; i < QE_NBUF; i++)
        qe_free_aligned(q->ibuf[i]);
    for (int b = 0; b < QE_MAX_BLOCKS; b++)
        free(q->add[b]);
    free(q);
}

int qe_qsim_freeze_params(qe_qsim *q, const qe_enctable *t, char *err)
{
    if (q->built || q->batches)
        return qe_err(err, "parameter encodings must be set before calibration");
    char key[64];
    for (int i = 0; i < q->nlayers; i++) {
        snprintf(key, sizeof key, "%s.weight", layer_name(q, i));
        const qe_encentry *e = qe_enctable_find(t, key);
        if (!e)
            continue;
        if (e->n != q->cout[i])
            return qe_err(err, "parameter encodings of %s list %d channels, the layer has %d", key, e->n, q->cout[i]);
        memcpy(q->penc[i], e->enc, (size_t)e->n * sizeof(qe_encoding));
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Calibration: the f32 pass of §3.6.2 (QDQ'd weights, exact sums, activations unquantized).
 * ------------------------------------------------------------------------------------- */

static void calib_prepare(qe_qsim *q, int n)
{
    if (!q->cal) {
        q->cal = qe_calloc((size_t)q->nlayers, sizeof *q->cal);
        for (int i = 0; i < q->nlayers; i++) {
            size_t nw = (size_t)q->cout[i] * q->per[i];
            float *wq = qe_malloc(nw * sizeof(float));
            qe_encoding_weight_codes(q->w[i], q->cout[i], q->per[i], q->penc[i], NULL, NULL, wq, NULL);
            if (i < q->d->nconvs) {
                const qe_conv_desc *c = &q->d->convs[i];
                qe_conv_f64acc_init(&q->cal[i], c->cin, c->cout, c->k, c->k, c->stride, c->pad, wq, q->bias[i]);
            } else {
                qe_conv_f64acc_init(&q->cal[i], q->d->fc_in, 1000, 1, 1, 1, 0, wq, q->bias[i]);
            }
            free(wq);
        }
    }
    if (n > q->fcap) {
        for (int i = 0; i <= QE_NBUF; i++) {
            qe_free_aligned(q->fbuf[i]);
            q->fbuf[i] = qe_malloc_aligned((size_t)n * QE_ACT_MAX * sizeof(float));
        }
        q->fcap = n;
    }
}

static void observe(qe_qsim *q, int qi, const float *x, size_t count)
{
    qe_analyzer_update(&q->aq[qi].an, x, count);
}

/* out = relu((float)(out + id)), f32 (§3.6.2 residual add). */
static void add_relu_f32(float *out, const float *id, size_t count)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++) {
        float s = out[i] + id[i];
        out[i] = s > 0.0f ? s : 0.0f;
    }
}

void qe_qsim_calibrate_batch(qe_qsim *q, const float *x, int n)
{
    const qe_resnet_desc *d = q->d;
    calib_prepare(q, n);
    float *cur = q->fbuf[0], *t1 = q->fbuf[1], *t2 = q->fbuf[2], *t3 = q->fbuf[3], *in = q->fbuf[4];
    observe(q, q->q_input, x, (size_t)n * QE_TENSOR_FLOATS);
    qe_f32_chw_to_nhwc(x, n, in);
    qe_conv_f64acc_forward(&q->cal[0], in, n, QE_CROP, QE_CROP, t1, 1);
    int h = qe_conv_out_size(QE_CROP, 7, 2, 3);
    observe(q, q->q_relu, t1, (size_t)n * h * h * 64);
    qe_f32_maxpool_3x3s2(t1, n, h, h, 64, cur);
    h = (h + 2 - 3) / 2 + 1;
    int c = 64;
    observe(q, q->q_maxpool, cur, (size_t)n * h * h * c);

    for (int b = 0; b < d->nblocks; b++) {
        const qe_block_desc *blk = &d->blocks[b];
        float *bufs[2] = {t1, t2};
        const float *src = cur;
        int ih = h;
        for (int i = 0; i < blk->nconv - 1; i++) {
            const qe_conv_desc *cd = &d->convs[blk->conv[i]];
            qe_conv_f64acc_forward(&q->cal[blk->conv[i]], src, n, ih, ih, bufs[i], 1);
            ih = qe_conv_out_size(ih, cd->k, cd->stride, cd->pad);
            size_t cnt = (size_t)n * ih * ih * cd->cout;
            observe(q, q->q_brelu[b], bufs[i], cnt);
            src = bufs[i];
        }
        const qe_conv_desc *last = &d->convs[blk->conv[blk->nconv - 1]];
        float *out = blk->nconv == 3 ? t1 : t2;
        qe_conv_f64acc_forward(&q->cal[blk->conv[blk->nconv - 1]], src, n, ih, ih, out, 0);
        ih = qe_conv_out_size(ih, last->k, last->stride, last->pad);
        size_t cnt = (size_t)n * ih * ih * last->cout;
        observe(q, q->q_out[b], out, cnt);
        const float *id = cur;
        if (blk->downsample >= 0) {
            qe_conv_f64acc_forward(&q->cal[blk->downsample], cur, n, h, h, t3, 0);
            observe(q, q->q_ds[b], t3, cnt);
            id = t3;
        }
        add_relu_f32(out, id, cnt);
        observe(q, q->q_brelu[b], out, cnt);
        if (out == t1)
            t1 = cur;
        else
            t2 = cur;
        cur = out;
        h = ih;
        c = last->cout;
    }
    qe_f32_avgpool(cur, n, h * h, c, t1);
    observe(q, q->q_avgpool, t1, (size_t)n * c);
    qe_conv_f64acc_forward(&q->cal[d->nconvs], t1, n, 1, 1, t2, 0);
    observe(q, q->q_fc, t2, (size_t)n * 1000);
    q->batches++;
}

/* ---------------------------------------------------------------------------------------
 * The integer network (§9).
 * ------------------------------------------------------------------------------------- */

static int build(qe_qsim *q, char *err)
{
    for (int i = 0; i < q->naq; i++)
        q->aq[i].qp = qe_qparams_from_encoding(&q->aq[i].enc);
    for (int i = 0; i < q->nlayers; i++) {
        size_t nw = (size_t)q->cout[i] * q->per[i];
        int16_t *k = qe_malloc(nw * sizeof *k);
        float *dw = qe_malloc((size_t)q->cout[i] * sizeof(float));
        char e[QE_ERR_LEN];
        if (qe_encoding_weight_codes(q->w[i], q->cout[i], q->per[i], q->penc[i], k, dw, NULL, e)) {
            free(k);
            free(dw);
            for (int j = 0; j < i; j++)
                qe_qconv_free(&q->qc[j]);
            return qe_err(err, "%s.weight: %s", layer_name(q, i), e);
        }
        double dx = (double)q->aq[q->in_q[i]].qp.delta_f;
        free(q->scale[i]);
        q->scale[i] = qe_malloc((size_t)q->cout[i] * sizeof(double));
        free(q->biasd[i]);
        q->biasd[i] = qe_malloc((size_t)q->cout[i] * sizeof(double));
        for (int c = 0; c < q->cout[i]; c++) {
            q->scale[i][c] = dx * (double)dw[c];   /* exact: product of two f32 (§9.2) */
            q->biasd[i][c] = (double)q->bias[i][c];
        }
        int rc;
        if (i < q->d->nconvs) {
            const qe_conv_desc *c = &q->d->convs[i];
            rc = qe_qconv_init(&q->qc[i], c->cin, c->cout, c->k, c->k, c->stride, c->pad, q->param_bw, k);
        } else {
            rc = qe_qconv_init(&q->qc[i], q->d->fc_in, 1000, 1, 1, 1, 0, q->param_bw, k);
        }
        free(k);
        free(dw);
        if (rc) {
            for (int j = 0; j < i; j++)
                qe_qconv_free(&q->qc[j]);
            return qe_err(err, "%s: more than %d products per output, beyond exact int32 accumulation",
                          layer_name(q, i), QE_QCONV_K_MAX);
        }
    }
    /* §9.4: requantising a max-pooled relu code is a function of the code alone. */
    const qe_qparams *r = &q->aq[q->q_relu].qp, *m = &q->aq[q->q_maxpool].qp;
    for (int v = 0; v < 256; v++)
        q->maxpool_lut[v] = (uint8_t)qe_quantize(qe_dequantize(v, r), m);
    /* §9.3 likewise depends on the two operand codes only: 64 KB per block replaces a float
     * add, a division and a rounding per element. */
    int block_in = q->q_maxpool;
    for (int b = 0; b < q->d->nblocks; b++) {
        int id_q = q->q_ds[b] >= 0 ? q->q_ds[b] : block_in;
        free(q->add[b]);
        q->add[b] = qe_malloc(sizeof *q->add[b]);
        qe_qops_add_init(q->add[b], &q->aq[q->q_out[b]].qp, &q->aq[id_q].qp, &q->aq[q->q_brelu[b]].qp);
        block_in = q->q_brelu[b];
    }
    q->built = 1;
    /* The float weights served calibration and packing; the integer network is what stays. */
    free_calibration(q);
    for (int i = 0; i < q->nlayers; i++) {
        free(q->w[i]);
        q->w[i] = NULL;
    }
    return 0;
}

int qe_qsim_calibrate_finish(qe_qsim *q, char *err)
{
    if (q->built)
        return qe_err(err, "the model is already calibrated");
    if (!q->batches)
        return qe_err(err, "no calibration batch was run");
    for (int i = 0; i < q->naq; i++) {
        if (qe_analyzer_compute(&q->aq[i].an, 8, 0, &q->aq[i].enc))
            return qe_err(err, "no statistics for %s.%s", q->aq[i].module, q->aq[i].kind == QE_ENC_INPUT ? "input" : "output");
        q->aq[i].has_enc = 1;
    }
    return build(q, err);
}

int qe_qsim_load_encodings(qe_qsim *q, const qe_enctable *t, char *err)
{
    if (q->built)
        return qe_err(err, "the model already has encodings");
    char key[64];
    for (int i = 0; i < q->naq; i++) {
        actq *a = &q->aq[i];
        snprintf(key, sizeof key, "%s.%s", a->module, a->kind == QE_ENC_INPUT ? "input" : "output");
        const qe_encentry *e = qe_enctable_find(t, key);
        if (!e || e->n != 1)
            return qe_err(err, "encodings file has no activation encoding for %s", key);
        if (e->enc[0].bw != 8)
            return qe_err(err, "%s: activation bit width %d is not supported (8)", key, e->enc[0].bw);
        a->enc = e->enc[0];
        a->has_enc = 1;
    }
    if (qe_qsim_freeze_params(q, t, err))
        return -1;
    for (int i = 0; i < q->nlayers; i++)
        for (int c = 0; c < q->cout[i]; c++)
            if (q->penc[i][c].bw != q->param_bw)
                return qe_err(err, "%s.weight: encodings file has %d-bit weights, the model config %d-bit",
                              layer_name(q, i), q->penc[i][c].bw, q->param_bw);
    return build(q, err);
}

int qe_qsim_export(const qe_qsim *q, qe_enctable *t, char *err)
{
    char key[64];
    for (int i = 0; i < q->naq; i++) {
        const actq *a = &q->aq[i];
        if (!a->has_enc)
            return qe_err(err, "%s has no encoding yet (calibrate first)", a->module);
        snprintf(key, sizeof key, "%s.%s", a->module, a->kind == QE_ENC_INPUT ? "input" : "output");
        if (qe_enctable_put(t, key, a->kind, 1, &a->enc, err))
            return -1;
    }
    for (int i = 0; i < q->nlayers; i++) {
        snprintf(key, sizeof key, "%s.weight", layer_name(q, i));
        if (qe_enctable_put(t, key, QE_ENC_PARAM, q->cout[i], q->penc[i], err))
            return -1;
    }
    t->param_bw = q->param_bw;
    t->act_bw = 8;
    snprintf(t->quant_scheme, sizeof t->quant_scheme, "%s",
             q->scheme == QE_SCHEME_TF_ENHANCED ? "post_training_tf_enhanced" : "post_training_tf");
    return 0;
}

long qe_qsim_capture(qe_qsim *q, const char *quantizer, uint8_t *out, size_t cap)
{
    char key[64];
    for (int i = 0; i < q->naq; i++) {
        snprintf(key, sizeof key, "%s.%s", q->aq[i].module, q->aq[i].kind == QE_ENC_INPUT ? "input" : "output");
        if (strcmp(key, quantizer) == 0) {
            q->cap_q = i;
            q->cap_out = out;
            q->cap_size = cap;
            return 0;
        }
    }
    return -1;
}

/* Copies image 0's codes (NHWC, hw positions, c channels) out in CHW order if captured. */
static void capture(qe_qsim *q, int qi, const uint8_t *codes, int hw, int c)
{
    if (q->cap_q != qi || !q->cap_out)
        return;
    size_t n = (size_t)hw * c;
    if (n > q->cap_size)
        n = q->cap_size;
    for (size_t k = 0; k < n; k++) {
        size_t ch = k / (size_t)hw, p = k % (size_t)hw;
        q->cap_out[k] = codes[p * (size_t)c + ch];
    }
}

/* add, residual: NULL, or the block's §9.3 residual add fused into this conv's epilogue. */
static void qconv(qe_qsim *q, int layer, const uint8_t *in, int n, int h, int relu, int out_q, uint8_t *out,
                  const qe_qops_add_op *add, const uint8_t *residual)
{
    qe_requant rq = {q->scale[layer], q->biasd[layer], relu, q->aq[out_q].qp, add, residual};
    qe_qconv_forward(&q->qc[layer], in, n, h, h, q->aq[q->in_q[layer]].qp.z, &rq, out);
}

static void reserve_int(qe_qsim *q, int n)
{
    if (n <= q->icap)
        return;
    for (int i = 0; i < QE_NBUF; i++) {
        qe_free_aligned(q->ibuf[i]);
        q->ibuf[i] = qe_malloc_aligned((size_t)n * QE_ACT_MAX);
    }
    q->icap = n;
}

void qe_qsim_trim(qe_qsim *q)
{
    for (int i = 0; i < QE_NBUF; i++) {
        qe_free_aligned(q->ibuf[i]);
        q->ibuf[i] = NULL;
    }
    q->icap = 0;
}

/* §9 from the input codes, which the caller has put in ibuf[3] (reserve_int(q, n) done). */
static void forward_codes(qe_qsim *q, int n, float *logits)
{
    const qe_resnet_desc *d = q->d;
    uint8_t *cur = q->ibuf[0], *t1 = q->ibuf[1], *t2 = q->ibuf[2], *t3 = q->ibuf[3];
    capture(q, q->q_input, t3, QE_CROP * QE_CROP, 3);
    qconv(q, 0, t3, n, QE_CROP, 1, q->q_relu, t1, NULL, NULL);
    int h = qe_conv_out_size(QE_CROP, 7, 2, 3);
    capture(q, q->q_relu, t1, h * h, 64);
    qe_qops_maxpool_3x3s2(t1, n, h, 64, q->maxpool_lut, cur);
    h = (h + 2 - 3) / 2 + 1;
    int c = 64, cur_q = q->q_maxpool;
    capture(q, q->q_maxpool, cur, h * h, c);

    for (int b = 0; b < d->nblocks; b++) {
        const qe_block_desc *blk = &d->blocks[b];
        uint8_t *bufs[2] = {t1, t2};
        const uint8_t *src = cur;
        int ih = h;
        for (int i = 0; i < blk->nconv - 1; i++) {
            const qe_conv_desc *cd = &d->convs[blk->conv[i]];
            qconv(q, blk->conv[i], src, n, ih, 1, q->q_brelu[b], bufs[i], NULL, NULL);
            ih = qe_conv_out_size(ih, cd->k, cd->stride, cd->pad);
            src = bufs[i];
        }
        const qe_conv_desc *last = &d->convs[blk->conv[blk->nconv - 1]];
        uint8_t *out = blk->nconv == 3 ? t1 : t2;
        const int oh = qe_conv_out_size(ih, last->k, last->stride, last->pad);
        const uint8_t *id = cur;
        if (blk->downsample >= 0) {
            qconv(q, blk->downsample, cur, n, h, 0, q->q_ds[b], t3, NULL, NULL);
            capture(q, q->q_ds[b], t3, oh * oh, last->cout);
            id = t3;
        }
        /* The add runs in the last conv's epilogue, unless that conv's own codes are being
         * captured (they then exist only in the unfused order). */
        if (q->cap_q == q->q_out[b]) {
            qconv(q, blk->conv[blk->nconv - 1], src, n, ih, 0, q->q_out[b], out, NULL, NULL);
            capture(q, q->q_out[b], out, oh * oh, last->cout);
            qe_qops_add(out, id, q->add[b], (size_t)n * oh * oh * last->cout);
        } else {
            qconv(q, blk->conv[blk->nconv - 1], src, n, ih, 0, q->q_out[b], out, q->add[b], id);
        }
        ih = oh;
        capture(q, q->q_brelu[b], out, ih * ih, last->cout);
        if (out == t1)
            t1 = cur;
        else
            t2 = cur;
        cur = out;
        cur_q = q->q_brelu[b];
        h = ih;
        c = last->cout;
    }
    qe_qops_avgpool(cur, n, h * h, c, &q->aq[cur_q].qp, &q->aq[q->q_avgpool].qp, t1);
    capture(q, q->q_avgpool, t1, 1, c);
    qconv(q, d->nconvs, t1, n, 1, 0, q->q_fc, t2, NULL, NULL);
    capture(q, q->q_fc, t2, 1, 1000);
    const qe_qparams *fq = &q->aq[q->q_fc].qp;
    for (size_t i = 0; i < (size_t)n * 1000; i++)
        logits[i] = qe_dequantize(t2[i], fq);   /* §9.7 */
    q->cap_q = -1;
}

void qe_qsim_forward(qe_qsim *q, const float *x, int n, float *logits)
{
    reserve_int(q, n);
    qe_qops_quantize_input(&q->aq[q->q_input].qp, x, n, q->ibuf[3]);
    forward_codes(q, n, logits);
}

void qe_qsim_forward_crops(qe_qsim *q, const uint8_t *crops, int n, float *logits)
{
    reserve_int(q, n);
    qe_qops_quantize_crops(&q->aq[q->q_input].qp, crops, n, q->ibuf[3]);
    forward_codes(q, n, logits);
}

size_t qe_qsim_bytes(const qe_qsim *q)
{
    size_t b = sizeof *q;
    for (int i = 0; i < q->nlayers; i++) {
        if (q->built)
            b += qe_qconv_bytes(&q->qc[i]);
        b += (size_t)q->cout[i] * (sizeof(float) + sizeof(double) + sizeof(qe_encoding));
    }
    return b + (size_t)q->d->nblocks * 65536 + (size_t)QE_NBUF * q->icap * QE_ACT_MAX;
}
