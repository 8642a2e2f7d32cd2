/*
 * ckpt_safetensors.c - the safetensors format (spec preprocessing-and-formats.md §7.3):
 * u64 header length, a JSON header {name: {dtype, shape, data_offsets}}, then the data section.
 *
 * Every entry is validated and the spans are checked to tile the data section exactly before
 * any tensor is copied, so overlapping entries cannot multiply the memory a file demands.
 */
#include "pickle.h"
#include "qe_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* JSON costs jansson tens of bytes per input byte, so the header is bounded well below the
 * 100 MB the safetensors project allows; real headers take ~100 bytes per tensor. */
#define HEADER_MAX ((uint64_t)16 << 20)

typedef struct entry {
    const char *name;       /* owned by the JSON document */
    qe_dtype dtype;
    int ndim;
    int64_t shape[QE_MAX_DIMS];
    uint64_t begin, end;    /* relative to the data section */
} entry;

static int parse_dtype(const char *s, qe_dtype *dt)
{
    static const struct { const char *name; qe_dtype dt; } map[] = {
        {"F64", QE_DT_F64}, {"F32", QE_DT_F32}, {"F16", QE_DT_F16}, {"BF16", QE_DT_BF16},
        {"I64", QE_DT_I64}, {"I32", QE_DT_I32}, {"I16", QE_DT_I16}, {"I8", QE_DT_I8},
        {"U8", QE_DT_U8}, {"BOOL", QE_DT_BOOL},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(s, map[i].name) == 0) {
            *dt = map[i].dt;
            return 0;
        }
    }
    return -1;
}

static int parse_entry(const char *name, json_t *v, uint64_t data_len, entry *e, char *err)
{
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    e->name = name;
    if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs) ||
        json_array_size(offs) != 2)
        return qe_err(err, "safetensors entry '%s' lacks dtype, shape or data_offsets", name);
    if (parse_dtype(json_string_value(dt), &e->dtype))
        return qe_err(err, "safetensors entry '%s' has unsupported dtype '%s'", name, json_string_value(dt));
    if (json_array_size(shape) > QE_MAX_DIMS)
        return qe_err(err, "safetensors entry '%s' has more than %d dimensions", name, QE_MAX_DIMS);
    e->ndim = (int)json_array_size(shape);
    uint64_t nbytes = qe_dtype_size(e->dtype);
    for (int d = 0; d < e->ndim; d++) {
        json_t *x = json_array_get(shape, (size_t)d);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return qe_err(err, "safetensors entry '%s' has a bad shape", name);
        e->shape[d] = json_integer_value(x);
        if (__builtin_mul_overflow(nbytes, (uint64_t)e->shape[d], &nbytes))
            return qe_err(err, "safetensors entry '%s': size overflows", name);
    }
    json_t *b = json_array_get(offs, 0), *en = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 ||
        json_integer_value(en) < json_integer_value(b))
        return qe_err(err, "safetensors entry '%s' has bad data_offsets", name);
    e->begin = (uint64_t)json_integer_value(b);
    e->end = (uint64_t)json_integer_value(en);
    if (e->end > data_len || e->end - e->begin != nbytes)
        return qe_err(err, "safetensors entry '%s': data_offsets [%llu, %llu] do not hold %llu bytes inside "
                      "the %llu-byte data section", name, (unsigned long long)e->begin,
                      (unsigned long long)e->end, (unsigned long long)nbytes, (unsigned long long)data_len);
    return 0;
}

static int cmp_span(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* §7.3: "the tensors tile the data section without gaps or overlaps". */
static int check_tiling(entry *e, size_t n, uint64_t data_len, char *err)
{
    entry **v = qe_malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = &e[i];
    qsort(v, n, sizeof *v, cmp_span);
    uint64_t pos = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (v[i]->begin != pos)
            rc = qe_err(err, "safetensors entry '%s' %s the previous one", v[i]->name,
                        v[i]->begin > pos ? "leaves a gap after" : "overlaps");
        pos = v[i]->end;
    }
    if (rc == 0 && pos != data_len)
        rc = qe_err(err, "safetensors data section has %llu bytes after the last tensor",
                    (unsigned long long)(data_len - pos));
    free(v);
    return rc;
}

int qe_ckpt_safetensors_load(const uint8_t *buf, size_t len, qe_statedict *sd, char *err)
{
    if (len < 8)
        return qe_err(err, "safetensors file truncated");
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    if (hlen > len - 8 || hlen > HEADER_MAX)
        return qe_err(err, "safetensors header length %llu exceeds the file", (unsigned long long)hlen);
    json_error_t je;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return qe_err(err, "safetensors header is not valid JSON: %s (line %d)", je.text, je.line);
    const uint8_t *data = buf + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;
    size_t n = 0;
    entry *e = NULL;
    int rc = 0;
    if (!json_is_object(root))
        rc = qe_err(err, "safetensors header is not a JSON object");
    else
        e = qe_malloc((json_object_size(root) + 1) * sizeof *e);
    const char *name;
    json_t *v;
    json_object_foreach(root, name, v) {
        if (rc)
            break;
        if (strcmp(name, "__metadata__") == 0) {
            if (!json_is_object(v))
                rc = qe_err(err, "safetensors __metadata__ is not an object");
            continue;
        }
        rc = parse_entry(name, v, data_len, &e[n++], err);
    }
    if (rc == 0)
        rc = check_tiling(e, n, data_len, err);
    for (size_t i = 0; i < n && rc == 0; i++) {
        qe_tensor *t = qe_statedict_push(sd, e[i].name);
        t->dtype = e[i].dtype;
        t->ndim = e[i].ndim;
        for (int d = 0; d < t->ndim; d++) {
            t->shape[d] = e[i].shape[d];
            t->numel *= e[i].shape[d];
        }
        t->data = qe_malloc_aligned((size_t)(e[i].end - e[i].begin));
        memcpy(t->data, data + e[i].begin, (size_t)(e[i].end - e[i].begin));
    }
    if (rc == 0)
        snprintf(sd->format, sizeof sd->format, "safetensors");
    else
        qe_statedict_free(sd);
    free(e);
    json_decref(root);
    return rc;
}
