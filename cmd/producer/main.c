/* dispatch-producer — the REST API: wiring only.
 *
 * config -> log -> store -> Kafka producer -> submit pipeline -> status -> api; then
 * wait for SIGTERM/SIGINT and take it down in the reverse order, letting requests in
 * flight finish (the api stops accepting and refuses new requests, the pipeline
 * drains, then the api stops).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "account/account.h"
#include "api/api.h"
#include "auth/auth.h"
#include "cache/cache.h"
#include "config/config.h"
#include "control/control.h"
#include "guard/guard.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "queue/queue.h"
#include "ratelimit/ratelimit.h"
#include "status/status.h"
#include "store/store.h"
#include "submit/submit.h"
#include "tokenbucket/tokenbucket.h"
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
    /* faltering dependencies: every MariaDB and Kafka call of a request goes through
     * its guard (breaker, slow-call watch); the prober behind /readyz */
    struct guard *db_guard, *queue_guard, *redis_guard;
    struct workpool *db_pool; /* GET /tasks and cancels, off the HTTP threads */
    struct publish_target *target;
    struct ratelimit *ratelimit; /* POST /tasks, /auth/login and /auth/register */
};

/* How long a status miss reserves the Redis fill for its reader: more than a
 * MariaDB lookup takes; a lease that lapses only costs the fill. */
#define REDIS_LEASE_MS 3000

/* --- adapters seen through the services' ops tables -------------------------- */

/* Every MariaDB call of the services goes through the db guard: refused at once
 * while its circuit is open (STORE_EDB, which every service reads as "unavailable"),
 * watched while it runs, its outcome reported (db_leave).  Only STORE_EDB is the
 * dependency's failure: not found, duplicate key and a refused value are answers. */
static int db_leave(struct wiring *w, struct guard_call *gc, int rc)
{
    guard_leave(w->db_guard, gc, rc != STORE_EDB);
    return rc;
}

static int op_insert(void *ctx, const struct task *const *tasks, struct idem_claim *const *idem,
                     size_t n)
{
    struct wiring *w = ctx;
    struct guard_call gc;
    if (!guard_enter(w->db_guard, &gc))
        return STORE_EDB;
    return db_leave(w, &gc, store_task_insert_batch(w->store, tasks, idem, n));
}

static int op_respond(void *ctx, const struct idem_response *r, size_t n)
{
    struct wiring *w = ctx;
    struct guard_call gc;
    if (!guard_enter(w->db_guard, &gc))
        return STORE_EDB;
    return db_leave(w, &gc, store_idem_respond(w->store, r, n));
}

static int op_mark_queued(void *ctx, const struct ids_id *ids, size_t n)
{
    struct wiring *w = ctx;
    struct guard_call gc;
    if (!guard_enter(w->db_guard, &gc))
        return STORE_EDB;
    return db_leave(w, &gc, store_task_mark_queued(w->store, ids, n));
}

static int op_get(void *ctx, const struct ids_id *id, struct task *ret_task)
{
    struct wiring *w = ctx;
    struct guard_call gc;
    if (!guard_enter(w->db_guard, &gc))
        return STORE_EDB;
    return db_leave(w, &gc, store_task_get(w->store, id, ret_task));
}

static int op_list(void *ctx, const struct status_query *q, struct task **ret_tasks, size_t *ret_n)
{
    struct wiring *w = ctx;
    struct store_task_filter f = {q->owner, q->after, q->status, q->type, q->limit};
    struct guard_call gc;
    if (!guard_enter(w->db_guard, &gc))
        return STORE_EDB;
    return db_leave(w, &gc, store_task_list(w->store, &f, ret_tasks, ret_n));
}

static int guarded_cancel(struct wiring *w, const struct ids_id *id, const struct ids_id *owner,
                          struct task *ret_task, enum store_cancel *ret_sc)
{
    struct guard_call gc;
    if (!guard_enter(w->db_guard, &gc))
        return STORE_EDB;
    return db_leave(w, &gc, store_task_cancel(w->store, id, owner, ret_task, ret_sc));
}

static int op_cancel(void *ctx, const struct ids_id *id, const struct ids_id *owner,
                     struct task *ret_task, enum control_cancel *ret_outcome)
{
    enum store_cancel sc;
    int rc = guarded_cancel(ctx, id, owner, ret_task, &sc);
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
    struct guard *guard;
    int check_timeout_ms;
};

/* One message under the Kafka guard, from produce to its delivery report. */
struct guarded_publish {
    submit_publish_done_fn done;
    void *opaque;
    struct guard *guard;
    struct guard_call call;
};

static void on_guarded_report(void *opaque, int err, const char *detail)
{
    struct guarded_publish *gp = opaque;
    guard_leave(gp->guard, &gp->call, err == QUEUE_OK);
    gp->done(gp->opaque, err, detail);
    free(gp);
}

static int op_publish(void *ctx, const char *key, size_t key_len, const char *value, size_t len,
                      const char *traceparent, submit_publish_done_fn done, void *opaque)
{
    const struct publish_target *pt = ctx;
    struct queue_header h = {"traceparent", traceparent, traceparent ? strlen(traceparent) : 0};
    struct guarded_publish *gp = malloc(sizeof *gp);
    int rc;
    if (!gp)
        return QUEUE_ENOMEM;
    *gp = (struct guarded_publish){done, opaque, pt->guard, {-1}};
    if (!guard_enter(pt->guard, &gp->call)) {
        free(gp); /* circuit open: not even queued locally */
        return QUEUE_EKAFKA;
    }
    rc = queue_produce(pt->producer, pt->topic, key, key_len, value, len, &h, traceparent ? 1 : 0,
                       on_guarded_report, gp);
    if (rc != QUEUE_OK) {
        guard_leave(pt->guard, &gp->call, false);
        free(gp);
    }
    return rc;
}

static int op_user_insert(void *ctx, const struct ids_id *id, const char *email, const char *hash,
                          int64_t created_at)
{
    struct wiring *w = ctx;
    struct guard_call gc;
    if (!guard_enter(w->db_guard, &gc))
        return STORE_EDB;
    return db_leave(w, &gc, store_user_insert(w->store, id, email, hash, created_at));
}

static int op_user_by_email(void *ctx, const char *email, struct ids_id *ret_id, char *ret_hash,
                            size_t size)
{
    struct wiring *w = ctx;
    struct guard_call gc;
    if (!guard_enter(w->db_guard, &gc))
        return STORE_EDB;
    return db_leave(w, &gc, store_user_by_email(w->store, email, ret_id, ret_hash, size));
}

/* The prober's checks (internal/guard), on its threads. */
static bool probe_mysql(void *ctx)
{
    return store_ping(ctx) == STORE_OK;
}

static bool probe_kafka(void *ctx)
{
    const struct publish_target *pt = ctx;
    return queue_producer_ready(pt->producer, pt->check_timeout_ms);
}

static bool probe_redis(void *ctx)
{
    return cache_ping(ctx) == CACHE_OK;
}

static int redis_state(void *ctx)
{
    return cache_breaker_state(ctx);
}

/* The relay's transaction spans its publish (and so a broker's silence): it is not
 * watched for slowness, only kept off while the MariaDB circuit is open. */
static int op_relay(void *ctx, int64_t older_than, int limit, submit_relay_fn publish, void *arg,
                    int *ret_seen, int *ret_published)
{
    struct wiring *w = ctx;
    if (guard_refuses(w->db_guard, NULL))
        return STORE_EDB;
    return store_task_relay(w->store, older_than, limit, publish, arg, ret_seen, ret_published);
}

static int op_purge_keys(void *ctx, int limit, int *ret_deleted)
{
    struct wiring *w = ctx;
    struct guard_call gc;
    if (!guard_enter(w->db_guard, &gc))
        return STORE_EDB;
    return db_leave(w, &gc, store_idem_purge(w->store, limit, ret_deleted));
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

/* The rate limiter's shared store: Redis's buckets; any cache error is "no answer". */
static int op_ratelimit_take(void *ctx, const char *key, size_t klen, double rate, double burst,
                             long long used, long long want, long long *ret_granted,
                             int64_t *ret_wait_us)
{
    return cache_ratelimit_take(ctx, key, klen, rate, burst, used, want, ret_granted,
                                ret_wait_us) == CACHE_OK
               ? 0
               : -1;
}

static const struct ratelimit_store_ops ratelimit_store = {op_ratelimit_take};

static int start_ratelimit(struct wiring *w)
{
    const struct config *c = &w->cfg;
    const char *specs[RATELIMIT_N_SCOPES] = {
        [RATELIMIT_TASKS_USER] = c->rate_limit_tasks_user,
        [RATELIMIT_TASKS_GLOBAL] = c->rate_limit_tasks_global,
        [RATELIMIT_AUTH_ADDR] = c->rate_limit_auth_addr,
        [RATELIMIT_AUTH_EMAIL] = c->rate_limit_auth_email,
    };
    struct ratelimit_config rc = {.enabled = c->rate_limit_enabled != 0,
                                  .lease_ms = c->rate_limit_lease_ms,
                                  .max_keys = (size_t)c->rate_limit_max_keys,
                                  .store = c->rate_limit_redis ? &ratelimit_store : NULL,
                                  .store_ctx = w->cache};
    for (int i = 0; i < RATELIMIT_N_SCOPES; i++) {
        struct tokenbucket_spec s;
        if (tokenbucket_spec_parse(specs[i], &s) < 0) /* config checked it already */
            return -1;
        rc.policy[i] = (struct ratelimit_policy){!s.off, s.quota, s.window_s, s.burst};
    }
    return ratelimit_new(&rc, &w->ratelimit) == RATELIMIT_OK ? 0 : -1;
}

static double breaker_gauge(void *ctx)
{
    return (double)cache_breaker_state(ctx);
}

static double guard_gauge(void *ctx)
{
    return (double)guard_breaker_state(ctx);
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

/* The three guards and their probers (internal/guard), the breaker gauges. */
static int start_guards(struct wiring *w, struct publish_target *pt)
{
    const struct config *c = &w->cfg;
    struct guard_config db = {.name = "mysql",
                              .failure_threshold = c->mysql_breaker_threshold,
                              .open_ms = c->mysql_breaker_open_ms,
                              .slow_ms = c->request_deadline_ms,
                              .check = probe_mysql,
                              .check_ctx = w->store,
                              .check_interval_ms = c->probe_interval_ms,
                              .check_timeout_ms = c->probe_timeout_ms};
    struct guard_config kafka = db, redis = db;

    kafka.name = "kafka";
    kafka.failure_threshold = c->kafka_breaker_threshold;
    kafka.open_ms = c->kafka_breaker_open_ms;
    kafka.check = probe_kafka;
    kafka.check_ctx = pt;
    /* Redis keeps its own breaker (internal/cache): the guard only probes it */
    redis.name = "redis";
    redis.failure_threshold = 0;
    redis.slow_ms = 0;
    redis.check = probe_redis;
    redis.check_ctx = w->cache;
    redis.state_fn = redis_state;
    redis.state_ctx = w->cache;
    pt->check_timeout_ms = c->probe_timeout_ms;
    if (guard_new(&db, &w->db_guard) < 0 || guard_new(&kafka, &w->queue_guard) < 0 ||
        guard_new(&redis, &w->redis_guard) < 0)
        return EX_OSERR;
    pt->guard = w->queue_guard;
    metrics_breaker_bind(w->metrics, "redis", breaker_gauge, w->cache);
    metrics_breaker_bind(w->metrics, "mysql", guard_gauge, w->db_guard);
    metrics_breaker_bind(w->metrics, "kafka", guard_gauge, w->queue_guard);
    return EX_OK;
}

static int start(struct wiring *w, struct publish_target *pt, struct api_dependency *deps_ready)
{
    const struct config *c = &w->cfg;
    int rc_exit;
    struct store_config sc = {c->mysql_host,
                              c->mysql_port,
                              c->mysql_user,
                              c->mysql_password,
                              c->mysql_database,
                              c->mysql_pool_size,
                              c->mysql_connect_timeout_ms,
                              c->mysql_io_timeout_ms,
                              c->mysql_acquire_timeout_ms};
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
                            c->http_head_timeout_s,
                            c->http_body_timeout_s,
                            c->http_body_min_rate,
                            c->http_connection_memory_bytes,
                            c->http_body_budget_bytes,
                            c->http_anon_max_body_bytes,
                            c->request_deadline_ms,
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
    rc_exit = start_guards(w, pt);
    if (rc_exit != EX_OK)
        return rc_exit;
    if (workpool_new(c->status_threads, c->http_max_connections, &w->db_pool) < 0)
        return EX_OSERR;
    subc.notify_ctx = w->cache;
    if (submit_new(&subc, &submit_store, w, &submit_queue, pt, &w->submit) < 0)
        return EX_OSERR;
    w->status = (struct status){&status_store, w, STORE_ENOTFOUND};
    rc.metrics = w->metrics;
    if (status_reader_new(&rc, &w->status, &status_cache, w->cache, &w->reader) != STATUS_OK ||
        cache_subscribe(w->cache, &cache_events, w->reader) != CACHE_OK)
        return EX_OSERR;
    if (start_ratelimit(w) < 0)
        return EX_OSERR;
    w->control = (struct control){&control_store, w, &control_notify, w};
    deps_ready[0] = (struct api_dependency){w->db_guard, true};
    deps_ready[1] = (struct api_dependency){w->queue_guard, true};
    deps_ready[2] = (struct api_dependency){w->redis_guard, false}; /* reads fall back */
    w->account = (struct account){&account_store, w, w->auth};
    struct api_deps deps = {w->submit,   &w->status,  &w->account, w->auth,
                            w->blocking, deps_ready,  3,           &w->control,
                            w->metrics,  w->reader,   w->db_guard, w->queue_guard,
                            w->db_pool,  w->ratelimit};
    if (api_new(&ac, &deps, &w->api) < 0)
        return EX_UNAVAILABLE;
    return EX_OK;
}

/* The order is what keeps kept-alive connections from reaching freed modules:
 * api_quiesce() stops accepting, makes every request not yet handed to a handler
 * answer 503 (Connection: close) and waits for the handlers running; only then are
 * the modules behind the handlers freed (each completing what it holds), and only
 * after them the api, which closes the connections. */
static void stop(struct wiring *w)
{
    api_quiesce(w->api);
    submit_free(w->submit);        /* completes every request it took */
    workpool_free(w->blocking);    /* and so does the sign-in pool */
    workpool_free(w->db_pool);     /* and the lists' and cancels' */
    cache_unsubscribe(w->cache);   /* no more events into the reader */
    status_reader_stop(w->reader); /* answers its long-polls and lookups */
    api_free(w->api);
    status_reader_free(w->reader);
    ratelimit_free(w->ratelimit); /* after the api (its threads decide), before the cache */
    metrics_breaker_bind(w->metrics, "redis", NULL, NULL);
    metrics_breaker_bind(w->metrics, "mysql", NULL, NULL);
    metrics_breaker_bind(w->metrics, "kafka", NULL, NULL);
    /* nothing calls through the guards any more (submit waited for its reports);
     * their probers stop before the adapters they check go */
    guard_free(w->db_guard);
    guard_free(w->queue_guard);
    guard_free(w->redis_guard);
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
    struct api_dependency deps_ready[3];
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

    rc = start(&w, &pt, deps_ready);
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
