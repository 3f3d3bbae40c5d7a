/* store — the owner cancels a task that has not started: one guarded UPDATE. */
#include "store/store_int.h"

/* A RUNNING task can become RETRYING between our UPDATE and the read-back; the
 * UPDATE is then tried again, a bounded number of times. */
enum { CANCEL_TRIES = 3 };

static bool cancelable(enum task_status s)
{
    return s == TASK_PENDING || s == TASK_QUEUED || s == TASK_RETRYING;
}

static int read_back(struct store__conn *c, const struct ids_id *id, struct task *ret_task)
{
    MYSQL_STMT *st = store__stmt(c, STMT_TASK_GET);
    int rc;
    if (!st)
        return STORE_EDB;
    rc = store__exec_by_id(st, id);
    if (rc == STORE_OK)
        rc = store__fetch_task(st, ret_task);
    mysql_stmt_free_result(st);
    return rc;
}

/* One try: the guarded UPDATE, then the row as it is.  *ret_again asks for another
 * try (the UPDATE missed a row that is cancelable now). */
static int cancel_once(struct store__conn *c, const struct ids_id *id, const struct ids_id *owner,
                       struct task *ret_task, enum store_cancel *ret_outcome, bool *ret_again)
{
    struct store__params p = {0};
    MYSQL_STMT *st = store__stmt(c, STMT_TASK_CANCEL);
    struct task t;
    bool changed;
    int rc;

    store__p_id(&p, id);
    store__p_id(&p, owner);
    rc = store__p_exec(st, &p, "task cancel");
    if (rc != STORE_OK)
        return rc;
    changed = mysql_stmt_affected_rows(st) == 1;
    rc = read_back(c, id, &t);
    if (rc == STORE_ENOTFOUND) {
        *ret_outcome = STORE_CANCEL_NOT_FOUND;
        *ret_again = false;
        return STORE_OK;
    }
    if (rc != STORE_OK)
        return rc;
    if (!t.has_user || !ids_equal(&t.user_id, owner)) {
        model_task_release(&t);
        *ret_outcome = STORE_CANCEL_NOT_FOUND;
        *ret_again = false;
        return STORE_OK;
    }
    if (!changed && cancelable(t.status)) {
        model_task_release(&t);
        *ret_again = true;
        return STORE_OK;
    }
    *ret_task = t;
    *ret_outcome = changed ? STORE_CANCELED : STORE_CANCEL_REFUSED;
    *ret_again = false;
    return STORE_OK;
}

struct cancel_args {
    const struct ids_id *id;
    const struct ids_id *owner;
    struct task task;
    enum store_cancel outcome;
};

static int cancel_fn(struct store__conn *c, void *arg)
{
    struct cancel_args *a = arg;
    enum store_cancel outcome = STORE_CANCEL_NOT_FOUND;
    struct task t = {0};
    bool again = true;
    int rc = STORE_OK;

    for (int i = 0; i < CANCEL_TRIES && again && rc == STORE_OK; i++)
        rc = cancel_once(c, a->id, a->owner, &t, &outcome, &again);
    if (rc == STORE_OK && again)
        rc = STORE_EDB; /* moved under us every time: report, do not guess */
    if (rc != STORE_OK)
        return rc;
    a->task = t;
    a->outcome = outcome;
    return STORE_OK;
}

int store_task_cancel(struct store *s, const struct ids_id *id, const struct ids_id *owner,
                      struct task *ret_task, enum store_cancel *ret_outcome)
{
    /* in a transaction, so a deadlock with a concurrent claim or the QUEUED marker
     * is retried rather than reported as an outage */
    struct cancel_args a = {.id = id, .owner = owner, .outcome = STORE_CANCEL_NOT_FOUND};
    int rc = store__in_tx(s, cancel_fn, &a);
    if (rc != STORE_OK) {
        if (a.outcome != STORE_CANCEL_NOT_FOUND)
            model_task_release(&a.task);
        return rc;
    }
    if (a.outcome != STORE_CANCEL_NOT_FOUND)
        *ret_task = a.task;
    *ret_outcome = a.outcome;
    return STORE_OK;
}
