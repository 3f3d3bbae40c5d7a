/* store — group commit for the worker: claims and finishes of many tasks in one
 * transaction (see store.h).  First optimistically: the guarded bulk UPDATE alone,
 * which is the whole story when every row passes its guard (a backlog being
 * drained).  When fewer rows changed than were sent, the transaction is rolled
 * back and run again the careful way: lock the rows, decide each under the lock,
 * write only the ones that pass.  A batch the database refuses is split in halves
 * until the rows it refuses stand alone. */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

/* The optimistic pass saw a row fail its guard: roll back, decide under the lock. */
#define BATCH_ELOCK (-101)

/* --- column-wise array binding ------------------------------------------- */

enum { BULK_COLS = 8 };

struct bcol {
    const void **ptrs;   /* strings, blobs, datetimes: one pointer per row */
    unsigned long *lens; /* strings, blobs */
    long long *ints;
    MYSQL_TIME *times;
    char *ind; /* STMT_INDICATOR_NONE or _NULL per row */
};

struct bulk {
    size_t n, ncols;
    MYSQL_BIND bind[BULK_COLS];
    struct bcol col[BULK_COLS];
};

static void bulk_free(struct bulk *b)
{
    for (size_t i = 0; i < b->ncols; i++) {
        free(b->col[i].ptrs);
        free(b->col[i].lens);
        free(b->col[i].ints);
        free(b->col[i].times);
        free(b->col[i].ind);
    }
}

/* Column types in placeholder order; n rows.  STORE_ENOMEM (b freed) on failure. */
static int bulk_init(struct bulk *b, size_t n, const enum enum_field_types *types, size_t ncols)
{
    memset(b, 0, sizeof *b);
    if (n == 0)
        return STORE_EINVAL;
    b->n = n;
    b->ncols = ncols;
    for (size_t i = 0; i < ncols; i++) {
        struct bcol *c = &b->col[i];
        MYSQL_BIND *bd = &b->bind[i];
        bool ok;
        c->ind = calloc(n, 1);
        bd->buffer_type = types[i];
        bd->u.indicator = c->ind;
        if (types[i] == MYSQL_TYPE_LONGLONG) {
            c->ints = calloc(n, sizeof *c->ints);
            bd->buffer = c->ints;
            ok = c->ints != NULL;
        } else if (types[i] == MYSQL_TYPE_DATETIME) {
            /* variable length on the wire: column-wise binding wants pointers */
            c->times = calloc(n, sizeof *c->times);
            c->ptrs = calloc(n, sizeof *c->ptrs);
            ok = c->times && c->ptrs;
            for (size_t r = 0; ok && r < n; r++)
                c->ptrs[r] = &c->times[r];
            bd->buffer = c->ptrs;
        } else {
            c->ptrs = calloc(n, sizeof *c->ptrs);
            c->lens = calloc(n, sizeof *c->lens);
            bd->buffer = c->ptrs;
            bd->length = c->lens;
            ok = c->ptrs && c->lens;
        }
        if (!ok || !c->ind) {
            bulk_free(b);
            return STORE_ENOMEM;
        }
    }
    return STORE_OK;
}

static void bulk_bytes(struct bulk *b, size_t col, size_t row, const void *p, size_t len)
{
    b->col[col].ptrs[row] = p;
    b->col[col].lens[row] = (unsigned long)len;
    b->col[col].ind[row] = p ? STMT_INDICATOR_NONE : STMT_INDICATOR_NULL;
}

static void bulk_str(struct bulk *b, size_t col, size_t row, const char *s)
{
    bulk_bytes(b, col, row, s, s ? strlen(s) : 0);
}

static void bulk_int(struct bulk *b, size_t col, size_t row, long long v)
{
    b->col[col].ints[row] = v;
    b->col[col].ind[row] = STMT_INDICATOR_NONE;
}

static void bulk_time(struct bulk *b, size_t col, size_t row, int64_t us)
{
    if (us != 0)
        store__time_to_mysql(us, &b->col[col].times[row]);
    b->col[col].ind[row] = us ? STMT_INDICATOR_NONE : STMT_INDICATOR_NULL;
}

/* Executes st once for all rows; *ret_affected counts the rows changed.  The array
 * size is reset afterwards: the single-row paths share the cached statement. */
static int bulk_exec(MYSQL_STMT *st, struct bulk *b, const char *what, size_t *ret_affected)
{
    unsigned int rows = (unsigned int)b->n, zero = 0;
    int rc = STORE_OK;
    if (!st)
        return STORE_EDB;
    if (mysql_stmt_attr_set(st, STMT_ATTR_ARRAY_SIZE, &rows) != 0 ||
        mysql_stmt_bind_param(st, b->bind) != 0 || mysql_stmt_execute(st) != 0)
        rc = store__stmt_error(st, what);
    else if (ret_affected)
        *ret_affected = (size_t)mysql_stmt_affected_rows(st);
    (void)mysql_stmt_attr_set(st, STMT_ATTR_ARRAY_SIZE, &zero);
    return rc;
}

/* --- the IN list: STORE_BATCH_MAX placeholders, unused ones repeat ids[0] --- */

struct inlist {
    MYSQL_BIND bind[STORE_BATCH_MAX];
    unsigned long len[STORE_BATCH_MAX];
};

static int exec_in(MYSQL_STMT *st, struct inlist *l, const struct ids_id *const *ids, size_t n,
                   const char *what)
{
    if (!st || n == 0)
        return STORE_EDB;
    memset(l->bind, 0, sizeof l->bind);
    for (size_t i = 0; i < STORE_BATCH_MAX; i++) {
        const struct ids_id *id = ids[i < n ? i : 0];
        l->len[i] = 16;
        l->bind[i].buffer_type = MYSQL_TYPE_BLOB;
        l->bind[i].buffer = (void *)id->b;
        l->bind[i].buffer_length = 16;
        l->bind[i].length = &l->len[i];
    }
    if (mysql_stmt_bind_param(st, l->bind) != 0 || mysql_stmt_execute(st) != 0)
        return store__stmt_error(st, what);
    return STORE_OK;
}

/* One locked row's state. */
struct lrow {
    unsigned char id[16];
    enum task_status status;
    int attempts;
    bool expired; /* RUNNING with a lease that has run out */
    bool found;
};

/* Locks the rows of ids and reads their state into st_of[i] (found false when the
 * row does not exist). */
static int lock_rows(struct store__conn *c, const struct ids_id *const *ids, size_t n,
                     struct lrow *st_of)
{
    MYSQL_STMT *st = store__stmt(c, STMT_BATCH_LOCK);
    struct inlist l;
    MYSQL_BIND out[4];
    unsigned long len[4];
    my_bool is_null[4];
    struct lrow r;
    char status[16];
    long long attempts = 0, expired = 0;
    int rc = exec_in(st, &l, ids, n, "batch lock");

    if (rc != STORE_OK)
        return rc;
    memset(out, 0, sizeof out);
    memset(st_of, 0, n * sizeof *st_of);
    out[0].buffer_type = MYSQL_TYPE_BLOB;
    out[0].buffer = r.id;
    out[0].buffer_length = 16;
    out[1].buffer_type = MYSQL_TYPE_STRING;
    out[1].buffer = status;
    out[1].buffer_length = sizeof status;
    out[2].buffer_type = MYSQL_TYPE_LONGLONG;
    out[2].buffer = &attempts;
    out[3].buffer_type = MYSQL_TYPE_LONGLONG;
    out[3].buffer = &expired;
    for (int i = 0; i < 4; i++) {
        out[i].length = &len[i];
        out[i].is_null = &is_null[i];
    }
    if (mysql_stmt_bind_result(st, out) != 0) {
        rc = store__stmt_error(st, "bind batch lock");
        goto out_free;
    }
    while ((rc = mysql_stmt_fetch(st)) == 0) {
        if (len[0] != 16 || model_status_parse(status, &r.status) != 0) {
            rc = STORE_EDB;
            goto out_free;
        }
        r.attempts = (int)attempts;
        r.expired = !is_null[3] && expired != 0;
        r.found = true;
        for (size_t i = 0; i < n; i++) {
            if (memcmp(ids[i]->b, r.id, 16) == 0)
                st_of[i] = r;
        }
    }
    rc = rc == MYSQL_NO_DATA ? STORE_OK : store__stmt_error(st, "fetch batch lock");
out_free:
    mysql_stmt_free_result(st);
    return rc;
}

/* The first index before i with the same id, or i. */
static size_t first_of(const struct ids_id *const *ids, size_t i)
{
    for (size_t k = 0; k < i; k++) {
        if (memcmp(ids[k]->b, ids[i]->b, 16) == 0)
            return k;
    }
    return i;
}

/* --- claims -------------------------------------------------------------- */

struct claim_batch {
    const char *worker_id;
    int lease_ms;
    struct store_claim_row *rows;
    size_t n;
    bool locked; /* the careful pass */
};

/* Reads the claimed rows back (attempts, started_at as now written). */
static int read_claimed(struct store__conn *c, const struct ids_id *const *ids, size_t n,
                        struct task *ret_tasks)
{
    MYSQL_STMT *st = store__stmt(c, STMT_BATCH_GET);
    struct inlist l;
    size_t got = 0;
    struct task *v = n > 0 ? calloc(n, sizeof *v) : NULL;
    int rc = v ? exec_in(st, &l, ids, n, "batch get") : STORE_ENOMEM;

    if (rc == STORE_OK)
        rc = store__fetch_rows(st, v, n, &got);
    if (st)
        mysql_stmt_free_result(st);
    if (rc == STORE_OK && got != n) {
        rc = STORE_EDB;
        for (size_t k = 0; k < got; k++)
            model_task_release(&v[k]);
    }
    /* the rows come in index order, not ours; each id must be there once */
    for (size_t i = 0; rc == STORE_OK && i < n; i++) {
        size_t k = 0;
        while (k < n && memcmp(v[k].id.b, ids[i]->b, 16) != 0)
            k++;
        if (k == n)
            rc = STORE_EDB;
        else
            memcpy(&ret_tasks[i], &v[k], sizeof v[k]);
    }
    if (rc != STORE_OK && got == n) {
        for (size_t k = 0; k < got; k++)
            model_task_release(&v[k]);
    }
    free(v);
    return rc;
}

static int claim_write(struct store__conn *c, const struct claim_batch *a, const size_t *which,
                       size_t m, const bool *was_running, struct task *tasks)
{
    static const enum enum_field_types claim_t[] = {MYSQL_TYPE_STRING, MYSQL_TYPE_LONGLONG,
                                                    MYSQL_TYPE_BLOB};
    static const enum enum_field_types att_t[] = {MYSQL_TYPE_BLOB, MYSQL_TYPE_LONGLONG,
                                                  MYSQL_TYPE_STRING};
    const struct ids_id *ids[STORE_BATCH_MAX];
    struct bulk b;
    size_t affected = 0, n_exp = 0;
    int rc = m > 0 ? bulk_init(&b, m, claim_t, 3) : STORE_EINVAL;

    if (rc != STORE_OK)
        return rc;
    for (size_t k = 0; k < m; k++) {
        ids[k] = &a->rows[which[k]].id;
        bulk_str(&b, 0, k, a->worker_id);
        bulk_int(&b, 1, k, (long long)a->lease_ms * 1000);
        bulk_bytes(&b, 2, k, ids[k]->b, 16);
    }
    rc = bulk_exec(store__stmt(c, STMT_TASK_CLAIM), &b, "batch claim", &affected);
    bulk_free(&b);
    if (rc == STORE_OK && affected != m)
        rc = a->locked ? STORE_EDB /* locked and decided: a bug, not a race */
                       : BATCH_ELOCK;
    if (rc == STORE_OK)
        rc = read_claimed(c, ids, m, tasks);
    if (rc != STORE_OK)
        return rc;
    /* an earlier attempt still marked running lost its lease: say so in its record
     * (unlocked, any row past its first attempt may have one) */
    for (size_t k = 0; k < m; k++)
        n_exp += was_running ? was_running[k] : tasks[k].attempts > 1;
    if (n_exp > 0 && (rc = bulk_init(&b, n_exp, att_t, 2)) == STORE_OK) {
        for (size_t k = 0, r = 0; k < m; k++) {
            if (was_running ? was_running[k] : tasks[k].attempts > 1) {
                bulk_bytes(&b, 0, r, ids[k]->b, 16);
                bulk_int(&b, 1, r++, tasks[k].attempts);
            }
        }
        rc = bulk_exec(store__stmt(c, STMT_ATTEMPT_EXPIRE), &b, "batch attempt expire", NULL);
        bulk_free(&b);
    }
    if (rc == STORE_OK && (rc = bulk_init(&b, m, att_t, 3)) == STORE_OK) {
        for (size_t k = 0; k < m; k++) {
            bulk_bytes(&b, 0, k, ids[k]->b, 16);
            bulk_int(&b, 1, k, tasks[k].attempts);
            bulk_str(&b, 2, k, a->worker_id);
        }
        rc = bulk_exec(store__stmt(c, STMT_ATTEMPT_INSERT), &b, "batch attempt insert", NULL);
        bulk_free(&b);
    }
    if (rc != STORE_OK) {
        for (size_t k = 0; k < m; k++)
            model_task_release(&tasks[k]);
    }
    return rc;
}

static enum store_claim decide_claim(const struct lrow *r)
{
    if (!r->found)
        return STORE_CLAIM_NOT_FOUND;
    if (model_status_terminal(r->status))
        return STORE_CLAIM_DONE;
    if (r->status == TASK_RUNNING && !r->expired)
        return STORE_CLAIM_LEASED;
    return STORE_CLAIMED;
}

/* The optimistic pass: every row is claimable (one bulk UPDATE says so). */
static int claim_all_fn(struct store__conn *c, const struct claim_batch *a)
{
    size_t which[STORE_BATCH_MAX];
    struct task tasks[STORE_BATCH_MAX];
    int rc;

    for (size_t i = 0; i < a->n; i++)
        which[i] = i;
    rc = claim_write(c, a, which, a->n, NULL, tasks);
    if (rc != STORE_OK)
        return rc;
    for (size_t i = 0; i < a->n; i++) {
        a->rows[i].rc = STORE_OK;
        a->rows[i].claim = STORE_CLAIMED;
        a->rows[i].task = tasks[i];
    }
    return STORE_OK;
}

static int claim_fn(struct store__conn *c, void *arg)
{
    const struct claim_batch *a = arg;
    if (!a->locked)
        return claim_all_fn(c, a);
    const struct ids_id *ids[STORE_BATCH_MAX];
    struct lrow lr[STORE_BATCH_MAX];
    enum store_claim cl[STORE_BATCH_MAX];
    size_t which[STORE_BATCH_MAX], m = 0;
    bool was_running[STORE_BATCH_MAX];
    struct task tasks[STORE_BATCH_MAX];
    int rc;

    for (size_t i = 0; i < a->n; i++)
        ids[i] = &a->rows[i].id;
    rc = lock_rows(c, ids, a->n, lr);
    if (rc != STORE_OK)
        return rc;
    for (size_t i = 0; i < a->n; i++) {
        size_t f = first_of(ids, i);
        cl[i] = decide_claim(&lr[i]);
        if (f != i) /* a second delivery in the batch finds the first one's lease */
            cl[i] = cl[f] == STORE_CLAIMED ? STORE_CLAIM_LEASED : cl[f];
        if (cl[i] == STORE_CLAIMED) {
            was_running[m] = lr[i].status == TASK_RUNNING;
            which[m++] = i;
        }
    }
    if (m > 0 && (rc = claim_write(c, a, which, m, was_running, tasks)) != STORE_OK)
        return rc;
    /* committed from here on (or rolled back by COMMIT failing: the caller's EDB) */
    for (size_t i = 0, k = 0; i < a->n; i++) {
        a->rows[i].rc = STORE_OK;
        a->rows[i].claim = cl[i];
        if (cl[i] == STORE_CLAIMED)
            a->rows[i].task = tasks[k++];
    }
    return STORE_OK;
}

/* --- finishes ------------------------------------------------------------ */

struct finish_batch {
    struct store_finish_row *rows;
    size_t n;
    bool locked; /* the careful pass */
};

static int finish_write(struct store__conn *c, struct store_finish_row *rows, const size_t *which,
                        size_t m, bool locked)
{
    static const enum enum_field_types fin_t[] = {
        MYSQL_TYPE_STRING,   MYSQL_TYPE_STRING, MYSQL_TYPE_STRING,  MYSQL_TYPE_DATETIME,
        MYSQL_TYPE_LONGLONG, MYSQL_TYPE_BLOB,   MYSQL_TYPE_LONGLONG};
    static const enum enum_field_types att_t[] = {MYSQL_TYPE_STRING, MYSQL_TYPE_STRING,
                                                  MYSQL_TYPE_BLOB, MYSQL_TYPE_LONGLONG};
    struct bulk b;
    size_t affected = 0;
    int rc = bulk_init(&b, m, fin_t, 7);

    if (rc != STORE_OK)
        return rc;
    for (size_t k = 0; k < m; k++) {
        const struct store_finish_row *r = &rows[which[k]];
        bulk_str(&b, 0, k, model_status_name(r->fin.status));
        bulk_str(&b, 1, k, r->fin.result);
        bulk_str(&b, 2, k, r->fin.error);
        bulk_time(&b, 3, k, r->fin.status == TASK_RETRYING ? r->fin.run_at : 0);
        bulk_int(&b, 4, k, model_status_terminal(r->fin.status) ? 1 : 0);
        bulk_bytes(&b, 5, k, r->id.b, 16);
        bulk_int(&b, 6, k, r->attempt);
    }
    rc = bulk_exec(store__stmt(c, STMT_TASK_FINISH), &b, "batch finish", &affected);
    bulk_free(&b);
    if (rc == STORE_OK && affected != m)
        rc = locked ? STORE_EDB /* decided under the lock: cannot differ */
                    : BATCH_ELOCK;
    if (rc != STORE_OK || (rc = bulk_init(&b, m, att_t, 4)) != STORE_OK)
        return rc;
    for (size_t k = 0; k < m; k++) {
        const struct store_finish_row *r = &rows[which[k]];
        bulk_str(&b, 0, k, store__outcome_name(r->fin.outcome));
        bulk_str(&b, 1, k, r->fin.error);
        bulk_bytes(&b, 2, k, r->id.b, 16);
        bulk_int(&b, 3, k, r->attempt);
    }
    rc = bulk_exec(store__stmt(c, STMT_ATTEMPT_FINISH), &b, "batch attempt finish", NULL);
    bulk_free(&b);
    return rc;
}

static int finish_fn(struct store__conn *c, void *arg)
{
    const struct finish_batch *a = arg;
    const struct ids_id *ids[STORE_BATCH_MAX];
    struct lrow lr[STORE_BATCH_MAX];
    bool fresh[STORE_BATCH_MAX];
    size_t which[STORE_BATCH_MAX], m = 0;
    int rc;

    if (!a->locked) {
        /* optimistic: every row passes its fence (the bulk UPDATE's count says so) */
        for (size_t i = 0; i < a->n; i++)
            which[i] = i;
        rc = finish_write(c, a->rows, which, a->n, false);
        for (size_t i = 0; rc == STORE_OK && i < a->n; i++)
            a->rows[i].rc = STORE_OK;
        return rc;
    }
    for (size_t i = 0; i < a->n; i++)
        ids[i] = &a->rows[i].id;
    rc = lock_rows(c, ids, a->n, lr);
    if (rc != STORE_OK)
        return rc;
    for (size_t i = 0; i < a->n; i++) {
        /* the fence, per row: WHERE id = ? AND attempts = ? AND status = 'RUNNING' */
        fresh[i] =
            lr[i].found && lr[i].status == TASK_RUNNING && lr[i].attempts == a->rows[i].attempt;
        for (size_t k = 0; k < i && fresh[i]; k++) {
            if (fresh[k] && memcmp(ids[k]->b, ids[i]->b, 16) == 0)
                fresh[i] = false; /* finished once already in this batch */
        }
        if (fresh[i])
            which[m++] = i;
    }
    if (m > 0 && (rc = finish_write(c, a->rows, which, m, true)) != STORE_OK)
        return rc;
    for (size_t i = 0; i < a->n; i++)
        a->rows[i].rc = fresh[i] ? STORE_OK : STORE_ESTALE;
    return STORE_OK;
}

/* --- splitting ----------------------------------------------------------- */

/* Rows [0, n) in one transaction; when the database refuses a value, each half in
 * its own, down to the single rows it refuses. */
static void claim_split(struct store *s, const struct claim_batch *a)
{
    int rc = store__in_tx(s, claim_fn, (void *)a);
    size_t h = a->n / 2;
    if (rc == BATCH_ELOCK) {
        struct claim_batch careful = *a;
        careful.locked = true;
        rc = store__in_tx(s, claim_fn, &careful);
    }
    if (rc == STORE_OK)
        return;
    if (rc == STORE_EINVAL && a->n > 1) {
        struct claim_batch lo = *a, hi = *a;
        lo.n = h;
        hi.rows += h;
        hi.n -= h;
        claim_split(s, &lo);
        claim_split(s, &hi);
        return;
    }
    for (size_t i = 0; i < a->n; i++) {
        struct store_claim_row *r = &a->rows[i];
        if (r->rc == STORE_OK && r->claim == STORE_CLAIMED)
            model_task_release(&r->task); /* written, then COMMIT failed */
        r->rc = rc;
    }
}

static void finish_split(struct store *s, const struct finish_batch *a)
{
    int rc = store__in_tx(s, finish_fn, (void *)a);
    size_t h = a->n / 2;
    if (rc == BATCH_ELOCK) {
        struct finish_batch careful = *a;
        careful.locked = true;
        rc = store__in_tx(s, finish_fn, &careful);
    }
    if (rc == STORE_OK)
        return;
    if (rc == STORE_EINVAL && a->n > 1) {
        struct finish_batch lo = {a->rows, h, false}, hi = {a->rows + h, a->n - h, false};
        finish_split(s, &lo);
        finish_split(s, &hi);
        return;
    }
    for (size_t i = 0; i < a->n; i++)
        a->rows[i].rc = rc;
}

int store_task_claim_batch(struct store *s, const char *worker_id, int lease_ms,
                           struct store_claim_row *rows, size_t n)
{
    struct claim_batch a = {worker_id, lease_ms, rows, n, false};
    if (!s || !worker_id || (n > 0 && !rows) || n > STORE_BATCH_MAX)
        return STORE_EINVAL;
    for (size_t i = 0; i < n; i++) {
        rows[i].rc = STORE_EDB;
        rows[i].claim = STORE_CLAIM_NOT_FOUND;
    }
    if (n > 0)
        claim_split(s, &a);
    return STORE_OK;
}

int store_task_finish_batch(struct store *s, struct store_finish_row *rows, size_t n)
{
    struct finish_batch a = {rows, n, false};
    if (!s || (n > 0 && !rows) || n > STORE_BATCH_MAX)
        return STORE_EINVAL;
    for (size_t i = 0; i < n; i++)
        rows[i].rc = STORE_EDB;
    if (n > 0)
        finish_split(s, &a);
    return STORE_OK;
}
