/* seed_backlog — a backlog of noop tasks for measuring the worker's drain: N rows
 * stored QUEUED (64 per bulk insert) and their messages published to the tasks
 * topic, as the producer would have done; then, with "wait", polls until every one
 * of them is SUCCEEDED and prints "drained=N seconds=S tasks_per_s=R".
 *
 *   seed_backlog N            seed only
 *   seed_backlog N wait       seed, then time the drain from the first SUCCEEDED
 *   seed_backlog 0 wait N     time the drain of N already seeded tasks
 *
 * Settings from DISPATCH_MYSQL_*, DISPATCH_KAFKA_BROKERS and DISPATCH_KAFKA_TOPIC. */
#include <mysql.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "queue/queue.h"
#include "store/store.h"
#include "support/testenv.h"

enum { CHUNK = 64 };

static atomic_long acked, failed;

static void on_report(void *opaque, int err, const char *errstr)
{
    (void)opaque;
    (void)errstr;
    if (err == QUEUE_OK)
        atomic_fetch_add(&acked, 1);
    else
        atomic_fetch_add(&failed, 1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int seed(struct store *s, struct queue_producer *p, const char *topic, long n)
{
    struct task t[CHUNK];
    const struct task *pt[CHUNK];
    for (long done = 0; done < n;) {
        size_t k = (size_t)(n - done < CHUNK ? n - done : CHUNK);
        memset(t, 0, sizeof t);
        for (size_t i = 0; i < k; i++) {
            if (ids_new_v7(&t[i].id) < 0)
                return -1; /* before anything of the chunk is allocated */
        }
        for (size_t i = 0; i < k; i++) {
            snprintf(t[i].type, sizeof t[i].type, "noop");
            t[i].status = TASK_QUEUED;
            t[i].max_attempts = 5;
            t[i].payload = strdup("{\"n\":1}");
            t[i].created_at = t[i].updated_at = model_now_us();
            pt[i] = &t[i];
        }
        int rc = store_task_insert_batch(s, pt, NULL, k);
        for (size_t i = 0; rc == STORE_OK && i < k; i++) {
            char idbuf[IDS_TEXT_LEN + 1];
            size_t klen;
            const char *key = model_task_key(&t[i], idbuf, &klen);
            char *value = model_task_message(&t[i]);
            while (value && queue_produce(p, topic, key, klen, value, strlen(value), NULL, 0,
                                          on_report, NULL) == QUEUE_EFULL)
                usleep(1000);
            free(value);
        }
        for (size_t i = 0; i < k; i++)
            model_task_release(&t[i]);
        if (rc != STORE_OK) {
            fprintf(stderr, "seed_backlog: insert failed: %s\n", store_strerror(rc));
            return -1;
        }
        done += (long)k;
    }
    while (atomic_load(&acked) + atomic_load(&failed) < n)
        usleep(10000);
    return atomic_load(&failed) == 0 ? 0 : -1;
}

/* SUCCEEDED tasks: the range of ix_tasks_status_created since `since` (a count over
 * the whole table would cost the database more than the drain it measures). */
static long count_succeeded(MYSQL *db, const char *since)
{
    MYSQL_RES *res;
    MYSQL_ROW row;
    long n = -1;
    char q[160];
    snprintf(q, sizeof q,
             "SELECT COUNT(*) FROM tasks WHERE status = 'SUCCEEDED' AND created_at >= '%s'", since);
    if (mysql_query(db, q) != 0)
        return -1;
    res = mysql_store_result(db);
    if (res && (row = mysql_fetch_row(res)) && row[0])
        n = strtol(row[0], NULL, 10);
    mysql_free_result(res);
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: seed_backlog N [wait [N_TO_WAIT_FOR]]\n");
        return 64;
    }
    long n = strtol(argv[1], NULL, 10);
    bool wait = argc > 2 && strcmp(argv[2], "wait") == 0;
    long expect = argc > 3 ? strtol(argv[3], NULL, 10) : n;
    struct store_config sc = testenv_store_config(2);
    struct store *s = NULL;
    struct queue_producer *p = NULL;
    struct queue_producer_config pc = {
        .brokers = testenv_get("DISPATCH_KAFKA_BROKERS"),
        .client_id = "seed_backlog",
        .linger_ms = 5,
        .message_timeout_ms = 30000,
    };
    if (store_new(&sc, &s) != STORE_OK || queue_producer_new(&pc, &p) != QUEUE_OK) {
        fprintf(stderr, "seed_backlog: cannot reach MariaDB or Kafka\n");
        return 69;
    }
    MYSQL *db = mysql_init(NULL);
    if (!db || !mysql_real_connect(db, sc.host, sc.user, sc.password, sc.database,
                                   (unsigned)sc.port, NULL, 0)) {
        fprintf(stderr, "seed_backlog: %s\n", db ? mysql_error(db) : "no memory");
        return 69;
    }
    /* the seeded tasks are created from now on; "0 wait N" counts the last hour's */
    char since[32];
    time_t from = time(NULL) - (n > 0 ? 1 : 3600);
    strftime(since, sizeof since, "%Y-%m-%d %H:%M:%S", gmtime(&from));
    long base = count_succeeded(db, since);
    int code = 0;
    if (n > 0) {
        double t0 = now_s();
        if (seed(s, p, testenv_get("DISPATCH_KAFKA_TOPIC"), n) < 0)
            code = 1;
        else
            printf("seeded=%ld seconds=%.2f\n", n, now_s() - t0);
    }
    if (code == 0 && wait) {
        double start = 0, last = now_s();
        long got = 0;
        while (got < expect) {
            long c = count_succeeded(db, since) - base;
            if (c < 0) {
                code = 1;
                break;
            }
            if (c > 0 && start == 0)
                start = now_s();
            if (c != got)
                last = now_s();
            got = c;
            if (now_s() - last > 60) {
                fprintf(stderr, "seed_backlog: stuck at %ld of %ld\n", got, expect);
                code = 1;
                break;
            }
            usleep(200000);
        }
        double secs = now_s() - start;
        printf("drained=%ld seconds=%.2f tasks_per_s=%.0f\n", got, secs, secs > 0 ? got / secs : 0);
    }
    fflush(stdout);
    mysql_close(db);
    queue_producer_free(p);
    store_free(s);
    return code;
}
