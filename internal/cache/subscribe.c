/* cache — the producers' side of invalidation: one thread subscribed to the channel,
 * on its own connection, telling the status service what changed. */
#include "cache/cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"

/* A PING after this long without traffic, and a dead peer when the next interval is
 * silent too. */
#define IDLE_PING_MS  1000
#define RECONNECT_MIN 100 /* ms between attempts, doubling up to RECONNECT_MAX */
#define RECONNECT_MAX 1000

static bool stopping(const struct cache__subscriber *s)
{
    return atomic_load(&s->stopping);
}

/* Sleeps ms, or less when woken to stop. */
static void pause_ms(struct cache__subscriber *s, int ms)
{
    struct pollfd p = {s->wake[0], POLLIN, 0};
    if (!stopping(s))
        (void)poll(&p, 1, ms);
}

/* "<id> <id> ..." of one message. */
static void deliver(struct cache__subscriber *s, const char *payload, size_t len)
{
    size_t i = 0;
    while (i < len) {
        struct ids_id id;
        size_t j = i;
        while (j < len && payload[j] != ' ')
            j++;
        if (ids_parse(payload + i, j - i, &id) == 0)
            s->ops->changed(s->ctx, &id);
        i = j + 1;
    }
}

static void handle(struct cache__subscriber *s, const redisReply *r)
{
    const redisReply *kind, *payload;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        return; /* PING's answer in subscribed mode is ["pong", ""]: nothing to do */
    kind = r->element[0];
    payload = r->element[2];
    if (kind->type == REDIS_REPLY_STRING && kind->len == 7 &&
        memcmp(kind->str, "message", 7) == 0 && payload->type == REDIS_REPLY_STRING)
        deliver(s, payload->str, payload->len);
}

/* Reads messages until the connection fails, goes silent, or we are stopped. */
static void listen_on(struct cache__subscriber *s, redisContext *rc)
{
    bool ping_out = false;
    for (;;) {
        struct pollfd p[2] = {{rc->fd, POLLIN, 0}, {s->wake[0], POLLIN, 0}};
        void *reply = NULL;
        int n;
        /* whatever the last read brought, reply by reply */
        while (redisGetReplyFromReader(rc, &reply) == REDIS_OK && reply) {
            handle(s, reply);
            freeReplyObject(reply);
            reply = NULL;
            ping_out = false;
        }
        if (rc->err)
            return;
        n = poll(p, 2, IDLE_PING_MS);
        if (stopping(s) || (n > 0 && p[1].revents))
            return;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (n == 0) {
            int done = 0;
            if (ping_out)
                return; /* a whole interval without an answer: the peer is gone */
            if (redisAppendCommand(rc, "PING") != REDIS_OK)
                return;
            while (!done) {
                if (redisBufferWrite(rc, &done) != REDIS_OK)
                    return;
            }
            ping_out = true;
            continue;
        }
        if (redisBufferRead(rc) != REDIS_OK)
            return;
    }
}

static bool subscribe_on(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "SUBSCRIBE %s", CACHE_CHANNEL);
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 3;
    if (r)
        freeReplyObject(r);
    return ok;
}

static void *subscriber_run(void *arg)
{
    struct cache *c = arg;
    struct cache__subscriber *s = &c->sub;
    int backoff = RECONNECT_MIN;
    bool down_logged = false;

    while (!stopping(s)) {
        redisContext *rc = cache__connect(c);
        if (rc && subscribe_on(rc)) {
            if (down_logged)
                log_info("redis subscription restored", LOG_S("channel", CACHE_CHANNEL));
            down_logged = false;
            backoff = RECONNECT_MIN;
            s->ops->state(s->ctx, true);
            listen_on(s, rc);
            s->ops->state(s->ctx, false);
        }
        if (rc)
            redisFree(rc);
        if (stopping(s))
            break;
        if (!down_logged) {
            log_warn("redis subscription down: in-process cache off until it is back",
                     LOG_S("host", c->host), LOG_I("port", c->cfg.port));
            down_logged = true;
        }
        pause_ms(s, backoff);
        backoff = backoff * 2 > RECONNECT_MAX ? RECONNECT_MAX : backoff * 2;
    }
    return NULL;
}

int cache_subscribe(struct cache *c, const struct cache_events_ops *ops, void *ctx)
{
    struct cache__subscriber *s = &c->sub;
    if (!ops || !ops->changed || !ops->state || s->started)
        return CACHE_EINVAL;
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) != 0)
        return CACHE_ENOMEM;
    s->ops = ops;
    s->ctx = ctx;
    atomic_store(&s->stopping, false);
    if (pthread_create(&s->thread, NULL, subscriber_run, c) != 0) {
        close(s->wake[0]);
        close(s->wake[1]);
        s->wake[0] = s->wake[1] = -1;
        return CACHE_ENOMEM;
    }
    s->started = true;
    return CACHE_OK;
}

void cache_unsubscribe(struct cache *c)
{
    struct cache__subscriber *s;
    if (!c || !c->sub.started)
        return;
    s = &c->sub;
    atomic_store(&s->stopping, true);
    if (write(s->wake[1], "x", 1) < 0) {
        /* the pipe is non-blocking and read by nobody else: it cannot be full; the
         * thread also sees the flag within one poll interval */
    }
    pthread_join(s->thread, NULL);
    s->started = false;
    close(s->wake[0]);
    close(s->wake[1]);
    s->wake[0] = s->wake[1] = -1;
}
