/* Integration: the rate-limit buckets of the Redis adapter (internal/cache/ratelimit.c)
 * against the harness's real Redis — a new bucket starts full, refills by Redis's
 * clock, charges may go below zero, the script survives SCRIPT FLUSH (EVALSHA falls back
 * to EVAL), keys expire — and internal/ratelimit on top of it: two limiters (two
 * producers) flooding one key from threads share one budget within 5 %, and an
 * unreachable Redis sends the limiter to its local buckets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"
#include "ids/ids.h"
#include "ratelimit/ratelimit.h"
#include "support/testenv.h"

static struct cache *open_cache_on(int port)
{
    struct cache_config cc = {.host = testenv_get("DISPATCH_REDIS_HOST"),
                              .port = port,
                              .timeout_ms = 500,
                              .pool_size = 2,
                              .breaker_threshold = 3,
                              .breaker_open_ms = 300,
                              .lease_ms = 5000};
    struct cache *c = NULL;
    assert_int_equal(cache_new(&cc, &c), CACHE_OK);
    return c;
}

static struct cache *open_cache(void)
{
    return open_cache_on(testenv_get_int("DISPATCH_REDIS_PORT"));
}

static redisContext *side(void)
{
    redisContext *rc =
        redisConnect(testenv_get("DISPATCH_REDIS_HOST"), testenv_get_int("DISPATCH_REDIS_PORT"));
    assert_non_null(rc);
    assert_int_equal(rc->err, 0);
    return rc;
}

/* A key of its own per test run, so runs never share buckets. */
static void fresh_key(const char *what, char *out, size_t size)
{
    struct ids_id id;
    char text[IDS_TEXT_LEN + 1];
    assert_int_equal(ids_new_v7(&id), 0);
    ids_format(&id, text);
    snprintf(out, size, "test-%s:%s", what, text);
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void take(struct cache *c, const char *key, double rate, double burst, long long used,
                 long long want, long long *granted, int64_t *wait)
{
    assert_int_equal(
        cache_ratelimit_take(c, key, strlen(key), rate, burst, used, want, granted, wait),
        CACHE_OK);
}

static void test_new_bucket_is_full_then_dry(void **state)
{
    struct cache *c = open_cache();
    char key[80];
    long long g;
    int64_t wait;
    (void)state;
    fresh_key("full", key, sizeof key);
    take(c, key, 10, 5, 0, 3, &g, &wait);
    assert_int_equal(g, 3);
    assert_int_equal(wait, 0);
    take(c, key, 10, 5, 0, 10, &g, &wait);
    assert_int_equal(g, 2); /* the rest of the burst, and no more */
    assert_true(wait > 0 && wait <= 100000);
    take(c, key, 10, 5, 0, 10, &g, &wait);
    assert_int_equal(g, 0);
    assert_true(wait > 0 && wait <= 100000);
    cache_free(c);
}

static void test_refills_by_the_servers_clock(void **state)
{
    struct cache *c = open_cache();
    char key[80];
    long long g;
    int64_t wait;
    (void)state;
    fresh_key("refill", key, sizeof key);
    take(c, key, 100, 100, 0, 100, &g, &wait);
    assert_int_equal(g, 100);
    sleep_us(200000); /* the time the bucket refills in, not a synchronisation */
    take(c, key, 100, 100, 0, 100, &g, &wait);
    /* 100/s for 0.2 s (and whatever the round trips added) */
    assert_true(g >= 19 && g <= 30);
    cache_free(c);
}

static void test_charges_go_below_zero_and_lengthen_the_wait(void **state)
{
    struct cache *c = open_cache();
    char key[80];
    long long g;
    int64_t wait;
    (void)state;
    fresh_key("debt", key, sizeof key);
    take(c, key, 10, 5, 8, 1, &g, &wait); /* 5 held, 8 spent elsewhere: -3 */
    assert_int_equal(g, 0);
    assert_true(wait > 350000 && wait <= 400000); /* 4 tokens at 10/s */
    /* the debt is bounded by the burst */
    take(c, key, 10, 5, 1000, 0, &g, &wait);
    assert_true(wait <= 600000);
    cache_free(c);
}

static void test_script_flush_falls_back_to_eval_and_keys_expire(void **state)
{
    struct cache *c = open_cache();
    redisContext *rc = side();
    char key[80];
    long long g;
    int64_t wait;
    redisReply *r;
    (void)state;
    fresh_key("flush", key, sizeof key);
    take(c, key, 10, 5, 0, 1, &g, &wait);
    r = redisCommand(rc, "SCRIPT FLUSH");
    assert_non_null(r);
    freeReplyObject(r);
    take(c, key, 10, 5, 0, 1, &g, &wait);
    assert_int_equal(g, 1);
    r = redisCommand(rc, "PTTL dispatch:rl:%s", key);
    assert_non_null(r);
    /* 3 tokens missing at 10/s: full again in 0.3 s, kept a second more */
    assert_true(r->integer > 1000 && r->integer <= 1300);
    freeReplyObject(r);
    assert_int_equal(cache_ratelimit_take(c, key, 0, 10, 5, 0, 1, &g, &wait), CACHE_EINVAL);
    assert_int_equal(cache_ratelimit_take(c, key, strlen(key), 0, 5, 0, 1, &g, &wait),
                     CACHE_EINVAL);
    redisFree(rc);
    cache_free(c);
}

/* --- internal/ratelimit on the adapter ------------------------------------------------ */

static int op_take(void *ctx, const char *key, size_t klen, double rate, double burst,
                   long long used, long long want, long long *ret_granted, int64_t *ret_wait_us)
{
    return cache_ratelimit_take(ctx, key, klen, rate, burst, used, want, ret_granted, ret_wait_us);
}

static const struct ratelimit_store_ops store_ops = {op_take};

static struct ratelimit *limiter(struct cache *c, long long quota, long long burst)
{
    struct ratelimit_config rc = {
        .enabled = true,
        .policy = {[RATELIMIT_TASKS_USER] = {true, quota, 1, burst}},
        .lease_ms = 10,
        .max_keys = 1024,
        .store = &store_ops,
        .store_ctx = c,
    };
    struct ratelimit *rl = NULL;
    assert_int_equal(ratelimit_new(&rc, &rl), RATELIMIT_OK);
    return rl;
}

struct flooder {
    struct ratelimit *rl;
    const char *user;
    int64_t until_us;
    long admitted, refused;
};

static void *flood(void *arg)
{
    struct flooder *f = arg;
    struct ratelimit_verdict v;
    while (mono_us() < f->until_us) {
        ratelimit_tasks(f->rl, f->user, &v);
        if (v.allowed)
            f->admitted++;
        else
            f->refused++;
        sleep_us(50);
    }
    return NULL;
}

static void test_two_limiters_share_one_budget(void **state)
{
    struct cache *c1 = open_cache(), *c2 = open_cache();
    struct ratelimit *a = limiter(c1, 200, 20), *b = limiter(c2, 200, 20);
    char user[80];
    struct flooder f[4];
    pthread_t t[4];
    long admitted = 0, refused = 0;
    double expect = 20 + 200 * 3.0;
    int64_t until;
    (void)state;
    fresh_key("user", user, sizeof user);
    until = mono_us() + 3000000;
    for (int i = 0; i < 4; i++) {
        f[i] = (struct flooder){i % 2 ? a : b, user, until, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, flood, &f[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        admitted += f[i].admitted;
        refused += f[i].refused;
    }
    printf("two limiters, 3 s at 200/s burst 20: %ld admitted (expected %.0f), %ld refused\n",
           admitted, expect, refused);
    assert_true(refused > admitted); /* it was a flood */
    assert_true(admitted >= expect * 0.95 && admitted <= expect * 1.05);
    assert_true(ratelimit_shared(a) && ratelimit_shared(b));
    ratelimit_free(a);
    ratelimit_free(b);
    cache_free(c1);
    cache_free(c2);
}

static void test_unreachable_redis_falls_back_to_local_buckets(void **state)
{
    /* port 1 (tcpmux): nothing listens there on these machines */
    struct cache *c = open_cache_on(1);
    struct ratelimit *rl = limiter(c, 100, 10);
    struct ratelimit_verdict v;
    int64_t deadline = mono_us() + 5000000;
    long admitted = 0;
    (void)state;
    ratelimit_tasks(rl, "someone", &v);
    assert_true(v.allowed); /* on credit, before any exchange */
    while (ratelimit_shared(rl) && mono_us() < deadline) {
        ratelimit_tasks(rl, "someone-else", &v);
        sleep_us(1000);
    }
    assert_false(ratelimit_shared(rl));
    for (int i = 0; i < 50; i++) {
        ratelimit_tasks(rl, "flooder", &v);
        admitted += v.allowed;
    }
    /* the local bucket's burst, give or take a refill */
    assert_true(admitted >= 10 && admitted <= 12);
    assert_false(v.allowed);
    assert_int_equal(v.retry_after_s, 1);
    ratelimit_free(rl);
    cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_bucket_is_full_then_dry),
        cmocka_unit_test(test_refills_by_the_servers_clock),
        cmocka_unit_test(test_charges_go_below_zero_and_lengthen_the_wait),
        cmocka_unit_test(test_script_flush_falls_back_to_eval_and_keys_expire),
        cmocka_unit_test(test_two_limiters_share_one_budget),
        cmocka_unit_test(test_unreachable_redis_falls_back_to_local_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
