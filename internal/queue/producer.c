/* queue — the idempotent Kafka producer and its delivery-report thread. */
#include "queue/queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <librdkafka/rdkafka.h>

#include "log/log.h"
#include "queue/queue_int.h"

/* The handle is replaced when it goes fatal (librdkafka 2.0.2 #4438: the
 * idempotent producer turns fatal after a possibly-persisted timeout and then
 * refuses everything).  Producers take the lock shared; the report thread takes it
 * exclusively to swap the handle. */
struct queue_producer {
    pthread_rwlock_t lock;
    rd_kafka_t *rk;
    pthread_t thread;
    atomic_bool stop;
    atomic_bool fatal;
    atomic_uint recreated;
    struct queue_producer_config cfg;
    char *brokers, *client_id; /* owned copies behind cfg */
};

/* Rides along with each message as its opaque, freed by the report. */
struct delivery {
    queue_delivery_fn cb;
    void *opaque;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *conf_opaque)
{
    struct delivery *d = m->_private;
    int err = QUEUE_OK;
    (void)rk;
    (void)conf_opaque;
    if (!d)
        return;
    if (m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        err = QUEUE_ETIMEDOUT;
    else if (m->err)
        err = QUEUE_EKAFKA;
    d->cb(d->opaque, err, m->err ? rd_kafka_err2str(m->err) : NULL);
    free(d);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct queue_producer *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_fatal_error(rk, buf, sizeof buf);
        log_error("kafka producer fatal error; the handle will be recreated", LOG_S("error", buf));
        atomic_store(&p->fatal, true);
        return;
    }
    log_warn("kafka producer error", LOG_S("error", rd_kafka_err2name((rd_kafka_resp_err_t)err)),
             LOG_S("reason", reason));
}

static rd_kafka_t *make_handle(struct queue_producer *p)
{
    const struct queue_producer_config *cfg = &p->cfg;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    char errstr[512], num[32];
    snprintf(num, sizeof num, "%d", cfg->linger_ms);
    if (queue__conf_set(conf, "bootstrap.servers", cfg->brokers) < 0 ||
        queue__conf_set(conf, "client.id", cfg->client_id ? cfg->client_id : "dispatch") < 0 ||
        queue__conf_set(conf, "enable.idempotence", "true") < 0 ||
        queue__conf_set(conf, "acks", "all") < 0 || queue__conf_set(conf, "linger.ms", num) < 0)
        goto out_conf;
    snprintf(num, sizeof num, "%d", cfg->message_timeout_ms);
    if (queue__conf_set(conf, "message.timeout.ms", num) < 0)
        goto out_conf;
    snprintf(num, sizeof num, "%d", QUEUE_MESSAGE_MAX_BYTES);
    if (queue__conf_set(conf, "message.max.bytes", num) < 0)
        goto out_conf;
    /* TCP_NODELAY: librdkafka before 2.10 leaves Nagle on, and a small produce
     * request written while the previous one is unacknowledged then waits for the
     * broker's delayed ACK (~40 ms on Linux): the runs of 30-70 ms delivery reports
     * that owned the p99 of POST /tasks (docs/performance.md).  linger.ms batches. */
    if (queue__conf_set(conf, "socket.nagle.disable", "true") < 0)
        goto out_conf;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, p);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        log_error("kafka producer create failed", LOG_S("error", errstr));
        goto out_conf;
    }
    return rk;
out_conf:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* Drops a handle: what it still holds is purged, so every message gets its report
 * (an error: the caller's rows stay PENDING for the outbox relay). */
static void drop_handle(rd_kafka_t *rk, int flush_ms)
{
    rd_kafka_flush(rk, flush_ms);
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(rk, 0);
    rd_kafka_destroy(rk); /* serves the remaining reports */
}

/* Swaps a fatal handle for a new one; on failure keeps the old and tries again. */
static void recreate(struct queue_producer *p)
{
    rd_kafka_t *fresh = make_handle(p);
    rd_kafka_t *old;
    if (!fresh)
        return;
    pthread_rwlock_wrlock(&p->lock);
    old = p->rk;
    p->rk = fresh;
    atomic_store(&p->fatal, false);
    pthread_rwlock_unlock(&p->lock);
    drop_handle(old, 0);
    atomic_fetch_add(&p->recreated, 1);
    log_warn("kafka producer handle recreated after a fatal error", LOG_NONE);
}

static void *report_thread(void *arg)
{
    struct queue_producer *p = arg;
    while (!atomic_load(&p->stop)) {
        if (atomic_load(&p->fatal))
            recreate(p);
        pthread_rwlock_rdlock(&p->lock);
        rd_kafka_poll(p->rk, 100);
        pthread_rwlock_unlock(&p->lock);
    }
    return NULL;
}

int queue_producer_new(const struct queue_producer_config *cfg, struct queue_producer **ret_p)
{
    struct queue_producer *p = calloc(1, sizeof *p);
    if (!p)
        return QUEUE_ENOMEM;
    p->brokers = strdup(cfg->brokers);
    p->client_id = strdup(cfg->client_id ? cfg->client_id : "dispatch");
    p->cfg = *cfg;
    p->cfg.brokers = p->brokers;
    p->cfg.client_id = p->client_id;
    /* the swap must not starve behind a steady stream of produce calls */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&p->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (!p->brokers || !p->client_id || !(p->rk = make_handle(p)))
        goto out_free;
    if (pthread_create(&p->thread, NULL, report_thread, p) != 0) {
        rd_kafka_destroy(p->rk);
        goto out_free;
    }
    *ret_p = p;
    return QUEUE_OK;
out_free:
    pthread_rwlock_destroy(&p->lock);
    free(p->brokers);
    free(p->client_id);
    free(p);
    return QUEUE_EKAFKA;
}

void queue_producer_free(struct queue_producer *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    drop_handle(p->rk, p->cfg.message_timeout_ms);
    pthread_rwlock_destroy(&p->lock);
    free(p->brokers);
    free(p->client_id);
    free(p);
}

unsigned queue_producer_recreated(struct queue_producer *p)
{
    return atomic_load(&p->recreated);
}

int queue_producer_test_fatal(struct queue_producer *p)
{
    rd_kafka_resp_err_t err;
    pthread_rwlock_rdlock(&p->lock);
    err = rd_kafka_test_fatal_error(p->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                    "dispatch test: simulated fatal idempotence error");
    pthread_rwlock_unlock(&p->lock);
    return err ? QUEUE_EKAFKA : QUEUE_OK;
}

int queue_produce(struct queue_producer *p, const char *topic, const void *key, size_t key_len,
                  const void *value, size_t len, const struct queue_header *headers,
                  size_t n_headers, queue_delivery_fn cb, void *opaque)
{
    struct delivery *d = malloc(sizeof *d);
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_resp_err_t err;
    if (!d)
        return QUEUE_ENOMEM;
    d->cb = cb;
    d->opaque = opaque;
    if (n_headers > 0) {
        hdrs = rd_kafka_headers_new(n_headers);
        for (size_t i = 0; i < n_headers; i++)
            rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value,
                                (ssize_t)headers[i].len);
    }
    pthread_rwlock_rdlock(&p->lock);
    err = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                            RD_KAFKA_V_VALUE((void *)value, len),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(d),
                            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
    pthread_rwlock_unlock(&p->lock);
    if (err) {
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        free(d);
        log_warn("kafka produce refused", LOG_S("topic", topic),
                 LOG_S("error", rd_kafka_err2str(err)));
        return err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? QUEUE_EFULL : QUEUE_EKAFKA;
    }
    /* d now rides with the message; on_delivery frees it */
    return QUEUE_OK; /* NOLINT(clang-analyzer-unix.Malloc) */
}

struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int err;
};

static void sync_done(void *opaque, int err, const char *errstr)
{
    struct sync_wait *w = opaque;
    (void)errstr;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->err = err;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int queue_produce_sync(struct queue_producer *p, const char *topic, const void *key, size_t key_len,
                       const void *value, size_t len, const struct queue_header *headers,
                       size_t n_headers)
{
    struct sync_wait w = {.done = false};
    int rc;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    rc = queue_produce(p, topic, key, key_len, value, len, headers, n_headers, sync_done, &w);
    if (rc == QUEUE_OK) {
        /* message.timeout.ms bounds the report; librdkafka always delivers one */
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        rc = w.err;
        pthread_mutex_unlock(&w.mu);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

bool queue_producer_ready(struct queue_producer *p, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    bool ok;
    pthread_rwlock_rdlock(&p->lock);
    err = rd_kafka_metadata(p->rk, 0, NULL, &md, timeout_ms);
    pthread_rwlock_unlock(&p->lock);
    ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->broker_cnt > 0;
    if (md)
        rd_kafka_metadata_destroy(md);
    return ok;
}
