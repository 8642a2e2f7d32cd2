/*
 * store_configs.c - the model configs runs are filed under (resnet18_fp32, resnet50_w8a8, ...).
 */
#include "store_internal.h"

#define CONFIG_NAME_MAX_LEN 128
#define CONFIG_WORD_MAX_LEN 64
#define CONFIG_DESCRIPTION_MAX_LEN 65536

int qe_store_config_put(qe_store *s, const qe_store_config *cfg, char *err)
{
    if (!cfg)
        return qe_err(err, "store: no model config");
    if (store_check_text("model config", cfg->name, CONFIG_NAME_MAX_LEN, 1, err) != 0
        || store_check_text("architecture", cfg->arch, CONFIG_WORD_MAX_LEN, 0, err) != 0
        || store_check_text("precision", cfg->precision, CONFIG_WORD_MAX_LEN, 0, err) != 0
        || store_check_text("description", cfg->description, CONFIG_DESCRIPTION_MAX_LEN, 0, err)
               != 0)
        return -1;
    /* The table's CHECK (json_valid) rejects a malformed description. */
    sqlite3_stmt *st = store_stmt(s, STMT_CONFIG_PUT,
                                  "INSERT INTO model_configs(name, arch, precision, description) "
                                  "VALUES (?1, ?2, ?3, ?4) "
                                  "ON CONFLICT(name) DO UPDATE SET arch = excluded.arch, "
                                  "precision = excluded.precision, "
                                  "description = excluded.description",
                                  err);
    if (!st)
        return -1;
    store_bind_str(st, 1, cfg->name);
    store_bind_str(st, 2, cfg->arch);
    store_bind_str(st, 3, cfg->precision);
    store_bind_str(st, 4, cfg->description);
    return store_exec(s, st, err);
}

int qe_store_configs_each(qe_store *s, qe_store_config_fn fn, void *ctx, char *err)
{
    /* Not cached, so that fn may use the handle while this statement steps. */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT name, arch, precision, description FROM model_configs "
                           "ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK)
        return store_sql_err(s, err, "store: prepare");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        qe_store_config c = {
            .name = (const char *)sqlite3_column_text(st, 0),
            .arch = (const char *)sqlite3_column_text(st, 1),
            .precision = (const char *)sqlite3_column_text(st, 2),
            .description = (const char *)sqlite3_column_text(st, 3),
        };
        if (fn(ctx, &c) != 0)
            break;
    }
    if (rc == SQLITE_ROW)
        qe_err(err, "store: stopped by callback");
    else if (rc != SQLITE_DONE)
        store_sql_err(s, err, "store: listing model configs");
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}
