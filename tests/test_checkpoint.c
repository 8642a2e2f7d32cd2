/*
 * test_checkpoint.c - checkpoint readers, the whitelist pickle VM, the torch writer and SHA-256
 * (spec preprocessing-and-formats.md §7).
 *
 * Expected values come from the shared folder: the format samples' JSON (written from torch),
 * the synthetic models' sha256 table in models/README.md, and torchvision's ResNet layout
 * rebuilt here from the architecture. Hostile files are built in memory by this program.
 */
#include "pickle.h"
#include "qe_util.h"
#include "qtest.h"
#include "sha256.h"
#include "statedict.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <zip.h>

#define MAX_FILE ((size_t)1 << 30)

/* --------------------------------------------------------------------------- helpers */

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void b_put(bytes *b, const void *d, size_t n)
{
    if (b->cap - b->n < n) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = qe_realloc(b->p, b->cap);
    }
    if (n)
        memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void b_u8(bytes *b, int v)
{
    uint8_t c = (uint8_t)v;
    b_put(b, &c, 1);
}

static void b_le(bytes *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        b_u8(b, (int)(v >> (8 * i)) & 0xff);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)   /* xorshift64*: fixed seed, reproducible mutations */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static uint8_t *read_all(const char *path, size_t *n)
{
    uint8_t *d = NULL;
    char err[QE_ERR_LEN];
    if (qe_read_file(path, MAX_FILE, &d, n, err)) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    return d;
}

static const char *tmp_path(const char *name)
{
    mkdir(qtest_build("tmp"), 0755);
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/ckpt_%s", qtest_build("tmp"), name);
    return buf;
}

static void hex(const void *d, size_t n, char *out)
{
    const uint8_t *p = d;
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = 0;
}

static size_t tensor_bytes(const qe_tensor *t) { return (size_t)t->numel * qe_dtype_size(t->dtype); }

static int same_statedict(const qe_statedict *a, const qe_statedict *b)
{
    if (a->count != b->count)
        return 0;
    for (int i = 0; i < a->count; i++) {
        const qe_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        if (strcmp(x->name, y->name) || x->dtype != y->dtype || x->ndim != y->ndim || x->numel != y->numel ||
            memcmp(x->shape, y->shape, sizeof x->shape) || memcmp(x->data, y->data, tensor_bytes(x)))
            return 0;
    }
    return 1;
}

/* Loads from memory and expects an error whose text contains `want` (NULL: any error). */
static int rejects(const uint8_t *buf, size_t len, const char *want, char *got)
{
    qe_statedict sd;
    got[0] = 0;
    if (qe_statedict_load_mem(buf, len, &sd, got) == 0) {
        qe_statedict_free(&sd);
        snprintf(got, QE_ERR_LEN, "(loaded)");
        return 0;
    }
    return got[0] && sd.count == 0 && sd.tensors == NULL && (!want || strstr(got, want));
}

#define CHECK_REJECTS(buf, len, want)                                                  \
    do {                                                                               \
        char e_[QE_ERR_LEN];                                                           \
        CHECKF(rejects((buf), (len), (want), e_), "expected '%s', got '%s'", (want) ? (want) : "*", e_); \
    } while (0)

/* --------------------------------------------------------------------------- sha256 */

static void test_sha256(void)
{
    /* FIPS 180-4 example vectors. */
    char h[65];
    qe_sha256_hex("abc", 3, h);
    CHECK(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    qe_sha256_hex("", 0, h);
    CHECK(strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    qe_sha256_hex(m448, strlen(m448), h);
    CHECK(strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);

    /* One million 'a', fed in uneven pieces to exercise the block buffering. */
    qe_sha256 s;
    uint8_t d[32], chunk[1000];
    memset(chunk, 'a', sizeof chunk);
    qe_sha256_init(&s);
    size_t left = 1000000, step = 1;
    while (left) {
        size_t n = step < left ? step : left;
        qe_sha256_update(&s, chunk, n);
        left -= n;
        step = step * 7 % 997 + 1;
    }
    qe_sha256_final(&s, d);
    hex(d, 32, h);
    CHECK(strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);

    const char *path = tmp_path("sha.txt");
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    fputs("abc", f);
    fclose(f);
    char err[QE_ERR_LEN];
    CHECK(qe_sha256_file(path, h, err) == 0 && strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    remove(path);
    CHECK(qe_sha256_file(tmp_path("does-not-exist"), h, err) == -1 && err[0]);
}

/* --------------------------------------------------------------------------- format samples */

static void flatten(json_t *v, json_t **out, size_t *n, size_t cap)
{
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            flatten(json_array_get(v, i), out, n, cap);
    } else if (*n < cap) {
        out[(*n)++] = v;
    }
}

/* Every tensor of the sample against legacy-format-sample.json: names in file order, dtype,
 * shape, values, the little-endian bytes and their sha256. */
static void check_sample(const qe_statedict *sd, json_t *tensors)
{
    CHECK(sd->count == (int)json_object_size(tensors));
    int i = 0;
    const char *name;
    json_t *e;
    json_object_foreach(tensors, name, e) {
        REQUIRE(i < sd->count);
        const qe_tensor *t = &sd->tensors[i++];
        CHECKF(strcmp(t->name, name) == 0, "entry %d is '%s', expected '%s'", i - 1, t->name, name);
        t = qe_statedict_find(sd, name);
        REQUIRE(t);
        CHECKF(strcmp(qe_dtype_name(t->dtype), json_string_value(json_object_get(e, "dtype"))) == 0, "%s dtype", name);
        json_t *shape = json_object_get(e, "shape");
        CHECK(t->ndim == (int)json_array_size(shape));
        for (int d = 0; d < t->ndim && d < (int)json_array_size(shape); d++)
            CHECK(t->shape[d] == json_integer_value(json_array_get(shape, (size_t)d)));

        char *h = qe_malloc(2 * tensor_bytes(t) + 1), sha[65];
        hex(t->data, tensor_bytes(t), h);
        CHECKF(strcmp(h, json_string_value(json_object_get(e, "values_le_hex"))) == 0, "%s bytes", name);
        free(h);
        qe_sha256_hex(t->data, tensor_bytes(t), sha);
        CHECKF(strcmp(sha, json_string_value(json_object_get(e, "sha256_le"))) == 0, "%s sha256", name);

        json_t *vals[64];
        size_t nv = 0;
        flatten(json_object_get(e, "values"), vals, &nv, 64);
        REQUIRE((int64_t)nv == t->numel);
        float *f = qe_malloc((size_t)t->numel * sizeof *f);
        qe_tensor_to_f32(t, f);
        for (size_t k = 0; k < nv; k++) {
            if (t->dtype == QE_DT_I64) {
                CHECK(((const int64_t *)t->data)[k] == json_integer_value(vals[k]));
                CHECK(f[k] == (float)json_integer_value(vals[k]));
            } else if (t->dtype == QE_DT_F64) {
                CHECK(((const double *)t->data)[k] == json_number_value(vals[k]));
            } else {
                CHECKF(f[k] == (float)json_number_value(vals[k]), "%s[%zu] = %g", name, k, f[k]);
            }
        }
        free(f);
    }
}

static void test_samples(void)
{
    json_error_t je;
    json_t *root = json_load_file(qtest_shared("models/legacy-format-sample.json"), 0, &je);
    REQUIRE(root);
    json_t *tensors = json_object_get(root, "tensors");
    REQUIRE(json_object_size(tensors) == 10);

    static const char *files[] = {"models/zip-format-sample.pth", "models/legacy-format-sample.pth"};
    static const char *formats[] = {"zip", "legacy"};
    qe_statedict sd[2];
    char err[QE_ERR_LEN];
    for (int i = 0; i < 2; i++) {
        int rc = qe_statedict_load(qtest_shared(files[i]), MAX_FILE, &sd[i], err);
        CHECKF(rc == 0, "%s", err);
        if (rc)
            continue;
        CHECK(strcmp(sd[i].format, formats[i]) == 0);
        check_sample(&sd[i], tensors);
        qe_statedict_free(&sd[i]);
    }
    /* The size limit is applied before reading. */
    CHECK(qe_statedict_load(qtest_shared(files[0]), 100, &sd[0], err) == -1 && strstr(err, "too large"));
    json_decref(root);
}

/* --------------------------------------------------------------------------- dtype conversion */

static void test_to_f32(void)
{
    /* binary16: zero, smallest subnormal 2^-24, largest subnormal, -2, max 65504, +inf, NaN. */
    uint16_t h[] = {0x0000, 0x0001, 0x03ff, 0xc000, 0x7bff, 0x7c00, 0x7e00, 0x8001};
    float want[] = {0.0f, ldexpf(1, -24), ldexpf(1023, -24), -2.0f, 65504.0f, INFINITY, NAN, -ldexpf(1, -24)};
    float out[8];
    qe_tensor t = {.dtype = QE_DT_F16, .ndim = 1, .shape = {8}, .numel = 8, .data = h};
    qe_tensor_to_f32(&t, out);
    for (int i = 0; i < 8; i++)
        CHECKF(isnan(want[i]) ? isnan(out[i]) : out[i] == want[i] && signbit(out[i]) == signbit(want[i]),
               "f16 %04x -> %g", h[i], out[i]);

    uint16_t bf[] = {0x3f80, 0xc0a0, 0x0001, 0x7f80};    /* 1, -5, smallest subnormal, inf */
    float bw[] = {1.0f, -5.0f, ldexpf(1, -133), INFINITY};
    t = (qe_tensor){.dtype = QE_DT_BF16, .ndim = 1, .shape = {4}, .numel = 4, .data = bf};
    qe_tensor_to_f32(&t, out);
    for (int i = 0; i < 4; i++)
        CHECK(out[i] == bw[i]);

    double dv[] = {0.1, -1e300, 16777217.0};   /* rounds to nearest float; overflow -> -inf */
    t = (qe_tensor){.dtype = QE_DT_F64, .ndim = 1, .shape = {3}, .numel = 3, .data = dv};
    qe_tensor_to_f32(&t, out);
    CHECK(out[0] == 0.1f && out[1] == -INFINITY && out[2] == 16777216.0f);

    int64_t iv[] = {-3, 100, (int64_t)1 << 40};
    t = (qe_tensor){.dtype = QE_DT_I64, .ndim = 1, .shape = {3}, .numel = 3, .data = iv};
    qe_tensor_to_f32(&t, out);
    CHECK(out[0] == -3.0f && out[1] == 100.0f && out[2] == ldexpf(1, 40));
    int32_t i32[] = {-7, 1 << 30};
    t = (qe_tensor){.dtype = QE_DT_I32, .ndim = 1, .shape = {2}, .numel = 2, .data = i32};
    qe_tensor_to_f32(&t, out);
    CHECK(out[0] == -7.0f && out[1] == ldexpf(1, 30));
    int16_t i16[] = {-32768, 5};
    t = (qe_tensor){.dtype = QE_DT_I16, .ndim = 1, .shape = {2}, .numel = 2, .data = i16};
    qe_tensor_to_f32(&t, out);
    CHECK(out[0] == -32768.0f && out[1] == 5.0f);
    int8_t i8[] = {-128, 127};
    t = (qe_tensor){.dtype = QE_DT_I8, .ndim = 1, .shape = {2}, .numel = 2, .data = i8};
    qe_tensor_to_f32(&t, out);
    CHECK(out[0] == -128.0f && out[1] == 127.0f);
    uint8_t u8[] = {255, 0, 1};
    t = (qe_tensor){.dtype = QE_DT_U8, .ndim = 1, .shape = {3}, .numel = 3, .data = u8};
    qe_tensor_to_f32(&t, out);
    CHECK(out[0] == 255.0f && out[1] == 0.0f && out[2] == 1.0f);
    t.dtype = QE_DT_BOOL;
    qe_tensor_to_f32(&t, out);
    CHECK(out[0] == 1.0f && out[1] == 0.0f && out[2] == 1.0f);
    CHECK(qe_dtype_size(QE_DT_BF16) == 2 && qe_dtype_size(QE_DT_I64) == 8 && strcmp(qe_dtype_name(QE_DT_U8), "uint8") == 0);
}

/* --------------------------------------------------------------------------- synthetic ResNets */


/* torchvision's resnet18 / resnet50 state_dict() layout, rebuilt from the architecture. */
typedef struct lentry {
    char name[64];
    int ndim;
    int64_t shape[4];
} lentry;

typedef struct layout {
    lentry e[400];
    int n;
} layout;

static void add(layout *l, const char *prefix, const char *suffix, int ndim, int64_t a, int64_t b, int64_t c,
                int64_t d)
{
    lentry *e = &l->e[l->n++];
    snprintf(e->name, sizeof e->name, "%s%s", prefix, suffix);
    e->ndim = ndim;
    e->shape[0] = a, e->shape[1] = b, e->shape[2] = c, e->shape[3] = d;
}

static void add_conv(layout *l, const char *p, int64_t cout, int64_t cin, int64_t k)
{
    char name[64];
    snprintf(name, sizeof name, "%s.weight", p);
    add(l, name, "", 4, cout, cin, k, k);
}

static void add_bn(layout *l, const char *p, int64_t c)
{
    static const char *vec[] = {".weight", ".bias", ".running_mean", ".running_var"};
    for (int i = 0; i < 4; i++)
        add(l, p, vec[i], 1, c, 0, 0, 0);
    add(l, p, ".num_batches_tracked", 0, 0, 0, 0, 0);
}

static void torchvision_resnet(layout *l, int bottleneck)
{
    static const int blocks[2][4] = {{2, 2, 2, 2}, {3, 4, 6, 3}};
    int64_t exp = bottleneck ? 4 : 1, inplanes = 64;
    l->n = 0;
    add_conv(l, "conv1", 64, 3, 7);
    add_bn(l, "bn1", 64);
    for (int li = 0; li < 4; li++) {
        int64_t planes = 64 << li;
        for (int b = 0; b < blocks[bottleneck][li]; b++) {
            char p[64], q[80];
#define NAME(s) (snprintf(q, sizeof q, "%s%s", p, s), q)
            snprintf(p, sizeof p, "layer%d.%d.", li + 1, b);
            if (!bottleneck) {
                add_conv(l, NAME("conv1"), planes, inplanes, 3);
                add_bn(l, NAME("bn1"), planes);
                add_conv(l, NAME("conv2"), planes, planes, 3);
                add_bn(l, NAME("bn2"), planes);
            } else {
                add_conv(l, NAME("conv1"), planes, inplanes, 1);
                add_bn(l, NAME("bn1"), planes);
                add_conv(l, NAME("conv2"), planes, planes, 3);
                add_bn(l, NAME("bn2"), planes);
                add_conv(l, NAME("conv3"), planes * exp, planes, 1);
                add_bn(l, NAME("bn3"), planes * exp);
            }
            if (b == 0 && (li > 0 || inplanes != planes * exp)) {
                add_conv(l, NAME("downsample.0"), planes * exp, inplanes, 1);
                add_bn(l, NAME("downsample.1"), planes * exp);
            }
#undef NAME
            inplanes = planes * exp;
        }
    }
    add(l, "fc.weight", "", 2, 1000, 512 * exp, 0, 0);
    add(l, "fc.bias", "", 1, 1000, 0, 0, 0);
}

static void check_resnet(const qe_statedict *sd, int bottleneck)
{
    static layout l;
    torchvision_resnet(&l, bottleneck);
    CHECK(l.n == (bottleneck ? 320 : 122));
    REQUIRE(sd->count == l.n);
    for (int i = 0; i < l.n; i++) {
        const qe_tensor *t = &sd->tensors[i];
        int nbt = strstr(l.e[i].name, "num_batches_tracked") != NULL;
        CHECKF(strcmp(t->name, l.e[i].name) == 0, "entry %d: '%s', expected '%s'", i, t->name, l.e[i].name);
        CHECK(t->dtype == (nbt ? QE_DT_I64 : QE_DT_F32));
        if (nbt) {
            /* torchvision's buffer is 0-d; make_synthetic.py passes it through
             * np.ascontiguousarray, which makes it shape (1,) (torch loads either). */
            CHECKF(t->numel == 1 && (t->ndim == 0 || (t->ndim == 1 && t->shape[0] == 1)), "%s", t->name);
            CHECK(*(const int64_t *)t->data == 100);
        } else {
            CHECKF(t->ndim == l.e[i].ndim && memcmp(t->shape, l.e[i].shape, (size_t)t->ndim * sizeof(int64_t)) == 0,
                   "%s: ndim %d [%lld %lld ...]", t->name, t->ndim, (long long)t->shape[0], (long long)t->shape[1]);
        }
    }
}

static const char *readme_sha(const char *file, char out[65])
{
    size_t n;
    char *txt = (char *)read_all(qtest_shared("models/README.md"), &n);
    char needle[64];
    out[0] = 0;
    snprintf(needle, sizeof needle, "| %s |", file);
    const char *line = txt ? strstr(txt, needle) : NULL;
    const char *tick = line ? strchr(line, '`') : NULL;
    if (tick && strlen(tick) > 65) {
        memcpy(out, tick + 1, 64);
        out[64] = 0;
    }
    free(txt);
    return out;
}

static void test_resnets(void)
{
    char err[QE_ERR_LEN];
    qe_statedict r18, r50, st;
    int rc = qe_statedict_load(qtest_build("models/resnet18.pth"), MAX_FILE, &r18, err);
    CHECKF(rc == 0, "%s", err);
    if (rc)
        return;
    CHECK(strcmp(r18.format, "zip") == 0);
    check_resnet(&r18, 0);

    double t0 = qe_now();
    rc = qe_statedict_load(qtest_build("models/resnet50.pth"), MAX_FILE, &r50, err);
    double dt = qe_now() - t0;
    CHECKF(rc == 0, "%s", err);
    if (rc == 0) {
        fprintf(stderr, "resnet50.pth (100 MB) loaded in %.0f ms\n", dt * 1e3);
        CHECKF(dt < 10.0, "loading took %.1f s", dt);   /* generous: the machine is shared */
        check_resnet(&r50, 1);
        qe_statedict_free(&r50);
    }

    /* safetensors holds the same tensors (in sorted key order). */
    rc = qe_statedict_load(qtest_build("models/resnet18.safetensors"), MAX_FILE, &st, err);
    CHECKF(rc == 0, "%s", err);
    if (rc == 0) {
        CHECK(strcmp(st.format, "safetensors") == 0 && st.count == r18.count);
        for (int i = 0; i < r18.count; i++) {
            const qe_tensor *a = &r18.tensors[i], *b = qe_statedict_find(&st, a->name);
            CHECKF(b && b->dtype == a->dtype && b->ndim == a->ndim && b->numel == a->numel &&
                       memcmp(a->shape, b->shape, sizeof a->shape) == 0 &&
                       memcmp(a->data, b->data, tensor_bytes(a)) == 0,
                   "safetensors differs at '%s'", a->name);
        }
        qe_statedict_free(&st);
    }

    /* Writing it back gives the bytes torch.save (and make_synthetic.py) writes. */
    char want[65], got[65];
    readme_sha("resnet18.pth", want);
    CHECK(strlen(want) == 64);
    const char *out = tmp_path("resave18.pth");
    t0 = qe_now();
    rc = qe_statedict_save_torch(&r18, out, err);
    dt = qe_now() - t0;
    CHECKF(rc == 0, "%s", err);
    fprintf(stderr, "resnet18 saved in %.0f ms\n", dt * 1e3);
    CHECK(qe_sha256_file(out, got, err) == 0);
    CHECKF(strcmp(got, want) == 0, "saved sha256 %s, README says %s", got, want);
    remove(out);

    /* Truncated copies of a real checkpoint. */
    size_t n;
    uint8_t *buf = read_all(qtest_build("models/resnet18.pth"), &n);
    REQUIRE(buf);
    size_t cuts[] = {0, 1, 4, 30, 64, 1000, 100000, n / 3, n / 2, n - 100, n - 22, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        CHECK_REJECTS(buf, cuts[i], NULL);
    free(buf);
    qe_statedict_free(&r18);
}

/* The sample's views come back as contiguous tensors; saving and reloading keeps them. */
static void test_save_roundtrip(void)
{
    char err[QE_ERR_LEN];
    qe_statedict a, b;
    REQUIRE(qe_statedict_load(qtest_shared("models/zip-format-sample.pth"), MAX_FILE, &a, err) == 0);
    const char *out = tmp_path("roundtrip.pth");
    CHECKF(qe_statedict_save_torch(&a, out, err) == 0, "%s", err);
    CHECKF(qe_statedict_load(out, MAX_FILE, &b, err) == 0, "%s", err);
    CHECK(same_statedict(&a, &b));
    qe_statedict_free(&b);
    CHECK(qe_statedict_save_torch(&a, "/nonexistent-dir/x.pth", err) == -1 && err[0]);
    remove(out);
    qe_statedict_free(&a);
}

/* --------------------------------------------------------------------------- pickle builder */

static void pk_str(bytes *b, const char *s)
{
    b_u8(b, 'X');
    b_le(b, strlen(s), 4);
    b_put(b, s, strlen(s));
}

static void pk_int(bytes *b, int64_t v)
{
    b_u8(b, 0x8a);
    b_u8(b, 8);
    b_le(b, (uint64_t)v, 8);
}

static void pk_global(bytes *b, const char *mod, const char *name)
{
    b_u8(b, 'c');
    b_put(b, mod, strlen(mod));
    b_u8(b, '\n');
    b_put(b, name, strlen(name));
    b_u8(b, '\n');
}

static void pk_ints(bytes *b, const int64_t *v, int n)
{
    b_u8(b, '(');
    for (int i = 0; i < n; i++)
        pk_int(b, v[i]);
    b_u8(b, 't');
}

typedef struct tdesc {
    const char *name, *cls, *key;
    int64_t numel, offset;
    int ndim;
    int64_t size[4], stride[4];
} tdesc;

/* key, _rebuild_tensor_v2(('storage', cls, key, 'cpu', numel[, None]), offset, size, stride,
 * False, OrderedDict()) - the shape of §7.1 / §7.2 without memo sharing. */
static void pk_tensor(bytes *b, const tdesc *t, int legacy)
{
    pk_str(b, t->name);
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    b_put(b, "((", 2);
    pk_str(b, "storage");
    pk_global(b, "torch", t->cls);
    pk_str(b, t->key);
    pk_str(b, "cpu");
    pk_int(b, t->numel);
    if (legacy)
        b_u8(b, 'N');
    b_put(b, "tQ", 2);
    pk_int(b, t->offset);
    pk_ints(b, t->size, t->ndim);
    pk_ints(b, t->stride, t->ndim);
    b_u8(b, 0x89);
    pk_global(b, "collections", "OrderedDict");
    b_put(b, ")RtR", 4);
}

/* Pushes OrderedDict(t[0..n)) (no PROTO / STOP). */
static void pk_odict(bytes *b, const tdesc *t, int n, int legacy)
{
    pk_global(b, "collections", "OrderedDict");
    b_put(b, ")R(", 3);
    for (int i = 0; i < n; i++)
        pk_tensor(b, &t[i], legacy);
    b_u8(b, 'u');
}

static bytes pk_statedict(const tdesc *t, int n, int legacy)
{
    bytes b = {0};
    b_put(&b, "\x80\x02", 2);
    pk_odict(&b, t, n, legacy);
    b_u8(&b, '.');
    return b;
}

typedef struct sdesc {
    const char *key;
    int64_t numel;      /* the count written before the bytes */
    size_t nbytes;
} sdesc;

/* §7.2 around an object pickle: storage i holds bytes (k * 4 + i) & 0xff. */
static bytes legacy_file(const bytes *obj, const sdesc *s, int ns, int little)
{
    bytes f = {0};
    b_put(&f, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e", 15);
    b_put(&f, "\x80\x02M\xe9\x03.", 6);
    b_put(&f, "\x80\x02}(", 4);
    pk_str(&f, "little_endian");
    b_u8(&f, little ? 0x88 : 0x89);
    b_put(&f, "u.", 2);
    b_put(&f, obj->p, obj->n);
    b_put(&f, "\x80\x02](", 4);
    for (int i = 0; i < ns; i++)
        pk_str(&f, s[i].key);
    b_put(&f, "e.", 2);
    for (int i = 0; i < ns; i++) {
        b_le(&f, (uint64_t)s[i].numel, 8);
        for (size_t k = 0; k < s[i].nbytes; k++)
            b_u8(&f, (int)(k * 4 + (size_t)i) & 0xff);
    }
    return f;
}

/* A legacy file of one float32 storage "0" of 12 elements 0..11 and the given tensors. */
static bytes legacy_f32(const tdesc *t, int n)
{
    bytes obj = pk_statedict(t, n, 1), f = {0};
    sdesc s = {"0", 12, 48};
    f = legacy_file(&obj, &s, 1, 1);
    /* overwrite the pattern with float32 0, 1, ..., 11 */
    for (int k = 0; k < 12; k++) {
        float v = (float)k;
        memcpy(f.p + f.n - 48 + 4 * k, &v, 4);
    }
    free(obj.p);
    return f;
}

#define T1(nm, cls, key, numel, off, sz, st) \
    {nm, cls, key, numel, off, 1, {sz}, {st}}

static void test_legacy_handcrafted(void)
{
    char err[QE_ERR_LEN];
    qe_statedict sd;

    /* Positive control: a strided view (offset 1, stride 3) of storage 0..11. */
    tdesc ok = T1("w", "FloatStorage", "0", 12, 1, 4, 3);
    bytes f = legacy_f32(&ok, 1);
    int rc = qe_statedict_load_mem(f.p, f.n, &sd, err);
    CHECKF(rc == 0, "%s", err);
    if (rc == 0) {
        const float *v = sd.tensors[0].data;
        CHECK(sd.count == 1 && strcmp(sd.format, "legacy") == 0 && v[0] == 1 && v[1] == 4 && v[2] == 7 && v[3] == 10);
        qe_statedict_free(&sd);
    }
    free(f.p);

    /* little_endian False (patch the sample's NEWTRUE), and the same via the builder. */
    size_t n;
    uint8_t *leg = read_all(qtest_shared("models/legacy-format-sample.pth"), &n);
    REQUIRE(leg);
    uint8_t *le = memmem(leg, n, "little_endian", 13);
    REQUIRE(le && le[15] == 0x88);   /* the string, BINPUT n, then NEWTRUE */
    le[15] = 0x89;
    CHECK_REJECTS(leg, n, "little_endian");
    free(leg);
    bytes obj = pk_statedict(&ok, 1, 1);
    sdesc s12 = {"0", 12, 48};
    f = legacy_file(&obj, &s12, 1, 0);
    CHECK_REJECTS(f.p, f.n, "little_endian");
    free(f.p);
    free(obj.p);

    struct { tdesc t[2]; int n; const char *want; } bad[] = {
        {{T1("w", "FloatStorage", "0", 12, 1, 4, 4)}, 1, "exceeds its storage"},   /* 1 + 3*4 = 13 */
        {{T1("w", "FloatStorage", "0", 12, 12, 1, 1)}, 1, "exceeds its storage"},
        {{T1("w", "FloatStorage", "0", 12, 0, -1, 1)}, 1, "negative size"},
        {{T1("w", "FloatStorage", "0", 12, 0, 2, -1)}, 1, "negative size or stride"},
        {{T1("w", "FloatStorage", "0", 12, -1, 1, 1)}, 1, "negative storage offset"},
        {{T1("w", "FloatStorage", "0", 12, 0, (int64_t)1 << 62, (int64_t)1 << 62)}, 1, "overflows"},
        {{{"w", "FloatStorage", "0", 12, 0, 2, {(int64_t)1 << 40, (int64_t)1 << 40}, {0, 0}}}, 1, "overflows"},
        {{T1("w", "FloatStorage", "0", 12, 0, (int64_t)1 << 31, 0)}, 1, "expand the data"},
        /* a huge storage that is referenced but absent must not raise the expansion budget */
        {{T1("w", "FloatStorage", "0", 12, 0, (int64_t)1 << 31, 0),
          T1("v", "FloatStorage", "1", (int64_t)1 << 40, 0, 1, 1)}, 2, "expand the data"},
        {{T1("w", "FloatStorage", "0", (int64_t)1 << 62, 0, 1, 1)}, 1, "size overflows"},
        {{T1("w", "FloatStorage", "1", 12, 0, 4, 1)}, 1, "never referenced"},
        {{T1("w", "FloatStorage", "0", 12, 0, 4, 1), T1("v", "FloatStorage", "1", 3, 0, 3, 1)}, 2, "missing"},
        {{T1("w", "FloatStorage", "0", 12, 0, 4, 1), T1("v", "LongStorage", "0", 12, 0, 3, 1)}, 2, "referenced as"},
        {{T1("w", "FloatStorage", "0", 12, 0, 4, 1), T1("w", "FloatStorage", "0", 12, 4, 4, 1)}, 2,
         "duplicate tensor name 'w'"},
        {{T1("w", "Float16Storage", "0", 12, 0, 4, 1)}, 1, "forbidden global 'torch Float16Storage'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = legacy_f32(bad[i].t, bad[i].n);
        CHECK_REJECTS(f.p, f.n, bad[i].want);
        free(f.p);
    }

    /* The count before a storage's bytes disagrees with the references. */
    obj = pk_statedict(&ok, 1, 1);
    sdesc s11 = {"0", 11, 44};
    f = legacy_file(&obj, &s11, 1, 1);
    CHECK_REJECTS(f.p, f.n, "holds 11 elements");
    free(f.p);
    free(obj.p);

    /* A zip-form (5-field) persistent id in a legacy file. */
    obj = pk_statedict(&ok, 1, 0);
    f = legacy_file(&obj, &s12, 1, 1);
    CHECK_REJECTS(f.p, f.n, "5 fields");
    free(f.p);
    free(obj.p);

    /* {"state_dict": OrderedDict(...), "epoch": 3} is unwrapped; BUILD on the inner dict is the
     * state dict's _metadata and accepted. */
    obj = (bytes){0};
    b_put(&obj, "\x80\x02}(", 4);
    pk_str(&obj, "state_dict");
    pk_odict(&obj, &ok, 1, 1);
    b_put(&obj, "}(", 2);
    pk_str(&obj, "_metadata");
    b_put(&obj, "}ub", 3);
    pk_str(&obj, "epoch");
    b_put(&obj, "K\x03u.", 4);
    f = legacy_file(&obj, &s12, 1, 1);
    rc = qe_statedict_load_mem(f.p, f.n, &sd, err);
    CHECKF(rc == 0, "%s", err);
    if (rc == 0) {
        CHECK(sd.count == 1 && strcmp(sd.tensors[0].name, "w") == 0);
        qe_statedict_free(&sd);
    }
    free(f.p);
    free(obj.p);

    /* An OrderedDict wrapper that BUILDs itself while the tensors sit one level down. */
    obj = (bytes){0};
    b_put(&obj, "\x80\x02", 2);
    pk_global(&obj, "collections", "OrderedDict");
    b_put(&obj, ")R(", 3);
    pk_str(&obj, "model");
    pk_odict(&obj, &ok, 1, 1);
    pk_str(&obj, "step");
    b_put(&obj, "K\x01u}(", 5);
    pk_str(&obj, "_metadata");
    b_put(&obj, "}ub.", 4);
    f = legacy_file(&obj, &s12, 1, 1);
    CHECK_REJECTS(f.p, f.n, "BUILD on an object other than the state dict");
    free(f.p);
    free(obj.p);

    /* Top level that is not a dict of tensors. */
    obj = (bytes){0};
    b_put(&obj, "\x80\x02N.", 4);
    f = legacy_file(&obj, NULL, 0, 1);
    CHECK_REJECTS(f.p, f.n, "not a dict");
    free(f.p);
    free(obj.p);
    obj = (bytes){0};
    b_put(&obj, "\x80\x02}(", 4);
    pk_str(&obj, "a");
    b_put(&obj, "K\x01u.", 4);
    f = legacy_file(&obj, NULL, 0, 1);
    CHECK_REJECTS(f.p, f.n, "entry 'a' is not a tensor");
    free(f.p);
    free(obj.p);
}

/* --------------------------------------------------------------------------- the VM itself */

static int vm_rejects(const void *pkl, size_t n, qe_pid_form pid, const char *want, char *got)
{
    qe_pickle p;
    const qe_pv *v;
    size_t used;
    qe_pickle_init(&p);
    got[0] = 0;
    int rc = qe_pickle_run(&p, pkl, n, pid, &v, &used, got);
    qe_pickle_free(&p);
    if (rc == 0)
        snprintf(got, QE_ERR_LEN, "(accepted)");
    return rc == -1 && got[0] && strstr(got, want);
}

#define CHECK_VM(lit, pid, want)                                                                    \
    do {                                                                                            \
        char e_[QE_ERR_LEN];                                                                        \
        CHECKF(vm_rejects(lit, sizeof(lit) - 1, pid, want, e_), "expected '%s', got '%s'", want, e_); \
    } while (0)

static void test_vm(void)
{
    /* Code execution attempts. */
    CHECK_VM("\x80\x02\x63os\nsystem\nX\x02\0\0\0ls\x85R.", QE_PID_ZIP, "forbidden global 'os system'");
    CHECK_VM("\x80\x02\x63\x62uiltins\neval\nX\x01\0\0\0" "1\x85R.", QE_PID_ZIP, "forbidden global 'builtins eval'");
    CHECK_VM("\x80\x02\x63__builtin__\ngetattr\n.", QE_PID_ZIP, "forbidden global '__builtin__ getattr'");
    CHECK_VM("\x80\x02\x63numpy.core.multiarray\n_reconstruct\n.", QE_PID_ZIP, "forbidden global");
    CHECK_VM("\x80\x02\x63torch.nn.modules.conv\nConv2d\n.", QE_PID_ZIP, "forbidden global");
    CHECK_VM("\x80\x04\x8c\x02os\x8c\x06system\x93.", QE_PID_ZIP, "forbidden global 'os system'");
    CHECK_VM("(X\x02\0\0\0lsios\nsystem\n.", QE_PID_ZIP, "forbidden pickle opcode INST");
    CHECK_VM("(\x63\x63ollections\nOrderedDict\no.", QE_PID_ZIP, "forbidden pickle opcode OBJ");
    CHECK_VM("\x63\x63ollections\nOrderedDict\n)\x81.", QE_PID_ZIP, "forbidden pickle opcode NEWOBJ");
    CHECK_VM("\x63\x63ollections\nOrderedDict\n)}\x92.", QE_PID_ZIP, "forbidden pickle opcode NEWOBJ_EX");
    CHECK_VM("\x82\x01.", QE_PID_ZIP, "forbidden pickle opcode EXT1");
    CHECK_VM("Pstorage\n.", QE_PID_ZIP, "forbidden pickle opcode PERSID");
    CHECK_VM("S'x'\n.", QE_PID_ZIP, "forbidden pickle opcode STRING");
    CHECK_VM("\xff.", QE_PID_ZIP, "forbidden pickle opcode unknown");

    /* REDUCE on anything but the allowed callables, and their argument rules. */
    CHECK_VM("\x63torch\nFloatStorage\n)R.", QE_PID_ZIP, "REDUCE on a torch storage class is not allowed");
    CHECK_VM("X\x01\0\0\0a)R.", QE_PID_ZIP, "REDUCE on a str value");
    CHECK_VM("\x63\x63ollections\nOrderedDict\nK\x01\x85R.", QE_PID_ZIP, "OrderedDict called with arguments");
    CHECK_VM("\x63torch._utils\n_rebuild_tensor_v2\n(NNNNNtR.", QE_PID_ZIP, "_rebuild_tensor_v2 with 5 arguments");
    CHECK_VM("\x63torch._utils\n_rebuild_tensor_v2\n(NNNNNNtR.", QE_PID_ZIP, "bad _rebuild_tensor_v2 arguments");
    CHECK_VM("\x63torch._utils\n_rebuild_parameter\n(NNNtR.", QE_PID_ZIP, "bad _rebuild_parameter");

    /* Persistent ids. */
    CHECK_VM("(X\x07\0\0\0storage\x63torch\nFloatStorage\nX\x01\0\0\0" "0X\x03\0\0\0cpuK\x01tQ.", QE_PID_NONE,
             "persistent id outside");
    CHECK_VM("(X\x03\0\0\0fooNNNNtQ.", QE_PID_ZIP, "not a storage reference");
    CHECK_VM("(X\x07\0\0\0storageNX\x01\0\0\0" "0X\x03\0\0\0cpuK\x01tQ.", QE_PID_ZIP, "bad storage persistent id");
    CHECK_VM("(X\x07\0\0\0storage\x63torch\nFloatStorage\nX\x01\0\0\0" "0X\x03\0\0\0cpuK\x01(K\x01K\x02K\x03ttQ.",
             QE_PID_LEGACY, "view_metadata");

    /* BUILD only sets _metadata on an OrderedDict. */
    CHECK_VM("}}b.", QE_PID_ZIP, "BUILD on a plain dict");
    CHECK_VM("N}b.", QE_PID_ZIP, "BUILD on a None");
    CHECK_VM("\x63\x63ollections\nOrderedDict\n)R}(X\x08\0\0\0__dict__Nub.", QE_PID_ZIP, "BUILD may only set _metadata");

    /* Structure: memo, stack, marks, truncation, encodings. */
    CHECK_VM("\x80\x02h\x05.", QE_PID_ZIP, "memo index 5 out of range");
    CHECK_VM("Nj\x00\x01\x00\x00.", QE_PID_ZIP, "memo index 256 out of range");
    CHECK_VM("Nr\xff\xff\xff\x7f.", QE_PID_ZIP, "out of range");
    CHECK_VM("q\x00.", QE_PID_ZIP, "stack underflow");
    CHECK_VM("\x80\x02R.", QE_PID_ZIP, "stack underflow");
    CHECK_VM("N(\x85.", QE_PID_ZIP, "stack underflow");
    CHECK_VM("}N(s.", QE_PID_ZIP, "stack underflow");
    CHECK_VM("Nt.", QE_PID_ZIP, "no MARK");
    CHECK_VM("NN.", QE_PID_ZIP, "STOP with 2 values");
    CHECK_VM("(N.", QE_PID_ZIP, "1 marks");
    CHECK_VM(".", QE_PID_ZIP, "STOP with 0 values");
    CHECK_VM("\x80\x02X\xff\0\0\0ab", QE_PID_ZIP, "truncated");
    CHECK_VM("\x80\x02", QE_PID_ZIP, "truncated");
    CHECK_VM("\x80\x09N.", QE_PID_ZIP, "unsupported pickle protocol 9");
    CHECK_VM("X\x02\0\0\0\xff\xfe.", QE_PID_ZIP, "UTF-8");
    CHECK_VM("X\x03\0\0\0\xed\xa0\x80.", QE_PID_ZIP, "UTF-8");   /* a surrogate */
    CHECK_VM("X\x02\0\0\0a\0.", QE_PID_ZIP, "NUL");
    CHECK_VM("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", QE_PID_ZIP, "wider than 64 bits");
    CHECK_VM("NNK\x01s.", QE_PID_ZIP, "SETITEM(S) on a None");
    CHECK_VM("}(K\x01u.", QE_PID_ZIP, "odd number");
    CHECK_VM("}(NNu.", QE_PID_ZIP, "dict key of type None");
    CHECK_VM("NNa.", QE_PID_ZIP, "APPEND to a None");
    CHECK_VM("\x63os\n", QE_PID_ZIP, "bad GLOBAL operand");

    /* Deep nesting is no problem for a VM that never recurses: a million nested lists, then a
     * million unclosed marks. */
    bytes b = {0};
    size_t depth = 1000000;
    for (size_t i = 0; i < depth; i++)
        b_u8(&b, ']');
    for (size_t i = 1; i < depth; i++)
        b_u8(&b, 'a');
    b_u8(&b, '.');
    qe_pickle p;
    const qe_pv *v;
    size_t used;
    char err[QE_ERR_LEN];
    qe_pickle_init(&p);
    CHECKF(qe_pickle_run(&p, b.p, b.n, QE_PID_ZIP, &v, &used, err) == 0 && v->kind == QE_PV_LIST && used == b.n,
           "%s", err);
    qe_pickle_free(&p);
    b.n = 0;
    for (size_t i = 0; i < depth; i++)
        b_u8(&b, '(');
    b_u8(&b, 'N');
    b_u8(&b, '.');
    qe_pickle_init(&p);
    CHECK(qe_pickle_run(&p, b.p, b.n, QE_PID_ZIP, &v, &used, err) == -1 && strstr(err, "marks"));
    qe_pickle_free(&p);
    free(b.p);

    /* Accepted extras of §7.5 evaluate as in CPython. */
    static const char ok[] = "\x80\x04\x95\x10\0\0\0\0\0\0\0]\x94(G\x3f\xf8\0\0\0\0\0\0\x8c\x01z\x94h\x01" "e.";
    qe_pickle_init(&p);
    int rc = qe_pickle_run(&p, (const uint8_t *)ok, sizeof ok - 1, QE_PID_ZIP, &v, &used, err);
    CHECKF(rc == 0, "%s", err);
    if (rc == 0)
        CHECK(v->kind == QE_PV_LIST && v->u.seq.n == 3 && v->u.seq.v[0]->kind == QE_PV_FLOAT &&
              v->u.seq.v[0]->u.f == 1.5 && strcmp(v->u.seq.v[1]->u.str.s, "z") == 0 && v->u.seq.v[2] == v->u.seq.v[1]);
    qe_pickle_free(&p);
}

/* --------------------------------------------------------------------------- zip containers */

typedef struct zrec {
    const char *name;
    const void *data;
    size_t n;
    int deflate;
} zrec;

/* A zip archive written by libzip into memory. */
static bytes make_zip(const zrec *r, int n)
{
    bytes out = {0};
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
    zip_source_keep(src);
    zip_t *za = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
    for (int i = 0; i < n; i++) {
        zip_source_t *fs = zip_source_buffer(za, r[i].data, r[i].n, 0);
        zip_int64_t idx = zip_file_add(za, r[i].name, fs, ZIP_FL_ENC_UTF_8);
        zip_set_file_compression(za, (zip_uint64_t)idx, r[i].deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
    }
    zip_close(za);
    zip_stat_t st;
    zip_source_stat(src, &st);
    zip_source_open(src);
    out.n = out.cap = (size_t)st.size;
    out.p = qe_malloc(out.n);
    zip_source_read(src, out.p, out.n);
    zip_source_close(src);
    zip_source_free(src);
    zip_error_fini(&ze);
    return out;
}

static void test_zip_handcrafted(void)
{
    char err[QE_ERR_LEN];
    qe_statedict sd;
    tdesc t = T1("w", "FloatStorage", "0", 12, 1, 4, 3);
    bytes pkl = pk_statedict(&t, 1, 0);
    float data[12];
    for (int k = 0; k < 12; k++)
        data[k] = (float)k;

    /* The folder is taken from the first record, whatever its name. */
    zrec good[] = {{"my-net/data.pkl", pkl.p, pkl.n, 0}, {"my-net/data/0", data, 48, 0}, {"my-net/version", "3\n", 2, 0}};
    bytes z = make_zip(good, 3);
    int rc = qe_statedict_load_mem(z.p, z.n, &sd, err);
    CHECKF(rc == 0, "%s", err);
    if (rc == 0) {
        const float *v = sd.tensors[0].data;
        CHECK(sd.count == 1 && strcmp(sd.format, "zip") == 0 && v[0] == 1 && v[3] == 10);
        qe_statedict_free(&sd);
    }
    free(z.p);

    zrec deflated[] = {{"a/data.pkl", pkl.p, pkl.n, 1}, {"a/data/0", data, 48, 0}};
    z = make_zip(deflated, 2);
    CHECK_REJECTS(z.p, z.n, "is compressed");
    free(z.p);

    zrec missing[] = {{"a/data.pkl", pkl.p, pkl.n, 0}, {"a/data/1", data, 48, 0}};
    z = make_zip(missing, 2);
    CHECK_REJECTS(z.p, z.n, "storage record 'a/data/0' is missing");
    free(z.p);

    zrec short_rec[] = {{"a/data.pkl", pkl.p, pkl.n, 0}, {"a/data/0", data, 44, 0}};
    z = make_zip(short_rec, 2);
    CHECK_REJECTS(z.p, z.n, "has 44 bytes");
    free(z.p);

    zrec long_rec[] = {{"a/data.pkl", pkl.p, pkl.n, 0}, {"a/data/0", data, 48, 0}};
    t.numel = 11;   /* the pickle now claims 44 bytes */
    bytes pkl11 = pk_statedict(&t, 1, 0);
    long_rec[0].data = pkl11.p;
    long_rec[0].n = pkl11.n;
    z = make_zip(long_rec, 2);
    CHECK_REJECTS(z.p, z.n, "more than the 44 allowed");
    free(z.p);
    free(pkl11.p);

    zrec big_endian[] = {{"a/data.pkl", pkl.p, pkl.n, 0}, {"a/byteorder", "big", 3, 0}, {"a/data/0", data, 48, 0}};
    z = make_zip(big_endian, 3);
    CHECK_REJECTS(z.p, z.n, "byteorder");
    free(z.p);

    zrec little[] = {{"a/data.pkl", pkl.p, pkl.n, 0}, {"a/byteorder", "little", 6, 0}, {"a/data/0", data, 48, 0}};
    z = make_zip(little, 3);
    rc = qe_statedict_load_mem(z.p, z.n, &sd, err);
    CHECKF(rc == 0, "%s", err);
    if (rc == 0)
        qe_statedict_free(&sd);
    free(z.p);

    zrec outside[] = {{"a/data.pkl", pkl.p, pkl.n, 0}, {"a/data/0", data, 48, 0}, {"b/evil", "x", 1, 0}};
    z = make_zip(outside, 3);
    CHECK_REJECTS(z.p, z.n, "outside the archive folder");
    free(z.p);

    zrec other[] = {{"readme.txt", "hello", 5, 0}};
    z = make_zip(other, 1);
    CHECK_REJECTS(z.p, z.n, "neither a torch checkpoint");
    free(z.p);

    z = make_zip(NULL, 0);
    CHECK_REJECTS(z.p, z.n, NULL);
    free(z.p);

    /* A forbidden global inside a well-formed archive. */
    static const char evil[] = "\x80\x02\x63os\nsystem\nX\x02\0\0\0ls\x85R.";
    zrec ev[] = {{"a/data.pkl", evil, sizeof evil - 1, 0}};
    z = make_zip(ev, 1);
    CHECK_REJECTS(z.p, z.n, "checkpoint rejected: forbidden global 'os system'");
    free(z.p);
    free(pkl.p);

    /* One flipped byte inside a storage record of the torch-written sample fails its CRC-32. */
    size_t n;
    uint8_t *zs = read_all(qtest_shared("models/zip-format-sample.pth"), &n);
    REQUIRE(zs);
    static const uint8_t conv_w[8] = {0x00, 0x00, 0x80, 0xbf, 0x00, 0x00, 0x40, 0xbf};   /* -1.0, -0.75 */
    uint8_t *rec = memmem(zs, n, conv_w, sizeof conv_w);
    REQUIRE(rec);
    rec[5] ^= 0x10;
    CHECK_REJECTS(zs, n, "CRC");
    free(zs);
}

/* npy members in a stored zip (§7.4). */
static bytes npy(const char *descr, const char *shape, const void *data, size_t n, int fortran)
{
    char hdr[256];
    int len = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr,
                       fortran ? "True" : "False", shape);
    while ((10 + len + 1) % 64)
        hdr[len++] = ' ';
    hdr[len++] = '\n';
    bytes b = {0};
    b_put(&b, "\x93NUMPY\x01\x00", 8);
    b_le(&b, (uint64_t)len, 2);
    b_put(&b, hdr, (size_t)len);
    b_put(&b, data, n);
    return b;
}

static void test_npz(void)
{
    char err[QE_ERR_LEN];
    qe_statedict sd;
    float w[6] = {1, 2, 3, 4, 5, 6};
    int64_t step = -5;
    bytes a = npy("<f4", "(2, 3)", w, sizeof w, 0), b = npy("<i8", "()", &step, 8, 0);
    zrec ok[] = {{"layer.w.npy", a.p, a.n, 0}, {"step.npy", b.p, b.n, 0}};
    bytes z = make_zip(ok, 2);
    int rc = qe_statedict_load_mem(z.p, z.n, &sd, err);
    CHECKF(rc == 0, "%s", err);
    if (rc == 0) {
        CHECK(strcmp(sd.format, "npz") == 0 && sd.count == 2);
        const qe_tensor *t = qe_statedict_find(&sd, "layer.w"), *s = qe_statedict_find(&sd, "step");
        CHECK(t && t->dtype == QE_DT_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
              memcmp(t->data, w, sizeof w) == 0);
        CHECK(s && s->dtype == QE_DT_I64 && s->ndim == 0 && *(const int64_t *)s->data == -5);
        qe_statedict_free(&sd);
    }
    free(z.p);

    struct { bytes m; const char *want; } bad[] = {
        {npy("<f4", "(2, 3)", w, sizeof w, 1), "fortran_order"},
        {npy("<f4", "(2, 2)", w, sizeof w, 0), "shape needs 16"},
        {npy(">f4", "(6,)", w, sizeof w, 0), "unsupported npy header"},
        {npy("|O", "(6,)", w, sizeof w, 0), "unsupported npy header"},
        {npy("<f4", "(99999999999999999999,)", w, sizeof w, 0), "unsupported npy header"},
        {npy("<f4", "(4611686018427387904, 4)", w, sizeof w, 0), "overflows"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        zrec r[] = {{"x.npy", bad[i].m.p, bad[i].m.n, 0}};
        z = make_zip(r, 1);
        CHECK_REJECTS(z.p, z.n, bad[i].want);
        free(z.p);
        free(bad[i].m.p);
    }
    zrec trunc[] = {{"x.npy", a.p, 9, 0}};
    z = make_zip(trunc, 1);
    CHECK_REJECTS(z.p, z.n, "not an npy file");
    free(z.p);
    /* libzip refuses to write duplicate names: rename y.npy to x.npy in the finished bytes. */
    zrec dup[] = {{"x.npy", a.p, a.n, 0}, {"y.npy", a.p, a.n, 0}};
    z = make_zip(dup, 2);
    for (uint8_t *q = z.p; (q = memmem(q, z.n - (size_t)(q - z.p), "y.npy", 5)) != NULL;)
        *q = 'x';
    CHECK_REJECTS(z.p, z.n, NULL);
    free(z.p);
    free(a.p);
    free(b.p);
}

/* --------------------------------------------------------------------------- safetensors */

static bytes safetensors(const char *json, size_t data_len)
{
    bytes b = {0};
    size_t n = strlen(json);
    b_le(&b, n, 8);
    b_put(&b, json, n);
    for (size_t i = 0; i < data_len; i++)
        b_u8(&b, (int)i);
    return b;
}

static void test_safetensors(void)
{
    char err[QE_ERR_LEN];
    qe_statedict sd;
    bytes f = safetensors("{\"__metadata__\":{\"k\":\"v\"},\"b\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]},"
                          "\"a\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}   ", 16);
    int rc = qe_statedict_load_mem(f.p, f.n, &sd, err);
    CHECKF(rc == 0, "%s", err);
    if (rc == 0) {
        const qe_tensor *a = qe_statedict_find(&sd, "a"), *b = qe_statedict_find(&sd, "b");
        CHECK(sd.count == 2 && a && b && a->dtype == QE_DT_BF16 && a->numel == 4 && b->ndim == 0 &&
              ((const uint8_t *)a->data)[7] == 7 && ((const uint8_t *)b->data)[0] == 8);
        qe_statedict_free(&sd);
    }
    free(f.p);

    struct { const char *json; size_t data; const char *want; } bad[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
         "\"data_offsets\":[4,12]}}", 12, "overlaps"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],"
         "\"data_offsets\":[12,16]}}", 16, "gap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, "after the last tensor"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "do not hold"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,800]}}", 8, "do not hold"},
        {"{\"a\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unsupported dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "bad shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,8],\"data_offsets\":[0,8]}}", 8, "overflows"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "bad data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "lacks"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
         "\"data_offsets\":[4,8]}}", 8, "not valid JSON"},
        {"{\"__metadata__\":3}", 0, "__metadata__"},
        {"{\"a\":", 0, "not valid JSON"},
        {"[1,2]", 0, "unknown checkpoint format"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = safetensors(bad[i].json, bad[i].data);
        CHECK_REJECTS(f.p, f.n, bad[i].want);
        free(f.p);
    }
    f = safetensors("{}", 0);
    f.p[0] = 0xff;   /* header length beyond the file */
    CHECK_REJECTS(f.p, f.n, "exceeds the file");
    free(f.p);
}

/* --------------------------------------------------------------------------- hostile bytes */

static void test_garbage(void)
{
    char err[QE_ERR_LEN];
    qe_statedict sd;
    const char *empty = tmp_path("empty.pth");
    FILE *f = fopen(empty, "wb");
    REQUIRE(f);
    fclose(f);
    CHECK(qe_statedict_load(empty, MAX_FILE, &sd, err) == -1 && strstr(err, "unknown checkpoint format") && sd.count == 0);
    remove(empty);
    CHECK(qe_statedict_load(tmp_path("missing.pth"), MAX_FILE, &sd, err) == -1 && err[0]);

    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)rng();
    junk[8] = 'x';
    CHECK_REJECTS(junk, sizeof junk, "unknown checkpoint format");
    memcpy(junk, "PK\3\4", 4);
    CHECK_REJECTS(junk, sizeof junk, "not a readable zip");
    memcpy(junk, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e", 15);
    CHECK_REJECTS(junk, sizeof junk, NULL);
    memset(junk, 0, 8);
    junk[0] = 0x40;
    junk[8] = '{';
    CHECK_REJECTS(junk, sizeof junk, "safetensors");
}

/* Every truncation of both samples fails; random byte corruption either fails with a message
 * or, for the zip sample (whose pickle and data are CRC-protected), changes nothing. */
static void test_mutations(void)
{
    size_t nz, nl;
    uint8_t *zs = read_all(qtest_shared("models/zip-format-sample.pth"), &nz);
    uint8_t *ls = read_all(qtest_shared("models/legacy-format-sample.pth"), &nl);
    REQUIRE(zs && ls);
    char err[QE_ERR_LEN];
    qe_statedict ref;
    REQUIRE(qe_statedict_load_mem(zs, nz, &ref, err) == 0);

    int fails = 0;
    for (size_t len = 0; len < nz; len++)
        fails += !rejects(zs, len, NULL, err);
    for (size_t len = 0; len < nl; len++)
        fails += !rejects(ls, len, NULL, err);
    CHECKF(fails == 0, "%d truncated samples were accepted", fails);

    uint8_t *m = qe_malloc(nz > nl ? nz : nl);
    int rejected[2] = {0, 0}, changed = 0, silent = 0;
    const size_t pickle_end = 1317;   /* the legacy sample's five pickles end here */
    for (int it = 0; it < 400; it++) {
        int legacy = it & 1;
        const uint8_t *src = legacy ? ls : zs;
        size_t n = legacy ? nl : nz;
        memcpy(m, src, n);
        int k = 1 + (int)(rng() % 3);
        for (int j = 0; j < k; j++) {
            /* Legacy mutations mostly hit the pickles, where the VM has to cope with them. */
            size_t span = legacy && rng() % 4 ? pickle_end : n;
            m[rng() % span] = (uint8_t)rng();
        }
        qe_statedict sd;
        err[0] = 0;
        if (qe_statedict_load_mem(m, n, &sd, err) != 0) {
            rejected[legacy]++;
            silent += err[0] == 0;
            continue;
        }
        if (!legacy)
            changed += !same_statedict(&sd, &ref) && memcmp(m, src, n) != 0;
        qe_statedict_free(&sd);
    }
    fprintf(stderr, "mutations rejected: zip %d/200, legacy %d/200\n", rejected[0], rejected[1]);
    CHECKF(changed == 0, "%d corrupted zip samples loaded with different content", changed);
    CHECK(silent == 0);
    CHECK(rejected[0] > 100 && rejected[1] > 100);   /* the corruption really reaches the readers */
    free(m);
    qe_statedict_free(&ref);
    free(zs);
    free(ls);
}

int main(void)
{
    test_sha256();
    test_to_f32();
    test_samples();
    test_save_roundtrip();
    test_vm();
    test_legacy_handcrafted();
    test_zip_handcrafted();
    test_npz();
    test_safetensors();
    test_garbage();
    test_mutations();
    test_resnets();
    return qtest_done("test_checkpoint");
}
