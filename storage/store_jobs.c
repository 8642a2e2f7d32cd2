/*
 * store_jobs.c - the daemon's job queue.
 *
 * A job is a run with source "server" plus a row in jobs holding the request it came from. The
 * queue is the set of such runs in status queued, served oldest first. The job's progress is
 * not stored here: it is the run's predictions, and a claimed job continues at
 * qe_store_run_next_index(). After a crash, qe_store_jobs_recover() turns the jobs the dead
 * daemon was running back into queued ones, so resuming is the ordinary claim path.
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#define JOB_PARAMS_MAX_LEN 65536

void qe_store_job_clear(qe_store_job *job)
{
    if (!job)
        return;
    free(job->params);
    memset(job, 0, sizeof *job);
}

int qe_store_job_submit(qe_store *s, const qe_store_run_info *info, const char *params,
                        int64_t *run_id, char *err)
{
    if (store_check_text("job parameters", params, JOB_PARAMS_MAX_LEN, 1, err) != 0)
        return -1;
    if (store_begin(s, err) != 0)
        return -1;
    int64_t id;
    if (store_run_insert(s, info, "server", &id, err) != 0)
        goto fail;
    /* The table's CHECK (json_valid) rejects malformed parameters. */
    sqlite3_stmt *st = store_stmt(s, STMT_JOB_INSERT,
                                  "INSERT INTO jobs(run_id, params) VALUES (?1, ?2)", err);
    if (!st)
        goto fail;
    sqlite3_bind_int64(st, 1, id);
    store_bind_str(st, 2, params);
    if (store_exec(s, st, err) != 0 || store_commit(s, err) != 0)
        goto fail;
    *run_id = id;
    return 0;

fail:
    store_rollback(s);
    return -1;
}

int qe_store_job_claim(qe_store *s, qe_store_job *job, int *found, char *err)
{
    *found = 0;
    memset(job, 0, sizeof *job);
    /* Finding and taking the job in one write transaction hands each job to one claimer. */
    if (store_begin(s, err) != 0)
        return -1;
    sqlite3_stmt *st = store_stmt(s, STMT_JOB_NEXT,
                                  "SELECT id FROM runs WHERE status = 'queued' "
                                  "AND id IN (SELECT run_id FROM jobs) ORDER BY id LIMIT 1",
                                  err);
    if (!st)
        goto fail;
    int rc = sqlite3_step(st);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        store_sql_err(s, err, "store: reading the job queue");
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return store_commit(s, err);
    if (rc != SQLITE_ROW || qe_store_run_start(s, id, -1, err) != 0)
        goto fail;

    st = store_stmt(s, STMT_JOB_TAKE,
                    "UPDATE jobs SET attempts = attempts + 1, claimed_at = ?2 WHERE run_id = ?1 "
                    "RETURNING params, attempts",
                    err);
    if (!st)
        goto fail;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_double(st, 2, store_now());
    if (sqlite3_step(st) != SQLITE_ROW) {
        store_sql_err(s, err, "store: claiming a job");
        sqlite3_reset(st);
        goto fail;
    }
    job->run_id = id;
    job->params = store_column_str(st, 0);
    job->attempts = sqlite3_column_int(st, 1);
    sqlite3_reset(st);
    if (store_commit(s, err) != 0) {
        qe_store_job_clear(job);
        return -1;
    }
    *found = 1;
    return 0;

fail:
    store_rollback(s);
    return -1;
}

int qe_store_job_get(qe_store *s, int64_t run_id, qe_store_job *job, int *found, char *err)
{
    *found = 0;
    memset(job, 0, sizeof *job);
    sqlite3_stmt *st = store_stmt(s, STMT_JOB_GET,
                                  "SELECT params, attempts FROM jobs WHERE run_id = ?1", err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        job->run_id = run_id;
        job->params = store_column_str(st, 0);
        job->attempts = sqlite3_column_int(st, 1);
        *found = 1;
    } else if (rc != SQLITE_DONE) {
        store_sql_err(s, err, "store: reading a job");
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int qe_store_jobs_recover(qe_store *s, int *requeued, char *err)
{
    *requeued = 0;
    sqlite3_stmt *st = store_stmt(s, STMT_JOBS_RECOVER,
                                  "UPDATE runs SET status = 'queued' WHERE status = 'running' "
                                  "AND id IN (SELECT run_id FROM jobs)",
                                  err);
    if (!st || store_exec(s, st, err) != 0)
        return -1;
    *requeued = sqlite3_changes(s->db);
    return 0;
}
