/* Unit tests for pkg/jobpool: every job run once and handed back, running jobs
 * counted and canceled by match, queued ones taken out by match, a stop that
 * times out while a job runs and succeeds once it ends, a wait for the queue to go
 * down to a low mark. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobpool/jobpool.h"

struct job {
    struct jobpool_job pj; /* first */
    int tag;
    bool block; /* waits until canceled or released */
    atomic_int runs;
};

struct ctx {
    atomic_bool release;
    atomic_int started;
};

static void nap(void)
{
    struct timespec ts = {0, 1000000L};
    nanosleep(&ts, NULL);
}

static void run(void *arg, struct jobpool_job *pj)
{
    struct ctx *c = arg;
    struct job *j = (struct job *)pj;
    atomic_fetch_add(&c->started, 1);
    atomic_fetch_add(&j->runs, 1);
    while (j->block && !atomic_load(&pj->cancel) && !atomic_load(&c->release)) {
        nap();
    }
}

static size_t count(struct jobpool_job *list)
{
    size_t n = 0;
    for (; list != NULL; list = list->next) {
        n++;
    }
    return n;
}

/* Takes done jobs until n were seen. */
static void collect(struct jobpool *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        jobpool_wait_done(p, 100);
        got += count(jobpool_take_done(p));
    }
    assert_int_equal(got, n);
}

static void test_every_job_once(void **state)
{
    (void)state;
    struct ctx c = {0};
    struct jobpool *p = NULL;
    enum { N = 200 };
    struct job *jobs = calloc(N, sizeof *jobs);
    assert_non_null(jobs);
    assert_int_equal(jobpool_new(4, run, &c, &p), 0);
    for (int i = 0; i < N; i++) {
        jobs[i].tag = i;
        jobpool_push(p, &jobs[i].pj);
    }
    collect(p, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&jobs[i].runs), 1);
    }
    assert_int_equal(jobpool_queued(p), 0);
    assert_true(jobpool_stop(p, 5000));
    jobpool_free(p);
    free(jobs);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct jobpool *p = NULL;
    assert_int_equal(jobpool_new(0, run, NULL, &p), -1);
    assert_int_equal(jobpool_new(1, NULL, NULL, &p), -1);
    assert_null(p);
    jobpool_free(NULL);
}

static bool is_even(void *arg, const struct jobpool_job *pj)
{
    (void)arg;
    return ((const struct job *)pj)->tag % 2 == 0;
}

static bool has_tag(void *arg, const struct jobpool_job *pj)
{
    return ((const struct job *)pj)->tag == *(const int *)arg;
}

/* One thread held by a blocking job: the queue holds the rest; match picks. */
static void test_running_cancel_and_remove(void **state)
{
    (void)state;
    struct ctx c = {0};
    struct jobpool *p = NULL;
    struct job blocker = {.tag = 7, .block = true};
    struct job q[4];
    memset(q, 0, sizeof q);
    assert_int_equal(jobpool_new(1, run, &c, &p), 0);
    jobpool_push(p, &blocker.pj);
    while (atomic_load(&c.started) == 0) {
        nap();
    }
    for (int i = 0; i < 4; i++) {
        q[i].tag = i;
        jobpool_push(p, &q[i].pj);
    }
    assert_int_equal(jobpool_queued(p), 4);
    int seven = 7, eight = 8;
    assert_int_equal(jobpool_running(p, NULL, NULL), 1);
    assert_int_equal(jobpool_running(p, has_tag, &seven), 1);
    assert_int_equal(jobpool_running(p, has_tag, &eight), 0);

    struct jobpool_job *out = jobpool_remove_queued(p, is_even, NULL);
    assert_int_equal(count(out), 2);
    for (struct jobpool_job *j = out; j != NULL; j = j->next) {
        assert_int_equal(((struct job *)j)->tag % 2, 0);
    }
    assert_int_equal(jobpool_queued(p), 2);

    jobpool_cancel(p, has_tag, &eight); /* matches nothing: still blocked */
    assert_int_equal(jobpool_running(p, NULL, NULL), 1);
    assert_false(atomic_load(&blocker.pj.cancel));
    jobpool_cancel(p, has_tag, &seven);
    collect(p, 3); /* the blocker and the two odd ones */
    assert_int_equal(atomic_load(&q[0].runs), 0);
    assert_int_equal(atomic_load(&q[1].runs), 1);
    assert_int_equal(atomic_load(&q[3].runs), 1);
    assert_true(jobpool_stop(p, 5000));
    jobpool_free(p);
}

/* A stop while a job runs times out (the pool must then stay); once the job ends
 * the next stop joins everything. */
static void test_stop_waits_for_running(void **state)
{
    (void)state;
    struct ctx c = {0};
    struct jobpool *p = NULL;
    struct job blocker = {.tag = 1, .block = true};
    assert_int_equal(jobpool_new(2, run, &c, &p), 0);
    jobpool_push(p, &blocker.pj);
    while (atomic_load(&c.started) == 0) {
        nap();
    }
    assert_false(jobpool_stop(p, 20));
    atomic_store(&c.release, true);
    assert_true(jobpool_stop(p, 5000));
    assert_int_equal(count(jobpool_take_done(p)), 1);
    jobpool_free(p);
}

/* One thread blocked on a job, 10 queued behind it: the low-mark wait times out while
 * nothing moves, and returns once released threads took the queue down to the mark. */
static void test_wait_queued(void **state)
{
    (void)state;
    struct ctx c = {0};
    struct jobpool *p = NULL;
    enum { N = 11 };
    struct job jobs[N];
    memset(jobs, 0, sizeof jobs);
    assert_int_equal(jobpool_new(1, run, &c, &p), 0);
    for (int i = 0; i < N; i++) {
        jobs[i].block = true;
        jobpool_push(p, &jobs[i].pj);
    }
    while (atomic_load(&c.started) == 0) {
        nap();
    }
    assert_int_equal(jobpool_wait_queued(p, 5, 20), N - 1); /* nothing moved: timed out */
    assert_int_equal(jobpool_wait_queued(p, N, 0), N - 1);  /* already at or below */
    atomic_store(&c.release, true);
    size_t left = jobpool_wait_queued(p, 5, 5000);
    assert_true(left <= 5);
    collect(p, N);
    assert_int_equal(jobpool_wait_queued(p, 0, 5000), 0);
    assert_true(jobpool_stop(p, 1000));
    jobpool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_job_once),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_running_cancel_and_remove),
        cmocka_unit_test(test_stop_waits_for_running),
        cmocka_unit_test(test_wait_queued),
    };
    return cmocka_run_group_tests_name("jobpool", tests, NULL, NULL);
}
