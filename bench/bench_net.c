/*
 * bench_net - whole-network inference speed against this machine's own peak, measured in the
 * same run.
 *
 *   bench_net [--arch resnet18|resnet50|all] [--batch N[,N...]] [--threads N] [--seconds S] [--json]
 *
 * Defaults: both networks, batch 1 and 16, 2 threads, ~3 s per case. The peak is the FP32 FMA
 * rate of a register-resident kernel (bench/peak.h) on the same threads. Weights are the
 * built-in synthetic checkpoints (speed does not depend on the values).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "f32net.h"
#include "image.h"
#include "peak.h"
#include "qe_util.h"
#include "resnet.h"
#include "synth.h"

typedef struct { const char *arch; int batch; double ips, gmacs; } result;

static qe_f32net *build(const char *arch_name)
{
    char err[QE_ERR_LEN];
    qe_statedict sd;
    qe_arch arch;
    qe_resnet_params p;
    if (qe_resnet_arch_parse(arch_name, &arch) || qe_synth_statedict(arch_name, &sd, err)) {
        fprintf(stderr, "bench_net: cannot build %s\n", arch_name);
        exit(2);
    }
    if (qe_resnet_params_load(arch, &sd, &p, err)) {
        fprintf(stderr, "bench_net: %s\n", err);
        exit(2);
    }
    qe_statedict_free(&sd);
    qe_f32net *net = qe_f32net_create(&p);
    qe_resnet_params_free(&p);
    return net;
}

static double run(qe_f32net *net, int batch, double seconds)
{
    float *x = qe_malloc_aligned((size_t)batch * QE_TENSOR_FLOATS * sizeof(float));
    float *logits = qe_malloc((size_t)batch * 1000 * sizeof(float));
    unsigned s = 12345;
    for (size_t i = 0; i < (size_t)batch * QE_TENSOR_FLOATS; i++) {
        s = s * 1103515245u + 12345u;
        x[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    qe_f32net_forward(net, x, batch, logits);   /* warm-up: buffers, caches, thread team */
    int iters = 0;
    double t0 = qe_now(), t;
    do {
        qe_f32net_forward(net, x, batch, logits);
        iters++;
        t = qe_now() - t0;
    } while (t < seconds);
    qe_free_aligned(x);
    free(logits);
    return (double)iters * batch / t;
}

int main(int argc, char **argv)
{
    const char *archs = "all";
    char batches[64] = "1,16";
    int threads = 2, json = 0;
    double seconds = 3.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--arch") == 0 && i + 1 < argc)
            archs = argv[++i];
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            snprintf(batches, sizeof batches, "%s", argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else {
            fprintf(stderr, "usage: bench_net [--arch resnet18|resnet50|all] [--batch 1,16] [--threads N] [--seconds S] [--json]\n");
            return 2;
        }
    }
    if (threads < 1)
        threads = 1;
    omp_set_num_threads(threads);
    double peak = qe_peak_f32_gmacs(threads);
    const char *names[2] = {"resnet18", "resnet50"};
    result res[16];
    int nres = 0;
    for (int a = 0; a < 2; a++) {
        if (strcmp(archs, "all") != 0 && strcmp(archs, names[a]) != 0)
            continue;
        qe_f32net *net = build(names[a]);
        qe_arch arch;
        qe_resnet_arch_parse(names[a], &arch);
        double gmac_per_img = qe_resnet_desc_get(arch)->gmacs;
        char list[64];
        snprintf(list, sizeof list, "%s", batches);
        for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && nres < 16; tok = strtok_r(NULL, ",", &save)) {
            int b = atoi(tok);
            if (b < 1)
                continue;
            double ips = run(net, b, seconds);
            res[nres++] = (result){names[a], b, ips, ips * gmac_per_img};
            if (!json)
                printf("%-9s fp32 batch %-3d threads %d: %7.2f images/s  %6.1f GMAC/s  %5.1f%% of peak\n", names[a], b,
                       threads, ips, ips * gmac_per_img, 100.0 * ips * gmac_per_img / peak);
        }
        qe_f32net_free(net);
    }
    if (json) {
        printf("{\"isa\": \"%s\", \"threads\": %d, \"peak_gmacs\": %.2f, \"results\": [", qe_cpu_isa_name(), threads, peak);
        for (int i = 0; i < nres; i++)
            printf("%s{\"model\": \"%s\", \"precision\": \"fp32\", \"batch\": %d, \"threads\": %d, \"images_per_second\": %.3f, "
                   "\"achieved_gmacs\": %.2f, \"peak_gmacs\": %.2f, \"ratio_to_peak\": %.4f}",
                   i ? ", " : "", res[i].arch, res[i].batch, threads, res[i].ips, res[i].gmacs, peak, res[i].gmacs / peak);
        printf("]}\n");
    } else {
        printf("peak (FP32 FMA, %d threads, %s): %.1f GMAC/s\n", threads, qe_cpu_isa_name(), peak);
    }
    return 0;
}
