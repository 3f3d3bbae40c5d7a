/* status — read a task's view. */
#include "status/status.h"

int status_get(const struct status *st, const struct ids_id *id, struct task *ret_task)
{
    int rc = st->store->get(st->store_ctx, id, ret_task);
    if (rc == 0)
        return STATUS_OK;
    return rc == st->notfound_code ? STATUS_ENOTFOUND : STATUS_EUNAVAILABLE;
}
