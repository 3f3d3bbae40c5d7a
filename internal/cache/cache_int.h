/* cache module-private: the adapter's state and the connection pool shared by the
 * entry calls (task.c), the notifier (notify.c) and the subscriber (subscribe.c). */
#ifndef DISPATCH_CACHE_INT_H
#define DISPATCH_CACHE_INT_H

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>

#include "breaker/breaker.h"
#include "cache/cache.h"

#define CACHE__KEY_PREFIX "dispatch:task:"
#define CACHE__KEY_LEN    (sizeof CACHE__KEY_PREFIX - 1 + IDS_TEXT_LEN)
#define CACHE__SHA_LEN    40

struct cache__conn {
    redisContext *rc; /* NULL: closed, opened on next use */
    bool busy;
};

struct cache__notifier {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ids_id *q; /* waiting ids, FIFO */
    size_t n, cap;
    bool stopping;
    pthread_t thread;
    bool started;
    bool full_logged;
};

struct cache__subscriber {
    pthread_t thread;
    bool started;
    int wake[2]; /* a pipe: a byte tells the thread to stop */
    atomic_bool stopping;
    const struct cache_events_ops *ops;
    void *ctx;
};

struct cache {
    struct cache_config cfg;
    char *host;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a connection was given back */
    struct cache__conn *conns;
    struct breaker *breaker;
    /* the scripts' SHA1s, learnt with SCRIPT LOAD on the first connection */
    char sha_get[CACHE__SHA_LEN + 1];
    char sha_fill[CACHE__SHA_LEN + 1];
    char sha_ratelimit[CACHE__SHA_LEN + 1];
    struct cache__notifier notifier;
    struct cache__subscriber sub;
    atomic_ullong dropped;
};

/* The Lua scripts (task.c). */
extern const char cache__lua_get[];
extern const char cache__lua_fill[];
/* The rate-limit bucket (ratelimit.c). */
extern const char cache__lua_ratelimit[];

/* EVALSHA sha on k, falling back to EVAL lua when the server lost the script (SCRIPT
 * FLUSH, a restart between SCRIPT LOAD and now).  argv[0] is the one key, argv[1..argc-1]
 * the script's ARGV (argc <= 5).  NULL: an I/O error (the caller ends k with !ok). */
redisReply *cache__eval(struct cache *c, struct cache__conn *k, const char *sha, const char *lua,
                        int argc, const char **argv, const size_t *lens);

/* Takes a connection for one exchange: CACHE_EUNAVAILABLE when the breaker refuses,
 * no connection frees up within the timeout, or connecting fails. */
int cache__begin(struct cache *c, struct cache__conn **ret_conn);
/* Gives the connection back; !ok (an I/O error or timeout) closes it and counts a
 * failure against the breaker, ok counts a success. */
void cache__end(struct cache *c, struct cache__conn *k, bool ok);

/* Opens a connection with the configured timeouts (the subscriber's too); NULL on
 * failure (nothing to free). */
redisContext *cache__connect(const struct cache *c);

/* "dispatch:task:<id>" into out (CACHE__KEY_LEN + 1 bytes). */
void cache__key(const struct ids_id *id, char out[CACHE__KEY_LEN + 1]);

/* Sends "DEL keys; PUBLISH channel ids" for n ids on one connection. */
int cache__invalidate(struct cache *c, const struct ids_id *ids, size_t n);

int cache__notifier_start(struct cache *c);
void cache__notifier_stop(struct cache *c);

#endif
