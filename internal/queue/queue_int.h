/* queue module-private helpers shared by the producer, consumer and admin files. */
#ifndef DISPATCH_QUEUE_INT_H
#define DISPATCH_QUEUE_INT_H

#include <librdkafka/rdkafka.h>

/* Sets one property; logs and returns -1 when librdkafka refuses it. */
int queue__conf_set(rd_kafka_conf_t *conf, const char *name, const char *value);

#endif
