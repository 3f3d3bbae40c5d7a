/* ratelimit — who may do what how often (SPEC §3.2): the producer's rate-limit policy.
 *
 * Scopes and keys:
 *   tasks-user    POST /tasks, per authenticated user (key: the user id)
 *   tasks-global  POST /tasks, everyone together (one key)
 *   auth-addr     POST /auth/login and /auth/register together, per client address
 *   auth-email    the same, per email (lower-cased, then hashed: BLAKE2b-128, so no
 *                 address is kept or sent to Redis in clear)
 * A request passes when every scope of its route admits it; they are asked in that
 * order (the user before the global budget, so a flooding user spends their own
 * budget first and leaves the global one to others; the address before the email).
 *
 * The store's key of a bucket is "<scope>:<quota>/<window>:<burst>:<key>": producers
 * share a budget when they share its policy; one configured otherwise has its own.
 *
 * Shared budgets without I/O on the caller's thread.  Each key's bucket lives in the
 * store (Redis: one atomic script per exchange) and this process holds a lease of it:
 * tokens the store granted ahead, spent locally.  A decision is a few instructions under
 * one of 64 stripe locks and never waits on the store: a background thread tops leases
 * up (a lease is the rate times lease_ms, or times twice the time exchanges take when
 * that is longer; at least one token, at most the burst) and reports what was spent.
 * A key without tokens in hand may still admit up to one lease (at least 4 tokens, at
 * most the burst) on credit ("owed", reported with the next exchange and charged
 * against the shared bucket, which may go negative), so the first requests of a quiet
 * key never wait and the over-admission of N producers is at most N such allowances
 * at any moment.  When the store
 * says the bucket is dry it also says when the next token comes: until then the key is
 * refused at once, with that wait as Retry-After, and nothing is sent.
 *
 * Fallback.  When an exchange fails (Redis down, its breaker open) every decision is
 * taken from a bucket of this process (the configured rate, per producer) until an
 * exchange works again (tried at most every 500 ms); the local buckets are charged in
 * shared mode too, so a flood that was being refused is still refused after the switch.
 * No store configured: local buckets only.
 *
 * Keys held: at most max_keys (least recently used evicted first; an evicted key
 * forgets its lease and its local bucket, which is the worst a flood of new keys can
 * buy).  Thread-safe.
 */
#ifndef DISPATCH_RATELIMIT_H
#define DISPATCH_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ratelimit_scope {
    RATELIMIT_TASKS_USER = 0,
    RATELIMIT_TASKS_GLOBAL,
    RATELIMIT_AUTH_ADDR,
    RATELIMIT_AUTH_EMAIL,
    RATELIMIT_N_SCOPES
};

/* "tasks-user", "tasks-global", "auth-addr", "auth-email": also the policy names of the
 * RateLimit-Policy header and the middle of the Redis keys. */
const char *ratelimit_scope_name(enum ratelimit_scope s);

struct ratelimit_policy {
    bool on;
    long long quota;    /* tokens per window */
    long long window_s; /* so the rate is quota / window_s tokens a second */
    long long burst;    /* the bucket's capacity */
};

/* The shared store of buckets (the Redis adapter in the producer, fakes in tests). */
struct ratelimit_store_ops {
    /* Charges `used` tokens (already admitted) to the bucket `key` (rate tokens a
     * second, at most burst; created full), then grants up to `want` more.  0 with
     * *ret_granted (0..want) and *ret_wait_us (when the bucket holds a token again; 0
     * if it holds one now), or negative: the store did not answer. */
    int (*take)(void *ctx, const char *key, size_t klen, double rate, double burst, long long used,
                long long want, long long *ret_granted, int64_t *ret_wait_us);
};

/* Microseconds on a monotonic clock. */
typedef int64_t (*ratelimit_clock_fn)(void *ctx);

struct ratelimit_config {
    bool enabled; /* false: everything is admitted, nothing is kept */
    struct ratelimit_policy policy[RATELIMIT_N_SCOPES];
    int lease_ms;    /* a lease is rate * lease_ms tokens (at least 1, at most burst) */
    size_t max_keys; /* keys held at most (>= 64) */
    const struct ratelimit_store_ops *store; /* NULL: local buckets only */
    void *store_ctx;
    ratelimit_clock_fn clock; /* NULL: CLOCK_MONOTONIC */
    void *clock_ctx;
    bool manual_sync; /* no background thread: the caller runs ratelimit_sync() (tests) */
};

struct ratelimit;

enum ratelimit_err {
    RATELIMIT_OK = 0,
    RATELIMIT_EINVAL = -1,
    RATELIMIT_ENOMEM = -2,
};

int ratelimit_new(const struct ratelimit_config *cfg, struct ratelimit **ret_rl);
/* Stops the thread (an exchange under way is waited for), frees.  NULL accepted. */
void ratelimit_free(struct ratelimit *rl);

struct ratelimit_verdict {
    bool allowed;
    enum ratelimit_scope scope; /* refused: the policy that refused */
    int retry_after_s;          /* refused: whole seconds, >= 1 */
};

/* POST /tasks by user (its id in text). */
void ratelimit_tasks(struct ratelimit *rl, const char *user, struct ratelimit_verdict *ret);
/* POST /auth/login or /auth/register from addr (text) for email (NULL: not known yet,
 * only the address is asked). */
void ratelimit_auth(struct ratelimit *rl, const char *addr, const char *email,
                    struct ratelimit_verdict *ret);

/* The configured policy of a scope (never NULL). */
const struct ratelimit_policy *ratelimit_policy(const struct ratelimit *rl, enum ratelimit_scope s);
bool ratelimit_enabled(const struct ratelimit *rl);

/* Runs the exchanges queued so far on this thread; how many ran.  With manual_sync
 * only (tests); otherwise the background thread does it. */
size_t ratelimit_sync(struct ratelimit *rl);
/* Whether decisions use the shared store now (false: local fallback, or no store). */
bool ratelimit_shared(struct ratelimit *rl);

#endif
