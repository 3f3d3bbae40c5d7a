/* Integration: the queue consumer against the harness's real Kafka.
 *
 * Produces messages to a fresh two-partition topic, consumes them in a real consumer
 * group, stores offsets for the first half of each partition only, closes, reopens
 * the group and checks that exactly the un-stored messages come back.  Every wait is
 * bounded, so an unreachable broker fails the suite instead of hanging it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "log/log.h"
#include "queue/queue.h"
#include "support/testenv.h"

#define N_MSGS   20
#define N_PARTS  2
#define WAIT_MS  45000 /* group join + fetch on a cold broker */
#define QUIET_MS 3000  /* no unexpected redelivery within this long */

static const char *brokers;
static char topic[96];
static char group[128];

struct seen {
    int64_t offset;
    int32_t partition;
    int index; /* from the message value "m<index>" */
};

struct hooks_state {
    int assigned, revoked;
};

static void on_assign(void *opaque, const struct queue_partition *parts, size_t n)
{
    struct hooks_state *h = opaque;
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(parts[i].topic, topic);
    }
    h->assigned += (int)n;
}

static void on_revoke(void *opaque, const struct queue_partition *parts, size_t n)
{
    struct hooks_state *h = opaque;
    (void)parts;
    h->revoked += (int)n;
}

static const struct queue_rebalance_ops hooks = {on_assign, on_revoke};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct queue_consumer *open_consumer(struct hooks_state *h)
{
    const char *topics[] = {topic};
    struct queue_consumer_config cfg = {
        .brokers = brokers,
        .group = group,
        .client_id = "queue-roundtrip",
        .topics = topics,
        .n_topics = 1,
    };
    struct queue_consumer *c = NULL;
    assert_int_equal(queue_consumer_new(&cfg, &hooks, h, &c), QUEUE_OK);
    return c;
}

/* Polls until want messages arrived (fails after WAIT_MS); then keeps polling for
 * quiet_ms to catch extras.  Returns how many arrived. */
static int consume(struct queue_consumer *c, struct seen *out, int max, int want, int quiet_ms)
{
    int n = 0;
    int64_t until = mono_ms() + WAIT_MS;
    int64_t quiet_until = -1;
    for (;;) {
        int64_t now = mono_ms();
        if (n >= want && quiet_until < 0) {
            quiet_until = now + quiet_ms;
        }
        if ((quiet_until >= 0 && now >= quiet_until) || now >= until) {
            break;
        }
        struct queue_message *m = NULL;
        int rc = queue_consumer_poll(c, 100, &m);
        if (rc != QUEUE_OK || m == NULL) {
            continue;
        }
        assert_string_equal(m->topic, topic);
        const void *v = NULL;
        size_t len = 0;
        assert_true(queue_message_header(m, "h", &v, &len));
        char body[32];
        snprintf(body, sizeof body, "%.*s", (int)m->len, (const char *)m->value);
        assert_true(len == m->len && memcmp(v, m->value, len) == 0); /* h echoes the value */
        struct queue_header hs[4];
        assert_int_equal(queue_message_headers(m, hs, 4), 2);
        assert_string_equal(hs[0].name, "h");
        assert_string_equal(hs[1].name, "x");
        assert_true(n < max);
        out[n++] = (struct seen){m->offset, m->partition, (int)strtol(body + 1, NULL, 10)};
        queue_message_free(m);
    }
    if (n < want) {
        fail_msg("only %d of %d messages arrived within %d ms (broker %s)", n, want, WAIT_MS,
                 brokers);
    }
    return n;
}

static int setup(void **state)
{
    (void)state;
    log_init(LOG_LEVEL_WARN, "queue-roundtrip");
    brokers = testenv_get("DISPATCH_KAFKA_BROKERS");
    snprintf(topic, sizeof topic, "it.queue-roundtrip.%ld.%ld", (long)getpid(), (long)time(NULL));
    snprintf(group, sizeof group, "g.%s", topic);

    struct queue_producer_config pc = {
        .brokers = brokers, .linger_ms = 0, .message_timeout_ms = 10000};
    struct queue_producer *p = NULL;
    if (queue_producer_new(&pc, &p) != QUEUE_OK || !queue_producer_ready(p, 10000)) {
        fprintf(stderr, "queue_roundtrip: kafka at %s is unreachable\n", brokers);
        queue_producer_free(p);
        return -1;
    }
    char err[256] = "";
    const char *topics[] = {topic};
    if (queue_topics_create(brokers, topics, 1, N_PARTS, 1, 15000, err, sizeof err) != QUEUE_OK) {
        fprintf(stderr, "queue_roundtrip: topic not created: %s\n", err);
        queue_producer_free(p);
        return -1;
    }
    for (int i = 0; i < N_MSGS; i++) {
        char key[16], val[16];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(val, sizeof val, "m%d", i);
        struct queue_header h[] = {{"h", val, strlen(val)}, {"x", "1", 1}};
        int rc = queue_produce_sync(p, topic, key, strlen(key), val, strlen(val), h, 2);
        if (rc != QUEUE_OK) {
            fprintf(stderr, "queue_roundtrip: produce failed: %s\n", queue_strerror(rc));
            queue_producer_free(p);
            return -1;
        }
    }
    queue_producer_free(p);
    return 0;
}

static int by_offset(const void *a, const void *b)
{
    const struct seen *x = a, *y = b;
    if (x->partition != y->partition) {
        return x->partition < y->partition ? -1 : 1;
    }
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static void test_redelivers_only_unstored(void **state)
{
    (void)state;
    struct hooks_state h1 = {0, 0};
    struct queue_consumer *c = open_consumer(&h1);
    struct seen first[N_MSGS * 2];
    int n = consume(c, first, N_MSGS * 2, N_MSGS, 500);
    assert_int_equal(n, N_MSGS);
    assert_int_equal(h1.assigned, N_PARTS);
    qsort(first, (size_t)n, sizeof first[0], by_offset);

    /* store the first half of each partition: "done" up to and including it */
    bool stored[N_MSGS] = {false};
    int n_stored = 0;
    for (int p = 0; p < N_PARTS; p++) {
        int cnt = 0, k = 0;
        for (int i = 0; i < n; i++) {
            cnt += first[i].partition == p;
        }
        for (int i = 0; i < n && k < cnt / 2; i++) {
            if (first[i].partition != p) {
                continue;
            }
            assert_int_equal(queue_consumer_store(c, topic, p, first[i].offset + 1), QUEUE_OK);
            stored[first[i].index] = true;
            n_stored++;
            k++;
        }
    }
    /* a partition we do not own cannot be stored */
    assert_int_equal(queue_consumer_store(c, topic, 7, 1), QUEUE_ESTATE);
    struct queue_partition all[N_PARTS] = {{topic, 0}, {topic, 1}};
    assert_int_equal(queue_consumer_pause(c, all, N_PARTS), QUEUE_OK);
    assert_int_equal(queue_consumer_resume(c, all, N_PARTS), QUEUE_OK);
    assert_int_equal(queue_consumer_commit(c), QUEUE_OK);
    queue_consumer_free(c);
    assert_int_equal(h1.revoked, N_PARTS); /* close runs the revoke hook */

    struct hooks_state h2 = {0, 0};
    c = open_consumer(&h2);
    struct seen again[N_MSGS * 2];
    int want = N_MSGS - n_stored;
    int m = consume(c, again, N_MSGS * 2, want, QUIET_MS);
    queue_consumer_free(c);
    assert_int_equal(m, want);
    for (int i = 0; i < m; i++) {
        assert_false(stored[again[i].index]); /* a stored message never comes back */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redelivers_only_unstored),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
