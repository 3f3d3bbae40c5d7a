/* Unit tests for the runner's partition table (internal/runner/parts.h): offsets
 * stored only up to the contiguous done ones, redeliveries refused, a late job of
 * an earlier assignment moving nothing, held records released in due order (FIFO
 * among equals), held items dropped on removal, and pause/resume told to the
 * consumer only for the partitions whose state changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "runner/parts.h"

struct stored {
    int calls;
    char topic[32];
    int32_t partition;
    int64_t next;
};

static void on_store(void *arg, const char *topic, int32_t partition, int64_t next)
{
    struct stored *s = arg;
    s->calls++;
    snprintf(s->topic, sizeof s->topic, "%s", topic);
    s->partition = partition;
    s->next = next;
}

struct dropped {
    int n;
};

static void on_drop(void *arg, struct runner_held *h)
{
    (void)h;
    ((struct dropped *)arg)->n++;
}

struct applied {
    int pauses, resumes; /* calls */
    size_t last_n;
    int fail; /* answer -1 this many times */
};

static int on_apply(void *arg, bool pause, const struct queue_partition *v, size_t n)
{
    struct applied *a = arg;
    (void)v;
    if (a->fail > 0) {
        a->fail--;
        return -1;
    }
    if (pause) {
        a->pauses++;
    } else {
        a->resumes++;
    }
    a->last_n = n;
    return 0;
}

static void test_watermark_and_generations(void **state)
{
    (void)state;
    struct runner_parts *ps = NULL;
    assert_int_equal(runner_parts_new(&ps), RUNNER_PARTS_OK);
    uint64_t gen = 0, gen2 = 0;
    assert_int_equal(runner_parts_track(ps, "t", 0, 5, &gen), RUNNER_PARTS_UNKNOWN);
    assert_int_equal(runner_parts_add(ps, "t", 0, on_drop, NULL), RUNNER_PARTS_OK);
    assert_int_equal(runner_parts_add(ps, "t", 1, on_drop, NULL), RUNNER_PARTS_OK);
    assert_int_equal(runner_parts_count(ps), 2);
    assert_int_equal(runner_parts_track(ps, "t", 0, 10, &gen), RUNNER_PARTS_OK);
    assert_int_equal(runner_parts_track(ps, "t", 0, 11, &gen), RUNNER_PARTS_OK);
    assert_int_equal(runner_parts_track(ps, "t", 0, 11, &gen), RUNNER_PARTS_DUP);
    struct stored st = {0};
    runner_parts_done(ps, "t", 0, gen, 11); /* out of order: 10 still runs */
    runner_parts_moved(ps, on_store, &st);
    assert_int_equal(st.calls, 0);
    runner_parts_done(ps, "t", 0, gen, 10);
    runner_parts_moved(ps, on_store, &st);
    assert_int_equal(st.calls, 1);
    assert_string_equal(st.topic, "t");
    assert_int_equal(st.partition, 0);
    assert_int_equal(st.next, 12);
    runner_parts_moved(ps, on_store, &st);
    assert_int_equal(st.calls, 1); /* nothing moved since */

    /* assigned again: a late job of the earlier assignment moves nothing */
    assert_int_equal(runner_parts_track(ps, "t", 0, 12, &gen), RUNNER_PARTS_OK);
    assert_int_equal(runner_parts_add(ps, "t", 0, on_drop, NULL), RUNNER_PARTS_OK);
    assert_int_equal(runner_parts_count(ps), 2);
    assert_int_equal(runner_parts_track(ps, "t", 0, 12, &gen2), RUNNER_PARTS_OK);
    assert_true(gen2 != gen);
    runner_parts_done(ps, "t", 0, gen, 12);
    runner_parts_moved(ps, on_store, &st);
    assert_int_equal(st.calls, 1);
    runner_parts_done(ps, "t", 0, gen2, 12);
    runner_parts_moved(ps, on_store, &st);
    assert_int_equal(st.calls, 2);
    assert_int_equal(st.next, 13);

    runner_parts_remove(ps, "t", 1, on_drop, NULL);
    assert_int_equal(runner_parts_count(ps), 1);
    assert_int_equal(runner_parts_track(ps, "t", 1, 0, &gen), RUNNER_PARTS_UNKNOWN);
    runner_parts_free(ps, on_drop, NULL);
}

static void test_held_in_due_order(void **state)
{
    (void)state;
    struct runner_parts *ps = NULL;
    assert_int_equal(runner_parts_new(&ps), RUNNER_PARTS_OK);
    assert_int_equal(runner_parts_add(ps, "r", 0, on_drop, NULL), RUNNER_PARTS_OK);
    struct runner_held h[4] = {{.not_before_ms = 300},
                               {.not_before_ms = 100},
                               {.not_before_ms = 300},
                               {.not_before_ms = 200}};
    struct runner_held stray = {.not_before_ms = 1};
    assert_int_equal(runner_parts_hold(ps, "r", 9, &stray), RUNNER_PARTS_UNKNOWN);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(runner_parts_hold(ps, "r", 0, &h[i]), RUNNER_PARTS_OK);
    }
    int64_t next = 0;
    assert_null(runner_parts_take_due(ps, 50, &next));
    assert_int_equal(next, 50);
    struct runner_held *list = runner_parts_take_due(ps, 200, &next);
    assert_ptr_equal(list, &h[1]);
    assert_ptr_equal(list->next, &h[3]);
    assert_null(list->next->next);
    assert_int_equal(next, 100);
    list = runner_parts_take_due(ps, 1000, &next);
    assert_ptr_equal(list, &h[0]); /* FIFO among equals */
    assert_ptr_equal(list->next, &h[2]);
    assert_null(list->next->next);
    assert_int_equal(next, -1);

    /* removal and drop hand held items back */
    struct dropped d = {0};
    assert_int_equal(runner_parts_hold(ps, "r", 0, &h[0]), RUNNER_PARTS_OK);
    assert_int_equal(runner_parts_hold(ps, "r", 0, &h[1]), RUNNER_PARTS_OK);
    runner_parts_drop_held(ps, NULL, 0, on_drop, &d);
    assert_int_equal(d.n, 2);
    assert_null(runner_parts_take_due(ps, 10000, &next));
    assert_int_equal(runner_parts_hold(ps, "r", 0, &h[2]), RUNNER_PARTS_OK);
    runner_parts_remove(ps, "r", 0, on_drop, &d);
    assert_int_equal(d.n, 3);
    assert_int_equal(runner_parts_hold(ps, "r", 0, &h[3]), RUNNER_PARTS_UNKNOWN);
    runner_parts_free(ps, on_drop, &d);
    assert_int_equal(d.n, 3);
}

static void test_pause_reconcile(void **state)
{
    (void)state;
    struct runner_parts *ps = NULL;
    assert_int_equal(runner_parts_new(&ps), RUNNER_PARTS_OK);
    assert_int_equal(runner_parts_add(ps, "t", 0, on_drop, NULL), RUNNER_PARTS_OK);
    assert_int_equal(runner_parts_add(ps, "r", 0, on_drop, NULL), RUNNER_PARTS_OK);
    struct applied a = {0};
    runner_parts_reconcile(ps, false, on_apply, &a); /* first time: told once, resumed */
    assert_int_equal(a.pauses, 0);
    assert_int_equal(a.resumes, 1);
    assert_int_equal(a.last_n, 2);
    runner_parts_reconcile(ps, false, on_apply, &a);
    assert_int_equal(a.resumes, 1); /* nothing changed: nothing told */

    runner_parts_reconcile(ps, true, on_apply, &a); /* backpressure: all paused */
    assert_int_equal(a.pauses, 1);
    assert_int_equal(a.last_n, 2);
    assert_true(runner_parts_paused(ps, "t", 0));
    assert_true(runner_parts_paused(ps, "r", 0));

    /* the retry partition holds RUNNER_PARTS_HELD_MAX records: only it stays paused */
    static struct runner_held h[RUNNER_PARTS_HELD_MAX];
    uint64_t gen;
    for (int i = 0; i < RUNNER_PARTS_HELD_MAX; i++) {
        assert_int_equal(runner_parts_track(ps, "r", 0, i, &gen), RUNNER_PARTS_OK);
        h[i].not_before_ms = 1000;
        assert_int_equal(runner_parts_hold(ps, "r", 0, &h[i]), RUNNER_PARTS_OK);
    }
    a.fail = 1; /* the consumer refuses once: tried again next time */
    runner_parts_reconcile(ps, false, on_apply, &a);
    assert_true(runner_parts_paused(ps, "t", 0));
    runner_parts_reconcile(ps, false, on_apply, &a);
    assert_int_equal(a.resumes, 2);
    assert_int_equal(a.last_n, 1);
    assert_false(runner_parts_paused(ps, "t", 0));
    assert_true(runner_parts_paused(ps, "r", 0));

    int64_t next;
    (void)runner_parts_take_due(ps, 1000, &next); /* all released */
    runner_parts_reconcile(ps, false, on_apply, &a);
    assert_int_equal(a.resumes, 3);
    assert_false(runner_parts_paused(ps, "r", 0));
    assert_false(runner_parts_paused(ps, "x", 3));
    runner_parts_free(ps, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watermark_and_generations),
        cmocka_unit_test(test_held_in_due_order),
        cmocka_unit_test(test_pause_reconcile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
