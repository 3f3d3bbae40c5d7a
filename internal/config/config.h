/* config — every setting of every binary, parsed once from one table.
 *
 * Precedence, lowest first: the table's default, the config file, the environment
 * (DISPATCH_<NAME>), then flags (--<name-with-dashes>=VALUE or --<name> VALUE).
 * The config file is named by --config FILE or DISPATCH_CONFIG; it holds env-file
 * lines "DISPATCH_NAME=value" (blank lines and '#' comments allowed, an optional
 * "export " prefix, optional single or double quotes around the value) — so
 * `.local/stack.env` is itself a valid config file.  Unknown DISPATCH_* names, in the
 * file as in the environment, are ignored: other tools share the prefix (e.g.
 * DISPATCH_API_URL); --check-config shows what was taken.  Lines that are not
 * NAME=value are an error naming the file and line.
 *
 * Each option belongs to one or more binaries (scope); --help lists only the options
 * of the binary asking.  --check-config prints the effective configuration, one
 * "DISPATCH_NAME=value" line each, secrets shown as "<redacted>" (or "<unset>").
 */
#ifndef DISPATCH_CONFIG_H
#define DISPATCH_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

enum config_scope {
    CONFIG_PRODUCER = 1u << 0,
    CONFIG_WORKER = 1u << 1,
    CONFIG_CTL = 1u << 2,
};

/* All strings are owned by the struct and freed by config_release(). */
struct config {
    char *log_level; /* debug|info|warn|error */

    /* producer HTTP */
    char *http_addr; /* host:port the API listens on */
    int http_threads;
    int http_max_connections;
    int http_per_ip_connections;
    int http_timeout_s; /* idle connection timeout */
    long long http_max_body_bytes;
    /* edge protection (issue 9) */
    int http_head_timeout_s;
    int http_body_timeout_s;
    int http_body_min_rate;
    int http_connection_memory_bytes;
    long long http_body_budget_bytes;
    long long http_anon_max_body_bytes;
    int json_max_depth;

    /* MariaDB */
    char *mysql_host;
    int mysql_port;
    char *mysql_user;
    char *mysql_password; /* secret */
    char *mysql_database;
    int mysql_pool_size;
    int mysql_connect_timeout_ms;
    int mysql_io_timeout_ms;

    /* Redis */
    char *redis_host;
    int redis_port;
    int redis_timeout_ms;        /* connect and each command */
    int redis_pool_size;         /* command connections per process */
    int redis_breaker_threshold; /* consecutive failures that open the circuit */
    int redis_breaker_open_ms;   /* how long it stays open before a probe */
    int redis_ttl_ms;            /* status entries of tasks still moving (+-10 %) */
    int redis_terminal_ttl_ms;   /* status entries of SUCCEEDED/DEAD/CANCELED tasks */

    /* status reads (producer) */
    int status_lru_entries;
    int status_lru_ttl_ms;
    int status_negative_ttl_ms; /* unknown task ids */
    int status_threads;         /* Redis and MariaDB lookups of GET /tasks/{id} */

    /* Kafka */
    char *kafka_brokers;
    char *kafka_topic;
    char *kafka_retry_topic;
    char *kafka_dlq_topic;
    char *kafka_group;
    int kafka_linger_ms;
    int kafka_partitions;   /* used by `dispatchctl topics create` */
    int publish_timeout_ms; /* how long POST /tasks waits for the broker's ack */

    /* submit pipeline */
    int submit_threads;
    int submit_batch_max;
    int outbox_age_ms; /* PENDING rows older than this are republished by the relay */

    /* worker */
    int worker_concurrency;
    int worker_queue_size;
    char *worker_http_addr;   /* host:port of the worker's /healthz and /metrics */
    char *worker_http_routes; /* "type=URL,...": tasks the http handler POSTs; "" none */
    char *worker_id;          /* empty: <hostname>-<pid> */
    int worker_lease_ms;
    int worker_grace_ms; /* SIGTERM drain grace period */
    int worker_task_timeout_ms;
    int worker_backoff_base_ms;
    int worker_backoff_cap_ms;
    /* worker group commit (issue 8) */
    int worker_claim_batch;
    int worker_finish_batch;
    int worker_batch_window_ms;
    int worker_commit_threads;
    int kafka_session_timeout_ms;

    /* auth and idempotency (producer) */
    char *jwt_secret; /* secret, >= 32 bytes */
    char *jwt_issuer;
    int token_ttl_s;
    int auth_hash_threads;
    int auth_hash_queue;
    int idempotency_ttl_s;

    /* dispatchctl */
    char *migrations_dir;

    /* faltering dependencies (producer): request deadline, breakers, prober */
    int request_deadline_ms;
    int mysql_acquire_timeout_ms;
    int mysql_breaker_threshold;
    int mysql_breaker_open_ms;
    int kafka_breaker_threshold;
    int kafka_breaker_open_ms;
    int probe_interval_ms;
    int probe_timeout_ms;
    /* rate limits (producer; internal/ratelimit).  Policies are "QUOTA/WINDOW[,burst=N]"
     * or "off" (pkg/tokenbucket's text form). */
    int rate_limit_enabled;        /* 0: no rate limit at all */
    char *rate_limit_tasks_user;   /* POST /tasks per user */
    char *rate_limit_tasks_global; /* POST /tasks, all users together */
    char *rate_limit_auth_addr;    /* login + register per client address */
    char *rate_limit_auth_email;   /* login + register per email */
    int rate_limit_redis;          /* 1: budgets shared through Redis; 0: per process */
    int rate_limit_lease_ms;       /* a lease from Redis covers this much of the rate */
    int rate_limit_max_keys;       /* keys (users, addresses, emails) held in process */
    /* payloads (issue 9) */
    long long status_lru_bytes; /* byte budget of the producer's view cache */
    int task_timeout_ms_max;    /* ceiling of a task's timeout_ms (producer and worker) */
    int worker_test_handlers;   /* 1: register the sleep and fail handlers */
};

enum config_result {
    CONFIG_RUN = 0,  /* go on and run */
    CONFIG_EXIT = 1, /* --help, --version or --check-config was served: exit 0 */
};

#define CONFIG_EXIT_INVALID 78 /* sysexits EX_CONFIG */

/* Fills cfg from defaults, file, environment and argv[1..].  Flags stop at the first
 * argument that does not start with "--" or after "--"; *ret_argi is set to its
 * index (so dispatchctl can read its subcommand).  ret_argi may be NULL, in which
 * case leftover arguments are an error.  Returns CONFIG_RUN, CONFIG_EXIT, or -1 after
 * writing one clear line "<prog>: <what is wrong>" to err (caller exits 78).  On -1
 * cfg holds nothing that needs releasing. */
int config_load(struct config *cfg, unsigned scope, const char *prog, int argc, char **argv,
                int *ret_argi, FILE *out, FILE *err);

void config_release(struct config *cfg);

/* Writes "DISPATCH_NAME=value" lines for the options in scope, secrets redacted. */
void config_print(const struct config *cfg, unsigned scope, FILE *out);

/* Writes the reference table (Markdown) of every option: docs/configuration.md. */
void config_print_markdown(FILE *out);

/* Parses "host:port" (IPv4 literal, name, or "[v6]"); host is written into
 * ret_host (size bytes).  Returns 0 or -1. */
int config_split_addr(const char *addr, char *ret_host, size_t size, int *ret_port);

/* Resolves "host:port" (config_split_addr's forms) to a socket address to bind
 * (getaddrinfo, passive, numeric port; the first answer).  Returns 0 or -1. */
struct sockaddr_storage;
int config_resolve_addr(const char *addr, struct sockaddr_storage *ret_ss, unsigned *ret_len);

#endif
