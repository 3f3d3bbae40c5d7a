/* store — the outbox relay's transaction: lock stale PENDING rows, publish, mark. */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

struct relay_args {
    int64_t older_than;
    int limit;
    store_relay_fn publish;
    void *arg;
    int seen, published;
};

/* Reads every locked row first: the connection must be free again for the update. */
static int lock_rows(struct store__conn *c, const struct relay_args *a, struct task *rows,
                     size_t *ret_n)
{
    MYSQL_STMT *st = store__stmt(c, STMT_TASK_RELAY);
    struct store__params p = {0};
    MYSQL_TIME before;
    size_t n = 0;
    int rc;

    store__time_to_mysql(a->older_than, &before);
    store__p_bytes(&p, MYSQL_TYPE_DATETIME, &before, sizeof before);
    store__p_int(&p, a->limit);
    rc = store__p_exec(st, &p, "relay select");
    if (rc == STORE_OK && mysql_stmt_store_result(st) != 0)
        rc = store__stmt_error(st, "relay store result");
    while (rc == STORE_OK && n < (size_t)a->limit) {
        rc = store__fetch_task(st, &rows[n]);
        if (rc == STORE_OK)
            n++;
    }
    if (st)
        mysql_stmt_free_result(st);
    if (rc == STORE_ENOTFOUND || (rc == STORE_OK && n == (size_t)a->limit))
        rc = STORE_OK;
    if (rc != STORE_OK) {
        for (size_t i = 0; i < n; i++)
            model_task_release(&rows[i]);
        return rc;
    }
    *ret_n = n;
    return STORE_OK;
}

static int mark_acked(struct store__conn *c, const struct task *rows, const int *errs, size_t n,
                      int *ret_marked)
{
    struct ids_id *ids = calloc(n ? n : 1, sizeof *ids);
    size_t m = 0;
    int rc;
    if (!ids)
        return STORE_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (errs[i] == 0)
            ids[m++] = rows[i].id;
    }
    rc = store__mark_queued_in(c, ids, m);
    free(ids);
    if (rc == STORE_OK)
        *ret_marked = (int)m;
    return rc;
}

static int relay_fn(struct store__conn *c, void *arg)
{
    struct relay_args *a = arg;
    struct task *rows = calloc((size_t)a->limit, sizeof *rows);
    const struct task **ptrs = calloc((size_t)a->limit, sizeof(const struct task *));
    int *errs = calloc((size_t)a->limit, sizeof *errs);
    size_t n = 0;
    int marked = 0;
    int rc = rows && ptrs && errs ? lock_rows(c, a, rows, &n) : STORE_ENOMEM;

    if (rc == STORE_OK && n > 0) {
        for (size_t i = 0; i < n; i++)
            ptrs[i] = &rows[i];
        a->publish(a->arg, ptrs, n, errs);
        rc = mark_acked(c, rows, errs, n, &marked);
    }
    if (rc == STORE_OK) {
        a->seen = (int)n;
        a->published = marked;
    }
    for (size_t i = 0; i < n; i++)
        model_task_release(&rows[i]);
    free(rows);
    free(ptrs);
    free(errs);
    return rc;
}

int store_task_relay(struct store *s, int64_t older_than, int limit, store_relay_fn publish,
                     void *arg, int *ret_seen, int *ret_published)
{
    struct relay_args a = {older_than, limit > 0 ? limit : 1, publish, arg, 0, 0};
    int rc = store__in_tx(s, relay_fn, &a);
    if (rc == STORE_OK) {
        *ret_seen = a.seen;
        *ret_published = a.published;
    }
    return rc;
}
