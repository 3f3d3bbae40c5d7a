/* GET /tasks?status=&type=&limit=&cursor= — the caller's tasks, newest first.
 *
 * Keyset pagination: the cursor is the base64url (no padding) of the last id of the
 * previous page, so a page costs one index range scan however deep it is, and tasks
 * submitted meanwhile never shift the pages that follow.  Clients treat it as
 * opaque.  Filters apply to every page; changing them between pages is allowed (the
 * cursor only says "older than"). */
#include "api/api_int.h"

#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "guard/guard.h"
#include "status/status.h"
#include "workpool/workpool.h"

#define LIMIT_DEFAULT 20
#define CURSOR_LEN    22 /* base64url of 16 bytes, unpadded */

/* Strict: exactly 22 base64url characters whose unused low bits are zero, so each
 * id has one cursor and anything else is malformed (libsodium checks both). */
static int cursor_decode(const char *s, struct ids_id *ret_id)
{
    struct ids_id id;
    size_t n = 0;
    const char *end = NULL;
    if (strlen(s) != CURSOR_LEN ||
        sodium_base642bin(id.b, sizeof id.b, s, CURSOR_LEN, NULL, &n, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n != sizeof id.b || end != s + CURSOR_LEN)
        return -1;
    *ret_id = id;
    return 0;
}

static bool cursor_valid(const char *s)
{
    struct ids_id id;
    return cursor_decode(s, &id) == 0;
}

static bool status_valid(const char *s)
{
    enum task_status st;
    return model_status_parse(s, &st) == 0;
}

/* {items: [task views], next_cursor: string|null} as text, or NULL on ENOMEM. */
static char *page_json(struct status_page *page)
{
    char cursor[sodium_base64_ENCODED_LEN(16, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    if (page->more)
        sodium_bin2base64(cursor, sizeof cursor, page->next.b, sizeof page->next.b,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return status_page_text(page, page->more ? cursor : NULL);
}

/* The call's answer: the page, or 503 when the store failed. */
static void respond_page(struct api_call *call, struct api_request *req)
{
    char *body;
    if (call->rc != STATUS_OK) {
        api_problem_unavailable(req, "the task store is unavailable; retry later");
        return;
    }
    body = page_json(&call->page);
    if (!body) {
        api_problem_oom(req);
        return;
    }
    api_respond_text(req, MHD_HTTP_OK, body, "application/json");
}

static void release_page(struct api_call *call)
{
    status_page_release(&call->page);
}

/* On the db pool: the query reads only the call (its strings are copies). */
static void list_job(void *arg)
{
    struct api_call *call = arg;
    call->rc = status_list(call->api->deps.status, &call->query, &call->page);
    api_call_finish(call);
}

void api_h_tasks_list(struct api_request *req)
{
    long long limit = LIMIT_DEFAULT;
    const char *status = NULL, *type = NULL, *cursor = NULL;
    const struct api_param spec[] = {
        API_PARAM_INT("limit", 1, STATUS_LIST_MAX, &limit),
        API_PARAM_STRING("status", 1, 16, status_valid,
                         "one of PENDING, QUEUED, RUNNING, RETRYING, SUCCEEDED, DEAD, CANCELED",
                         &status),
        API_PARAM_STRING("type", 1, MODEL_TYPE_MAX, model_type_valid,
                         "a task type matching ^[a-z0-9][a-z0-9._-]{0,63}$", &type),
        API_PARAM_STRING("cursor", CURSOR_LEN, CURSOR_LEN, cursor_valid,
                         "the next_cursor of an earlier page", &cursor),
        API_PARAM_END,
    };
    struct api_call *call;
    struct status_query *q;

    if (!api_query_spec(req, spec))
        return;
    if (api_refuse_if_open(req, req->api->deps.db_guard, "the task store (MariaDB)"))
        return;
    call = api_call_new(req, respond_page, release_page);
    if (!call) {
        api_problem_oom(req);
        return;
    }
    q = &call->query;
    *q = (struct status_query){.owner = req->user, .limit = (size_t)limit};
    if (type) {
        snprintf(call->type, sizeof call->type, "%s", type);
        q->type = call->type;
    }
    if (status && model_status_parse(status, &call->status) == 0)
        q->status = &call->status;
    if (cursor && cursor_decode(cursor, &call->after) == 0)
        q->after = &call->after;
    call->rc = STATUS_EUNAVAILABLE;
    call->late_detail = "the task store did not answer within the request deadline; retry later";
    api_suspend(req);
    api_call_start(call);
    if (!req->api->deps.db_pool) {
        list_job(call); /* no pool wired (tests): on this thread */
        return;
    }
    if (workpool_submit(req->api->deps.db_pool, list_job, call) < 0)
        api_call_finish(call); /* the pool is full: 503 */
}
