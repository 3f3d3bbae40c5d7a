/* status — read a task's view. */
#include "status/status.h"

int status_get(const struct status *st, const struct ids_id *id, const struct ids_id *owner,
               struct task *ret_task)
{
    struct task t;
    int rc = st->store->get(st->store_ctx, id, &t);
    if (rc != 0)
        return rc == st->notfound_code ? STATUS_ENOTFOUND : STATUS_EUNAVAILABLE;
    if (owner && (!t.has_user || !ids_equal(&t.user_id, owner))) {
        model_task_release(&t);
        return STATUS_ENOTFOUND;
    }
    *ret_task = t;
    return STATUS_OK;
}
