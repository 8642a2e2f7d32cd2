/*
 * store_cache.c - blobs keyed by (weights sha256, model config, calibration settings), used for
 * calibration encodings: computing them takes minutes, and they are a pure function of the key.
 */
#include "store_internal.h"

#include <string.h>

#define CACHE_NAME_MAX_LEN 128
#define CACHE_CALIB_MAX_LEN 4096

static int check_key(const qe_store_cache_key *key, char *err)
{
    if (!key || !key->weights_sha256 || !key->calib)
        return qe_err(err, "store: incomplete cache key");
    if (store_check_sha256("weights sha256", key->weights_sha256, err) != 0
        || store_check_text("model config", key->model_config, CACHE_NAME_MAX_LEN, 1, err) != 0
        || store_check_text("calibration settings", key->calib, CACHE_CALIB_MAX_LEN, 0, err) != 0)
        return -1;
    return 0;
}

static void bind_key(sqlite3_stmt *st, const qe_store_cache_key *key)
{
    store_bind_str(st, 1, key->weights_sha256);
    store_bind_str(st, 2, key->model_config);
    store_bind_str(st, 3, key->calib);
}

int qe_store_cache_put(qe_store *s, const qe_store_cache_key *key, const void *data, size_t len,
                       char *err)
{
    if (check_key(key, err) != 0)
        return -1;
    if ((len && !data) || len > (size_t)INT32_MAX)
        return qe_err(err, "store: bad cache blob of %zu bytes", len);
    sqlite3_stmt *st = store_stmt(s, STMT_CACHE_PUT,
                                  "INSERT INTO blob_cache(weights_sha256, model_config, calib, "
                                  "data, created_at) VALUES (?1, ?2, ?3, ?4, ?5) "
                                  "ON CONFLICT(weights_sha256, model_config, calib) DO UPDATE "
                                  "SET data = excluded.data, created_at = excluded.created_at",
                                  err);
    if (!st)
        return -1;
    bind_key(st, key);
    /* A zero-length blob (data may be NULL) must still be a blob, not SQL NULL. */
    if (sqlite3_bind_blob(st, 4, len ? data : "", (int)len, SQLITE_TRANSIENT) != SQLITE_OK)
        return store_sql_err(s, err, "store: cache blob");
    sqlite3_bind_double(st, 5, store_now());
    return store_exec(s, st, err);
}

int qe_store_cache_get(qe_store *s, const qe_store_cache_key *key, uint8_t **data, size_t *len,
                       int *found, char *err)
{
    *data = NULL;
    *len = 0;
    *found = 0;
    if (check_key(key, err) != 0)
        return -1;
    sqlite3_stmt *st = store_stmt(s, STMT_CACHE_GET,
                                  "SELECT data FROM blob_cache "
                                  "WHERE weights_sha256 = ?1 AND model_config = ?2 AND calib = ?3",
                                  err);
    if (!st)
        return -1;
    bind_key(st, key);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        /* The size comes from our own file, bounded by SQLite's blob limit (1 GB). */
        const void *blob = sqlite3_column_blob(st, 0);
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        uint8_t *copy = qe_malloc(n + 1);
        if (n)
            memcpy(copy, blob, n);
        copy[n] = 0;
        *data = copy;
        *len = n;
        *found = 1;
    } else if (rc != SQLITE_DONE) {
        store_sql_err(s, err, "store: reading the cache");
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}
