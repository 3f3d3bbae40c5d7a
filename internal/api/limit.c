/* api — rate limits (internal/ratelimit decides): the one check per route and the 429
 * with Retry-After and the IETF RateLimit / RateLimit-Policy fields
 * (draft-ietf-httpapi-ratelimit-headers-11; docs/api.md "Rate limits").  Decisions take
 * no I/O: they are made on the HTTP thread, before anything else of the request. */
#include "api/api_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "metrics/metrics.h"
#include "ratelimit/ratelimit.h"

/* The policies a route is subject to, in the RateLimit-Policy field's form:
 * "tasks-user";q=100;w=1, "tasks-global";q=1000;w=1 */
static void policy_field(struct ratelimit *rl, const enum ratelimit_scope *scopes, size_t n,
                         char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const struct ratelimit_policy *p = ratelimit_policy(rl, scopes[i]);
        int w;
        if (!p->on)
            continue;
        w = snprintf(out + len, size - len, "%s\"%s\";q=%lld;w=%lld", len ? ", " : "",
                     ratelimit_scope_name(scopes[i]), p->quota, p->window_s);
        if (w < 0 || (size_t)w >= size - len)
            return;
        len += (size_t)w;
    }
}

static void refuse(struct api_request *req, const struct ratelimit_verdict *v,
                   const enum ratelimit_scope *scopes, size_t n)
{
    struct ratelimit *rl = req->api->deps.ratelimit;
    const struct ratelimit_policy *p = ratelimit_policy(rl, v->scope);
    char retry[16], field[160], policies[320];
    snprintf(retry, sizeof retry, "%d", v->retry_after_s);
    snprintf(field, sizeof field, "\"%s\";r=0;t=%d", ratelimit_scope_name(v->scope),
             v->retry_after_s);
    policy_field(rl, scopes, n, policies, sizeof policies);
    api_problem(req, MHD_HTTP_TOO_MANY_REQUESTS, "rate-limited", "Too Many Requests",
                "the %s rate limit (%lld requests per %lld s, bursts of %lld) is used up; retry "
                "in %d s",
                ratelimit_scope_name(v->scope), p->quota, p->window_s, p->burst, v->retry_after_s);
    api_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, retry);
    api_add_header(req, "RateLimit", field);
    if (policies[0])
        api_add_header(req, "RateLimit-Policy", policies);
    metrics_add(req->api->deps.metrics, METRICS_RATE_LIMITED, 1);
}

bool api_limit_tasks(struct api_request *req)
{
    static const enum ratelimit_scope scopes[] = {RATELIMIT_TASKS_USER, RATELIMIT_TASKS_GLOBAL};
    struct ratelimit *rl = req->api->deps.ratelimit;
    char user[IDS_TEXT_LEN + 1];
    struct ratelimit_verdict v;
    if (!ratelimit_enabled(rl))
        return true;
    ids_format(&req->user, user);
    ratelimit_tasks(rl, user, &v);
    if (v.allowed)
        return true;
    refuse(req, &v, scopes, 2);
    return false;
}

/* The client's address as text; an IPv6 client counts by its /64 (the block one
 * subscriber usually holds, so hopping addresses inside it buys nothing). */
static void client_addr(struct api_request *req, char *out, size_t size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    snprintf(out, size, "unknown");
    if (sa && sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)size);
    } else if (sa && sa->sa_family == AF_INET6) {
        struct in6_addr a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        memset(a.s6_addr + 8, 0, 8);
        if (inet_ntop(AF_INET6, &a, out, (socklen_t)size) && strlen(out) + 4 < size)
            memcpy(out + strlen(out), "/64", 4);
    }
}

bool api_limit_auth(struct api_request *req, const char *email)
{
    static const enum ratelimit_scope scopes[] = {RATELIMIT_AUTH_ADDR, RATELIMIT_AUTH_EMAIL};
    struct ratelimit *rl = req->api->deps.ratelimit;
    char addr[INET6_ADDRSTRLEN + 4];
    struct ratelimit_verdict v;
    if (!ratelimit_enabled(rl))
        return true;
    client_addr(req, addr, sizeof addr);
    ratelimit_auth(rl, addr, email, &v);
    if (v.allowed)
        return true;
    refuse(req, &v, scopes, 2);
    return false;
}
