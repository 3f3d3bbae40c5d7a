/* queue — shared helpers: error strings and configuration. */
#include "queue/queue.h"
#include "queue/queue_int.h"

#include "log/log.h"

const char *queue_strerror(int err)
{
    switch (err) {
    case QUEUE_OK:
        return "ok";
    case QUEUE_EKAFKA:
        return "kafka error";
    case QUEUE_ETIMEDOUT:
        return "timed out";
    case QUEUE_EFULL:
        return "local queue full";
    case QUEUE_ENOMEM:
        return "out of memory";
    case QUEUE_ESTATE:
        return "partition not assigned";
    default:
        return "unknown queue error";
    }
}

int queue__conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        log_error("kafka configuration refused", LOG_S("name", name), LOG_S("error", errstr));
        return -1;
    }
    return 0;
}
