/* submit — the submit use case: store the task, publish it, wait for the broker's
 * acknowledgement, mark it QUEUED, then complete the request.
 *
 * Requests are batched: a few pipeline threads each take up to batch_max waiting
 * requests, insert them in one transaction (status PENDING), publish every message,
 * wait for all delivery reports (bounded by publish_timeout_ms) and call each
 * request's completion.  A thread keeps two batches going: while the reports of
 * one are outstanding it inserts and publishes the next (when requests are
 * waiting); its batches complete in the order it took them, each only after its
 * commit and its reports.  Acknowledged tasks are answered as QUEUED; one marker
 * thread writes PENDING -> QUEUED for them in bulk, off the response path (SPEC
 * §3.1: "answers 202 ... then marks the row QUEUED"), so a commit per batch is
 * saved and batches from all pipelines share one update.
 *
 * A sweeper thread is the outbox relay: every relay_interval_ms it publishes
 * PENDING rows older than outbox_age_ms (broker down at submit time, or the
 * producer crashed between commit and publish) and marks them QUEUED, so no
 * accepted task is lost; it also purges expired idempotency keys.  Nothing here calls a database or
 * Kafka library: the adapters come in through the ops tables, so tests plug in fakes.
 */
#ifndef DISPATCH_SUBMIT_H
#define DISPATCH_SUBMIT_H

#include <stddef.h>
#include "model/model.h"

/* Publishes tasks and waits: errs[i] = 0 for each one the broker acknowledged. */
typedef void (*submit_relay_fn)(void *arg, const struct task *const *tasks, size_t n, int *errs);

struct submit_store_ops {
    /* Inserts the tasks and claims their idempotency keys in one transaction
     * (idem[i] NULL: no key); a task whose key was claimed before is not inserted. */
    int (*insert_batch)(void *ctx, const struct task *const *tasks, struct idem_claim *const *idem,
                        size_t n);
    int (*mark_queued)(void *ctx, const struct ids_id *ids, size_t n);
    /* Stores the responses of keyed requests. */
    int (*respond)(void *ctx, const struct idem_response *r, size_t n);
    /* The outbox relay: hands up to limit PENDING tasks created before older_than
     * (us) to publish, marks the acknowledged ones QUEUED; counts both. */
    int (*relay)(void *ctx, int64_t older_than, int limit, submit_relay_fn publish, void *arg,
                 int *ret_seen, int *ret_published);
    /* Deletes up to limit expired idempotency keys. */
    int (*purge_keys)(void *ctx, int limit, int *ret_deleted);
    /* What insert_batch returns when the database refused a value of some row
     * (the batch is then split to find it; 0: never). */
    int invalid_code;
};

/* err 0 = acknowledged; detail may be NULL (same shape as queue_delivery_fn). */
typedef void (*submit_publish_done_fn)(void *opaque, int err, const char *detail);

struct submit_queue_ops {
    /* Publishes one message; exactly one call of done follows unless it returns < 0. */
    int (*publish)(void *ctx, const char *key, size_t key_len, const char *value, size_t len,
                   const char *traceparent, submit_publish_done_fn done, void *opaque);
};

/* Told of status changes submit wrote, after their commit (SPEC §4: the store, then
 * Redis, then an invalidation event): PENDING -> QUEUED by the marker and the relay.
 * Called on submit's threads; must not block for long (the Redis adapter queues). */
struct submit_notify_ops {
    void (*changed)(void *ctx, const struct ids_id *ids, size_t n);
};

struct submit_config {
    int threads;            /* pipeline threads (one database connection each at most) */
    int batch_max;          /* requests per transaction */
    int publish_timeout_ms; /* the broker's ack deadline */
    int max_waiting;        /* requests waiting for a pipeline thread before 503 */
    int outbox_age_ms;      /* PENDING rows older than this are the relay's */
    int relay_interval_ms;  /* how often the relay looks (0: no relay thread) */
    int purge_interval_ms;  /* how often expired keys are deleted (0: never) */
    const struct submit_notify_ops *notify; /* NULL: nobody is told */
    void *notify_ctx;
};

/* Counters the producer exports as metrics; read with atomic loads. */
struct submit_stats {
    unsigned long long republished; /* tasks the relay published */
    unsigned long long keys_purged;
};

enum submit_result {
    SUBMIT_ACCEPTED = 0, /* stored and acknowledged by the broker: 202 */
    SUBMIT_UNAVAILABLE,  /* stored as PENDING, not acknowledged in time: 503 + Retry-After;
                            the outbox relay will publish it */
    SUBMIT_DB_DOWN,      /* nothing stored: 503 */
    SUBMIT_OVERLOADED,   /* nothing stored, too many waiting: 503 */
    SUBMIT_REPLAYED,     /* the key's earlier request answered: idem.response_* hold it */
    SUBMIT_KEY_MISMATCH, /* the key was used with another body: 422 */
    SUBMIT_KEY_BUSY,     /* the key's earlier request is still in flight: 409 */
    SUBMIT_REJECTED,     /* the database refused this task's values: 400, nothing stored */
};

struct submit_request;
typedef void (*submit_done_fn)(struct submit_request *req, void *opaque);

/* One submission.  The caller owns it and its task; it must stay alive until done
 * is called (exactly once, on a pipeline thread, or before submit_enqueue returns
 * when it returns an error). */
struct submit_request {
    struct task task;       /* in: the new task; out: its status as stored */
    struct idem_claim idem; /* in: key (NULL: none), method, route, fingerprint,
                               expires_at; out: the earlier claim, if any */
    char *view;             /* out: the task view (JSON) for ACCEPTED/UNAVAILABLE, owned */
    submit_done_fn done;
    void *opaque;
    enum submit_result result;    /* out */
    struct submit_request *next_; /* private to submit */
    int publish_err_;             /* private to submit */
};

struct submit;

int submit_new(const struct submit_config *cfg, const struct submit_store_ops *store,
               void *store_ctx, const struct submit_queue_ops *queue, void *queue_ctx,
               struct submit **ret_s);
/* Stops taking requests, finishes the ones taken, joins the threads, frees. */
void submit_free(struct submit *s);

void submit_stats(struct submit *s, struct submit_stats *ret_stats);

/* Runs one relay pass now (tests, and the relay thread); returns the number of
 * tasks published, or -1 when the store failed. */
int submit_relay_once(struct submit *s);

/* Hands req to the pipeline.  Returns 0; or -1 when overloaded or stopping, in which
 * case req->result is set and done is NOT called. */
int submit_enqueue(struct submit *s, struct submit_request *req);

#endif
