/* metrics module-private: the set's layout and the process gauges. */
#ifndef DISPATCH_METRICS_INT_H
#define DISPATCH_METRICS_INT_H

#include "metrics/metrics.h"
#include "prom/prom.h"

struct metrics {
    struct prom_registry *reg;
    struct prom_counter_vec *http_requests;
    struct prom_histogram_vec *http_duration;
    struct prom_counter *counters[METRICS_N_COUNTERS];
    /* the worker's set (worker.c); NULL in the producer's */
    struct prom_counter_vec *tasks_processed;
    struct prom_histogram_vec *task_duration;
    struct prom_counter *worker_counters[METRICS_N_WORKER_COUNTERS];
    struct prom_gauge *gauges[METRICS_N_GAUGES];
    /* the status read path (cache.c); NULL in the worker's */
    struct prom_counter *cache_requests[METRICS_N_CACHE_LAYERS][METRICS_N_CACHE_RESULTS];
    struct prom_gauge_vec *breaker_state;
};

/* process_start_time_seconds (now), process_resident_memory_bytes and
 * process_open_fds (read from /proc at each scrape).  0, or -1. */
int metrics__process_register(struct prom_registry *reg);

/* cache_requests_total (every layer/result child made up front) and
 * circuit_breaker_state.  0, or -1. */
int metrics__cache_register(struct metrics *m);

#endif
