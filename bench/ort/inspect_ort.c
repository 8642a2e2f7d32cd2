/*
 * inspect_ort - what ONNX Runtime makes of a model, with the session settings of bench_ort.js
 * (2 intra-op threads, 1 inter-op, sequential, ORT_ENABLE_ALL): saves the optimized graph and
 * a profile (per-node kernel times) of a few runs. onnxruntime-node 1.20.1 exposes neither
 * optimizedModelFilePath nor profiling, so this calls the C API of the libonnxruntime.so that
 * ships in the npm package. Driven by inspect_ort.js, which builds it:
 *
 *   cc -O1 -o inspect_ort inspect_ort.c -ldl
 *   inspect_ort LIBONNXRUNTIME.so MODEL.onnx BATCH OPTIMIZED_OUT.onnx PROFILE_PREFIX [RUNS]
 *
 * It prints the profile's file name. No ONNX Runtime header is needed: the OrtApi table is
 * append-only (ABI-stable across releases), and only entries of its version-1 part are used,
 * by index. The indices are those of onnxruntime_c_api.h (struct OrtApi, in order).
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef void *St; /* OrtStatus*, NULL on success */
enum {
    I_GetErrorMessage = 2,
    I_CreateEnv = 3,
    I_CreateSession = 7,
    I_Run = 9,
    I_CreateSessionOptions = 10,
    I_SetOptimizedModelFilePath = 11,
    I_SetSessionExecutionMode = 13,
    I_EnableProfiling = 14,
    I_SetSessionGraphOptimizationLevel = 23,
    I_SetIntraOpNumThreads = 24,
    I_SetInterOpNumThreads = 25,
    I_CreateTensorWithDataAsOrtValue = 49,
    I_CreateCpuMemoryInfo = 69,
    I_GetAllocatorWithDefaultOptions = 78,
    I_ReleaseValue = 96,
    I_SessionEndProfiling = 110,
};
typedef struct {
    void *const *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} OrtApiBase;

static void *const *api;
#define F(idx, ret, ...) ((ret(*)(__VA_ARGS__))api[idx])

static void check(St s, const char *what)
{
    if (s) {
        fprintf(stderr, "inspect_ort: %s: %s\n", what, F(I_GetErrorMessage, const char *, St)(s));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: inspect_ort LIBONNXRUNTIME.so MODEL.onnx BATCH OPTIMIZED_OUT.onnx PROFILE_PREFIX [RUNS]\n");
        return 2;
    }
    const int64_t batch = atoi(argv[3]);
    const int runs = argc > 6 ? atoi(argv[6]) : 3;
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "inspect_ort: %s\n", dlerror());
        return 1;
    }
    const OrtApiBase *(*get_base)(void) = (const OrtApiBase *(*)(void))dlsym(lib, "OrtGetApiBase");
    if (!get_base || !(api = get_base()->GetApi(1))) {
        fprintf(stderr, "inspect_ort: no OrtApi in %s\n", argv[1]);
        return 1;
    }
    fprintf(stderr, "inspect_ort: ONNX Runtime %s\n", get_base()->GetVersionString());

    void *env, *so, *sess, *mem, *in = NULL, *out = NULL, *alloc;
    check(F(I_CreateEnv, St, int, const char *, void **)(2 /* warning */, "inspect_ort", &env), "CreateEnv");
    check(F(I_CreateSessionOptions, St, void **)(&so), "CreateSessionOptions");
    check(F(I_SetOptimizedModelFilePath, St, void *, const char *)(so, argv[4]), "SetOptimizedModelFilePath");
    check(F(I_EnableProfiling, St, void *, const char *)(so, argv[5]), "EnableProfiling");
    check(F(I_SetSessionExecutionMode, St, void *, int)(so, 0 /* ORT_SEQUENTIAL */), "SetSessionExecutionMode");
    check(F(I_SetSessionGraphOptimizationLevel, St, void *, int)(so, 99 /* ORT_ENABLE_ALL */), "SetSessionGraphOptimizationLevel");
    check(F(I_SetIntraOpNumThreads, St, void *, int)(so, 2), "SetIntraOpNumThreads");
    check(F(I_SetInterOpNumThreads, St, void *, int)(so, 1), "SetInterOpNumThreads");
    check(F(I_CreateSession, St, void *, const char *, void *, void **)(env, argv[2], so, &sess), "CreateSession");

    const int64_t shape[4] = {batch, 3, 224, 224};
    const size_t n = (size_t)batch * 3 * 224 * 224;
    float *x = malloc(n * sizeof(float));
    unsigned s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u;
        x[i] = (float)((s >> 8) & 0xffff) / 16384.0f - 2.0f;
    }
    check(F(I_CreateCpuMemoryInfo, St, int, int, void **)(1 /* arena */, 0 /* default */, &mem), "CreateCpuMemoryInfo");
    check(F(I_CreateTensorWithDataAsOrtValue, St, void *, void *, size_t, const int64_t *, size_t, int, void **)(
              mem, x, n * sizeof(float), shape, 4, 1 /* float */, &in), "CreateTensorWithDataAsOrtValue");
    const char *in_names[1] = {"input"}, *out_names[1] = {"logits"};
    for (int r = 0; r < runs; r++) {
        check(F(I_Run, St, void *, void *, const char *const *, void *const *, size_t, const char *const *, size_t, void **)(
                  sess, NULL, in_names, &in, 1, out_names, 1, &out), "Run");
        F(I_ReleaseValue, void, void *)(out);
        out = NULL;
    }
    char *profile;
    check(F(I_GetAllocatorWithDefaultOptions, St, void **)(&alloc), "GetAllocatorWithDefaultOptions");
    check(F(I_SessionEndProfiling, St, void *, void *, char **)(sess, alloc, &profile), "SessionEndProfiling");
    printf("%s\n", profile);
    return 0;
}
