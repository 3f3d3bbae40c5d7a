/* queue reader — one topic from its beginning, for operators (dispatchctl dlq tail).
 *
 * Every partition is assigned explicitly at OFFSET_BEGINNING (rd_kafka_assign: no
 * group join, no rebalance) with enable.auto.commit=false and no offset ever stored,
 * so reading changes nothing for the workers' group or anyone else.  The end of a
 * partition is its high watermark when the reader starts; enable.partition.eof
 * reports reaching the end too, which covers offsets no message occupies. */
#include "queue/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <librdkafka/rdkafka.h>
#include "queue/queue_int.h"

struct reader_part {
    int32_t partition;
    int64_t end;  /* high watermark when the reader started */
    int64_t next; /* next offset to read */
};

struct queue_reader {
    rd_kafka_t *rk;
    struct reader_part *parts;
    size_t n;
};

static rd_kafka_t *make_handle(const struct queue_reader_config *cfg, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    if (conf == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    if (queue__conf_set(conf, "bootstrap.servers", cfg->brokers) < 0 ||
        queue__conf_set(conf, "group.id", cfg->group) < 0 ||
        (cfg->client_id != NULL && queue__conf_set(conf, "client.id", cfg->client_id) < 0) ||
        queue__conf_set(conf, "enable.auto.commit", "false") < 0 ||
        queue__conf_set(conf, "enable.auto.offset.store", "false") < 0 ||
        queue__conf_set(conf, "auto.offset.reset", "earliest") < 0 ||
        queue__conf_set(conf, "enable.partition.eof", "true") < 0 ||
        queue__conf_set(conf, "fetch.wait.max.ms", "100") < 0) {
        rd_kafka_conf_destroy(conf);
        snprintf(errbuf, errlen, "librdkafka refused the reader's configuration");
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, queue__on_log);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errlen);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk); /* conf is rk's now */
    return rk;
}

/* The topic's partitions from the brokers' metadata. */
static int find_partitions(struct queue_reader *r, const struct queue_reader_config *cfg,
                           char *errbuf, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(r->rk, cfg->topic, NULL);
    rd_kafka_resp_err_t err;
    int rc = QUEUE_EKAFKA;

    if (rkt == NULL) {
        snprintf(errbuf, errlen, "topic %s: %s", cfg->topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        return QUEUE_EKAFKA;
    }
    err = rd_kafka_metadata(r->rk, 0, rkt, &md, cfg->timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errbuf, errlen, "no metadata from %s: %s", cfg->brokers, rd_kafka_err2str(err));
        goto out_topic;
    }
    if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topics[0].partition_cnt <= 0) {
        snprintf(errbuf, errlen, "topic %s: %s", cfg->topic,
                 md->topic_cnt == 1 && md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR
                     ? rd_kafka_err2str(md->topics[0].err)
                     : "no partitions");
        goto out_md;
    }
    r->n = (size_t)md->topics[0].partition_cnt;
    r->parts = calloc(r->n, sizeof *r->parts);
    if (r->parts == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        rc = QUEUE_ENOMEM;
        goto out_md;
    }
    for (size_t i = 0; i < r->n; i++)
        r->parts[i].partition = md->topics[0].partitions[i].id;
    rc = QUEUE_OK;
out_md:
    rd_kafka_metadata_destroy(md);
out_topic:
    rd_kafka_topic_destroy(rkt);
    return rc;
}

/* A partition's offsets; retried while its leader is still being elected (just after
 * the topic was created, or during a broker restart), within timeout_ms. */
static rd_kafka_resp_err_t query_range(rd_kafka_t *rk, const char *topic, int32_t partition,
                                       int timeout_ms, int64_t *ret_low, int64_t *ret_high)
{
    const struct timespec pause = {0, 100 * 1000000L};
    rd_kafka_resp_err_t err;
    int waited = 0;

    for (;;) {
        err = rd_kafka_query_watermark_offsets(rk, topic, partition, ret_low, ret_high, timeout_ms);
        if (waited >= timeout_ms || (err != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
                                     err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
                                     err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART))
            return err;
        nanosleep(&pause, NULL);
        waited += 100;
    }
}

/* Notes each partition's current range, then assigns them all at the beginning. */
static int assign_all(struct queue_reader *r, const struct queue_reader_config *cfg, char *errbuf,
                      size_t errlen)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t err;

    for (size_t i = 0; i < r->n; i++) {
        int64_t low = 0, high = 0;
        err = query_range(r->rk, cfg->topic, r->parts[i].partition, cfg->timeout_ms, &low, &high);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(errbuf, errlen, "topic %s partition %d: %s", cfg->topic,
                     (int)r->parts[i].partition, rd_kafka_err2str(err));
            return QUEUE_EKAFKA;
        }
        r->parts[i].next = low;
        r->parts[i].end = high;
    }
    l = rd_kafka_topic_partition_list_new((int)r->n);
    if (l == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return QUEUE_ENOMEM;
    }
    for (size_t i = 0; i < r->n; i++)
        rd_kafka_topic_partition_list_add(l, cfg->topic, r->parts[i].partition)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    err = rd_kafka_assign(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errbuf, errlen, "assign: %s", rd_kafka_err2str(err));
        return QUEUE_EKAFKA;
    }
    return QUEUE_OK;
}

int queue_reader_new(const struct queue_reader_config *cfg, struct queue_reader **ret_r,
                     char *errbuf, size_t errlen)
{
    struct queue_reader *r;
    int rc;

    if (cfg == NULL || cfg->brokers == NULL || cfg->group == NULL || cfg->topic == NULL) {
        snprintf(errbuf, errlen, "brokers, group and topic are required");
        return QUEUE_EKAFKA;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return QUEUE_ENOMEM;
    }
    r->rk = make_handle(cfg, errbuf, errlen);
    if (r->rk == NULL) {
        free(r);
        return QUEUE_EKAFKA;
    }
    rc = find_partitions(r, cfg, errbuf, errlen);
    if (rc == QUEUE_OK)
        rc = assign_all(r, cfg, errbuf, errlen);
    if (rc != QUEUE_OK) {
        queue_reader_free(r);
        return rc;
    }
    *ret_r = r;
    return QUEUE_OK;
}

void queue_reader_free(struct queue_reader *r)
{
    if (r == NULL)
        return;
    /* nothing was stored, so closing commits nothing; there is no group to leave */
    (void)rd_kafka_consumer_close(r->rk);
    rd_kafka_destroy(r->rk);
    free(r->parts);
    free(r);
}

static struct reader_part *find_part(struct queue_reader *r, int32_t partition)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->parts[i].partition == partition)
            return &r->parts[i];
    }
    return NULL;
}

int queue_reader_poll(struct queue_reader *r, int timeout_ms, struct queue_message **ret_msg)
{
    rd_kafka_message_t *rkm = rd_kafka_consumer_poll(r->rk, timeout_ms);
    struct reader_part *p;

    if (rkm == NULL) {
        *ret_msg = NULL;
        return QUEUE_OK;
    }
    p = find_part(r, rkm->partition);
    if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        /* rkm->offset is where the partition ends now: nothing left below it */
        if (p != NULL && rkm->offset > p->next)
            p->next = rkm->offset;
        rd_kafka_message_destroy(rkm);
        *ret_msg = NULL;
        return QUEUE_OK;
    }
    if (rkm->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_resp_err_t err = rkm->err;
        rd_kafka_message_destroy(rkm);
        /* transient (broker down, ...): librdkafka retries; the caller bounds the wait */
        if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
            *ret_msg = NULL;
            return QUEUE_OK;
        }
        return QUEUE_EKAFKA;
    }
    if (p != NULL && rkm->offset >= p->next)
        p->next = rkm->offset + 1;
    return queue__message_wrap(rkm, ret_msg);
}

bool queue_reader_at_end(const struct queue_reader *r)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->parts[i].next < r->parts[i].end)
            return false;
    }
    return true;
}
