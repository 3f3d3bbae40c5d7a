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
};

/* process_start_time_seconds (now), process_resident_memory_bytes and
 * process_open_fds (read from /proc at each scrape).  0, or -1. */
int metrics__process_register(struct prom_registry *reg);

#endif
