/*
 * encfile.h - AIMET encodings files (spec quantsim.md §6) and the in-memory table of the
 * encodings of one model.
 *
 * Read: the §6.1 `<prefix>_torch.encodings` layout
 *     {"activation_encodings": {"<module>": {"input"|"output": {"0": ENC}}},
 *      "param_encodings": {"<module>.weight": [ENC, ...]}, ...}
 * and the §6.3 flat AdaRound layout {"<module>.weight": [ENC, ...], ...}, told apart by the
 * presence of "param_encodings" / "activation_encodings". Fields are kept verbatim (§6.2).
 * Write: the §6.1 layout as AIMET 1.24 exports it (compact JSON, doubles in Python's
 * shortest round-trip form), so a file read and written again is the same text.
 *
 * Keys of the table: "<module>.input" / "<module>.output" for activation encodings, the
 * parameter name ("fc.weight") for parameter encodings.
 */
#ifndef QE_ENCFILE_H
#define QE_ENCFILE_H

#include <stddef.h>

#include "qdq.h"

#define QE_ENCFILE_MAX_BYTES ((size_t)256 << 20)

typedef enum qe_enckind {
    QE_ENC_INPUT,                  /* activation_encodings.<module>.input."0" */
    QE_ENC_OUTPUT,                 /* activation_encodings.<module>.output."0" */
    QE_ENC_PARAM                   /* param_encodings.<name>: one encoding per channel */
} qe_enckind;

typedef struct qe_encentry {
    char *key;
    qe_enckind kind;
    int n;                         /* 1 for an activation; channels (or 1) for a parameter */
    qe_encoding *enc;              /* [n] */
} qe_encentry;

typedef struct qe_enctable {
    qe_encentry *entries;          /* in insertion (file) order */
    int count, cap;
    /* §6.1 "quantizer_args": informative only, kept so that written files match AIMET's. */
    char quant_scheme[32];         /* "post_training_tf_enhanced" */
    int param_bw, act_bw;
} qe_enctable;

/* An empty table with AIMET's default quantizer_args (tf_enhanced, 8/8). */
void qe_enctable_init(qe_enctable *t);
void qe_enctable_free(qe_enctable *t);

/* Adds the n encodings (copied) under key, replacing an entry of the same key. Activation
 * keys must end in ".input" / ".output" matching kind and have n == 1; n >= 1 always. */
int qe_enctable_put(qe_enctable *t, const char *key, qe_enckind kind, int n,
                    const qe_encoding *enc, char *err);

/* The entry of key ("conv1.input", "layer1.0.relu.output", "fc.weight"), or NULL. */
const qe_encentry *qe_enctable_find(const qe_enctable *t, const char *key);

/* Parses a §6.1 or §6.3 document into t (initialised here; left empty on error). Rejects
 * malformed files with a message naming the offending entry: missing or mistyped fields,
 * bitwidth outside 1..16, min > max, non-integer offset, dtype other than "int",
 * is_symmetric other than "True"/"False", duplicate keys, activation indices other than "0". */
int qe_encfile_parse(const char *text, size_t len, qe_enctable *t, char *err);
/* Same, from a file of at most QE_ENCFILE_MAX_BYTES. */
int qe_encfile_read(const char *path, qe_enctable *t, char *err);

/* The §6.1 document of t as a NUL-terminated malloc'd string (*len without the NUL).
 * Activation entries are grouped by module in order of first appearance, parameters follow
 * in table order. Fails on non-finite numbers, which JSON cannot carry. */
int qe_encfile_format(const qe_enctable *t, char **text, size_t *len, char *err);
int qe_encfile_write(const qe_enctable *t, const char *path, char *err);

#endif
