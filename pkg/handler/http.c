/* The http handler: POSTs a task to its route's URL with libcurl and maps the answer
 * to a handler status.  See handler.h for the contract. */
#include "handler/handler_int.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jsonx/jsonx.h"

#define DEFAULT_CONNECT_MS   10000
#define DEFAULT_MAX_RESPONSE (1024 * 1024)
#define DEFAULT_USER_AGENT   "handler-http"
#define RESULT_MAX_DEPTH     32  /* deeper answers are not taken as the result */
#define ERROR_BODY_MAX       200 /* bytes of a failed answer quoted in the error */

/* One thread's easy handle; listed in its set so that the set can free them all. */
struct http_conn {
    struct http_conn *prev, *next;
    struct handler_http *h;
    CURL *curl;
};

struct http_route {
    struct handler_http *h;
    char *url;
};

struct handler_http {
    handler_http_detail_fn on_detail;
    void *on_detail_ctx;
    int connect_timeout_ms;
    size_t max_response;
    char *user_agent;
    struct http_route **routes;
    size_t n_routes, cap_routes;
    pthread_key_t key; /* this thread's struct http_conn */
    pthread_mutex_t mu;
    struct http_conn *conns; /* guarded by mu */
};

/* The state of one call. */
struct http_call {
    const struct handler_ctx *ctx;
    char *body; /* the answer, up to max bytes */
    size_t len, cap, max;
    bool overflow; /* the answer was longer than max: transfer aborted */
    bool canceled; /* the progress callback saw the cancel flag */
};

const char *handler_http_strerror(int err)
{
    switch (err) {
    case HANDLER_HTTP_OK:
        return "ok";
    case HANDLER_HTTP_ENOMEM:
        return "out of memory";
    case HANDLER_HTTP_EINVAL:
        return "malformed route: expected type=URL with an http(s) URL";
    case HANDLER_HTTP_EEXIST:
        return "the type has a handler already";
    case HANDLER_HTTP_ECURL:
        return "libcurl could not be initialised";
    default:
        return "unknown error";
    }
}

/* --- the set and its per-thread handles -------------------------------------- */

static void conn_unlink(struct handler_http *h, struct http_conn *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        h->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
}

/* Thread exit: the thread's handle goes with it. */
static void conn_destroy(void *arg)
{
    struct http_conn *c = arg;
    pthread_mutex_lock(&c->h->mu);
    conn_unlink(c->h, c);
    pthread_mutex_unlock(&c->h->mu);
    curl_easy_cleanup(c->curl);
    free(c);
}

int handler_http_new(const struct handler_http_config *cfg, struct handler_http **ret_h)
{
    if (cfg == NULL || cfg->connect_timeout_ms < 0) {
        return HANDLER_HTTP_EINVAL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return HANDLER_HTTP_ECURL;
    }
    int rc = HANDLER_HTTP_ENOMEM;
    struct handler_http *h = calloc(1, sizeof *h);
    if (h == NULL) {
        goto out_global;
    }
    h->on_detail = cfg->on_detail;
    h->on_detail_ctx = cfg->on_detail_ctx;
    h->connect_timeout_ms =
        cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : DEFAULT_CONNECT_MS;
    h->max_response = cfg->max_response_bytes > 0 ? cfg->max_response_bytes : DEFAULT_MAX_RESPONSE;
    h->user_agent = strdup(cfg->user_agent != NULL ? cfg->user_agent : DEFAULT_USER_AGENT);
    if (h->user_agent == NULL) {
        goto out_free;
    }
    if (pthread_mutex_init(&h->mu, NULL) != 0) {
        goto out_agent;
    }
    if (pthread_key_create(&h->key, conn_destroy) != 0) {
        goto out_mutex;
    }
    *ret_h = h;
    return HANDLER_HTTP_OK;

out_mutex:
    pthread_mutex_destroy(&h->mu);
out_agent:
    free(h->user_agent);
out_free:
    free(h);
out_global:
    curl_global_cleanup();
    return rc;
}

void handler_http_free(struct handler_http *h)
{
    if (h == NULL) {
        return;
    }
    /* no destructor runs after this; the handles of live threads are freed here */
    pthread_key_delete(h->key);
    while (h->conns != NULL) {
        struct http_conn *c = h->conns;
        h->conns = c->next;
        curl_easy_cleanup(c->curl);
        free(c);
    }
    for (size_t i = 0; i < h->n_routes; i++) {
        free(h->routes[i]->url);
        free(h->routes[i]);
    }
    free(h->routes);
    pthread_mutex_destroy(&h->mu);
    free(h->user_agent);
    free(h);
    curl_global_cleanup();
}

/* This thread's handle, reset for a new request (its connections kept), or NULL. */
static CURL *thread_handle(struct handler_http *h)
{
    struct http_conn *c = pthread_getspecific(h->key);
    if (c != NULL) {
        curl_easy_reset(c->curl);
        return c->curl;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->h = h;
    c->curl = curl_easy_init();
    if (c->curl == NULL || pthread_setspecific(h->key, c) != 0) {
        curl_easy_cleanup(c->curl);
        free(c);
        return NULL;
    }
    pthread_mutex_lock(&h->mu);
    c->next = h->conns;
    if (h->conns != NULL) {
        h->conns->prev = c;
    }
    h->conns = c;
    pthread_mutex_unlock(&h->mu);
    return c->curl;
}

/* --- one call ------------------------------------------------------------------ */

static int fail_with(struct handler_out *out, int status, const char *msg)
{
    out->error = strdup(msg);
    return status;
}

/* {"id":..,"type":..,"payload":<payload>,"attempt":N}: the head is printed by cJSON
 * (escaping), the payload spliced in as the JSON text it already is. */
static char *request_body(const struct handler_ctx *ctx, size_t *ret_len)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL) {
        return NULL;
    }
    char *head = NULL;
    if (cJSON_AddStringToObject(o, "id", ctx->task_id != NULL ? ctx->task_id : "") != NULL &&
        cJSON_AddStringToObject(o, "type", ctx->type != NULL ? ctx->type : "") != NULL &&
        cJSON_AddNumberToObject(o, "attempt", ctx->attempt) != NULL) {
        head = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(o);
    if (head == NULL) {
        return NULL;
    }
    static const char key[] = "{\"payload\":";
    const char *payload = ctx->payload != NULL && ctx->payload_len > 0 ? ctx->payload : "null";
    size_t plen = payload == ctx->payload ? ctx->payload_len : 4;
    size_t hlen = strlen(head); /* "{...}", at least "{}" */
    size_t len = sizeof key - 1 + plen + 1 + (hlen - 1);
    char *body = malloc(len + 1);
    if (body != NULL) {
        memcpy(body, key, sizeof key - 1);
        memcpy(body + sizeof key - 1, payload, plen);
        body[sizeof key - 1 + plen] = ',';
        memcpy(body + sizeof key + plen, head + 1, hlen - 1); /* without its '{' */
        body[len] = '\0';
        *ret_len = len;
    }
    cJSON_free(head);
    return body;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct http_call *call = userdata;
    size_t n = size * nmemb;
    if (n > call->max - call->len) {
        call->overflow = true;
        return 0; /* aborts the transfer: the status is known, the body will not do */
    }
    if (call->len + n + 1 > call->cap) {
        size_t cap = call->cap ? call->cap : 4096;
        while (cap < call->len + n + 1) {
            cap *= 2;
        }
        char *b = realloc(call->body, cap);
        if (b == NULL) {
            return 0;
        }
        call->body = b;
        call->cap = cap;
    }
    memcpy(call->body + call->len, ptr, n);
    call->len += n;
    call->body[call->len] = '\0';
    return n;
}

static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct http_call *call = clientp;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (handler_ctx_canceled(call->ctx)) {
        call->canceled = true;
        return 1;
    }
    return 0;
}

static struct curl_slist *request_headers(const struct handler_ctx *ctx)
{
    char line[160];
    struct curl_slist *list = NULL;
    const char *fixed[] = {"Content-Type: application/json", "Accept: application/json", "Expect:"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        struct curl_slist *l = curl_slist_append(list, fixed[i]);
        if (l == NULL) {
            goto fail;
        }
        list = l;
    }
    const char *names[] = {"Idempotency-Key", "traceparent"};
    const char *values[] = {ctx->task_id, ctx->traceparent};
    for (size_t i = 0; i < 2; i++) {
        /* only plain short tokens: nothing can inject a header line */
        const char *v = values[i];
        if (v == NULL || v[0] == '\0' || strlen(v) > 100 || strpbrk(v, "\r\n") != NULL) {
            continue;
        }
        snprintf(line, sizeof line, "%s: %s", names[i], v);
        struct curl_slist *l = curl_slist_append(list, line);
        if (l == NULL) {
            goto fail;
        }
        list = l;
    }
    return list;
fail:
    curl_slist_free_all(list);
    return NULL;
}

static bool set_options(CURL *c, const struct http_route *rt, struct http_call *call,
                        struct curl_slist *hdrs, const char *body, size_t len, long timeout_ms,
                        char *errbuf)
{
    long connect_ms = rt->h->connect_timeout_ms;
    if (timeout_ms > 0 && timeout_ms < connect_ms) {
        connect_ms = timeout_ms; /* 0 would mean libcurl's default, 300 s */
    }
    bool ok = true;
    ok &= curl_easy_setopt(c, CURLOPT_URL, rt->url) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK; /* threads */
    ok &= curl_easy_setopt(c, CURLOPT_POST, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_USERAGENT, rt->h->user_agent) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_WRITEDATA, call) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_XFERINFODATA, call) == CURLE_OK;
    ok &= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK;
    return ok;
}

/* "http 503: <start of the body>" */
static int fail_status(struct handler_out *out, int status, long code, const struct http_call *call)
{
    char msg[64 + ERROR_BODY_MAX];
    int n = snprintf(msg, sizeof msg, "http %ld", code);
    if (call->len > 0 && !call->overflow) {
        size_t take = call->len < ERROR_BODY_MAX ? call->len : ERROR_BODY_MAX;
        size_t at = (size_t)n;
        msg[at++] = ':';
        msg[at++] = ' ';
        for (size_t i = 0; i < take && at + 1 < sizeof msg; i++) {
            unsigned char ch = (unsigned char)call->body[i];
            /* printable ASCII only: the text goes into a database row and a header */
            msg[at++] = ch >= 0x80 ? '?' : ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
        }
        msg[at] = '\0';
    }
    return fail_with(out, status, msg);
}

/* The final answer's status mapped to a handler status. */
static int map_status(long code, struct http_call *call, struct handler_out *out)
{
    if (code >= 200 && code <= 299) {
        cJSON *root = NULL;
        if (call->len > 0 && !call->overflow &&
            jsonx_parse(call->body, call->len, RESULT_MAX_DEPTH, &root) == JSONX_OK) {
            cJSON_Delete(root);
            out->result = call->body; /* handed over */
            call->body = NULL;
            return HANDLER_OK;
        }
        char buf[32];
        snprintf(buf, sizeof buf, "{\"status\":%ld}", code);
        out->result = strdup(buf);
        return out->result != NULL ? HANDLER_OK : fail_with(out, HANDLER_RETRY, "out of memory");
    }
    if (code == 408 || code == 429 || code >= 500) {
        return fail_status(out, HANDLER_RETRY, code, call);
    }
    return fail_status(out, HANDLER_PERMANENT, code, call);
}

/* What the submitter may read of a failed transfer: a class of failure, never the
 * URL, host, address, port or libcurl's own words (they name the route's internals).
 * The whole story goes to on_detail, for the operator's log. */
static const char *public_reason(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        return "delivery failed: connection refused or unreachable";
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return "delivery failed: name resolution failed";
    case CURLE_OPERATION_TIMEDOUT:
        return "delivery failed: timeout";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
        return "delivery failed: TLS error";
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return "delivery failed: connection lost";
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return "delivery failed: invalid route";
    case CURLE_OUT_OF_MEMORY:
        return "delivery failed: out of memory";
    default:
        return "delivery failed";
    }
}

/* A transfer that ended without a usable answer. */
static int map_error(const struct http_route *rt, CURLcode rc, const struct http_call *call,
                     const char *errbuf, struct handler_out *out)
{
    const struct handler_ctx *ctx = call->ctx;
    if (call->canceled || rc == CURLE_ABORTED_BY_CALLBACK) {
        return fail_with(out, HANDLER_RETRY, "canceled");
    }
    if (rt->h->on_detail != NULL) {
        char detail[CURL_ERROR_SIZE + 64];
        snprintf(detail, sizeof detail, "%s%s%s", curl_easy_strerror(rc), errbuf[0] ? ": " : "",
                 errbuf);
        rt->h->on_detail(rt->h->on_detail_ctx, ctx, rt->url, detail);
    }
    if (rc == CURLE_OPERATION_TIMEDOUT && ctx->deadline_ms > 0 &&
        handler_now_ms() >= ctx->deadline_ms - 5) {
        return fail_with(out, HANDLER_TIMEOUT, "delivery failed: timeout");
    }
    if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
        return fail_with(out, HANDLER_PERMANENT, public_reason(rc));
    }
    return fail_with(out, HANDLER_RETRY, public_reason(rc));
}

static int perform(CURL *c, const struct http_route *rt, const struct handler_ctx *ctx,
                   long timeout_ms, struct handler_out *out)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct http_call call = {.ctx = ctx, .max = rt->h->max_response};
    size_t len = 0;
    int st = HANDLER_RETRY;
    char *body = request_body(ctx, &len);
    struct curl_slist *hdrs = body != NULL ? request_headers(ctx) : NULL;
    if (hdrs == NULL) {
        st = fail_with(out, HANDLER_RETRY, "out of memory");
        goto out;
    }
    if (!set_options(c, rt, &call, hdrs, body, len, timeout_ms, errbuf)) {
        st = fail_with(out, HANDLER_RETRY, "http: libcurl refused an option");
        goto out;
    }
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK) {
        code = 0;
    }
    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && call.overflow && code > 0)) {
        st = map_status(code, &call, out);
    } else {
        st = map_error(rt, rc, &call, errbuf, out);
    }
out:
    /* the handle keeps pointers to these until its next reset: drop them now */
    (void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    (void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
    (void)curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    free(body);
    free(call.body);
    return st;
}

static int h_http(void *arg, const struct handler_ctx *ctx, struct handler_out *out)
{
    struct http_route *rt = arg;
    long timeout_ms = 0; /* libcurl: none */
    if (ctx->deadline_ms > 0) {
        int64_t left = ctx->deadline_ms - handler_now_ms();
        if (left <= 0) {
            return fail_with(out, HANDLER_TIMEOUT, "deadline exceeded before the request");
        }
        timeout_ms = (long)left;
    }
    if (handler_ctx_canceled(ctx)) {
        return fail_with(out, HANDLER_RETRY, "canceled");
    }
    CURL *c = thread_handle(rt->h);
    if (c == NULL) {
        return fail_with(out, HANDLER_RETRY, "http: no curl handle (out of memory)");
    }
    return perform(c, rt, ctx, timeout_ms, out);
}

int handler_http__add(struct handler_http *h, struct handler_registry *reg, const char *type,
                      const char *url)
{
    if (handler_lookup(reg, type, NULL, NULL)) {
        return HANDLER_HTTP_EEXIST;
    }
    if (h->n_routes == h->cap_routes) {
        size_t cap = h->cap_routes ? h->cap_routes * 2 : 4;
        struct http_route **v = realloc(h->routes, cap * sizeof(struct http_route *));
        if (v == NULL) {
            return HANDLER_HTTP_ENOMEM;
        }
        h->routes = v;
        h->cap_routes = cap;
    }
    struct http_route *rt = calloc(1, sizeof *rt);
    if (rt == NULL) {
        return HANDLER_HTTP_ENOMEM;
    }
    rt->h = h;
    rt->url = strdup(url);
    if (rt->url == NULL || handler_register(reg, type, h_http, rt) < 0) {
        free(rt->url);
        free(rt);
        return HANDLER_HTTP_ENOMEM;
    }
    h->routes[h->n_routes++] = rt;
    return HANDLER_HTTP_OK;
}
