/* insert_rate — the ceiling POST /tasks is measured against: single-row durable
 * INSERTs (autocommit, innodb_flush_log_at_trx_commit=1) into a table shaped like
 * tasks, from N connections for D seconds.  Prints "rows_per_s=… p99_ms=…".
 *
 *   insert_rate CONNECTIONS SECONDS   (MariaDB settings from DISPATCH_MYSQL_*) */
#include <mysql.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ids/ids.h"
#include "support/testenv.h"

enum { MAX_SAMPLES = 200000 };

struct worker {
    pthread_t thread;
    double seconds;
    long rows;
    double *lat_ms;
    long n_lat;
    int failed;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static MYSQL *connect_db(void)
{
    struct store_config sc = testenv_store_config(1);
    MYSQL *db = mysql_init(NULL);
    if (db && !mysql_real_connect(db, sc.host, sc.user, sc.password, sc.database, (unsigned)sc.port,
                                  NULL, 0)) {
        fprintf(stderr, "insert_rate: %s\n", mysql_error(db));
        mysql_close(db);
        return NULL;
    }
    return db;
}

static const char insert_sql[] =
    "INSERT INTO bench_insert (id, user_id, type, status, priority, attempts, max_attempts, "
    "payload, created_at, updated_at) VALUES (?, ?, 'noop', 'PENDING', 0, 0, 5, "
    "'{\"n\":1}', UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))";

static void *run(void *arg)
{
    struct worker *w = arg;
    MYSQL *db = connect_db();
    MYSQL_STMT *st = db ? mysql_stmt_init(db) : NULL;
    struct ids_id id, user;
    unsigned long len = 16;
    MYSQL_BIND b[2];
    double end;

    if (!st || mysql_stmt_prepare(st, insert_sql, sizeof insert_sql - 1) != 0) {
        w->failed = 1;
        goto out;
    }
    ids_new_v7(&user);
    memset(b, 0, sizeof b);
    b[0].buffer_type = b[1].buffer_type = MYSQL_TYPE_BLOB;
    b[0].buffer = id.b;
    b[1].buffer = user.b;
    b[0].length = b[1].length = &len;
    end = now_s() + w->seconds;
    while (now_s() < end) {
        double t0 = now_s();
        ids_new_v7(&id);
        if (mysql_stmt_bind_param(st, b) != 0 || mysql_stmt_execute(st) != 0) {
            fprintf(stderr, "insert_rate: %s\n", mysql_stmt_error(st));
            w->failed = 1;
            break;
        }
        w->rows++;
        if (w->n_lat < MAX_SAMPLES)
            w->lat_ms[w->n_lat++] = (now_s() - t0) * 1000.0;
    }
out:
    if (st)
        mysql_stmt_close(st);
    if (db)
        mysql_close(db);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs the workers; returns the exit code. */
static int measure(MYSQL *db, struct worker *w, int conns, double seconds)
{
    long rows = 0, n = 0, k = 0;
    double *all;
    if (mysql_query(db, "DROP TABLE IF EXISTS bench_insert") != 0 ||
        mysql_query(db, "CREATE TABLE bench_insert LIKE tasks") != 0) {
        fprintf(stderr, "insert_rate: %s\n", mysql_error(db));
        return 69;
    }
    for (int i = 0; i < conns; i++) {
        w[i].seconds = seconds;
        w[i].lat_ms = calloc(MAX_SAMPLES, sizeof(double));
        if (!w[i].lat_ms || pthread_create(&w[i].thread, NULL, run, &w[i]) != 0)
            return 71;
    }
    for (int i = 0; i < conns; i++) {
        pthread_join(w[i].thread, NULL);
        rows += w[i].rows;
        n += w[i].n_lat;
    }
    all = calloc((size_t)n + 1, sizeof *all);
    for (int i = 0; i < conns; i++) {
        if (w[i].failed || !all) {
            free(all);
            return 70;
        }
        memcpy(all + k, w[i].lat_ms, (size_t)w[i].n_lat * sizeof *all);
        k += w[i].n_lat;
    }
    qsort(all, (size_t)n, sizeof *all, cmp_double);
    printf("rows_per_s=%.0f p99_ms=%.2f connections=%d\n", (double)rows / seconds,
           n ? all[(long)((double)n * 0.99)] : 0.0, conns);
    free(all);
    mysql_query(db, "DROP TABLE IF EXISTS bench_insert");
    return 0;
}

int main(int argc, char **argv)
{
    int conns = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 16;
    double seconds = argc > 2 ? strtod(argv[2], NULL) : 10;
    struct worker *w;
    MYSQL *db;
    int rc;

    if (conns < 1 || conns > 256 || seconds <= 0) {
        fprintf(stderr, "usage: insert_rate CONNECTIONS SECONDS\n");
        return 64;
    }
    mysql_library_init(0, NULL, NULL);
    db = connect_db();
    if (!db)
        return 69;
    w = calloc((size_t)conns, sizeof *w);
    rc = w ? measure(db, w, conns, seconds) : 71;
    for (int i = 0; w && i < conns; i++)
        free(w[i].lat_ms);
    free(w);
    mysql_close(db);
    mysql_library_end();
    return rc;
}
