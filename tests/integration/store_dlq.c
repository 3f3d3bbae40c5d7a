/* Integration: the dead-letter queue in the store (listing DEAD rows, keyset pages,
 * replay with its publish step and rollback, purge into dlq_audit, attempt history),
 * against the harness's real MariaDB.  Each test uses a task type of its own, so it
 * sees only its own rows; the purge test moves its rows' death into the year 2000
 * and purges before 2000-01-02, so it deletes nothing of anyone else's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <mysql.h>

#include "store/store.h"
#include "support/testenv.h"

static struct store *store;
static MYSQL *raw; /* for what the store has no call for: back-dating, audit rows */

static int setup(void **state)
{
    struct store_config sc = testenv_store_config(2);
    (void)state;
    raw = mysql_init(NULL);
    if (!raw || !mysql_real_connect(raw, sc.host, sc.user, sc.password, sc.database,
                                    (unsigned)sc.port, NULL, 0))
        return -1;
    if (mysql_query(raw, "SET time_zone = '+00:00'") != 0)
        return -1;
    return store_new(&sc, &store) == STORE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    store_free(store);
    mysql_close(raw);
    return 0;
}

/* Runs sql with one id parameter; returns the first column of the first row as a
 * number (0 when there is none or it is not a query). */
static long long raw_id(const char *sql, const struct ids_id *id)
{
    MYSQL_STMT *st = mysql_stmt_init(raw);
    MYSQL_BIND in = {0}, out = {0};
    unsigned long len = 16;
    long long v = 0;
    assert_non_null(st);
    assert_int_equal(mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)), 0);
    in.buffer_type = MYSQL_TYPE_BLOB;
    in.buffer = (void *)id->b;
    in.buffer_length = 16;
    in.length = &len;
    assert_int_equal(mysql_stmt_bind_param(st, &in), 0);
    assert_int_equal(mysql_stmt_execute(st), 0);
    if (mysql_stmt_field_count(st) > 0) {
        out.buffer_type = MYSQL_TYPE_LONGLONG;
        out.buffer = &v;
        assert_int_equal(mysql_stmt_bind_result(st, &out), 0);
        if (mysql_stmt_fetch(st) != 0)
            v = 0;
        mysql_stmt_free_result(st);
    }
    mysql_stmt_close(st);
    return v;
}

static void unique_type(char *out, size_t size, const char *what)
{
    struct ids_id id;
    char text[IDS_TEXT_LEN + 1];
    assert_int_equal(ids_new_v7(&id), 0);
    ids_format(&id, text);
    /* the random tail of a v7 id: unique across runs */
    snprintf(out, size, "dlq-%s-%.8s", what, text + 28);
}

/* A task of type that ran attempts times and then died with error. */
static struct ids_id seed_dead(const char *type, int attempts, const char *error)
{
    struct task t = {0};
    const struct task *batch[1] = {&t};
    enum store_claim claim;
    struct task got;
    struct ids_id id;
    struct store_finish retry = {.status = TASK_RETRYING,
                                 .outcome = STORE_OUTCOME_FAILED,
                                 .error = "earlier failure",
                                 .run_at = model_now_us()};
    struct store_finish dead = {
        .status = TASK_DEAD, .outcome = STORE_OUTCOME_FAILED, .error = error};

    assert_int_equal(ids_new_v7(&t.id), 0);
    snprintf(t.type, sizeof t.type, "%s", type);
    t.status = TASK_QUEUED;
    t.max_attempts = attempts;
    t.payload = strdup("{\"n\":1}");
    t.created_at = t.updated_at = model_now_us();
    memcpy(t.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
           MODEL_TRACEPARENT_LEN + 1);
    assert_int_equal(store_task_insert_batch(store, batch, NULL, 1), STORE_OK);
    for (int a = 1; a <= attempts; a++) {
        assert_int_equal(store_task_claim(store, &t.id, "it-worker", 30000, &got, &claim),
                         STORE_OK);
        assert_int_equal(claim, STORE_CLAIMED);
        model_task_release(&got);
        assert_int_equal(store_task_finish(store, &t.id, a, a < attempts ? &retry : &dead),
                         STORE_OK);
    }
    id = t.id;
    model_task_release(&t);
    return id;
}

static void free_tasks(struct task *tasks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        model_task_release(&tasks[i]);
    free(tasks);
}

static void test_list_newest_death_first_with_filters(void **state)
{
    char type[64], other[64];
    struct ids_id a, b, c;
    struct task *tasks = NULL;
    size_t n = 99;
    (void)state;
    unique_type(type, sizeof type, "list");
    unique_type(other, sizeof other, "other");
    a = seed_dead(type, 1, "first");
    b = seed_dead(type, 2, "second");
    c = seed_dead(other, 1, "elsewhere");

    struct store_dlq_filter f = {.type = type, .limit = 10};
    assert_int_equal(store_dlq_list(store, &f, &tasks, &n), STORE_OK);
    assert_int_equal(n, 2);
    assert_true(ids_equal(&tasks[0].id, &b));
    assert_true(ids_equal(&tasks[1].id, &a));
    assert_int_equal(tasks[0].status, TASK_DEAD);
    assert_int_equal(tasks[0].attempts, 2);
    assert_string_equal(tasks[0].last_error, "second");
    assert_true(tasks[0].finished_at >= tasks[1].finished_at);
    free_tasks(tasks, n);

    f.limit = 1; /* the limit holds */
    assert_int_equal(store_dlq_list(store, &f, &tasks, &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_true(ids_equal(&tasks[0].id, &b));
    free_tasks(tasks, n);

    f.limit = 10; /* nothing died in the future */
    f.since = model_now_us() + 60 * 1000000LL;
    assert_int_equal(store_dlq_list(store, &f, &tasks, &n), STORE_OK);
    assert_int_equal(n, 0);
    assert_null(tasks);

    f.type = other;
    f.since = model_now_us() - 60 * 1000000LL;
    assert_int_equal(store_dlq_list(store, &f, &tasks, &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_true(ids_equal(&tasks[0].id, &c));
    free_tasks(tasks, n);

    f.limit = 0;
    assert_int_equal(store_dlq_list(store, &f, &tasks, &n), STORE_EINVAL);
}

static void test_page_walks_creation_order(void **state)
{
    char type[64];
    struct ids_id ids[3];
    struct store_dlq_cursor cur;
    struct task *tasks = NULL;
    size_t n = 0;
    (void)state;
    unique_type(type, sizeof type, "page");
    for (int i = 0; i < 3; i++)
        ids[i] = seed_dead(type, 1, "x");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_dlq_page(store, type, i ? &cur : NULL, 1, &tasks, &n), STORE_OK);
        assert_int_equal(n, 1);
        assert_true(ids_equal(&tasks[0].id, &ids[i]));
        cur.created_at = tasks[0].created_at;
        cur.id = tasks[0].id;
        free_tasks(tasks, n);
    }
    assert_int_equal(store_dlq_page(store, type, &cur, 1, &tasks, &n), STORE_OK);
    assert_int_equal(n, 0);
}

/* A fake publisher: remembers what it was given, fails when told to. */
struct fake_pub {
    int calls;
    bool fail;
    enum task_status status;
    int attempts;
    bool had_error;
    char traceparent[MODEL_TRACEPARENT_LEN + 1];
};

static int fake_publish(void *arg, const struct task *t)
{
    struct fake_pub *p = arg;
    p->calls++;
    p->status = t->status;
    p->attempts = t->attempts;
    p->had_error = t->last_error != NULL;
    memcpy(p->traceparent, t->traceparent, sizeof p->traceparent);
    return p->fail ? -1 : 0;
}

static void test_replay_resets_records_and_publishes(void **state)
{
    char type[64];
    struct fake_pub pub = {0};
    enum store_replay outcome;
    enum store_claim claim;
    struct store_attempt *hist = NULL;
    struct task t;
    size_t n = 0;
    (void)state;
    unique_type(type, sizeof type, "replay");
    struct ids_id id = seed_dead(type, 2, "boom at the end");

    assert_int_equal(
        store_dlq_replay(store, &id, "dispatchctl:it@host", fake_publish, &pub, &t, &outcome),
        STORE_OK);
    assert_int_equal(outcome, STORE_REPLAYED);
    assert_int_equal(pub.calls, 1);
    assert_int_equal(pub.status, TASK_QUEUED);
    assert_int_equal(pub.attempts, 0);
    assert_false(pub.had_error);
    assert_string_equal(pub.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    model_task_release(&t);

    assert_int_equal(store_task_get(store, &id, &t), STORE_OK);
    assert_int_equal(t.status, TASK_QUEUED);
    assert_int_equal(t.attempts, 0);
    assert_null(t.last_error);
    assert_int_equal(t.finished_at, 0);
    assert_int_equal(t.run_at, 0);
    model_task_release(&t);

    /* history: failed, failed, then the replay carrying the error it cleared */
    assert_int_equal(store_task_attempts(store, &id, 100, &hist, &n), STORE_OK);
    assert_int_equal(n, 3);
    assert_string_equal(hist[0].outcome, "failed");
    assert_int_equal(hist[1].attempt, 2);
    assert_string_equal(hist[1].error, "boom at the end");
    assert_string_equal(hist[2].outcome, "replayed");
    assert_int_equal(hist[2].attempt, 0);
    assert_string_equal(hist[2].worker_id, "dispatchctl:it@host");
    assert_string_equal(hist[2].error, "boom at the end");
    assert_true(hist[2].finished_at >= hist[2].started_at);
    store_attempts_free(hist, n);

    /* a worker takes it again from attempt 1 */
    assert_int_equal(store_task_claim(store, &id, "w-again", 30000, &t, &claim), STORE_OK);
    assert_int_equal(claim, STORE_CLAIMED);
    assert_int_equal(t.attempts, 1);
    model_task_release(&t);

    /* no longer DEAD: a second replay changes nothing and publishes nothing */
    assert_int_equal(
        store_dlq_replay(store, &id, "dispatchctl:it@host", fake_publish, &pub, &t, &outcome),
        STORE_OK);
    assert_int_equal(outcome, STORE_REPLAY_NOT_DEAD);
    assert_int_equal(t.status, TASK_RUNNING);
    assert_int_equal(pub.calls, 1);
    model_task_release(&t);
}

static void test_failed_publish_rolls_back(void **state)
{
    char type[64];
    struct fake_pub pub = {.fail = true};
    enum store_replay outcome = STORE_REPLAYED;
    struct store_attempt *hist = NULL;
    struct task t;
    size_t n = 0;
    (void)state;
    unique_type(type, sizeof type, "unpub");
    struct ids_id id = seed_dead(type, 1, "kept");

    assert_int_equal(
        store_dlq_replay(store, &id, "dispatchctl:it@host", fake_publish, &pub, &t, &outcome),
        STORE_OK);
    assert_int_equal(outcome, STORE_REPLAY_UNPUBLISHED);
    assert_int_equal(pub.calls, 1);
    assert_int_equal(store_task_get(store, &id, &t), STORE_OK);
    assert_int_equal(t.status, TASK_DEAD);
    assert_int_equal(t.attempts, 1);
    assert_string_equal(t.last_error, "kept");
    model_task_release(&t);
    assert_int_equal(store_task_attempts(store, &id, 100, &hist, &n), STORE_OK);
    assert_int_equal(n, 1); /* no 'replayed' row */
    store_attempts_free(hist, n);
}

static void test_replay_unknown(void **state)
{
    struct fake_pub pub = {0};
    enum store_replay outcome = STORE_REPLAYED;
    struct ids_id id;
    struct task t;
    (void)state;
    assert_int_equal(ids_new_v7(&id), 0);
    assert_int_equal(
        store_dlq_replay(store, &id, "dispatchctl:it@host", fake_publish, &pub, &t, &outcome),
        STORE_OK);
    assert_int_equal(outcome, STORE_REPLAY_NOT_FOUND);
    assert_int_equal(pub.calls, 0);
}

static void test_purge_audits_and_deletes(void **state)
{
    const char *backdate = "UPDATE tasks SET finished_at = '2000-01-01 00:00:00', created_at = "
                           "'2000-01-01 00:00:00' WHERE id = ?";
    char type[64];
    struct ids_id a, b, live;
    struct store_attempt *hist = NULL;
    struct task t;
    int64_t before;
    size_t n = 99, count = 99;
    (void)state;
    unique_type(type, sizeof type, "purge");
    a = seed_dead(type, 2, "old a");
    b = seed_dead(type, 1, "old b");
    live = seed_dead(type, 1, "recent"); /* died now: stays */
    raw_id(backdate, &a);
    raw_id(backdate, &b);
    assert_int_equal(model_time_parse("2000-01-02T00:00:00Z", &before), 0);

    assert_int_equal(store_dlq_count(store, before, &count), STORE_OK);
    assert_int_equal(count, 2);
    /* one per transaction: 1, 1, then nothing left */
    assert_int_equal(store_dlq_purge(store, before, "dispatchctl:it@host", 1, &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_dlq_purge(store, before, "dispatchctl:it@host", 1, &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_int_equal(store_dlq_purge(store, before, "dispatchctl:it@host", 1, &n), STORE_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_dlq_count(store, before, &count), STORE_OK);
    assert_int_equal(count, 0);

    assert_int_equal(store_task_get(store, &a, &t), STORE_ENOTFOUND);
    assert_int_equal(store_task_get(store, &b, &t), STORE_ENOTFOUND);
    assert_int_equal(store_task_attempts(store, &a, 100, &hist, &n), STORE_OK);
    assert_int_equal(n, 0);
    assert_int_equal(raw_id("SELECT COUNT(*) FROM dlq_audit WHERE task_id = ? AND action = "
                            "'purge' AND actor = 'dispatchctl:it@host' AND attempts = 2 AND "
                            "last_error = 'old a' AND finished_at = '2000-01-01'",
                            &a),
                     1);
    assert_int_equal(raw_id("SELECT COUNT(*) FROM dlq_audit WHERE task_id = ?", &b), 1);
    assert_int_equal(raw_id("SELECT COUNT(*) FROM dlq_audit WHERE task_id = ?", &live), 0);

    assert_int_equal(store_task_get(store, &live, &t), STORE_OK);
    assert_int_equal(t.status, TASK_DEAD);
    model_task_release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_newest_death_first_with_filters),
        cmocka_unit_test(test_page_walks_creation_order),
        cmocka_unit_test(test_replay_resets_records_and_publishes),
        cmocka_unit_test(test_failed_publish_rolls_back),
        cmocka_unit_test(test_replay_unknown),
        cmocka_unit_test(test_purge_audits_and_deletes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
