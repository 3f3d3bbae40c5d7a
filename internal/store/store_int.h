/* store module-private: the pool, prepared-statement cache and binding helpers. */
#ifndef DISPATCH_STORE_INT_H
#define DISPATCH_STORE_INT_H

#include <mysql.h>
#include "store/store.h"

enum store__stmt {
    STMT_TASK_INSERT = 0,
    STMT_TASK_MARK_QUEUED,
    STMT_TASK_GET,
    STMT_TASK_CLAIM,
    STMT_TASK_STATUS,
    STMT_ATTEMPT_INSERT,
    STMT_ATTEMPT_EXPIRE,
    STMT_TASK_FINISH,
    STMT_ATTEMPT_FINISH,
    STMT_USER_INSERT,
    STMT_USER_BY_EMAIL,
    STMT_TASK_LIST,
    STMT_TASK_CANCEL,
    STMT_TASK_RELAY,
    STMT_IDEM_CLAIM,
    STMT_IDEM_GET,
    STMT_IDEM_RESPOND,
    STMT_IDEM_PURGE,
    STMT_ATTEMPT_LIST, /* dlq.c from here */
    STMT_DLQ_LIST,
    STMT_DLQ_PAGE,
    STMT_DLQ_LOCK,
    STMT_DLQ_REPLAY,
    STMT_DLQ_REPLAY_RECORD,
    STMT_DLQ_COUNT,
    STMT_DLQ_PURGE_PICK,
    STMT_DLQ_AUDIT,
    STMT_DLQ_DELETE_ATTEMPTS,
    STMT_DLQ_DELETE,
    STMT_BATCH_LOCK, /* batch.c from here */
    STMT_BATCH_GET,
    STMT_TASK_EXTEND, /* claim.c */
    STMT_COUNT
};

struct store__conn {
    MYSQL *db;
    MYSQL_STMT *stmts[STMT_COUNT];
    bool in_use;
};

/* Takes a connected connection from the pool (waiting while all are busy, at most
 * acquire_timeout_ms when set); NULL if none came free in time or it could not
 * (re)connect. */
struct store__conn *store__acquire(struct store *s);
/* Gives it back; broken = true closes it so the next user reconnects. */
void store__release(struct store *s, struct store__conn *c, bool broken);
/* The prepared statement `which` on c, prepared on first use; NULL on failure. */
MYSQL_STMT *store__stmt(struct store__conn *c, enum store__stmt which);
/* Opens one session (utf8mb4, UTC, timeouts); NULL on failure (logged). */
MYSQL *store__connect(const struct store_config *cfg, bool multi_statements);

/* A deadlock or lock-wait timeout: the transaction was rolled back and is worth
 * running again.  Never leaves the module: store__in_tx retries, then says EDB. */
#define STORE__ERETRY (-100)

/* Logs a statement failure once, at the boundary; returns STORE_EDUP for a unique
 * violation (1062), STORE__ERETRY for a deadlock (1213) or lock wait timeout (1205),
 * STORE_EDB otherwise. */
int store__stmt_error(MYSQL_STMT *st, const char *what);
int store__db_error(MYSQL *db, const char *what);
/* Runs a plain statement (BEGIN/COMMIT/ROLLBACK). */
int store__exec(MYSQL *db, const char *sql);

/* Runs fn(conn, arg) inside START TRANSACTION … COMMIT on one pooled connection,
 * with ROLLBACK when fn fails; returns fn's result (or STORE_EDB).  fn is run again
 * (a few times, after a short random pause) when it fails with STORE__ERETRY, so it
 * must write its outputs only once it has succeeded. */
int store__in_tx(struct store *s, int (*fn)(struct store__conn *, void *), void *arg);

/* Executes a statement whose only parameter is one task id. */
int store__exec_by_id(MYSQL_STMT *st, const struct ids_id *id);

/* Single-row parameters for one execution, added in placeholder order (params.c).
 * The values are borrowed: they must outlive store__p_exec(). */
enum { STORE__MAX_PARAMS = 8 };

struct store__params {
    MYSQL_BIND b[STORE__MAX_PARAMS];
    unsigned long len[STORE__MAX_PARAMS];
    long long ints[STORE__MAX_PARAMS];
    my_bool null[STORE__MAX_PARAMS];
    size_t n;
    bool overflow; /* more than STORE__MAX_PARAMS were added: p_exec refuses */
};

/* Raw bytes of type t; v NULL binds SQL NULL. */
void store__p_bytes(struct store__params *p, enum enum_field_types t, const void *v, size_t len);
/* An id as BINARY(16); NULL binds SQL NULL. */
void store__p_id(struct store__params *p, const struct ids_id *id);
/* A string; NULL binds SQL NULL. */
void store__p_str(struct store__params *p, const char *s);
void store__p_int(struct store__params *p, long long v);
/* Binds p and executes st (NULL st: STORE_EDB, so a failed store__stmt() can be
 * passed straight in); logs failures as `what`. */
int store__p_exec(MYSQL_STMT *st, struct store__params *p, const char *what);

/* PENDING -> QUEUED for ids, on c inside the caller's transaction (a bulk
 * statement: STMT_TASK_MARK_QUEUED is only ever run with array binding). */
int store__mark_queued_in(struct store__conn *c, const struct ids_id *ids, size_t n);

/* Claims each key of the batch (idem.c): sets idem[i].exists etc.; ret_insert[i]
 * says whether task i is to be inserted. */
int store__idem_claim_all(struct store__conn *c, const struct task *const *tasks,
                          struct idem_claim *const *idem, size_t n, bool *ret_insert);

/* Executes the statement `which` with p on a pooled connection and fetches up to
 * limit task rows into a new array (*ret_tasks NULL when there are none). */
int store__query_tasks(struct store *s, enum store__stmt which, struct store__params *p,
                       size_t limit, const char *what, struct task **ret_tasks, size_t *ret_n);

void store__time_to_mysql(int64_t us, MYSQL_TIME *out);
int64_t store__time_from_mysql(const MYSQL_TIME *t);

/* Reads the current row of a statement that selects the task columns (in
 * STORE__TASK_COLUMNS order) into ret_task; variable-length columns are fetched
 * whole.  The statement must have been executed; returns STORE_ENOTFOUND when
 * there is no row. */
int store__fetch_task(MYSQL_STMT *st, struct task *ret_task);

/* Fetches every row of the executed statement (task columns, LIMIT ? of at most
 * cap) into tasks; more than cap rows is STORE_EDB.  *ret_n rows on success, none
 * left to release on failure (list.c). */
int store__fetch_rows(MYSQL_STMT *st, struct task *tasks, size_t cap, size_t *ret_n);

/* STORE_BATCH_MAX placeholders for an IN list (batch.c pads unused ones). */
#define STORE__Q8   "?,?,?,?,?,?,?,?"
#define STORE__Q32  STORE__Q8 "," STORE__Q8 "," STORE__Q8 "," STORE__Q8
#define STORE__Q128 STORE__Q32 "," STORE__Q32 "," STORE__Q32 "," STORE__Q32

#define STORE__TASK_COLUMNS                                                                        \
    "id, user_id, type, status, priority, attempts, max_attempts, timeout_ms, payload, result, "   \
    "last_error, ordering_key, callback_url, traceparent, created_at, updated_at, run_at, "        \
    "started_at, finished_at"

/* The outcome as task_attempts stores it ("succeeded", "timeout", ...); claim.c. */
const char *store__outcome_name(enum store_outcome o);

#endif
