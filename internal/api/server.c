/* api — the libmicrohttpd daemon, the access handler's state machine, the access log. */
#include "api/api_int.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "auth/auth.h"
#include "config/config.h"
#include "log/log.h"
#include "metrics/metrics.h"

/* Header names and values we echo must be safe to put back on the wire. */
static bool printable(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++) {
        if (n >= max || s[n] < 0x21 || s[n] > 0x7e)
            return false;
    }
    return n > 0;
}

static void init_ids(struct api_request *req)
{
    const char *rid = api_header(req, "X-Request-Id");
    const char *tp = api_header(req, "traceparent");
    if (rid && printable(rid, sizeof req->request_id - 1)) {
        snprintf(req->request_id, sizeof req->request_id, "%s", rid);
    } else {
        struct ids_id id;
        if (ids_new_v7(&id) == 0)
            ids_format(&id, req->request_id);
    }
    if (tp && model_traceparent_valid(tp, strlen(tp)))
        memcpy(req->traceparent, tp, MODEL_TRACEPARENT_LEN + 1);
    else if (model_traceparent_new(req->traceparent) < 0)
        req->traceparent[0] = '\0';
}

static struct api_request *request_new(struct api *api, struct MHD_Connection *conn,
                                       const char *url, const char *method)
{
    struct api_request *req = calloc(1, sizeof *req);
    bool known = false;
    if (!req)
        return NULL;
    req->api = api;
    req->conn = conn;
    req->method = method;
    req->start_us = model_now_us();
    snprintf(req->path, sizeof req->path, "%s", url);
    init_ids(req);
    req->route = api_route_match(req, method, url, &known);
    if (!req->route) {
        if (known)
            api_problem(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method-not-allowed",
                        "Method Not Allowed", "%s is not allowed on %s", method, req->path);
        else
            api_problem(req, MHD_HTTP_NOT_FOUND, "not-found", "Not Found", "no route for %s",
                        req->path);
    }
    return req;
}

/* The announced body length against the limit: 0 fits, 1 too large (read it and
 * throw it away, so the client sees the 413 on a live connection), 2 far too large
 * or unparsable (answer at once and close rather than read it). */
static int content_length_verdict(struct api_request *req)
{
    const char *cl = api_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    long long max = req->api->cfg.max_body_bytes;
    char *end;
    long long v;
    if (!cl)
        return 0;
    v = strtoll(cl, &end, 10);
    if (*end != '\0' || v < 0 || v > 8 * max)
        return 2;
    return v > max ? 1 : 0;
}

static void body_append(struct api_request *req, const char *data, size_t len)
{
    size_t need = req->body_len + len + 1;
    if (req->body_too_large)
        return;
    if (req->body_len + len > (size_t)req->api->cfg.max_body_bytes) {
        req->body_too_large = true;
        return;
    }
    if (need > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 1024;
        char *b;
        while (cap < need)
            cap *= 2;
        b = realloc(req->body, cap);
        if (!b) {
            req->body_too_large = true; /* treated alike: we cannot hold it */
            return;
        }
        req->body = b;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
}

/* Checks "Authorization: Bearer <token>"; prepares the 401 and returns false. */
static bool authenticate(struct api_request *req)
{
    const char *h = api_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    int rc;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        api_problem(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "Unauthorized",
                    "a Bearer access token is required (POST /auth/login)");
        api_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"dispatch\"");
        return false;
    }
    h += 7;
    rc = auth_token_verify(req->api->deps.auth, h, strlen(h), (int64_t)time(NULL), &req->user);
    if (rc != AUTH_OK) {
        api_problem(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "Unauthorized",
                    "the access token is not valid: %s", auth_strerror(rc));
        api_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                       "Bearer realm=\"dispatch\", error=\"invalid_token\"");
        return false;
    }
    return true;
}

static void dispatch(struct api_request *req)
{
    if (!req->route)
        return; /* the 404/405 was prepared on the first call */
    if (req->body_too_large) {
        api_problem(req, MHD_HTTP_CONTENT_TOO_LARGE, "payload-too-large", "Content Too Large",
                    "the body exceeds %lld bytes", req->api->cfg.max_body_bytes);
        return;
    }
    if (req->route->needs_auth && !authenticate(req))
        return;
    req->route->handler(req);
}

static enum MHD_Result queue_prepared(struct api_request *req)
{
    enum MHD_Result r;
    if (!req->response)
        api_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "Internal Server Error",
                    "the request produced no response");
    if (!req->response)
        return MHD_NO;
    MHD_add_response_header(req->response, "X-Request-Id", req->request_id);
    r = MHD_queue_response(req->conn, req->status, req->response);
    MHD_destroy_response(req->response);
    req->response = NULL;
    req->state = REQ_QUEUED;
    return r;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    struct api *api = cls;
    struct api_request *req = *con_cls;
    (void)version;

    if (!req) {
        /* first call: headers only. Answer nothing yet, or keep-alive is lost */
        req = request_new(api, conn, url, method);
        if (!req)
            return MHD_NO;
        *con_cls = req;
        if (req->route) {
            int verdict = content_length_verdict(req);
            req->body_too_large = verdict > 0;
            if (verdict == 2) {
                /* MHD closes the connection after this answer, unread body and all */
                dispatch(req);
                return queue_prepared(req);
            }
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        body_append(req, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->state == REQ_READING) {
        req->state = REQ_DISPATCHED;
        if (!req->response)
            dispatch(req);
        if (req->suspended) {
            /* the response comes from another thread, which resumes us; until
             * then req->response is that thread's to write */
            req->suspended = false;
            return MHD_YES;
        }
    }
    if (req->state == REQ_QUEUED)
        return MHD_YES;
    return queue_prepared(req);
}

static void access_log(const struct api_request *req, unsigned int status)
{
    char trace[33] = "";
    double ms = (double)(model_now_us() - req->start_us) / 1000.0;
    if (req->traceparent[0])
        model_traceparent_trace_id(req->traceparent, trace);
    log_info("request", LOG_S("request_id", req->request_id),
             LOG_S("trace_id", trace[0] ? trace : NULL), LOG_S("method", req->method),
             LOG_S("path", req->path), LOG_S("route", req->route ? req->route->name : "unmatched"),
             LOG_I("status", status), LOG_D("latency_ms", ms));
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct api_request *req = *con_cls;
    unsigned int status;
    (void)cls;
    (void)conn;
    if (!req)
        return;
    status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? req->status : 0;
    access_log(req, status);
    metrics_http_request(req->api->deps.metrics, req->route ? req->route->name : "unmatched",
                         req->method, status, (double)(model_now_us() - req->start_us) / 1e6);
    if (req->response)
        MHD_destroy_response(req->response);
    api_wipe_credentials(req);
    free(req->body);
    free(req);
    *con_cls = NULL;
}

void api_suspend(struct api_request *req)
{
    req->suspended = true;
    MHD_suspend_connection(req->conn);
}

void api_complete(struct api_request *req)
{
    /* after this call another MHD thread may run the request to its end and free
     * it: nothing may read req afterwards */
    MHD_resume_connection(req->conn);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    (void)cls;
    vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = '\0';
    log_warn("libmicrohttpd", LOG_S("detail", buf));
}

int api_new(const struct api_config *cfg, const struct api_deps *deps, struct api **ret_api)
{
    struct api *api = calloc(1, sizeof *api);
    struct sockaddr_storage ss;
    socklen_t sslen;
    const union MHD_DaemonInfo *info;
    unsigned int flags =
        MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (!api)
        return -1;
    api->cfg = *cfg;
    api->deps = *deps;
    if (config_resolve_addr(cfg->addr, &ss, &sslen) < 0) {
        log_error("cannot resolve listen address", LOG_S("addr", cfg->addr));
        free(api);
        return -1;
    }
    if (cfg->request_deadline_ms > 0 && deadline_new(NULL, &api->timer) < 0) {
        free(api);
        return -1;
    }
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    api->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, api, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, api,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)cfg->threads, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)cfg->per_ip_connections,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32 * 1024, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, api, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_END);
    if (!api->daemon) {
        log_error("cannot start HTTP server", LOG_S("addr", cfg->addr));
        deadline_free(api->timer);
        free(api);
        return -1;
    }
    info = MHD_get_daemon_info(api->daemon, MHD_DAEMON_INFO_BIND_PORT);
    api->port = info ? info->port : 0;
    *ret_api = api;
    return 0;
}

int api_port(const struct api *api)
{
    return api->port;
}

void api_quiesce(struct api *api)
{
    if (api && api->daemon)
        MHD_quiesce_daemon(api->daemon);
}

void api_free(struct api *api)
{
    if (!api)
        return;
    if (api->daemon)
        MHD_stop_daemon(api->daemon);
    deadline_free(api->timer); /* every call has ended: the pipeline and pools are done */
    free(api);
}
