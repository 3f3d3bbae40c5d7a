/* Unit tests for internal/taskexec with a fake store and a fake queue: success,
 * retry (and its fencing), exhaustion, permanent failures, unknown types, skips,
 * deferral of leased tasks, malformed messages, dependency outages, hand-back,
 * scheduled tasks (run_at) and the worker metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/log.h"
#include "metrics/metrics.h"
#include "taskexec/taskexec.h"

#define TASK_ID  "01890a5d-ac96-774b-bcce-b302099a8057"
#define TRACEP   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define MAX_RECS 8

/* --- fakes ------------------------------------------------------------------ */

struct pub {
    char topic[64];
    char value[256];
    char key[64];
    char hname[16][32];
    char hval[16][128];
    size_t nh;
};

struct fake {
    /* store */
    int claim_rcs[4]; /* returned in turn, then TASKEXEC_OP_OK */
    int n_claim_rcs, claims;
    enum taskexec_claim claim;
    char type[32];
    const char *payload;
    int attempts, max_attempts;
    int finish_rcs[4];
    int n_finish_rcs, finishes;
    struct taskexec_finish fin; /* last one; strings copied below */
    char fin_error[256], fin_result[256];
    int fin_attempt;
    /* queue */
    int pub_rcs[4];
    int n_pub_rcs, pub_calls;
    struct pub pubs[MAX_RECS];
    size_t n_pubs;
    /* call order: 'c'laim, 'f'inish, 'p'ublish */
    char seq[32];
    size_t n_seq;
    /* the run */
    struct handler_registry *reg;
    struct taskexec *te;
    atomic_bool cancel;
};

static void note(struct fake *f, char c)
{
    if (f->n_seq + 1 < sizeof f->seq) {
        f->seq[f->n_seq++] = c;
    }
}

static int fake_claim(void *ctx, const struct ids_id *id, const char *worker_id, int lease_ms,
                      struct task *ret_task, enum taskexec_claim *ret_claim)
{
    struct fake *f = ctx;
    (void)worker_id;
    (void)lease_ms;
    note(f, 'c');
    int i = f->claims++;
    if (i < f->n_claim_rcs && f->claim_rcs[i] != TASKEXEC_OP_OK) {
        return f->claim_rcs[i];
    }
    *ret_claim = f->claim;
    if (f->claim == TASKEXEC_CLAIMED) {
        struct task t;
        memset(&t, 0, sizeof t);
        t.id = *id;
        snprintf(t.type, sizeof t.type, "%s", f->type);
        t.status = TASK_RUNNING;
        t.attempts = f->attempts;
        t.max_attempts = f->max_attempts;
        t.payload = strdup(f->payload);
        assert_non_null(t.payload);
        *ret_task = t;
    }
    return TASKEXEC_OP_OK;
}

static int fake_finish(void *ctx, const struct ids_id *id, int attempt,
                       const struct taskexec_finish *fin)
{
    struct fake *f = ctx;
    (void)id;
    note(f, 'f');
    int i = f->finishes++;
    f->fin = *fin;
    f->fin_attempt = attempt;
    snprintf(f->fin_error, sizeof f->fin_error, "%s", fin->error ? fin->error : "");
    snprintf(f->fin_result, sizeof f->fin_result, "%s", fin->result ? fin->result : "");
    return i < f->n_finish_rcs ? f->finish_rcs[i] : TASKEXEC_OP_OK;
}

static int fake_publish(void *ctx, const char *topic, const void *key, size_t key_len,
                        const void *value, size_t len, const struct taskexec_header *headers,
                        size_t n_headers)
{
    struct fake *f = ctx;
    note(f, 'p');
    int i = f->pub_calls++;
    if (i < f->n_pub_rcs && f->pub_rcs[i] != 0) {
        return f->pub_rcs[i];
    }
    assert_true(f->n_pubs < MAX_RECS);
    struct pub *p = &f->pubs[f->n_pubs++];
    snprintf(p->topic, sizeof p->topic, "%s", topic);
    snprintf(p->value, sizeof p->value, "%.*s", (int)len, (const char *)value);
    snprintf(p->key, sizeof p->key, "%.*s", (int)key_len, key ? (const char *)key : "");
    assert_true(n_headers <= 16);
    for (size_t h = 0; h < n_headers; h++) {
        snprintf(p->hname[h], sizeof p->hname[h], "%s", headers[h].name);
        snprintf(p->hval[h], sizeof p->hval[h], "%.*s", (int)headers[h].len,
                 (const char *)headers[h].value);
    }
    p->nh = n_headers;
    return 0;
}

static const struct taskexec_store_ops store_ops = {fake_claim, fake_finish, NULL};
static const struct taskexec_queue_ops queue_ops = {fake_publish};

static const char *hdr(const struct pub *p, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < p->nh; i++) {
        if (strcmp(p->hname[i], name) == 0) {
            v = p->hval[i];
        }
    }
    return v;
}

static int count_hdr(const struct pub *p, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < p->nh; i++) {
        n += strcmp(p->hname[i], name) == 0;
    }
    return n;
}

static long long now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
    struct fake *f = calloc(1, sizeof *f);
    if (f == NULL || handler_registry_new(&f->reg) < 0 || handler_register_builtins(f->reg) < 0 ||
        handler_register_test_handlers(f->reg) < 0) {
        return -1;
    }
    f->claim = TASKEXEC_CLAIMED;
    snprintf(f->type, sizeof f->type, "noop");
    f->payload = "{}";
    f->attempts = 1;
    f->max_attempts = 3;
    atomic_init(&f->cancel, false);
    struct taskexec_config cfg = {
        .worker_id = "w-1",
        .retry_topic = "t.retry",
        .dlq_topic = "t.dlq",
        .lease_ms = 30000,
        .default_timeout_ms = 2000,
        .backoff = {.base_ms = 1000, .cap_ms = 60000},
        .dep_retry_max_ms = 20,
    };
    if (taskexec_new(&cfg, &store_ops, f, &queue_ops, f, f->reg, &f->te) < 0) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fake *f = *state;
    taskexec_free(f->te);
    handler_registry_free(f->reg);
    free(f);
    return 0;
}

/* Runs one message with the given value and a traceparent + custom header. */
static int run_value(struct fake *f, const char *value, enum taskexec_outcome *out)
{
    struct taskexec_header headers[] = {
        {"traceparent", TRACEP, strlen(TRACEP)},
        {"x-custom", "keep-me", 7},
        {"x-first-failure", "1700000000000", 13},
    };
    struct taskexec_msg m = {
        .topic = "t",
        .partition = 0,
        .offset = 7,
        .key = "k1",
        .key_len = 2,
        .value = value,
        .len = strlen(value),
        .headers = headers,
        .n_headers = sizeof headers / sizeof headers[0],
    };
    return taskexec_run(f->te, &m, &f->cancel, out);
}

static int run_task(struct fake *f, enum taskexec_outcome *out)
{
    return run_value(f, "{\"id\":\"" TASK_ID "\",\"type\":\"x\",\"payload\":{}}", out);
}

/* --- tests -------------------------------------------------------------------- */

static void test_success(void **state)
{
    struct fake *f = *state;
    snprintf(f->type, sizeof f->type, "echo");
    f->payload = "{\"hello\":\"world\"}";
    enum taskexec_outcome out = TASKEXEC_DEAD;
    assert_int_equal(run_task(f, &out), 0);
    assert_int_equal(out, TASKEXEC_SUCCEEDED);
    assert_string_equal(f->seq, "cf");
    assert_int_equal(f->fin.status, TASK_SUCCEEDED);
    assert_int_equal(f->fin.outcome, TASKEXEC_ATTEMPT_SUCCEEDED);
    assert_int_equal(f->fin_attempt, 1);
    assert_string_equal(f->fin_result, "{\"hello\":\"world\"}");
    assert_int_equal(f->n_pubs, 0);
}

static void test_success_stale(void **state)
{
    struct fake *f = *state;
    f->finish_rcs[0] = TASKEXEC_OP_STALE;
    f->n_finish_rcs = 1;
    enum taskexec_outcome out = TASKEXEC_DEAD;
    assert_int_equal(run_task(f, &out), 0);
    assert_int_equal(out, TASKEXEC_SKIPPED);
    assert_int_equal(f->finishes, 1); /* a fenced-out update is not retried */
}

static void test_retry(void **state)
{
    struct fake *f = *state;
    snprintf(f->type, sizeof f->type, "fail");
    f->payload = "{\"times\":5}";
    f->attempts = 2;
    f->max_attempts = 3;
    long long before = now_unix_ms();
    enum taskexec_outcome out = TASKEXEC_DEAD;
    assert_int_equal(run_task(f, &out), 0);
    long long after = now_unix_ms();
    assert_int_equal(out, TASKEXEC_RETRIED);
    assert_string_equal(f->seq, "cfp"); /* the row first, then the retry record */
    assert_int_equal(f->fin.status, TASK_RETRYING);
    assert_int_equal(f->fin.outcome, TASKEXEC_ATTEMPT_FAILED);
    assert_non_null(strstr(f->fin_error, "injected failure"));
    assert_true(f->fin.run_at >= before * 1000);
    assert_true(f->fin.run_at <= (after + 2000) * 1000 + 1000); /* ceiling of retry 2: 2 s */
    assert_int_equal(f->n_pubs, 1);
    const struct pub *p = &f->pubs[0];
    assert_string_equal(p->topic, "t.retry");
    assert_string_equal(p->key, "k1");
    assert_non_null(strstr(p->value, TASK_ID));
    assert_string_equal(hdr(p, "traceparent"), TRACEP);
    assert_string_equal(hdr(p, "x-custom"), "keep-me");
    assert_string_equal(hdr(p, "x-attempts"), "2");
    long long nb = strtoll(hdr(p, "x-not-before"), NULL, 10);
    assert_true(nb >= before && nb <= after + 2000);
    assert_string_equal(hdr(p, "x-first-failure"), "1700000000000");
    assert_int_equal(count_hdr(p, "x-first-failure"), 1);
    assert_non_null(hdr(p, "x-error"));
}

static void test_retry_fenced(void **state)
{
    struct fake *f = *state;
    snprintf(f->type, sizeof f->type, "fail");
    f->finish_rcs[0] = TASKEXEC_OP_STALE;
    f->n_finish_rcs = 1;
    enum taskexec_outcome out = TASKEXEC_DEAD;
    assert_int_equal(run_task(f, &out), 0);
    assert_int_equal(out, TASKEXEC_SKIPPED);
    assert_string_equal(f->seq, "cf"); /* no retry record for a superseded attempt */
    assert_int_equal(f->n_pubs, 0);
}

static void check_dlq(const struct fake *f, const char *error_part)
{
    assert_string_equal(f->seq, "cpf"); /* the DLQ record first, then the row */
    assert_int_equal(f->fin.status, TASK_DEAD);
    assert_non_null(strstr(f->fin_error, error_part));
    assert_int_equal(f->n_pubs, 1);
    const struct pub *p = &f->pubs[0];
    assert_string_equal(p->topic, "t.dlq");
    assert_non_null(strstr(p->value, TASK_ID));
    assert_non_null(strstr(hdr(p, "x-error"), error_part));
    assert_string_equal(hdr(p, "x-first-failure"), "1700000000000");
    assert_non_null(hdr(p, "x-last-failure"));
    assert_string_equal(hdr(p, "x-worker"), "w-1");
    assert_string_equal(hdr(p, "traceparent"), TRACEP);
    assert_int_equal(count_hdr(p, "x-first-failure"), 1);
}

static void test_exhausted(void **state)
{
    struct fake *f = *state;
    snprintf(f->type, sizeof f->type, "fail");
    f->attempts = 3;
    f->max_attempts = 3;
    enum taskexec_outcome out = TASKEXEC_SUCCEEDED;
    assert_int_equal(run_task(f, &out), 0);
    assert_int_equal(out, TASKEXEC_DEAD);
    check_dlq(f, "injected failure");
    assert_int_equal(f->fin.outcome, TASKEXEC_ATTEMPT_FAILED);
    assert_string_equal(hdr(&f->pubs[0], "x-attempts"), "3");
}

static void test_permanent(void **state)
{
    struct fake *f = *state;
    snprintf(f->type, sizeof f->type, "fail");
    f->payload = "{\"times\":1,\"permanent\":true}";
    enum taskexec_outcome out = TASKEXEC_SUCCEEDED;
    assert_int_equal(run_task(f, &out), 0);
    assert_int_equal(out, TASKEXEC_DEAD);
    check_dlq(f, "injected failure");
    assert_int_equal(f->fin.outcome, TASKEXEC_ATTEMPT_PERMANENT);
    assert_string_equal(hdr(&f->pubs[0], "x-attempts"), "1");
}

static void test_unknown_type(void **state)
{
    struct fake *f = *state;
    snprintf(f->type, sizeof f->type, "no.such-type");
    enum taskexec_outcome out = TASKEXEC_SUCCEEDED;
    assert_int_equal(run_task(f, &out), 0);
    assert_int_equal(out, TASKEXEC_DEAD);
    check_dlq(f, "unknown task type: no.such-type");
    assert_int_equal(f->fin.outcome, TASKEXEC_ATTEMPT_PERMANENT);
}

static void test_timeout_retries(void **state)
{
    struct fake *f = *state;
    snprintf(f->type, sizeof f->type, "sleep");
    f->payload = "{\"ms\":60000}"; /* default timeout in setup: 2 s */
    enum taskexec_outcome out = TASKEXEC_DEAD;
    assert_int_equal(run_task(f, &out), 0);
    assert_int_equal(out, TASKEXEC_RETRIED);
    assert_int_equal(f->fin.outcome, TASKEXEC_ATTEMPT_TIMEOUT);
}

static void test_skips(void **state)
{
    struct fake *f = *state;
    enum taskexec_claim cases[] = {TASKEXEC_CLAIM_DONE, TASKEXEC_CLAIM_NOT_FOUND};
    for (size_t i = 0; i < 2; i++) {
        f->claim = cases[i];
        f->n_seq = 0;
        memset(f->seq, 0, sizeof f->seq);
        enum taskexec_outcome out = TASKEXEC_DEAD;
        assert_int_equal(run_task(f, &out), 0);
        assert_int_equal(out, TASKEXEC_SKIPPED);
        assert_string_equal(f->seq, "c");
    }
    assert_int_equal(f->n_pubs, 0);
}

static void test_leased_deferred(void **state)
{
    struct fake *f = *state;
    f->claim = TASKEXEC_CLAIM_LEASED;
    long long before = now_unix_ms();
    enum taskexec_outcome out = TASKEXEC_DEAD;
    assert_int_equal(run_task(f, &out), 0);
    assert_int_equal(out, TASKEXEC_DEFERRED);
    assert_string_equal(f->seq, "cp");
    const struct pub *p = &f->pubs[0];
    assert_string_equal(p->topic, "t.retry");
    long long nb = strtoll(hdr(p, "x-not-before"), NULL, 10);
    assert_true(nb >= before + 30000 && nb <= now_unix_ms() + 30000);
    assert_null(hdr(p, "x-attempts")); /* not a failure: no attempt recorded */
    assert_string_equal(hdr(p, "x-first-failure"), "1700000000000"); /* history kept */
}

static void test_malformed(void **state)
{
    struct fake *f = *state;
    const char *bad[] = {"not json", "{\"id\":42}", "{\"id\":\"nope\"}", "[]",
                         "{\"type\":\"noop\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum taskexec_outcome out = TASKEXEC_DEAD;
        assert_int_equal(run_value(f, bad[i], &out), 0);
        assert_int_equal(out, TASKEXEC_MALFORMED);
    }
    assert_int_equal(f->claims, 0);
    assert_int_equal(f->n_pubs, 5);
    assert_string_equal(f->pubs[0].topic, "t.dlq");
    assert_string_equal(f->pubs[0].value, "not json");
    assert_non_null(strstr(hdr(&f->pubs[0], "x-error"), "malformed"));
    assert_string_equal(hdr(&f->pubs[0], "x-attempts"), "0");
}

static void test_store_outage_recovers(void **state)
{
    struct fake *f = *state;
    f->claim_rcs[0] = TASKEXEC_OP_FAILED;
    f->claim_rcs[1] = TASKEXEC_OP_FAILED;
    f->n_claim_rcs = 2;
    f->finish_rcs[0] = TASKEXEC_OP_FAILED;
    f->n_finish_rcs = 1;
    enum taskexec_outcome out = TASKEXEC_DEAD;
    assert_int_equal(run_task(f, &out), 0);
    assert_int_equal(out, TASKEXEC_SUCCEEDED);
    assert_string_equal(f->seq, "cccff");
}

static void test_outage_with_cancel_gives_up(void **state)
{
    struct fake *f = *state;
    for (int i = 0; i < 4; i++) {
        f->claim_rcs[i] = TASKEXEC_OP_FAILED;
    }
    f->n_claim_rcs = 4;
    atomic_store(&f->cancel, true);
    enum taskexec_outcome out = TASKEXEC_DEAD;
    assert_int_equal(run_task(f, &out), TASKEXEC_EAGAIN);
    assert_int_equal(out, TASKEXEC_DEAD); /* untouched */
    assert_int_equal(f->claims, 1);
}

static void test_publish_outage(void **state)
{
    struct fake *f = *state;
    snprintf(f->type, sizeof f->type, "fail");
    f->attempts = 3;
    f->pub_rcs[0] = TASKEXEC_OP_FAILED;
    f->pub_rcs[1] = TASKEXEC_OP_FAILED;
    f->n_pub_rcs = 2;
    enum taskexec_outcome out = TASKEXEC_SUCCEEDED;
    assert_int_equal(run_task(f, &out), 0);
    assert_int_equal(out, TASKEXEC_DEAD);
    assert_string_equal(f->seq, "cpppf"); /* the row waits for the broker's ack */
}

static void test_hand_back(void **state)
{
    struct fake *f = *state;
    snprintf(f->type, sizeof f->type, "sleep");
    f->payload = "{\"ms\":60000}";
    atomic_store(&f->cancel, true);
    enum taskexec_outcome out = TASKEXEC_DEAD;
    assert_int_equal(run_task(f, &out), TASKEXEC_EHANDBACK);
    assert_string_equal(f->seq, "cf");
    assert_int_equal(f->fin.status, TASK_RETRYING);
    assert_int_equal(f->n_pubs, 0);
}

/* --- scheduled tasks (run_at) --------------------------------------------------- */

/* A task message of type noop with run_at = now + offset_ms (NULL offset: null). */
static void task_msg(char *buf, size_t size, const long long *offset_ms)
{
    char when[40] = "null";
    if (offset_ms != NULL) {
        char t[32];
        model_time_format((now_unix_ms() + *offset_ms) * 1000, t);
        snprintf(when, sizeof when, "\"%s\"", t);
    }
    snprintf(buf, size, "{\"payload\":{},\"id\":\"" TASK_ID "\",\"type\":\"noop\",\"run_at\":%s}",
             when);
}

/* run_at of a message built by task_msg, in unix ms (rounded up, as taskexec does). */
static long long run_at_ms_of(const char *value)
{
    const char *p = strstr(value, "\"run_at\":\"");
    assert_non_null(p);
    char t[40];
    snprintf(t, sizeof t, "%.*s", (int)strcspn(p + 10, "\""), p + 10);
    int64_t us = 0;
    assert_int_equal(model_time_parse(t, &us), 0);
    return (us + 999) / 1000;
}

static void test_run_at_future_is_scheduled(void **state)
{
    struct fake *f = *state;
    char value[256];
    long long in = 10000;
    task_msg(value, sizeof value, &in);
    enum taskexec_outcome out = TASKEXEC_DEAD;
    assert_int_equal(run_value(f, value, &out), 0);
    assert_int_equal(out, TASKEXEC_SCHEDULED);
    assert_string_equal(f->seq, "p"); /* no claim: no attempt used, the row untouched */
    const struct pub *p = &f->pubs[0];
    assert_string_equal(p->topic, "t.retry");
    assert_string_equal(p->key, "k1");
    assert_string_equal(p->value, value);
    assert_int_equal(strtoll(hdr(p, "x-not-before"), NULL, 10), run_at_ms_of(value));
    assert_null(hdr(p, "x-attempts"));
    assert_null(hdr(p, "x-error"));
    assert_string_equal(hdr(p, "x-first-failure"), "1700000000000"); /* carried as is */
    assert_string_equal(hdr(p, "traceparent"), TRACEP);
    assert_string_equal(hdr(p, "x-custom"), "keep-me");
    assert_string_equal(taskexec_outcome_name(TASKEXEC_SCHEDULED), "scheduled");
}

static void test_run_at_far_future_hops(void **state)
{
    struct fake *f = *state;
    char value[256];
    long long in = 3600 * 1000LL; /* an hour: more than one hop (backoff cap: 60 s) */
    task_msg(value, sizeof value, &in);
    long long before = now_unix_ms();
    enum taskexec_outcome out = TASKEXEC_DEAD;
    assert_int_equal(run_value(f, value, &out), 0);
    assert_int_equal(out, TASKEXEC_SCHEDULED);
    long long nb = strtoll(hdr(&f->pubs[0], "x-not-before"), NULL, 10);
    assert_true(nb >= before + 60000 && nb <= now_unix_ms() + 60000);
}

static void test_run_at_due_runs(void **state)
{
    struct fake *f = *state;
    char value[256];
    long long past = -1000;
    const long long *cases[] = {&past, NULL};
    for (size_t i = 0; i < 2; i++) {
        task_msg(value, sizeof value, cases[i]);
        f->n_seq = 0;
        memset(f->seq, 0, sizeof f->seq);
        enum taskexec_outcome out = TASKEXEC_DEAD;
        assert_int_equal(run_value(f, value, &out), 0);
        assert_int_equal(out, TASKEXEC_SUCCEEDED);
        assert_string_equal(f->seq, "cf");
    }
    /* a run_at that is not a time runs now */
    const char *odd[] = {
        "{\"id\":\"" TASK_ID "\",\"run_at\":\"tomorrow\"}",
        "{\"id\":\"" TASK_ID "\",\"run_at\":12345}",
    };
    for (size_t i = 0; i < 2; i++) {
        enum taskexec_outcome out = TASKEXEC_DEAD;
        assert_int_equal(run_value(f, odd[i], &out), 0);
        assert_int_equal(out, TASKEXEC_SUCCEEDED);
    }
    assert_int_equal(f->n_pubs, 0);
}

/* Delayed to its run_at already (by a worker whose clock runs ahead): due now. */
static void test_run_at_delayed_once_is_due(void **state)
{
    struct fake *f = *state;
    char value[256];
    long long in = 5000;
    task_msg(value, sizeof value, &in);
    char nb[24];
    snprintf(nb, sizeof nb, "%lld", run_at_ms_of(value));
    struct taskexec_header headers[] = {{"x-not-before", nb, strlen(nb)}};
    struct taskexec_msg m = {
        .topic = "t.retry",
        .value = value,
        .len = strlen(value),
        .headers = headers,
        .n_headers = 1,
    };
    enum taskexec_outcome out = TASKEXEC_DEAD;
    assert_int_equal(taskexec_run(f->te, &m, &f->cancel, &out), 0);
    assert_int_equal(out, TASKEXEC_SUCCEEDED);
    assert_string_equal(f->seq, "cf");

    /* an earlier hop (x-not-before before run_at) is not enough */
    snprintf(nb, sizeof nb, "%lld", run_at_ms_of(value) - 2000);
    headers[0].len = strlen(nb);
    assert_int_equal(taskexec_run(f->te, &m, &f->cancel, &out), 0);
    assert_int_equal(out, TASKEXEC_SCHEDULED);
}

static void test_run_at_publish_outage_with_cancel(void **state)
{
    struct fake *f = *state;
    char value[256];
    long long in = 10000;
    task_msg(value, sizeof value, &in);
    f->pub_rcs[0] = TASKEXEC_OP_FAILED;
    f->n_pub_rcs = 1;
    atomic_store(&f->cancel, true);
    enum taskexec_outcome out = TASKEXEC_DEAD;
    assert_int_equal(run_value(f, value, &out), TASKEXEC_EAGAIN); /* delivered again */
    assert_int_equal(out, TASKEXEC_DEAD);
    assert_int_equal(f->claims, 0);
}

/* --- metrics ---------------------------------------------------------------------- */

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n') {
            return true;
        }
    }
    return false;
}

static void test_metrics(void **state)
{
    struct fake *f = *state;
    struct metrics *m = NULL;
    assert_int_equal(metrics_worker_new(&m), 0);
    struct taskexec *te = NULL;
    struct taskexec_config cfg = {
        .worker_id = "w-1",
        .retry_topic = "t.retry",
        .dlq_topic = "t.dlq",
        .lease_ms = 30000,
        .backoff = {.base_ms = 1000, .cap_ms = 60000},
        .dep_retry_max_ms = 20,
        .metrics = m,
    };
    assert_int_equal(taskexec_new(&cfg, &store_ops, f, &queue_ops, f, f->reg, &te), 0);
    taskexec_free(f->te);
    f->te = te;

    enum taskexec_outcome out;
    snprintf(f->type, sizeof f->type, "echo");
    assert_int_equal(run_task(f, &out), 0); /* succeeded */
    snprintf(f->type, sizeof f->type, "fail");
    assert_int_equal(run_task(f, &out), 0); /* retried */
    f->attempts = 3;
    assert_int_equal(run_task(f, &out), 0); /* dead */
    snprintf(f->type, sizeof f->type, "no.such");
    assert_int_equal(run_task(f, &out), 0);             /* dead, unknown type */
    assert_int_equal(run_value(f, "garbage", &out), 0); /* malformed */
    char value[256];
    long long in = 10000;
    task_msg(value, sizeof value, &in);
    assert_int_equal(run_value(f, value, &out), 0); /* scheduled */
    assert_int_equal(run_value(f, value, &out), 0); /* and again: one hop per delivery */
    snprintf(f->type, sizeof f->type, "sleep");
    f->payload = "{\"ms\":60000}";
    atomic_store(&f->cancel, true);
    assert_int_equal(run_task(f, &out), TASKEXEC_EHANDBACK);

    char *text = NULL;
    size_t len = 0;
    assert_int_equal(metrics_expose(m, &text, &len), 0);
    const char *lines[] = {
        "tasks_processed_total{type=\"echo\",outcome=\"succeeded\"} 1",
        "tasks_processed_total{type=\"fail\",outcome=\"retried\"} 1",
        "tasks_processed_total{type=\"fail\",outcome=\"dead\"} 1",
        "tasks_processed_total{type=\"other\",outcome=\"dead\"} 1",
        "tasks_processed_total{type=\"other\",outcome=\"malformed\"} 1",
        "tasks_processed_total{type=\"noop\",outcome=\"scheduled\"} 2",
        "tasks_processed_total{type=\"sleep\",outcome=\"handed_back\"} 1",
        "task_retries_total 1",
        "dlq_messages_total 3",
        "task_duration_seconds_count{type=\"echo\"} 1",
        "task_duration_seconds_count{type=\"fail\"} 2",
        "task_duration_seconds_count{type=\"sleep\"} 1",
        "pool_queue_depth 0",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        if (!has_line(text, lines[i])) {
            fail_msg("line not found: %s\nin:\n%s", lines[i], text);
        }
    }
    /* no handler ran for an unknown type, a malformed or a scheduled message */
    assert_null(strstr(text, "task_duration_seconds_count{type=\"other\"}"));
    assert_null(strstr(text, "task_duration_seconds_count{type=\"noop\"}"));
    free(text);
    taskexec_free(f->te);
    f->te = NULL;
    metrics_free(m);
}

/* The notify hook: told after each successful status write (claim, finish), not of a
 * fenced-out finish. */
struct told {
    int n;
    struct ids_id last;
};

static void on_changed(void *ctx, const struct ids_id *id)
{
    struct told *t = ctx;
    t->n++;
    t->last = *id;
}

static void test_notify(void **state)
{
    static const struct taskexec_notify_ops notify = {.changed = on_changed};
    struct fake *f = *state;
    struct told told = {0};
    struct taskexec *te = NULL;
    struct ids_id id;
    struct taskexec_config cfg = {
        .worker_id = "w-1",
        .retry_topic = "t.retry",
        .dlq_topic = "t.dlq",
        .lease_ms = 30000,
        .backoff = {.base_ms = 1000, .cap_ms = 60000},
        .dep_retry_max_ms = 20,
        .notify = &notify,
        .notify_ctx = &told,
    };
    assert_int_equal(taskexec_new(&cfg, &store_ops, f, &queue_ops, f, f->reg, &te), 0);
    taskexec_free(f->te);
    f->te = te;
    enum taskexec_outcome out;
    assert_int_equal(run_task(f, &out), 0);
    assert_int_equal(out, TASKEXEC_SUCCEEDED);
    assert_int_equal(told.n, 2);
    assert_int_equal(ids_parse(TASK_ID, strlen(TASK_ID), &id), 0);
    assert_true(ids_equal(&told.last, &id));
    f->finishes = 0;
    f->finish_rcs[0] = TASKEXEC_OP_STALE;
    f->n_finish_rcs = 1;
    assert_int_equal(run_task(f, &out), 0);
    assert_int_equal(out, TASKEXEC_SKIPPED);
    assert_int_equal(told.n, 3); /* the claim only */
}

static void test_new_rejects(void **state)
{
    struct fake *f = *state;
    struct taskexec *te = NULL;
    struct taskexec_config cfg = {.lease_ms = 0};
    assert_int_equal(taskexec_new(&cfg, &store_ops, f, &queue_ops, f, f->reg, &te),
                     TASKEXEC_EINVAL);
    assert_null(te);
    taskexec_free(NULL);
    assert_string_equal(taskexec_outcome_name(TASKEXEC_DEFERRED), "deferred");
    assert_non_null(taskexec_strerror(TASKEXEC_EAGAIN));
}

/* A finish the database refuses (a value it cannot hold): recorded once more
 * without the values, status kept, instead of retrying the refusal for ever. */
static void test_refused_outcome_recorded_without_values(void **state)
{
    struct fake *f = *state;
    snprintf(f->type, sizeof f->type, "echo");
    f->payload = "{\"big\":1}";
    f->finish_rcs[0] = TASKEXEC_OP_REFUSED;
    f->n_finish_rcs = 1;
    enum taskexec_outcome out = TASKEXEC_DEAD;
    assert_int_equal(run_task(f, &out), TASKEXEC_OK);
    assert_int_equal(out, TASKEXEC_SUCCEEDED);
    assert_string_equal(f->seq, "cff");
    assert_int_equal(f->fin.status, TASK_SUCCEEDED);
    assert_string_equal(f->fin_result, "");
    assert_non_null(strstr(f->fin_error, "refused"));
}

/* --- the handler gate (max_running) ------------------------------------------ */

struct gate {
    atomic_int inside, most, runs;
    atomic_bool release; /* the "hold" handler returns once set */
};

static int hold_handler(void *arg, const struct handler_ctx *ctx, struct handler_out *out)
{
    struct gate *g = arg;
    (void)ctx;
    (void)out;
    int now = atomic_fetch_add(&g->inside, 1) + 1;
    int seen = atomic_load(&g->most);
    while (now > seen && !atomic_compare_exchange_weak(&g->most, &seen, now)) {
    }
    atomic_fetch_add(&g->runs, 1);
    while (!atomic_load(&g->release)) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_sub(&g->inside, 1);
    return HANDLER_OK;
}

/* A thread-safe store for the gate tests: every claim gets a "hold" task. */
static int gate_claim(void *ctx, const struct ids_id *id, const char *worker_id, int lease_ms,
                      struct task *ret_task, enum taskexec_claim *ret_claim)
{
    (void)ctx;
    (void)worker_id;
    (void)lease_ms;
    struct task t;
    memset(&t, 0, sizeof t);
    t.id = *id;
    snprintf(t.type, sizeof t.type, "hold");
    t.status = TASK_RUNNING;
    t.attempts = 1;
    t.max_attempts = 3;
    t.payload = strdup("{}");
    assert_non_null(t.payload);
    *ret_task = t;
    *ret_claim = TASKEXEC_CLAIMED;
    return TASKEXEC_OP_OK;
}

static int gate_finish(void *ctx, const struct ids_id *id, int attempt,
                       const struct taskexec_finish *fin)
{
    (void)ctx;
    (void)id;
    (void)attempt;
    (void)fin;
    return TASKEXEC_OP_OK;
}

static atomic_int extends;
static atomic_int extend_rc; /* what gate_extend answers */

static int gate_extend(void *ctx, const struct ids_id *id, int attempt, int lease_ms)
{
    (void)ctx;
    (void)id;
    (void)attempt;
    (void)lease_ms;
    atomic_fetch_add(&extends, 1);
    return atomic_load(&extend_rc);
}

static const struct taskexec_store_ops gate_store_ops = {gate_claim, gate_finish, gate_extend};

struct gate_run {
    struct taskexec *te;
    atomic_bool cancel;
    int rc;
};

static void *gate_thread(void *arg)
{
    struct gate_run *g = arg;
    const char *value = "{\"id\":\"" TASK_ID "\",\"type\":\"hold\"}";
    struct taskexec_msg m = {.topic = "t", .value = value, .len = strlen(value)};
    enum taskexec_outcome out;
    g->rc = taskexec_run(g->te, &m, &g->cancel, &out);
    return NULL;
}

static struct taskexec *gate_exec(struct gate *g, struct handler_registry **ret_reg)
{
    struct handler_registry *reg = NULL;
    assert_int_equal(handler_registry_new(&reg), 0);
    assert_int_equal(handler_register(reg, "hold", hold_handler, g), 0);
    struct taskexec_config cfg = {.worker_id = "w-1",
                                  .lease_ms = 30000,
                                  .dep_retry_max_ms = 20,
                                  .max_running = 1,
                                  .extend_after_ms = 10};
    struct taskexec *te = NULL;
    assert_int_equal(taskexec_new(&cfg, &gate_store_ops, NULL, &queue_ops, NULL, reg, &te), 0);
    *ret_reg = reg;
    return te;
}

static void wait_inside(struct gate *g, int n)
{
    while (atomic_load(&g->inside) != n) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* max_running 1, three threads: one handler at a time, all three run. */
static void test_gate_one_at_a_time(void **state)
{
    (void)state;
    struct gate g = {0};
    struct handler_registry *reg;
    struct taskexec *te = gate_exec(&g, &reg);
    struct gate_run runs[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        runs[i].te = te;
        atomic_init(&runs[i].cancel, false);
        runs[i].rc = -99;
        assert_int_equal(pthread_create(&t[i], NULL, gate_thread, &runs[i]), 0);
    }
    wait_inside(&g, 1);
    atomic_store(&g.release, true);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(runs[i].rc, TASKEXEC_OK);
    }
    assert_int_equal(atomic_load(&g.runs), 3);
    assert_int_equal(atomic_load(&g.most), 1);
    taskexec_free(te);
    handler_registry_free(reg);
}

/* Waiting at the gate when the drain cancels: the attempt is handed back, the
 * handler never runs. */
static void test_gate_cancel_hands_back(void **state)
{
    (void)state;
    struct gate g = {0};
    struct handler_registry *reg;
    struct taskexec *te = gate_exec(&g, &reg);
    struct gate_run first = {.te = te, .rc = -99};
    atomic_init(&first.cancel, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, gate_thread, &first), 0);
    wait_inside(&g, 1); /* the one slot is taken */
    struct gate_run second = {.te = te, .rc = -99};
    atomic_init(&second.cancel, true);
    gate_thread(&second);
    assert_int_equal(second.rc, TASKEXEC_EHANDBACK);
    assert_int_equal(atomic_load(&g.runs), 1);
    atomic_store(&g.release, true);
    pthread_join(t, NULL);
    assert_int_equal(first.rc, TASKEXEC_OK);
    taskexec_free(te);
    handler_registry_free(reg);
}

/* A claimed task that waited for its slot longer than extend_after_ms has its lease
 * renewed before it runs; one whose attempt moved on meanwhile is not run. */
static void run_behind_holder(struct gate *g, struct taskexec *te, struct gate_run *second)
{
    struct gate_run first = {.te = te, .rc = -99};
    atomic_init(&first.cancel, false);
    pthread_t t1, t2;
    assert_int_equal(pthread_create(&t1, NULL, gate_thread, &first), 0);
    wait_inside(g, 1);
    assert_int_equal(pthread_create(&t2, NULL, gate_thread, second), 0);
    /* the second waits at the gate: give it more than extend_after_ms there */
    struct timespec ts = {0, 50 * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store(&g->release, true);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    assert_int_equal(first.rc, TASKEXEC_OK);
}

static void test_gate_wait_renews_lease(void **state)
{
    (void)state;
    struct gate g = {0};
    struct handler_registry *reg;
    struct taskexec *te = gate_exec(&g, &reg);
    atomic_store(&extends, 0);
    atomic_store(&extend_rc, TASKEXEC_OP_OK);
    struct gate_run second = {.te = te, .rc = -99};
    atomic_init(&second.cancel, false);
    run_behind_holder(&g, te, &second);
    assert_int_equal(second.rc, TASKEXEC_OK);
    assert_int_equal(atomic_load(&extends), 1); /* the waiter only */
    assert_int_equal(atomic_load(&g.runs), 2);
    taskexec_free(te);
    handler_registry_free(reg);
}

static void test_gate_wait_superseded_is_not_run(void **state)
{
    (void)state;
    struct gate g = {0};
    struct handler_registry *reg;
    struct taskexec *te = gate_exec(&g, &reg);
    atomic_store(&extends, 0);
    atomic_store(&extend_rc, TASKEXEC_OP_STALE);
    struct gate_run second = {.te = te, .rc = -99};
    atomic_init(&second.cancel, false);
    run_behind_holder(&g, te, &second);
    assert_int_equal(second.rc, TASKEXEC_OK); /* done: the newer attempt owns it */
    assert_int_equal(atomic_load(&extends), 1);
    assert_int_equal(atomic_load(&g.runs), 1); /* its handler never ran */
    taskexec_free(te);
    handler_registry_free(reg);
}

int main(void)
{
    log_init(LOG_LEVEL_ERROR + 1, "test");
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_success),
        T(test_success_stale),
        T(test_notify),
        T(test_retry),
        T(test_retry_fenced),
        T(test_exhausted),
        T(test_permanent),
        T(test_unknown_type),
        T(test_timeout_retries),
        T(test_skips),
        T(test_leased_deferred),
        T(test_malformed),
        T(test_store_outage_recovers),
        T(test_outage_with_cancel_gives_up),
        T(test_publish_outage),
        T(test_hand_back),
        T(test_new_rejects),
        T(test_run_at_future_is_scheduled),
        T(test_run_at_far_future_hops),
        T(test_run_at_due_runs),
        T(test_run_at_delayed_once_is_due),
        T(test_run_at_publish_outage_with_cancel),
        T(test_metrics),
        T(test_refused_outcome_recorded_without_values),
        cmocka_unit_test(test_gate_one_at_a_time),
        cmocka_unit_test(test_gate_cancel_hands_back),
        cmocka_unit_test(test_gate_wait_renews_lease),
        cmocka_unit_test(test_gate_wait_superseded_is_not_run),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
