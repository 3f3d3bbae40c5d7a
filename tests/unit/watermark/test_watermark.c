/* Unit tests for pkg/watermark: the stored offset is the contiguous watermark of
 * finished offsets, whatever order they finish in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "watermark/watermark.h"

static int setup(void **state)
{
    struct watermark *w = NULL;
    if (watermark_new(&w) != WATERMARK_OK) {
        return -1;
    }
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    watermark_free(*state);
    return 0;
}

static void test_in_order(void **state)
{
    struct watermark *w = *state;
    int64_t next = -7;
    assert_false(watermark_take(w, &next));
    assert_int_equal(next, -7); /* untouched when nothing moved */
    for (int64_t o = 10; o < 13; o++) {
        assert_int_equal(watermark_add(w, o), WATERMARK_OK);
    }
    assert_int_equal(watermark_done(w, 10), WATERMARK_OK);
    assert_true(watermark_take(w, &next));
    assert_int_equal(next, 11);
    assert_false(watermark_take(w, &next));
    assert_int_equal(watermark_done(w, 11), WATERMARK_OK);
    assert_int_equal(watermark_done(w, 12), WATERMARK_OK);
    assert_true(watermark_take(w, &next));
    assert_int_equal(next, 13);
    assert_int_equal(watermark_pending(w), 0);
}

static void test_out_of_order(void **state)
{
    struct watermark *w = *state;
    int64_t next = 0;
    for (int64_t o = 0; o < 5; o++) {
        assert_int_equal(watermark_add(w, o), WATERMARK_OK);
    }
    assert_int_equal(watermark_done(w, 3), WATERMARK_OK);
    assert_int_equal(watermark_done(w, 1), WATERMARK_OK);
    assert_int_equal(watermark_done(w, 4), WATERMARK_OK);
    assert_false(watermark_take(w, &next)); /* 0 still running: nothing to store */
    assert_int_equal(watermark_inflight(w), 2);
    assert_int_equal(watermark_done(w, 0), WATERMARK_OK);
    assert_true(watermark_take(w, &next));
    assert_int_equal(next, 2); /* 2 is not done: stop before it */
    assert_int_equal(watermark_done(w, 2), WATERMARK_OK);
    assert_true(watermark_take(w, &next));
    assert_int_equal(next, 5);
}

static void test_gaps(void **state)
{
    /* compacted offsets or transaction markers never arrive: they are not waited for */
    struct watermark *w = *state;
    int64_t next = 0;
    assert_int_equal(watermark_add(w, 5), WATERMARK_OK);
    assert_int_equal(watermark_add(w, 9), WATERMARK_OK);
    assert_int_equal(watermark_done(w, 9), WATERMARK_OK);
    assert_false(watermark_take(w, &next));
    assert_int_equal(watermark_done(w, 5), WATERMARK_OK);
    assert_true(watermark_take(w, &next));
    assert_int_equal(next, 10);
}

static void test_duplicates_and_unknown(void **state)
{
    struct watermark *w = *state;
    assert_int_equal(watermark_add(w, 3), WATERMARK_OK);
    assert_int_equal(watermark_add(w, 3), WATERMARK_EORDER);
    assert_int_equal(watermark_add(w, 2), WATERMARK_EORDER);
    assert_int_equal(watermark_add(w, -1), WATERMARK_EORDER);
    assert_int_equal(watermark_done(w, 4), WATERMARK_ENOTFOUND);
    assert_int_equal(watermark_done(w, 3), WATERMARK_OK);
    assert_int_equal(watermark_done(w, 3), WATERMARK_ENOTFOUND); /* below the mark now */
    assert_int_equal(watermark_add(w, 3), WATERMARK_EORDER);     /* redelivered: dropped */
}

static void test_done_twice_in_flight(void **state)
{
    struct watermark *w = *state;
    assert_int_equal(watermark_add(w, 0), WATERMARK_OK);
    assert_int_equal(watermark_add(w, 1), WATERMARK_OK);
    assert_int_equal(watermark_done(w, 1), WATERMARK_OK);
    assert_int_equal(watermark_done(w, 1), WATERMARK_ENOTFOUND);
    assert_int_equal(watermark_inflight(w), 1);
}

/* Many offsets finishing in a shuffled order, across ring growth and wrap-around. */
static void test_shuffled_many(void **state)
{
    struct watermark *w = *state;
    enum { N = 5000, WINDOW = 300 };
    int64_t *order = malloc(N * sizeof *order);
    assert_non_null(order);
    for (int64_t i = 0; i < N; i++) {
        order[i] = i;
    }
    srand(42);
    /* shuffle within windows: like a pool finishing out of order */
    for (int base = 0; base < N; base += WINDOW) {
        int n = base + WINDOW <= N ? WINDOW : N - base;
        for (int i = n - 1; i > 0; i--) {
            int j = rand() % (i + 1);
            int64_t t = order[base + i];
            order[base + i] = order[base + j];
            order[base + j] = t;
        }
    }
    int64_t added = 0, stored = 0, next = 0;
    for (int i = 0; i < N; i++) {
        while (added <= order[i]) {
            assert_int_equal(watermark_add(w, added * 2), WATERMARK_OK); /* even offsets */
            added++;
        }
        assert_int_equal(watermark_done(w, order[i] * 2), WATERMARK_OK);
        if (watermark_take(w, &next)) {
            assert_true(next > stored);
            stored = next;
        }
        /* invariant: everything below the stored watermark is done */
        for (int64_t o = 0; o * 2 < stored && i % 500 == 0; o++) {
            int found = 0;
            for (int k = 0; k <= i && !found; k++) {
                found = order[k] == o;
            }
            assert_true(found);
        }
    }
    assert_int_equal(stored, (N - 1) * 2 + 1);
    assert_int_equal(watermark_pending(w), 0);
    free(order);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_and_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_twice_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shuffled_many, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
