/* Unit tests for internal/metrics: the producer's families, bounded labels, NULL
 * safety. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

static int setup(void **state)
{
    struct metrics *m = NULL;
    if (metrics_producer_new(&m) != 0)
        return -1;
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    metrics_free(*state);
    return 0;
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    }
    return false;
}

static char *expose(struct metrics *m)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(metrics_expose(m, &text, &len), 0);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static void assert_line(struct metrics *m, const char *line)
{
    char *text = expose(m);
    bool found = has_line(text, line);
    if (!found)
        print_error("line not found: %s\nin:\n%s", line, text);
    free(text);
    assert_true(found);
}

static void test_null_is_a_no_op(void **state)
{
    char *text = NULL;
    size_t len = 1;
    (void)state;
    metrics_add(NULL, METRICS_TASKS_SUBMITTED, 1);
    metrics_http_request(NULL, "healthz", "GET", 200, 0.001);
    assert_int_equal(metrics_write(NULL, stdout), 0);
    assert_int_equal(metrics_expose(NULL, &text, &len), 0);
    assert_string_equal(text, "");
    assert_int_equal(len, 0);
    free(text);
    metrics_free(NULL);
}

static void test_http_requests(void **state)
{
    struct metrics *m = *state;
    metrics_http_request(m, "healthz", "GET", 200, 0.0001);
    metrics_http_request(m, "healthz", "GET", 200, 0.003);
    metrics_http_request(m, "healthz", "HEAD", 200, 0.003);
    metrics_http_request(m, NULL, "BREW", 404, 20);
    metrics_http_request(m, "tasks_get", "GET", 0, 1);
    assert_line(m, "http_requests_total{route=\"healthz\",method=\"GET\",code=\"200\"} 2");
    assert_line(m, "http_requests_total{route=\"healthz\",method=\"HEAD\",code=\"200\"} 1");
    /* an unknown method is "other", a missing route "unmatched" */
    assert_line(m, "http_requests_total{route=\"unmatched\",method=\"other\",code=\"404\"} 1");
    assert_line(m, "http_requests_total{route=\"tasks_get\",method=\"GET\",code=\"0\"} 1");
    assert_line(m, "http_request_duration_seconds_bucket{route=\"healthz\",le=\"0.0005\"} 1");
    assert_line(m, "http_request_duration_seconds_bucket{route=\"healthz\",le=\"0.005\"} 3");
    assert_line(m, "http_request_duration_seconds_count{route=\"healthz\"} 3");
    assert_line(m, "http_request_duration_seconds_bucket{route=\"unmatched\",le=\"10\"} 0");
    assert_line(m, "http_request_duration_seconds_bucket{route=\"unmatched\",le=\"+Inf\"} 1");
}

static void test_counters(void **state)
{
    struct metrics *m = *state;
    static const char *const names[METRICS_N_COUNTERS] = {
        "tasks_submitted_total", "idempotent_replays_total", "kafka_produce_failures_total",
        "outbox_republished_total", "rate_limited_total"};
    for (int i = 0; i < METRICS_N_COUNTERS; i++) {
        char line[64];
        metrics_add(m, (enum metrics_counter)i, (uint64_t)i + 1);
        snprintf(line, sizeof line, "%s %d", names[i], i + 1);
        assert_line(m, line);
    }
    metrics_add(m, METRICS_N_COUNTERS, 1); /* out of range: ignored */
    metrics_add(m, METRICS_TASKS_SUBMITTED, 64);
    assert_line(m, "tasks_submitted_total 65");
}

static void test_families_have_help_and_type(void **state)
{
    char *text = expose(*state);
    static const char *const families[] = {
        "http_requests_total counter",      "http_request_duration_seconds histogram",
        "tasks_submitted_total counter",    "rate_limited_total counter",
        "process_start_time_seconds gauge", "process_resident_memory_bytes gauge",
        "process_open_fds gauge",
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char line[128];
        snprintf(line, sizeof line, "# TYPE %s", families[i]);
        assert_true(has_line(text, line));
    }
    assert_non_null(strstr(text, "# HELP process_open_fds "));
    assert_null(strstr(text, "process_open_fds NaN"));
    assert_null(strstr(text, "process_resident_memory_bytes NaN"));
    assert_null(strstr(text, "process_start_time_seconds 0\n"));
    free(text);
}

static void test_write(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    metrics_add(*state, METRICS_RATE_LIMITED, 2);
    assert_int_equal(metrics_write(*state, out), 0);
    assert_int_equal(fclose(out), 0);
    assert_true(has_line(buf, "rate_limited_total 2"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_is_a_no_op),
        cmocka_unit_test_setup_teardown(test_http_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_families_have_help_and_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
