/* control — cancel a task that has not started. */
#include "control/control.h"

int control_cancel(const struct control *c, const struct ids_id *id, const struct ids_id *owner,
                   struct task *ret_task, enum control_cancel *ret_outcome)
{
    enum control_cancel outcome = CONTROL_CANCEL_NOT_FOUND;
    struct task t = {0};

    if (c->store->cancel(c->store_ctx, id, owner, &t, &outcome) != 0)
        return CONTROL_EUNAVAILABLE;
    switch (outcome) {
    case CONTROL_CANCELED:
        if (t.status != TASK_CANCELED) {
            /* the adapter said canceled but read back something else */
            model_task_release(&t);
            return CONTROL_EUNAVAILABLE;
        }
        break;
    case CONTROL_CANCEL_CONFLICT:
        break;
    case CONTROL_CANCEL_NOT_FOUND:
    default:
        model_task_release(&t); /* nothing was filled: frees nothing */
        *ret_outcome = CONTROL_CANCEL_NOT_FOUND;
        return CONTROL_OK;
    }
    /* SPEC §4 "every status change: MySQL, then Redis, then an invalidation" */
    if (outcome == CONTROL_CANCELED && c->notify && c->notify->changed)
        c->notify->changed(c->notify_ctx, id);
    *ret_task = t;
    *ret_outcome = outcome;
    return CONTROL_OK;
}
