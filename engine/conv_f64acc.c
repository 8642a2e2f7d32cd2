/*
 * conv_f64acc.c - the exact calibration convolution of spec quantsim.md §3.6.2 (conv.h):
 * y = (float)(sum of x*w in f64 + bias), each product exact, one rounding to f32.
 *
 * Same GEMM lowering as conv_f32.c (conv_gemm.h) with f64 operands: every block of A is
 * gathered and widened to f64 once, so the microkernel's inner loop is pure f64 FMA. Partial
 * sums between K blocks are kept in f64 in a per-thread buffer; only the last block rounds.
 * Summation order per output is k = 0..K-1 on every path, so AVX2 and portable agree bit for bit.
 */
#include "conv.h"

#include <omp.h>
#include <string.h>

#include "conv_gemm.h"
#include "gemm_f64.h"
#include "qe_util.h"

/* A block of 72 x 256 doubles = 144 KB (L2), one weight panel block 256 x 8 doubles = 16 KB (L1). */
#define MC_MAX 72
#define KC_MAX 256

void qe_conv_f64acc_init(qe_conv_f64acc *c, int cin, int cout, int kh, int kw, int stride,
                         int pad, const float *w, const float *bias)
{
    memset(c, 0, sizeof *c);
    c->cin = cin, c->cout = cout, c->kh = kh, c->kw = kw, c->stride = stride, c->pad = pad;
    if (!qe_conv_shape_ok(cin, cout, kh, kw, stride, pad))
        return;   /* forward computes nothing for it (qe_conv_geom_init) */
    int panels = (cout + QE_F64_GEMM_NR - 1) / QE_F64_GEMM_NR;
    size_t k = (size_t)kh * kw * cin;
    c->wpack = qe_malloc_aligned((size_t)panels * k * QE_F64_GEMM_NR * sizeof(double));
    qe_conv_pack_f64(w, cin, cout, kh, kw, QE_F64_GEMM_NR, c->wpack);
    c->bias = qe_malloc_aligned((size_t)panels * QE_F64_GEMM_NR * sizeof(double));
    for (int i = 0; i < panels * QE_F64_GEMM_NR; i++)
        c->bias[i] = bias && i < cout ? (double)bias[i] : 0.0;
}

void qe_conv_f64acc_free(qe_conv_f64acc *c)
{
    qe_free_aligned(c->wpack);
    qe_free_aligned(c->bias);
    memset(c, 0, sizeof *c);
}

typedef struct forward_ctx {
    const qe_conv_f64acc *conv;
    const qe_conv_geom *g;
    const qe_gemm_plan *plan;
    const qe_f64_gemm_config *cfg;
    const float *in;
    float *out;
    int relu;
} forward_ctx;

typedef struct scratch {
    float *a32;            /* im2col block in f32 */
    double *a64;           /* the same, widened */
    double *acc;           /* partial sums [rows][panels_per_task * 8] between K blocks */
} scratch;

/* A rows [m0, m0 + rows), columns [k0, k0 + kc), widened to f64 at s->a64 (row stride kc). */
static void gather(const forward_ctx *x, size_t m0, size_t rows, size_t k0, size_t kc,
                   const scratch *s)
{
    const qe_conv_geom *g = x->g;
    const float *src = s->a32;
    size_t src_stride = kc;
    if (g->direct) {
        src = x->in + m0 * g->cin + k0;
        src_stride = (size_t)g->cin;
    } else {
        qe_conv_im2col_f32(g, x->in, m0, rows, k0, kc, s->a32);
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t k = 0; k < kc; k++)
            s->a64[r * kc + k] = src[r * src_stride + k];
}

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
    const size_t acc_stride = (size_t)p->panels_per_task * QE_F64_GEMM_NR;

    for (size_t b = 0; b < p->k_blocks; b++) {
        qe_gemm_kblock kb;
        qe_gemm_plan_kblock(p, b, &kb);
        const size_t k0 = kb.k0, kc = kb.kc;
        gather(x, m0, rows, k0, kc, s);
        /* Panels two at a time where the ISA has two-panel kernels, the last odd one alone. */
        const int pair = x->cfg->ukernel2[1] != NULL;
        for (int pn = p0, span; pn < p1; pn += span) {
            size_t col, nc;
            span = qe_gemm_panel_span(pn, p1, pair, QE_F64_GEMM_NR, cout, &col, &nc);
            const size_t w_next = g->k * QE_F64_GEMM_NR;   /* from one panel's block to the next's */
            const double *w = x->conv->wpack + (size_t)pn * w_next + k0 * QE_F64_GEMM_NR;
            double *acc = s->acc ? s->acc + (size_t)(pn - p0) * QE_F64_GEMM_NR : NULL;
            qe_f64_gemm_params params = {b == 0, x->conv->bias + col, NULL, cout, x->relu};
            size_t row = 0;
            for (size_t t = 0; t < tl.tiles; t++) {
                const size_t mr = qe_gemm_tile_rows(&tl, t);
                if (b + 1 == p->k_blocks)
                    params.out = x->out + (m0 + row) * cout + col;
                double *acc_rows = acc ? acc + row * acc_stride : NULL;
                if (span == 2)
                    x->cfg->ukernel2[mr](nc, kc, s->a64 + row * kc, kc, w, w_next, acc_rows, acc_stride, &params);
                else
                    x->cfg->ukernel[mr](nc, kc, s->a64 + row * kc, kc, w, acc_rows, acc_stride, &params);
                row += mr;
            }
        }
    }
}

void qe_conv_f64acc_forward(const qe_conv_f64acc *c, const float *in, int n, int h, int w,
                            float *out, int relu)
{
    qe_conv_geom g;
    qe_gemm_plan plan;
    qe_conv_geom_init(&g, c->cin, c->kh, c->kw, c->stride, c->pad, n, h, w);
    if (g.m == 0 || !c->wpack)
        return;
    int threads = omp_get_max_threads();
    int panels = (c->cout + QE_F64_GEMM_NR - 1) / QE_F64_GEMM_NR;
    const qe_f64_gemm_config *cfg = qe_f64_gemm_config_get();
    qe_gemm_plan_init(&plan, &g, panels, cfg->mr, MC_MAX, KC_MAX, threads);
    if ((size_t)threads > plan.tasks)
        threads = (int)plan.tasks;

    forward_ctx x = {c, &g, &plan, cfg, in, out, relu};
#pragma omp parallel num_threads(threads)
    {
        scratch s;
        s.a32 = g.direct ? NULL : qe_malloc_aligned(plan.mc * plan.kc_max * sizeof(float));
        s.a64 = qe_malloc_aligned(plan.mc * plan.kc_max * sizeof(double));
        /* Only a task with several K blocks carries partial sums from one to the next. */
        s.acc = plan.k_blocks > 1 ? qe_malloc_aligned(plan.mc * plan.panels_per_task *
                                                      QE_F64_GEMM_NR * sizeof(double))
                                  : NULL;
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < (long)plan.tasks; t++)
            run_task(&x, (size_t)t, &s);
        qe_free_aligned(s.a32);
        qe_free_aligned(s.a64);
        qe_free_aligned(s.acc);
    }
}
