/* dispatch-producer — the REST API: wiring only.
 *
 * config -> log -> store -> Kafka producer -> submit pipeline -> status -> api; then
 * wait for SIGTERM/SIGINT and take it down in the reverse order, letting requests in
 * flight finish (api stops accepting, the pipeline drains, then the api stops).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "account/account.h"
#include "api/api.h"
#include "auth/auth.h"
#include "cache/cache.h"
#include "config/config.h"
#include "control/control.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "queue/queue.h"
#include "status/status.h"
#include "store/store.h"
#include "submit/submit.h"
#include "workpool/workpool.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

struct wiring {
    struct config cfg;
    struct store *store;
    struct queue_producer *producer;
    struct submit *submit;
    struct status status;
    struct control control;
    struct auth *auth;
    struct account account;
    struct workpool *blocking;
    struct api *api;
    struct metrics *metrics; /* outlives every module that counts */
    struct cache *cache;     /* Redis: status entries and invalidation events */
    struct status_reader *reader;
};

/* How long a status miss reserves the Redis fill for its reader: more than a
 * MariaDB lookup takes; a lease that lapses only costs the fill. */
#define REDIS_LEASE_MS 3000

/* --- adapters seen through the services' ops tables -------------------------- */

static int op_insert(void *ctx, const struct task *const *tasks, struct idem_claim *const *idem,
                     size_t n)
{
    return store_task_insert_batch(ctx, tasks, idem, n);
}

static int op_respond(void *ctx, const struct idem_response *r, size_t n)
{
    return store_idem_respond(ctx, r, n);
}

static int op_mark_queued(void *ctx, const struct ids_id *ids, size_t n)
{
    return store_task_mark_queued(ctx, ids, n);
}

static int op_get(void *ctx, const struct ids_id *id, struct task *ret_task)
{
    return store_task_get(ctx, id, ret_task);
}

static int op_list(void *ctx, const struct status_query *q, struct task **ret_tasks, size_t *ret_n)
{
    struct store_task_filter f = {q->owner, q->after, q->status, q->type, q->limit};
    return store_task_list(ctx, &f, ret_tasks, ret_n);
}

static int op_cancel(void *ctx, const struct ids_id *id, const struct ids_id *owner,
                     struct task *ret_task, enum control_cancel *ret_outcome)
{
    enum store_cancel sc;
    int rc = store_task_cancel(ctx, id, owner, ret_task, &sc);
    if (rc != STORE_OK)
        return rc;
    *ret_outcome = sc == STORE_CANCELED         ? CONTROL_CANCELED
                   : sc == STORE_CANCEL_REFUSED ? CONTROL_CANCEL_CONFLICT
                                                : CONTROL_CANCEL_NOT_FOUND;
    return 0;
}

struct publish_target {
    struct queue_producer *producer;
    const char *topic;
};

static int op_publish(void *ctx, const char *key, size_t key_len, const char *value, size_t len,
                      const char *traceparent, submit_publish_done_fn done, void *opaque)
{
    const struct publish_target *pt = ctx;
    struct queue_header h = {"traceparent", traceparent, traceparent ? strlen(traceparent) : 0};
    return queue_produce(pt->producer, pt->topic, key, key_len, value, len, &h, traceparent ? 1 : 0,
                         done, opaque);
}

static int op_user_insert(void *ctx, const struct ids_id *id, const char *email, const char *hash,
                          int64_t created_at)
{
    return store_user_insert(ctx, id, email, hash, created_at);
}

static int op_user_by_email(void *ctx, const char *email, struct ids_id *ret_id, char *ret_hash,
                            size_t size)
{
    return store_user_by_email(ctx, email, ret_id, ret_hash, size);
}

static bool probe_mysql(void *ctx)
{
    return store_ping(ctx) == STORE_OK;
}

static bool probe_kafka(void *ctx)
{
    return queue_producer_ready(ctx, 1000);
}

static int op_relay(void *ctx, int64_t older_than, int limit, submit_relay_fn publish, void *arg,
                    int *ret_seen, int *ret_published)
{
    return store_task_relay(ctx, older_than, limit, publish, arg, ret_seen, ret_published);
}

static int op_purge_keys(void *ctx, int limit, int *ret_deleted)
{
    return store_idem_purge(ctx, limit, ret_deleted);
}

/* --- the status read path: Redis for the reader, events into it, invalidations -- */

static int op_cache_get(void *ctx, const struct ids_id *id, struct status_cache_entry *ret_entry)
{
    struct cache_entry e;
    int rc = cache_task_get(ctx, id, &e);
    if (rc != CACHE_OK)
        return rc;
    *ret_entry = (struct status_cache_entry){e.value, e.len, e.lease};
    return 0;
}

static int op_cache_fill(void *ctx, const struct ids_id *id, uint64_t lease, int64_t version,
                         const void *value, size_t len, int ttl_ms)
{
    return cache_task_fill(ctx, id, lease, version, value, len, ttl_ms);
}

static void on_event_changed(void *ctx, const struct ids_id *id)
{
    status_changed(ctx, id);
}

static void on_event_state(void *ctx, bool up)
{
    status_events(ctx, up);
}

/* The marker's and the relay's PENDING -> QUEUED: queued for Redis, evicted
 * everywhere (this producer included) by the event. */
static void on_submit_changed(void *ctx, const struct ids_id *ids, size_t n)
{
    cache_task_changed(ctx, ids, n);
}

/* A cancel answers with the new state: Redis and this producer's LRU are told before
 * the response, so the owner's next read sees it; other producers hear the event. */
static void on_cancel_changed(void *ctx, const struct ids_id *id)
{
    struct wiring *w = ctx;
    cache_task_changed_now(w->cache, id, 1);
    status_changed(w->reader, id);
}

static double breaker_gauge(void *ctx)
{
    return (double)cache_breaker_state(ctx);
}

static const struct status_cache_ops status_cache = {op_cache_get, op_cache_fill};
static const struct cache_events_ops cache_events = {on_event_changed, on_event_state};
static const struct submit_notify_ops submit_notify = {on_submit_changed};
static const struct control_notify_ops control_notify = {on_cancel_changed};

static const struct submit_store_ops submit_store = {op_insert, op_mark_queued, op_respond,
                                                     op_relay,  op_purge_keys,  STORE_EINVAL};
static const struct submit_queue_ops submit_queue = {op_publish};
static const struct status_store_ops status_store = {op_get, op_list};
static const struct control_store_ops control_store = {op_cancel};
static const struct account_store_ops account_store = {op_user_insert, op_user_by_email, STORE_EDUP,
                                                       STORE_ENOTFOUND};

static int start(struct wiring *w, struct publish_target *pt, struct api_probe *probes)
{
    const struct config *c = &w->cfg;
    struct store_config sc = {c->mysql_host,
                              c->mysql_port,
                              c->mysql_user,
                              c->mysql_password,
                              c->mysql_database,
                              c->mysql_pool_size,
                              c->mysql_connect_timeout_ms,
                              c->mysql_io_timeout_ms};
    struct queue_producer_config pc = {c->kafka_brokers, "dispatch-producer", c->kafka_linger_ms,
                                       c->publish_timeout_ms};
    struct submit_config subc = {
        .threads = c->submit_threads,
        .batch_max = c->submit_batch_max,
        .publish_timeout_ms = c->publish_timeout_ms,
        .max_waiting = c->http_max_connections,
        .outbox_age_ms = c->outbox_age_ms,
        .relay_interval_ms = 1000,
        .purge_interval_ms = 60000,
        .notify = &submit_notify,
    };
    struct api_config ac = {c->http_addr,
                            c->http_threads,
                            c->http_max_connections,
                            c->http_per_ip_connections,
                            c->http_timeout_s,
                            c->http_max_body_bytes,
                            c->json_max_depth,
                            c->idempotency_ttl_s,
                            c->task_timeout_ms_max};

    struct auth_config authc = {c->jwt_secret, c->jwt_issuer, c->token_ttl_s, 5};
    struct cache_config cc = {.host = c->redis_host,
                              .port = c->redis_port,
                              .timeout_ms = c->redis_timeout_ms,
                              .pool_size = c->redis_pool_size,
                              .breaker_threshold = c->redis_breaker_threshold,
                              .breaker_open_ms = c->redis_breaker_open_ms,
                              .lease_ms = REDIS_LEASE_MS};
    struct status_read_config rc = {.lru_entries = (size_t)c->status_lru_entries,
                                    .lru_bytes = (size_t)c->status_lru_bytes,
                                    .lru_ttl_ms = c->status_lru_ttl_ms,
                                    .negative_ttl_ms = c->status_negative_ttl_ms,
                                    .redis_ttl_ms = c->redis_ttl_ms,
                                    .redis_terminal_ttl_ms = c->redis_terminal_ttl_ms,
                                    .threads = c->status_threads,
                                    .queue_max = c->http_max_connections};

    if (auth_new(&authc, &w->auth) != AUTH_OK) {
        /* configuration, not a dependency: say it like any other bad setting */
        fprintf(stderr,
                "dispatch-producer: DISPATCH_JWT_SECRET must be set to a secret of at "
                "least %d bytes\n",
                AUTH_SECRET_MIN);
        return CONFIG_EXIT_INVALID;
    }
    if (metrics_producer_new(&w->metrics) < 0)
        return EX_OSERR;
    if (workpool_new(c->auth_hash_threads, c->auth_hash_queue, &w->blocking) < 0)
        return EX_OSERR;
    if (store_new(&sc, &w->store) != STORE_OK)
        return EX_UNAVAILABLE;
    if (queue_producer_new(&pc, &w->producer) != QUEUE_OK)
        return EX_UNAVAILABLE;
    pt->producer = w->producer;
    pt->topic = c->kafka_topic;
    /* Redis is optional at start: reads go to MariaDB until it answers */
    if (cache_new(&cc, &w->cache) != CACHE_OK)
        return EX_OSERR;
    subc.notify_ctx = w->cache;
    if (submit_new(&subc, &submit_store, w->store, &submit_queue, pt, &w->submit) < 0)
        return EX_OSERR;
    w->status = (struct status){&status_store, w->store, STORE_ENOTFOUND};
    rc.metrics = w->metrics;
    if (status_reader_new(&rc, &w->status, &status_cache, w->cache, &w->reader) != STATUS_OK ||
        cache_subscribe(w->cache, &cache_events, w->reader) != CACHE_OK)
        return EX_OSERR;
    metrics_breaker_bind(w->metrics, "redis", breaker_gauge, w->cache);
    w->control = (struct control){&control_store, w->store, &control_notify, w};
    probes[0] = (struct api_probe){"mysql", probe_mysql, w->store};
    probes[1] = (struct api_probe){"kafka", probe_kafka, w->producer};
    w->account = (struct account){&account_store, w->store, w->auth};
    struct api_deps deps = {w->submit, &w->status, &w->account, w->auth,    w->blocking,
                            probes,    2,          &w->control, w->metrics, w->reader};
    if (api_new(&ac, &deps, &w->api) < 0)
        return EX_UNAVAILABLE;
    return EX_OK;
}

static void stop(struct wiring *w)
{
    api_quiesce(w->api);
    submit_free(w->submit);        /* completes every request it took */
    workpool_free(w->blocking);    /* and so does the sign-in pool */
    cache_unsubscribe(w->cache);   /* no more events into the reader */
    status_reader_stop(w->reader); /* answers its long-polls and lookups */
    api_free(w->api);
    status_reader_free(w->reader);
    metrics_breaker_bind(w->metrics, "redis", NULL, NULL);
    cache_free(w->cache); /* after the api and submit: both invalidate */
    auth_free(w->auth);
    queue_producer_free(w->producer);
    store_free(w->store);
    metrics_free(w->metrics);
}

int main(int argc, char **argv)
{
    struct wiring w = {0};
    struct publish_target pt = {0};
    struct api_probe probes[2];
    struct sigaction sa = {0};
    sigset_t stop_set, old_set;
    enum log_level level = LOG_LEVEL_INFO;
    int rc =
        config_load(&w.cfg, CONFIG_PRODUCER, "dispatch-producer", argc, argv, NULL, stdout, stderr);
    if (rc < 0)
        return CONFIG_EXIT_INVALID;
    if (rc == CONFIG_EXIT)
        return EX_OK;
    log_level_parse(w.cfg.log_level, &level);
    log_init(level, "producer");

    /* block the stop signals before any thread starts, so they all inherit the
     * mask and only sigsuspend() below receives them: no lost wake-up */
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_set, &old_set);

    rc = start(&w, &pt, probes);
    if (rc == EX_OK) {
        log_info("producer listening", LOG_S("addr", w.cfg.http_addr),
                 LOG_I("port", api_port(w.api)));
        while (!stop_flag)
            sigsuspend(&old_set);
        log_info("producer stopping", LOG_NONE);
    } else {
        log_error("producer failed to start", LOG_I("exit_code", rc));
    }
    stop(&w);
    config_release(&w.cfg);
    return rc;
}
