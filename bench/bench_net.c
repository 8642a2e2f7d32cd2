/*
 * bench_net - whole-network inference speed against this machine's own peak, measured in the
 * same run; calibration time; resident memory of the quantized models.
 *
 *   bench_net [--arch resnet18|resnet50|all] [--precision fp32,w8a8,w4a8] [--batch 1,16]
 *             [--threads N] [--seconds S] [--calib-images N] [--json]
 *
 * Peaks (same threads): FP32 FMA rate for fp32; for the quantized configs the rate of the
 * instruction their kernels use: tdpbusd (AMX) or vpdpbusd (AVX-512 VNNI) where the CPU has
 * them, else the exact 16-bit vpmaddwd rate for W8 and the vpmaddubsw rate for W4 (where 4-bit
 * weights cannot saturate it); all are printed. Quantized rates are also given
 * against the u8s8 cell (vpmaddubsw + vpmaddwd + vpaddd), the inner step of saturating int8 GEMMs
 * such as ONNX Runtime's, so that their ratios compare with ours. Weights are the built-in
 * synthetic checkpoints and the inputs random (speed does not depend on the values); quantized
 * models are calibrated on random inputs first. --calib-images N (default 256, batch 128) times
 * the ResNet50 calibration pass and extrapolates it to the zoo's 2000 images; --calib-images 0
 * skips it. Resident memory is reported with all four quantized configs loaded at once.
 * Images/s is that of the best one-second window of --seconds (default 5), like the best-of
 * peaks; the mean over all windows is printed beside it.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "f32net.h"
#include "image.h"
#include "peak.h"
#include "qpeak.h"
#include "qe_util.h"
#include "qsim.h"
#include "resnet.h"
#include "nets.h"

typedef struct { const char *arch, *precision; int batch; double ips, mean_ips, gmacs, peak; } result;

/* One forward pass as evaluation runs it (model.c): FP32 from the normalised tensors, the
 * quantized network straight from the crops. */
typedef void (*forward_fn)(void *net, const uint8_t *crops, const float *x, int n, float *logits);
static void fwd_f32(void *net, const uint8_t *crops, const float *x, int n, float *l)
{
    (void)crops;
    qe_f32net_forward(net, x, n, l);
}
static void fwd_q(void *net, const uint8_t *crops, const float *x, int n, float *l)
{
    (void)x;
    qe_qsim_forward_crops(net, crops, n, l);
}

/* Images/s of the best one-second window within `seconds` (at least one window): on a shared
 * machine a neighbour's burst costs a window, not the whole figure, as the peaks are best-of too.
 * *mean_ips receives the rate over all windows. */
static double run(forward_fn fwd, void *net, int batch, double seconds, double *mean_ips)
{
    uint8_t *crops = qe_bench_random_crops(batch);
    float *x = qe_malloc_aligned((size_t)batch * QE_TENSOR_FLOATS * sizeof(float));
    qe_image_normalize_batch(crops, batch, x);
    float *logits = qe_malloc((size_t)batch * 1000 * sizeof(float));
    fwd(net, crops, x, batch, logits);   /* warm-up: buffers, caches, thread team */
    double best = 0, total_t = 0;
    long total_iters = 0;
    do {
        int iters = 0;
        double t0 = qe_now(), t;
        do {
            fwd(net, crops, x, batch, logits);
            iters++;
            t = qe_now() - t0;
        } while (t < 1.0);
        best = iters * batch / t > best ? iters * batch / t : best;
        total_t += t;
        total_iters += iters;
    } while (total_t < seconds);
    qe_free_aligned(x);
    free(crops);
    free(logits);
    *mean_ips = (double)total_iters * batch / total_t;
    return best;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    if (f)
        fclose(f);
    return kb;
}

static int listed(const char *list, const char *item)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strcmp(t, item) == 0 || strcmp(t, "all") == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *archs = "all", *precisions = "fp32,w8a8,w4a8";
    char batches[64] = "1,16";
    int threads = 2, json = 0, calib_images = 256;
    double seconds = 5.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--arch") == 0 && i + 1 < argc)
            archs = argv[++i];
        else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc)
            precisions = argv[++i];
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            snprintf(batches, sizeof batches, "%s", argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--calib-images") == 0 && i + 1 < argc)
            calib_images = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else {
            fprintf(stderr, "usage: bench_net [--arch resnet18|resnet50|all] [--precision fp32,w8a8,w4a8] [--batch 1,16]\n"
                            "                 [--threads N] [--seconds S] [--calib-images N] [--json]\n");
            return 2;
        }
    }
    if (threads < 1)
        threads = 1;
    omp_set_num_threads(threads);
    double peak_f32 = qe_peak_f32_gmacs(threads), peak_m16 = qe_peak_madd16_gmacs(threads),
           peak_mub = qe_peak_maddubs_gmacs(threads), peak_cell = qe_peak_u8s8_gmacs(threads),
           peak_dp = qe_peak_dpbusd_gmacs(threads), peak_tdp = qe_peak_tdpbusd_gmacs(threads);
    /* The yardstick of the quantized configs is the peak of the instruction their kernels
     * run on (qconv.c): tdpbusd with AMX, vpdpbusd with AVX-512 VNNI, else vpmaddwd for 8-bit
     * weights and vpmaddubsw for 4-bit ones. */
    double peak_q8 = peak_tdp > 0 ? peak_tdp : peak_dp > 0 ? peak_dp : peak_m16;
    double peak_q4 = peak_tdp > 0 ? peak_tdp : peak_dp > 0 ? peak_dp : peak_mub;
    const char *names[2] = {"resnet18", "resnet50"};
    result res[32];
    int nres = 0;
    for (int a = 0; a < 2; a++) {
        if (strcmp(archs, "all") != 0 && strcmp(archs, names[a]) != 0)
            continue;
        qe_resnet_params p;
        qe_bench_params(names[a], &p);
        double gmac_per_img = p.desc->gmacs;
        static const char *precs[3] = {"fp32", "w8a8", "w4a8"};
        for (int k = 0; k < 3; k++) {
            if (!listed(precisions, precs[k]))
                continue;
            void *net;
            forward_fn fwd;
            double peak;
            if (k == 0) {
                net = qe_f32net_create(&p);
                fwd = fwd_f32;
                peak = peak_f32;
            } else {
                net = qe_bench_quantized(&p, k == 1 ? 8 : 4, 16, NULL, NULL);
                fwd = fwd_q;
                peak = k == 1 ? peak_q8 : peak_q4;
            }
            char list[64];
            snprintf(list, sizeof list, "%s", batches);
            for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && nres < 32; tok = strtok_r(NULL, ",", &save)) {
                int b = atoi(tok);
                if (b < 1)
                    continue;
                double mean, ips = run(fwd, net, b, seconds, &mean);
                const double gmacs = ips * gmac_per_img;
                res[nres++] = (result){names[a], precs[k], b, ips, mean, gmacs, peak};
                if (!json)
                    printf("%-9s %-4s batch %-3d threads %d: %7.2f images/s  %6.1f GMAC/s  %5.1f%% of peak (%.1f)",
                           names[a], precs[k], b, threads, ips, gmacs, 100.0 * gmacs / peak, peak);
                if (!json && k > 0)
                    printf("  %5.1f%% of u8s8 cell", 100.0 * gmacs / peak_cell);
                if (!json)
                    printf("  [mean %.2f images/s]\n", mean);
                fflush(stdout);
            }
            if (k == 0)
                qe_f32net_free(net);
            else
                qe_qsim_free(net);
        }
        qe_resnet_params_free(&p);
    }

    /* Calibration of ResNet50 (the slow one), extrapolated to the zoo's 2000 images. */
    double calib_s = 0, zoo_s = 0;
    if (calib_images > 0) {
        qe_resnet_params p;
        qe_bench_params("resnet50", &p);
        qe_qsim_free(qe_bench_quantized(&p, 8, calib_images, &calib_s, &zoo_s));
        qe_resnet_params_free(&p);
        if (!json)
            printf("resnet50 calibration: %d images in %.1f s (%.1f images/s); 2000 images ~ %.0f s\n", calib_images,
                   calib_s, calib_images / calib_s, zoo_s);
    }

    /* Resident memory with all four quantized configs loaded. */
    long rss0 = rss_kb();
    qe_qsim *all[4];
    size_t bytes = 0;
    for (int i = 0; i < 4; i++) {
        qe_resnet_params p;
        qe_bench_params(i < 2 ? "resnet18" : "resnet50", &p);
        all[i] = qe_bench_quantized(&p, i % 2 ? 4 : 8, 8, NULL, NULL);
        qe_resnet_params_free(&p);
        uint8_t *crops = qe_bench_random_crops(16);
        float *l = qe_malloc(16 * 1000 * sizeof(float));
        qe_qsim_forward_crops(all[i], crops, 16, l);
        qe_qsim_trim(all[i]);                   /* at rest, as the daemon leaves an idle model */
        free(crops);
        free(l);
        bytes += qe_qsim_bytes(all[i]);
    }
    long rss1 = rss_kb();
    for (int i = 0; i < 4; i++)
        qe_qsim_free(all[i]);
    if (!json) {
        printf("peaks (%d threads, %s): FP32 FMA %.1f GMAC/s, vpmaddwd %.1f GMAC/s, vpmaddubsw %.1f GMAC/s, "
               "u8s8 cell %.1f GMAC/s", threads, qe_cpu_isa_name(), peak_f32, peak_m16, peak_mub, peak_cell);
        if (peak_dp > 0)
            printf(", vpdpbusd %.1f GMAC/s", peak_dp);
        if (peak_tdp > 0)
            printf(", tdpbusd %.1f GMAC/s", peak_tdp);
        printf("\n");
        printf("four quantized configs resident: %.0f MB (engine accounting %.0f MB), process RSS %.0f MB\n",
               (rss1 - rss0) / 1024.0, bytes / 1048576.0, rss1 / 1024.0);
        return 0;
    }
    printf("{\"isa\": \"%s\", \"threads\": %d, \"peak_f32_gmacs\": %.2f, \"peak_madd16_gmacs\": %.2f, "
           "\"peak_maddubs_gmacs\": %.2f, \"peak_u8s8_cell_gmacs\": %.2f, \"peak_dpbusd_gmacs\": %.2f, "
           "\"peak_tdpbusd_gmacs\": %.2f, \"results\": [", qe_cpu_isa_name(), threads,
           peak_f32, peak_m16, peak_mub, peak_cell, peak_dp, peak_tdp);
    for (int i = 0; i < nres; i++)
        printf("%s{\"model\": \"%s\", \"precision\": \"%s\", \"batch\": %d, \"threads\": %d, \"images_per_second\": %.3f, "
               "\"mean_images_per_second\": %.3f, \"achieved_gmacs\": %.2f, \"peak_gmacs\": %.2f, \"ratio_to_peak\": %.4f}",
               i ? ", " : "", res[i].arch, res[i].precision, res[i].batch, threads, res[i].ips, res[i].mean_ips, res[i].gmacs, res[i].peak,
               res[i].gmacs / res[i].peak);
    printf("], \"calibration\": {\"model\": \"resnet50\", \"images\": %d, \"seconds\": %.3f, \"seconds_2000_images\": %.1f}",
           calib_images, calib_s, zoo_s);
    printf(", \"quantized_resident_mb\": %.1f, \"quantized_engine_mb\": %.1f}\n", (rss1 - rss0) / 1024.0, bytes / 1048576.0);
    return 0;
}
