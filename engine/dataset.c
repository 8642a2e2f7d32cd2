#include "dataset.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "classes.h"
#include "qe_util.h"

int qe_dataset_name_allowed(const char *name)
{
    static const char *ext[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t m = strlen(ext[i]);
        if (n >= m && strcasecmp(name + n - m, ext[i]) == 0)
            return 1;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const qe_dataset_item *)a)->path, ((const qe_dataset_item *)b)->path);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);   /* stat follows symlinks, like os.path.isdir */
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = qe_malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Sorted names of a directory's entries (excluding . and ..); want_dirs selects directories
 * (1), files passing the extension filter (0). */
static int list_dir(const char *dir, int want_dirs, char ***out, size_t *count, char *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return qe_err(err, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int keep;
        if (want_dirs) {
            char *p = join(dir, e->d_name);
            keep = is_dir(p);
            free(p);
        } else {
            keep = qe_dataset_name_allowed(e->d_name);
        }
        if (!keep)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = qe_realloc(names, cap * sizeof *names);
        }
        names[n++] = qe_strdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_str);
    *out = names;
    *count = n;
    return 0;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static void push(qe_dataset *ds, size_t *cap, char *path, int label)
{
    if (ds->count == *cap) {
        *cap = *cap ? 2 * *cap : 1024;
        ds->items = qe_realloc(ds->items, *cap * sizeof *ds->items);
    }
    qe_dataset_item *it = &ds->items[ds->count++];
    it->path = path;
    it->rel = path + strlen(ds->root) + 1;
    it->label = label;
}

static int open_folder(qe_dataset *ds, char **classes, size_t nclasses, char *err)
{
    size_t cap = 0;
    for (size_t c = 0; c < nclasses; c++) {
        int label = qe_classes_find(classes[c]);
        if (label < 0)
            return qe_err(err, "%s: folder '%s' is not an ImageNet class (wnid)", ds->root, classes[c]);
        char *cdir = join(ds->root, classes[c]);
        char **files;
        size_t nfiles;
        int rc = list_dir(cdir, 0, &files, &nfiles, err);
        if (rc == 0) {
            for (size_t f = 0; f < nfiles; f++) {
                char *rel = join(classes[c], files[f]);
                push(ds, &cap, join(ds->root, rel), label);
                free(rel);
            }
            free_names(files, nfiles);
        }
        free(cdir);
        if (rc)
            return -1;
    }
    return 0;
}

/* Parses "<file> <wnid|index>" lines into the dataset, checking every file exists in root. */
static int open_flat(qe_dataset *ds, const char *gt_path, char *err)
{
    uint8_t *text;
    size_t len;
    if (qe_read_file(gt_path, (size_t)64 << 20, &text, &len, err))
        return -1;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    char *save = NULL;
    for (char *line = strtok_r((char *)text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char name[256], cls[64], extra[8];
        line[strcspn(line, "\r")] = 0;
        if (line[0] == 0 || line[0] == '#')
            continue;
        int got = sscanf(line, "%255s %63s %7s", name, cls, extra);
        if (got != 2) {
            rc = qe_err(err, "%s:%d: expected '<file name> <wnid or class index>'", gt_path, lineno);
            break;
        }
        int label;
        char *end;
        long v = strtol(cls, &end, 10);
        if (*end == 0)
            label = (v >= 0 && v < QE_NUM_CLASSES) ? (int)v : -1;
        else
            label = qe_classes_find(cls);
        if (label < 0) {
            rc = qe_err(err, "%s:%d: unknown class '%s'", gt_path, lineno, cls);
            break;
        }
        if (strchr(name, '/') || !qe_dataset_name_allowed(name)) {
            rc = qe_err(err, "%s:%d: '%s' is not an image file name", gt_path, lineno, name);
            break;
        }
        push(ds, &cap, join(ds->root, name), label);
    }
    free(text);
    if (rc)
        return -1;
    if (ds->count)
        qsort(ds->items, ds->count, sizeof *ds->items, cmp_item);
    return 0;
}

static const char *find_ground_truth(const char *root, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "%s/ground_truth.txt", root);
    if (access(buf, R_OK) == 0)
        return buf;
    /* <parent>/<dir>-ground-truth.txt, the naming of the dev set's flat description. */
    const char *base = strrchr(root, '/');
    base = base ? base + 1 : root;
    snprintf(buf, buflen, "%s/../%s-flat-ground-truth.txt", root, base);
    if (access(buf, R_OK) == 0)
        return buf;
    snprintf(buf, buflen, "%s/../%s-ground-truth.txt", root, base);
    if (access(buf, R_OK) == 0)
        return buf;
    return NULL;
}

int qe_dataset_open(const char *root, const char *ground_truth, qe_dataset *ds, char *err)
{
    memset(ds, 0, sizeof *ds);
    if (!is_dir(root))
        return qe_err(err, "dataset path '%s' is not a directory", root);
    ds->root = qe_strdup(root);
    size_t rl = strlen(ds->root);
    while (rl > 1 && ds->root[rl - 1] == '/')
        ds->root[--rl] = 0;

    char **classes = NULL;
    size_t nclasses = 0;
    int rc = -1;
    if (ground_truth) {
        strcpy(ds->layout, "flat");
        rc = open_flat(ds, ground_truth, err);
    } else if (list_dir(ds->root, 1, &classes, &nclasses, err) == 0) {
        /* The zoo's layout puts the images under <root>/val (or valid). */
        int sub = -1;
        for (size_t i = 0; i < nclasses && nclasses <= 3; i++)
            if (strcmp(classes[i], "val") == 0 || strcmp(classes[i], "valid") == 0)
                sub = (int)i;
        if (sub >= 0 && qe_classes_find(classes[0]) < 0) {
            char *inner = join(ds->root, classes[sub]);
            free_names(classes, nclasses);
            free(ds->root);
            ds->root = NULL;
            rc = qe_dataset_open(inner, NULL, ds, err);
            free(inner);
            return rc;
        }
        if (nclasses > 0) {
            strcpy(ds->layout, "folder");
            rc = open_folder(ds, classes, nclasses, err);
        } else {
            char buf[4096];
            const char *gt = find_ground_truth(ds->root, buf, sizeof buf);
            strcpy(ds->layout, "flat");
            if (gt)
                rc = open_flat(ds, gt, err);
            else
                rc = qe_err(err, "%s: no class folders and no ground-truth file (give one with --ground-truth)", ds->root);
        }
        free_names(classes, nclasses);
    }
    if (rc == 0 && ds->count == 0)
        rc = qe_err(err, "dataset '%s' contains no images", ds->root);
    if (rc) {
        qe_dataset_free(ds);
        return -1;
    }
    char seen[QE_NUM_CLASSES] = {0};
    for (size_t i = 0; i < ds->count; i++)
        if (!seen[ds->items[i].label]++)
            ds->classes++;
    return 0;
}

void qe_dataset_free(qe_dataset *ds)
{
    for (size_t i = 0; i < ds->count; i++)
        free(ds->items[i].path);
    free(ds->items);
    free(ds->root);
    memset(ds, 0, sizeof *ds);
}

void qe_dataset_subset(const qe_dataset *src, int per_class, size_t cap, qe_dataset *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->items = qe_malloc((src->count ? src->count : 1) * sizeof *dst->items);
    memcpy(dst->layout, src->layout, sizeof dst->layout);
    int taken[QE_NUM_CLASSES] = {0};
    for (size_t i = 0; i < src->count; i++) {
        if (cap && dst->count == cap)
            break;
        int l = src->items[i].label;
        if (per_class > 0 && taken[l] >= per_class)
            continue;
        if (!taken[l]++)
            dst->classes++;
        dst->items[dst->count++] = src->items[i];
    }
    dst->root = src->root;
}

void qe_dataset_free_subset(qe_dataset *ds)
{
    free(ds->items);
    memset(ds, 0, sizeof *ds);
}
