/* queue module-private helpers shared by the producer, consumer and admin files. */
#ifndef DISPATCH_QUEUE_INT_H
#define DISPATCH_QUEUE_INT_H

#include <librdkafka/rdkafka.h>

/* Sets one property; logs and returns -1 when librdkafka refuses it. */
int queue__conf_set(rd_kafka_conf_t *conf, const char *name, const char *value);

/* librdkafka's own log lines, re-emitted as our JSON lines (consumer.c). */
void queue__on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

struct queue_message;
/* Wraps a consumed message (no error set) as a queue_message that owns it; on
 * ENOMEM rkm is destroyed (consumer.c). */
int queue__message_wrap(rd_kafka_message_t *rkm, struct queue_message **ret_msg);

#endif
