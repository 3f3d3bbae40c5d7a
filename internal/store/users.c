/* store — user accounts. */
#include "store/store_int.h"

#include <string.h>

int store_user_insert(struct store *s, const struct ids_id *id, const char *email,
                      const char *password_hash, int64_t created_at)
{
    struct store__conn *c = store__acquire(s);
    MYSQL_STMT *st;
    MYSQL_BIND b[4];
    unsigned long len[4] = {16, strlen(email), strlen(password_hash), 0};
    MYSQL_TIME t;
    int rc = STORE_EDB;
    if (!c)
        return STORE_EDB;
    st = store__stmt(c, STMT_USER_INSERT);
    if (st) {
        memset(b, 0, sizeof b);
        store__time_to_mysql(created_at, &t);
        b[0].buffer_type = MYSQL_TYPE_BLOB;
        b[0].buffer = (void *)id->b;
        b[1].buffer_type = MYSQL_TYPE_STRING;
        b[1].buffer = (void *)email;
        b[2].buffer_type = MYSQL_TYPE_STRING;
        b[2].buffer = (void *)password_hash;
        for (int i = 0; i < 3; i++) {
            b[i].length = &len[i];
            b[i].buffer_length = len[i];
        }
        b[3].buffer_type = MYSQL_TYPE_DATETIME;
        b[3].buffer = &t;
        rc = STORE_OK;
        if (mysql_stmt_bind_param(st, b) != 0 || mysql_stmt_execute(st) != 0)
            rc = store__stmt_error(st, "user insert");
    }
    store__release(s, c, rc == STORE_EDB);
    return rc;
}

static int fetch_user(MYSQL_STMT *st, struct ids_id *ret_id, char *ret_hash, size_t size)
{
    MYSQL_BIND out[2];
    unsigned char id[16];
    char hash[256];
    unsigned long len[2] = {0, 0};
    int rc;
    memset(out, 0, sizeof out);
    out[0].buffer_type = MYSQL_TYPE_BLOB;
    out[0].buffer = id;
    out[0].buffer_length = sizeof id;
    out[0].length = &len[0];
    out[1].buffer_type = MYSQL_TYPE_STRING;
    out[1].buffer = hash;
    out[1].buffer_length = sizeof hash;
    out[1].length = &len[1];
    if (mysql_stmt_bind_result(st, out) != 0)
        return store__stmt_error(st, "bind user");
    rc = mysql_stmt_fetch(st);
    if (rc == MYSQL_NO_DATA)
        return STORE_ENOTFOUND;
    if (rc != 0 || len[0] != 16 || len[1] >= size || len[1] >= sizeof hash)
        return STORE_EDB;
    memcpy(ret_id->b, id, 16);
    memcpy(ret_hash, hash, len[1]);
    ret_hash[len[1]] = '\0';
    return STORE_OK;
}

int store_user_by_email(struct store *s, const char *email, struct ids_id *ret_id, char *ret_hash,
                        size_t size)
{
    struct store__conn *c = store__acquire(s);
    MYSQL_STMT *st;
    MYSQL_BIND b;
    unsigned long len = strlen(email);
    int rc = STORE_EDB;
    if (!c)
        return STORE_EDB;
    st = store__stmt(c, STMT_USER_BY_EMAIL);
    if (st) {
        memset(&b, 0, sizeof b);
        b.buffer_type = MYSQL_TYPE_STRING;
        b.buffer = (void *)email;
        b.buffer_length = len;
        b.length = &len;
        if (mysql_stmt_bind_param(st, &b) != 0 || mysql_stmt_execute(st) != 0)
            rc = store__stmt_error(st, "user by email");
        else
            rc = fetch_user(st, ret_id, ret_hash, size);
        mysql_stmt_free_result(st);
    }
    store__release(s, c, rc == STORE_EDB);
    return rc;
}
