/*
 * test_synth.c - the C synthetic checkpoints against make_synthetic.py (spec
 * preprocessing-and-formats.md §8): every tensor bit for bit against the pth files the
 * setup_models fixture generated with the script, and the written pth byte for byte (sha256
 * from shared/models/README.md).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "qe_util.h"
#include "qtest.h"
#include "sha256.h"
#include "statedict.h"
#include "synth.h"

/* shared/models/README.md: entries, values and sha256 of the script's pth output. */
static const struct {
    const char *arch;
    int entries;
    int64_t values;
    const char *sha256;
} expected[] = {
    {"resnet18", 122, 11699132, "ba60de5ee52ae9f11e7adcd3d4d15d037ac21162df4acf4975ea8457bd4cdee9"},
    {"resnet50", 320, 25610205, "de28dd49263a965b6a094d66e7072158a71672b18175da665110d4ff0508a0d5"},
};

static int same_tensor(const qe_tensor *a, const qe_tensor *b)
{
    if (strcmp(a->name, b->name) != 0 || a->dtype != b->dtype || a->ndim != b->ndim ||
        a->numel != b->numel)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return 0;
    return memcmp(a->data, b->data, (size_t)a->numel * qe_dtype_size(a->dtype)) == 0;
}

static void test_tensors(int i)
{
    char err[QE_ERR_LEN], rel[64];
    qe_statedict gen, ref;

    double t0 = qe_now();
    REQUIRE(qe_synth_statedict(expected[i].arch, &gen, err) == 0);
    fprintf(stderr, "%s: generated in %.3f s\n", expected[i].arch, qe_now() - t0);

    int64_t values = 0;
    for (int k = 0; k < gen.count; k++)
        values += gen.tensors[k].numel;
    CHECKF(gen.count == expected[i].entries, "%s: %d entries", expected[i].arch, gen.count);
    CHECKF(values == expected[i].values, "%s: %lld values", expected[i].arch, (long long)values);

    const qe_tensor *nbt = qe_statedict_find(&gen, "layer1.0.bn1.num_batches_tracked");
    CHECK(nbt && nbt->dtype == QE_DT_I64 && nbt->numel == 1 && *(int64_t *)nbt->data == 100);

    snprintf(rel, sizeof rel, "models/%s.pth", expected[i].arch);
    if (qe_statedict_load(qtest_build(rel), (size_t)1 << 28, &ref, err) != 0) {
        CHECKF(0, "loading the script's checkpoint: %s", err);
        qe_statedict_free(&gen);
        return;
    }
    CHECKF(gen.count == ref.count, "%d vs %d entries", gen.count, ref.count);
    int bad = 0;
    for (int k = 0; k < gen.count && k < ref.count; k++)
        if (!same_tensor(&gen.tensors[k], &ref.tensors[k]) && bad++ < 5)
            fprintf(stderr, "%s: tensor %d (%s) differs from the script's %s\n",
                    expected[i].arch, k, gen.tensors[k].name, ref.tensors[k].name);
    CHECKF(bad == 0, "%s: %d tensors differ", expected[i].arch, bad);

    qe_statedict_free(&ref);
    qe_statedict_free(&gen);
}

static void test_file(int i)
{
    char err[QE_ERR_LEN], rel[64], hex[65];

    mkdir(qtest_build("tmp"), 0755);
    snprintf(rel, sizeof rel, "tmp/synth-%s.pth", expected[i].arch);
    const char *path = qtest_build(rel);
    int rc = qe_synth_write(expected[i].arch, path, err);
    CHECKF(rc == 0, "qe_synth_write: %s", err);
    if (rc != 0)
        return;
    REQUIRE(qe_sha256_file(path, hex, err) == 0);
    CHECKF(strcmp(hex, expected[i].sha256) == 0, "%s: sha256 %s", expected[i].arch, hex);
    remove(path);
}

static void test_errors(void)
{
    char err[QE_ERR_LEN] = "";
    qe_statedict sd;

    CHECK(qe_synth_statedict("resnet34", &sd, err) == -1);
    CHECK(strstr(err, "resnet34") != NULL);
    CHECK(sd.count == 0 && sd.tensors == NULL);
    CHECK(qe_synth_statedict(NULL, &sd, err) == -1);
    CHECK(qe_synth_write("resnet18", qtest_build("tmp/no-such-dir/x.pth"), err) == -1);
}

int main(void)
{
    for (int i = 0; i < 2; i++) {
        test_tensors(i);
        test_file(i);
    }
    test_errors();
    return qtest_done("test_synth");
}
