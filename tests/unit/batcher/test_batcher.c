/* Unit tests for pkg/batcher: every item processed exactly once and in arrival
 * order, batches never above max_batch, concurrent callers grouped, a full batch
 * goes at once whatever the window, a lone item after the window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batcher/batcher.h"

struct item {
    int value;
    int seen;  /* times fn saw it */
    int batch; /* which call of fn */
};

struct sink {
    pthread_mutex_t mu;
    int calls;
    size_t largest;
    int slow_ms;
};

static void flush(void *ctx, void *const *items, size_t n)
{
    struct sink *s = ctx;
    pthread_mutex_lock(&s->mu);
    int call = ++s->calls;
    if (n > s->largest) {
        s->largest = n;
    }
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        struct item *it = items[i];
        it->seen++;
        it->batch = call;
    }
    if (s->slow_ms > 0) {
        struct timespec ts = {0, (long)s->slow_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void test_one_item(void **state)
{
    (void)state;
    struct sink s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct batcher_config cfg = {.max_batch = 8, .window_us = 0};
    struct batcher *b = NULL;
    assert_int_equal(batcher_new(&cfg, flush, &s, &b), 0);
    struct item it = {.value = 1};
    assert_int_equal(batcher_run(b, &it), 0);
    assert_int_equal(it.seen, 1); /* processed before run returned */
    uint64_t batches = 0, items = 0;
    batcher_stats(b, &batches, &items);
    assert_int_equal(batches, 1);
    assert_int_equal(items, 1);
    batcher_free(b);
    batcher_free(NULL);
}

static void test_bad_config(void **state)
{
    (void)state;
    struct sink s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct batcher *b = NULL;
    struct batcher_config zero = {.max_batch = 0, .window_us = 0};
    struct batcher_config neg = {.max_batch = 1, .window_us = -1};
    assert_int_equal(batcher_new(&zero, flush, &s, &b), -1);
    assert_int_equal(batcher_new(&neg, flush, &s, &b), -1);
    assert_int_equal(batcher_new(&zero, NULL, &s, &b), -1);
    assert_null(b);
}

struct caller {
    struct batcher *b;
    struct item it;
    int rc;
};

static void *call(void *arg)
{
    struct caller *c = arg;
    c->rc = batcher_run(c->b, &c->it);
    return NULL;
}

/* A full batch goes at once: with a 60 s window, four callers and max_batch 4 are
 * processed together (the test would time out if the window were waited for). */
static void test_full_batch_skips_the_window(void **state)
{
    (void)state;
    struct sink s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct batcher_config cfg = {.max_batch = 4, .window_us = 60 * 1000 * 1000};
    struct batcher *b = NULL;
    assert_int_equal(batcher_new(&cfg, flush, &s, &b), 0);
    struct caller c[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (struct caller){.b = b, .it = {.value = i}, .rc = -2};
        assert_int_equal(pthread_create(&t[i], NULL, call, &c[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].rc, 0);
        assert_int_equal(c[i].it.seen, 1);
        assert_int_equal(c[i].it.batch, 1);
    }
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.largest, 4);
    batcher_free(b);
}

/* A lone item waits out the window and then goes alone. */
static void test_lone_item_after_window(void **state)
{
    (void)state;
    struct sink s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct batcher_config cfg = {.max_batch = 100, .window_us = 2000};
    struct batcher *b = NULL;
    assert_int_equal(batcher_new(&cfg, flush, &s, &b), 0);
    struct item it = {.value = 7};
    assert_int_equal(batcher_run(b, &it), 0);
    assert_int_equal(it.seen, 1);
    assert_int_equal(s.largest, 1);
    batcher_free(b);
}

/* 64 callers, max 8, a slow flush: each item exactly once, no batch above 8, and
 * callers that arrived while a batch was processed were grouped. */
static void test_many_callers_grouped(void **state)
{
    (void)state;
    enum { N = 64 };
    struct sink s = {.mu = PTHREAD_MUTEX_INITIALIZER, .slow_ms = 5};
    struct batcher_config cfg = {.max_batch = 8, .window_us = 0};
    struct batcher *b = NULL;
    assert_int_equal(batcher_new(&cfg, flush, &s, &b), 0);
    struct caller *c = calloc(N, sizeof *c);
    pthread_t t[N];
    assert_non_null(c);
    for (int i = 0; i < N; i++) {
        c[i] = (struct caller){.b = b, .it = {.value = i}, .rc = -2};
        assert_int_equal(pthread_create(&t[i], NULL, call, &c[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].rc, 0);
        assert_int_equal(c[i].it.seen, 1);
    }
    uint64_t batches = 0, items = 0;
    batcher_stats(b, &batches, &items);
    assert_int_equal(items, N);
    assert_int_equal(batches, (uint64_t)s.calls);
    assert_true(s.largest <= 8);
    assert_true(batches < N); /* at least one batch held more than one caller */
    assert_true(batches >= N / 8);
    free(c);
    batcher_free(b);
}

/* Order: items queued behind a slow batch come out in the order they arrived. */

static int order_log[32];
static atomic_int order_len;

static void flush_log(void *ctx, void *const *items, size_t n)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        order_log[atomic_fetch_add(&order_len, 1)] = ((struct item *)items[i])->value;
    }
}

static void test_one_caller_in_order(void **state)
{
    (void)state;
    struct batcher_config cfg = {.max_batch = 3, .window_us = 0};
    struct batcher *b = NULL;
    atomic_store(&order_len, 0);
    assert_int_equal(batcher_new(&cfg, flush_log, NULL, &b), 0);
    for (int i = 0; i < 10; i++) {
        struct item it = {.value = i};
        assert_int_equal(batcher_run(b, &it), 0);
    }
    assert_int_equal(atomic_load(&order_len), 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(order_log[i], i);
    }
    batcher_free(b);
}

/* Several flushers: batches are processed side by side, each item still once. */
static atomic_int in_fn, most_in_fn;

static void flush_side_by_side(void *ctx, void *const *items, size_t n)
{
    int now = atomic_fetch_add(&in_fn, 1) + 1;
    int seen = atomic_load(&most_in_fn);
    while (now > seen && !atomic_compare_exchange_weak(&most_in_fn, &seen, now)) {
    }
    flush(ctx, items, n);
    atomic_fetch_sub(&in_fn, 1);
}

static void test_flushers_side_by_side(void **state)
{
    (void)state;
    enum { N = 64 };
    struct sink s = {.mu = PTHREAD_MUTEX_INITIALIZER, .slow_ms = 20};
    struct batcher_config cfg = {.max_batch = 4, .window_us = 0, .flushers = 4};
    struct batcher *b = NULL;
    atomic_store(&in_fn, 0);
    atomic_store(&most_in_fn, 0);
    assert_int_equal(batcher_new(&cfg, flush_side_by_side, &s, &b), 0);
    struct caller *c = calloc(N, sizeof *c);
    pthread_t t[N];
    assert_non_null(c);
    for (int i = 0; i < N; i++) {
        c[i] = (struct caller){.b = b, .it = {.value = i}, .rc = -2};
        assert_int_equal(pthread_create(&t[i], NULL, call, &c[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].rc, 0);
        assert_int_equal(c[i].it.seen, 1);
    }
    assert_true(s.largest <= 4);
    assert_true(atomic_load(&most_in_fn) > 1);
    assert_true(atomic_load(&most_in_fn) <= 4);
    free(c);
    batcher_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_item),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_full_batch_skips_the_window),
        cmocka_unit_test(test_lone_item_after_window),
        cmocka_unit_test(test_many_callers_grouped),
        cmocka_unit_test(test_one_caller_in_order),
        cmocka_unit_test(test_flushers_side_by_side),
    };
    return cmocka_run_group_tests_name("batcher", tests, NULL, NULL);
}
