/*
 * conv_f32.c - the FP32 inference convolution (conv.h) as an indirect GEMM over NHWC rows
 * (conv_gemm.h) with the microkernels of gemm_f32.h.
 *
 * Blocking, for the 32 KB L1 / 512 KB L2 per core of the CI machine (Zen3): a K block of one
 * weight panel is at most KC x 16 floats = 16 KB and stays in L1 while the tiles of an M block
 * pass over it; the M block's A rows (MC x KC floats = 144 KB) stay in L2 across all panels.
 * A is read in place through one pointer per (row, kernel row); only a kernel row clipped by
 * the left/right padding is copied (with its zeros), and one entirely in the top/bottom padding
 * points at a block of zeros. Bias, residual and ReLU are applied by the microkernel while the
 * tile is still in registers.
 */
#include "conv.h"

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xmmintrin.h>

#include "conv_gemm.h"
#include "gemm_f32.h"
#include "qe_util.h"

#define MC_MAX 144
#define KC_MAX 256
/* Outputs from this size on are stored non-temporally: twice a 2-core share of Zen3's L3
 * could hold, and the size of ResNet's stage-1 activations at batch 16 (25-51 MB). */
#define STREAM_MIN_BYTES ((size_t)16 << 20)

/* What a kernel row lying wholly in the top or bottom padding reads (a K block is <= KC_MAX). */
static const float zeros[KC_MAX];

void qe_conv_f32_init(qe_conv_f32 *c, int cin, int cout, int kh, int kw, int stride, int pad,
                      const float *w, const float *bias)
{
    memset(c, 0, sizeof *c);
    c->cin = cin, c->cout = cout, c->kh = kh, c->kw = kw, c->stride = stride, c->pad = pad;
    if (!qe_conv_shape_ok(cin, cout, kh, kw, stride, pad))
        return;   /* forward computes nothing for it (qe_conv_geom_init) */
    int panels = (cout + QE_F32_GEMM_NR - 1) / QE_F32_GEMM_NR;
    size_t k = (size_t)kh * kw * cin;
    c->wpack = qe_malloc_aligned((size_t)panels * k * QE_F32_GEMM_NR * sizeof(float));
    qe_conv_pack_f32(w, cin, cout, kh, kw, QE_F32_GEMM_NR, c->wpack);
    /* Padded to whole panels: the kernels always load 16 bias values. */
    c->bias = qe_malloc_aligned((size_t)panels * QE_F32_GEMM_NR * sizeof(float));
    memset(c->bias, 0, (size_t)panels * QE_F32_GEMM_NR * sizeof(float));
    if (bias)
        memcpy(c->bias, bias, (size_t)cout * sizeof(float));
}

void qe_conv_f32_free(qe_conv_f32 *c)
{
    qe_free_aligned(c->wpack);
    qe_free_aligned(c->bias);
    memset(c, 0, sizeof *c);
}

typedef struct forward_ctx {
    const qe_conv_f32 *conv;
    const qe_conv_geom *g;
    const qe_gemm_plan *plan;
    const qe_f32_gemm_config *cfg;
    const float *in;
    const float *residual;
    float *out;
    int relu;
    int stream;
} forward_ctx;

typedef struct scratch {
    const float **ind;     /* [rows * segs_per_block]: tile by tile, segment-major in a tile */
    float *clipped;        /* copies of the kernel rows cut by the left/right padding */
} scratch;

/* Points ind at the K block's segments for rows [m0, m0 + rows), laid out as the kernels read
 * them: tile after tile, a[s * mr + r] within a tile. */
static void build_indirection(const forward_ctx *x, size_t m0, const qe_gemm_tiling *tl,
                              const qe_gemm_kblock *kb, const scratch *s)
{
    const qe_conv_geom *g = x->g;
    const size_t hw = (size_t)g->oh * g->ow, nseg = (size_t)kb->nseg;
    size_t b = m0 / hw;
    int oy = (int)(m0 % hw / g->ow), ox = (int)(m0 % g->ow);
    size_t row = 0;

    for (size_t t = 0; t < tl->tiles; t++) {
        const size_t mr = qe_gemm_tile_rows(tl, t);
        const float **tile = s->ind + row * nseg;
        for (size_t i = 0; i < mr; i++, row++) {
            const int iy0 = oy * g->stride - g->pad, ix0 = ox * g->stride - g->pad;
            const int inside = ix0 >= 0 && ix0 + g->kw <= g->w;
            for (size_t sg = 0; sg < nseg; sg++) {
                const int ky = kb->seg + (int)sg, iy = iy0 + ky;
                const float *p;
                if (iy < 0 || iy >= g->h) {
                    p = zeros;
                } else if (inside) {
                    p = x->in + ((b * g->h + (size_t)iy) * g->w + (size_t)ix0) * g->cin + kb->off;
                } else {
                    float *copy = s->clipped + (row * nseg + sg) * kb->len;
                    qe_conv_im2col_f32(g, x->in, m0 + row, 1,
                                       (size_t)ky * x->plan->seg_len + kb->off, kb->len, copy);
                    p = copy;
                }
                tile[sg * mr + i] = p;
            }
            if (++ox == g->ow) {
                ox = 0;
                if (++oy == g->oh) {
                    oy = 0;
                    b++;
                }
            }
        }
    }
}

/* The first pass over an M block's rows (first panel) is the one that brings them in from
 * memory; the hardware prefetcher does not see six interleaved rows as streams, so fetch the
 * next tile's segments while this one computes. Later panels find them in L2. */
static void prefetch_tile(const float *const *a, size_t count, size_t len)
{
    for (size_t q = 0; q < count; q++)
        for (size_t k = 0; k < len; k += 64 / sizeof(float))
            __builtin_prefetch(a[q] + k, 0, 3);
}

/* One task: rows [m0, m0 + rows) of the output times one group of weight panels, all K. */
static void run_task(const forward_ctx *x, size_t task, const scratch *s)
{
    const qe_conv_geom *g = x->g;
    const qe_gemm_plan *p = x->plan;
    const size_t cout = (size_t)x->conv->cout;
    const size_t m0 = task / p->n_groups * p->mc;
    const size_t rows = g->m - m0 < p->mc ? g->m - m0 : p->mc;
    const int p0 = (int)(task % p->n_groups) * p->panels_per_task;
    const int p1 = p0 + p->panels_per_task < p->panels ? p0 + p->panels_per_task : p->panels;
    qe_gemm_tiling tl;
    qe_gemm_tiling_init(&tl, rows, x->cfg->mr);

    /* A residual that is the output itself is added in the first K block, before later blocks
     * replace it with partial sums; any other in the last. */
    const size_t res_block = x->residual == x->out ? 0 : p->k_blocks - 1;
    for (size_t b = 0; b < p->k_blocks; b++) {
        qe_gemm_kblock kb;
        qe_gemm_plan_kblock(p, b, &kb);
        const int last = b + 1 == p->k_blocks;
        build_indirection(x, m0, &tl, &kb, s);
        /* Panels two at a time where the ISA has two-panel kernels, the last odd one alone. */
        const int pair = x->cfg->igemm2[1] != NULL;
        for (int pn = p0, span; pn < p1; pn += span) {
            size_t col, nc;
            span = qe_gemm_panel_span(pn, p1, pair, QE_F32_GEMM_NR, cout, &col, &nc);
            const size_t w_next = g->k * QE_F32_GEMM_NR;   /* from one panel's block to the next's */
            const float *w = x->conv->wpack + (size_t)pn * w_next + kb.k0 * QE_F32_GEMM_NR;
            qe_f32_gemm_params params = {b == 0 ? x->conv->bias + col : NULL, NULL,
                                         last && x->relu, last && x->stream};
            size_t row = 0;
            for (size_t t = 0; t < tl.tiles; t++) {
                const size_t mr = qe_gemm_tile_rows(&tl, t);
                const size_t crow = (m0 + row) * cout + col;
                params.residual = b == res_block && x->residual ? x->residual + crow : NULL;
                if (pn == p0 && t + 1 < tl.tiles)
                    prefetch_tile(s->ind + (row + mr) * kb.nseg,
                                  qe_gemm_tile_rows(&tl, t + 1) * kb.nseg, kb.len);
                if (span == 2)
                    x->cfg->igemm2[mr](nc, (size_t)kb.nseg, kb.len, s->ind + row * kb.nseg, w, w_next,
                                       x->out + crow, cout, &params);
                else
                    x->cfg->igemm[mr](nc, (size_t)kb.nseg, kb.len, s->ind + row * kb.nseg, w,
                                      x->out + crow, cout, &params);
                row += mr;
            }
        }
    }
    if (x->stream)
        _mm_sfence();   /* non-temporal stores are weakly ordered: publish them */
}

void qe_conv_f32_forward(const qe_conv_f32 *c, const float *in, int n, int h, int w,
                         float *out, const float *residual, int relu)
{
    qe_conv_geom g;
    qe_gemm_plan plan;
    qe_conv_geom_init(&g, c->cin, c->kh, c->kw, c->stride, c->pad, n, h, w);
    if (g.m == 0 || !c->wpack)
        return;
    int threads = omp_get_max_threads();
    int panels = (c->cout + QE_F32_GEMM_NR - 1) / QE_F32_GEMM_NR;
    const qe_f32_gemm_config *cfg = qe_f32_gemm_config_get();
    qe_gemm_plan_init(&plan, &g, panels, cfg->mr, MC_MAX, KC_MAX, threads);
    if ((size_t)threads > plan.tasks)
        threads = (int)plan.tasks;

    /* An output this large is evicted before the next layer reads it: write it past the
     * caches instead of first reading every line in (rows must be 32-byte aligned). */
    size_t out_bytes = g.m * (size_t)c->cout * sizeof(float);
    int stream = out_bytes >= STREAM_MIN_BYTES && (uintptr_t)out % 32 == 0 && c->cout % 8 == 0;

    forward_ctx x = {c, &g, &plan, cfg, in, residual, out, relu, stream};
#pragma omp parallel num_threads(threads)
    {
        scratch s;
        s.ind = qe_malloc(plan.mc * plan.segs_per_block * sizeof *s.ind);
        /* Clipped kernel rows only occur with horizontal padding. */
        s.clipped = g.pad > 0 ? qe_malloc_aligned(plan.mc * plan.segs_per_block * plan.piece *
                                                  sizeof(float))
                              : NULL;
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < (long)plan.tasks; t++)
            run_task(&x, (size_t)t, &s);
        free(s.ind);
        qe_free_aligned(s.clipped);
    }
}
