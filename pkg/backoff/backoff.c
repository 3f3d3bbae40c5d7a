#include "backoff/backoff.h"

#include <sys/random.h>
#include <time.h>

int64_t backoff_ceiling_ms(const struct backoff_policy *p, int attempt)
{
    if (p->base_ms <= 0 || p->cap_ms <= 0) {
        return 0;
    }
    int64_t ceiling = p->base_ms;
    for (int i = 1; i < attempt; i++) {
        /* stop doubling before the cap (and before int64 overflow) */
        if (ceiling >= p->cap_ms / 2) {
            return p->cap_ms;
        }
        ceiling *= 2;
    }
    return ceiling < p->cap_ms ? ceiling : p->cap_ms;
}

int64_t backoff_full_jitter_ms(const struct backoff_policy *p, int attempt, uint64_t rnd)
{
    int64_t ceiling = backoff_ceiling_ms(p, attempt);
    if (ceiling <= 0) {
        return 0;
    }
    /* modulo bias is at most ceiling / 2^64: negligible for delays */
    return (int64_t)(rnd % ((uint64_t)ceiling + 1));
}

uint64_t backoff_random(void)
{
    uint64_t v;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v) {
        return v;
    }
    /* no entropy yet (early boot): a clock mix is good enough for jitter */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    v = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec;
    v ^= v >> 31;
    return v * 0xBF58476D1CE4E5B9ull;
}
