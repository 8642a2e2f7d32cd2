#include "qe_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

void *qe_malloc_aligned(size_t n)
{
    void *p = NULL;
    /* Round up so the size is a multiple of the alignment, as aligned_alloc requires. */
    size_t m = (n + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, m ? m : 64) != 0)
        oom(n);
    return p;
}

void qe_free_aligned(void *p) { free(p); }

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
