#include "modelcfg.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qe_util.h"

typedef struct { const char *name; const char *json; } qe_embedded_config;
extern const qe_embedded_config qe_embedded_configs[];

const char *const *qe_modelcfg_names(void)
{
    static const char *names[32];
    if (!names[0])
        for (int i = 0; qe_embedded_configs[i].name && i < 31; i++)
            names[i] = qe_embedded_configs[i].name;
    return names;
}

static void copy_str(json_t *obj, const char *key, char *dst, size_t len)
{
    const char *s = json_string_value(json_object_get(obj, key));
    snprintf(dst, len, "%s", s ? s : "");
}

static int parse(const char *text, const char *origin, qe_modelcfg *c, char *err)
{
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root)
        return qe_err(err, "%s: invalid JSON at line %d: %s", origin, je.line, je.text);
    int rc = -1;
    const char *arch = json_string_value(json_object_get(root, "architecture"));
    copy_str(root, "model_config", c->name, sizeof c->name);
    copy_str(root, "precision", c->precision, sizeof c->precision);
    copy_str(root, "description", c->description, sizeof c->description);
    if (!c->name[0] || !arch) {
        qe_err(err, "%s: a model config needs \"model_config\" and \"architecture\"", origin);
        goto out;
    }
    if (qe_resnet_arch_parse(arch, &c->arch)) {
        qe_err(err, "%s: unsupported architecture '%s' (resnet18 or resnet50)", origin, arch);
        goto out;
    }
    json_t *q = json_object_get(root, "quantization");
    if (json_is_object(q)) {
        c->quantized = 1;
        c->param_bw = (int)json_integer_value(json_object_get(q, "param_bw"));
        c->act_bw = (int)json_integer_value(json_object_get(q, "output_bw"));
        const char *scheme = json_string_value(json_object_get(q, "quant_scheme"));
        if ((c->param_bw != 8 && c->param_bw != 4) || c->act_bw != 8) {
            qe_err(err, "%s: supported bit widths are W8A8 and W4A8 (got W%dA%d)", origin, c->param_bw, c->act_bw);
            goto out;
        }
        if (scheme && strcmp(scheme, "tf_enhanced") != 0 && strcmp(scheme, "tf") != 0) {
            qe_err(err, "%s: unsupported quant_scheme '%s'", origin, scheme);
            goto out;
        }
        json_t *cal = json_object_get(q, "calibration");
        c->calib_per_class = json_is_integer(json_object_get(cal, "per_class")) ?
                             (int)json_integer_value(json_object_get(cal, "per_class")) : 2;
        c->calib_batch = json_is_integer(json_object_get(cal, "batch")) ?
                         (int)json_integer_value(json_object_get(cal, "batch")) : 128;
    }
    json_t *w = json_object_get(root, "weights");
    copy_str(w, "file", c->weights_file, sizeof c->weights_file);
    copy_str(w, "url", c->weights_url, sizeof c->weights_url);
    copy_str(w, "sha256", c->weights_sha256, sizeof c->weights_sha256);
    c->weights_optimized = json_is_true(json_object_get(w, "optimized"));
    json_t *fw = json_object_get(root, "fp32_weights");
    copy_str(fw, "file", c->fp32_weights_file, sizeof c->fp32_weights_file);
    copy_str(fw, "sha256", c->fp32_weights_sha256, sizeof c->fp32_weights_sha256);
    copy_str(json_object_get(root, "param_encodings"), "file", c->param_encodings_file, sizeof c->param_encodings_file);
    json_t *ref = json_object_get(root, "reference_accuracy");
    c->ref_top1 = json_number_value(json_object_get(ref, "top1"));
    c->ref_fp32_top1 = json_number_value(json_object_get(ref, "fp32_top1"));
    if (!c->quantized)
        c->ref_fp32_top1 = c->ref_top1;
    c->json = qe_strdup(text);
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int qe_modelcfg_get(const char *name, qe_modelcfg *cfg, char *err)
{
    memset(cfg, 0, sizeof *cfg);
    size_t n = strlen(name);
    if (strchr(name, '/') || (n > 5 && strcmp(name + n - 5, ".json") == 0)) {
        uint8_t *text;
        size_t len;
        if (qe_read_file(name, 1 << 20, &text, &len, err))
            return -1;
        int rc = parse((const char *)text, name, cfg, err);
        free(text);
        return rc;
    }
    for (int i = 0; qe_embedded_configs[i].name; i++)
        if (strcmp(qe_embedded_configs[i].name, name) == 0)
            return parse(qe_embedded_configs[i].json, name, cfg, err);
    char list[512] = "";
    for (int i = 0; qe_embedded_configs[i].name; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, qe_embedded_configs[i].name, sizeof list - strlen(list) - 1);
    }
    return qe_err(err, "unknown model config '%s' (available: %s)", name, list);
}

void qe_modelcfg_free(qe_modelcfg *cfg)
{
    free(cfg->json);
    cfg->json = NULL;
}

int qe_modelcfg_find_file(const char *file, char *out, size_t outlen)
{
    if (!file || !file[0])
        return -1;
    const char *home = getenv("HOME"), *xdg = getenv("XDG_CACHE_HOME"), *env = getenv("QUANTEVAL_MODELS");
    char dirs[4][2048];
    int nd = 0;
    if (env && env[0])
        snprintf(dirs[nd++], sizeof dirs[0], "%s", env);
    snprintf(dirs[nd++], sizeof dirs[0], "models");
    if (xdg && xdg[0])
        snprintf(dirs[nd++], sizeof dirs[0], "%s/quanteval", xdg);
    else if (home)
        snprintf(dirs[nd++], sizeof dirs[0], "%s/.cache/quanteval", home);
    if (home)
        snprintf(dirs[nd++], sizeof dirs[0], "%s/.cache/torch/hub/checkpoints", home);
    for (int i = 0; i < nd; i++) {
        snprintf(out, outlen, "%s/%s", dirs[i], file);
        if (access(out, R_OK) == 0)
            return 0;
    }
    return -1;
}
