/* Unit tests for pkg/singleflight: one leader per key while a flight is in the air,
 * every waiter called once with the one result in join order, a new flight after a
 * finish, keys independent, and many threads racing on one key get one execution. */
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
#include <unistd.h>

#include "singleflight/singleflight.h"

struct call {
    struct singleflight_waiter w;
    int order;    /* when done ran (1-based), 0 before */
    void *result; /* what it was given */
    int *counter; /* shared sequence */
};

static void on_done(struct singleflight_waiter *w, void *result)
{
    struct call *c = w->arg;
    c->order = ++*c->counter;
    c->result = result;
}

static void init_call(struct call *c, int *counter)
{
    memset(c, 0, sizeof *c);
    c->w.done = on_done;
    c->w.arg = c;
    c->counter = counter;
}

static void test_one_leader_many_waiters(void **state)
{
    struct singleflight *sf;
    struct call calls[5];
    int counter = 0, result = 42;
    (void)state;
    assert_int_equal(singleflight_new(&sf), 0);
    for (int i = 0; i < 5; i++) {
        init_call(&calls[i], &counter);
        assert_int_equal(singleflight_join(sf, "key", 3, &calls[i].w),
                         i == 0 ? SINGLEFLIGHT_LEADER : SINGLEFLIGHT_JOINED);
    }
    assert_int_equal(singleflight_flights(sf), 1);
    assert_int_equal(counter, 0); /* nobody is called before the finish */
    assert_int_equal(singleflight_finish(sf, "key", 3, &result), 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(calls[i].order, i + 1); /* join order */
        assert_ptr_equal(calls[i].result, &result);
    }
    assert_int_equal(singleflight_flights(sf), 0);
    /* landed: nothing more to call, and the next join leads a new flight */
    assert_int_equal(singleflight_finish(sf, "key", 3, &result), 0);
    init_call(&calls[0], &counter);
    assert_int_equal(singleflight_join(sf, "key", 3, &calls[0].w), SINGLEFLIGHT_LEADER);
    assert_int_equal(singleflight_finish(sf, "key", 3, NULL), 1);
    assert_null(calls[0].result);
    singleflight_free(sf);
}

static void test_keys_are_independent(void **state)
{
    struct singleflight *sf;
    struct call a, b, a2;
    int counter = 0, ra = 1, rb = 2;
    (void)state;
    assert_int_equal(singleflight_new(&sf), 0);
    init_call(&a, &counter);
    init_call(&b, &counter);
    init_call(&a2, &counter);
    assert_int_equal(singleflight_join(sf, "a", 1, &a.w), SINGLEFLIGHT_LEADER);
    assert_int_equal(singleflight_join(sf, "b", 1, &b.w), SINGLEFLIGHT_LEADER);
    assert_int_equal(singleflight_join(sf, "a", 1, &a2.w), SINGLEFLIGHT_JOINED);
    assert_int_equal(singleflight_flights(sf), 2);
    assert_int_equal(singleflight_finish(sf, "b", 1, &rb), 1);
    assert_ptr_equal(b.result, &rb);
    assert_null(a.result);
    assert_int_equal(singleflight_finish(sf, "a", 1, &ra), 2);
    assert_ptr_equal(a.result, &ra);
    assert_ptr_equal(a2.result, &ra);
    {
        struct singleflight_waiter bad = {0};
        assert_int_equal(singleflight_join(sf, "a", 1, &bad), SINGLEFLIGHT_EINVAL);
    }
    singleflight_free(sf);
}

/* A done that joins again starts the next flight (no lock is held while it runs). */
struct rejoin {
    struct singleflight_waiter w;
    struct singleflight *sf;
    struct singleflight_waiter next;
    int led;
};

static void on_next(struct singleflight_waiter *w, void *result)
{
    (void)w;
    (void)result;
}

static void on_rejoin(struct singleflight_waiter *w, void *result)
{
    struct rejoin *r = w->arg;
    (void)result;
    r->next.done = on_next;
    r->led = singleflight_join(r->sf, "k", 1, &r->next);
}

static void test_done_may_join_again(void **state)
{
    struct rejoin r = {.w = {on_rejoin, &r, NULL}};
    (void)state;
    assert_int_equal(singleflight_new(&r.sf), 0);
    assert_int_equal(singleflight_join(r.sf, "k", 1, &r.w), SINGLEFLIGHT_LEADER);
    assert_int_equal(singleflight_finish(r.sf, "k", 1, NULL), 1);
    assert_int_equal(r.led, SINGLEFLIGHT_LEADER);
    assert_int_equal(singleflight_finish(r.sf, "k", 1, NULL), 1);
    singleflight_free(r.sf);
}

/* --- many threads, one key: one execution ------------------------------------ */

enum { RACERS = 64 };

struct race {
    struct singleflight *sf;
    atomic_int executions;
    atomic_int called;
    atomic_int joined;
    pthread_barrier_t start;
    int value;
};

struct racer {
    struct singleflight_waiter w;
    struct race *race;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int got;
};

static void racer_done(struct singleflight_waiter *w, void *result)
{
    struct racer *r = w->arg;
    pthread_mutex_lock(&r->mu);
    r->got = *(int *)result;
    r->done = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    atomic_fetch_add(&r->race->called, 1);
}

static void *racer_run(void *arg)
{
    struct racer *r = arg;
    struct race *race = r->race;
    pthread_barrier_wait(&race->start);
    if (singleflight_join(race->sf, "hot", 3, &r->w) == SINGLEFLIGHT_LEADER) {
        /* the "query": it lasts until every other racer has joined (5 s at most) */
        atomic_fetch_add(&race->executions, 1);
        for (int i = 0; i < 5000 && atomic_load(&race->joined) < RACERS - 1; i++)
            usleep(1000);
        race->value = 7;
        singleflight_finish(race->sf, "hot", 3, &race->value);
    } else {
        atomic_fetch_add(&race->joined, 1);
    }
    /* a blocking caller: wait for done */
    pthread_mutex_lock(&r->mu);
    while (!r->done)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void test_concurrent_callers_share_one_execution(void **state)
{
    struct race race = {0};
    struct racer *rs = calloc(RACERS, sizeof *rs);
    pthread_t th[RACERS];
    (void)state;
    assert_non_null(rs);
    assert_int_equal(singleflight_new(&race.sf), 0);
    pthread_barrier_init(&race.start, NULL, RACERS);
    for (int i = 0; i < RACERS; i++) {
        rs[i].w = (struct singleflight_waiter){racer_done, &rs[i], NULL};
        rs[i].race = &race;
        pthread_mutex_init(&rs[i].mu, NULL);
        pthread_cond_init(&rs[i].cv, NULL);
        assert_int_equal(pthread_create(&th[i], NULL, racer_run, &rs[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&race.start);
    assert_int_equal(atomic_load(&race.executions), 1);
    assert_int_equal(atomic_load(&race.called), RACERS);
    for (int i = 0; i < RACERS; i++) {
        assert_int_equal(rs[i].got, 7);
        pthread_cond_destroy(&rs[i].cv);
        pthread_mutex_destroy(&rs[i].mu);
    }
    assert_int_equal(singleflight_flights(race.sf), 0);
    singleflight_free(race.sf);
    free(rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_leader_many_waiters),
        cmocka_unit_test(test_keys_are_independent),
        cmocka_unit_test(test_done_may_join_again),
        cmocka_unit_test(test_concurrent_callers_share_one_execution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
