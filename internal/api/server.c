/* api — the libmicrohttpd daemon, the access handler's state machine, the access log. */
#include "api/api_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
    req->guard = api__guard_of(conn);
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

/* Does the request announce a body (a length other than 0, or chunks)? */
static bool has_body(struct api_request *req)
{
    const char *cl = api_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return api_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING) || (cl && strcmp(cl, "0") != 0);
}

/* The announced body length against the route's cap: 0 fits (*ret_len is the length,
 * -1 if none was announced), 1 too large (read it and throw it away, so the client
 * sees the 413 on a live connection), 2 far too large or unparsable (answer at once
 * and close rather than read it). */
static int content_length_verdict(struct api_request *req, long long *ret_len)
{
    const char *cl = api_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    long long max = req->body_limit;
    char *end;
    long long v;
    *ret_len = -1;
    if (!cl)
        return 0;
    errno = 0;
    v = strtoll(cl, &end, 10);
    if (errno || end == cl || *end != '\0' || v < 0 || v > 8 * max)
        return 2;
    *ret_len = v;
    return v > max ? 1 : 0;
}

static void body_drop(struct api_request *req)
{
    req->body_discard = true;
    if (req->body)
        explicit_bzero(req->body, req->body_cap); /* it may hold a password */
    free(req->body);
    req->body = NULL;
    req->body_len = req->body_cap = 0;
}

static void body_append(struct api_request *req, const char *data, size_t len)
{
    size_t need = req->body_len + len + 1;
    if (req->body_len + len > (size_t)req->body_limit) {
        req->body_too_large = true;
        body_drop(req);
        return;
    }
    if (need > req->body_cap) {
        /* an announced length was reserved whole: one allocation of that size */
        size_t cap = req->body_reserved >= need ? req->body_reserved
                     : req->body_cap            ? req->body_cap
                                                : 1024;
        char *b;
        while (cap < need)
            cap *= 2;
        if (cap > (size_t)req->body_limit + 1)
            cap = (size_t)req->body_limit + 1;
        if (cap > req->body_reserved) {
            if (!api__budget_take(req->api, cap - req->body_reserved)) {
                req->body_over_budget = true;
                body_drop(req);
                return;
            }
            req->body_reserved = cap;
        }
        b = realloc(req->body, cap);
        if (!b) {
            req->body_too_large = true; /* treated alike: we cannot hold it */
            body_drop(req);
            return;
        }
        req->body = b;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    req->body[req->body_len] = '\0';
}

/* Checks "Authorization: Bearer <token>"; prepares the 401 and returns false.  The
 * detail is the same whatever is wrong with a token (expired, malformed, badly
 * signed): the reason is logged, not told. */
static bool authenticate(struct api_request *req)
{
    const char *h = api_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    int rc;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        api_problem(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "Unauthorized",
                    "a valid Bearer access token is required (POST /auth/login)");
        api_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"dispatch\"");
        return false;
    }
    h += 7;
    rc = auth_token_verify(req->api->deps.auth, h, strlen(h), (int64_t)time(NULL), &req->user);
    if (rc != AUTH_OK) {
        log_debug("token refused", LOG_S("request_id", req->request_id),
                  LOG_S("reason", auth_strerror(rc)));
        api_problem(req, MHD_HTTP_UNAUTHORIZED, "unauthorized", "Unauthorized",
                    "a valid Bearer access token is required (POST /auth/login)");
        api_add_header(req, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                       "Bearer realm=\"dispatch\", error=\"invalid_token\"");
        return false;
    }
    return true;
}

static void refuse_closing(struct api_request *req)
{
    api_problem_unavailable(req, "the service is shutting down; retry on a new connection");
    api_add_header(req, MHD_HTTP_HEADER_CONNECTION, "close");
}

static void refuse_budget(struct api_request *req)
{
    api_problem_unavailable(req, "too many request bodies are being read; retry shortly");
}

/* The first call: headers only, no body byte read yet.  Decides what can be decided
 * from them: true when the answer is prepared and must be queued now (which closes
 * the connection, the body unread), false to go on reading the body. */
static bool first_call(struct api_request *req)
{
    struct api *api = req->api;
    long long len;
    int verdict;
    if (!req->route)
        return has_body(req); /* the 404/405 is prepared: read no body for it */
    if (atomic_load(&api->closing)) {
        refuse_closing(req);
        return true;
    }
    if (req->route->needs_auth && !authenticate(req))
        return true;
    req->body_limit =
        req->route->needs_auth ? api->cfg.max_body_bytes : api->cfg.anon_max_body_bytes;
    verdict = content_length_verdict(req, &len);
    if (verdict == 2) {
        api_problem(req, MHD_HTTP_CONTENT_TOO_LARGE, "payload-too-large", "Content Too Large",
                    "the body exceeds %lld bytes", req->body_limit);
        return true;
    }
    if (verdict == 1) {
        req->body_too_large = true;
        req->body_discard = true;
    } else if (len > 0) {
        if (!api__budget_take(api, (size_t)len + 1)) {
            refuse_budget(req);
            return true;
        }
        req->body_reserved = (size_t)len + 1;
    }
    if (has_body(req))
        api__guard_body_start(api, req->guard);
    return false;
}

/* The body is in: answer, or hand the request to its handler.  The handler runs only
 * while the api is not closing (api_quiesce() waits for the running ones). */
static void dispatch(struct api_request *req)
{
    struct api *api = req->api;
    if (req->response)
        return; /* decided on the first call */
    if (req->body_too_large) {
        api_problem(req, MHD_HTTP_CONTENT_TOO_LARGE, "payload-too-large", "Content Too Large",
                    "the body exceeds %lld bytes", req->body_limit);
        return;
    }
    if (req->body_over_budget) {
        refuse_budget(req);
        return;
    }
    atomic_fetch_add(&api->in_handlers, 1);
    if (atomic_load(&api->closing))
        refuse_closing(req);
    else
        req->route->handler(req);
    atomic_fetch_sub(&api->in_handlers, 1);
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
        /* first call: headers only.  Answer nothing yet, or keep-alive is lost —
         * unless the answer is already known and a body would follow: then answer
         * at once and let MHD close the connection, the body unread */
        req = request_new(api, conn, url, method);
        if (!req)
            return MHD_NO;
        *con_cls = req;
        if (first_call(req)) {
            api__guard_busy(req->guard);
            return queue_prepared(req);
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        req->body_seen += *upload_size;
        api__guard_body_progress(api, req->guard, req->body_seen);
        if (!req->body_discard && !req->response)
            body_append(req, upload, *upload_size);
        else if (req->body_seen > 8 * (size_t)(req->body_limit > 0 ? req->body_limit : 1024))
            return MHD_NO; /* a body to drop that does not end: cut it off */
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->state == REQ_READING) {
        req->state = REQ_DISPATCHED;
        api__guard_busy(req->guard);
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
    if (req->body_reserved)
        api__budget_give(req->api, req->body_reserved);
    api__guard_served(req->guard);
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
    api->quiesced_fd = -1;
    atomic_init(&api->closing, false);
    atomic_init(&api->in_handlers, 0);
    if (config_resolve_addr(cfg->addr, &ss, &sslen) < 0) {
        log_error("cannot resolve listen address", LOG_S("addr", cfg->addr));
        goto out_api;
    }
    if (cfg->request_deadline_ms > 0 && deadline_new(NULL, &api->timer) < 0) {
        free(api);
        return -1;
    }
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (api__guard_start(api) < 0) {
        log_error("cannot start the connection guard", LOG_NONE);
        goto out_api;
    }
    /* MHD gives every connection its whole memory pool and zeroes it after each
     * request: the pool is what an idle kept-alive connection costs.  It holds the
     * request head, the read buffer and the response's header. */
    api->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, api, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, api,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned int)cfg->threads, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)cfg->per_ip_connections,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cfg->connection_memory_bytes,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, api, MHD_OPTION_NOTIFY_CONNECTION,
        api__guard_notify, api, MHD_OPTION_URI_LOG_CALLBACK, api__guard_request_line, api,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_END);
    if (!api->daemon) {
        log_error("cannot start HTTP server", LOG_S("addr", cfg->addr));
        goto out_guard;
    }
    info = MHD_get_daemon_info(api->daemon, MHD_DAEMON_INFO_BIND_PORT);
    api->port = info ? info->port : 0;
    *ret_api = api;
    return 0;
out_guard:
    api__guard_stop(api);
out_api:
    deadline_free(api->timer);
    free(api);
    return -1;
}

int api_port(const struct api *api)
{
    return api->port;
}

void api_quiesce(struct api *api)
{
    MHD_socket fd;
    if (!api || !api->daemon || atomic_exchange(&api->closing, true))
        return;
    fd = MHD_quiesce_daemon(api->daemon);
    if (fd != MHD_INVALID_SOCKET) {
        /* MHD no longer polls it, but it may be closed only after MHD_stop_daemon;
         * on Linux shutting it down ends the listen: connects are refused at once
         * instead of waiting in the backlog for an accept that never comes */
        shutdown(fd, SHUT_RD);
        api->quiesced_fd = fd;
    }
    /* a handler that saw closing == false may still be running: wait it out.
     * Handlers do not block for long (the pipeline's calls are asynchronous). */
    while (atomic_load(&api->in_handlers) > 0) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

void api_free(struct api *api)
{
    if (!api)
        return;
    if (api->daemon)
        MHD_stop_daemon(api->daemon);
    api__guard_stop(api); /* after MHD: every connection is unregistered */
    if (api->quiesced_fd >= 0)
        close(api->quiesced_fd);
    deadline_free(api->timer); /* every call has ended: the pipeline and pools are done */
    free(api);
}
