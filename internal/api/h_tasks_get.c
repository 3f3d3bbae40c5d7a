/* GET /tasks/{id}[?wait=N] — the task's view with its ETag; If-None-Match that
 * matches it answers 304 without a body (etag.c).
 *
 * Reads go through the status reader (status.h): an in-process cache hit is answered
 * on this thread; a miss suspends the connection and is answered from the reader's
 * pool (Redis, then MariaDB), so no HTTP thread waits on either.
 *
 * ?wait=N (0..30 s) long-polls: when the client already has the current version (its
 * If-None-Match names the current ETag, or it sent none), the request is suspended
 * until the task changes (woken by the invalidation event, not by polling) or N
 * seconds pass; it is then answered as any GET: 200 with the new view, or at the
 * deadline 304 (If-None-Match) or the unchanged 200 (no If-None-Match).  A client
 * whose ETag is already stale is answered at once. */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

#include "status/status.h"

#define WAIT_MAX_S 30

static void respond(struct api_request *req, int rc, const struct status_view *v);

/* The store-only path, for an api built without a status reader. */
static void get_uncached(struct api_request *req, const struct ids_id *id)
{
    struct task t;
    char etag[API_ETAG_LEN + 1];
    char *view;
    int rc;

    rc = status_get(req->api->deps.status, id, &req->user, &t);
    if (rc != STATUS_OK) {
        respond(req, rc, NULL);
        return;
    }
    api_etag(&t, etag);
    view = model_task_view_text(&t);
    model_task_release(&t);
    if (!view) {
        api_problem_oom(req);
        return;
    }
    if (api_if_none_match(req, etag)) {
        api_respond_not_modified_text(req, etag, view);
    } else {
        api_respond_text(req, MHD_HTTP_OK, view, "application/json");
        if (req->status == MHD_HTTP_OK)
            api_add_header(req, MHD_HTTP_HEADER_ETAG, etag);
    }
}

static void etag_of(const struct status_view *v, char out[API_ETAG_LEN + 1])
{
    struct task t;
    memset(&t, 0, sizeof t);
    t.id = v->id;
    t.updated_at = v->updated_at;
    t.attempts = v->attempts;
    t.status = v->status;
    api_etag(&t, out);
}

/* 200 with the view and its ETag, or 304 when If-None-Match names it; json (the
 * view's text) is taken over. */
static void respond_view(struct api_request *req, const struct status_view *v, char *json)
{
    char etag[API_ETAG_LEN + 1];
    etag_of(v, etag);
    if (api_if_none_match(req, etag)) {
        api_respond_not_modified_text(req, etag, json);
        return;
    }
    api_respond_text(req, MHD_HTTP_OK, json, "application/json");
    if (req->status == MHD_HTTP_OK)
        api_add_header(req, MHD_HTTP_HEADER_ETAG, etag);
}

/* The answer to a read that ended with rc (view borrowed). */
static void respond(struct api_request *req, int rc, const struct status_view *v)
{
    char *json;
    if (rc == STATUS_ENOTFOUND) {
        api_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "Not Found", "no task %s", req->param);
        return;
    }
    if (rc != STATUS_OK) {
        api_problem_unavailable(req, "the task store is unavailable; retry later");
        return;
    }
    json = malloc(v->json_len + 1);
    if (!json) {
        api_problem_oom(req);
        return;
    }
    memcpy(json, v->json, v->json_len + 1);
    respond_view(req, v, json);
}

/* Does this request wait for v to change?  Only once, and only when the client has
 * v already (or named no version). */
static bool should_wait(struct api_request *req, const struct status_view *v)
{
    char etag[API_ETAG_LEN + 1];
    if (req->wait_s <= 0 || req->waited)
        return false;
    if (!api_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH))
        return true;
    etag_of(v, etag);
    return api_if_none_match(req, etag);
}

/* Registers the (suspended) request as a long-poll on v's version; false when the
 * reader refuses (stopping): answer now. */
static bool start_wait(struct api_request *req, const struct status_view *v)
{
    req->waited = true;
    status_view_version(v, &req->read.seen);
    req->read.deadline_ms = status_now_ms() + req->wait_s * 1000;
    return status_wait(req->api->deps.reader, &req->read) == 0;
}

/* The end of a lookup or of a long-poll, on a reader thread: answer and resume
 * (nothing touches req after api_complete). */
static void on_read(struct status_call *call, int rc, const struct status_view *v)
{
    struct api_request *req = call->arg;
    if (rc == STATUS_OK && should_wait(req, v) && start_wait(req, v))
        return;
    respond(req, rc, v);
    api_complete(req);
}

/* --- a plain miss (no ?wait): under the request deadline ------------------------ */

/* The call's answer: what the reader found. */
static void respond_fetched(struct api_call *call, struct api_request *req)
{
    respond(req, call->rc, call->rc == STATUS_OK ? &call->view : NULL);
}

static void release_fetched(struct api_call *call)
{
    status_view_release(&call->view);
}

/* On a reader thread: keep a copy of the (borrowed) view, then finish the call. */
static void on_fetched(struct status_call *sc, int rc, const struct status_view *v)
{
    struct api_call *call = sc->arg;
    call->rc = rc;
    if (rc == STATUS_OK) {
        call->view = *v;
        call->view.json = malloc(v->json_len + 1);
        if (call->view.json)
            memcpy(call->view.json, v->json, v->json_len + 1);
        else
            call->rc = STATUS_EUNAVAILABLE;
    }
    api_call_finish(call);
}

/* A miss without a long-poll: the reader's lookup (Redis, then MariaDB) answers, or
 * the deadline does while a lookup hangs on a dependency. */
static void fetch_under_deadline(struct api_request *req, const struct ids_id *id)
{
    struct api_call *call = api_call_new(req, respond_fetched, release_fetched);
    if (!call) {
        api_problem_oom(req);
        return;
    }
    call->rc = STATUS_EUNAVAILABLE;
    call->read =
        (struct status_call){.id = *id, .owner = req->user, .done = on_fetched, .arg = call};
    call->late_detail = "the task store did not answer within the request deadline; retry later";
    api_suspend(req);
    api_call_start(call);
    if (status_fetch(req->api->deps.reader, &call->read) != 0)
        api_call_finish(call);
}

void api_h_tasks_get(struct api_request *req)
{
    struct status_reader *reader = req->api->deps.reader;
    long long wait = 0;
    const struct api_param spec[] = {API_PARAM_INT("wait", 0, WAIT_MAX_S, &wait), API_PARAM_END};
    struct status_view v;
    struct ids_id id;
    int rc;

    if (ids_parse(req->param, strlen(req->param), &id) < 0) {
        api_problem(req, MHD_HTTP_BAD_REQUEST, "malformed-id", "Malformed Task Id",
                    "'%s' is not a UUID in canonical form", req->param);
        return;
    }
    if (!api_query_spec(req, spec))
        return;
    if (!reader) {
        get_uncached(req, &id);
        return;
    }
    req->wait_s = wait;
    req->read = (struct status_call){.id = id, .owner = req->user, .done = on_read, .arg = req};
    rc = status_cached(reader, &id, &req->user, &v);
    if (rc == STATUS_ENOTFOUND) {
        respond(req, rc, NULL);
        return;
    }
    if (rc == STATUS_OK && !should_wait(req, &v)) {
        respond_view(req, &v, v.json); /* the hot path: the LRU's copy is the body */
        return;
    }
    if (rc != STATUS_OK && wait == 0) {
        fetch_under_deadline(req, &id);
        return;
    }
    api_suspend(req);
    if (rc == STATUS_OK) {
        if (!start_wait(req, &v)) {
            respond(req, rc, &v);
            api_complete(req);
        }
        status_view_release(&v);
        return;
    }
    if (status_fetch(reader, &req->read) != 0) {
        respond(req, STATUS_EUNAVAILABLE, NULL);
        api_complete(req);
    }
}
