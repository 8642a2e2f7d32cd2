/*
 * conv_gemm.h - a convolution as a GEMM, shared by conv_f32.c and conv_f64acc.c.
 *
 * NHWC makes every output pixel one GEMM row: M = n*oh*ow rows, K = kh*kw*cin in (ky, kx, ci)
 * order, N = cout. A row's K columns fall into kh "segments", one per kernel row: kw*cin floats
 * that are contiguous in the input unless the row's window crosses the left or right padding.
 * So the f32 path reads A in place through one pointer per (row, segment) and copies only the
 * clipped segments; the f64 path gathers (im2col) and widens blocks of A. Weights are packed
 * once into panels of `nr` output channels, K rows each, zero-filled past cout.
 *
 * The work is cut into tasks of (M block) x (group of weight panels), with K blocks inside each
 * task: a K block of one weight panel stays in L1 while the task's rows stream past it from L2.
 * K blocks follow segments: a block is a run of whole segments, or one piece of a segment that
 * is longer than the block size.
 */
#ifndef QE_CONV_GEMM_H
#define QE_CONV_GEMM_H

#include <stddef.h>

typedef struct qe_conv_geom {
    int n, h, w, cin, kh, kw, stride, pad, oh, ow;
    size_t m;              /* GEMM rows: n * oh * ow (0 when the output is empty) */
    size_t k;              /* GEMM depth: kh * kw * cin */
    int direct;            /* 1x1, stride 1, pad 0: A row m is input pixel m */
} qe_conv_geom;

typedef struct qe_gemm_plan {
    size_t mc;             /* rows per M block (a multiple of the tile rows, except the last) */
    size_t m_blocks;
    int panels;            /* weight panels in all */
    int panels_per_task;
    int n_groups;          /* panel groups: > 1 only when M alone cannot feed the threads */
    size_t tasks;          /* m_blocks * n_groups */
    size_t seg_len;        /* kw * cin */
    int segs;              /* kh */
    int segs_per_block;    /* whole segments per K block (1 when segments are split) */
    int pieces;            /* K blocks per segment (1 when whole segments are grouped) */
    size_t piece;          /* length of a piece; the last one of a segment may be shorter */
    size_t k_blocks;
    size_t kc_max;         /* no K block is longer */
} qe_gemm_plan;

/* One K block: floats [off, off + len) of segments [seg, seg + nseg), which are the GEMM
 * columns [k0, k0 + kc) when nseg == 1 or len == seg_len. */
typedef struct qe_gemm_kblock {
    int seg, nseg;
    size_t off, len;
    size_t k0, kc;
} qe_gemm_kblock;

/* 1 when the layer parameters describe a convolution (positive sizes, pad >= 0). */
int qe_conv_shape_ok(int cin, int cout, int kh, int kw, int stride, int pad);
/* Output size and GEMM shape of a forward call; m = 0 for an empty or invalid one. */
void qe_conv_geom_init(qe_conv_geom *g, int cin, int kh, int kw, int stride, int pad, int n,
                       int h, int w);

/* Cuts M x K x panels for `threads` threads: M blocks of at most mc_max rows, K blocks of at
 * most kc_max columns along segments, and, when M blocks are fewer than the threads, panel
 * groups as well. Blocks are evened out so that no thread is left with a sliver. */
void qe_gemm_plan_init(qe_gemm_plan *p, const qe_conv_geom *g, int panels, int tile_rows,
                       size_t mc_max, size_t kc_max, int threads);
void qe_gemm_plan_kblock(const qe_gemm_plan *p, size_t b, qe_gemm_kblock *kb);

/* `rows` rows split into tiles of at most `tile_rows` as evenly as possible, so a tail of 49
 * rows is 4 tiles of 6 and 5 of 5, never 8 of 6 and a tile of 1: the first `wide` tiles have
 * rows_lo + 1 rows, the others rows_lo. */
typedef struct qe_gemm_tiling {
    size_t tiles, rows_lo, wide;
} qe_gemm_tiling;

void qe_gemm_tiling_init(qe_gemm_tiling *t, size_t rows, int tile_rows);

static inline size_t qe_gemm_tile_rows(const qe_gemm_tiling *t, size_t i)
{
    return t->rows_lo + (i < t->wide);
}

/* The panels from pn that one microkernel call covers: two where the ISA has two-panel kernels
 * (pair) and pn + 1 < p1, else one. *col and *nc receive the first output column and the number
 * of columns (of cout) they hold, nr columns per panel. */
static inline int qe_gemm_panel_span(int pn, int p1, int pair, size_t nr, size_t cout, size_t *col,
                                     size_t *nc)
{
    const int span = pair && pn + 1 < p1 ? 2 : 1;
    *col = (size_t)pn * nr;
    *nc = cout - *col < span * nr ? cout - *col : span * nr;
    return span;
}

/* Weights [cout][cin][kh][kw] -> panels[p][k][nr] with k = (ky*kw + kx)*cin + ci. */
void qe_conv_pack_f32(const float *w, int cin, int cout, int kh, int kw, int nr, float *panels);
void qe_conv_pack_f64(const float *w, int cin, int cout, int kh, int kw, int nr, double *panels);

/* im2col: columns [k0, k0 + kc) of GEMM rows [m0, m0 + rows) into dst (row r at dst + r*kc).
 * Padding reads as 0. */
void qe_conv_im2col_f32(const qe_conv_geom *g, const float *in, size_t m0, size_t rows,
                        size_t k0, size_t kc, float *dst);

#endif
