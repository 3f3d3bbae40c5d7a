/* store — MariaDB adapter: a small pool of connections, every statement prepared.
 *
 * Tables (migrations/0001): users, tasks, idempotency_keys, task_attempts; (0002)
 * dlq_audit.  Ids are
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
 *   DEAD -> QUEUED         store_dlq_replay (the row locked, then "AND status = 'DEAD'")
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
    STORE_EINVAL = -6, /* the database refused a value (SQLSTATE 22): the data, not the link */
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
    /* How long a call waits for a free pooled connection before it fails with
     * STORE_EDB (every connection busy: a stuck server holds them all); 0: as long
     * as it takes. */
    int acquire_timeout_ms;
};

struct store;

/* Opens pool_size connections eagerly, so a bad DSN fails at start-up. */
int store_new(const struct store_config *cfg, struct store **ret_store);
void store_free(struct store *s);
/* A round trip to the server (COM_PING) on a pooled connection (readiness). */
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

/* Renews the lease of attempt `attempt` (as a claim sets it: now + the larger of
 * lease_ms and the task's timeout + 5 s), fenced like a finish: STORE_ESTALE when
 * a newer attempt owns the task or it is no longer RUNNING. */
int store_task_extend_lease(struct store *s, const struct ids_id *id, int attempt, int lease_ms);

/* --- group commit: many claims or finishes in one transaction (batch.c) ----
 *
 * The same transitions, guards and attempt records as store_task_claim and
 * store_task_finish, for up to STORE_BATCH_MAX rows with one commit: the rows are
 * locked (SELECT ... FOR UPDATE), decided one by one under the lock, then written
 * with bulk statements (array binding).  Each row gets its own answer in rc:
 *   STORE_OK      committed (claim: *claim says what the claim found)
 *   STORE_ESTALE  finish only: the fence failed (a newer attempt owns the task,
 *                 or the row is gone); nothing written for this row
 *   STORE_EINVAL  the database refused this row's values: it was split out (the
 *                 batch is retried in halves) and the rest committed without it
 *   STORE_EDB, STORE_ENOMEM  its transaction failed: nothing of it was written
 * The same id twice in one claim batch: the second finds the first's lease
 * (STORE_CLAIM_LEASED).  Returns STORE_OK once every row has its answer, or
 * STORE_EINVAL for bad arguments (n > STORE_BATCH_MAX, NULLs). */
#define STORE_BATCH_MAX 128

struct store_claim_row {
    struct ids_id id;       /* in */
    int rc;                 /* out */
    enum store_claim claim; /* out when rc is STORE_OK */
    struct task task;       /* out when claim is STORE_CLAIMED: owned, model_task_release */
};

int store_task_claim_batch(struct store *s, const char *worker_id, int lease_ms,
                           struct store_claim_row *rows, size_t n);

struct store_finish_row {
    struct ids_id id;        /* in */
    int attempt;             /* in: the fencing token */
    struct store_finish fin; /* in; its strings borrowed for the call */
    int rc;                  /* out */
};

int store_task_finish_batch(struct store *s, struct store_finish_row *rows, size_t n);

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

/* --- the dead-letter queue: DEAD rows, for dispatchctl (dlq.c) ------------- */

/* One task_attempts row (the task's history). */
struct store_attempt {
    int attempt; /* 0 on a 'replayed' row: the count restarts after it */
    char worker_id[129];
    char outcome[16];    /* running|succeeded|failed|timeout|permanent|lease_expired|replayed */
    int64_t started_at;  /* us */
    int64_t finished_at; /* us; 0 while running */
    char *error;         /* owned; NULL when none */
};

/* The task's attempts, oldest first (at most max rows).  On success *ret_attempts is
 * a malloc'ed array of *ret_n rows owned by the caller (store_attempts_free; NULL
 * when *ret_n is 0). */
int store_task_attempts(struct store *s, const struct ids_id *id, size_t max,
                        struct store_attempt **ret_attempts, size_t *ret_n);
void store_attempts_free(struct store_attempt *a, size_t n);

struct store_dlq_filter {
    const char *type; /* only this type; NULL: any */
    int64_t since;    /* only tasks that died (finished_at) at or after this (us); 0: any */
    size_t limit;     /* 1..STORE_LIST_MAX rows at most */
};

/* DEAD tasks, latest death first (finished_at DESC, id DESC); the status prefix of
 * ix_tasks_status_created finds them.  Results as store_task_list's. */
int store_dlq_list(struct store *s, const struct store_dlq_filter *f, struct task **ret_tasks,
                   size_t *ret_n);

/* Keyset position in creation order. */
struct store_dlq_cursor {
    int64_t created_at;
    struct ids_id id;
};

/* DEAD tasks of type (NULL: any) in creation order (created_at, id: the order of
 * ix_tasks_status_created), those after *after only (NULL: from the oldest); the
 * next page starts after the last task returned.  Results as store_task_list's. */
int store_dlq_page(struct store *s, const char *type, const struct store_dlq_cursor *after,
                   size_t limit, struct task **ret_tasks, size_t *ret_n);

/* Publishes a replayed task (t: the row as reset, borrowed for the call); returns 0
 * only once the broker acknowledged the message. */
typedef int (*store_replay_fn)(void *arg, const struct task *t);

enum store_replay {
    STORE_REPLAYED = 0,       /* was DEAD: now QUEUED, recorded, published */
    STORE_REPLAY_NOT_DEAD,    /* in another status: unchanged */
    STORE_REPLAY_NOT_FOUND,   /* no such row */
    STORE_REPLAY_UNPUBLISHED, /* publish failed: rolled back, still DEAD */
};

/* DEAD -> QUEUED, in one transaction: locks the row (SELECT ... FOR UPDATE), resets
 * it (attempts 0, last_error/result/run_at/started_at/finished_at/lease NULL), adds a
 * task_attempts row (attempt 0, worker actor, outcome 'replayed', error = the
 * last_error it replaces), then calls publish and commits only when it returned 0;
 * otherwise rolls back (the row stays DEAD).  A message whose ack was lost finds the
 * row DEAD and is skipped by the worker's claim, so a replay never runs twice.  On
 * STORE_REPLAYED and STORE_REPLAY_NOT_DEAD *ret_task is the row as it now is (caller
 * releases it); otherwise it is untouched. */
int store_dlq_replay(struct store *s, const struct ids_id *id, const char *actor,
                     store_replay_fn publish, void *arg, struct task *ret_task,
                     enum store_replay *ret_outcome);

/* How many DEAD tasks died before `before` (us). */
int store_dlq_count(struct store *s, int64_t before, size_t *ret_n);

/* One transaction: locks up to limit DEAD tasks that died before `before`, oldest
 * first, copies each into dlq_audit (action 'purge', actor), deletes its
 * task_attempts rows and the task.  *ret_n says how many went: fewer than limit
 * means none is left. */
int store_dlq_purge(struct store *s, int64_t before, const char *actor, size_t limit,
                    size_t *ret_n);

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
