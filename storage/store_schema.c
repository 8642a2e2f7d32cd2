/*
 * store_schema.c - the database schema and its forward migrations.
 *
 * The schema version is PRAGMA user_version; migrations[v] takes a database from version v to
 * v + 1. A released step is never edited: a change is a new step appended to the list (and
 * QE_STORE_SCHEMA_VERSION bumped), so every older database walks the same path a new one does.
 */
#include "store_internal.h"

#include <stdio.h>
#include <string.h>

/* "QEVL" in the database header's application_id: tells our files from other SQLite files. */
#define STORE_APP_ID 0x5145564c

static const char *const migrations[QE_STORE_SCHEMA_VERSION] = {
    /* 0 -> 1: the run history of the CLI. runs.id is AUTOINCREMENT so that an id is never
     * reused, even after the newest run is deleted: ids order runs by creation, which the
     * newest-first pagination relies on. */
    "CREATE TABLE model_configs (\n"
    "    name        TEXT PRIMARY KEY NOT NULL,\n"
    "    arch        TEXT,\n"
    "    precision   TEXT,\n"
    "    description TEXT CHECK (description IS NULL OR json_valid(description))\n"
    ");\n"
    "CREATE TABLE runs (\n"
    "    id                INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    model_config      TEXT NOT NULL REFERENCES model_configs(name),\n"
    "    dataset_name      TEXT NOT NULL,\n"
    "    dataset_path      TEXT NOT NULL,\n"
    "    source            TEXT NOT NULL CHECK (source IN ('cli', 'server')),\n"
    "    status            TEXT NOT NULL CHECK (status IN\n"
    "                      ('queued', 'running', 'done', 'failed', 'cancelled')),\n"
    "    created_at        REAL NOT NULL,\n"
    "    started_at        REAL,\n"
    "    finished_at       REAL,\n"
    "    images_total      INTEGER NOT NULL DEFAULT 0,\n"
    "    images_done       INTEGER NOT NULL DEFAULT 0,\n"
    "    correct1          INTEGER NOT NULL DEFAULT 0,\n"
    "    correct5          INTEGER NOT NULL DEFAULT 0,\n"
    "    top1              REAL,\n"
    "    top5              REAL,\n"
    "    images_per_second REAL,\n"
    "    build_id          TEXT,\n"
    "    weights_sha256    TEXT,\n"
    "    encodings_sha256  TEXT,\n"
    "    calib             TEXT,\n"
    "    synthetic         INTEGER NOT NULL DEFAULT 0 CHECK (synthetic IN (0, 1)),\n"
    "    error             TEXT,\n"
    "    image_limit       INTEGER NOT NULL DEFAULT 0\n"
    ");\n"
    "CREATE INDEX runs_by_config ON runs(model_config, id);\n"
    "CREATE TABLE run_classes (\n"
    "    run_id   INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "    label    INTEGER NOT NULL,\n"
    "    total    INTEGER NOT NULL,\n"
    "    correct1 INTEGER NOT NULL,\n"
    "    correct5 INTEGER NOT NULL,\n"
    "    PRIMARY KEY (run_id, label)\n"
    ") WITHOUT ROWID;\n"
    "CREATE TABLE predictions (\n"
    "    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "    idx    INTEGER NOT NULL,\n"
    "    path   TEXT NOT NULL,\n"
    "    label  INTEGER NOT NULL,\n"
    "    pred1  INTEGER NOT NULL,\n"
    "    pred2  INTEGER NOT NULL,\n"
    "    pred3  INTEGER NOT NULL,\n"
    "    pred4  INTEGER NOT NULL,\n"
    "    pred5  INTEGER NOT NULL,\n"
    "    PRIMARY KEY (run_id, idx)\n"
    ") WITHOUT ROWID;\n",

    /* 1 -> 2: quantized runs are compared against the FP32 model on the same images. */
    "ALTER TABLE runs ADD COLUMN fp32_top1 REAL;\n"
    "ALTER TABLE runs ADD COLUMN fp32_top5 REAL;\n"
    "ALTER TABLE runs ADD COLUMN agreement REAL;\n",

    /* 2 -> 3: the daemon. A job keeps the request it came from so that a restarted daemon can
     * rebuild it; its progress is the run's predictions. The blob cache keeps calibration
     * encodings, which take minutes to compute. */
    "CREATE TABLE jobs (\n"
    "    run_id     INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,\n"
    "    params     TEXT NOT NULL CHECK (json_valid(params)),\n"
    "    attempts   INTEGER NOT NULL DEFAULT 0,\n"
    "    claimed_at REAL\n"
    ");\n"
    "CREATE TABLE blob_cache (\n"
    "    weights_sha256 TEXT NOT NULL,\n"
    "    model_config   TEXT NOT NULL,\n"
    "    calib          TEXT NOT NULL,\n"
    "    data           BLOB NOT NULL,\n"
    "    created_at     REAL NOT NULL,\n"
    "    PRIMARY KEY (weights_sha256, model_config, calib)\n"
    ");\n"
    "CREATE INDEX runs_unfinished ON runs(id) WHERE status IN ('queued', 'running');\n",
};

/* What the database header and catalogue say about whose file this is. */
typedef struct header {
    int version, app_id, objects;
} header;

/* The first statements that read the file: a file that is not SQLite fails here. */
static int query_int(qe_store *s, const char *path, const char *sql, int *v, char *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        *v = sqlite3_column_int(st, 0);
    else
        qe_err(err, "store: %s: %s", path, sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

static int read_header(qe_store *s, const char *path, header *h, char *err)
{
    if (query_int(s, path, "PRAGMA user_version", &h->version, err) != 0
        || query_int(s, path, "PRAGMA application_id", &h->app_id, err) != 0
        || query_int(s, path, "SELECT count(*) FROM sqlite_schema", &h->objects, err) != 0)
        return -1;
    return 0;
}

/* Refuses, before anything is written, files this build must not touch. */
static int check_header(const char *path, const header *h, char *err)
{
    if (h->version < 0 || (h->version == 0 ? h->objects != 0 : h->app_id != STORE_APP_ID))
        return qe_err(err, "store: %s is an SQLite database but not a quanteval one", path);
    if (h->version > QE_STORE_SCHEMA_VERSION)
        return qe_err(err,
                      "store: %s has schema version %d, newer than the %d this build knows; "
                      "use a newer quanteval",
                      path, h->version, QE_STORE_SCHEMA_VERSION);
    return 0;
}

static int enable_wal(qe_store *s, const char *path, char *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK)
        return store_sql_err(s, err, "store: journal_mode");
    int ok = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        /* An in-memory database (tests) has no WAL and needs none: nothing else can open it. */
        ok = mode && (strcmp(mode, "wal") == 0 || strcmp(mode, "memory") == 0);
        if (!ok)
            qe_err(err, "store: %s: cannot switch to WAL mode (journal mode stays %s)", path,
                   mode ? mode : "unknown");
    } else {
        store_sql_err(s, err, "store: journal_mode");
    }
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

static int migrate_from(qe_store *s, int version, char *err)
{
    for (int v = version; v < QE_STORE_SCHEMA_VERSION; v++) {
        if (sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL) != SQLITE_OK) {
            char what[64];
            snprintf(what, sizeof what, "store: migration %d -> %d", v, v + 1);
            return store_sql_err(s, err, what);
        }
    }
    char sql[96];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d",
             QE_STORE_SCHEMA_VERSION, STORE_APP_ID);
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return store_sql_err(s, err, "store: setting the schema version");
    return 0;
}

int store_schema_migrate(qe_store *s, const char *path, char *err)
{
    header h;
    if (read_header(s, path, &h, err) != 0 || check_header(path, &h, err) != 0
        || enable_wal(s, path, err) != 0)
        return -1;
    if (h.version == QE_STORE_SCHEMA_VERSION)
        return 0;

    /* All steps in one transaction: a crash mid-migration leaves the old version intact. The
     * header is read again under the write lock, since another process opening the same file
     * may have migrated it meanwhile. */
    if (store_begin(s, err) != 0)
        return -1;
    if (read_header(s, path, &h, err) != 0 || check_header(path, &h, err) != 0
        || migrate_from(s, h.version, err) != 0) {
        store_rollback(s);
        return -1;
    }
    return store_commit(s, err);
}
