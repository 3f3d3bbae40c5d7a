/* breaker — the three-state machine behind one mutex. */
#include "breaker/breaker.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct breaker {
    pthread_mutex_t mu;
    struct breaker_config cfg;
    enum breaker_state state;
    int failures;     /* consecutive, while closed */
    int64_t since_ms; /* open: when it opened; half-open: when the probe went */
    bool probe_out;   /* half-open: the probe has not reported yet */
};

static int64_t monotonic_ms(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int breaker_new(const struct breaker_config *cfg, struct breaker **ret_breaker)
{
    struct breaker *b;
    if (!cfg || cfg->failure_threshold < 1 || cfg->open_ms < 1)
        return -1;
    b = calloc(1, sizeof *b);
    if (!b)
        return -1;
    b->cfg = *cfg;
    if (!b->cfg.clock)
        b->cfg.clock = monotonic_ms;
    pthread_mutex_init(&b->mu, NULL);
    *ret_breaker = b;
    return 0;
}

void breaker_free(struct breaker *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* Lock held. */
static void move(struct breaker *b, enum breaker_state to, int64_t now)
{
    enum breaker_state from = b->state;
    b->state = to;
    b->since_ms = now;
    b->failures = 0;
    b->probe_out = false;
    if (from != to && b->cfg.on_change)
        b->cfg.on_change(b->cfg.change_ctx, from, to);
}

bool breaker_allow(struct breaker *b)
{
    bool allow = false;
    int64_t now = b->cfg.clock(b->cfg.clock_ctx);

    pthread_mutex_lock(&b->mu);
    switch (b->state) {
    case BREAKER_CLOSED:
        allow = true;
        break;
    case BREAKER_OPEN:
        if (now - b->since_ms >= b->cfg.open_ms) {
            move(b, BREAKER_HALF_OPEN, now);
            b->probe_out = true;
            allow = true;
        }
        break;
    case BREAKER_HALF_OPEN:
        /* one probe at a time; a lost one is given up after the open interval */
        if (!b->probe_out || now - b->since_ms >= b->cfg.open_ms) {
            b->probe_out = true;
            b->since_ms = now;
            allow = true;
        }
        break;
    }
    pthread_mutex_unlock(&b->mu);
    return allow;
}

bool breaker_would_allow(struct breaker *b, int64_t *ret_retry_ms)
{
    int64_t now = b->cfg.clock(b->cfg.clock_ctx);
    int64_t left = 0;

    pthread_mutex_lock(&b->mu);
    if (b->state == BREAKER_OPEN || (b->state == BREAKER_HALF_OPEN && b->probe_out))
        left = b->cfg.open_ms - (now - b->since_ms);
    pthread_mutex_unlock(&b->mu);
    if (left <= 0)
        return true;
    if (ret_retry_ms)
        *ret_retry_ms = left;
    return false;
}

void breaker_success(struct breaker *b)
{
    int64_t now = b->cfg.clock(b->cfg.clock_ctx);
    pthread_mutex_lock(&b->mu);
    if (b->state == BREAKER_HALF_OPEN)
        move(b, BREAKER_CLOSED, now);
    else if (b->state == BREAKER_CLOSED)
        b->failures = 0;
    /* open: a call let through before it opened; the interval runs on */
    pthread_mutex_unlock(&b->mu);
}

void breaker_failure(struct breaker *b)
{
    int64_t now = b->cfg.clock(b->cfg.clock_ctx);
    pthread_mutex_lock(&b->mu);
    if (b->state == BREAKER_HALF_OPEN)
        move(b, BREAKER_OPEN, now);
    else if (b->state == BREAKER_CLOSED && ++b->failures >= b->cfg.failure_threshold)
        move(b, BREAKER_OPEN, now);
    pthread_mutex_unlock(&b->mu);
}

enum breaker_state breaker_state(struct breaker *b)
{
    enum breaker_state s;
    pthread_mutex_lock(&b->mu);
    s = b->state;
    pthread_mutex_unlock(&b->mu);
    return s;
}

const char *breaker_state_name(enum breaker_state s)
{
    switch (s) {
    case BREAKER_CLOSED:
        return "closed";
    case BREAKER_OPEN:
        return "open";
    case BREAKER_HALF_OPEN:
        return "half-open";
    default:
        return "unknown";
    }
}
