/* Unit tests for pkg/backoff: the ceiling doubles up to the cap, never overflows, and
 * full jitter stays within [0, ceiling]. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>

#include "backoff/backoff.h"

static void test_ceiling_doubles_to_cap(void **state)
{
    (void)state;
    struct backoff_policy p = {.base_ms = 100, .cap_ms = 1000};
    assert_int_equal(backoff_ceiling_ms(&p, 0), 100);
    assert_int_equal(backoff_ceiling_ms(&p, 1), 100);
    assert_int_equal(backoff_ceiling_ms(&p, 2), 200);
    assert_int_equal(backoff_ceiling_ms(&p, 3), 400);
    assert_int_equal(backoff_ceiling_ms(&p, 4), 800);
    assert_int_equal(backoff_ceiling_ms(&p, 5), 1000);
    assert_int_equal(backoff_ceiling_ms(&p, 100), 1000);
}

static void test_ceiling_no_overflow(void **state)
{
    (void)state;
    struct backoff_policy p = {.base_ms = INT64_MAX / 4, .cap_ms = INT64_MAX};
    assert_true(backoff_ceiling_ms(&p, INT_MAX) > 0);
    assert_int_equal(backoff_ceiling_ms(&p, INT_MAX), INT64_MAX);
    struct backoff_policy q = {.base_ms = 5000, .cap_ms = 1000};
    assert_int_equal(backoff_ceiling_ms(&q, 1), 1000); /* base above cap: cap wins */
}

static void test_disabled(void **state)
{
    (void)state;
    struct backoff_policy p = {.base_ms = 0, .cap_ms = 1000};
    assert_int_equal(backoff_ceiling_ms(&p, 3), 0);
    assert_int_equal(backoff_full_jitter_ms(&p, 3, 12345), 0);
}

static void test_full_jitter_bounds(void **state)
{
    (void)state;
    struct backoff_policy p = {.base_ms = 100, .cap_ms = 10000};
    assert_int_equal(backoff_full_jitter_ms(&p, 1, 0), 0);
    assert_int_equal(backoff_full_jitter_ms(&p, 1, 100), 100);
    assert_int_equal(backoff_full_jitter_ms(&p, 1, 101), 0);
    assert_int_equal(backoff_full_jitter_ms(&p, 3, UINT64_MAX), (int64_t)(UINT64_MAX % 401));
    for (int attempt = 1; attempt < 20; attempt++) {
        for (int i = 0; i < 200; i++) {
            int64_t d = backoff_full_jitter_ms(&p, attempt, backoff_random());
            assert_true(d >= 0);
            assert_true(d <= backoff_ceiling_ms(&p, attempt));
        }
    }
}

static void test_jitter_spreads(void **state)
{
    (void)state;
    struct backoff_policy p = {.base_ms = 1000, .cap_ms = 1000};
    int low = 0, high = 0;
    for (int i = 0; i < 1000; i++) {
        int64_t d = backoff_full_jitter_ms(&p, 1, backoff_random());
        low += d < 500;
        high += d >= 500;
    }
    /* uniform: both halves well represented (fails with probability ~1e-40) */
    assert_true(low > 300);
    assert_true(high > 300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_doubles_to_cap),
        cmocka_unit_test(test_ceiling_no_overflow),
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_full_jitter_bounds),
        cmocka_unit_test(test_jitter_spreads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
