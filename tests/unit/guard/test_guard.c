/* Unit tests for internal/guard on a fake clock with a fake check (manual mode: no
 * thread): failures open the breaker, an open breaker refuses at once with a
 * Retry-After, a call that overruns slow_ms counts as a failure when it overruns,
 * the prober's check is the half-open probe that closes it, /readyz's verdict, and a
 * guard that reports a breaker kept elsewhere. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "guard/guard.h"

struct env {
    int64_t now;
    bool healthy;
    int checks;
    int external;
};

static int64_t fake_now(void *ctx)
{
    return ((struct env *)ctx)->now;
}

static bool fake_check(void *ctx)
{
    struct env *e = ctx;
    e->checks++;
    return e->healthy;
}

static int external_state(void *ctx)
{
    return ((struct env *)ctx)->external;
}

static struct guard *make(struct env *e)
{
    struct guard_config cfg = {.name = "mysql",
                               .failure_threshold = 3,
                               .open_ms = 1000,
                               .slow_ms = 2000,
                               .check = fake_check,
                               .check_ctx = e,
                               .check_interval_ms = 1000,
                               .check_timeout_ms = 500,
                               .clock = fake_now,
                               .clock_ctx = e,
                               .manual = true};
    struct guard *g = NULL;
    assert_int_equal(guard_new(&cfg, &g), 0);
    return g;
}

static void fail_calls(struct guard *g, int n)
{
    for (int i = 0; i < n; i++) {
        struct guard_call c;
        assert_true(guard_enter(g, &c));
        guard_leave(g, &c, false);
    }
}

static void test_failures_open_and_refuse_with_retry_after(void **state)
{
    struct env e = {.now = 10000, .healthy = true};
    struct guard *g = make(&e);
    struct guard_call c;
    int retry = 0;
    (void)state;
    assert_false(guard_refuses(g, &retry));
    fail_calls(g, 2);
    assert_int_equal(guard_breaker_state(g), 0);
    fail_calls(g, 1);
    assert_int_equal(guard_breaker_state(g), 1);
    assert_string_equal(guard_breaker_name(g), "open");
    assert_true(guard_refuses(g, &retry));
    assert_int_equal(retry, 1);
    assert_false(guard_enter(g, &c)); /* refused at once: nothing to leave */
    e.now += 1000;
    assert_false(guard_refuses(g, &retry)); /* due: one call may probe */
    assert_true(guard_enter(g, &c));
    assert_int_equal(guard_breaker_state(g), 2);
    assert_true(guard_refuses(g, NULL)); /* the probe is out */
    guard_leave(g, &c, true);
    assert_int_equal(guard_breaker_state(g), 0);
    assert_false(guard_refuses(g, NULL));
    guard_free(g);
}

static void test_a_call_overrunning_slow_ms_counts_when_it_overruns(void **state)
{
    struct env e = {.now = 10000, .healthy = true};
    struct guard *g = make(&e);
    struct guard_call stuck[3];
    (void)state;
    for (int i = 0; i < 3; i++)
        assert_true(guard_enter(g, &stuck[i]));
    e.now += 1999;
    assert_false(guard_refuses(g, NULL));
    e.now += 1;
    /* three calls stuck for the deadline: three failures, without any ending */
    assert_true(guard_refuses(g, NULL));
    assert_int_equal(guard_breaker_state(g), 1);
    /* their late endings, even successes, change nothing */
    for (int i = 0; i < 3; i++)
        guard_leave(g, &stuck[i], true);
    assert_int_equal(guard_breaker_state(g), 1);
    guard_free(g);
}

static void test_the_prober_opens_and_closes_and_says_up(void **state)
{
    struct env e = {.now = 9000, .healthy = true};
    struct guard *g = make(&e);
    (void)state;
    assert_false(guard_up(g)); /* no verdict yet (manual mode) */
    guard_check_now(g);
    assert_true(guard_up(g));
    e.healthy = false;
    e.now = 10000;
    /* quick rechecks after a failure tell /readyz, but count once an interval */
    for (int i = 0; i < 3; i++) {
        guard_check_now(g);
        e.now += 100;
    }
    assert_false(guard_up(g));
    assert_int_equal(guard_breaker_state(g), 0);
    e.now = 11000;
    guard_check_now(g);
    e.now = 12000;
    guard_check_now(g); /* the third counted failure */
    assert_int_equal(guard_breaker_state(g), 1);
    /* back, but the breaker is not due: the check only tells /readyz */
    e.healthy = true;
    e.now = 12500;
    guard_check_now(g);
    assert_true(guard_up(g));
    assert_int_equal(guard_breaker_state(g), 1);
    e.now = 13000;
    guard_check_now(g); /* due: the check is the probe, and it passes */
    assert_int_equal(guard_breaker_state(g), 0);
    assert_int_equal(e.checks, 8);
    guard_free(g);
}

static void test_external_breaker_and_name(void **state)
{
    struct env e = {.now = 0, .external = 1};
    struct guard_config cfg = {.name = "redis", .state_fn = external_state, .state_ctx = &e};
    struct guard *g = NULL;
    struct guard_call c;
    (void)state;
    assert_int_equal(guard_new(&cfg, &g), 0);
    assert_string_equal(guard_name(g), "redis");
    assert_int_equal(guard_breaker_state(g), 1);
    assert_false(guard_up(g)); /* no check: up while its breaker is not open */
    e.external = 0;
    assert_true(guard_up(g));
    assert_false(guard_refuses(g, NULL)); /* not this guard's to refuse */
    assert_true(guard_enter(g, &c));
    guard_leave(g, &c, false);
    guard_free(g);
    cfg.check = fake_check;
    cfg.check_interval_ms = 0;
    assert_int_equal(guard_new(&cfg, &g), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failures_open_and_refuse_with_retry_after),
        cmocka_unit_test(test_a_call_overrunning_slow_ms_counts_when_it_overruns),
        cmocka_unit_test(test_the_prober_opens_and_closes_and_says_up),
        cmocka_unit_test(test_external_breaker_and_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
