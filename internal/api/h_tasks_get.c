/* GET /tasks/{id} — the task's view from the status service, with its ETag;
 * If-None-Match that matches it answers 304 without a body (etag.c). */
#include "api/api_int.h"

#include <string.h>

#include "status/status.h"

void api_h_tasks_get(struct api_request *req)
{
    struct ids_id id;
    struct task t;
    char etag[API_ETAG_LEN + 1];
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
    api_etag(&t, etag);
    view = model_task_view(&t);
    model_task_release(&t);
    if (!view) {
        api_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "Internal Server Error",
                    "out of memory");
        return;
    }
    if (api_if_none_match(req, etag)) {
        api_respond_not_modified(req, etag, view);
    } else {
        api_respond_json(req, MHD_HTTP_OK, view);
        if (req->status == MHD_HTTP_OK)
            api_add_header(req, MHD_HTTP_HEADER_ETAG, etag);
    }
    cJSON_Delete(view);
}
