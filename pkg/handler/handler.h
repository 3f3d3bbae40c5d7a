/* handler — the registry of task handlers by type, and the built-in handlers.
 *
 * A program that embeds the worker registers its own handlers here:
 *
 *     static int resize(void *arg, const struct handler_ctx *ctx, struct handler_out *out)
 *     { ...; out->result = strdup("{\"ok\":true}"); return HANDLER_OK; }
 *     handler_register(reg, "image.resize", resize, my_state);
 *
 * A handler runs on a pool thread, must be thread-safe, and should return by
 * ctx->deadline_ms (CLOCK_MONOTONIC milliseconds; 0 = none) or soon after
 * handler_ctx_canceled() turns true; the worker records a late return as a timeout.
 * Nothing here knows of dispatch's storage or queues.
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
    int64_t deadline_ms;   /* CLOCK_MONOTONIC ms, 0 = none */
    atomic_bool *canceled; /* set by the worker on drain or timeout; may be NULL */
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

/* noop, echo (result = payload), sleep {"ms": N}, fail {"times": N, "permanent": bool}
 * (fails attempts 1..times, then succeeds; permanent fails for good). */
int handler_register_builtins(struct handler_registry *reg);

bool handler_ctx_canceled(const struct handler_ctx *ctx);
int64_t handler_now_ms(void); /* CLOCK_MONOTONIC */

#endif
