/*
 * statedict.h - checkpoints as ordered maps name -> tensor (spec preprocessing-and-formats.md §7).
 *
 * Readers for the PyTorch zip format (§7.1, via libzip), the legacy pre-1.6 format (§7.2),
 * safetensors (§7.3) and npz (§7.4). Pickles are interpreted by a whitelist VM (§7.5): a
 * checkpoint is never executed, and anything outside the whitelist is rejected with an error
 * that names the offending opcode or global.
 *
 * Loaded tensors are contiguous, row-major, in their stored dtype: views (storage offset and
 * strides) are materialised at load time, so shared storages become independent copies.
 */
#ifndef QE_STATEDICT_H
#define QE_STATEDICT_H

#include <stddef.h>
#include <stdint.h>

#define QE_MAX_DIMS 8

typedef enum {
    QE_DT_F32, QE_DT_F64, QE_DT_F16, QE_DT_BF16, QE_DT_I64, QE_DT_I32, QE_DT_I16, QE_DT_I8,
    QE_DT_U8, QE_DT_BOOL
} qe_dtype;

typedef struct qe_tensor {
    char *name;
    qe_dtype dtype;
    int ndim;                      /* 0 for a scalar */
    int64_t shape[QE_MAX_DIMS];
    int64_t numel;                 /* product of shape (1 for 0-d) */
    void *data;                    /* numel * qe_dtype_size(dtype) bytes, little-endian, owned */
} qe_tensor;

typedef struct qe_statedict {
    qe_tensor *tensors;            /* in file order */
    int count;
    char format[16];               /* "zip", "legacy", "safetensors", "npz" */
} qe_statedict;

size_t qe_dtype_size(qe_dtype dt);
const char *qe_dtype_name(qe_dtype dt);     /* "float32", "int64", ... */

/* Loads any supported checkpoint, detected from the file's content (not its name). A
 * top-level {"state_dict": {...}} or {"model": {...}} wrapper is unwrapped by name. Files over
 * max_bytes are refused before reading. On error *sd is left empty. */
int qe_statedict_load(const char *path, size_t max_bytes, qe_statedict *sd, char *err);
/* Same, from memory (the buffer is not retained). */
int qe_statedict_load_mem(const uint8_t *buf, size_t len, qe_statedict *sd, char *err);
void qe_statedict_free(qe_statedict *sd);
/* Appends an empty tensor named name (copied; numel 1, no data) and returns it for the caller
 * (a reader or a builder) to fill; data must come from qe_malloc_aligned (freed with sd). */
qe_tensor *qe_statedict_push(qe_statedict *sd, const char *name);

/* NULL if absent. */
const qe_tensor *qe_statedict_find(const qe_statedict *sd, const char *name);

/* Converts any floating or integer tensor to float32 (numel values into dst). */
void qe_tensor_to_f32(const qe_tensor *t, float *dst);

/* Writes a state dict of float32/int64 tensors in torch's zip format exactly as torch 1.13's
 * torch.save does for an OrderedDict without _metadata (archive folder "archive/"), so the
 * file loads with torch.load. Used by `quanteval synth` and `quanteval optimize`. */
int qe_statedict_save_torch(const qe_statedict *sd, const char *path, char *err);

#endif
