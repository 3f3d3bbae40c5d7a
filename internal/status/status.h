/* status — the read use case: a task's current view for its owner.
 *
 * This first cut reads the store through an ops table; the in-process LRU, Redis
 * and single-flight layers slot in here (SPEC §5) without changing callers.
 */
#ifndef DISPATCH_STATUS_H
#define DISPATCH_STATUS_H

#include "model/model.h"

struct status_store_ops {
    /* 0, STATUS_ENOTFOUND-compatible negative (< 0) on error; see status_get */
    int (*get)(void *ctx, const struct ids_id *id, struct task *ret_task);
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

#endif
