/* store — idempotency keys, claimed in the transaction that inserts the tasks. */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

/* Reads the claim that beat us into idem (fingerprint compared, response copied). */
static int read_claim(struct store__conn *c, const struct task *t, struct idem_claim *idem)
{
    MYSQL_STMT *st = store__stmt(c, STMT_IDEM_GET);
    struct store__params p = {0};
    MYSQL_BIND out[4];
    unsigned char fp[IDEM_FINGERPRINT_LEN], task_id[16];
    unsigned long len[4] = {0};
    my_bool is_null[4] = {0};
    long long code = 0;
    int rc;

    store__p_id(&p, &t->user_id);
    store__p_str(&p, idem->method);
    store__p_str(&p, idem->route);
    store__p_str(&p, idem->key);
    rc = store__p_exec(st, &p, "idempotency key read");
    if (rc != STORE_OK)
        return rc;
    memset(out, 0, sizeof out);
    out[0].buffer_type = MYSQL_TYPE_BLOB;
    out[0].buffer = fp;
    out[0].buffer_length = sizeof fp;
    out[1].buffer_type = MYSQL_TYPE_BLOB;
    out[1].buffer = task_id;
    out[1].buffer_length = sizeof task_id;
    out[2].buffer_type = MYSQL_TYPE_LONGLONG;
    out[2].buffer = &code;
    out[3].buffer_type = MYSQL_TYPE_STRING; /* fetched at its length below */
    for (int i = 0; i < 4; i++) {
        out[i].length = &len[i];
        out[i].is_null = &is_null[i];
    }
    rc = STORE_EDB;
    if (mysql_stmt_bind_result(st, out) != 0)
        goto out_free;
    int f = mysql_stmt_fetch(st);
    if (f != 0 && f != MYSQL_DATA_TRUNCATED)
        goto out_free; /* the row we just collided with must be there */
    idem->exists = true;
    idem->same_fingerprint = len[0] == sizeof fp && memcmp(fp, idem->fingerprint, sizeof fp) == 0;
    if (!is_null[1] && len[1] == 16)
        memcpy(idem->task_id.b, task_id, 16);
    idem->response_code = is_null[2] ? 0 : (int)code;
    idem->response_body = NULL;
    rc = STORE_OK;
    if (!is_null[3]) {
        MYSQL_BIND b = {0};
        char *body = malloc(len[3] + 1);
        if (!body) {
            rc = STORE_ENOMEM;
            goto out_free;
        }
        b.buffer_type = MYSQL_TYPE_STRING;
        b.buffer = body;
        b.buffer_length = len[3] + 1;
        if (len[3] > 0 && mysql_stmt_fetch_column(st, &b, 3, 0) != 0) {
            free(body);
            rc = store__stmt_error(st, "idempotency body");
            goto out_free;
        }
        body[len[3]] = '\0';
        idem->response_body = body;
    }
out_free:
    mysql_stmt_free_result(st);
    return rc;
}

static int claim_one(struct store__conn *c, const struct task *t, struct idem_claim *idem,
                     bool *ret_insert)
{
    MYSQL_STMT *st = store__stmt(c, STMT_IDEM_CLAIM);
    struct store__params p = {0};
    MYSQL_TIME expires;
    int rc;

    store__time_to_mysql(idem->expires_at, &expires);
    store__p_id(&p, &t->user_id);
    store__p_str(&p, idem->method);
    store__p_str(&p, idem->route);
    store__p_str(&p, idem->key);
    store__p_bytes(&p, MYSQL_TYPE_BLOB, idem->fingerprint, IDEM_FINGERPRINT_LEN);
    store__p_id(&p, &t->id);
    store__p_bytes(&p, MYSQL_TYPE_DATETIME, &expires, sizeof expires);
    rc = store__p_exec(st, &p, "idempotency key claim");
    if (rc != STORE_OK)
        return rc;
    if (mysql_stmt_affected_rows(st) > 0) {
        *ret_insert = true; /* ours: new, or an expired claim replaced */
        return STORE_OK;
    }
    *ret_insert = false;
    return read_claim(c, t, idem);
}

int store__idem_claim_all(struct store__conn *c, const struct task *const *tasks,
                          struct idem_claim *const *idem, size_t n, bool *ret_insert)
{
    /* a retried transaction starts again from scratch */
    for (size_t i = 0; i < n; i++) {
        if (!idem[i])
            continue;
        free(idem[i]->response_body);
        idem[i]->response_body = NULL;
        idem[i]->exists = false;
    }
    for (size_t i = 0; i < n; i++) {
        int rc;
        ret_insert[i] = true;
        if (!idem[i] || !idem[i]->key || !tasks[i]->has_user)
            continue;
        rc = claim_one(c, tasks[i], idem[i], &ret_insert[i]);
        if (rc != STORE_OK)
            return rc;
    }
    return STORE_OK;
}

struct respond_args {
    const struct idem_response *r;
    size_t n;
};

static int respond_fn(struct store__conn *c, void *arg)
{
    const struct respond_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        const struct idem_response *r = &a->r[i];
        struct store__params p = {0};
        int rc;
        store__p_int(&p, r->code);
        store__p_str(&p, r->body);
        store__p_id(&p, r->user);
        store__p_str(&p, r->method);
        store__p_str(&p, r->route);
        store__p_str(&p, r->key);
        rc = store__p_exec(store__stmt(c, STMT_IDEM_RESPOND), &p, "idempotency respond");
        if (rc != STORE_OK)
            return rc;
    }
    return STORE_OK;
}

int store_idem_respond(struct store *s, const struct idem_response *r, size_t n)
{
    struct respond_args a = {r, n};
    if (n == 0)
        return STORE_OK;
    return store__in_tx(s, respond_fn, &a);
}

int store_idem_purge(struct store *s, int limit, int *ret_deleted)
{
    struct store__conn *c = store__acquire(s);
    struct store__params p = {0};
    MYSQL_STMT *st;
    int rc;
    if (!c)
        return STORE_EDB;
    st = store__stmt(c, STMT_IDEM_PURGE);
    store__p_int(&p, limit);
    rc = store__p_exec(st, &p, "idempotency purge");
    if (rc == STORE_OK)
        *ret_deleted = (int)mysql_stmt_affected_rows(st);
    store__release(s, c, rc == STORE_EDB || rc == STORE__ERETRY);
    return rc == STORE__ERETRY ? STORE_EDB : rc;
}
