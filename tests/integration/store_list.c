/* Integration: listing a user's tasks (keyset pages, filters) and canceling one,
 * against the harness's real MariaDB.  Each test works on fresh user ids, so the
 * tests do not see each other's rows. */
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

static struct ids_id new_user(void)
{
    struct ids_id u;
    assert_int_equal(ids_new_v7(&u), 0);
    return u;
}

/* Inserts one task of user (NULL: nobody's) and returns its id; ids increase with
 * each call (pkg/ids is monotonic within a process). */
static struct ids_id seed(const struct ids_id *user, enum task_status status, const char *type)
{
    struct task t = {0};
    const struct task *batch[1] = {&t};
    struct ids_id id;
    assert_int_equal(ids_new_v7(&t.id), 0);
    if (user) {
        t.user_id = *user;
        t.has_user = true;
    }
    snprintf(t.type, sizeof t.type, "%s", type);
    t.status = status;
    t.max_attempts = 3;
    t.payload = strdup("{\"seeded\":true}");
    t.created_at = t.updated_at = model_now_us();
    assert_int_equal(store_task_insert_batch(store, batch, NULL, 1), STORE_OK);
    id = t.id;
    model_task_release(&t);
    return id;
}

static void release_all(struct task *tasks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        model_task_release(&tasks[i]);
    free(tasks);
}

/* Lists with the filter and checks the ids are exactly want[0..nwant) in order. */
static void expect_ids(const struct store_task_filter *f, const struct ids_id *want, size_t nwant)
{
    struct task *tasks = NULL;
    size_t n = 99;
    assert_int_equal(store_task_list(store, f, &tasks, &n), STORE_OK);
    assert_int_equal(n, nwant);
    for (size_t i = 0; i < n; i++)
        assert_true(ids_equal(&tasks[i].id, &want[i]));
    if (n == 0)
        assert_null(tasks);
    release_all(tasks, n);
}

static void test_list_newest_first_in_keyset_pages(void **state)
{
    struct ids_id user = new_user(), ids[5], desc[5];
    struct store_task_filter f = {.user_id = user, .limit = 10};
    (void)state;
    for (int i = 0; i < 5; i++)
        ids[i] = seed(&user, TASK_QUEUED, "echo");
    for (int i = 0; i < 5; i++)
        desc[i] = ids[4 - i];
    expect_ids(&f, desc, 5);

    /* pages of two: each starts below the last id of the one before */
    f.limit = 2;
    expect_ids(&f, desc, 2);
    f.before = &desc[1];
    expect_ids(&f, desc + 2, 2);
    f.before = &desc[3];
    expect_ids(&f, desc + 4, 1);
    f.before = &desc[4];
    expect_ids(&f, NULL, 0);
}

static void test_list_reads_whole_rows(void **state)
{
    struct ids_id user = new_user();
    struct store_task_filter f = {.user_id = user, .limit = 5};
    struct task *tasks = NULL;
    size_t n = 0;
    struct ids_id id;
    (void)state;
    id = seed(&user, TASK_SUCCEEDED, "echo");
    assert_int_equal(store_task_list(store, &f, &tasks, &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_true(ids_equal(&tasks[0].id, &id));
    assert_true(tasks[0].has_user);
    assert_true(ids_equal(&tasks[0].user_id, &user));
    assert_string_equal(tasks[0].type, "echo");
    assert_int_equal(tasks[0].status, TASK_SUCCEEDED);
    assert_string_equal(tasks[0].payload, "{\"seeded\":true}");
    assert_int_equal(tasks[0].max_attempts, 3);
    assert_true(tasks[0].created_at > 0);
    release_all(tasks, n);
}

static void test_list_filters_by_status_and_type(void **state)
{
    struct ids_id user = new_user();
    struct ids_id q1, q2, d1, c1;
    enum task_status queued = TASK_QUEUED, dead = TASK_DEAD, running = TASK_RUNNING;
    struct store_task_filter f = {.user_id = user, .limit = 10};
    (void)state;
    q1 = seed(&user, TASK_QUEUED, "alpha");
    d1 = seed(&user, TASK_DEAD, "beta");
    q2 = seed(&user, TASK_QUEUED, "beta");
    c1 = seed(&user, TASK_CANCELED, "alpha");

    f.status = &queued;
    expect_ids(&f, (struct ids_id[]){q2, q1}, 2);
    f.status = &dead;
    expect_ids(&f, (struct ids_id[]){d1}, 1);
    f.status = &running;
    expect_ids(&f, NULL, 0);
    f.status = NULL;
    f.type = "alpha";
    expect_ids(&f, (struct ids_id[]){c1, q1}, 2);
    f.type = "beta";
    f.status = &queued;
    expect_ids(&f, (struct ids_id[]){q2}, 1);
    f.type = "gamma";
    f.status = NULL;
    expect_ids(&f, NULL, 0);
    /* a filter combined with the cursor */
    f.type = "beta";
    f.before = &q2;
    expect_ids(&f, (struct ids_id[]){d1}, 1);
}

static void test_list_holds_only_the_users_tasks(void **state)
{
    struct ids_id me = new_user(), other = new_user();
    struct ids_id mine[2];
    struct store_task_filter f = {.user_id = me, .limit = 10};
    (void)state;
    mine[1] = seed(&me, TASK_QUEUED, "echo");
    (void)seed(&other, TASK_QUEUED, "echo");
    (void)seed(NULL, TASK_QUEUED, "echo");
    mine[0] = seed(&me, TASK_QUEUED, "echo");
    (void)seed(&other, TASK_QUEUED, "echo");
    expect_ids(&f, mine, 2);
}

static void test_list_limit_bounds(void **state)
{
    struct ids_id user = new_user();
    struct store_task_filter f = {.user_id = user, .limit = 0};
    struct task *tasks = (struct task *)&f; /* must stay untouched on failure */
    size_t n = 42;
    (void)state;
    assert_int_equal(store_task_list(store, &f, &tasks, &n), STORE_EINVAL);
    f.limit = STORE_LIST_MAX + 1;
    assert_int_equal(store_task_list(store, &f, &tasks, &n), STORE_EINVAL);
    assert_ptr_equal(tasks, (struct task *)&f);
    assert_int_equal(n, 42);
    f.limit = STORE_LIST_MAX;
    expect_ids(&f, NULL, 0);
}

/* --- cancel ----------------------------------------------------------------- */

static void test_cancel_from_each_status_not_started(void **state)
{
    static const enum task_status from[] = {TASK_PENDING, TASK_QUEUED, TASK_RETRYING};
    struct ids_id user = new_user();
    (void)state;
    for (size_t i = 0; i < sizeof from / sizeof from[0]; i++) {
        struct ids_id id = seed(&user, from[i], "echo");
        struct task before, t, got;
        enum store_cancel outcome = STORE_CANCEL_NOT_FOUND;
        assert_int_equal(store_task_get(store, &id, &before), STORE_OK);
        assert_int_equal(store_task_cancel(store, &id, &user, &t, &outcome), STORE_OK);
        assert_int_equal(outcome, STORE_CANCELED);
        assert_true(ids_equal(&t.id, &id));
        assert_int_equal(t.status, TASK_CANCELED);
        assert_true(t.finished_at > 0);
        assert_int_equal(t.updated_at, t.finished_at);
        assert_true(t.updated_at > before.updated_at);
        assert_int_equal(store_task_get(store, &id, &got), STORE_OK);
        assert_int_equal(got.status, TASK_CANCELED);
        assert_int_equal(got.finished_at, t.finished_at);
        model_task_release(&before);
        model_task_release(&t);
        model_task_release(&got);
    }
}

static void test_cancel_refused_once_started_or_finished(void **state)
{
    static const enum task_status from[] = {TASK_RUNNING, TASK_SUCCEEDED, TASK_DEAD, TASK_CANCELED};
    struct ids_id user = new_user();
    (void)state;
    for (size_t i = 0; i < sizeof from / sizeof from[0]; i++) {
        struct ids_id id = seed(&user, from[i], "echo");
        struct task before, t, got;
        enum store_cancel outcome = STORE_CANCELED;
        assert_int_equal(store_task_get(store, &id, &before), STORE_OK);
        assert_int_equal(store_task_cancel(store, &id, &user, &t, &outcome), STORE_OK);
        assert_int_equal(outcome, STORE_CANCEL_REFUSED);
        assert_int_equal(t.status, from[i]); /* the row as it is, to name in the 409 */
        assert_int_equal(store_task_get(store, &id, &got), STORE_OK);
        assert_int_equal(got.status, from[i]);
        assert_int_equal(got.updated_at, before.updated_at);
        assert_int_equal(got.finished_at, before.finished_at);
        model_task_release(&before);
        model_task_release(&t);
        model_task_release(&got);
    }
}

static void test_cancel_not_found_for_unknown_other_or_nobodys(void **state)
{
    struct ids_id me = new_user(), other = new_user(), unknown;
    struct ids_id theirs = seed(&other, TASK_QUEUED, "echo");
    struct ids_id nobodys = seed(NULL, TASK_QUEUED, "echo");
    const struct ids_id *ids[3] = {&unknown, &theirs, &nobodys};
    struct task t, got;
    (void)state;
    assert_int_equal(ids_new_v7(&unknown), 0);
    for (int i = 0; i < 3; i++) {
        enum store_cancel outcome = STORE_CANCELED;
        memset(&t, 0xAB, sizeof t);
        t.payload = (char *)"sentinel"; /* ret_task stays untouched */
        assert_int_equal(store_task_cancel(store, ids[i], &me, &t, &outcome), STORE_OK);
        assert_int_equal(outcome, STORE_CANCEL_NOT_FOUND);
        assert_string_equal(t.payload, "sentinel");
    }
    assert_int_equal(store_task_get(store, &theirs, &got), STORE_OK);
    assert_int_equal(got.status, TASK_QUEUED);
    assert_int_equal(got.finished_at, 0);
    model_task_release(&got);
}

static void test_canceled_task_is_not_claimed(void **state)
{
    struct ids_id user = new_user();
    struct ids_id id = seed(&user, TASK_QUEUED, "echo");
    enum store_cancel outcome;
    enum store_claim claim = STORE_CLAIMED;
    struct task t;
    (void)state;
    assert_int_equal(store_task_cancel(store, &id, &user, &t, &outcome), STORE_OK);
    assert_int_equal(outcome, STORE_CANCELED);
    model_task_release(&t);
    /* a worker receiving the message afterwards skips it */
    assert_int_equal(store_task_claim(store, &id, "w-cancel", 30000, &t, &claim), STORE_OK);
    assert_int_equal(claim, STORE_CLAIM_DONE);
}

static void test_claimed_task_cannot_be_canceled(void **state)
{
    struct ids_id user = new_user();
    struct ids_id id = seed(&user, TASK_QUEUED, "echo");
    enum store_cancel outcome;
    enum store_claim claim;
    struct task t;
    (void)state;
    assert_int_equal(store_task_claim(store, &id, "w-cancel", 30000, &t, &claim), STORE_OK);
    assert_int_equal(claim, STORE_CLAIMED);
    model_task_release(&t);
    assert_int_equal(store_task_cancel(store, &id, &user, &t, &outcome), STORE_OK);
    assert_int_equal(outcome, STORE_CANCEL_REFUSED);
    assert_int_equal(t.status, TASK_RUNNING);
    model_task_release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_newest_first_in_keyset_pages),
        cmocka_unit_test(test_list_reads_whole_rows),
        cmocka_unit_test(test_list_filters_by_status_and_type),
        cmocka_unit_test(test_list_holds_only_the_users_tasks),
        cmocka_unit_test(test_list_limit_bounds),
        cmocka_unit_test(test_cancel_from_each_status_not_started),
        cmocka_unit_test(test_cancel_refused_once_started_or_finished),
        cmocka_unit_test(test_cancel_not_found_for_unknown_other_or_nobodys),
        cmocka_unit_test(test_canceled_task_is_not_claimed),
        cmocka_unit_test(test_claimed_task_cannot_be_canceled),
    };
    return cmocka_run_group_tests_name("store_list", tests, setup, teardown);
}
