/* GET /tasks?status=&type=&limit=&cursor= — the caller's tasks, newest first.
 *
 * Keyset pagination: the cursor is the base64url (no padding) of the last id of the
 * previous page, so a page costs one index range scan however deep it is, and tasks
 * submitted meanwhile never shift the pages that follow.  Clients treat it as
 * opaque.  Filters apply to every page; changing them between pages is allowed (the
 * cursor only says "older than"). */
#include "api/api_int.h"

#include <string.h>
#include <sodium.h>

#include "status/status.h"

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
    struct status_query q = {.owner = req->user};
    struct status_page page;
    enum task_status st;
    struct ids_id after;
    char *body;

    if (!api_query_spec(req, spec))
        return;
    q.limit = (size_t)limit;
    q.type = type;
    if (status && model_status_parse(status, &st) == 0)
        q.status = &st;
    if (cursor && cursor_decode(cursor, &after) == 0)
        q.after = &after;
    if (status_list(req->api->deps.status, &q, &page) != STATUS_OK) {
        api_problem_unavailable(req, "the task store is unavailable; retry later");
        return;
    }
    body = page_json(&page);
    status_page_release(&page);
    if (!body) {
        api_problem_oom(req);
        return;
    }
    api_respond_text(req, MHD_HTTP_OK, body, "application/json");
}
