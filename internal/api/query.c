/* api — query parameters checked against a spec array, as bodies are. */
#include "api/api_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What iterating the request's arguments found. */
struct scan {
    const struct api_param *spec;
    size_t n;
    const char *values[API_PARAMS_MAX];
    bool seen[API_PARAMS_MAX];
    const char *bad_name; /* the first unknown or repeated parameter */
    bool repeated;
};

static enum MHD_Result on_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    struct scan *s = cls;
    (void)kind;
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->spec[i].name, key) != 0)
            continue;
        if (s->seen[i]) {
            s->bad_name = key;
            s->repeated = true;
            return MHD_NO;
        }
        s->seen[i] = true;
        s->values[i] = value; /* NULL for "?name" without "=" */
        return MHD_YES;
    }
    s->bad_name = key;
    return MHD_NO;
}

/* Strict decimal: optional '-', digits, nothing else; false when out of range. */
static bool parse_int(const char *s, long long lo, long long hi, long long *ret_v)
{
    const char *p = s[0] == '-' ? s + 1 : s;
    char *end;
    long long v;
    if (*p < '0' || *p > '9')
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return false;
    *ret_v = v;
    return true;
}

/* Prepares the 400 naming the parameter and what a valid value would be. */
static bool refuse(struct api_request *req, const char *name, const char *reason)
{
    api_problem(req, MHD_HTTP_BAD_REQUEST, "validation", "Invalid Request",
                "query parameter '%.64s' %s", name, reason);
    return false;
}

/* Checks one present value; on success an INT's value is in *ret_int. */
static bool check_value(struct api_request *req, const struct api_param *p, const char *v,
                        long long *ret_int)
{
    char reason[192];
    size_t len;
    if (!v || !*v)
        return refuse(req, p->name, "must not be empty");
    if (p->type == API_PT_INT) {
        if (parse_int(v, p->min, p->max, ret_int))
            return true;
        snprintf(reason, sizeof reason, "must be an integer in %lld..%lld", p->min, p->max);
        return refuse(req, p->name, reason);
    }
    len = strlen(v);
    if ((long long)len >= p->min && (long long)len <= p->max && (!p->valid || p->valid(v)))
        return true;
    snprintf(reason, sizeof reason, "must be %s", p->expect ? p->expect : "valid");
    return refuse(req, p->name, reason);
}

bool api_query_spec(struct api_request *req, const struct api_param *spec)
{
    struct scan s = {.spec = spec};
    long long ints[API_PARAMS_MAX] = {0};

    while (spec[s.n].type != API_PT_END) {
        if (++s.n > API_PARAMS_MAX) {
            api_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "Internal Server Error",
                        "query spec too long");
            return false;
        }
    }
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, on_arg, &s);
    if (s.bad_name) {
        api_problem(req, MHD_HTTP_BAD_REQUEST, "validation", "Invalid Request",
                    s.repeated ? "query parameter '%.64s' is given more than once"
                               : "unknown query parameter '%.64s'",
                    s.bad_name);
        return false;
    }
    for (size_t i = 0; i < s.n; i++) {
        if (s.seen[i] && !check_value(req, &spec[i], s.values[i], &ints[i]))
            return false;
    }
    for (size_t i = 0; i < s.n; i++) {
        if (!s.seen[i])
            continue;
        if (spec[i].type == API_PT_INT)
            *(long long *)spec[i].dest = ints[i];
        else
            *(const char **)spec[i].dest = s.values[i];
    }
    return true;
}
