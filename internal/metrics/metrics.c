/* metrics — the producer's families on a pkg/prom registry. */
#include "metrics/metrics_int.h"

#include <stdlib.h>
#include <string.h>

/* 0.5 ms .. 10 s: a cache hit is well under a millisecond, a submit waits for the
 * broker's acknowledgement (publish_timeout_ms is 5 s by default). */
static const double duration_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};

static const struct {
    const char *name;
    const char *help;
} counter_defs[METRICS_N_COUNTERS] = {
    [METRICS_TASKS_SUBMITTED] = {"tasks_submitted_total",
                                 "Tasks accepted: stored and acknowledged by the broker."},
    [METRICS_IDEMPOTENT_REPLAYS] = {"idempotent_replays_total",
                                    "Requests answered with the stored response of their "
                                    "Idempotency-Key."},
    [METRICS_KAFKA_PRODUCE_FAILURES] = {"kafka_produce_failures_total",
                                        "Messages the broker did not acknowledge in time."},
    [METRICS_OUTBOX_REPUBLISHED] = {"outbox_republished_total",
                                    "PENDING tasks republished by the outbox relay."},
    [METRICS_RATE_LIMITED] = {"rate_limited_total", "Requests refused with 429 by rate limits."},
};

static int register_families(struct metrics *m)
{
    static const char *const http_labels[] = {"route", "method", "code"};
    static const char *const route_label[] = {"route"};
    if (prom_counter_vec_new(m->reg, "http_requests_total", "HTTP requests served.", http_labels, 3,
                             &m->http_requests) < 0 ||
        prom_histogram_vec_new(
            m->reg, "http_request_duration_seconds",
            "Time from a request's first byte to the end of its response, in seconds.", route_label,
            1, duration_bounds, sizeof duration_bounds / sizeof duration_bounds[0],
            &m->http_duration) < 0)
        return -1;
    for (size_t i = 0; i < METRICS_N_COUNTERS; i++) {
        if (prom_counter_new(m->reg, counter_defs[i].name, counter_defs[i].help, &m->counters[i]) <
            0)
            return -1;
    }
    if (metrics__cache_register(m) < 0)
        return -1;
    return metrics__process_register(m->reg);
}

int metrics_producer_new(struct metrics **ret_m)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m)
        return -1;
    if (prom_registry_new(0, &m->reg) < 0)
        goto out_free;
    if (register_families(m) < 0)
        goto out_free;
    *ret_m = m;
    return 0;
out_free:
    metrics_free(m);
    return -1;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    prom_registry_free(m->reg);
    free(m);
}

void metrics_add(struct metrics *m, enum metrics_counter which, uint64_t n)
{
    if (m && (unsigned)which < METRICS_N_COUNTERS && m->counters[which])
        prom_counter_add(m->counters[which], n);
}

/* Methods are client text: anything beyond the standard ones is one label value,
 * so a client cannot grow the label set. */
static const char *method_label(const char *method)
{
    static const char *const known[] = {"GET",    "HEAD",    "POST",  "PUT",
                                        "DELETE", "OPTIONS", "PATCH", "CONNECT"};
    for (size_t i = 0; method && i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(method, known[i]) == 0)
            return known[i];
    }
    return "other";
}

void metrics_http_request(struct metrics *m, const char *route, const char *method,
                          unsigned int status, double seconds)
{
    struct prom_counter *c;
    struct prom_histogram *h;
    char code[16];
    if (!m)
        return;
    if (!route)
        route = "unmatched";
    snprintf(code, sizeof code, "%u", status);
    /* beyond the bound (PROM_ELIMIT) the request is not counted: nothing else to do */
    if (prom_counter_vec_with(m->http_requests,
                              (const char *const[]){route, method_label(method), code}, &c) == 0)
        prom_counter_inc(c);
    if (prom_histogram_vec_with(m->http_duration, (const char *const[]){route}, &h) == 0)
        prom_histogram_observe(h, seconds);
}

int metrics_expose(struct metrics *m, char **ret_text, size_t *ret_len)
{
    if (!m) {
        char *empty = strdup("");
        if (!empty)
            return -1;
        *ret_text = empty;
        *ret_len = 0;
        return 0;
    }
    return prom_expose(m->reg, ret_text, ret_len) < 0 ? -1 : 0;
}

int metrics_write(struct metrics *m, FILE *out)
{
    if (!m)
        return 0;
    return prom_write(m->reg, out) < 0 ? -1 : 0;
}
