/*
 * conv_gemm.c - geometry, work plan, weight packing and im2col of the GEMM convolutions
 * (conv_gemm.h).
 */
#include "conv_gemm.h"

#include <string.h>

#include "conv.h"

static size_t div_up(size_t a, size_t b) { return (a + b - 1) / b; }

int qe_conv_shape_ok(int cin, int cout, int kh, int kw, int stride, int pad)
{
    return cin > 0 && cout > 0 && kh > 0 && kw > 0 && stride > 0 && pad >= 0;
}

void qe_conv_geom_init(qe_conv_geom *g, int cin, int kh, int kw, int stride, int pad, int n,
                       int h, int w)
{
    g->n = n, g->h = h, g->w = w, g->cin = cin;
    g->kh = kh, g->kw = kw, g->stride = stride, g->pad = pad;
    /* A nonsensical shape is an empty output, never a division by zero or a wild index. */
    int ok = qe_conv_shape_ok(cin, 1, kh, kw, stride, pad) && n > 0 && h > 0 && w > 0;
    g->oh = ok ? qe_conv_out_size(h, kh, stride, pad) : 0;
    g->ow = ok ? qe_conv_out_size(w, kw, stride, pad) : 0;
    g->m = (g->oh > 0 && g->ow > 0) ? (size_t)n * g->oh * g->ow : 0;
    g->k = (size_t)kh * kw * cin;
    g->direct = kh == 1 && kw == 1 && stride == 1 && pad == 0;
}

void qe_gemm_plan_init(qe_gemm_plan *p, const qe_conv_geom *g, int panels, int tile_rows,
                       size_t mc_max, size_t kc_max, int threads)
{
    size_t t = threads > 0 ? (size_t)threads : 1;
    size_t m = g->m, mb = div_up(m, mc_max);

    p->n_groups = 1;
    if (mb < t) {
        /* Too few rows to go round (batch 1, late layers): split the output channels too. */
        size_t groups = div_up(t, mb ? mb : 1);
        p->n_groups = groups < (size_t)panels ? (int)groups : panels;
    } else if (mb < 8 * t) {
        /* Few blocks: make their count a multiple of the threads so none waits for a straggler;
         * with many blocks the dynamic schedule evens the load out anyway. */
        mb = div_up(mb, t) * t;
    }
    if (mb == 0)
        mb = 1;
    p->mc = div_up(div_up(m, mb), tile_rows) * tile_rows;
    p->m_blocks = m ? div_up(m, p->mc) : 0;
    p->panels = panels;
    p->panels_per_task = (int)div_up(panels, p->n_groups);
    p->n_groups = p->panels_per_task ? (int)div_up(panels, p->panels_per_task) : 1;
    p->tasks = p->m_blocks * p->n_groups;

    /* K blocks, evened out: 3x3 over 64 channels is 3 blocks of one 192-float kernel row, 3x3
     * over 512 is 3 x 6 pieces of 256, conv1 (7 rows of 21) is one block. */
    p->seg_len = (size_t)g->kw * g->cin;
    p->segs = g->kh;
    p->kc_max = kc_max;
    if (p->seg_len <= kc_max) {
        size_t per = p->seg_len ? kc_max / p->seg_len : (size_t)g->kh;
        size_t blocks = div_up((size_t)g->kh, per);
        p->segs_per_block = (int)div_up((size_t)g->kh, blocks ? blocks : 1);
        p->pieces = 1;
        p->piece = p->seg_len;
        p->k_blocks = div_up((size_t)g->kh, (size_t)p->segs_per_block);
    } else {
        p->segs_per_block = 1;
        p->pieces = (int)div_up(p->seg_len, kc_max);
        p->piece = div_up(p->seg_len, (size_t)p->pieces);
        p->k_blocks = (size_t)g->kh * p->pieces;
    }
}

void qe_gemm_plan_kblock(const qe_gemm_plan *p, size_t b, qe_gemm_kblock *kb)
{
    if (p->pieces == 1) {
        kb->seg = (int)b * p->segs_per_block;
        kb->nseg = p->segs - kb->seg < p->segs_per_block ? p->segs - kb->seg : p->segs_per_block;
        kb->off = 0;
        kb->len = p->seg_len;
    } else {
        kb->seg = (int)(b / p->pieces);
        kb->nseg = 1;
        kb->off = b % p->pieces * p->piece;
        kb->len = p->seg_len - kb->off < p->piece ? p->seg_len - kb->off : p->piece;
    }
    kb->k0 = (size_t)kb->seg * p->seg_len + kb->off;
    kb->kc = (size_t)kb->nseg * kb->len;
}

void qe_gemm_tiling_init(qe_gemm_tiling *t, size_t rows, int tile_rows)
{
    t->tiles = div_up(rows, (size_t)tile_rows);
    t->rows_lo = t->tiles ? rows / t->tiles : 0;
    t->wide = t->tiles ? rows % t->tiles : 0;
}

#define PACK_BODY(T)                                                                      \
    size_t k = (size_t)kh * kw * cin;                                                     \
    int panels = (cout + nr - 1) / nr;                                                    \
    for (int p = 0; p < panels; p++)                                                      \
        for (int ky = 0; ky < kh; ky++)                                                   \
            for (int kx = 0; kx < kw; kx++)                                               \
                for (int ci = 0; ci < cin; ci++) {                                        \
                    size_t kk = ((size_t)ky * kw + kx) * cin + ci;                        \
                    T *dst = out + ((size_t)p * k + kk) * nr;                             \
                    for (int j = 0; j < nr; j++) {                                        \
                        int co = p * nr + j;                                              \
                        dst[j] = co < cout ? w[(((size_t)co * cin + ci) * kh + ky) * kw + kx] \
                                           : 0;                                           \
                    }                                                                     \
                }

void qe_conv_pack_f32(const float *w, int cin, int cout, int kh, int kw, int nr, float *out)
{
    PACK_BODY(float)
}

void qe_conv_pack_f64(const float *w, int cin, int cout, int kh, int kw, int nr, double *out)
{
    PACK_BODY(double)
}

/* Zero-fills or copies n floats; most runs are short (conv1: 21 floats), so skip empty ones
 * rather than pay for a library call. */
static inline void zero_run(float *d, size_t n)
{
    if (n)
        memset(d, 0, n * sizeof *d);
}

void qe_conv_im2col_f32(const qe_conv_geom *g, const float *in, size_t m0, size_t rows,
                        size_t k0, size_t kc, float *dst)
{
    /* One kernel row (fixed ky, all kx and ci) is one contiguous run of the NHWC input, cut
     * only where it crosses the left or right padding. */
    const size_t run = (size_t)g->kw * g->cin;
    const size_t hw = (size_t)g->oh * g->ow;
    /* Output coordinates of row m0, then stepped along: no division per row. */
    size_t b = m0 / hw;
    int oy = (int)(m0 % hw / g->ow), ox = (int)(m0 % g->ow);

    for (size_t r = 0; r < rows; r++, dst += kc) {
        int iy0 = oy * g->stride - g->pad, ix0 = ox * g->stride - g->pad;
        int kx_lo = ix0 < 0 ? -ix0 : 0;
        int kx_hi = g->w - ix0 < g->kw ? g->w - ix0 : g->kw;
        size_t lo = (size_t)kx_lo * g->cin;
        size_t hi = kx_hi > kx_lo ? (size_t)kx_hi * g->cin : lo;
        const float *img = in + b * g->h * g->w * g->cin;
        float *d = dst;

        for (size_t k = k0; k < k0 + kc;) {
            size_t ky = k / run, off = k - ky * run;
            size_t end = run < off + (k0 + kc - k) ? run : off + (k0 + kc - k);
            int iy = iy0 + (int)ky;
            if (iy < 0 || iy >= g->h) {
                zero_run(d, end - off);
            } else {
                /* Kernel-row position j reads input element base + j, valid for j in [lo, hi). */
                const float *row = img + (size_t)iy * g->w * g->cin;
                ptrdiff_t base = (ptrdiff_t)ix0 * g->cin;
                size_t a = off < lo ? lo : off, z = end < hi ? end : hi;
                if (a > end)
                    a = end;
                if (z < a)
                    z = a;
                zero_run(d, a - off);
                if (z > a)
                    memcpy(d + (a - off), row + (base + (ptrdiff_t)a), (z - a) * sizeof *d);
                zero_run(d + (z - off), end - z);
            }
            d += end - off;
            k += end - off;
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
