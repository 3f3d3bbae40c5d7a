/* seed_backlog — a backlog for the worker, fast: N noop tasks stored as QUEUED with
 * 1,000-row bulk INSERTs (the store's own insert) and their messages produced to
 * the task topic (the producer's own message format), without the HTTP path, so
 * that `make bench` can build a 1,000,000-task backlog in seconds.
 * Prints "seeded=N acked=N seconds=S".
 *
 *   seed_backlog N   (MariaDB from DISPATCH_MYSQL_*, Kafka from DISPATCH_KAFKA_BROKERS,
 *                     topic DISPATCH_KAFKA_TOPIC or dispatch.tasks) */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/model.h"
#include "queue/queue.h"
#include "store/store.h"
#include "support/testenv.h"

enum { BATCH = 1000, MAX_IN_FLIGHT = 50000 };

static _Atomic long acked, failed;

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

static void wait_in_flight(long sent, long max)
{
    struct timespec pause = {0, 1000000};
    while (sent - atomic_load(&acked) - atomic_load(&failed) > max)
        nanosleep(&pause, NULL);
}

/* One batch: stored in one transaction, then produced. */
static int seed_batch(struct store *st, struct queue_producer *qp, const char *topic,
                      struct task *tasks, const struct task **ptrs, size_t n, long *sent)
{
    struct ids_id user;
    int rc;
    if (ids_new_v7(&user) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct task *t = &tasks[i];
        memset(t, 0, sizeof *t);
        if (ids_new_v7(&t->id) < 0)
            return -1;
        snprintf(t->type, sizeof t->type, "noop");
        t->status = TASK_QUEUED;
        t->max_attempts = 3;
        t->payload = (char *)"{}";
        t->user_id = user;
        t->has_user = true;
        t->created_at = t->updated_at = t->run_at = model_now_us();
        ptrs[i] = t;
    }
    rc = store_task_insert_batch(st, ptrs, NULL, n);
    if (rc != 0) {
        fprintf(stderr, "seed_backlog: insert: %s\n", store_strerror(rc));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        char idbuf[IDS_TEXT_LEN + 1];
        size_t klen;
        const char *key = model_task_key(&tasks[i], idbuf, &klen);
        char *value = model_task_message(&tasks[i]);
        if (!value)
            return -1;
        wait_in_flight(*sent, MAX_IN_FLIGHT);
        while ((rc = queue_produce(qp, topic, key, klen, value, strlen(value), NULL, 0, on_report,
                                   NULL)) == QUEUE_EFULL)
            wait_in_flight(*sent, MAX_IN_FLIGHT / 2);
        free(value);
        if (rc != QUEUE_OK) {
            fprintf(stderr, "seed_backlog: produce: %s\n", queue_strerror(rc));
            return -1;
        }
        (*sent)++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct store_config sc = testenv_store_config(1);
    struct queue_producer_config qc = {testenv_get("DISPATCH_KAFKA_BROKERS"), "seed-backlog", 5,
                                       60000};
    const char *topic = getenv("DISPATCH_KAFKA_TOPIC");
    struct store *st = NULL;
    struct queue_producer *qp = NULL;
    struct task *tasks = calloc(BATCH, sizeof *tasks);
    const struct task **ptrs = calloc(BATCH, sizeof(const struct task *));
    long n = argc == 2 ? strtol(argv[1], NULL, 10) : 0, done = 0, sent = 0;
    double t0 = now_s();
    int rc = 1;

    if (n <= 0 || !tasks || !ptrs) {
        fprintf(stderr, "usage: seed_backlog N\n");
        goto out;
    }
    if (!topic || !*topic)
        topic = "dispatch.tasks";
    if (store_new(&sc, &st) != 0 || queue_producer_new(&qc, &qp) != 0) {
        fprintf(stderr, "seed_backlog: cannot reach MariaDB or Kafka\n");
        goto out;
    }
    while (done < n) {
        size_t k = (size_t)(n - done < BATCH ? n - done : BATCH);
        if (seed_batch(st, qp, topic, tasks, ptrs, k, &sent) != 0)
            goto out;
        done += (long)k;
    }
    wait_in_flight(sent, 0);
    printf("seeded=%ld acked=%ld seconds=%.2f\n", done, atomic_load(&acked), now_s() - t0);
    rc = atomic_load(&failed) == 0 ? 0 : 1;
out:
    queue_producer_free(qp);
    store_free(st);
    free(ptrs);
    free(tasks);
    return rc;
}
