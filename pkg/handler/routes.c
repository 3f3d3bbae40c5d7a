/* Route lists "type=URL[,type=URL...]" for the http handler: checked whole, then
 * registered.  See handler.h. */
#include "handler/handler_int.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TYPE_MAX 64
#define URL_MAX  2048

typedef int (*route_fn)(void *arg, const char *type, const char *url);

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool type_valid(const char *s, size_t len)
{
    if (len == 0 || len > TYPE_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) {
            return false;
        }
    }
    return true;
}

/* An absolute http(s) URL with a host, no spaces or control characters. */
static bool url_valid(const char *url)
{
    size_t len = strlen(url);
    if (len == 0 || len > URL_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c == 0x7f) {
            return false;
        }
    }
    CURLU *u = curl_url();
    if (u == NULL) {
        return false;
    }
    char *scheme = NULL, *host = NULL;
    bool ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0] != '\0' &&
              (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

/* Splits one item [s, end) into NUL-terminated type and url (trimmed) in buf. */
static bool split_item(const char *s, const char *end, char *buf, char **ret_type, char **ret_url)
{
    while (s < end && is_space(*s)) {
        s++;
    }
    while (end > s && is_space(end[-1])) {
        end--;
    }
    const char *eq = memchr(s, '=', (size_t)(end - s));
    if (eq == NULL) {
        return false;
    }
    const char *tend = eq;
    while (tend > s && is_space(tend[-1])) {
        tend--;
    }
    const char *u = eq + 1;
    while (u < end && is_space(*u)) {
        u++;
    }
    size_t tlen = (size_t)(tend - s), ulen = (size_t)(end - u);
    if (!type_valid(s, tlen)) {
        return false;
    }
    memcpy(buf, s, tlen);
    buf[tlen] = '\0';
    memcpy(buf + tlen + 1, u, ulen);
    buf[tlen + 1 + ulen] = '\0';
    if (!url_valid(buf + tlen + 1)) {
        return false;
    }
    *ret_type = buf;
    *ret_url = buf + tlen + 1;
    return true;
}

static bool blank(const char *s)
{
    while (*s != '\0' && is_space(*s)) {
        s++;
    }
    return *s == '\0';
}

/* Calls fn for each item; HANDLER_HTTP_EINVAL at the first malformed one (*ret_bad
 * points at it), or fn's first negative return. */
static int each_route(const char *routes, route_fn fn, void *arg, const char **ret_bad)
{
    if (routes == NULL || blank(routes)) {
        return HANDLER_HTTP_OK;
    }
    char *buf = malloc(strlen(routes) + 2);
    if (buf == NULL) {
        return HANDLER_HTTP_ENOMEM;
    }
    int rc = HANDLER_HTTP_OK;
    const char *s = routes;
    for (;;) {
        const char *end = strchr(s, ',');
        if (end == NULL) {
            end = s + strlen(s);
        }
        char *type = NULL, *url = NULL;
        if (!split_item(s, end, buf, &type, &url)) {
            if (ret_bad != NULL) {
                *ret_bad = s;
            }
            rc = HANDLER_HTTP_EINVAL;
            break;
        }
        rc = fn(arg, type, url);
        if (rc < 0 || *end == '\0') {
            if (rc < 0 && ret_bad != NULL) {
                *ret_bad = s;
            }
            break;
        }
        s = end + 1;
    }
    free(buf);
    return rc;
}

/* The check pass: remembers the types seen to refuse a second route for one. */
struct seen {
    char **types;
    size_t n, cap;
};

static int check_one(void *arg, const char *type, const char *url)
{
    struct seen *seen = arg;
    (void)url;
    for (size_t i = 0; i < seen->n; i++) {
        if (strcmp(seen->types[i], type) == 0) {
            return HANDLER_HTTP_EINVAL;
        }
    }
    if (seen->n == seen->cap) {
        size_t cap = seen->cap ? seen->cap * 2 : 8;
        char **v = realloc(seen->types, cap * sizeof *v);
        if (v == NULL) {
            return HANDLER_HTTP_ENOMEM;
        }
        seen->types = v;
        seen->cap = cap;
    }
    seen->types[seen->n] = strdup(type);
    if (seen->types[seen->n] == NULL) {
        return HANDLER_HTTP_ENOMEM;
    }
    seen->n++;
    return HANDLER_HTTP_OK;
}

static int check(const char *routes, const char **ret_bad)
{
    struct seen seen = {NULL, 0, 0};
    int rc = each_route(routes, check_one, &seen, ret_bad);
    for (size_t i = 0; i < seen.n; i++) {
        free(seen.types[i]);
    }
    free(seen.types);
    return rc;
}

int handler_http_routes_check(const char *routes)
{
    return check(routes, NULL);
}

struct add_args {
    struct handler_http *h;
    struct handler_registry *reg;
};

static int add_one(void *arg, const char *type, const char *url)
{
    const struct add_args *a = arg;
    return handler_http__add(a->h, a->reg, type, url);
}

int handler_http_routes(struct handler_http *h, struct handler_registry *reg, const char *routes,
                        const char **ret_bad)
{
    if (h == NULL || reg == NULL) {
        return HANDLER_HTTP_EINVAL;
    }
    int rc = check(routes, ret_bad);
    if (rc < 0) {
        return rc;
    }
    struct add_args a = {h, reg};
    return each_route(routes, add_one, &a, ret_bad);
}

int handler_http_route(struct handler_http *h, struct handler_registry *reg, const char *type,
                       const char *url)
{
    if (h == NULL || reg == NULL || type == NULL || url == NULL ||
        !type_valid(type, strlen(type)) || !url_valid(url)) {
        return HANDLER_HTTP_EINVAL;
    }
    return handler_http__add(h, reg, type, url);
}
