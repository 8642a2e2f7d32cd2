/* sha256.h - SHA-256 (FIPS 180-4), for checkpoint verification and run records. */
#ifndef QE_SHA256_H
#define QE_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct { uint32_t h[8]; uint64_t len; uint8_t buf[64]; size_t nbuf; } qe_sha256;

void qe_sha256_init(qe_sha256 *s);
void qe_sha256_update(qe_sha256 *s, const void *data, size_t n);
void qe_sha256_final(qe_sha256 *s, uint8_t out[32]);
/* Hex digest of a buffer / of a file (64 chars + NUL); the file variant returns -1 on I/O error. */
void qe_sha256_hex(const void *data, size_t n, char out[65]);
int qe_sha256_file(const char *path, char out[65], char *err);

#endif
