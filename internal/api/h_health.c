/* GET /healthz (liveness) and GET /readyz (readiness with each dependency).
 *
 * /readyz calls nothing: it reads what each dependency's prober (internal/guard)
 * found on its last check, every second or so under a short timeout, so it answers
 * in microseconds whatever state MariaDB or Kafka are in.  200 when every required
 * dependency is up; the body names each one, the optional ones (Redis: reads fall
 * back to MariaDB) and every circuit breaker's state. */
#include "api/api_int.h"

#include <string.h>

#include "guard/guard.h"

void api_h_healthz(struct api_request *req)
{
    api_respond_text(req, MHD_HTTP_OK, strdup("{\"status\":\"ok\"}"), "application/json");
}

void api_h_readyz(struct api_request *req)
{
    const struct api_deps *d = &req->api->deps;
    cJSON *body = cJSON_CreateObject();
    cJSON *deps = cJSON_AddObjectToObject(body, "dependencies");
    cJSON *optional = cJSON_AddObjectToObject(body, "optional");
    cJSON *breakers = cJSON_AddObjectToObject(body, "breakers");
    bool all = true;
    if (!body || !deps || !optional || !breakers) {
        cJSON_Delete(body);
        api_problem_oom(req);
        return;
    }
    for (size_t i = 0; i < d->n_dependencies; i++) {
        struct guard *g = d->dependencies[i].guard;
        bool up = guard_up(g);
        if (d->dependencies[i].required)
            all = all && up;
        if (!cJSON_AddStringToObject(d->dependencies[i].required ? deps : optional, guard_name(g),
                                     up ? "up" : "down") ||
            !cJSON_AddStringToObject(breakers, guard_name(g), guard_breaker_name(g))) {
            cJSON_Delete(body);
            api_problem_oom(req);
            return;
        }
    }
    cJSON_AddStringToObject(body, "status", all ? "ready" : "not ready");
    api_respond_json(req, all ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body);
    cJSON_Delete(body);
}
