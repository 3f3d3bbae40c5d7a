/* queue consumer — a consumer-group member with manual offset storage.
 *
 * enable.auto.commit=true + enable.auto.offset.store=false: librdkafka commits in the
 * background (and on revoke and close) only what queue_consumer_store() stored, so an
 * offset moves only past work the caller has finished.  The rebalance callback calls
 * the caller's hooks before the assignment changes; it handles both the eager
 * protocol of the default 'range,roundrobin' assignor (rd_kafka_assign) and the
 * cooperative one (rd_kafka_incremental_*), should the assignor be changed. */
#include "queue/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librdkafka/rdkafka.h>
#include "log/log.h"
#include "queue/queue_int.h"

struct queue_consumer {
    rd_kafka_t *rk;
    const struct queue_rebalance_ops *ops;
    void *opaque;
};

void queue__on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level <= 3) {
        log_error("kafka", LOG_S("facility", fac), LOG_S("detail", buf));
    } else if (level <= 5) {
        log_warn("kafka", LOG_S("facility", fac), LOG_S("detail", buf));
    } else {
        log_debug("kafka", LOG_S("facility", fac), LOG_S("detail", buf));
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    log_warn("kafka consumer error", LOG_S("error", rd_kafka_err2name((rd_kafka_resp_err_t)err)),
             LOG_S("detail", reason));
}

/* Converts a librdkafka list into queue_partitions (topics borrowed from the list). */
static struct queue_partition *to_parts(const rd_kafka_topic_partition_list_t *l)
{
    struct queue_partition *parts = calloc((size_t)l->cnt + 1, sizeof *parts);
    if (parts == NULL) {
        return NULL;
    }
    for (int i = 0; i < l->cnt; i++) {
        parts[i].topic = l->elems[i].topic;
        parts[i].partition = l->elems[i].partition;
    }
    return parts;
}

static void call_hook(struct queue_consumer *c, bool assign,
                      const rd_kafka_topic_partition_list_t *l)
{
    if (c->ops == NULL || l->cnt == 0) {
        return;
    }
    void (*fn)(void *, const struct queue_partition *, size_t) =
        assign ? c->ops->on_assign : c->ops->on_revoke;
    if (fn == NULL) {
        return;
    }
    struct queue_partition *parts = to_parts(l);
    if (parts == NULL) {
        log_error("rebalance hook skipped: out of memory", LOG_NONE);
        return;
    }
    fn(c->opaque, parts, (size_t)l->cnt);
    free(parts);
}

static void apply_assignment(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *l)
{
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    const char *what = "assign";
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (cooperative) {
            error = rd_kafka_incremental_assign(rk, l);
        } else {
            rerr = rd_kafka_assign(rk, l);
        }
    } else {
        what = "unassign";
        if (cooperative) {
            error = rd_kafka_incremental_unassign(rk, l);
        } else {
            rerr = rd_kafka_assign(rk, NULL);
        }
    }
    if (error != NULL) {
        log_error("kafka rebalance failed", LOG_S("op", what),
                  LOG_S("error", rd_kafka_error_string(error)));
        rd_kafka_error_destroy(error);
    } else if (rerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_error("kafka rebalance failed", LOG_S("op", what),
                  LOG_S("error", rd_kafka_err2str(rerr)));
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *l, void *opaque)
{
    struct queue_consumer *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_info("partitions assigned", LOG_I("count", l->cnt));
        call_hook(c, true, l);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        log_info("partitions revoked", LOG_I("count", l->cnt),
                 LOG_B("lost", rd_kafka_assignment_lost(rk)));
        call_hook(c, false, l);
    } else {
        log_error("kafka rebalance error", LOG_S("error", rd_kafka_err2str(err)));
        call_hook(c, false, l);
        err = RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS;
    }
    apply_assignment(rk, err, l);
}

static int build_conf(const struct queue_consumer_config *cfg, struct queue_consumer *c,
                      rd_kafka_conf_t **ret_conf)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf == NULL) {
        return QUEUE_ENOMEM;
    }
    char poll_ms[16], session_ms[16];
    snprintf(poll_ms, sizeof poll_ms, "%d", cfg->max_poll_interval_ms);
    snprintf(session_ms, sizeof session_ms, "%d", cfg->session_timeout_ms);
    if (queue__conf_set(conf, "bootstrap.servers", cfg->brokers) < 0 ||
        queue__conf_set(conf, "group.id", cfg->group) < 0 ||
        (cfg->client_id != NULL && queue__conf_set(conf, "client.id", cfg->client_id) < 0) ||
        queue__conf_set(conf, "enable.auto.commit", "true") < 0 ||
        queue__conf_set(conf, "enable.auto.offset.store", "false") < 0 ||
        queue__conf_set(conf, "auto.offset.reset", "earliest") < 0 ||
        queue__conf_set(conf, "enable.partition.eof", "false") < 0 ||
        queue__conf_set(conf, "fetch.wait.max.ms", "50") < 0 ||
        /* no Nagle delay behind an unacknowledged request (see producer.c) */
        queue__conf_set(conf, "socket.nagle.disable", "true") < 0 ||
        (cfg->max_poll_interval_ms > 0 &&
         queue__conf_set(conf, "max.poll.interval.ms", poll_ms) < 0) ||
        (cfg->session_timeout_ms > 0 &&
         queue__conf_set(conf, "session.timeout.ms", session_ms) < 0)) {
        rd_kafka_conf_destroy(conf);
        return QUEUE_EKAFKA;
    }
    rd_kafka_conf_set_log_cb(conf, queue__on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, c);
    *ret_conf = conf;
    return QUEUE_OK;
}

static int subscribe(rd_kafka_t *rk, const struct queue_consumer_config *cfg)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)cfg->n_topics);
    if (l == NULL) {
        return QUEUE_ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_topics; i++) {
        rd_kafka_topic_partition_list_add(l, cfg->topics[i], RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_error("kafka subscribe failed", LOG_S("error", rd_kafka_err2str(err)));
        return QUEUE_EKAFKA;
    }
    return QUEUE_OK;
}

int queue_consumer_new(const struct queue_consumer_config *cfg,
                       const struct queue_rebalance_ops *ops, void *opaque,
                       struct queue_consumer **ret_c)
{
    if (cfg == NULL || cfg->brokers == NULL || cfg->group == NULL || cfg->n_topics == 0) {
        return QUEUE_EKAFKA;
    }
    struct queue_consumer *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return QUEUE_ENOMEM;
    }
    c->ops = ops;
    c->opaque = opaque;
    rd_kafka_conf_t *conf = NULL;
    int rc = build_conf(cfg, c, &conf);
    if (rc < 0) {
        goto out_c;
    }
    char errstr[512];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (c->rk == NULL) {
        log_error("kafka consumer creation failed", LOG_S("error", errstr));
        rd_kafka_conf_destroy(conf);
        rc = QUEUE_EKAFKA;
        goto out_c;
    }
    /* conf is owned by rk now; route the main queue (errors, logs) to consumer_poll */
    rd_kafka_poll_set_consumer(c->rk);
    rc = subscribe(c->rk, cfg);
    if (rc < 0) {
        goto out_rk;
    }
    *ret_c = c;
    return QUEUE_OK;

out_rk:
    rd_kafka_destroy(c->rk);
out_c:
    free(c);
    return rc;
}

void queue_consumer_free(struct queue_consumer *c)
{
    if (c == NULL) {
        return;
    }
    /* leaves the group: the revoke hook runs, stored offsets are committed */
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_warn("kafka consumer close", LOG_S("error", rd_kafka_err2str(err)));
    }
    rd_kafka_destroy(c->rk);
    free(c);
}

int queue_consumer_poll(struct queue_consumer *c, int timeout_ms, struct queue_message **ret_msg)
{
    rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, timeout_ms);
    if (rkm == NULL) {
        *ret_msg = NULL;
        return QUEUE_OK;
    }
    if (rkm->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_resp_err_t err = rkm->err;
        if (err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            log_warn("kafka consume error", LOG_S("error", rd_kafka_err2name(err)),
                     LOG_S("detail", rd_kafka_message_errstr(rkm)),
                     LOG_S("topic", rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : NULL));
        }
        rd_kafka_message_destroy(rkm);
        if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            *ret_msg = NULL;
            return QUEUE_OK;
        }
        return QUEUE_EKAFKA;
    }
    /* on ENOMEM the offset is simply not stored: the message comes back after a restart */
    return queue__message_wrap(rkm, ret_msg);
}

int queue__message_wrap(rd_kafka_message_t *rkm, struct queue_message **ret_msg)
{
    struct queue_message *m = calloc(1, sizeof *m);
    if (m == NULL) {
        rd_kafka_message_destroy(rkm);
        return QUEUE_ENOMEM;
    }
    /* parse headers now, on this thread, so later lookups from a pool thread only read */
    rd_kafka_headers_t *hdrs = NULL;
    (void)rd_kafka_message_headers(rkm, &hdrs);
    m->topic = rd_kafka_topic_name(rkm->rkt);
    m->partition = rkm->partition;
    m->offset = rkm->offset;
    m->key = rkm->key;
    m->key_len = rkm->key_len;
    m->value = rkm->payload;
    m->len = rkm->len;
    rd_kafka_timestamp_type_t tstype;
    m->timestamp_ms = rd_kafka_message_timestamp(rkm, &tstype);
    m->impl_ = rkm;
    *ret_msg = m;
    return QUEUE_OK;
}

void queue_message_free(struct queue_message *m)
{
    if (m == NULL) {
        return;
    }
    rd_kafka_message_destroy(m->impl_);
    free(m);
}

bool queue_message_header(const struct queue_message *m, const char *name, const void **ret_value,
                          size_t *ret_len)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m->impl_, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return false;
    }
    const void *value = NULL;
    size_t len = 0;
    if (rd_kafka_header_get_last(hdrs, name, &value, &len) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return false;
    }
    *ret_value = value;
    *ret_len = len;
    return true;
}

size_t queue_message_headers(const struct queue_message *m, struct queue_header *out, size_t max)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m->impl_, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return 0;
    }
    size_t n = rd_kafka_header_cnt(hdrs);
    for (size_t i = 0; i < n && i < max; i++) {
        const char *name = NULL;
        const void *value = NULL;
        size_t len = 0;
        if (rd_kafka_header_get_all(hdrs, i, &name, &value, &len) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            return i;
        }
        out[i] = (struct queue_header){.name = name, .value = value, .len = len};
    }
    return n;
}

static rd_kafka_topic_partition_list_t *to_list(const struct queue_partition *parts, size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    if (l == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_list_add(l, parts[i].topic, parts[i].partition);
    }
    return l;
}

int queue_consumer_store(struct queue_consumer *c, const char *topic, int32_t partition,
                         int64_t next_offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    if (l == NULL) {
        return QUEUE_ENOMEM;
    }
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = next_offset;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, l);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        err = l->elems[0].err;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (err == RD_KAFKA_RESP_ERR__STATE) {
        return QUEUE_ESTATE;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_warn("kafka offset store failed", LOG_S("topic", topic), LOG_I("partition", partition),
                 LOG_S("error", rd_kafka_err2str(err)));
        return QUEUE_EKAFKA;
    }
    return QUEUE_OK;
}

static int pause_resume(struct queue_consumer *c, const struct queue_partition *parts, size_t n,
                        bool pause)
{
    if (n == 0) {
        return QUEUE_OK;
    }
    rd_kafka_topic_partition_list_t *l = to_list(parts, n);
    if (l == NULL) {
        return QUEUE_ENOMEM;
    }
    rd_kafka_resp_err_t err =
        pause ? rd_kafka_pause_partitions(c->rk, l) : rd_kafka_resume_partitions(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_warn(pause ? "kafka pause failed" : "kafka resume failed",
                 LOG_S("error", rd_kafka_err2str(err)));
        return QUEUE_EKAFKA;
    }
    return QUEUE_OK;
}

int queue_consumer_pause(struct queue_consumer *c, const struct queue_partition *parts, size_t n)
{
    return pause_resume(c, parts, n, true);
}

int queue_consumer_resume(struct queue_consumer *c, const struct queue_partition *parts, size_t n)
{
    return pause_resume(c, parts, n, false);
}

int queue_consumer_commit(struct queue_consumer *c)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET) {
        return QUEUE_OK;
    }
    log_warn("kafka commit failed", LOG_S("error", rd_kafka_err2str(err)));
    return QUEUE_EKAFKA;
}
