/* cache — construction, the connection pool and the circuit breaker around it. */
#include "cache/cache_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/log.h"

const char *cache_strerror(int err)
{
    switch (err) {
    case CACHE_OK:
        return "ok";
    case CACHE_EUNAVAILABLE:
        return "redis unavailable";
    case CACHE_ENOMEM:
        return "out of memory";
    case CACHE_EINVAL:
        return "invalid argument";
    default:
        return "unknown cache error";
    }
}

/* The one log line per state change of the breaker (under its lock: just a write). */
static void on_breaker(void *ctx, enum breaker_state from, enum breaker_state to)
{
    const struct cache *c = ctx;
    if (to == BREAKER_OPEN && from == BREAKER_CLOSED)
        log_warn("redis unavailable: circuit open: reads go to MariaDB, invalidations are dropped",
                 LOG_S("host", c->host), LOG_I("port", c->cfg.port),
                 LOG_I("retry_in_ms", c->cfg.breaker_open_ms));
    else if (to == BREAKER_CLOSED)
        log_info("redis available again: circuit closed", LOG_S("host", c->host),
                 LOG_I("port", c->cfg.port));
}

static struct timeval timeout_tv(const struct cache *c)
{
    struct timeval tv = {c->cfg.timeout_ms / 1000, (long)(c->cfg.timeout_ms % 1000) * 1000};
    return tv;
}

redisContext *cache__connect(const struct cache *c)
{
    struct timeval tv = timeout_tv(c);
    redisContext *rc = redisConnectWithTimeout(c->host, c->cfg.port, tv);
    if (!rc)
        return NULL;
    if (rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
        redisFree(rc);
        return NULL;
    }
    return rc;
}

/* SCRIPT LOAD the scripts on a new connection (a restarted Redis has forgotten
 * them); their SHA1s never change, so storing them again is harmless. */
static bool load_scripts(struct cache *c, redisContext *rc)
{
    const char *scripts[3] = {cache__lua_get, cache__lua_fill, cache__lua_ratelimit};
    char *shas[3] = {c->sha_get, c->sha_fill, c->sha_ratelimit};
    for (int i = 0; i < 3; i++) {
        redisReply *r = redisCommand(rc, "SCRIPT LOAD %s", scripts[i]);
        bool ok = r && r->type == REDIS_REPLY_STRING && r->len == CACHE__SHA_LEN;
        if (ok) {
            pthread_mutex_lock(&c->mu);
            memcpy(shas[i], r->str, CACHE__SHA_LEN);
            shas[i][CACHE__SHA_LEN] = '\0';
            pthread_mutex_unlock(&c->mu);
        }
        if (r)
            freeReplyObject(r);
        if (!ok)
            return false;
    }
    return true;
}

static void deadline_after(int ms, struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int cache__begin(struct cache *c, struct cache__conn **ret_conn)
{
    struct cache__conn *k = NULL;
    struct timespec until;

    if (!breaker_allow(c->breaker))
        return CACHE_EUNAVAILABLE;
    deadline_after(c->cfg.timeout_ms, &until);
    pthread_mutex_lock(&c->mu);
    for (;;) {
        for (int i = 0; i < c->cfg.pool_size && !k; i++) {
            if (!c->conns[i].busy)
                k = &c->conns[i];
        }
        if (k || pthread_cond_timedwait(&c->cv, &c->mu, &until) == ETIMEDOUT)
            break;
    }
    if (k)
        k->busy = true;
    pthread_mutex_unlock(&c->mu);
    if (!k)
        return CACHE_EUNAVAILABLE; /* every connection is busy: Redis is slow */
    if (!k->rc) {
        k->rc = cache__connect(c);
        if (!k->rc || !load_scripts(c, k->rc)) {
            cache__end(c, k, false);
            return CACHE_EUNAVAILABLE;
        }
    }
    *ret_conn = k;
    return CACHE_OK;
}

void cache__end(struct cache *c, struct cache__conn *k, bool ok)
{
    if (ok) {
        breaker_success(c->breaker);
    } else {
        breaker_failure(c->breaker);
        if (k->rc) {
            redisFree(k->rc);
            k->rc = NULL;
        }
    }
    pthread_mutex_lock(&c->mu);
    k->busy = false;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int cache_ping(struct cache *c)
{
    struct cache__conn *k;
    redisReply *r;
    bool ok;
    if (cache__begin(c, &k) != CACHE_OK)
        return CACHE_EUNAVAILABLE;
    r = redisCommand(k->rc, "PING");
    ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    cache__end(c, k, ok);
    return ok ? CACHE_OK : CACHE_EUNAVAILABLE;
}

void cache__key(const struct ids_id *id, char out[CACHE__KEY_LEN + 1])
{
    memcpy(out, CACHE__KEY_PREFIX, sizeof CACHE__KEY_PREFIX - 1);
    ids_format(id, out + sizeof CACHE__KEY_PREFIX - 1);
}

static void cache_release(struct cache *c)
{
    for (int i = 0; c->conns && i < c->cfg.pool_size; i++) {
        if (c->conns[i].rc)
            redisFree(c->conns[i].rc);
    }
    free(c->conns);
    breaker_free(c->breaker);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c->host);
    free(c);
}

int cache_new(const struct cache_config *cfg, struct cache **ret_cache)
{
    struct cache *c;
    pthread_condattr_t ca;
    struct breaker_config bc;

    if (!cfg || !cfg->host || cfg->pool_size < 1 || cfg->timeout_ms < 1 ||
        cfg->breaker_threshold < 1 || cfg->breaker_open_ms < 1 || cfg->lease_ms < 1)
        return CACHE_EINVAL;
    c = calloc(1, sizeof *c);
    if (!c)
        return CACHE_ENOMEM;
    c->cfg = *cfg;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    c->sub.wake[0] = c->sub.wake[1] = -1;
    c->host = strdup(cfg->host);
    c->conns = calloc((size_t)cfg->pool_size, sizeof *c->conns);
    bc = (struct breaker_config){.failure_threshold = cfg->breaker_threshold,
                                 .open_ms = cfg->breaker_open_ms,
                                 .on_change = on_breaker,
                                 .change_ctx = c};
    if (!c->host || !c->conns || breaker_new(&bc, &c->breaker) < 0)
        goto out_free;
    c->cfg.host = c->host;
    if (cache__notifier_start(c) < 0)
        goto out_free;
    *ret_cache = c;
    return CACHE_OK;
out_free:
    cache_release(c);
    return CACHE_ENOMEM;
}

void cache_free(struct cache *c)
{
    if (!c)
        return;
    cache_unsubscribe(c);
    cache__notifier_stop(c);
    cache_release(c);
}

int cache_breaker_state(struct cache *c)
{
    return (int)breaker_state(c->breaker);
}

unsigned long long cache_dropped(struct cache *c)
{
    return atomic_load(&c->dropped);
}
