/*
 * statedict.c - checkpoint dispatch and the operations on loaded state dicts (spec
 * preprocessing-and-formats.md §7).
 *
 * The format is recognised from the first bytes, never from the file name: "PK\3\4" is a zip
 * (torch §7.1 or npz §7.4, told apart by the records inside), the 15-byte magic pickle is the
 * legacy torch format (§7.2), and a little-endian header length followed by '{' is safetensors
 * (§7.3). This file also turns an unpickled torch checkpoint into contiguous tensors.
 */
#include "statedict.h"

#include "pickle.h"
#include "qe_util.h"

#include <stdlib.h>
#include <string.h>

/* Tensor bytes are stored little-endian (§7) and handed to the kernels as they are. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "quanteval assumes a little-endian host");

/* Views may repeat storage bytes (shared storages, stride-0 broadcasts). Materialising them is
 * allowed to grow the data at most this much beyond the bytes the file actually holds, so a
 * tiny file cannot demand gigabytes. */
#define VIEW_EXPANSION 4
#define VIEW_SLACK ((uint64_t)64 << 20)

static const struct { const char *name; size_t size; } dtypes[] = {
    [QE_DT_F32] = {"float32", 4}, [QE_DT_F64] = {"float64", 8}, [QE_DT_F16] = {"float16", 2},
    [QE_DT_BF16] = {"bfloat16", 2}, [QE_DT_I64] = {"int64", 8}, [QE_DT_I32] = {"int32", 4},
    [QE_DT_I16] = {"int16", 2}, [QE_DT_I8] = {"int8", 1}, [QE_DT_U8] = {"uint8", 1},
    [QE_DT_BOOL] = {"bool", 1},
};

size_t qe_dtype_size(qe_dtype dt) { return (unsigned)dt <= QE_DT_BOOL ? dtypes[dt].size : 0; }

const char *qe_dtype_name(qe_dtype dt) { return (unsigned)dt <= QE_DT_BOOL ? dtypes[dt].name : "?"; }

/* --------------------------------------------------------------------------- the container */

qe_tensor *qe_statedict_push(qe_statedict *sd, const char *name)
{
    /* Grow by doubling: the array is sized by the number of entries the file really holds. */
    if ((sd->count & (sd->count - 1)) == 0)
        sd->tensors = qe_realloc(sd->tensors, (size_t)(sd->count ? 2 * sd->count : 1) * sizeof *sd->tensors);
    qe_tensor *t = &sd->tensors[sd->count++];
    memset(t, 0, sizeof *t);
    t->name = qe_strdup(name);
    t->numel = 1;
    return t;
}

void qe_statedict_free(qe_statedict *sd)
{
    for (int i = 0; i < sd->count; i++) {
        free(sd->tensors[i].name);
        qe_free_aligned(sd->tensors[i].data);
    }
    free(sd->tensors);
    memset(sd, 0, sizeof *sd);
}

const qe_tensor *qe_statedict_find(const qe_statedict *sd, const char *name)
{
    for (int i = 0; i < sd->count; i++)
        if (strcmp(sd->tensors[i].name, name) == 0)
            return &sd->tensors[i];
    return NULL;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const qe_tensor *const *)a)->name, (*(const qe_tensor *const *)b)->name);
}

/* §7.5: duplicate tensor names are an error in every format. Sorting keeps this O(n log n)
 * even for files with millions of entries. */
static int check_unique_names(const qe_statedict *sd, char *err)
{
    if (sd->count < 2)
        return 0;
    const qe_tensor **v = qe_malloc((size_t)sd->count * sizeof *v);
    for (int i = 0; i < sd->count; i++)
        v[i] = &sd->tensors[i];
    qsort(v, (size_t)sd->count, sizeof *v, cmp_name);
    int rc = 0;
    for (int i = 1; i < sd->count && rc == 0; i++)
        if (strcmp(v[i - 1]->name, v[i]->name) == 0)
            rc = qe_err(err, "checkpoint rejected: duplicate tensor name '%s'", v[i]->name);
    free(v);
    return rc;
}

/* --------------------------------------------------------------------------- loading */

int qe_statedict_load_mem(const uint8_t *buf, size_t len, qe_statedict *sd, char *err)
{
    int rc;
    memset(sd, 0, sizeof *sd);
    if (len >= 4 && memcmp(buf, "PK\3\4", 4) == 0)
        rc = qe_ckpt_zip_load(buf, len, sd, err);
    else if (len >= sizeof qe_ckpt_legacy_magic && memcmp(buf, qe_ckpt_legacy_magic, sizeof qe_ckpt_legacy_magic) == 0)
        rc = qe_ckpt_legacy_load(buf, len, sd, err);
    else if (len >= 9 && buf[8] == '{')
        rc = qe_ckpt_safetensors_load(buf, len, sd, err);
    else
        return qe_err(err, "unknown checkpoint format (%zu bytes; expected a torch zip, legacy torch, "
                      "safetensors or npz file)", len);
    if (rc == 0)
        rc = check_unique_names(sd, err);
    if (rc != 0)
        qe_statedict_free(sd);
    return rc;
}

int qe_statedict_load(const char *path, size_t max_bytes, qe_statedict *sd, char *err)
{
    uint8_t *buf;
    size_t len;
    memset(sd, 0, sizeof *sd);
    if (qe_read_file(path, max_bytes, &buf, &len, err))
        return -1;
    char msg[QE_ERR_LEN];
    int rc = qe_statedict_load_mem(buf, len, sd, msg);
    free(buf);
    if (rc)
        return qe_err(err, "%s: %s", path, msg);
    return 0;
}

/* --------------------------------------------------------------------------- unpickled checkpoints */

static int all_tensors(const qe_pv *d)
{
    for (size_t i = 1; i < d->u.seq.n; i += 2)
        if (d->u.seq.v[i]->kind != QE_PV_TENSOR)
            return 0;
    return 1;
}

/* The dict of tensors inside the unpickled object: the object itself, or - as an explicit
 * convenience for training checkpoints (§7.5) - the dict stored under "state_dict" or "model". */
static const qe_pv *unwrap(const qe_pv *top, char *err)
{
    if (top->kind != QE_PV_DICT) {
        qe_err(err, "checkpoint rejected: the top-level object is not a dict");
        return NULL;
    }
    if (all_tensors(top))
        return top;
    static const char *wrappers[] = {"state_dict", "model"};
    for (size_t w = 0; w < sizeof wrappers / sizeof wrappers[0]; w++) {
        const qe_pv *in = qe_pv_dict_get(top, wrappers[w]);
        if (in && in->kind == QE_PV_DICT && all_tensors(in))
            return in;
    }
    for (size_t i = 1; i < top->u.seq.n; i += 2) {
        if (top->u.seq.v[i]->kind != QE_PV_TENSOR) {
            const qe_pv *k = top->u.seq.v[i - 1];
            if (k->kind == QE_PV_STR)
                qe_err(err, "checkpoint rejected: entry '%s' is not a tensor", k->u.str.s);
            else
                qe_err(err, "checkpoint rejected: entry %lld is not a tensor", (long long)k->u.i);
            break;
        }
    }
    return NULL;
}

/* Copies a strided view into contiguous row-major order, one innermost row at a time. */
static void gather(const qe_pview *v, const uint8_t *base, size_t es, uint8_t *dst)
{
    int nd = v->ndim;
    int64_t idx[QE_MAX_DIMS] = {0};
    int64_t inner = v->size[nd - 1], step = v->stride[nd - 1] * (int64_t)es;
    for (;;) {
        const uint8_t *src = base;
        for (int d = 0; d < nd - 1; d++)
            src += idx[d] * v->stride[d] * (int64_t)es;
        switch (es) {   /* fixed-size copies compile to single moves */
        case 1: for (int64_t j = 0; j < inner; j++) dst[j] = src[j * step]; break;
        case 2: for (int64_t j = 0; j < inner; j++) memcpy(dst + 2 * j, src + j * step, 2); break;
        case 4: for (int64_t j = 0; j < inner; j++) memcpy(dst + 4 * j, src + j * step, 4); break;
        default: for (int64_t j = 0; j < inner; j++) memcpy(dst + 8 * j, src + j * step, 8); break;
        }
        dst += inner * (int64_t)es;
        int d = nd - 2;
        for (; d >= 0; d--) {
            if (++idx[d] < v->size[d])
                break;
            idx[d] = 0;
        }
        if (d < 0)
            return;
    }
}

static int is_contiguous(const qe_pview *v)
{
    int64_t expect = 1;
    for (int d = v->ndim - 1; d >= 0; d--) {
        if (v->size[d] != 1 && v->stride[d] != expect)
            return 0;
        expect *= v->size[d];
    }
    return 1;
}

int qe_statedict_from_pickle(qe_pickle *p, const qe_pv *top, qe_statedict *sd, char *err)
{
    const qe_pv *dict = unwrap(top, err);
    if (!dict)
        return -1;
    if (p->built && p->built != dict)
        return qe_err(err, "checkpoint rejected: BUILD on an object other than the state dict");

    /* Budget for the materialised bytes (from the storages actually present, which the file's
     * size bounds), and how often each storage is used: a storage used by one contiguous
     * full-size tensor is handed over instead of copied. */
    uint64_t held = 0, budget, out = 0;
    int *uses = qe_calloc((size_t)p->nstorages + 1, sizeof *uses);
    for (int i = 0; i < p->nstorages; i++)
        if (p->storages[i].data)
            held += (uint64_t)p->storages[i].numel * qe_dtype_size(p->storages[i].dtype);
    budget = VIEW_EXPANSION * held + VIEW_SLACK;
    for (size_t i = 1; i < dict->u.seq.n; i += 2)
        uses[dict->u.seq.v[i]->u.view->storage]++;

    int rc = 0;
    for (size_t i = 0; i < dict->u.seq.n && rc == 0; i += 2) {
        const qe_pv *k = dict->u.seq.v[i];
        const qe_pview *v = dict->u.seq.v[i + 1]->u.view;
        qe_pstorage *s = &p->storages[v->storage];
        size_t es = qe_dtype_size(s->dtype);
        if (k->kind != QE_PV_STR) {
            rc = qe_err(err, "checkpoint rejected: tensor name is not a string");
            break;
        }
        if (!s->data) {
            rc = qe_err(err, "checkpoint rejected: storage '%s' of '%s' is missing", s->key, k->u.str.s);
            break;
        }
        qe_tensor *t = qe_statedict_push(sd, k->u.str.s);
        t->dtype = s->dtype;
        t->ndim = v->ndim;
        for (int d = 0; d < v->ndim; d++) {
            t->shape[d] = v->size[d];
            t->numel *= v->size[d];   /* cannot overflow: checked when the view was unpickled */
        }
        uint64_t nbytes = (uint64_t)t->numel * es;
        if (nbytes > budget - out) {
            rc = qe_err(err, "checkpoint rejected: views of '%s' expand the data beyond %dx the file's "
                        "storage bytes", k->u.str.s, VIEW_EXPANSION);
            break;
        }
        out += nbytes;
        int contiguous = is_contiguous(v);
        if (s->owned && uses[v->storage] == 1 && v->offset == 0 && t->numel == s->numel && contiguous) {
            t->data = s->owned;
            s->owned = NULL;
            s->data = NULL;   /* no other tensor uses it */
        } else {
            t->data = qe_malloc_aligned((size_t)nbytes);
            /* An empty view's offset is unchecked (§7.1 bounds only non-empty tensors). */
            if (t->numel > 0) {
                const uint8_t *base = s->data + (size_t)v->offset * es;
                if (contiguous)
                    memcpy(t->data, base, (size_t)nbytes);
                else
                    gather(v, base, es, t->data);
            }
        }
    }
    free(uses);
    if (rc)
        qe_statedict_free(sd);
    return rc;
}

/* --------------------------------------------------------------------------- conversion */

/* IEEE binary16 -> binary32, exact for every input including subnormals, infinities and NaNs. */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f)
        bits = sign | 0x7f800000 | man << 13;
    else if (exp)
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    else {
        float f = (float)man * 0x1p-24f;   /* subnormal: man * 2^-24, exact in binary32 */
        memcpy(&bits, &f, sizeof bits);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

void qe_tensor_to_f32(const qe_tensor *t, float *dst)
{
    int64_t n = t->numel;
    const void *p = t->data;
    switch (t->dtype) {
    case QE_DT_F32: memcpy(dst, p, (size_t)n * sizeof(float)); break;
    case QE_DT_F64: for (int64_t i = 0; i < n; i++) dst[i] = (float)((const double *)p)[i]; break;
    case QE_DT_F16: for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32(((const uint16_t *)p)[i]); break;
    case QE_DT_BF16: for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(((const uint16_t *)p)[i]); break;
    case QE_DT_I64: for (int64_t i = 0; i < n; i++) dst[i] = (float)((const int64_t *)p)[i]; break;
    case QE_DT_I32: for (int64_t i = 0; i < n; i++) dst[i] = (float)((const int32_t *)p)[i]; break;
    case QE_DT_I16: for (int64_t i = 0; i < n; i++) dst[i] = (float)((const int16_t *)p)[i]; break;
    case QE_DT_I8: for (int64_t i = 0; i < n; i++) dst[i] = (float)((const int8_t *)p)[i]; break;
    case QE_DT_U8: for (int64_t i = 0; i < n; i++) dst[i] = (float)((const uint8_t *)p)[i]; break;
    case QE_DT_BOOL: for (int64_t i = 0; i < n; i++) dst[i] = ((const uint8_t *)p)[i] ? 1.0f : 0.0f; break;
    }
}
