/* queue — topic administration (dispatchctl topics create, test harnesses). */
#include "queue/queue.h"
#include "queue/queue_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_results(rd_kafka_event_t *ev, char *errbuf, size_t errlen)
{
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    const rd_kafka_topic_result_t **tr;
    size_t n;
    if (!res) {
        snprintf(errbuf, errlen, "%s", rd_kafka_event_error_string(ev));
        return QUEUE_EKAFKA;
    }
    tr = rd_kafka_CreateTopics_result_topics(res, &n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            snprintf(errbuf, errlen, "%s: %s", rd_kafka_topic_result_name(tr[i]),
                     rd_kafka_topic_result_error_string(tr[i]));
            return QUEUE_EKAFKA;
        }
    }
    return QUEUE_OK;
}

static int create_all(rd_kafka_t *rk, rd_kafka_NewTopic_t **nt, size_t n, int timeout_ms,
                      char *errbuf, size_t errlen)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_event_t *ev;
    int rc;
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, errbuf, errlen);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, errbuf, errlen);
    rd_kafka_CreateTopics(rk, nt, n, opts, q);
    ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    if (!ev) {
        snprintf(errbuf, errlen, "no answer from the brokers within %d ms", timeout_ms);
        rc = QUEUE_ETIMEDOUT;
    } else {
        rc = rd_kafka_event_error(ev) ? QUEUE_EKAFKA : check_results(ev, errbuf, errlen);
        if (rd_kafka_event_error(ev))
            snprintf(errbuf, errlen, "%s", rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    return rc;
}

int queue_topics_create(const char *brokers, const char *const *topics, size_t n, int partitions,
                        int replication, int timeout_ms, char *errbuf, size_t errlen)
{
    return queue_topics_create_with(brokers, topics, n, partitions, replication, NULL, 0,
                                    timeout_ms, errbuf, errlen);
}

static rd_kafka_NewTopic_t *new_topic(const char *name, int partitions, int replication,
                                      const struct queue_topic_setting *settings, size_t n_settings,
                                      char *errbuf, size_t errlen)
{
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, partitions, replication, errbuf, errlen);
    for (size_t i = 0; nt && i < n_settings; i++) {
        if (rd_kafka_NewTopic_set_config(nt, settings[i].name, settings[i].value) != 0) {
            snprintf(errbuf, errlen, "%s: cannot set %s", name, settings[i].name);
            rd_kafka_NewTopic_destroy(nt);
            nt = NULL;
        }
    }
    return nt;
}

int queue_topics_create_with(const char *brokers, const char *const *topics, size_t n,
                             int partitions, int replication,
                             const struct queue_topic_setting *settings, size_t n_settings,
                             int timeout_ms, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_NewTopic_t **nt = calloc(n ? n : 1, sizeof(rd_kafka_NewTopic_t *));
    rd_kafka_t *rk = NULL;
    int rc = QUEUE_EKAFKA;
    size_t made = 0;

    if (!nt) {
        rd_kafka_conf_destroy(conf);
        return QUEUE_ENOMEM;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errbuf, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        goto out_free;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errlen);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        goto out_free;
    }
    for (; made < n; made++) {
        nt[made] =
            new_topic(topics[made], partitions, replication, settings, n_settings, errbuf, errlen);
        if (!nt[made])
            goto out_free;
    }
    rc = create_all(rk, nt, n, timeout_ms, errbuf, errlen);
out_free:
    for (size_t i = 0; i < made; i++)
        rd_kafka_NewTopic_destroy(nt[i]);
    free(nt);
    if (rk)
        rd_kafka_destroy(rk);
    return rc;
}
