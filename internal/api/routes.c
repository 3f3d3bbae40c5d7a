/* api — the route table: every endpoint, in one place. */
#include "api/api_int.h"

#include <string.h>

const struct api_route api_routes[] = {
    {"GET", "/healthz", "healthz", api_h_healthz, false},
    {"GET", "/readyz", "readyz", api_h_readyz, false},
    {"GET", "/metrics", "metrics", api_h_metrics, false},
    {"POST", "/auth/register", "auth_register", api_h_register, false},
    {"POST", "/auth/login", "auth_login", api_h_login, false},
    {"POST", "/tasks", "tasks_create", api_h_tasks_create, true},
    {"GET", "/tasks/{id}", "tasks_get", api_h_tasks_get, true},
    /* shares its path with POST /tasks: the matcher tries every route of a path
     * before answering 405, so the order of the two does not matter */
    {"GET", "/tasks", "tasks_list", api_h_tasks_list, true},
    {"POST", "/tasks/{id}/cancel", "tasks_cancel", api_h_tasks_cancel, true},
};
const size_t api_n_routes = sizeof api_routes / sizeof api_routes[0];

/* Matches path against pattern; a "{x}" segment captures into param. */
static bool match(const char *pattern, const char *path, char *param, size_t size)
{
    while (*pattern && *path) {
        if (*pattern == '{') {
            const char *pend = strchr(pattern, '}');
            size_t n = strcspn(path, "/");
            if (!pend || n == 0 || n >= size)
                return false;
            memcpy(param, path, n);
            param[n] = '\0';
            pattern = pend + 1;
            path += n;
            continue;
        }
        if (*pattern++ != *path++)
            return false;
    }
    return *pattern == '\0' && *path == '\0';
}

const struct api_route *api_route_match(struct api_request *req, const char *method,
                                        const char *path, bool *ret_path_known)
{
    bool known = false;
    for (size_t i = 0; i < api_n_routes; i++) {
        char param[sizeof req->param] = "";
        if (!match(api_routes[i].pattern, path, param, sizeof param))
            continue;
        known = true;
        if (strcmp(api_routes[i].method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(api_routes[i].method, "GET") == 0)) {
            memcpy(req->param, param, sizeof param);
            *ret_path_known = true;
            return &api_routes[i];
        }
    }
    *ret_path_known = known;
    return NULL;
}
