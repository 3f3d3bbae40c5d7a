/* custom_handler — dispatch's worker embedded in a program with a handler of its
 * own: tasks of type "resize" are answered by resize() below, every other type by
 * the worker's built-ins and http routes.  See README.md for the build line. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "handler/handler.h"
#include "worker/worker.h"

#define SIDE_MAX 10000

/* Shared by every pool thread, so only atomics inside. */
struct resizer {
    atomic_long done;
};

static int fail(struct handler_out *out, int status, const char *msg)
{
    out->error = strdup(msg);
    return status;
}

static bool side(const cJSON *root, const char *name, int *ret)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > SIDE_MAX ||
        v->valuedouble != (double)(int)v->valuedouble) {
        return false;
    }
    *ret = (int)v->valuedouble;
    return true;
}

/* {"url": "...", "width": W, "height": H} -> {"thumbnail": "...", "width": W, ...}.
 * A payload that does not fit fails for good: retrying cannot fix it. */
static int resize(void *arg, const struct handler_ctx *ctx, struct handler_out *out)
{
    struct resizer *state = arg;
    if (handler_ctx_canceled(ctx)) {
        return fail(out, HANDLER_RETRY, "canceled");
    }
    cJSON *root = cJSON_ParseWithLength(ctx->payload, ctx->payload_len);
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(root, "url");
    int w = 0, h = 0;
    if (!cJSON_IsObject(root) || !cJSON_IsString(url) || !side(root, "width", &w) ||
        !side(root, "height", &h)) {
        cJSON_Delete(root);
        return fail(out, HANDLER_PERMANENT, "payload: want {url, width, height (1..10000)}");
    }
    /* the real work (fetch, scale, store) would go here, watching ctx->deadline_ms */
    char thumb[512];
    snprintf(thumb, sizeof thumb, "%.400s?w=%d&h=%d", url->valuestring, w, h);
    cJSON *res = cJSON_CreateObject();
    if (res == NULL || cJSON_AddStringToObject(res, "thumbnail", thumb) == NULL ||
        cJSON_AddNumberToObject(res, "width", w) == NULL ||
        cJSON_AddNumberToObject(res, "height", h) == NULL ||
        cJSON_AddNumberToObject(res, "attempt", ctx->attempt) == NULL) {
        cJSON_Delete(res);
        cJSON_Delete(root);
        return fail(out, HANDLER_RETRY, "out of memory");
    }
    out->result = cJSON_PrintUnformatted(res); /* malloc'd: the worker frees it */
    cJSON_Delete(res);
    cJSON_Delete(root);
    if (out->result == NULL) {
        return fail(out, HANDLER_RETRY, "out of memory");
    }
    atomic_fetch_add(&state->done, 1);
    return HANDLER_OK;
}

static int register_handlers(struct handler_registry *reg, void *arg)
{
    return handler_register(reg, "resize", resize, arg);
}

int main(int argc, char **argv)
{
    static struct resizer state; /* outlives worker_main, as the handler's arg must */
    return worker_main(argc, argv, register_handlers, &state);
}
