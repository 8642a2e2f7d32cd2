/*
 * conv_f32.c - the FP32 inference convolution (conv.h) as a blocked GEMM over NHWC rows
 * (conv_gemm.h) with the microkernels of gemm_f32.h.
 *
 * Blocking, for the 32 KB L1 / 512 KB L2 per core of the CI machine (Zen3): a K block of one
 * weight panel is KC x 16 floats = 16 KB and stays in L1 while the tiles of an M block pass
 * over it; the M block's A rows (MC x KC floats = 144 KB) stay in L2 across all panels. Bias,
 * residual and ReLU are applied by the microkernel while the tile is still in registers.
 */
#include "conv.h"

#include <omp.h>
#include <string.h>

#include "conv_gemm.h"
#include "gemm_f32.h"
#include "qe_util.h"

#define MC_MAX 144
#define KC_MAX 256

void qe_conv_f32_init(qe_conv_f32 *c, int cin, int cout, int kh, int kw, int stride, int pad,
                      const float *w, const float *bias)
{
    int panels = (cout + QE_F32_GEMM_NR - 1) / QE_F32_GEMM_NR;
    size_t k = (size_t)kh * kw * cin;

    c->cin = cin, c->cout = cout, c->kh = kh, c->kw = kw, c->stride = stride, c->pad = pad;
    c->wpack = qe_malloc_aligned((size_t)panels * k * QE_F32_GEMM_NR * sizeof(float));
    qe_conv_pack_f32(w, cin, cout, kh, kw, QE_F32_GEMM_NR, c->wpack);
    /* Padded to whole panels: the kernels always load 16 bias values. */
    c->bias = qe_malloc_aligned((size_t)panels * QE_F32_GEMM_NR * sizeof(float));
    memset(c->bias, 0, (size_t)panels * QE_F32_GEMM_NR * sizeof(float));
    if (bias)
        memcpy(c->bias, bias, (size_t)cout * sizeof(float));
    c->priv = NULL;
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
} forward_ctx;

/* One task: rows [m0, m0 + rows) of the output times one group of weight panels, all K. */
static void run_task(const forward_ctx *x, size_t task, float *abuf)
{
    const qe_conv_geom *g = x->g;
    const qe_gemm_plan *p = x->plan;
    const size_t cout = (size_t)x->conv->cout;
    const size_t m0 = task / p->n_groups * p->mc;
    const size_t rows = g->m - m0 < p->mc ? g->m - m0 : p->mc;
    const int p0 = (int)(task % p->n_groups) * p->panels_per_task;
    const int p1 = p0 + p->panels_per_task < p->panels ? p0 + p->panels_per_task : p->panels;
    const size_t tiles = qe_gemm_tiles(rows, QE_F32_GEMM_MR);

    for (size_t kb = 0; kb < p->k_blocks; kb++) {
        const size_t k0 = kb * p->kc;
        const size_t kc = g->k - k0 < p->kc ? g->k - k0 : p->kc;
        const int last = kb + 1 == p->k_blocks;
        const float *a;
        size_t a_stride;
        if (g->direct) {
            a = x->in + m0 * g->cin + k0;
            a_stride = (size_t)g->cin;
        } else {
            qe_conv_im2col_f32(g, x->in, m0, rows, k0, kc, abuf);
            a = abuf;
            a_stride = kc;
        }
        for (int pn = p0; pn < p1; pn++) {
            const size_t col = (size_t)pn * QE_F32_GEMM_NR;
            const size_t nc = cout - col < QE_F32_GEMM_NR ? cout - col : QE_F32_GEMM_NR;
            const float *w = x->conv->wpack + ((size_t)pn * g->k + k0) * QE_F32_GEMM_NR;
            qe_f32_gemm_params params = {kb == 0 ? x->conv->bias + col : NULL, NULL,
                                         last && x->relu};
            size_t row = 0;
            for (size_t t = 0; t < tiles; t++) {
                const size_t mr = qe_gemm_tile_rows(rows, tiles, t);
                const size_t crow = (m0 + row) * cout + col;
                params.residual = last && x->residual ? x->residual + crow : NULL;
                if (pn == p0 && g->direct && t + 1 < tiles) {
                    const float *na = a + (row + mr) * a_stride;
                    for (size_t r = 0; r < mr; r++)
                        for (size_t k = 0; k < kc; k += 16)
                            __builtin_prefetch(na + r * a_stride + k, 0, 2);
                }
                x->cfg->ukernel[mr](nc, kc, a + row * a_stride, a_stride, w, x->out + crow, cout,
                                    &params);
                row += mr;
            }
        }
    }
}

void qe_conv_f32_forward(const qe_conv_f32 *c, const float *in, int n, int h, int w,
                         float *out, const float *residual, int relu)
{
    qe_conv_geom g;
    qe_gemm_plan plan;
    qe_conv_geom_init(&g, c->cin, c->kh, c->kw, c->stride, c->pad, n, h, w);
    if (g.m == 0)
        return;
    int threads = omp_get_max_threads();
    int panels = (c->cout + QE_F32_GEMM_NR - 1) / QE_F32_GEMM_NR;
    qe_gemm_plan_init(&plan, g.m, g.k, panels, QE_F32_GEMM_MR, MC_MAX, KC_MAX, threads);
    if ((size_t)threads > plan.tasks)
        threads = (int)plan.tasks;

    forward_ctx x = {c, &g, &plan, qe_f32_gemm_config_get(), in, residual, out, relu};
#pragma omp parallel num_threads(threads)
    {
        float *abuf = g.direct ? NULL : qe_malloc_aligned(plan.mc * plan.kc * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < (long)plan.tasks; t++)
            run_task(&x, (size_t)t, abuf);
        qe_free_aligned(abuf);
    }
}
