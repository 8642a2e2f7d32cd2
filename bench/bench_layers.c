/*
 * bench_layers.c - benchdnn-style timing of the float convolutions over every ResNet layer shape.
 *
 *   bench_layers [--batch N] [--threads T] [--net 18|50] [--layer SUBSTR] [--f64acc]
 *                [--residual] [--check] [--min-time S]
 *
 * Per shape: the best of repeated runs, GMAC/s, and the ratio to the machine's peak FMA rate
 * measured in the same run (peak.h, before and after the layers); then per network the total weighted by how often each
 * shape occurs (all its MACs over all its time). --f64acc times the exact calibration
 * convolution instead, against the f64 peak. --check compares every layer's output with the
 * portable path: f32 within 1e-5 * sum|x*w| (the bound computed by a convolution of |x| with
 * |w|), f64acc bit for bit. --residual adds a residual tensor in the epilogue of every timed
 * run, as the last convolution of a block does.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "cpu.h"
#include "peak.h"
#include "qe_util.h"
#include "shapes.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

/* splitmix64, mapped to [-1, 1). */
static float rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return (float)((double)(z >> 11) / 4503599627370496.0 - 1.0);
}

static float *rnd_array(size_t n, float scale)
{
    float *p = qe_malloc_aligned(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = rnd() * scale;
    return p;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_layers [--batch N] [--threads T] [--net 18|50] "
                    "[--layer SUBSTR] [--f64acc] [--residual] [--check] [--min-time SECONDS]\n");
    exit(2);
}

/* Max over outputs of |fast - portable| / (1e-5 * sum|x*w| + tiny); > 1 fails. */
static double check_layer(const qe_conv_f32 *c, const float *w, const float *bias,
                          const float *in, int n, int h, size_t in_len, size_t out_len,
                          const float *fast)
{
    size_t wlen = (size_t)c->cout * c->cin * c->kh * c->kw;
    float *aw = qe_malloc(wlen * sizeof *aw), *ab = qe_malloc((size_t)c->cout * sizeof *ab);
    float *ain = qe_malloc_aligned(in_len * sizeof *ain);
    float *ref = qe_malloc_aligned(out_len * sizeof *ref);
    float *bound = qe_malloc_aligned(out_len * sizeof *bound);
    for (size_t i = 0; i < wlen; i++)
        aw[i] = fabsf(w[i]);
    for (int i = 0; i < c->cout; i++)
        ab[i] = fabsf(bias[i]);
    for (size_t i = 0; i < in_len; i++)
        ain[i] = fabsf(in[i]);

    qe_conv_f32 absconv;
    qe_conv_f32_init(&absconv, c->cin, c->cout, c->kh, c->kw, c->stride, c->pad, aw, ab);
    qe_cpu_cap(QE_ISA_PORTABLE);
    qe_conv_f32_forward(c, in, n, h, h, ref, NULL, 0);
    qe_conv_f32_forward(&absconv, ain, n, h, h, bound, NULL, 0);
    qe_cpu_cap(QE_ISA_BEST);

    double worst = 0;
    for (size_t i = 0; i < out_len; i++) {
        double e = fabs((double)fast[i] - ref[i]) / (1e-5 * bound[i] + 1e-30);
        if (!(e <= worst))
            worst = e;
    }
    qe_conv_f32_free(&absconv);
    free(aw), free(ab);
    qe_free_aligned(ain), qe_free_aligned(ref), qe_free_aligned(bound);
    return worst;
}

/* One layer under test: the f32 inference convolution or the f64acc calibration one. */
typedef struct layer {
    int f64acc;
    qe_conv_f32 f32;
    qe_conv_f64acc f64;
    const float *residual;     /* --residual: added in the timed (ReLU) runs, as a block's last conv does */
} layer;

static void layer_forward(const layer *l, const float *in, int n, int h, float *out, int relu)
{
    if (l->f64acc)
        qe_conv_f64acc_forward(&l->f64, in, n, h, h, out, relu);
    else
        qe_conv_f32_forward(&l->f32, in, n, h, h, out, relu ? l->residual : NULL, relu);
}

/* f64acc: the number of outputs that differ from the portable path (which is exact). */
static double check_f64acc(const layer *l, const float *in, int n, int h, size_t out_len,
                           const float *fast)
{
    float *ref = qe_malloc_aligned(out_len * sizeof *ref);
    qe_cpu_cap(QE_ISA_PORTABLE);
    layer_forward(l, in, n, h, ref, 0);
    qe_cpu_cap(QE_ISA_BEST);
    size_t differ = 0;
    for (size_t i = 0; i < out_len; i++)
        differ += memcmp(&fast[i], &ref[i], sizeof *ref) != 0;
    qe_free_aligned(ref);
    return (double)differ;
}

typedef struct options {
    int batch, threads, net, check, f64acc, residual;
    double min_time;
    const char *only;
} options;

typedef struct result {
    double seconds;        /* best of the timed runs */
    double err;            /* --check: worst err/tol (f32) or differing outputs (f64acc) */
    int ok;
} result;

/* Times one shape on random data (ReLU on, as in the networks) and optionally checks it. */
static result bench_shape(const qe_conv_shape *s, const options *o)
{
    int batch = o->batch, oh = qe_conv_shape_out(s);
    size_t in_len = (size_t)batch * s->h * s->h * s->cin;
    size_t out_len = (size_t)batch * oh * oh * s->cout;
    size_t wlen = (size_t)s->cout * s->cin * s->k * s->k;
    float *w = rnd_array(wlen, 1.0f / sqrtf((float)(s->cin * s->k * s->k)));
    float *bias = rnd_array((size_t)s->cout, 0.1f);
    float *in = rnd_array(in_len, 1.0f);
    float *out = qe_malloc_aligned(out_len * sizeof *out);
    float *res = o->residual && !o->f64acc ? rnd_array(out_len, 1.0f) : NULL;
    layer l = {.f64acc = o->f64acc, .residual = res};
    if (o->f64acc)
        qe_conv_f64acc_init(&l.f64, s->cin, s->cout, s->k, s->k, s->stride, s->pad, w, bias);
    else
        qe_conv_f32_init(&l.f32, s->cin, s->cout, s->k, s->k, s->stride, s->pad, w, bias);

    result r = {1e30, 0, 1};
    layer_forward(&l, in, batch, s->h, out, 1);   /* warm-up: pages, caches, thread pool */
    double total = 0;
    for (int reps = 0; total < o->min_time || reps < 3; reps++) {
        double t0 = qe_now();
        layer_forward(&l, in, batch, s->h, out, 1);
        double t = qe_now() - t0;
        total += t;
        if (t < r.seconds)
            r.seconds = t;
    }
    if (o->check) {
        /* Without the ReLU so that negative outputs are compared too. */
        layer_forward(&l, in, batch, s->h, out, 0);
        r.err = o->f64acc ? check_f64acc(&l, in, batch, s->h, out_len, out)
                          : check_layer(&l.f32, w, bias, in, batch, s->h, in_len, out_len, out);
        r.ok = o->f64acc ? r.err == 0 : r.err <= 1;
    }
    if (o->f64acc)
        qe_conv_f64acc_free(&l.f64);
    else
        qe_conv_f32_free(&l.f32);
    qe_free_aligned(w), qe_free_aligned(bias), qe_free_aligned(in), qe_free_aligned(out);
    qe_free_aligned(res);
    return r;
}

static double peak_gmacs(const options *o)
{
    return o->f64acc ? qe_peak_f64_gmacs(o->threads) : qe_peak_f32_gmacs(o->threads);
}

int main(int argc, char **argv)
{
    options o = {16, omp_get_max_threads(), 0, 0, 0, 0, 0.3, NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--check"))
            o.check = 1;
        else if (!strcmp(a, "--f64acc"))
            o.f64acc = 1;
        else if (!strcmp(a, "--residual"))
            o.residual = 1;
        else if (i + 1 >= argc)
            usage();
        else if (!strcmp(a, "--batch"))
            o.batch = atoi(argv[++i]);
        else if (!strcmp(a, "--threads"))
            o.threads = atoi(argv[++i]);
        else if (!strcmp(a, "--net"))
            o.net = atoi(argv[++i]);
        else if (!strcmp(a, "--layer"))
            o.only = argv[++i];
        else if (!strcmp(a, "--min-time"))
            o.min_time = atof(argv[++i]);
        else
            usage();
    }
    if (o.batch < 1 || o.batch > 256 || o.threads < 1 || o.threads > 1024 ||
        (o.net && o.net != 18 && o.net != 50) || !(o.min_time >= 0 && o.min_time <= 60))
        usage();
    omp_set_num_threads(o.threads);

    /* The peak is measured before and after the layers and the higher one kept: on a shared
     * machine a low reading means a neighbour took the cores, not a slower CPU. */
    double peak_before = peak_gmacs(&o);
    result res[64];
    for (int si = 0; si < qe_conv_shape_count && si < 64; si++) {
        const qe_conv_shape *s = &qe_conv_shapes[si];
        if ((o.net == 18 && !s->count18) || (o.net == 50 && !s->count50) ||
            (o.only && !strstr(s->name, o.only)))
            res[si].seconds = 0;
        else
            res[si] = bench_shape(s, &o);
    }
    double peak_after = peak_gmacs(&o);
    double peak = peak_before > peak_after ? peak_before : peak_after;

    printf("%s, isa %s, threads %d, batch %d, peak %.1f GMAC/s (%s FMA; %.1f before, %.1f "
           "after)\n", o.f64acc ? "qe_conv_f64acc" : "qe_conv_f32", qe_cpu_isa_name(), o.threads,
           o.batch, peak, o.f64acc ? "f64" : "f32", peak_before, peak_after);
    printf("%-20s %5s %5s %2s %1s %4s %9s %9s %8s %6s%s\n", "layer", "cin", "cout", "k", "s",
           "h", "MMAC", "ms", "GMAC/s", "%peak",
           o.check ? (o.f64acc ? "  differ" : "  err/tol") : "");
    double macs[2] = {0, 0}, secs[2] = {0, 0};
    int failures = 0;
    for (int si = 0; si < qe_conv_shape_count && si < 64; si++) {
        const qe_conv_shape *s = &qe_conv_shapes[si];
        const result *r = &res[si];
        if (r->seconds == 0)
            continue;
        double mac = qe_conv_shape_macs(s, o.batch), rate = mac / r->seconds * 1e-9;
        printf("%-20s %5d %5d %2d %1d %4d %9.1f %9.3f %8.1f %5.1f%%", s->name, s->cin, s->cout,
               s->k, s->stride, s->h, mac * 1e-6, r->seconds * 1e3, rate, 100 * rate / peak);
        if (o.check)
            printf("  %7.3f%s", r->err, r->ok ? "" : "  FAIL");
        printf("\n");
        failures += !r->ok;
        int counts[2] = {s->count18, s->count50};
        for (int k = 0; k < 2; k++) {
            macs[k] += counts[k] * mac;
            secs[k] += counts[k] * r->seconds;
        }
    }
    for (int k = 0; k < 2; k++) {
        if (secs[k] == 0 || (o.net && o.net != (k ? 50 : 18)))
            continue;
        double rate = macs[k] / secs[k] * 1e-9;
        printf("resnet%d convs, batch %d: %.2f GMAC, %.2f ms, %.1f GMAC/s, %.1f%% of peak\n",
               k ? 50 : 18, o.batch, macs[k] * 1e-9, secs[k] * 1e3, rate, 100 * rate / peak);
    }
    if (o.check)
        printf("check: %d layer(s) outside tolerance\n", failures);
    return failures ? 1 : 0;
}
