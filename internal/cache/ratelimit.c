/* cache — rate-limit buckets shared by producers: one Lua script per exchange. */
#include "cache/cache_int.h"

#include <stdio.h>
#include <string.h>

#define RL_PREFIX  "dispatch:rl:"
#define RL_KEY_MAX 160 /* the prefix and up to 147 bytes of key */

/* KEYS[1] the bucket, a hash {t: tokens, u: when, microseconds of Redis's clock}.
 * ARGV: rate (tokens a second), burst, used (spent already: charged whatever the bucket
 * holds, so it may go negative), want (a lease asked for).  Refills by the server's own
 * TIME, so producers' clocks never matter; a new bucket starts full.  Returns {granted,
 * wait}: wait the microseconds until the bucket holds a token again (0: it holds one).
 * The key lives as long as the bucket needs to fill up, and a second more. */
const char cache__lua_ratelimit[] =
    "local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local used, want = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local tm = redis.call('TIME')\n"
    "local now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])\n"
    "local s = redis.call('HMGET', KEYS[1], 't', 'u')\n"
    "local t, u = tonumber(s[1]), tonumber(s[2])\n"
    "if t == nil or u == nil then t, u = burst, now end\n"
    "if now > u then t = math.min(burst, t + (now - u) * rate / 1000000); u = now end\n"
    "t = math.max(t - used, -burst)\n"
    "local g = 0\n"
    "if t >= 1 then g = math.min(want, math.floor(t)); t = t - g end\n"
    "local wait = 0\n"
    "if t < 1 then wait = math.ceil((1 - t) * 1000000 / rate) end\n"
    "redis.call('HSET', KEYS[1], 't', string.format('%.6f', t), 'u', string.format('%d', u))\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil((burst - t) / rate * 1000) + 1000)\n"
    "return {g, wait}\n";

int cache_ratelimit_take(struct cache *c, const char *key, size_t klen, double rate, double burst,
                         long long used, long long want, long long *ret_granted,
                         int64_t *ret_wait_us)
{
    char rk[RL_KEY_MAX], a_rate[32], a_burst[32], a_used[24], a_want[24];
    const char *argv[5] = {rk, a_rate, a_burst, a_used, a_want};
    size_t lens[5];
    struct cache__conn *k;
    redisReply *r;
    int rc;

    if (!key || klen == 0 || klen > RL_KEY_MAX - sizeof RL_PREFIX || !(rate > 0) || burst < 1 ||
        used < 0 || want < 0)
        return CACHE_EINVAL;
    memcpy(rk, RL_PREFIX, sizeof RL_PREFIX - 1);
    memcpy(rk + sizeof RL_PREFIX - 1, key, klen);
    lens[0] = sizeof RL_PREFIX - 1 + klen;
    snprintf(a_rate, sizeof a_rate, "%.9g", rate);
    snprintf(a_burst, sizeof a_burst, "%.9g", burst);
    snprintf(a_used, sizeof a_used, "%lld", used);
    snprintf(a_want, sizeof a_want, "%lld", want);
    for (int i = 1; i < 5; i++)
        lens[i] = strlen(argv[i]);
    rc = cache__begin(c, &k);
    if (rc != CACHE_OK)
        return rc;
    r = cache__eval(c, k, c->sha_ratelimit, cache__lua_ratelimit, 5, argv, lens);
    if (!r) {
        cache__end(c, k, false);
        return CACHE_EUNAVAILABLE;
    }
    cache__end(c, k, true);
    rc = CACHE_EUNAVAILABLE;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_INTEGER &&
        r->element[0]->integer >= 0 && r->element[0]->integer <= want &&
        r->element[1]->integer >= 0) {
        *ret_granted = r->element[0]->integer;
        *ret_wait_us = r->element[1]->integer;
        rc = CACHE_OK;
    }
    freeReplyObject(r);
    return rc;
}
