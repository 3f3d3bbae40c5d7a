/* POST /tasks/{id}/cancel — the owner cancels a task that has not started.
 *
 * PENDING, QUEUED and RETRYING tasks become CANCELED (durably, in one guarded
 * UPDATE: a worker's claim and a cancel cannot both win); a worker that later
 * receives the message skips it.  RUNNING and finished tasks answer 409 naming the
 * status; another user's task is 404 like an unknown one.  No body is read. */
#include "api/api_int.h"

#include <string.h>

#include "control/control.h"

void api_h_tasks_cancel(struct api_request *req)
{
    enum control_cancel outcome;
    struct ids_id id;
    struct task t;
    char *view;

    if (ids_parse(req->param, strlen(req->param), &id) < 0) {
        api_problem(req, MHD_HTTP_BAD_REQUEST, "malformed-id", "Malformed Task Id",
                    "'%s' is not a UUID in canonical form", req->param);
        return;
    }
    if (control_cancel(req->api->deps.control, &id, &req->user, &t, &outcome) != CONTROL_OK) {
        api_problem_unavailable(req, "the task store is unavailable; retry later");
        return;
    }
    if (outcome == CONTROL_CANCEL_NOT_FOUND) {
        api_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "Not Found", "no task %s", req->param);
        return;
    }
    if (outcome == CONTROL_CANCEL_CONFLICT) {
        api_problem(req, MHD_HTTP_CONFLICT, "not-cancelable", "Task Cannot Be Canceled",
                    "task %s is %s; only PENDING, QUEUED and RETRYING tasks can be canceled",
                    req->param, model_status_name(t.status));
        model_task_release(&t);
        return;
    }
    view = model_task_view_text(&t);
    model_task_release(&t);
    if (!view) {
        api_problem_oom(req);
        return;
    }
    api_respond_text(req, MHD_HTTP_OK, view, "application/json");
}
