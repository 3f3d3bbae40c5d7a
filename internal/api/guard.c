/* api — the connection guard: deadlines for request heads and bodies, and the
 * budget for buffered bodies.
 *
 * libmicrohttpd 0.9.75 has only an idle timeout, which every byte resets: a client
 * that trickles a head one line a second (slowloris) or a body one byte at a time
 * keeps its connection for ever.  So every connection carries a deadline that the
 * MHD threads move as a request advances, and a watchdog thread shuts down the
 * socket of any connection past it; MHD then sees end-of-stream and closes it.
 * The model is Apache's mod_reqtimeout: a head must be complete within
 * head_timeout of the accept (or, on a kept-alive connection, of its request line);
 * a body within body_timeout of the head, plus one second for every min_rate bytes
 * received.  While a handler runs or the request is suspended, there is no deadline
 * (the request's own deadlines belong to the pipeline), nor between requests (MHD's
 * idle timeout keeps that).
 *
 * MHD calls the CLOSED notification before it closes the socket, and the watchdog
 * shuts sockets down holding the same lock the notification takes, so it never
 * touches a descriptor MHD has closed (and the kernel may have reused).
 */
#include "api/api_int.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "log/log.h"

#define WATCH_TICK_MS 100 /* how late a deadline may be enforced */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void set_deadline(struct api_conn *c, int64_t at_us, enum api_cut reason)
{
    atomic_store(&c->reason, (int)reason);
    atomic_store(&c->deadline_us, at_us);
}

/* MHD_OPTION_NOTIFY_CONNECTION: registers and unregisters every connection. */
void api__guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe)
{
    struct api *api = cls;
    struct api_guard *g = &api->guard;
    struct api_conn *c = *socket_context;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c = calloc(1, sizeof *c);
        if (!c || !info) {
            free(c); /* unguarded: MHD's idle timeout still applies */
            return;
        }
        c->fd = info->connect_fd;
        atomic_init(&c->reason, API_CUT_HEAD);
        atomic_init(&c->deadline_us, now_us() + g->head_us);
        pthread_mutex_lock(&g->lock);
        c->next = g->conns;
        if (g->conns)
            g->conns->prev = c;
        g->conns = c;
        pthread_mutex_unlock(&g->lock);
        *socket_context = c;
        return;
    }
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&g->lock);
    free(c);
    *socket_context = NULL;
}

struct api_conn *api__guard_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* MHD_OPTION_URI_LOG_CALLBACK: a request line arrived.  On a kept-alive connection
 * this starts the next head's deadline (the first one runs from the accept). */
void *api__guard_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct api *api = cls;
    struct api_conn *c = api__guard_of(conn);
    (void)uri;
    if (c && c->served)
        set_deadline(c, now_us() + api->guard.head_us, API_CUT_HEAD);
    return NULL; /* *con_cls stays NULL: the access handler's first call creates it */
}

void api__guard_body_start(struct api *api, struct api_conn *c)
{
    if (!c)
        return;
    c->body_start_us = now_us();
    set_deadline(c, c->body_start_us + api->guard.body_us, API_CUT_BODY);
}

void api__guard_body_progress(struct api *api, struct api_conn *c, size_t received)
{
    const struct api_guard *g = &api->guard;
    if (!c)
        return;
    set_deadline(
        c, c->body_start_us + g->body_us + (int64_t)(received / (size_t)g->min_rate) * 1000000,
        API_CUT_BODY);
}

void api__guard_busy(struct api_conn *c)
{
    if (c)
        atomic_store(&c->deadline_us, 0);
}

void api__guard_served(struct api_conn *c)
{
    if (!c)
        return;
    c->served = true;
    atomic_store(&c->deadline_us, 0);
}

bool api__budget_take(struct api *api, size_t n)
{
    long long want = (long long)n;
    long long cur = atomic_load(&api->guard.body_bytes);
    do {
        if (cur + want > api->cfg.body_budget_bytes)
            return false;
    } while (!atomic_compare_exchange_weak(&api->guard.body_bytes, &cur, cur + want));
    return true;
}

void api__budget_give(struct api *api, size_t n)
{
    atomic_fetch_sub(&api->guard.body_bytes, (long long)n);
}

static void *watch(void *arg)
{
    struct api_guard *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        struct timespec at;
        unsigned long cut[2] = {0, 0};
        int64_t now;
        clock_gettime(CLOCK_MONOTONIC, &at);
        at.tv_nsec += WATCH_TICK_MS * 1000000L;
        if (at.tv_nsec >= 1000000000L) {
            at.tv_sec++;
            at.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->wake, &g->lock, &at);
        now = now_us();
        for (struct api_conn *c = g->conns; c; c = c->next) {
            int64_t d = atomic_load(&c->deadline_us);
            if (d == 0 || d > now)
                continue;
            atomic_store(&c->deadline_us, 0);
            /* MHD's poll sees end-of-stream and closes the connection */
            shutdown(c->fd, SHUT_RDWR);
            cut[atomic_load(&c->reason) == API_CUT_BODY ? 1 : 0]++;
        }
        g->cut_head += cut[0];
        g->cut_body += cut[1];
        if (cut[0] + cut[1] > 0)
            log_info("closed connections past their deadline", LOG_I("head", (long long)cut[0]),
                     LOG_I("body", (long long)cut[1]));
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

int api__guard_start(struct api *api)
{
    struct api_guard *g = &api->guard;
    pthread_condattr_t ca;
    g->head_us = (int64_t)api->cfg.head_timeout_s * 1000000;
    g->body_us = (int64_t)api->cfg.body_timeout_s * 1000000;
    g->min_rate = api->cfg.body_min_rate > 0 ? api->cfg.body_min_rate : 1;
    atomic_init(&g->body_bytes, 0);
    if (pthread_mutex_init(&g->lock, NULL) != 0)
        return -1;
    if (pthread_condattr_init(&ca) != 0)
        goto out_lock;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_cond_init(&g->wake, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        goto out_lock;
    }
    pthread_condattr_destroy(&ca);
    if (pthread_create(&g->thread, NULL, watch, g) != 0)
        goto out_cond;
    g->started = true;
    return 0;
out_cond:
    pthread_cond_destroy(&g->wake);
out_lock:
    pthread_mutex_destroy(&g->lock);
    return -1;
}

/* After MHD_stop_daemon: every connection has been unregistered. */
void api__guard_stop(struct api *api)
{
    struct api_guard *g = &api->guard;
    if (!g->started)
        return;
    pthread_mutex_lock(&g->lock);
    g->stop = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
    g->started = false;
}
