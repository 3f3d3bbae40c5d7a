/* GET /tasks/{id} — the task's view from the status service. */
#include "api/api_int.h"

#include <string.h>

#include "status/status.h"

void api_h_tasks_get(struct api_request *req)
{
    struct ids_id id;
    struct task t;
    cJSON *view;
    int rc;

    if (ids_parse(req->param, strlen(req->param), &id) < 0) {
        api_problem(req, MHD_HTTP_BAD_REQUEST, "malformed-id", "Malformed Task Id",
                    "'%s' is not a UUID in canonical form", req->param);
        return;
    }
    rc = status_get(req->api->deps.status, &id, &req->user, &t);
    if (rc == STATUS_ENOTFOUND) {
        api_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "Not Found", "no task %s", req->param);
        return;
    }
    if (rc != STATUS_OK) {
        api_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable", "Service Unavailable",
                    "the task store is unavailable; retry later");
        api_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        return;
    }
    view = model_task_view(&t);
    model_task_release(&t);
    if (!view) {
        api_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "Internal Server Error",
                    "out of memory");
        return;
    }
    api_respond_json(req, MHD_HTTP_OK, view);
    cJSON_Delete(view);
}
