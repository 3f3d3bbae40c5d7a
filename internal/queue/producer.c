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

struct queue_producer {
    rd_kafka_t *rk;
    pthread_t thread;
    atomic_bool stop;
    int message_timeout_ms;
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
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_fatal_error(rk, buf, sizeof buf);
        log_error("kafka producer fatal error", LOG_S("error", buf));
        return;
    }
    log_warn("kafka producer error", LOG_S("error", rd_kafka_err2name((rd_kafka_resp_err_t)err)),
             LOG_S("reason", reason));
}

static void *report_thread(void *arg)
{
    struct queue_producer *p = arg;
    while (!atomic_load(&p->stop))
        rd_kafka_poll(p->rk, 100);
    return NULL;
}

int queue_producer_new(const struct queue_producer_config *cfg, struct queue_producer **ret_p)
{
    struct queue_producer *p = calloc(1, sizeof *p);
    rd_kafka_conf_t *conf;
    char errstr[512], num[32];
    if (!p)
        return QUEUE_ENOMEM;
    conf = rd_kafka_conf_new();
    snprintf(num, sizeof num, "%d", cfg->linger_ms);
    if (queue__conf_set(conf, "bootstrap.servers", cfg->brokers) < 0 ||
        queue__conf_set(conf, "client.id", cfg->client_id ? cfg->client_id : "dispatch") < 0 ||
        queue__conf_set(conf, "enable.idempotence", "true") < 0 ||
        queue__conf_set(conf, "acks", "all") < 0 || queue__conf_set(conf, "linger.ms", num) < 0)
        goto out_conf;
    snprintf(num, sizeof num, "%d", cfg->message_timeout_ms);
    if (queue__conf_set(conf, "message.timeout.ms", num) < 0)
        goto out_conf;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!p->rk) {
        log_error("kafka producer create failed", LOG_S("error", errstr));
        goto out_conf;
    }
    p->message_timeout_ms = cfg->message_timeout_ms;
    if (pthread_create(&p->thread, NULL, report_thread, p) != 0) {
        rd_kafka_destroy(p->rk);
        free(p);
        return QUEUE_ENOMEM;
    }
    *ret_p = p;
    return QUEUE_OK;
out_conf:
    rd_kafka_conf_destroy(conf);
    free(p);
    return QUEUE_EKAFKA;
}

void queue_producer_free(struct queue_producer *p)
{
    if (!p)
        return;
    rd_kafka_flush(p->rk, p->message_timeout_ms);
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    rd_kafka_poll(p->rk, 0); /* serve reports that arrived after the thread stopped */
    rd_kafka_destroy(p->rk);
    free(p);
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
    err = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                            RD_KAFKA_V_VALUE((void *)value, len),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(d),
                            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
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
    rd_kafka_resp_err_t err = rd_kafka_metadata(p->rk, 0, NULL, &md, timeout_ms);
    bool ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->broker_cnt > 0;
    if (md)
        rd_kafka_metadata_destroy(md);
    return ok;
}
