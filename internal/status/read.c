/* status — the cached read path: LRU on the caller's thread; Redis and the store on
 * the reader's pool, one flight per id. */
#include "status/status_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/metrics.h"

/* What one flight found, shared by its waiters. */
struct result {
    int rc; /* STATUS_OK (bytes is an entry, perhaps a negative one) or STATUS_EUNAVAILABLE */
    unsigned char *bytes;
    size_t len;
};

struct lookup {
    struct status_reader *r;
    struct ids_id id;
};

int64_t status_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count(const struct status_reader *r, enum metrics_cache_layer layer,
                  enum metrics_cache_result result)
{
    metrics_cache_request(r->cfg.metrics, layer, result);
}

void status_view_release(struct status_view *v)
{
    if (!v)
        return;
    free(v->json);
    v->json = NULL;
    v->json_len = 0;
}

void status_view_version(const struct status_view *v, struct status_version *ret_version)
{
    ret_version->updated_at = v->updated_at;
    ret_version->attempts = v->attempts;
    ret_version->status = v->status;
}

int status_cached(struct status_reader *r, const struct ids_id *id, const struct ids_id *owner,
                  struct status_view *ret_view)
{
    struct status__entry e;
    void *bytes;
    size_t len;
    int rc;

    if (!atomic_load(&r->events_up))
        return STATUS_EMISS;
    if (lru_get(r->lru, id->b, sizeof id->b, &bytes, &len) != LRU_OK) {
        count(r, METRICS_CACHE_LRU, METRICS_CACHE_MISS);
        return STATUS_EMISS;
    }
    if (status__decode(bytes, len, id, &e) < 0) {
        free(bytes);
        count(r, METRICS_CACHE_LRU, METRICS_CACHE_MISS);
        return STATUS_EMISS;
    }
    count(r, METRICS_CACHE_LRU, e.exists ? METRICS_CACHE_HIT : METRICS_CACHE_NEGATIVE);
    rc = status__visible(&e, owner);
    if (rc != STATUS_OK) {
        free(bytes);
        return rc;
    }
    /* the caller gets the view's text in the copy the LRU made: move it to the front */
    memmove(bytes, e.view.json, e.view.json_len + 1);
    *ret_view = e.view;
    ret_view->json = bytes;
    return STATUS_OK;
}

/* --- flights -------------------------------------------------------------------- */

static void deliver(struct singleflight_waiter *w, void *arg)
{
    struct status_call *call = w->arg;
    const struct result *res = arg;
    struct status__entry e;
    int rc = res->rc;

    if (rc == STATUS_OK) {
        /* the flight's entry decoded once per caller: the owner check is each one's */
        if (status__decode(res->bytes, res->len, &call->id, &e) == 0)
            rc = status__visible(&e, &call->owner);
        else
            rc = STATUS_EUNAVAILABLE;
    }
    if (call->waiting_)
        status__checked(call->r_, call, rc, rc == STATUS_OK ? &e.view : NULL);
    else
        call->done(call, rc, rc == STATUS_OK ? &e.view : NULL);
}

static int ttl_of(const struct status_reader *r, const struct status__entry *e, bool lru)
{
    if (!e->exists)
        return r->cfg.negative_ttl_ms;
    if (lru)
        return r->cfg.lru_ttl_ms;
    return model_status_terminal(e->view.status) ? r->cfg.redis_terminal_ttl_ms
                                                 : r->cfg.redis_ttl_ms;
}

/* Redis: an entry (owned) or NULL; *ret_lease is set on a miss that may fill. */
static unsigned char *from_redis(struct status_reader *r, const struct ids_id *id, size_t *ret_len,
                                 uint64_t *ret_lease)
{
    struct status_cache_entry ce = {NULL, 0, 0};
    struct status__entry e;

    *ret_lease = 0;
    if (!r->cache)
        return NULL;
    if (r->cache->get(r->cache_ctx, id, &ce) != 0) {
        count(r, METRICS_CACHE_REDIS, METRICS_CACHE_ERROR);
        return NULL;
    }
    if (ce.value && status__decode(ce.value, ce.len, id, &e) == 0) {
        count(r, METRICS_CACHE_REDIS, e.exists ? METRICS_CACHE_HIT : METRICS_CACHE_NEGATIVE);
        *ret_len = ce.len;
        return ce.value;
    }
    /* an entry we cannot read (another format) is a miss, and not ours to fill */
    count(r, METRICS_CACHE_REDIS, METRICS_CACHE_MISS);
    *ret_lease = ce.value ? 0 : ce.lease;
    free(ce.value);
    return NULL;
}

/* The store: an entry (owned), a negative one for an unknown id, or NULL. */
static unsigned char *from_store(struct status_reader *r, const struct ids_id *id, size_t *ret_len)
{
    unsigned char *bytes = NULL;
    struct task t;
    int rc = r->store->store->get(r->store->store_ctx, id, &t);

    if (rc == 0) {
        count(r, METRICS_CACHE_DB, METRICS_CACHE_HIT);
        if (status__encode(&t, &bytes, ret_len) < 0)
            bytes = NULL;
        model_task_release(&t);
    } else if (rc == r->store->notfound_code) {
        count(r, METRICS_CACHE_DB, METRICS_CACHE_MISS);
        if (status__encode_absent(id, &bytes, ret_len) < 0)
            bytes = NULL;
    } else {
        count(r, METRICS_CACHE_DB, METRICS_CACHE_ERROR);
    }
    return bytes;
}

static void lookup(void *arg)
{
    struct lookup *job = arg;
    struct status_reader *r = job->r;
    const struct ids_id *id = &job->id;
    /* read before any layer is asked: an event that comes while we look fences our
     * LRU fill off (lru_put_if) */
    uint64_t stamp = lru_stamp(r->lru, id->b, sizeof id->b);
    struct result res = {STATUS_EUNAVAILABLE, NULL, 0};
    struct status__entry e;
    unsigned char *bytes;
    uint64_t lease;
    size_t len = 0;

    bytes = from_redis(r, id, &len, &lease);
    if (!bytes) {
        bytes = from_store(r, id, &len);
        if (bytes && lease && status__decode(bytes, len, id, &e) == 0)
            r->cache->fill(r->cache_ctx, id, lease, e.exists ? e.view.updated_at : 0, bytes, len,
                           ttl_of(r, &e, false));
    }
    if (bytes && status__decode(bytes, len, id, &e) == 0) {
        res = (struct result){STATUS_OK, bytes, len};
        if (atomic_load(&r->events_up))
            lru_put_if(r->lru, id->b, sizeof id->b, bytes, len, ttl_of(r, &e, true), stamp);
    }
    singleflight_finish(r->flights, id->b, sizeof id->b, &res);
    free(bytes);
    free(job);
}

void status__start(struct status_reader *r, struct status_call *call)
{
    struct result fail = {STATUS_EUNAVAILABLE, NULL, 0};
    struct lookup *job;
    int rc;

    call->r_ = r;
    call->flight_.done = deliver;
    call->flight_.arg = call;
    rc = singleflight_join(r->flights, call->id.b, sizeof call->id.b, &call->flight_);
    if (rc == SINGLEFLIGHT_JOINED)
        return;
    if (rc != SINGLEFLIGHT_LEADER) {
        struct singleflight_waiter *w = &call->flight_;
        w->done(w, &fail);
        return;
    }
    job = malloc(sizeof *job);
    if (job) {
        job->r = r;
        job->id = call->id;
        pthread_mutex_lock(&r->mu);
        rc = !r->stopping && workpool_submit(r->pool, lookup, job) == 0 ? 0 : -1;
        pthread_mutex_unlock(&r->mu);
        if (rc == 0)
            return;
        free(job);
    }
    /* the lookup cannot start: everyone on this flight hears so now */
    singleflight_finish(r->flights, call->id.b, sizeof call->id.b, &fail);
}

int status_fetch(struct status_reader *r, struct status_call *call)
{
    bool stopping;
    pthread_mutex_lock(&r->mu);
    stopping = r->stopping;
    pthread_mutex_unlock(&r->mu);
    if (stopping)
        return STATUS_EUNAVAILABLE;
    call->waiting_ = false;
    status__start(r, call);
    return 0;
}

/* --- events ------------------------------------------------------------------------ */

void status_changed(struct status_reader *r, const struct ids_id *id)
{
    lru_remove(r->lru, id->b, sizeof id->b);
    status__waiters_wake(r, id);
}

void status_events(struct status_reader *r, bool up)
{
    atomic_store(&r->events_up, up);
    /* after the flag: a fill that saw "up" before a drop is fenced by the stamps */
    lru_clear(r->lru);
    if (up)
        status__waiters_wake(r, NULL);
}

/* --- life cycle ------------------------------------------------------------------ */

int status_reader_new(const struct status_read_config *cfg, const struct status *store,
                      const struct status_cache_ops *cache, void *cache_ctx,
                      struct status_reader **ret_reader)
{
    struct status_reader *r;
    struct lru_config lc;

    if (!cfg || !store || !store->store || !store->store->get || cfg->lru_entries < 1 ||
        cfg->lru_ttl_ms < 1 || cfg->negative_ttl_ms < 1 || cfg->redis_ttl_ms < 1 ||
        cfg->redis_terminal_ttl_ms < 1 || cfg->threads < 1 || cfg->queue_max < 0)
        return STATUS_EUNAVAILABLE;
    r = calloc(1, sizeof *r);
    if (!r)
        return STATUS_EUNAVAILABLE;
    r->cfg = *cfg;
    r->store = store;
    r->cache = cache;
    r->cache_ctx = cache_ctx;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->waiters.mu, NULL);
    lc = (struct lru_config){.capacity = cfg->lru_entries, .max_bytes = cfg->lru_bytes};
    if (lru_new(&lc, &r->lru) != LRU_OK || singleflight_new(&r->flights) < 0 ||
        status__waiters_init(r) < 0 || workpool_new(cfg->threads, cfg->queue_max, &r->pool) < 0) {
        status_reader_free(r);
        return STATUS_EUNAVAILABLE;
    }
    *ret_reader = r;
    return STATUS_OK;
}

void status_reader_stop(struct status_reader *r)
{
    struct workpool *pool;
    if (!r)
        return;
    /* long-polls first, while the pool still runs: each is answered with the task
     * as it now is */
    status__waiters_stop(r);
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pool = r->pool;
    r->pool = NULL;
    pthread_mutex_unlock(&r->mu);
    /* runs the lookups already taken: their callers are answered */
    workpool_free(pool);
}

void status_reader_free(struct status_reader *r)
{
    if (!r)
        return;
    status_reader_stop(r);
    status__waiters_release(r);
    singleflight_free(r->flights);
    lru_free(r->lru);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
