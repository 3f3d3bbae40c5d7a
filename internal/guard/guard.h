/* guard — one dependency (MariaDB, Kafka, Redis) kept at arm's length (SPEC §3.2:
 * "fast 503, never a hung request").
 *
 * Three parts, one per dependency:
 *   - a circuit breaker (pkg/breaker).  Every guarded call asks guard_enter() first
 *     and reports with guard_leave(); an open breaker refuses the call at once, so
 *     nothing queues behind a dead dependency.  Recovery is the breaker's own: after
 *     open_ms one call (the prober's check, or a request's) is the half-open probe;
 *     its success closes the breaker.
 *   - a watch on the calls in flight: a call still running after slow_ms (the
 *     request deadline) counts as one failure right then, not when the library's own
 *     timeout finally gives up (a SIGSTOPped MariaDB holds a read for
 *     mysql_io_timeout_ms, 10 s).  Watched lazily, whenever the guard is asked.
 *   - a prober thread that runs a check every check_interval_ms (SELECT 1, broker
 *     metadata, PING) and keeps its verdict, so /readyz answers from memory: a check
 *     still running after check_timeout_ms says "down" at once; after a failed
 *     check the next one follows within 100 ms, so a return is seen as fast.  The check is a
 *     guarded call like any other: its failures open the breaker, and once the
 *     breaker is due it is the probe that closes it.
 * A guard without a breaker of its own (failure_threshold 0) reports the state of
 * one kept elsewhere (Redis: the cache adapter's) through state_fn.
 *
 * Thread-safe.  Logs one line when its breaker opens and one when it closes.
 */
#ifndef DISPATCH_GUARD_H
#define DISPATCH_GUARD_H

#include <stdbool.h>
#include <stdint.h>

typedef int64_t (*guard_clock_fn)(void *ctx);

struct guard_config {
    const char *name;         /* "mysql", "kafka", "redis": logs, metrics, /readyz */
    int failure_threshold;    /* consecutive failures that open the breaker; 0: none here */
    int open_ms;              /* how long it stays open before a probe */
    int slow_ms;              /* a call running longer counts as a failure; 0: never */
    bool (*check)(void *ctx); /* the prober's check; NULL: no prober */
    void *check_ctx;
    int check_interval_ms;      /* between two checks */
    int check_timeout_ms;       /* a check running longer reports the dependency down */
    int (*state_fn)(void *ctx); /* failure_threshold 0: the breaker state kept elsewhere */
    void *state_ctx;
    guard_clock_fn clock; /* NULL: CLOCK_MONOTONIC milliseconds (tests: a fake) */
    void *clock_ctx;
    bool manual; /* no prober thread: guard_check_now() runs the check (tests) */
};

/* One call under way (guard_enter .. guard_leave), on the caller's stack. */
struct guard_call {
    int slot; /* private */
};

struct guard;

/* Starts the prober and waits for its first verdict (at most check_timeout_ms). */
int guard_new(const struct guard_config *cfg, struct guard **ret_g);
/* Stops the prober (waits for a check under way) and frees. */
void guard_free(struct guard *g);

/* May the call go now?  false: the breaker is open, fail at once (no guard_leave).
 * true: make the call, then guard_leave() with its outcome. */
bool guard_enter(struct guard *g, struct guard_call *call);
/* ok: the dependency answered (a "not found" or a duplicate key is an answer);
 * !ok: it failed or timed out. */
void guard_leave(struct guard *g, struct guard_call *call, bool ok);

/* The early check of a face: true when a call would be refused now, with
 * *ret_retry_after_s (if not NULL) the whole seconds (>= 1) until a probe may go.
 * Takes nothing: a request that passes still goes through guard_enter(). */
bool guard_refuses(struct guard *g, int *ret_retry_after_s);

/* 0 closed, 1 open, 2 half-open (pkg/breaker's numbers; circuit_breaker_state). */
int guard_breaker_state(struct guard *g);
/* "closed", "open", "half-open". */
const char *guard_breaker_name(struct guard *g);
/* The prober's verdict: the last check passed and none has been running for longer
 * than check_timeout_ms.  No prober: the breaker is not open. */
bool guard_up(struct guard *g);
const char *guard_name(const struct guard *g);

/* Runs one check on the caller's thread (the prober's loop; tests in manual mode). */
void guard_check_now(struct guard *g);

#endif
