/* lru — sharded hash tables with intrusive recency lists. */
#include "lru/lru.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_SHARDS 16
#define MIN_BUCKETS    8
#define SHARD_STAMPS   256 /* per shard, power of two: a key's slot is some of its hash's bits */

struct node {
    struct node *prev, *next; /* recency list: most recent at the shard's head */
    struct node *hnext;       /* hash bucket chain */
    uint64_t hash;
    int64_t expires_ms;
    size_t klen, vlen;
    unsigned char data[]; /* the key, then the value */
};

struct shard {
    pthread_mutex_t mu;
    struct node **buckets;
    size_t mask; /* buckets - 1 */
    struct node *head, *tail;
    size_t count, cap;
    size_t bytes, max_bytes; /* what its entries take (node_bytes); 0: no byte budget */
    /* fences: an eviction moves its key's slot; fills of keys in other slots go on */
    _Atomic uint64_t stamps[SHARD_STAMPS];
};

struct lru {
    struct shard *shards;
    size_t n_shards;
    lru_clock_fn clock;
    void *clock_ctx;
    size_t max_bytes_shard; /* every shard's byte budget; 0: none */
};

/* What an entry costs against the byte budget: its node, key and value. */
static size_t node_bytes(const struct node *n)
{
    return sizeof *n + n->klen + n->vlen;
}

static int64_t monotonic_ms(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a, then MurmurHash3's finaliser so that every bit of the key reaches the high
 * bits (which pick the shard) as well as the low ones (which pick the bucket). */
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
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

static struct shard *shard_of(const struct lru *l, uint64_t h)
{
    return &l->shards[(h >> 40) & (l->n_shards - 1)];
}

/* Bits 20..27: neither the bucket's (low) nor the shard's (from 40 up). */
static _Atomic uint64_t *stamp_of(struct shard *s, uint64_t h)
{
    return &s->stamps[(h >> 20) & (SHARD_STAMPS - 1)];
}

static struct node *find(const struct shard *s, uint64_t h, const void *key, size_t klen)
{
    for (struct node *n = s->buckets[h & s->mask]; n; n = n->hnext) {
        if (n->hash == h && n->klen == klen && memcmp(n->data, key, klen) == 0)
            return n;
    }
    return NULL;
}

static void list_unlink(struct shard *s, struct node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        s->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        s->tail = n->prev;
    n->prev = n->next = NULL;
}

static void list_push_front(struct shard *s, struct node *n)
{
    n->prev = NULL;
    n->next = s->head;
    if (s->head)
        s->head->prev = n;
    s->head = n;
    if (!s->tail)
        s->tail = n;
}

/* Unlinks n from its bucket and the list and frees it. */
static void drop(struct shard *s, struct node *n)
{
    struct node **pp = &s->buckets[n->hash & s->mask];
    while (*pp != n)
        pp = &(*pp)->hnext;
    *pp = n->hnext;
    list_unlink(s, n);
    s->count--;
    s->bytes -= node_bytes(n);
    free(n);
}

static void shard_release(struct shard *s)
{
    struct node *n = s->head;
    while (n) {
        struct node *next = n->next;
        free(n);
        n = next;
    }
    free(s->buckets);
    pthread_mutex_destroy(&s->mu);
}

int lru_new(const struct lru_config *cfg, struct lru **ret_lru)
{
    struct lru *l;
    size_t n_shards, base, extra;

    if (!cfg || cfg->capacity < 1)
        return LRU_EINVAL;
    n_shards = pow2_at_least(cfg->shards ? cfg->shards : DEFAULT_SHARDS);
    while (n_shards > 1 && n_shards > cfg->capacity)
        n_shards >>= 1; /* every shard holds at least one entry */
    l = calloc(1, sizeof *l);
    if (!l)
        return LRU_ENOMEM;
    l->shards = calloc(n_shards, sizeof *l->shards);
    if (!l->shards) {
        free(l);
        return LRU_ENOMEM;
    }
    l->clock = cfg->clock ? cfg->clock : monotonic_ms;
    l->clock_ctx = cfg->clock_ctx;
    if (cfg->max_bytes)
        l->max_bytes_shard = cfg->max_bytes / n_shards > 0 ? cfg->max_bytes / n_shards : 1;
    base = cfg->capacity / n_shards;
    extra = cfg->capacity % n_shards;
    for (; l->n_shards < n_shards; l->n_shards++) {
        struct shard *s = &l->shards[l->n_shards];
        size_t nb;
        s->cap = base + (l->n_shards < extra ? 1 : 0);
        s->max_bytes = l->max_bytes_shard;
        nb = pow2_at_least(s->cap < MIN_BUCKETS ? MIN_BUCKETS : s->cap);
        s->buckets = calloc(nb, sizeof(struct node *));
        if (!s->buckets) {
            lru_free(l);
            return LRU_ENOMEM;
        }
        s->mask = nb - 1;
        pthread_mutex_init(&s->mu, NULL);
    }
    *ret_lru = l;
    return LRU_OK;
}

void lru_free(struct lru *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_shards; i++)
        shard_release(&l->shards[i]);
    free(l->shards);
    free(l);
}

int lru_get(struct lru *l, const void *key, size_t klen, void **ret_value, size_t *ret_len)
{
    uint64_t h = hash_key(key, klen);
    struct shard *s = shard_of(l, h);
    int64_t now = l->clock(l->clock_ctx);
    struct node *n;
    unsigned char *copy;
    size_t len;

    pthread_mutex_lock(&s->mu);
    n = find(s, h, key, klen);
    if (!n) {
        pthread_mutex_unlock(&s->mu);
        return LRU_ENOTFOUND;
    }
    if (now >= n->expires_ms) {
        drop(s, n);
        pthread_mutex_unlock(&s->mu);
        return LRU_ENOTFOUND;
    }
    len = n->vlen;
    copy = malloc(len + 1);
    if (!copy) {
        pthread_mutex_unlock(&s->mu);
        return LRU_ENOMEM;
    }
    memcpy(copy, n->data + n->klen, len);
    copy[len] = '\0';
    if (s->head != n) {
        list_unlink(s, n);
        list_push_front(s, n);
    }
    pthread_mutex_unlock(&s->mu);
    *ret_value = copy;
    *ret_len = len;
    return LRU_OK;
}

static int put(struct lru *l, const void *key, size_t klen, const void *value, size_t len,
               int64_t ttl_ms, const uint64_t *stamp)
{
    uint64_t h = hash_key(key, klen);
    struct shard *s = shard_of(l, h);
    struct node *n, *old;
    struct node **bucket;

    if (ttl_ms <= 0 || (len > 0 && !value))
        return LRU_EINVAL;
    if (l->max_bytes_shard && sizeof *n + klen + len > l->max_bytes_shard) {
        /* it would not fit at all: not stored, and an older value of key is no
         * longer right either */
        pthread_mutex_lock(&s->mu);
        if ((old = find(s, h, key, klen)))
            drop(s, old);
        pthread_mutex_unlock(&s->mu);
        return LRU_ETOOBIG;
    }
    /* built outside the lock: the critical section is a lookup and a few splices */
    n = malloc(sizeof *n + klen + len);
    if (!n)
        return LRU_ENOMEM;
    n->hash = h;
    n->klen = klen;
    n->vlen = len;
    n->expires_ms = l->clock(l->clock_ctx) + ttl_ms;
    memcpy(n->data, key, klen);
    if (len > 0)
        memcpy(n->data + klen, value, len);

    pthread_mutex_lock(&s->mu);
    if (stamp && atomic_load(stamp_of(s, h)) != *stamp) {
        pthread_mutex_unlock(&s->mu);
        free(n);
        return LRU_ESTALE;
    }
    old = find(s, h, key, klen);
    if (old)
        drop(s, old);
    else if (s->count >= s->cap)
        drop(s, s->tail);
    while (s->max_bytes && s->tail && s->bytes + node_bytes(n) > s->max_bytes)
        drop(s, s->tail); /* the oldest go until the new entry fits the budget */
    bucket = &s->buckets[h & s->mask];
    n->hnext = *bucket;
    *bucket = n;
    list_push_front(s, n);
    s->count++;
    s->bytes += node_bytes(n);
    pthread_mutex_unlock(&s->mu);
    return LRU_OK;
}

int lru_put(struct lru *l, const void *key, size_t klen, const void *value, size_t len,
            int64_t ttl_ms)
{
    return put(l, key, klen, value, len, ttl_ms, NULL);
}

uint64_t lru_stamp(struct lru *l, const void *key, size_t klen)
{
    uint64_t h = hash_key(key, klen);
    return atomic_load(stamp_of(shard_of(l, h), h));
}

int lru_put_if(struct lru *l, const void *key, size_t klen, const void *value, size_t len,
               int64_t ttl_ms, uint64_t stamp)
{
    return put(l, key, klen, value, len, ttl_ms, &stamp);
}

bool lru_remove(struct lru *l, const void *key, size_t klen)
{
    uint64_t h = hash_key(key, klen);
    struct shard *s = shard_of(l, h);
    struct node *n;
    bool found;

    pthread_mutex_lock(&s->mu);
    /* moved under the lock, so a lru_put_if() that read the old stamp and takes the
     * lock after us refuses to store */
    atomic_fetch_add(stamp_of(s, h), 1);
    n = find(s, h, key, klen);
    found = n != NULL;
    if (found)
        drop(s, n);
    pthread_mutex_unlock(&s->mu);
    return found;
}

void lru_clear(struct lru *l)
{
    for (size_t i = 0; i < l->n_shards; i++) {
        struct shard *s = &l->shards[i];
        struct node *n;
        pthread_mutex_lock(&s->mu);
        for (size_t k = 0; k < SHARD_STAMPS; k++)
            atomic_fetch_add(&s->stamps[k], 1);
        n = s->head;
        while (n) {
            struct node *next = n->next;
            free(n);
            n = next;
        }
        memset(s->buckets, 0, (s->mask + 1) * sizeof(struct node *));
        s->head = s->tail = NULL;
        s->count = 0;
        s->bytes = 0;
        pthread_mutex_unlock(&s->mu);
    }
}

size_t lru_size(struct lru *l)
{
    size_t total = 0;
    for (size_t i = 0; i < l->n_shards; i++) {
        struct shard *s = &l->shards[i];
        pthread_mutex_lock(&s->mu);
        total += s->count;
        pthread_mutex_unlock(&s->mu);
    }
    return total;
}

size_t lru_bytes(struct lru *l)
{
    size_t total = 0;
    for (size_t i = 0; i < l->n_shards; i++) {
        struct shard *s = &l->shards[i];
        pthread_mutex_lock(&s->mu);
        total += s->bytes;
        pthread_mutex_unlock(&s->mu);
    }
    return total;
}
