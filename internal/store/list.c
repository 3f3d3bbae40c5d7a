/* store — a user's tasks, newest first, one keyset page at a time. */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

int store__fetch_rows(MYSQL_STMT *st, struct task *tasks, size_t cap, size_t *ret_n)
{
    size_t n = 0;
    int rc;
    for (;;) {
        if (n == cap) {
            /* LIMIT ? bounds the rows: one more would be a bug, not data */
            struct task extra;
            rc = store__fetch_task(st, &extra);
            if (rc == STORE_OK) {
                model_task_release(&extra);
                rc = STORE_EDB;
            }
            break;
        }
        rc = store__fetch_task(st, &tasks[n]);
        if (rc != STORE_OK)
            break;
        n++;
    }
    if (rc != STORE_ENOTFOUND) {
        for (size_t i = 0; i < n; i++)
            model_task_release(&tasks[i]);
        return rc;
    }
    *ret_n = n;
    return STORE_OK;
}

/* Executes the statement `which` with p and fetches up to limit tasks into a new
 * array (store_task_list's result contract). */
int store__query_tasks(struct store *s, enum store__stmt which, struct store__params *p,
                       size_t limit, const char *what, struct task **ret_tasks, size_t *ret_n)
{
    struct store__conn *c;
    MYSQL_STMT *st;
    struct task *tasks;
    size_t n = 0;
    int rc;

    tasks = calloc(limit, sizeof *tasks);
    if (!tasks)
        return STORE_ENOMEM;
    c = store__acquire(s);
    if (!c) {
        free(tasks);
        return STORE_EDB;
    }
    st = store__stmt(c, which);
    rc = store__p_exec(st, p, what);
    if (rc == STORE_OK)
        rc = store__fetch_rows(st, tasks, limit, &n);
    if (st)
        mysql_stmt_free_result(st);
    store__release(s, c, rc == STORE_EDB);
    if (rc != STORE_OK || n == 0) {
        free(tasks);
        tasks = NULL;
    }
    if (rc != STORE_OK)
        return rc;
    *ret_tasks = tasks;
    *ret_n = n;
    return STORE_OK;
}

int store_task_list(struct store *s, const struct store_task_filter *f, struct task **ret_tasks,
                    size_t *ret_n)
{
    /* greater than every id: "from the newest" without a second statement */
    static const struct ids_id after_all = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                             0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
    struct store__params p = {0};

    if (f->limit < 1 || f->limit > STORE_LIST_MAX)
        return STORE_EINVAL;
    store__p_id(&p, &f->user_id);
    store__p_id(&p, f->before ? f->before : &after_all);
    store__p_str(&p, f->status ? model_status_name(*f->status) : NULL);
    store__p_str(&p, f->type);
    store__p_int(&p, (long long)f->limit);
    return store__query_tasks(s, STMT_TASK_LIST, &p, f->limit, "task list", ret_tasks, ret_n);
}
