/*
 * test_qconv.c - the exact integer convolution (qconv.h) against a plain scalar implementation
 * of spec quantsim.md §9.2 written here (int64 accumulator over the valid window, qe_quantize),
 * and every fast kernel this CPU runs (AVX2, AVX-512 VNNI) against the portable ones byte for
 * byte; likewise every element-wise operation of qops.h (§9.3-§9.6) against a reference written
 * here, on both paths.
 *
 * Shapes are chosen for their tails: channel counts that are not multiples of the 16- and
 * 32-channel panels or of the K granules, row counts that are not multiples of the micro-kernel rows,
 * 1x1/3x3/7x7 kernels, strides 1/2, pads 0/1/3 (including windows entirely in the padding),
 * with rows read in place from the input, through im2col, and both mixed in one tile.
 * Weights include codes at the extremes of their range everywhere (-128/127, -8/7, 255), where a
 * kernel relying on vpmaddubsw's saturating sums would fail, and the unsigned 8-bit channels of
 * §1.6 (codes 0..255, beyond int8) alone and mixed with signed channels in one layer; encodings
 * include min < 0 and min = 0 and power-of-two scales that put many values exactly on the .5
 * ties of §1.5.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "cpu.h"
#include "image.h"
#include "qconv.h"
#include "qdq.h"
#include "qops.h"
#include "qops_ukernel.h"
#include "qtest.h"

#define GUARD 64           /* canary bytes after the output */

typedef struct shape {
    int cin, cout, k, stride, pad, n, h, w;
} shape;

static const shape shapes[] = {
    {3, 64, 7, 2, 3, 1, 23, 19},    /* stem: K = 147, odd */
    {5, 7, 3, 1, 1, 3, 9, 11},      /* cout below one panel */
    {16, 33, 3, 2, 1, 1, 13, 13},   /* one channel in the last panel */
    {64, 48, 1, 1, 0, 3, 7, 5},     /* 1x1 stride 1: A read in place for 4-bit codes */
    {36, 17, 1, 1, 0, 1, 5, 3},
    {7, 16, 1, 1, 0, 2, 4, 4},      /* 1x1 stride 1 with cin not a multiple of 4 */
    {20, 24, 1, 2, 0, 3, 9, 9},     /* downsample */
    {130, 70, 3, 1, 1, 1, 6, 7},    /* K = 1170: K-loop main part and tail */
    {9, 23, 3, 1, 3, 1, 4, 4},      /* pad 3 on a 3x3 kernel: windows entirely in the padding */
    {8, 16, 7, 2, 3, 3, 5, 6},      /* 7x7 on an image smaller than the kernel */
    {512, 40, 1, 1, 0, 5, 1, 1},    /* fc-like, M = 5 */
    {2048, 37, 1, 1, 0, 3, 1, 1},   /* fc of ResNet50, K = 2048 */
    {64, 64, 3, 1, 1, 2, 14, 14},   /* M = 392: many row blocks */
    /* kw * cin a multiple of 32: windows inside the image are read in place, kernel row by
     * kernel row, the others through im2col rows, within the same tiles */
    {32, 20, 3, 2, 1, 2, 9, 7},     /* stride 2, odd sizes */
    {64, 24, 3, 1, 3, 1, 4, 5},     /* pad 3: most windows in the padding, a few inside */
    {96, 40, 1, 2, 0, 2, 9, 9},     /* downsample read in place */
};

/* W_UNSIGNED8: every channel unsigned 8-bit (§1.6); W_MIXED8: unsigned 8-bit, signed 8-bit and
 * unsigned 4-bit channels in turn, sharing panels; W_ONE_UNSIGNED8: signed 4-bit codes but for
 * the last channel, an unsigned 8-bit one, which alone must move the layer off the c4 kernels. */
enum wmode {
    W_RANDOM8, W_EXTREME8, W_RANDOM4, W_EXTREME4, W_UNSIGNED4, W_UNSIGNED8, W_MIXED8,
    W_ONE_UNSIGNED8, W_NMODES
};
static const char *wmode_name[] = {"random8",   "extreme8", "random4", "extreme4",
                                   "unsigned4", "unsigned8", "mixed8", "one-unsigned8"};
static const int wmode_bits[] = {8, 8, 4, 4, 4, 8, 8, 8};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static int rnd_range(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }

/* A code of output channel co of a layer with cout channels. */
static int16_t weight_code(int mode, int co, int cout)
{
    switch (mode) {
    case W_RANDOM8: return (int16_t)rnd_range(-128, 127);
    case W_EXTREME8: return rnd() & 1 ? 127 : -128;
    case W_RANDOM4: return (int16_t)rnd_range(-8, 7);
    case W_EXTREME4: return rnd() & 1 ? 7 : -8;
    case W_UNSIGNED4: return (int16_t)(rnd() & 1 ? 15 : rnd_range(0, 15));
    case W_UNSIGNED8: return (int16_t)(rnd() & 1 ? 255 : rnd_range(0, 255));
    case W_MIXED8:
        return co % 3 == 0 ? weight_code(W_UNSIGNED8, co, cout)
               : co % 3 == 1 ? weight_code(W_RANDOM8, co, cout)
                             : weight_code(W_UNSIGNED4, co, cout);
    default:
        return weight_code(co == cout - 1 ? W_UNSIGNED8 : W_RANDOM4, co, cout);
    }
}

static qe_qparams qparams(double mn, double mx)
{
    qe_encoding e = {8, 0, mn, mx, 0.0, 0.0};
    return qe_qparams_from_encoding(&e);
}

typedef struct layer {
    shape s;
    int oh, ow;
    size_t M, K;
    int16_t *k;            /* [cout][cin][k][k] */
    uint8_t *in;           /* [n][h][w][cin] */
    double *scale, *bias;
    int zx;
    qe_requant rq;
} layer;

/* §9.2 literally: acc over the valid window only, int64, then the f64 formula and §1.5. */
static int64_t ref_acc(const layer *L, size_t m, int co)
{
    const shape *s = &L->s;
    size_t pix = (size_t)L->oh * (size_t)L->ow;
    int img = (int)(m / pix), oy = (int)(m % pix) / L->ow, ox = (int)(m % pix) % L->ow;
    int64_t acc = 0;
    for (int ci = 0; ci < s->cin; ci++)
        for (int ky = 0; ky < s->k; ky++)
            for (int kx = 0; kx < s->k; kx++) {
                int iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w)
                    continue;
                int q = L->in[(((size_t)img * s->h + iy) * s->w + ix) * s->cin + ci];
                int kv = L->k[(((size_t)co * s->cin + ci) * s->k + ky) * s->k + kx];
                acc += (int64_t)(q - L->zx) * kv;
            }
    return acc;
}

/* yf of §9.2 after the optional ReLU: what qe_quantize() receives. */
static float ref_yf(const layer *L, int64_t acc, int co)
{
    double y = (double)acc * L->scale[co];
    y = y + L->bias[co];
    float yf = (float)y;
    if (L->rq.relu)
        yf = fmaxf(yf, 0.0f);
    return yf;
}

/* The rungs above portable that this CPU has, lowest first; returns how many. */
static int fast_isas(qe_isa isa[3])
{
    int n = 0;
    for (qe_isa i = QE_ISA_AVX2; i <= QE_ISA_AMX; i++) {
        qe_cpu_cap(i);
        if (qe_cpu_isa() == i)
            isa[n++] = i;
    }
    qe_cpu_cap(QE_ISA_BEST);
    return n;
}

static uint8_t *run(const layer *L, qe_isa isa, int wbits)
{
    qe_cpu_cap(isa);
    qe_qconv c;
    CHECK(qe_qconv_init(&c, L->s.cin, L->s.cout, L->s.k, L->s.k, L->s.stride, L->s.pad, wbits, L->k) == 0);
    CHECK(qe_qconv_bytes(&c) >= L->K * (size_t)L->s.cout);
    size_t bytes = L->M * (size_t)L->s.cout;
    uint8_t *out = malloc(bytes + GUARD);
    memset(out, 0xA5, bytes + GUARD);
    qe_qconv_forward(&c, L->in, L->s.n, L->s.h, L->s.w, L->zx, &L->rq, out);
    qe_qconv_free(&c);
    qe_cpu_cap(QE_ISA_BEST);
    for (size_t i = 0; i < GUARD; i++)
        if (out[bytes + i] != 0xA5) {
            CHECKF(0, "write past the output (%s)", qe_isa_name(isa));
            break;
        }
    return out;
}

/* Runs L on every fast rung this CPU has; each must write port's codes byte for byte. */
static void check_fast_equal(const layer *L, int wbits, const uint8_t *port, const char *what)
{
    qe_isa isa[3];
    for (int f = 0, nfast = fast_isas(isa); f < nfast; f++) {
        uint8_t *fast = run(L, isa[f], wbits);
        CHECKF(memcmp(port, fast, L->M * (size_t)L->s.cout) == 0, "%s: %s differs", what,
               qe_isa_name(isa[f]));
        free(fast);
    }
}

static void layer_alloc(layer *L, const shape *s)
{
    memset(L, 0, sizeof *L);
    L->s = *s;
    L->oh = qe_conv_out_size(s->h, s->k, s->stride, s->pad);
    L->ow = qe_conv_out_size(s->w, s->k, s->stride, s->pad);
    L->M = (size_t)s->n * L->oh * L->ow;
    L->K = (size_t)s->k * s->k * s->cin;
    L->k = malloc(L->K * s->cout * sizeof *L->k);
    L->in = malloc((size_t)s->n * s->h * s->w * s->cin);
    L->scale = malloc(s->cout * sizeof(double));
    L->bias = malloc(s->cout * sizeof(double));
    L->rq.scale = L->scale;
    L->rq.bias = L->bias;
}

static void layer_free(layer *L)
{
    free(L->k);
    free(L->in);
    free(L->scale);
    free(L->bias);
}

/* Runs both paths and compares them with the reference; returns the number of outputs that
 * sit exactly on a .5 tie of the quantize step. */
static long check_layer(const layer *L, int wbits, const char *what)
{
    int64_t *acc = malloc(L->M * L->s.cout * sizeof *acc);
    for (size_t m = 0; m < L->M; m++)
        for (int co = 0; co < L->s.cout; co++)
            acc[m * L->s.cout + co] = ref_acc(L, m, co);
    uint8_t *port = run(L, QE_ISA_PORTABLE, wbits), *fast[3];
    qe_isa isa[3];
    int nfast = fast_isas(isa);
    for (int f = 0; f < nfast; f++)
        fast[f] = run(L, isa[f], wbits);
    long bad = 0, badfast[3] = {0, 0, 0}, ties = 0;
    int in_range = 1;
    for (size_t m = 0; m < L->M; m++)
        for (int co = 0; co < L->s.cout; co++) {
            size_t i = m * L->s.cout + co;
            float yf = ref_yf(L, acc[i], co);
            int want = qe_quantize(yf, &L->rq.out);
            in_range &= want >= 0 && want <= 255;
            if (port[i] != want && bad++ < 3)
                fprintf(stderr, "%s: m=%zu c=%d portable %d want %d\n", what, m, co, port[i], want);
            for (int f = 0; f < nfast; f++)
                if (fast[f][i] != port[i] && badfast[f]++ < 3)
                    fprintf(stderr, "%s: m=%zu c=%d %s %d portable %d\n", what, m, co,
                            qe_isa_name(isa[f]), fast[f][i], port[i]);
            float v = fmaxf(fminf(yf, L->rq.out.max_f), L->rq.out.min_f) / L->rq.out.delta_f -
                      L->rq.out.offset_f;
            ties += fabsf(v - truncf(v)) == 0.5f;
        }
    CHECKF(in_range, "%s: reference codes outside 0..255", what);
    CHECKF(bad == 0, "%s: %ld portable codes differ from the reference", what, bad);
    for (int f = 0; f < nfast; f++) {
        CHECKF(badfast[f] == 0, "%s: %ld %s codes differ from portable", what, badfast[f],
               qe_isa_name(isa[f]));
        free(fast[f]);
    }
    free(acc);
    free(port);
    return ties;
}

/* Per-channel scales that map the largest accumulator to 90..270 output steps: most codes land
 * inside the range, the largest channels saturate at both ends. */
static void set_scales(layer *L)
{
    int64_t amax = 1;
    for (size_t m = 0; m < L->M; m++)
        for (int co = 0; co < L->s.cout; co++) {
            int64_t a = ref_acc(L, m, co);
            amax = llabs(a) > amax ? llabs(a) : amax;
        }
    float dx = 1.0f / 64;
    for (int co = 0; co < L->s.cout; co++) {
        float dw = (float)((90.0 + 45.0 * (co % 5)) * L->rq.out.delta_f / ((double)amax * dx));
        L->scale[co] = (double)dx * (double)dw;
        L->bias[co] = (double)(float)((int)(rnd() % 41) - 20) * 0.37f * L->rq.out.delta_f;
    }
}

static void test_random_layers(void)
{
    static const int zxs[] = {0, 3, 128, 255};
    const qe_qparams outs[] = {qparams(-32.0, 31.75), qparams(0.0, 63.75), qparams(-1.37, 4.91),
                               qparams(0.0, 6.02)};
    int combo = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        for (int mode = 0; mode < W_NMODES; mode++) {
            for (int zi = 0; zi < 4; zi++, combo++) {
                layer L;
                layer_alloc(&L, &shapes[si]);
                L.zx = zxs[zi];
                L.rq.relu = combo & 1;
                L.rq.out = outs[(combo >> 1) % 4];
                for (size_t i = 0; i < L.K * L.s.cout; i++)
                    L.k[i] = weight_code(mode, (int)(i / L.K), L.s.cout);
                size_t nin = (size_t)L.s.n * L.s.h * L.s.w * L.s.cin;
                for (size_t i = 0; i < nin; i++) {
                    /* one combination in four takes the extreme codes 0/255 only */
                    L.in[i] = (uint8_t)((combo & 2) && (zi & 1) ? (rnd() & 1) * 255 : rnd());
                }
                set_scales(&L);
                char what[160];
                snprintf(what, sizeof what, "shape %zu %s zx=%d relu=%d out.z=%d", si,
                         wmode_name[mode], L.zx, L.rq.relu, L.rq.out.z);
                check_layer(&L, wmode_bits[mode], what);
                layer_free(&L);
            }
        }
    }
}

/* §9.3 fused into the conv epilogue: for every shape, 8- and 4-bit weights, both paths, the
 * codes must equal the unfused conv followed by the add table (residual codes random, and the
 * extremes 0 and 255; outputs of a short last panel must not read the residual past its end). */
static void test_fused_add(void)
{
    const qe_qparams outs[] = {qparams(-32.0, 31.75), qparams(0.0, 6.02)};
    const qe_qparams ids[] = {qparams(0.0, 9.5), qparams(-4.0, 3.0)};
    const qe_qparams sums[] = {qparams(0.0, 12.0), qparams(0.0, 0.9)};
    qe_qops_add_op *op = malloc(sizeof *op);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        for (int v = 0; v < 4; v++) {
            const int mode = v & 1 ? W_RANDOM4 : W_RANDOM8;
            layer L;
            layer_alloc(&L, &shapes[si]);
            L.zx = v & 2 ? 128 : 5;
            L.rq.relu = 0;
            L.rq.out = outs[v >> 1];
            for (size_t i = 0; i < L.K * L.s.cout; i++)
                L.k[i] = weight_code(mode, (int)(i / L.K), L.s.cout);
            size_t nin = (size_t)L.s.n * L.s.h * L.s.w * L.s.cin, nout = L.M * (size_t)L.s.cout;
            for (size_t i = 0; i < nin; i++)
                L.in[i] = (uint8_t)rnd();
            set_scales(&L);
            uint8_t *plain = run(&L, QE_ISA_PORTABLE, wmode_bits[mode]);
            /* The residual sits at the end of its allocation: reading past it trips ASan. */
            uint8_t *res = malloc(nout ? nout : 1);
            for (size_t i = 0; i < nout; i++)
                res[i] = (uint8_t)(i % 7 == 0 ? (i & 8 ? 255 : 0) : rnd());
            qe_qops_add_init(op, &L.rq.out, &ids[v & 1], &sums[(v >> 1) & 1]);
            qe_cpu_cap(QE_ISA_PORTABLE);
            qe_qops_add(plain, res, op, nout);
            qe_cpu_cap(QE_ISA_BEST);
            L.rq.add = op;
            L.rq.residual = res;
            qe_isa isa[4] = {QE_ISA_PORTABLE};
            int nisa = 1 + fast_isas(isa + 1);
            for (int f = 0; f < nisa; f++) {
                uint8_t *fused = run(&L, isa[f], wmode_bits[mode]);
                long bad = 0;
                for (size_t i = 0; i < nout; i++)
                    bad += fused[i] != plain[i];
                CHECKF(bad == 0, "fused add, shape %zu variant %d (%s): %ld codes differ", si,
                       v, qe_isa_name(isa[f]), bad);
                free(fused);
            }
            free(plain);
            free(res);
            layer_free(&L);
        }
    }
    free(op);
}

/* All input codes 255 (or 0 with z_x = 255) against one weight code everywhere: with -128,
 * every vpmaddubsw pair of 8-bit codes would saturate (2 * 255 * 128 > 32767); -8 and 8 give
 * the largest int16 sums the depth-8 kernel forms (16 * 255 * 8 = 32640), 15, 16 and -16 those
 * of the depth-4 kernel (8 * 255 * 16 = 32640), and 17 must go to the 16-bit kernel; 255, the
 * largest unsigned 8-bit code (§1.6), gives its largest pair sums (2 * 255 * 255) and, as 128
 * does, would wrap as an int8 weight. */
static void test_saturation_trap(void)
{
    static const shape s = {64, 32, 3, 1, 1, 2, 6, 6};
    static const int16_t codes[] = {-128, -8, 8, 15, 16, -16, 17, 128, 255};
    for (int v = 0; v < 2 * (int)(sizeof codes / sizeof codes[0]); v++) {
        layer L;
        layer_alloc(&L, &s);
        L.zx = v & 1 ? 0 : 255;
        L.rq.out = qparams(-3.0, 2.5);
        L.rq.relu = 0;
        memset(L.in, v & 1 ? 255 : 0, (size_t)s.n * s.h * s.w * s.cin);
        for (size_t i = 0; i < L.K * s.cout; i++)
            L.k[i] = codes[v / 2];
        set_scales(&L);
        char what[64];
        snprintf(what, sizeof what, "saturation trap k=%d, %s", codes[v / 2],
                 v & 1 ? "all 255, zx 0" : "all 0, zx 255");
        check_layer(&L, abs(codes[v / 2]) > 8 ? 8 : 4, what);
        layer_free(&L);
    }
}

/* Scale 2^-3 and output step 0.25 with small accumulators: half of all values fall exactly on
 * a .5 tie, which roundf sends away from zero and banker's rounding would not. */
static void test_ties(void)
{
    static const shape ts[] = {{24, 21, 3, 1, 1, 2, 5, 5}, {32, 16, 1, 1, 0, 1, 7, 7}};
    long ties = 0;
    for (size_t si = 0; si < 2; si++) {
        for (int v = 0; v < 4; v++) {
            layer L;
            layer_alloc(&L, &ts[si]);
            L.zx = v & 1 ? 128 : 3;
            L.rq.relu = v >> 1;
            L.rq.out = v & 1 ? qparams(-32.0, 31.75) : qparams(0.0, 63.75);
            for (size_t i = 0; i < L.K * L.s.cout; i++)
                L.k[i] = (int16_t)rnd_range(-3, 3);
            size_t nin = (size_t)L.s.n * L.s.h * L.s.w * L.s.cin;
            for (size_t i = 0; i < nin; i++)
                L.in[i] = (uint8_t)(L.zx + rnd_range(-3, 3));
            for (int co = 0; co < L.s.cout; co++) {
                L.scale[co] = (double)(1.0f / 16) * (double)2.0f;
                L.bias[co] = (double)(0.125f * (float)rnd_range(-40, 300));
            }
            ties += check_layer(&L, 4, "ties");
            layer_free(&L);
        }
    }
    fprintf(stderr, "ties exercised: %ld\n", ties);
    CHECK(ties > 1000);
}

/* Non-finite and out-of-range epilogue inputs (infinite or NaN scales and biases, f32
 * overflow, a zero step, a NaN offset): no §1.4 encoding produces them, and qe_quantize() is
 * undefined there (NaN to int), but a bad file must not turn into undefined behaviour or a
 * difference between the paths. The codes are compared between the paths only. */
static void test_nonfinite(void)
{
    static const shape s = {8, 40, 3, 1, 1, 1, 5, 6};
    const double nan = (double)NAN, inf = (double)INFINITY;
    const double scales[] = {inf, -inf, nan, 1e300, -1e300, 0.0, 1e-310, 3e-4, -3e-4, 1e-9};
    const double biases[] = {nan, inf, -inf, 1e39, -1e39, 0.0, -0.0, 2.5, -2.5, 7.0};
    qe_qparams outs[3] = {qparams(-2.0, 3.0), qparams(0.0, 1.0), qparams(-1.0, 1.0)};
    outs[1].delta_f = 0.0f;
    outs[2].offset_f = (float)nan;
    if (!qe_cpu_get()->avx2)
        return;
    for (int v = 0; v < 6; v++) {
        layer L;
        layer_alloc(&L, &s);
        L.zx = 17 * v;
        L.rq.relu = v & 1;
        L.rq.out = outs[v % 3];
        for (size_t i = 0; i < L.K * s.cout; i++)
            L.k[i] = weight_code(v < 2 ? W_RANDOM8 : v < 3 ? W_MIXED8 : W_RANDOM4,
                                 (int)(i / L.K), s.cout);
        for (size_t i = 0; i < (size_t)s.n * s.h * s.w * s.cin; i++)
            L.in[i] = (uint8_t)rnd();
        for (int co = 0; co < s.cout; co++) {
            L.scale[co] = scales[co % 10];
            L.bias[co] = biases[(co / 10 + co) % 10];
        }
        uint8_t *port = run(&L, QE_ISA_PORTABLE, v < 3 ? 8 : 4);
        char what[32];
        snprintf(what, sizeof what, "non-finite case %d", v);
        check_fast_equal(&L, v < 3 ? 8 : 4, port, what);
        free(port);
        layer_free(&L);
    }
}

/*
 * The epilogue over every accumulator value of a wide range, the test of the fast path of the
 * vector epilogues (qgemm.h, qgemm_fast.c), which must settle only lanes where it is exact. A
 * 1x1 layer on two channels with weights (1, 127) and z_x = 128 turns the 256 x 256 input codes
 * (q0, q1) into every accumulator in -16384 - 128 .. 16129 + 127 (q0 - 128 + 127 (q1 - 128)).
 * Each output channel maps that range across the code range at its own rate (from ~2 to ~600
 * accumulator values per code step) with its own bias, so every code boundary of every channel
 * is met at unit resolution; one channel in eight has a power-of-two step and a bias on a .5 tie,
 * where v is exactly a half-integer and the fast path must step aside. Output encodings with and
 * without offset, ReLU on and off.
 */
static void test_epilogue_sweep(void)
{
    static const shape s = {2, 40, 1, 1, 0, 1, 256, 256};
    const qe_qparams outs[] = {qparams(-3.1, 5.7), qparams(0.0, 2.55), qparams(-1.0, 1.0)};
    for (int v = 0; v < 6; v++) {
        layer L;
        layer_alloc(&L, &s);
        L.zx = 128;
        L.rq.relu = v & 1;
        L.rq.out = outs[v / 2];
        for (int co = 0; co < s.cout; co++) {
            L.k[2 * co] = 1;
            L.k[2 * co + 1] = 127;
        }
        for (int y = 0; y < 256; y++)
            for (int x = 0; x < 256; x++) {
                L.in[(y * 256 + x) * 2] = (uint8_t)x;
                L.in[(y * 256 + x) * 2 + 1] = (uint8_t)y;
            }
        float d = L.rq.out.delta_f;
        for (int co = 0; co < s.cout; co++) {
            /* code steps per accumulator unit: 1/2 .. 1/600 */
            double steps = co % 8 == 7 ? 1.0 / 64 : 1.0 / (2.0 + 600.0 * (double)rnd() / 4294967296.0);
            L.scale[co] = steps * (double)d * (co % 3 == 2 ? -1.0 : 1.0);
            double b = (double)rnd_range(-200, 200) + (co % 8 == 7 ? 0.5 : (double)rnd() / 4294967296.0);
            L.bias[co] = b * (double)d;
        }
        char what[64];
        snprintf(what, sizeof what, "epilogue sweep %d", v);
        check_layer(&L, 8, what);
        layer_free(&L);
    }
}

/* Values of v = y / delta_f - offset_f next to the rounding boundaries of §1.5: ties, the
 * floats just below them (0.5 - 2^-25 is where trunc(v + 0.5) would go wrong), the ends of
 * 0..255 and beyond. */
static const float edge_values[] = {
    0.0f, -0.0f, 0.49999997f, 0.5f, 0.50000006f, 0.99999994f, 1.0f, 1.4999999f, 1.5f,
    2.4999998f, 2.5f, 3.5f, 127.5f, 128.5f, 253.49998f, 253.5f, 254.49998f, 254.5f,
    254.50002f, 255.0f, 255.49998f, 255.5f, 256.0f, 300.5f, -0.49999997f, -0.5f, -0.50000006f,
    -1.5f, -2.5f, 0.25f, 0.2499999f, 1e-30f, -1e-30f, 8388607.5f, 16777216.0f, 1e30f, -1e30f,
};
#define N_EDGES (sizeof edge_values / sizeof edge_values[0])

/* The epilogue on exact boundary values: scale 0 makes y the bias itself, and the output step
 * 1 (or 0.5 with an offset) makes v that value (or a shifted one). */
static void test_rounding_edges(void)
{
    static const shape s = {4, (int)N_EDGES, 1, 1, 0, 2, 2, 3};
    const qe_qparams outs[] = {{-1e6f, 1e6f, 1.0f, 0.0f, 0, 255},
                               {-1e6f, 1e6f, 0.5f, -3.0f, 3, 255},
                               {-1e6f, 1e6f, 2.0f, 7.0f, -7, 255}};
    for (int v = 0; v < 12; v++) {
        layer L;
        layer_alloc(&L, &s);
        L.zx = 9;
        L.rq.relu = v & 1;
        L.rq.out = outs[v / 2 % 3];
        for (size_t i = 0; i < L.K * s.cout; i++)
            L.k[i] = weight_code(v < 6 ? W_RANDOM8 : W_RANDOM4, (int)(i / L.K), s.cout);
        for (size_t i = 0; i < (size_t)s.n * s.h * s.w * s.cin; i++)
            L.in[i] = (uint8_t)rnd();
        for (int co = 0; co < s.cout; co++) {
            L.scale[co] = 0.0;
            /* y / delta - offset = edge value, up to the f32 rounding of the product */
            L.bias[co] = (double)edge_values[co] * (double)L.rq.out.delta_f +
                         (double)L.rq.out.offset_f * (double)L.rq.out.delta_f;
        }
        uint8_t *port = run(&L, QE_ISA_PORTABLE, v < 6 ? 8 : 4);
        long bad = 0;
        for (size_t m = 0; m < L.M; m++)
            for (int co = 0; co < s.cout; co++) {
                float yf = ref_yf(&L, 0, co);
                float x = fmaxf(fminf(yf, L.rq.out.max_f), L.rq.out.min_f);
                x = fminf(fmaxf(x / L.rq.out.delta_f - L.rq.out.offset_f, 0.0f), 255.0f);
                bad += port[m * s.cout + co] != (uint8_t)roundf(x);
            }
        CHECKF(bad == 0, "rounding edges %d: %ld portable codes differ from roundf", v, bad);
        char what[32];
        snprintf(what, sizeof what, "rounding edges %d", v);
        check_fast_equal(&L, v < 6 ? 8 : 4, port, what);
        free(port);
        layer_free(&L);
    }
}

/* Output size zero (kernel larger than the padded image): nothing is written. */
static void test_empty_output(void)
{
    int16_t k[3 * 3 * 2 * 4] = {0};
    uint8_t in[2 * 2 * 2] = {0}, out[8];
    double sc[4] = {1, 1, 1, 1}, b[4] = {0};
    qe_requant rq = {sc, b, 0, qparams(-1.0, 1.0), NULL, NULL};
    qe_qconv c;
    CHECK(qe_qconv_init(&c, 2, 4, 3, 3, 1, 0, 8, k) == 0);
    memset(out, 7, sizeof out);
    qe_qconv_forward(&c, in, 1, 2, 2, 0, &rq, out);
    qe_qconv_free(&c);
    int untouched = 1;
    for (size_t i = 0; i < sizeof out; i++)
        untouched &= out[i] == 7;
    CHECK(untouched);
}

/* K beyond the int32 exactness bound is refused, the bound itself accepted (qconv.h). */
static void test_k_bound(void)
{
    int16_t *k = calloc(2 * (size_t)(QE_QCONV_K_MAX + 9), sizeof *k);
    qe_qconv c;
    CHECK(qe_qconv_init(&c, QE_QCONV_K_MAX, 2, 1, 1, 1, 0, 8, k) == 0 && c.wpack != NULL);
    qe_qconv_free(&c);
    CHECK(qe_qconv_init(&c, QE_QCONV_K_MAX + 1, 2, 1, 1, 1, 0, 8, k) == -1 && c.wpack == NULL);
    qe_qconv_free(&c);
    CHECK(qe_qconv_init(&c, (QE_QCONV_K_MAX + 9) / 9, 2, 3, 3, 1, 1, 8, k) == -1);
    qe_qconv_free(&c);
    free(k);
}

/* ---- qops.h ---------------------------------------------------------------------------- */

/* A float that lands exactly on a .5 tie of qp's quantize step one time in four, far outside
 * [min_f, max_f] one time in eight, else anywhere in the range. */
static float qops_input(const qe_qparams *qp)
{
    uint32_t r = rnd();
    float span = qp->max_f - qp->min_f;
    switch (r & 7) {
    case 0: case 1:
        return qp->delta_f * ((float)rnd_range(-3, 258) + qp->offset_f + 0.5f);
    case 2:
        return (r & 8 ? 1.0f : -1.0f) * span * (float)rnd_range(2, 1000);
    default:
        return qp->min_f + span * (float)(rnd() % 100001) / 100000.0f;
    }
}

/* §9.6 rows: the AVX2 kernel against the portable one over ranges with odd starts and tails,
 * including encodings whose steps leave [0, 255] (the (uint8_t) conversion wraps alike). */
static void test_quantize_rows(void)
{
    const qe_qparams qps[] = {qparams(-2.1179, 2.64), qparams(0.0, 6.02), qparams(-32.0, 31.75),
                              {-10.0f, 10.0f, 0.01f, 0.0f, 0, 255},
                              {-1e6f, 1e6f, 1.0f, 0.0f, 0, 255}};
    float x[3 * 203];
    uint8_t port[3 * 203], fast[3 * 203];
    if (!qe_cpu_get()->avx2)
        return;
    for (size_t qi = 0; qi < sizeof qps / sizeof qps[0]; qi++) {
        for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
            x[i] = qps[qi].delta_f == 1.0f ? edge_values[i % N_EDGES] : qops_input(&qps[qi]);
        for (size_t p0 = 0; p0 < 11; p0 += 3) {
            for (size_t p1 = p0; p1 <= 203; p1 += p1 < 40 ? 1 : 37) {
                memset(port, 0x5A, sizeof port);
                memset(fast, 0x5A, sizeof fast);
                qe_qops_quantize_chw3__scalar(&qps[qi], x, 203, p0, p1, port);
                qe_qops_quantize_chw3__avx2(&qps[qi], x, 203, p0, p1, fast);
                CHECKF(memcmp(port, fast, sizeof port) == 0, "quantize rows qp %zu [%zu, %zu)", qi,
                       p0, p1);
            }
        }
    }
}

/* Runs f on both paths (portable first) and compares each with want. */
#define BOTH_PATHS(what, n, want, out, call)                                                  \
    do {                                                                                     \
        for (int port_ = 1; port_ >= 0; port_--) {                                           \
            if (!port_ && !qe_cpu_get()->avx2)                                               \
                break;                                                                       \
            qe_cpu_cap(port_ ? QE_ISA_PORTABLE : QE_ISA_BEST);                               \
            call;                                                                            \
            qe_cpu_cap(QE_ISA_BEST);                                                        \
            CHECKF(memcmp(out, want, n) == 0, "%s (portable=%d)", what, port_);              \
        }                                                                                    \
    } while (0)

static void test_quantize_input(void)
{
    const int hw = 224 * 224, n = 2;
    const qe_qparams qp = qparams(-2.1179, 2.64);
    float *x = malloc((size_t)n * 3 * hw * sizeof *x);
    uint8_t *want = malloc((size_t)n * 3 * hw), *out = malloc((size_t)n * 3 * hw);
    for (size_t i = 0; i < (size_t)n * 3 * hw; i++)
        x[i] = qops_input(&qp);
    for (int i = 0; i < n; i++)
        for (int p = 0; p < hw; p++)
            for (int c = 0; c < 3; c++)
                want[((size_t)i * hw + p) * 3 + c] =
                    (uint8_t)qe_quantize(x[((size_t)i * 3 + c) * hw + p], &qp);
    BOTH_PATHS("quantize_input", (size_t)n * 3 * hw, want, out,
               qe_qops_quantize_input(&qp, x, n, out));
    free(x);
    free(want);
    free(out);
}

/* §9.6 from crop bytes: the same codes as normalising (image.h) and quantizing the tensor, for
 * encodings of the normalised range and degenerate ones; every byte value in every channel. */
static void test_quantize_crops(void)
{
    const int hw = 224 * 224, n = 3;
    const qe_qparams qps[] = {qparams(-2.1179, 2.64), qparams(-0.5, 0.3), qparams(0.0, 6.02),
                              {-10.0f, 10.0f, 0.01f, 0.0f, 0, 255}};
    uint8_t *crops = malloc((size_t)n * QE_CROP_BYTES);
    float *x = malloc((size_t)n * QE_TENSOR_FLOATS * sizeof *x);
    uint8_t *want = malloc((size_t)n * 3 * hw), *out = malloc((size_t)n * 3 * hw);
    for (size_t i = 0; i < (size_t)n * QE_CROP_BYTES; i++)
        crops[i] = i < 3 * 256 ? (uint8_t)(i / 3) : (uint8_t)rnd();   /* pixel v: (v, v, v) */
    for (int i = 0; i < n; i++)
        qe_image_normalize(crops + (size_t)i * QE_CROP_BYTES, x + (size_t)i * QE_TENSOR_FLOATS);
    for (size_t qi = 0; qi < sizeof qps / sizeof qps[0]; qi++) {
        qe_qops_quantize_input(&qps[qi], x, n, want);
        char what[64];
        snprintf(what, sizeof what, "quantize_crops qp %zu", qi);
        BOTH_PATHS(what, (size_t)n * 3 * hw, want, out, qe_qops_quantize_crops(&qps[qi], crops, n, out));
    }
    /* The table kernel on its own, over every length and phase of its 64-byte steps. */
    if (qe_cpu_get()->avx512vbmi) {
        uint8_t tab[3][256], port[3 * 200], fast[3 * 200];
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++)
                tab[c][v] = (uint8_t)rnd();
        for (size_t px = 0; px <= 200; px++) {
            memset(port, 0x5A, sizeof port);
            memset(fast, 0x5A, sizeof fast);
            qe_qops_lut_hwc3__scalar(tab, crops + 3 * 7, px, port);
            qe_qops_lut_hwc3__avx512vbmi(tab, crops + 3 * 7, px, fast);
            CHECKF(memcmp(port, fast, sizeof port) == 0, "lut_hwc3 over %zu pixels", px);
        }
    }
    free(crops);
    free(x);
    free(want);
    free(out);
}

/* §9.4 over odd sizes: the max over the valid part of each 3x3 stride-2 window, then lut. */
static void test_maxpool(void)
{
    static const int hs[] = {1, 2, 3, 6, 7, 112}, cs[] = {1, 5, 16, 17, 64};
    uint8_t lut[256];
    for (int i = 0; i < 256; i++)
        lut[i] = (uint8_t)rnd();
    for (size_t hi = 0; hi < sizeof hs / sizeof hs[0]; hi++) {
        for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
            int h = hs[hi], c = cs[ci], n = 1 + (int)(ci & 1), oh = (h + 2 - 3) / 2 + 1;
            if (h == 112 && c != 64)
                continue;
            size_t nin = (size_t)n * h * h * c, nout = (size_t)n * oh * oh * c;
            uint8_t *in = malloc(nin), *want = malloc(nout), *out = malloc(nout);
            for (size_t i = 0; i < nin; i++)
                in[i] = (uint8_t)rnd();
            for (int i = 0; i < n; i++)
                for (int y = 0; y < oh; y++)
                    for (int x = 0; x < oh; x++)
                        for (int k = 0; k < c; k++) {
                            int m = -1;
                            for (int sy = 2 * y - 1; sy <= 2 * y + 1; sy++)
                                for (int sx = 2 * x - 1; sx <= 2 * x + 1; sx++)
                                    if (sy >= 0 && sy < h && sx >= 0 && sx < h) {
                                        int v = in[(((size_t)i * h + sy) * h + sx) * c + k];
                                        m = v > m ? v : m;
                                    }
                            want[(((size_t)i * oh + y) * oh + x) * c + k] = lut[m];
                        }
            char what[64];
            snprintf(what, sizeof what, "maxpool h=%d c=%d n=%d", h, c, n);
            BOTH_PATHS(what, nout, want, out, qe_qops_maxpool_3x3s2(in, n, h, c, lut, out));
            free(in);
            free(want);
            free(out);
        }
    }
}

/* §9.3: the table against its formula; both paths over all 65536 code pairs for several
 * encodings (negative and all-positive operands, an output range that clips the sum), and over
 * odd lengths. */
static void test_add(void)
{
    const qe_qparams encs[][3] = {
        {qparams(-3.1, 4.4), qparams(0.0, 2.9), qparams(0.0, 5.3)},
        {qparams(-0.7, 0.2), qparams(-1.9, 6.1), qparams(0.0, 1.1)},
        {qparams(0.0, 1e-3), qparams(-250.0, 3.0), qparams(0.0, 2.0e-4)},
    };
    qe_qops_add_op *op = malloc(sizeof *op);
    uint8_t *pa = malloc(65536), *pb = malloc(65536), *want = malloc(65536), *out = malloc(65536);
    for (size_t e = 0; e < sizeof encs / sizeof encs[0]; e++) {
        const qe_qparams *qa = &encs[e][0], *qb = &encs[e][1], *qo = &encs[e][2];
        qe_qops_add_init(op, qa, qb, qo);
        long bad = 0;
        for (int a = 0; a < 256; a++)
            for (int b = 0; b < 256; b++) {
                float s = qe_dequantize(a, qa) + qe_dequantize(b, qb);
                want[a * 256 + b] = (uint8_t)qe_quantize(fmaxf(s, 0.0f), qo);
                bad += op->lut[a * 256 + b] != want[a * 256 + b];
                pa[a * 256 + b] = (uint8_t)a;
                pb[a * 256 + b] = (uint8_t)b;
            }
        CHECKF(bad == 0, "add table %zu: %ld entries differ", e, bad);
        char what[64];
        snprintf(what, sizeof what, "add, all pairs, encodings %zu", e);
        BOTH_PATHS(what, 65536, want, out, (memcpy(out, pa, 65536), qe_qops_add(out, pb, op, 65536)));
    }
    static const size_t counts[] = {0, 1, 7, 31, 32, 33, 1000, 100003};
    for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
        size_t n = counts[ci];
        uint8_t *a = malloc(n + 1), *b = malloc(n + 1), *w = malloc(n + 1), *o = malloc(n + 1);
        for (size_t i = 0; i < n; i++) {
            a[i] = (uint8_t)rnd();
            b[i] = (uint8_t)rnd();
            w[i] = op->lut[a[i] * 256 + b[i]];
        }
        char what[64];
        snprintf(what, sizeof what, "add count=%zu", n);
        BOTH_PATHS(what, n, w, o, (memcpy(o, a, n), qe_qops_add(o, b, op, n)));
        free(a), free(b), free(w), free(o);
    }
    free(op), free(pa), free(pb), free(want), free(out);
}

/* §9.5 over odd channel counts and spatial sizes. */
static void test_avgpool(void)
{
    static const int hws[] = {1, 49, 50}, cs[] = {1, 17, 512};
    const qe_qparams qi = qparams(0.0, 7.3), qo = qparams(0.0, 3.1);
    for (size_t hi = 0; hi < 3; hi++) {
        for (size_t ci = 0; ci < 3; ci++) {
            int hw = hws[hi], c = cs[ci], n = 3;
            uint8_t *in = malloc((size_t)n * hw * c);
            uint8_t *want = malloc((size_t)n * c), *out = malloc((size_t)n * c);
            for (size_t i = 0; i < (size_t)n * hw * c; i++)
                in[i] = (uint8_t)rnd();
            for (int i = 0; i < n; i++)
                for (int k = 0; k < c; k++) {
                    long s = 0;
                    for (int p = 0; p < hw; p++)
                        s += in[((size_t)i * hw + p) * c + k];
                    double d = (double)qi.delta_f * (double)(s - (long)hw * qi.z);
                    float a = (float)(d / (double)hw);
                    want[(size_t)i * c + k] = (uint8_t)qe_quantize(a, &qo);
                }
            char what[64];
            snprintf(what, sizeof what, "avgpool hw=%d c=%d", hw, c);
            BOTH_PATHS(what, (size_t)n * c, want, out,
                       qe_qops_avgpool(in, n, hw, c, &qi, &qo, out));
            free(in);
            free(want);
            free(out);
        }
    }
}

int main(void)
{
    fprintf(stderr, "isa: %s\n", qe_cpu_isa_name());
    test_empty_output();
    test_k_bound();
    test_rounding_edges();
    test_quantize_rows();
    test_quantize_input();
    test_quantize_crops();
    test_maxpool();
    test_add();
    test_avgpool();
    test_nonfinite();
    test_saturation_trap();
    test_ties();
    test_random_layers();
    test_epilogue_sweep();
    test_fused_add();
    /* Three threads split rows and channels differently (small layers share one im2col between
     * channel chunks); the result must not change. */
    omp_set_num_threads(3);
    test_saturation_trap();
    test_ties();
    test_random_layers();
    test_maxpool();
    test_add();
    return qtest_done("test_qconv");
}
