/* opshttp — the small operations endpoint of a process that has no API of its own
 * (the worker): GET /healthz and GET /metrics on their own port.
 *
 * One internal poll thread (libmicrohttpd); connection timeout and limits set.
 * /healthz answers 200 {"status":"ok"} while healthy() says so (or when it is NULL),
 * 503 otherwise; /metrics answers what render() writes, as Prometheus text.
 */
#ifndef DISPATCH_OPSHTTP_H
#define DISPATCH_OPSHTTP_H

#include <stdbool.h>
#include <stdio.h>

struct opshttp_config {
    const char *addr; /* host:port; port 0 picks a free one */
    bool (*healthy)(void *ctx);
    /* writes the exposition text to out; NULL: /metrics is 404 */
    void (*render)(void *ctx, FILE *out);
    void *ctx;
};

struct opshttp;

int opshttp_new(const struct opshttp_config *cfg, struct opshttp **ret);
int opshttp_port(const struct opshttp *o);
void opshttp_free(struct opshttp *o);

#endif
