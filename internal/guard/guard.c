/* guard — a breaker, the watch on calls in flight, and the prober thread. */
#include "guard/guard.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "breaker/breaker.h"
#include "log/log.h"

/* Calls watched for slowness at once; a call beyond them is only counted when it
 * ends.  Synchronous calls are bounded by the threads that make them. */
#define SLOTS 64
/* Between two checks while the last one failed. */
#define RECHECK_MS 100

struct slot {
    int64_t since;
    bool used;
    bool counted; /* its slowness was counted as a failure already */
};

struct guard {
    struct guard_config cfg;
    char *name;
    struct breaker *breaker; /* NULL: state_fn */

    pthread_mutex_t mu;
    pthread_cond_t cv; /* the prober's wait, and guard_new's for the first verdict */
    struct slot slots[SLOTS];
    bool up;               /* the last check passed */
    bool checked;          /* a verdict exists */
    int64_t check_started; /* a check is under way since then; 0: none */
    int64_t reported;      /* when a check last counted for the breaker */
    bool stopping;
    pthread_t prober;
    bool prober_started;
};

static int64_t monotonic_ms(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(const struct guard *g)
{
    return g->cfg.clock(g->cfg.clock_ctx);
}

/* One line per opening and per closing (under the breaker's lock: just a write). */
static void on_change(void *ctx, enum breaker_state from, enum breaker_state to)
{
    const struct guard *g = ctx;
    if (to == BREAKER_OPEN && from == BREAKER_CLOSED)
        log_warn("dependency unavailable: circuit open: requests that need it get 503 at once",
                 LOG_S("dependency", g->name), LOG_I("retry_in_ms", g->cfg.open_ms));
    else if (to == BREAKER_CLOSED)
        log_info("dependency available again: circuit closed", LOG_S("dependency", g->name));
}

/* Counts each call that has run past slow_ms as one failure, once.  Lock held. */
static void watch_slow(struct guard *g, int64_t now)
{
    if (!g->breaker || g->cfg.slow_ms <= 0)
        return;
    for (int i = 0; i < SLOTS; i++) {
        struct slot *s = &g->slots[i];
        if (s->used && !s->counted && now - s->since >= g->cfg.slow_ms) {
            s->counted = true;
            breaker_failure(g->breaker);
        }
    }
}

static int take_slot(struct guard *g, int64_t now)
{
    int slot = -1;
    pthread_mutex_lock(&g->mu);
    watch_slow(g, now);
    for (int i = 0; i < SLOTS && slot < 0; i++) {
        if (!g->slots[i].used) {
            g->slots[i] = (struct slot){.since = now, .used = true};
            slot = i;
        }
    }
    pthread_mutex_unlock(&g->mu);
    return slot;
}

bool guard_enter(struct guard *g, struct guard_call *call)
{
    call->slot = -1;
    if (g->breaker && !breaker_allow(g->breaker))
        return false;
    call->slot = take_slot(g, now_ms(g));
    return true;
}

void guard_leave(struct guard *g, struct guard_call *call, bool ok)
{
    bool counted = false;
    if (call->slot >= 0) {
        pthread_mutex_lock(&g->mu);
        counted = g->slots[call->slot].counted;
        g->slots[call->slot].used = false;
        pthread_mutex_unlock(&g->mu);
        call->slot = -1;
    }
    /* a slow call was a failure when it overran; how it ended changes nothing */
    if (!g->breaker || counted)
        return;
    if (ok)
        breaker_success(g->breaker);
    else
        breaker_failure(g->breaker);
}

bool guard_refuses(struct guard *g, int *ret_retry_after_s)
{
    int64_t retry_ms = 0;
    if (!g->breaker)
        return false;
    pthread_mutex_lock(&g->mu);
    watch_slow(g, now_ms(g));
    pthread_mutex_unlock(&g->mu);
    if (breaker_would_allow(g->breaker, &retry_ms))
        return false;
    if (ret_retry_after_s)
        *ret_retry_after_s = (int)((retry_ms + 999) / 1000);
    return true;
}

int guard_breaker_state(struct guard *g)
{
    if (g->breaker) {
        pthread_mutex_lock(&g->mu);
        watch_slow(g, now_ms(g));
        pthread_mutex_unlock(&g->mu);
        return (int)breaker_state(g->breaker);
    }
    return g->cfg.state_fn ? g->cfg.state_fn(g->cfg.state_ctx) : BREAKER_CLOSED;
}

const char *guard_breaker_name(struct guard *g)
{
    return breaker_state_name((enum breaker_state)guard_breaker_state(g));
}

bool guard_up(struct guard *g)
{
    bool up;
    if (!g->cfg.check)
        return guard_breaker_state(g) != BREAKER_OPEN;
    pthread_mutex_lock(&g->mu);
    up = g->checked && g->up &&
         !(g->check_started && now_ms(g) - g->check_started > g->cfg.check_timeout_ms);
    pthread_mutex_unlock(&g->mu);
    return up;
}

const char *guard_name(const struct guard *g)
{
    return g->name;
}

void guard_check_now(struct guard *g)
{
    struct guard_call call = {-1};
    bool report, ok;
    int64_t start = now_ms(g);

    /* closed: a call like any other, at most once an interval (the quick rechecks
     * after a failure must not open the breaker faster); due: the half-open probe;
     * open: a check for /readyz alone, told to nobody */
    if (g->breaker && breaker_state(g->breaker) == BREAKER_CLOSED &&
        start - g->reported < g->cfg.check_interval_ms)
        report = false;
    else
        report = guard_enter(g, &call);
    if (report)
        g->reported = start;
    pthread_mutex_lock(&g->mu);
    g->check_started = start;
    pthread_mutex_unlock(&g->mu);
    ok = g->cfg.check(g->cfg.check_ctx);
    pthread_mutex_lock(&g->mu);
    g->up = ok;
    g->checked = true;
    g->check_started = 0;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (report)
        guard_leave(g, &call, ok);
}

static void wait_ms(struct guard *g, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&g->cv, &g->mu, &ts);
}

static void *prober_thread(void *arg)
{
    struct guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        pthread_mutex_unlock(&g->mu);
        guard_check_now(g);
        pthread_mutex_lock(&g->mu);
        /* down: look again soon, so that /readyz says "up" within about
         * RECHECK_MS of the dependency's return rather than a whole interval */
        if (!g->stopping)
            wait_ms(g, g->up || g->cfg.check_interval_ms < RECHECK_MS ? g->cfg.check_interval_ms
                                                                      : RECHECK_MS);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int guard_new(const struct guard_config *cfg, struct guard **ret_g)
{
    struct guard *g;
    pthread_condattr_t ca;

    if (!cfg || !cfg->name || cfg->failure_threshold < 0 ||
        (cfg->failure_threshold > 0 && cfg->open_ms < 1) ||
        (cfg->check && (cfg->check_interval_ms < 1 || cfg->check_timeout_ms < 1)))
        return -1;
    g = calloc(1, sizeof *g);
    if (!g)
        return -1;
    g->cfg = *cfg;
    if (!g->cfg.clock)
        g->cfg.clock = monotonic_ms;
    g->name = strdup(cfg->name);
    g->cfg.name = g->name;
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!g->name)
        goto out_free;
    if (cfg->failure_threshold > 0) {
        struct breaker_config bc = {.failure_threshold = cfg->failure_threshold,
                                    .open_ms = cfg->open_ms,
                                    .clock = cfg->clock,
                                    .clock_ctx = cfg->clock_ctx,
                                    .on_change = on_change,
                                    .change_ctx = g};
        if (breaker_new(&bc, &g->breaker) < 0)
            goto out_free;
    }
    if (cfg->check && !cfg->manual) {
        if (pthread_create(&g->prober, NULL, prober_thread, g) != 0)
            goto out_free;
        g->prober_started = true;
        /* /readyz right after start-up reports a verdict, not a guess */
        pthread_mutex_lock(&g->mu);
        if (!g->checked)
            wait_ms(g, g->cfg.check_timeout_ms);
        pthread_mutex_unlock(&g->mu);
    }
    *ret_g = g;
    return 0;
out_free:
    guard_free(g);
    return -1;
}

void guard_free(struct guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stopping = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (g->prober_started)
        pthread_join(g->prober, NULL);
    breaker_free(g->breaker);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g->name);
    free(g);
}
