/* account — the register and login use cases.
 *
 * Both are slow on purpose (argon2id) and block on the database: callers run them
 * off event-loop threads.  Login answers the same for an unknown email and a wrong
 * password, after the same work (a verify against a dummy hash).
 */
#ifndef DISPATCH_ACCOUNT_H
#define DISPATCH_ACCOUNT_H

#include <stddef.h>
#include <stdint.h>
#include "auth/auth.h"
#include "ids/ids.h"

#define ACCOUNT_EMAIL_MAX    254
#define ACCOUNT_PASSWORD_MIN 12 /* characters (code points), SPEC §3 */
#define ACCOUNT_PASSWORD_MAX 128

struct account_store_ops {
    /* 0, dup_code when the email is taken, other < 0 on failure */
    int (*user_insert)(void *ctx, const struct ids_id *id, const char *email, const char *hash,
                       int64_t created_at);
    /* 0, notfound_code, other < 0 */
    int (*user_by_email)(void *ctx, const char *email, struct ids_id *ret_id, char *ret_hash,
                         size_t size);
    int dup_code;
    int notfound_code;
};

struct account {
    const struct account_store_ops *store;
    void *store_ctx;
    const struct auth *auth;
};

enum account_err {
    ACCOUNT_OK = 0,
    ACCOUNT_EEMAIL = -1,    /* not an email address */
    ACCOUNT_EPASSWORD = -2, /* outside 12..128 characters, or not UTF-8 */
    ACCOUNT_ETAKEN = -3,    /* email already registered */
    ACCOUNT_EDENIED = -4,   /* unknown email or wrong password */
    ACCOUNT_EUNAVAILABLE = -5,
};

/* Lower-cases and checks an email into out (ACCOUNT_EMAIL_MAX + 1 bytes). */
int account_normalize_email(const char *email, char *out);
/* Counts code points of valid UTF-8; -1 when invalid. */
long account_utf8_length(const char *s);

/* Registers; on success ret_id and ret_created_at (us) are set. */
int account_register(const struct account *a, const char *email, const char *password,
                     struct ids_id *ret_id, int64_t *ret_created_at, char *ret_email);
/* Logs in; on success writes a token into ret_token and its lifetime. */
int account_login(const struct account *a, const char *email, const char *password,
                  char ret_token[AUTH_TOKEN_MAX], int *ret_expires_in);

#endif
