/*
 * test_conv.c - the float convolutions (conv.h) and their microkernels.
 *
 * qe_conv_f32: every path (AVX2 when the CPU has it, portable always) against a naive f64
 * convolution over odd shapes - channels off the 16-panel grid, rows off the 6-row tile, strides
 * 1/2, pads 0/1/3, kernels 1/3/7, K above the K block, batch 1 and 3, residual and ReLU on/off -
 * within 1e-5 * sum|x*w|, plus every ResNet18/50 layer shape (bench/shapes.c) on a small image.
 * The microkernels are compared one by one with the portable ones over every row count and
 * column tail; thread counts must not change a single bit.
 *
 * qe_conv_f64acc (quantsim.md §3.6.2): the exact sum of the products, computed in 128-bit fixed
 * point from data whose exponents make every product an integer multiple of 2^-64, rounded to
 * f32 by hand (no long double, no libm), must equal the output except where rounding the f64
 * running sum first lands on the other side of an f32 rounding boundary (double rounding): those
 * cases are counted and expected to be 0 on random data. AVX2, AVX-512 and portable must agree
 * bitwise.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "conv.h"
#include "conv_gemm.h"
#include "cpu.h"
#include "gemm_f32.h"
#include "qe_util.h"
#include "qtest.h"

/* The benchmark's shape list, compiled in here because tests link the engine only. */
#include "shapes.h"

static uint64_t rng_state = 0x2545f4914f6cdd1du;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float rnd(void) { return (float)((double)(rng_next() >> 11) / 4503599627370496.0 - 1.0); }

static float *rnd_array(size_t n)
{
    float *p = qe_malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = rnd();
    return p;
}

typedef struct conv_case {
    int n, h, w, cin, cout, k, stride, pad, residual, relu;
} conv_case;

static int out_h(const conv_case *c) { return qe_conv_out_size(c->h, c->k, c->stride, c->pad); }
static int out_w(const conv_case *c) { return qe_conv_out_size(c->w, c->k, c->stride, c->pad); }

/* Naive NHWC x OIHW convolution in f64; bound = sum of the magnitudes of all terms. */
static void naive_conv(const conv_case *c, const float *in, const float *wt, const float *bias,
                       const float *res, double *ref, double *bound)
{
    int oh = out_h(c), ow = out_w(c);
    for (int b = 0; b < c->n; b++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int co = 0; co < c->cout; co++) {
                    double s = bias[co], m = fabs(bias[co]);
                    for (int ky = 0; ky < c->k; ky++)
                        for (int kx = 0; kx < c->k; kx++) {
                            int iy = oy * c->stride - c->pad + ky, ix = ox * c->stride - c->pad + kx;
                            if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w)
                                continue;
                            const float *px = in + (((size_t)b * c->h + iy) * c->w + ix) * c->cin;
                            for (int ci = 0; ci < c->cin; ci++) {
                                double p = (double)px[ci] *
                                           wt[(((size_t)co * c->cin + ci) * c->k + ky) * c->k + kx];
                                s += p;
                                m += fabs(p);
                            }
                        }
                    size_t o = (((size_t)b * oh + oy) * ow + ox) * c->cout + co;
                    if (res) {
                        s += res[o];
                        m += fabs(res[o]);
                    }
                    if (c->relu && s < 0)
                        s = 0;
                    ref[o] = s;
                    bound[o] = m;
                }
}

#define GUARD 37
#define GUARD_VALUE 12345.0f

/* Runs qe_conv_f32 on the current path into out (len + GUARD floats, guards preset). */
static void run_f32(const qe_conv_f32 *cv, const conv_case *c, const float *in, const float *res,
                    float *out, size_t len)
{
    for (size_t i = 0; i < len + GUARD; i++)
        out[i] = i < len ? NAN : GUARD_VALUE;
    qe_conv_f32_forward(cv, in, c->n, c->h, c->w, out, res, c->relu);
}

/* Checks one output against the reference; returns the worst error / tolerance. */
static double check_against(const char *what, const conv_case *c, const float *out,
                            const double *ref, const double *bound, size_t len)
{
    double worst = 0;
    size_t bad = 0;
    for (size_t i = 0; i < len; i++) {
        double e = fabs(out[i] - ref[i]) / (1e-5 * bound[i] + 1e-30);
        if (!(e <= 1))
            bad++;
        if (!(e <= worst))
            worst = e;
    }
    int guards_ok = 1;
    for (size_t i = len; i < len + GUARD; i++)
        guards_ok &= out[i] == GUARD_VALUE;
    CHECKF(bad == 0 && guards_ok,
           "%s n%d %dx%d cin%d cout%d k%d s%d p%d res%d relu%d: %zu bad, worst %.3g, guards %d",
           what, c->n, c->h, c->w, c->cin, c->cout, c->k, c->stride, c->pad, c->residual, c->relu,
           bad, worst, guards_ok);
    return worst;
}

static void test_f32_case(const conv_case *c)
{
    size_t in_len = (size_t)c->n * c->h * c->w * c->cin;
    size_t out_len = (size_t)c->n * out_h(c) * out_w(c) * c->cout;
    size_t w_len = (size_t)c->cout * c->cin * c->k * c->k;
    float *in = rnd_array(in_len), *wt = rnd_array(w_len), *bias = rnd_array((size_t)c->cout);
    float *res = c->residual ? rnd_array(out_len) : NULL;
    /* Aligned, as the engine's buffers are: large outputs then take the streaming stores. */
    float *fast = qe_malloc_aligned((out_len + GUARD) * sizeof *fast);
    float *port = qe_malloc_aligned((out_len + GUARD) * sizeof *port);
    double *ref = qe_malloc(out_len * sizeof *ref), *bound = qe_malloc(out_len * sizeof *bound);

    naive_conv(c, in, wt, bias, res, ref, bound);
    qe_conv_f32 cv;
    qe_conv_f32_init(&cv, c->cin, c->cout, c->k, c->k, c->stride, c->pad, wt, bias);

    qe_cpu_cap(QE_ISA_PORTABLE);
    run_f32(&cv, c, in, res, port, out_len);
    check_against("portable", c, port, ref, bound, out_len);
    qe_cpu_cap(QE_ISA_BEST);
    if (qe_cpu_get()->avx2) {
        run_f32(&cv, c, in, res, fast, out_len);
        check_against("avx2", c, fast, ref, bound, out_len);
    }
    qe_conv_f32_free(&cv);
    qe_free_aligned(fast), qe_free_aligned(port);
    free(in), free(wt), free(bias), free(res), free(ref), free(bound);
}

static void test_f32_odd_shapes(void)
{
    static const conv_case cases[] = {
        /* n  h   w  cin cout k  s  p  res relu */
        {1, 7, 7, 3, 5, 1, 1, 0, 0, 0},       /* direct 1x1, tiny channels */
        {3, 9, 11, 17, 33, 1, 1, 0, 1, 1},    /* direct, cout 2 panels + 1, residual + relu */
        {1, 5, 5, 300, 20, 1, 1, 0, 1, 0},    /* direct with two K blocks */
        {3, 13, 10, 19, 24, 1, 2, 0, 0, 1},   /* strided 1x1 (gathered) */
        {1, 8, 8, 13, 16, 3, 1, 1, 0, 0},
        {3, 15, 15, 37, 40, 3, 1, 1, 1, 1},   /* K = 333: two K blocks, many M blocks */
        {1, 12, 9, 29, 50, 3, 2, 1, 0, 1},
        {3, 14, 14, 3, 21, 7, 2, 3, 0, 1},    /* conv1-like */
        {1, 9, 9, 6, 7, 7, 2, 3, 1, 0},
        {1, 3, 3, 64, 70, 3, 1, 1, 1, 1},     /* M = 9 < threads x tile: split over panels */
        {1, 2, 2, 520, 130, 3, 2, 1, 0, 0},   /* M = 1, K = 4680 */
        {3, 6, 5, 9, 17, 3, 1, 0, 0, 0},      /* no padding */
        {1, 4, 4, 8, 8, 7, 1, 3, 0, 1},       /* kernel larger than image */
        {1, 256, 257, 16, 64, 1, 1, 0, 1, 1}, /* 16.8 MB output: non-temporal stores */
        {1, 130, 130, 8, 256, 3, 1, 1, 0, 1}, /* the same through the 3x3 path, 17.3 MB */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_f32_case(&cases[i]);
}

/* Every ResNet layer shape at batch 1 on a small image (all channel counts and K blocks). */
static void test_f32_resnet_shapes(void)
{
    for (int i = 0; i < qe_conv_shape_count; i++) {
        const qe_conv_shape *s = &qe_conv_shapes[i];
        int h = s->h < 12 ? s->h : 12;
        conv_case c = {1, h, h, s->cin, s->cout, s->k, s->stride, s->pad, i & 1, 1};
        test_f32_case(&c);
    }
}

/* The result of an output must not depend on the thread count (same blocks, same order). */
static void test_f32_threads(void)
{
    conv_case c = {3, 10, 10, 40, 70, 3, 1, 1, 1, 1};
    size_t in_len = (size_t)c.n * c.h * c.w * c.cin, out_len = (size_t)c.n * 10 * 10 * c.cout;
    float *in = rnd_array(in_len), *wt = rnd_array((size_t)c.cout * c.cin * 9);
    float *bias = rnd_array((size_t)c.cout), *res = rnd_array(out_len);
    float *o1 = qe_malloc((out_len + GUARD) * sizeof *o1), *o3 = qe_malloc((out_len + GUARD) * sizeof *o3);
    qe_conv_f32 cv;
    qe_conv_f32_init(&cv, c.cin, c.cout, 3, 3, 1, 1, wt, bias);
    int saved = omp_get_max_threads();
    for (int portable = 0; portable < 2; portable++) {
        qe_cpu_cap(portable ? QE_ISA_PORTABLE : QE_ISA_BEST);
        omp_set_num_threads(1);
        run_f32(&cv, &c, in, res, o1, out_len);
        omp_set_num_threads(3);
        run_f32(&cv, &c, in, res, o3, out_len);
        CHECKF(memcmp(o1, o3, out_len * sizeof *o1) == 0, "portable=%d", portable);
    }
    omp_set_num_threads(saved);
    qe_cpu_cap(QE_ISA_BEST);
    qe_conv_f32_free(&cv);
    free(in), free(wt), free(bias), free(res), free(o1), free(o3);
}

/* Each AVX2 and AVX-512 microkernel against its portable twin: every row count, column tails,
 * segment counts and lengths, bias vs. continuing from C, residual, ReLU; columns past nc and
 * rows past mr must be left alone. */
static void test_f32_ukernels_isa(qe_isa isa)
{
    qe_cpu_cap(isa);
    if (qe_cpu_isa() != isa) {
        qe_cpu_cap(QE_ISA_BEST);
        fprintf(stderr, "test_conv: no %s, its microkernel comparison skipped\n", qe_isa_name(isa));
        return;
    }
    const qe_f32_gemm_config *fast = qe_f32_gemm_config_get(), *port = qe_f32_gemm_config_scalar();
    qe_cpu_cap(QE_ISA_BEST);
    static const size_t ncs[] = {1, 3, 7, 8, 9, 15, 16};
    static const size_t kcs[] = {0, 1, 2, 5, 16, 37};
    /* C rows 21 floats apart (unaligned), or 24 (32-byte aligned) for non-temporal stores. */
    enum { MAXR = QE_F32_GEMM_MR_MAX, MAXC = MAXR * 24, MAXK = 37, MAXS = 3 };
    float *a = rnd_array(MAXS * MAXR * MAXK), *bias = rnd_array(16), *res = rnd_array(MAXC);
    float *w = qe_malloc_aligned(MAXS * MAXK * 16 * sizeof *w);
    for (int i = 0; i < MAXS * MAXK * 16; i++)
        w[i] = rnd();
    float *c0 = qe_malloc_aligned(MAXC * sizeof *c0), *c1 = qe_malloc_aligned(MAXC * sizeof *c1);
    float cinit[MAXC];
    for (int i = 0; i < MAXC; i++)
        cinit[i] = rnd();
    int bad = 0, cases = 0;
    for (int mr = 1; mr <= fast->mr; mr++)
        for (size_t ks = 1; ks <= MAXS; ks++)
            for (size_t ni = 0; ni < sizeof ncs / sizeof ncs[0]; ni++)
                for (size_t ki = 0; ki < sizeof kcs / sizeof kcs[0]; ki++)
                    for (int mode = 0; mode < 16; mode++) {
                        qe_f32_gemm_params p = {mode & 1 ? bias : NULL, mode & 2 ? res : NULL,
                                                (mode & 4) != 0, (mode & 8) != 0};
                        const size_t stride = p.stream ? 24 : 21;
                        size_t nc = ncs[ni], kc = kcs[ki];
                        /* Segments in scrambled order, at odd offsets. */
                        const float *ind[MAXS * MAXR];
                        for (size_t sg = 0; sg < ks; sg++)
                            for (int r = 0; r < mr; r++)
                                ind[sg * mr + r] = a + ((ks - 1 - sg) * MAXR + (size_t)(r * 5 % MAXR)) * MAXK;
                        memcpy(c0, cinit, sizeof cinit);
                        memcpy(c1, cinit, sizeof cinit);
                        port->igemm[mr](nc, ks, kc, ind, w, c0, stride, &p);
                        fast->igemm[mr](nc, ks, kc, ind, w, c1, stride, &p);
                        cases++;
                        for (size_t i = 0; i < MAXR * stride; i++) {
                            size_t r = i / stride, j = i % stride;
                            int inside = r < (size_t)mr && j < nc;
                            /* ks*kc + 3 terms of magnitude <= 1 each, rounded differently. */
                            double tol = inside ? 1e-6 * (double)(ks * kc + 3) : 0;
                            if (!(fabs((double)c0[i] - c1[i]) <= tol) ||
                                (!inside && (c1[i] != cinit[i] || c0[i] != cinit[i]))) {
                                bad++;
                                break;
                            }
                        }
                    }
    CHECKF(bad == 0, "%s: %d of %d microkernel cases differ", fast->isa, bad, cases);
    qe_free_aligned(w), qe_free_aligned(c0), qe_free_aligned(c1);
    free(a), free(bias), free(res);
}

static void test_f32_ukernels(void)
{
    test_f32_ukernels_isa(QE_ISA_AVX2);
    test_f32_ukernels_isa(QE_ISA_AVX512VNNI);
}

/* Tiles of a row range: each 1..tile rows, sizes within 1 of each other, summing to rows. */
static void test_tiles(void)
{
    int ok = 1;
    for (size_t rows = 1; rows <= 300; rows++) {
        qe_gemm_tiling tl;
        qe_gemm_tiling_init(&tl, rows, 6);
        size_t sum = 0, lo = 99, hi = 0;
        for (size_t t = 0; t < tl.tiles; t++) {
            size_t r = qe_gemm_tile_rows(&tl, t);
            sum += r;
            lo = r < lo ? r : lo;
            hi = r > hi ? r : hi;
        }
        ok &= sum == rows && lo >= 1 && hi <= 6 && hi - lo <= 1;
    }
    CHECK(ok);
    /* Plans cover all rows and panels for any thread count, and their K blocks cover K once,
     * in order, none longer than the block size. */
    static const int convs[][3] = {{3, 7, 1}, {64, 3, 1}, {100, 3, 3}, {512, 3, 1}, {1000, 1, 2},
                                   {7, 1, 9}, {85, 3, 1}, {300, 1, 1}, {1, 7, 5}};
    int plans_ok = 1, kblocks_ok = 1;
    for (size_t ci = 0; ci < sizeof convs / sizeof convs[0]; ci++)
        for (int threads = 1; threads <= 5; threads++)
            for (int hw = 1; hw < 40; hw += 3) {
                qe_conv_geom g;
                qe_gemm_plan p;
                int cin = convs[ci][0], k = convs[ci][1];
                qe_conv_geom_init(&g, cin, k, k, convs[ci][2], k / 2, 1, hw, hw);
                if (g.m == 0)
                    continue;
                qe_gemm_plan_init(&p, &g, 5, 6, 144, 256, threads);
                plans_ok &= p.mc * p.m_blocks >= g.m && p.mc * (p.m_blocks - 1) < g.m;
                plans_ok &= p.panels_per_task * p.n_groups >= 5 &&
                            p.panels_per_task * (p.n_groups - 1) < 5;
                size_t next = 0;
                for (size_t b = 0; b < p.k_blocks; b++) {
                    qe_gemm_kblock kb;
                    qe_gemm_plan_kblock(&p, b, &kb);
                    kblocks_ok &= kb.k0 == next && kb.kc >= 1 && kb.kc <= 256 &&
                                  kb.off + kb.len <= p.seg_len &&
                                  (kb.nseg == 1 || kb.len == p.seg_len);
                    next = kb.k0 + kb.kc;
                }
                kblocks_ok &= next == g.k;
            }
    CHECK(plans_ok);
    CHECK(kblocks_ok);
}

/* ---- f64acc exactness ---- */

/* A random f32 of 24 significant bits scaled by 2^-shift, shift in [24, 32]: every product of
 * two such values is an integer multiple of 2^-64 below 1. */
static float exact_rnd(int64_t *mant, int *shift)
{
    int64_t m = (int64_t)(rng_next() >> 40);          /* [0, 2^24) */
    if (rng_next() & 1)
        m = -m;
    int s = 24 + (int)(rng_next() % 9);
    *mant = m;
    *shift = s;
    return ldexpf((float)m, -s);
}

typedef __int128 i128;
typedef unsigned __int128 u128;

/* Rounds s * 2^-64 to the nearest f32 (ties to even) by integer arithmetic. */
static float round_fixed(i128 s)
{
    u128 a = s < 0 ? -(u128)s : (u128)s;
    int bits = 0;
    while (bits < 127 && (a >> bits) != 0)
        bits++;
    int shift = bits > 24 ? bits - 24 : 0;
    u128 q = a >> shift;
    if (shift > 0) {
        u128 rem = a & (((u128)1 << shift) - 1), half = (u128)1 << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;
    }
    float f = ldexpf((float)(uint64_t)q, shift - 64);   /* q <= 2^24: exact */
    return s < 0 ? -f : f;
}

typedef struct exact_stats {
    long outputs, mismatches, double_roundings;
} exact_stats;

/* relu: the fused f32 ReLU of the calibration pass applied to the rounded output. */
static void test_f64acc_case(const conv_case *c, int relu, exact_stats *st)
{
    size_t in_len = (size_t)c->n * c->h * c->w * c->cin;
    int oh = out_h(c), ow = out_w(c);
    size_t out_len = (size_t)c->n * oh * ow * c->cout;
    size_t w_len = (size_t)c->cout * c->cin * c->k * c->k;
    float *in = qe_malloc(in_len * sizeof *in), *wt = qe_malloc(w_len * sizeof *wt);
    float *bias = qe_malloc((size_t)c->cout * sizeof *bias);
    int64_t *in_m = qe_malloc(in_len * sizeof *in_m), *w_m = qe_malloc(w_len * sizeof *w_m);
    int64_t *b_m = qe_malloc((size_t)c->cout * sizeof *b_m);
    int *in_s = qe_malloc(in_len * sizeof *in_s), *w_s = qe_malloc(w_len * sizeof *w_s);
    int *b_s = qe_malloc((size_t)c->cout * sizeof *b_s);
    for (size_t i = 0; i < in_len; i++)
        in[i] = exact_rnd(&in_m[i], &in_s[i]);
    for (size_t i = 0; i < w_len; i++)
        wt[i] = exact_rnd(&w_m[i], &w_s[i]);
    for (int i = 0; i < c->cout; i++)
        bias[i] = exact_rnd(&b_m[i], &b_s[i]);

    float *fast = qe_malloc(out_len * sizeof *fast), *port = qe_malloc(out_len * sizeof *port);
    qe_conv_f64acc cv;
    qe_conv_f64acc_init(&cv, c->cin, c->cout, c->k, c->k, c->stride, c->pad, wt, bias);
    qe_cpu_cap(QE_ISA_PORTABLE);
    qe_conv_f64acc_forward(&cv, in, c->n, c->h, c->w, port, relu);
    /* every rung this CPU has: the AVX2 and AVX-512 kernels tile rows differently */
    for (qe_isa isa = QE_ISA_AVX2; isa <= QE_ISA_AVX512VNNI; isa++) {
        qe_cpu_cap(isa);
        if (qe_cpu_isa() != isa)
            continue;
        memset(fast, 0xA5, out_len * sizeof *fast);   /* an output left unwritten must show */
        qe_conv_f64acc_forward(&cv, in, c->n, c->h, c->w, fast, relu);
        CHECKF(memcmp(fast, port, out_len * sizeof *fast) == 0, "f64acc %s differs from portable",
               qe_cpu_isa_name());
    }
    qe_cpu_cap(QE_ISA_BEST);

    long mismatches = 0, double_roundings = 0;
    for (int b = 0; b < c->n; b++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int co = 0; co < c->cout; co++) {
                    /* Exact: integer sum in units of 2^-64. In step: the f64 running sum in
                     * the kernels' order (ky, kx, ci), then the bias. */
                    i128 exact = 0;
                    double f64 = 0;
                    for (int ky = 0; ky < c->k; ky++)
                        for (int kx = 0; kx < c->k; kx++) {
                            int iy = oy * c->stride - c->pad + ky, ix = ox * c->stride - c->pad + kx;
                            if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w)
                                continue;
                            size_t px = (((size_t)b * c->h + iy) * c->w + ix) * c->cin;
                            for (int ci = 0; ci < c->cin; ci++) {
                                size_t wi = (((size_t)co * c->cin + ci) * c->k + ky) * c->k + kx;
                                i128 p = (i128)in_m[px + ci] * w_m[wi];
                                exact += p * ((i128)1 << (64 - in_s[px + ci] - w_s[wi]));
                                f64 += (double)in[px + ci] * wt[wi];
                            }
                        }
                    exact += (i128)b_m[co] * ((i128)1 << (64 - b_s[co]));
                    f64 += bias[co];
                    float want = round_fixed(exact);
                    float got = fast[(((size_t)b * oh + oy) * ow + ox) * c->cout + co];
                    int dr = (float)f64 != want;
                    if (relu)
                        want = want > 0.0f ? want : 0.0f;
                    double_roundings += dr;
                    mismatches += got != want && !dr;
                }
    CHECKF(mismatches == 0, "f64acc n%d %dx%d cin%d cout%d k%d s%d p%d: %ld outputs differ from "
           "the correctly rounded exact sum", c->n, c->h, c->w, c->cin, c->cout, c->k, c->stride,
           c->pad, mismatches);
    st->outputs += (long)out_len;
    st->mismatches += mismatches;
    st->double_roundings += double_roundings;

    qe_conv_f64acc_free(&cv);
    free(in), free(wt), free(bias), free(in_m), free(w_m), free(b_m), free(in_s), free(w_s);
    free(b_s), free(fast), free(port);
}

static void test_f64acc_exact(void)
{
    static const conv_case cases[] = {
        {1, 7, 7, 3, 5, 1, 1, 0, 0, 0},
        {3, 9, 11, 17, 33, 1, 1, 0, 0, 0},
        {1, 5, 5, 300, 20, 1, 1, 0, 0, 0},    /* direct, two K blocks */
        {3, 13, 10, 19, 24, 1, 2, 0, 0, 0},
        {3, 15, 15, 37, 40, 3, 1, 1, 0, 0},   /* K = 333 */
        {1, 12, 9, 29, 50, 3, 2, 1, 0, 0},
        {3, 14, 14, 3, 21, 7, 2, 3, 0, 0},
        {1, 3, 3, 64, 70, 3, 1, 1, 0, 0},
        {1, 2, 2, 520, 130, 3, 2, 1, 0, 0},   /* K = 4680, 19 K blocks */
        {2, 7, 7, 256, 64, 3, 1, 1, 0, 0},
        {1, 6, 6, 40, 13, 1, 1, 0, 0, 0},     /* one pair of panels, the second partial */
        {2, 9, 9, 21, 29, 3, 1, 1, 0, 0},     /* two pairs, the last one partial */
    };
    exact_stats st = {0, 0, 0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_f64acc_case(&cases[i], (int)(i % 2), &st);
    fprintf(stderr, "test_conv: f64acc %ld outputs, %ld inexact, %ld double-rounding cases\n",
            st.outputs, st.mismatches, st.double_roundings);
    CHECK(st.outputs > 50000);
    CHECK(st.double_roundings == 0);
}

/* f32 accumulation would not pass the exactness test: make sure the test can tell. */
static void test_exactness_test_is_sharp(void)
{
    i128 exact = 0;
    float f32 = 0;
    long differ = 0;
    for (int trial = 0; trial < 1000; trial++) {
        exact = 0;
        f32 = 0;
        for (int k = 0; k < 300; k++) {
            int64_t ma, mb;
            int sa, sb;
            float a = exact_rnd(&ma, &sa), b = exact_rnd(&mb, &sb);
            exact += (i128)ma * mb * ((i128)1 << (64 - sa - sb));
            f32 += a * b;
        }
        differ += f32 != round_fixed(exact);
    }
    CHECKF(differ > 500, "f32 sums equal to the exact rounding in %ld of 1000", 1000 - differ);
}

int main(void)
{
    test_tiles();
    test_f32_ukernels();
    test_f32_odd_shapes();
    test_f32_resnet_shapes();
    test_f32_threads();
    test_exactness_test_is_sharp();
    test_f64acc_exact();
    return qtest_done("test_conv");
}
