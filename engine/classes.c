#include "classes.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char qe_embed_classes_tsv[];
extern const unsigned long qe_embed_classes_tsv_len;

static qe_class g_classes[QE_NUM_CLASSES];
static char *g_text;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* The table is part of the build, so a malformed one is a build defect, not a user error. */
static void parse(void)
{
    g_text = malloc(qe_embed_classes_tsv_len + 1);
    if (!g_text)
        abort();
    memcpy(g_text, qe_embed_classes_tsv, qe_embed_classes_tsv_len + 1);
    char *save = NULL;
    char *line = strtok_r(g_text, "\n", &save);     /* header */
    int n = 0;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL && n < QE_NUM_CLASSES) {
        char *t1 = strchr(line, '\t');
        char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        if (!t1 || !t2 || atoi(line) != n || t2 - t1 - 1 >= (long)sizeof g_classes[n].wnid) {
            fprintf(stderr, "quanteval: corrupt built-in class table at row %d\n", n);
            abort();
        }
        memcpy(g_classes[n].wnid, t1 + 1, (size_t)(t2 - t1 - 1));
        char *cr = strchr(t2 + 1, '\r');
        if (cr)
            *cr = 0;
        g_classes[n].label = t2 + 1;
        n++;
    }
    if (n != QE_NUM_CLASSES) {
        fprintf(stderr, "quanteval: built-in class table has %d rows\n", n);
        abort();
    }
}

const qe_class *qe_classes(void)
{
    pthread_once(&g_once, parse);
    return g_classes;
}

int qe_classes_find(const char *wnid)
{
    const qe_class *c = qe_classes();
    int lo = 0, hi = QE_NUM_CLASSES - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int r = strcmp(wnid, c[mid].wnid);
        if (r == 0)
            return mid;
        if (r < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return -1;
}

const char *qe_classes_short_label(int index, char *buf, int buflen)
{
    const char *l = qe_classes()[index].label;
    const char *comma = strchr(l, ',');
    int n = comma ? (int)(comma - l) : (int)strlen(l);
    if (n >= buflen)
        n = buflen - 1;
    memcpy(buf, l, (size_t)n);
    buf[n] = 0;
    return buf;
}
