/*
 * bench_qlayers.c - timing of the exact integer convolution (qconv.h) over every ResNet18/50
 * layer shape, with 8-bit and 4-bit weight codes.
 *
 *   bench_qlayers [--batch N] [--threads T] [--net 18|50] [--layer SUBSTR] [--wbits 8|4]
 *                 [--min-time S] [--cpu-time]
 *
 * Per shape: the best of repeated runs, GMAC/s, and the ratio to the peak rate of the
 * instruction the kernel is built on (qpeak.h: vpmaddwd for 8-bit codes, vpmaddubsw for 4-bit);
 * then per network the total weighted by how often each shape occurs (all its MACs over all
 * its time), fc included. --cpu-time (one thread only) times with the thread's CPU clock, which
 * other processes on a shared machine do not inflate.
 */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu.h"
#include "qconv.h"
#include "qe_util.h"
#include "qpeak.h"
#include "shapes.h"

/* shapes.h lists the convolutions; the fc layers are 1x1 convolutions on a 1x1 image (§9.2). */
static const qe_conv_shape fc_shapes[] = {
    {"r18.fc", 512, 1000, 1, 1, 0, 1, 1, 0},
    {"r50.fc", 2048, 1000, 1, 1, 0, 1, 0, 1},
};

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

/* splitmix64 */
static uint32_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static int use_cpu_time;

static double now(void)
{
    if (!use_cpu_time)
        return qe_now();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_qlayers [--batch N] [--threads T] [--net 18|50] "
                    "[--layer SUBSTR] [--wbits 8|4] [--min-time SECONDS] [--cpu-time]\n");
    exit(2);
}

/* Best time (wall, or CPU with --cpu-time) of one forward of shape s with wbits-bit codes. */
static double time_layer(const qe_conv_shape *s, int batch, int wbits, double min_time)
{
    int oh = qe_conv_shape_out(s);
    size_t in_len = (size_t)batch * s->h * s->h * s->cin;
    size_t out_len = (size_t)batch * oh * oh * s->cout;
    size_t wlen = (size_t)s->cout * s->cin * s->k * s->k;
    int half = 1 << (wbits - 1);
    int16_t *k = qe_malloc(wlen * sizeof *k);
    uint8_t *in = qe_malloc_aligned(in_len), *out = qe_malloc_aligned(out_len);
    double *scale = qe_malloc((size_t)s->cout * sizeof *scale);
    double *bias = qe_malloc((size_t)s->cout * sizeof *bias);
    for (size_t i = 0; i < wlen; i++)
        k[i] = (int16_t)((int)(rnd() % (uint32_t)(2 * half)) - half);
    for (size_t i = 0; i < in_len; i++)
        in[i] = (uint8_t)rnd();
    for (int c = 0; c < s->cout; c++) {
        scale[c] = 1e-5 * (1 + c % 7);
        bias[c] = 0.01 * (c % 13);
    }
    qe_encoding enc = {8, 0, -2.0, 3.0, 0, 0};
    qe_requant rq = {scale, bias, 1, qe_qparams_from_encoding(&enc), NULL, NULL};
    qe_qconv c;
    if (qe_qconv_init(&c, s->cin, s->cout, s->k, s->k, s->stride, s->pad, wbits, k)) {
        fprintf(stderr, "bench_qlayers: K of %s exceeds %d\n", s->name, QE_QCONV_K_MAX);
        exit(2);
    }

    qe_qconv_forward(&c, in, batch, s->h, s->h, 77, &rq, out);
    double best = 1e30, total = 0;
    int reps = 0;
    while (total < min_time || reps < 3) {
        double t0 = now();
        qe_qconv_forward(&c, in, batch, s->h, s->h, 77, &rq, out);
        double t = now() - t0;
        total += t;
        reps++;
        if (t < best)
            best = t;
    }
    qe_qconv_free(&c);
    free(k), free(scale), free(bias);
    qe_free_aligned(in), qe_free_aligned(out);
    return best;
}

int main(int argc, char **argv)
{
    int batch = 16, threads = omp_get_max_threads(), net = 0, only_bits = 0;
    double min_time = 0.2;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--cpu-time"))
            use_cpu_time = 1;
        else if (i + 1 >= argc)
            usage();
        else if (!strcmp(a, "--batch"))
            batch = atoi(argv[++i]);
        else if (!strcmp(a, "--threads"))
            threads = atoi(argv[++i]);
        else if (!strcmp(a, "--net"))
            net = atoi(argv[++i]);
        else if (!strcmp(a, "--layer"))
            only = argv[++i];
        else if (!strcmp(a, "--wbits"))
            only_bits = atoi(argv[++i]);
        else if (!strcmp(a, "--min-time"))
            min_time = atof(argv[++i]);
        else
            usage();
    }
    if (batch < 1 || batch > 256 || threads < 1 || threads > 1024 ||
        (net && net != 18 && net != 50) || (only_bits && only_bits != 8 && only_bits != 4) ||
        (use_cpu_time && threads != 1))
        usage();
    omp_set_num_threads(threads);

    /* index 0: 8-bit codes against the vpmaddwd peak; 1: 4-bit codes against vpmaddubsw */
    static const int bits[2] = {8, 4};
    double peak[2] = {qe_peak_madd16_gmacs(threads), qe_peak_maddubs_gmacs(threads)};
    printf("isa %s, threads %d, batch %d, peak %.1f GMAC/s (vpmaddwd) %.1f GMAC/s (vpmaddubsw)\n",
           qe_cpu_isa_name(), threads, batch, peak[0], peak[1]);
    printf("%-20s %5s %5s %2s %1s %4s %8s | %8s %7s %6s | %8s %7s %6s\n", "layer", "cin", "cout",
           "k", "s", "h", "MMAC", "w8 ms", "GMAC/s", "%peak", "w4 ms", "GMAC/s", "%peak");

    double macs[2][2] = {{0}}, secs[2][2] = {{0}};   /* [net][bits] */
    int nshapes = qe_conv_shape_count + 2;
    for (int si = 0; si < nshapes; si++) {
        const qe_conv_shape *s = si < qe_conv_shape_count ? &qe_conv_shapes[si]
                                                          : &fc_shapes[si - qe_conv_shape_count];
        int counts[2] = {s->count18, s->count50};
        if ((net == 18 && !counts[0]) || (net == 50 && !counts[1]) ||
            (only && !strstr(s->name, only)))
            continue;
        double mac = qe_conv_shape_macs(s, batch);
        printf("%-20s %5d %5d %2d %1d %4d %8.1f", s->name, s->cin, s->cout, s->k, s->stride, s->h,
               mac * 1e-6);
        for (int b = 0; b < 2; b++) {
            if (only_bits && only_bits != bits[b]) {
                printf(" | %8s %7s %6s", "-", "-", "-");
                continue;
            }
            double t = time_layer(s, batch, bits[b], min_time), rate = mac / t * 1e-9;
            printf(" | %8.3f %7.1f %5.1f%%", t * 1e3, rate, 100 * rate / peak[b]);
            for (int k = 0; k < 2; k++) {
                macs[k][b] += counts[k] * mac;
                secs[k][b] += counts[k] * t;
            }
        }
        printf("\n");
        fflush(stdout);
    }
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < 2; b++) {
            /* a shape of both networks also counts for the one not asked for: skip it */
            if (secs[k][b] == 0 || (net && net != (k ? 50 : 18)))
                continue;
            double rate = macs[k][b] / secs[k][b] * 1e-9;
            printf("resnet%d W%dA8 convs+fc, batch %d: %.2f GMAC, %.2f ms, %.1f GMAC/s, "
                   "%.1f%% of %s peak\n", k ? 50 : 18, bits[b], batch, macs[k][b] * 1e-9,
                   secs[k][b] * 1e3, rate, 100 * rate / peak[b], b ? "vpmaddubsw" : "vpmaddwd");
        }
    return 0;
}
