/* cache — task entries: the lookup that takes a fill lease on a miss, and the fill. */
#include "cache/cache_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff/backoff.h"

/* KEYS[1] the entry; ARGV[1] a fresh lease token, ARGV[2] the lease's TTL (ms).
 * {1, value}: a hit.  {2}: a miss, and the lease is the caller's.  {0}: a miss while
 * another reader holds the lease (do not fill). */
const char cache__lua_get[] = "local r = redis.call('HMGET', KEYS[1], 'd', 'g')\n"
                              "if r[1] then return {1, r[1]} end\n"
                              "if r[2] then return {0} end\n"
                              "redis.call('HSET', KEYS[1], 'g', ARGV[1])\n"
                              "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                              "return {2}\n";

/* KEYS[1] the entry; ARGV[1] the lease token, ARGV[2] the version, ARGV[3] the value,
 * ARGV[4] the TTL (ms).  Stores only while the lease is the caller's (a writer's DEL
 * since the lookup took it away) and no newer version is there.  1 stored, 0 not. */
const char cache__lua_fill[] = "if redis.call('HGET', KEYS[1], 'g') ~= ARGV[1] then return 0 end\n"
                               "local v = redis.call('HGET', KEYS[1], 'v')\n"
                               "if v and tonumber(v) > tonumber(ARGV[2]) then return 0 end\n"
                               "redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])\n"
                               "redis.call('HDEL', KEYS[1], 'g')\n"
                               "redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
                               "return 1\n";

static bool is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

#define EVAL_ARGS_MAX 5 /* the key and up to 4 ARGV */

/* EVALSHA, falling back to EVAL when the server lost the script (SCRIPT FLUSH).
 * argv[0] is the one key, argv[1..argc-1] the script's ARGV.  NULL: an I/O error. */
redisReply *cache__eval(struct cache *c, struct cache__conn *k, const char *sha, const char *lua,
                        int argc, const char **argv, const size_t *lens)
{
    const char *av[3 + EVAL_ARGS_MAX];
    size_t al[3 + EVAL_ARGS_MAX];
    redisReply *r;
    char sha_copy[CACHE__SHA_LEN + 1];

    if (argc < 1 || argc > EVAL_ARGS_MAX)
        return redisCommand(k->rc, "PING"); /* a caller's bug: an answer that is no hit */

    pthread_mutex_lock(&c->mu);
    memcpy(sha_copy, sha, sizeof sha_copy);
    pthread_mutex_unlock(&c->mu);
    av[0] = "EVALSHA";
    al[0] = 7;
    av[1] = sha_copy;
    al[1] = strlen(sha_copy);
    av[2] = "1";
    al[2] = 1;
    for (int i = 0; i < argc; i++) {
        av[3 + i] = argv[i];
        al[3 + i] = lens[i];
    }
    r = redisCommandArgv(k->rc, 3 + argc, av, al);
    if (!is_noscript(r))
        return r;
    freeReplyObject(r);
    av[0] = "EVAL";
    al[0] = 4;
    av[1] = lua;
    al[1] = strlen(lua);
    return redisCommandArgv(k->rc, 3 + argc, av, al);
}

static uint64_t new_lease(void)
{
    uint64_t v;
    do
        v = backoff_random();
    while (v == 0);
    return v;
}

int cache_task_get(struct cache *c, const struct ids_id *id, struct cache_entry *ret_entry)
{
    struct cache__conn *k;
    char key[CACHE__KEY_LEN + 1], token[17], lease_ms[16];
    uint64_t lease = new_lease();
    const char *argv[3] = {key, token, lease_ms};
    size_t lens[3];
    struct cache_entry e = {NULL, 0, 0};
    redisReply *r;
    int rc;

    cache__key(id, key);
    snprintf(token, sizeof token, "%016" PRIx64, lease);
    snprintf(lease_ms, sizeof lease_ms, "%d", c->cfg.lease_ms);
    for (int i = 0; i < 3; i++)
        lens[i] = strlen(argv[i]);
    rc = cache__begin(c, &k);
    if (rc != CACHE_OK)
        return rc;
    r = cache__eval(c, k, c->sha_get, cache__lua_get, 3, argv, lens);
    if (!r) {
        cache__end(c, k, false);
        return CACHE_EUNAVAILABLE;
    }
    /* the server answered: whatever it said, the connection is fine */
    cache__end(c, k, true);
    rc = CACHE_EUNAVAILABLE;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER) {
        long long tag = r->element[0]->integer;
        if (tag == 1 && r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING) {
            e.value = malloc(r->element[1]->len + 1);
            if (e.value) {
                memcpy(e.value, r->element[1]->str, r->element[1]->len);
                ((char *)e.value)[r->element[1]->len] = '\0';
                e.len = r->element[1]->len;
                rc = CACHE_OK;
            } else {
                rc = CACHE_ENOMEM;
            }
        } else if (tag == 2 || tag == 0) {
            e.lease = tag == 2 ? lease : 0;
            rc = CACHE_OK;
        }
    }
    freeReplyObject(r);
    if (rc == CACHE_OK)
        *ret_entry = e;
    return rc;
}

/* ttl +- 10 %, uniformly. */
static long long jitter(int ttl_ms)
{
    long long span = (long long)ttl_ms / 5; /* 20 % wide, centred on ttl */
    long long base = (long long)ttl_ms - span / 2;
    if (span <= 0)
        return ttl_ms;
    return base + (long long)(backoff_random() % (uint64_t)(span + 1));
}

int cache_task_fill(struct cache *c, const struct ids_id *id, uint64_t lease, int64_t version,
                    const void *value, size_t len, int ttl_ms)
{
    struct cache__conn *k;
    char key[CACHE__KEY_LEN + 1], token[17], ver[24], ttl[24];
    const char *argv[5] = {key, token, ver, (const char *)value, ttl};
    size_t lens[5];
    redisReply *r;
    int rc;

    if (lease == 0 || ttl_ms < 1 || (!value && len > 0))
        return CACHE_EINVAL;
    cache__key(id, key);
    snprintf(token, sizeof token, "%016" PRIx64, lease);
    snprintf(ver, sizeof ver, "%" PRId64, version);
    snprintf(ttl, sizeof ttl, "%lld", jitter(ttl_ms));
    if (!value)
        argv[3] = "";
    lens[0] = strlen(key);
    lens[1] = strlen(token);
    lens[2] = strlen(ver);
    lens[3] = len;
    lens[4] = strlen(ttl);
    rc = cache__begin(c, &k);
    if (rc != CACHE_OK)
        return rc;
    r = cache__eval(c, k, c->sha_fill, cache__lua_fill, 5, argv, lens);
    if (!r) {
        cache__end(c, k, false);
        return CACHE_EUNAVAILABLE;
    }
    cache__end(c, k, true);
    rc = r->type == REDIS_REPLY_INTEGER ? CACHE_OK : CACHE_EUNAVAILABLE;
    freeReplyObject(r);
    return rc;
}
