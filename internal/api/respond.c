/* api — the helpers every endpoint shares: responses, problems, body parsing. */
#include "api/api_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* relative URIs (RFC 9457 §3.1.1), documented in docs/api.md */
#define PROBLEM_BASE "/problems/"

void api_respond_text(struct api_request *req, unsigned int status, char *body, const char *type)
{
    struct MHD_Response *r;
    if (req->response) {
        MHD_destroy_response(req->response);
        req->response = NULL;
    }
    r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    req->status = status;
    req->response = r;
}

void api_respond_json(struct api_request *req, unsigned int status, const cJSON *json)
{
    char *text = cJSON_PrintUnformatted(json);
    if (!text) {
        api_problem_oom(req);
        return;
    }
    api_respond_text(req, status, text, "application/json");
}

/* The last resort when even a problem cannot be built: a static body. */
static void respond_static_500(struct api_request *req)
{
    static const char body[] = "{\"type\":\"" PROBLEM_BASE "internal\",\"title\":\"Internal "
                               "Server Error\",\"status\":500}";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (req->response)
        MHD_destroy_response(req->response);
    req->response = r;
    req->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    if (r)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/problem+json");
}

void api_problem(struct api_request *req, unsigned int status, const char *type, const char *title,
                 const char *fmt, ...)
{
    char detail[512], type_uri[128];
    va_list ap;
    cJSON *p = cJSON_CreateObject();
    char *text;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    snprintf(type_uri, sizeof type_uri, PROBLEM_BASE "%s", type);
    if (!p || !cJSON_AddStringToObject(p, "type", type_uri) ||
        !cJSON_AddStringToObject(p, "title", title) ||
        !cJSON_AddNumberToObject(p, "status", status) ||
        !cJSON_AddStringToObject(p, "detail", detail) ||
        !cJSON_AddStringToObject(p, "request_id", req->request_id) ||
        !(text = cJSON_PrintUnformatted(p))) {
        cJSON_Delete(p);
        respond_static_500(req);
        return;
    }
    cJSON_Delete(p);
    api_respond_text(req, status, text, "application/problem+json");
}

void api_problem_oom(struct api_request *req)
{
    api_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "Internal Server Error",
                "out of memory");
}

void api_problem_unavailable(struct api_request *req, const char *detail)
{
    api_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable", "Service Unavailable", "%s",
                detail);
    api_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

void api_add_header(struct api_request *req, const char *name, const char *value)
{
    if (req->response)
        MHD_add_response_header(req->response, name, value);
}

const char *api_header(struct api_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static bool is_json_type(const char *ct)
{
    size_t n = strlen("application/json");
    if (!ct || strncasecmp(ct, "application/json", n) != 0)
        return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

cJSON *api_body_json(struct api_request *req)
{
    cJSON *root = NULL;
    int rc;
    if (!is_json_type(api_header(req, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        api_problem(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type",
                    "Unsupported Media Type", "the body must be application/json");
        return NULL;
    }
    rc =
        jsonx_parse(req->body ? req->body : "", req->body_len, req->api->cfg.json_max_depth, &root);
    if (rc != JSONX_OK) {
        api_problem(req, MHD_HTTP_BAD_REQUEST, "malformed-json", "Malformed JSON",
                    "the body is not valid JSON: %s", jsonx_strerror(rc));
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        api_problem(req, MHD_HTTP_BAD_REQUEST, "validation", "Invalid Request",
                    "the body must be a JSON object");
        return NULL;
    }
    return root;
}

bool api_body_spec(struct api_request *req, const cJSON *obj, const struct jsonx_field *spec)
{
    struct jsonx_error err;
    if (jsonx_spec_parse(obj, spec, true, &err) == 0)
        return true;
    api_problem(req, MHD_HTTP_BAD_REQUEST, "validation", "Invalid Request", "%s%s%s",
                err.field ? err.field : "", err.field ? ": " : "", err.reason);
    return false;
}
