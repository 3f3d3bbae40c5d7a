/* auth — passwords (argon2id) and access tokens (JWT HS256), on libsodium.
 *
 * Passwords: crypto_pwhash_str with argon2id at OWASP's parameters (19 MiB, t=2,
 * p=1).  Hashing is slow on purpose: callers run it off event-loop threads (the api
 * uses a bounded workpool, whose size caps concurrent hashes).  Verifying against
 * an unknown account uses a fixed dummy hash, so "no such email" and "wrong
 * password" take the same time.
 *
 * Tokens: JWT compact form, header exactly {"alg":"HS256","typ":"JWT"}.  Verify
 * accepts only alg HS256 (never "none", never another algorithm), compares the
 * signature in constant time, and checks iss, exp, nbf and iat.  The secret must be
 * at least 32 bytes.
 *
 * Verified tokens are remembered in a bounded cache (cache_entries, sharded, each
 * shard under its own mutex): keyed by the exact token bytes (a keyed SipHash picks
 * the slot, the bytes are compared in constant time), holding the claims copied out
 * (subject, exp, nbf, iat).  A hit skips the HMAC and the decoding, never the time
 * checks: exp, nbf and iat are checked against now on every call, so a token expires
 * from the cache exactly when it would have been refused without it.  Only tokens
 * that verified AUTH_OK are stored; a changed byte is another key, hence a miss and
 * the full verification.
 */
#ifndef DISPATCH_AUTH_H
#define DISPATCH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ids/ids.h"

#define AUTH_HASH_MAX   128 /* crypto_pwhash_STRBYTES */
#define AUTH_SECRET_MIN 32
#define AUTH_TOKEN_MAX  512

enum auth_err {
    AUTH_OK = 0,
    AUTH_EINVAL = -1,   /* malformed token or input */
    AUTH_ESIG = -2,     /* signature does not match */
    AUTH_EEXPIRED = -3, /* exp has passed */
    AUTH_ENOTYET = -4,  /* nbf or iat in the future */
    AUTH_EISSUER = -5,  /* iss is not ours */
    AUTH_EALG = -6,     /* header names another algorithm */
    AUTH_ENOMEM = -7,
};
const char *auth_strerror(int err);

struct auth_config {
    const char *secret; /* >= AUTH_SECRET_MIN bytes */
    const char *issuer;
    int token_ttl_s;
    int leeway_s; /* clock skew tolerated on exp/nbf/iat */
};

#define AUTH_CACHE_DEFAULT 4096

struct auth_cache_stats {
    size_t capacity; /* slots in all (<= cache_entries) */
    size_t entries;  /* slots in use */
    unsigned long long hits, misses;
};

struct auth;

/* auth_new: with a cache of AUTH_CACHE_DEFAULT verified tokens. */
int auth_new(const struct auth_config *cfg, struct auth **ret_auth);
/* cache_entries: verified tokens remembered (0: AUTH_CACHE_DEFAULT, < 0: no cache). */
int auth_new_cached(const struct auth_config *cfg, int cache_entries, struct auth **ret_auth);
void auth_free(struct auth *a);

/* Hashes a password into out (NUL-terminated, AUTH_HASH_MAX bytes). Slow. */
int auth_password_hash(const char *password, size_t len, char out[AUTH_HASH_MAX]);
/* hash NULL: compares against the dummy hash (always false, same cost). */
bool auth_password_verify(const struct auth *a, const char *hash, const char *password, size_t len);

/* Issues a token for user at now (Unix seconds). *ret_expires_in = ttl. */
int auth_token_issue(const struct auth *a, const struct ids_id *user, int64_t now,
                     char out[AUTH_TOKEN_MAX], int *ret_expires_in);
/* Verifies token (len bytes) at now; on AUTH_OK *ret_user is its subject. */
int auth_token_verify(const struct auth *a, const char *token, size_t len, int64_t now,
                      struct ids_id *ret_user);

/* The verified-token cache's counters (a snapshot over all shards). */
void auth_cache_stats(const struct auth *a, struct auth_cache_stats *ret_stats);

#endif
