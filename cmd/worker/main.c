/* dispatch-worker: wiring only.  config → log → store → producer → handlers →
 * taskexec → runner → run → exit code (78 bad config, 69 a dependency unreachable at
 * start, 70 internal failure, 0 after a clean drain on SIGTERM/SIGINT). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include "config/config.h"
#include "handler/handler.h"
#include "log/log.h"
#include "opshttp/opshttp.h"
#include "queue/queue.h"
#include "runner/runner.h"
#include "store/store.h"
#include "taskexec/taskexec.h"

/* Until config grows worker_backoff_* and worker_task_timeout_ms options. */
#define READY_TIMEOUT_MS 5000
#define DEP_RETRY_MAX_MS 5000

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

/* The ops tables: taskexec's view of the store and the producer. */
static int claim_op(void *ctx, const struct ids_id *id, const char *worker_id, int lease_ms,
                    struct task *ret_task, enum store_claim *ret_claim)
{
    return store_task_claim(ctx, id, worker_id, lease_ms, ret_task, ret_claim);
}

static int finish_op(void *ctx, const struct ids_id *id, int attempt,
                     const struct store_finish *fin)
{
    return store_task_finish(ctx, id, attempt, fin);
}

static int publish_op(void *ctx, const char *topic, const void *key, size_t key_len,
                      const void *value, size_t len, const struct queue_header *headers,
                      size_t n_headers)
{
    return queue_produce_sync(ctx, topic, key, key_len, value, len, headers, n_headers);
}

static const struct taskexec_store_ops store_ops = {.claim = claim_op, .finish = finish_op};
static const struct taskexec_queue_ops queue_ops = {.publish_sync = publish_op};

struct worker {
    struct config cfg;
    char worker_id[300];
    struct store *store;
    struct queue_producer *producer;
    struct handler_registry *handlers;
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

static int build_worker(struct worker *w)
{
    const struct config *c = &w->cfg;
    if (handler_registry_new(&w->handlers) < 0 || handler_register_builtins(w->handlers) < 0) {
        log_error("handler registry: out of memory", LOG_NONE);
        return EX_SOFTWARE;
    }
    struct taskexec_config tc = {
        .worker_id = w->worker_id,
        .retry_topic = c->kafka_retry_topic,
        .dlq_topic = c->kafka_dlq_topic,
        .lease_ms = c->worker_lease_ms,
        .default_timeout_ms = c->worker_task_timeout_ms,
        .backoff = {.base_ms = c->worker_backoff_base_ms, .cap_ms = c->worker_backoff_cap_ms},
        .dep_retry_max_ms = DEP_RETRY_MAX_MS,
    };
    int rc =
        taskexec_new(&tc, &store_ops, w->store, &queue_ops, w->producer, w->handlers, &w->exec);
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
        .concurrency = c->worker_concurrency,
        .queue_size = c->worker_queue_size,
        .grace_ms = c->worker_grace_ms,
        .revoke_wait_ms = c->worker_grace_ms,
        .session_timeout_ms = c->kafka_session_timeout_ms,
    };
    rc = runner_new(&rcfg, w->exec, &w->runner);
    if (rc < 0) {
        log_error("runner", LOG_S("error", runner_strerror(rc)));
        return EX_SOFTWARE;
    }
    return 0;
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

static void teardown(struct worker *w)
{
    opshttp_free(w->ops);
    runner_free(w->runner);
    taskexec_free(w->exec);
    handler_registry_free(w->handlers);
    queue_producer_free(w->producer);
    store_free(w->store);
    config_release(&w->cfg);
}

int main(int argc, char **argv)
{
    struct worker w;
    memset(&w, 0, sizeof w);
    int rc =
        config_load(&w.cfg, CONFIG_WORKER, "dispatch-worker", argc, argv, NULL, stdout, stderr);
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

    int code = install_signals() == 0 ? 0 : EX_OSERR;
    if (code == 0) {
        code = open_dependencies(&w);
    }
    if (code == 0) {
        code = build_worker(&w);
    }
    if (code == 0) {
        struct opshttp_config oc = {.addr = w.cfg.worker_http_addr};
        if (opshttp_new(&oc, &w.ops) < 0)
            code = EX_UNAVAILABLE;
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
