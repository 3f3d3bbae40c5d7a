/* submit — the batched store -> publish -> ack -> QUEUED pipeline. */
#include "submit/submit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct submit {
    struct submit_config cfg;
    const struct submit_store_ops *store;
    void *store_ctx;
    const struct submit_queue_ops *queue;
    void *queue_ctx;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct submit_request *head, *tail; /* waiting requests, FIFO */
    int waiting;
    bool stopping;

    pthread_t *threads;
    int n_threads;

    /* acknowledged ids waiting for PENDING -> QUEUED, written in bulk by one
     * marker thread, off the response path */
    pthread_mutex_t mark_mu;
    pthread_cond_t mark_cv;
    struct ids_id *marks;
    size_t n_marks, cap_marks;
    bool mark_stopping;
    pthread_t marker;
    bool marker_started;
};

/* One batch in flight on a pipeline thread, waiting for its delivery reports. */
struct batch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int outstanding;
};

struct publish_ctx {
    struct batch *batch;
    struct submit_request *req;
};

static void complete(struct submit_request *req, enum submit_result result)
{
    req->result = result;
    req->done(req, req->opaque);
}

static void on_published(void *opaque, int err, const char *detail)
{
    struct publish_ctx *pc = opaque;
    struct batch *b = pc->batch;
    (void)detail;
    pc->req->publish_err_ = err;
    pthread_mutex_lock(&b->mu);
    if (--b->outstanding == 0)
        pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Publishes every request of the batch and waits for all reports.  librdkafka
 * reports every message it accepted, by message.timeout.ms (= publish_timeout_ms)
 * at the latest, so the wait is bounded; and it must not end earlier, since each
 * report writes into this batch. */
static void publish_all(struct submit *s, struct submit_request **reqs, size_t n,
                        struct publish_ctx *pcs)
{
    struct batch b = {.outstanding = 0};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);

    for (size_t i = 0; i < n; i++) {
        struct task *t = &reqs[i]->task;
        char idbuf[IDS_TEXT_LEN + 1];
        size_t klen;
        const char *key = model_task_key(t, idbuf, &klen);
        char *value = model_task_message(t);
        int rc = -1;
        pcs[i].batch = &b;
        pcs[i].req = reqs[i];
        reqs[i]->publish_err_ = -1;
        pthread_mutex_lock(&b.mu);
        b.outstanding++;
        pthread_mutex_unlock(&b.mu);
        if (value)
            rc =
                s->queue->publish(s->queue_ctx, key, klen, value, strlen(value),
                                  t->traceparent[0] ? t->traceparent : NULL, on_published, &pcs[i]);
        free(value);
        if (rc < 0) {
            pthread_mutex_lock(&b.mu);
            b.outstanding--;
            pthread_mutex_unlock(&b.mu);
        }
    }
    pthread_mutex_lock(&b.mu);
    while (b.outstanding > 0)
        pthread_cond_wait(&b.cv, &b.mu);
    pthread_mutex_unlock(&b.mu);
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.mu);
}

/* Queues acknowledged ids for the marker; false when out of memory (the rows then
 * stay PENDING and the outbox relay publishes them again: harmless duplicates). */
static bool queue_marks(struct submit *s, const struct ids_id *ids, size_t n)
{
    bool ok = true;
    pthread_mutex_lock(&s->mark_mu);
    if (s->n_marks + n > s->cap_marks) {
        size_t cap = s->cap_marks ? s->cap_marks : 256;
        struct ids_id *m;
        while (cap < s->n_marks + n)
            cap *= 2;
        m = realloc(s->marks, cap * sizeof *m);
        if (m) {
            s->marks = m;
            s->cap_marks = cap;
        }
        ok = m != NULL;
    }
    if (ok) {
        memcpy(s->marks + s->n_marks, ids, n * sizeof *ids);
        s->n_marks += n;
        pthread_cond_signal(&s->mark_cv);
    }
    pthread_mutex_unlock(&s->mark_mu);
    return ok;
}

static void run_batch(struct submit *s, struct submit_request **reqs, size_t n,
                      const struct task **tasks, struct ids_id *acked, struct publish_ctx *pcs)
{
    size_t n_acked = 0;
    for (size_t i = 0; i < n; i++)
        tasks[i] = &reqs[i]->task;
    if (s->store->insert_batch(s->store_ctx, tasks, n) != 0) {
        for (size_t i = 0; i < n; i++)
            complete(reqs[i], SUBMIT_DB_DOWN);
        return;
    }
    publish_all(s, reqs, n, pcs);
    for (size_t i = 0; i < n; i++) {
        if (reqs[i]->publish_err_ == 0) {
            acked[n_acked++] = reqs[i]->task.id;
            reqs[i]->task.status = TASK_QUEUED;
        }
    }
    if (n_acked > 0)
        queue_marks(s, acked, n_acked);
    for (size_t i = 0; i < n; i++)
        complete(reqs[i], reqs[i]->publish_err_ == 0 ? SUBMIT_ACCEPTED : SUBMIT_UNAVAILABLE);
}

/* Takes up to max waiting requests; blocks while there are none. NULL = stop. */
static size_t take(struct submit *s, struct submit_request **out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    while (!s->head && !s->stopping)
        pthread_cond_wait(&s->cv, &s->mu);
    while (s->head && n < max) {
        out[n++] = s->head;
        s->head = s->head->next_;
        s->waiting--;
    }
    if (!s->head)
        s->tail = NULL;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void *pipeline_thread(void *arg)
{
    struct submit *s = arg;
    size_t max = (size_t)s->cfg.batch_max;
    struct submit_request **reqs = calloc(max, sizeof(struct submit_request *));
    const struct task **tasks = calloc(max, sizeof(const struct task *));
    struct ids_id *acked = calloc(max, sizeof *acked);
    struct publish_ctx *pcs = calloc(max, sizeof *pcs);
    size_t n;

    if (!reqs || !tasks || !acked || !pcs)
        max = 0; /* cannot work: leave the requests to the other threads */
    while (max > 0 && (n = take(s, reqs, max)) > 0)
        run_batch(s, reqs, n, tasks, acked, pcs);
    free(reqs);
    free(tasks);
    free(acked);
    free(pcs);
    return NULL;
}

enum { MARK_CHUNK = 1000 };

static void *marker_thread(void *arg)
{
    struct submit *s = arg;
    struct ids_id *ids = malloc(MARK_CHUNK * sizeof *ids);
    if (!ids)
        return NULL;
    for (;;) {
        size_t n;
        pthread_mutex_lock(&s->mark_mu);
        while (s->n_marks == 0 && !s->mark_stopping)
            pthread_cond_wait(&s->mark_cv, &s->mark_mu);
        if (s->n_marks == 0) {
            pthread_mutex_unlock(&s->mark_mu);
            break;
        }
        n = s->n_marks < MARK_CHUNK ? s->n_marks : MARK_CHUNK;
        s->n_marks -= n;
        memcpy(ids, s->marks + s->n_marks, n * sizeof *ids);
        pthread_mutex_unlock(&s->mark_mu);
        /* a failure leaves the rows PENDING: the outbox relay publishes them again
         * and the worker's claim drops the duplicate */
        s->store->mark_queued(s->store_ctx, ids, n);
    }
    free(ids);
    return NULL;
}

int submit_new(const struct submit_config *cfg, const struct submit_store_ops *store,
               void *store_ctx, const struct submit_queue_ops *queue, void *queue_ctx,
               struct submit **ret_s)
{
    struct submit *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->cfg = *cfg;
    if (s->cfg.threads < 1)
        s->cfg.threads = 1;
    if (s->cfg.batch_max < 1)
        s->cfg.batch_max = 1;
    s->store = store;
    s->store_ctx = store_ctx;
    s->queue = queue;
    s->queue_ctx = queue_ctx;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_mutex_init(&s->mark_mu, NULL);
    pthread_cond_init(&s->mark_cv, NULL);
    if (pthread_create(&s->marker, NULL, marker_thread, s) != 0) {
        submit_free(s);
        return -1;
    }
    s->marker_started = true;
    s->threads = calloc((size_t)s->cfg.threads, sizeof *s->threads);
    if (!s->threads) {
        submit_free(s);
        return -1;
    }
    for (; s->n_threads < s->cfg.threads; s->n_threads++) {
        if (pthread_create(&s->threads[s->n_threads], NULL, pipeline_thread, s) != 0) {
            submit_free(s);
            return -1;
        }
    }
    *ret_s = s;
    return 0;
}

void submit_free(struct submit *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i], NULL);
    free(s->threads);
    /* the pipelines are done: let the marker write what they left, then stop */
    pthread_mutex_lock(&s->mark_mu);
    s->mark_stopping = true;
    pthread_cond_signal(&s->mark_cv);
    pthread_mutex_unlock(&s->mark_mu);
    if (s->marker_started)
        pthread_join(s->marker, NULL);
    free(s->marks);
    pthread_cond_destroy(&s->mark_cv);
    pthread_mutex_destroy(&s->mark_mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int submit_enqueue(struct submit *s, struct submit_request *req)
{
    pthread_mutex_lock(&s->mu);
    if (s->stopping || (s->cfg.max_waiting > 0 && s->waiting >= s->cfg.max_waiting)) {
        pthread_mutex_unlock(&s->mu);
        req->result = SUBMIT_OVERLOADED;
        return -1;
    }
    req->next_ = NULL;
    if (s->tail)
        s->tail->next_ = req;
    else
        s->head = req;
    s->tail = req;
    s->waiting++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}
