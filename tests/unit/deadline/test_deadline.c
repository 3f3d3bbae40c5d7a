/* Unit tests for pkg/deadline: due order on a fake clock (manual mode), exactly one
 * of "taken back" and "ran" per entry, re-arming, and the timer thread running an
 * entry on its own (waited for by polling a flag, never by a timed assertion). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <time.h>

#include "deadline/deadline.h"

struct env {
    int64_t now;
    int order[8];
    int n;
};

struct item {
    struct deadline_entry e;
    struct env *env;
    int tag;
    atomic_int ran;
};

static int64_t fake_now(void *ctx)
{
    return ((struct env *)ctx)->now;
}

static void on_due(void *arg)
{
    struct item *it = arg;
    atomic_fetch_add(&it->ran, 1);
    if (it->env && it->env->n < 8)
        it->env->order[it->env->n++] = it->tag;
}

static struct deadline *manual(struct env *e)
{
    struct deadline_config cfg = {fake_now, e, true};
    struct deadline *d = NULL;
    assert_int_equal(deadline_new(&cfg, &d), 0);
    return d;
}

static void test_runs_in_due_order_only_when_due(void **state)
{
    struct env env = {.now = 100};
    struct deadline *d = manual(&env);
    struct item a = {.env = &env, .tag = 1}, b = {.env = &env, .tag = 2},
                c = {.env = &env, .tag = 3};
    (void)state;
    assert_int_equal(deadline_add(d, &a.e, 300, on_due, &a), 0);
    assert_int_equal(deadline_add(d, &b.e, 200, on_due, &b), 0); /* earlier, armed later */
    assert_int_equal(deadline_add(d, &c.e, 400, on_due, &c), 0);
    assert_int_equal(deadline_run_due(d), 0);
    env.now = 300;
    assert_int_equal(deadline_run_due(d), 2);
    assert_int_equal(env.order[0], 2);
    assert_int_equal(env.order[1], 1);
    assert_int_equal(atomic_load(&c.ran), 0);
    env.now = 1000;
    assert_int_equal(deadline_run_due(d), 1);
    assert_int_equal(env.order[2], 3);
    deadline_free(d);
}

static void test_cancel_xor_run(void **state)
{
    struct env env = {.now = 0};
    struct deadline *d = manual(&env);
    struct item a = {.env = &env, .tag = 1}, b = {.env = &env, .tag = 2};
    (void)state;
    deadline_add(d, &a.e, 10, on_due, &a);
    deadline_add(d, &b.e, 10, on_due, &b);
    assert_true(deadline_cancel(d, &a.e)); /* taken back: never runs */
    assert_false(deadline_cancel(d, &a.e));
    env.now = 10;
    assert_int_equal(deadline_run_due(d), 1);
    assert_int_equal(atomic_load(&a.ran), 0);
    assert_int_equal(atomic_load(&b.ran), 1);
    assert_false(deadline_cancel(d, &b.e)); /* it ran: too late to take back */
    /* an entry that ran (or was taken back) may be armed again */
    assert_int_equal(deadline_add(d, &b.e, 20, on_due, &b), 0);
    assert_int_equal(deadline_add(d, &b.e, 20, on_due, &b), -1); /* armed twice */
    assert_true(deadline_cancel(d, &b.e));
    env.now = 50;
    assert_int_equal(deadline_run_due(d), 0);
    deadline_free(d);
}

static void test_the_thread_runs_a_due_entry(void **state)
{
    struct deadline *d = NULL;
    struct item a = {.tag = 1}, later = {.tag = 2};
    struct timespec ms = {0, 1000000L};
    (void)state;
    assert_int_equal(deadline_new(NULL, &d), 0);
    deadline_add(d, &later.e, deadline_now(d) + 3600 * 1000, on_due, &later);
    /* an earlier entry wakes the thread out of its long wait */
    deadline_add(d, &a.e, deadline_now(d) + 5, on_due, &a);
    for (int i = 0; i < 10000 && atomic_load(&a.ran) == 0; i++)
        nanosleep(&ms, NULL);
    assert_int_equal(atomic_load(&a.ran), 1);
    assert_false(deadline_cancel(d, &a.e));
    assert_true(deadline_cancel(d, &later.e));
    assert_int_equal(atomic_load(&later.ran), 0);
    deadline_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_in_due_order_only_when_due),
        cmocka_unit_test(test_cancel_xor_run),
        cmocka_unit_test(test_the_thread_runs_a_due_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
