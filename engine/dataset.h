/*
 * dataset.h - image lists with labels (spec preprocessing-and-formats.md §6).
 *
 * Two layouts are recognised:
 *   folder: ROOT/<wnid>/<file> as the zoo's ImageFolder reads it (§6.1): class directories
 *           sorted, files passing torchvision's case-insensitive extension filter, sorted by
 *           byte order. Labels come from the wnid's index in the built-in class table, never
 *           from folder positions, so a partial dataset keeps correct labels. A ROOT without
 *           class folders but with a `val/` (or `valid/`) sub-directory is read from there, as
 *           the zoo's README lays ImageNet out.
 *   flat:   ROOT/ILSVRC2012_val_*.JPEG plus a ground-truth file (§6.2) with one
 *           "<file name> <wnid or class index>" line per image; found automatically as
 *           ROOT/ground_truth.txt or ROOT/../<dir>-ground-truth.txt when not given.
 */
#ifndef QE_DATASET_H
#define QE_DATASET_H

#include <stddef.h>

typedef struct qe_dataset_item {
    char *path;            /* full path */
    const char *rel;       /* path relative to the dataset root (points into path) */
    int label;             /* class index 0..999 */
} qe_dataset_item;

typedef struct qe_dataset {
    qe_dataset_item *items;
    size_t count;
    int classes;           /* number of distinct labels present */
    char layout[8];        /* "folder" or "flat" */
    char *root;
} qe_dataset;

/* Lists a dataset. ground_truth may be NULL (folder layout, or flat with an auto-found file).
 * An empty dataset, an unknown class folder name or a malformed ground-truth line are errors. */
int qe_dataset_open(const char *root, const char *ground_truth, qe_dataset *ds, char *err);
void qe_dataset_free(qe_dataset *ds);

/* The zoo's calibration selection (quantsim.md §3.6): the first per_class items of every class
 * in dataset order (per_class 0 = all), then at most cap items (0 = no cap). Items are shared
 * with src (dst must be freed with qe_dataset_free_subset, and src must outlive it). */
void qe_dataset_subset(const qe_dataset *src, int per_class, size_t cap, qe_dataset *dst);
void qe_dataset_free_subset(qe_dataset *ds);

/* torchvision's IMG_EXTENSIONS filter (§6.1): case-insensitive suffix test on the name. */
int qe_dataset_name_allowed(const char *name);

#endif
