/* taskexec — the execute use case for one consumed message.
 *
 *   parse the task id → claim (store) → run the handler under its deadline →
 *   record the outcome (store) → route it: SUCCEEDED; RETRYING + a copy on the
 *   retry topic with x-attempts / x-not-before; or DEAD + the original message on
 *   the DLQ topic with x-error, x-attempts, x-first-failure, x-last-failure, x-worker.
 *
 * taskexec_run() returns 0 only once everything the message asked for is durable
 * (the row updated, and any retry/DLQ record acknowledged by the broker): then the
 * runner may move the partition's offset past it.  A claim that finds the task
 * RUNNING under another live lease is not skipped: the message is parked on the
 * retry topic until the lease can have expired, so a worker killed mid-task never
 * strands its task (see docs/architecture.md).
 *
 * Scheduled tasks: a message whose "run_at" (RFC 3339, from the producer) is in the
 * future is not claimed.  It is republished to the retry topic with x-not-before =
 * run_at, the delay mechanism of retries, and reported done (TASKEXEC_SCHEDULED):
 * no attempt is used and the row stays QUEUED.  A hop is at most max_delay_ms long
 * (a held retry record keeps its retry partition's committed offset below it, so a
 * task due next week must not be held for a week): a farther run_at takes several
 * hops.  A message already
 * delayed to its run_at (x-not-before >= run_at) is due, so clock skew between
 * workers cannot bounce it.
 *
 * Metrics (cfg.metrics, may be NULL): every run counts once in
 * tasks_processed_total{type,outcome} (outcome: the name of enum taskexec_outcome,
 * or "handed_back" / "error" when the message will be delivered again), the
 * handler's run time in task_duration_seconds, published retry records in
 * task_retries_total and DLQ records in dlq_messages_total.  type is the task's
 * type when a handler is registered for it, else "other" (bounded labels).
 *
 * No I/O library is called here, and no adapter header is included: the store and
 * the broker come in as ops tables in taskexec's own types and result codes.
 * Thread-safe: one struct taskexec serves every pool thread.
 */
#ifndef DISPATCH_TASKEXEC_H
#define DISPATCH_TASKEXEC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "backoff/backoff.h"
#include "handler/handler.h"
#include "metrics/metrics.h"
#include "model/model.h"

enum taskexec_err {
    TASKEXEC_OK = 0,
    TASKEXEC_EAGAIN = -1,    /* a dependency failed and cancel was set: deliver again */
    TASKEXEC_EHANDBACK = -2, /* canceled (drain): the attempt was handed back, deliver again */
    TASKEXEC_ENOMEM = -3,
    TASKEXEC_EINVAL = -4,
};
const char *taskexec_strerror(int err);

/* What a successful taskexec_run() did (for logs and metrics). */
enum taskexec_outcome {
    TASKEXEC_SUCCEEDED = 0,
    TASKEXEC_RETRIED,   /* RETRYING, republished to the retry topic */
    TASKEXEC_DEAD,      /* DEAD, published to the DLQ */
    TASKEXEC_SKIPPED,   /* already done, unknown row, or a newer attempt owns it */
    TASKEXEC_DEFERRED,  /* leased elsewhere: parked on the retry topic for later */
    TASKEXEC_MALFORMED, /* not a task message: published to the DLQ as is */
    TASKEXEC_SCHEDULED, /* run_at in the future: republished to the retry topic, due then */
};
const char *taskexec_outcome_name(enum taskexec_outcome o);

/* --- the contract with the store and the broker (shims in internal/worker) --- */

/* What the ops answer: taskexec's own codes, whatever the adapter behind them. */
enum taskexec_op {
    TASKEXEC_OP_OK = 0,
    TASKEXEC_OP_FAILED = -1,  /* the dependency failed; worth trying again */
    TASKEXEC_OP_STALE = -2,   /* finish: the fence failed (a newer attempt owns the task) */
    TASKEXEC_OP_REFUSED = -3, /* finish: the store refused a value of this outcome */
};

/* What a claim found. */
enum taskexec_claim {
    TASKEXEC_CLAIMED = 0,     /* ours: the task holds the row with the new attempt number */
    TASKEXEC_CLAIM_DONE,      /* SUCCEEDED, DEAD or CANCELED: nothing to do */
    TASKEXEC_CLAIM_LEASED,    /* RUNNING under another live lease */
    TASKEXEC_CLAIM_NOT_FOUND, /* no such row */
};

/* How an attempt ended, as its record says. */
enum taskexec_attempt {
    TASKEXEC_ATTEMPT_SUCCEEDED = 0,
    TASKEXEC_ATTEMPT_FAILED,    /* retryable error */
    TASKEXEC_ATTEMPT_TIMEOUT,   /* the handler ran past its deadline */
    TASKEXEC_ATTEMPT_PERMANENT, /* non-retryable error */
};

/* The end of one attempt: the row's new status and the attempt's record. */
struct taskexec_finish {
    enum task_status status; /* SUCCEEDED, RETRYING or DEAD */
    enum taskexec_attempt outcome;
    const char *result; /* JSON text for SUCCEEDED, else NULL */
    const char *error;  /* for failures, else NULL */
    int64_t run_at;     /* RETRYING: when the next attempt is due (us) */
};

/* A record header (a message's, or one to publish). */
struct taskexec_header {
    const char *name;
    const void *value;
    size_t len;
};

/* claim: QUEUED|RETRYING (or RUNNING past its lease) -> RUNNING with attempts+1 and a
 * lease, recorded; *ret_task (caller releases it) only when *ret_claim is
 * TASKEXEC_CLAIMED.  finish: fenced by the attempt number.  Both return an enum
 * taskexec_op; the worker wires them to the store's group commit. */
struct taskexec_store_ops {
    int (*claim)(void *ctx, const struct ids_id *id, const char *worker_id, int lease_ms,
                 struct task *ret_task, enum taskexec_claim *ret_claim);
    int (*finish)(void *ctx, const struct ids_id *id, int attempt,
                  const struct taskexec_finish *fin);
    /* Renews the lease of a claimed attempt, fenced like finish (TASKEXEC_OP_STALE
     * when a newer attempt owns the task).  May be NULL: leases are never renewed. */
    int (*extend)(void *ctx, const struct ids_id *id, int attempt, int lease_ms);
};

/* Told after each successful status write (claim, finish): the worker wires it to
 * the Redis adapter (entry dropped, invalidation published; SPEC §4).  Must not
 * block for long: it runs on the pool thread, after the store write. */
struct taskexec_notify_ops {
    void (*changed)(void *ctx, const struct ids_id *id);
};

/* Returns TASKEXEC_OP_OK once the broker acknowledged the record, else
 * TASKEXEC_OP_FAILED (the shim logs the broker's reason). */
struct taskexec_queue_ops {
    int (*publish_sync)(void *ctx, const char *topic, const void *key, size_t key_len,
                        const void *value, size_t len, const struct taskexec_header *headers,
                        size_t n_headers);
};

struct taskexec_config {
    const char *worker_id;   /* copied */
    const char *retry_topic; /* copied */
    const char *dlq_topic;   /* copied */
    int lease_ms;
    int default_timeout_ms;        /* for tasks with timeout_ms 0 */
    int max_timeout_ms;            /* every deadline is clamped to it; 0: none */
    struct backoff_policy backoff; /* between attempts of a task */
    int dep_retry_max_ms;          /* cap of the pause between retries of a failed store or
                                    * publish call (they are retried until cancel is set) */
    int max_delay_ms;              /* longest hop of a scheduled task on the retry topic;
                                    * 0: backoff.cap_ms (5 min when that is unset too) */
    int max_running;               /* handlers running at once, whatever the number of
                                    * threads in taskexec_run (the others wait in
                                    * claims and finishes, which the store ops may
                                    * batch); 0: no limit.  A claimed task that
                                    * waited for a slot longer than extend_after_ms
                                    * has its lease renewed before its handler starts
                                    * (store ops' extend), so the wait never eats the
                                    * lease its run is owed; a task whose attempt
                                    * moved on meanwhile is skipped, not run */
    int extend_after_ms;           /* 0: 1000 */
    struct metrics *metrics;       /* borrowed, outlives te; NULL counts nothing */
    const struct taskexec_notify_ops *notify; /* borrowed; NULL: nobody is told */
    void *notify_ctx;
};

/* One consumed message; everything borrowed for the call. */
struct taskexec_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *value;
    size_t len;
    const struct taskexec_header *headers;
    size_t n_headers;
};

struct taskexec;

/* The ops tables, their contexts and reg are borrowed and must outlive te. */
int taskexec_new(const struct taskexec_config *cfg, const struct taskexec_store_ops *store_ops,
                 void *store_ctx, const struct taskexec_queue_ops *queue_ops, void *queue_ctx,
                 const struct handler_registry *reg, struct taskexec **ret_te);
void taskexec_free(struct taskexec *te);

/* Executes one message.  cancel (may be NULL) is set by the runner on drain: the
 * handler is asked to stop, a failed dependency call stops being retried, and an
 * interrupted attempt is handed back (row RETRYING, due now; no retry record).
 * Returns 0 with *ret_outcome set (the offset may advance), or a negative
 * enum taskexec_err (the message must be delivered again). */
int taskexec_run(struct taskexec *te, const struct taskexec_msg *msg, atomic_bool *cancel,
                 enum taskexec_outcome *ret_outcome);

/* Header names used on retry and DLQ records. */
#define TASKEXEC_H_TRACEPARENT   "traceparent"
#define TASKEXEC_H_ATTEMPTS      "x-attempts"
#define TASKEXEC_H_NOT_BEFORE    "x-not-before" /* unix ms, decimal */
#define TASKEXEC_H_ERROR         "x-error"
#define TASKEXEC_H_FIRST_FAILURE "x-first-failure" /* unix ms, decimal */
#define TASKEXEC_H_LAST_FAILURE  "x-last-failure"  /* unix ms, decimal */
#define TASKEXEC_H_WORKER        "x-worker"

#endif
