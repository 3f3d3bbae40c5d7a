/* store — task rows: bulk insert, PENDING -> QUEUED, read one. */
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void store__time_to_mysql(int64_t us, MYSQL_TIME *out)
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    memset(out, 0, sizeof *out);
    out->year = (unsigned)tm.tm_year + 1900;
    out->month = (unsigned)tm.tm_mon + 1;
    out->day = (unsigned)tm.tm_mday;
    out->hour = (unsigned)tm.tm_hour;
    out->minute = (unsigned)tm.tm_min;
    out->second = (unsigned)tm.tm_sec;
    out->second_part = (unsigned long)(us % 1000000);
    out->time_type = MYSQL_TIMESTAMP_DATETIME;
}

int64_t store__time_from_mysql(const MYSQL_TIME *t)
{
    struct tm tm = {0};
    tm.tm_year = (int)t->year - 1900;
    tm.tm_mon = (int)t->month - 1;
    tm.tm_mday = (int)t->day;
    tm.tm_hour = (int)t->hour;
    tm.tm_min = (int)t->minute;
    tm.tm_sec = (int)t->second;
    return (int64_t)timegm(&tm) * 1000000 + (int64_t)t->second_part;
}

/* --- bulk (column-wise array) binding ------------------------------------ */

enum { INS_COLS = 15 };

struct bulk_col {
    const void **ptrs;   /* strings/blobs/datetimes: one pointer per row */
    unsigned long *lens; /* strings/blobs */
    long long *ints;     /* integers */
    MYSQL_TIME *times;   /* datetimes */
    char *ind;           /* STMT_INDICATOR_NONE or _NULL per row */
};

struct bulk {
    size_t n;
    MYSQL_BIND bind[INS_COLS];
    struct bulk_col col[INS_COLS];
};

static void bulk_free(struct bulk *b, size_t ncols)
{
    for (size_t i = 0; i < ncols; i++) {
        free(b->col[i].ptrs);
        free(b->col[i].lens);
        free(b->col[i].ints);
        free(b->col[i].times);
        free(b->col[i].ind);
    }
}

/* Prepares column i of type t for n rows. */
static int bulk_col_init(struct bulk *b, size_t i, enum enum_field_types t)
{
    struct bulk_col *c = &b->col[i];
    MYSQL_BIND *bd = &b->bind[i];
    c->ind = calloc(b->n, 1);
    if (!c->ind)
        return -1;
    memset(bd, 0, sizeof *bd);
    bd->buffer_type = t;
    bd->u.indicator = c->ind;
    if (t == MYSQL_TYPE_LONGLONG) {
        c->ints = calloc(b->n, sizeof *c->ints);
        bd->buffer = c->ints;
        return c->ints ? 0 : -1;
    }
    if (t == MYSQL_TYPE_DATETIME) {
        /* variable-length on the wire, so column-wise binding wants an array of
         * pointers here (mariadb_stmt.c: ma_get_buffer_offset), not of values */
        c->times = calloc(b->n, sizeof *c->times);
        c->ptrs = calloc(b->n, sizeof *c->ptrs);
        if (!c->times || !c->ptrs)
            return -1;
        for (size_t r = 0; r < b->n; r++)
            c->ptrs[r] = &c->times[r];
        bd->buffer = c->ptrs;
        return 0;
    }
    c->ptrs = calloc(b->n, sizeof *c->ptrs);
    c->lens = calloc(b->n, sizeof *c->lens);
    bd->buffer = c->ptrs;
    bd->length = c->lens;
    return c->ptrs && c->lens ? 0 : -1;
}

static void bulk_str(struct bulk *b, size_t col, size_t row, const void *p, size_t len)
{
    b->col[col].ptrs[row] = p;
    b->col[col].lens[row] = (unsigned long)len;
    b->col[col].ind[row] = p ? STMT_INDICATOR_NONE : STMT_INDICATOR_NULL;
}

static void bulk_cstr(struct bulk *b, size_t col, size_t row, const char *s)
{
    bulk_str(b, col, row, s, s ? strlen(s) : 0);
}

static void bulk_int(struct bulk *b, size_t col, size_t row, long long v, bool is_null)
{
    b->col[col].ints[row] = v;
    b->col[col].ind[row] = is_null ? STMT_INDICATOR_NULL : STMT_INDICATOR_NONE;
}

static void bulk_time(struct bulk *b, size_t col, size_t row, int64_t us)
{
    if (us != 0)
        store__time_to_mysql(us, &b->col[col].times[row]);
    b->col[col].ind[row] = us ? STMT_INDICATOR_NONE : STMT_INDICATOR_NULL;
}

static const enum enum_field_types insert_types[INS_COLS] = {
    MYSQL_TYPE_BLOB,     MYSQL_TYPE_BLOB,     MYSQL_TYPE_STRING,   MYSQL_TYPE_STRING,
    MYSQL_TYPE_LONGLONG, MYSQL_TYPE_LONGLONG, MYSQL_TYPE_LONGLONG, MYSQL_TYPE_LONGLONG,
    MYSQL_TYPE_STRING,   MYSQL_TYPE_STRING,   MYSQL_TYPE_STRING,   MYSQL_TYPE_STRING,
    MYSQL_TYPE_DATETIME, MYSQL_TYPE_DATETIME, MYSQL_TYPE_DATETIME,
};

static void bulk_row(struct bulk *b, size_t r, const struct task *t)
{
    bulk_str(b, 0, r, t->id.b, 16);
    bulk_str(b, 1, r, t->has_user ? t->user_id.b : NULL, 16);
    bulk_cstr(b, 2, r, t->type);
    bulk_cstr(b, 3, r, model_status_name(t->status));
    bulk_int(b, 4, r, t->priority, false);
    bulk_int(b, 5, r, t->attempts, false);
    bulk_int(b, 6, r, t->max_attempts, false);
    bulk_int(b, 7, r, t->timeout_ms, t->timeout_ms == 0);
    bulk_cstr(b, 8, r, t->payload);
    bulk_cstr(b, 9, r, t->ordering_key);
    bulk_cstr(b, 10, r, t->callback_url);
    bulk_cstr(b, 11, r, t->traceparent[0] ? t->traceparent : NULL);
    bulk_time(b, 12, r, t->created_at);
    bulk_time(b, 13, r, t->updated_at);
    bulk_time(b, 14, r, t->run_at);
}

static int bulk_execute(MYSQL_STMT *st, struct bulk *b, const char *what)
{
    unsigned int rows = (unsigned int)b->n;
    if (mysql_stmt_attr_set(st, STMT_ATTR_ARRAY_SIZE, &rows) != 0 ||
        mysql_stmt_bind_param(st, b->bind) != 0 || mysql_stmt_execute(st) != 0)
        return store__stmt_error(st, what);
    return STORE_OK;
}

struct insert_args {
    const struct task *const *tasks;
    struct idem_claim *const *idem;
    size_t n;
};

static int insert_rows(struct store__conn *c, const struct task *const *tasks, size_t n)
{
    MYSQL_STMT *st = store__stmt(c, STMT_TASK_INSERT);
    struct bulk b = {.n = n};
    int rc = STORE_ENOMEM;
    if (!st)
        return STORE_EDB;
    for (size_t i = 0; i < INS_COLS; i++) {
        if (bulk_col_init(&b, i, insert_types[i]) < 0)
            goto out_free;
    }
    for (size_t r = 0; r < n; r++)
        bulk_row(&b, r, tasks[r]);
    rc = bulk_execute(st, &b, "task insert");
out_free:
    bulk_free(&b, INS_COLS);
    return rc;
}

static int insert_fn(struct store__conn *c, void *arg)
{
    const struct insert_args *a = arg;
    const struct task **rows;
    bool *insert;
    size_t n = 0;
    int rc;

    if (!a->idem)
        return insert_rows(c, a->tasks, a->n);
    rows = calloc(a->n, sizeof(const struct task *));
    insert = calloc(a->n, sizeof *insert);
    rc = rows && insert ? store__idem_claim_all(c, a->tasks, a->idem, a->n, insert) : STORE_ENOMEM;
    for (size_t i = 0; rc == STORE_OK && i < a->n; i++) {
        if (insert[i])
            rows[n++] = a->tasks[i];
    }
    if (rc == STORE_OK && n > 0)
        rc = insert_rows(c, rows, n);
    free(rows);
    free(insert);
    return rc;
}

int store_task_insert_batch(struct store *s, const struct task *const *tasks,
                            struct idem_claim *const *idem, size_t n)
{
    struct insert_args a = {tasks, idem, n};
    if (n == 0)
        return STORE_OK;
    return store__in_tx(s, insert_fn, &a);
}

struct mark_args {
    const struct ids_id *ids;
    size_t n;
};

int store__mark_queued_in(struct store__conn *c, const struct ids_id *ids, size_t n)
{
    MYSQL_STMT *st = store__stmt(c, STMT_TASK_MARK_QUEUED);
    struct bulk b = {.n = n};
    int rc = STORE_ENOMEM;
    if (!st)
        return STORE_EDB;
    if (n == 0)
        return STORE_OK;
    if (bulk_col_init(&b, 0, MYSQL_TYPE_BLOB) == 0) {
        for (size_t r = 0; r < n; r++)
            bulk_str(&b, 0, r, ids[r].b, 16);
        rc = bulk_execute(st, &b, "task mark queued");
    }
    bulk_free(&b, 1);
    return rc;
}

static int mark_fn(struct store__conn *c, void *arg)
{
    const struct mark_args *a = arg;
    return store__mark_queued_in(c, a->ids, a->n);
}

int store_task_mark_queued(struct store *s, const struct ids_id *ids, size_t n)
{
    struct mark_args a = {ids, n};
    if (n == 0)
        return STORE_OK;
    return store__in_tx(s, mark_fn, &a);
}

/* --- reading a task row --------------------------------------------------- */

enum { TASK_COLS = 19 };

/* Fixed buffers for one fetched row; long text columns are fetched afterwards. */
struct row {
    MYSQL_BIND bind[TASK_COLS];
    unsigned long len[TASK_COLS];
    my_bool is_null[TASK_COLS];
    my_bool err[TASK_COLS];
    unsigned char id[16], user_id[16];
    char type[MODEL_TYPE_MAX + 1], status[16], traceparent[MODEL_TRACEPARENT_LEN + 1];
    long long ints[4]; /* priority, attempts, max_attempts, timeout_ms */
    MYSQL_TIME times[5];
};

/* Columns 8..12 (payload, result, last_error, ordering_key, callback_url) are
 * fetched at their real length after the first fetch. */
static bool is_text_col(int i)
{
    return i >= 8 && i <= 12;
}

static void row_bind(struct row *r)
{
    static const int int_cols[4] = {4, 5, 6, 7};
    memset(r->bind, 0, sizeof r->bind);
    for (int i = 0; i < TASK_COLS; i++) {
        r->bind[i].length = &r->len[i];
        r->bind[i].is_null = &r->is_null[i];
        r->bind[i].error = &r->err[i];
        r->bind[i].buffer_type = MYSQL_TYPE_STRING; /* text columns: no buffer yet */
    }
    r->bind[0].buffer_type = MYSQL_TYPE_BLOB;
    r->bind[0].buffer = r->id;
    r->bind[0].buffer_length = 16;
    r->bind[1].buffer_type = MYSQL_TYPE_BLOB;
    r->bind[1].buffer = r->user_id;
    r->bind[1].buffer_length = 16;
    r->bind[2].buffer = r->type;
    r->bind[2].buffer_length = sizeof r->type;
    r->bind[3].buffer = r->status;
    r->bind[3].buffer_length = sizeof r->status;
    for (int k = 0; k < 4; k++) {
        r->bind[int_cols[k]].buffer_type = MYSQL_TYPE_LONGLONG;
        r->bind[int_cols[k]].buffer = &r->ints[k];
    }
    r->bind[13].buffer = r->traceparent;
    r->bind[13].buffer_length = sizeof r->traceparent;
    for (int k = 0; k < 5; k++) {
        r->bind[14 + k].buffer_type = MYSQL_TYPE_DATETIME;
        r->bind[14 + k].buffer = &r->times[k];
    }
}

/* Fetches text column i whole into a new NUL-terminated string (NULL stays NULL). */
static int fetch_text(MYSQL_STMT *st, struct row *r, int i, char **ret)
{
    MYSQL_BIND b = {0};
    unsigned long len = r->len[i];
    char *buf;
    if (r->is_null[i]) {
        *ret = NULL;
        return STORE_OK;
    }
    buf = malloc(len + 1);
    if (!buf)
        return STORE_ENOMEM;
    b.buffer_type = MYSQL_TYPE_STRING;
    b.buffer = buf;
    b.buffer_length = len + 1;
    if (len > 0 && mysql_stmt_fetch_column(st, &b, (unsigned)i, 0) != 0) {
        free(buf);
        return store__stmt_error(st, "fetch column");
    }
    buf[len] = '\0';
    *ret = buf;
    return STORE_OK;
}

static void copy_fixed(const struct row *r, struct task *t)
{
    memcpy(t->id.b, r->id, 16);
    t->has_user = !r->is_null[1];
    if (t->has_user)
        memcpy(t->user_id.b, r->user_id, 16);
    memcpy(t->type, r->type, r->len[2] < sizeof t->type ? r->len[2] : sizeof t->type - 1);
    t->type[sizeof t->type - 1] = '\0';
    if (model_status_parse(r->status, &t->status) < 0)
        t->status = TASK_PENDING;
    t->priority = (int)r->ints[0];
    t->attempts = (int)r->ints[1];
    t->max_attempts = (int)r->ints[2];
    t->timeout_ms = r->is_null[7] ? 0 : (int)r->ints[3];
    if (!r->is_null[13] && r->len[13] == MODEL_TRACEPARENT_LEN)
        memcpy(t->traceparent, r->traceparent, MODEL_TRACEPARENT_LEN + 1);
    int64_t *times[5] = {&t->created_at, &t->updated_at, &t->run_at, &t->started_at,
                         &t->finished_at};
    for (int k = 0; k < 5; k++)
        *times[k] = r->is_null[14 + k] ? 0 : store__time_from_mysql(&r->times[k]);
}

int store__fetch_task(MYSQL_STMT *st, struct task *ret_task)
{
    struct row r;
    struct task t = {0};
    char **texts[5] = {&t.payload, &t.result, &t.last_error, &t.ordering_key, &t.callback_url};
    int rc;

    memset(&r, 0, sizeof r);
    row_bind(&r);
    if (mysql_stmt_bind_result(st, r.bind) != 0)
        return store__stmt_error(st, "bind result");
    rc = mysql_stmt_fetch(st);
    if (rc == MYSQL_NO_DATA)
        return STORE_ENOTFOUND;
    if (rc == 1)
        return store__stmt_error(st, "fetch");
    /* MYSQL_DATA_TRUNCATED is expected: the text columns had no buffer */
    for (int i = 0; i < TASK_COLS; i++) {
        if (r.err[i] && !is_text_col(i))
            return STORE_EDB;
    }
    r.status[r.len[3] < sizeof r.status ? r.len[3] : sizeof r.status - 1] = '\0';
    r.type[r.len[2] < sizeof r.type ? r.len[2] : sizeof r.type - 1] = '\0';
    copy_fixed(&r, &t);
    for (int k = 0; k < 5; k++) {
        rc = fetch_text(st, &r, 8 + k, texts[k]);
        if (rc != STORE_OK) {
            model_task_release(&t);
            return rc;
        }
    }
    if (!t.payload) {
        model_task_release(&t);
        return STORE_EDB;
    }
    *ret_task = t;
    return STORE_OK;
}

int store__exec_by_id(MYSQL_STMT *st, const struct ids_id *id)
{
    struct store__params p = {0};
    store__p_id(&p, id);
    return store__p_exec(st, &p, "execute by id");
}

int store_task_get(struct store *s, const struct ids_id *id, struct task *ret_task)
{
    struct store__conn *c = store__acquire(s);
    MYSQL_STMT *st;
    int rc = STORE_EDB;
    if (!c)
        return STORE_EDB;
    st = store__stmt(c, STMT_TASK_GET);
    if (st) {
        rc = store__exec_by_id(st, id);
        if (rc == STORE_OK)
            rc = store__fetch_task(st, ret_task);
        mysql_stmt_free_result(st);
    }
    store__release(s, c, rc == STORE_EDB);
    return rc;
}
