/* backoff — exponential backoff with full jitter ("Exponential Backoff And Jitter",
 * AWS Architecture Blog): the delay before retry n is uniform in [0, min(cap,
 * base * 2^(n-1))].  Pure functions: the caller supplies the random value, so tests
 * are deterministic; backoff_random() is a convenience source. */
#ifndef BACKOFF_H
#define BACKOFF_H

#include <stdint.h>

struct backoff_policy {
    int64_t base_ms; /* delay ceiling of the first retry; <= 0 means no delay */
    int64_t cap_ms;  /* the ceiling never exceeds this */
};

/* min(cap, base * 2^(attempt-1)) without overflow; attempt < 1 counts as 1. */
int64_t backoff_ceiling_ms(const struct backoff_policy *p, int attempt);

/* Full jitter: rnd mapped uniformly onto [0, backoff_ceiling_ms(p, attempt)]. */
int64_t backoff_full_jitter_ms(const struct backoff_policy *p, int attempt, uint64_t rnd);

/* A uniform 64-bit random value (getrandom; falls back to a clock mix). Thread-safe. */
uint64_t backoff_random(void);

#endif
