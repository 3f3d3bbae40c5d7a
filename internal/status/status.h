/* status — the read use case: a task's current view for its owner.
 *
 * Two ways in.  status_get() and status_list() read the store through an ops table
 * (operators' lookups, listings).  The status reader (struct status_reader, below)
 * serves GET /tasks/{id}: in-process LRU -> Redis -> store, one store query per key
 * however many concurrent misses, invalidated by change events, with long-polls
 * woken by the same events (SPEC §5, docs/architecture.md "Read").
 */
#ifndef DISPATCH_STATUS_H
#define DISPATCH_STATUS_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"
#include "singleflight/singleflight.h"

#define STATUS_LIST_MAX 100 /* tasks one status_list page holds at most */

/* A page of one user's tasks, newest first (ids are UUIDv7). */
struct status_query {
    struct ids_id owner;            /* only this user's tasks */
    const struct ids_id *after;     /* keyset cursor: tasks older than this id; NULL: newest */
    const enum task_status *status; /* only this status; NULL: any */
    const char *type;               /* only this type; NULL: any */
    size_t limit;                   /* 1..STATUS_LIST_MAX */
};

struct status_store_ops {
    /* 0, STATUS_ENOTFOUND-compatible negative (< 0) on error; see status_get */
    int (*get)(void *ctx, const struct ids_id *id, struct task *ret_task);
    /* The query's tasks, newest first, at most q->limit; *ret_tasks is a malloc'ed
     * array of *ret_n tasks the caller owns (model_task_release() each, free() it).
     * 0, or negative on error. */
    int (*list)(void *ctx, const struct status_query *q, struct task **ret_tasks, size_t *ret_n);
};

enum status_err {
    STATUS_OK = 0,
    STATUS_ENOTFOUND = -1, /* unknown id (or, once auth lands, another user's task) */
    STATUS_EUNAVAILABLE = -2,
    STATUS_EMISS = -3, /* status_cached: not in the in-process cache; fetch it */
};

struct status {
    const struct status_store_ops *store;
    void *store_ctx;
    int notfound_code; /* the store's "not found" return value */
};

/* Fills ret_task (owned by the caller: model_task_release) when the task exists and
 * belongs to owner; another user's task is STATUS_ENOTFOUND exactly like an
 * unknown one, so ids cannot be probed.  owner NULL: no owner check (operators). */
int status_get(const struct status *st, const struct ids_id *id, const struct ids_id *owner,
               struct task *ret_task);

struct status_page {
    struct task *items; /* n tasks, newest first, owned (status_page_release) */
    size_t n;
    bool more;          /* another page follows ... */
    struct ids_id next; /* ... and this is its cursor (the last item's id) */
};

/* Fills ret_page with q's page (asks the store for one row more than the limit to
 * learn whether another page follows).  STATUS_EUNAVAILABLE when the store fails;
 * a limit outside 1..STATUS_LIST_MAX is a caller's bug, refused the same way. */
int status_list(const struct status *st, const struct status_query *q,
                struct status_page *ret_page);
/* Frees a page's items; accepts NULL and a zeroed page. */
void status_page_release(struct status_page *page);
/* The page as the API's JSON text, {"items":[task views],"next_cursor":<next_cursor
 * or null>} (next_cursor must need no escaping), each view spliced as
 * model_task_view_text renders it; owned (free()), NULL on ENOMEM.  Frees each
 * item's payload and result once rendered (NULL after; the page's other fields stay):
 * the memory a page costs is then its rows or its text, hardly both at once.
 * Release the page afterwards as usual. */
char *status_page_text(struct status_page *page, const char *next_cursor);

/* --- the cached read path ------------------------------------------------------
 *
 * Layers, each one asked only when the one before missed:
 *   1. the LRU (pkg/lru): bounded, short TTL (lru_ttl_ms), on the caller's thread.
 *      Used only while change events arrive (status_events(r, true)): without them
 *      nothing would evict a changed task in time.
 *   2. Redis, through struct status_cache_ops: TTL redis_ttl_ms, longer for
 *      SUCCEEDED/DEAD/CANCELED; a miss hands out a fill lease (see cache.h).
 *   3. the store, through struct status.
 * Layers 2 and 3 run on the reader's own thread pool, one flight per id at a time
 * (pkg/singleflight): a hundred concurrent misses of one id cost one Redis lookup and
 * at most one store query, and every caller gets the one result.  What the store says
 * fills Redis (under the lease) and the LRU (unless an event for the id, or one that
 * shares its stamp, came meanwhile: lru_put_if); an unknown id is cached as such for
 * negative_ttl_ms.
 *
 * Every layer holds the same entry: the rendered view (JSON) with the owner, status,
 * updated_at and attempts (the ETag's inputs), so the owner is checked after every
 * layer, for every caller: another user's task is STATUS_ENOTFOUND like an unknown
 * one.
 *
 * status_changed() (an event) evicts the id and wakes its long-polls; status_events()
 * says whether events arrive (a reconnect drops the whole LRU: events were missed). */

struct metrics;

/* What the Redis layer found. */
struct status_cache_entry {
    void *value; /* hit: the stored entry (owned: free()); miss: NULL */
    size_t len;
    uint64_t lease; /* miss: non-zero when this caller may fill the entry */
};

struct status_cache_ops {
    /* 0 with ret_entry filled, or negative when the cache cannot answer (a miss) */
    int (*get)(void *ctx, const struct ids_id *id, struct status_cache_entry *ret_entry);
    /* Stores value under id (version: updated_at) for ttl_ms if lease still holds. */
    int (*fill)(void *ctx, const struct ids_id *id, uint64_t lease, int64_t version,
                const void *value, size_t len, int ttl_ms);
};

struct status_read_config {
    size_t lru_entries;
    size_t lru_bytes; /* the LRU's byte budget; 0: none */
    int lru_ttl_ms;
    int negative_ttl_ms;       /* unknown ids, in the LRU and in Redis */
    int redis_ttl_ms;          /* entries of tasks still moving */
    int redis_terminal_ttl_ms; /* SUCCEEDED, DEAD, CANCELED */
    int threads;               /* the pool that runs Redis and store lookups */
    int queue_max;             /* lookups waiting for a thread before STATUS_EUNAVAILABLE */
    struct metrics *metrics;   /* cache_requests_total{layer,result}; NULL: none */
};

/* A task's view as one layer holds it. */
struct status_view {
    struct ids_id id;
    enum task_status status; /* the ETag's inputs: id, updated_at, attempts, status */
    int attempts;
    int64_t updated_at;
    char *json; /* the task view, NUL-terminated, json_len bytes */
    size_t json_len;
};
/* Frees an owned view's text (status_cached); accepts NULL. */
void status_view_release(struct status_view *v);

/* What a long-poll compares: the task moved when any of these did. */
struct status_version {
    int64_t updated_at;
    int attempts;
    enum task_status status;
};
void status_view_version(const struct status_view *v, struct status_version *ret_version);

struct status_call;
/* rc is STATUS_OK (view set, borrowed for the call), STATUS_ENOTFOUND or
 * STATUS_EUNAVAILABLE (view NULL).  Runs on a reader thread, on the events thread,
 * or (status_wait) on the caller's thread before status_wait returns. */
typedef void (*status_done_fn)(struct status_call *call, int rc, const struct status_view *view);

/* One asynchronous read, embedded in the caller's request: it must stay alive, and
 * its fields unchanged, until done has run. */
struct status_call {
    struct ids_id id;
    struct ids_id owner;
    status_done_fn done;
    void *arg;                  /* the caller's */
    struct status_version seen; /* status_wait: the version the client has */
    int64_t deadline_ms;        /* status_wait: status_now_ms() time to give up at */

    /* private to status */
    struct status_reader *r_;
    struct singleflight_waiter flight_;
    struct status_call *prev_, *next_, *wake_;
    int state_;
    bool waiting_, dirty_;
};

struct status_reader;

/* store is borrowed (status_get's ops and not-found code); cache may be NULL (no
 * Redis layer).  Starts the pool and the long-poll timer. */
int status_reader_new(const struct status_read_config *cfg, const struct status *store,
                      const struct status_cache_ops *cache, void *cache_ctx,
                      struct status_reader **ret_reader);
/* Stops taking lookups (status_fetch and status_wait then refuse), answers every
 * long-poll with the task as it is, finishes the lookups taken (their done runs).
 * Call before the api stops; status_reader_free() calls it if needed. */
void status_reader_stop(struct status_reader *r);
void status_reader_free(struct status_reader *r);

/* The LRU layer alone, on the caller's thread: STATUS_OK with an owned view
 * (status_view_release), STATUS_ENOTFOUND (known unknown, or another user's), or
 * STATUS_EMISS. */
int status_cached(struct status_reader *r, const struct ids_id *id, const struct ids_id *owner,
                  struct status_view *ret_view);

/* Every layer, asynchronously: 0, and call->done runs once (perhaps before this
 * returns); or STATUS_EUNAVAILABLE (stopping, no memory) and done never runs. */
int status_fetch(struct status_reader *r, struct status_call *call);

/* Long-poll: 0, and call->done runs once, when the task's version differs from
 * call->seen (or it is gone), or at call->deadline_ms, with the task as it then is.
 * Woken by status_changed(), never by polling.  STATUS_EUNAVAILABLE when stopping
 * (done never runs). */
int status_wait(struct status_reader *r, struct status_call *call);

/* An event: id changed (evict it, wake its long-polls). */
void status_changed(struct status_reader *r, const struct ids_id *id);
/* Events arrive (up) or may be missed (!up); either way the LRU is dropped, and on up
 * every long-poll looks again. */
void status_events(struct status_reader *r, bool up);

/* Milliseconds on the monotonic clock the deadlines use. */
int64_t status_now_ms(void);

#endif
