/*
 * encfile.c - reading and writing AIMET encodings files (§6). Parsing uses jansson; writing
 * is done by hand because the text must match Python's json.dump byte for byte (key order,
 * separators and repr() of every double), which no JSON library reproduces.
 */
#include "encfile.h"

#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qe_util.h"

/* ---------------------------------------------------------------------------------------- */
/* The table                                                                                */
/* ---------------------------------------------------------------------------------------- */

static const char *kind_name[] = {"input", "output", "param"};

void qe_enctable_init(qe_enctable *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->quant_scheme, sizeof t->quant_scheme, "post_training_tf_enhanced");
    t->param_bw = 8;
    t->act_bw = 8;
}

void qe_enctable_free(qe_enctable *t)
{
    for (int i = 0; i < t->count; i++) {
        free(t->entries[i].key);
        free(t->entries[i].enc);
    }
    free(t->entries);
    qe_enctable_init(t);
}

const qe_encentry *qe_enctable_find(const qe_enctable *t, const char *key)
{
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->entries[i].key, key) == 0)
            return &t->entries[i];
    return NULL;
}

/* Length of the module part of an activation key, or -1 if the suffix does not match. */
static long activation_module_len(const char *key, qe_enckind kind)
{
    size_t len = strlen(key), suffix = strlen(kind_name[kind]) + 1;

    if (len <= suffix || key[len - suffix] != '.' || strcmp(key + len - suffix + 1, kind_name[kind]))
        return -1;
    return (long)(len - suffix);
}

int qe_enctable_put(qe_enctable *t, const char *key, qe_enckind kind, int n,
                    const qe_encoding *enc, char *err)
{
    if (n < 1)
        return qe_err(err, "%s: no encodings", key);
    if (kind != QE_ENC_PARAM && (n != 1 || activation_module_len(key, kind) < 0))
        return qe_err(err, "%s: an activation key ends in \".%s\" and has one encoding", key,
                      kind_name[kind]);

    qe_encentry *e = (qe_encentry *)qe_enctable_find(t, key);
    if (e) {
        free(e->enc);
    } else {
        if (t->count == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 64;
            t->entries = qe_realloc(t->entries, (size_t)t->cap * sizeof *t->entries);
        }
        e = &t->entries[t->count++];
        e->key = qe_strdup(key);
    }
    e->kind = kind;
    e->n = n;
    e->enc = qe_malloc((size_t)n * sizeof *enc);
    memcpy(e->enc, enc, (size_t)n * sizeof *enc);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading (§6.1 - §6.3)                                                                     */
/* ---------------------------------------------------------------------------------------- */

static int get_number(json_t *obj, const char *field, double *v, const char *where, char *err)
{
    json_t *j = json_object_get(obj, field);

    if (!j)
        return qe_err(err, "%s: missing \"%s\"", where, field);
    if (!json_is_number(j))
        return qe_err(err, "%s: \"%s\" is not a number", where, field);
    *v = json_number_value(j);
    if (!isfinite(*v))
        return qe_err(err, "%s: \"%s\" is not finite", where, field);
    return 0;
}

/* One ENC record (§6.1). Every field is kept verbatim; only its type and range are checked. */
static int parse_enc(json_t *j, qe_encoding *e, const char *where, char *err)
{
    json_t *f;
    double offset;

    if (!json_is_object(j))
        return qe_err(err, "%s: encoding is not an object", where);

    f = json_object_get(j, "bitwidth");
    if (!f)
        return qe_err(err, "%s: missing \"bitwidth\"", where);
    if (!json_is_integer(f) || json_integer_value(f) < 1 || json_integer_value(f) > 16)
        return qe_err(err, "%s: \"bitwidth\" must be an integer in 1..16", where);
    e->bw = (int)json_integer_value(f);

    f = json_object_get(j, "is_symmetric");
    if (!f)
        return qe_err(err, "%s: missing \"is_symmetric\"", where);
    /* AIMET writes the Python repr of a bool and eval()s it back (§6.2). */
    if (json_is_string(f) && strcmp(json_string_value(f), "True") == 0)
        e->symmetric = 1;
    else if (json_is_string(f) && strcmp(json_string_value(f), "False") == 0)
        e->symmetric = 0;
    else
        return qe_err(err, "%s: \"is_symmetric\" must be the string \"True\" or \"False\"", where);

    f = json_object_get(j, "dtype");
    if (f && !(json_is_string(f) && strcmp(json_string_value(f), "int") == 0))
        return qe_err(err, "%s: only \"dtype\": \"int\" encodings are supported", where);

    if (get_number(j, "min", &e->min, where, err) || get_number(j, "max", &e->max, where, err) ||
        get_number(j, "scale", &e->delta, where, err) ||
        get_number(j, "offset", &offset, where, err))
        return -1;
    if (e->min > e->max)
        return qe_err(err, "%s: min %.17g > max %.17g", where, e->min, e->max);
    if (offset != floor(offset) || offset < -2147483648.0 || offset > 2147483647.0)
        return qe_err(err, "%s: \"offset\" must be a 32-bit integer", where);
    e->offset = offset;
    return 0;
}

static int add_entry(qe_enctable *t, const char *key, qe_enckind kind, int n,
                     const qe_encoding *enc, char *err)
{
    if (qe_enctable_find(t, key))
        return qe_err(err, "duplicate encoding key \"%s\"", key);
    return qe_enctable_put(t, key, kind, n, enc, err);
}

/* "<name>": [ENC, ...] of param_encodings or of the flat layout. */
static int parse_param(qe_enctable *t, const char *section, const char *name, json_t *list,
                       char *err)
{
    char where[256];
    size_t n = json_is_array(list) ? json_array_size(list) : 0;

    if (!json_is_array(list) || n == 0)
        return qe_err(err, "%s\"%s\": expected a non-empty list of encodings", section, name);
    if (n > INT32_MAX)
        return qe_err(err, "%s\"%s\": too many encodings", section, name);

    qe_encoding *enc = qe_malloc(n * sizeof *enc);
    for (size_t i = 0; i < n; i++) {
        snprintf(where, sizeof where, "%s\"%s\"[%zu]", section, name, i);
        if (parse_enc(json_array_get(list, i), &enc[i], where, err)) {
            free(enc);
            return -1;
        }
    }
    int rc = add_entry(t, name, QE_ENC_PARAM, (int)n, enc, err);
    free(enc);
    return rc;
}

/* "<module>": {"input"|"output": {"0": ENC}} of activation_encodings. */
static int parse_activation(qe_enctable *t, const char *module, json_t *kinds, char *err)
{
    const char *kind_key, *index;
    json_t *by_index, *j;
    char where[256];

    if (!json_is_object(kinds))
        return qe_err(err, "activation_encodings.\"%s\" is not an object", module);
    json_object_foreach(kinds, kind_key, by_index) {
        qe_enckind kind;
        if (strcmp(kind_key, "input") == 0)
            kind = QE_ENC_INPUT;
        else if (strcmp(kind_key, "output") == 0)
            kind = QE_ENC_OUTPUT;
        else
            return qe_err(err, "activation_encodings.\"%s\": unknown quantizer \"%s\" (expected "
                          "\"input\" or \"output\")", module, kind_key);
        if (!json_is_object(by_index) || json_object_size(by_index) == 0)
            return qe_err(err, "activation_encodings.\"%s\".%s: expected {\"0\": encoding}",
                          module, kind_key);
        json_object_foreach(by_index, index, j) {
            qe_encoding e;
            if (strcmp(index, "0") != 0)
                return qe_err(err, "activation_encodings.\"%s\".%s: only tensor index \"0\" is "
                              "supported, not \"%s\"", module, kind_key, index);
            snprintf(where, sizeof where, "activation_encodings.\"%s\".%s.\"0\"", module, kind_key);
            if (parse_enc(j, &e, where, err))
                return -1;
            size_t klen = strlen(module) + strlen(kind_key) + 2;
            char *key = qe_malloc(klen);
            snprintf(key, klen, "%s.%s", module, kind_key);
            int rc = add_entry(t, key, kind, 1, &e, err);
            free(key);
            if (rc)
                return -1;
        }
    }
    return 0;
}

/* The informative "quantizer_args" (§6.1): taken when well-formed, otherwise ignored. */
static void parse_quantizer_args(qe_enctable *t, json_t *args)
{
    json_t *j;

    if (!json_is_object(args))
        return;
    j = json_object_get(args, "quant_scheme");
    if (json_is_string(j) && strlen(json_string_value(j)) < sizeof t->quant_scheme)
        snprintf(t->quant_scheme, sizeof t->quant_scheme, "%s", json_string_value(j));
    j = json_object_get(args, "param_bitwidth");
    if (json_is_integer(j) && json_integer_value(j) >= 1 && json_integer_value(j) <= 16)
        t->param_bw = (int)json_integer_value(j);
    j = json_object_get(args, "activation_bitwidth");
    if (json_is_integer(j) && json_integer_value(j) >= 1 && json_integer_value(j) <= 16)
        t->act_bw = (int)json_integer_value(j);
}

static int parse_document(json_t *root, qe_enctable *t, char *err)
{
    json_t *acts, *params, *j;
    const char *name;

    if (!json_is_object(root))
        return qe_err(err, "encodings file: top level is not a JSON object");
    acts = json_object_get(root, "activation_encodings");
    params = json_object_get(root, "param_encodings");

    if (!acts && !params) {
        /* §6.3 flat layout: every member is a parameter's list. */
        json_object_foreach(root, name, j)
            if (parse_param(t, "", name, j, err))
                return -1;
        return 0;
    }
    if (acts) {
        if (!json_is_object(acts))
            return qe_err(err, "\"activation_encodings\" is not an object");
        json_object_foreach(acts, name, j)
            if (parse_activation(t, name, j, err))
                return -1;
    }
    if (params) {
        if (!json_is_object(params))
            return qe_err(err, "\"param_encodings\" is not an object");
        json_object_foreach(params, name, j)
            if (parse_param(t, "param_encodings.", name, j, err))
                return -1;
    }
    parse_quantizer_args(t, json_object_get(root, "quantizer_args"));
    return 0;
}

int qe_encfile_parse(const char *text, size_t len, qe_enctable *t, char *err)
{
    json_error_t jerr;
    json_t *root;

    qe_enctable_init(t);
    /* Duplicate keys are rejected rather than silently resolved to the last one. */
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return qe_err(err, "encodings file: line %d column %d: %s", jerr.line, jerr.column,
                      jerr.text);
    int rc = parse_document(root, t, err);
    json_decref(root);
    if (rc)
        qe_enctable_free(t);
    return rc;
}

int qe_encfile_read(const char *path, qe_enctable *t, char *err)
{
    uint8_t *data;
    size_t len;
    char msg[QE_ERR_LEN];

    qe_enctable_init(t);
    if (qe_read_file(path, QE_ENCFILE_MAX_BYTES, &data, &len, err))
        return -1;
    int rc = qe_encfile_parse((const char *)data, len, t, msg);
    free(data);
    if (rc)
        return qe_err(err, "%s: %s", path, msg);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing (§6.1)                                                                            */
/* ---------------------------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        while (b->len + n + 1 > b->cap)
            b->cap = b->cap ? 2 * b->cap : 4096;
        b->p = qe_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* A JSON string. Control characters are escaped as json.dump does; other bytes (UTF-8
 * validated by the parser) pass through. */
static void sb_put_string(sbuf *b, const char *s, size_t n)
{
    sb_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_puts(b, esc);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_puts(b, "\"");
}

/*
 * Python's repr() of a finite double: the shortest decimal that reads back as the same
 * double, in positional notation when its decimal exponent lies in [-4, 16) (with ".0" for
 * integral values) and as d.ddde+XX otherwise.
 */
static void sb_put_double(sbuf *b, double v)
{
    char sci[40], digits[24], out[48];
    int prec, exp10, nd = 0, o = 0;

    /* For a normal double the first of 15, 16, 17 significant digits that round-trips is the
     * shortest: its rounding interval holds at most one 15-digit decimal, so a shorter form
     * shows up as trailing zeros, stripped below. Subnormals have wider intervals. */
    for (prec = fabs(v) < DBL_MIN ? 1 : 15; prec < 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec - 1, v);
        if (strtod(sci, NULL) == v)
            break;
    }
    snprintf(sci, sizeof sci, "%.*e", prec - 1, v);

    const char *s = sci;
    if (*s == '-')
        out[o++] = *s++;
    for (; *s != 'e'; s++)
        if (*s != '.')
            digits[nd++] = *s;
    exp10 = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;

    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = -1; i > exp10; i--)
                out[o++] = '0';
            memcpy(out + o, digits, (size_t)nd);
            o += nd;
        } else {
            for (int i = 0; i <= exp10; i++)
                out[o++] = i < nd ? digits[i] : '0';
            out[o++] = '.';
            if (nd > exp10 + 1) {
                memcpy(out + o, digits + exp10 + 1, (size_t)(nd - exp10 - 1));
                o += nd - exp10 - 1;
            } else {
                out[o++] = '0';
            }
        }
        sb_put(b, out, (size_t)o);
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, (size_t)(nd - 1));
            o += nd - 1;
        }
        o += snprintf(out + o, sizeof out - (size_t)o, "e%c%02d", exp10 < 0 ? '-' : '+',
                      abs(exp10));
        sb_put(b, out, (size_t)o);
    }
}

/* ENC with the keys in json.dump's order of AIMET's dict (alphabetical). */
static void put_enc(sbuf *b, const qe_encoding *e)
{
    char num[64];

    snprintf(num, sizeof num, "{\"bitwidth\":%d,\"dtype\":\"int\",\"is_symmetric\":\"%s\",\"max\":",
             e->bw, e->symmetric ? "True" : "False");
    sb_puts(b, num);
    sb_put_double(b, e->max);
    sb_puts(b, ",\"min\":");
    sb_put_double(b, e->min);
    /* int(offset): + 0.0 turns -0.0 into 0. */
    snprintf(num, sizeof num, ",\"offset\":%.0f,\"scale\":", e->offset + 0.0);
    sb_puts(b, num);
    sb_put_double(b, e->delta);
    sb_puts(b, "}");
}

static int check_finite(const qe_encentry *e, char *err)
{
    for (int i = 0; i < e->n; i++) {
        const qe_encoding *x = &e->enc[i];
        if (!isfinite(x->min) || !isfinite(x->max) || !isfinite(x->delta) ||
            !isfinite(x->offset) || fabs(x->offset) > 1e15)
            return qe_err(err, "%s[%d]: non-finite encoding cannot be written", e->key, i);
    }
    return 0;
}

static void put_activations(sbuf *b, const qe_enctable *t)
{
    int first_module = 1;

    for (int i = 0; i < t->count; i++) {
        const qe_encentry *e = &t->entries[i];
        long mlen;
        int seen = 0;

        if (e->kind == QE_ENC_PARAM)
            continue;
        mlen = activation_module_len(e->key, e->kind);
        /* Modules are written once, at their first entry, with all their quantizers. */
        for (int j = 0; j < i && !seen; j++) {
            const qe_encentry *p = &t->entries[j];
            seen = p->kind != QE_ENC_PARAM && activation_module_len(p->key, p->kind) == mlen &&
                   strncmp(p->key, e->key, (size_t)mlen) == 0;
        }
        if (seen)
            continue;
        if (!first_module)
            sb_puts(b, ",");
        first_module = 0;
        sb_put_string(b, e->key, (size_t)mlen);
        sb_puts(b, ":{");
        int first_kind = 1;
        for (int j = i; j < t->count; j++) {
            const qe_encentry *q = &t->entries[j];
            if (q->kind == QE_ENC_PARAM || activation_module_len(q->key, q->kind) != mlen ||
                strncmp(q->key, e->key, (size_t)mlen) != 0)
                continue;
            if (!first_kind)
                sb_puts(b, ",");
            first_kind = 0;
            sb_puts(b, q->kind == QE_ENC_INPUT ? "\"input\":{\"0\":" : "\"output\":{\"0\":");
            put_enc(b, &q->enc[0]);
            sb_puts(b, "}");
        }
        sb_puts(b, "}");
    }
}

int qe_encfile_format(const qe_enctable *t, char **text, size_t *len, char *err)
{
    sbuf b = {0};
    char args[256];
    int first = 1;

    for (int i = 0; i < t->count; i++)
        if (check_finite(&t->entries[i], err))
            return -1;

    sb_puts(&b, "{\"version\":\"0.6.1\",\"activation_encodings\":{");
    put_activations(&b, t);
    sb_puts(&b, "},\"param_encodings\":{");
    for (int i = 0; i < t->count; i++) {
        const qe_encentry *e = &t->entries[i];
        if (e->kind != QE_ENC_PARAM)
            continue;
        if (!first)
            sb_puts(&b, ",");
        first = 0;
        sb_put_string(&b, e->key, strlen(e->key));
        sb_puts(&b, ":[");
        for (int k = 0; k < e->n; k++) {
            if (k)
                sb_puts(&b, ",");
            put_enc(&b, &e->enc[k]);
        }
        sb_puts(&b, "]");
    }
    sb_puts(&b, "},\"excluded_layers\":[],\"quantizer_args\":{\"quant_scheme\":");
    sb_put_string(&b, t->quant_scheme, strlen(t->quant_scheme));
    /* dtype, is_symmetric and per_channel_quantization are this project's fixed settings
     * (§1.3). */
    snprintf(args, sizeof args, ",\"param_bitwidth\":%d,\"activation_bitwidth\":%d,\"dtype\":"
             "\"int\",\"is_symmetric\":true,\"per_channel_quantization\":true}}",
             t->param_bw, t->act_bw);
    sb_puts(&b, args);
    *text = b.p;
    *len = b.len;
    return 0;
}

int qe_encfile_write(const qe_enctable *t, const char *path, char *err)
{
    char *text;
    size_t len;
    FILE *f;

    if (qe_encfile_format(t, &text, &len, err))
        return -1;
    f = fopen(path, "wb");
    if (!f) {
        free(text);
        return qe_err(err, "%s: %s", path, strerror(errno));
    }
    size_t wrote = fwrite(text, 1, len, f);
    free(text);
    if (fclose(f) != 0 || wrote != len)
        return qe_err(err, "%s: write failed", path);
    return 0;
}
