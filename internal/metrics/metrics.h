/* metrics — the producer's metric set (SPEC §8) behind a small interface, so that
 * the api and the services count things without knowing pkg/prom.
 *
 * cmd/producer owns the one struct metrics (metrics_producer_new/metrics_free) and
 * hands the pointer to the modules that count: the api through struct api_deps, the
 * services through their config when they start counting.  Every function accepts
 * m == NULL and then does nothing, so unit tests and optional wiring pass NULL.
 *
 * Families (all without a namespace prefix):
 *   http_requests_total{route,method,code}      counter
 *   http_request_duration_seconds{route}        histogram, 0.5 ms .. 10 s
 *   tasks_submitted_total, idempotent_replays_total, kafka_produce_failures_total,
 *   outbox_republished_total, rate_limited_total counters (enum metrics_counter)
 *   process_start_time_seconds, process_resident_memory_bytes, process_open_fds
 *
 * Thread-safe; counting is a few atomic operations and, the first time a label
 * combination is seen, one mutex.  Label combinations are bounded (methods outside
 * the standard ones are counted as "other"); an observation beyond the bound is
 * dropped rather than grow memory.
 */
#ifndef DISPATCH_METRICS_H
#define DISPATCH_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The exposition's Content-Type. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Counters a service bumps with metrics_add(). */
enum metrics_counter {
    METRICS_TASKS_SUBMITTED = 0,    /* tasks_submitted_total: accepted (202) */
    METRICS_IDEMPOTENT_REPLAYS,     /* idempotent_replays_total: answered from the key */
    METRICS_KAFKA_PRODUCE_FAILURES, /* kafka_produce_failures_total: not acknowledged */
    METRICS_OUTBOX_REPUBLISHED,     /* outbox_republished_total: republished by the relay */
    METRICS_RATE_LIMITED,           /* rate_limited_total: refused with 429 */
    METRICS_N_COUNTERS
};

struct metrics;

/* The producer's set, with its process gauges.  0, or -1 out of memory. */
int metrics_producer_new(struct metrics **ret_m);
void metrics_free(struct metrics *m);

/* Adds n to one of the counters above. */
void metrics_add(struct metrics *m, enum metrics_counter which, uint64_t n);

/* One finished HTTP request: route is the route table's name ("unmatched" when
 * none), status 0 when the request ended without a response (client gone, timeout),
 * seconds from its first byte to its end. */
void metrics_http_request(struct metrics *m, const char *route, const char *method,
                          unsigned int status, double seconds);

/* The Prometheus text exposition: as a string owned by the caller (free()), or
 * written to a memory stream.  0, or -1 on failure.  m NULL exposes nothing. */
int metrics_expose(struct metrics *m, char **ret_text, size_t *ret_len);
int metrics_write(struct metrics *m, FILE *out);

#endif
