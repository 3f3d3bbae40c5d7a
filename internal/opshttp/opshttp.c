/* opshttp — /healthz and /metrics over libmicrohttpd. */
#include "opshttp/opshttp.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config/config.h"
#include "log/log.h"

struct opshttp {
    struct opshttp_config cfg;
    struct MHD_Daemon *daemon;
    int port;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status, char *body,
                             size_t len, const char *type)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result rc;
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result serve_metrics(struct opshttp *o, struct MHD_Connection *conn)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out)
        return MHD_NO;
    o->cfg.render(o->cfg.ctx, out);
    if (fclose(out) != 0) {
        free(buf);
        return MHD_NO;
    }
    return reply(conn, MHD_HTTP_OK, buf, len, "text/plain; version=0.0.4; charset=utf-8");
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    struct opshttp *o = cls;
    (void)version;
    (void)upload;
    if (!*con_cls) {
        /* answer on a later call: queueing on the first loses keep-alive (0.9.75) */
        *con_cls = o;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        *upload_size = 0; /* nothing here takes a body */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("method not allowed\n"), 19,
                     "text/plain");
    if (strcmp(url, "/healthz") == 0) {
        bool ok = !o->cfg.healthy || o->cfg.healthy(o->cfg.ctx);
        char *body = strdup(ok ? "{\"status\":\"ok\"}" : "{\"status\":\"unhealthy\"}");
        return reply(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body,
                     body ? strlen(body) : 0, "application/json");
    }
    if (strcmp(url, "/metrics") == 0 && o->cfg.render)
        return serve_metrics(o, conn);
    return reply(conn, MHD_HTTP_NOT_FOUND, strdup("not found\n"), 10, "text/plain");
}

int opshttp_new(const struct opshttp_config *cfg, struct opshttp **ret)
{
    struct opshttp *o = calloc(1, sizeof *o);
    struct sockaddr_storage ss;
    socklen_t sslen;
    const union MHD_DaemonInfo *info;
    unsigned int flags = MHD_USE_POLL_INTERNAL_THREAD;
    if (!o)
        return -1;
    o->cfg = *cfg;
    if (config_resolve_addr(cfg->addr, &ss, &sslen) < 0) {
        log_error("cannot resolve ops address", LOG_S("addr", cfg->addr));
        free(o);
        return -1;
    }
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    o->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, o, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)64, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)16,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16 * 1024, MHD_OPTION_LISTENING_ADDRESS_REUSE,
        (unsigned int)1, MHD_OPTION_END);
    if (!o->daemon) {
        log_error("cannot start ops HTTP server", LOG_S("addr", cfg->addr));
        free(o);
        return -1;
    }
    info = MHD_get_daemon_info(o->daemon, MHD_DAEMON_INFO_BIND_PORT);
    o->port = info ? info->port : 0;
    *ret = o;
    return 0;
}

int opshttp_port(const struct opshttp *o)
{
    return o->port;
}

void opshttp_free(struct opshttp *o)
{
    if (!o)
        return;
    if (o->daemon)
        MHD_stop_daemon(o->daemon);
    free(o);
}
