/* Unit tests for pkg/lru: get/put/replace, recency order and eviction, per-entry TTL
 * on a fake clock, remove/clear and the stamps that fence fills, the capacity bound,
 * and a concurrency stress test (run it under ASan, and TSan when one is built). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lru/lru.h"

struct fake_clock {
    int64_t now;
};

static int64_t fake_now(void *ctx)
{
    return ((struct fake_clock *)ctx)->now;
}

static struct lru *make(size_t capacity, size_t shards, struct fake_clock *clock)
{
    struct lru_config cfg = {capacity, shards, clock ? fake_now : NULL, clock, 0};
    struct lru *l = NULL;
    assert_int_equal(lru_new(&cfg, &l), LRU_OK);
    assert_non_null(l);
    return l;
}

static void put_s(struct lru *l, const char *k, const char *v, int64_t ttl)
{
    assert_int_equal(lru_put(l, k, strlen(k), v, strlen(v), ttl), LRU_OK);
}

/* The value of k as a string, or NULL on a miss (caller frees). */
static char *get_s(struct lru *l, const char *k)
{
    void *v = NULL;
    size_t len = 0;
    int rc = lru_get(l, k, strlen(k), &v, &len);
    if (rc == LRU_ENOTFOUND)
        return NULL;
    assert_int_equal(rc, LRU_OK);
    assert_int_equal(strlen(v), len); /* NUL-terminated */
    return v;
}

static void assert_value(struct lru *l, const char *k, const char *want)
{
    char *v = get_s(l, k);
    if (!want) {
        assert_null(v);
        return;
    }
    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

static void test_put_get_replace(void **state)
{
    struct lru *l = make(10, 1, NULL);
    (void)state;
    assert_value(l, "a", NULL);
    put_s(l, "a", "1", 1000);
    put_s(l, "b", "22", 1000);
    assert_value(l, "a", "1");
    assert_value(l, "b", "22");
    put_s(l, "a", "333", 1000);
    assert_value(l, "a", "333");
    assert_int_equal(lru_size(l), 2);
    /* an empty value is a value */
    assert_int_equal(lru_put(l, "e", 1, NULL, 0, 1000), LRU_OK);
    assert_value(l, "e", "");
    lru_free(l);
}

static void test_evicts_least_recently_used(void **state)
{
    struct lru *l = make(3, 1, NULL);
    (void)state;
    put_s(l, "a", "1", 1000);
    put_s(l, "b", "2", 1000);
    put_s(l, "c", "3", 1000);
    assert_value(l, "a", "1"); /* a is now the most recent: b is the oldest */
    put_s(l, "d", "4", 1000);
    assert_value(l, "b", NULL);
    assert_value(l, "a", "1");
    assert_value(l, "c", "3");
    assert_value(l, "d", "4");
    assert_int_equal(lru_size(l), 3);
    /* replacing an entry evicts nothing */
    put_s(l, "c", "33", 1000);
    assert_int_equal(lru_size(l), 3);
    assert_value(l, "a", "1");
    lru_free(l);
}

static void test_ttl_per_entry(void **state)
{
    struct fake_clock clock = {1000};
    struct lru *l = make(10, 4, &clock);
    (void)state;
    put_s(l, "short", "s", 100);
    put_s(l, "long", "l", 5000);
    clock.now += 99;
    assert_value(l, "short", "s");
    clock.now += 1;
    assert_value(l, "short", NULL); /* expired exactly at its deadline, and dropped */
    assert_int_equal(lru_size(l), 1);
    assert_value(l, "long", "l");
    clock.now += 5000;
    assert_value(l, "long", NULL);
    assert_int_equal(lru_size(l), 0);
    assert_int_equal(lru_put(l, "x", 1, "v", 1, 0), LRU_EINVAL);
    lru_free(l);
}

static void test_remove_clear_and_stamps(void **state)
{
    struct lru *l = make(64, 4, NULL);
    uint64_t stamp;
    (void)state;
    put_s(l, "k", "old", 1000);
    stamp = lru_stamp(l, "k", 1);
    assert_true(lru_remove(l, "k", 1));
    assert_false(lru_remove(l, "k", 1));
    assert_value(l, "k", NULL);
    /* a fill that read its stamp before the removal stores nothing */
    assert_int_equal(lru_put_if(l, "k", 1, "stale", 5, 1000, stamp), LRU_ESTALE);
    assert_value(l, "k", NULL);
    /* even a removal of an absent key fences */
    stamp = lru_stamp(l, "k", 1);
    lru_remove(l, "k", 1);
    assert_int_equal(lru_put_if(l, "k", 1, "stale", 5, 1000, stamp), LRU_ESTALE);
    stamp = lru_stamp(l, "k", 1);
    assert_int_equal(lru_put_if(l, "k", 1, "fresh", 5, 1000, stamp), LRU_OK);
    assert_value(l, "k", "fresh");

    put_s(l, "a", "1", 1000);
    put_s(l, "b", "2", 1000);
    stamp = lru_stamp(l, "b", 1);
    lru_clear(l);
    assert_int_equal(lru_size(l), 0);
    assert_value(l, "a", NULL);
    assert_int_equal(lru_put_if(l, "b", 1, "2", 1, 1000, stamp), LRU_ESTALE);
    lru_free(l);
}

static void test_capacity_is_a_bound(void **state)
{
    char key[32];
    (void)state;
    /* more shards than entries: shards shrink so each holds one at least */
    for (size_t cap = 1; cap <= 40; cap += 13) {
        struct lru *l = make(cap, 16, NULL);
        for (int i = 0; i < 1000; i++) {
            snprintf(key, sizeof key, "key-%d", i);
            put_s(l, key, key, 1000);
            assert_true(lru_size(l) <= cap);
        }
        assert_true(lru_size(l) >= 1);
        /* the last one put is always there */
        assert_value(l, key, key);
        lru_free(l);
    }
    {
        struct lru_config bad = {0, 4, NULL, NULL, 0};
        struct lru *l = NULL;
        assert_int_equal(lru_new(&bad, &l), LRU_EINVAL);
        assert_null(l);
    }
}

/* --- concurrency stress ------------------------------------------------------- */

enum { STRESS_THREADS = 8, STRESS_OPS = 100000, STRESS_KEYS = 2000, STRESS_CAP = 500 };

struct stress {
    struct lru *l;
    unsigned seed;
    long hits, bad;
};

static void *stress_run(void *arg)
{
    struct stress *s = arg;
    char key[16], value[64];
    for (int i = 0; i < STRESS_OPS; i++) {
        int k = (int)(rand_r(&s->seed) % STRESS_KEYS);
        int op = (int)(rand_r(&s->seed) % 100);
        int klen = snprintf(key, sizeof key, "k%d", k);
        /* a value always names its key, so a reader can tell a torn or crossed one */
        int vlen = snprintf(value, sizeof value, "value-of-k%d-%d", k, op);
        if (op < 60) {
            void *v;
            size_t len;
            if (lru_get(s->l, key, (size_t)klen, &v, &len) == LRU_OK) {
                char want[32];
                int wlen = snprintf(want, sizeof want, "value-of-k%d-", k);
                s->hits++;
                if (len < (size_t)wlen || memcmp(v, want, (size_t)wlen) != 0)
                    s->bad++;
                free(v);
            }
        } else if (op < 90) {
            lru_put(s->l, key, (size_t)klen, value, (size_t)vlen, 1 + op % 7);
        } else if (op < 97) {
            uint64_t st = lru_stamp(s->l, key, (size_t)klen);
            lru_put_if(s->l, key, (size_t)klen, value, (size_t)vlen, 50, st);
        } else if (op < 99) {
            lru_remove(s->l, key, (size_t)klen);
        } else if (i % 5000 == 0) {
            lru_clear(s->l);
        } else {
            if (lru_size(s->l) > STRESS_CAP)
                s->bad++;
        }
    }
    return NULL;
}

static void test_concurrent_stress(void **state)
{
    struct lru *l = make(STRESS_CAP, 8, NULL);
    pthread_t th[STRESS_THREADS];
    struct stress st[STRESS_THREADS];
    long hits = 0;
    (void)state;
    for (int i = 0; i < STRESS_THREADS; i++) {
        st[i] = (struct stress){l, (unsigned)(i * 7919 + 1), 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, stress_run, &st[i]), 0);
    }
    for (int i = 0; i < STRESS_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(st[i].bad, 0);
        hits += st[i].hits;
    }
    assert_true(hits > 0);
    assert_true(lru_size(l) <= STRESS_CAP);
    lru_free(l);
}

/* The byte budget: the oldest entries go until a new one fits; lru_bytes never
 * passes it; an entry larger than the whole budget is refused and takes the key's
 * older value with it. */
static void test_byte_budget(void **state)
{
    char big[1001], key[16];
    struct lru *l = NULL;
    (void)state;
    memset(big, 'v', 1000);
    big[1000] = '\0';
    /* one shard, room for many entries but bytes for about three of 1000 */
    struct lru_config cfg = {.capacity = 1000, .shards = 1, .max_bytes = 3500};
    assert_int_equal(lru_new(&cfg, &l), LRU_OK);
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        put_s(l, key, big, 60000);
        assert_true(lru_bytes(l) <= 3500);
    }
    assert_int_equal(lru_size(l), 3);
    assert_value(l, "k9", big);
    assert_value(l, "k8", big);
    assert_value(l, "k7", big);
    assert_value(l, "k6", NULL); /* the oldest went */
    /* recency, not insertion, decides: read last to first, k9 is now the oldest */
    put_s(l, "k10", big, 60000);
    assert_value(l, "k9", NULL);
    assert_value(l, "k8", big);
    assert_value(l, "k7", big);
    put_s(l, "small", "x", 60000); /* fits beside them: nothing goes */
    assert_int_equal(lru_size(l), 4);
    size_t before = lru_bytes(l);
    assert_true(before > 3000 && before <= 3500);

    /* too big for the budget: refused, nothing evicted but the key's own old value */
    char *huge = malloc(4000);
    assert_non_null(huge);
    memset(huge, 'h', 4000);
    assert_int_equal(lru_put(l, "k7", 2, huge, 4000, 60000), LRU_ETOOBIG);
    assert_value(l, "k7", NULL);
    assert_value(l, "k10", big);
    assert_value(l, "small", "x");
    free(huge);

    lru_clear(l);
    assert_int_equal(lru_bytes(l), 0);
    lru_free(l);
}

/* Without a budget, bytes are counted but nothing is refused. */
static void test_no_byte_budget(void **state)
{
    struct lru *l = make(4, 1, NULL);
    char *huge = malloc(1 << 20);
    (void)state;
    assert_non_null(huge);
    memset(huge, 'h', 1 << 20);
    assert_int_equal(lru_put(l, "a", 1, huge, 1 << 20, 60000), LRU_OK);
    assert_true(lru_bytes(l) >= (1 << 20));
    assert_true(lru_remove(l, "a", 1));
    assert_int_equal(lru_bytes(l), 0);
    free(huge);
    lru_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_budget),
        cmocka_unit_test(test_no_byte_budget),
        cmocka_unit_test(test_put_get_replace),
        cmocka_unit_test(test_evicts_least_recently_used),
        cmocka_unit_test(test_ttl_per_entry),
        cmocka_unit_test(test_remove_clear_and_stamps),
        cmocka_unit_test(test_capacity_is_a_bound),
        cmocka_unit_test(test_concurrent_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
