#include "qe_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

int qe_err(char *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, QE_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void oom(size_t n)
{
    fprintf(stderr, "quanteval: out of memory allocating %zu bytes\n", n);
    abort();
}

void *qe_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *qe_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *qe_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *qe_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = qe_malloc(n);
    memcpy(d, s, n);
    return d;
}

/* Large buffers are mapped directly so that freeing them returns the memory to the system:
 * glibc would otherwise raise its mmap threshold after the first free and keep later buffers of
 * that size in the heap for good. Those from 2 MB on start on a 2 MB boundary and ask for
 * transparent huge pages (the kernel default is often "madvise"): activations and packed weights
 * are read along many rows at once, and 4 KB pages would cost a TLB miss per row. A 64-byte
 * header before the block records how it was made. */
#define QE_ALIGNED_HDR 64
#define QE_MMAP_MIN ((size_t)1 << 20)
#define QE_HUGE_PAGE ((size_t)2 << 20)

typedef struct aligned_hdr {
    size_t total;          /* n + QE_ALIGNED_HDR: how the block was allocated */
    void *map;             /* the mapping (mmap'd blocks only) */
    size_t map_len;
} aligned_hdr;

void *qe_malloc_aligned(size_t n)
{
    aligned_hdr h = {n + QE_ALIGNED_HDR, NULL, 0};
    uint8_t *user;
    if (h.total >= QE_MMAP_MIN) {
        const size_t slack = n >= QE_HUGE_PAGE ? QE_HUGE_PAGE : 0;
        h.map_len = h.total + slack;
        h.map = mmap(NULL, h.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (h.map == MAP_FAILED)
            oom(n);
        user = (uint8_t *)h.map + QE_ALIGNED_HDR;
        if (slack) {
            user = (uint8_t *)(((uintptr_t)user + QE_HUGE_PAGE - 1) & ~(uintptr_t)(QE_HUGE_PAGE - 1));
            (void)madvise(user, n & ~(QE_HUGE_PAGE - 1), MADV_HUGEPAGE);   /* a hint only */
        }
    } else {
        void *p = NULL;
        if (posix_memalign(&p, 64, h.total) != 0)
            oom(n);
        user = (uint8_t *)p + QE_ALIGNED_HDR;
    }
    memcpy(user - QE_ALIGNED_HDR, &h, sizeof h);
    return user;
}

void qe_free_aligned(void *p)
{
    if (!p)
        return;
    aligned_hdr h;
    memcpy(&h, (uint8_t *)p - QE_ALIGNED_HDR, sizeof h);
    if (h.total >= QE_MMAP_MIN)
        munmap(h.map, h.map_len);
    else
        free((uint8_t *)p - QE_ALIGNED_HDR);
}

int qe_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *len, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return qe_err(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return qe_err(err, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return qe_err(err, "%s: file too large (%lld bytes, limit %zu)", path, (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = qe_malloc(n + 1);
    size_t got = n ? fread(buf, 1, n, f) : 0;
    fclose(f);
    if (got != n) {
        free(buf);
        return qe_err(err, "%s: short read", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

double qe_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
