/*
 * quanteval eval: the zoo's evaluation (resnet_quanteval.py) on a dataset, from the JPEG bytes
 * to top-1/top-5: FP32, or quantized (QuantSim) together with the FP32 model as the zoo's script
 * prints both. Every run is recorded in the run history (storage/), as the daemon's are.
 */
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "dataset.h"
#include "evaluate.h"
#include "image.h"
#include "model.h"
#include "store.h"

typedef struct eval_opts {
    const char *model_config, *dataset, *ground_truth, *weights, *predictions_out;
    const char *calib_path, *encodings, *save_encodings, *param_encodings, *db;
    long limit, batch, threads, workers, calib_per_class, calib_images, calib_batch, max_pixels;
    int json, quiet, no_fp32, no_db;
} eval_opts;

static void help(void)
{
    puts("usage: quanteval eval [options]\n"
         "\n"
         "  --model-config NAME      model config (default resnet18_fp32): resnet18_fp32, resnet50_fp32,\n"
         "                           resnet18_w8a8, resnet50_w8a8, resnet18_w4a8, resnet50_w4a8, or a JSON file\n"
         "  --dataset-path DIR       ImageNet folder layout DIR/<wnid>/*.JPEG (or DIR/val/<wnid>/...), or flat\n"
         "                           ILSVRC2012_val_*.JPEG with a ground-truth file (default: bundled samples)\n"
         "  --ground-truth FILE      flat layout: lines '<file name> <wnid or class index>'\n"
         "  --weights FILE           checkpoint (.pth zip or legacy, .safetensors, .npz)\n"
         "  --limit N                evaluate only the first N images (sorted order)\n"
         "  --batch N                images per forward pass (default 16)\n"
         "  --threads N              compute threads (default: all cores)\n"
         "  --workers N              image decoding threads (default 0: each batch is decoded on the\n"
         "                           compute threads between forward passes, which measured faster\n"
         "                           on 2 cores than threads competing with the compute)\n"
         "  --json                   print one JSON object instead of the text summary\n"
         "  --predictions-out FILE   write CSV path,label,pred1,...,pred5 (the quantized model's)\n"
         "  --use-cuda True|False    accepted for compatibility with the zoo script (CPU only)\n"
         "  --quiet                  no progress bar\n"
         "  --max-pixels N           refuse images declaring more than N pixels (default 89478485)\n"
         "  --db PATH                run history database (default $QUANTEVAL_DB or\n"
         "                           ~/.local/share/quanteval/quanteval.db); --no-db to not record\n"
         "quantized configs:\n"
         "  --calib-path DIR         calibration images (default: the dataset path)\n"
         "  --calib-per-class K      first K images of every class (default 2; 0 = all)\n"
         "  --calib-images N         at most N calibration images\n"
         "  --calib-batch B          calibration batch size (default 128; batch boundaries matter)\n"
         "  --encodings FILE         load all encodings (AIMET _torch.encodings): no calibration\n"
         "  --save-encodings FILE    write the encodings in use (AIMET _torch.encodings layout)\n"
         "  --param-encodings FILE   AdaRound parameter encodings (flat layout), frozen\n"
         "  --no-fp32                skip the FP32 comparison pass");
}

static int parse(int argc, char **argv, eval_opts *o)
{
    enum { O_MODEL = 1, O_DATA, O_GT, O_WEIGHTS, O_PRED, O_LIMIT, O_BATCH, O_THREADS, O_WORKERS, O_JSON, O_CUDA,
           O_QUIET, O_HELP, O_CPATH, O_CPC, O_CIMG, O_CBATCH, O_ENC, O_SAVE, O_PENC, O_NOFP32, O_DB, O_NODB, O_MAXPIX };
    static const struct option opts[] = {
        {"model-config", required_argument, 0, O_MODEL}, {"dataset-path", required_argument, 0, O_DATA},
        {"ground-truth", required_argument, 0, O_GT},    {"weights", required_argument, 0, O_WEIGHTS},
        {"predictions-out", required_argument, 0, O_PRED}, {"limit", required_argument, 0, O_LIMIT},
        {"batch", required_argument, 0, O_BATCH},        {"threads", required_argument, 0, O_THREADS},
        {"workers", required_argument, 0, O_WORKERS},    {"json", no_argument, 0, O_JSON},
        {"use-cuda", required_argument, 0, O_CUDA},      {"quiet", no_argument, 0, O_QUIET},
        {"help", no_argument, 0, O_HELP},                {"calib-path", required_argument, 0, O_CPATH},
        {"calib-per-class", required_argument, 0, O_CPC}, {"calib-images", required_argument, 0, O_CIMG},
        {"calib-batch", required_argument, 0, O_CBATCH}, {"encodings", required_argument, 0, O_ENC},
        {"save-encodings", required_argument, 0, O_SAVE}, {"param-encodings", required_argument, 0, O_PENC},
        {"no-fp32", no_argument, 0, O_NOFP32},           {"db", required_argument, 0, O_DB},
        {"no-db", no_argument, 0, O_NODB},               {"max-pixels", required_argument, 0, O_MAXPIX},
        {0, 0, 0, 0}};
    *o = (eval_opts){.model_config = "resnet18_fp32", .batch = 16, .workers = 0, .calib_per_class = -1,
                     .max_pixels = QE_DEFAULT_MAX_PIXELS};
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
        case O_WORKERS: if (qe_cli_int("eval", "--workers", optarg, 0, 64, &o->workers)) return -1; break;
        case O_CPC: if (qe_cli_int("eval", "--calib-per-class", optarg, 0, 100000000, &o->calib_per_class)) return -1; break;
        case O_CIMG: if (qe_cli_int("eval", "--calib-images", optarg, 1, 100000000, &o->calib_images)) return -1; break;
        case O_CBATCH: if (qe_cli_int("eval", "--calib-batch", optarg, 1, 4096, &o->calib_batch)) return -1; break;
        case O_CPATH: o->calib_path = optarg; break;
        case O_ENC: o->encodings = optarg; break;
        case O_SAVE: o->save_encodings = optarg; break;
        case O_PENC: o->param_encodings = optarg; break;
        case O_NOFP32: o->no_fp32 = 1; break;
        case O_DB: o->db = optarg; break;
        case O_NODB: o->no_db = 1; break;
        case O_MAXPIX: if (qe_cli_int("eval", "--max-pixels", optarg, 1, 1L << 40, &o->max_pixels)) return -1; break;
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

typedef struct eval_ctx {
    const eval_opts *o;
    FILE *pred;
    qe_store *store;
    int64_t run_id;
    size_t total;
    int tty;
    double last;
    char err[QE_ERR_LEN];
} eval_ctx;

static void progress_bar(const char *what, size_t done, size_t total, double elapsed)
{
    double rate = elapsed > 0 ? (double)done / elapsed : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    int width = 30, fill = total ? (int)((double)width * (double)done / (double)total) : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r%-11s [%s] %zu/%zu  %.1f img/s  ETA %.0fs ", what, bar, done, total, rate, eta);
    fflush(stderr);
}

static void calib_progress(void *ctx, const char *stage, size_t done, size_t total)
{
    eval_ctx *e = ctx;
    static double t0;
    if (t0 == 0)
        t0 = qe_now();
    if (e->tty)
        progress_bar(stage, done, total, qe_now() - t0);
    if (e->tty && done == total)
        fputc('\n', stderr);
}

static int on_batch(void *ctx, const qe_eval_batch *b, const qe_eval_counts *c)
{
    eval_ctx *e = ctx;
    qe_store_pred preds[1024];
    int np = 0;
    for (int i = 0; i < b->n; i++) {
        const qe_dataset_item *it = &b->items[i];
        if (b->error[i][0]) {
            fprintf(stderr, "%squanteval eval: skipping %s: %s\n", e->tty ? "\n" : "", it->path, b->error[i]);
            continue;
        }
        if (e->pred)
            fprintf(e->pred, "%s,%d,%d,%d,%d,%d,%d\n", it->rel, it->label, b->top5[i][0], b->top5[i][1], b->top5[i][2],
                    b->top5[i][3], b->top5[i][4]);
        qe_store_pred *p = &preds[np++];
        p->path = it->rel;
        p->label = it->label;
        memcpy(p->top5, b->top5[i], sizeof p->top5);
    }
    /* Unreadable images are left out of the history; the others keep their own indices, so
     * each contiguous run of readable images is recorded as one batch. */
    size_t at = 0;
    for (int i = 0; i < b->n && e->store;) {
        if (b->error[i][0]) {
            i++;
            continue;
        }
        int j = i;
        while (j < b->n && !b->error[j][0])
            j++;
        if (qe_store_run_add_batch(e->store, e->run_id, (int64_t)(b->first + (size_t)i), (size_t)(j - i), &preds[at], e->err)) {
            fprintf(stderr, "quanteval eval: warning: run history: %s (no longer recording)\n", e->err);
            qe_store_close(e->store);
            e->store = NULL;
        }
        at += (size_t)(j - i);
        i = j;
    }
    double now = c->seconds;
    if (e->tty && (now - e->last > 0.2 || c->images + c->failed == e->total)) {
        progress_bar("evaluation", c->images + c->failed, e->total, now);
        e->last = now;
    }
    return 0;
}

static void print_json(const qe_model *m, const qe_dataset *ds, const eval_opts *o, const qe_eval_counts *c,
                       int64_t run_id)
{
    double n = c->images ? (double)c->images : 1;
    double ips = c->seconds > 0 ? (double)(c->images + c->failed) / c->seconds : 0;
    printf("{\"model_config\": ");
    qe_cli_json_str(stdout, m->cfg.name);
    printf(", \"precision\": \"%s\", \"weights\": ", m->cfg.precision);
    qe_cli_json_str(stdout, m->weights_desc);
    printf(", \"synthetic\": %s, \"dataset\": ", m->synthetic ? "true" : "false");
    qe_cli_json_str(stdout, ds->root);
    printf(", \"images\": %zu, \"failed\": %zu, \"top1\": %.4f, \"top5\": %.4f, \"images_per_second\": %.2f"
           ", \"seconds\": %.3f, \"batch\": %ld, \"threads\": %d",
           c->images, c->failed, 100.0 * (double)c->correct1 / n, 100.0 * (double)c->correct5 / n, ips, c->seconds,
           o->batch, omp_get_max_threads());
    if (m->qsim) {
        printf(", \"encodings\": ");
        qe_cli_json_str(stdout, m->encodings_source);
        printf(", \"calibration_seconds\": %.3f", m->calib_seconds);
        if (m->f32)
            printf(", \"fp32_top1\": %.4f, \"fp32_top5\": %.4f, \"agreement\": %.4f", 100.0 * (double)c->fp32_correct1 / n,
                   100.0 * (double)c->fp32_correct5 / n, 100.0 * (double)c->agree / n);
    }
    if (m->cfg.ref_top1 > 0)
        printf(", \"reference_top1\": %.2f", m->cfg.ref_top1);
    if (run_id > 0)
        printf(", \"run_id\": %lld", (long long)run_id);
    printf("}\n");
}

static void print_text(const qe_model *m, const qe_eval_counts *c)
{
    double n = c->images ? (double)c->images : 1;
    double ips = c->seconds > 0 ? (double)(c->images + c->failed) / c->seconds : 0;
    const char *syn = m->synthetic ? " [synthetic weights]" : "";
    if (m->qsim && m->f32)
        printf("Original Model | Accuracy on %zu images: top-1 %.2f%%, top-5 %.2f%%%s\n", c->images,
               100.0 * (double)c->fp32_correct1 / n, 100.0 * (double)c->fp32_correct5 / n, syn);
    printf("%s%s | Accuracy on %zu images: top-1 %.2f%%, top-5 %.2f%%%s  (%.1f images/s)\n",
           m->qsim ? "Quantized Model " : "", m->cfg.name, c->images, 100.0 * (double)c->correct1 / n,
           100.0 * (double)c->correct5 / n, syn, ips);
    if (m->qsim && m->f32)
        printf("top-1 agreement with the FP32 model: %.2f%%\n", 100.0 * (double)c->agree / n);
    if (m->cfg.ref_top1 > 0 && !m->synthetic)
        printf("zoo reference top-1 on ImageNet val: %.2f%%\n", m->cfg.ref_top1);
    if (c->failed)
        printf("%zu images could not be read and were skipped\n", c->failed);
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
    eval_ctx e = {.o = &o, .tty = !o.quiet && isatty(2)};

    qe_dataset ds, cds_full, cds;
    memset(&cds_full, 0, sizeof cds_full);
    memset(&cds, 0, sizeof cds);
    if (qe_dataset_open(o.dataset, o.ground_truth, &ds, err)) {
        qe_cli_error("eval", "%s", err);
        return 2;
    }
    int rc = 2;
    qe_model *m = NULL;
    qe_modelcfg cfg;
    if (qe_modelcfg_get(o.model_config, &cfg, err)) {
        qe_cli_error("eval", "%s", err);
        goto out;
    }
    int quantized = cfg.quantized, per_class = o.calib_per_class >= 0 ? (int)o.calib_per_class : cfg.calib_per_class;
    qe_modelcfg_free(&cfg);
    qe_model_opts mo = {.weights = o.weights, .encodings = o.encodings, .param_encodings = o.param_encodings,
                        .calib_batch = (int)o.calib_batch, .no_fp32 = o.no_fp32, .workers = (int)o.workers,
                        .progress = calib_progress, .progress_ctx = &e};
    if (quantized && !o.encodings) {
        const qe_dataset *src = &ds;
        if (o.calib_path && strcmp(o.calib_path, o.dataset) != 0) {
            if (qe_dataset_open(o.calib_path, NULL, &cds_full, err)) {
                qe_cli_error("eval", "calibration set: %s", err);
                goto out;
            }
            src = &cds_full;
        }
        qe_dataset_subset(src, per_class, (size_t)o.calib_images, &cds);
        mo.calib = &cds;
    }
    if (qe_model_open(o.model_config, &mo, &m, warn, err)) {
        qe_cli_error("eval", "%s", err);
        goto out;
    }
    if (warn[0])
        fprintf(stderr, "quanteval eval: warning: %s\n", warn);
    size_t count = o.limit && (size_t)o.limit < ds.count ? (size_t)o.limit : ds.count;
    e.total = count;
    if (!o.json || e.tty)
        fprintf(stderr, "model %s, weights: %s%s\n%sdataset %s (%s layout, %zu images, %d classes)%s\n", m->cfg.name,
                m->weights_desc, m->synthetic ? " [SYNTHETIC: accuracy is meaningless]" : "",
                m->qsim ? "encodings: " : "", ds.root, ds.layout, ds.count, ds.classes, count < ds.count ? ", limited" : "");
    if (m->qsim && (!o.json || e.tty))
        fprintf(stderr, "encodings: %s\n", m->encodings_source);
    if (o.save_encodings && m->encodings_json) {
        FILE *f = fopen(o.save_encodings, "w");
        if (!f || fputs(m->encodings_json, f) < 0 || fclose(f) != 0) {
            qe_cli_error("eval", "cannot write %s", o.save_encodings);
            goto out;
        }
    }
    if (o.predictions_out) {
        e.pred = fopen(o.predictions_out, "w");
        if (!e.pred) {
            qe_cli_error("eval", "cannot write %s", o.predictions_out);
            goto out;
        }
        fputs("path,label,pred1,pred2,pred3,pred4,pred5\n", e.pred);
    }
    if (!o.no_db) {
        char dbbuf[4096];
        const char *db = o.db ? o.db : qe_cli_default_db(dbbuf, sizeof dbbuf);
        if (qe_store_open(db, &e.store, err)) {
            fprintf(stderr, "quanteval eval: warning: run history %s: %s (not recorded)\n", db, err);
            e.store = NULL;
        } else {
            char calib[256] = "";
            if (m->qsim)
                snprintf(calib, sizeof calib, "%s", m->encodings_source);
            qe_store_run_info info = {.model_config = m->cfg.name, .dataset_name = ds.root, .dataset_path = ds.root,
                                      .source = "cli", .images_total = (int64_t)count, .image_limit = o.limit,
                                      .build_id = QE_BUILD_ID,
                                      .weights_sha256 = m->weights_sha256[0] ? m->weights_sha256 : NULL,
                                      .encodings_sha256 = m->encodings_sha256[0] ? m->encodings_sha256 : NULL,
                                      .calib = calib[0] ? calib : NULL, .synthetic = m->synthetic};
            if (qe_store_run_create(e.store, &info, &e.run_id, err) || qe_store_run_start(e.store, e.run_id, (int64_t)count, err)) {
                fprintf(stderr, "quanteval eval: warning: run history: %s (not recorded)\n", err);
                qe_store_close(e.store);
                e.store = NULL;
            }
        }
    }
    qe_eval_counts c;
    qe_evaluate(m, ds.items, 0, count, (int)o.batch, (int)o.workers, o.max_pixels, m->qsim && m->f32, on_batch, &e, &c);
    if (e.tty)
        fputc('\n', stderr);
    if (e.pred && fclose(e.pred) != 0) {
        e.pred = NULL;
        qe_cli_error("eval", "error writing %s", o.predictions_out);
        goto out;
    }
    e.pred = NULL;
    if (e.store) {
        double n = c.images ? (double)c.images : 1;
        qe_store_finish fin = {.status = QE_RUN_DONE,
                               .images_per_second = c.seconds > 0 ? (double)(c.images + c.failed) / c.seconds : 0,
                               .fp32_top1 = NAN, .fp32_top5 = NAN, .agreement = NAN};
        if (m->qsim && m->f32) {
            fin.fp32_top1 = (double)c.fp32_correct1 / n;
            fin.fp32_top5 = (double)c.fp32_correct5 / n;
            fin.agreement = (double)c.agree / n;
        }
        if (qe_store_run_finish(e.store, e.run_id, &fin, err))
            fprintf(stderr, "quanteval eval: warning: run history: %s\n", err);
    }
    if (o.json)
        print_json(m, &ds, &o, &c, e.store ? e.run_id : 0);
    else
        print_text(m, &c);
    rc = c.failed ? 1 : 0;
out:
    if (e.pred)
        fclose(e.pred);
    qe_store_close(e.store);
    qe_model_close(m);
    qe_dataset_free_subset(&cds);
    if (cds_full.items)
        qe_dataset_free(&cds_full);
    qe_dataset_free(&ds);
    return rc;
}
