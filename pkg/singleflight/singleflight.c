/* singleflight — a sharded map of flights, each a FIFO of waiters. */
#include "singleflight/singleflight.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS  16 /* power of two */
#define BUCKETS 64 /* per shard, power of two: flights are few (one per key in the air) */

struct flight {
    struct flight *hnext;
    uint64_t hash;
    struct singleflight_waiter *head, *tail;
    size_t klen;
    unsigned char key[];
};

struct shard {
    pthread_mutex_t mu;
    struct flight *buckets[BUCKETS];
    size_t n;
};

struct singleflight {
    struct shard shards[SHARDS];
};

static uint64_t hash_key(const void *key, size_t klen)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < klen; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static struct shard *shard_of(struct singleflight *sf, uint64_t h)
{
    return &sf->shards[(h >> 32) & (SHARDS - 1)];
}

/* The link that points at key's flight (*link is NULL when there is none). */
static struct flight **find(struct shard *s, uint64_t h, const void *key, size_t klen)
{
    struct flight **pp = &s->buckets[h & (BUCKETS - 1)];
    for (; *pp; pp = &(*pp)->hnext) {
        const struct flight *f = *pp;
        if (f->hash == h && f->klen == klen && memcmp(f->key, key, klen) == 0)
            break;
    }
    return pp;
}

int singleflight_new(struct singleflight **ret_sf)
{
    struct singleflight *sf = calloc(1, sizeof *sf);
    if (!sf)
        return SINGLEFLIGHT_ENOMEM;
    for (size_t i = 0; i < SHARDS; i++)
        pthread_mutex_init(&sf->shards[i].mu, NULL);
    *ret_sf = sf;
    return 0;
}

void singleflight_free(struct singleflight *sf)
{
    if (!sf)
        return;
    for (size_t i = 0; i < SHARDS; i++) {
        struct shard *s = &sf->shards[i];
        for (size_t b = 0; b < BUCKETS; b++) {
            struct flight *f = s->buckets[b];
            while (f) {
                struct flight *next = f->hnext;
                free(f);
                f = next;
            }
        }
        pthread_mutex_destroy(&s->mu);
    }
    free(sf);
}

int singleflight_join(struct singleflight *sf, const void *key, size_t klen,
                      struct singleflight_waiter *w)
{
    uint64_t h = hash_key(key, klen);
    struct shard *s = shard_of(sf, h);
    struct flight **link, *f;

    if (!w || !w->done || (klen > 0 && !key))
        return SINGLEFLIGHT_EINVAL;
    w->next_ = NULL;
    pthread_mutex_lock(&s->mu);
    link = find(s, h, key, klen);
    if (*link) {
        f = *link;
        f->tail->next_ = w;
        f->tail = w;
        pthread_mutex_unlock(&s->mu);
        return SINGLEFLIGHT_JOINED;
    }
    f = malloc(sizeof *f + klen);
    if (!f) {
        pthread_mutex_unlock(&s->mu);
        return SINGLEFLIGHT_ENOMEM;
    }
    f->hnext = NULL;
    f->hash = h;
    f->head = f->tail = w;
    f->klen = klen;
    if (klen > 0)
        memcpy(f->key, key, klen);
    *link = f;
    s->n++;
    pthread_mutex_unlock(&s->mu);
    return SINGLEFLIGHT_LEADER;
}

size_t singleflight_finish(struct singleflight *sf, const void *key, size_t klen, void *result)
{
    uint64_t h = hash_key(key, klen);
    struct shard *s = shard_of(sf, h);
    struct flight **link, *f;
    struct singleflight_waiter *w;
    size_t called = 0;

    pthread_mutex_lock(&s->mu);
    link = find(s, h, key, klen);
    f = *link;
    if (f) {
        *link = f->hnext;
        s->n--;
    }
    pthread_mutex_unlock(&s->mu);
    if (!f)
        return 0;
    w = f->head;
    free(f);
    while (w) {
        /* done may free w (and so its link) or join again: read the next one first */
        struct singleflight_waiter *next = w->next_;
        w->done(w, result);
        called++;
        w = next;
    }
    return called;
}

size_t singleflight_flights(struct singleflight *sf)
{
    size_t n = 0;
    for (size_t i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&sf->shards[i].mu);
        n += sf->shards[i].n;
        pthread_mutex_unlock(&sf->shards[i].mu);
    }
    return n;
}
