/* store — the connection pool and the statement cache. */
#include "store/store_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <mysqld_error.h>

#include "log/log.h"

struct store {
    struct store_config cfg;
    char *host, *user, *password, *database; /* owned copies behind cfg */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t n;
    struct store__conn *conns;
};

/* The SQL of each prepared statement, in enum store__stmt order. */
static const char *const stmt_sql[STMT_COUNT] = {
    [STMT_TASK_INSERT] =
        "INSERT INTO tasks (id, user_id, type, status, priority, attempts, max_attempts, "
        "timeout_ms, payload, ordering_key, callback_url, traceparent, created_at, updated_at, "
        "run_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [STMT_TASK_MARK_QUEUED] = "UPDATE tasks SET status = 'QUEUED', updated_at = UTC_TIMESTAMP(6) "
                              "WHERE id = ? AND status = 'PENDING'",
    [STMT_TASK_GET] = "SELECT " STORE__TASK_COLUMNS " FROM tasks WHERE id = ?",
    [STMT_TASK_CLAIM] =
        "UPDATE tasks SET status = 'RUNNING', attempts = attempts + 1, worker_id = ?, "
        "lease_until = UTC_TIMESTAMP(6) + INTERVAL GREATEST(?, IFNULL(timeout_ms * 1000 + "
        "5000000, 0)) MICROSECOND, started_at = UTC_TIMESTAMP(6), "
        "updated_at = UTC_TIMESTAMP(6) WHERE id = ? AND (status IN ('PENDING', 'QUEUED', "
        "'RETRYING') OR (status = 'RUNNING' AND lease_until < UTC_TIMESTAMP(6)))",
    [STMT_TASK_STATUS] = "SELECT status FROM tasks WHERE id = ?",
    [STMT_ATTEMPT_INSERT] = "INSERT INTO task_attempts (task_id, attempt, worker_id, started_at, "
                            "outcome) VALUES (?, ?, ?, UTC_TIMESTAMP(6), 'running')",
    [STMT_ATTEMPT_EXPIRE] = "UPDATE task_attempts SET outcome = 'lease_expired', finished_at = "
                            "UTC_TIMESTAMP(6) WHERE task_id = ? AND attempt < ? AND outcome = "
                            "'running'",
    [STMT_TASK_FINISH] =
        "UPDATE tasks SET status = ?, result = ?, last_error = COALESCE(?, last_error), "
        "run_at = COALESCE(?, run_at), finished_at = IF(? <> 0, UTC_TIMESTAMP(6), NULL), "
        "lease_until = NULL, updated_at = UTC_TIMESTAMP(6) "
        "WHERE id = ? AND attempts = ? AND status = 'RUNNING'",
    [STMT_ATTEMPT_FINISH] = "UPDATE task_attempts SET outcome = ?, error = ?, finished_at = "
                            "UTC_TIMESTAMP(6) WHERE task_id = ? AND attempt = ? AND outcome = "
                            "'running'",
    [STMT_TASK_RELAY] = "SELECT " STORE__TASK_COLUMNS " FROM tasks WHERE status = 'PENDING' AND "
                        "created_at < ? ORDER BY created_at LIMIT ? FOR UPDATE SKIP LOCKED",
    /* affected rows: 1 claimed, 2 an expired claim replaced, 0 a live claim exists.
     * expires_at is assigned last: the IFs before it read its old value */
    [STMT_IDEM_CLAIM] =
        "INSERT INTO idempotency_keys (user_id, method, route, idem_key, fingerprint, task_id, "
        "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6), ?) ON DUPLICATE KEY "
        "UPDATE fingerprint = IF(expires_at < UTC_TIMESTAMP(6), VALUES(fingerprint), "
        "fingerprint), task_id = IF(expires_at < UTC_TIMESTAMP(6), VALUES(task_id), task_id), "
        "response_code = IF(expires_at < UTC_TIMESTAMP(6), NULL, response_code), "
        "response_body = IF(expires_at < UTC_TIMESTAMP(6), NULL, response_body), "
        "created_at = IF(expires_at < UTC_TIMESTAMP(6), VALUES(created_at), created_at), "
        "expires_at = IF(expires_at < UTC_TIMESTAMP(6), VALUES(expires_at), expires_at)",
    [STMT_IDEM_GET] = "SELECT fingerprint, task_id, response_code, response_body FROM "
                      "idempotency_keys WHERE user_id = ? AND method = ? AND route = ? AND "
                      "idem_key = ?",
    [STMT_IDEM_RESPOND] = "UPDATE idempotency_keys SET response_code = ?, response_body = ? "
                          "WHERE user_id = ? AND method = ? AND route = ? AND idem_key = ?",
    [STMT_IDEM_PURGE] = "DELETE FROM idempotency_keys WHERE expires_at < UTC_TIMESTAMP(6) LIMIT ?",
    [STMT_USER_INSERT] =
        "INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)",
    [STMT_USER_BY_EMAIL] = "SELECT id, password_hash FROM users WHERE email = ?",
    /* keyset page over ix_tasks_user_id (user_id, id), newest first; a NULL filter
     * compares a NOT NULL column with itself, i.e. matches every row */
    [STMT_TASK_LIST] = "SELECT " STORE__TASK_COLUMNS " FROM tasks WHERE user_id = ? AND id < ? "
                       "AND status = COALESCE(?, status) AND type = COALESCE(?, type) "
                       "ORDER BY id DESC LIMIT ?",
    [STMT_TASK_CANCEL] = "UPDATE tasks SET status = 'CANCELED', finished_at = UTC_TIMESTAMP(6), "
                         "updated_at = UTC_TIMESTAMP(6) WHERE id = ? AND user_id = ? "
                         "AND status IN ('PENDING', 'QUEUED', 'RETRYING')",
    /* --- dlq.c: the dead-letter queue, for dispatchctl --- */
    [STMT_ATTEMPT_LIST] = "SELECT attempt, worker_id, outcome, started_at, finished_at, error "
                          "FROM task_attempts WHERE task_id = ? ORDER BY id LIMIT ?",
    /* a DEAD row's finished_at is set by the worker; COALESCE covers rows written
     * by hand.  status = 'DEAD' is the prefix of ix_tasks_status_created */
    [STMT_DLQ_LIST] = "SELECT " STORE__TASK_COLUMNS " FROM tasks WHERE status = 'DEAD' AND "
                      "type = COALESCE(?, type) AND COALESCE(finished_at, updated_at) >= ? "
                      "ORDER BY COALESCE(finished_at, updated_at) DESC, id DESC LIMIT ?",
    [STMT_DLQ_PAGE] = "SELECT " STORE__TASK_COLUMNS " FROM tasks WHERE status = 'DEAD' AND "
                      "type = COALESCE(?, type) AND (created_at > ? OR (created_at = ? AND "
                      "id > ?)) ORDER BY created_at, id LIMIT ?",
    [STMT_DLQ_LOCK] = "SELECT " STORE__TASK_COLUMNS " FROM tasks WHERE id = ? FOR UPDATE",
    [STMT_DLQ_REPLAY] = "UPDATE tasks SET status = 'QUEUED', attempts = 0, result = NULL, "
                        "last_error = NULL, run_at = NULL, started_at = NULL, finished_at = "
                        "NULL, lease_until = NULL, worker_id = NULL, updated_at = "
                        "UTC_TIMESTAMP(6) WHERE id = ? AND status = 'DEAD'",
    [STMT_DLQ_REPLAY_RECORD] = "INSERT INTO task_attempts (task_id, attempt, worker_id, "
                               "started_at, finished_at, outcome, error) VALUES (?, 0, ?, "
                               "UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), 'replayed', ?)",
    [STMT_DLQ_COUNT] = "SELECT COUNT(*) FROM tasks WHERE status = 'DEAD' AND "
                       "COALESCE(finished_at, updated_at) < ?",
    [STMT_DLQ_PURGE_PICK] = "SELECT id FROM tasks WHERE status = 'DEAD' AND "
                            "COALESCE(finished_at, updated_at) < ? ORDER BY created_at "
                            "LIMIT ? FOR UPDATE",
    [STMT_DLQ_AUDIT] = "INSERT INTO dlq_audit (action, actor, at, task_id, user_id, type, "
                       "attempts, last_error, traceparent, created_at, finished_at) SELECT "
                       "'purge', ?, UTC_TIMESTAMP(6), id, user_id, type, attempts, last_error, "
                       "traceparent, created_at, finished_at FROM tasks WHERE id = ? AND "
                       "status = 'DEAD'",
    [STMT_DLQ_DELETE_ATTEMPTS] = "DELETE FROM task_attempts WHERE task_id = ?",
    [STMT_DLQ_DELETE] = "DELETE FROM tasks WHERE id = ? AND status = 'DEAD'",
    /* batch.c */
    [STMT_BATCH_LOCK] = "SELECT id, status, attempts, lease_until IS NOT NULL AND lease_until < "
                        "UTC_TIMESTAMP(6) FROM tasks WHERE id IN (" STORE__Q128 ") FOR UPDATE",
    [STMT_BATCH_GET] = "SELECT " STORE__TASK_COLUMNS " FROM tasks WHERE id IN (" STORE__Q128 ")",
    [STMT_TASK_EXTEND] = "UPDATE tasks SET lease_until = UTC_TIMESTAMP(6) + INTERVAL GREATEST(?, "
                         "IFNULL(timeout_ms * 1000 + 5000000, 0)) MICROSECOND WHERE id = ? AND "
                         "attempts = ? AND status = 'RUNNING'",
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_rc;

static void lib_init(void)
{
    lib_rc = mysql_library_init(0, NULL, NULL);
}

const char *store_strerror(int err)
{
    switch (err) {
    case STORE_OK:
        return "ok";
    case STORE_EDB:
        return "database error";
    case STORE_ENOTFOUND:
        return "not found";
    case STORE_ESTALE:
        return "stale attempt (fenced)";
    case STORE_EDUP:
        return "duplicate key";
    case STORE_ENOMEM:
        return "out of memory";
    case STORE_EINVAL:
        return "invalid argument";
    default:
        return "unknown store error";
    }
}

static unsigned ms_to_s(int ms)
{
    return ms <= 0 ? 1 : (unsigned)((ms + 999) / 1000);
}

MYSQL *store__connect(const struct store_config *cfg, bool multi_statements)
{
    unsigned connect_s = ms_to_s(cfg->connect_timeout_ms);
    unsigned io_s = ms_to_s(cfg->io_timeout_ms);
    unsigned long flags = multi_statements ? CLIENT_MULTI_STATEMENTS : 0;
    MYSQL *db;

    pthread_once(&lib_once, lib_init);
    if (lib_rc != 0)
        return NULL;
    db = mysql_init(NULL);
    if (!db)
        return NULL;
    mysql_optionsv(db, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s);
    mysql_optionsv(db, MYSQL_OPT_READ_TIMEOUT, &io_s);
    mysql_optionsv(db, MYSQL_OPT_WRITE_TIMEOUT, &io_s);
    mysql_optionsv(db, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_optionsv(db, MYSQL_INIT_COMMAND, "SET time_zone = '+00:00'");
    /* every transition is a guarded UPDATE, so READ COMMITTED is enough, and it
     * spares the next-key locks that make concurrent claims deadlock */
    mysql_optionsv(db, MYSQL_INIT_COMMAND,
                   "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
    if (!mysql_real_connect(db, cfg->host, cfg->user, cfg->password, cfg->database,
                            (unsigned)cfg->port, NULL, flags)) {
        log_error("mysql connect failed", LOG_S("host", cfg->host), LOG_I("port", cfg->port),
                  LOG_S("error", mysql_error(db)));
        mysql_close(db);
        return NULL;
    }
    return db;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

static void conn_close(struct store__conn *c)
{
    for (int i = 0; i < STMT_COUNT; i++) {
        if (c->stmts[i])
            mysql_stmt_close(c->stmts[i]);
        c->stmts[i] = NULL;
    }
    if (c->db)
        mysql_close(c->db);
    c->db = NULL;
}

int store_new(const struct store_config *cfg, struct store **ret_store)
{
    struct store *s = calloc(1, sizeof *s);
    pthread_condattr_t ca;
    int rc = STORE_ENOMEM;
    if (!s)
        return STORE_ENOMEM;
    s->n = cfg->pool_size > 0 ? (size_t)cfg->pool_size : 1;
    s->host = dup_or_empty(cfg->host);
    s->user = dup_or_empty(cfg->user);
    s->password = dup_or_empty(cfg->password);
    s->database = dup_or_empty(cfg->database);
    s->conns = calloc(s->n, sizeof *s->conns);
    if (!s->host || !s->user || !s->password || !s->database || !s->conns)
        goto out_free;
    s->cfg = *cfg;
    s->cfg.host = s->host;
    s->cfg.user = s->user;
    s->cfg.password = s->password;
    s->cfg.database = s->database;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    for (size_t i = 0; i < s->n; i++) {
        s->conns[i].db = store__connect(&s->cfg, false);
        if (!s->conns[i].db) {
            rc = STORE_EDB;
            goto out_free;
        }
    }
    *ret_store = s;
    return STORE_OK;
out_free:
    store_free(s);
    return rc;
}

void store_free(struct store *s)
{
    if (!s)
        return;
    if (s->conns) {
        for (size_t i = 0; i < s->n; i++)
            conn_close(&s->conns[i]);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
    }
    free(s->conns);
    free(s->host);
    free(s->user);
    free(s->password);
    free(s->database);
    free(s);
}

/* The absolute CLOCK_MONOTONIC time ms from now. */
static struct timespec after_ms(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

struct store__conn *store__acquire(struct store *s)
{
    struct store__conn *c = NULL;
    struct timespec until = after_ms(s->cfg.acquire_timeout_ms);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        for (size_t i = 0; i < s->n && !c; i++) {
            if (!s->conns[i].in_use)
                c = &s->conns[i];
        }
        if (c)
            break;
        if (s->cfg.acquire_timeout_ms <= 0) {
            pthread_cond_wait(&s->cv, &s->mu);
        } else if (pthread_cond_timedwait(&s->cv, &s->mu, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&s->mu);
            log_warn("mysql pool exhausted: no free connection in time", LOG_I("pool_size", s->n),
                     LOG_I("waited_ms", s->cfg.acquire_timeout_ms));
            return NULL;
        }
    }
    c->in_use = true;
    pthread_mutex_unlock(&s->mu);
    /* connect outside the lock: a slow server must not stall other users */
    if (!c->db)
        c->db = store__connect(&s->cfg, false);
    if (!c->db) {
        store__release(s, c, true);
        return NULL;
    }
    return c;
}

void store__release(struct store *s, struct store__conn *c, bool broken)
{
    if (broken)
        conn_close(c);
    pthread_mutex_lock(&s->mu);
    c->in_use = false;
    pthread_cond_broadcast(&s->cv); /* a waiter that timed out must not swallow it */
    pthread_mutex_unlock(&s->mu);
}

MYSQL_STMT *store__stmt(struct store__conn *c, enum store__stmt which)
{
    MYSQL_STMT *st = c->stmts[which];
    if (st)
        return st;
    st = mysql_stmt_init(c->db);
    if (!st)
        return NULL;
    if (mysql_stmt_prepare(st, stmt_sql[which], (unsigned long)strlen(stmt_sql[which])) != 0) {
        store__stmt_error(st, "prepare");
        mysql_stmt_close(st);
        return NULL;
    }
    c->stmts[which] = st;
    return st;
}

static int classify_errno(unsigned err, const char *sqlstate, const char *what, const char *msg)
{
    if (err == ER_DUP_ENTRY)
        return STORE_EDUP;
    /* SQLSTATE class 22, data exception: this row's values, not the connection */
    if (sqlstate && strncmp(sqlstate, "22", 2) == 0) {
        log_warn("mysql refused a value", LOG_S("op", what), LOG_I("errno", err),
                 LOG_S("error", msg));
        return STORE_EINVAL;
    }
    if (err == ER_LOCK_DEADLOCK || err == ER_LOCK_WAIT_TIMEOUT) {
        log_debug("mysql transaction to be retried", LOG_S("op", what), LOG_I("errno", err),
                  LOG_S("error", msg));
        return STORE__ERETRY;
    }
    return 0;
}

int store__stmt_error(MYSQL_STMT *st, const char *what)
{
    unsigned err = mysql_stmt_errno(st);
    int rc = classify_errno(err, mysql_stmt_sqlstate(st), what, mysql_stmt_error(st));
    if (rc != 0)
        return rc;
    log_error("mysql statement failed", LOG_S("op", what), LOG_I("errno", err),
              LOG_S("error", mysql_stmt_error(st)));
    return STORE_EDB;
}

int store__db_error(MYSQL *db, const char *what)
{
    unsigned err = mysql_errno(db);
    int rc = classify_errno(err, mysql_sqlstate(db), what, mysql_error(db));
    if (rc != 0)
        return rc;
    log_error("mysql query failed", LOG_S("op", what), LOG_I("errno", err),
              LOG_S("error", mysql_error(db)));
    return STORE_EDB;
}

int store__exec(MYSQL *db, const char *sql)
{
    if (mysql_real_query(db, sql, (unsigned long)strlen(sql)) != 0)
        return store__db_error(db, sql);
    return STORE_OK;
}

/* Runs fn inside BEGIN … COMMIT on one pooled connection; ROLLBACK on failure. */
enum { TX_TRIES = 5 };

int store__in_tx(struct store *s, int (*fn)(struct store__conn *, void *), void *arg)
{
    struct store__conn *c = store__acquire(s);
    int rc = STORE__ERETRY;
    if (!c)
        return STORE_EDB;
    for (int attempt = 0; rc == STORE__ERETRY && attempt < TX_TRIES; attempt++) {
        if (attempt > 0) {
            /* two transactions that deadlocked once will again if they rerun in
             * step: a short random pause lets one of them through first */
            struct timespec ts = {0, (long)(1 + (unsigned)rand() % (2u << attempt)) * 1000000L};
            nanosleep(&ts, NULL);
        }
        rc = store__exec(c->db, "START TRANSACTION");
        if (rc == STORE_OK)
            rc = fn(c, arg);
        if (rc == STORE_OK) {
            /* fn's outputs are written: never run it again, whatever COMMIT says */
            rc = store__exec(c->db, "COMMIT");
            if (rc == STORE__ERETRY)
                rc = STORE_EDB;
        } else if (rc != STORE_EDB && store__exec(c->db, "ROLLBACK") != STORE_OK)
            rc = STORE_EDB;
    }
    if (rc == STORE__ERETRY) {
        log_warn("mysql transaction kept deadlocking", LOG_I("tries", TX_TRIES), LOG_NONE);
        rc = STORE_EDB;
    }
    store__release(s, c, rc == STORE_EDB);
    return rc;
}

int store_ping(struct store *s)
{
    struct store__conn *c = store__acquire(s);
    int rc;
    if (!c)
        return STORE_EDB;
    /* COM_PING: a round trip to the server without a statement, so a prober's check
     * every second shows in no statement counter (Com_select stays the workload's) */
    rc = mysql_ping(c->db) == 0 ? STORE_OK : STORE_EDB;
    store__release(s, c, rc != STORE_OK);
    return rc;
}
