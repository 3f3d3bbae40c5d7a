/* store — the worker's side of a task: claim an attempt, finish it (fenced). */
#include "store/store_int.h"

#include <string.h>

/* Why a claim did not match: the row's current status decides. */
static int classify(struct store__conn *c, const struct ids_id *id, enum store_claim *ret)
{
    MYSQL_STMT *st = store__stmt(c, STMT_TASK_STATUS);
    MYSQL_BIND out = {0};
    char status[16] = {0};
    unsigned long len = 0;
    enum task_status ts;
    int rc;

    if (!st)
        return STORE_EDB;
    rc = store__exec_by_id(st, id);
    if (rc != STORE_OK)
        return rc;
    out.buffer_type = MYSQL_TYPE_STRING;
    out.buffer = status;
    out.buffer_length = sizeof status;
    out.length = &len;
    if (mysql_stmt_bind_result(st, &out) != 0) {
        rc = store__stmt_error(st, "bind status");
        goto out_free;
    }
    rc = mysql_stmt_fetch(st);
    if (rc == MYSQL_NO_DATA) {
        *ret = STORE_CLAIM_NOT_FOUND;
        rc = STORE_OK;
    } else if (rc == 0 && model_status_parse(status, &ts) == 0) {
        *ret = model_status_terminal(ts) ? STORE_CLAIM_DONE : STORE_CLAIM_LEASED;
        rc = STORE_OK;
    } else {
        rc = store__stmt_error(st, "fetch status");
    }
out_free:
    mysql_stmt_free_result(st);
    return rc;
}

static int claim_tx(struct store__conn *c, const struct ids_id *id, const char *worker_id,
                    int lease_ms, struct task *ret_task, enum store_claim *ret_claim)
{
    struct store__params p = {0};
    MYSQL_STMT *st = store__stmt(c, STMT_TASK_CLAIM);
    struct task t;
    int rc;

    store__p_str(&p, worker_id);
    store__p_int(&p, (long long)lease_ms * 1000);
    store__p_id(&p, id);
    rc = store__p_exec(st, &p, "task claim");
    if (rc != STORE_OK)
        return rc;
    if (mysql_stmt_affected_rows(st) == 0)
        return classify(c, id, ret_claim);

    st = store__stmt(c, STMT_TASK_GET);
    if (!st)
        return STORE_EDB;
    rc = store__exec_by_id(st, id);
    if (rc == STORE_OK)
        rc = store__fetch_task(st, &t);
    mysql_stmt_free_result(st);
    if (rc != STORE_OK)
        return rc == STORE_ENOTFOUND ? STORE_EDB : rc;

    /* an earlier attempt still marked running lost its lease: say so in its record */
    memset(&p, 0, sizeof p);
    store__p_id(&p, id);
    store__p_int(&p, t.attempts);
    rc = store__p_exec(store__stmt(c, STMT_ATTEMPT_EXPIRE), &p, "attempt expire");
    if (rc == STORE_OK) {
        memset(&p, 0, sizeof p);
        store__p_id(&p, id);
        store__p_int(&p, t.attempts);
        store__p_str(&p, worker_id);
        rc = store__p_exec(store__stmt(c, STMT_ATTEMPT_INSERT), &p, "attempt insert");
    }
    if (rc != STORE_OK) {
        model_task_release(&t);
        return rc;
    }
    *ret_task = t;
    *ret_claim = STORE_CLAIMED;
    return STORE_OK;
}

struct claim_args {
    const struct ids_id *id;
    const char *worker_id;
    int lease_ms;
    struct task task;
    enum store_claim claim;
};

static int claim_fn(struct store__conn *c, void *arg)
{
    struct claim_args *a = arg;
    return claim_tx(c, a->id, a->worker_id, a->lease_ms, &a->task, &a->claim);
}

int store_task_claim(struct store *s, const struct ids_id *id, const char *worker_id, int lease_ms,
                     struct task *ret_task, enum store_claim *ret_claim)
{
    struct claim_args a = {
        .id = id, .worker_id = worker_id, .lease_ms = lease_ms, .claim = STORE_CLAIM_NOT_FOUND};
    int rc = store__in_tx(s, claim_fn, &a);
    if (rc != STORE_OK) {
        if (a.claim == STORE_CLAIMED)
            model_task_release(&a.task);
        return rc;
    }
    if (a.claim == STORE_CLAIMED)
        *ret_task = a.task;
    *ret_claim = a.claim;
    return STORE_OK;
}

/* The outcome as task_attempts stores it. */
const char *store__outcome_name(enum store_outcome o)
{
    switch (o) {
    case STORE_OUTCOME_SUCCEEDED:
        return "succeeded";
    case STORE_OUTCOME_TIMEOUT:
        return "timeout";
    case STORE_OUTCOME_PERMANENT:
        return "permanent";
    case STORE_OUTCOME_FAILED:
    default:
        return "failed";
    }
}

static int finish_tx(struct store__conn *c, const struct ids_id *id, int attempt,
                     const struct store_finish *fin)
{
    struct store__params p = {0};
    MYSQL_STMT *st = store__stmt(c, STMT_TASK_FINISH);
    MYSQL_TIME run_at;
    int rc;

    store__p_str(&p, model_status_name(fin->status));
    store__p_str(&p, fin->result);
    store__p_str(&p, fin->error);
    if (fin->status == TASK_RETRYING && fin->run_at != 0) {
        store__time_to_mysql(fin->run_at, &run_at);
        store__p_bytes(&p, MYSQL_TYPE_DATETIME, &run_at, sizeof run_at);
    } else {
        store__p_bytes(&p, MYSQL_TYPE_DATETIME, NULL, 0);
    }
    store__p_int(&p, model_status_terminal(fin->status) ? 1 : 0);
    store__p_id(&p, id);
    store__p_int(&p, attempt);
    rc = store__p_exec(st, &p, "task finish");
    if (rc != STORE_OK)
        return rc;
    if (mysql_stmt_affected_rows(st) == 0)
        return STORE_ESTALE;

    memset(&p, 0, sizeof p);
    store__p_str(&p, store__outcome_name(fin->outcome));
    store__p_str(&p, fin->error);
    store__p_id(&p, id);
    store__p_int(&p, attempt);
    return store__p_exec(store__stmt(c, STMT_ATTEMPT_FINISH), &p, "attempt finish");
}

struct finish_args {
    const struct ids_id *id;
    int attempt;
    const struct store_finish *fin;
};

static int finish_fn(struct store__conn *c, void *arg)
{
    const struct finish_args *a = arg;
    return finish_tx(c, a->id, a->attempt, a->fin);
}

int store_task_finish(struct store *s, const struct ids_id *id, int attempt,
                      const struct store_finish *fin)
{
    struct finish_args a = {id, attempt, fin};
    return store__in_tx(s, finish_fn, &a);
}

int store_task_extend_lease(struct store *s, const struct ids_id *id, int attempt, int lease_ms)
{
    struct store__conn *c = store__acquire(s);
    struct store__params p = {0};
    int rc;
    if (!c)
        return STORE_EDB;
    store__p_int(&p, (long long)lease_ms * 1000);
    store__p_id(&p, id);
    store__p_int(&p, attempt);
    MYSQL_STMT *st = store__stmt(c, STMT_TASK_EXTEND);
    rc = store__p_exec(st, &p, "task extend lease");
    if (rc == STORE_OK && mysql_stmt_affected_rows(st) == 0)
        rc = STORE_ESTALE;
    store__release(s, c, rc == STORE_EDB);
    return rc;
}
