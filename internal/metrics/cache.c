/* metrics — the status read path's families: cache_requests_total{layer,result} and
 * circuit_breaker_state{dependency}. */
#include "metrics/metrics_int.h"

static const char *const layer_names[METRICS_N_CACHE_LAYERS] = {"lru", "redis", "db"};
static const char *const result_names[METRICS_N_CACHE_RESULTS] = {"hit", "negative", "miss",
                                                                  "error"};

int metrics__cache_register(struct metrics *m)
{
    static const char *const cache_labels[] = {"layer", "result"};
    static const char *const breaker_labels[] = {"dependency"};
    struct prom_counter_vec *requests;

    if (prom_counter_vec_new(m->reg, "cache_requests_total",
                             "Task status lookups by cache layer and result.", cache_labels, 2,
                             &requests) < 0 ||
        prom_gauge_vec_new(m->reg, "circuit_breaker_state",
                           "Circuit breaker state per dependency: 0 closed, 1 open, 2 half-open.",
                           breaker_labels, 1, &m->breaker_state) < 0)
        return -1;
    /* every child exists from the start: the hot path is one atomic add, and a
     * dashboard sees zeros rather than absent series */
    for (int l = 0; l < METRICS_N_CACHE_LAYERS; l++) {
        for (int r = 0; r < METRICS_N_CACHE_RESULTS; r++) {
            if (prom_counter_vec_with(requests,
                                      (const char *const[]){layer_names[l], result_names[r]},
                                      &m->cache_requests[l][r]) < 0)
                return -1;
        }
    }
    return 0;
}

void metrics_cache_request(struct metrics *m, enum metrics_cache_layer layer,
                           enum metrics_cache_result result)
{
    if (m && (unsigned)layer < METRICS_N_CACHE_LAYERS &&
        (unsigned)result < METRICS_N_CACHE_RESULTS && m->cache_requests[layer][result])
        prom_counter_inc(m->cache_requests[layer][result]);
}

void metrics_breaker_bind(struct metrics *m, const char *dependency, metrics_gauge_fn fn, void *ctx)
{
    struct prom_gauge *g;
    if (!m || !m->breaker_state || !dependency)
        return;
    if (prom_gauge_vec_with(m->breaker_state, (const char *const[]){dependency}, &g) == 0)
        prom_gauge_bind(g, fn, ctx);
}
