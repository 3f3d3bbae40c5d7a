/* breaker — a circuit breaker (closed / open / half-open), after Nygard's "Release
 * It!" and the shape of resilience4j's and gobreaker's.
 *
 *   closed     calls go through; failure_threshold failures in a row open it
 *   open       calls are refused at once (the caller takes its fallback) until
 *              open_ms have passed since it opened
 *   half-open  one call, the probe, goes through; its success closes the breaker,
 *              its failure opens it again for another open_ms.  A probe that never
 *              reports back is given up after open_ms, and another is let through.
 *
 * Callers ask breaker_allow() before each call and report every allowed call with
 * breaker_success() or breaker_failure().  Thread-safe (one mutex, held for a few
 * instructions).  Time comes from a monotonic millisecond clock, replaceable for
 * tests.
 */
#ifndef BREAKER_H
#define BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum breaker_state {
    BREAKER_CLOSED = 0,
    BREAKER_OPEN = 1,
    BREAKER_HALF_OPEN = 2,
};

typedef int64_t (*breaker_clock_fn)(void *ctx);
/* Told of every state change, with the breaker's lock held: be quick, and call no
 * breaker function from it. */
typedef void (*breaker_change_fn)(void *ctx, enum breaker_state from, enum breaker_state to);

struct breaker_config {
    int failure_threshold;  /* consecutive failures that open it, >= 1 */
    int64_t open_ms;        /* how long it stays open before a probe, >= 1 */
    breaker_clock_fn clock; /* NULL: CLOCK_MONOTONIC */
    void *clock_ctx;
    breaker_change_fn on_change; /* NULL: none */
    void *change_ctx;
};

struct breaker;

/* 0, or -1 for a bad config or no memory. */
int breaker_new(const struct breaker_config *cfg, struct breaker **ret_breaker);
void breaker_free(struct breaker *b);

/* May a call go through now?  An open breaker whose interval has passed turns
 * half-open and lets this call through as its probe. */
bool breaker_allow(struct breaker *b);
void breaker_success(struct breaker *b);
void breaker_failure(struct breaker *b);

/* Would breaker_allow() let a call through now?  Asks without taking the probe's
 * place, for a caller that refuses early (an HTTP face answering 503 before it
 * queues work behind a dead dependency).  When it would not, *ret_retry_ms (if not
 * NULL) says how long until a probe may go: open, the rest of the interval;
 * half-open with its probe out, the rest of the probe's allowance. */
bool breaker_would_allow(struct breaker *b, int64_t *ret_retry_ms);

enum breaker_state breaker_state(struct breaker *b);
/* "closed", "open", "half-open". */
const char *breaker_state_name(enum breaker_state s);

#endif
