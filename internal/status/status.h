/* status — the read use case: a task's current view for its owner.
 *
 * This first cut reads the store through an ops table; the in-process LRU, Redis
 * and single-flight layers slot in here (SPEC §5) without changing callers.
 */
#ifndef DISPATCH_STATUS_H
#define DISPATCH_STATUS_H

#include "model/model.h"

#define STATUS_LIST_MAX 100 /* tasks one status_list page holds at most */

/* A page of one user's tasks, newest first (ids are UUIDv7). */
struct status_query {
    struct ids_id owner;            /* only this user's tasks */
    const struct ids_id *after;     /* keyset cursor: tasks older than this id; NULL: newest */
    const enum task_status *status; /* only this status; NULL: any */
    const char *type;               /* only this type; NULL: any */
    size_t limit;                   /* 1..STATUS_LIST_MAX */
};

struct status_store_ops {
    /* 0, STATUS_ENOTFOUND-compatible negative (< 0) on error; see status_get */
    int (*get)(void *ctx, const struct ids_id *id, struct task *ret_task);
    /* The query's tasks, newest first, at most q->limit; *ret_tasks is a malloc'ed
     * array of *ret_n tasks the caller owns (model_task_release() each, free() it).
     * 0, or negative on error. */
    int (*list)(void *ctx, const struct status_query *q, struct task **ret_tasks, size_t *ret_n);
};

enum status_err {
    STATUS_OK = 0,
    STATUS_ENOTFOUND = -1, /* unknown id (or, once auth lands, another user's task) */
    STATUS_EUNAVAILABLE = -2,
};

struct status {
    const struct status_store_ops *store;
    void *store_ctx;
    int notfound_code; /* the store's "not found" return value */
};

/* Fills ret_task (owned by the caller: model_task_release) when the task exists and
 * belongs to owner; another user's task is STATUS_ENOTFOUND exactly like an
 * unknown one, so ids cannot be probed.  owner NULL: no owner check (operators). */
int status_get(const struct status *st, const struct ids_id *id, const struct ids_id *owner,
               struct task *ret_task);

struct status_page {
    struct task *items; /* n tasks, newest first, owned (status_page_release) */
    size_t n;
    bool more;          /* another page follows ... */
    struct ids_id next; /* ... and this is its cursor (the last item's id) */
};

/* Fills ret_page with q's page (asks the store for one row more than the limit to
 * learn whether another page follows).  STATUS_EUNAVAILABLE when the store fails;
 * a limit outside 1..STATUS_LIST_MAX is a caller's bug, refused the same way. */
int status_list(const struct status *st, const struct status_query *q,
                struct status_page *ret_page);
/* Frees a page's items; accepts NULL and a zeroed page. */
void status_page_release(struct status_page *page);

#endif
