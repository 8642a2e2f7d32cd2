/*
 * ckpt_legacy.c - the legacy torch checkpoint format (spec preprocessing-and-formats.md §7.2):
 * five protocol-2 pickles (magic number, protocol version, sys info, the object, the sorted
 * list of storage keys) followed by each storage as an int64 element count and raw bytes.
 *
 * Storages are referenced in place inside the caller's buffer; only the tensors are copied.
 */
#include "pickle.h"
#include "qe_util.h"

#include <stdio.h>
#include <string.h>

/* PROTO 2, LONG1 of 10 bytes 0x1950a86a20f9469cfc6c, STOP. */
const uint8_t qe_ckpt_legacy_magic[15] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                          0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

#define LEGACY_PROTOCOL 1001

static int64_t rd_i64(const uint8_t *b)
{
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = u << 8 | b[i];
    int64_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static int run(qe_pickle *p, const uint8_t *buf, size_t len, size_t *pos, qe_pid_form pid, const qe_pv **out,
               char *err)
{
    size_t used;
    if (qe_pickle_run(p, buf + *pos, len - *pos, pid, out, &used, err))
        return -1;
    *pos += used;
    return 0;
}

/* The pickles before the object: protocol 1001 and a little-endian sys info (§7.2 items 2-3). */
static int check_header(qe_pickle *p, const uint8_t *buf, size_t len, size_t *pos, char *err)
{
    const qe_pv *v;
    if (run(p, buf, len, pos, QE_PID_NONE, &v, err))
        return -1;
    if (v->kind != QE_PV_INT || v->u.i != LEGACY_PROTOCOL)
        return qe_err(err, "checkpoint rejected: unsupported legacy protocol version");
    if (run(p, buf, len, pos, QE_PID_NONE, &v, err))
        return -1;
    const qe_pv *le = qe_pv_dict_get(v, "little_endian");
    if (!le || le->kind != QE_PV_BOOL || !le->u.i)
        return qe_err(err, "checkpoint rejected: legacy sys_info does not say little_endian=True "
                      "(big-endian checkpoints are not supported)");
    return 0;
}

/* §7.2 items 5-6: the key list, then per key an int64 count and the raw elements. */
static int attach_storages(qe_pickle *p, const uint8_t *buf, size_t len, size_t *pos, char *err)
{
    const qe_pv *keys;
    if (run(p, buf, len, pos, QE_PID_NONE, &keys, err))
        return -1;
    if (keys->kind != QE_PV_LIST)
        return qe_err(err, "checkpoint rejected: legacy storage key list is not a list");
    for (size_t i = 0; i < keys->u.seq.n; i++) {
        const qe_pv *k = keys->u.seq.v[i];
        if (k->kind != QE_PV_STR)
            return qe_err(err, "checkpoint rejected: legacy storage key is not a string");
        int idx = qe_pickle_storage_find(p, k->u.str.s);
        if (idx < 0)
            return qe_err(err, "checkpoint rejected: storage '%s' is stored but never referenced", k->u.str.s);
        qe_pstorage *s = &p->storages[idx];
        if (s->data)
            return qe_err(err, "checkpoint rejected: storage '%s' is stored twice", s->key);
        if (len - *pos < 8)
            return qe_err(err, "legacy checkpoint truncated in the header of storage '%s'", s->key);
        int64_t numel = rd_i64(buf + *pos);
        *pos += 8;
        if (numel != s->numel)
            return qe_err(err, "checkpoint rejected: storage '%s' holds %lld elements, its references say %lld",
                          s->key, (long long)numel, (long long)s->numel);
        size_t nbytes = (size_t)numel * qe_dtype_size(s->dtype);   /* checked when unpickled */
        if (len - *pos < nbytes)
            return qe_err(err, "legacy checkpoint truncated in storage '%s'", s->key);
        s->data = buf + *pos;
        *pos += nbytes;
    }
    /* Bytes after the last storage are ignored, as torch.load does. */
    return 0;
}

int qe_ckpt_legacy_load(const uint8_t *buf, size_t len, qe_statedict *sd, char *err)
{
    if (len < sizeof qe_ckpt_legacy_magic || memcmp(buf, qe_ckpt_legacy_magic, sizeof qe_ckpt_legacy_magic) != 0)
        return qe_err(err, "not a legacy torch checkpoint (bad magic number)");
    size_t pos = sizeof qe_ckpt_legacy_magic;
    const qe_pv *obj;
    qe_pickle p;
    qe_pickle_init(&p);
    int rc = check_header(&p, buf, len, &pos, err);
    if (rc == 0)
        rc = run(&p, buf, len, &pos, QE_PID_LEGACY, &obj, err);
    if (rc == 0)
        rc = attach_storages(&p, buf, len, &pos, err);
    if (rc == 0)
        rc = qe_statedict_from_pickle(&p, obj, sd, err);
    if (rc == 0)
        snprintf(sd->format, sizeof sd->format, "legacy");
    qe_pickle_free(&p);
    return rc;
}
