/* store — the dead-letter queue for dispatchctl: DEAD rows listed, replayed (DEAD ->
 * QUEUED, recorded, published before the commit) and purged into dlq_audit; and a
 * task's attempt history. */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fn's "the publish callback failed": rolls the replay back, never leaves dlq.c */
#define STORE__EUNPUBLISHED (-101)

int store_dlq_list(struct store *s, const struct store_dlq_filter *f, struct task **ret_tasks,
                   size_t *ret_n)
{
    struct store__params p = {0};
    MYSQL_TIME since;

    if (f->limit < 1 || f->limit > STORE_LIST_MAX || f->since < 0)
        return STORE_EINVAL;
    store__time_to_mysql(f->since, &since);
    store__p_str(&p, f->type);
    store__p_bytes(&p, MYSQL_TYPE_DATETIME, &since, sizeof since);
    store__p_int(&p, (long long)f->limit);
    return store__query_tasks(s, STMT_DLQ_LIST, &p, f->limit, "dlq list", ret_tasks, ret_n);
}

int store_dlq_page(struct store *s, const char *type, const struct store_dlq_cursor *after,
                   size_t limit, struct task **ret_tasks, size_t *ret_n)
{
    static const struct ids_id before_all = {{0}};
    struct store__params p = {0};
    MYSQL_TIME created;

    if (limit < 1 || limit > STORE_LIST_MAX)
        return STORE_EINVAL;
    /* no cursor: (epoch, all-zero id) precedes every stored task */
    store__time_to_mysql(after ? after->created_at : 0, &created);
    store__p_str(&p, type);
    store__p_bytes(&p, MYSQL_TYPE_DATETIME, &created, sizeof created);
    store__p_bytes(&p, MYSQL_TYPE_DATETIME, &created, sizeof created);
    store__p_id(&p, after ? &after->id : &before_all);
    store__p_int(&p, (long long)limit);
    return store__query_tasks(s, STMT_DLQ_PAGE, &p, limit, "dlq page", ret_tasks, ret_n);
}

/* --- replay ---------------------------------------------------------------- */

struct replay_args {
    const struct ids_id *id;
    const char *actor;
    store_replay_fn publish;
    void *arg;
    struct task task; /* valid when has_task */
    bool has_task;
    enum store_replay outcome;
};

/* The row as the replay leaves it, for the message and the caller. */
static void reset_for_replay(struct task *t)
{
    free(t->result);
    free(t->last_error);
    t->result = NULL;
    t->last_error = NULL;
    t->status = TASK_QUEUED;
    t->attempts = 0;
    t->run_at = 0;
    t->started_at = 0;
    t->finished_at = 0;
    t->updated_at = model_now_us();
}

/* UPDATE ... WHERE status = 'DEAD' and the 'replayed' attempt row, on the locked row. */
static int replay_write(struct store__conn *c, const struct replay_args *a, const struct task *t)
{
    struct store__params p = {0};
    MYSQL_STMT *st = store__stmt(c, STMT_DLQ_REPLAY);
    int rc;

    store__p_id(&p, a->id);
    rc = store__p_exec(st, &p, "dlq replay");
    if (rc != STORE_OK)
        return rc;
    if (mysql_stmt_affected_rows(st) != 1)
        return STORE_EDB; /* the row is locked and DEAD: cannot happen */
    memset(&p, 0, sizeof p);
    store__p_id(&p, a->id);
    store__p_str(&p, a->actor);
    store__p_str(&p, t->last_error);
    return store__p_exec(store__stmt(c, STMT_DLQ_REPLAY_RECORD), &p, "dlq replay record");
}

static int replay_fn(struct store__conn *c, void *arg)
{
    struct replay_args *a = arg;
    MYSQL_STMT *st = store__stmt(c, STMT_DLQ_LOCK);
    struct task t;
    int rc;

    if (a->has_task) { /* a rerun after a deadlock: start afresh */
        model_task_release(&a->task);
        a->has_task = false;
    }
    if (!st)
        return STORE_EDB;
    rc = store__exec_by_id(st, a->id);
    if (rc == STORE_OK)
        rc = store__fetch_task(st, &t);
    mysql_stmt_free_result(st);
    if (rc == STORE_ENOTFOUND) {
        a->outcome = STORE_REPLAY_NOT_FOUND;
        return STORE_OK;
    }
    if (rc != STORE_OK)
        return rc;
    if (t.status != TASK_DEAD) {
        a->outcome = STORE_REPLAY_NOT_DEAD;
        a->task = t;
        a->has_task = true;
        return STORE_OK;
    }
    rc = replay_write(c, a, &t);
    if (rc == STORE_OK) {
        reset_for_replay(&t);
        /* last, with the row still locked: a failed publish rolls everything back */
        if (a->publish(a->arg, &t) != 0)
            rc = STORE__EUNPUBLISHED;
    }
    if (rc != STORE_OK) {
        model_task_release(&t);
        return rc;
    }
    a->outcome = STORE_REPLAYED;
    a->task = t;
    a->has_task = true;
    return STORE_OK;
}

int store_dlq_replay(struct store *s, const struct ids_id *id, const char *actor,
                     store_replay_fn publish, void *arg, struct task *ret_task,
                     enum store_replay *ret_outcome)
{
    struct replay_args a = {.id = id, .actor = actor, .publish = publish, .arg = arg};
    int rc = store__in_tx(s, replay_fn, &a);

    if (rc == STORE__EUNPUBLISHED) {
        *ret_outcome = STORE_REPLAY_UNPUBLISHED;
        return STORE_OK;
    }
    if (rc != STORE_OK) {
        if (a.has_task)
            model_task_release(&a.task);
        return rc;
    }
    if (a.has_task)
        *ret_task = a.task;
    *ret_outcome = a.outcome;
    return STORE_OK;
}

/* --- purge ----------------------------------------------------------------- */

int store_dlq_count(struct store *s, int64_t before, size_t *ret_n)
{
    struct store__params p = {0};
    struct store__conn *c = store__acquire(s);
    MYSQL_BIND out = {0};
    MYSQL_STMT *st;
    MYSQL_TIME t;
    long long n = 0;
    int rc;

    if (!c)
        return STORE_EDB;
    store__time_to_mysql(before, &t);
    store__p_bytes(&p, MYSQL_TYPE_DATETIME, &t, sizeof t);
    st = store__stmt(c, STMT_DLQ_COUNT);
    rc = store__p_exec(st, &p, "dlq count");
    if (rc == STORE_OK) {
        out.buffer_type = MYSQL_TYPE_LONGLONG;
        out.buffer = &n;
        if (mysql_stmt_bind_result(st, &out) != 0 || mysql_stmt_fetch(st) != 0)
            rc = store__stmt_error(st, "dlq count fetch");
    }
    if (st)
        mysql_stmt_free_result(st);
    store__release(s, c, rc == STORE_EDB);
    if (rc != STORE_OK)
        return rc;
    *ret_n = (size_t)n;
    return STORE_OK;
}

struct purge_args {
    int64_t before;
    const char *actor;
    size_t limit;
    struct ids_id *ids; /* room for limit */
    size_t n;
};

/* Locks the batch: up to limit ids, read whole before the next statement runs. */
static int purge_pick(struct store__conn *c, struct purge_args *a, size_t *ret_n)
{
    struct store__params p = {0};
    MYSQL_STMT *st = store__stmt(c, STMT_DLQ_PURGE_PICK);
    MYSQL_BIND out = {0};
    MYSQL_TIME before;
    unsigned char id[16];
    unsigned long len = 0;
    size_t n = 0;
    int rc;

    store__time_to_mysql(a->before, &before);
    store__p_bytes(&p, MYSQL_TYPE_DATETIME, &before, sizeof before);
    store__p_int(&p, (long long)a->limit);
    rc = store__p_exec(st, &p, "dlq purge pick");
    if (rc != STORE_OK)
        return rc;
    out.buffer_type = MYSQL_TYPE_BLOB;
    out.buffer = id;
    out.buffer_length = sizeof id;
    out.length = &len;
    if (mysql_stmt_bind_result(st, &out) != 0) {
        rc = store__stmt_error(st, "dlq purge bind");
        goto out_free;
    }
    while ((rc = mysql_stmt_fetch(st)) == 0) {
        if (n == a->limit || len != sizeof id) {
            rc = STORE_EDB;
            goto out_free;
        }
        memcpy(a->ids[n++].b, id, sizeof id);
    }
    rc = rc == MYSQL_NO_DATA ? STORE_OK : store__stmt_error(st, "dlq purge fetch");
out_free:
    mysql_stmt_free_result(st);
    if (rc == STORE_OK)
        *ret_n = n;
    return rc;
}

/* Audit row first, then the history, then the task. */
static int purge_one(struct store__conn *c, const struct purge_args *a, const struct ids_id *id)
{
    struct store__params p = {0};
    MYSQL_STMT *st = store__stmt(c, STMT_DLQ_AUDIT);
    int rc;

    store__p_str(&p, a->actor);
    store__p_id(&p, id);
    rc = store__p_exec(st, &p, "dlq audit");
    if (rc != STORE_OK)
        return rc;
    if (mysql_stmt_affected_rows(st) != 1)
        return STORE_EDB; /* locked and DEAD: cannot happen */
    st = store__stmt(c, STMT_DLQ_DELETE_ATTEMPTS);
    rc = st ? store__exec_by_id(st, id) : STORE_EDB;
    if (rc != STORE_OK)
        return rc;
    st = store__stmt(c, STMT_DLQ_DELETE);
    rc = st ? store__exec_by_id(st, id) : STORE_EDB;
    if (rc == STORE_OK && mysql_stmt_affected_rows(st) != 1)
        rc = STORE_EDB;
    return rc;
}

static int purge_fn(struct store__conn *c, void *arg)
{
    struct purge_args *a = arg;
    size_t n = 0;
    int rc = purge_pick(c, a, &n);

    for (size_t i = 0; rc == STORE_OK && i < n; i++)
        rc = purge_one(c, a, &a->ids[i]);
    if (rc == STORE_OK)
        a->n = n;
    return rc;
}

int store_dlq_purge(struct store *s, int64_t before, const char *actor, size_t limit, size_t *ret_n)
{
    struct purge_args a = {.before = before, .actor = actor, .limit = limit};
    int rc;

    if (limit < 1 || limit > STORE_LIST_MAX || !actor)
        return STORE_EINVAL;
    a.ids = calloc(limit, sizeof *a.ids);
    if (!a.ids)
        return STORE_ENOMEM;
    rc = store__in_tx(s, purge_fn, &a);
    free(a.ids);
    if (rc != STORE_OK)
        return rc;
    *ret_n = a.n;
    return STORE_OK;
}

/* --- attempt history ------------------------------------------------------- */

/* Result buffers of one task_attempts row (error fetched afterwards). */
struct attempt_row {
    MYSQL_BIND bind[6];
    unsigned long len[6];
    my_bool is_null[6];
    my_bool err[6];
    long long attempt;
    char worker_id[129], outcome[16];
    MYSQL_TIME started, finished;
};

static void attempt_bind(struct attempt_row *r)
{
    memset(r->bind, 0, sizeof r->bind);
    for (int i = 0; i < 6; i++) {
        r->bind[i].length = &r->len[i];
        r->bind[i].is_null = &r->is_null[i];
        r->bind[i].error = &r->err[i];
    }
    r->bind[0].buffer_type = MYSQL_TYPE_LONGLONG;
    r->bind[0].buffer = &r->attempt;
    r->bind[1].buffer_type = MYSQL_TYPE_STRING;
    r->bind[1].buffer = r->worker_id;
    r->bind[1].buffer_length = sizeof r->worker_id;
    r->bind[2].buffer_type = MYSQL_TYPE_STRING;
    r->bind[2].buffer = r->outcome;
    r->bind[2].buffer_length = sizeof r->outcome;
    r->bind[3].buffer_type = MYSQL_TYPE_DATETIME;
    r->bind[3].buffer = &r->started;
    r->bind[4].buffer_type = MYSQL_TYPE_DATETIME;
    r->bind[4].buffer = &r->finished;
    r->bind[5].buffer_type = MYSQL_TYPE_STRING; /* error: no buffer, fetched whole later */
}

/* Copies the fetched row into a; the error column is fetched at its real length. */
static int attempt_copy(MYSQL_STMT *st, const struct attempt_row *r, struct store_attempt *a)
{
    MYSQL_BIND b = {0};
    unsigned long len = r->len[5];

    memset(a, 0, sizeof *a);
    a->attempt = (int)r->attempt;
    snprintf(a->worker_id, sizeof a->worker_id, "%.*s",
             (int)(r->len[1] < sizeof a->worker_id ? r->len[1] : sizeof a->worker_id - 1),
             r->worker_id);
    snprintf(a->outcome, sizeof a->outcome, "%.*s",
             (int)(r->len[2] < sizeof a->outcome ? r->len[2] : sizeof a->outcome - 1), r->outcome);
    a->started_at = store__time_from_mysql(&r->started);
    a->finished_at = r->is_null[4] ? 0 : store__time_from_mysql(&r->finished);
    if (r->is_null[5])
        return STORE_OK;
    a->error = malloc(len + 1);
    if (!a->error)
        return STORE_ENOMEM;
    b.buffer_type = MYSQL_TYPE_STRING;
    b.buffer = a->error;
    b.buffer_length = len + 1;
    if (len > 0 && mysql_stmt_fetch_column(st, &b, 5, 0) != 0) {
        free(a->error);
        a->error = NULL;
        return store__stmt_error(st, "attempt error column");
    }
    a->error[len] = '\0';
    return STORE_OK;
}

static int attempt_rows(MYSQL_STMT *st, struct store_attempt *out, size_t max, size_t *ret_n)
{
    struct attempt_row r;
    size_t n = 0;
    int rc;

    memset(&r, 0, sizeof r);
    attempt_bind(&r);
    if (mysql_stmt_bind_result(st, r.bind) != 0)
        return store__stmt_error(st, "attempt bind");
    for (;;) {
        rc = mysql_stmt_fetch(st);
        if (rc == MYSQL_NO_DATA) {
            rc = STORE_OK;
            break;
        }
        /* MYSQL_DATA_TRUNCATED is expected: the error column had no buffer */
        if (rc == 1 || r.err[0] || r.err[3] || r.err[4] || n == max) {
            rc = rc == 1 ? store__stmt_error(st, "attempt fetch") : STORE_EDB;
            break;
        }
        rc = attempt_copy(st, &r, &out[n]);
        if (rc != STORE_OK)
            break;
        n++;
    }
    if (rc != STORE_OK) {
        for (size_t i = 0; i < n; i++)
            free(out[i].error);
        return rc;
    }
    *ret_n = n;
    return STORE_OK;
}

int store_task_attempts(struct store *s, const struct ids_id *id, size_t max,
                        struct store_attempt **ret_attempts, size_t *ret_n)
{
    struct store__params p = {0};
    struct store_attempt *rows;
    struct store__conn *c;
    MYSQL_STMT *st;
    size_t n = 0;
    int rc;

    if (max < 1 || max > STORE_LIST_MAX)
        return STORE_EINVAL;
    rows = calloc(max, sizeof *rows);
    if (!rows)
        return STORE_ENOMEM;
    c = store__acquire(s);
    if (!c) {
        free(rows);
        return STORE_EDB;
    }
    st = store__stmt(c, STMT_ATTEMPT_LIST);
    store__p_id(&p, id);
    store__p_int(&p, (long long)max);
    rc = store__p_exec(st, &p, "attempt list");
    if (rc == STORE_OK)
        rc = attempt_rows(st, rows, max, &n); /* frees the errors it fetched on failure */
    if (st)
        mysql_stmt_free_result(st);
    store__release(s, c, rc == STORE_EDB);
    if (rc != STORE_OK || n == 0) {
        free(rows);
        rows = NULL;
    }
    if (rc != STORE_OK)
        return rc;
    *ret_attempts = rows;
    *ret_n = n;
    return STORE_OK;
}

void store_attempts_free(struct store_attempt *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        free(a[i].error);
    free(a);
}
