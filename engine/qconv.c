/*
 * qconv.c - the driver of the exact integer convolution (qconv.h, spec quantsim.md §9.2):
 * weight packing, im2col of the uint8 codes, blocking and threading around the qgemm.h
 * micro-kernels.
 *
 * The convolution is the GEMM out[m][c] = sum_k A[m][k] * k[c][k] over M = n*oh*ow output pixels
 * and K = kh*kw*cin, k = (ky*kw + kx)*cin + ci so that each kernel row is one contiguous run of
 * the NHWC input. Padding is filled with the code z_x itself, so the zero-point compensation
 * z_x * wsum[c] is exact at the borders too and the kernels never see a special case.
 */
#include "qconv.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "cpu.h"
#include "qe_util.h"
#include "qgemm.h"

/* A block of rows of A is built per work item and read once per 16-channel panel, and each
 * panel (up to 147 KB for 3x3x512 inputs) is streamed once per micro-kernel row group: both
 * should share L2 (512 KB on Zen 3). Larger blocks also re-stream the whole weight matrix from
 * L3 less often; 256 KB measured 6% faster than 128 KB on the 3x3 layers (Sapphire Rapids). */
#define QCONV_ABLOCK_BYTES (256 * 1024)
/* Work items per thread to aim for, so that uneven items still balance. */
#define QCONV_ITEMS_PER_THREAD 4

typedef struct qconv_priv {
    const qe_qgemm_kernel *kern;
    size_t kdim;           /* K = kh * kw * cin */
    size_t kp;             /* K rounded up to the kernel's granule */
    size_t n16;            /* cout rounded up to QE_QGEMM_NR */
} qconv_priv;

static const qe_qgemm_kernel kern_s8_scalar = {qe_qu8s8_gemm_ukernel_4x16c2__scalar, 4, 2};
static const qe_qgemm_kernel kern_s4_scalar = {qe_qu8s4_gemm_ukernel_4x16c4__scalar, 4, 4};
static const qe_qgemm_kernel kern_s8_avx2 = {qe_qu8s8_gemm_ukernel_6x16c2__avx2_madd16, 6, 2};
static const qe_qgemm_kernel kern_s4_avx2 = {qe_qu8s4_gemm_ukernel_8x16c4__avx2_maddubs, 8, 4};

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* Bytes per packed weight and per A element: c2 pairs int16 weights with uint16 codes, c4
 * bytes with bytes (qgemm.h). */
static size_t elem_bytes(const qe_qgemm_kernel *k) { return k->kr == 2 ? 2 : 1; }

/* The packing follows the codes actually present rather than wbits: the c4 kernels are exact
 * only for |k| <= QE_QGEMM_S4_MAX (qgemm.h), which covers 4-bit codes, signed or not (§1.6). */
static const qe_qgemm_kernel *select_kernel(const int8_t *k, size_t count)
{
    int small = 1;
    for (size_t i = 0; i < count && small; i++)
        small = abs(k[i]) <= QE_QGEMM_S4_MAX;
    if (qe_cpu_get()->avx2)
        return small ? &kern_s4_avx2 : &kern_s8_avx2;
    return small ? &kern_s4_scalar : &kern_s8_scalar;
}

void qe_qconv_init(qe_qconv *c, int cin, int cout, int kh, int kw, int stride, int pad, int wbits,
                   const int8_t *k)
{
    memset(c, 0, sizeof *c);
    c->cin = cin;
    c->cout = cout;
    c->kh = kh;
    c->kw = kw;
    c->stride = stride;
    c->pad = pad;
    c->wbits = wbits;

    size_t kdim = (size_t)kh * (size_t)kw * (size_t)cin;
    qconv_priv *pv = qe_calloc(1, sizeof *pv);
    pv->kern = select_kernel(k, kdim * (size_t)cout);
    pv->kdim = kdim;
    pv->kp = round_up(kdim, (size_t)pv->kern->kr);
    pv->n16 = round_up((size_t)cout, QE_QGEMM_NR);
    c->priv = pv;

    /* Panels of 16 channels, K-major inside: [n16/16][kp/kr][16][kr]; padding is zero weight. */
    size_t kr = (size_t)pv->kern->kr, esize = elem_bytes(pv->kern);
    c->wpack = qe_malloc_aligned(pv->n16 * pv->kp * esize);
    memset(c->wpack, 0, pv->n16 * pv->kp * esize);
    c->wsum = qe_calloc((size_t)cout, sizeof *c->wsum);
    for (size_t co = 0; co < (size_t)cout; co++) {
        size_t panel = co / QE_QGEMM_NR * (pv->kp / kr), lane = co % QE_QGEMM_NR;
        uint32_t sum = 0;   /* wraps like the kernels' sums (qgemm.h) */
        for (size_t ci = 0; ci < (size_t)cin; ci++) {
            for (size_t ky = 0; ky < (size_t)kh; ky++) {
                for (size_t kx = 0; kx < (size_t)kw; kx++) {
                    int8_t v = k[((co * (size_t)cin + ci) * (size_t)kh + ky) * (size_t)kw + kx];
                    size_t kk = (ky * (size_t)kw + kx) * (size_t)cin + ci;
                    size_t idx = ((panel + kk / kr) * QE_QGEMM_NR + lane) * kr + kk % kr;
                    if (kr == 2)
                        ((int16_t *)c->wpack)[idx] = v;
                    else
                        ((int8_t *)c->wpack)[idx] = v;
                    sum += (uint32_t)v;
                }
            }
        }
        c->wsum[co] = (int32_t)sum;
    }
}

void qe_qconv_free(qe_qconv *c)
{
    qe_free_aligned(c->wpack);
    free(c->wsum);
    free(c->priv);
    memset(c, 0, sizeof *c);
}

size_t qe_qconv_bytes(const qe_qconv *c)
{
    const qconv_priv *pv = c->priv;
    if (!pv)
        return 0;
    return pv->n16 * pv->kp * elem_bytes(pv->kern) + (size_t)c->cout * sizeof *c->wsum;
}

/* The im2col runs are short (21 codes per kernel row for the 7x7x3 stem): the loops below are
 * inlined rather than calls to memcpy/memset, and written in blocks of 16 so that GCC's -O2
 * vectorizer (which refuses loops needing a scalar epilogue) turns the blocks into SSE2 moves. */
static inline void copy_u8(uint8_t *restrict d, const uint8_t *restrict s, size_t n)
{
    size_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int t = 0; t < 16; t++)
            d[j + t] = s[j + t];
    for (; j < n; j++)
        d[j] = s[j];
}

static inline void widen_u8(uint16_t *restrict d, const uint8_t *restrict s, size_t n)
{
    size_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int t = 0; t < 16; t++)
            d[j + t] = s[j + t];
    for (; j < n; j++)
        d[j] = s[j];
}

static inline void fill_u8(uint8_t *d, uint8_t v, size_t n)
{
    size_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int t = 0; t < 16; t++)
            d[j + t] = v;
    for (; j < n; j++)
        d[j] = v;
}

static inline void fill_u16(uint16_t *d, uint16_t v, size_t n)
{
    size_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int t = 0; t < 16; t++)
            d[j + t] = v;
    for (; j < n; j++)
        d[j] = v;
}

/* A row segment of n codes (or n copies of one code) at element offset i of an A row, which
 * holds uint16 codes for the c2 packing and uint8 codes for c4. */
static inline void arow_copy(void *row, int a16, size_t i, const uint8_t *src, size_t n)
{
    if (a16)
        widen_u8((uint16_t *)row + i, src, n);
    else
        copy_u8((uint8_t *)row + i, src, n);
}

static inline void arow_fill(void *row, int a16, size_t i, int code, size_t n)
{
    if (a16)
        fill_u16((uint16_t *)row + i, (uint16_t)code, n);
    else
        fill_u8((uint8_t *)row + i, (uint8_t)code, n);
}

typedef struct qconv_geom {
    int h, w, oh, ow, zx;
    int a16;
    size_t a_stride;       /* bytes between A rows */
} qconv_geom;

/* im2col of output pixels m0 .. m0+rows-1 into dst: each row is the receptive field in K order,
 * z_x where it falls into the padding, then zeros up to kp (they meet zero weights). */
static void im2col(const qe_qconv *c, const qconv_geom *g, const uint8_t *in, size_t m0,
                   size_t rows, uint8_t *dst)
{
    const qconv_priv *pv = c->priv;
    size_t cin = (size_t)c->cin, run = (size_t)c->kw * cin;
    /* The output pixel of row m0, then stepped along (no divisions per row). */
    size_t img = m0 / ((size_t)g->oh * (size_t)g->ow), pix = m0 % ((size_t)g->oh * (size_t)g->ow);
    int oy = (int)(pix / (size_t)g->ow), ox = (int)(pix % (size_t)g->ow);
    for (size_t r = 0; r < rows; r++, ox++) {
        if (ox == g->ow) {
            ox = 0;
            if (++oy == g->oh) {
                oy = 0;
                img++;
            }
        }
        void *row = dst + r * g->a_stride;
        int ix0 = ox * c->stride - c->pad;
        /* kernel columns [kx0, kx1) fall inside the image */
        int kx0 = ix0 < 0 ? -ix0 : 0;
        int kx1 = g->w - ix0 < c->kw ? g->w - ix0 : c->kw;
        if (kx1 < kx0)
            kx1 = kx0;
        size_t kk = 0;
        for (int ky = 0; ky < c->kh; ky++, kk += run) {
            int iy = oy * c->stride - c->pad + ky;
            if (iy < 0 || iy >= g->h) {
                arow_fill(row, g->a16, kk, g->zx, run);
                continue;
            }
            const uint8_t *src = in + ((img * (size_t)g->h + (size_t)iy) * (size_t)g->w +
                                       (size_t)(ix0 + kx0)) * cin;
            arow_fill(row, g->a16, kk, g->zx, (size_t)kx0 * cin);
            arow_copy(row, g->a16, kk + (size_t)kx0 * cin, src, (size_t)(kx1 - kx0) * cin);
            arow_fill(row, g->a16, kk + (size_t)kx1 * cin, g->zx, (size_t)(c->kw - kx1) * cin);
        }
        arow_fill(row, g->a16, pv->kdim, 0, pv->kp - pv->kdim);
    }
}

/* Work items: blocks of mb rows (a multiple of the kernel's rows) times chunks of nb channels
 * (a multiple of the panel width). */
typedef struct qconv_plan {
    size_t mb, mblocks, nb, nblocks;
} qconv_plan;

/* Channels are split only when there are too few row blocks to feed every thread (small batch,
 * late layers, fc); each chunk of a row block then builds its own copy of the A block. */
static qconv_plan plan(const qconv_priv *pv, size_t M, size_t a_stride)
{
    qconv_plan p;
    size_t mr = (size_t)pv->kern->mr, npanels = pv->n16 / QE_QGEMM_NR;
    p.mb = QCONV_ABLOCK_BYTES / a_stride / mr * mr;
    if (p.mb < mr)
        p.mb = mr;
    if (p.mb > round_up(M, mr))
        p.mb = round_up(M, mr);
    p.mblocks = (M + p.mb - 1) / p.mb;
    size_t threads = (size_t)omp_get_max_threads();
    size_t want = threads > 1 ? threads * QCONV_ITEMS_PER_THREAD : 1;
    size_t nsplit = p.mblocks >= want ? 1 : (want + p.mblocks - 1) / p.mblocks;
    if (nsplit > npanels)
        nsplit = npanels;
    p.nb = (npanels + nsplit - 1) / nsplit * QE_QGEMM_NR;
    p.nblocks = (pv->n16 + p.nb - 1) / p.nb;
    return p;
}

void qe_qconv_forward(const qe_qconv *c, const uint8_t *in, int n, int h, int w, int zx,
                      const qe_requant *rq, uint8_t *out)
{
    const qconv_priv *pv = c->priv;
    const qe_qgemm_kernel *kern = pv->kern;
    int oh = qe_conv_out_size(h, c->kh, c->stride, c->pad);
    int ow = qe_conv_out_size(w, c->kw, c->stride, c->pad);
    if (n <= 0 || oh <= 0 || ow <= 0 || c->cout <= 0)
        return;
    size_t M = (size_t)n * (size_t)oh * (size_t)ow, cout = (size_t)c->cout;

    /* The epilogue's per-channel arrays, padded to whole panels. */
    int32_t *acc0 = qe_calloc(pv->n16, sizeof *acc0);
    double *scale = qe_calloc(pv->n16, sizeof *scale);
    double *bias = qe_calloc(pv->n16, sizeof *bias);
    for (size_t j = 0; j < cout; j++) {
        acc0[j] = (int32_t)(0u - (uint32_t)zx * (uint32_t)c->wsum[j]);
        scale[j] = rq->scale[j];
        bias[j] = rq->bias[j];
    }
    qe_qgemm_out o = {acc0, scale, bias, rq->relu, rq->out.min_f, rq->out.max_f, rq->out.delta_f,
                      rq->out.offset_f};

    qconv_geom g = {h, w, oh, ow, zx, kern->kr == 2, 0};
    /* A 1x1 stride-1 convolution's A is the input itself when its rows need no widening or
     * K padding. */
    int direct = c->kh == 1 && c->kw == 1 && c->stride == 1 && c->pad == 0 && !g.a16 &&
                 pv->kp == pv->kdim;
    g.a_stride = direct ? (size_t)c->cin : pv->kp * elem_bytes(kern);

    qconv_plan p = plan(pv, M, g.a_stride);
    size_t mr = (size_t)kern->mr, panel_bytes = pv->kp * QE_QGEMM_NR * elem_bytes(kern);
#pragma omp parallel
    {
        uint8_t *abuf = direct ? NULL : qe_malloc_aligned(p.mb * g.a_stride);
#pragma omp for schedule(dynamic, 1)
        for (size_t it = 0; it < p.mblocks * p.nblocks; it++) {
            size_t m0 = it / p.nblocks * p.mb, rows = M - m0 < p.mb ? M - m0 : p.mb;
            size_t nbeg = it % p.nblocks * p.nb, nend = nbeg + p.nb < cout ? nbeg + p.nb : cout;
            const uint8_t *a = in + m0 * (size_t)c->cin;
            if (!direct) {
                im2col(c, &g, in, m0, rows, abuf);
                a = abuf;
            }
            for (size_t n0 = nbeg; n0 < nend; n0 += QE_QGEMM_NR) {
                const uint8_t *wp = (const uint8_t *)c->wpack + n0 / QE_QGEMM_NR * panel_bytes;
                size_t nc = nend - n0 < QE_QGEMM_NR ? nend - n0 : QE_QGEMM_NR;
                for (size_t r0 = 0; r0 < rows; r0 += mr)
                    kern->gemm(rows - r0 < mr ? rows - r0 : mr, nc, pv->kp, a + r0 * g.a_stride,
                               g.a_stride, wp, out + (m0 + r0) * cout + n0, cout, &o, n0);
            }
        }
        qe_free_aligned(abuf);
    }
    free(acc0);
    free(scale);
    free(bias);
}
