/*
 * store_runs.c - runs, their per-class counts and per-image predictions.
 *
 * The predictions table is the truth about a run's progress: an image is counted (in the run's
 * counters and its class row) in the same transaction that inserts its prediction, and only if
 * that insert created the row. Hence images_done == count of predictions at every commit, and
 * replaying a batch after a crash changes nothing.
 */
#include "store_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on text arguments, generous for their purpose: they only keep a caller that forwards
 * user input from storing megabytes per run. */
#define NAME_MAX_LEN 128
#define DATASET_MAX_LEN 256
#define PATH_MAX_LEN 4096
#define CALIB_MAX_LEN 4096
#define ERROR_MAX_LEN 16384

#define RUN_COLUMNS                                                                         \
    "id, model_config, dataset_name, dataset_path, source, status, created_at, started_at, " \
    "finished_at, images_total, images_done, correct1, correct5, image_limit, top1, top5, "  \
    "images_per_second, fp32_top1, fp32_top5, agreement, build_id, weights_sha256, "         \
    "encodings_sha256, calib, error, synthetic"

static void read_run(sqlite3_stmt *st, qe_store_run *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    r->model_config = store_column_str(st, 1);
    r->dataset_name = store_column_str(st, 2);
    r->dataset_path = store_column_str(st, 3);
    r->source = store_column_str(st, 4);
    /* The CHECK constraint allows only known words, so the parse cannot fail. */
    qe_store_status_parse((const char *)sqlite3_column_text(st, 5), &r->status);
    r->created_at = store_column_real(st, 6);
    r->started_at = store_column_real(st, 7);
    r->finished_at = store_column_real(st, 8);
    r->images_total = sqlite3_column_int64(st, 9);
    r->images_done = sqlite3_column_int64(st, 10);
    r->correct1 = sqlite3_column_int64(st, 11);
    r->correct5 = sqlite3_column_int64(st, 12);
    r->image_limit = sqlite3_column_int64(st, 13);
    r->top1 = store_column_real(st, 14);
    r->top5 = store_column_real(st, 15);
    r->images_per_second = store_column_real(st, 16);
    r->fp32_top1 = store_column_real(st, 17);
    r->fp32_top5 = store_column_real(st, 18);
    r->agreement = store_column_real(st, 19);
    r->build_id = store_column_str(st, 20);
    r->weights_sha256 = store_column_str(st, 21);
    r->encodings_sha256 = store_column_str(st, 22);
    r->calib = store_column_str(st, 23);
    r->error = store_column_str(st, 24);
    r->synthetic = sqlite3_column_int(st, 25);
}

void qe_store_run_clear(qe_store_run *r)
{
    if (!r)
        return;
    free(r->model_config);
    free(r->dataset_name);
    free(r->dataset_path);
    free(r->source);
    free(r->build_id);
    free(r->weights_sha256);
    free(r->encodings_sha256);
    free(r->calib);
    free(r->error);
    memset(r, 0, sizeof *r);
}

void qe_store_runs_free(qe_store_run *runs, size_t n)
{
    for (size_t i = 0; runs && i < n; i++)
        qe_store_run_clear(&runs[i]);
    free(runs);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static int check_info(const qe_store_run_info *info, char *err)
{
    if (!info)
        return qe_err(err, "store: no run info");
    if (store_check_text("model config", info->model_config, NAME_MAX_LEN, 1, err) != 0
        || store_check_text("dataset name", info->dataset_name, DATASET_MAX_LEN, 1, err) != 0
        || store_check_text("dataset path", info->dataset_path, PATH_MAX_LEN, 1, err) != 0
        || store_check_text("build id", info->build_id, NAME_MAX_LEN, 0, err) != 0
        || store_check_text("calibration settings", info->calib, CALIB_MAX_LEN, 0, err) != 0
        || store_check_sha256("weights sha256", info->weights_sha256, err) != 0
        || store_check_sha256("encodings sha256", info->encodings_sha256, err) != 0)
        return -1;
    if (info->images_total < 0 || info->image_limit < 0)
        return qe_err(err, "store: negative image count");
    return 0;
}

int store_run_insert(qe_store *s, const qe_store_run_info *info, const char *source,
                     int64_t *id, char *err)
{
    if (check_info(info, err) != 0)
        return -1;
    sqlite3_stmt *st = store_stmt(s, STMT_CONFIG_ENSURE,
                                  "INSERT INTO model_configs(name) VALUES (?1) "
                                  "ON CONFLICT(name) DO NOTHING",
                                  err);
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, info->model_config, -1, SQLITE_TRANSIENT);
    if (store_exec(s, st, err) != 0)
        return -1;

    st = store_stmt(s, STMT_RUN_INSERT,
                    "INSERT INTO runs(model_config, dataset_name, dataset_path, source, status, "
                    "created_at, images_total, image_limit, build_id, weights_sha256, "
                    "encodings_sha256, calib, synthetic) "
                    "VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    err);
    if (!st)
        return -1;
    store_bind_str(st, 1, info->model_config);
    store_bind_str(st, 2, info->dataset_name);
    store_bind_str(st, 3, info->dataset_path);
    store_bind_str(st, 4, source);
    sqlite3_bind_double(st, 5, store_now());
    sqlite3_bind_int64(st, 6, info->images_total);
    sqlite3_bind_int64(st, 7, info->image_limit);
    store_bind_str(st, 8, info->build_id);
    store_bind_str(st, 9, info->weights_sha256);
    store_bind_str(st, 10, info->encodings_sha256);
    store_bind_str(st, 11, info->calib);
    sqlite3_bind_int(st, 12, info->synthetic != 0);
    if (store_exec(s, st, err) != 0)
        return -1;
    *id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int qe_store_run_create(qe_store *s, const qe_store_run_info *info, int64_t *id, char *err)
{
    if (!info || !info->source
        || (strcmp(info->source, "cli") != 0 && strcmp(info->source, "server") != 0))
        return qe_err(err, "store: a run's source is \"cli\" or \"server\"");
    if (store_begin(s, err) != 0)
        return -1;
    if (store_run_insert(s, info, info->source, id, err) != 0) {
        store_rollback(s);
        return -1;
    }
    return store_commit(s, err);
}

typedef struct run_state {
    qe_run_status status;
    int64_t images_total;
} run_state;

/* Reads what decides whether a run accepts work; fails with "no run N" if it does not exist. */
static int read_state(qe_store *s, int64_t id, run_state *rs, char *err)
{
    sqlite3_stmt *st = store_stmt(s, STMT_RUN_STATE,
                                  "SELECT status, images_total FROM runs WHERE id = ?1", err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        qe_store_status_parse((const char *)sqlite3_column_text(st, 0), &rs->status);
        rs->images_total = sqlite3_column_int64(st, 1);
    } else if (rc == SQLITE_DONE) {
        qe_err(err, "store: no run %" PRId64, id);
    } else {
        store_sql_err(s, err, "store: reading a run");
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* The error of an update that matched no live run: says whether the run is missing or ended. */
static int not_live_err(qe_store *s, int64_t id, char *err)
{
    run_state rs;
    if (read_state(s, id, &rs, err) != 0)
        return -1;
    return qe_err(err, "store: run %" PRId64 " is %s", id, qe_store_status_name(rs.status));
}

int qe_store_run_start(qe_store *s, int64_t id, int64_t images_total, char *err)
{
    if (images_total < -1)
        return qe_err(err, "store: negative image count");
    sqlite3_stmt *st = store_stmt(s, STMT_RUN_START,
                                  "UPDATE runs SET status = 'running', "
                                  "started_at = coalesce(started_at, ?2), "
                                  "images_total = CASE WHEN ?3 >= 0 THEN ?3 ELSE images_total END "
                                  "WHERE id = ?1 AND status IN ('queued', 'running')",
                                  err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_double(st, 2, store_now());
    sqlite3_bind_int64(st, 3, images_total);
    if (store_exec(s, st, err) != 0)
        return -1;
    return sqlite3_changes(s->db) == 1 ? 0 : not_live_err(s, id, err);
}

int qe_store_run_finish(qe_store *s, int64_t id, const qe_store_finish *fin, char *err)
{
    if (!fin || (fin->status != QE_RUN_DONE && fin->status != QE_RUN_FAILED
                 && fin->status != QE_RUN_CANCELLED))
        return qe_err(err, "store: a run finishes as done, failed or cancelled");
    if (fin->status == QE_RUN_FAILED && (!fin->error || !*fin->error))
        return qe_err(err, "store: a failed run needs an error message");
    if (store_check_text("error", fin->error, ERROR_MAX_LEN, 0, err) != 0)
        return -1;
    const double fractions[3] = {fin->fp32_top1, fin->fp32_top5, fin->agreement};
    for (int i = 0; i < 3; i++)
        if (!isnan(fractions[i]) && !(fractions[i] >= 0.0 && fractions[i] <= 1.0))
            return qe_err(err, "store: FP32 figures are fractions in [0, 1]");
    if (!isnan(fin->images_per_second) && !(fin->images_per_second >= 0.0))
        return qe_err(err, "store: negative images per second");

    sqlite3_stmt *st = store_stmt(s, STMT_RUN_FINISH,
                                  "UPDATE runs SET status = ?2, finished_at = ?3, "
                                  "images_per_second = ?4, fp32_top1 = ?5, fp32_top5 = ?6, "
                                  "agreement = ?7, error = ?8 "
                                  "WHERE id = ?1 AND status IN ('queued', 'running')",
                                  err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    store_bind_str(st, 2, qe_store_status_name(fin->status));
    sqlite3_bind_double(st, 3, store_now());
    store_bind_real(st, 4, fin->images_per_second);
    store_bind_real(st, 5, fin->fp32_top1);
    store_bind_real(st, 6, fin->fp32_top5);
    store_bind_real(st, 7, fin->agreement);
    store_bind_str(st, 8, fin->error && *fin->error ? fin->error : NULL);
    if (store_exec(s, st, err) != 0)
        return -1;
    return sqlite3_changes(s->db) == 1 ? 0 : not_live_err(s, id, err);
}

int qe_store_run_cancel(qe_store *s, int64_t id, int *cancelled, char *err)
{
    *cancelled = 0;
    sqlite3_stmt *st = store_stmt(s, STMT_RUN_CANCEL,
                                  "UPDATE runs SET status = 'cancelled', finished_at = ?2 "
                                  "WHERE id = ?1 AND status IN ('queued', 'running')",
                                  err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_double(st, 2, store_now());
    if (store_exec(s, st, err) != 0)
        return -1;
    if (sqlite3_changes(s->db) == 1) {
        *cancelled = 1;
        return 0;
    }
    run_state rs;
    return read_state(s, id, &rs, err); /* ended already: not an error; missing: one */
}

/* ---- progress ----------------------------------------------------------------------------- */

/* Inserts one prediction; *fresh = 1 if it was not recorded before. A re-recorded index must
 * carry the same prediction. */
static int record_pred(qe_store *s, int64_t id, int64_t idx, const qe_store_pred *p, int *fresh,
                       char *err)
{
    sqlite3_stmt *st = store_stmt(s, STMT_PRED_INSERT,
                                  "INSERT INTO predictions(run_id, idx, path, label, "
                                  "pred1, pred2, pred3, pred4, pred5) "
                                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
                                  "ON CONFLICT(run_id, idx) DO NOTHING",
                                  err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, idx);
    store_bind_str(st, 3, p->path);
    sqlite3_bind_int(st, 4, p->label);
    for (int k = 0; k < 5; k++)
        sqlite3_bind_int(st, 5 + k, p->top5[k]);
    if (store_exec(s, st, err) != 0)
        return -1;
    *fresh = sqlite3_changes(s->db) == 1;
    if (*fresh)
        return 0;

    st = store_stmt(s, STMT_PRED_GET,
                    "SELECT path, label, pred1, pred2, pred3, pred4, pred5 FROM predictions "
                    "WHERE run_id = ?1 AND idx = ?2",
                    err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, idx);
    if (sqlite3_step(st) != SQLITE_ROW) {
        store_sql_err(s, err, "store: reading a prediction");
        sqlite3_reset(st);
        return -1;
    }
    const char *path = (const char *)sqlite3_column_text(st, 0);
    int same = path && strcmp(path, p->path) == 0 && sqlite3_column_int(st, 1) == p->label;
    for (int k = 0; k < 5; k++)
        same = same && sqlite3_column_int(st, 2 + k) == p->top5[k];
    sqlite3_reset(st);
    if (!same)
        return qe_err(err, "store: run %" PRId64 " image %" PRId64
                      " was already recorded with a different prediction", id, idx);
    return 0;
}

static int add_to_class(qe_store *s, int64_t id, int32_t label, int hit1, int hit5, char *err)
{
    sqlite3_stmt *st = store_stmt(s, STMT_CLASS_ADD,
                                  "INSERT INTO run_classes(run_id, label, total, correct1, "
                                  "correct5) VALUES (?1, ?2, 1, ?3, ?4) "
                                  "ON CONFLICT(run_id, label) DO UPDATE SET total = total + 1, "
                                  "correct1 = correct1 + excluded.correct1, "
                                  "correct5 = correct5 + excluded.correct5",
                                  err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, label);
    sqlite3_bind_int(st, 3, hit1);
    sqlite3_bind_int(st, 4, hit5);
    return store_exec(s, st, err);
}

static int add_to_run(qe_store *s, int64_t id, int64_t done, int64_t c1, int64_t c5, char *err)
{
    /* SET expressions see the row before the update, so the new accuracies are computed from
     * the old counts plus the deltas. */
    sqlite3_stmt *st = store_stmt(s, STMT_RUN_COUNT,
                                  "UPDATE runs SET images_done = images_done + ?2, "
                                  "correct1 = correct1 + ?3, correct5 = correct5 + ?4, "
                                  "top1 = CAST(correct1 + ?3 AS REAL) / (images_done + ?2), "
                                  "top5 = CAST(correct5 + ?4 AS REAL) / (images_done + ?2) "
                                  "WHERE id = ?1",
                                  err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, done);
    sqlite3_bind_int64(st, 3, c1);
    sqlite3_bind_int64(st, 4, c5);
    return store_exec(s, st, err);
}

static int check_batch(int64_t first_idx, size_t n, const qe_store_pred *preds, char *err)
{
    if (first_idx < 0 || (n && !preds) || (uint64_t)n > (uint64_t)(INT64_MAX - first_idx))
        return qe_err(err, "store: bad batch of %zu images at index %" PRId64, n, first_idx);
    for (size_t i = 0; i < n; i++) {
        if (store_check_text("image path", preds[i].path, PATH_MAX_LEN, 1, err) != 0)
            return -1;
        if (preds[i].label < 0)
            return qe_err(err, "store: image %" PRId64 " has a negative label",
                          first_idx + (int64_t)i);
    }
    return 0;
}

int qe_store_run_add_batch(qe_store *s, int64_t id, int64_t first_idx, size_t n,
                           const qe_store_pred *preds, char *err)
{
    if (check_batch(first_idx, n, preds, err) != 0 || store_begin(s, err) != 0)
        return -1;
    run_state rs;
    if (read_state(s, id, &rs, err) != 0)
        goto fail;
    if (rs.status != QE_RUN_RUNNING) {
        qe_err(err, "store: run %" PRId64 " is %s, not running", id,
               qe_store_status_name(rs.status));
        goto fail;
    }
    if (rs.images_total > 0 && first_idx + (int64_t)n > rs.images_total) {
        qe_err(err, "store: run %" PRId64 " has %" PRId64 " images, batch ends at %" PRId64, id,
               rs.images_total, first_idx + (int64_t)n);
        goto fail;
    }

    int64_t done = 0, c1 = 0, c5 = 0;
    for (size_t i = 0; i < n; i++) {
        const qe_store_pred *p = &preds[i];
        int fresh;
        if (record_pred(s, id, first_idx + (int64_t)i, p, &fresh, err) != 0)
            goto fail;
        if (!fresh)
            continue;
        int hit1 = p->top5[0] == p->label, hit5 = 0;
        for (int k = 0; k < 5; k++)
            hit5 |= p->top5[k] == p->label;
        if (add_to_class(s, id, p->label, hit1, hit5, err) != 0)
            goto fail;
        done++;
        c1 += hit1;
        c5 += hit5;
    }
    if (done && add_to_run(s, id, done, c1, c5, err) != 0)
        goto fail;
    return store_commit(s, err);

fail:
    store_rollback(s);
    return -1;
}

int qe_store_run_next_index(qe_store *s, int64_t id, int64_t *next, char *err)
{
    sqlite3_stmt *st = store_stmt(s, STMT_RUN_PROGRESS,
                                  "SELECT images_done, "
                                  "(SELECT max(idx) FROM predictions WHERE run_id = ?1) "
                                  "FROM runs WHERE id = ?1",
                                  err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE)
            qe_err(err, "store: no run %" PRId64, id);
        else
            store_sql_err(s, err, "store: reading progress");
        sqlite3_reset(st);
        return -1;
    }
    int64_t done = sqlite3_column_int64(st, 0);
    int64_t max_idx = sqlite3_column_type(st, 1) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 1);
    sqlite3_reset(st);
    /* images_done distinct indices >= 0 whose largest is images_done - 1 are exactly
     * 0 .. images_done - 1: the usual in-order case needs no scan. */
    if (max_idx + 1 == done) {
        *next = done;
        return 0;
    }

    st = store_stmt(s, STMT_RUN_GAP,
                    "SELECT CASE WHEN NOT EXISTS "
                    "(SELECT 1 FROM predictions WHERE run_id = ?1 AND idx = 0) THEN 0 "
                    "ELSE (SELECT min(p.idx) + 1 FROM predictions AS p WHERE p.run_id = ?1 "
                    "AND NOT EXISTS (SELECT 1 FROM predictions AS q "
                    "WHERE q.run_id = ?1 AND q.idx = p.idx + 1)) END",
                    err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *next = sqlite3_column_int64(st, 0);
    else
        store_sql_err(s, err, "store: reading progress");
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* ---- reading ------------------------------------------------------------------------------ */

int qe_store_run_get(qe_store *s, int64_t id, qe_store_run *run, int *found, char *err)
{
    *found = 0;
    memset(run, 0, sizeof *run);
    sqlite3_stmt *st = store_stmt(s, STMT_RUN_GET,
                                  "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?1", err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        read_run(st, run);
        *found = 1;
    } else if (rc != SQLITE_DONE) {
        store_sql_err(s, err, "store: reading a run");
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int qe_store_runs_list(qe_store *s, const char *model_config, int limit, int64_t before_id,
                       qe_store_run **runs, size_t *n, char *err)
{
    *runs = NULL;
    *n = 0;
    if (limit < 1)
        return qe_err(err, "store: a page holds at least one run");
    if (limit > QE_STORE_LIST_MAX)
        limit = QE_STORE_LIST_MAX;
    if (store_check_text("model config", model_config, NAME_MAX_LEN, 0, err) != 0)
        return -1;
    if (before_id <= 0)
        before_id = INT64_MAX;

    /* Two statements rather than "(?1 IS NULL OR model_config = ?1)": SQLite plans one query
     * for every binding, and the OR would keep it off both the rowid range and the
     * (model_config, id) index. */
    sqlite3_stmt *st;
    if (model_config) {
        st = store_stmt(s, STMT_RUNS_PAGE_CONFIG,
                        "SELECT " RUN_COLUMNS " FROM runs WHERE model_config = ?1 AND id < ?2 "
                        "ORDER BY id DESC LIMIT ?3",
                        err);
        if (st)
            store_bind_str(st, 1, model_config);
    } else {
        st = store_stmt(s, STMT_RUNS_PAGE,
                        "SELECT " RUN_COLUMNS " FROM runs WHERE id < ?2 "
                        "ORDER BY id DESC LIMIT ?3",
                        err);
    }
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 2, before_id);
    sqlite3_bind_int(st, 3, limit);

    qe_store_run *out = qe_calloc((size_t)limit, sizeof *out);
    size_t count = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        read_run(st, &out[count++]);
    if (rc != SQLITE_DONE) {
        store_sql_err(s, err, "store: listing runs");
        sqlite3_reset(st);
        qe_store_runs_free(out, count);
        return -1;
    }
    sqlite3_reset(st);
    *runs = out;
    *n = count;
    return 0;
}

int qe_store_runs_unfinished(qe_store *s, int64_t **ids, size_t *n, char *err)
{
    *ids = NULL;
    *n = 0;
    sqlite3_stmt *st = store_stmt(s, STMT_RUNS_UNFINISHED,
                                  "SELECT id FROM runs WHERE status IN ('queued', 'running') "
                                  "ORDER BY id",
                                  err);
    if (!st)
        return -1;
    int64_t *out = NULL;
    size_t count = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? 2 * cap : 16;
            out = qe_realloc(out, cap * sizeof *out);
        }
        out[count++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        free(out);
        return store_sql_err(s, err, "store: listing unfinished runs");
    }
    *ids = out;
    *n = count;
    return 0;
}

/* The walks prepare their own statement instead of using the cache, so that the callback may
 * use the handle (even the same walk) while the statement is still stepping. */
static sqlite3_stmt *walk_prepare(qe_store *s, const char *sql, int64_t id, char *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        store_sql_err(s, err, "store: prepare");
        return NULL;
    }
    sqlite3_bind_int64(st, 1, id);
    return st;
}

static int walk_end(qe_store *s, sqlite3_stmt *st, int rc, char *err)
{
    if (rc == SQLITE_ROW)
        qe_err(err, "store: stopped by callback");
    else if (rc != SQLITE_DONE)
        store_sql_err(s, err, "store: reading a run");
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

int qe_store_run_classes(qe_store *s, int64_t id, qe_store_class_fn fn, void *ctx, char *err)
{
    sqlite3_stmt *st = walk_prepare(s,
                                    "SELECT label, total, correct1, correct5 FROM run_classes "
                                    "WHERE run_id = ?1 ORDER BY label",
                                    id, err);
    if (!st)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        qe_store_class c = {
            .label = sqlite3_column_int(st, 0),
            .total = sqlite3_column_int64(st, 1),
            .correct1 = sqlite3_column_int64(st, 2),
            .correct5 = sqlite3_column_int64(st, 3),
        };
        if (fn(ctx, &c) != 0)
            break;
    }
    return walk_end(s, st, rc, err);
}

int qe_store_run_predictions(qe_store *s, int64_t id, qe_store_pred_fn fn, void *ctx, char *err)
{
    sqlite3_stmt *st = walk_prepare(s,
                                    "SELECT idx, path, label, pred1, pred2, pred3, pred4, pred5 "
                                    "FROM predictions WHERE run_id = ?1 ORDER BY idx",
                                    id, err);
    if (!st)
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        qe_store_pred p = {
            .path = (const char *)sqlite3_column_text(st, 1),
            .label = sqlite3_column_int(st, 2),
        };
        for (int k = 0; k < 5; k++)
            p.top5[k] = sqlite3_column_int(st, 3 + k);
        if (!p.path)
            p.path = ""; /* NOT NULL column; only an out-of-memory text conversion gets here */
        if (fn(ctx, sqlite3_column_int64(st, 0), &p) != 0)
            break;
    }
    return walk_end(s, st, rc, err);
}
