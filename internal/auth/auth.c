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

struct auth {
    unsigned char *key; /* the secret, as standard HS256 uses it: the HMAC key itself */
    size_t key_len;
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

int auth_new(const struct auth_config *cfg, struct auth **ret_auth)
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
    *ret_auth = a;
    return AUTH_OK;
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    sodium_free(a->key); /* zeroes it */
    free(a->issuer);
    free(a);
}

static void sign(const struct auth *a, const char *data, size_t len,
                 unsigned char mac[crypto_auth_hmacsha256_BYTES])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, a->key, a->key_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)data, len);
    crypto_auth_hmacsha256_final(&st, mac);
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

/* Decodes one base64url segment into a new NUL-terminated buffer. */
static unsigned char *b64_decode(const char *s, size_t len, size_t *ret_len)
{
    unsigned char *buf = malloc(len + 1);
    size_t out = 0;
    if (!buf)
        return NULL;
    if (sodium_base642bin(buf, len, s, len, NULL, &out, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
        free(buf);
        return NULL;
    }
    buf[out] = '\0';
    *ret_len = out;
    return buf;
}

static cJSON *decode_json(const char *s, size_t len)
{
    size_t n;
    unsigned char *raw = b64_decode(s, len, &n);
    cJSON *j;
    if (!raw)
        return NULL;
    j = cJSON_ParseWithLength((const char *)raw, n);
    free(raw);
    return j;
}

static int check_header(const char *s, size_t len)
{
    cJSON *h = decode_json(s, len);
    const cJSON *alg;
    int rc = AUTH_EINVAL;
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

static int check_claims(const struct auth *a, const cJSON *c, int64_t now, struct ids_id *ret)
{
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(c, "iss");
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(c, "sub");
    int64_t exp, nbf, iat;
    if (!cJSON_IsString(iss) || !cJSON_IsString(sub) || !get_int(c, "exp", &exp) ||
        !get_int(c, "nbf", &nbf) || !get_int(c, "iat", &iat))
        return AUTH_EINVAL;
    if (strcmp(iss->valuestring, a->issuer) != 0)
        return AUTH_EISSUER;
    if (now >= exp + a->leeway_s)
        return AUTH_EEXPIRED;
    if (now + a->leeway_s < nbf || now + a->leeway_s < iat)
        return AUTH_ENOTYET;
    if (ids_parse(sub->valuestring, strlen(sub->valuestring), ret) < 0)
        return AUTH_EINVAL;
    return AUTH_OK;
}

int auth_token_verify(const struct auth *a, const char *token, size_t len, int64_t now,
                      struct ids_id *ret_user)
{
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    unsigned char want[crypto_auth_hmacsha256_BYTES], *got;
    size_t got_len = 0;
    cJSON *claims;
    int rc;

    if (!dot1 || !dot2 || len > AUTH_TOKEN_MAX ||
        memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return AUTH_EINVAL;
    rc = check_header(token, (size_t)(dot1 - token));
    if (rc != AUTH_OK)
        return rc;
    got = b64_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &got_len);
    if (!got)
        return AUTH_EINVAL;
    sign(a, token, (size_t)(dot2 - token), want);
    rc = got_len == sizeof want && crypto_verify_32(got, want) == 0 ? AUTH_OK : AUTH_ESIG;
    free(got);
    if (rc != AUTH_OK)
        return rc;
    claims = decode_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!claims)
        return AUTH_EINVAL;
    rc = check_claims(a, claims, now, ret_user);
    cJSON_Delete(claims);
    return rc;
}
