/*
 * ckpt_save.c - writes a state dict as torch 1.13's torch.save does (spec
 * preprocessing-and-formats.md §7.1), byte for byte: the protocol-2 pickle CPython's pickler
 * emits for an OrderedDict of contiguous CPU tensors, inside the zip PyTorchStreamWriter
 * produces (stored records aligned to 64 bytes by an "FB" extra field, data descriptors,
 * zip64 end records). shared/models/make_synthetic.py writes the same bytes; the tests compare
 * sha256 digests with its README.
 */
#include "pickle.h"
#include "qe_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARCHIVE "archive/"
#define SETITEMS_BATCH 1000   /* CPython's pickler batches SETITEMS by 1000 */
#define ZIP_ALIGN 64

/* --------------------------------------------------------------------------- byte buffer */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n)
{
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n < n)
            cap *= 2;
        b->p = qe_realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_u8(buf *b, uint8_t v) { put(b, &v, 1); }

static void put_le(buf *b, uint64_t v, int nbytes)
{
    uint8_t t[8];
    for (int i = 0; i < nbytes; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    put(b, t, (size_t)nbytes);
}

/* --------------------------------------------------------------------------- pickler */

/* Memo indices are handed out in order, exactly as CPython's pickler does; -1 = not memoised. */
typedef struct pickler {
    buf out;
    int next;
    int odict, rebuild, str_storage, str_cpu, storage_class[QE_DT_BOOL + 1];
} pickler;

static void memo_put(pickler *pk)
{
    int idx = pk->next++;
    if (idx < 256) {
        put_u8(&pk->out, 'q');
        put_u8(&pk->out, (uint8_t)idx);
    } else {
        put_u8(&pk->out, 'r');
        put_le(&pk->out, (uint32_t)idx, 4);
    }
}

static void memo_get(pickler *pk, int idx)
{
    if (idx < 256) {
        put_u8(&pk->out, 'h');
        put_u8(&pk->out, (uint8_t)idx);
    } else {
        put_u8(&pk->out, 'j');
        put_le(&pk->out, (uint32_t)idx, 4);
    }
}

static void p_global(pickler *pk, int *memo, const char *module, const char *name)
{
    if (*memo >= 0) {
        memo_get(pk, *memo);
        return;
    }
    put_u8(&pk->out, 'c');
    put(&pk->out, module, strlen(module));
    put_u8(&pk->out, '\n');
    put(&pk->out, name, strlen(name));
    put_u8(&pk->out, '\n');
    *memo = pk->next;
    memo_put(pk);
}

/* memo: NULL for strings pickled afresh each time (CPython memoises by object identity, and
 * only the constants 'storage' and 'cpu' are the same object every time). */
static void p_str(pickler *pk, const char *s, int *memo)
{
    if (memo && *memo >= 0) {
        memo_get(pk, *memo);
        return;
    }
    size_t n = strlen(s);
    put_u8(&pk->out, 'X');
    put_le(&pk->out, (uint32_t)n, 4);
    put(&pk->out, s, n);
    if (memo)
        *memo = pk->next;
    memo_put(pk);
}

/* The smallest of BININT1 / BININT2 / BININT / LONG1, as pickle's save_long picks (x >= 0). */
static void p_int(pickler *pk, int64_t x)
{
    if (x <= 0xff) {
        put_u8(&pk->out, 'K');
        put_u8(&pk->out, (uint8_t)x);
    } else if (x <= 0xffff) {
        put_u8(&pk->out, 'M');
        put_le(&pk->out, (uint64_t)x, 2);
    } else if (x <= 0x7fffffff) {
        put_u8(&pk->out, 'J');
        put_le(&pk->out, (uint64_t)x, 4);
    } else {
        int bits = 64 - __builtin_clzll((uint64_t)x);
        int nb = (bits + 8) / 8;   /* room for the sign bit; at most 8 for an int64 */
        put_u8(&pk->out, 0x8a);
        put_u8(&pk->out, (uint8_t)nb);
        put_le(&pk->out, (uint64_t)x, nb);
    }
}

static void p_int_tuple(pickler *pk, const int64_t *v, int n)
{
    static const uint8_t tuple_op[4] = {0, 0x85, 0x86, 0x87};   /* TUPLE1..3 */
    if (n == 0) {
        put_u8(&pk->out, ')');   /* the empty tuple is a singleton: never memoised */
        return;
    }
    if (n > 3)
        put_u8(&pk->out, '(');
    for (int i = 0; i < n; i++)
        p_int(pk, v[i]);
    put_u8(&pk->out, n > 3 ? 't' : tuple_op[n]);
    memo_put(pk);
}

static void p_odict_empty(pickler *pk)
{
    p_global(pk, &pk->odict, "collections", "OrderedDict");
    put(&pk->out, ")R", 2);
    memo_put(pk);
}

/* One entry: key, then _rebuild_tensor_v2((pid), 0, size, stride, False, OrderedDict()). */
static void p_tensor(pickler *pk, const qe_tensor *t, int storage_key)
{
    char skey[24];
    int64_t stride[QE_MAX_DIMS], acc = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        stride[d] = acc;
        acc *= t->shape[d];
    }
    snprintf(skey, sizeof skey, "%d", storage_key);
    p_str(pk, t->name, NULL);
    p_global(pk, &pk->rebuild, "torch._utils", "_rebuild_tensor_v2");
    put(&pk->out, "((", 2);
    p_str(pk, "storage", &pk->str_storage);
    p_global(pk, &pk->storage_class[t->dtype], "torch", qe_pickle_storage_class(t->dtype));
    p_str(pk, skey, NULL);
    p_str(pk, "cpu", &pk->str_cpu);
    p_int(pk, t->numel);
    put_u8(&pk->out, 't');
    memo_put(pk);
    put_u8(&pk->out, 'Q');
    p_int(pk, 0);
    p_int_tuple(pk, t->shape, t->ndim);
    p_int_tuple(pk, stride, t->ndim);
    put_u8(&pk->out, 0x89);   /* requires_grad = False */
    p_odict_empty(pk);        /* backward_hooks */
    put_u8(&pk->out, 't');
    memo_put(pk);
    put_u8(&pk->out, 'R');
    memo_put(pk);
}

static void pickle_statedict(const qe_statedict *sd, buf *out)
{
    pickler pk = {.odict = -1, .rebuild = -1, .str_storage = -1, .str_cpu = -1};
    memset(pk.storage_class, -1, sizeof pk.storage_class);
    put(&pk.out, "\x80\x02", 2);
    p_odict_empty(&pk);
    for (int start = 0; start < sd->count; start += SETITEMS_BATCH) {
        int n = sd->count - start < SETITEMS_BATCH ? sd->count - start : SETITEMS_BATCH;
        if (n > 1)
            put_u8(&pk.out, '(');
        for (int i = start; i < start + n; i++)
            p_tensor(&pk, &sd->tensors[i], i);
        put_u8(&pk.out, n > 1 ? 'u' : 's');
    }
    put_u8(&pk.out, '.');
    *out = pk.out;
}

/* --------------------------------------------------------------------------- zip writer */

typedef struct zipw {
    FILE *f;
    uint64_t off;
    buf central;
    int nrec;
    uint32_t crc_table[256];
} zipw;

static uint32_t crc32_of(const uint32_t table[256], const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static void write_buf(zipw *z, const buf *b)
{
    fwrite(b->p, 1, b->n, z->f);
    z->off += b->n;
}

/* Local header (version 0, flags 0x0808 = data descriptor + UTF-8, zero CRC and sizes), the
 * "FB" padding extra field, the data, the descriptor; the central entry is kept for later. */
static int write_record(zipw *z, const char *name, const void *data, uint64_t n, char *err)
{
    size_t nlen = strlen(name);
    if (z->off + 30 + nlen + 4 + ZIP_ALIGN + n + 16 > UINT32_MAX || z->nrec == 0xffff)
        return qe_err(err, "checkpoint too large for torch's zip layout (4 GiB / 65535 records)");
    size_t pad = (size_t)((ZIP_ALIGN - (z->off + 30 + nlen + 4) % ZIP_ALIGN) % ZIP_ALIGN);
    uint32_t crc = n ? crc32_of(z->crc_table, data, (size_t)n) : 0;
    buf h = {0};
    put_le(&h, 0x04034b50, 4);
    put_le(&h, 0, 2);          /* version needed */
    put_le(&h, 0x0808, 2);
    put_le(&h, 0, 2);          /* method: stored */
    put_le(&h, 0, 4);          /* DOS time and date */
    put_le(&h, 0, 4);          /* crc, sizes: in the descriptor */
    put_le(&h, 0, 4);
    put_le(&h, 0, 4);
    put_le(&h, nlen, 2);
    put_le(&h, 4 + pad, 2);
    put(&h, name, nlen);
    put(&h, "FB", 2);
    put_le(&h, pad, 2);
    for (size_t i = 0; i < pad; i++)
        put_u8(&h, 'Z');
    uint64_t off = z->off;
    write_buf(z, &h);
    if (n)
        fwrite(data, 1, (size_t)n, z->f);
    z->off += n;
    h.n = 0;
    put_le(&h, 0x08074b50, 4);
    put_le(&h, crc, 4);
    put_le(&h, n, 4);
    put_le(&h, n, 4);
    write_buf(z, &h);
    free(h.p);

    buf *c = &z->central;
    put_le(c, 0x02014b50, 4);
    put_le(c, 0, 2);           /* version made by */
    put_le(c, 0, 2);           /* version needed */
    put_le(c, 0x0808, 2);
    put_le(c, 0, 2);           /* method */
    put_le(c, 0, 4);           /* time, date */
    put_le(c, crc, 4);
    put_le(c, n, 4);
    put_le(c, n, 4);
    put_le(c, nlen, 2);
    put_le(c, 0, 2);           /* extra */
    put_le(c, 0, 2);           /* comment */
    put_le(c, 0, 2);           /* disk */
    put_le(c, 0, 2);           /* internal attributes */
    put_le(c, 0, 4);           /* external attributes */
    put_le(c, off, 4);
    put(c, name, nlen);
    z->nrec++;
    return 0;
}

/* Central directory, zip64 end record and locator (miniz always writes them), classic end. */
static void write_end(zipw *z)
{
    uint64_t cd_off = z->off, cd_size = z->central.n;
    write_buf(z, &z->central);
    uint64_t z64 = z->off;
    buf e = {0};
    put_le(&e, 0x06064b50, 4);
    put_le(&e, 44, 8);
    put_le(&e, 0x031e, 2);
    put_le(&e, 0x2d, 2);
    put_le(&e, 0, 4);
    put_le(&e, 0, 4);
    put_le(&e, (uint64_t)z->nrec, 8);
    put_le(&e, (uint64_t)z->nrec, 8);
    put_le(&e, cd_size, 8);
    put_le(&e, cd_off, 8);
    put_le(&e, 0x07064b50, 4);
    put_le(&e, 0, 4);
    put_le(&e, z64, 8);
    put_le(&e, 1, 4);
    put_le(&e, 0x06054b50, 4);
    put_le(&e, 0, 2);
    put_le(&e, 0, 2);
    put_le(&e, (uint64_t)z->nrec, 2);
    put_le(&e, (uint64_t)z->nrec, 2);
    put_le(&e, cd_size, 4);
    put_le(&e, cd_off, 4);
    put_le(&e, 0, 2);
    write_buf(z, &e);
    free(e.p);
}

static int cmp_key(const void *a, const void *b) { return strcmp(a, b); }

int qe_statedict_save_torch(const qe_statedict *sd, const char *path, char *err)
{
    for (int i = 0; i < sd->count; i++)
        if (!qe_pickle_storage_class(sd->tensors[i].dtype))
            return qe_err(err, "%s: cannot save tensor '%s' of dtype %s", path, sd->tensors[i].name,
                          qe_dtype_name(sd->tensors[i].dtype));

    /* Written beside the target and renamed, so readers never see half a checkpoint. */
    size_t plen = strlen(path);
    char *tmp = qe_malloc(plen + 5);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    zipw z = {.f = fopen(tmp, "wb")};
    if (!z.f) {
        int rc = qe_err(err, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        z.crc_table[i] = c;
    }

    buf pkl;
    pickle_statedict(sd, &pkl);
    int rc = write_record(&z, ARCHIVE "data.pkl", pkl.p, pkl.n, err);
    free(pkl.p);

    /* Storage keys are the decimal entry indices, written in string order (0, 1, 10, 100, ...). */
    typedef char key[24];
    key *keys = qe_malloc((size_t)(sd->count ? sd->count : 1) * sizeof *keys);
    for (int i = 0; i < sd->count; i++)
        snprintf(keys[i], sizeof keys[i], "%d", i);
    qsort(keys, (size_t)sd->count, sizeof *keys, cmp_key);
    for (int i = 0; i < sd->count && rc == 0; i++) {
        const qe_tensor *t = &sd->tensors[atoi(keys[i])];
        char name[64];
        snprintf(name, sizeof name, ARCHIVE "data/%s", keys[i]);
        rc = write_record(&z, name, t->data, (uint64_t)t->numel * qe_dtype_size(t->dtype), err);
    }
    free(keys);
    if (rc == 0)
        rc = write_record(&z, ARCHIVE "version", "3\n", 2, err);
    if (rc == 0)
        write_end(&z);
    free(z.central.p);

    if (ferror(z.f) && rc == 0)
        rc = qe_err(err, "%s: write error", tmp);
    if (fclose(z.f) != 0 && rc == 0)
        rc = qe_err(err, "%s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = qe_err(err, "%s: %s", path, strerror(errno));
    if (rc != 0)
        remove(tmp);
    free(tmp);
    return rc;
}
