/* POST /tasks/{id}/cancel — the owner cancels a task that has not started.
 *
 * PENDING, QUEUED and RETRYING tasks become CANCELED (durably, in one guarded
 * UPDATE: a worker's claim and a cancel cannot both win); a worker that later
 * receives the message skips it.  RUNNING and finished tasks answer 409 naming the
 * status; another user's task is 404 like an unknown one.  No body is read. */
#include "api/api_int.h"

#include <string.h>

#include "control/control.h"
#include "guard/guard.h"
#include "workpool/workpool.h"

/* The call's answer: the task as it now is, 404, 409, or 503. */
static void respond_cancel(struct api_call *call, struct api_request *req)
{
    char *view;
    if (call->rc != CONTROL_OK) {
        api_problem_unavailable(req, "the task store is unavailable; retry later");
        return;
    }
    if (call->outcome == CONTROL_CANCEL_NOT_FOUND) {
        api_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "Not Found", "no task %s", req->param);
        return;
    }
    if (call->outcome == CONTROL_CANCEL_CONFLICT) {
        api_problem(req, MHD_HTTP_CONFLICT, "not-cancelable", "Task Cannot Be Canceled",
                    "task %s is %s; only PENDING, QUEUED and RETRYING tasks can be canceled",
                    req->param, model_status_name(call->task.status));
        return;
    }
    view = model_task_view_text(&call->task);
    if (!view) {
        api_problem_oom(req);
        return;
    }
    api_respond_text(req, MHD_HTTP_OK, view, "application/json");
}

static void release_cancel(struct api_call *call)
{
    model_task_release(&call->task); /* zeroed unless the cancel filled it */
}

/* On the db pool. */
static void cancel_job(void *arg)
{
    struct api_call *call = arg;
    call->rc = control_cancel(call->api->deps.control, &call->id, &call->query.owner, &call->task,
                              &call->outcome);
    api_call_finish(call);
}

void api_h_tasks_cancel(struct api_request *req)
{
    struct api_call *call;
    struct ids_id id;

    if (ids_parse(req->param, strlen(req->param), &id) < 0) {
        api_problem(req, MHD_HTTP_BAD_REQUEST, "malformed-id", "Malformed Task Id",
                    "'%s' is not a UUID in canonical form", req->param);
        return;
    }
    if (api_refuse_if_open(req, req->api->deps.db_guard, "the task store (MariaDB)"))
        return;
    call = api_call_new(req, respond_cancel, release_cancel);
    if (!call) {
        api_problem_oom(req);
        return;
    }
    call->id = id;
    call->query.owner = req->user;
    call->rc = CONTROL_EUNAVAILABLE;
    call->late_detail = "the task store did not answer within the request deadline; the "
                        "cancel may still take effect: read the task to learn its status";
    api_suspend(req);
    api_call_start(call);
    if (!req->api->deps.db_pool) {
        cancel_job(call);
        return;
    }
    if (workpool_submit(req->api->deps.db_pool, cancel_job, call) < 0)
        api_call_finish(call);
}
