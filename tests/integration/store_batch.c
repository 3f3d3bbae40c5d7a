/* Integration: group commit (store_task_claim_batch, store_task_finish_batch)
 * against the harness's real MariaDB: per-row fencing inside a batch, a row the
 * database refuses split out, redelivery of a claimed batch after a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/store.h"
#include "support/testenv.h"

static struct store *store;

static int setup(void **state)
{
    struct store_config sc = testenv_store_config(2);
    (void)state;
    return store_new(&sc, &store) == STORE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    store_free(store);
    return 0;
}

/* n new QUEUED noop tasks, inserted. */
static void insert_tasks(struct ids_id *ids, size_t n)
{
    struct task t[8];
    const struct task *p[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        memset(&t[i], 0, sizeof t[i]);
        assert_int_equal(ids_new_v7(&t[i].id), 0);
        snprintf(t[i].type, sizeof t[i].type, "noop");
        t[i].status = TASK_QUEUED;
        t[i].max_attempts = 5;
        t[i].payload = strdup("{}");
        t[i].created_at = t[i].updated_at = model_now_us();
        ids[i] = t[i].id;
        p[i] = &t[i];
    }
    assert_int_equal(store_task_insert_batch(store, p, NULL, n), STORE_OK);
    for (size_t i = 0; i < n; i++)
        model_task_release(&t[i]);
}

static void release_claims(struct store_claim_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (rows[i].rc == STORE_OK && rows[i].claim == STORE_CLAIMED)
            model_task_release(&rows[i].task);
    }
}

static enum task_status status_of(const struct ids_id *id)
{
    struct task t;
    assert_int_equal(store_task_get(store, id, &t), STORE_OK);
    enum task_status s = t.status;
    model_task_release(&t);
    return s;
}

/* The outcome of the attempt's record. */
static void assert_attempt(const struct ids_id *id, int attempt, const char *outcome)
{
    struct store_attempt *a = NULL;
    size_t n = 0;
    bool seen = false;
    assert_int_equal(store_task_attempts(store, id, 16, &a, &n), STORE_OK);
    for (size_t i = 0; i < n; i++) {
        if (a[i].attempt == attempt) {
            assert_string_equal(a[i].outcome, outcome);
            assert_false(seen); /* one record per attempt */
            seen = true;
        }
    }
    store_attempts_free(a, n);
    assert_true(seen);
}

static void test_claim_batch_decides_each_row(void **state)
{
    struct ids_id ids[4], unknown;
    struct store_claim_row rows[6];
    (void)state;
    insert_tasks(ids, 4);
    assert_int_equal(ids_new_v7(&unknown), 0);
    /* ids[3] is finished before the batch */
    struct store_claim_row pre = {.id = ids[3]};
    assert_int_equal(store_task_claim_batch(store, "w0", 30000, &pre, 1), STORE_OK);
    assert_int_equal(pre.rc, STORE_OK);
    assert_int_equal(pre.claim, STORE_CLAIMED);
    struct store_finish_row fin = {
        .id = ids[3], .attempt = 1, .fin = {.status = TASK_SUCCEEDED, .result = "1"}};
    assert_int_equal(store_task_finish_batch(store, &fin, 1), STORE_OK);
    assert_int_equal(fin.rc, STORE_OK);
    model_task_release(&pre.task);

    memset(rows, 0, sizeof rows);
    rows[0].id = ids[0];
    rows[1].id = ids[1];
    rows[2].id = unknown;
    rows[3].id = ids[3];
    rows[4].id = ids[2];
    rows[5].id = ids[0]; /* delivered twice in one batch */
    assert_int_equal(store_task_claim_batch(store, "w1", 30000, rows, 6), STORE_OK);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(rows[i].rc, STORE_OK);
    assert_int_equal(rows[0].claim, STORE_CLAIMED);
    assert_int_equal(rows[1].claim, STORE_CLAIMED);
    assert_int_equal(rows[2].claim, STORE_CLAIM_NOT_FOUND);
    assert_int_equal(rows[3].claim, STORE_CLAIM_DONE);
    assert_int_equal(rows[4].claim, STORE_CLAIMED);
    assert_int_equal(rows[5].claim, STORE_CLAIM_LEASED);
    /* each claimed row comes back as written, matched to its own id */
    assert_true(ids_equal(&rows[4].task.id, &ids[2]));
    assert_int_equal(rows[4].task.attempts, 1);
    assert_int_equal(rows[4].task.status, TASK_RUNNING);
    assert_string_equal(rows[0].task.payload, "{}");
    assert_attempt(&ids[0], 1, "running");
    assert_attempt(&ids[2], 1, "running");
    release_claims(rows, 6);
}

static void test_finish_batch_fences_each_row(void **state)
{
    struct ids_id ids[2];
    (void)state;
    insert_tasks(ids, 2);
    /* attempt 1 of ids[0] loses its lease (0 ms) and attempt 2 claims it */
    struct store_claim_row c1[2] = {{.id = ids[0]}, {.id = ids[1]}};
    assert_int_equal(store_task_claim_batch(store, "w1", 0, c1, 1), STORE_OK);
    assert_int_equal(store_task_claim_batch(store, "w1", 30000, &c1[1], 1), STORE_OK);
    struct store_claim_row c2 = {.id = ids[0]};
    assert_int_equal(store_task_claim_batch(store, "w2", 30000, &c2, 1), STORE_OK);
    assert_int_equal(c2.claim, STORE_CLAIMED);
    assert_int_equal(c2.task.attempts, 2);
    assert_attempt(&ids[0], 1, "lease_expired");

    /* the stale attempt 1 and the fresh attempt 2 of one task, in one batch */
    struct store_finish_row rows[3] = {
        {.id = ids[0], .attempt = 1, .fin = {.status = TASK_SUCCEEDED, .result = "\"stale\""}},
        {.id = ids[1],
         .attempt = 1,
         .fin = {.status = TASK_RETRYING,
                 .outcome = STORE_OUTCOME_FAILED,
                 .error = "boom",
                 .run_at = model_now_us() + 1000000}},
        {.id = ids[0], .attempt = 2, .fin = {.status = TASK_SUCCEEDED, .result = "\"fresh\""}},
    };
    assert_int_equal(store_task_finish_batch(store, rows, 3), STORE_OK);
    assert_int_equal(rows[0].rc, STORE_ESTALE);
    assert_int_equal(rows[1].rc, STORE_OK);
    assert_int_equal(rows[2].rc, STORE_OK);
    struct task t;
    assert_int_equal(store_task_get(store, &ids[0], &t), STORE_OK);
    assert_int_equal(t.status, TASK_SUCCEEDED);
    assert_string_equal(t.result, "\"fresh\"");
    assert_true(t.finished_at > 0);
    model_task_release(&t);
    assert_int_equal(store_task_get(store, &ids[1], &t), STORE_OK);
    assert_int_equal(t.status, TASK_RETRYING);
    assert_string_equal(t.last_error, "boom");
    assert_true(t.run_at > 0);
    model_task_release(&t);
    assert_attempt(&ids[0], 1, "lease_expired"); /* the stale finish wrote nothing */
    assert_attempt(&ids[0], 2, "succeeded");
    assert_attempt(&ids[1], 1, "failed");
    release_claims(c1, 2);
    release_claims(&c2, 1);
}

static void test_refused_row_is_split_out(void **state)
{
    struct ids_id ids[5];
    struct store_claim_row c[5];
    struct store_finish_row rows[5];
    (void)state;
    insert_tasks(ids, 5);
    memset(c, 0, sizeof c);
    for (size_t i = 0; i < 5; i++)
        c[i].id = ids[i];
    assert_int_equal(store_task_claim_batch(store, "w1", 30000, c, 5), STORE_OK);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(c[i].claim, STORE_CLAIMED);
    /* last_error is TEXT: 70,000 bytes is a value the database refuses (22001) */
    char *huge = malloc(70001);
    assert_non_null(huge);
    memset(huge, 'x', 70000);
    huge[70000] = '\0';
    memset(rows, 0, sizeof rows);
    for (size_t i = 0; i < 5; i++) {
        rows[i].id = ids[i];
        rows[i].attempt = 1;
        rows[i].fin.status = TASK_SUCCEEDED;
        rows[i].fin.result = "null";
    }
    rows[3].fin = (struct store_finish){
        .status = TASK_DEAD, .outcome = STORE_OUTCOME_PERMANENT, .error = huge};
    assert_int_equal(store_task_finish_batch(store, rows, 5), STORE_OK);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(rows[i].rc, i == 3 ? STORE_EINVAL : STORE_OK);
        assert_int_equal(status_of(&ids[i]), i == 3 ? TASK_RUNNING : TASK_SUCCEEDED);
    }
    assert_attempt(&ids[3], 1, "running");
    assert_attempt(&ids[4], 1, "succeeded");
    free(huge);
    release_claims(c, 5);
}

/* A worker claimed a batch (committed) and died before storing the offsets: the
 * whole batch is delivered again.  While the lease lives nobody runs them; once it
 * ran out the redelivery claims every row again with the next attempt; after they
 * finished, one more redelivery of the batch skips them all. */
static void test_redelivered_batch_after_crash(void **state)
{
    struct ids_id ids[4];
    struct store_claim_row c[4];
    (void)state;
    insert_tasks(ids, 4);
    memset(c, 0, sizeof c);
    for (size_t i = 0; i < 4; i++)
        c[i].id = ids[i];
    assert_int_equal(store_task_claim_batch(store, "dead-worker", 30000, c, 4), STORE_OK);
    release_claims(c, 4);
    /* the redelivery while the dead worker's lease still runs */
    assert_int_equal(store_task_claim_batch(store, "w2", 30000, c, 4), STORE_OK);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(c[i].rc, STORE_OK);
        assert_int_equal(c[i].claim, STORE_CLAIM_LEASED);
    }

    /* the same, with a lease that already ran out */
    insert_tasks(ids, 4);
    for (size_t i = 0; i < 4; i++)
        c[i].id = ids[i];
    assert_int_equal(store_task_claim_batch(store, "dead-worker", 0, c, 4), STORE_OK);
    release_claims(c, 4);
    assert_int_equal(store_task_claim_batch(store, "w2", 30000, c, 4), STORE_OK);
    struct store_finish_row f[4];
    memset(f, 0, sizeof f);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(c[i].claim, STORE_CLAIMED);
        assert_int_equal(c[i].task.attempts, 2);
        assert_attempt(&ids[i], 1, "lease_expired");
        assert_attempt(&ids[i], 2, "running");
        f[i] = (struct store_finish_row){
            .id = ids[i], .attempt = 2, .fin = {.status = TASK_SUCCEEDED, .result = "0"}};
    }
    release_claims(c, 4);
    assert_int_equal(store_task_finish_batch(store, f, 4), STORE_OK);
    /* finished, then the whole batch once more (offsets lost again) */
    assert_int_equal(store_task_claim_batch(store, "w3", 30000, c, 4), STORE_OK);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(f[i].rc, STORE_OK);
        assert_int_equal(c[i].claim, STORE_CLAIM_DONE);
        assert_int_equal(status_of(&ids[i]), TASK_SUCCEEDED);
    }
    /* the stale finish of the dead worker's attempt 1 changes nothing */
    f[0].attempt = 1;
    assert_int_equal(store_task_finish_batch(store, f, 1), STORE_OK);
    assert_int_equal(f[0].rc, STORE_ESTALE);
}

static void test_full_batch_and_bad_arguments(void **state)
{
    enum { N = STORE_BATCH_MAX };
    struct store_claim_row *c = calloc(N + 1, sizeof *c);
    struct store_finish_row *f = calloc(N, sizeof *f);
    (void)state;
    assert_non_null(c);
    assert_non_null(f);
    for (size_t i = 0; i < N; i += 8) {
        struct ids_id ids[8];
        insert_tasks(ids, 8);
        for (size_t k = 0; k < 8; k++)
            c[i + k].id = ids[k];
    }
    assert_int_equal(store_task_claim_batch(store, "w1", 30000, c, N + 1), STORE_EINVAL);
    assert_int_equal(store_task_claim_batch(store, "w1", 30000, c, N), STORE_OK);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(c[i].claim, STORE_CLAIMED);
        f[i] = (struct store_finish_row){
            .id = c[i].id, .attempt = 1, .fin = {.status = TASK_SUCCEEDED, .result = "1"}};
    }
    assert_int_equal(store_task_finish_batch(store, f, N), STORE_OK);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(f[i].rc, STORE_OK);
    assert_int_equal(status_of(&c[N - 1].id), TASK_SUCCEEDED);
    /* the single-row paths share the statements the batch ran with arrays */
    struct ids_id one[1];
    struct task t;
    enum store_claim cl;
    insert_tasks(one, 1);
    assert_int_equal(store_task_claim(store, &one[0], "w1", 30000, &t, &cl), STORE_OK);
    assert_int_equal(cl, STORE_CLAIMED);
    struct store_finish ok = {.status = TASK_SUCCEEDED, .result = "2"};
    assert_int_equal(store_task_finish(store, &one[0], 1, &ok), STORE_OK);
    model_task_release(&t);
    release_claims(c, N);
    free(c);
    free(f);
}

/* A renewed lease keeps another worker out; a stale attempt cannot renew it. */
static void test_extend_lease(void **state)
{
    struct ids_id ids[1];
    (void)state;
    insert_tasks(ids, 1);
    struct store_claim_row c = {.id = ids[0]};
    assert_int_equal(store_task_claim_batch(store, "w1", 0, &c, 1), STORE_OK);
    assert_int_equal(c.claim, STORE_CLAIMED);
    model_task_release(&c.task);
    assert_int_equal(store_task_extend_lease(store, &ids[0], 2, 30000), STORE_ESTALE);
    assert_int_equal(store_task_extend_lease(store, &ids[0], 1, 30000), STORE_OK);
    struct store_claim_row other = {.id = ids[0]};
    assert_int_equal(store_task_claim_batch(store, "w2", 30000, &other, 1), STORE_OK);
    assert_int_equal(other.claim, STORE_CLAIM_LEASED); /* without the renewal: CLAIMED */
    struct store_finish_row f = {
        .id = ids[0], .attempt = 1, .fin = {.status = TASK_SUCCEEDED, .result = "1"}};
    assert_int_equal(store_task_finish_batch(store, &f, 1), STORE_OK);
    assert_int_equal(f.rc, STORE_OK);
    assert_int_equal(store_task_extend_lease(store, &ids[0], 1, 30000), STORE_ESTALE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim_batch_decides_each_row),
        cmocka_unit_test(test_finish_batch_fences_each_row),
        cmocka_unit_test(test_refused_row_is_split_out),
        cmocka_unit_test(test_redelivered_batch_after_crash),
        cmocka_unit_test(test_full_batch_and_bad_arguments),
        cmocka_unit_test(test_extend_lease),
    };
    return cmocka_run_group_tests_name("store_batch", tests, setup, teardown);
}
