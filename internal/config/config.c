/* config — one table drives defaults, file, environment, flags, --help and docs. */
#include "config/config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "handler/handler.h"
#include "log/log.h"
#include "tokenbucket/tokenbucket.h"

#ifndef DISPATCH_VERSION
#define DISPATCH_VERSION "dev"
#endif

#define ENV_PREFIX   "DISPATCH_"
#define NAME_MAX_LEN 64 /* longest DISPATCH_NAME or --flag-name, with NUL */

enum opt_type { OPT_STRING, OPT_INT, OPT_LLONG };

/* Extra validation of a string value: 0 if acceptable. */
typedef int (*config_check_fn)(const char *value);

struct config_option {
    const char *name;
    enum opt_type type;
    size_t offset;   /* into struct config */
    const char *def; /* parsed like any other value, so defaults obey the bounds */
    unsigned scope;
    bool secret;
    long long min, max;    /* OPT_INT/OPT_LLONG: value range; OPT_STRING: length in bytes */
    config_check_fn check; /* NULL, or a stricter test of a string */
    const char *expect;    /* what check accepts, for messages and docs */
    const char *help;
};

static int check_log_level(const char *value)
{
    enum log_level level;

    return log_level_parse(value, &level);
}

static int check_addr(const char *value)
{
    char host[256];
    int port;

    return config_split_addr(value, host, sizeof host, &port);
}

/* The http handler's own parser, so that what starts is what was checked. */
static int check_http_routes(const char *value)
{
    return handler_http_routes_check(value) < 0 ? -1 : 0;
}

static int check_rate(const char *value)
{
    struct tokenbucket_spec spec;

    return tokenbucket_spec_parse(value, &spec);
}

static const char expect_rate[] =
    "QUOTA/WINDOW[,burst=N] (e.g. 100/1s, 30/1m,burst=10; WINDOW in s, m or h) or off";

static const char expect_routes[] =
    "comma-separated type=URL items, an http:// or https:// URL each, each type once";

#define P      CONFIG_PRODUCER
#define W      CONFIG_WORKER
#define C      CONFIG_CTL
#define OFF(n) offsetof(struct config, n)
#define STR(n, def, scope, lo, hi, help)                                                           \
    {                                                                                              \
#n, OPT_STRING, OFF(n), def, scope, false, lo, hi, NULL, NULL, help                        \
    }
#define SECRET(n, scope, hi, help)                                                                 \
    {                                                                                              \
#n, OPT_STRING, OFF(n), "", scope, true, 0, hi, NULL, NULL, help                           \
    }
#define CHECKED(n, def, scope, fn, expect, help)                                                   \
    {                                                                                              \
#n, OPT_STRING, OFF(n), def, scope, false, 1, 300, fn, expect, help                        \
    }
#define INT(n, def, scope, lo, hi, help)                                                           \
    {                                                                                              \
#n, OPT_INT, OFF(n), def, scope, false, lo, hi, NULL, NULL, help                           \
    }
#define LLONG(n, def, scope, lo, hi, help)                                                         \
    {                                                                                              \
#n, OPT_LLONG, OFF(n), def, scope, false, lo, hi, NULL, NULL, help                         \
    }

static const char expect_level[] = "one of debug, info, warn, error";
/* Printable ASCII without quotes or backslashes: safe to embed in JSON as is. */
static int check_token_chars(const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
            return -1;
    }
    return 0;
}

static const char expect_token[] = "printable ASCII without spaces, quotes or backslashes";
static const char expect_addr[] = "host:port or [ipv6]:port, port 1..65535";

static const struct config_option options[] = {
    CHECKED(log_level, "info", P | W | C, check_log_level, expect_level,
            "Minimum severity that is logged: debug, info, warn or error."),
    CHECKED(http_addr, "127.0.0.1:8080", P, check_addr, expect_addr,
            "Address the producer's HTTP API listens on."),
    INT(http_threads, "2", P, 1, 64, "Threads serving HTTP requests."),
    INT(http_max_connections, "16384", P, 1, 1000000, "Most concurrent HTTP connections."),
    INT(http_per_ip_connections, "64", P, 1, 1000000,
        "Most concurrent HTTP connections from one client IP address (a load generator or "
        "a proxy in front needs more)."),
    INT(http_timeout_s, "60", P, 1, 3600, "Seconds an idle HTTP connection is kept open."),
    LLONG(http_max_body_bytes, "1048576", P, 1024, 67108864,
          "Largest request body accepted, in bytes."),
    INT(json_max_depth, "32", P, 2, 256, "Deepest nesting accepted in a JSON request body."),
    /* edge protection (issue 9): what one client can make the producer hold */
    INT(http_head_timeout_s, "10", P, 1, 3600,
        "Seconds within which a request head must arrive in full (from the accept, or from "
        "the request line on a kept-alive connection); then the connection is closed."),
    INT(http_body_timeout_s, "10", P, 1, 3600,
        "Seconds a request body may take from the end of its head, plus one second per "
        "http_body_min_rate bytes received; then the connection is closed."),
    INT(http_body_min_rate, "1024", P, 1, 1073741824,
        "Bytes per second a request body must keep up beyond http_body_timeout_s."),
    INT(http_connection_memory_bytes, "2560", P, 2048, 1048576,
        "Memory libmicrohttpd gives each connection: the request head (up to about 2 KiB by "
        "default), read buffer and response header; what an idle connection costs."),
    LLONG(http_body_budget_bytes, "67108864", P, 1024, 68719476736,
          "Bytes all request bodies being read may hold together; beyond it 503."),
    LLONG(http_anon_max_body_bytes, "4096", P, 256, 1048576,
          "Largest request body accepted on routes that need no token (/auth/register, "
          "/auth/login), in bytes."),
    STR(mysql_host, "127.0.0.1", P | W | C, 1, 255, "MariaDB server host name or address."),
    INT(mysql_port, "3306", P | W | C, 1, 65535, "MariaDB server TCP port."),
    STR(mysql_user, "dispatch", P | W | C, 1, 80, "MariaDB user name."),
    SECRET(mysql_password, P | W | C, 1024, "MariaDB password (never printed)."),
    STR(mysql_database, "dispatch", P | W | C, 1, 64, "MariaDB database name."),
    INT(mysql_pool_size, "16", P | W, 1, 256, "MariaDB connections kept in the pool."),
    INT(mysql_connect_timeout_ms, "3000", P | W | C, 100, 600000,
        "Milliseconds allowed for connecting to MariaDB."),
    INT(mysql_io_timeout_ms, "10000", P | W | C, 100, 600000,
        "Milliseconds allowed for one MariaDB read or write."),
    STR(redis_host, "127.0.0.1", P | W | C, 1, 255, "Redis server host name or address."),
    INT(redis_port, "6379", P | W | C, 1, 65535, "Redis server TCP port."),
    INT(redis_timeout_ms, "200", P | W | C, 10, 60000,
        "Milliseconds allowed to connect to Redis and for each reply; nothing waits longer."),
    INT(redis_pool_size, "4", P | W, 1, 256, "Redis connections kept for commands."),
    INT(redis_breaker_threshold, "5", P | W | C, 1, 1000,
        "Consecutive Redis failures that open its circuit (reads then go to MariaDB)."),
    INT(redis_breaker_open_ms, "2000", P | W | C, 100, 600000,
        "Milliseconds the Redis circuit stays open before one probe may close it."),
    INT(redis_ttl_ms, "30000", P, 1000, 86400000,
        "Lifetime of a task's status in Redis while it can still change (+-10 % jitter)."),
    INT(redis_terminal_ttl_ms, "600000", P, 1000, 604800000,
        "Lifetime in Redis of a SUCCEEDED, DEAD or CANCELED task's status (+-10 % jitter)."),
    INT(status_lru_entries, "100000", P, 1, 100000000,
        "Task statuses the producer keeps in its in-process cache."),
    INT(status_lru_ttl_ms, "2000", P, 1, 60000,
        "Milliseconds a status stays in the in-process cache (also evicted on change)."),
    INT(status_negative_ttl_ms, "1000", P, 1, 60000,
        "Milliseconds an unknown task id is remembered as unknown."),
    INT(status_threads, "4", P, 1, 256,
        "Threads looking task statuses up in Redis and MariaDB for GET /tasks/{id}."),
    STR(kafka_brokers, "127.0.0.1:9092", P | W | C, 1, 4096,
        "Comma-separated Kafka bootstrap brokers, host:port each."),
    STR(kafka_topic, "dispatch.tasks", P | W | C, 1, 249,
        "Kafka topic new tasks are published to."),
    STR(kafka_retry_topic, "dispatch.tasks.retry", P | W | C, 1, 249,
        "Kafka topic failed tasks wait in before their next attempt."),
    STR(kafka_dlq_topic, "dispatch.tasks.dlq", P | W | C, 1, 249,
        "Kafka dead-letter topic for tasks that used up their attempts."),
    STR(kafka_group, "dispatch-workers", W, 1, 255, "Kafka consumer group the workers join."),
    INT(kafka_linger_ms, "1", P | W, 0, 1000,
        "Milliseconds the Kafka producer waits to batch messages."),
    INT(kafka_partitions, "6", C, 1, 10000,
        "Partitions per topic made by `dispatchctl topics create`."),
    INT(publish_timeout_ms, "5000", P, 100, 600000,
        "Milliseconds POST /tasks waits for the broker's acknowledgement."),
    INT(submit_threads, "4", P, 1, 256,
        "Submit pipeline threads; each stores and publishes one batch at a time."),
    INT(submit_batch_max, "64", P, 1, 1000, "Most tasks accepted in one batch submission."),
    INT(outbox_age_ms, "5000", P, 100, 3600000,
        "Age in milliseconds after which unpublished (PENDING) tasks are republished."),
    INT(worker_concurrency, "8", W, 1, 1024, "Tasks one worker runs in parallel."),
    INT(worker_queue_size, "256", W, 1, 1000000,
        "Tasks a worker buffers between its consumer and its executors."),
    CHECKED(worker_http_addr, "127.0.0.1:9090", W, check_addr, expect_addr,
            "Address of the worker's /healthz and /metrics endpoints."),
    {"worker_http_routes", OPT_STRING, OFF(worker_http_routes), "", W, false, 0, 16384,
     check_http_routes, expect_routes,
     "Task types the http handler delivers, as type=URL,type=URL: each task is POSTed there."},
    STR(worker_id, "", W, 0, 255,
        "Worker identity recorded on leased tasks; empty means host name and process id."),
    INT(worker_lease_ms, "60000", W, 1000, 86400000,
        "Milliseconds a task lease lasts before another worker may take the task over."),
    INT(worker_task_timeout_ms, "30000", W, 1, 86400000,
        "Deadline of a task that sets no timeout_ms of its own."),
    INT(worker_backoff_base_ms, "1000", W, 1, 3600000,
        "First retry delay; each retry doubles it (full jitter) up to the cap."),
    INT(worker_backoff_cap_ms, "300000", W, 1, 86400000, "Longest delay between two attempts."),
    INT(kafka_session_timeout_ms, "10000", W, 6000, 300000,
        "Kafka consumer session timeout: how soon a dead worker's partitions move on."),
    INT(worker_grace_ms, "10000", W, 0, 3600000,
        "Milliseconds a worker drains in-flight tasks after SIGTERM."),
    /* worker group commit (issue 8, the worker's execute path): see docs/architecture.md */
    INT(worker_claim_batch, "64", W, 1, 128,
        "Most task claims committed in one transaction; the pool keeps this many "
        "threads beyond worker_concurrency waiting on the database."),
    INT(worker_finish_batch, "64", W, 1, 128,
        "Most task outcomes (status, result, attempt record) committed in one transaction."),
    INT(worker_batch_window_ms, "1", W, 0, 2,
        "Milliseconds a claim or an outcome waits for others to share its commit."),
    INT(worker_commit_threads, "2", W, 1, 16,
        "Claim transactions, and as many finish transactions, a worker runs at once."),
    SECRET(jwt_secret, P, 1024,
           "HMAC-SHA256 key signing access tokens, at least 32 bytes; the producer refuses "
           "to start without one (exit 78)."),
    CHECKED(jwt_issuer, "dispatch", P, check_token_chars, expect_token,
            "Issuer (iss) written into and required of access tokens."),
    INT(token_ttl_s, "3600", P, 60, 2592000, "Seconds an access token stays valid."),
    INT(auth_hash_threads, "2", P, 1, 64,
        "Threads hashing passwords: caps concurrent argon2id hashes (19 MiB each)."),
    INT(auth_hash_queue, "64", P, 0, 100000,
        "Register/login requests waiting for a hashing thread before 503."),
    INT(idempotency_ttl_s, "86400", P, 60, 2592000,
        "Seconds an Idempotency-Key and its stored response are kept."),
    STR(migrations_dir, "migrations", C, 1, 4096,
        "Directory of the SQL migrations `dispatchctl migrate` applies."),
    /* --- faltering dependencies (issue 9: request deadline, breakers, prober) --- */
    INT(request_deadline_ms, "2000", P, 100, 600000,
        "Milliseconds a request waiting on MariaDB or Kafka (POST /tasks, GET /tasks, cancel) "
        "is given before it is answered 503 with Retry-After."),
    INT(mysql_acquire_timeout_ms, "1000", P, 10, 600000,
        "Milliseconds a MariaDB call waits for a free pooled connection before it fails."),
    INT(mysql_breaker_threshold, "5", P, 1, 1000,
        "Consecutive MariaDB failures (a call overrunning the request deadline is one) that "
        "open its circuit: requests then get 503 at once."),
    INT(mysql_breaker_open_ms, "2000", P, 100, 600000,
        "Milliseconds the MariaDB circuit stays open before one probe may close it."),
    INT(kafka_breaker_threshold, "5", P, 1, 1000,
        "Consecutive Kafka failures (unacknowledged messages, failed checks) that open its "
        "circuit: POST /tasks then gets 503 at once."),
    INT(kafka_breaker_open_ms, "2000", P, 100, 600000,
        "Milliseconds the Kafka circuit stays open before one probe may close it."),
    INT(probe_interval_ms, "1000", P, 50, 60000,
        "Milliseconds between two checks of each dependency by the producer's prober "
        "(what /readyz reports)."),
    INT(probe_timeout_ms, "500", P, 10, 60000,
        "A dependency check still running after this many milliseconds reports it down."),
    /* --- rate limits (internal/ratelimit; docs/api.md "Rate limits") ------------------ */
    INT(rate_limit_enabled, "1", P, 0, 1,
        "1 enforces the rate limits below; 0 turns every one of them off."),
    CHECKED(rate_limit_tasks_user, "20000/1s", P, check_rate, expect_rate,
            "POST /tasks per user, as QUOTA/WINDOW[,burst=N] (burst defaults to QUOTA) or off."),
    CHECKED(rate_limit_tasks_global, "100000/1s", P, check_rate, expect_rate,
            "POST /tasks of all users together (QUOTA/WINDOW[,burst=N] or off)."),
    CHECKED(rate_limit_auth_addr, "600/1m,burst=120", P, check_rate, expect_rate,
            "POST /auth/login and /auth/register together, per client address."),
    CHECKED(rate_limit_auth_email, "30/1m,burst=10", P, check_rate, expect_rate,
            "POST /auth/login and /auth/register together, per email address."),
    INT(rate_limit_redis, "1", P, 0, 1,
        "1 shares each budget between producers through Redis (local buckets while Redis "
        "is away); 0 keeps budgets per producer."),
    INT(rate_limit_lease_ms, "10", P, 1, 1000,
        "Tokens a producer takes from Redis at once, as milliseconds of the rate (at least "
        "one token)."),
    INT(rate_limit_max_keys, "100000", P, 64, 10000000,
        "Users, addresses and emails whose buckets a producer holds (least recently used "
        "forgotten first)."),
    /* payloads (issue 9): bounded views, test handlers, timeout ceiling */
    LLONG(status_lru_bytes, "67108864", P, 4096, 1099511627776LL,
          "Bytes of rendered task views the producer's in-process cache holds at most "
          "(the oldest go first)."),
    INT(task_timeout_ms_max, "3600000", P | W, 1, 86400000,
        "Largest timeout_ms a task may ask for (POST /tasks answers 400 beyond it); the "
        "worker clamps every deadline to it too."),
    INT(worker_test_handlers, "0", W, 0, 1,
        "1 registers the built-in sleep and fail handlers (tests and benchmarks only); with "
        "0 such tasks fail for good (\"unknown task type: sleep\")."),
};

#define N_OPTIONS (sizeof options / sizeof options[0])

/* What the command line asked for besides option values. */
struct args {
    const char *config_file;
    bool help, version, check;
    int end; /* index of the first argument that is not a flag */
};

static void env_name(const struct config_option *o, char out[NAME_MAX_LEN])
{
    snprintf(out, NAME_MAX_LEN, ENV_PREFIX "%s", o->name);
    for (char *p = out; *p != '\0'; p++)
        *p = (char)toupper((unsigned char)*p);
}

static void flag_name(const struct config_option *o, char out[NAME_MAX_LEN])
{
    snprintf(out, NAME_MAX_LEN, "--%s", o->name);
    for (char *p = out; *p != '\0'; p++)
        *p = *p == '_' ? '-' : *p;
}

/* Finds the option in scope whose flag is --<name[0..len)>. */
static const struct config_option *find_flag(const char *name, size_t len, unsigned scope)
{
    char flag[NAME_MAX_LEN];

    for (size_t i = 0; i < N_OPTIONS; i++) {
        if ((options[i].scope & scope) == 0)
            continue;
        flag_name(&options[i], flag);
        if (strlen(flag + 2) == len && memcmp(flag + 2, name, len) == 0)
            return &options[i];
    }
    return NULL;
}

static const struct config_option *find_env(const char *name, unsigned scope)
{
    char env[NAME_MAX_LEN];

    for (size_t i = 0; i < N_OPTIONS; i++) {
        if ((options[i].scope & scope) == 0)
            continue;
        env_name(&options[i], env);
        if (strcmp(env, name) == 0)
            return &options[i];
    }
    return NULL;
}

static int parse_ll(const char *s, long long *ret_value)
{
    char *end;
    long long v;

    if (*s == '\0' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *ret_value = v;
    return 0;
}

static int set_string(struct config *cfg, const struct config_option *o, const char *value,
                      const char *where, const char *prog, FILE *err)
{
    char **slot = (char **)((char *)cfg + o->offset);
    size_t len = strlen(value);
    char *copy;

    if (o->check != NULL && o->check(value) < 0) {
        fprintf(err, "%s: invalid value '%.64s' for %s: expected %s\n", prog, value, where,
                o->expect);
        return -1;
    }
    if ((long long)len < o->min || (long long)len > o->max) {
        fprintf(err, "%s: invalid value for %s: expected a string of %lld..%lld bytes, got %zu\n",
                prog, where, o->min, o->max, len);
        return -1;
    }
    copy = strdup(value);
    if (copy == NULL) {
        fprintf(err, "%s: out of memory reading %s\n", prog, where);
        return -1;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

/* Sets one option from text; where names the source in the error message. */
static int set_value(struct config *cfg, const struct config_option *o, const char *value,
                     const char *where, const char *prog, FILE *err)
{
    long long v;

    if (o->type == OPT_STRING)
        return set_string(cfg, o, value, where, prog, err);
    if (parse_ll(value, &v) < 0 || v < o->min || v > o->max) {
        fprintf(err, "%s: invalid value '%.64s' for %s: expected an integer in %lld..%lld\n", prog,
                value, where, o->min, o->max);
        return -1;
    }
    if (o->type == OPT_INT)
        *(int *)((char *)cfg + o->offset) = (int)v;
    else
        *(long long *)((char *)cfg + o->offset) = v;
    return 0;
}

void config_release(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (options[i].type == OPT_STRING)
            free(*(char **)((char *)cfg + options[i].offset));
    }
    memset(cfg, 0, sizeof *cfg);
}

/* Defaults go to every option, in scope or not, so no string is ever NULL. */
static int apply_defaults(struct config *cfg, const char *prog, FILE *err)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (set_value(cfg, &options[i], options[i].def, options[i].name, prog, err) < 0)
            return -1;
    }
    return 0;
}

static int apply_env(struct config *cfg, unsigned scope, const char *prog, FILE *err)
{
    char env[NAME_MAX_LEN];

    for (size_t i = 0; i < N_OPTIONS; i++) {
        if ((options[i].scope & scope) == 0)
            continue;
        env_name(&options[i], env);
        const char *value = getenv(env);
        if (value != NULL && set_value(cfg, &options[i], value, env, prog, err) < 0)
            return -1;
    }
    return 0;
}

static char *skip_blanks(char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Splits one env-file line in place.  Returns 1 with *ret_name and *ret_value set,
 * 0 for a blank or comment line, -1 if the line is not NAME=value. */
static int split_line(char *line, char **ret_name, char **ret_value)
{
    char *p = skip_blanks(line), *name, *value;
    size_t len = strlen(p);

    while (len > 0 && strchr(" \t\r\n", p[len - 1]) != NULL)
        p[--len] = '\0';
    if (*p == '\0' || *p == '#')
        return 0;
    if (strncmp(p, "export", 6) == 0 && (p[6] == ' ' || p[6] == '\t'))
        p = skip_blanks(p + 6);
    name = p;
    if (!isalpha((unsigned char)*p) && *p != '_')
        return -1;
    while (isalnum((unsigned char)*p) || *p == '_')
        p++;
    if (*p != '=')
        return -1;
    *p++ = '\0';
    value = p;
    len = strlen(value);
    if (len > 0 && (value[0] == '"' || value[0] == '\'')) {
        if (len < 2 || value[len - 1] != value[0])
            return -1;
        value[len - 1] = '\0';
        value++;
    }
    *ret_name = name;
    *ret_value = value;
    return 1;
}

static int apply_line(struct config *cfg, unsigned scope, char *line, const char *path,
                      unsigned lineno, const char *prog, FILE *err)
{
    char *name, *value, where[4400]; /* the name, the path and the line number */
    const struct config_option *o;
    int r = split_line(line, &name, &value);

    if (r < 0) {
        fprintf(err, "%s: %s:%u: expected DISPATCH_NAME=value\n", prog, path, lineno);
        return -1;
    }
    if (r == 0 || (o = find_env(name, scope)) == NULL)
        return 0; /* other tools share the file and the prefix */
    snprintf(where, sizeof where, "%s at %s:%u", name, path, lineno);
    return set_value(cfg, o, value, where, prog, err);
}

static int apply_file(struct config *cfg, unsigned scope, const char *path, const char *prog,
                      FILE *err)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned lineno = 0;
    int r = 0;

    if (f == NULL) {
        fprintf(err, "%s: cannot read config file %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    while (r == 0 && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (memchr(line, '\0', (size_t)n) != NULL) {
            fprintf(err, "%s: %s:%u: NUL byte in line\n", prog, path, lineno);
            r = -1;
            break;
        }
        r = apply_line(cfg, scope, line, path, lineno, prog, err);
    }
    if (r == 0 && ferror(f)) {
        fprintf(err, "%s: cannot read config file %s: %s\n", prog, path, strerror(errno));
        r = -1;
    }
    free(line);
    fclose(f);
    return r;
}

/* Takes the value of the flag at argv[*i]: after '=' or the next argument. */
static const char *flag_value(int argc, char **argv, int *i, const char *eq, const char *prog,
                              FILE *err)
{
    if (eq != NULL)
        return eq + 1;
    if (*i + 1 >= argc) {
        fprintf(err, "%s: option %s requires a value\n", prog, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static int special_flag(struct args *a, const char *name, size_t len, bool has_value,
                        const char *arg, const char *prog, FILE *err)
{
    bool *flag = NULL;

    if (len == 4 && memcmp(name, "help", 4) == 0)
        flag = &a->help;
    else if (len == 7 && memcmp(name, "version", 7) == 0)
        flag = &a->version;
    else if (len == 12 && memcmp(name, "check-config", 12) == 0)
        flag = &a->check;
    if (flag == NULL)
        return 0;
    if (has_value) {
        fprintf(err, "%s: option %.*s takes no value\n", prog, (int)(len + 2), arg);
        return -1;
    }
    *flag = true;
    return 1;
}

/* Walks the flags.  With cfg NULL it only checks them and fills *a; with cfg set it
 * applies option values (the last pass, as flags win over everything). */
static int walk_args(int argc, char **argv, unsigned scope, struct args *a, struct config *cfg,
                     const char *prog, FILE *err)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *arg = argv[i], *value;
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (strncmp(arg, "--", 2) != 0)
            break;
        const char *eq = strchr(arg, '=');
        size_t len = eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        int special = special_flag(a, arg + 2, len, eq != NULL, arg, prog, err);
        if (special != 0) {
            if (special < 0)
                return -1;
            continue;
        }
        const struct config_option *o = find_flag(arg + 2, len, scope);
        char where[NAME_MAX_LEN];
        if (o == NULL && !(len == 6 && memcmp(arg + 2, "config", 6) == 0)) {
            fprintf(err, "%s: unknown option %.*s (see --help)\n", prog, (int)(len + 2), arg);
            return -1;
        }
        if ((value = flag_value(argc, argv, &i, eq, prog, err)) == NULL)
            return -1;
        if (o == NULL)
            a->config_file = value;
        else if (cfg != NULL) {
            flag_name(o, where);
            if (set_value(cfg, o, value, where, prog, err) < 0)
                return -1;
        }
    }
    a->end = i;
    return 0;
}

static const char *metavar(const struct config_option *o)
{
    if (o->type != OPT_STRING)
        return "N";
    if (o->check == check_addr)
        return "HOST:PORT";
    if (o->check == check_log_level)
        return "LEVEL";
    return "VALUE";
}

static void print_help(unsigned scope, const char *prog, FILE *out)
{
    char flag[NAME_MAX_LEN];

    fprintf(out, "Usage: %s [OPTION]...%s\n\n", prog,
            (scope & CONFIG_CTL) != 0 ? " COMMAND [ARG]..." : "");
    fprintf(out, "Each option can also be set as DISPATCH_<NAME> in the environment or in the\n"
                 "config file; flags win over the environment, which wins over the file.\n\n");
    fprintf(out, "  --config=FILE\n      Read DISPATCH_NAME=value lines from FILE "
                 "(default: $DISPATCH_CONFIG).\n");
    fprintf(out, "  --check-config\n      Print the effective configuration and exit.\n");
    fprintf(out, "  --version\n      Print the version and exit.\n");
    fprintf(out, "  --help\n      Print this help and exit.\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct config_option *o = &options[i];
        if ((o->scope & scope) == 0)
            continue;
        flag_name(o, flag);
        fprintf(out, "  %s=%s", flag, metavar(o));
        if (o->type != OPT_STRING)
            fprintf(out, "  [%lld..%lld, default %s]", o->min, o->max, o->def);
        else if (o->secret)
            fprintf(out, "  [secret]");
        else if (o->def[0] != '\0')
            fprintf(out, "  [default %s]", o->def);
        fprintf(out, "\n      %s\n", o->help);
    }
}

static void scope_names(unsigned scope, char *out, size_t size)
{
    static const struct {
        unsigned bit;
        const char *name;
    } bins[] = {
        {CONFIG_PRODUCER, "producer"}, {CONFIG_WORKER, "worker"}, {CONFIG_CTL, "dispatchctl"}};
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < sizeof bins / sizeof bins[0] && len < size; i++) {
        if ((scope & bins[i].bit) == 0)
            continue;
        int n = snprintf(out + len, size - len, "%s%s", len > 0 ? ", " : "", bins[i].name);
        len += n > 0 ? (size_t)n : 0;
    }
}

void config_print_markdown(FILE *out)
{
    char env[NAME_MAX_LEN], flag[NAME_MAX_LEN], bins[64];

    fprintf(out, "| Flag | Environment | Default | Accepted | Binaries | Description |\n"
                 "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct config_option *o = &options[i];
        env_name(o, env);
        flag_name(o, flag);
        scope_names(o->scope, bins, sizeof bins);
        fprintf(out, "| `%s` | `%s` | ", flag, env);
        if (o->def[0] != '\0')
            fprintf(out, "`%s` | ", o->def);
        else
            fprintf(out, "*(empty)* | ");
        if (o->type != OPT_STRING)
            fprintf(out, "integer %lld..%lld", o->min, o->max);
        else if (o->check != NULL)
            fprintf(out, "%s", o->expect);
        else
            fprintf(out, "%sstring of %lld..%lld bytes", o->secret ? "secret " : "", o->min,
                    o->max);
        fprintf(out, " | %s | %s |\n", bins, o->help);
    }
}

void config_print(const struct config *cfg, unsigned scope, FILE *out)
{
    char env[NAME_MAX_LEN];

    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct config_option *o = &options[i];
        const void *slot = (const char *)cfg + o->offset;
        if ((o->scope & scope) == 0)
            continue;
        env_name(o, env);
        if (o->type == OPT_INT) {
            fprintf(out, "%s=%d\n", env, *(const int *)slot);
        } else if (o->type == OPT_LLONG) {
            fprintf(out, "%s=%lld\n", env, *(const long long *)slot);
        } else {
            const char *s = *(char *const *)slot;
            if (o->secret)
                s = s != NULL && s[0] != '\0' ? "<redacted>" : "<unset>";
            fprintf(out, "%s=%s\n", env, s != NULL ? s : "");
        }
    }
}

/* Defaults, then the file, the environment and the flags, each over the last. */
static int load_values(struct config *cfg, unsigned scope, const struct args *a, int argc,
                       char **argv, const char *prog, FILE *err)
{
    const char *file = a->config_file;
    struct args again = {0};

    if (file == NULL)
        file = getenv(ENV_PREFIX "CONFIG");
    if (apply_defaults(cfg, prog, err) < 0)
        return -1;
    if (file != NULL && file[0] != '\0' && apply_file(cfg, scope, file, prog, err) < 0)
        return -1;
    if (apply_env(cfg, scope, prog, err) < 0)
        return -1;
    return walk_args(argc, argv, scope, &again, cfg, prog, err);
}

int config_load(struct config *cfg, unsigned scope, const char *prog, int argc, char **argv,
                int *ret_argi, FILE *out, FILE *err)
{
    struct config tmp = {0};
    struct args a = {0};

    memset(cfg, 0, sizeof *cfg);
    if (prog == NULL)
        prog = "dispatch";
    if (walk_args(argc, argv, scope, &a, NULL, prog, err) < 0)
        return -1;
    if (a.help || a.version) {
        if (a.help)
            print_help(scope, prog, out);
        else
            fprintf(out, "%s %s\n", prog, DISPATCH_VERSION);
        goto out_exit;
    }
    if (ret_argi == NULL && a.end < argc) {
        fprintf(err, "%s: unexpected argument '%s' (see --help)\n", prog, argv[a.end]);
        return -1;
    }
    if (load_values(&tmp, scope, &a, argc, argv, prog, err) < 0) {
        config_release(&tmp);
        return -1;
    }
    if (a.check) {
        config_print(&tmp, scope, out);
        config_release(&tmp);
        goto out_exit;
    }
    *cfg = tmp;
    if (ret_argi != NULL)
        *ret_argi = a.end;
    return CONFIG_RUN;

out_exit:
    if (ret_argi != NULL)
        *ret_argi = a.end;
    return CONFIG_EXIT;
}

static bool valid_hostname(const char *host, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!isalnum(c) && c != '-' && c != '.' && c != '_')
            return false;
    }
    return len > 0;
}

static bool valid_ipv6(const char *host, size_t len)
{
    char buf[64];
    struct in6_addr addr;

    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, host, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, &addr) == 1;
}

static int parse_port(const char *s)
{
    int port = 0;
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        if (!isdigit((unsigned char)s[n]) || n >= 5)
            return -1;
        port = port * 10 + (s[n] - '0');
    }
    return n > 0 && port >= 1 && port <= 65535 ? port : -1;
}

int config_split_addr(const char *addr, char *ret_host, size_t size, int *ret_port)
{
    const char *host = addr, *colon;
    size_t len;
    int port;

    if (addr == NULL || ret_host == NULL || ret_port == NULL)
        return -1;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        host = addr + 1;
        len = (size_t)(close - host);
        colon = close + 1;
        if (!valid_ipv6(host, len))
            return -1;
    } else {
        colon = strchr(addr, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL)
            return -1;
        len = (size_t)(colon - addr);
        if (!valid_hostname(host, len))
            return -1;
    }
    if (len >= size || (port = parse_port(colon + 1)) < 0)
        return -1;
    memcpy(ret_host, host, len);
    ret_host[len] = '\0';
    *ret_port = port;
    return 0;
}

int config_resolve_addr(const char *addr, struct sockaddr_storage *ret_ss, unsigned *ret_len)
{
    char host[256], port_s[16];
    int port;
    struct addrinfo hints = {0}, *res = NULL;
    if (config_split_addr(addr, host, sizeof host, &port) < 0)
        return -1;
    snprintf(port_s, sizeof port_s, "%d", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host, port_s, &hints, &res) != 0 || !res)
        return -1;
    memcpy(ret_ss, res->ai_addr, res->ai_addrlen);
    *ret_len = (unsigned)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}
