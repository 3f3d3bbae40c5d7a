/* metrics — the worker's families on a pkg/prom registry (see metrics.h). */
#include "metrics/metrics_int.h"

#include <stdlib.h>

/* 1 ms .. 5 min: a noop takes microseconds, an http delivery up to its timeout
 * (worker_task_timeout_ms is 30 s by default). */
static const double task_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                     1,     2.5,   5,    10,    30,   60,  300};

static const struct {
    const char *name;
    const char *help;
} worker_counter_defs[METRICS_N_WORKER_COUNTERS] = {
    [METRICS_TASK_RETRIES] = {"task_retries_total",
                              "Failed attempts scheduled again on the retry topic."},
    [METRICS_DLQ_MESSAGES] = {"dlq_messages_total", "Messages published to the dead-letter topic."},
};

static const struct {
    const char *name;
    const char *help;
} gauge_defs[METRICS_N_GAUGES] = {
    [METRICS_POOL_QUEUE_DEPTH] = {"pool_queue_depth", "Tasks waiting for a pool thread."},
    [METRICS_POOL_BUSY] = {"pool_busy", "Pool threads running a task."},
};

static int register_worker(struct metrics *m)
{
    static const char *const processed_labels[] = {"type", "outcome"};
    static const char *const type_label[] = {"type"};
    if (prom_counter_vec_new(m->reg, "tasks_processed_total",
                             "Task messages the worker finished, by task type and outcome.",
                             processed_labels, 2, &m->tasks_processed) < 0 ||
        prom_histogram_vec_new(m->reg, "task_duration_seconds",
                               "Time a handler ran for one attempt, in seconds.", type_label, 1,
                               task_bounds, sizeof task_bounds / sizeof task_bounds[0],
                               &m->task_duration) < 0) {
        return -1;
    }
    for (size_t i = 0; i < METRICS_N_WORKER_COUNTERS; i++) {
        if (prom_counter_new(m->reg, worker_counter_defs[i].name, worker_counter_defs[i].help,
                             &m->worker_counters[i]) < 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < METRICS_N_GAUGES; i++) {
        if (prom_gauge_new(m->reg, gauge_defs[i].name, gauge_defs[i].help, &m->gauges[i]) < 0) {
            return -1;
        }
    }
    return metrics__process_register(m->reg);
}

int metrics_worker_new(struct metrics **ret_m)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return -1;
    }
    if (prom_registry_new(0, &m->reg) < 0 || register_worker(m) < 0) {
        metrics_free(m);
        return -1;
    }
    *ret_m = m;
    return 0;
}

void metrics_worker_add(struct metrics *m, enum metrics_worker_counter which, uint64_t n)
{
    if (m != NULL && (unsigned)which < METRICS_N_WORKER_COUNTERS &&
        m->worker_counters[which] != NULL) {
        prom_counter_add(m->worker_counters[which], n);
    }
}

void metrics_task_processed(struct metrics *m, const char *type, const char *outcome,
                            double seconds)
{
    if (m == NULL || m->tasks_processed == NULL) {
        return;
    }
    const char *t = type != NULL && type[0] != '\0' ? type : "other";
    struct prom_counter *c;
    struct prom_histogram *h;
    /* beyond the family's bound (PROM_ELIMIT) the message is not counted */
    if (prom_counter_vec_with(m->tasks_processed,
                              (const char *const[]){t, outcome != NULL ? outcome : "other"},
                              &c) == 0) {
        prom_counter_inc(c);
    }
    if (seconds >= 0 &&
        prom_histogram_vec_with(m->task_duration, (const char *const[]){t}, &h) == 0) {
        prom_histogram_observe(h, seconds);
    }
}

void metrics_gauge_bind(struct metrics *m, enum metrics_gauge which, metrics_gauge_fn fn, void *ctx)
{
    if (m != NULL && (unsigned)which < METRICS_N_GAUGES && m->gauges[which] != NULL) {
        prom_gauge_bind(m->gauges[which], fn, ctx);
    }
}
