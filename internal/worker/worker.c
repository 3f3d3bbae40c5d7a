/* worker_main: config → log → store → producer → handlers → metrics → taskexec →
 * runner → ops HTTP → run → exit code.  See worker.h. */
#include "worker/worker.h"
#include "worker/worker_int.h"

#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include "cache/cache.h"
#include "config/config.h"
#include "log/log.h"
#include "metrics/metrics.h"
#include "opshttp/opshttp.h"
#include "queue/queue.h"
#include "runner/runner.h"
#include "store/store.h"
#include "taskexec/taskexec.h"

#ifndef DISPATCH_VERSION
#define DISPATCH_VERSION "dev"
#endif

#define READY_TIMEOUT_MS    5000
#define DEP_RETRY_MAX_MS    5000
#define HTTP_CONNECT_MS     10000
#define PROG_DEFAULT        "dispatch-worker"
#define MAX_PUBLISH_HEADERS 128

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) {
        return -1;
    }
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL);
}

/* The ops tables: taskexec's view of the store (worker__commit_ops, commit.c: the
 * group-commit batchers) and of the producer. */
static int publish_op(void *ctx, const char *topic, const void *key, size_t key_len,
                      const void *value, size_t len, const struct taskexec_header *headers,
                      size_t n_headers)
{
    struct queue_header qh[MAX_PUBLISH_HEADERS];
    if (n_headers > MAX_PUBLISH_HEADERS) {
        return TASKEXEC_OP_FAILED; /* taskexec sends at most 72 */
    }
    for (size_t i = 0; i < n_headers; i++) {
        qh[i] = (struct queue_header){
            .name = headers[i].name, .value = headers[i].value, .len = headers[i].len};
    }
    int rc = queue_produce_sync(ctx, topic, key, key_len, value, len, qh, n_headers);
    if (rc != QUEUE_OK) {
        log_warn("publish failed", LOG_S("topic", topic), LOG_S("error", queue_strerror(rc)));
        return TASKEXEC_OP_FAILED;
    }
    return TASKEXEC_OP_OK;
}

static const struct taskexec_queue_ops queue_ops = {.publish_sync = publish_op};

/* After each status write: the Redis entry goes, then the invalidation event
 * (queued: the Redis adapter's thread sends them in batches, in order). */
static void changed_op(void *ctx, const struct ids_id *id)
{
    cache_task_changed(ctx, id, 1);
}

static const struct taskexec_notify_ops notify_ops = {.changed = changed_op};

struct worker {
    struct config cfg;
    char worker_id[300];
    struct store *store;
    struct cache *cache; /* Redis: status invalidation */
    struct queue_producer *producer;
    struct handler_registry *handlers;
    struct handler_http *http;
    struct metrics *metrics;
    struct worker_commit *commit; /* claims and finishes, batched */
    struct taskexec *exec;
    struct runner *runner;
    struct opshttp *ops;
};

static int open_dependencies(struct worker *w)
{
    const struct config *c = &w->cfg;
    struct store_config sc = {
        .host = c->mysql_host,
        .port = c->mysql_port,
        .user = c->mysql_user,
        .password = c->mysql_password,
        .database = c->mysql_database,
        .pool_size = c->mysql_pool_size,
        .connect_timeout_ms = c->mysql_connect_timeout_ms,
        .io_timeout_ms = c->mysql_io_timeout_ms,
    };
    int rc = store_new(&sc, &w->store);
    if (rc < 0) {
        log_error("database unreachable", LOG_S("error", store_strerror(rc)));
        return EX_UNAVAILABLE;
    }
    /* Redis may come later: invalidations are dropped (and entries expire) until then */
    struct cache_config cc = {
        .host = c->redis_host,
        .port = c->redis_port,
        .timeout_ms = c->redis_timeout_ms,
        .pool_size = c->redis_pool_size,
        .breaker_threshold = c->redis_breaker_threshold,
        .breaker_open_ms = c->redis_breaker_open_ms,
        .lease_ms = 1, /* the worker never reads entries */
    };
    if (cache_new(&cc, &w->cache) != CACHE_OK) {
        log_error("redis adapter: out of memory", LOG_NONE);
        return EX_SOFTWARE;
    }
    struct queue_producer_config pc = {
        .brokers = c->kafka_brokers,
        .client_id = w->worker_id,
        .linger_ms = c->kafka_linger_ms,
        .message_timeout_ms = c->publish_timeout_ms,
    };
    rc = queue_producer_new(&pc, &w->producer);
    if (rc < 0 || !queue_producer_ready(w->producer, READY_TIMEOUT_MS)) {
        log_error("kafka unreachable", LOG_S("brokers", c->kafka_brokers),
                  LOG_S("error", rc < 0 ? queue_strerror(rc) : "no metadata"));
        return EX_UNAVAILABLE;
    }
    return 0;
}

/* The http handler's failure detail (URL, libcurl's words): the log, never the task. */
static void log_http_detail(void *ctx, const struct handler_ctx *task, const char *url,
                            const char *detail)
{
    (void)ctx;
    log_warn("http delivery failed", LOG_S("task_id", task->task_id), LOG_S("type", task->type),
             LOG_S("url", url), LOG_S("error", detail));
}

/* The registry: built-ins, the configured http routes, then the embedder's. */
static int build_handlers(struct worker *w, worker_register_fn register_fn, void *arg)
{
    if (handler_registry_new(&w->handlers) < 0 || handler_register_builtins(w->handlers) < 0 ||
        (w->cfg.worker_test_handlers && handler_register_test_handlers(w->handlers) < 0)) {
        log_error("handler registry: out of memory", LOG_NONE);
        return EX_SOFTWARE;
    }
    struct handler_http_config hc = {
        .connect_timeout_ms = HTTP_CONNECT_MS,
        .user_agent = PROG_DEFAULT "/" DISPATCH_VERSION,
        .on_detail = log_http_detail,
    };
    int rc = handler_http_new(&hc, &w->http);
    if (rc < 0) {
        log_error("http handler", LOG_S("error", handler_http_strerror(rc)));
        return EX_SOFTWARE;
    }
    const char *bad = NULL;
    rc = handler_http_routes(w->http, w->handlers, w->cfg.worker_http_routes, &bad);
    if (rc < 0) {
        /* the syntax was checked with the configuration: what is left is a clash */
        log_error("worker_http_routes rejected", LOG_S("error", handler_http_strerror(rc)),
                  LOG_S("at", bad != NULL ? bad : ""));
        return rc == HANDLER_HTTP_ENOMEM ? EX_SOFTWARE : EX_CONFIG;
    }
    if (register_fn != NULL && register_fn(w->handlers, arg) < 0) {
        log_error("registering the program's handlers failed", LOG_NONE);
        return EX_SOFTWARE;
    }
    return 0;
}

static int build_worker(struct worker *w)
{
    const struct config *c = &w->cfg;
    if (metrics_worker_new(&w->metrics) < 0) {
        log_error("metrics: out of memory", LOG_NONE);
        return EX_SOFTWARE;
    }
    struct worker_commit_config wcc = {
        .claim_batch = (size_t)c->worker_claim_batch,
        .finish_batch = (size_t)c->worker_finish_batch,
        .window_us = c->worker_batch_window_ms * 1000,
        .threads = c->worker_commit_threads,
    };
    if (worker__commit_new(&wcc, w->store, &w->commit) < 0) {
        log_error("group commit: out of memory", LOG_NONE);
        return EX_SOFTWARE;
    }
    struct taskexec_config tc = {
        .worker_id = w->worker_id,
        .retry_topic = c->kafka_retry_topic,
        .dlq_topic = c->kafka_dlq_topic,
        .lease_ms = c->worker_lease_ms,
        .default_timeout_ms = c->worker_task_timeout_ms,
        .max_timeout_ms = c->task_timeout_ms_max,
        .backoff = {.base_ms = c->worker_backoff_base_ms, .cap_ms = c->worker_backoff_cap_ms},
        .dep_retry_max_ms = DEP_RETRY_MAX_MS,
        .max_running = c->worker_concurrency,
        .metrics = w->metrics,
        .notify = &notify_ops,
        .notify_ctx = w->cache,
    };
    int rc = taskexec_new(&tc, &worker__commit_ops, w->commit, &queue_ops, w->producer, w->handlers,
                          &w->exec);
    if (rc < 0) {
        log_error("taskexec", LOG_S("error", taskexec_strerror(rc)));
        return EX_SOFTWARE;
    }
    struct runner_config rcfg = {
        .brokers = c->kafka_brokers,
        .group = c->kafka_group,
        .client_id = w->worker_id,
        .tasks_topic = c->kafka_topic,
        .retry_topic = c->kafka_retry_topic,
        /* worker_concurrency handlers run at once (taskexec's gate); the threads
         * beyond them wait on claims and finishes, so that many share a commit */
        .concurrency = c->worker_concurrency + 2 * c->worker_claim_batch,
        .queue_size = c->worker_queue_size,
        .grace_ms = c->worker_grace_ms,
        .revoke_wait_ms = c->worker_grace_ms,
        .session_timeout_ms = c->kafka_session_timeout_ms,
        .metrics = w->metrics,
    };
    rc = runner_new(&rcfg, w->exec, &w->runner);
    if (rc < 0) {
        log_error("runner", LOG_S("error", runner_strerror(rc)));
        return EX_SOFTWARE;
    }
    return 0;
}

static void render_metrics(void *ctx, FILE *out)
{
    (void)metrics_write(ctx, out);
}

static int start_ops(struct worker *w)
{
    struct opshttp_config oc = {
        .addr = w->cfg.worker_http_addr,
        .render = render_metrics,
        .ctx = w->metrics,
    };
    return opshttp_new(&oc, &w->ops) < 0 ? EX_UNAVAILABLE : 0;
}

static void set_worker_id(struct worker *w)
{
    if (w->cfg.worker_id != NULL && w->cfg.worker_id[0] != '\0') {
        snprintf(w->worker_id, sizeof w->worker_id, "%s", w->cfg.worker_id);
        return;
    }
    char host[256] = "worker";
    if (gethostname(host, sizeof host) != 0) {
        snprintf(host, sizeof host, "worker");
    }
    host[sizeof host - 1] = '\0';
    snprintf(w->worker_id, sizeof w->worker_id, "%s-%ld", host, (long)getpid());
}

/* Reverse order of construction; the ops server goes first, so no scrape reads the
 * pool while it is freed.  Pool threads that outlived the drain (a handler that
 * ignores its cancel flag) may still use the taskexec, the batchers, the store and
 * the producer: then those are left to the process exit instead of freed under
 * them. */
static void teardown(struct worker *w)
{
    opshttp_free(w->ops);
    bool leaked = runner_leaked(w->runner);
    runner_free(w->runner);
    if (leaked) {
        log_warn("pool threads still running: leaving their objects to the exit", LOG_NONE);
        config_release(&w->cfg);
        return;
    }
    taskexec_free(w->exec);
    worker__commit_free(w->commit);
    cache_free(w->cache); /* sends the invalidations still queued */
    metrics_free(w->metrics);
    handler_registry_free(w->handlers);
    handler_http_free(w->http);
    queue_producer_free(w->producer);
    store_free(w->store);
    config_release(&w->cfg);
}

/* argv[0]'s last path component: what --help and error lines call the program. */
/* SCHED_BATCH for this thread and every thread started after it (they inherit it):
 * a woken thread does not preempt the running one.  A batcher waking the 64 callers
 * of a finished batch, or a pool thread handing a job on, then runs to its next wait
 * instead of being switched out at each wake-up (on this kind of box about a third
 * of the worker's context switches were such preemptions; docs/architecture.md). */
static void prefer_throughput(void)
{
    struct sched_param sp = {0};
    if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0) {
        log_debug("SCHED_BATCH not available; default scheduling", LOG_NONE);
    }
}

static const char *prog_name(int argc, char **argv)
{
    if (argc < 1 || argv[0] == NULL || argv[0][0] == '\0') {
        return PROG_DEFAULT;
    }
    const char *slash = strrchr(argv[0], '/');
    return slash != NULL && slash[1] != '\0' ? slash + 1 : argv[0];
}

int worker_main(int argc, char **argv, worker_register_fn register_fn, void *arg)
{
    struct worker w;
    memset(&w, 0, sizeof w);
    int rc =
        config_load(&w.cfg, CONFIG_WORKER, prog_name(argc, argv), argc, argv, NULL, stdout, stderr);
    if (rc < 0) {
        return CONFIG_EXIT_INVALID;
    }
    if (rc == CONFIG_EXIT) {
        config_release(&w.cfg);
        return 0;
    }
    enum log_level level = LOG_LEVEL_INFO;
    (void)log_level_parse(w.cfg.log_level, &level);
    log_init(level, "worker");
    set_worker_id(&w);
    prefer_throughput(); /* before any thread is started */

    int code = install_signals() == 0 ? 0 : EX_OSERR;
    if (code == 0) {
        code = build_handlers(&w, register_fn, arg);
    }
    if (code == 0) {
        code = open_dependencies(&w);
    }
    if (code == 0) {
        code = build_worker(&w);
    }
    if (code == 0) {
        code = start_ops(&w);
    }
    if (code == 0) {
        log_info("worker starting", LOG_S("worker_id", w.worker_id),
                 LOG_I("ops_port", opshttp_port(w.ops)));
        rc = runner_run(w.runner, &stop_flag);
        if (rc < 0) {
            log_error("worker failed", LOG_S("error", runner_strerror(rc)));
            code = rc == RUNNER_EQUEUE ? EX_UNAVAILABLE : EX_SOFTWARE;
        }
    }
    teardown(&w);
    log_info("worker stopped", LOG_I("exit_code", code));
    return code;
}
