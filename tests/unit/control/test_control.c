/* control: cancel against a fake store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "control/control.h"

struct fake {
    int rc;
    enum control_cancel outcome;
    enum task_status status; /* of the task handed back */
    struct ids_id seen_id, seen_owner;
};

static int f_cancel(void *ctx, const struct ids_id *id, const struct ids_id *owner,
                    struct task *ret_task, enum control_cancel *ret_outcome)
{
    struct fake *f = ctx;
    f->seen_id = *id;
    f->seen_owner = *owner;
    if (f->rc != 0)
        return f->rc;
    if (f->outcome != CONTROL_CANCEL_NOT_FOUND) {
        memset(ret_task, 0, sizeof *ret_task);
        ret_task->id = *id;
        ret_task->status = f->status;
        ret_task->payload = strdup("{}");
    }
    *ret_outcome = f->outcome;
    return 0;
}

static const struct control_store_ops ops = {f_cancel};

static struct ids_id id_of(int n)
{
    struct ids_id id = {{0}};
    id.b[0] = (uint8_t)n;
    return id;
}

static void test_canceled(void **state)
{
    struct fake f = {.outcome = CONTROL_CANCELED, .status = TASK_CANCELED};
    struct control c = {&ops, &f, NULL, NULL};
    struct ids_id id = id_of(1), owner = id_of(2);
    enum control_cancel outcome = CONTROL_CANCEL_NOT_FOUND;
    struct task t;
    (void)state;
    assert_int_equal(control_cancel(&c, &id, &owner, &t, &outcome), CONTROL_OK);
    assert_int_equal(outcome, CONTROL_CANCELED);
    assert_int_equal(t.status, TASK_CANCELED);
    assert_true(ids_equal(&f.seen_id, &id));
    assert_true(ids_equal(&f.seen_owner, &owner));
    model_task_release(&t);
}

static void test_conflict_hands_back_the_task_as_it_is(void **state)
{
    struct fake f = {.outcome = CONTROL_CANCEL_CONFLICT, .status = TASK_RUNNING};
    struct control c = {&ops, &f, NULL, NULL};
    struct ids_id id = id_of(1), owner = id_of(2);
    enum control_cancel outcome = CONTROL_CANCELED;
    struct task t;
    (void)state;
    assert_int_equal(control_cancel(&c, &id, &owner, &t, &outcome), CONTROL_OK);
    assert_int_equal(outcome, CONTROL_CANCEL_CONFLICT);
    assert_int_equal(t.status, TASK_RUNNING);
    model_task_release(&t);
}

static void test_not_found_leaves_the_task_alone(void **state)
{
    struct fake f = {.outcome = CONTROL_CANCEL_NOT_FOUND};
    struct control c = {&ops, &f, NULL, NULL};
    struct ids_id id = id_of(1), owner = id_of(2);
    enum control_cancel outcome = CONTROL_CANCELED;
    struct task t;
    (void)state;
    memset(&t, 0, sizeof t);
    t.priority = 1234;
    assert_int_equal(control_cancel(&c, &id, &owner, &t, &outcome), CONTROL_OK);
    assert_int_equal(outcome, CONTROL_CANCEL_NOT_FOUND);
    assert_int_equal(t.priority, 1234);
}

static void test_store_failure_and_inconsistent_answer(void **state)
{
    struct fake f = {.rc = -1};
    struct control c = {&ops, &f, NULL, NULL};
    struct ids_id id = id_of(1), owner = id_of(2);
    enum control_cancel outcome = CONTROL_CANCEL_CONFLICT;
    struct task t;
    (void)state;
    assert_int_equal(control_cancel(&c, &id, &owner, &t, &outcome), CONTROL_EUNAVAILABLE);
    assert_int_equal(outcome, CONTROL_CANCEL_CONFLICT); /* untouched */
    /* "canceled" with a task that is not: a store bug, not a success */
    f.rc = 0;
    f.outcome = CONTROL_CANCELED;
    f.status = TASK_QUEUED;
    assert_int_equal(control_cancel(&c, &id, &owner, &t, &outcome), CONTROL_EUNAVAILABLE);
    assert_int_equal(outcome, CONTROL_CANCEL_CONFLICT);
}

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

static const struct control_notify_ops notify = {on_changed};

/* Only a cancel that changed the row is told of (the caches then drop the task). */
static void test_notify_after_a_cancel_only(void **state)
{
    struct fake f = {.outcome = CONTROL_CANCELED, .status = TASK_CANCELED};
    struct told told = {0};
    struct control c = {&ops, &f, &notify, &told};
    struct ids_id id = id_of(1), owner = id_of(2);
    enum control_cancel outcome;
    struct task t;
    (void)state;
    assert_int_equal(control_cancel(&c, &id, &owner, &t, &outcome), CONTROL_OK);
    model_task_release(&t);
    assert_int_equal(told.n, 1);
    assert_true(ids_equal(&told.last, &id));
    f.outcome = CONTROL_CANCEL_CONFLICT;
    f.status = TASK_RUNNING;
    assert_int_equal(control_cancel(&c, &id, &owner, &t, &outcome), CONTROL_OK);
    model_task_release(&t);
    f.outcome = CONTROL_CANCEL_NOT_FOUND;
    assert_int_equal(control_cancel(&c, &id, &owner, &t, &outcome), CONTROL_OK);
    f.rc = -1;
    assert_int_equal(control_cancel(&c, &id, &owner, &t, &outcome), CONTROL_EUNAVAILABLE);
    assert_int_equal(told.n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_after_a_cancel_only),
        cmocka_unit_test(test_canceled),
        cmocka_unit_test(test_conflict_hands_back_the_task_as_it_is),
        cmocka_unit_test(test_not_found_leaves_the_task_alone),
        cmocka_unit_test(test_store_failure_and_inconsistent_answer),
    };
    return cmocka_run_group_tests_name("control", tests, NULL, NULL);
}
