/* POST /auth/register and POST /auth/login.
 *
 * Both hash with argon2id (tens of milliseconds, 19 MiB each), so they run on the
 * bounded "blocking" workpool, never on an HTTP thread: the connection is
 * suspended, the job answers and resumes it.  A full pool answers 503 at once,
 * which caps concurrent hashes and the memory they take whatever the flood.
 */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

#include "account/account.h"
#include "workpool/workpool.h"

void api_wipe_credentials(struct api_request *req)
{
    size_t el, pl;
    if (!req->credentials)
        return;
    el = strlen(req->credentials);
    pl = strlen(req->credentials + el + 1);
    explicit_bzero(req->credentials, el + pl + 2);
    free(req->credentials);
    req->credentials = NULL;
    if (req->body)
        explicit_bzero(req->body, req->body_cap); /* the raw JSON held the password */
}

static const char *cred_email(const struct api_request *req)
{
    return req->credentials;
}

static const char *cred_password(const struct api_request *req)
{
    return req->credentials + strlen(req->credentials) + 1;
}

/* Reads {email, password} into req->credentials; prepares the 400 otherwise. */
static bool read_credentials(struct api_request *req)
{
    const char *email = NULL, *password = NULL;
    const struct jsonx_field spec[] = {
        JSONX_STRING("email", true, 1, 1024, &email),
        JSONX_STRING("password", true, 1, 1024, &password),
        JSONX_END,
    };
    cJSON *root = api_body_json(req);
    size_t el, pl;
    if (!root)
        return false;
    if (!api_body_spec(req, root, spec) || !api_limit_auth(req, email)) {
        cJSON_Delete(root);
        return false;
    }
    el = strlen(email);
    pl = strlen(password);
    req->credentials = malloc(el + pl + 2);
    if (req->credentials) {
        memcpy(req->credentials, email, el + 1);
        memcpy(req->credentials + el + 1, password, pl + 1);
    }
    explicit_bzero((void *)password, pl);
    cJSON_Delete(root);
    if (!req->credentials) {
        api_problem_oom(req);
        return false;
    }
    return true;
}

static void offload(struct api_request *req, workpool_fn job)
{
    api_suspend(req);
    if (workpool_submit(req->api->deps.blocking, job, req) == 0)
        return;
    api_wipe_credentials(req);
    api_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "overloaded", "Service Unavailable",
                "too many sign-ins in progress; retry shortly");
    api_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    api_complete(req);
}

static void register_job(void *arg)
{
    struct api_request *req = arg;
    char email[ACCOUNT_EMAIL_MAX + 1], id_text[IDS_TEXT_LEN + 1], created[32];
    struct ids_id id;
    int64_t created_at;
    cJSON *body;
    int rc = account_register(req->api->deps.account, cred_email(req), cred_password(req), &id,
                              &created_at, email);
    api_wipe_credentials(req);
    switch (rc) {
    case ACCOUNT_OK:
        break;
    case ACCOUNT_EEMAIL:
        api_problem(req, MHD_HTTP_BAD_REQUEST, "validation", "Invalid Request",
                    "email: not a valid email address");
        goto out;
    case ACCOUNT_EPASSWORD:
        api_problem(req, MHD_HTTP_BAD_REQUEST, "validation", "Invalid Request",
                    "password: must be %d..%d characters of UTF-8", ACCOUNT_PASSWORD_MIN,
                    ACCOUNT_PASSWORD_MAX);
        goto out;
    case ACCOUNT_ETAKEN:
        api_problem(req, MHD_HTTP_CONFLICT, "email-taken", "Conflict",
                    "an account with this email exists");
        goto out;
    default:
        api_problem_unavailable(req, "accounts are unavailable; retry later");
        goto out;
    }
    ids_format(&id, id_text);
    model_time_format(created_at, created);
    body = cJSON_CreateObject();
    if (body && cJSON_AddStringToObject(body, "id", id_text) &&
        cJSON_AddStringToObject(body, "email", email) &&
        cJSON_AddStringToObject(body, "created_at", created))
        api_respond_json(req, MHD_HTTP_CREATED, body);
    else
        api_problem_oom(req);
    cJSON_Delete(body);
out:
    api_complete(req);
}

static void login_job(void *arg)
{
    struct api_request *req = arg;
    char token[AUTH_TOKEN_MAX];
    int expires_in = 0;
    cJSON *body;
    int rc = account_login(req->api->deps.account, cred_email(req), cred_password(req), token,
                           &expires_in);
    api_wipe_credentials(req);
    if (rc == ACCOUNT_EDENIED) {
        api_problem(req, MHD_HTTP_UNAUTHORIZED, "invalid-credentials", "Unauthorized",
                    "unknown email or wrong password");
    } else if (rc != ACCOUNT_OK) {
        api_problem_unavailable(req, "accounts are unavailable; retry later");
    } else {
        body = cJSON_CreateObject();
        if (body && cJSON_AddStringToObject(body, "access_token", token) &&
            cJSON_AddStringToObject(body, "token_type", "Bearer") &&
            cJSON_AddNumberToObject(body, "expires_in", expires_in)) {
            api_respond_json(req, MHD_HTTP_OK, body);
            api_add_header(req, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        } else {
            api_problem_oom(req);
        }
        cJSON_Delete(body);
        explicit_bzero(token, sizeof token);
    }
    api_complete(req);
}

void api_h_register(struct api_request *req)
{
    if (read_credentials(req))
        offload(req, register_job);
}

void api_h_login(struct api_request *req)
{
    if (read_credentials(req))
        offload(req, login_job);
}
