/*
 * pickle.h - internal interface of the checkpoint readers (spec preprocessing-and-formats.md §7).
 *
 * The core is a whitelist pickle VM (§7.5): it understands exactly the opcodes and globals that
 * torch.save writes for a state dict and rejects everything else with an error that names the
 * opcode or global. Nothing is ever imported or called: the three allowed callables
 * (OrderedDict, _rebuild_tensor_v2, _rebuild_parameter) are evaluated symbolically, and
 * persistent ids become entries of a storage table that the container reader (zip §7.1 or
 * legacy §7.2) fills with bytes afterwards. statedict.c then turns the unpickled dict into
 * contiguous tensors.
 *
 * Also declared here: the entry points statedict.c dispatches to, and the small helpers the
 * readers share. None of this is public API; include statedict.h instead.
 */
#ifndef QE_PICKLE_H
#define QE_PICKLE_H

#include "statedict.h"

#include <stddef.h>
#include <stdint.h>

struct zip;     /* libzip's archive handle (zip_t) */

/* --------------------------------------------------------------------------- values */

typedef enum {
    QE_PV_NONE, QE_PV_BOOL, QE_PV_INT, QE_PV_FLOAT, QE_PV_STR,
    QE_PV_TUPLE, QE_PV_LIST, QE_PV_DICT,
    QE_PV_GLOBAL,       /* one of the whitelisted globals, see qe_pglobal */
    QE_PV_STORAGE,      /* result of a persistent id: index into qe_pickle.storages */
    QE_PV_TENSOR        /* result of _rebuild_tensor_v2 / _rebuild_parameter */
} qe_pv_kind;

typedef enum {
    QE_PG_ORDERED_DICT, QE_PG_REBUILD_TENSOR_V2, QE_PG_REBUILD_PARAMETER, QE_PG_STORAGE_CLASS
} qe_pglobal;

/* A tensor view as _rebuild_tensor_v2 describes it, already bounds-checked against the
 * storage's element count (§7.1). */
typedef struct qe_pview {
    int storage;                       /* index into qe_pickle.storages */
    int ndim;
    int64_t offset;                    /* in elements */
    int64_t size[QE_MAX_DIMS];
    int64_t stride[QE_MAX_DIMS];       /* in elements, >= 0 */
} qe_pview;

typedef struct qe_pv qe_pv;
struct qe_pv {
    qe_pv_kind kind;
    union {
        int64_t i;                                     /* BOOL (0/1), INT */
        double f;                                      /* FLOAT */
        struct { const char *s; size_t len; } str;     /* STR: valid UTF-8, no NUL inside, NUL-terminated */
        struct {                                       /* TUPLE, LIST, DICT (v[2k] key, v[2k+1] value) */
            qe_pv **v;
            size_t n, cap;
            int ordered;                               /* DICT made by OrderedDict() */
        } seq;
        struct { qe_pglobal which; qe_dtype dtype; } global;   /* dtype: storage classes only */
        int storage;                                   /* STORAGE */
        const qe_pview *view;                          /* TENSOR */
    } u;
};

/* Number of key/value pairs of a DICT. */
static inline size_t qe_pv_dict_len(const qe_pv *d) { return d->u.seq.n / 2; }

/* The value stored under a string key of a DICT (the last one, as Python's dict keeps), or
 * NULL when absent or d is not a dict. */
const qe_pv *qe_pv_dict_get(const qe_pv *d, const char *key);

/* --------------------------------------------------------------------------- the VM */

/* One storage referenced by persistent ids, unique by key. Two references that disagree on
 * dtype or element count are rejected when the second one is unpickled (§7.5). */
typedef struct qe_pstorage {
    const char *key;
    qe_dtype dtype;
    int64_t numel;
    const uint8_t *data;   /* numel * qe_dtype_size(dtype) bytes, attached by the reader; NULL until then */
    uint8_t *owned;        /* the reader's qe_malloc_aligned copy of data, if any (freed with the VM) */
} qe_pstorage;

typedef struct qe_pickle {
    qe_pstorage *storages;
    int nstorages;
    const qe_pv *built;    /* the dict a BUILD set _metadata on, NULL if none */
    /* private */
    int cap_storages;
    int *slots;            /* open-addressing index of storages by key, size nslots */
    int nslots;
    struct qe_parena *arena;
    size_t budget;         /* bytes the VM may still allocate */
} qe_pickle;

/* What BINPERSID accepts: no persistent id at all, the 5-tuple of the zip format (§7.1), or
 * the 6-tuple of the legacy format whose view_metadata must be None (§7.2). */
typedef enum { QE_PID_NONE = 0, QE_PID_ZIP = 5, QE_PID_LEGACY = 6 } qe_pid_form;

void qe_pickle_init(qe_pickle *p);
/* Frees every value, the storage table and the storages' owned buffers. */
void qe_pickle_free(qe_pickle *p);

/* Runs one pickle that starts at buf[0] up to and including its STOP, into the VM's arena
 * (values of successive runs on the same VM stay valid until qe_pickle_free). *out is the
 * unpickled object, *used the number of bytes consumed. */
int qe_pickle_run(qe_pickle *p, const uint8_t *buf, size_t len, qe_pid_form pid, const qe_pv **out,
                  size_t *used, char *err);

/* Index of the storage with this key, -1 if no persistent id referenced it. */
int qe_pickle_storage_find(const qe_pickle *p, const char *key);

/* torch's storage class name for a dtype ("FloatStorage", ...), as in the table of §7.1. */
const char *qe_pickle_storage_class(qe_dtype dt);

/* --------------------------------------------------------------------------- readers */

/* Each reader fills an empty *sd (and its format) or returns -1 leaving it empty. */
/* §7.1 torch zip, or §7.4 npz when the archive holds no data.pkl (ckpt_zip.c). */
int qe_ckpt_zip_load(const uint8_t *buf, size_t len, qe_statedict *sd, char *err);
/* §7.2 (ckpt_legacy.c): files that start with qe_ckpt_legacy_magic. */
int qe_ckpt_legacy_load(const uint8_t *buf, size_t len, qe_statedict *sd, char *err);
/* §7.3 (ckpt_safetensors.c). */
int qe_ckpt_safetensors_load(const uint8_t *buf, size_t len, qe_statedict *sd, char *err);
/* §7.4 (ckpt_npz.c), on an archive opened by ckpt_zip.c; no member may exceed max_member bytes. */
int qe_ckpt_npz_load(struct zip *za, size_t max_member, qe_statedict *sd, char *err);

/* Reads record idx of an open archive into a new qe_malloc_aligned buffer, refusing records
 * that are compressed, encrypted, larger than max_bytes, or whose CRC-32 does not match the
 * central directory (ckpt_zip.c). */
int qe_ckpt_zip_read(struct zip *za, uint64_t idx, size_t max_bytes, uint8_t **data, size_t *n,
                     char *err);

/* The 15-byte first pickle of a legacy file: the magic number 0x1950a86a20f9469cfc6c (§7.2). */
extern const uint8_t qe_ckpt_legacy_magic[15];

/* --------------------------------------------------------------------------- statedict.c */

/* Turns an unpickled checkpoint into *sd once every storage has its bytes: unwraps a
 * {"state_dict": ...} / {"model": ...} wrapper, requires a dict of tensors (BUILD only on that
 * dict, §7.5) and materialises every view contiguously. */
int qe_statedict_from_pickle(qe_pickle *p, const qe_pv *top, qe_statedict *sd, char *err);

#endif
