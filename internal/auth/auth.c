/* auth — argon2id passwords and HS256 tokens over libsodium. */
#include "auth/auth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <sodium.h>

/* OWASP password storage cheat sheet, argon2id: m=19 MiB, t=2, p=1 (libsodium's
 * argon2id always runs with one lane). */
#define PW_OPSLIMIT 2ULL
#define PW_MEMLIMIT (19ULL * 1024 * 1024)

static const char jwt_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* The verified-token cache: shards of 2-way buckets, each shard under a mutex. */
enum { CACHE_SHARDS = 16, CACHE_WAYS = 2 };

struct cache_entry {
    uint64_t hash;
    uint64_t stamp; /* shard clock at insertion: the older way is replaced */
    size_t len;     /* 0: empty */
    struct ids_id user;
    int64_t exp, nbf, iat;
    char token[AUTH_TOKEN_MAX];
};

struct cache_shard {
    pthread_mutex_t mu;
    struct cache_entry *slots;
    size_t n_slots; /* a multiple of CACHE_WAYS */
    size_t used;
    uint64_t clock;
    unsigned long long hits, misses;
};

struct auth {
    unsigned char *key; /* the secret, as standard HS256 uses it: the HMAC key itself */
    size_t key_len;
    crypto_auth_hmacsha256_state *keyed; /* the state after init with key: copied per MAC */
    unsigned char cache_key[crypto_shorthash_KEYBYTES];
    struct cache_shard *shards; /* NULL: no cache */
    size_t n_shards;
    char *issuer;
    int ttl_s;
    int leeway_s;
    char dummy_hash[AUTH_HASH_MAX]; /* for unknown accounts: same cost as a real verify */
    char header_b64[64];            /* base64url of jwt_header, computed once */
};

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_rc;

static void sodium_start(void)
{
    sodium_rc = sodium_init();
}

const char *auth_strerror(int err)
{
    switch (err) {
    case AUTH_OK:
        return "ok";
    case AUTH_EINVAL:
        return "malformed token";
    case AUTH_ESIG:
        return "bad signature";
    case AUTH_EEXPIRED:
        return "token expired";
    case AUTH_ENOTYET:
        return "token not yet valid";
    case AUTH_EISSUER:
        return "wrong issuer";
    case AUTH_EALG:
        return "algorithm not accepted";
    case AUTH_ENOMEM:
        return "out of memory";
    default:
        return "unknown auth error";
    }
}

int auth_password_hash(const char *password, size_t len, char out[AUTH_HASH_MAX])
{
    pthread_once(&sodium_once, sodium_start);
    if (sodium_rc < 0)
        return AUTH_ENOMEM;
    if (crypto_pwhash_str_alg(out, password, len, PW_OPSLIMIT, (size_t)PW_MEMLIMIT,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return AUTH_ENOMEM;
    return AUTH_OK;
}

bool auth_password_verify(const struct auth *a, const char *hash, const char *password, size_t len)
{
    bool known = hash != NULL;
    int rc = crypto_pwhash_str_verify(known ? hash : a->dummy_hash, password, len);
    return known && rc == 0;
}

/* entries 0: the default; < 0: no cache.  Fewer entries than shards: one shard. */
static int cache_init(struct auth *a, int entries)
{
    size_t total, per;
    if (entries < 0)
        return AUTH_OK;
    total = entries == 0 ? AUTH_CACHE_DEFAULT : (size_t)entries;
    a->n_shards = total >= (size_t)CACHE_SHARDS * CACHE_WAYS ? CACHE_SHARDS : 1;
    per = total / a->n_shards;
    if (per >= CACHE_WAYS)
        per -= per % CACHE_WAYS;
    a->shards = calloc(a->n_shards, sizeof *a->shards);
    if (!a->shards) {
        a->n_shards = 0;
        return AUTH_ENOMEM;
    }
    randombytes_buf(a->cache_key, sizeof a->cache_key);
    for (size_t i = 0; i < a->n_shards; i++) {
        struct cache_shard *sh = &a->shards[i];
        pthread_mutex_init(&sh->mu, NULL);
        sh->n_slots = per;
        sh->slots = calloc(per, sizeof *sh->slots);
        if (!sh->slots)
            return AUTH_ENOMEM;
    }
    return AUTH_OK;
}

int auth_new(const struct auth_config *cfg, struct auth **ret_auth)
{
    return auth_new_cached(cfg, 0, ret_auth);
}

int auth_new_cached(const struct auth_config *cfg, int cache_entries, struct auth **ret_auth)
{
    struct auth *a;
    size_t slen = cfg->secret ? strlen(cfg->secret) : 0;
    unsigned char rnd[32];
    pthread_once(&sodium_once, sodium_start);
    if (sodium_rc < 0 || slen < AUTH_SECRET_MIN)
        return AUTH_EINVAL;
    a = calloc(1, sizeof *a);
    if (!a)
        return AUTH_ENOMEM;
    a->key = sodium_malloc(slen);
    if (!a->key) {
        free(a);
        return AUTH_ENOMEM;
    }
    memcpy(a->key, cfg->secret, slen);
    a->key_len = slen;
    a->issuer = strdup(cfg->issuer ? cfg->issuer : "dispatch");
    a->ttl_s = cfg->token_ttl_s;
    a->leeway_s = cfg->leeway_s;
    randombytes_buf(rnd, sizeof rnd);
    if (!a->issuer || auth_password_hash((const char *)rnd, sizeof rnd, a->dummy_hash) != AUTH_OK) {
        auth_free(a);
        return AUTH_ENOMEM;
    }
    sodium_bin2base64(a->header_b64, sizeof a->header_b64, (const unsigned char *)jwt_header,
                      sizeof jwt_header - 1, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    a->keyed = sodium_malloc(sizeof *a->keyed);
    if (!a->keyed || cache_init(a, cache_entries) != AUTH_OK) {
        auth_free(a);
        return AUTH_ENOMEM;
    }
    crypto_auth_hmacsha256_init(a->keyed, a->key, a->key_len);
    *ret_auth = a;
    return AUTH_OK;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    sodium_free(a->key); /* zeroes it */
    if (a->keyed)
        sodium_free(a->keyed);
    for (size_t i = 0; i < a->n_shards; i++) {
        pthread_mutex_destroy(&a->shards[i].mu);
        if (a->shards[i].slots) {
            sodium_memzero(a->shards[i].slots, a->shards[i].n_slots * sizeof(struct cache_entry));
            free(a->shards[i].slots);
        }
    }
    free(a->shards);
    free(a->issuer);
    free(a);
}

static void sign(const struct auth *a, const char *data, size_t len,
                 unsigned char mac[crypto_auth_hmacsha256_BYTES])
{
    crypto_auth_hmacsha256_state st = *a->keyed; /* init with the key done once */
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)data, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
}

int auth_token_issue(const struct auth *a, const struct ids_id *user, int64_t now,
                     char out[AUTH_TOKEN_MAX], int *ret_expires_in)
{
    char sub[IDS_TEXT_LEN + 1], claims[384], claims_b64[512];
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    int n;
    size_t signed_len;

    ids_format(user, sub);
    /* the issuer is configuration (printable, no quotes: checked at start-up) */
    n = snprintf(claims, sizeof claims,
                 "{\"iss\":\"%s\",\"sub\":\"%s\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}",
                 a->issuer, sub, (long long)now, (long long)now, (long long)now + a->ttl_s);
    if (n < 0 || (size_t)n >= sizeof claims)
        return AUTH_EINVAL;
    sodium_bin2base64(claims_b64, sizeof claims_b64, (const unsigned char *)claims, (size_t)n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    n = snprintf(out, AUTH_TOKEN_MAX, "%s.%s.", a->header_b64, claims_b64);
    if (n < 0 || n >= AUTH_TOKEN_MAX - (int)sodium_base64_ENCODED_LEN(
                                           sizeof mac, sodium_base64_VARIANT_URLSAFE_NO_PADDING))
        return AUTH_EINVAL;
    signed_len = (size_t)n - 1; /* without the last dot */
    sign(a, out, signed_len, mac);
    sodium_bin2base64(out + n, AUTH_TOKEN_MAX - (size_t)n, mac, sizeof mac,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    *ret_expires_in = a->ttl_s;
    return AUTH_OK;
}

/* Decodes one base64url segment into buf (NUL-terminated, size bytes). */
static bool b64_decode(const char *s, size_t len, unsigned char *buf, size_t size, size_t *ret_len)
{
    size_t out = 0;
    if (size == 0 || sodium_base642bin(buf, size - 1, s, len, NULL, &out, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return false;
    buf[out] = '\0';
    *ret_len = out;
    return true;
}

static cJSON *decode_json(const char *s, size_t len)
{
    unsigned char raw[AUTH_TOKEN_MAX];
    size_t n;
    if (!b64_decode(s, len, raw, sizeof raw, &n))
        return NULL;
    return cJSON_ParseWithLength((const char *)raw, n);
}

static int check_header(const struct auth *a, const char *s, size_t len)
{
    cJSON *h;
    const cJSON *alg;
    int rc = AUTH_EINVAL;
    /* the header we issue, byte for byte: nothing to decode */
    if (len == strlen(a->header_b64) && memcmp(s, a->header_b64, len) == 0)
        return AUTH_OK;
    h = decode_json(s, len);
    if (!h)
        return AUTH_EINVAL;
    alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
    if (cJSON_IsString(alg))
        rc = strcmp(alg->valuestring, "HS256") == 0 ? AUTH_OK : AUTH_EALG;
    cJSON_Delete(h);
    return rc;
}

static bool get_int(const cJSON *obj, const char *name, int64_t *ret)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int64_t)v->valuedouble)
        return false;
    *ret = (int64_t)v->valuedouble;
    return true;
}

/* The claims a verification keeps: what the cache holds. */
struct claims {
    struct ids_id user;
    int64_t exp, nbf, iat;
};

static int check_times(const struct auth *a, const struct claims *c, int64_t now)
{
    if (now >= c->exp + a->leeway_s)
        return AUTH_EEXPIRED;
    if (now + a->leeway_s < c->nbf || now + a->leeway_s < c->iat)
        return AUTH_ENOTYET;
    return AUTH_OK;
}

static int check_claims(const struct auth *a, const cJSON *c, int64_t now, struct claims *ret)
{
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(c, "iss");
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(c, "sub");
    struct claims got;
    int rc;
    if (!cJSON_IsString(iss) || !cJSON_IsString(sub) || !get_int(c, "exp", &got.exp) ||
        !get_int(c, "nbf", &got.nbf) || !get_int(c, "iat", &got.iat))
        return AUTH_EINVAL;
    if (strcmp(iss->valuestring, a->issuer) != 0)
        return AUTH_EISSUER;
    rc = check_times(a, &got, now);
    if (rc != AUTH_OK)
        return rc;
    if (ids_parse(sub->valuestring, strlen(sub->valuestring), &got.user) < 0)
        return AUTH_EINVAL;
    *ret = got;
    return AUTH_OK;
}

/* The full verification, without the cache. */
static int verify_token(const struct auth *a, const char *token, size_t len, int64_t now,
                        struct claims *ret)
{
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    unsigned char want[crypto_auth_hmacsha256_BYTES], got[crypto_auth_hmacsha256_BYTES + 1];
    size_t got_len = 0;
    cJSON *claims;
    int rc;

    if (!dot1 || !dot2 || len > AUTH_TOKEN_MAX ||
        memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return AUTH_EINVAL;
    rc = check_header(a, token, (size_t)(dot1 - token));
    if (rc != AUTH_OK)
        return rc;
    /* longer than a SHA-256 MAC does not fit got: a bad signature, as before */
    if (!b64_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), got, sizeof got, &got_len))
        return len - (size_t)(dot2 + 1 - token) > 43 ? AUTH_ESIG : AUTH_EINVAL;
    sign(a, token, (size_t)(dot2 - token), want);
    rc = got_len == sizeof want && crypto_verify_32(got, want) == 0 ? AUTH_OK : AUTH_ESIG;
    if (rc != AUTH_OK)
        return rc;
    claims = decode_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!claims)
        return AUTH_EINVAL;
    rc = check_claims(a, claims, now, ret);
    cJSON_Delete(claims);
    return rc;
}

static struct cache_shard *cache_bucket(const struct auth *a, const char *token, size_t len,
                                        uint64_t *ret_hash, struct cache_entry **ret_ways)
{
    unsigned char h[crypto_shorthash_BYTES];
    uint64_t v;
    struct cache_shard *sh;
    size_t nb;
    crypto_shorthash(h, (const unsigned char *)token, len, a->cache_key);
    memcpy(&v, h, sizeof v);
    sh = &a->shards[v % a->n_shards];
    nb = sh->n_slots >= CACHE_WAYS ? sh->n_slots / CACHE_WAYS : sh->n_slots;
    *ret_ways = nb == 0 ? NULL : &sh->slots[((v / a->n_shards) % nb) * (sh->n_slots / nb)];
    *ret_hash = v;
    return sh;
}

/* A hit copies the claims out; the bytes are compared in constant time. */
static bool cache_get(const struct auth *a, const char *token, size_t len, struct claims *ret)
{
    uint64_t hash;
    struct cache_entry *ways;
    struct cache_shard *sh = cache_bucket(a, token, len, &hash, &ways);
    size_t n_ways = sh->n_slots >= CACHE_WAYS ? CACHE_WAYS : sh->n_slots;
    bool hit = false;
    pthread_mutex_lock(&sh->mu);
    for (size_t i = 0; ways && i < n_ways && !hit; i++) {
        const struct cache_entry *e = &ways[i];
        if (e->len == len && e->hash == hash && sodium_memcmp(e->token, token, len) == 0) {
            *ret = (struct claims){e->user, e->exp, e->nbf, e->iat};
            hit = true;
        }
    }
    if (hit)
        sh->hits++;
    else
        sh->misses++;
    pthread_mutex_unlock(&sh->mu);
    return hit;
}

static void cache_put(const struct auth *a, const char *token, size_t len, const struct claims *c)
{
    uint64_t hash;
    struct cache_entry *ways, *victim;
    struct cache_shard *sh = cache_bucket(a, token, len, &hash, &ways);
    size_t n_ways = sh->n_slots >= CACHE_WAYS ? CACHE_WAYS : sh->n_slots;
    if (!ways)
        return;
    pthread_mutex_lock(&sh->mu);
    victim = &ways[0];
    for (size_t i = 0; i < n_ways; i++) {
        if (ways[i].len == 0 || ways[i].stamp < victim->stamp)
            victim = &ways[i];
        if (ways[i].len == 0)
            break;
    }
    if (victim->len == 0)
        sh->used++;
    victim->hash = hash;
    victim->stamp = ++sh->clock;
    victim->len = len;
    victim->user = c->user;
    victim->exp = c->exp;
    victim->nbf = c->nbf;
    victim->iat = c->iat;
    memcpy(victim->token, token, len);
    pthread_mutex_unlock(&sh->mu);
}

int auth_token_verify(const struct auth *a, const char *token, size_t len, int64_t now,
                      struct ids_id *ret_user)
{
    struct claims c;
    int rc;
    if (len == 0 || len > AUTH_TOKEN_MAX)
        return AUTH_EINVAL;
    if (a->shards && cache_get(a, token, len, &c)) {
        /* the signature and issuer were checked when it was stored; time moves */
        rc = check_times(a, &c, now);
    } else {
        rc = verify_token(a, token, len, now, &c);
        if (rc == AUTH_OK && a->shards)
            cache_put(a, token, len, &c);
    }
    if (rc == AUTH_OK)
        *ret_user = c.user;
    return rc;
}

void auth_cache_stats(const struct auth *a, struct auth_cache_stats *ret_stats)
{
    struct auth_cache_stats st = {0};
    for (size_t i = 0; i < a->n_shards; i++) {
        struct cache_shard *sh = &a->shards[i];
        pthread_mutex_lock(&sh->mu);
        st.capacity += sh->n_slots;
        st.entries += sh->used;
        st.hits += sh->hits;
        st.misses += sh->misses;
        pthread_mutex_unlock(&sh->mu);
    }
    *ret_stats = st;
}
