/*
 * ckpt_zip.c - the PyTorch zip checkpoint format (spec preprocessing-and-formats.md §7.1), and
 * the record reader shared with npz (§7.4).
 *
 * libzip reads the archive from memory through its central directory, so the local headers
 * torch writes with zero sizes (data descriptors) are never trusted. Only stored records are
 * accepted: a compressed record in a torch file means someone else wrote it, and refusing it
 * keeps every allocation bounded by the archive's length.
 */
#include "pickle.h"
#include "qe_util.h"

#include <stdio.h>
#include <string.h>
#include <zip.h>

#define BYTEORDER_MAX 64

/* Record names come from the file: keep error messages printable. */
static const char *printable(const char *s, char buf[128])
{
    size_t i = 0;
    for (; s[i] && i < 127; i++)
        buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    buf[i] = 0;
    return buf;
}

int qe_ckpt_zip_read(zip_t *za, uint64_t idx, size_t max_bytes, uint8_t **data, size_t *n, char *err)
{
    zip_stat_t st;
    char nb[128];
    zip_stat_init(&st);
    if (zip_stat_index(za, idx, 0, &st) != 0)
        return qe_err(err, "zip record %llu: %s", (unsigned long long)idx, zip_strerror(za));
    const char *name = printable((st.valid & ZIP_STAT_NAME) ? st.name : "?", nb);
    const zip_uint64_t need = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD | ZIP_STAT_CRC;
    if ((st.valid & need) != need)
        return qe_err(err, "zip record '%s': incomplete central directory entry", name);
    if (st.comp_method != ZIP_CM_STORE)
        return qe_err(err, "checkpoint rejected: zip record '%s' is compressed (method %u); only stored "
                      "records are accepted", name, (unsigned)st.comp_method);
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
        return qe_err(err, "checkpoint rejected: zip record '%s' is encrypted", name);
    if (st.size != st.comp_size)
        return qe_err(err, "zip record '%s': stored size %llu != compressed size %llu", name,
                      (unsigned long long)st.size, (unsigned long long)st.comp_size);
    if (st.size > max_bytes)
        return qe_err(err, "zip record '%s' has %llu bytes, more than the %zu allowed", name,
                      (unsigned long long)st.size, max_bytes);

    zip_file_t *zf = zip_fopen_index(za, idx, 0);
    if (!zf)
        return qe_err(err, "zip record '%s': %s", name, zip_strerror(za));
    size_t len = (size_t)st.size, got = 0;
    uint8_t *buf = qe_malloc_aligned(len);
    while (got < len) {
        zip_int64_t r = zip_fread(zf, buf + got, len - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    /* libzip compares the CRC-32 with the central directory when a read reaches the end of
     * the record, so one more read must report end-of-data without an error. */
    uint8_t extra;
    zip_int64_t tail = got == len ? zip_fread(zf, &extra, 1) : -1;
    if (got != len || tail != 0) {
        int rc = qe_err(err, "zip record '%s': %s", name,
                        tail > 0 ? "longer than its directory entry" : got != len ? "truncated"
                                                                           : zip_file_strerror(zf));
        zip_fclose(zf);
        qe_free_aligned(buf);
        return rc;
    }
    zip_fclose(zf);
    *data = buf;
    *n = len;
    return 0;
}

/* Locates prefix + suffix; -1 if absent. */
static zip_int64_t locate(zip_t *za, const char *prefix, const char *suffix)
{
    char name[1024];
    if ((size_t)snprintf(name, sizeof name, "%s%s", prefix, suffix) >= sizeof name)
        return -1;
    return zip_name_locate(za, name, ZIP_FL_ENC_RAW);
}

/* §7.1: every record stored and under the one archive folder, and byteorder (newer torch)
 * little. */
static int check_records(zip_t *za, const char *prefix, char *err)
{
    zip_int64_t n = zip_get_num_entries(za, 0);
    size_t plen = strlen(prefix);
    char nb[128];
    for (zip_int64_t i = 0; i < n; i++) {
        zip_stat_t st;
        zip_stat_init(&st);
        if (zip_stat_index(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW, &st) != 0 || !(st.valid & ZIP_STAT_NAME) ||
            !(st.valid & ZIP_STAT_COMP_METHOD))
            return qe_err(err, "zip record %lld: %s", (long long)i, zip_strerror(za));
        if (strncmp(st.name, prefix, plen) != 0)
            return qe_err(err, "checkpoint rejected: zip record '%s' is outside the archive folder of the "
                          "first record", printable(st.name, nb));
        if (st.comp_method != ZIP_CM_STORE)
            return qe_err(err, "checkpoint rejected: zip record '%s' is compressed (method %u); only stored "
                          "records are accepted", printable(st.name, nb), (unsigned)st.comp_method);
    }
    zip_int64_t bo = locate(za, prefix, "byteorder");
    if (bo >= 0) {
        uint8_t *d;
        size_t len;
        if (qe_ckpt_zip_read(za, (zip_uint64_t)bo, BYTEORDER_MAX, &d, &len, err))
            return -1;
        while (len && (d[len - 1] == '\n' || d[len - 1] == ' ' || d[len - 1] == '\r'))
            len--;
        int little = len == 6 && memcmp(d, "little", 6) == 0;
        qe_free_aligned(d);
        if (!little)
            return qe_err(err, "checkpoint rejected: byteorder record is not 'little'");
    }
    return 0;
}

/* Reads data/<key> for every storage the pickle referenced; the record must hold exactly
 * numel * element_size bytes (§7.1). Records nobody references are ignored. */
static int attach_storages(zip_t *za, const char *prefix, qe_pickle *p, char *err)
{
    for (int i = 0; i < p->nstorages; i++) {
        qe_pstorage *s = &p->storages[i];
        size_t want = (size_t)s->numel * qe_dtype_size(s->dtype);   /* no overflow: checked at unpickling */
        char suffix[512];
        zip_int64_t idx = -1;
        if ((size_t)snprintf(suffix, sizeof suffix, "data/%s", s->key) < sizeof suffix)
            idx = locate(za, prefix, suffix);
        char pb[128];
        if (idx < 0)
            return qe_err(err, "checkpoint rejected: storage record '%sdata/%s' is missing", printable(prefix, pb),
                          s->key);
        size_t got;
        if (qe_ckpt_zip_read(za, (zip_uint64_t)idx, want, &s->owned, &got, err))
            return -1;
        s->data = s->owned;
        if (got != want)
            return qe_err(err, "checkpoint rejected: storage record '%sdata/%s' has %zu bytes, expected %zu "
                          "(%lld x %s)", printable(prefix, pb), s->key, got, want, (long long)s->numel,
                          qe_dtype_name(s->dtype));
    }
    return 0;
}

static int load_torch(zip_t *za, const char *prefix, zip_int64_t pkl, size_t len, qe_statedict *sd, char *err)
{
    uint8_t *pk = NULL;
    size_t npk, used;
    const qe_pv *top;
    qe_pickle p;
    qe_pickle_init(&p);
    int rc = check_records(za, prefix, err);
    if (rc == 0)
        rc = qe_ckpt_zip_read(za, (zip_uint64_t)pkl, len, &pk, &npk, err);
    if (rc == 0)
        rc = qe_pickle_run(&p, pk, npk, QE_PID_ZIP, &top, &used, err);
    if (rc == 0)
        rc = attach_storages(za, prefix, &p, err);
    if (rc == 0)
        rc = qe_statedict_from_pickle(&p, top, sd, err);
    if (rc == 0)
        snprintf(sd->format, sizeof sd->format, "zip");
    qe_free_aligned(pk);
    qe_pickle_free(&p);
    return rc;
}

int qe_ckpt_zip_load(const uint8_t *buf, size_t len, qe_statedict *sd, char *err)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(buf, len, 0, &ze);
    zip_t *za = src ? zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze) : NULL;
    if (!za) {
        int rc = qe_err(err, "not a readable zip archive: %s", zip_error_strerror(&ze));
        if (src)
            zip_source_free(src);
        zip_error_fini(&ze);
        return rc;
    }
    zip_error_fini(&ze);

    /* The archive folder is whatever the first record lives in (torch.save uses the file's
     * base name, §7.1); a torch checkpoint has <folder>/data.pkl, anything else is npz. */
    int rc;
    const char *first = zip_get_num_entries(za, 0) > 0 ? zip_get_name(za, 0, ZIP_FL_ENC_RAW) : NULL;
    const char *slash = first ? strchr(first, '/') : NULL;
    char prefix[256] = "";
    if (!first) {
        rc = qe_err(err, "empty zip archive");
    } else if (slash && (size_t)(slash - first) + 1 >= sizeof prefix) {
        rc = qe_err(err, "checkpoint rejected: archive folder name too long");
    } else {
        if (slash) {
            size_t n = (size_t)(slash - first) + 1;
            memcpy(prefix, first, n);
            prefix[n] = 0;
        }
        zip_int64_t pkl = locate(za, prefix, "data.pkl");
        rc = pkl >= 0 ? load_torch(za, prefix, pkl, len, sd, err) : qe_ckpt_npz_load(za, len, sd, err);
    }
    zip_discard(za);
    return rc;
}
