/*
 * quanteval eval: the zoo's evaluation (resnet_quanteval.py) on a dataset, from the JPEG bytes
 * to top-1/top-5, with decoding overlapped with inference (pipeline.h).
 */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "classes.h"
#include "cli.h"
#include "dataset.h"
#include "image.h"
#include "model.h"
#include "pipeline.h"

typedef struct eval_opts {
    const char *model_config;
    const char *dataset;
    const char *ground_truth;
    const char *weights;
    const char *predictions_out;
    long limit, batch, threads, workers;
    int json, quiet;
} eval_opts;

typedef struct eval_result {
    size_t images, correct1, correct5, failed;
    double seconds;
} eval_result;

static void help(void)
{
    puts("usage: quanteval eval [options]\n"
         "\n"
         "  --model-config NAME    model config (default resnet18_fp32; see configs/)\n"
         "  --dataset-path DIR     ImageNet folder layout DIR/<wnid>/*.JPEG, or flat\n"
         "                         ILSVRC2012_val_*.JPEG with a ground-truth file\n"
         "                         (default: the bundled sample images)\n"
         "  --ground-truth FILE    flat layout: lines '<file name> <wnid or class index>'\n"
         "  --weights FILE         checkpoint (.pth zip or legacy, .safetensors, .npz)\n"
         "  --limit N              evaluate only the first N images (sorted order)\n"
         "  --batch N              images per forward pass (default 16)\n"
         "  --threads N            compute threads (default: all cores)\n"
         "  --workers N            image decoding threads (default 2)\n"
         "  --json                 print one JSON object instead of the text summary\n"
         "  --predictions-out FILE write CSV path,label,pred1,...,pred5\n"
         "  --use-cuda True|False  accepted for compatibility with the zoo script (CPU only)\n"
         "  --quiet                no progress bar");
}

static void progress(size_t done, size_t total, double elapsed)
{
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    int width = 30, fill = total ? (int)((double)width * (double)done / (double)total) : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r[%s] %zu/%zu  %.1f img/s  ETA %.0fs ", bar, done, total, rate, eta);
    fflush(stderr);
}

/* Runs the model over items; writes predictions when pred is not NULL. */
static int run_pass(qe_model *m, const qe_dataset *ds, size_t count, const eval_opts *o, FILE *pred,
                    eval_result *r)
{
    memset(r, 0, sizeof *r);
    int tty = !o->quiet && isatty(2);
    float *logits = qe_malloc((size_t)o->batch * 1000 * sizeof(float));
    qe_pipeline *p = qe_pipeline_start(ds->items, count, (int)o->batch, (int)o->workers, QE_DEFAULT_MAX_PIXELS);
    double t0 = qe_now(), last = 0;
    qe_batch *b;
    while ((b = qe_pipeline_next(p)) != NULL) {
        qe_model_forward_f32(m, b->x, b->n, logits);
        for (int i = 0; i < b->n; i++) {
            const qe_dataset_item *it = &ds->items[b->first + (size_t)i];
            if (b->error[i][0]) {
                r->failed++;
                fprintf(stderr, "%squanteval eval: skipping %s: %s\n", tty ? "\n" : "", it->path, b->error[i]);
                continue;
            }
            int top[5];
            qe_topk(logits + (size_t)i * 1000, 1000, 5, top);
            r->images++;
            r->correct1 += top[0] == it->label;
            for (int k = 0; k < 5; k++)
                r->correct5 += top[k] == it->label;
            if (pred)
                fprintf(pred, "%s,%d,%d,%d,%d,%d,%d\n", it->rel, it->label, top[0], top[1], top[2], top[3], top[4]);
        }
        qe_pipeline_release(p, b);
        double now = qe_now() - t0;
        if (tty && (now - last > 0.2 || r->images + r->failed == count)) {
            progress(r->images + r->failed, count, now);
            last = now;
        }
    }
    r->seconds = qe_now() - t0;
    qe_pipeline_stop(p);
    free(logits);
    if (tty)
        fputc('\n', stderr);
    return 0;
}

static int parse(int argc, char **argv, eval_opts *o)
{
    enum { O_MODEL = 1, O_DATA, O_GT, O_WEIGHTS, O_PRED, O_LIMIT, O_BATCH, O_THREADS, O_WORKERS, O_JSON, O_CUDA, O_QUIET, O_HELP };
    static const struct option opts[] = {
        {"model-config", required_argument, 0, O_MODEL}, {"dataset-path", required_argument, 0, O_DATA},
        {"ground-truth", required_argument, 0, O_GT},    {"weights", required_argument, 0, O_WEIGHTS},
        {"predictions-out", required_argument, 0, O_PRED}, {"limit", required_argument, 0, O_LIMIT},
        {"batch", required_argument, 0, O_BATCH},        {"threads", required_argument, 0, O_THREADS},
        {"workers", required_argument, 0, O_WORKERS},    {"json", no_argument, 0, O_JSON},
        {"use-cuda", required_argument, 0, O_CUDA},      {"quiet", no_argument, 0, O_QUIET},
        {"help", no_argument, 0, O_HELP},                {0, 0, 0, 0}};
    *o = (eval_opts){.model_config = "resnet18_fp32", .batch = 16, .workers = 2};
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model_config = optarg; break;
        case O_DATA: o->dataset = optarg; break;
        case O_GT: o->ground_truth = optarg; break;
        case O_WEIGHTS: o->weights = optarg; break;
        case O_PRED: o->predictions_out = optarg; break;
        case O_LIMIT: if (qe_cli_int("eval", "--limit", optarg, 1, 100000000, &o->limit)) return -1; break;
        case O_BATCH: if (qe_cli_int("eval", "--batch", optarg, 1, 1024, &o->batch)) return -1; break;
        case O_THREADS: if (qe_cli_int("eval", "--threads", optarg, 1, 1024, &o->threads)) return -1; break;
        case O_WORKERS: if (qe_cli_int("eval", "--workers", optarg, 1, 64, &o->workers)) return -1; break;
        case O_JSON: o->json = 1; break;
        case O_QUIET: o->quiet = 1; break;
        case O_CUDA:
            if (strcasecmp(optarg, "true") == 0 || strcmp(optarg, "1") == 0) {
                qe_cli_error("eval", "--use-cuda True: this build runs on the CPU only (no GPU support); use --use-cuda False");
                return -1;
            }
            if (strcasecmp(optarg, "false") != 0 && strcmp(optarg, "0") != 0) {
                qe_cli_error("eval", "--use-cuda expects True or False, got '%s'", optarg);
                return -1;
            }
            break;
        case O_HELP: help(); exit(0);
        default:
            qe_cli_error("eval", "unknown or incomplete option '%s' (see quanteval eval --help)", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        qe_cli_error("eval", "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    return 0;
}

int qe_cli_eval(int argc, char **argv)
{
    eval_opts o;
    char err[QE_ERR_LEN], warn[QE_ERR_LEN];
    if (parse(argc, argv, &o))
        return 2;
    qe_cli_set_threads((int)o.threads);
    if (!o.dataset)
        o.dataset = qe_cli_samples_dir();

    qe_dataset ds;
    if (qe_dataset_open(o.dataset, o.ground_truth, &ds, err)) {
        qe_cli_error("eval", "%s", err);
        return 2;
    }
    size_t count = o.limit && (size_t)o.limit < ds.count ? (size_t)o.limit : ds.count;
    qe_model *m;
    if (qe_model_open(o.model_config, o.weights, &m, warn, err)) {
        qe_cli_error("eval", "%s", err);
        qe_dataset_free(&ds);
        return 2;
    }
    if (warn[0])
        fprintf(stderr, "quanteval eval: warning: %s\n", warn);
    if (!o.json || isatty(2))
        fprintf(stderr, "model %s, weights: %s%s\ndataset %s (%s layout, %zu images, %d classes)%s\n", m->cfg.name,
                m->weights_desc, m->synthetic ? " [SYNTHETIC: accuracy is meaningless]" : "", ds.root, ds.layout,
                ds.count, ds.classes, count < ds.count ? ", limited" : "");

    FILE *pred = NULL;
    if (o.predictions_out) {
        pred = fopen(o.predictions_out, "w");
        if (!pred) {
            qe_cli_error("eval", "cannot write %s", o.predictions_out);
            qe_model_close(m);
            qe_dataset_free(&ds);
            return 2;
        }
        fputs("path,label,pred1,pred2,pred3,pred4,pred5\n", pred);
    }
    eval_result r;
    run_pass(m, &ds, count, &o, pred, &r);
    if (pred)
        fclose(pred);

    double top1 = r.images ? 100.0 * (double)r.correct1 / (double)r.images : 0;
    double top5 = r.images ? 100.0 * (double)r.correct5 / (double)r.images : 0;
    double ips = r.seconds > 0 ? (double)(r.images + r.failed) / r.seconds : 0;
    if (o.json) {
        printf("{\"model_config\": ");
        qe_cli_json_str(stdout, m->cfg.name);
        printf(", \"weights\": ");
        qe_cli_json_str(stdout, m->weights_desc);
        printf(", \"synthetic\": %s, \"dataset\": ", m->synthetic ? "true" : "false");
        qe_cli_json_str(stdout, ds.root);
        printf(", \"images\": %zu, \"failed\": %zu, \"top1\": %.4f, \"top5\": %.4f, \"images_per_second\": %.2f"
               ", \"seconds\": %.3f, \"batch\": %ld, \"threads\": %d", r.images, r.failed, top1, top5, ips, r.seconds,
               o.batch, omp_get_max_threads());
        if (m->cfg.ref_top1 > 0)
            printf(", \"reference_top1\": %.2f", m->cfg.ref_top1);
        printf("}\n");
    } else {
        printf("%s%s on %zu images: top-1 %.2f%%, top-5 %.2f%%  (%.1f images/s)\n", m->cfg.name,
               m->synthetic ? " [synthetic weights]" : "", r.images, top1, top5, ips);
        if (m->cfg.ref_top1 > 0 && !m->synthetic)
            printf("zoo reference top-1 on ImageNet val: %.2f%%\n", m->cfg.ref_top1);
        if (r.failed)
            printf("%zu images could not be read and were skipped\n", r.failed);
    }
    qe_model_close(m);
    qe_dataset_free(&ds);
    return r.failed ? 1 : 0;
}
