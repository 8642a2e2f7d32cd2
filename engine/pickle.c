/*
 * pickle.c - the whitelist pickle VM of the checkpoint readers (spec preprocessing-and-formats.md
 * §7.5; readable model: shared/reference/checkpoint.py, _unpickle).
 *
 * The VM keeps CPython's semantics for the opcodes it accepts (a MARK splits the stack, so no
 * opcode may pop below the innermost mark; the memo holds references, not copies) and refuses
 * the rest. All values live in an arena owned by the qe_pickle: a pickle can build cycles and
 * share values through the memo, so nothing is freed individually, and nothing walks values
 * recursively. Everything the VM allocates is charged to a fixed budget, so a hostile pickle
 * cannot make it allocate more than PICKLE_BUDGET bytes whatever sizes it claims.
 */
#include "pickle.h"

#include "qe_util.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PICKLE_BUDGET ((size_t)512 << 20)
#define ARENA_CHUNK ((size_t)64 << 10)
#define GLOBAL_NAME_MAX 256

/* --------------------------------------------------------------------------- arena */

struct qe_parena {
    struct qe_parena *next;
    size_t used, cap;
    max_align_t mem[];
};

static int charge(qe_pickle *p, size_t n)
{
    if (n > p->budget)
        return -1;
    p->budget -= n;
    return 0;
}

/* NULL when the budget is exhausted. */
static void *arena_alloc(qe_pickle *p, size_t n)
{
    const size_t align = alignof(max_align_t);
    n = (n + align - 1) & ~(align - 1);
    struct qe_parena *a = p->arena;
    if (!a || a->cap - a->used < n) {
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        if (charge(p, cap))
            return NULL;
        a = qe_malloc(sizeof *a + cap);
        a->next = p->arena;
        a->used = 0;
        a->cap = cap;
        p->arena = a;
    }
    void *r = (char *)a->mem + a->used;
    a->used += n;
    return r;
}

/* --------------------------------------------------------------------------- tables */

static const struct { const char *name; qe_dtype dtype; } storage_classes[] = {
    {"FloatStorage", QE_DT_F32}, {"DoubleStorage", QE_DT_F64}, {"HalfStorage", QE_DT_F16},
    {"BFloat16Storage", QE_DT_BF16}, {"LongStorage", QE_DT_I64}, {"IntStorage", QE_DT_I32},
    {"ShortStorage", QE_DT_I16}, {"CharStorage", QE_DT_I8}, {"ByteStorage", QE_DT_U8},
    {"BoolStorage", QE_DT_BOOL},
};

const char *qe_pickle_storage_class(qe_dtype dt)
{
    for (size_t i = 0; i < sizeof storage_classes / sizeof storage_classes[0]; i++)
        if (storage_classes[i].dtype == dt)
            return storage_classes[i].name;
    return NULL;
}

/* Names of every pickle opcode (protocols 0-5), for error messages about the ones we refuse. */
static const char *const opcode_names[256] = {
    ['('] = "MARK", ['.'] = "STOP", ['0'] = "POP", ['1'] = "POP_MARK", ['2'] = "DUP",
    ['F'] = "FLOAT", ['I'] = "INT", ['J'] = "BININT", ['K'] = "BININT1", ['L'] = "LONG",
    ['M'] = "BININT2", ['N'] = "NONE", ['P'] = "PERSID", ['Q'] = "BINPERSID", ['R'] = "REDUCE",
    ['S'] = "STRING", ['T'] = "BINSTRING", ['U'] = "SHORT_BINSTRING", ['V'] = "UNICODE",
    ['X'] = "BINUNICODE", ['a'] = "APPEND", ['b'] = "BUILD", ['c'] = "GLOBAL", ['d'] = "DICT",
    ['}'] = "EMPTY_DICT", ['e'] = "APPENDS", ['g'] = "GET", ['h'] = "BINGET", ['i'] = "INST",
    ['j'] = "LONG_BINGET", ['l'] = "LIST", [']'] = "EMPTY_LIST", ['o'] = "OBJ", ['p'] = "PUT",
    ['q'] = "BINPUT", ['r'] = "LONG_BINPUT", ['s'] = "SETITEM", ['t'] = "TUPLE",
    [')'] = "EMPTY_TUPLE", ['u'] = "SETITEMS", ['G'] = "BINFLOAT", ['B'] = "BINBYTES",
    ['C'] = "SHORT_BINBYTES", [0x80] = "PROTO", [0x81] = "NEWOBJ", [0x82] = "EXT1",
    [0x83] = "EXT2", [0x84] = "EXT4", [0x85] = "TUPLE1", [0x86] = "TUPLE2", [0x87] = "TUPLE3",
    [0x88] = "NEWTRUE", [0x89] = "NEWFALSE", [0x8a] = "LONG1", [0x8b] = "LONG4",
    [0x8c] = "SHORT_BINUNICODE", [0x8d] = "BINUNICODE8", [0x8e] = "BINBYTES8",
    [0x8f] = "EMPTY_SET", [0x90] = "ADDITEMS", [0x91] = "FROZENSET", [0x92] = "NEWOBJ_EX",
    [0x93] = "STACK_GLOBAL", [0x94] = "MEMOIZE", [0x95] = "FRAME", [0x96] = "BYTEARRAY8",
    [0x97] = "NEXT_BUFFER", [0x98] = "READONLY_BUFFER",
};

/* --------------------------------------------------------------------------- values */

/* Immutable values need no allocation; they are never written through these pointers. */
static qe_pv v_none = {.kind = QE_PV_NONE};
static qe_pv v_true = {.kind = QE_PV_BOOL, .u.i = 1};
static qe_pv v_false = {.kind = QE_PV_BOOL, .u.i = 0};
static qe_pv v_empty_tuple = {.kind = QE_PV_TUPLE};

static const char *kind_name(const qe_pv *v)
{
    static const char *names[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict",
                                  "global", "storage", "tensor"};
    return names[v->kind];
}

const qe_pv *qe_pv_dict_get(const qe_pv *d, const char *key)
{
    if (!d || d->kind != QE_PV_DICT)
        return NULL;
    for (size_t i = d->u.seq.n; i >= 2; i -= 2) {
        const qe_pv *k = d->u.seq.v[i - 2];
        if (k->kind == QE_PV_STR && strcmp(k->u.str.s, key) == 0)
            return d->u.seq.v[i - 1];
    }
    return NULL;
}

/* --------------------------------------------------------------------------- storage table */

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

int qe_pickle_storage_find(const qe_pickle *p, const char *key)
{
    if (!p->nslots)
        return -1;
    for (uint32_t i = hash_str(key) & (uint32_t)(p->nslots - 1);; i = (i + 1) & (uint32_t)(p->nslots - 1)) {
        int s = p->slots[i];
        if (s == 0)
            return -1;
        if (strcmp(p->storages[s - 1].key, key) == 0)
            return s - 1;
    }
}

static void index_storage(qe_pickle *p, int idx)
{
    uint32_t mask = (uint32_t)(p->nslots - 1);
    uint32_t i = hash_str(p->storages[idx].key) & mask;
    while (p->slots[i])
        i = (i + 1) & mask;
    p->slots[i] = idx + 1;
}

/* Index of the new storage, -1 when the budget is exhausted. */
static int add_storage(qe_pickle *p, const char *key, qe_dtype dt, int64_t numel)
{
    if (p->nstorages == p->cap_storages) {
        int cap = p->cap_storages ? 2 * p->cap_storages : 16;
        if (charge(p, (size_t)(cap - p->cap_storages) * sizeof *p->storages))
            return -1;
        p->storages = qe_realloc(p->storages, (size_t)cap * sizeof *p->storages);
        p->cap_storages = cap;
    }
    if (2 * (p->nstorages + 1) > p->nslots) {   /* keep the load factor at most 1/2 */
        int n = p->nslots ? 2 * p->nslots : 64;
        if (charge(p, (size_t)n * sizeof *p->slots))
            return -1;
        free(p->slots);
        p->slots = qe_calloc((size_t)n, sizeof *p->slots);
        p->nslots = n;
        for (int i = 0; i < p->nstorages; i++)
            index_storage(p, i);
    }
    int idx = p->nstorages++;
    p->storages[idx] = (qe_pstorage){.key = key, .dtype = dt, .numel = numel};
    index_storage(p, idx);
    return idx;
}

void qe_pickle_init(qe_pickle *p)
{
    memset(p, 0, sizeof *p);
    p->budget = PICKLE_BUDGET;
}

void qe_pickle_free(qe_pickle *p)
{
    for (int i = 0; i < p->nstorages; i++)
        qe_free_aligned(p->storages[i].owned);
    free(p->storages);
    free(p->slots);
    while (p->arena) {
        struct qe_parena *next = p->arena->next;
        free(p->arena);
        p->arena = next;
    }
    memset(p, 0, sizeof *p);
}

/* --------------------------------------------------------------------------- VM state */

typedef struct vm {
    qe_pickle *p;
    const uint8_t *buf;
    size_t len, pos;
    size_t op_pos;          /* offset of the opcode being executed, for messages */
    qe_pid_form pid;
    qe_pv **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t nmarks, marks_cap;
    qe_pv **memo;           /* NULL entries are unset */
    size_t memo_cap, memo_count;
    char *err;
} vm;

#define REJECT(m, ...) qe_err((m)->err, "checkpoint rejected: " __VA_ARGS__)
#define CORRUPT(m, fmt, ...) \
    qe_err((m)->err, "corrupt pickle at byte %zu: " fmt, (m)->op_pos, ##__VA_ARGS__)

static int out_of_memory(vm *m)
{
    return qe_err(m->err, "checkpoint rejected: pickle exceeds the VM's memory budget (%zu MiB)",
                  PICKLE_BUDGET >> 20);
}

/* Returns the VM-local array arr grown (zero-filled) so that index need - 1 is valid, charging
 * the growth to the budget; NULL when the budget is exhausted (arr is then unchanged). */
static void *grow(vm *m, void *arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return arr;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    if (charge(m->p, (n - *cap) * elem))
        return NULL;
    arr = qe_realloc(arr, n * elem);
    memset((char *)arr + *cap * elem, 0, (n - *cap) * elem);
    *cap = n;
    return arr;
}

static int need(vm *m, size_t n)
{
    if (m->len - m->pos < n)
        return CORRUPT(m, "truncated");
    return 0;
}

static size_t mark_base(const vm *m) { return m->nmarks ? m->marks[m->nmarks - 1] : 0; }

static int push(vm *m, qe_pv *v)
{
    if (!v)
        return out_of_memory(m);
    qe_pv **st = grow(m, m->stack, &m->stack_cap, m->sp + 1, sizeof *st);
    if (!st)
        return out_of_memory(m);
    m->stack = st;
    m->stack[m->sp++] = v;
    return 0;
}

static int pop(vm *m, qe_pv **v)
{
    if (m->sp <= mark_base(m))
        return CORRUPT(m, "stack underflow");
    *v = m->stack[--m->sp];
    return 0;
}

static int top(vm *m, qe_pv **v)
{
    if (m->sp <= mark_base(m))
        return CORRUPT(m, "stack underflow");
    *v = m->stack[m->sp - 1];
    return 0;
}

/* Pops everything above the innermost MARK: items = stack[*first .. sp_before). */
static int pop_mark(vm *m, size_t *first, size_t *n)
{
    if (!m->nmarks)
        return CORRUPT(m, "no MARK on the stack");
    size_t mk = m->marks[--m->nmarks];
    *first = mk;
    *n = m->sp - mk;
    m->sp = mk;
    return 0;
}

static qe_pv *new_value(vm *m, qe_pv_kind kind)
{
    qe_pv *v = arena_alloc(m->p, sizeof *v);
    if (v) {
        memset(v, 0, sizeof *v);
        v->kind = kind;
    }
    return v;
}

static qe_pv *new_int(vm *m, int64_t i)
{
    qe_pv *v = new_value(m, QE_PV_INT);
    if (v)
        v->u.i = i;
    return v;
}

/* A TUPLE/LIST/DICT holding a copy of items[0..n). */
static qe_pv *new_seq(vm *m, qe_pv_kind kind, qe_pv *const *items, size_t n)
{
    if (kind == QE_PV_TUPLE && n == 0)
        return &v_empty_tuple;
    qe_pv *v = new_value(m, kind);
    if (!v)
        return NULL;
    if (n) {
        if (!(v->u.seq.v = arena_alloc(m->p, n * sizeof *items)))
            return NULL;
        memcpy(v->u.seq.v, items, n * sizeof *items);
    }
    v->u.seq.n = v->u.seq.cap = n;
    return v;
}

static int seq_append(vm *m, qe_pv *s, qe_pv *const *items, size_t n)
{
    if (n == 0)
        return 0;
    if (s->u.seq.cap - s->u.seq.n < n) {
        size_t cap = s->u.seq.cap ? s->u.seq.cap : 8;
        while (cap - s->u.seq.n < n)
            cap *= 2;
        qe_pv **v = arena_alloc(m->p, cap * sizeof *v);
        if (!v)
            return out_of_memory(m);
        if (s->u.seq.n)
            memcpy(v, s->u.seq.v, s->u.seq.n * sizeof *v);
        s->u.seq.v = v;
        s->u.seq.cap = cap;
    }
    memcpy(s->u.seq.v + s->u.seq.n, items, n * sizeof *items);
    s->u.seq.n += n;
    return 0;
}

/* --------------------------------------------------------------------------- decoding helpers */

static uint32_t rd_u32(const uint8_t *b) { return b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24; }

/* Strict UTF-8 (no overlong forms, surrogates or code points above U+10FFFF), as Python's
 * decoder; NUL is refused too because names become C strings. */
static int valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0)
            k = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            k = 2, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            k = 3, cp = c & 0x07, min = 0x10000;
        else
            return 0;
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

static int push_str(vm *m, size_t n)
{
    if (need(m, n))
        return -1;
    if (!valid_utf8(m->buf + m->pos, n))
        return CORRUPT(m, "string is not valid UTF-8 or contains NUL");
    qe_pv *v = new_value(m, QE_PV_STR);
    char *s = v ? arena_alloc(m->p, n + 1) : NULL;
    if (!s)
        return out_of_memory(m);
    memcpy(s, m->buf + m->pos, n);
    s[n] = 0;
    v->u.str.s = s;
    v->u.str.len = n;
    m->pos += n;
    return push(m, v);
}

/* Copies a global's module or name for an error message, replacing unprintable bytes. */
static void printable(char *dst, size_t cap, const char *src, size_t n)
{
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++)
        dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
    dst[i] = 0;
}

/* §7.5: only these globals exist; anything else is the most likely sign of a malicious file. */
static int push_global(vm *m, const char *mod, size_t nmod, const char *name, size_t nname)
{
    qe_pv *v = new_value(m, QE_PV_GLOBAL);
    if (!v)
        return out_of_memory(m);
#define IS(s, n, lit) ((n) == sizeof(lit) - 1 && memcmp((s), (lit), (n)) == 0)
    if (IS(mod, nmod, "collections") && IS(name, nname, "OrderedDict")) {
        v->u.global.which = QE_PG_ORDERED_DICT;
        return push(m, v);
    }
    if (IS(mod, nmod, "torch._utils") && IS(name, nname, "_rebuild_tensor_v2")) {
        v->u.global.which = QE_PG_REBUILD_TENSOR_V2;
        return push(m, v);
    }
    if (IS(mod, nmod, "torch._utils") && IS(name, nname, "_rebuild_parameter")) {
        v->u.global.which = QE_PG_REBUILD_PARAMETER;
        return push(m, v);
    }
    if (IS(mod, nmod, "torch")) {
        for (size_t i = 0; i < sizeof storage_classes / sizeof storage_classes[0]; i++) {
            if (strlen(storage_classes[i].name) == nname && memcmp(name, storage_classes[i].name, nname) == 0) {
                v->u.global.which = QE_PG_STORAGE_CLASS;
                v->u.global.dtype = storage_classes[i].dtype;
                return push(m, v);
            }
        }
    }
#undef IS
    char a[GLOBAL_NAME_MAX + 1], b[GLOBAL_NAME_MAX + 1];
    printable(a, sizeof a, mod, nmod);
    printable(b, sizeof b, name, nname);
    return REJECT(m, "forbidden global '%s %s'", a, b);
}

static int op_global(vm *m)
{
    /* GLOBAL: "module\nname\n" */
    const char *s = (const char *)m->buf + m->pos;
    size_t avail = m->len - m->pos;
    size_t lim = avail < 2 * GLOBAL_NAME_MAX + 2 ? avail : 2 * GLOBAL_NAME_MAX + 2;
    const char *e1 = memchr(s, '\n', lim);
    if (!e1 || e1 - s > GLOBAL_NAME_MAX)
        return CORRUPT(m, "bad GLOBAL operand");
    const char *name = e1 + 1;
    const char *e2 = memchr(name, '\n', lim - (size_t)(name - s));
    if (!e2 || e2 - name > GLOBAL_NAME_MAX)
        return CORRUPT(m, "bad GLOBAL operand");
    m->pos += (size_t)(e2 + 1 - s);
    return push_global(m, s, (size_t)(e1 - s), name, (size_t)(e2 - name));
}

static int op_stack_global(vm *m)
{
    qe_pv *name, *mod;
    if (pop(m, &name) || pop(m, &mod))
        return -1;
    if (mod->kind != QE_PV_STR || name->kind != QE_PV_STR)
        return CORRUPT(m, "STACK_GLOBAL operands are not strings");
    return push_global(m, mod->u.str.s, mod->u.str.len, name->u.str.s, name->u.str.len);
}

/* --------------------------------------------------------------------------- torch semantics */

static int is_empty_dict(const qe_pv *v) { return v->kind == QE_PV_DICT && v->u.seq.n == 0; }

static int int_tuple(const qe_pv *t, int64_t *out, int *n)
{
    if (t->kind != QE_PV_TUPLE || t->u.seq.n > QE_MAX_DIMS)
        return -1;
    for (size_t i = 0; i < t->u.seq.n; i++) {
        if (t->u.seq.v[i]->kind != QE_PV_INT)
            return -1;
        out[i] = t->u.seq.v[i]->u.i;
    }
    *n = (int)t->u.seq.n;
    return 0;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks
 * [, metadata]) of §7.1, with the bounds check storage_offset + sum((size-1)*stride) < numel. */
static qe_pv *rebuild_tensor(vm *m, const qe_pv *args)
{
    size_t n = args->u.seq.n;
    qe_pv *const *a = args->u.seq.v;
    qe_pview *t;
    int nstride;
    if (n != 6 && n != 7) {
        REJECT(m, "_rebuild_tensor_v2 with %zu arguments", n);
        return NULL;
    }
    if (!(t = arena_alloc(m->p, sizeof *t))) {
        out_of_memory(m);
        return NULL;
    }
    memset(t, 0, sizeof *t);
    if (a[0]->kind != QE_PV_STORAGE || a[1]->kind != QE_PV_INT || int_tuple(a[2], t->size, &t->ndim) ||
        int_tuple(a[3], t->stride, &nstride) || nstride != t->ndim || a[4]->kind != QE_PV_BOOL ||
        !is_empty_dict(a[5]) || (n == 7 && a[6]->kind != QE_PV_NONE && a[6]->kind != QE_PV_DICT)) {
        REJECT(m, "bad _rebuild_tensor_v2 arguments (at byte %zu)", m->op_pos);
        return NULL;
    }
    t->storage = a[0]->u.storage;
    t->offset = a[1]->u.i;
    const qe_pstorage *s = &m->p->storages[t->storage];
    int64_t last = t->offset, numel = 1;
    int empty = 0;
    if (t->offset < 0) {
        REJECT(m, "negative storage offset %lld", (long long)t->offset);
        return NULL;
    }
    for (int i = 0; i < t->ndim; i++) {
        if (t->size[i] < 0 || t->stride[i] < 0) {
            REJECT(m, "negative size or stride in dimension %d", i);
            return NULL;
        }
        int64_t span;
        if (t->size[i] == 0)
            empty = 1;
        else if (__builtin_mul_overflow(t->size[i] - 1, t->stride[i], &span) ||
                 __builtin_add_overflow(last, span, &last)) {
            REJECT(m, "tensor view overflows (dimension %d)", i);
            return NULL;
        }
        if (__builtin_mul_overflow(numel, t->size[i], &numel) ||
            numel > INT64_MAX / (int64_t)qe_dtype_size(s->dtype)) {
            REJECT(m, "tensor size overflows");
            return NULL;
        }
    }
    if (!empty && last >= s->numel) {
        REJECT(m, "tensor view exceeds its storage '%s' (last element %lld, storage has %lld)", s->key,
               (long long)last, (long long)s->numel);
        return NULL;
    }
    qe_pv *v = new_value(m, QE_PV_TENSOR);
    if (!v) {
        out_of_memory(m);
        return NULL;
    }
    v->u.view = t;
    return v;
}

static const char *global_name(const qe_pv *g)
{
    switch (g->u.global.which) {
    case QE_PG_ORDERED_DICT: return "collections OrderedDict";
    case QE_PG_REBUILD_TENSOR_V2: return "torch._utils _rebuild_tensor_v2";
    case QE_PG_REBUILD_PARAMETER: return "torch._utils _rebuild_parameter";
    default: return "a torch storage class";
    }
}

static int op_reduce(vm *m)
{
    qe_pv *args, *fn, *r = NULL;
    if (pop(m, &args) || pop(m, &fn))
        return -1;
    if (fn->kind != QE_PV_GLOBAL)
        return REJECT(m, "REDUCE on a %s value", kind_name(fn));
    if (args->kind != QE_PV_TUPLE)
        return REJECT(m, "REDUCE with %s arguments", kind_name(args));
    switch (fn->u.global.which) {
    case QE_PG_ORDERED_DICT:
        if (args->u.seq.n)
            return REJECT(m, "OrderedDict called with arguments");
        if ((r = new_value(m, QE_PV_DICT)))
            r->u.seq.ordered = 1;
        break;
    case QE_PG_REBUILD_TENSOR_V2:
        if (!(r = rebuild_tensor(m, args)))
            return -1;
        break;
    case QE_PG_REBUILD_PARAMETER:
        /* (data, requires_grad, backward_hooks) -> the data tensor */
        if (args->u.seq.n != 3 || args->u.seq.v[0]->kind != QE_PV_TENSOR ||
            args->u.seq.v[1]->kind != QE_PV_BOOL || args->u.seq.v[2]->kind != QE_PV_DICT)
            return REJECT(m, "bad _rebuild_parameter arguments");
        r = args->u.seq.v[0];
        break;
    default:
        return REJECT(m, "REDUCE on %s is not allowed", global_name(fn));
    }
    return push(m, r);
}

/* BINPERSID: ('storage', <storage class>, key, location, numel[, view_metadata]) (§7.1, §7.2). */
static int op_persid(vm *m)
{
    qe_pv *pid;
    if (pop(m, &pid))
        return -1;
    if (m->pid == QE_PID_NONE)
        return REJECT(m, "persistent id outside the object pickle");
    size_t n = pid->kind == QE_PV_TUPLE ? pid->u.seq.n : 0;
    qe_pv *const *a = pid->u.seq.v;
    if (n == 0 || a[0]->kind != QE_PV_STR || strcmp(a[0]->u.str.s, "storage") != 0)
        return REJECT(m, "persistent id is not a storage reference");
    if (n != (size_t)m->pid)
        return REJECT(m, "storage persistent id with %zu fields (expected %d)", n, (int)m->pid);
    if (a[1]->kind != QE_PV_GLOBAL || a[1]->u.global.which != QE_PG_STORAGE_CLASS || a[2]->kind != QE_PV_STR ||
        a[3]->kind != QE_PV_STR || a[4]->kind != QE_PV_INT || a[4]->u.i < 0)
        return REJECT(m, "bad storage persistent id");
    if (m->pid == QE_PID_LEGACY && a[5]->kind != QE_PV_NONE)
        return REJECT(m, "legacy storage views (view_metadata) are not supported");
    qe_dtype dt = a[1]->u.global.dtype;
    const char *key = a[2]->u.str.s;
    int64_t numel = a[4]->u.i;
    if (numel > INT64_MAX / (int64_t)qe_dtype_size(dt))
        return REJECT(m, "storage '%s' size overflows", key);
    int idx = qe_pickle_storage_find(m->p, key);
    if (idx >= 0) {
        const qe_pstorage *s = &m->p->storages[idx];
        if (s->dtype != dt || s->numel != numel)
            return REJECT(m, "storage '%s' referenced as %s[%lld] and as %s[%lld]", key, qe_dtype_name(s->dtype),
                          (long long)s->numel, qe_dtype_name(dt), (long long)numel);
    } else if ((idx = add_storage(m->p, key, dt, numel)) < 0) {
        return out_of_memory(m);
    }
    qe_pv *v = new_value(m, QE_PV_STORAGE);
    if (v)
        v->u.storage = idx;
    return push(m, v);
}

/* BUILD: only `obj.__setstate__({'_metadata': ...})` on an OrderedDict (§7.5); the reader later
 * checks that this dict is the state dict itself. */
static int op_build(vm *m)
{
    qe_pv *state, *obj;
    if (pop(m, &state) || top(m, &obj))
        return -1;
    if (obj->kind != QE_PV_DICT || !obj->u.seq.ordered)
        return REJECT(m, "BUILD on a %s", obj->kind == QE_PV_DICT ? "plain dict" : kind_name(obj));
    if (state->kind != QE_PV_DICT)
        return REJECT(m, "BUILD with a %s state", kind_name(state));
    for (size_t i = 0; i < state->u.seq.n; i += 2) {
        const qe_pv *k = state->u.seq.v[i];
        if (k->kind != QE_PV_STR || strcmp(k->u.str.s, "_metadata") != 0)
            return REJECT(m, "BUILD may only set _metadata");
    }
    if (m->p->built && m->p->built != obj)
        return REJECT(m, "BUILD on more than one object");
    m->p->built = obj;
    return 0;
}

static int set_items(vm *m, qe_pv *d, qe_pv *const *items, size_t n)
{
    if (d->kind != QE_PV_DICT)
        return CORRUPT(m, "SETITEM(S) on a %s", kind_name(d));
    if (n % 2)
        return CORRUPT(m, "SETITEMS with an odd number of items");
    for (size_t i = 0; i < n; i += 2)
        if (items[i]->kind != QE_PV_STR && items[i]->kind != QE_PV_INT)
            return REJECT(m, "dict key of type %s", kind_name(items[i]));
    return seq_append(m, d, items, n);
}

static int memo_put(vm *m, size_t idx)
{
    qe_pv *v;
    if (top(m, &v))
        return -1;
    /* CPython's pickler numbers memo entries 0, 1, 2, ...: an index beyond the pickle's length
     * cannot come from it, and bounding it bounds the memo's size by the input's. */
    if (idx >= m->len)
        return CORRUPT(m, "memo index %zu out of range", idx);
    qe_pv **memo = grow(m, m->memo, &m->memo_cap, idx + 1, sizeof *memo);
    if (!memo)
        return out_of_memory(m);
    m->memo = memo;
    if (!m->memo[idx])
        m->memo_count++;
    m->memo[idx] = v;
    return 0;
}

static int memo_get(vm *m, size_t idx)
{
    if (idx >= m->memo_cap || !m->memo[idx])
        return CORRUPT(m, "memo index %zu out of range", idx);
    return push(m, m->memo[idx]);
}

/* --------------------------------------------------------------------------- the loop */

static int step(vm *m, int op, int *stop)
{
    const uint8_t *b = m->buf;
    qe_pv *v, *k, *d;
    size_t first = 0, n = 0;
    switch (op) {
    case 0x80:   /* PROTO */
        if (need(m, 1))
            return -1;
        if (b[m->pos] < 2 || b[m->pos] > 5)
            return CORRUPT(m, "unsupported pickle protocol %d", b[m->pos]);
        m->pos++;
        return 0;
    case 0x95:   /* FRAME (protocol 4): only a length hint */
        if (need(m, 8))
            return -1;
        m->pos += 8;
        return 0;
    case '.':    /* STOP */
        if (m->nmarks || m->sp != 1)
            return CORRUPT(m, "STOP with %zu values and %zu marks on the stack", m->sp, m->nmarks);
        *stop = 1;
        return 0;
    case '(': {  /* MARK */
        size_t *marks = grow(m, m->marks, &m->marks_cap, m->nmarks + 1, sizeof *marks);
        if (!marks)
            return out_of_memory(m);
        m->marks = marks;
        m->marks[m->nmarks++] = m->sp;
        return 0;
    }
    case ')':
        return push(m, &v_empty_tuple);
    case 't':    /* TUPLE */
        if (pop_mark(m, &first, &n))
            return -1;
        return push(m, new_seq(m, QE_PV_TUPLE, m->stack + first, n));
    case 0x85: case 0x86: case 0x87:   /* TUPLE1..3 */
        n = (size_t)(op - 0x84);
        if (m->sp - mark_base(m) < n)
            return CORRUPT(m, "stack underflow");
        m->sp -= n;
        return push(m, new_seq(m, QE_PV_TUPLE, m->stack + m->sp, n));
    case ']':
        return push(m, new_seq(m, QE_PV_LIST, NULL, 0));
    case 'a':    /* APPEND */
        if (pop(m, &v) || top(m, &d))
            return -1;
        if (d->kind != QE_PV_LIST)
            return CORRUPT(m, "APPEND to a %s", kind_name(d));
        return seq_append(m, d, &v, 1);
    case 'e':    /* APPENDS */
        if (pop_mark(m, &first, &n) || top(m, &d))
            return -1;
        if (d->kind != QE_PV_LIST)
            return CORRUPT(m, "APPENDS to a %s", kind_name(d));
        return seq_append(m, d, m->stack + first, n);
    case '}':
        return push(m, new_seq(m, QE_PV_DICT, NULL, 0));
    case 's': {  /* SETITEM */
        if (pop(m, &v) || pop(m, &k) || top(m, &d))
            return -1;
        qe_pv *kv[2] = {k, v};
        return set_items(m, d, kv, 2);
    }
    case 'u':    /* SETITEMS */
        if (pop_mark(m, &first, &n) || top(m, &d))
            return -1;
        return set_items(m, d, m->stack + first, n);
    case 'X':    /* BINUNICODE */
        if (need(m, 4))
            return -1;
        n = rd_u32(b + m->pos);
        m->pos += 4;
        return push_str(m, n);
    case 0x8c:   /* SHORT_BINUNICODE */
        if (need(m, 1))
            return -1;
        n = b[m->pos++];
        return push_str(m, n);
    case 'J':    /* BININT */
        if (need(m, 4))
            return -1;
        m->pos += 4;
        return push(m, new_int(m, (int32_t)rd_u32(b + m->pos - 4)));
    case 'K':    /* BININT1 */
        if (need(m, 1))
            return -1;
        return push(m, new_int(m, b[m->pos++]));
    case 'M':    /* BININT2 */
        if (need(m, 2))
            return -1;
        m->pos += 2;
        return push(m, new_int(m, b[m->pos - 2] | b[m->pos - 1] << 8));
    case 0x8a: { /* LONG1: little-endian two's complement */
        if (need(m, 1))
            return -1;
        n = b[m->pos++];
        if (n > 8)
            return CORRUPT(m, "LONG1 integer wider than 64 bits");
        if (need(m, n))
            return -1;
        uint64_t u = 0;
        for (size_t i = 0; i < n; i++)
            u |= (uint64_t)b[m->pos + i] << (8 * i);
        if (n && n < 8 && (b[m->pos + n - 1] & 0x80))
            u |= ~(uint64_t)0 << (8 * n);
        m->pos += n;
        int64_t i64;
        memcpy(&i64, &u, sizeof i64);
        return push(m, new_int(m, i64));
    }
    case 'G': {  /* BINFLOAT: big-endian IEEE double */
        if (need(m, 8))
            return -1;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = u << 8 | b[m->pos + i];
        m->pos += 8;
        if (!(v = new_value(m, QE_PV_FLOAT)))
            return out_of_memory(m);
        memcpy(&v->u.f, &u, sizeof u);
        return push(m, v);
    }
    case 'N':
        return push(m, &v_none);
    case 0x88:
        return push(m, &v_true);
    case 0x89:
        return push(m, &v_false);
    case 'q':    /* BINPUT */
        if (need(m, 1))
            return -1;
        return memo_put(m, b[m->pos++]);
    case 'r':    /* LONG_BINPUT */
        if (need(m, 4))
            return -1;
        m->pos += 4;
        return memo_put(m, rd_u32(b + m->pos - 4));
    case 0x94:   /* MEMOIZE */
        return memo_put(m, m->memo_count);
    case 'h':    /* BINGET */
        if (need(m, 1))
            return -1;
        return memo_get(m, b[m->pos++]);
    case 'j':    /* LONG_BINGET */
        if (need(m, 4))
            return -1;
        m->pos += 4;
        return memo_get(m, rd_u32(b + m->pos - 4));
    case 'c':
        return op_global(m);
    case 0x93:
        return op_stack_global(m);
    case 'R':
        return op_reduce(m);
    case 'Q':
        return op_persid(m);
    case 'b':
        return op_build(m);
    default:
        return REJECT(m, "forbidden pickle opcode %s (0x%02x) at byte %zu",
                      opcode_names[op] ? opcode_names[op] : "unknown", op, m->op_pos);
    }
}

int qe_pickle_run(qe_pickle *p, const uint8_t *buf, size_t len, qe_pid_form pid, const qe_pv **out,
                  size_t *used, char *err)
{
    vm m = {.p = p, .buf = buf, .len = len, .pid = pid, .err = err};
    int stop = 0, rc = 0;
    while (!stop) {
        m.op_pos = m.pos;
        if (need(&m, 1)) {
            rc = -1;
            break;
        }
        int op = buf[m.pos++];
        if ((rc = step(&m, op, &stop)) != 0)
            break;
    }
    if (rc == 0) {
        *out = m.stack[0];
        *used = m.pos;
    }
    /* The VM-local arrays are gone now; give their charge back for the next run. */
    p->budget += (m.stack_cap * sizeof *m.stack) + (m.marks_cap * sizeof *m.marks) +
                 (m.memo_cap * sizeof *m.memo);
    free(m.stack);
    free(m.marks);
    free(m.memo);
    return rc;
}
