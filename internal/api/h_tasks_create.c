/* POST /tasks — validate, hand to the submit pipeline, answer 202 once the broker
 * has acknowledged the message (or 503 when it could not in time). */
#include "api/api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

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
    long long ceiling = req->api->cfg.task_timeout_ms_max;
    if (ceiling > 0 && b->timeout_ms > ceiling) {
        api_problem(req, MHD_HTTP_BAD_REQUEST, "validation", "Invalid Request",
                    "timeout_ms: must be at most %lld", ceiling);
        return false;
    }
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

/* The payload exactly as the client sent it: the bytes of the body's "payload"
 * member (the body was validated whole; the member is there once), whitespace inside
 * it included.  NULL on ENOMEM (or, impossibly, when the scanner disagrees). */
static char *payload_as_sent(const struct api_request *req)
{
    size_t off, len;
    char *p;
    if (jsonx_member_span(req->body, req->body_len, "payload", req->api->cfg.json_max_depth, &off,
                          &len) != JSONX_OK)
        return NULL;
    p = malloc(len + 1);
    if (p) {
        memcpy(p, req->body + off, len);
        p[len] = '\0';
    }
    return p;
}

/* Builds the new task from a validated body. */
static bool build_task(struct api_request *req, struct api_call *c, const struct create_body *b,
                       int64_t run_at)
{
    struct task *t = &c->submit.task;
    bool ok = true;
    memset(t, 0, sizeof *t);
    if (ids_new_v7(&t->id) < 0)
        return false;
    snprintf(t->type, sizeof t->type, "%s", b->type);
    t->status = TASK_PENDING;
    t->priority = (int)b->priority;
    t->max_attempts = (int)b->max_attempts;
    t->timeout_ms = (int)b->timeout_ms;
    t->payload = payload_as_sent(req);
    t->ordering_key = dup_opt(b->ordering_key, &ok);
    t->callback_url = dup_opt(b->callback_url, &ok);
    memcpy(t->traceparent, req->traceparent, sizeof t->traceparent);
    t->user_id = req->user;
    t->has_user = true;
    t->created_at = t->updated_at = model_now_us();
    t->run_at = run_at;
    return ok && t->payload;
}

static void add_location(struct api_request *req, const struct ids_id *id)
{
    char text[IDS_TEXT_LEN + 1], location[64];
    ids_format(id, text);
    snprintf(location, sizeof location, "/tasks/%s", text);
    api_add_header(req, MHD_HTTP_HEADER_LOCATION, location);
}

/* The 202 body: the view the pipeline rendered (and stored under the key). */
static void respond_accepted(struct api_request *req, struct submit_request *sr)
{
    char *view;
    if (sr->view) {
        api_respond_text(req, MHD_HTTP_ACCEPTED, sr->view, "application/json");
        sr->view = NULL; /* the response owns it now */
    } else if ((view = model_task_view_text(&sr->task))) {
        api_respond_text(req, MHD_HTTP_ACCEPTED, view, "application/json");
    } else {
        api_problem_oom(req);
        return;
    }
    add_location(req, &sr->task.id);
}

/* The key's first request answered: the same status, body and Location again. */
static void respond_replayed(struct api_request *req, struct submit_request *sr)
{
    struct idem_claim *c = &sr->idem;
    if (!c->response_body) {
        api_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "Internal Server Error",
                    "the stored response is missing");
        return;
    }
    api_respond_text(req, (unsigned int)c->response_code, c->response_body, "application/json");
    c->response_body = NULL;
    add_location(req, &c->task_id);
    api_add_header(req, "Idempotent-Replayed", "true");
}

/* The call's answer (api_call_respond_fn): the pipeline's result. */
static void respond_submitted(struct api_call *call, struct api_request *req)
{
    struct submit_request *sr = &call->submit;
    switch (sr->result) {
    case SUBMIT_ACCEPTED:
        respond_accepted(req, sr);
        return;
    case SUBMIT_REPLAYED:
        respond_replayed(req, sr);
        return;
    case SUBMIT_KEY_MISMATCH:
        api_problem(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "idempotency-key-reused",
                    "Unprocessable Content",
                    "this Idempotency-Key was used with a different request body");
        return;
    case SUBMIT_KEY_BUSY:
        api_problem(req, MHD_HTTP_CONFLICT, "idempotency-key-in-flight", "Conflict",
                    "a request with this Idempotency-Key is still being processed");
        api_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        return;
    case SUBMIT_REJECTED:
        api_problem(req, MHD_HTTP_BAD_REQUEST, "validation", "Invalid Request",
                    "the task's values were refused by the database; nothing was stored");
        return;
    case SUBMIT_UNAVAILABLE:
        api_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "broker-unavailable", "Service Unavailable",
                    "the task was stored but the broker did not acknowledge it in time; it "
                    "will be published without further action (retry with the same "
                    "Idempotency-Key to get it back)");
        api_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "5");
        return;
    case SUBMIT_DB_DOWN:
    case SUBMIT_OVERLOADED:
    default:
        api_problem_unavailable(req,
                                "the task could not be stored; nothing was accepted, retry later");
        return;
    }
}

/* Reads the Idempotency-Key header (draft-ietf-httpapi-idempotency-key-header: an
 * sf-string, so surrounding quotes are accepted and dropped) and fingerprints the
 * canonical body; prepares the 400 and returns false when the key is malformed. */
static bool read_idempotency(struct api_request *req, struct api_call *call, const cJSON *root)
{
    const char *h = api_header(req, "Idempotency-Key");
    struct idem_claim *c = &call->submit.idem;
    size_t len;
    char *canon;
    if (!h)
        return true;
    len = strlen(h);
    if (len >= 2 && h[0] == '"' && h[len - 1] == '"') {
        h++;
        len -= 2;
    }
    if (len == 0 || len > IDEM_KEY_MAX) {
        api_problem(req, MHD_HTTP_BAD_REQUEST, "idempotency-key", "Invalid Idempotency-Key",
                    "Idempotency-Key must be 1..%d printable ASCII characters", IDEM_KEY_MAX);
        return false;
    }
    memcpy(call->idem_key, h, len);
    call->idem_key[len] = '\0';
    if (!model_idem_key_valid(call->idem_key)) {
        api_problem(req, MHD_HTTP_BAD_REQUEST, "idempotency-key", "Invalid Idempotency-Key",
                    "Idempotency-Key must be 1..%d printable ASCII characters", IDEM_KEY_MAX);
        return false;
    }
    canon = jsonx_canonical_text(root, req->body, req->body_len);
    if (!canon) {
        api_problem_oom(req);
        return false;
    }
    crypto_hash_sha256(c->fingerprint, (const unsigned char *)canon, strlen(canon));
    free(canon);
    c->method = "POST";
    c->route = "/tasks";
    c->key = call->idem_key;
    c->expires_at = model_now_us() + (int64_t)req->api->cfg.idempotency_ttl_s * 1000000;
    return true;
}

/* Runs on a pipeline thread: answer and resume, unless the deadline did. */
static void on_submitted(struct submit_request *sreq, void *opaque)
{
    (void)sreq;
    api_call_finish(opaque);
}

static void release_submitted(struct api_call *call)
{
    model_task_release(&call->submit.task);
    free(call->submit.view);
    call->submit.view = NULL;
    free(call->submit.idem.response_body);
    call->submit.idem.response_body = NULL;
}

/* What the deadline's 503 says: the pipeline may still store and publish it. */
static const char late_detail[] =
    "the task was not confirmed within the request deadline; it may have been stored, and a "
    "stored task is published without further action (retry with the same Idempotency-Key "
    "to get it back rather than a second one)";

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
    cJSON *root = api_limit_tasks(req) ? api_body_json(req) : NULL; /* 429 before parsing */
    struct api_call *call;

    if (!root)
        return;
    /* validation first: a request that fails it stores nothing under its key */
    if (!api_body_spec(req, root, spec) || !check_fields(req, &b, &run_at)) {
        cJSON_Delete(root);
        return;
    }
    call = api_call_new(req, respond_submitted, release_submitted);
    if (!call) {
        cJSON_Delete(root);
        api_problem_oom(req);
        return;
    }
    if (!read_idempotency(req, call, root)) {
        cJSON_Delete(root);
        api_call_free(call);
        return;
    }
    if (!build_task(req, call, &b, run_at)) {
        cJSON_Delete(root);
        api_call_free(call);
        api_problem_oom(req);
        return;
    }
    cJSON_Delete(root);
    /* an open breaker refuses before anything is stored or waits behind it */
    if (api_refuse_if_open(req, req->api->deps.db_guard, "the task store (MariaDB)") ||
        api_refuse_if_open(req, req->api->deps.queue_guard, "the broker (Kafka)")) {
        api_call_free(call);
        return;
    }
    call->submit.done = on_submitted;
    call->submit.opaque = call;
    call->late_detail = late_detail;
    api_suspend(req);
    api_call_start(call);
    if (submit_enqueue(req->api->deps.submit, &call->submit) < 0)
        api_call_finish(call); /* answers with the refusal submit_enqueue set */
}
