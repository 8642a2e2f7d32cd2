/*
 * store_internal.h - what the storage/ files share behind store.h: the connection, its cache of
 * prepared statements and small SQLite helpers. Not for use outside storage/.
 */
#ifndef QE_STORE_INTERNAL_H
#define QE_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store.h"

/* One slot per hot statement; each is prepared on first use and kept until close. */
enum store_stmt_id {
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_CONFIG_ENSURE,
    STMT_CONFIG_PUT,
    STMT_RUN_INSERT,
    STMT_RUN_START,
    STMT_RUN_STATE,
    STMT_RUN_PROGRESS,
    STMT_RUN_GAP,
    STMT_RUN_COUNT,
    STMT_RUN_FINISH,
    STMT_RUN_CANCEL,
    STMT_RUN_GET,
    STMT_RUNS_PAGE,
    STMT_RUNS_PAGE_CONFIG,
    STMT_RUNS_UNFINISHED,
    STMT_PRED_INSERT,
    STMT_PRED_GET,
    STMT_CLASS_ADD,
    STMT_JOB_INSERT,
    STMT_JOB_NEXT,
    STMT_JOB_TAKE,
    STMT_JOB_GET,
    STMT_JOBS_RECOVER,
    STMT_CACHE_PUT,
    STMT_CACHE_GET,
    STMT_COUNT
};

struct qe_store {
    sqlite3 *db;
    sqlite3_stmt *stmt[STMT_COUNT];
};

/* The cached statement of slot id (prepared from sql on first use), reset with its bindings
 * cleared. Callers sqlite3_reset it once done so that no read transaction stays open. */
sqlite3_stmt *store_stmt(qe_store *s, enum store_stmt_id id, const char *sql, char *err);
/* Steps st to completion (no rows expected) and resets it. */
int store_exec(qe_store *s, sqlite3_stmt *st, char *err);
/* Formats "<what>: <sqlite message>" into err and returns -1. */
int store_sql_err(qe_store *s, char *err, const char *what);

/* Write transactions start IMMEDIATE: taking the write lock up front makes a waiting writer
 * queue in the busy handler, whereas a deferred transaction that reads first and then writes
 * can fail with SQLITE_BUSY at once when another writer committed in between. */
int store_begin(qe_store *s, char *err);
int store_commit(qe_store *s, char *err);
/* Rolls back the open transaction; also used on paths that already failed, so it reports
 * nothing. */
void store_rollback(qe_store *s);

/* Wall-clock unix seconds. */
double store_now(void);
/* A column as a malloc'd string (NULL for SQL NULL) / as a double (NAN for SQL NULL). */
char *store_column_str(sqlite3_stmt *st, int col);
double store_column_real(sqlite3_stmt *st, int col);
/* Binds a string / a real, turning NULL / NAN into SQL NULL. */
int store_bind_str(sqlite3_stmt *st, int col, const char *v);
int store_bind_real(sqlite3_stmt *st, int col, double v);
/* Checks an optional (required = 0) or required text argument against a length bound. */
int store_check_text(const char *what, const char *v, size_t max, int required, char *err);
/* Checks an optional sha256 hex digest. */
int store_check_sha256(const char *what, const char *v, char *err);

/* Brings the schema to QE_STORE_SCHEMA_VERSION (store_schema.c). */
int store_schema_migrate(qe_store *s, const char *path, char *err);
/* Inserts a run with the given status inside the caller's transaction (store_runs.c). */
int store_run_insert(qe_store *s, const qe_store_run_info *info, const char *source,
                     int64_t *id, char *err);

#endif
