/* Unit tests for pkg/tokenbucket on a clock driven by hand: a full start, refill at the
 * rate and no further than the burst, the wait until tokens come, charges that go
 * below zero, a clock that goes back, the admitted count over a long run, and the text
 * form of a policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tokenbucket/tokenbucket.h"

#define S 1000000LL /* a second in microseconds */

static void test_starts_full_and_empties(void **state)
{
    struct tokenbucket b;
    (void)state;
    tokenbucket_init(&b, 10, 5, 0);
    for (int i = 0; i < 5; i++)
        assert_true(tokenbucket_take(&b, 1, 0));
    assert_false(tokenbucket_take(&b, 1, 0));
    assert_false(tokenbucket_take(&b, 1, 99999)); /* 0.99 of a token after 99.999 ms */
    assert_true(tokenbucket_take(&b, 1, 100000)); /* one token per 100 ms */
    assert_false(tokenbucket_take(&b, 1, 100000));
}

static void test_refill_stops_at_the_burst(void **state)
{
    struct tokenbucket b;
    (void)state;
    tokenbucket_init(&b, 100, 3, 0);
    assert_true(tokenbucket_take(&b, 3, 0));
    assert_true(tokenbucket_tokens(&b, 3600 * S) <= 3.0);
    assert_true(tokenbucket_take(&b, 3, 3600 * S));
    assert_false(tokenbucket_take(&b, 1, 3600 * S));
}

static void test_a_failed_take_takes_nothing(void **state)
{
    struct tokenbucket b;
    (void)state;
    tokenbucket_init(&b, 1, 2, 0);
    assert_false(tokenbucket_take(&b, 3, 0));
    assert_true(tokenbucket_take(&b, 2, 0));
}

static void test_wait_until_tokens(void **state)
{
    struct tokenbucket b;
    (void)state;
    tokenbucket_init(&b, 4, 4, 0);
    assert_int_equal(tokenbucket_wait_us(&b, 1, 0), 0);
    assert_true(tokenbucket_take(&b, 4, 0));
    assert_int_equal(tokenbucket_wait_us(&b, 1, 0), 250000);
    assert_int_equal(tokenbucket_wait_us(&b, 2, 0), 500000);
    /* more than the burst waits for the burst, never forever */
    assert_int_equal(tokenbucket_wait_us(&b, 100, 0), 1000000);
    assert_int_equal(tokenbucket_wait_us(&b, 1, 250000), 0);
}

static void test_charge_goes_below_zero_and_is_paid_back(void **state)
{
    struct tokenbucket b;
    (void)state;
    tokenbucket_init(&b, 10, 10, 0);
    tokenbucket_charge(&b, 15, 0);
    assert_true(tokenbucket_tokens(&b, 0) < -4.99 && tokenbucket_tokens(&b, 0) > -5.01);
    assert_false(tokenbucket_take(&b, 1, 500000)); /* at 0 after 0.5 s */
    assert_true(tokenbucket_take(&b, 1, 600000));
    /* the debt is bounded by the burst */
    tokenbucket_charge(&b, 1000, 600000);
    assert_true(tokenbucket_tokens(&b, 600000) >= -10.0);
}

static void test_clock_going_back_refills_nothing(void **state)
{
    struct tokenbucket b;
    (void)state;
    tokenbucket_init(&b, 1, 1, 10 * S);
    assert_true(tokenbucket_take(&b, 1, 10 * S));
    assert_false(tokenbucket_take(&b, 1, 5 * S));
    assert_false(tokenbucket_take(&b, 1, 10 * S + 999999));
    assert_true(tokenbucket_take(&b, 1, 11 * S));
}

/* A flood probing every 100 us for 10 s gets burst + rate * 10 s, exactly. */
static void test_admits_the_rate_over_a_long_run(void **state)
{
    struct tokenbucket b;
    long admitted = 0;
    (void)state;
    tokenbucket_init(&b, 200, 20, 0);
    for (int64_t t = 0; t < 10 * S; t += 100)
        admitted += tokenbucket_take(&b, 1, t);
    assert_true(admitted >= 2019 && admitted <= 2020);
}

static void test_spec_forms(void **state)
{
    struct tokenbucket_spec s;
    (void)state;
    assert_int_equal(tokenbucket_spec_parse("100/1s", &s), 0);
    assert_false(s.off);
    assert_int_equal(s.quota, 100);
    assert_int_equal(s.window_s, 1);
    assert_int_equal(s.burst, 100);
    assert_true(tokenbucket_spec_rate(&s) == 100.0);
    assert_int_equal(tokenbucket_spec_parse("30/m,burst=5", &s), 0);
    assert_int_equal(s.window_s, 60);
    assert_int_equal(s.burst, 5);
    assert_true(tokenbucket_spec_rate(&s) == 0.5);
    assert_int_equal(tokenbucket_spec_parse("1000/2h", &s), 0);
    assert_int_equal(s.window_s, 7200);
    assert_int_equal(tokenbucket_spec_parse("off", &s), 0);
    assert_true(s.off);
    assert_true(tokenbucket_spec_rate(&s) == 0.0);
}

static void test_spec_refusals_leave_the_output_alone(void **state)
{
    static const char *const bad[] = {
        "",
        "100",
        "100/",
        "100/1",
        "0/1s",
        "-1/1s",
        "1/0s",
        "1/1d",
        "1/25h",
        "1/1s,",
        "1/1s,burst=0",
        "1/1s,burst=x",
        "1/1s burst=2",
        "1/1s,burst=2,",
        " 1/1s",
        "1e3/1s",
        "OFF",
        "99999999999/1s",
    };
    struct tokenbucket_spec s = {false, 7, 7, 7};
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tokenbucket_spec_parse(bad[i], &s), -1);
        assert_int_equal(s.quota, 7);
    }
    assert_int_equal(tokenbucket_spec_parse(NULL, &s), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starts_full_and_empties),
        cmocka_unit_test(test_refill_stops_at_the_burst),
        cmocka_unit_test(test_a_failed_take_takes_nothing),
        cmocka_unit_test(test_wait_until_tokens),
        cmocka_unit_test(test_charge_goes_below_zero_and_is_paid_back),
        cmocka_unit_test(test_clock_going_back_refills_nothing),
        cmocka_unit_test(test_admits_the_rate_over_a_long_run),
        cmocka_unit_test(test_spec_forms),
        cmocka_unit_test(test_spec_refusals_leave_the_output_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
