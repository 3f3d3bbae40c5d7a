/* auth: argon2id passwords and HS256 tokens, forged tokens included. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sodium.h>

#include "auth/auth.h"

#define SECRET "0123456789abcdef0123456789abcdef-test"
#define NOW    1795315708LL

static struct auth *auth;
static struct ids_id user;

static int setup(void **state)
{
    struct auth_config cfg = {SECRET, "dispatch", 3600, 5};
    (void)state;
    ids_parse("01a20128-0325-7488-bcdd-e8b048b1cd64", 36, &user);
    return auth_new(&cfg, &auth) == AUTH_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    auth_free(auth);
    return 0;
}

static void b64(const char *in, size_t len, char *out, size_t size)
{
    sodium_bin2base64(out, size, (const unsigned char *)in, len,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Builds header.claims.signature with the given key (NULL: empty signature). */
static void forge(char *out, size_t size, const char *header, const char *claims, const char *key)
{
    char h[256], c[512];
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    int n;
    b64(header, strlen(header), h, sizeof h);
    b64(claims, strlen(claims), c, sizeof c);
    n = snprintf(out, size, "%s.%s.", h, c);
    if (key) {
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, (const unsigned char *)key, strlen(key));
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)out, (size_t)n - 1);
        crypto_auth_hmacsha256_final(&st, mac);
        b64((const char *)mac, sizeof mac, out + n, size - (size_t)n);
    }
}

static int verify(const char *tok)
{
    struct ids_id got;
    return auth_token_verify(auth, tok, strlen(tok), NOW, &got);
}

static const char *hs256 = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static void claims(char *out, size_t size, const char *iss, long long iat, long long nbf,
                   long long exp)
{
    snprintf(out, size,
             "{\"iss\":\"%s\",\"sub\":\"01a20128-0325-7488-bcdd-e8b048b1cd64\",\"iat\":%lld,"
             "\"nbf\":%lld,\"exp\":%lld}",
             iss, iat, nbf, exp);
}

static void test_issue_then_verify(void **state)
{
    char tok[AUTH_TOKEN_MAX];
    struct ids_id got;
    int ttl;
    (void)state;
    assert_int_equal(auth_token_issue(auth, &user, NOW, tok, &ttl), AUTH_OK);
    assert_int_equal(ttl, 3600);
    assert_int_equal(auth_token_verify(auth, tok, strlen(tok), NOW + 10, &got), AUTH_OK);
    assert_true(ids_equal(&got, &user));
    /* expired an hour later (beyond the 5 s leeway) */
    assert_int_equal(auth_token_verify(auth, tok, strlen(tok), NOW + 3606, &got), AUTH_EEXPIRED);
}

static void test_interoperable_hs256(void **state)
{
    /* a token made by any standard HS256 implementation with the same secret */
    char tok[1024], c[512];
    (void)state;
    claims(c, sizeof c, "dispatch", NOW, NOW, NOW + 60);
    forge(tok, sizeof tok, hs256, c, SECRET);
    assert_int_equal(verify(tok), AUTH_OK);
}

static void test_forged_tokens_are_rejected(void **state)
{
    char tok[1024], c[512];
    (void)state;
    claims(c, sizeof c, "dispatch", NOW, NOW, NOW + 60);
    forge(tok, sizeof tok, "{\"alg\":\"none\",\"typ\":\"JWT\"}", c, NULL);
    assert_int_equal(verify(tok), AUTH_EALG);
    forge(tok, sizeof tok, "{\"alg\":\"HS512\"}", c, SECRET);
    assert_int_equal(verify(tok), AUTH_EALG);
    forge(tok, sizeof tok, "{\"typ\":\"JWT\"}", c, SECRET);
    assert_int_equal(verify(tok), AUTH_EINVAL);
    forge(tok, sizeof tok, hs256, c, "another-secret-of-more-than-32-bytes!!");
    assert_int_equal(verify(tok), AUTH_ESIG);
    forge(tok, sizeof tok, hs256, c, NULL); /* no signature at all */
    assert_int_equal(verify(tok), AUTH_ESIG);

    claims(c, sizeof c, "someone-else", NOW, NOW, NOW + 60);
    forge(tok, sizeof tok, hs256, c, SECRET);
    assert_int_equal(verify(tok), AUTH_EISSUER);
    claims(c, sizeof c, "dispatch", NOW - 120, NOW - 120, NOW - 60);
    forge(tok, sizeof tok, hs256, c, SECRET);
    assert_int_equal(verify(tok), AUTH_EEXPIRED);
    claims(c, sizeof c, "dispatch", NOW, NOW + 600, NOW + 1200);
    forge(tok, sizeof tok, hs256, c, SECRET);
    assert_int_equal(verify(tok), AUTH_ENOTYET);
    claims(c, sizeof c, "dispatch", NOW + 600, NOW, NOW + 1200);
    forge(tok, sizeof tok, hs256, c, SECRET);
    assert_int_equal(verify(tok), AUTH_ENOTYET);
}

static void test_tampered_claims_break_the_signature(void **state)
{
    char tok[AUTH_TOKEN_MAX], evil[1024], c[512], cb64[512];
    char *dot1, *dot2;
    int ttl;
    (void)state;
    assert_int_equal(auth_token_issue(auth, &user, NOW, tok, &ttl), AUTH_OK);
    dot1 = strchr(tok, '.');
    dot2 = strchr(dot1 + 1, '.');
    snprintf(c, sizeof c,
             "{\"iss\":\"dispatch\",\"sub\":\"01a20128-0325-7488-bcdd-e8b048b1cd65\",\"iat\":%lld,"
             "\"nbf\":%lld,\"exp\":%lld}",
             NOW, NOW, NOW + 3600);
    b64(c, strlen(c), cb64, sizeof cb64);
    snprintf(evil, sizeof evil, "%.*s.%s%s", (int)(dot1 - tok), tok, cb64, dot2);
    assert_int_equal(verify(evil), AUTH_ESIG);
}

static void test_garbage_is_invalid(void **state)
{
    (void)state;
    assert_int_equal(verify(""), AUTH_EINVAL);
    assert_int_equal(verify("abc"), AUTH_EINVAL);
    assert_int_equal(verify("a.b"), AUTH_EINVAL);
    assert_int_equal(verify("a.b.c.d"), AUTH_EINVAL);
    assert_int_equal(verify("!!.??.**"), AUTH_EINVAL);
}

static void test_passwords(void **state)
{
    char hash[AUTH_HASH_MAX];
    const char *pw = "correct horse battery staple";
    (void)state;
    assert_int_equal(auth_password_hash(pw, strlen(pw), hash), AUTH_OK);
    assert_non_null(strstr(hash, "$argon2id$"));
    assert_non_null(strstr(hash, "m=19456,t=2,p=1"));
    assert_true(auth_password_verify(auth, hash, pw, strlen(pw)));
    assert_false(auth_password_verify(auth, hash, "wrong", 5));
    assert_false(auth_password_verify(auth, NULL, pw, strlen(pw)));
}

static struct auth *new_auth(int cache_entries)
{
    struct auth_config cfg = {SECRET, "dispatch", 3600, 5};
    struct auth *a = NULL;
    assert_int_equal(auth_new_cached(&cfg, cache_entries, &a), AUTH_OK);
    return a;
}

static void test_cache_hit(void **state)
{
    struct auth *a = new_auth(0);
    struct auth_cache_stats st;
    char tok[AUTH_TOKEN_MAX];
    struct ids_id got;
    int ttl;
    (void)state;
    assert_int_equal(auth_token_issue(a, &user, NOW, tok, &ttl), AUTH_OK);
    assert_int_equal(auth_token_verify(a, tok, strlen(tok), NOW, &got), AUTH_OK);
    auth_cache_stats(a, &st);
    assert_int_equal(st.capacity, AUTH_CACHE_DEFAULT);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.hits, 0);
    assert_int_equal(st.misses, 1);
    memset(&got, 0, sizeof got);
    assert_int_equal(auth_token_verify(a, tok, strlen(tok), NOW + 1, &got), AUTH_OK);
    assert_true(ids_equal(&got, &user)); /* the claims come out of the cache */
    auth_cache_stats(a, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.entries, 1);
    auth_free(a);
}

static void test_cache_honours_expiry(void **state)
{
    struct auth *a = new_auth(0);
    struct auth_cache_stats st;
    char tok[AUTH_TOKEN_MAX], c[512];
    struct ids_id got;
    int ttl;
    (void)state;
    assert_int_equal(auth_token_issue(a, &user, NOW, tok, &ttl), AUTH_OK);
    assert_int_equal(auth_token_verify(a, tok, strlen(tok), NOW, &got), AUTH_OK);
    /* still inside the leeway, then past it: refused although it is cached */
    assert_int_equal(auth_token_verify(a, tok, strlen(tok), NOW + 3604, &got), AUTH_OK);
    assert_int_equal(auth_token_verify(a, tok, strlen(tok), NOW + 3605, &got), AUTH_EEXPIRED);
    assert_int_equal(auth_token_verify(a, tok, strlen(tok), NOW + 99999, &got), AUTH_EEXPIRED);
    /* nbf/iat too, should the clock step back */
    assert_int_equal(auth_token_verify(a, tok, strlen(tok), NOW - 60, &got), AUTH_ENOTYET);
    auth_cache_stats(a, &st);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.hits, 4); /* every answer after the first came from the cache */
    /* a token not yet valid is never stored */
    claims(c, sizeof c, "dispatch", NOW, NOW + 600, NOW + 1200);
    forge(tok, sizeof tok, hs256, c, SECRET);
    assert_int_equal(auth_token_verify(a, tok, strlen(tok), NOW, &got), AUTH_ENOTYET);
    auth_cache_stats(a, &st);
    assert_int_equal(st.entries, 1);
    auth_free(a);
}

static void test_cache_one_byte_changed_is_rejected(void **state)
{
    struct auth *a = new_auth(0);
    struct auth_cache_stats st;
    char tok[AUTH_TOKEN_MAX], evil[AUTH_TOKEN_MAX];
    struct ids_id got;
    size_t len;
    int ttl;
    (void)state;
    assert_int_equal(auth_token_issue(a, &user, NOW, tok, &ttl), AUTH_OK);
    len = strlen(tok);
    assert_int_equal(auth_token_verify(a, tok, len, NOW, &got), AUTH_OK);
    /* every position but the last (whose low bits base64 may ignore), each changed
     * to another base64url character: never accepted, never a hit */
    for (size_t i = 0; i + 1 < len; i++) {
        memcpy(evil, tok, len + 1);
        if (evil[i] == '.')
            continue;
        evil[i] = evil[i] == 'A' ? 'B' : 'A';
        assert_int_not_equal(auth_token_verify(a, evil, len, NOW, &got), AUTH_OK);
    }
    /* a prefix and an extension of the cached token */
    assert_int_not_equal(auth_token_verify(a, tok, len - 1, NOW, &got), AUTH_OK);
    memcpy(evil, tok, len);
    evil[len] = 'A';
    assert_int_not_equal(auth_token_verify(a, evil, len + 1, NOW, &got), AUTH_OK);
    auth_cache_stats(a, &st);
    assert_int_equal(st.hits, 0);
    assert_int_equal(st.entries, 1);
    auth_free(a);
}

static void test_cache_is_bounded(void **state)
{
    struct auth *a = new_auth(8);
    struct auth_cache_stats st;
    char tok[AUTH_TOKEN_MAX];
    struct ids_id got, u;
    int ttl;
    (void)state;
    for (int i = 0; i < 200; i++) {
        char text[IDS_TEXT_LEN + 1];
        snprintf(text, sizeof text, "01a20128-0325-7488-bcdd-e8b048b1%04x", (unsigned)i);
        assert_int_equal(ids_parse(text, strlen(text), &u), 0);
        assert_int_equal(auth_token_issue(a, &u, NOW, tok, &ttl), AUTH_OK);
        assert_int_equal(auth_token_verify(a, tok, strlen(tok), NOW, &got), AUTH_OK);
        assert_true(ids_equal(&got, &u));
        auth_cache_stats(a, &st);
        assert_true(st.entries <= 8);
    }
    auth_cache_stats(a, &st);
    assert_true(st.capacity <= 8 && st.capacity > 0);
    assert_true(st.entries > 0);
    assert_int_equal(st.misses, 200);
    auth_free(a);

    /* no cache at all */
    a = new_auth(-1);
    assert_int_equal(auth_token_issue(a, &user, NOW, tok, &ttl), AUTH_OK);
    assert_int_equal(auth_token_verify(a, tok, strlen(tok), NOW, &got), AUTH_OK);
    assert_int_equal(auth_token_verify(a, tok, strlen(tok), NOW, &got), AUTH_OK);
    auth_cache_stats(a, &st);
    assert_int_equal(st.capacity, 0);
    assert_int_equal(st.hits + st.misses, 0);
    auth_free(a);
}

/* Threads verify a set of tokens larger than the cache at once: hits, misses and
 * evictions interleave, and every answer is still the token's own subject. */
enum { SHARED_TOKENS = 24, SHARED_THREADS = 4, SHARED_ROUNDS = 300 };

struct shared {
    struct auth *a;
    char tok[SHARED_TOKENS][AUTH_TOKEN_MAX];
    struct ids_id user[SHARED_TOKENS];
    int wrong;
    pthread_mutex_t mu;
};

static void *verify_many(void *arg)
{
    struct shared *sh = arg;
    int wrong = 0;
    for (int r = 0; r < SHARED_ROUNDS; r++) {
        int i = (r * 7) % SHARED_TOKENS;
        struct ids_id got;
        if (auth_token_verify(sh->a, sh->tok[i], strlen(sh->tok[i]), NOW, &got) != AUTH_OK ||
            !ids_equal(&got, &sh->user[i]))
            wrong++;
    }
    pthread_mutex_lock(&sh->mu);
    sh->wrong += wrong;
    pthread_mutex_unlock(&sh->mu);
    return NULL;
}

static void test_cache_shared_by_threads(void **state)
{
    static struct shared sh;
    pthread_t t[SHARED_THREADS];
    struct auth_cache_stats st;
    int ttl;
    (void)state;
    memset(&sh, 0, sizeof sh);
    pthread_mutex_init(&sh.mu, NULL);
    sh.a = new_auth(8);
    for (int i = 0; i < SHARED_TOKENS; i++) {
        char text[IDS_TEXT_LEN + 1];
        snprintf(text, sizeof text, "01a20128-0325-7488-bcdd-e8b048b2%04x", (unsigned)i);
        assert_int_equal(ids_parse(text, strlen(text), &sh.user[i]), 0);
        assert_int_equal(auth_token_issue(sh.a, &sh.user[i], NOW, sh.tok[i], &ttl), AUTH_OK);
    }
    for (int i = 0; i < SHARED_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, verify_many, &sh), 0);
    for (int i = 0; i < SHARED_THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(sh.wrong, 0);
    auth_cache_stats(sh.a, &st);
    assert_int_equal(st.hits + st.misses, SHARED_THREADS * SHARED_ROUNDS);
    assert_true(st.entries <= 8);
    auth_free(sh.a);
    pthread_mutex_destroy(&sh.mu);
}

static void test_short_secret_refused(void **state)
{
    struct auth_config cfg = {"too-short", "dispatch", 60, 0};
    struct auth *a = NULL;
    (void)state;
    assert_int_equal(auth_new(&cfg, &a), AUTH_EINVAL);
    assert_null(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_then_verify),
        cmocka_unit_test(test_interoperable_hs256),
        cmocka_unit_test(test_forged_tokens_are_rejected),
        cmocka_unit_test(test_tampered_claims_break_the_signature),
        cmocka_unit_test(test_garbage_is_invalid),
        cmocka_unit_test(test_passwords),
        cmocka_unit_test(test_short_secret_refused),
        cmocka_unit_test(test_cache_hit),
        cmocka_unit_test(test_cache_honours_expiry),
        cmocka_unit_test(test_cache_one_byte_changed_is_rejected),
        cmocka_unit_test(test_cache_is_bounded),
        cmocka_unit_test(test_cache_shared_by_threads),
    };
    return cmocka_run_group_tests_name("auth", tests, setup, teardown);
}
