/* account — register and login. */
#include "account/account.h"

#include <string.h>
#include <time.h>

#include "model/model.h"

long account_utf8_length(const char *s)
{
    long n = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int extra;
        if (*p < 0x80)
            extra = 0;
        else if ((*p & 0xe0) == 0xc0 && *p >= 0xc2)
            extra = 1;
        else if ((*p & 0xf0) == 0xe0)
            extra = 2;
        else if ((*p & 0xf8) == 0xf0 && *p <= 0xf4)
            extra = 3;
        else
            return -1;
        p++;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return -1;
        }
        n++;
    }
    return n;
}

/* A deliberately plain check: one '@', a non-empty local part, a dotted domain,
 * printable ASCII without spaces.  Deliverability is the mail system's business. */
int account_normalize_email(const char *email, char *out)
{
    size_t len = strlen(email);
    const char *at = strchr(email, '@');
    if (len < 3 || len > ACCOUNT_EMAIL_MAX || !at || at == email || strchr(at + 1, '@'))
        return ACCOUNT_EEMAIL;
    if (!strchr(at + 1, '.') || at[1] == '.' || email[len - 1] == '.')
        return ACCOUNT_EEMAIL;
    for (size_t i = 0; i < len; i++) {
        char c = email[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == ',' || c == ';' || c == '<' ||
            c == '>')
            return ACCOUNT_EEMAIL;
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[len] = '\0';
    return ACCOUNT_OK;
}

static int check_password(const char *password)
{
    long n = account_utf8_length(password);
    if (n < ACCOUNT_PASSWORD_MIN || n > ACCOUNT_PASSWORD_MAX)
        return ACCOUNT_EPASSWORD;
    return ACCOUNT_OK;
}

int account_register(const struct account *a, const char *email, const char *password,
                     struct ids_id *ret_id, int64_t *ret_created_at, char *ret_email)
{
    char norm[ACCOUNT_EMAIL_MAX + 1], hash[AUTH_HASH_MAX];
    struct ids_id id;
    int64_t now = model_now_us();
    int rc = account_normalize_email(email, norm);
    if (rc != ACCOUNT_OK)
        return rc;
    rc = check_password(password);
    if (rc != ACCOUNT_OK)
        return rc;
    if (ids_new_v7(&id) < 0 || auth_password_hash(password, strlen(password), hash) != AUTH_OK)
        return ACCOUNT_EUNAVAILABLE;
    rc = a->store->user_insert(a->store_ctx, &id, norm, hash, now);
    if (rc == a->store->dup_code)
        return ACCOUNT_ETAKEN;
    if (rc != 0)
        return ACCOUNT_EUNAVAILABLE;
    *ret_id = id;
    *ret_created_at = now;
    memcpy(ret_email, norm, strlen(norm) + 1);
    return ACCOUNT_OK;
}

int account_login(const struct account *a, const char *email, const char *password,
                  char ret_token[AUTH_TOKEN_MAX], int *ret_expires_in)
{
    char norm[ACCOUNT_EMAIL_MAX + 1], hash[AUTH_HASH_MAX];
    struct ids_id id;
    bool found = false;
    bool ok;
    int rc;

    /* a malformed email cannot be registered: deny it after the same work */
    if (account_normalize_email(email, norm) == ACCOUNT_OK) {
        rc = a->store->user_by_email(a->store_ctx, norm, &id, hash, sizeof hash);
        if (rc != 0 && rc != a->store->notfound_code)
            return ACCOUNT_EUNAVAILABLE;
        found = rc == 0;
    }
    ok = auth_password_verify(a->auth, found ? hash : NULL, password, strlen(password));
    if (!ok)
        return ACCOUNT_EDENIED;
    if (auth_token_issue(a->auth, &id, (int64_t)time(NULL), ret_token, ret_expires_in) != AUTH_OK)
        return ACCOUNT_EUNAVAILABLE;
    return ACCOUNT_OK;
}
