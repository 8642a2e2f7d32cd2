/*
 * ckpt_npz.c - numpy .npz archives (spec preprocessing-and-formats.md §7.4): a stored zip of
 * <name>.npy members. Each member is an npy file: "\x93NUMPY", version, header length, and a
 * Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (64, 3, 7, 7), }.
 *
 * The header is parsed by a tiny tokenizer that knows exactly those three keys; nothing is
 * evaluated, and object arrays (pickles) cannot be expressed.
 */
#include "pickle.h"
#include "qe_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

typedef struct npy_header {
    qe_dtype dtype;
    int ndim;
    int64_t shape[QE_MAX_DIMS];
    int have_descr, have_order, have_shape, fortran;
} npy_header;

typedef struct lexer {
    const char *s, *end;
} lexer;

static void skip_space(lexer *lx)
{
    while (lx->s < lx->end && (*lx->s == ' ' || *lx->s == '\t' || *lx->s == '\n'))
        lx->s++;
}

static int peek(lexer *lx, char c)
{
    skip_space(lx);
    return lx->s < lx->end && *lx->s == c;
}

static int accept(lexer *lx, char c)
{
    if (!peek(lx, c))
        return 0;
    lx->s++;
    return 1;
}

/* A quoted string without escapes (numpy never writes any in these headers). */
static int string(lexer *lx, const char **s, size_t *n)
{
    skip_space(lx);
    if (lx->s >= lx->end || (*lx->s != '\'' && *lx->s != '"'))
        return -1;
    char q = *lx->s++;
    const char *e = memchr(lx->s, q, (size_t)(lx->end - lx->s));
    if (!e || memchr(lx->s, '\\', (size_t)(e - lx->s)))
        return -1;
    *s = lx->s;
    *n = (size_t)(e - lx->s);
    lx->s = e + 1;
    return 0;
}

static int word(lexer *lx, const char *w)
{
    size_t n = strlen(w);
    skip_space(lx);
    if ((size_t)(lx->end - lx->s) < n || memcmp(lx->s, w, n) != 0)
        return 0;
    lx->s += n;
    return 1;
}

static int integer(lexer *lx, int64_t *v)
{
    skip_space(lx);
    int64_t x = 0;
    const char *start = lx->s;
    while (lx->s < lx->end && *lx->s >= '0' && *lx->s <= '9') {
        if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, *lx->s - '0', &x))
            return -1;
        lx->s++;
    }
    if (lx->s == start)
        return -1;
    *v = x;
    return 0;
}

static int parse_descr(const char *s, size_t n, qe_dtype *dt)
{
    static const struct { const char *descr; qe_dtype dt; } map[] = {
        {"<f4", QE_DT_F32}, {"<f8", QE_DT_F64}, {"<f2", QE_DT_F16}, {"<i8", QE_DT_I64},
        {"<i4", QE_DT_I32}, {"<i2", QE_DT_I16}, {"|i1", QE_DT_I8}, {"|u1", QE_DT_U8}, {"|b1", QE_DT_BOOL},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strlen(map[i].descr) == n && memcmp(s, map[i].descr, n) == 0) {
            *dt = map[i].dt;
            return 0;
        }
    }
    return -1;
}

static int parse_header(const char *s, size_t n, npy_header *h)
{
    lexer lx = {s, s + n};
    memset(h, 0, sizeof *h);
    if (!accept(&lx, '{'))
        return -1;
    while (!accept(&lx, '}')) {
        const char *k, *sv;
        size_t kn, svn;
        if (string(&lx, &k, &kn) || !accept(&lx, ':'))
            return -1;
        if (kn == 5 && memcmp(k, "descr", 5) == 0) {
            if (string(&lx, &sv, &svn) || parse_descr(sv, svn, &h->dtype))
                return -1;
            h->have_descr = 1;
        } else if (kn == 13 && memcmp(k, "fortran_order", 13) == 0) {
            if (word(&lx, "False"))
                h->fortran = 0;
            else if (word(&lx, "True"))
                h->fortran = 1;
            else
                return -1;
            h->have_order = 1;
        } else if (kn == 5 && memcmp(k, "shape", 5) == 0) {
            if (!accept(&lx, '('))
                return -1;
            h->ndim = 0;
            while (!accept(&lx, ')')) {
                if (h->ndim == QE_MAX_DIMS || integer(&lx, &h->shape[h->ndim++]))
                    return -1;
                if (!accept(&lx, ',') && !peek(&lx, ')'))
                    return -1;
            }
            h->have_shape = 1;
        } else {
            return -1;
        }
        if (!accept(&lx, ',') && !peek(&lx, '}'))
            return -1;
    }
    skip_space(&lx);
    return lx.s == lx.end && h->have_descr && h->have_order && h->have_shape ? 0 : -1;
}

/* One member: the npy container around the raw little-endian data. */
static int load_member(const char *name, const uint8_t *b, size_t n, qe_statedict *sd, char *err)
{
    size_t hstart, hlen;
    if (n < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return qe_err(err, "npz member '%s' is not an npy file", name);
    if (b[6] == 1) {
        hlen = b[8] | (size_t)b[9] << 8;
        hstart = 10;
    } else if ((b[6] == 2 || b[6] == 3) && n >= 12) {
        hlen = b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        hstart = 12;
    } else {
        return qe_err(err, "npz member '%s': unsupported npy version %d", name, b[6]);
    }
    if (hlen > n - hstart)
        return qe_err(err, "npz member '%s': header exceeds the member", name);
    npy_header h;
    if (parse_header((const char *)b + hstart, hlen, &h))
        return qe_err(err, "npz member '%s': unsupported npy header", name);
    if (h.fortran)
        return qe_err(err, "npz member '%s': fortran_order arrays are not supported", name);
    uint64_t nbytes = qe_dtype_size(h.dtype);
    for (int d = 0; d < h.ndim; d++)
        if (__builtin_mul_overflow(nbytes, (uint64_t)h.shape[d], &nbytes))
            return qe_err(err, "npz member '%s': size overflows", name);
    if (nbytes != n - hstart - hlen)
        return qe_err(err, "npz member '%s' holds %zu data bytes, its shape needs %llu", name,
                      n - hstart - hlen, (unsigned long long)nbytes);
    qe_tensor *t = qe_statedict_push(sd, name);
    t->dtype = h.dtype;
    t->ndim = h.ndim;
    for (int d = 0; d < h.ndim; d++) {
        t->shape[d] = h.shape[d];
        t->numel *= h.shape[d];
    }
    t->data = qe_malloc_aligned((size_t)nbytes);
    memcpy(t->data, b + hstart + hlen, (size_t)nbytes);
    return 0;
}

int qe_ckpt_npz_load(zip_t *za, size_t max_member, qe_statedict *sd, char *err)
{
    zip_int64_t n = zip_get_num_entries(za, 0);
    int rc = 0;
    for (zip_int64_t i = 0; i < n && rc == 0; i++) {
        const char *member = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        size_t mlen = member ? strlen(member) : 0;
        if (mlen < 5 || strcmp(member + mlen - 4, ".npy") != 0) {
            rc = qe_err(err, "zip archive is neither a torch checkpoint (no data.pkl) nor an npz "
                        "(member %lld is not .npy)", (long long)i);
            break;
        }
        char *name = qe_strdup(member);
        name[mlen - 4] = 0;
        uint8_t *b;
        size_t nb;
        rc = qe_ckpt_zip_read(za, (zip_uint64_t)i, max_member, &b, &nb, err);
        if (rc == 0) {
            rc = load_member(name, b, nb, sd, err);
            qe_free_aligned(b);
        }
        free(name);
    }
    if (rc == 0)
        snprintf(sd->format, sizeof sd->format, "npz");
    else
        qe_statedict_free(sd);
    return rc;
}
