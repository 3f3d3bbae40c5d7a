/* cache — the Redis adapter (hiredis) of the status read path: task entries with a
 * TTL, their invalidation, and the invalidation events producers listen to.
 *
 * Entries.  Key "dispatch:task:<id>", a hash: "d" the value (opaque bytes: the status
 * service's encoded view), "v" its version (the row's updated_at, microseconds).  A
 * reader that misses takes a lease: the same Lua script that answers the miss writes
 * a random token under "g" (with a short TTL) when the key is absent, and only the
 * holder of the token may fill the entry (a second script that also refuses to put
 * an older version over a newer one).  Writers delete the key after their database
 * commit, which kills any lease, so a fill racing a change (a reader that read the
 * row just before the commit) stores nothing: an older status never overwrites a
 * newer one, and Redis holds nothing older than the last commit it was told about.
 * TTLs are jittered by +-10 % so entries written together do not expire together.
 *
 * Invalidation.  cache_task_changed() queues ids; one thread sends them in batches,
 * in order: "DEL key..." then "PUBLISH dispatch.task.changed '<id> <id> ...'".  Every
 * producer subscribes (cache_subscribe) and evicts its in-process entries.
 *
 * Failures.  Commands go through a small pool of connections, each with the
 * configured timeout for connecting and for every reply (so no caller waits on Redis
 * longer than timeout_ms, plus the time to get a free connection, also bounded by
 * it), behind a circuit breaker: after breaker_threshold failures in a row calls fail
 * at once (CACHE_EUNAVAILABLE) for breaker_open_ms, then one probe decides.  A broken
 * connection is dropped and re-opened on next use.  Callers treat every failure as a
 * miss and go to the database.  Logging: once when the breaker opens or closes.
 *
 * Thread-safe.  Nothing blocks on Redis at construction: Redis may come later.
 */
#ifndef DISPATCH_CACHE_H
#define DISPATCH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ids/ids.h"

#define CACHE_CHANNEL "dispatch.task.changed"

enum cache_err {
    CACHE_OK = 0,
    CACHE_EUNAVAILABLE = -1, /* breaker open, timeout, connection or protocol failure */
    CACHE_ENOMEM = -2,
    CACHE_EINVAL = -3,
};
const char *cache_strerror(int err);

struct cache_config {
    const char *host; /* copied */
    int port;
    int timeout_ms;        /* connect, and each command's reply */
    int pool_size;         /* command connections, >= 1 */
    int breaker_threshold; /* consecutive failures that open the breaker */
    int breaker_open_ms;   /* how long it stays open before one probe */
    int lease_ms;          /* how long a miss reserves the fill for its reader */
};

struct cache;

/* Starts the notifier thread; connects lazily.  0, or CACHE_EINVAL / CACHE_ENOMEM. */
int cache_new(const struct cache_config *cfg, struct cache **ret_cache);
/* Stops the subscriber, sends what the notifier still holds (bounded by the
 * timeout), closes, frees.  NULL is accepted. */
void cache_free(struct cache *c);

/* --- entries ----------------------------------------------------------------- */

struct cache_entry {
    void *value; /* hit: the stored bytes (owned: free()), NUL-terminated beyond len */
    size_t len;
    uint64_t lease; /* miss: non-zero when this caller holds the fill lease */
};

/* Looks id up.  CACHE_OK with ret_entry filled (value NULL on a miss); negative when
 * Redis cannot answer (ret_entry untouched). */
int cache_task_get(struct cache *c, const struct ids_id *id, struct cache_entry *ret_entry);

/* Stores value (version: the row's updated_at) under id for ttl_ms +-10 %, if lease
 * is still the entry's (no change since cache_task_get) and no newer version is
 * stored.  CACHE_OK also when the script refused (that is not a failure). */
int cache_task_fill(struct cache *c, const struct ids_id *id, uint64_t lease, int64_t version,
                    const void *value, size_t len, int ttl_ms);

/* --- invalidation (writers, after their database commit) ----------------------- */

/* Queues the ids for "DEL, then PUBLISH" by the notifier thread; never blocks on
 * Redis.  Ids are dropped (and counted) while the breaker is open or the queue is
 * full. */
void cache_task_changed(struct cache *c, const struct ids_id *ids, size_t n);
/* The same on the calling thread, now: for a writer that answers with the new state
 * and must read its own write.  CACHE_OK, or CACHE_EUNAVAILABLE. */
int cache_task_changed_now(struct cache *c, const struct ids_id *ids, size_t n);

/* --- events (producers) ------------------------------------------------------------- */

struct cache_events_ops {
    /* id changed: evict it.  On the subscriber thread: be quick. */
    void (*changed)(void *ctx, const struct ids_id *id);
    /* up: subscribed (again): events before this moment may have been missed, so
     * forget everything cached in process.  !up: the subscription is lost; events
     * will be missed until the next up. */
    void (*state)(void *ctx, bool up);
};

/* Starts the subscriber thread (one dedicated connection, reconnected with backoff,
 * a PING when idle to notice a dead peer).  One subscription per cache. */
int cache_subscribe(struct cache *c, const struct cache_events_ops *ops, void *ctx);
/* Stops and joins the subscriber; the ops are not called after it returns. */
void cache_unsubscribe(struct cache *c);

/* PING on a pooled connection, through the breaker (the producer's prober):
 * CACHE_OK, or CACHE_EUNAVAILABLE. */
int cache_ping(struct cache *c);

/* --- rate limits (producers share budgets) ---------------------------------------------- */

/* One exchange with the token bucket "dispatch:rl:<key>" (klen 1..147 bytes), atomically
 * in one Lua script (EVALSHA, EVAL if Redis lost it), refilled by Redis's own clock at
 * rate tokens a second up to burst (a new bucket starts full): charges used tokens
 * (already spent; the bucket may go down to -burst), then grants up to want more.
 * CACHE_OK with *ret_granted (0..want) and *ret_wait_us (until the bucket holds a token
 * again; 0 if it does now); CACHE_EINVAL for bad arguments; CACHE_EUNAVAILABLE when
 * Redis does not answer (breaker, timeout).  The key expires once the bucket would be
 * full again. */
int cache_ratelimit_take(struct cache *c, const char *key, size_t klen, double rate, double burst,
                         long long used, long long want, long long *ret_granted,
                         int64_t *ret_wait_us);

/* The breaker: 0 closed, 1 open, 2 half-open (the circuit_breaker_state gauge). */
int cache_breaker_state(struct cache *c);
/* Invalidations dropped so far (breaker open, queue full, failed batches). */
unsigned long long cache_dropped(struct cache *c);

#endif
