/*
 * classes.h - the 1000 ILSVRC2012 classes (index, wnid, label), compiled into the binary from
 * configs/imagenet_classes.tsv (spec preprocessing-and-formats.md §6.3). The index of a class is
 * its position in sorted wnid order, which is the model's output index.
 */
#ifndef QE_CLASSES_H
#define QE_CLASSES_H

#define QE_NUM_CLASSES 1000

typedef struct qe_class {
    char wnid[16];
    const char *label;     /* full WordNet synonym list, comma-separated */
} qe_class;

/* The class table, parsed once on first use (thread-safe). Never NULL. */
const qe_class *qe_classes(void);
/* Index of a wnid, or -1. */
int qe_classes_find(const char *wnid);
/* Short label: the first synonym (up to the first comma), written into buf. */
const char *qe_classes_short_label(int index, char *buf, int buflen);

#endif
