/* Integration: the store adapter against the harness's real MariaDB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <time.h>

#include "store/store.h"
#include "support/testenv.h"

static struct store *store;

static int setup(void **state)
{
    struct store_config sc = testenv_store_config(4);
    (void)state;
    return store_new(&sc, &store) == STORE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    store_free(store);
    return 0;
}

static void new_task(struct task *t, const char *type, const char *payload)
{
    memset(t, 0, sizeof *t);
    assert_int_equal(ids_new_v7(&t->id), 0);
    snprintf(t->type, sizeof t->type, "%s", type);
    t->status = TASK_PENDING;
    t->max_attempts = 3;
    t->priority = 7;
    t->payload = strdup(payload);
    t->created_at = t->updated_at = model_now_us();
    memcpy(t->traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
           MODEL_TRACEPARENT_LEN + 1);
}

static void test_insert_get_roundtrip(void **state)
{
    struct task a, b, got;
    const struct task *batch[2] = {&a, &b};
    (void)state;
    new_task(&a, "echo", "{\"k\":\"v\\u00e9\"}");
    new_task(&b, "noop", "null");
    b.ordering_key = strdup("customer-42");
    b.run_at = a.created_at + 60 * 1000000LL;
    b.timeout_ms = 1500;
    assert_int_equal(store_task_insert_batch(store, batch, NULL, 2), STORE_OK);

    assert_int_equal(store_task_get(store, &a.id, &got), STORE_OK);
    assert_true(ids_equal(&got.id, &a.id));
    assert_string_equal(got.type, "echo");
    assert_int_equal(got.status, TASK_PENDING);
    assert_string_equal(got.payload, a.payload);
    assert_int_equal(got.priority, 7);
    assert_int_equal(got.max_attempts, 3);
    assert_int_equal(got.timeout_ms, 0);
    assert_null(got.result);
    assert_null(got.ordering_key);
    assert_int_equal(got.created_at, a.created_at); /* microseconds survive */
    assert_int_equal(got.run_at, 0);
    assert_string_equal(got.traceparent, a.traceparent);
    model_task_release(&got);

    assert_int_equal(store_task_get(store, &b.id, &got), STORE_OK);
    assert_string_equal(got.ordering_key, "customer-42");
    assert_int_equal(got.run_at, b.run_at);
    assert_int_equal(got.timeout_ms, 1500);
    model_task_release(&got);
    model_task_release(&a);
    model_task_release(&b);
}

static void test_get_unknown_is_not_found(void **state)
{
    struct ids_id id;
    struct task got;
    (void)state;
    ids_new_v7(&id);
    assert_int_equal(store_task_get(store, &id, &got), STORE_ENOTFOUND);
}

static void test_duplicate_id_rolls_back_whole_batch(void **state)
{
    struct task a, b, got;
    const struct task *batch[2] = {&a, &b};
    (void)state;
    new_task(&a, "echo", "1");
    new_task(&b, "echo", "2");
    b.id = a.id;
    assert_int_equal(store_task_insert_batch(store, batch, NULL, 2), STORE_EDUP);
    assert_int_equal(store_task_get(store, &a.id, &got), STORE_ENOTFOUND);
    model_task_release(&a);
    model_task_release(&b);
}

static void test_mark_queued_only_from_pending(void **state)
{
    struct task a, b, got;
    const struct task *batch[2] = {&a, &b};
    struct ids_id ids[2];
    enum store_claim claim;
    (void)state;
    new_task(&a, "echo", "1");
    new_task(&b, "echo", "2");
    assert_int_equal(store_task_insert_batch(store, batch, NULL, 2), STORE_OK);
    /* b is claimed by a worker before the producer marks it: it must stay RUNNING */
    assert_int_equal(store_task_claim(store, &b.id, "w1", 30000, &got, &claim), STORE_OK);
    assert_int_equal(claim, STORE_CLAIMED);
    model_task_release(&got);
    ids[0] = a.id;
    ids[1] = b.id;
    assert_int_equal(store_task_mark_queued(store, ids, 2), STORE_OK);
    assert_int_equal(store_task_get(store, &a.id, &got), STORE_OK);
    assert_int_equal(got.status, TASK_QUEUED);
    model_task_release(&got);
    assert_int_equal(store_task_get(store, &b.id, &got), STORE_OK);
    assert_int_equal(got.status, TASK_RUNNING);
    model_task_release(&got);
    model_task_release(&a);
    model_task_release(&b);
}

static void test_claim_finish_and_fencing(void **state)
{
    struct task a, got;
    const struct task *batch[1] = {&a};
    enum store_claim claim;
    struct store_finish retry = {.status = TASK_RETRYING,
                                 .outcome = STORE_OUTCOME_FAILED,
                                 .error = "boom",
                                 .run_at = model_now_us() + 1000000};
    struct store_finish ok = {
        .status = TASK_SUCCEEDED, .outcome = STORE_OUTCOME_SUCCEEDED, .result = "{\"done\":true}"};
    (void)state;
    new_task(&a, "echo", "{}");
    assert_int_equal(store_task_insert_batch(store, batch, NULL, 1), STORE_OK);

    assert_int_equal(store_task_claim(store, &a.id, "w1", 30000, &got, &claim), STORE_OK);
    assert_int_equal(claim, STORE_CLAIMED);
    assert_int_equal(got.attempts, 1);
    assert_int_equal(got.status, TASK_RUNNING);
    assert_true(got.started_at > 0);
    model_task_release(&got);

    /* a second worker sees a live lease */
    assert_int_equal(store_task_claim(store, &a.id, "w2", 30000, &got, &claim), STORE_OK);
    assert_int_equal(claim, STORE_CLAIM_LEASED);

    assert_int_equal(store_task_finish(store, &a.id, 1, &retry), STORE_OK);
    assert_int_equal(store_task_get(store, &a.id, &got), STORE_OK);
    assert_int_equal(got.status, TASK_RETRYING);
    assert_string_equal(got.last_error, "boom");
    assert_int_equal(got.run_at, retry.run_at);
    model_task_release(&got);

    /* attempt 2; the stale attempt 1 can no longer write */
    assert_int_equal(store_task_claim(store, &a.id, "w2", 30000, &got, &claim), STORE_OK);
    assert_int_equal(claim, STORE_CLAIMED);
    assert_int_equal(got.attempts, 2);
    model_task_release(&got);
    assert_int_equal(store_task_finish(store, &a.id, 1, &ok), STORE_ESTALE);
    assert_int_equal(store_task_finish(store, &a.id, 2, &ok), STORE_OK);

    assert_int_equal(store_task_get(store, &a.id, &got), STORE_OK);
    assert_int_equal(got.status, TASK_SUCCEEDED);
    assert_string_equal(got.result, "{\"done\":true}");
    assert_true(got.finished_at >= got.started_at);
    model_task_release(&got);

    /* a redelivered message for a finished task is skipped */
    assert_int_equal(store_task_claim(store, &a.id, "w3", 30000, &got, &claim), STORE_OK);
    assert_int_equal(claim, STORE_CLAIM_DONE);
    model_task_release(&a);
}

static void test_expired_lease_is_claimed_again(void **state)
{
    struct task a, got;
    const struct task *batch[1] = {&a};
    enum store_claim claim;
    (void)state;
    new_task(&a, "echo", "{}");
    assert_int_equal(store_task_insert_batch(store, batch, NULL, 1), STORE_OK);
    /* a lease of 0 ms has expired by the time anyone else looks */
    assert_int_equal(store_task_claim(store, &a.id, "w1", 0, &got, &claim), STORE_OK);
    assert_int_equal(claim, STORE_CLAIMED);
    model_task_release(&got);
    assert_int_equal(store_task_claim(store, &a.id, "w2", 30000, &got, &claim), STORE_OK);
    assert_int_equal(claim, STORE_CLAIMED);
    assert_int_equal(got.attempts, 2);
    model_task_release(&got);
    model_task_release(&a);
}

static void test_lease_covers_the_task_timeout(void **state)
{
    struct task a, got;
    const struct task *batch[1] = {&a};
    enum store_claim claim;
    (void)state;
    new_task(&a, "sleep", "{}");
    a.timeout_ms = 60000;
    assert_int_equal(store_task_insert_batch(store, batch, NULL, 1), STORE_OK);
    /* lease_ms 0, but the task may run for a minute: nobody else may take it */
    assert_int_equal(store_task_claim(store, &a.id, "w1", 0, &got, &claim), STORE_OK);
    assert_int_equal(claim, STORE_CLAIMED);
    model_task_release(&got);
    assert_int_equal(store_task_claim(store, &a.id, "w2", 30000, &got, &claim), STORE_OK);
    assert_int_equal(claim, STORE_CLAIM_LEASED);
    model_task_release(&a);
}

static void test_claim_unknown(void **state)
{
    struct ids_id id;
    struct task got;
    enum store_claim claim;
    (void)state;
    ids_new_v7(&id);
    assert_int_equal(store_task_claim(store, &id, "w1", 1000, &got, &claim), STORE_OK);
    assert_int_equal(claim, STORE_CLAIM_NOT_FOUND);
}

static void test_large_payload(void **state)
{
    struct task a, got;
    const struct task *batch[1] = {&a};
    size_t n = 900 * 1024;
    char *big = malloc(n + 3);
    (void)state;
    big[0] = '"';
    memset(big + 1, 'x', n);
    big[n + 1] = '"';
    big[n + 2] = '\0';
    new_task(&a, "echo", big);
    free(big);
    assert_int_equal(store_task_insert_batch(store, batch, NULL, 1), STORE_OK);
    assert_int_equal(store_task_get(store, &a.id, &got), STORE_OK);
    assert_int_equal(strlen(got.payload), n + 2);
    assert_string_equal(got.payload, a.payload);
    model_task_release(&got);
    model_task_release(&a);
}

static void test_ping(void **state)
{
    (void)state;
    assert_int_equal(store_ping(store), STORE_OK);
}

/* --- the pool's acquire timeout: a call that finds every connection taken (by a
 * stuck server, say) fails after mysql_acquire_timeout_ms instead of waiting --- */

struct holder {
    struct store *store;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool holding, release;
    int rc;
};

/* The relay's publish, called with the pool's one connection held in its
 * transaction: it holds on until told to let go. */
static void hold_publish(void *arg, const struct task *const *tasks, size_t n, int *errs)
{
    struct holder *h = arg;
    (void)tasks;
    for (size_t i = 0; i < n; i++)
        errs[i] = -1; /* nothing published: the rows stay PENDING */
    pthread_mutex_lock(&h->mu);
    h->holding = true;
    pthread_cond_broadcast(&h->cv);
    while (!h->release)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static void *hold_thread(void *arg)
{
    struct holder *h = arg;
    int seen = 0, published = 0;
    h->rc = store_task_relay(h->store, model_now_us(), 1, hold_publish, h, &seen, &published);
    return NULL;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_acquire_times_out_when_every_connection_is_taken(void **state)
{
    struct store_config sc = testenv_store_config(1);
    struct holder h = {.rc = -99};
    const struct task *one[1];
    struct task t;
    pthread_t th;
    int64_t t0, waited;
    (void)state;
    sc.acquire_timeout_ms = 300;
    assert_int_equal(store_new(&sc, &h.store), STORE_OK);
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    /* a PENDING row old enough for the relay, so that its publish runs */
    new_task(&t, "noop", "{\"hold\":true}");
    t.created_at = t.updated_at = model_now_us() - 3600LL * 1000000;
    one[0] = &t;
    assert_int_equal(store_task_insert_batch(h.store, one, NULL, 1), STORE_OK);

    assert_int_equal(pthread_create(&th, NULL, hold_thread, &h), 0);
    pthread_mutex_lock(&h.mu);
    while (!h.holding)
        pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);

    t0 = mono_ms();
    assert_int_equal(store_ping(h.store), STORE_EDB); /* no connection came free */
    waited = mono_ms() - t0;
    assert_true(waited >= 250);
    assert_true(waited < 5000); /* not the 10 s io timeout, not forever */

    pthread_mutex_lock(&h.mu);
    h.release = true;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    pthread_join(th, NULL);
    assert_int_equal(h.rc, STORE_OK);
    assert_int_equal(store_ping(h.store), STORE_OK); /* free again: taken at once */
    model_task_release(&t);
    pthread_cond_destroy(&h.cv);
    pthread_mutex_destroy(&h.mu);
    store_free(h.store);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_insert_get_roundtrip),
        cmocka_unit_test(test_get_unknown_is_not_found),
        cmocka_unit_test(test_duplicate_id_rolls_back_whole_batch),
        cmocka_unit_test(test_mark_queued_only_from_pending),
        cmocka_unit_test(test_claim_finish_and_fencing),
        cmocka_unit_test(test_expired_lease_is_claimed_again),
        cmocka_unit_test(test_lease_covers_the_task_timeout),
        cmocka_unit_test(test_claim_unknown),
        cmocka_unit_test(test_large_payload),
        cmocka_unit_test(test_acquire_times_out_when_every_connection_is_taken),
    };
    return cmocka_run_group_tests_name("store_tasks", tests, setup, teardown);
}
