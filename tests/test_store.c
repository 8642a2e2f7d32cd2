/*
 * test_store.c - the SQLite run history (storage/store.h).
 *
 * Besides the plain API checks, two tests exercise what the store exists for: a writer process
 * SIGKILLed in the middle of a 600-image run must resume to exactly the counters of an
 * uninterrupted run, and two threads writing one database through their own handles must never
 * see SQLITE_BUSY. The 600 images are the dev set's real paths and labels (shared/data).
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qtest.h"
#include "store.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static const char *db_path(const char *name)
{
    static char buf[4][4096];
    static int slot;
    const char *dir = qtest_build("test_store");
    mkdir(dir, 0777);
    char *b = buf[slot++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s.db", dir, name);
    /* Start from nothing: the database and its WAL side files. */
    char side[4200];
    unlink(b);
    snprintf(side, sizeof side, "%s-wal", b);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", b);
    unlink(side);
    return b;
}

/* Raw SQLite access, to build and inspect databases behind the store's back. */
static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        fprintf(stderr, "raw_open %s: %s\n", path, db ? sqlite3_errmsg(db) : "?");
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static int raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "raw_exec: %s\n", msg ? msg : "?");
    sqlite3_free(msg);
    return rc == SQLITE_OK ? 0 : -1;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = INT64_MIN;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* All rows of a query, columns joined by '|' and rows by '\n', into buf. */
static void raw_dump(sqlite3 *db, const char *sql, char *buf, size_t cap)
{
    sqlite3_stmt *st;
    size_t len = 0;
    buf[0] = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return;
    while (sqlite3_step(st) == SQLITE_ROW && len < cap) {
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const char *t = (const char *)sqlite3_column_text(st, c);
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", c ? "|" : "", t ? t : "NULL");
            if (len >= cap)
                break;
        }
        if (len < cap)
            len += (size_t)snprintf(buf + len, cap - len, "\n");
    }
    sqlite3_finalize(st);
}

static int64_t raw_path_int(const char *path, const char *sql)
{
    sqlite3 *db = raw_open(path);
    int64_t v = db ? raw_int(db, sql) : INT64_MIN;
    sqlite3_close(db);
    return v;
}

static qe_store_run_info cli_info(const char *config)
{
    return (qe_store_run_info){
        .model_config = config,
        .dataset_name = "dev",
        .dataset_path = "/data/dev",
        .source = "cli",
        .build_id = "test",
        .weights_sha256 = "5e2f1d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
    };
}

static qe_store_finish finish_done(void)
{
    return (qe_store_finish){QE_RUN_DONE, 123.5, NAN, NAN, NAN, NULL};
}

/* Deterministic predictions: image idx of class label is a top-1 hit, a top-5-only hit or a
 * miss depending on a hash of idx, so the counters exercise all three cases. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void make_pred(qe_store_pred *p, int64_t idx, const char *path, int32_t label)
{
    uint64_t h = mix((uint64_t)idx);
    int where = (int)(h % 7); /* 0: top-1, 1..4: rank where+1, 5-6: absent */
    for (int k = 0; k < 5; k++)
        p->top5[k] = (int32_t)((label + 1 + 37 * (k + 1) + (int)((h >> 8) % 300)) % 1000);
    for (int k = 0; k < 5; k++)
        if (p->top5[k] == label)
            p->top5[k] = (label + 500 + k) % 1000;
    if (where < 5)
        p->top5[where] = label;
    p->path = path;
    p->label = label;
}

typedef struct counts {
    int64_t done, c1, c5;
} counts;

static counts expected_counts(const qe_store_pred *preds, size_t n)
{
    counts c = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        int hit5 = 0;
        for (int k = 0; k < 5; k++)
            hit5 |= preds[i].top5[k] == preds[i].label;
        c.done++;
        c.c1 += preds[i].top5[0] == preds[i].label;
        c.c5 += hit5;
    }
    return c;
}

typedef struct class_list {
    qe_store_class rows[1000];
    int n;
} class_list;

static int collect_class(void *ctx, const qe_store_class *c)
{
    class_list *l = ctx;
    if (l->n >= 1000)
        return -1;
    l->rows[l->n++] = *c;
    return 0;
}

typedef struct pred_check {
    const qe_store_pred *want;
    int64_t n, seen, mismatches;
} pred_check;

static int check_pred(void *ctx, int64_t idx, const qe_store_pred *p)
{
    pred_check *pc = ctx;
    if (idx != pc->seen || idx >= pc->n) {
        pc->mismatches++;
        return -1;
    }
    const qe_store_pred *w = &pc->want[idx];
    int same = strcmp(w->path, p->path) == 0 && w->label == p->label;
    for (int k = 0; k < 5; k++)
        same = same && w->top5[k] == p->top5[k];
    pc->mismatches += !same;
    pc->seen++;
    return 0;
}

/* A started run with images_total images. */
static int64_t started_run(qe_store *s, const char *config, int64_t images_total)
{
    char err[QE_ERR_LEN];
    qe_store_run_info info = cli_info(config);
    int64_t id = 0;
    if (qe_store_run_create(s, &info, &id, err) != 0
        || qe_store_run_start(s, id, images_total, err) != 0) {
        fprintf(stderr, "started_run: %s\n", err);
        return 0;
    }
    return id;
}

/* ---- schema ------------------------------------------------------------------------------- */

static void test_open_and_reopen(void)
{
    char err[QE_ERR_LEN];
    const char *path = db_path("open");
    qe_store *s = NULL;
    REQUIRE(qe_store_open(path, &s, err) == 0);
    int64_t id = started_run(s, "resnet18_fp32", 10);
    CHECK(id > 0);
    qe_store_close(s);

    CHECK(raw_path_int(path, "PRAGMA user_version") == QE_STORE_SCHEMA_VERSION);
    sqlite3 *db = raw_open(path);
    REQUIRE(db);
    char mode[64];
    raw_dump(db, "PRAGMA journal_mode", mode, sizeof mode);
    CHECKF(strcmp(mode, "wal\n") == 0, "journal mode %s", mode);
    sqlite3_close(db);

    /* Reopening a current database migrates nothing and keeps the data. */
    REQUIRE(qe_store_open(path, &s, err) == 0);
    qe_store_run r;
    int found = 0;
    REQUIRE(qe_store_run_get(s, id, &r, &found, err) == 0 && found);
    CHECK(r.status == QE_RUN_RUNNING && r.images_total == 10 && r.images_done == 0);
    CHECK(strcmp(r.model_config, "resnet18_fp32") == 0 && strcmp(r.source, "cli") == 0);
    CHECK(r.created_at > 1.6e9 && r.started_at >= r.created_at && isnan(r.finished_at));
    CHECK(isnan(r.top1) && isnan(r.fp32_top1) && r.error == NULL && r.calib == NULL);
    qe_store_run_clear(&r);
    CHECK(qe_store_run_get(s, id + 100, &r, &found, err) == 0 && !found);
    qe_store_close(s);

    /* The file is created, its directory is not. */
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.db", qtest_build("test_store"));
    CHECK(qe_store_open(missing, &s, err) == -1 && s == NULL);

    /* A file that is not SQLite, and an SQLite file of someone else, are refused untouched. */
    const char *junk = db_path("junk");
    FILE *f = fopen(junk, "wb");
    REQUIRE(f);
    for (int i = 0; i < 4096; i++)
        fputc(i * 7 & 0xff, f);
    fclose(f);
    CHECK(qe_store_open(junk, &s, err) == -1);

    const char *foreign = db_path("foreign");
    db = raw_open(foreign);
    REQUIRE(db);
    CHECK(raw_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (42);") == 0);
    sqlite3_close(db);
    CHECK(qe_store_open(foreign, &s, err) == -1);
    CHECKF(strstr(err, "not a quanteval") != NULL, "%s", err);
    db = raw_open(foreign);
    REQUIRE(db);
    CHECK(raw_int(db, "SELECT x FROM t") == 42 && raw_int(db, "PRAGMA user_version") == 0);
    raw_dump(db, "PRAGMA journal_mode", mode, sizeof mode);
    CHECKF(strcmp(mode, "delete\n") == 0, "foreign file switched to %s", mode);
    sqlite3_close(db);
}

/* Schema version 1 exactly as the first release wrote it: a frozen fixture, never edited. */
static const char v1_schema[] =
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
    ") WITHOUT ROWID;\n"
    "PRAGMA user_version = 1;\n"
    "PRAGMA application_id = 1363498572;\n"; /* "QEVL" */

/* Every table's columns and every index, to compare a migrated schema with a fresh one. */
static void schema_of(const char *path, char *buf, size_t cap)
{
    sqlite3 *db = raw_open(path);
    if (!db) {
        buf[0] = 0;
        return;
    }
    raw_dump(db,
             "SELECT m.type, m.name, p.name, p.type, p.\"notnull\", p.dflt_value, p.pk "
             "FROM sqlite_schema AS m LEFT JOIN pragma_table_info(m.name) AS p "
             "WHERE m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
             buf, cap);
    sqlite3_close(db);
}

static void test_migrate_from_v1(void)
{
    char err[QE_ERR_LEN];
    const char *old = db_path("v1");
    sqlite3 *db = raw_open(old);
    REQUIRE(db);
    REQUIRE(raw_exec(db, v1_schema) == 0);
    REQUIRE(raw_exec(db,
                     "INSERT INTO model_configs(name) VALUES ('resnet50_w8a8');"
                     "INSERT INTO runs(model_config, dataset_name, dataset_path, source, status, "
                     "  created_at, images_total, images_done, correct1, correct5, top1, top5) "
                     "VALUES ('resnet50_w8a8', 'dev', '/d', 'cli', 'done', 1700000000.5, 2, 2, "
                     "  1, 2, 0.5, 1.0);"
                     "INSERT INTO run_classes VALUES (1, 7, 2, 1, 2);"
                     "INSERT INTO predictions VALUES (1, 0, 'a.JPEG', 7, 7, 1, 2, 3, 4);"
                     "INSERT INTO predictions VALUES (1, 1, 'b.JPEG', 7, 1, 7, 2, 3, 4);")
            == 0);
    sqlite3_close(db);

    qe_store *s = NULL;
    err[0] = 0;
    int rc = qe_store_open(old, &s, err);
    CHECKF(rc == 0, "%s", err);
    REQUIRE(rc == 0);
    qe_store_run r;
    int found = 0;
    REQUIRE(qe_store_run_get(s, 1, &r, &found, err) == 0 && found);
    CHECK(r.status == QE_RUN_DONE && r.images_done == 2 && r.correct1 == 1 && r.correct5 == 2);
    CHECK(r.top1 == 0.5 && r.created_at == 1700000000.5);
    CHECK(isnan(r.fp32_top1) && isnan(r.agreement));
    qe_store_run_clear(&r);
    class_list cl = {.n = 0};
    CHECK(qe_store_run_classes(s, 1, collect_class, &cl, err) == 0);
    CHECK(cl.n == 1 && cl.rows[0].label == 7 && cl.rows[0].total == 2 && cl.rows[0].correct5 == 2);

    /* What versions 2 and 3 added works on the migrated file. */
    int64_t id = started_run(s, "resnet50_w8a8", 0);
    qe_store_finish fin = {QE_RUN_DONE, 10.0, 0.75, 0.875, 0.9375, NULL};
    CHECK(id == 2 && qe_store_run_finish(s, id, &fin, err) == 0);
    REQUIRE(qe_store_run_get(s, id, &r, &found, err) == 0 && found);
    CHECK(r.fp32_top1 == 0.75 && r.fp32_top5 == 0.875 && r.agreement == 0.9375);
    CHECK(r.images_per_second == 10.0 && r.finished_at >= r.started_at);
    qe_store_run_clear(&r);
    qe_store_cache_key key = {cli_info("x").weights_sha256, "resnet50_w8a8", "tf_enhanced"};
    CHECK(qe_store_cache_put(s, &key, "enc", 3, err) == 0);
    qe_store_close(s);

    /* A migrated database has exactly the schema of a fresh one. */
    const char *fresh = db_path("fresh");
    REQUIRE(qe_store_open(fresh, &s, err) == 0);
    qe_store_close(s);
    static char a[16384], b[16384];
    schema_of(old, a, sizeof a);
    schema_of(fresh, b, sizeof b);
    CHECK(strlen(a) > 500);
    CHECKF(strcmp(a, b) == 0, "migrated schema:\n%s\nfresh schema:\n%s", a, b);
    CHECK(raw_path_int(old, "PRAGMA user_version") == QE_STORE_SCHEMA_VERSION);
}

static void test_refuse_newer(void)
{
    char err[QE_ERR_LEN];
    const char *path = db_path("newer");
    qe_store *s = NULL;
    REQUIRE(qe_store_open(path, &s, err) == 0);
    qe_store_close(s);
    sqlite3 *db = raw_open(path);
    REQUIRE(db);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", QE_STORE_SCHEMA_VERSION + 1);
    REQUIRE(raw_exec(db, sql) == 0);
    sqlite3_close(db);

    err[0] = 0;
    CHECK(qe_store_open(path, &s, err) == -1 && s == NULL);
    CHECKF(strstr(err, "newer") != NULL, "%s", err);
    CHECK(raw_path_int(path, "PRAGMA user_version") == QE_STORE_SCHEMA_VERSION + 1);
}

/* ---- runs --------------------------------------------------------------------------------- */

static void test_batches(void)
{
    char err[QE_ERR_LEN];
    qe_store *s = NULL;
    REQUIRE(qe_store_open(db_path("batches"), &s, err) == 0);
    enum { N = 24 };
    qe_store_pred preds[N];
    char paths[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(paths[i], sizeof paths[i], "c%d/img%02d.JPEG", i % 5, i);
        make_pred(&preds[i], i, paths[i], 10 * (i % 5));
    }
    int64_t id = started_run(s, "resnet18_w8a8", N);
    REQUIRE(id > 0);

    CHECK(qe_store_run_add_batch(s, id, 0, 10, preds, err) == 0);
    CHECK(qe_store_run_add_batch(s, id, 10, 14, preds + 10, err) == 0);
    /* Past images_total, negative labels and missing paths are refused whole. */
    CHECK(qe_store_run_add_batch(s, id, 20, 5, preds + 10, err) == -1);
    qe_store_pred bad = preds[0];
    bad.label = -1;
    CHECK(qe_store_run_add_batch(s, id, 0, 1, &bad, err) == -1);
    bad = preds[0];
    bad.path = NULL;
    CHECK(qe_store_run_add_batch(s, id, 0, 1, &bad, err) == -1);
    CHECK(qe_store_run_add_batch(s, id + 1, 0, 1, preds, err) == -1);

    counts want = expected_counts(preds, N);
    CHECK(want.c1 > 0 && want.c5 > want.c1 && want.c5 < N); /* all three cases occur */
    qe_store_run r;
    int found;
    REQUIRE(qe_store_run_get(s, id, &r, &found, err) == 0 && found);
    CHECK(r.images_done == want.done && r.correct1 == want.c1 && r.correct5 == want.c5);
    CHECK(r.top1 == (double)want.c1 / N && r.top5 == (double)want.c5 / N);
    qe_store_run_clear(&r);

    int64_t next = -1;
    CHECK(qe_store_run_next_index(s, id, &next, err) == 0 && next == N);

    /* Per-class rows, recomputed here from the predictions. */
    class_list cl = {.n = 0};
    CHECK(qe_store_run_classes(s, id, collect_class, &cl, err) == 0);
    CHECK(cl.n == 5);
    for (int c = 0; c < cl.n && c < 5; c++) {
        int64_t total = 0, c1 = 0, c5 = 0;
        for (int i = c; i < N; i += 5) {
            counts one = expected_counts(&preds[i], 1);
            total++;
            c1 += one.c1;
            c5 += one.c5;
        }
        CHECK(cl.rows[c].label == 10 * c && cl.rows[c].total == total);
        CHECK(cl.rows[c].correct1 == c1 && cl.rows[c].correct5 == c5);
    }

    pred_check pc = {preds, N, 0, 0};
    CHECK(qe_store_run_predictions(s, id, check_pred, &pc, err) == 0);
    CHECK(pc.seen == N && pc.mismatches == 0);

    /* A finished run takes no more work and cannot finish twice. */
    qe_store_finish fin = finish_done();
    CHECK(qe_store_run_finish(s, id, &fin, err) == 0);
    CHECK(qe_store_run_add_batch(s, id, 0, 1, preds, err) == -1);
    CHECK(qe_store_run_finish(s, id, &fin, err) == -1);
    CHECK(qe_store_run_start(s, id, -1, err) == -1);
    qe_store_finish failed = {QE_RUN_FAILED, NAN, NAN, NAN, NAN, NULL};
    int64_t id2 = started_run(s, "resnet18_w8a8", 0);
    CHECK(qe_store_run_finish(s, id2, &failed, err) == -1); /* failing needs a message */
    failed.error = "decode error: truncated JPEG";
    CHECK(qe_store_run_finish(s, id2, &failed, err) == 0);
    REQUIRE(qe_store_run_get(s, id2, &r, &found, err) == 0 && found);
    CHECK(r.status == QE_RUN_FAILED && r.error && strcmp(r.error, failed.error) == 0);
    qe_store_run_clear(&r);
    qe_store_close(s);
}

static void test_idempotent_batches(void)
{
    char err[QE_ERR_LEN];
    qe_store *s = NULL;
    REQUIRE(qe_store_open(db_path("idempotent"), &s, err) == 0);
    enum { N = 40 };
    qe_store_pred preds[N];
    for (int i = 0; i < N; i++)
        make_pred(&preds[i], i, "same/path.JPEG", i % 3);
    int64_t id = started_run(s, "resnet50_fp32", N);
    REQUIRE(id > 0);

    CHECK(qe_store_run_add_batch(s, id, 0, 8, preds, err) == 0);
    CHECK(qe_store_run_add_batch(s, id, 0, 8, preds, err) == 0);     /* replayed batch */
    CHECK(qe_store_run_add_batch(s, id, 4, 8, preds + 4, err) == 0); /* overlaps 4..7 */
    counts want = expected_counts(preds, 12);
    qe_store_run r;
    int found;
    REQUIRE(qe_store_run_get(s, id, &r, &found, err) == 0 && found);
    CHECK(r.images_done == 12 && r.correct1 == want.c1 && r.correct5 == want.c5);
    qe_store_run_clear(&r);
    class_list cl = {.n = 0};
    CHECK(qe_store_run_classes(s, id, collect_class, &cl, err) == 0);
    int64_t total = 0;
    for (int c = 0; c < cl.n; c++)
        total += cl.rows[c].total;
    CHECK(cl.n == 3 && total == 12);

    /* Out-of-order batches leave a hole; the resume point is the hole. */
    int64_t next = -1;
    CHECK(qe_store_run_add_batch(s, id, 20, 10, preds + 20, err) == 0);
    CHECK(qe_store_run_next_index(s, id, &next, err) == 0 && next == 12);

    /* A replay that disagrees with what was recorded fails as a whole: the fresh images 12..19
     * before the disagreeing 20 in the same batch are not recorded either. */
    qe_store_pred changed[9];
    memcpy(changed, preds + 12, sizeof changed);
    changed[8].top5[0] = (changed[8].top5[0] + 1) % 1000;
    CHECK(qe_store_run_add_batch(s, id, 12, 9, changed, err) == -1);
    CHECKF(strstr(err, "different prediction") != NULL, "%s", err);
    CHECK(qe_store_run_next_index(s, id, &next, err) == 0 && next == 12);
    REQUIRE(qe_store_run_get(s, id, &r, &found, err) == 0 && found);
    CHECK(r.images_done == 22);
    qe_store_run_clear(&r);

    CHECK(qe_store_run_add_batch(s, id, 12, 8, preds + 12, err) == 0);
    CHECK(qe_store_run_next_index(s, id, &next, err) == 0 && next == 30);
    int64_t id2 = started_run(s, "resnet50_fp32", N);
    CHECK(qe_store_run_add_batch(s, id2, 3, 2, preds + 3, err) == 0);
    CHECK(qe_store_run_next_index(s, id2, &next, err) == 0 && next == 0);
    CHECK(qe_store_run_next_index(s, id2 + 1, &next, err) == -1);
    qe_store_close(s);
}

static void test_pagination(void)
{
    char err[QE_ERR_LEN];
    qe_store *s = NULL;
    REQUIRE(qe_store_open(db_path("pages"), &s, err) == 0);
    int64_t ids[7];
    for (int i = 0; i < 7; i++) {
        qe_store_run_info info = cli_info(i % 2 ? "resnet50_w4a8" : "resnet18_fp32");
        REQUIRE(qe_store_run_create(s, &info, &ids[i], err) == 0);
        CHECK(i == 0 || ids[i] > ids[i - 1]);
    }
    qe_store_finish fin = finish_done();
    CHECK(qe_store_run_start(s, ids[0], 0, err) == 0);
    CHECK(qe_store_run_finish(s, ids[0], &fin, err) == 0);
    CHECK(qe_store_run_start(s, ids[3], 0, err) == 0);

    /* Walk all pages of three, newest first. */
    int64_t before = 0, seen[8];
    int nseen = 0, pages = 0;
    for (;;) {
        qe_store_run *runs;
        size_t n;
        REQUIRE(qe_store_runs_list(s, NULL, 3, before, &runs, &n, err) == 0);
        for (size_t i = 0; i < n && nseen < 8; i++)
            seen[nseen++] = runs[i].id;
        if (n)
            before = runs[n - 1].id;
        qe_store_runs_free(runs, n);
        if (n == 0)
            break;
        pages++;
        CHECK(n == 3 || pages == 3);
    }
    CHECK(pages == 3 && nseen == 7);
    for (int i = 0; i < nseen; i++)
        CHECK(seen[i] == ids[6 - i]);

    qe_store_run *runs;
    size_t n;
    REQUIRE(qe_store_runs_list(s, "resnet50_w4a8", 10, 0, &runs, &n, err) == 0);
    CHECK(n == 3 && runs[0].id == ids[5] && runs[1].id == ids[3] && runs[2].id == ids[1]);
    CHECK(n < 2 || strcmp(runs[1].model_config, "resnet50_w4a8") == 0);
    qe_store_runs_free(runs, n);
    REQUIRE(qe_store_runs_list(s, "resnet50_w4a8", 1, ids[3], &runs, &n, err) == 0);
    CHECK(n == 1 && runs[0].id == ids[1]);
    qe_store_runs_free(runs, n);
    REQUIRE(qe_store_runs_list(s, "no_such_config", 5, 0, &runs, &n, err) == 0);
    CHECK(n == 0);
    qe_store_runs_free(runs, n);
    CHECK(qe_store_runs_list(s, NULL, 0, 0, &runs, &n, err) == -1);
    REQUIRE(qe_store_runs_list(s, NULL, 1 << 30, 0, &runs, &n, err) == 0);
    CHECK(n == 7);
    qe_store_runs_free(runs, n);

    /* Everything but the finished run is unfinished, oldest first. */
    int64_t *open_ids;
    REQUIRE(qe_store_runs_unfinished(s, &open_ids, &n, err) == 0);
    CHECK(n == 6);
    for (size_t i = 0; i < n && i < 6; i++)
        CHECK(open_ids[i] == ids[i + 1]);
    free(open_ids);
    qe_store_close(s);
}

static int collect_config(void *ctx, const qe_store_config *c)
{
    char *buf = ctx;
    size_t len = strlen(buf);
    snprintf(buf + len, 1024 - len, "%s:%s:%s;", c->name, c->arch ? c->arch : "-",
             c->precision ? c->precision : "-");
    return 0;
}

static void test_configs(void)
{
    char err[QE_ERR_LEN];
    qe_store *s = NULL;
    REQUIRE(qe_store_open(db_path("configs"), &s, err) == 0);
    qe_store_config c = {"resnet50_w8a8", "resnet50", "w8a8", "{\"weights\":8,\"acts\":8}"};
    CHECK(qe_store_config_put(s, &c, err) == 0);
    c.description = "{not json";
    CHECK(qe_store_config_put(s, &c, err) == -1);
    c = (qe_store_config){"resnet18_fp32", "resnet18", "fp32", NULL};
    CHECK(qe_store_config_put(s, &c, err) == 0);
    qe_store_run_info info = cli_info("resnet18_w4a8"); /* not described: gets a bare row */
    int64_t id;
    CHECK(qe_store_run_create(s, &info, &id, err) == 0);
    char buf[1024] = "";
    CHECK(qe_store_configs_each(s, collect_config, buf, err) == 0);
    CHECKF(strcmp(buf, "resnet18_fp32:resnet18:fp32;resnet18_w4a8:-:-;resnet50_w8a8:resnet50:w8a8;")
               == 0,
           "%s", buf);

    /* Bad run descriptions are refused before anything is written. */
    info.source = "cron";
    CHECK(qe_store_run_create(s, &info, &id, err) == -1);
    info = cli_info("resnet18_fp32");
    info.weights_sha256 = "ABC";
    CHECK(qe_store_run_create(s, &info, &id, err) == -1);
    info = cli_info("");
    CHECK(qe_store_run_create(s, &info, &id, err) == -1);
    qe_store_run *runs;
    size_t n;
    REQUIRE(qe_store_runs_list(s, NULL, 10, 0, &runs, &n, err) == 0);
    CHECK(n == 1);
    qe_store_runs_free(runs, n);
    qe_store_close(s);
}

/* ---- jobs and cache ----------------------------------------------------------------------- */

static void test_jobs(void)
{
    char err[QE_ERR_LEN], path[4096];
    snprintf(path, sizeof path, "%s", db_path("jobs"));
    qe_store *s = NULL;
    REQUIRE(qe_store_open(path, &s, err) == 0);
    qe_store_run_info info = cli_info("resnet18_w8a8");
    int64_t a, b, cli;
    const char *params = "{\"config\":\"resnet18_w8a8\",\"limit\":100}";
    REQUIRE(qe_store_job_submit(s, &info, params, &a, err) == 0);
    REQUIRE(qe_store_job_submit(s, &info, "{\"config\":\"resnet18_w8a8\"}", &b, err) == 0);
    REQUIRE(qe_store_run_create(s, &info, &cli, err) == 0);
    int64_t unused, *open_ids;
    size_t n_open;
    CHECK(qe_store_job_submit(s, &info, "{broken", &unused, err) == -1);
    REQUIRE(qe_store_runs_unfinished(s, &open_ids, &n_open, err) == 0);
    CHECK(n_open == 3); /* the refused job left no run behind */
    free(open_ids);

    qe_store_run r;
    int found;
    REQUIRE(qe_store_run_get(s, a, &r, &found, err) == 0 && found);
    CHECK(strcmp(r.source, "server") == 0 && r.status == QE_RUN_QUEUED);
    qe_store_run_clear(&r);

    qe_store_job job;
    REQUIRE(qe_store_job_claim(s, &job, &found, err) == 0 && found);
    CHECK(job.run_id == a && job.attempts == 1 && strstr(job.params, "\"limit\":100") != NULL);
    qe_store_job_clear(&job);
    REQUIRE(qe_store_job_claim(s, &job, &found, err) == 0 && found);
    CHECK(job.run_id == b && job.attempts == 1);
    qe_store_job_clear(&job);
    REQUIRE(qe_store_job_claim(s, &job, &found, err) == 0);
    CHECK(!found && job.params == NULL); /* the CLI run is not a job */
    CHECK(qe_store_job_get(s, cli, &job, &found, err) == 0 && !found);

    /* Job a makes progress, then the daemon dies: recovery requeues both running jobs (not
     * the CLI run), and the next claim resumes a where it stopped. */
    qe_store_pred preds[16];
    for (int i = 0; i < 16; i++)
        make_pred(&preds[i], i, "x.JPEG", 3);
    CHECK(qe_store_run_start(s, a, 100, err) == 0);
    CHECK(qe_store_run_add_batch(s, a, 0, 16, preds, err) == 0);
    qe_store_close(s);
    REQUIRE(qe_store_open(path, &s, err) == 0);
    int requeued = -1;
    CHECK(qe_store_jobs_recover(s, &requeued, err) == 0 && requeued == 2);
    REQUIRE(qe_store_job_claim(s, &job, &found, err) == 0 && found);
    CHECK(job.run_id == a && job.attempts == 2);
    qe_store_job_clear(&job);
    int64_t next = -1;
    CHECK(qe_store_run_next_index(s, a, &next, err) == 0 && next == 16);

    /* Cancelling stops the worker at its next batch, and a cancelled job is not claimed. */
    int cancelled = 0;
    CHECK(qe_store_run_cancel(s, a, &cancelled, err) == 0 && cancelled);
    CHECK(qe_store_run_add_batch(s, a, 16, 1, preds, err) == -1);
    CHECKF(strstr(err, "cancelled") != NULL, "%s", err);
    CHECK(qe_store_run_cancel(s, a, &cancelled, err) == 0 && !cancelled);
    CHECK(qe_store_run_cancel(s, 9999, &cancelled, err) == -1);
    qe_store_finish fin = finish_done();
    CHECK(qe_store_run_finish(s, a, &fin, err) == -1); /* stays cancelled */
    REQUIRE(qe_store_job_claim(s, &job, &found, err) == 0 && found);
    CHECK(job.run_id == b && job.attempts == 2);
    qe_store_job_clear(&job);
    REQUIRE(qe_store_job_claim(s, &job, &found, err) == 0);
    CHECK(!found);
    qe_store_close(s);
}

static void test_cache(void)
{
    char err[QE_ERR_LEN];
    qe_store *s = NULL;
    REQUIRE(qe_store_open(db_path("cache"), &s, err) == 0);
    const char *sha = cli_info("x").weights_sha256;
    qe_store_cache_key k1 = {sha, "resnet18_w8a8", "tf_enhanced,n=500"};
    qe_store_cache_key k2 = {sha, "resnet18_w8a8", "tf,n=500"};
    uint8_t *data;
    size_t len;
    int found;
    CHECK(qe_store_cache_get(s, &k1, &data, &len, &found, err) == 0 && !found && !data);

    uint8_t blob[3000];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (uint8_t)(i * 31 + 7); /* includes zero bytes */
    CHECK(qe_store_cache_put(s, &k1, blob, sizeof blob, err) == 0);
    CHECK(qe_store_cache_put(s, &k2, "", 0, err) == 0);
    REQUIRE(qe_store_cache_get(s, &k1, &data, &len, &found, err) == 0 && found);
    CHECK(len == sizeof blob && memcmp(data, blob, len) == 0);
    free(data);
    REQUIRE(qe_store_cache_get(s, &k2, &data, &len, &found, err) == 0 && found);
    CHECK(len == 0 && data && data[0] == 0);
    free(data);

    CHECK(qe_store_cache_put(s, &k1, "{\"v\":2}", 7, err) == 0); /* replaces */
    REQUIRE(qe_store_cache_get(s, &k1, &data, &len, &found, err) == 0 && found);
    CHECK(len == 7 && strcmp((char *)data, "{\"v\":2}") == 0);
    free(data);

    qe_store_cache_key bad = {"not-a-sha", "resnet18_w8a8", ""};
    CHECK(qe_store_cache_put(s, &bad, "x", 1, err) == -1);
    CHECK(qe_store_cache_get(s, &bad, &data, &len, &found, err) == -1);
    qe_store_close(s);
}

/* ---- crash and resume --------------------------------------------------------------------- */

enum { DEV_N = 600, BATCH = 8 };

typedef struct dev_set {
    char paths[DEV_N][64];
    qe_store_pred preds[DEV_N];
} dev_set;

/* The dev images in ground-truth order, with their class index from the class list. */
static int load_dev(dev_set *d)
{
    static char wnids[1000][16];
    FILE *f = fopen(qtest_shared("data/imagenet-classes.tsv"), "r");
    if (!f)
        return -1;
    char line[1024];
    int nclass = 0, idx;
    char wnid[16];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%d\t%15s", &idx, wnid) == 2 && idx == nclass && nclass < 1000)
            memcpy(wnids[nclass++], wnid, sizeof wnid);
    fclose(f);
    if (nclass != 1000)
        return -1;

    f = fopen(qtest_shared("data/dev-flat-ground-truth.txt"), "r");
    if (!f)
        return -1;
    int n = 0;
    char file[40];
    while (n < DEV_N && fscanf(f, "%39s %15s", file, wnid) == 2) {
        int label = -1;
        for (int c = 0; c < 1000 && label < 0; c++)
            if (strcmp(wnids[c], wnid) == 0)
                label = c;
        if (label < 0)
            break;
        snprintf(d->paths[n], sizeof d->paths[n], "dev/%s/%s", wnid, file);
        make_pred(&d->preds[n], n, d->paths[n], label);
        n++;
    }
    fclose(f);
    return n == DEV_N ? 0 : -1;
}

static int add_range(qe_store *s, int64_t id, const dev_set *d, int64_t from, int64_t to, char *err)
{
    for (int64_t i = from; i < to; i += BATCH) {
        size_t n = (size_t)(to - i < BATCH ? to - i : BATCH);
        if (qe_store_run_add_batch(s, id, i, n, &d->preds[i], err) != 0)
            return -1;
    }
    return 0;
}

/* The child stops inside the write transaction of batch CRASH_BATCH, after its predictions
 * and class rows are written and while it updates the run's counters, and tells the parent,
 * which then SIGKILLs it: the kill provably lands in the middle of a batch. An SQLite update
 * hook, installed on the child's connection through sqlite3_auto_extension, finds the spot
 * without any test hook in the store. (The hook sees rowid tables only, hence the runs row.) */
enum { CRASH_BATCH = 38 };
static int crash_fd = -1;
static int crash_runs_updates;

static void crash_on_update(void *ctx, int op, const char *dbname, const char *table,
                            sqlite3_int64 rowid)
{
    if (op != SQLITE_UPDATE || strcmp(table, "runs") != 0 || ++crash_runs_updates < CRASH_BATCH)
        return;
    if (write(crash_fd, "!", 1) != 1)
        _exit(5);
    for (;;)
        pause();
}

static int crash_install_hook(sqlite3 *db, char **msg, const void *api)
{
    sqlite3_update_hook(db, crash_on_update, NULL);
    return SQLITE_OK;
}

/* The evaluating process: records batches with a pause each, as a real evaluation would.
 * Never returns. */
static void crash_child(const char *path, int64_t id, const dev_set *d)
{
    char err[QE_ERR_LEN];
    qe_store *s = NULL;
    sqlite3_auto_extension((void (*)(void))crash_install_hook);
    if (qe_store_open(path, &s, err) != 0)
        _exit(3);
    for (int64_t i = 0; i < DEV_N; i += BATCH) {
        if (qe_store_run_add_batch(s, id, i, BATCH, &d->preds[i], err) != 0) {
            fprintf(stderr, "crash child: %s\n", err);
            _exit(4);
        }
        struct timespec pause = {0, 2 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    _exit(0); /* not reached if the hook fired */
}

static int count_pred(void *ctx, int64_t idx, const qe_store_pred *p)
{
    (*(int64_t *)ctx)++;
    return 0;
}

static void test_crash_resume(void)
{
    char err[QE_ERR_LEN];
    static dev_set d;
    REQUIRE(load_dev(&d) == 0);

    /* The uninterrupted run, on its own database. */
    qe_store *ref = NULL;
    REQUIRE(qe_store_open(db_path("uninterrupted"), &ref, err) == 0);
    int64_t ref_id = started_run(ref, "resnet18_w8a8", DEV_N);
    REQUIRE(ref_id > 0);
    CHECK(add_range(ref, ref_id, &d, 0, DEV_N, err) == 0);
    qe_store_finish fin = finish_done();
    CHECK(qe_store_run_finish(ref, ref_id, &fin, err) == 0);
    qe_store_run want;
    int found;
    REQUIRE(qe_store_run_get(ref, ref_id, &want, &found, err) == 0 && found);
    static class_list want_classes;
    want_classes.n = 0;
    CHECK(qe_store_run_classes(ref, ref_id, collect_class, &want_classes, err) == 0);
    qe_store_close(ref);

    /* The reference itself matches the predictions and the dev set's 3 images per class. */
    counts c = expected_counts(d.preds, DEV_N);
    CHECK(want.images_done == DEV_N && want.correct1 == c.c1 && want.correct5 == c.c5);
    CHECK(want_classes.n == 200);
    for (int i = 0; i < want_classes.n; i++)
        CHECK(want_classes.rows[i].total == 3);

    /* The interrupted run: created here, recorded by a child that is SIGKILLed midway. */
    const char *path = db_path("crash");
    qe_store *s = NULL;
    REQUIRE(qe_store_open(path, &s, err) == 0);
    int64_t id = started_run(s, "resnet18_w8a8", DEV_N);
    qe_store_close(s); /* no handle may cross fork() */
    REQUIRE(id > 0);
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        crash_fd = fds[1];
        crash_child(path, id, &d);
    }
    close(fds[1]);
    struct pollfd pfd = {fds[0], POLLIN, 0};
    char sig = 0;
    int in_batch = poll(&pfd, 1, 60 * 1000) == 1 && read(fds[0], &sig, 1) == 1 && sig == '!';
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(fds[0]);
    CHECK(in_batch);
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %#x", status);
    const int64_t committed = (CRASH_BATCH - 1) * BATCH;

    /* Restart: the run is still open, its progress is whole batches, and it resumes. */
    REQUIRE(qe_store_open(path, &s, err) == 0);
    int64_t *open_ids;
    size_t n_open;
    REQUIRE(qe_store_runs_unfinished(s, &open_ids, &n_open, err) == 0);
    CHECK(n_open == 1 && open_ids[0] == id);
    free(open_ids);
    qe_store_run got;
    REQUIRE(qe_store_run_get(s, id, &got, &found, err) == 0 && found);
    int64_t next = -1;
    REQUIRE(qe_store_run_next_index(s, id, &next, err) == 0);
    int64_t recorded = 0;
    CHECK(qe_store_run_predictions(s, id, count_pred, &recorded, err) == 0);
    CHECKF(got.status == QE_RUN_RUNNING && got.images_done == committed && next == committed
               && recorded == committed,
           "after the kill: %lld done, %lld predictions, resume at %lld; want %lld",
           (long long)got.images_done, (long long)recorded, (long long)next, (long long)committed);
    qe_store_run_clear(&got);

    /* The resumed worker re-submits the batch it believes was in flight, then continues. */
    CHECK(qe_store_run_start(s, id, DEV_N, err) == 0);
    int64_t from = next >= BATCH ? next - BATCH : 0;
    CHECK(add_range(s, id, &d, from, DEV_N, err) == 0);
    CHECK(qe_store_run_finish(s, id, &fin, err) == 0);

    REQUIRE(qe_store_run_get(s, id, &got, &found, err) == 0 && found);
    CHECK(got.status == QE_RUN_DONE && got.images_done == want.images_done);
    CHECK(got.correct1 == want.correct1 && got.correct5 == want.correct5);
    CHECK(got.top1 == want.top1 && got.top5 == want.top5);
    qe_store_run_clear(&got);
    static class_list got_classes;
    got_classes.n = 0;
    CHECK(qe_store_run_classes(s, id, collect_class, &got_classes, err) == 0);
    CHECK(got_classes.n == want_classes.n);
    for (int i = 0; i < got_classes.n && i < want_classes.n; i++) {
        const qe_store_class *g = &got_classes.rows[i], *w = &want_classes.rows[i];
        CHECKF(g->label == w->label && g->total == w->total && g->correct1 == w->correct1
                   && g->correct5 == w->correct5,
               "class row %d", i);
    }
    pred_check pc = {d.preds, DEV_N, 0, 0};
    CHECK(qe_store_run_predictions(s, id, check_pred, &pc, err) == 0);
    CHECK(pc.seen == DEV_N && pc.mismatches == 0);
    qe_store_run_clear(&want);
    qe_store_close(s);

    sqlite3 *db = raw_open(path);
    REQUIRE(db);
    char ok[64];
    raw_dump(db, "PRAGMA integrity_check", ok, sizeof ok);
    CHECKF(strcmp(ok, "ok\n") == 0, "%s", ok);
    sqlite3_close(db);
}

/* ---- concurrency -------------------------------------------------------------------------- */

typedef struct worker {
    const char *path;
    const dev_set *d;
    int64_t id;
    int failures;
    char err[QE_ERR_LEN];
} worker;

/* Each thread owns a handle and a run: it records its run in small batches while reading the
 * shared history and writing the shared cache, so both writers and readers overlap. */
static void *worker_main(void *arg)
{
    worker *w = arg;
    qe_store *s = NULL;
    if (qe_store_open(w->path, &s, w->err) != 0) {
        w->failures++;
        return NULL;
    }
    char calib[32];
    snprintf(calib, sizeof calib, "calib-%lld", (long long)w->id);
    qe_store_cache_key key = {cli_info("x").weights_sha256, "resnet18_w8a8", calib};
    for (int64_t i = 0; i < DEV_N && w->failures == 0; i += 4) {
        if (qe_store_run_add_batch(s, w->id, i, 4, &w->d->preds[i], w->err) != 0)
            w->failures++;
        qe_store_run *runs;
        size_t n;
        if (qe_store_runs_list(s, NULL, 10, 0, &runs, &n, w->err) != 0 || n != 2)
            w->failures++;
        else
            qe_store_runs_free(runs, n);
        if (i % 40 == 0 && qe_store_cache_put(s, &key, &i, sizeof i, w->err) != 0)
            w->failures++;
    }
    qe_store_close(s);
    return NULL;
}

static void test_concurrent(void)
{
    char err[QE_ERR_LEN];
    static dev_set d;
    REQUIRE(load_dev(&d) == 0);
    const char *path = db_path("concurrent");
    qe_store *s = NULL;
    REQUIRE(qe_store_open(path, &s, err) == 0);
    worker w[2] = {{.path = path, .d = &d}, {.path = path, .d = &d}};
    for (int t = 0; t < 2; t++)
        w[t].id = started_run(s, t ? "resnet50_w8a8" : "resnet18_w8a8", DEV_N);
    qe_store_close(s);

    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        REQUIRE(pthread_create(&th[t], NULL, worker_main, &w[t]) == 0);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 2; t++)
        CHECKF(w[t].failures == 0, "thread %d: %s", t, w[t].err);

    REQUIRE(qe_store_open(path, &s, err) == 0);
    counts c = expected_counts(d.preds, DEV_N);
    for (int t = 0; t < 2; t++) {
        qe_store_run r;
        int found;
        REQUIRE(qe_store_run_get(s, w[t].id, &r, &found, err) == 0 && found);
        CHECK(r.images_done == DEV_N && r.correct1 == c.c1 && r.correct5 == c.c5);
        qe_store_run_clear(&r);
    }
    qe_store_close(s);
}

int main(void)
{
    test_open_and_reopen();
    test_migrate_from_v1();
    test_refuse_newer();
    test_batches();
    test_idempotent_batches();
    test_pagination();
    test_configs();
    test_jobs();
    test_cache();
    test_crash_resume();
    test_concurrent();
    return qtest_done("test_store");
}
