/* Built-in handlers for tests and benchmarks: noop, echo, sleep, fail. */
#include "handler/handler.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "jsonx/jsonx.h"

#define SLEEP_SLICE_MS 5 /* how often sleep looks at cancel and the deadline */
#define SLEEP_MAX_MS   86400000LL
#define PAYLOAD_DEPTH  16

/* Sets out->error to a copy of msg (left NULL on ENOMEM) and returns status. */
static int fail_with(struct handler_out *out, int status, const char *msg)
{
    out->error = strdup(msg);
    return status;
}

/* Parses the payload as an object against spec; a payload that does not fit is the
 * task's fault, so it fails for good. */
static int parse_payload(const struct handler_ctx *ctx, const struct jsonx_field *spec,
                         cJSON **ret_root, struct handler_out *out)
{
    cJSON *root = NULL;
    int rc = jsonx_parse(ctx->payload, ctx->payload_len, PAYLOAD_DEPTH, &root);
    if (rc == JSONX_ERR_NOMEM) {
        return fail_with(out, HANDLER_RETRY, "out of memory");
    }
    if (rc < 0 || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail_with(out, HANDLER_PERMANENT, "payload must be a JSON object");
    }
    struct jsonx_error err;
    if (jsonx_spec_parse(root, spec, false, &err) < 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "payload: %s %s", err.field ? err.field : "", err.reason);
        cJSON_Delete(root);
        return fail_with(out, HANDLER_PERMANENT, msg);
    }
    *ret_root = root;
    return HANDLER_OK;
}

static int h_noop(void *arg, const struct handler_ctx *ctx, struct handler_out *out)
{
    (void)arg;
    (void)ctx;
    (void)out;
    return HANDLER_OK;
}

static int h_echo(void *arg, const struct handler_ctx *ctx, struct handler_out *out)
{
    (void)arg;
    char *copy = malloc(ctx->payload_len + 1);
    if (copy == NULL) {
        return fail_with(out, HANDLER_RETRY, "out of memory");
    }
    memcpy(copy, ctx->payload, ctx->payload_len);
    copy[ctx->payload_len] = '\0';
    out->result = copy;
    return HANDLER_OK;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Sleeps {"ms": N} in short slices, giving up at the deadline or on cancel. */
static int h_sleep(void *arg, const struct handler_ctx *ctx, struct handler_out *out)
{
    (void)arg;
    long long ms = 0;
    const struct jsonx_field spec[] = {
        JSONX_INT("ms", true, 0, SLEEP_MAX_MS, &ms),
        JSONX_END,
    };
    cJSON *root = NULL;
    int rc = parse_payload(ctx, spec, &root, out);
    if (rc != HANDLER_OK) {
        return rc;
    }
    cJSON_Delete(root);

    int64_t until = handler_now_ms() + ms;
    for (;;) {
        int64_t now = handler_now_ms();
        if (now >= until) {
            break;
        }
        if (ctx->deadline_ms > 0 && now >= ctx->deadline_ms) {
            return fail_with(out, HANDLER_TIMEOUT, "deadline exceeded");
        }
        if (handler_ctx_canceled(ctx)) {
            return fail_with(out, HANDLER_RETRY, "canceled");
        }
        int64_t slice = until - now;
        if (ctx->deadline_ms > 0 && ctx->deadline_ms - now < slice) {
            slice = ctx->deadline_ms - now;
        }
        sleep_ms(slice < SLEEP_SLICE_MS ? slice : SLEEP_SLICE_MS);
    }
    char buf[48];
    snprintf(buf, sizeof buf, "{\"slept_ms\":%lld}", ms);
    out->result = strdup(buf);
    if (out->result == NULL) {
        return fail_with(out, HANDLER_RETRY, "out of memory");
    }
    return HANDLER_OK;
}

/* {"times": N, "permanent": bool}: attempts 1..N fail (retryably, or for good when
 * permanent), later ones succeed.  Without "times" every attempt fails. */
static int h_fail(void *arg, const struct handler_ctx *ctx, struct handler_out *out)
{
    (void)arg;
    long long times = INT_MAX;
    bool permanent = false;
    const struct jsonx_field spec[] = {
        JSONX_INT("times", false, 0, INT_MAX, &times),
        JSONX_BOOL("permanent", false, &permanent),
        JSONX_END,
    };
    cJSON *root = NULL;
    int rc = parse_payload(ctx, spec, &root, out);
    if (rc != HANDLER_OK) {
        return rc;
    }
    cJSON_Delete(root);
    if (ctx->attempt > times) {
        return HANDLER_OK;
    }
    char msg[64];
    snprintf(msg, sizeof msg, "injected failure (attempt %d)", ctx->attempt);
    return fail_with(out, permanent ? HANDLER_PERMANENT : HANDLER_RETRY, msg);
}

struct builtin {
    const char *type;
    handler_fn fn;
};

static int register_all(struct handler_registry *reg, const struct builtin *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (handler_register(reg, b[i].type, b[i].fn, NULL) < 0) {
            return -1;
        }
    }
    return 0;
}

int handler_register_builtins(struct handler_registry *reg)
{
    static const struct builtin builtins[] = {
        {"noop", h_noop},
        {"echo", h_echo},
    };
    return register_all(reg, builtins, sizeof builtins / sizeof builtins[0]);
}

int handler_register_test_handlers(struct handler_registry *reg)
{
    static const struct builtin test_handlers[] = {
        {"sleep", h_sleep},
        {"fail", h_fail},
    };
    return register_all(reg, test_handlers, sizeof test_handlers / sizeof test_handlers[0]);
}
