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

/* --- the worker's set (SPEC §8), internal/metrics/worker.c -----------------------
 *   tasks_processed_total{type,outcome}  counter: messages taskexec finished, by
 *                                        outcome (succeeded, retried, dead, ...)
 *   task_duration_seconds{type}          histogram, 1 ms .. 5 min: handler run time
 *   task_retries_total                   counter: retry records published
 *   dlq_messages_total                   counter: records published to the DLQ
 *   pool_queue_depth, pool_busy          gauges read at scrape time (metrics_gauge_bind)
 *   process_* as for the producer
 * type is a registered task type (bounded by the program), or "other". */
int metrics_worker_new(struct metrics **ret_m);

enum metrics_worker_counter {
    METRICS_TASK_RETRIES = 0, /* task_retries_total */
    METRICS_DLQ_MESSAGES,     /* dlq_messages_total */
    METRICS_N_WORKER_COUNTERS
};
void metrics_worker_add(struct metrics *m, enum metrics_worker_counter which, uint64_t n);

/* One message finished by taskexec; seconds < 0 when no handler ran. */
void metrics_task_processed(struct metrics *m, const char *type, const char *outcome,
                            double seconds);

enum metrics_gauge {
    METRICS_POOL_QUEUE_DEPTH = 0, /* pool_queue_depth: tasks waiting for a thread */
    METRICS_POOL_BUSY,            /* pool_busy: threads running a task */
    METRICS_N_GAUGES
};
typedef double (*metrics_gauge_fn)(void *ctx);
/* From now on the gauge's value is fn(ctx), called on the scraping thread under the
 * registry's lock (quick, no metrics calls); fn NULL unbinds (before ctx goes away). */
void metrics_gauge_bind(struct metrics *m, enum metrics_gauge which, metrics_gauge_fn fn,
                        void *ctx);

/* --- the status read path (producer), internal/metrics/cache.c --------------------
 *   cache_requests_total{layer,result}  counter: lookups of GET /tasks/{id} by layer
 *                                       (lru, redis, db) and result (hit, negative:
 *                                       a cached "no such task", miss, error)
 *   circuit_breaker_state{dependency}   gauge read at scrape time: 0 closed, 1 open,
 *                                       2 half-open */
enum metrics_cache_layer {
    METRICS_CACHE_LRU = 0,
    METRICS_CACHE_REDIS,
    METRICS_CACHE_DB,
    METRICS_N_CACHE_LAYERS
};
enum metrics_cache_result {
    METRICS_CACHE_HIT = 0,
    METRICS_CACHE_NEGATIVE,
    METRICS_CACHE_MISS,
    METRICS_CACHE_ERROR,
    METRICS_N_CACHE_RESULTS
};
void metrics_cache_request(struct metrics *m, enum metrics_cache_layer layer,
                           enum metrics_cache_result result);
/* circuit_breaker_state{dependency="<dependency>"} is fn(ctx) from now on (same rules
 * as metrics_gauge_bind); dependency is a program constant such as "redis". */
void metrics_breaker_bind(struct metrics *m, const char *dependency, metrics_gauge_fn fn,
                          void *ctx);

#endif
