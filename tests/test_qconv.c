/*
 * test_qconv.c - the exact integer convolution (qconv.h) against a plain scalar implementation
 * of spec quantsim.md §9.2 written here (int64 accumulator over the valid window, qe_quantize),
 * and the AVX2 kernels against the portable ones byte for byte.
 *
 * Shapes are chosen for their tails: channel counts that are not multiples of the 16-channel
 * panels or of the K granules, row counts that are not multiples of the micro-kernel rows,
 * 1x1/3x3/7x7 kernels, strides 1/2, pads 0/1/3 (including windows entirely in the padding).
 * Weights include codes at the extremes of their range everywhere (-128/127, -8/7), where a
 * kernel relying on vpmaddubsw's saturating sums would fail; encodings include min < 0 and
 * min = 0 and power-of-two scales that put many values exactly on the .5 ties of §1.5.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "cpu.h"
#include "qconv.h"
#include "qdq.h"
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
};

enum wmode { W_RANDOM8, W_EXTREME8, W_RANDOM4, W_EXTREME4, W_UNSIGNED4, W_NMODES };
static const char *wmode_name[] = {"random8", "extreme8", "random4", "extreme4", "unsigned4"};
static const int wmode_bits[] = {8, 8, 4, 4, 4};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static int rnd_range(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }

static int8_t weight_code(int mode)
{
    switch (mode) {
    case W_RANDOM8: return (int8_t)rnd_range(-128, 127);
    case W_EXTREME8: return rnd() & 1 ? 127 : -128;
    case W_RANDOM4: return (int8_t)rnd_range(-8, 7);
    case W_EXTREME4: return rnd() & 1 ? 7 : -8;
    default: return (int8_t)(rnd() & 1 ? 15 : rnd_range(0, 15));
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
    int8_t *k;             /* [cout][cin][k][k] */
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

static uint8_t *run(const layer *L, int portable, int wbits)
{
    qe_cpu_force_portable(portable);
    qe_qconv c;
    qe_qconv_init(&c, L->s.cin, L->s.cout, L->s.k, L->s.k, L->s.stride, L->s.pad, wbits, L->k);
    CHECK(qe_qconv_bytes(&c) >= L->K * (size_t)L->s.cout);
    size_t bytes = L->M * (size_t)L->s.cout;
    uint8_t *out = malloc(bytes + GUARD);
    memset(out, 0xA5, bytes + GUARD);
    qe_qconv_forward(&c, L->in, L->s.n, L->s.h, L->s.w, L->zx, &L->rq, out);
    qe_qconv_free(&c);
    qe_cpu_force_portable(0);
    for (size_t i = 0; i < GUARD; i++)
        if (out[bytes + i] != 0xA5) {
            CHECKF(0, "write past the output (portable=%d)", portable);
            break;
        }
    return out;
}

static void layer_alloc(layer *L, const shape *s)
{
    memset(L, 0, sizeof *L);
    L->s = *s;
    L->oh = qe_conv_out_size(s->h, s->k, s->stride, s->pad);
    L->ow = qe_conv_out_size(s->w, s->k, s->stride, s->pad);
    L->M = (size_t)s->n * L->oh * L->ow;
    L->K = (size_t)s->k * s->k * s->cin;
    L->k = malloc(L->K * s->cout);
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
    uint8_t *port = run(L, 1, wbits);
    uint8_t *fast = qe_cpu_get()->avx2 ? run(L, 0, wbits) : NULL;
    long bad = 0, badfast = 0, ties = 0;
    int in_range = 1;
    for (size_t m = 0; m < L->M; m++)
        for (int co = 0; co < L->s.cout; co++) {
            size_t i = m * L->s.cout + co;
            float yf = ref_yf(L, acc[i], co);
            int want = qe_quantize(yf, &L->rq.out);
            in_range &= want >= 0 && want <= 255;
            if (port[i] != want && bad++ < 3)
                fprintf(stderr, "%s: m=%zu c=%d portable %d want %d\n", what, m, co, port[i], want);
            if (fast && fast[i] != port[i] && badfast++ < 3)
                fprintf(stderr, "%s: m=%zu c=%d avx2 %d portable %d\n", what, m, co, fast[i],
                        port[i]);
            float v = fmaxf(fminf(yf, L->rq.out.max_f), L->rq.out.min_f) / L->rq.out.delta_f -
                      L->rq.out.offset_f;
            ties += fabsf(v - truncf(v)) == 0.5f;
        }
    CHECKF(in_range, "%s: reference codes outside 0..255", what);
    CHECKF(bad == 0, "%s: %ld portable codes differ from the reference", what, bad);
    CHECKF(badfast == 0, "%s: %ld avx2 codes differ from portable", what, badfast);
    free(acc);
    free(port);
    free(fast);
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
                    L.k[i] = weight_code(mode);
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

/* All input codes 255 (or 0 with z_x = 255) against one weight code everywhere: with -128,
 * every vpmaddubsw pair of 8-bit codes would saturate (2 * 255 * 128 > 32767); -8 and 15 give
 * the largest int16 partial sums the c4 kernels form (8 * 255 * 15 = 30600). */
static void test_saturation_trap(void)
{
    static const shape s = {64, 32, 3, 1, 1, 2, 6, 6};
    static const int8_t codes[3] = {-128, -8, 15};
    for (int v = 0; v < 6; v++) {
        layer L;
        layer_alloc(&L, &s);
        L.zx = v & 1 ? 0 : 255;
        L.rq.out = qparams(-3.0, 2.5);
        L.rq.relu = 0;
        memset(L.in, v & 1 ? 255 : 0, (size_t)s.n * s.h * s.w * s.cin);
        memset(L.k, codes[v / 2], L.K * s.cout);
        set_scales(&L);
        check_layer(&L, v < 2 ? 8 : 4, v & 1 ? "all 255, zx 0" : "all 0, zx 255");
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
                L.k[i] = (int8_t)rnd_range(-3, 3);
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
            L.k[i] = weight_code(v < 3 ? W_RANDOM8 : W_RANDOM4);
        for (size_t i = 0; i < (size_t)s.n * s.h * s.w * s.cin; i++)
            L.in[i] = (uint8_t)rnd();
        for (int co = 0; co < s.cout; co++) {
            L.scale[co] = scales[co % 10];
            L.bias[co] = biases[(co / 10 + co) % 10];
        }
        uint8_t *port = run(&L, 1, v < 3 ? 8 : 4), *fast = run(&L, 0, v < 3 ? 8 : 4);
        CHECKF(memcmp(port, fast, L.M * s.cout) == 0, "non-finite case %d: paths differ", v);
        free(port);
        free(fast);
        layer_free(&L);
    }
}

/* Output size zero (kernel larger than the padded image): nothing is written. */
static void test_empty_output(void)
{
    int8_t k[3 * 3 * 2 * 4] = {0};
    uint8_t in[2 * 2 * 2] = {0}, out[8];
    double sc[4] = {1, 1, 1, 1}, b[4] = {0};
    qe_requant rq = {sc, b, 0, qparams(-1.0, 1.0)};
    qe_qconv c;
    qe_qconv_init(&c, 2, 4, 3, 3, 1, 0, 8, k);
    memset(out, 7, sizeof out);
    qe_qconv_forward(&c, in, 1, 2, 2, 0, &rq, out);
    qe_qconv_free(&c);
    int untouched = 1;
    for (size_t i = 0; i < sizeof out; i++)
        untouched &= out[i] == 7;
    CHECK(untouched);
}

int main(void)
{
    fprintf(stderr, "isa: %s\n", qe_cpu_isa_name());
    test_empty_output();
    test_nonfinite();
    test_saturation_trap();
    test_ties();
    test_random_layers();
    /* Three threads split rows and channels differently; the result must not change. */
    omp_set_num_threads(3);
    test_saturation_trap();
    test_ties();
    return qtest_done("test_qconv");
}
