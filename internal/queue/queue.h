/* queue — Kafka adapter (librdkafka): an idempotent producer, a consumer-group
 * consumer with manual offset storage, and topic administration.
 *
 * Producer: enable.idempotence=true, acks=all, linger.ms from config (the 202 waits
 * on the delivery report, so linger is latency: see docs/architecture.md).  Delivery
 * reports are served by a thread the producer owns; callbacks run there and must not
 * block.  queue_produce_sync() waits for the report (worker retry/DLQ, dispatchctl).
 *
 * Consumer: enable.auto.commit=true with enable.auto.offset.store=false, so only
 * offsets the caller stores with queue_consumer_store() are ever committed;
 * auto.offset.reset=earliest.  Single-threaded: all consumer calls come from the
 * thread that polls, except queue_message_free(), which is thread-safe.
 */
#ifndef DISPATCH_QUEUE_H
#define DISPATCH_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum queue_err {
    QUEUE_OK = 0,
    QUEUE_EKAFKA = -1,    /* a librdkafka error; detail in the errstr given */
    QUEUE_ETIMEDOUT = -2, /* message.timeout.ms or the sync wait passed */
    QUEUE_EFULL = -3,     /* local queue full */
    QUEUE_ENOMEM = -4,
    QUEUE_ESTATE = -5, /* partition no longer assigned (offset store after revoke) */
};
const char *queue_strerror(int err);

struct queue_header {
    const char *name;
    const void *value;
    size_t len;
};

/* --- producer ------------------------------------------------------------ */

struct queue_producer_config {
    const char *brokers;
    const char *client_id;
    int linger_ms;
    int message_timeout_ms; /* delivery deadline: the report says timed out after this */
};

struct queue_producer;

/* err is QUEUE_OK or negative; errstr is borrowed for the call (may be NULL). */
typedef void (*queue_delivery_fn)(void *opaque, int err, const char *errstr);

int queue_producer_new(const struct queue_producer_config *cfg, struct queue_producer **ret_p);
/* Flushes (bounded by message_timeout_ms), stops the report thread, frees. */
void queue_producer_free(struct queue_producer *p);

/* Enqueues one message; exactly one call of cb follows unless this returns an error
 * (then cb is never called).  key may be NULL. Headers are copied. */
int queue_produce(struct queue_producer *p, const char *topic, const void *key, size_t key_len,
                  const void *value, size_t len, const struct queue_header *headers,
                  size_t n_headers, queue_delivery_fn cb, void *opaque);

/* queue_produce() and wait for the delivery report. */
int queue_produce_sync(struct queue_producer *p, const char *topic, const void *key, size_t key_len,
                       const void *value, size_t len, const struct queue_header *headers,
                       size_t n_headers);

/* Broker reachable (metadata answered within timeout_ms)? */
bool queue_producer_ready(struct queue_producer *p, int timeout_ms);

/* How often the handle was replaced after a fatal error (librdkafka #4438). */
unsigned queue_producer_recreated(struct queue_producer *p);
/* Tests: raises a simulated fatal idempotence error on the current handle. */
int queue_producer_test_fatal(struct queue_producer *p);

/* --- consumer ------------------------------------------------------------ */

struct queue_consumer_config {
    const char *brokers;
    const char *group;
    const char *client_id;
    const char *const *topics;
    size_t n_topics;
    int max_poll_interval_ms; /* 0: librdkafka's default */
    int session_timeout_ms;   /* 0: librdkafka's default (45 s) */
};

struct queue_message {
    const char *topic; /* borrowed from the message */
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *value;
    size_t len;
    int64_t timestamp_ms; /* -1 when unknown */
    void *impl_;          /* rd_kafka_message_t, owned */
};

struct queue_partition {
    const char *topic;
    int32_t partition;
};

/* Rebalance hooks, called from inside queue_consumer_poll() on the polling thread
 * before the assignment changes; on_revoke is where in-flight work for those
 * partitions is finished or abandoned and final offsets are stored. */
struct queue_rebalance_ops {
    void (*on_assign)(void *opaque, const struct queue_partition *parts, size_t n);
    void (*on_revoke)(void *opaque, const struct queue_partition *parts, size_t n);
};

struct queue_consumer;

int queue_consumer_new(const struct queue_consumer_config *cfg,
                       const struct queue_rebalance_ops *ops, void *opaque,
                       struct queue_consumer **ret_c);
/* Closes (rd_kafka_consumer_close: final commit, leave the group) and frees. */
void queue_consumer_free(struct queue_consumer *c);

/* Waits up to timeout_ms.  Returns QUEUE_OK with *ret_msg set (owned: free with
 * queue_message_free) or NULL when nothing arrived; negative on a consumer error
 * that is not just "end of partition". */
int queue_consumer_poll(struct queue_consumer *c, int timeout_ms, struct queue_message **ret_msg);
void queue_message_free(struct queue_message *m);

/* Looks up the last header called name; *ret_value borrowed from the message. */
bool queue_message_header(const struct queue_message *m, const char *name, const void **ret_value,
                          size_t *ret_len);
/* All headers, in order, into out (up to max); returns how many there are. */
size_t queue_message_headers(const struct queue_message *m, struct queue_header *out, size_t max);

/* Stores next_offset (last done + 1) as the partition's commit position. */
int queue_consumer_store(struct queue_consumer *c, const char *topic, int32_t partition,
                         int64_t next_offset);
int queue_consumer_pause(struct queue_consumer *c, const struct queue_partition *parts, size_t n);
int queue_consumer_resume(struct queue_consumer *c, const struct queue_partition *parts, size_t n);
/* Commits stored offsets now (synchronously). */
int queue_consumer_commit(struct queue_consumer *c);

/* --- reader: one topic from its beginning, outside any group (reader.c) ---
 *
 * For operators (dispatchctl dlq tail): every partition of the topic is assigned at
 * its beginning, nothing is ever committed, no group is joined, so reading changes
 * nothing for anyone else.  Single-threaded like the consumer. */

struct queue_reader_config {
    const char *brokers;
    const char *client_id;
    const char *group; /* group.id librdkafka wants; never joined, nothing committed */
    const char *topic;
    int timeout_ms; /* metadata and watermark queries at start */
};

struct queue_reader;

/* Looks the topic's partitions up and notes where each one ends now (its high
 * watermark).  A topic that does not exist is QUEUE_EKAFKA with the reason in
 * errbuf. */
int queue_reader_new(const struct queue_reader_config *cfg, struct queue_reader **ret_r,
                     char *errbuf, size_t errlen);
void queue_reader_free(struct queue_reader *r);
/* As queue_consumer_poll(). */
int queue_reader_poll(struct queue_reader *r, int timeout_ms, struct queue_message **ret_msg);
/* Every partition has been read up to where it ended when the reader started. */
bool queue_reader_at_end(const struct queue_reader *r);

/* The largest record dispatch produces and the topics accept ("message.max.bytes"
 * of the producer, "max.message.bytes" of each topic `topics create` makes): the
 * ceiling of http_max_body_bytes (64 MiB) plus 1 MiB for the envelope and the retry /
 * DLQ headers.  Kafka's own default (about 1 MB) is below the default body cap of
 * 1 MiB: a task accepted with a payload near it could otherwise never be published. */
#define QUEUE_MESSAGE_MAX_BYTES 68157440

/* --- admin --------------------------------------------------------------- */

/* Creates the topics that do not exist yet (existing ones are fine), with
 * `partitions` partitions and replication factor 1..n per replication. */
int queue_topics_create(const char *brokers, const char *const *topics, size_t n, int partitions,
                        int replication, int timeout_ms, char *errbuf, size_t errlen);

/* A topic-level setting, e.g. {"retention.ms", "-1"}. */
struct queue_topic_setting {
    const char *name;
    const char *value;
};

/* queue_topics_create() with settings given to each topic it creates (a topic that
 * exists already keeps its own). */
int queue_topics_create_with(const char *brokers, const char *const *topics, size_t n,
                             int partitions, int replication,
                             const struct queue_topic_setting *settings, size_t n_settings,
                             int timeout_ms, char *errbuf, size_t errlen);

#endif
