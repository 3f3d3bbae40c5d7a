/* submit — the batched store -> publish -> ack -> QUEUED pipeline. */
#include "submit/submit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

    /* the sweeper: outbox relay and key purge */
    pthread_t sweeper;
    bool sweeper_started;
    pthread_cond_t sweep_cv; /* with mark_mu: wakes the sweeper to stop */
    bool sweep_stopping;
    _Atomic unsigned long long republished, keys_purged;
};

/* Messages in flight for one batch, waiting for their reports. */
struct batch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int outstanding;
};

struct publish_ctx {
    struct batch *batch;
    int *err;
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
    pthread_mutex_lock(&b->mu);
    *pc->err = err;
    if (--b->outstanding == 0)
        pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Publishes every task without waiting; errs[i] becomes 0 when task i is
 * acknowledged.  librdkafka reports every message it accepted, by
 * message.timeout.ms (= publish_timeout_ms) at the latest, so batch_wait() is
 * bounded; and it must come before b, errs or pcs are reused, since each report
 * writes into them. */
static void publish_start(struct submit *s, struct batch *b, const struct task *const *tasks,
                          size_t n, int *errs, struct publish_ctx *pcs)
{
    for (size_t i = 0; i < n; i++) {
        const struct task *t = tasks[i];
        char idbuf[IDS_TEXT_LEN + 1];
        size_t klen;
        const char *key = model_task_key(t, idbuf, &klen);
        char *value = model_task_message(t);
        int rc = -1;
        pcs[i].batch = b;
        pcs[i].err = &errs[i];
        pthread_mutex_lock(&b->mu);
        errs[i] = -1;
        b->outstanding++;
        pthread_mutex_unlock(&b->mu);
        if (value)
            rc =
                s->queue->publish(s->queue_ctx, key, klen, value, strlen(value),
                                  t->traceparent[0] ? t->traceparent : NULL, on_published, &pcs[i]);
        free(value);
        if (rc < 0) {
            pthread_mutex_lock(&b->mu);
            b->outstanding--;
            pthread_mutex_unlock(&b->mu);
        }
    }
}

static void batch_wait(struct batch *b)
{
    pthread_mutex_lock(&b->mu);
    while (b->outstanding > 0)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

static bool batch_done(struct batch *b)
{
    bool done;
    pthread_mutex_lock(&b->mu);
    done = b->outstanding == 0;
    pthread_mutex_unlock(&b->mu);
    return done;
}

/* Publishes every task and waits for all reports (the relay). */
static void publish_tasks(struct submit *s, const struct task *const *tasks, size_t n, int *errs,
                          struct publish_ctx *pcs)
{
    struct batch b = {.outstanding = 0};
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    publish_start(s, &b, tasks, n, errs, pcs);
    batch_wait(&b);
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

/* One batch of a pipeline thread, from its insert to its completions; arrays
 * sized batch_max, allocated once.  A thread owns FLIGHTS of them, so it can
 * insert and publish its next batch while the reports of the previous one are
 * outstanding. */
struct flight {
    struct submit_request **reqs;  /* taken */
    struct submit_request **fresh; /* stored by this batch: to publish */
    size_t n_fresh;
    const struct task **tasks;
    struct idem_claim **idem;
    const struct task **fresh_tasks;
    int *errs;
    struct ids_id *acked;
    struct publish_ctx *pcs;
    struct idem_response *resp;
    struct batch b;
};

enum { FLIGHTS = 2 };

static void flight_free(struct flight *x)
{
    free(x->reqs);
    free(x->fresh);
    free(x->tasks);
    free(x->idem);
    free(x->fresh_tasks);
    free(x->errs);
    free(x->acked);
    free(x->pcs);
    free(x->resp);
    pthread_cond_destroy(&x->b.cv);
    pthread_mutex_destroy(&x->b.mu);
}

static bool flight_init(struct flight *x, size_t max)
{
    pthread_mutex_init(&x->b.mu, NULL);
    pthread_cond_init(&x->b.cv, NULL);
    x->reqs = calloc(max, sizeof(struct submit_request *));
    x->fresh = calloc(max, sizeof(struct submit_request *));
    x->tasks = calloc(max, sizeof(const struct task *));
    x->idem = calloc(max, sizeof(struct idem_claim *));
    x->fresh_tasks = calloc(max, sizeof(const struct task *));
    x->errs = calloc(max, sizeof *x->errs);
    x->acked = calloc(max, sizeof *x->acked);
    x->pcs = calloc(max, sizeof *x->pcs);
    x->resp = calloc(max, sizeof *x->resp);
    return x->reqs && x->fresh && x->tasks && x->idem && x->fresh_tasks && x->errs && x->acked &&
           x->pcs && x->resp;
}

/* What an earlier claim of the same key means for this request. */
static enum submit_result claimed_before(const struct idem_claim *c)
{
    if (!c->same_fingerprint)
        return SUBMIT_KEY_MISMATCH;
    return c->response_code == 0 ? SUBMIT_KEY_BUSY : SUBMIT_REPLAYED;
}

/* Renders the views of the stored requests and records them under their keys, so
 * a retry with the key gets this task back (a 202 with the view, also when the
 * broker did not acknowledge in time: the task is stored and will be published). */
static void record_responses(struct submit *s, struct flight *x, size_t n_fresh)
{
    size_t n_resp = 0;
    for (size_t i = 0; i < n_fresh; i++) {
        struct submit_request *r = x->fresh[i];
        r->view = model_task_view_text(&r->task);
        if (r->idem.key && r->view) {
            x->resp[n_resp++] = (struct idem_response){
                &r->task.user_id, r->idem.method, r->idem.route, r->idem.key, 202, r->view};
        }
    }
    /* a failure leaves the keys "in flight" until they expire: retries get 409,
     * never a second task */
    if (n_resp > 0)
        s->store->respond(s->store_ctx, x->resp, n_resp);
}

static void run_alone(struct submit *s, struct flight *x, struct submit_request *req);

/* Inserts a batch and starts publishing what it stored (x->fresh); completes at once
 * the requests that end here (database down, key claimed before, refused values). */
static void flight_start(struct submit *s, struct flight *x, struct submit_request **reqs, size_t n)
{
    int rc;
    x->n_fresh = 0;
    for (size_t i = 0; i < n; i++) {
        x->tasks[i] = &reqs[i]->task;
        x->idem[i] = reqs[i]->idem.key ? &reqs[i]->idem : NULL;
    }
    rc = s->store->insert_batch(s->store_ctx, x->tasks, x->idem, n);
    if (rc != 0 && s->store->invalid_code != 0 && rc == s->store->invalid_code) {
        /* one row's values were refused and the whole transaction with it: run
         * each request alone, so only the guilty one is turned away */
        for (size_t i = 0; i < n; i++) {
            if (n == 1)
                complete(reqs[i], SUBMIT_REJECTED);
            else
                run_alone(s, x, reqs[i]);
        }
        x->n_fresh = 0;
        return;
    }
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            complete(reqs[i], SUBMIT_DB_DOWN);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (x->idem[i] && x->idem[i]->exists)
            complete(reqs[i], claimed_before(x->idem[i]));
        else
            x->fresh[x->n_fresh++] = reqs[i];
    }
    for (size_t i = 0; i < x->n_fresh; i++)
        x->fresh_tasks[i] = &x->fresh[i]->task;
    publish_start(s, &x->b, x->fresh_tasks, x->n_fresh, x->errs, x->pcs);
}

/* Waits for the batch's reports, then answers its stored requests. */
static void flight_finish(struct submit *s, struct flight *x)
{
    size_t n_acked = 0;
    batch_wait(&x->b);
    for (size_t i = 0; i < x->n_fresh; i++) {
        x->fresh[i]->publish_err_ = x->errs[i];
        if (x->fresh[i]->publish_err_ == 0) {
            x->acked[n_acked++] = x->fresh[i]->task.id;
            x->fresh[i]->task.status = TASK_QUEUED;
        }
    }
    if (n_acked > 0)
        queue_marks(s, x->acked, n_acked);
    record_responses(s, x, x->n_fresh);
    for (size_t i = 0; i < x->n_fresh; i++)
        complete(x->fresh[i],
                 x->fresh[i]->publish_err_ == 0 ? SUBMIT_ACCEPTED : SUBMIT_UNAVAILABLE);
    x->n_fresh = 0;
}

/* One request of a split batch, start to finish (x's arrays are free again: the
 * batch it came from stored nothing). */
static void run_alone(struct submit *s, struct flight *x, struct submit_request *req)
{
    struct submit_request *one[1] = {req};
    flight_start(s, x, one, 1);
    flight_finish(s, x);
}

/* Takes up to max waiting requests; with block, waits while there are none.
 * 0: none waiting (without block), or stopping. */
static size_t take(struct submit *s, struct submit_request **out, size_t max, bool block)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    while (block && !s->head && !s->stopping)
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

/* Each thread keeps up to FLIGHTS batches going: while the oldest one's reports
 * are outstanding it inserts and publishes the next; batches complete in the order
 * they were taken (requests that end at the insert, refused or replayed, are
 * answered at once).  With nothing waiting it finishes what it has before it blocks,
 * so no request waits for one that has not come. */
static void *pipeline_thread(void *arg)
{
    struct submit *s = arg;
    size_t max = (size_t)s->cfg.batch_max;
    struct flight fl[FLIGHTS];
    int oldest = 0, busy = 0;
    bool ok = true;

    memset(fl, 0, sizeof fl);
    for (int i = 0; i < FLIGHTS; i++)
        ok = flight_init(&fl[i], max) && ok;
    /* without memory the thread cannot work: it leaves the requests to the others */
    while (ok) {
        if (busy > 0 && batch_done(&fl[oldest].b)) {
            flight_finish(s, &fl[oldest]); /* acknowledged already: answer it first */
            oldest = (oldest + 1) % FLIGHTS;
            busy--;
            continue;
        }
        if (busy < FLIGHTS) {
            struct flight *x = &fl[(oldest + busy) % FLIGHTS];
            size_t n = take(s, x->reqs, max, busy == 0);
            if (n > 0) {
                flight_start(s, x, x->reqs, n);
                busy++;
                continue;
            }
            if (busy == 0)
                break; /* stopping, and nothing is left */
        }
        flight_finish(s, &fl[oldest]);
        oldest = (oldest + 1) % FLIGHTS;
        busy--;
    }
    for (int i = 0; i < FLIGHTS; i++)
        flight_free(&fl[i]);
    return NULL;
}

enum { RELAY_BATCH = 100, PURGE_BATCH = 1000 };

/* Tells the notify ops (if any) of committed status changes. */
static void notify(const struct submit *s, const struct ids_id *ids, size_t n)
{
    if (n > 0 && s->cfg.notify && s->cfg.notify->changed)
        s->cfg.notify->changed(s->cfg.notify_ctx, ids, n);
}

/* One relay call: the ids it published, told of once the store committed them. */
struct relay_round {
    struct submit *s;
    struct ids_id *acked;
    size_t n_acked;
};

static void relay_publish(void *arg, const struct task *const *tasks, size_t n, int *errs)
{
    struct relay_round *rr = arg;
    struct publish_ctx *pcs = calloc(n ? n : 1, sizeof *pcs);
    struct ids_id *acked;
    if (!pcs) {
        for (size_t i = 0; i < n; i++)
            errs[i] = -1;
        return;
    }
    publish_tasks(rr->s, tasks, n, errs, pcs);
    free(pcs);
    /* without memory the change goes untold: caches catch up within their TTLs */
    acked = realloc(rr->acked, (rr->n_acked + n + 1) * sizeof *acked);
    if (!acked)
        return;
    rr->acked = acked;
    for (size_t i = 0; i < n; i++) {
        if (errs[i] == 0)
            rr->acked[rr->n_acked++] = tasks[i]->id;
    }
}

int submit_relay_once(struct submit *s)
{
    int64_t older_than = model_now_us() - (int64_t)s->cfg.outbox_age_ms * 1000;
    int total = 0, seen, published;
    do {
        struct relay_round rr = {s, NULL, 0};
        int rc = s->store->relay(s->store_ctx, older_than, RELAY_BATCH, relay_publish, &rr, &seen,
                                 &published);
        if (rc == 0)
            notify(s, rr.acked, rr.n_acked);
        free(rr.acked);
        if (rc != 0)
            return -1;
        total += published;
        /* a full batch may mean more are waiting; a batch the broker refused means
         * it is still down: wait for the next round rather than spin */
    } while (seen == RELAY_BATCH && published == seen);
    atomic_fetch_add(&s->republished, (unsigned long long)total);
    return total;
}

static void purge_keys(struct submit *s)
{
    int deleted;
    do {
        if (s->store->purge_keys(s->store_ctx, PURGE_BATCH, &deleted) != 0)
            return;
        atomic_fetch_add(&s->keys_purged, (unsigned long long)deleted);
    } while (deleted == PURGE_BATCH);
}

static void *sweeper_thread(void *arg)
{
    struct submit *s = arg;
    int64_t next_purge = model_now_us() + (int64_t)s->cfg.purge_interval_ms * 1000;
    pthread_mutex_lock(&s->mark_mu);
    while (!s->sweep_stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += s->cfg.relay_interval_ms / 1000;
        until.tv_nsec += (long)(s->cfg.relay_interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->sweep_cv, &s->mark_mu, &until);
        if (s->sweep_stopping)
            break;
        pthread_mutex_unlock(&s->mark_mu);
        submit_relay_once(s);
        if (s->cfg.purge_interval_ms > 0 && model_now_us() >= next_purge) {
            purge_keys(s);
            next_purge = model_now_us() + (int64_t)s->cfg.purge_interval_ms * 1000;
        }
        pthread_mutex_lock(&s->mark_mu);
    }
    pthread_mutex_unlock(&s->mark_mu);
    return NULL;
}

void submit_stats(struct submit *s, struct submit_stats *ret_stats)
{
    ret_stats->republished = atomic_load(&s->republished);
    ret_stats->keys_purged = atomic_load(&s->keys_purged);
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
        if (s->store->mark_queued(s->store_ctx, ids, n) == 0)
            notify(s, ids, n);
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
    pthread_cond_init(&s->sweep_cv, NULL);
    if (pthread_create(&s->marker, NULL, marker_thread, s) != 0) {
        submit_free(s);
        return -1;
    }
    s->marker_started = true;
    if (s->cfg.relay_interval_ms > 0) {
        if (pthread_create(&s->sweeper, NULL, sweeper_thread, s) != 0) {
            submit_free(s);
            return -1;
        }
        s->sweeper_started = true;
    }
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
    pthread_mutex_lock(&s->mark_mu);
    s->sweep_stopping = true;
    pthread_cond_signal(&s->sweep_cv);
    pthread_mutex_unlock(&s->mark_mu);
    if (s->sweeper_started)
        pthread_join(s->sweeper, NULL);
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
    pthread_cond_destroy(&s->sweep_cv);
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
