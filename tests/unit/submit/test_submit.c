/* submit: the pipeline against fake store and queue ops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "submit/submit.h"

/* A fake world: what was inserted, published and marked. */
struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int insert_rc;
    int publish_err;    /* reported to done */
    int publish_refuse; /* returned by publish */
    bool gate_closed;   /* insert blocks while true ... */
    size_t hold_from;   /* ... from this batch on (1-based; 0: every batch) */
    bool hold;          /* publish keeps the reports for fire() instead of reporting */
    submit_publish_done_fn held_done[16];
    void *held_opaque[16];
    size_t held;
    bool seen_answered; /* the fake's known key has a stored response */
    size_t responded;
    size_t inserted, published, marked, batches;
    char last_key[300];
    char last_value[512];
    char last_trace[64];
};

static int f_insert(void *ctx, const struct task *const *tasks, struct idem_claim *const *idem,
                    size_t n)
{
    struct fake *f = ctx;
    (void)tasks;
    for (size_t i = 0; i < n; i++) {
        /* the fake store knows one key, "seen", claimed before with body {"a":1} */
        if (idem[i] && strcmp(idem[i]->key, "seen") == 0) {
            idem[i]->exists = true;
            idem[i]->same_fingerprint = idem[i]->fingerprint[0] == 1;
            idem[i]->response_code = f->seen_answered ? 202 : 0;
            idem[i]->response_body = f->seen_answered ? strdup("{\"replayed\":true}") : NULL;
        }
    }
    size_t mine;
    pthread_mutex_lock(&f->mu);
    mine = ++f->batches;
    pthread_cond_broadcast(&f->cv);
    while (f->gate_closed && mine >= f->hold_from)
        pthread_cond_wait(&f->cv, &f->mu);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(tasks[i]->payload, "\"poison\"") == 0) {
            pthread_mutex_unlock(&f->mu);
            return -42; /* the database refused a value: the whole batch rolls back */
        }
    }
    if (f->insert_rc == 0)
        f->inserted += n;
    pthread_mutex_unlock(&f->mu);
    return f->insert_rc;
}

static int f_respond(void *ctx, const struct idem_response *r, size_t n)
{
    struct fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(r[i].code, 202);
        assert_non_null(strstr(r[i].body, "\"id\""));
    }
    f->responded += n;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int f_mark(void *ctx, const struct ids_id *ids, size_t n)
{
    struct fake *f = ctx;
    (void)ids;
    pthread_mutex_lock(&f->mu);
    f->marked += n;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int f_publish(void *ctx, const char *key, size_t key_len, const char *value, size_t len,
                     const char *traceparent, submit_publish_done_fn done, void *opaque)
{
    struct fake *f = ctx;
    if (f->publish_refuse)
        return -1;
    pthread_mutex_lock(&f->mu);
    f->published++;
    snprintf(f->last_key, sizeof f->last_key, "%.*s", (int)key_len, key);
    snprintf(f->last_value, sizeof f->last_value, "%.*s", (int)len, value);
    snprintf(f->last_trace, sizeof f->last_trace, "%s", traceparent ? traceparent : "");
    if (f->hold && f->held < 16) {
        f->held_done[f->held] = done;
        f->held_opaque[f->held++] = opaque;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        return 0;
    }
    pthread_mutex_unlock(&f->mu);
    done(opaque, f->publish_err, NULL); /* an immediate report, as a fast broker would */
    return 0;
}

static const struct submit_store_ops store_ops = {f_insert, f_mark, f_respond, NULL, NULL, -42};
static const struct submit_queue_ops queue_ops = {f_publish};

/* Sends the report of the idx-th held message (waiting until it was published). */
static void fire(struct fake *f, size_t idx, int err)
{
    submit_publish_done_fn done;
    void *opaque;
    pthread_mutex_lock(&f->mu);
    while (f->held <= idx)
        pthread_cond_wait(&f->cv, &f->mu);
    done = f->held_done[idx];
    opaque = f->held_opaque[idx];
    pthread_mutex_unlock(&f->mu);
    done(opaque, err, NULL);
}

static void wait_batches(struct fake *f, size_t n)
{
    pthread_mutex_lock(&f->mu);
    while (f->batches < n)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

/* Requests complete on pipeline threads; tests wait for all of them. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    struct submit_request *order[16]; /* in the order they completed */
};

static void on_done(struct submit_request *req, void *opaque)
{
    struct waiter *w = opaque;
    pthread_mutex_lock(&w->mu);
    if (w->done < 16)
        w->order[w->done] = req;
    w->done++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void wait_done(struct waiter *w, int n)
{
    pthread_mutex_lock(&w->mu);
    while (w->done < n)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

static void make_request(struct submit_request *r, struct waiter *w, const char *okey)
{
    memset(r, 0, sizeof *r);
    /* the analyzer loses r[0]'s payload when the overlap tests make r[1] (released
     * at their end, and valgrind-clean) */
    ids_new_v7(&r->task.id); /* NOLINT(clang-analyzer-unix.Malloc) */
    snprintf(r->task.type, sizeof r->task.type, "echo");
    r->task.payload = strdup("{\"a\":1}");
    r->task.max_attempts = 5;
    r->task.ordering_key = okey ? strdup(okey) : NULL;
    memcpy(r->task.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
           MODEL_TRACEPARENT_LEN + 1);
    r->done = on_done;
    r->opaque = w;
}

static void release(struct submit_request *r)
{
    model_task_release(&r->task);
    free(r->view);
    free(r->idem.response_body);
}

static struct submit *start(struct fake *f, int threads, int batch, int max_waiting)
{
    struct submit_config cfg = {.threads = threads,
                                .batch_max = batch,
                                .publish_timeout_ms = 1000,
                                .max_waiting = max_waiting};
    struct submit *s = NULL;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    assert_int_equal(submit_new(&cfg, &store_ops, f, &queue_ops, f, &s), 0);
    return s;
}

/* One request through a fresh one-thread pipeline; the request is left to release. */
static void submit_alone(struct fake *f, struct submit_request *r)
{
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
    struct submit *s = start(f, 1, 8, 0);
    make_request(r, &w, NULL);
    assert_int_equal(submit_enqueue(s, r), 0);
    wait_done(&w, 1);
    submit_free(s);
}

/* The gated fake: wait until the pipeline is inside insert, then let it go. */
static void wait_first_batch(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    while (f->batches == 0)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

static void open_gate(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    f->gate_closed = false;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void test_accepted_tasks_are_published_and_marked(void **state)
{
    struct fake f = {0};
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
    enum { N = 200 };
    struct submit_request *reqs = calloc(N, sizeof *reqs);
    struct submit *s = start(&f, 3, 16, 0);
    (void)state;
    for (int i = 0; i < N; i++) {
        make_request(&reqs[i], &w, NULL);
        assert_int_equal(submit_enqueue(s, &reqs[i]), 0);
    }
    wait_done(&w, N);
    submit_free(s); /* drains the marker */
    assert_int_equal(f.inserted, N);
    assert_int_equal(f.published, N);
    assert_int_equal(f.marked, N);
    assert_true(f.batches <= N); /* batching never splits below one per request */
    for (int i = 0; i < N; i++) {
        assert_int_equal(reqs[i].result, SUBMIT_ACCEPTED);
        assert_int_equal(reqs[i].task.status, TASK_QUEUED);
        release(&reqs[i]);
    }
    free(reqs);
}

static void test_key_value_and_trace_of_the_message(void **state)
{
    struct fake f = {0};
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
    struct submit_request a, b;
    char id[IDS_TEXT_LEN + 1];
    struct submit *s = start(&f, 1, 1, 0);
    (void)state;
    make_request(&a, &w, "customer-1");
    assert_int_equal(submit_enqueue(s, &a), 0);
    wait_done(&w, 1);
    assert_string_equal(f.last_key, "customer-1");
    assert_non_null(strstr(f.last_value, "\"payload\":{\"a\":1}"));
    assert_string_equal(f.last_trace, a.task.traceparent);

    make_request(&b, &w, NULL);
    assert_int_equal(submit_enqueue(s, &b), 0);
    wait_done(&w, 2);
    ids_format(&b.task.id, id);
    assert_string_equal(f.last_key, id);
    assert_non_null(strstr(f.last_value, id));
    submit_free(s);
    release(&a);
    release(&b);
}

static void test_database_down_stores_nothing_and_publishes_nothing(void **state)
{
    struct fake f = {.insert_rc = -1};
    struct submit_request r;
    (void)state;
    submit_alone(&f, &r);
    assert_int_equal(r.result, SUBMIT_DB_DOWN);
    assert_int_equal(f.published, 0);
    release(&r);
}

static void test_broker_failure_leaves_pending_unmarked(void **state)
{
    struct fake f = {.publish_err = -2};
    struct submit_request r;
    (void)state;
    submit_alone(&f, &r);
    assert_int_equal(r.result, SUBMIT_UNAVAILABLE);
    assert_int_equal(r.task.status, TASK_PENDING);
    assert_int_equal(f.inserted, 1);
    assert_int_equal(f.marked, 0);
    release(&r);
}

static void test_refused_publish_is_unavailable(void **state)
{
    struct fake f = {.publish_refuse = 1};
    struct submit_request r;
    (void)state;
    submit_alone(&f, &r);
    assert_int_equal(r.result, SUBMIT_UNAVAILABLE);
    assert_int_equal(f.marked, 0);
    release(&r);
}

static void test_overload_is_refused_without_callback(void **state)
{
    struct fake f = {.gate_closed = true};
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
    struct submit_request r1, r2, r3;
    struct submit *s = start(&f, 1, 1, 1);
    (void)state;
    make_request(&r1, &w, NULL);
    make_request(&r2, &w, NULL);
    make_request(&r3, &w, NULL);
    assert_int_equal(submit_enqueue(s, &r1), 0);
    wait_first_batch(&f);                        /* r1 is inside the (blocked) insert */
    assert_int_equal(submit_enqueue(s, &r2), 0); /* waits: one allowed */
    assert_int_equal(submit_enqueue(s, &r3), -1);
    assert_int_equal(r3.result, SUBMIT_OVERLOADED);
    open_gate(&f);
    wait_done(&w, 2);
    submit_free(s);
    assert_int_equal(w.done, 2); /* r3 never called back */
    assert_int_equal(f.inserted, 2);
    release(&r1);
    release(&r2);
    release(&r3);
}

static void test_idempotency_outcomes(void **state)
{
    struct fake f = {.seen_answered = true};
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
    struct submit_request same, other, fresh;
    struct submit *s = start(&f, 1, 8, 0);
    (void)state;
    make_request(&same, &w, NULL);
    make_request(&other, &w, NULL);
    make_request(&fresh, &w, NULL);
    same.idem.key = "seen";
    same.idem.fingerprint[0] = 1;
    other.idem.key = "seen";
    other.idem.fingerprint[0] = 2;
    fresh.idem.key = "new-key";
    assert_int_equal(submit_enqueue(s, &same), 0);
    assert_int_equal(submit_enqueue(s, &other), 0);
    assert_int_equal(submit_enqueue(s, &fresh), 0);
    wait_done(&w, 3);
    submit_free(s);
    assert_int_equal(same.result, SUBMIT_REPLAYED);
    assert_string_equal(same.idem.response_body, "{\"replayed\":true}");
    assert_int_equal(other.result, SUBMIT_KEY_MISMATCH);
    assert_int_equal(fresh.result, SUBMIT_ACCEPTED);
    assert_non_null(fresh.view);
    assert_int_equal(f.published, 1); /* only the fresh one */
    assert_int_equal(f.responded, 1); /* and its response is stored under its key */
    release(&same);
    release(&other);
    release(&fresh);
}

static void test_in_flight_key_is_busy(void **state)
{
    struct fake f = {.seen_answered = false};
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
    struct submit_request r;
    struct submit *s = start(&f, 1, 8, 0);
    (void)state;
    make_request(&r, &w, NULL);
    r.idem.key = "seen";
    r.idem.fingerprint[0] = 1;
    assert_int_equal(submit_enqueue(s, &r), 0);
    wait_done(&w, 1);
    submit_free(s);
    assert_int_equal(r.result, SUBMIT_KEY_BUSY);
    assert_int_equal(f.published, 0);
    release(&r);
}

static void test_a_refused_row_does_not_sink_its_batch(void **state)
{
    struct fake f = {.gate_closed = true};
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
    struct submit_request r[4];
    struct submit *s = start(&f, 1, 8, 0);
    (void)state;
    for (int i = 0; i < 4; i++)
        make_request(&r[i], &w, NULL);
    free(r[2].task.payload);
    r[2].task.payload = strdup("\"poison\"");
    /* the first request holds the pipeline so the other three form one batch */
    assert_int_equal(submit_enqueue(s, &r[0]), 0);
    wait_first_batch(&f);
    for (int i = 1; i < 4; i++)
        assert_int_equal(submit_enqueue(s, &r[i]), 0);
    open_gate(&f);
    wait_done(&w, 4);
    submit_free(s);
    assert_int_equal(r[1].result, SUBMIT_ACCEPTED);
    assert_int_equal(r[2].result, SUBMIT_REJECTED);
    assert_int_equal(r[3].result, SUBMIT_ACCEPTED);
    assert_int_equal(f.inserted, 3);
    assert_int_equal(f.published, 3);
    for (int i = 0; i < 4; i++)
        release(&r[i]);
}

/* The marker tells the notify ops of the ids it moved to QUEUED, after the store
 * did (the status caches drop them). */
struct told {
    pthread_mutex_t mu;
    size_t n;
};

static void on_changed(void *ctx, const struct ids_id *ids, size_t n)
{
    struct told *t = ctx;
    (void)ids;
    pthread_mutex_lock(&t->mu);
    t->n += n;
    pthread_mutex_unlock(&t->mu);
}

static void test_marked_ids_are_told(void **state)
{
    static const struct submit_notify_ops notify = {on_changed};
    struct fake f = {0};
    struct told told = {PTHREAD_MUTEX_INITIALIZER, 0};
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
    struct submit_config cfg = {.threads = 2,
                                .batch_max = 8,
                                .publish_timeout_ms = 1000,
                                .notify = &notify,
                                .notify_ctx = &told};
    enum { N = 20 };
    struct submit_request reqs[N];
    struct submit *s = NULL;
    (void)state;
    pthread_mutex_init(&f.mu, NULL);
    pthread_cond_init(&f.cv, NULL);
    assert_int_equal(submit_new(&cfg, &store_ops, &f, &queue_ops, &f, &s), 0);
    for (int i = 0; i < N; i++) {
        make_request(&reqs[i], &w, NULL);
        assert_int_equal(submit_enqueue(s, &reqs[i]), 0);
    }
    wait_done(&w, N);
    submit_free(s); /* drains the marker */
    assert_int_equal(f.marked, N);
    assert_int_equal(told.n, N);
    for (int i = 0; i < N; i++)
        release(&reqs[i]);
}

/* Two requests (made by the caller), one batch each, both in flight on one pipeline thread: r[0] is
 * published (its report held) and r[1]'s insert has begun (held at the gate while
 * gate_r1 is set). */
static struct submit *two_in_flight(struct fake *f, struct waiter *w, struct submit_request *r0,
                                    struct submit_request *r1, bool gate_r1)
{
    struct submit *s;
    f->gate_closed = true;
    f->hold = true;
    (void)w;
    s = start(f, 1, 1, 0);
    assert_int_equal(submit_enqueue(s, r0), 0);
    wait_first_batch(f); /* *r0 inside its insert: *r1 will be waiting behind it */
    assert_int_equal(submit_enqueue(s, r1), 0);
    pthread_mutex_lock(&f->mu);
    f->hold_from = 2; /* let *r0's insert through */
    if (!gate_r1)
        f->gate_closed = false;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    wait_batches(f, 2); /* *r1's insert began ... */
    pthread_mutex_lock(&f->mu);
    assert_true(f->held >= 1); /* ... after *r0 was published, its report outstanding */
    pthread_mutex_unlock(&f->mu);
    return s;
}

static void test_failed_publish_while_next_batch_inserts(void **state)
{
    struct fake f = {0};
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
    struct submit_request r[2] = {0};
    struct submit *s;
    (void)state;
    for (int i = 0; i < 2; i++)
        make_request(&r[i], &w, NULL);
    s = two_in_flight(&f, &w, &r[0], &r[1], true);
    fire(&f, 0, -2); /* r[0]'s broker report: failed, while r[1] is still inserting */
    pthread_mutex_lock(&w.mu);
    assert_int_equal(w.done, 0); /* nothing answered while the thread inserts */
    pthread_mutex_unlock(&w.mu);
    open_gate(&f);
    fire(&f, 1, 0);
    wait_done(&w, 2);
    submit_free(s);
    assert_int_equal(r[0].result, SUBMIT_UNAVAILABLE);
    assert_int_equal(r[0].task.status, TASK_PENDING); /* left for the outbox relay */
    assert_int_equal(r[1].result, SUBMIT_ACCEPTED);
    assert_int_equal(r[1].task.status, TASK_QUEUED);
    assert_ptr_equal(w.order[0], &r[0]);
    assert_int_equal(f.inserted, 2);
    assert_int_equal(f.marked, 1); /* only the acknowledged one */
    release(&r[0]);
    release(&r[1]);
}

static void test_batches_complete_in_order(void **state)
{
    struct fake f = {0};
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
    struct submit_request r[2] = {0};
    struct submit *s;
    (void)state;
    for (int i = 0; i < 2; i++)
        make_request(&r[i], &w, NULL);
    s = two_in_flight(&f, &w, &r[0], &r[1], false);
    fire(&f, 1, 0); /* the younger batch is acknowledged first ... */
    pthread_mutex_lock(&w.mu);
    assert_int_equal(w.done, 0); /* ... and waits for the older one */
    pthread_mutex_unlock(&w.mu);
    fire(&f, 0, 0);
    wait_done(&w, 2);
    submit_free(s);
    assert_ptr_equal(w.order[0], &r[0]);
    assert_ptr_equal(w.order[1], &r[1]);
    assert_int_equal(r[0].result, SUBMIT_ACCEPTED);
    assert_int_equal(r[1].result, SUBMIT_ACCEPTED);
    assert_int_equal(f.marked, 2);
    release(&r[0]);
    release(&r[1]);
}

struct freer {
    struct submit *s;
    pthread_t t;
};

static void *free_thread(void *arg)
{
    struct freer *fr = arg;
    submit_free(fr->s);
    return NULL;
}

static void test_stop_while_batches_are_in_flight(void **state)
{
    struct fake f = {0};
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
    struct submit_request r[3] = {0};
    struct freer fr = {NULL, 0};
    (void)state;
    for (int i = 0; i < 3; i++)
        make_request(&r[i], &w, NULL);
    fr.s = two_in_flight(&f, &w, &r[0], &r[1], false);
    assert_int_equal(submit_enqueue(fr.s, &r[2]), 0); /* waiting: both flights are busy */
    /* stop with two batches in flight and one waiting: all three are answered
     * before submit_free returns, none is lost, no report outlives its batch */
    assert_int_equal(pthread_create(&fr.t, NULL, free_thread, &fr), 0);
    fire(&f, 0, 0);
    fire(&f, 1, -2);
    fire(&f, 2, 0);
    assert_int_equal(pthread_join(fr.t, NULL), 0);
    assert_int_equal(w.done, 3);
    assert_ptr_equal(w.order[0], &r[0]);
    assert_ptr_equal(w.order[1], &r[1]);
    assert_ptr_equal(w.order[2], &r[2]);
    assert_int_equal(r[0].result, SUBMIT_ACCEPTED);
    assert_int_equal(r[1].result, SUBMIT_UNAVAILABLE);
    assert_int_equal(r[2].result, SUBMIT_ACCEPTED);
    assert_int_equal(f.marked, 2); /* the marker drained before the end */
    for (int i = 0; i < 3; i++)
        release(&r[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_tasks_are_published_and_marked),
        cmocka_unit_test(test_marked_ids_are_told),
        cmocka_unit_test(test_key_value_and_trace_of_the_message),
        cmocka_unit_test(test_database_down_stores_nothing_and_publishes_nothing),
        cmocka_unit_test(test_broker_failure_leaves_pending_unmarked),
        cmocka_unit_test(test_refused_publish_is_unavailable),
        cmocka_unit_test(test_overload_is_refused_without_callback),
        cmocka_unit_test(test_idempotency_outcomes),
        cmocka_unit_test(test_in_flight_key_is_busy),
        cmocka_unit_test(test_a_refused_row_does_not_sink_its_batch),
        cmocka_unit_test(test_failed_publish_while_next_batch_inserts),
        cmocka_unit_test(test_batches_complete_in_order),
        cmocka_unit_test(test_stop_while_batches_are_in_flight),
    };
    return cmocka_run_group_tests_name("submit", tests, NULL, NULL);
}
