/* lru — a bounded least-recently-used map from byte keys to byte values, each entry
 * with its own time to live.
 *
 * Sharded for threads: a key's hash picks one of a power-of-two number of shards,
 * each with its own mutex, hash table and recency list, so concurrent callers only
 * contend when their keys share a shard.  Every operation is O(1): a hash lookup and
 * a few list splices; a full shard evicts its least recently used entry.  The
 * capacity is split between the shards (their sum is exactly the capacity), so a
 * shard may evict while another still has room.  A byte budget (max_bytes) is split
 * the same way: a shard drops its least recently used entries until a new one fits,
 * and refuses (LRU_ETOOBIG) an entry larger than its whole share.
 *
 * Keys and values are copied in, and lru_get() copies a value out, so no pointer into
 * the map ever escapes its lock.
 *
 * Stamps fence fills against invalidations.  Every lru_remove() moves the stamp of its
 * key's slot (and lru_clear() every stamp); a caller that reads a key's stamp before
 * fetching a value from elsewhere and stores it with lru_put_if() stores nothing if
 * the key may have been invalidated meanwhile (LRU_ESTALE), so a slow fill never
 * resurrects an old value.  A slot is shared by the keys whose hashes agree in a few
 * bits (4096 slots with the default 16 shards): a refused fill is only a missed
 * chance to cache, never a wrong answer.
 *
 * Time is milliseconds from a monotonic clock, CLOCK_MONOTONIC unless the config
 * names another (tests).  An expired entry is a miss and is dropped when met.
 */
#ifndef LRU_H
#define LRU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lru_err {
    LRU_OK = 0,
    LRU_ENOTFOUND = -1, /* no entry, or an expired one */
    LRU_ENOMEM = -2,
    LRU_ESTALE = -3, /* lru_put_if: the key's stamp moved; nothing stored */
    LRU_EINVAL = -4,
    LRU_ETOOBIG = -5, /* the entry alone is larger than a shard's byte budget */
};

/* Milliseconds on a monotonic clock. */
typedef int64_t (*lru_clock_fn)(void *ctx);

struct lru_config {
    size_t capacity;    /* entries held at most, >= 1 */
    size_t shards;      /* locks; rounded up to a power of two, at most capacity; 0: 16 */
    lru_clock_fn clock; /* NULL: CLOCK_MONOTONIC */
    void *clock_ctx;
    size_t max_bytes; /* bytes held at most (0: no bound), split like capacity */
};

struct lru;

int lru_new(const struct lru_config *cfg, struct lru **ret_lru);
/* Frees every entry and the map; NULL is accepted.  No call may be running. */
void lru_free(struct lru *l);

/* Copies the value of key into *ret_value (owned by the caller: free(); followed by
 * one NUL byte not counted in *ret_len, so text values are C strings) and marks the
 * entry most recently used.  LRU_ENOTFOUND when absent or expired; LRU_ENOMEM. */
int lru_get(struct lru *l, const void *key, size_t klen, void **ret_value, size_t *ret_len);

/* Stores a copy of value under key for ttl_ms (> 0), replacing any entry of key and
 * evicting the shard's least recently used entries when it is full (in entries or
 * bytes).  LRU_ETOOBIG (nothing stored, nothing evicted) for an entry over a shard's
 * byte budget. */
int lru_put(struct lru *l, const void *key, size_t klen, const void *value, size_t len,
            int64_t ttl_ms);

/* The stamp of key's slot, for lru_put_if(). */
uint64_t lru_stamp(struct lru *l, const void *key, size_t klen);
/* lru_put() unless key's stamp is no longer stamp: then LRU_ESTALE. */
int lru_put_if(struct lru *l, const void *key, size_t klen, const void *value, size_t len,
               int64_t ttl_ms, uint64_t stamp);

/* Drops key's entry (if any) and moves its stamp; true when one was there. */
bool lru_remove(struct lru *l, const void *key, size_t klen);
/* Drops every entry and moves every stamp. */
void lru_clear(struct lru *l);

/* Entries held now (expired ones not yet met included). */
size_t lru_size(struct lru *l);
/* Bytes they take against max_bytes: each entry's key, value and node header. */
size_t lru_bytes(struct lru *l);

#endif
