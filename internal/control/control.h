/* control — the owner's commands on a task that exists: cancel (for now).
 *
 * A service: no I/O library calls, the store is reached through an ops table that
 * cmd/producer plugs the real adapter into (unit tests plug fakes).  The rule of
 * which statuses may be canceled lives in the store's guarded UPDATE, so a worker's
 * concurrent claim and a cancel can never both win.
 */
#ifndef DISPATCH_CONTROL_H
#define DISPATCH_CONTROL_H

#include "model/model.h"

enum control_cancel {
    CONTROL_CANCELED = 0,     /* it was PENDING, QUEUED or RETRYING: now CANCELED */
    CONTROL_CANCEL_CONFLICT,  /* RUNNING or finished: nothing changed */
    CONTROL_CANCEL_NOT_FOUND, /* unknown, or another user's task (indistinguishable) */
};

struct control_store_ops {
    /* Cancels owner's task if it has not started, atomically.  Returns 0 with
     * *ret_outcome set, and *ret_task (owned by the caller) filled for
     * CONTROL_CANCELED and CONTROL_CANCEL_CONFLICT; negative on a store failure. */
    int (*cancel)(void *ctx, const struct ids_id *id, const struct ids_id *owner,
                  struct task *ret_task, enum control_cancel *ret_outcome);
};

enum control_err {
    CONTROL_OK = 0,
    CONTROL_EUNAVAILABLE = -1, /* the store failed; nothing is known to have changed */
};

/* Told of a status change control wrote, after its commit (SPEC §4: the store, then
 * Redis, then an invalidation event).  On the caller's thread, before control_cancel
 * returns, so the owner's next read sees the change. */
struct control_notify_ops {
    void (*changed)(void *ctx, const struct ids_id *id);
};

struct control {
    const struct control_store_ops *store;
    void *store_ctx;
    const struct control_notify_ops *notify; /* NULL: nobody is told */
    void *notify_ctx;
};

/* Cancels the task id on behalf of owner.  CONTROL_OK with *ret_outcome set; for
 * CONTROL_CANCELED and CONTROL_CANCEL_CONFLICT, *ret_task is the task as it now is
 * (owned by the caller: model_task_release); otherwise it is untouched. */
int control_cancel(const struct control *c, const struct ids_id *id, const struct ids_id *owner,
                   struct task *ret_task, enum control_cancel *ret_outcome);

#endif
