/*
 * qconv.c - the driver of the exact integer convolution (qconv.h, spec quantsim.md §9.2):
 * weight packing, the indirection of A (in-place rows and im2col rows), blocking and threading
 * around the qgemm.h micro-kernels.
 *
 * The convolution is the GEMM out[m][c] = sum_k A[m][k] * k[c][k] over M = n*oh*ow output pixels
 * and K = kh*kw*cin, k = (ky*kw + kx)*cin + ci so that each kernel row is one contiguous run of
 * the NHWC input, which the kernels can read in place. Padding is filled with the code z_x
 * itself, so the zero-point compensation z_x * wsum[c] is exact at the borders too and the
 * kernels never see a special case.
 */
#include "qconv.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "cpu.h"
#include "qe_util.h"
#include "qgemm.h"

/* A block of rows of A (up to this many bytes of K-long rows, whether copied by im2col or read
 * in place) is prepared per work item and read once per 16-channel panel, and each panel (up to
 * 147 KB for 3x3x512 inputs) is streamed once per micro-kernel tile: both should share L2 (512
 * KB on Zen 3). Larger blocks also re-stream the whole weight matrix from L3 less often; 256 KB
 * measured 6% faster than 128 KB on the 3x3 layers (Sapphire Rapids). */
#define QCONV_ABLOCK_BYTES (256 * 1024)
/* Work items per thread to aim for: the barrier after a layer waits for the slowest thread, and
 * with the dynamic schedule the idle time at the end is about half an item. */
#define QCONV_ITEMS_PER_THREAD 8
/* Row blocks are made smaller (down to this) to get enough items before channels are split,
 * which makes each chunk stream its own part of the weights. */
#define QCONV_MIN_BLOCK_ROWS 48
/* When a work item's weights fit this many bytes (L2 has room for them beside its A block),
 * its rows are swept in sub-blocks with every channel panel inside, so that a sub-block's codes,
 * output rows and residual rows stay in L1 while all panels use them: it is the order of the
 * small-K layers (1x1 on 64..512 channels), whose epilogue, not the GEMM, dominates. Large-K
 * layers keep the panel outside, streaming their A block from L2 once per panel. */
#define QCONV_SUB_WEIGHT_BYTES (512 * 1024)
/* Output bytes of one sub-block (rows x channels of a work item). */
#define QCONV_SUB_OUT_BYTES (16 * 1024)

typedef struct qconv_priv {
    const qe_qgemm_kernel *kern;
    size_t kdim;           /* K = kh * kw * cin */
    size_t kp;             /* K rounded up to the kernel's kc_align */
    size_t npad;           /* cout rounded up to the kernel's nr */
} qconv_priv;

static const qe_qgemm_kernel kern_s8_scalar = {qe_qu8s8_gemm_ukernel_4x16c2__scalar, 4, 16, 2, 2, 0};
static const qe_qgemm_kernel kern_s4_scalar = {qe_qu8s4_gemm_ukernel_4x16c4__scalar, 4, 16, 4, 4, 0};
static const qe_qgemm_kernel kern_s8_avx2 = {qe_qu8s8_gemm_ukernel_6x16c2__avx2_madd16, 6, 16, 2, 2, 0};
static const qe_qgemm_kernel kern_s4_avx2 = {qe_qu8s4_gemm_ukernel_6x16c4__avx2_sum8, 6, 16, 4, 32, 0};
static const qe_qgemm_kernel kern_u4_avx2 = {qe_qu8s4_gemm_ukernel_6x16c4__avx2_sum4, 6, 16, 4, 16, 0};
static const qe_qgemm_kernel kern_s8_amx = {qe_qu8s8_gemm_ukernel_32x32c4__amx, 32, 32, 4, 64, 1};
static const qe_qgemm_kernel kern_s8_vnni = {qe_qu8s8_gemm_ukernel_12x32c4__avx512vnni, 12, 32, 4, 4, 1};

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* Bytes per packed weight and per A element: c2 pairs int16 weights with uint16 codes, c4
 * bytes with bytes (qgemm.h). */
static size_t elem_bytes(const qe_qgemm_kernel *k) { return k->kr == 2 ? 2 : 1; }

/* The packing follows the codes actually present rather than wbits. With AMX or VNNI, every
 * layer whose codes fit int8 (all signed encodings of 8 bits or fewer) takes the tdpbusd or
 * vpdpbusd kernel. Otherwise the AVX2 c4 kernels are exact only for |k| <= QE_QGEMM_SUM4_KMAX
 * (qgemm.h), which covers 4-bit codes, signed or not (§1.6), and the faster depth-8 one for
 * |k| <= QE_QGEMM_SUM8_KMAX, the signed 4-bit codes. Every other layer, among them any with an
 * unsigned 8-bit channel (codes up to 255, §1.6), gets the c2 kernels, whose int16 weights and
 * int32 pair sums hold any such code exactly. */
static const qe_qgemm_kernel *select_kernel(const int16_t *k, size_t count)
{
    int klo = 0, khi = 0;
    for (size_t i = 0; i < count; i++) {
        klo = k[i] < klo ? k[i] : klo;
        khi = k[i] > khi ? k[i] : khi;
    }
    const int kmax = khi > -klo ? khi : -klo;
    /* AMX's tdpbusd and VNNI's vpdpbusd are exact for any int8 weight, 4-bit or 8-bit (qgemm.h) */
    if (klo >= INT8_MIN && khi <= INT8_MAX) {
        if (qe_cpu_get()->amx)
            return &kern_s8_amx;
        if (qe_cpu_get()->avx512vnni)
            return &kern_s8_vnni;
    }
    if (qe_cpu_get()->avx2) {
        if (kmax <= QE_QGEMM_SUM8_KMAX)
            return &kern_s4_avx2;
        return kmax <= QE_QGEMM_SUM4_KMAX ? &kern_u4_avx2 : &kern_s8_avx2;
    }
    return kmax <= QE_QGEMM_SUM4_KMAX ? &kern_s4_scalar : &kern_s8_scalar;
}

int qe_qconv_init(qe_qconv *c, int cin, int cout, int kh, int kw, int stride, int pad, int wbits,
                  const int16_t *k)
{
    memset(c, 0, sizeof *c);
    if ((int64_t)kh * kw * cin > QE_QCONV_K_MAX)
        return -1;
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
    pv->kp = round_up(kdim, (size_t)pv->kern->kc_align);
    size_t nr = (size_t)pv->kern->nr;
    pv->npad = round_up((size_t)cout, nr);
    c->priv = pv;

    /* Panels of nr channels, K-major inside: [npad/nr][kp/kr][nr][kr]; padding is zero weight. */
    size_t kr = (size_t)pv->kern->kr, esize = elem_bytes(pv->kern);
    c->wpack = qe_malloc_aligned(pv->npad * pv->kp * esize);
    memset(c->wpack, 0, pv->npad * pv->kp * esize);
    c->wsum = qe_calloc((size_t)cout, sizeof *c->wsum);
    for (size_t co = 0; co < (size_t)cout; co++) {
        size_t panel = co / nr * (pv->kp / kr), lane = co % nr;
        uint32_t sum = 0;   /* wraps like the kernels' sums (qgemm.h) */
        for (size_t ci = 0; ci < (size_t)cin; ci++) {
            for (size_t ky = 0; ky < (size_t)kh; ky++) {
                for (size_t kx = 0; kx < (size_t)kw; kx++) {
                    int16_t v = k[((co * (size_t)cin + ci) * (size_t)kh + ky) * (size_t)kw + kx];
                    size_t kk = (ky * (size_t)kw + kx) * (size_t)cin + ci;
                    size_t idx = ((panel + kk / kr) * nr + lane) * kr + kk % kr;
                    if (kr == 2)
                        ((int16_t *)c->wpack)[idx] = v;
                    else
                        ((int8_t *)c->wpack)[idx] = (int8_t)v;   /* -128..127 here */
                    sum += (uint32_t)v;
                }
            }
        }
        c->wsum[co] = (int32_t)sum;
    }
    return 0;
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
    return pv->npad * pv->kp * elem_bytes(pv->kern) + (size_t)c->cout * sizeof *c->wsum;
}

/* The im2col runs are short (21 codes per kernel row for the 7x7x3 stem) and many, so the copies
 * are inlined: 16-byte blocks, the last one overlapping its predecessor rather than finishing
 * byte by byte (it writes the same bytes again). memcpy of 16 bytes is one vector load and
 * store; the widening loop of 16 is vectorized by GCC's -O2. Runs shorter than 16 codes only
 * occur for layers with fewer than 16 input channels per kernel row. */
static inline void copy16_u8(uint8_t *restrict d, const uint8_t *restrict s)
{
    memcpy(d, s, 16);
}

static inline void widen16_u8(uint16_t *restrict d, const uint8_t *restrict s)
{
    for (int t = 0; t < 16; t++)
        d[t] = s[t];
}

/* A run of n codes into an A row at element offset i: uint16 codes for the c2 packing (a16),
 * uint8 codes for c4. */
static inline void arow_copy(void *row, int a16, size_t i, const uint8_t *src, size_t n)
{
    if (n < 16) {
        for (size_t j = 0; j < n; j++) {
            if (a16)
                ((uint16_t *)row)[i + j] = src[j];
            else
                ((uint8_t *)row)[i + j] = src[j];
        }
        return;
    }
    if (a16) {
        uint16_t *d = (uint16_t *)row + i;
        for (size_t j = 0; j + 16 < n; j += 16)
            widen16_u8(d + j, src + j);
        widen16_u8(d + n - 16, src + n - 16);
    } else {
        uint8_t *d = (uint8_t *)row + i;
        for (size_t j = 0; j + 16 < n; j += 16)
            copy16_u8(d + j, src + j);
        copy16_u8(d + n - 16, src + n - 16);
    }
}

static inline void arow_fill(void *row, int a16, size_t i, int code, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        if (a16)
            ((uint16_t *)row)[i + j] = (uint16_t)code;
        else
            ((uint8_t *)row)[i + j] = (uint8_t)code;
    }
}

typedef struct qconv_geom {
    int h, w, oh, ow, zx;
    int a16;
    size_t a_stride;       /* bytes between im2col rows */
    int inplace;           /* windows inside the image are read in place (block_ind) */
    size_t ks, kc;         /* segments per row and elements per segment (qgemm.h) */
} qconv_geom;

/* The K padding kdim .. kp of every row of an A buffer: zero codes, which meet zero weights.
 * im2col never writes there, so this is done once per buffer. */
static void apad_zero(const qe_qconv *c, const qconv_geom *g, uint8_t *dst, size_t rows)
{
    const qconv_priv *pv = c->priv;
    for (size_t r = 0; r < rows && pv->kp > pv->kdim; r++)
        arow_fill(dst + r * g->a_stride, g->a16, pv->kdim, 0, pv->kp - pv->kdim);
}

/* The window of an output pixel: its image, its top-left corner in the input (which may lie in
 * the padding) and whether it lies entirely inside the image. */
typedef struct qconv_win {
    size_t img;
    int iy0, ix0;
    int inside;
} qconv_win;

/* The im2col row of window v: its receptive field in K order, z_x where it falls into the
 * padding. A window inside the image is kh plain runs of kw * cin codes. */
static void im2col_row(const qe_qconv *c, const qconv_geom *g, const uint8_t *in,
                       const qconv_win *v, void *row)
{
    size_t cin = (size_t)c->cin, run = (size_t)c->kw * cin;
    const uint8_t *src = in + v->img * (size_t)g->h * (size_t)g->w * cin;
    if (v->inside) {
        src += ((size_t)v->iy0 * (size_t)g->w + (size_t)v->ix0) * cin;
        for (int ky = 0; ky < c->kh; ky++)
            arow_copy(row, g->a16, (size_t)ky * run, src + (size_t)ky * (size_t)g->w * cin, run);
        return;
    }
    /* kernel columns [kx0, kx1) fall inside the image */
    int kx0 = v->ix0 < 0 ? -v->ix0 : 0;
    int kx1 = g->w - v->ix0 < c->kw ? g->w - v->ix0 : c->kw;
    if (kx1 < kx0)
        kx1 = kx0;
    size_t kk = 0;
    for (int ky = 0; ky < c->kh; ky++, kk += run) {
        int iy = v->iy0 + ky;
        if (iy < 0 || iy >= g->h) {
            arow_fill(row, g->a16, kk, g->zx, run);
            continue;
        }
        const uint8_t *s = src + ((size_t)iy * (size_t)g->w + (size_t)(v->ix0 + kx0)) * cin;
        arow_fill(row, g->a16, kk, g->zx, (size_t)kx0 * cin);
        arow_copy(row, g->a16, kk + (size_t)kx0 * cin, s, (size_t)(kx1 - kx0) * cin);
        arow_fill(row, g->a16, kk + (size_t)kx1 * cin, g->zx, (size_t)(c->kw - kx1) * cin);
    }
}

/*
 * The indirection of rows m0 .. m0+rows-1 (qgemm.h): tiles of mr rows, ks segments per row.
 * Where the codes need no widening and a kernel row's kw * cin codes are a whole number of the
 * kernel's K blocks (g->inplace), the segments of a window inside the image are its kh kernel
 * rows, read in place from the input. The other rows are built in abuf by im2col and their
 * segments point into them. Reading in place spares the 3x3 layers copying every input code
 * nine times, and the 1x1 layers any copy.
 */
static void block_ind(const qe_qconv *c, const qconv_geom *g, const uint8_t *in, size_t m0,
                      size_t rows, uint8_t *abuf, const void **ind)
{
    const qconv_priv *pv = c->priv;
    size_t mr = (size_t)pv->kern->mr, cin = (size_t)c->cin, nim2col = 0;
    size_t pixels = (size_t)g->oh * (size_t)g->ow, pix = m0 % pixels;
    /* the output pixel of row m0, then stepped along (no divisions per row) */
    qconv_win v = {m0 / pixels, 0, 0, 0};
    int oy = (int)(pix / (size_t)g->ow), ox = (int)(pix % (size_t)g->ow);
    const void **slot = ind;   /* row r's first slot: ind[r / mr * ks * mr + r % mr] */
    size_t in_tile = 0;
    for (size_t r = 0; r < rows; r++, ox++, slot++, in_tile++) {
        if (ox == g->ow) {
            ox = 0;
            if (++oy == g->oh) {
                oy = 0;
                v.img++;
            }
        }
        if (in_tile == mr) {
            slot += (g->ks - 1) * mr;
            in_tile = 0;
        }
        v.iy0 = oy * c->stride - c->pad;
        v.ix0 = ox * c->stride - c->pad;
        v.inside = v.ix0 >= 0 && v.ix0 + c->kw <= g->w && v.iy0 >= 0 && v.iy0 + c->kh <= g->h;
        if (g->inplace && v.inside) {
            const uint8_t *a = in + ((v.img * (size_t)g->h + (size_t)v.iy0) * (size_t)g->w +
                                     (size_t)v.ix0) * cin;
            for (size_t e = 0; e < g->ks; e++)
                slot[e * mr] = a + e * (size_t)g->w * cin;
        } else {
            uint8_t *row = abuf + nim2col++ * g->a_stride;
            im2col_row(c, g, in, &v, row);
            for (size_t e = 0; e < g->ks; e++)
                slot[e * mr] = row + e * g->kc;   /* ks > 1 only for uint8 codes */
        }
    }
}

/* Work items: blocks of mb rows (a multiple of the kernel's rows) times chunks of nb channels
 * (a multiple of the panel width). */
typedef struct qconv_plan {
    size_t mb, mblocks, nb, nblocks;
    size_t msub;           /* rows per sub-block (a multiple of the kernel's rows), <= mb */
} qconv_plan;

/* With several threads, rows are first cut into smaller blocks to get QCONV_ITEMS_PER_THREAD
 * items each; channels are split only when blocks would get smaller than QCONV_MIN_BLOCK_ROWS
 * (small batch, late layers, fc), and the chunks of a block then share its A (see below). */
static qconv_plan plan(const qconv_priv *pv, size_t M, size_t a_stride)
{
    qconv_plan p;
    size_t mr = (size_t)pv->kern->mr, nr = (size_t)pv->kern->nr, npanels = pv->npad / nr;
    size_t threads = (size_t)omp_get_max_threads();
    size_t want = threads > 1 ? threads * QCONV_ITEMS_PER_THREAD : 1;
    p.mb = QCONV_ABLOCK_BYTES / a_stride / mr * mr;
    size_t even = round_up((M + want - 1) / want, mr), floor = round_up(QCONV_MIN_BLOCK_ROWS, mr);
    if (even < p.mb)
        p.mb = even > floor ? even : (floor < p.mb ? floor : p.mb);
    if (p.mb < mr)
        p.mb = mr;
    if (p.mb > round_up(M, mr))
        p.mb = round_up(M, mr);
    p.mblocks = (M + p.mb - 1) / p.mb;
    p.mb = round_up((M + p.mblocks - 1) / p.mblocks, mr);   /* even blocks, no tiny last one */
    size_t nsplit = p.mblocks >= want ? 1 : (want + p.mblocks - 1) / p.mblocks;
    if (nsplit > npanels)
        nsplit = npanels;
    p.nb = (npanels + nsplit - 1) / nsplit * nr;
    p.nblocks = (pv->npad + p.nb - 1) / p.nb;
    p.msub = p.mb;
    if (pv->kp * p.nb * elem_bytes(pv->kern) <= QCONV_SUB_WEIGHT_BYTES) {
        size_t sub = QCONV_SUB_OUT_BYTES / p.nb / mr * mr;
        p.msub = sub < mr ? mr : sub < p.mb ? sub : p.mb;
    }
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
    int32_t *acc0 = qe_calloc(pv->npad, sizeof *acc0);
    double *scale = qe_calloc(pv->npad, sizeof *scale);
    double *bias = qe_calloc(pv->npad, sizeof *bias);
    for (size_t j = 0; j < cout; j++) {
        acc0[j] = (int32_t)(0u - (uint32_t)zx * (uint32_t)c->wsum[j]);
        scale[j] = rq->scale[j];
        bias[j] = rq->bias[j];
    }
    qe_qgemm_out o = {acc0, scale, bias, rq->relu, rq->out.min_f, rq->out.max_f, rq->out.delta_f,
                      rq->out.offset_f, rq->add, out, rq->residual, NULL, NULL, 0, 0, 0};
    /* The fast path's per-channel factors, for the kernels that use them. */
    float *fa = NULL, *fb = NULL;
    if (kern->fast_epilogue) {
        fa = qe_calloc(pv->npad, sizeof *fa);
        fb = qe_calloc(pv->npad, sizeof *fb);
        qe_qgemm_fast_init(&o, cout, fa, fb);
    }

    qconv_geom g = {h, w, oh, ow, zx, kern->kr == 2, pv->kp * elem_bytes(kern), 0, 1, pv->kp};
    size_t run = (size_t)c->kw * (size_t)c->cin, mr = (size_t)kern->mr;
    /* uint16 codes would need a widened copy of the input: reading that in place measured
     * slower than im2col rows (3x3, 64 channels, Sapphire Rapids) */
    if (!g.a16 && run % (size_t)kern->kc_align == 0) {
        g.inplace = 1;
        g.ks = (size_t)c->kh;
        g.kc = run;
    }
    /* Without padding every window lies inside the image: nothing to im2col. */
    int need_abuf = !g.inplace || c->pad > 0;

    qconv_plan p = plan(pv, M, g.a_stride);
    size_t nr = (size_t)kern->nr;
    size_t panel_bytes = pv->kp * nr * elem_bytes(kern), block_bytes = p.mb * g.a_stride;
    size_t ind_len = (p.mb + mr - 1) / mr * mr * g.ks;
    /* Channel chunks of a row block share its indirection and im2col rows, built once by all
     * threads before any GEMM rather than once per chunk. Chunks only exist when M is small,
     * and so are these. Plain malloc: the heap keeps the pages of a buffer this size from one
     * call to the next, where qe_malloc_aligned() maps (and faults in) large ones afresh. */
    int shared = p.nblocks > 1;
    const void **sind = shared ? qe_malloc(p.mblocks * ind_len * sizeof *sind) : NULL;
    uint8_t *sabuf = shared && need_abuf ? qe_malloc(p.mblocks * block_bytes) : NULL;
    if (sabuf)
        apad_zero(c, &g, sabuf, p.mblocks * p.mb);
#pragma omp parallel
    {
        const void **ind = shared ? NULL : qe_malloc(ind_len * sizeof *ind);
        uint8_t *abuf = !shared && need_abuf ? qe_malloc_aligned(block_bytes) : NULL;
        if (abuf)
            apad_zero(c, &g, abuf, p.mb);
        if (shared) {
#pragma omp for schedule(dynamic, 1)
            for (size_t b = 0; b < p.mblocks; b++) {
                size_t m0 = b * p.mb, rows = M - m0 < p.mb ? M - m0 : p.mb;
                block_ind(c, &g, in, m0, rows, sabuf ? sabuf + b * block_bytes : NULL,
                          sind + b * ind_len);
            }
        }
#pragma omp for schedule(dynamic, 1)
        for (size_t it = 0; it < p.mblocks * p.nblocks; it++) {
            size_t b = it / p.nblocks, m0 = b * p.mb, rows = M - m0 < p.mb ? M - m0 : p.mb;
            size_t nbeg = it % p.nblocks * p.nb, nend = nbeg + p.nb < cout ? nbeg + p.nb : cout;
            const void *const *bind = shared ? sind + b * ind_len : ind;
            if (!shared)
                block_ind(c, &g, in, m0, rows, abuf, ind);
            for (size_t m1 = 0; m1 < rows; m1 += p.msub) {
                size_t sub = rows - m1 < p.msub ? rows - m1 : p.msub;
                for (size_t n0 = nbeg; n0 < nend; n0 += nr) {
                    const uint8_t *wp = (const uint8_t *)c->wpack + n0 / nr * panel_bytes;
                    size_t nc = nend - n0 < nr ? nend - n0 : nr;
                    kern->gemm(sub, nc, g.ks, g.kc, bind + m1 * g.ks, wp,
                               out + (m0 + m1) * cout + n0, cout, &o, n0);
                }
            }
        }
        free(ind);
        qe_free_aligned(abuf);
    }
    free(sind);
    free(sabuf);
    free(acc0);
    free(scale);
    free(bias);
    free(fa);
    free(fb);
}
