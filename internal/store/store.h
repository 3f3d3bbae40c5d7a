/* store — MariaDB adapter: a small pool of connections, every statement prepared.
 *
 * Tables (migrations/0001): users, tasks, idempotency_keys, task_attempts.  Ids are
 * BINARY(16); times DATETIME(6) in UTC (each session runs with time_zone '+00:00').
 * Every call takes a pooled connection for its duration and gives it back; a
 * connection that failed is closed and re-opened on next use.  Thread-safe.
 *
 * Status transitions are guarded in SQL, never read-then-write:
 *   PENDING -> QUEUED      store_task_mark_queued (only from PENDING)
 *   PENDING|QUEUED|RETRYING, or RUNNING with an expired lease -> RUNNING (attempts+1)
 *                          store_task_claim
 *   RUNNING -> SUCCEEDED|RETRYING|DEAD
 *                          store_task_finish, fenced by "AND attempts = ?"
 *   PENDING|QUEUED|RETRYING -> CANCELED
 *                          store_task_cancel, by the task's owner only
 */
#ifndef DISPATCH_STORE_H
#define DISPATCH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "model/model.h"

enum store_err {
    STORE_OK = 0,
    STORE_EDB = -1,       /* connection or SQL failure; the message was logged */
    STORE_ENOTFOUND = -2, /* no such row */
    STORE_ESTALE = -3,    /* fencing: the attempt number moved on */
    STORE_EDUP = -4,      /* a unique key already holds this value */
    STORE_ENOMEM = -5,
    STORE_EINVAL = -6,
};
const char *store_strerror(int err);

struct store_config {
    const char *host;
    int port;
    const char *user;
    const char *password;
    const char *database;
    int pool_size;
    int connect_timeout_ms;
    int io_timeout_ms;
};

struct store;

/* Opens pool_size connections eagerly, so a bad DSN fails at start-up. */
int store_new(const struct store_config *cfg, struct store **ret_store);
void store_free(struct store *s);
/* SELECT 1 on a pooled connection (readiness). */
int store_ping(struct store *s);

/* Inserts n tasks in one transaction with one bulk statement; each task is stored
 * as given (status, times…).  All or nothing.
 *
 * idem (NULL, or n pointers, each NULL when task i has no key) claims each task's
 * idempotency key in the same transaction (scope: the task's user, method, route).
 * When an unexpired claim already exists, idem[i]->exists and its details are set
 * and task i is NOT inserted; an expired claim is replaced. */
int store_task_insert_batch(struct store *s, const struct task *const *tasks,
                            struct idem_claim *const *idem, size_t n);

/* The outbox relay's turn: locks up to limit PENDING tasks created before
 * older_than (FOR UPDATE SKIP LOCKED, so the relays of several producers share the
 * rows instead of waiting on each other), calls publish(arg, tasks, n, errs) — which
 * sets errs[i] = 0 for each task the broker acknowledged —, marks those QUEUED and
 * commits.  *ret_published counts them; *ret_seen counts the rows locked. */
typedef void (*store_relay_fn)(void *arg, const struct task *const *tasks, size_t n, int *errs);
int store_task_relay(struct store *s, int64_t older_than, int limit, store_relay_fn publish,
                     void *arg, int *ret_seen, int *ret_published);

/* Stores each response under its claimed key (one transaction). */
int store_idem_respond(struct store *s, const struct idem_response *r, size_t n);
/* Deletes up to limit expired keys; *ret_deleted says how many went. */
int store_idem_purge(struct store *s, int limit, int *ret_deleted);

/* PENDING -> QUEUED for each id (rows in any other status are left alone). */
int store_task_mark_queued(struct store *s, const struct ids_id *ids, size_t n);

/* Reads one task. ret_task is owned by the caller (model_task_release). */
int store_task_get(struct store *s, const struct ids_id *id, struct task *ret_task);

enum store_claim {
    STORE_CLAIMED = 0,     /* ours: ret_task holds the row with the new attempt number */
    STORE_CLAIM_DONE,      /* SUCCEEDED, DEAD or CANCELED: nothing to do */
    STORE_CLAIM_LEASED,    /* RUNNING under another live lease: someone else has it */
    STORE_CLAIM_NOT_FOUND, /* no such row */
};

/* Claims a task for one attempt: sets RUNNING, attempts+1, lease_until = now +
 * the larger of lease_ms and the task's own timeout_ms + 5 s when it has one (so
 * a task cannot lose its lease while still inside its deadline), worker_id, started_at, and records
 * the attempt in task_attempts (outcome 'running'), in one transaction.  On STORE_CLAIMED,
 * *ret_task is filled (caller releases it); otherwise it is untouched. */
int store_task_claim(struct store *s, const struct ids_id *id, const char *worker_id, int lease_ms,
                     struct task *ret_task, enum store_claim *ret_claim);

enum store_outcome {
    STORE_OUTCOME_SUCCEEDED = 0,
    STORE_OUTCOME_FAILED,    /* retryable error */
    STORE_OUTCOME_TIMEOUT,   /* the handler ran past timeout_ms */
    STORE_OUTCOME_PERMANENT, /* non-retryable error */
};

struct store_finish {
    enum task_status status;    /* SUCCEEDED, RETRYING or DEAD */
    enum store_outcome outcome; /* recorded on the attempt */
    const char *result;         /* JSON text for SUCCEEDED, else NULL */
    const char *error;          /* for failures, else NULL */
    int64_t run_at;             /* RETRYING: when the next attempt is due (us) */
};

/* Ends attempt `attempt` of task id: updates the row (fenced: WHERE id=? AND
 * attempts=? AND status='RUNNING') and its task_attempts row, in one transaction.
 * STORE_ESTALE when the fence fails (a newer attempt owns the task). */
int store_task_finish(struct store *s, const struct ids_id *id, int attempt,
                      const struct store_finish *fin);

/* --- the owner's view: listing and canceling ------------------------------- */

#define STORE_LIST_MAX 1000 /* rows one store_task_list call returns at most */

struct store_task_filter {
    struct ids_id user_id;          /* only this user's tasks */
    const struct ids_id *before;    /* keyset: only ids < *before; NULL: from the newest */
    const enum task_status *status; /* only this status; NULL: any */
    const char *type;               /* only this type; NULL: any */
    size_t limit;                   /* 1..STORE_LIST_MAX rows at most */
};

/* The filter's tasks, newest first (ORDER BY id DESC: ids are UUIDv7), over the
 * index (user_id, id).  On success *ret_tasks is a malloc'ed array of *ret_n tasks
 * owned by the caller (model_task_release() each, then free() the array; NULL when
 * *ret_n is 0).  STORE_EINVAL for a limit out of range. */
int store_task_list(struct store *s, const struct store_task_filter *f, struct task **ret_tasks,
                    size_t *ret_n);

enum store_cancel {
    STORE_CANCELED = 0,     /* it was PENDING, QUEUED or RETRYING: now CANCELED */
    STORE_CANCEL_REFUSED,   /* RUNNING or finished (SUCCEEDED, DEAD, CANCELED): unchanged */
    STORE_CANCEL_NOT_FOUND, /* no such row, or another user's (or nobody's) */
};

/* Cancels owner's task with one guarded UPDATE (status, finished_at, updated_at),
 * then reads the row back.  On STORE_CANCELED and STORE_CANCEL_REFUSED *ret_task is
 * the row as it now is (caller releases it); on STORE_CANCEL_NOT_FOUND it is
 * untouched. */
int store_task_cancel(struct store *s, const struct ids_id *id, const struct ids_id *owner,
                      struct task *ret_task, enum store_cancel *ret_outcome);

/* --- users ---------------------------------------------------------------- */

/* Inserts a user; STORE_EDUP when the email is taken. */
int store_user_insert(struct store *s, const struct ids_id *id, const char *email,
                      const char *password_hash, int64_t created_at);
/* Looks a user up by email (exact, callers normalise); hash is copied into
 * ret_hash (size bytes). STORE_ENOTFOUND when there is none. */
int store_user_by_email(struct store *s, const char *email, struct ids_id *ret_id, char *ret_hash,
                        size_t size);

/* Migrations (golang-migrate layout: NNNN_name.up.sql / .down.sql, table
 * schema_migrations(version, dirty)).  Each runs on its own connection with
 * multi-statements on; progress lines go to out. steps <= 0 means all. */
int store_migrate_up(const struct store_config *cfg, const char *dir, int steps, FILE *out);
int store_migrate_down(const struct store_config *cfg, const char *dir, int steps, FILE *out);
int store_migrate_status(const struct store_config *cfg, const char *dir, FILE *out);

#endif
