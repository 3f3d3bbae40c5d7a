/* handler — the registry of task handlers by type, the built-in handlers and the
 * generic http handler.  Nothing here knows of dispatch's storage or queues.
 *
 * Writing a handler.  A handler is a handler_fn: it gets the task (struct
 * handler_ctx, everything borrowed for the call) and answers with a status; on
 * HANDLER_OK it may leave a malloc'd JSON text in out->result, on a failure a
 * malloc'd message in out->error (both freed by the caller):
 *
 *     static int resize(void *arg, const struct handler_ctx *ctx, struct handler_out *out)
 *     {
 *         ... parse ctx->payload (ctx->payload_len bytes of JSON) ...
 *         if (bad input)  { out->error = strdup("width: required"); return HANDLER_PERMANENT; }
 *         if (try later)  { out->error = strdup("storage busy");    return HANDLER_RETRY; }
 *         out->result = strdup("{\"ok\":true}");
 *         return HANDLER_OK;
 *     }
 *     handler_register(reg, "image.resize", resize, my_state);
 *
 * A handler runs on a pool thread, must be thread-safe, and should return by
 * ctx->deadline_ms (CLOCK_MONOTONIC milliseconds; 0 = none) or soon after
 * handler_ctx_canceled() turns true (the worker is draining: the attempt is handed
 * back and the task runs again soon, on this or another worker); the worker records
 * a late return as a timeout.
 * HANDLER_RETRY and HANDLER_TIMEOUT are retried with backoff until the task's
 * max_attempts, HANDLER_PERMANENT goes to the dead-letter queue at once.  Delivery
 * is at-least-once: a handler may see the same task (ctx->task_id) more than once
 * and should be idempotent.
 *
 * Embedding the worker.  A program that runs dispatch's worker with handlers of its
 * own links the worker's libraries and calls worker_main() (internal/worker, the
 * same entry point dispatch-worker uses) with a function that registers them; it
 * gets every option, the built-ins, the http routes, /metrics and the SIGTERM drain:
 *
 *     #include "handler/handler.h"
 *     #include "worker/worker.h"
 *
 *     static int register_mine(struct handler_registry *reg, void *arg)
 *     {
 *         return handler_register(reg, "image.resize", resize, arg);
 *     }
 *
 *     int main(int argc, char **argv)
 *     {
 *         return worker_main(argc, argv, register_mine, NULL);
 *     }
 *
 * Build it against every library in build/lib (inside -Wl,--start-group ...
 * -Wl,--end-group) with -Iinternal -Ipkg, plus -lmicrohttpd -lrdkafka -lmariadb
 * -lhiredis -lcjson -lsodium -lcurl -pthread -lm: examples/custom_handler/ shows
 * the whole command.
 */
#ifndef HANDLER_H
#define HANDLER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum handler_status {
    HANDLER_OK = 0,        /* done; out->result may hold a JSON text */
    HANDLER_RETRY = 1,     /* failed, may succeed later; out->error says why */
    HANDLER_PERMANENT = 2, /* failed for good; out->error says why */
    HANDLER_TIMEOUT = 3,   /* gave up at the deadline */
};

struct handler_ctx {
    const char *task_id; /* canonical text */
    const char *type;
    const char *payload; /* JSON text, NUL-terminated */
    size_t payload_len;
    int attempt; /* 1-based */
    int max_attempts;
    int64_t deadline_ms;     /* CLOCK_MONOTONIC ms, 0 = none */
    atomic_bool *canceled;   /* set by the worker on drain or timeout; may be NULL */
    const char *traceparent; /* W3C trace context of the task, or NULL */
};

struct handler_out {
    char *result; /* malloc'd JSON text or NULL; freed by the caller */
    char *error;  /* malloc'd message or NULL; freed by the caller */
};

typedef int (*handler_fn)(void *arg, const struct handler_ctx *ctx, struct handler_out *out);

struct handler_registry;

int handler_registry_new(struct handler_registry **ret_reg);
void handler_registry_free(struct handler_registry *reg);

/* Registers fn for type (copied).  Returns 0, -1 if type is already registered or
 * on ENOMEM.  Register everything before the worker starts; lookups take no lock. */
int handler_register(struct handler_registry *reg, const char *type, handler_fn fn, void *arg);

/* Finds the handler of type; returns false when none. */
bool handler_lookup(const struct handler_registry *reg, const char *type, handler_fn *ret_fn,
                    void **ret_arg);

/* noop and echo (result = payload, byte for byte). */
int handler_register_builtins(struct handler_registry *reg);
/* The handlers that exist for tests and benchmarks, registered only when configured
 * (worker_test_handlers): a task could otherwise hold a worker slot for a day (sleep)
 * or fill the DLQ on purpose (fail).  sleep {"ms": N}; fail {"times": N, "permanent":
 * bool} (fails attempts 1..times, then succeeds; permanent fails for good). */
int handler_register_test_handlers(struct handler_registry *reg);

bool handler_ctx_canceled(const struct handler_ctx *ctx);
int64_t handler_now_ms(void); /* CLOCK_MONOTONIC */

/* --- http: deliver a task to a URL per type (libcurl) ---------------------------
 *
 * Each call POSTs {"id", "type", "payload", "attempt"} (payload embedded as JSON) to
 * the route's URL with Content-Type application/json, Idempotency-Key: <task id>
 * (the receiver can drop redeliveries) and the task's traceparent when it has one.
 * The answer decides the outcome:
 *   2xx                          HANDLER_OK; the body becomes the result when it is
 *                                JSON (at most max_response_bytes), else
 *                                {"status": <code>}
 *   408, 429, 5xx                HANDLER_RETRY
 *   other 4xx, 1xx, 3xx          HANDLER_PERMANENT (redirects are not followed)
 *   no answer by the deadline    HANDLER_TIMEOUT (the whole call is bounded by
 *                                ctx->deadline_ms: CURLOPT_TIMEOUT_MS)
 *   connection or TLS errors     HANDLER_RETRY
 *   handler_ctx_canceled()       HANDLER_RETRY, within about a second
 * out->error names the status and the start of the body, or for a transfer that got
 * no answer only a class of failure ("delivery failed: connection refused or
 * unreachable", "delivery failed: timeout", ...): out->error is shown to whoever
 * submitted the task, so it never carries the URL, host, address, port or libcurl's
 * message; those go to the configuration's on_detail, for the operator's log.
 *
 * Connections are kept alive: each thread that runs an http handler keeps one curl
 * easy handle (and so its connection cache), shared by every route of the set and
 * freed when the thread exits or with the set.  Only http:// and https:// are
 * allowed; TLS peers are verified with the system's CA store.
 *
 * handler_http_new() calls curl_global_init(): create the set at start-up, before
 * other threads use libcurl; handler_http_free() after they stopped.
 */
enum handler_http_err {
    HANDLER_HTTP_OK = 0,
    HANDLER_HTTP_ENOMEM = -1,
    HANDLER_HTTP_EINVAL = -2, /* a malformed route list, type or URL */
    HANDLER_HTTP_EEXIST = -3, /* the type has a handler already */
    HANDLER_HTTP_ECURL = -4,  /* libcurl could not be initialised */
};
const char *handler_http_strerror(int err);

/* Told the full reason of a failed transfer (libcurl's message, the route's URL) on
 * the calling thread; for logs only. */
typedef void (*handler_http_detail_fn)(void *ctx, const struct handler_ctx *task, const char *url,
                                       const char *detail);

struct handler_http_config {
    int connect_timeout_ms;           /* 0: 10 s (the task's deadline caps it too) */
    size_t max_response_bytes;        /* 0: 1 MiB; a longer body is not taken as the result */
    const char *user_agent;           /* copied; NULL: "handler-http" */
    handler_http_detail_fn on_detail; /* NULL: the detail is dropped */
    void *on_detail_ctx;
};

/* A set of routes (task type -> URL) sharing per-thread connections. */
struct handler_http;

int handler_http_new(const struct handler_http_config *cfg, struct handler_http **ret_h);
/* Frees the set and every thread's handle; NULL is accepted.  No handler of the set
 * may be running. */
void handler_http_free(struct handler_http *h);

/* Registers in reg a handler POSTing tasks of type to url (both copied).  The handler
 * borrows h: free h after reg is no longer used. */
int handler_http_route(struct handler_http *h, struct handler_registry *reg, const char *type,
                       const char *url);

/* Registers every route of a list "type=URL[,type=URL...]" (whitespace around items
 * ignored; "" has none).  A type is 1..64 of [a-z0-9._-] starting with a letter or
 * digit, at most once in the list; a URL is an absolute http:// or https:// URL with
 * a host (percent-encode a comma in it as %2C).  Checks the whole list before it
 * registers anything; returns HANDLER_HTTP_EINVAL when it is malformed, with
 * ret_bad (may be NULL) pointing into routes at the offending item. */
int handler_http_routes(struct handler_http *h, struct handler_registry *reg, const char *routes,
                        const char **ret_bad);

/* Only checks such a list: 0 or HANDLER_HTTP_EINVAL (config validation). */
int handler_http_routes_check(const char *routes);

#endif
