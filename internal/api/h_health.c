/* GET /healthz (liveness) and GET /readyz (readiness with each dependency). */
#include "api/api_int.h"

#include <string.h>

void api_h_healthz(struct api_request *req)
{
    api_respond_text(req, MHD_HTTP_OK, strdup("{\"status\":\"ok\"}"), "application/json");
}

void api_h_readyz(struct api_request *req)
{
    const struct api_deps *d = &req->api->deps;
    cJSON *body = cJSON_CreateObject();
    cJSON *deps = cJSON_AddObjectToObject(body, "dependencies");
    bool all = true;
    if (!body || !deps) {
        cJSON_Delete(body);
        api_problem_oom(req);
        return;
    }
    for (size_t i = 0; i < d->n_probes; i++) {
        bool up = d->probes[i].ready(d->probes[i].ctx);
        all = all && up;
        cJSON_AddStringToObject(deps, d->probes[i].name, up ? "up" : "down");
    }
    cJSON_AddStringToObject(body, "status", all ? "ready" : "not ready");
    api_respond_json(req, all ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body);
    cJSON_Delete(body);
}
