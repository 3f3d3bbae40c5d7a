/* cache — invalidation: "DEL the entries, then PUBLISH their ids", sent in batches by
 * one thread after the writers' database commits. */
#include "cache/cache_int.h"

#include <stdlib.h>
#include <string.h>

#include "log/log.h"

#define BATCH_MAX 256   /* ids per DEL / PUBLISH pair */
#define QUEUE_MAX 65536 /* ids waiting; beyond this Redis is too slow to keep up */

int cache__invalidate(struct cache *c, const struct ids_id *ids, size_t n)
{
    /* argv: "DEL" and n keys; then "PUBLISH", the channel, "<id> <id> ..." */
    const char **av = NULL;
    size_t *al = NULL;
    char *keys = NULL, *payload = NULL;
    const char *pub[3] = {"PUBLISH", CACHE_CHANNEL, NULL};
    size_t pub_len[3] = {7, sizeof CACHE_CHANNEL - 1, 0};
    struct cache__conn *k;
    void *reply;
    bool ok;
    int rc = CACHE_ENOMEM;

    if (n == 0)
        return CACHE_OK;
    av = malloc((n + 1) * sizeof *av);
    al = malloc((n + 1) * sizeof *al);
    keys = malloc(n * (CACHE__KEY_LEN + 1));
    payload = malloc(n * (IDS_TEXT_LEN + 1));
    if (!av || !al || !keys || !payload)
        goto out_free;
    av[0] = "DEL";
    al[0] = 3;
    for (size_t i = 0; i < n; i++) {
        char *key = keys + i * (CACHE__KEY_LEN + 1);
        cache__key(&ids[i], key);
        av[i + 1] = key;
        al[i + 1] = CACHE__KEY_LEN;
        ids_format(&ids[i], payload + i * (IDS_TEXT_LEN + 1));
        payload[i * (IDS_TEXT_LEN + 1) + IDS_TEXT_LEN] = ' ';
    }
    pub[2] = payload;
    pub_len[2] = n * (IDS_TEXT_LEN + 1) - 1; /* without the last space */

    rc = cache__begin(c, &k);
    if (rc != CACHE_OK)
        goto out_free;
    /* pipelined: both commands in one write, then both replies */
    ok = redisAppendCommandArgv(k->rc, (int)n + 1, av, al) == REDIS_OK &&
         redisAppendCommandArgv(k->rc, 3, pub, pub_len) == REDIS_OK;
    for (int i = 0; ok && i < 2; i++) {
        reply = NULL;
        ok = redisGetReply(k->rc, &reply) == REDIS_OK && reply;
        if (reply)
            freeReplyObject(reply);
    }
    cache__end(c, k, ok);
    rc = ok ? CACHE_OK : CACHE_EUNAVAILABLE;
out_free:
    free(payload);
    free(keys);
    free(al);
    free(av);
    return rc;
}

static void send_all(struct cache *c, const struct ids_id *ids, size_t n)
{
    for (size_t off = 0; off < n; off += BATCH_MAX) {
        size_t m = n - off < BATCH_MAX ? n - off : BATCH_MAX;
        if (cache__invalidate(c, ids + off, m) != CACHE_OK)
            atomic_fetch_add(&c->dropped, m);
    }
}

static void *notifier_run(void *arg)
{
    struct cache *c = arg;
    struct cache__notifier *nt = &c->notifier;
    for (;;) {
        struct ids_id *q;
        size_t n;
        pthread_mutex_lock(&nt->mu);
        while (nt->n == 0 && !nt->stopping)
            pthread_cond_wait(&nt->cv, &nt->mu);
        if (nt->n == 0) {
            pthread_mutex_unlock(&nt->mu);
            break;
        }
        /* take the whole queue: the writers go on appending to a fresh one */
        q = nt->q;
        n = nt->n;
        nt->q = NULL;
        nt->n = nt->cap = 0;
        nt->full_logged = false;
        pthread_mutex_unlock(&nt->mu);
        send_all(c, q, n);
        free(q);
    }
    return NULL;
}

void cache_task_changed(struct cache *c, const struct ids_id *ids, size_t n)
{
    struct cache__notifier *nt;
    bool log_full = false;

    if (!c || n == 0)
        return;
    nt = &c->notifier;
    pthread_mutex_lock(&nt->mu);
    if (nt->n + n > QUEUE_MAX) {
        atomic_fetch_add(&c->dropped, n);
        log_full = !nt->full_logged;
        nt->full_logged = true;
    } else {
        if (nt->n + n > nt->cap) {
            size_t cap = nt->cap ? nt->cap : 64;
            struct ids_id *q;
            while (cap < nt->n + n)
                cap *= 2;
            q = realloc(nt->q, cap * sizeof *q);
            if (!q) {
                atomic_fetch_add(&c->dropped, n);
                pthread_mutex_unlock(&nt->mu);
                return;
            }
            nt->q = q;
            nt->cap = cap;
        }
        memcpy(nt->q + nt->n, ids, n * sizeof *ids);
        nt->n += n;
        pthread_cond_signal(&nt->cv);
    }
    pthread_mutex_unlock(&nt->mu);
    if (log_full)
        log_warn("redis invalidation queue full: dropping invalidations", LOG_I("max", QUEUE_MAX));
}

int cache_task_changed_now(struct cache *c, const struct ids_id *ids, size_t n)
{
    int rc = CACHE_OK;
    for (size_t off = 0; off < n && rc == CACHE_OK; off += BATCH_MAX) {
        size_t m = n - off < BATCH_MAX ? n - off : BATCH_MAX;
        rc = cache__invalidate(c, ids + off, m);
    }
    return rc;
}

int cache__notifier_start(struct cache *c)
{
    struct cache__notifier *nt = &c->notifier;
    pthread_mutex_init(&nt->mu, NULL);
    pthread_cond_init(&nt->cv, NULL);
    if (pthread_create(&nt->thread, NULL, notifier_run, c) != 0)
        return -1;
    nt->started = true;
    return 0;
}

void cache__notifier_stop(struct cache *c)
{
    struct cache__notifier *nt = &c->notifier;
    if (!nt->started)
        return;
    pthread_mutex_lock(&nt->mu);
    nt->stopping = true;
    pthread_cond_signal(&nt->cv);
    pthread_mutex_unlock(&nt->mu);
    pthread_join(nt->thread, NULL);
    nt->started = false;
    free(nt->q);
    pthread_cond_destroy(&nt->cv);
    pthread_mutex_destroy(&nt->mu);
}
