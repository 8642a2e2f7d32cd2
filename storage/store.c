/*
 * store.c - the connection: opening, the prepared-statement cache, transactions and the small
 * conversions between C values and SQLite columns shared by the other store_*.c files.
 */
#include "store_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const status_names[] = {
    [QE_RUN_QUEUED] = "queued",
    [QE_RUN_RUNNING] = "running",
    [QE_RUN_DONE] = "done",
    [QE_RUN_FAILED] = "failed",
    [QE_RUN_CANCELLED] = "cancelled",
};

const char *qe_store_status_name(qe_run_status status)
{
    if ((unsigned)status >= sizeof status_names / sizeof status_names[0])
        return "unknown";
    return status_names[status];
}

int qe_store_status_parse(const char *name, qe_run_status *status)
{
    for (size_t i = 0; name && i < sizeof status_names / sizeof status_names[0]; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *status = (qe_run_status)i;
            return 0;
        }
    }
    return -1;
}

static int pragma(qe_store *s, const char *sql, char *err)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return store_sql_err(s, err, sql);
    return 0;
}

int qe_store_open(const char *path, qe_store **out, char *err)
{
    *out = NULL;
    if (!path || !*path)
        return qe_err(err, "store: empty database path");
    /* One handle per thread, but several threads each with their own: needs an SQLite built
     * thread-safe, as Debian's is. */
    if (!sqlite3_threadsafe())
        return qe_err(err, "store: SQLite was built without thread support");

    qe_store *s = qe_calloc(1, sizeof *s);
    /* NOMUTEX: the handle is used by one thread at a time (store.h), so SQLite's own
     * per-connection mutex would only cost. No SQLITE_OPEN_URI: the path is a plain file name. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
        qe_err(err, "store: cannot open %s: %s", path,
               s->db ? sqlite3_errmsg(s->db) : "out of memory");
        qe_store_close(s);
        return -1;
    }
    sqlite3_busy_timeout(s->db, QE_STORE_BUSY_MS);

    if (store_schema_migrate(s, path, err) != 0
        /* Per connection, and only outside a transaction, hence after the migration (which,
         * as SQLite recommends for schema changes, runs without foreign-key enforcement). */
        || pragma(s, "PRAGMA foreign_keys = ON", err) != 0
        /* In WAL mode NORMAL never corrupts and survives any process crash; only a power loss
         * may drop the last commits, which a resumed job simply evaluates again. */
        || pragma(s, "PRAGMA synchronous = NORMAL", err) != 0) {
        qe_store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void qe_store_close(qe_store *s)
{
    if (!s)
        return;
    for (int i = 0; i < STMT_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    sqlite3_close(s->db);
    free(s);
}

sqlite3_stmt *store_stmt(qe_store *s, enum store_stmt_id id, const char *sql, char *err)
{
    sqlite3_stmt *st = s->stmt[id];
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return st;
    }
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        store_sql_err(s, err, "store: prepare");
        return NULL;
    }
    s->stmt[id] = st;
    return st;
}

int store_sql_err(qe_store *s, char *err, const char *what)
{
    return qe_err(err, "%s: %s", what, sqlite3_errmsg(s->db));
}

int store_exec(qe_store *s, sqlite3_stmt *st, char *err)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        store_sql_err(s, err, "store");
        sqlite3_reset(st);
        return -1;
    }
    sqlite3_reset(st);
    return 0;
}

int store_begin(qe_store *s, char *err)
{
    sqlite3_stmt *st = store_stmt(s, STMT_BEGIN, "BEGIN IMMEDIATE", err);
    return st ? store_exec(s, st, err) : -1;
}

int store_commit(qe_store *s, char *err)
{
    sqlite3_stmt *st = store_stmt(s, STMT_COMMIT, "COMMIT", err);
    if (!st)
        return -1;
    if (store_exec(s, st, err) != 0) {
        /* A failed COMMIT may leave the transaction open; end it so the handle stays usable. */
        store_rollback(s);
        return -1;
    }
    return 0;
}

void store_rollback(qe_store *s)
{
    if (sqlite3_get_autocommit(s->db))
        return; /* SQLite already rolled back (some errors do that themselves) */
    sqlite3_stmt *st = store_stmt(s, STMT_ROLLBACK, "ROLLBACK", NULL);
    if (st)
        store_exec(s, st, NULL);
}

double store_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

char *store_column_str(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? qe_strdup((const char *)t) : NULL;
}

double store_column_real(sqlite3_stmt *st, int col)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return NAN;
    return sqlite3_column_double(st, col);
}

int store_bind_str(sqlite3_stmt *st, int col, const char *v)
{
    return v ? sqlite3_bind_text(st, col, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, col);
}

int store_bind_real(sqlite3_stmt *st, int col, double v)
{
    return isnan(v) ? sqlite3_bind_null(st, col) : sqlite3_bind_double(st, col, v);
}

int store_check_text(const char *what, const char *v, size_t max, int required, char *err)
{
    if (!v || !*v)
        return required ? qe_err(err, "store: %s is required", what) : 0;
    if (strnlen(v, max + 1) > max)
        return qe_err(err, "store: %s is longer than %zu bytes", what, max);
    return 0;
}

int store_check_sha256(const char *what, const char *v, char *err)
{
    if (!v)
        return 0;
    size_t n = strnlen(v, 65);
    if (n != 64 || strspn(v, "0123456789abcdef") != 64)
        return qe_err(err, "store: %s is not 64 lowercase hex digits", what);
    return 0;
}
