/* Integration: the idempotent producer against the harness's real Kafka broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "queue/queue.h"
#include "support/testenv.h"

static char topic[64];

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int setup(void **state)
{
    const char *brokers = testenv_get("DISPATCH_KAFKA_BROKERS");
    const char *topics[1] = {topic};
    char err[256] = "";
    (void)state;
    snprintf(topic, sizeof topic, "it.producer.%lld", (long long)now_ms());
    if (queue_topics_create(brokers, topics, 1, 2, 1, 15000, err, sizeof err) != QUEUE_OK) {
        fprintf(stderr, "cannot create %s: %s\n", topic, err);
        return -1;
    }
    return 0;
}

static struct queue_producer *producer(const char *brokers, int timeout_ms)
{
    struct queue_producer_config cfg = {brokers, "it-producer", 1, timeout_ms};
    struct queue_producer *p = NULL;
    assert_int_equal(queue_producer_new(&cfg, &p), QUEUE_OK);
    return p;
}

static void test_produce_is_acknowledged(void **state)
{
    struct queue_producer *p = producer(testenv_get("DISPATCH_KAFKA_BROKERS"), 10000);
    struct queue_header h = {"traceparent", "00-x", 4};
    (void)state;
    assert_true(queue_producer_ready(p, 5000));
    assert_int_equal(queue_produce_sync(p, topic, "k", 1, "{}", 2, &h, 1), QUEUE_OK);
    queue_producer_free(p);
}

static void test_fatal_error_recreates_the_handle(void **state)
{
    struct queue_producer *p = producer(testenv_get("DISPATCH_KAFKA_BROKERS"), 10000);
    int64_t deadline;
    (void)state;
    assert_int_equal(queue_produce_sync(p, topic, "k", 1, "before", 6, NULL, 0), QUEUE_OK);
    assert_int_equal(queue_producer_test_fatal(p), QUEUE_OK);
    deadline = now_ms() + 10000;
    while (queue_producer_recreated(p) == 0 && now_ms() < deadline) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(queue_producer_recreated(p), 1);
    /* the new handle works: no wedged producer */
    assert_int_equal(queue_produce_sync(p, topic, "k", 1, "after", 5, NULL, 0), QUEUE_OK);
    queue_producer_free(p);
}

static void test_unreachable_broker_times_out_within_the_deadline(void **state)
{
    /* a port nothing listens on: the report says timed out, by message.timeout.ms */
    struct queue_producer *p = producer("127.0.0.1:1", 1000);
    int64_t started = now_ms();
    int rc;
    (void)state;
    rc = queue_produce_sync(p, topic, "k", 1, "x", 1, NULL, 0);
    assert_int_equal(rc, QUEUE_ETIMEDOUT);
    assert_true(now_ms() - started < 5000);
    queue_producer_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_produce_is_acknowledged),
        cmocka_unit_test(test_fatal_error_recreates_the_handle),
        cmocka_unit_test(test_unreachable_broker_times_out_within_the_deadline),
    };
    return cmocka_run_group_tests_name("queue_producer", tests, setup, NULL);
}
