/* The handler registry: a sorted array of (type, fn, arg), searched with bsearch.
 * Written only before the worker starts, so lookups take no lock. */
#include "handler/handler.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct handler_entry {
    char *type;
    handler_fn fn;
    void *arg;
};

struct handler_registry {
    struct handler_entry *v;
    size_t n, cap;
};

int handler_registry_new(struct handler_registry **ret_reg)
{
    struct handler_registry *reg = calloc(1, sizeof *reg);
    if (reg == NULL) {
        return -1;
    }
    *ret_reg = reg;
    return 0;
}

void handler_registry_free(struct handler_registry *reg)
{
    if (reg == NULL) {
        return;
    }
    for (size_t i = 0; i < reg->n; i++) {
        free(reg->v[i].type);
    }
    free(reg->v);
    free(reg);
}

/* Index of the first entry whose type is >= type. */
static size_t lower_bound(const struct handler_registry *reg, const char *type)
{
    size_t lo = 0, hi = reg->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(reg->v[mid].type, type) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

int handler_register(struct handler_registry *reg, const char *type, handler_fn fn, void *arg)
{
    if (reg == NULL || type == NULL || fn == NULL) {
        return -1;
    }
    size_t at = lower_bound(reg, type);
    if (at < reg->n && strcmp(reg->v[at].type, type) == 0) {
        return -1;
    }
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 8;
        struct handler_entry *v = realloc(reg->v, cap * sizeof *v);
        if (v == NULL) {
            return -1;
        }
        reg->v = v;
        reg->cap = cap;
    }
    char *copy = strdup(type);
    if (copy == NULL) {
        return -1;
    }
    memmove(&reg->v[at + 1], &reg->v[at], (reg->n - at) * sizeof reg->v[0]);
    reg->v[at] = (struct handler_entry){.type = copy, .fn = fn, .arg = arg};
    reg->n++;
    return 0;
}

bool handler_lookup(const struct handler_registry *reg, const char *type, handler_fn *ret_fn,
                    void **ret_arg)
{
    if (reg == NULL || type == NULL) {
        return false;
    }
    size_t at = lower_bound(reg, type);
    if (at >= reg->n || strcmp(reg->v[at].type, type) != 0) {
        return false;
    }
    if (ret_fn != NULL) {
        *ret_fn = reg->v[at].fn;
    }
    if (ret_arg != NULL) {
        *ret_arg = reg->v[at].arg;
    }
    return true;
}

bool handler_ctx_canceled(const struct handler_ctx *ctx)
{
    return ctx->canceled != NULL && atomic_load(ctx->canceled);
}

int64_t handler_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
