/* POST /tasks — validate, hand to the submit pipeline, answer 202 once the broker
 * has acknowledged the message (or 503 when it could not in time). */
#include "api/api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"

struct create_body {
    const char *type;
    const cJSON *payload;
    long long priority;
    long long max_attempts;
    long long timeout_ms;
    const char *run_at;
    const char *ordering_key;
    const char *callback_url;
};

static bool url_acceptable(const char *u)
{
    return strncmp(u, "https://", 8) == 0 || strncmp(u, "http://", 7) == 0;
}

/* Field checks the spec array cannot express; prepares the 400 and returns false. */
static bool check_fields(struct api_request *req, const struct create_body *b, int64_t *run_at)
{
    if (!model_type_valid(b->type)) {
        api_problem(req, MHD_HTTP_BAD_REQUEST, "validation", "Invalid Request",
                    "type: must match ^[a-z0-9][a-z0-9._-]{0,63}$");
        return false;
    }
    if (b->run_at && model_time_parse(b->run_at, run_at) < 0) {
        api_problem(req, MHD_HTTP_BAD_REQUEST, "validation", "Invalid Request",
                    "run_at: must be an RFC 3339 date-time");
        return false;
    }
    if (b->callback_url && !url_acceptable(b->callback_url)) {
        api_problem(req, MHD_HTTP_BAD_REQUEST, "validation", "Invalid Request",
                    "callback_url: must be an http or https URL");
        return false;
    }
    return true;
}

static char *dup_opt(const char *s, bool *ok)
{
    char *d;
    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *ok = false;
    return d;
}

/* Builds the new task from a validated body. */
static bool build_task(struct api_request *req, const struct create_body *b, int64_t run_at)
{
    struct task *t = &req->submit.task;
    bool ok = true;
    memset(t, 0, sizeof *t);
    if (ids_new_v7(&t->id) < 0)
        return false;
    snprintf(t->type, sizeof t->type, "%s", b->type);
    t->status = TASK_PENDING;
    t->priority = (int)b->priority;
    t->max_attempts = (int)b->max_attempts;
    t->timeout_ms = (int)b->timeout_ms;
    t->payload = cJSON_PrintUnformatted(b->payload);
    t->ordering_key = dup_opt(b->ordering_key, &ok);
    t->callback_url = dup_opt(b->callback_url, &ok);
    memcpy(t->traceparent, req->traceparent, sizeof t->traceparent);
    t->user_id = req->user;
    t->has_user = true;
    t->created_at = t->updated_at = model_now_us();
    t->run_at = run_at;
    return ok && t->payload;
}

static void respond_submitted(struct api_request *req)
{
    const struct task *t = &req->submit.task;
    char id[IDS_TEXT_LEN + 1], location[64];
    cJSON *view;

    switch (req->submit.result) {
    case SUBMIT_ACCEPTED:
        break;
    case SUBMIT_UNAVAILABLE:
        api_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "broker-unavailable", "Service Unavailable",
                    "the task was stored but the broker did not acknowledge it in time; it "
                    "will be published without further action");
        api_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "5");
        return;
    case SUBMIT_DB_DOWN:
    case SUBMIT_OVERLOADED:
    default:
        api_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable", "Service Unavailable",
                    "the task could not be stored; nothing was accepted, retry later");
        api_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        return;
    }
    view = model_task_view(t);
    if (!view) {
        api_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "Internal Server Error",
                    "out of memory");
        return;
    }
    api_respond_json(req, MHD_HTTP_ACCEPTED, view);
    cJSON_Delete(view);
    ids_format(&t->id, id);
    snprintf(location, sizeof location, "/tasks/%s", id);
    api_add_header(req, MHD_HTTP_HEADER_LOCATION, location);
}

/* Runs on a pipeline thread: prepare the answer, then resume the connection. */
static void on_submitted(struct submit_request *sreq, void *opaque)
{
    struct api_request *req = opaque;
    (void)sreq;
    respond_submitted(req);
    api_complete(req);
}

void api_h_tasks_create(struct api_request *req)
{
    struct create_body b = {.max_attempts = MODEL_MAX_ATTEMPTS_DEF};
    const struct jsonx_field spec[] = {
        JSONX_STRING("type", true, 1, MODEL_TYPE_MAX, &b.type),
        JSONX_ANY("payload", true, &b.payload),
        JSONX_INT("priority", false, -1000, 1000, &b.priority),
        JSONX_INT("max_attempts", false, MODEL_MAX_ATTEMPTS_MIN, MODEL_MAX_ATTEMPTS_MAX,
                  &b.max_attempts),
        JSONX_INT("timeout_ms", false, 1, MODEL_TIMEOUT_MS_MAX, &b.timeout_ms),
        JSONX_STRING("run_at", false, 1, 64, &b.run_at),
        JSONX_STRING("ordering_key", false, 1, MODEL_ORDERING_KEY_MAX, &b.ordering_key),
        JSONX_STRING("callback_url", false, 1, MODEL_CALLBACK_URL_MAX, &b.callback_url),
        JSONX_END,
    };
    int64_t run_at = 0;
    cJSON *root = api_body_json(req);

    if (!root)
        return;
    if (!api_body_spec(req, root, spec) || !check_fields(req, &b, &run_at)) {
        cJSON_Delete(root);
        return;
    }
    if (!build_task(req, &b, run_at)) {
        cJSON_Delete(root);
        api_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "Internal Server Error",
                    "out of memory");
        return;
    }
    cJSON_Delete(root);
    req->submit.done = on_submitted;
    req->submit.opaque = req;
    api_suspend(req);
    if (submit_enqueue(req->api->deps.submit, &req->submit) < 0) {
        respond_submitted(req);
        api_complete(req);
    }
}
