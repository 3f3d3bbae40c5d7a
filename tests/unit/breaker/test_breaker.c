/* Unit tests for pkg/breaker on a fake clock: the threshold of consecutive failures,
 * the open interval, one probe in half-open, the probe's verdict, a lost probe, and
 * the change callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "breaker/breaker.h"

struct env {
    int64_t now;
    int changes;
    enum breaker_state last_from, last_to;
};

static int64_t fake_now(void *ctx)
{
    return ((struct env *)ctx)->now;
}

static void on_change(void *ctx, enum breaker_state from, enum breaker_state to)
{
    struct env *e = ctx;
    e->changes++;
    e->last_from = from;
    e->last_to = to;
}

static struct breaker *make(struct env *e, int threshold, int64_t open_ms)
{
    struct breaker_config cfg = {threshold, open_ms, fake_now, e, on_change, e};
    struct breaker *b = NULL;
    assert_int_equal(breaker_new(&cfg, &b), 0);
    return b;
}

static void test_opens_after_threshold_consecutive_failures(void **state)
{
    struct env e = {.now = 1000};
    struct breaker *b = make(&e, 3, 500);
    (void)state;
    assert_int_equal(breaker_state(b), BREAKER_CLOSED);
    for (int i = 0; i < 2; i++) {
        assert_true(breaker_allow(b));
        breaker_failure(b);
    }
    /* a success in between resets the count */
    assert_true(breaker_allow(b));
    breaker_success(b);
    for (int i = 0; i < 2; i++) {
        assert_true(breaker_allow(b));
        breaker_failure(b);
    }
    assert_int_equal(breaker_state(b), BREAKER_CLOSED);
    assert_true(breaker_allow(b));
    breaker_failure(b);
    assert_int_equal(breaker_state(b), BREAKER_OPEN);
    assert_int_equal(e.changes, 1);
    assert_int_equal(e.last_to, BREAKER_OPEN);
    /* open: refused at once for the whole interval */
    assert_false(breaker_allow(b));
    e.now += 499;
    assert_false(breaker_allow(b));
    breaker_free(b);
}

static void test_half_open_probe_closes_on_success(void **state)
{
    struct env e = {.now = 0};
    struct breaker *b = make(&e, 1, 100);
    (void)state;
    breaker_failure(b);
    assert_int_equal(breaker_state(b), BREAKER_OPEN);
    e.now = 100;
    assert_true(breaker_allow(b)); /* the probe */
    assert_int_equal(breaker_state(b), BREAKER_HALF_OPEN);
    assert_false(breaker_allow(b)); /* one at a time */
    breaker_success(b);
    assert_int_equal(breaker_state(b), BREAKER_CLOSED);
    assert_int_equal(e.last_from, BREAKER_HALF_OPEN);
    assert_int_equal(e.last_to, BREAKER_CLOSED);
    assert_true(breaker_allow(b));
    assert_true(breaker_allow(b));
    assert_int_equal(e.changes, 3);
    breaker_free(b);
}

static void test_half_open_probe_failure_reopens(void **state)
{
    struct env e = {.now = 0};
    struct breaker *b = make(&e, 2, 100);
    (void)state;
    breaker_failure(b);
    breaker_failure(b);
    e.now = 150;
    assert_true(breaker_allow(b));
    breaker_failure(b);
    assert_int_equal(breaker_state(b), BREAKER_OPEN);
    /* the new interval starts at the probe's failure */
    e.now = 249;
    assert_false(breaker_allow(b));
    e.now = 250;
    assert_true(breaker_allow(b));
    breaker_success(b);
    assert_int_equal(breaker_state(b), BREAKER_CLOSED);
    /* closed again: the count starts from zero */
    breaker_failure(b);
    assert_int_equal(breaker_state(b), BREAKER_CLOSED);
    breaker_free(b);
}

static void test_lost_probe_is_given_up(void **state)
{
    struct env e = {.now = 0};
    struct breaker *b = make(&e, 1, 100);
    (void)state;
    breaker_failure(b);
    e.now = 100;
    assert_true(breaker_allow(b)); /* a probe that never reports */
    e.now = 199;
    assert_false(breaker_allow(b));
    e.now = 200;
    assert_true(breaker_allow(b));
    breaker_success(b);
    assert_int_equal(breaker_state(b), BREAKER_CLOSED);
    breaker_free(b);
}

static void test_late_reports_while_open_change_nothing(void **state)
{
    struct env e = {.now = 0};
    struct breaker *b = make(&e, 1, 100);
    (void)state;
    breaker_failure(b);
    breaker_success(b); /* a call let through before it opened */
    breaker_failure(b);
    assert_int_equal(breaker_state(b), BREAKER_OPEN);
    e.now = 99;
    assert_false(breaker_allow(b));
    assert_int_equal(e.changes, 1);
    breaker_free(b);
}

static void test_config_and_names(void **state)
{
    struct breaker_config bad = {0, 100, NULL, NULL, NULL, NULL};
    struct breaker *b = NULL;
    (void)state;
    assert_int_equal(breaker_new(&bad, &b), -1);
    bad.failure_threshold = 1;
    bad.open_ms = 0;
    assert_int_equal(breaker_new(&bad, &b), -1);
    assert_null(b);
    /* the real clock */
    bad.open_ms = 10;
    assert_int_equal(breaker_new(&bad, &b), 0);
    assert_true(breaker_allow(b));
    breaker_free(b);
    breaker_free(NULL);
    assert_string_equal(breaker_state_name(BREAKER_CLOSED), "closed");
    assert_string_equal(breaker_state_name(BREAKER_OPEN), "open");
    assert_string_equal(breaker_state_name(BREAKER_HALF_OPEN), "half-open");
}

/* would_allow asks without moving anything: the probe's place stays free. */
static void test_would_allow_peeks_and_says_when(void **state)
{
    struct env e = {.now = 1000};
    struct breaker *b = make(&e, 1, 500);
    int64_t retry = -1;
    (void)state;
    assert_true(breaker_would_allow(b, &retry));
    assert_int_equal(retry, -1); /* untouched when it would allow */
    breaker_failure(b);
    e.now += 200;
    assert_false(breaker_would_allow(b, &retry));
    assert_int_equal(retry, 300);
    assert_int_equal(breaker_state(b), BREAKER_OPEN);
    e.now += 300;
    /* due: a peek says yes but takes nothing; the real call is the probe */
    assert_true(breaker_would_allow(b, NULL));
    assert_int_equal(breaker_state(b), BREAKER_OPEN);
    assert_true(breaker_allow(b));
    assert_int_equal(breaker_state(b), BREAKER_HALF_OPEN);
    /* the probe is out: others are refused until it reports or is given up */
    e.now += 100;
    assert_false(breaker_would_allow(b, &retry));
    assert_int_equal(retry, 400);
    breaker_success(b);
    assert_true(breaker_would_allow(b, NULL));
    breaker_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_after_threshold_consecutive_failures),
        cmocka_unit_test(test_half_open_probe_closes_on_success),
        cmocka_unit_test(test_half_open_probe_failure_reopens),
        cmocka_unit_test(test_lost_probe_is_given_up),
        cmocka_unit_test(test_late_reports_while_open_change_nothing),
        cmocka_unit_test(test_config_and_names),
        cmocka_unit_test(test_would_allow_peeks_and_says_when),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
