/* Integration: the Redis adapter (internal/cache) against the harness's real Redis —
 * the fill lease and its Lua scripts (a racing fill after a change stores nothing, an
 * older version never overwrites a newer one), TTLs with jitter, invalidation events
 * through the subscriber, and the circuit breaker when Redis cannot be reached. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "support/testenv.h"

static struct cache_config config(int port)
{
    return (struct cache_config){.host = testenv_get("DISPATCH_REDIS_HOST"),
                                 .port = port,
                                 .timeout_ms = 500,
                                 .pool_size = 2,
                                 .breaker_threshold = 3,
                                 .breaker_open_ms = 300,
                                 .lease_ms = 5000};
}

static struct cache *open_cache(void)
{
    struct cache_config cc = config(testenv_get_int("DISPATCH_REDIS_PORT"));
    struct cache *c = NULL;
    assert_int_equal(cache_new(&cc, &c), CACHE_OK);
    return c;
}

/* A side connection to look at (and tamper with) what the adapter wrote. */
static redisContext *side(void)
{
    redisContext *rc =
        redisConnect(testenv_get("DISPATCH_REDIS_HOST"), testenv_get_int("DISPATCH_REDIS_PORT"));
    assert_non_null(rc);
    assert_int_equal(rc->err, 0);
    return rc;
}

static long long pttl(redisContext *rc, const struct ids_id *id)
{
    char text[IDS_TEXT_LEN + 1];
    redisReply *r;
    long long v;
    ids_format(id, text);
    r = redisCommand(rc, "PTTL dispatch:task:%s", text);
    assert_non_null(r);
    v = r->integer;
    freeReplyObject(r);
    return v;
}

static struct ids_id fresh_id(void)
{
    struct ids_id id;
    assert_int_equal(ids_new_v7(&id), 0);
    return id;
}

static void test_miss_lease_fill_hit(void **state)
{
    struct cache *c = open_cache();
    redisContext *rc = side();
    struct ids_id id = fresh_id();
    struct cache_entry e, other;
    long long ttl;
    (void)state;

    assert_int_equal(cache_task_get(c, &id, &e), CACHE_OK);
    assert_null(e.value);
    assert_true(e.lease != 0);
    /* a second reader while the lease is out: a miss it may not fill */
    assert_int_equal(cache_task_get(c, &id, &other), CACHE_OK);
    assert_null(other.value);
    assert_int_equal(other.lease, 0);
    assert_int_equal(cache_task_fill(c, &id, e.lease, 100, "v100", 4, 10000), CACHE_OK);
    assert_int_equal(cache_task_get(c, &id, &other), CACHE_OK);
    assert_non_null(other.value);
    assert_int_equal(other.len, 4);
    assert_memory_equal(other.value, "v100", 4);
    free(other.value);
    /* the TTL, +-10 % */
    ttl = pttl(rc, &id);
    assert_true(ttl > 8900 && ttl <= 11000);
    /* binary-safe values */
    {
        struct ids_id b = fresh_id();
        const char bin[5] = {'a', 0, 'b', '\n', 0};
        assert_int_equal(cache_task_get(c, &b, &e), CACHE_OK);
        assert_int_equal(cache_task_fill(c, &b, e.lease, 1, bin, sizeof bin, 10000), CACHE_OK);
        assert_int_equal(cache_task_get(c, &b, &other), CACHE_OK);
        assert_int_equal(other.len, sizeof bin);
        assert_memory_equal(other.value, bin, sizeof bin);
        free(other.value);
    }
    redisFree(rc);
    cache_free(c);
}

static void test_a_change_kills_the_lease(void **state)
{
    struct cache *c = open_cache();
    struct ids_id id = fresh_id();
    struct cache_entry e, now;
    (void)state;
    /* a reader takes the lease and reads the old row ... */
    assert_int_equal(cache_task_get(c, &id, &e), CACHE_OK);
    assert_true(e.lease != 0);
    /* ... a writer commits and invalidates ... */
    assert_int_equal(cache_task_changed_now(c, &id, 1), CACHE_OK);
    /* ... the reader's fill of what it read stores nothing */
    assert_int_equal(cache_task_fill(c, &id, e.lease, 100, "old", 3, 10000), CACHE_OK);
    assert_int_equal(cache_task_get(c, &id, &now), CACHE_OK);
    assert_null(now.value);
    assert_true(now.lease != 0 && now.lease != e.lease);
    cache_free(c);
}

static void test_an_older_version_never_overwrites_a_newer_one(void **state)
{
    struct cache *c = open_cache();
    redisContext *rc = side();
    struct ids_id id = fresh_id();
    char text[IDS_TEXT_LEN + 1];
    struct cache_entry e, now;
    redisReply *r;
    (void)state;
    assert_int_equal(cache_task_get(c, &id, &e), CACHE_OK);
    /* a newer version got there first (another producer's fill, say) while our
     * lease token is still in place */
    ids_format(&id, text);
    r = redisCommand(rc, "HSET dispatch:task:%s v 200 d v200", text);
    assert_non_null(r);
    freeReplyObject(r);
    assert_int_equal(cache_task_fill(c, &id, e.lease, 100, "v100", 4, 10000), CACHE_OK);
    assert_int_equal(cache_task_get(c, &id, &now), CACHE_OK);
    assert_non_null(now.value);
    assert_memory_equal(now.value, "v200", 4);
    free(now.value);
    redisFree(rc);
    cache_free(c);
}

/* --- events -------------------------------------------------------------------- */

struct events {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ids_id seen[8];
    int n, ups, downs;
};

static void on_changed(void *ctx, const struct ids_id *id)
{
    struct events *ev = ctx;
    pthread_mutex_lock(&ev->mu);
    if (ev->n < 8)
        ev->seen[ev->n++] = *id;
    pthread_cond_broadcast(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
}

static void on_state(void *ctx, bool up)
{
    struct events *ev = ctx;
    pthread_mutex_lock(&ev->mu);
    if (up)
        ev->ups++;
    else
        ev->downs++;
    pthread_cond_broadcast(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
}

static const struct cache_events_ops events_ops = {on_changed, on_state};

/* Waits (5 s at most) until pred holds; true when it did. */
static bool wait_for(struct events *ev, bool (*pred)(const struct events *))
{
    struct timespec until;
    bool ok;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&ev->mu);
    while (!(ok = pred(ev)) && pthread_cond_timedwait(&ev->cv, &ev->mu, &until) == 0)
        ;
    pthread_mutex_unlock(&ev->mu);
    return ok;
}

static bool is_up(const struct events *ev)
{
    return ev->ups > 0;
}

static bool has_three(const struct events *ev)
{
    return ev->n >= 3;
}

static void test_invalidations_reach_subscribers_in_order(void **state)
{
    struct cache *writer = open_cache(), *reader = open_cache();
    struct events ev = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {{{0}}}, 0, 0, 0};
    struct ids_id ids[3] = {fresh_id(), fresh_id(), fresh_id()};
    struct cache_entry e;
    (void)state;
    assert_int_equal(cache_subscribe(reader, &events_ops, &ev), CACHE_OK);
    assert_true(wait_for(&ev, is_up));
    /* an entry to drop */
    assert_int_equal(cache_task_get(writer, &ids[0], &e), CACHE_OK);
    assert_int_equal(cache_task_fill(writer, &ids[0], e.lease, 1, "x", 1, 10000), CACHE_OK);
    /* queued, batched, sent by the notifier thread */
    cache_task_changed(writer, ids, 2);
    cache_task_changed(writer, &ids[2], 1);
    assert_true(wait_for(&ev, has_three));
    for (int i = 0; i < 3; i++)
        assert_true(ids_equal(&ev.seen[i], &ids[i]));
    /* the entry went before the event */
    assert_int_equal(cache_task_get(writer, &ids[0], &e), CACHE_OK);
    assert_null(e.value);
    cache_free(reader); /* unsubscribes */
    assert_int_equal(ev.downs, 1);
    cache_free(writer);
}

/* --- failures ------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_unreachable_redis_opens_the_breaker(void **state)
{
    /* port 1: nobody listens there (tcpmux), so connecting is refused at once */
    struct cache_config cc = config(1);
    struct cache *c = NULL;
    struct cache_entry e;
    struct ids_id id = fresh_id();
    int64_t t0;
    (void)state;
    assert_int_equal(cache_new(&cc, &c), CACHE_OK); /* Redis may come later */
    assert_int_equal(cache_breaker_state(c), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cache_task_get(c, &id, &e), CACHE_EUNAVAILABLE);
    assert_int_equal(cache_breaker_state(c), 1);
    /* open: refused without trying */
    t0 = now_ms();
    for (int i = 0; i < 100; i++)
        assert_int_equal(cache_task_get(c, &id, &e), CACHE_EUNAVAILABLE);
    assert_true(now_ms() - t0 < 100);
    assert_int_equal(cache_task_changed_now(c, &id, 1), CACHE_EUNAVAILABLE);
    cache_task_changed(c, &id, 1); /* dropped, never blocks */
    /* after the open interval one probe goes (and fails again) */
    usleep(350000);
    assert_int_equal(cache_task_get(c, &id, &e), CACHE_EUNAVAILABLE);
    assert_int_equal(cache_breaker_state(c), 1);
    cache_free(c);
    cc.pool_size = 0;
    assert_int_equal(cache_new(&cc, &c), CACHE_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_miss_lease_fill_hit),
        cmocka_unit_test(test_a_change_kills_the_lease),
        cmocka_unit_test(test_an_older_version_never_overwrites_a_newer_one),
        cmocka_unit_test(test_invalidations_reach_subscribers_in_order),
        cmocka_unit_test(test_unreachable_redis_opens_the_breaker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
