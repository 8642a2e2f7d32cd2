/*
 * qe_util.h - small helpers shared by every engine module.
 *
 * Error convention for the whole engine: a function that can fail returns 0 on success and -1
 * on failure, and writes one human-readable line (no trailing newline) into the caller's
 * `char err[QE_ERR_LEN]`. `err` may be NULL when the caller does not care.
 */
#ifndef QE_UTIL_H
#define QE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define QE_ERR_LEN 512

#if defined(__GNUC__)
#define QE_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define QE_PRINTF(a, b)
#endif

/* Formats into err (if not NULL) and returns -1, so errors read `return qe_err(err, ...)`. */
int qe_err(char *err, const char *fmt, ...) QE_PRINTF(2, 3);

/* Allocation that aborts the process with a message on out-of-memory: the engine never
 * continues after a failed allocation of a size it computed itself. Sizes that come from
 * untrusted input must be bounded by the caller before allocating. */
void *qe_malloc(size_t n);
void *qe_calloc(size_t n, size_t size);
void *qe_realloc(void *p, size_t n);
char *qe_strdup(const char *s);
/* 64-byte aligned allocation (free with qe_free_aligned); aborts on out-of-memory. */
void *qe_malloc_aligned(size_t n);
void qe_free_aligned(void *p);

/* Reads a whole file into a malloc'd buffer (NUL-terminated, not counted in *len).
 * Refuses files larger than max_bytes. */
int qe_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *len, char *err);

/* Monotonic time in seconds. */
double qe_now(void);

#endif
