/* Unit tests for internal/config: precedence, every error path, help and printing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

extern char **environ;

#define ALL_SCOPES (CONFIG_PRODUCER | CONFIG_WORKER | CONFIG_CTL)

/* Output of one config_load() call. */
struct run {
    int rc;
    int argi;
    struct config cfg;
    char *out;
    char *err;
};

static char tmp_path[64];

static void clear_dispatch_env(void)
{
    for (;;) {
        char name[128];
        bool found = false;
        for (char **e = environ; *e != NULL; e++) {
            if (strncmp(*e, "DISPATCH_", 9) == 0) {
                size_t n = strcspn(*e, "=");
                assert_true(n < sizeof name);
                memcpy(name, *e, n);
                name[n] = '\0';
                found = true;
                break;
            }
        }
        if (!found)
            return;
        unsetenv(name);
    }
}

static int setup(void **state)
{
    (void)state;
    clear_dispatch_env();
    tmp_path[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clear_dispatch_env();
    if (tmp_path[0] != '\0')
        unlink(tmp_path);
    return 0;
}

static void write_file(const char *text)
{
    snprintf(tmp_path, sizeof tmp_path, "/tmp/test_config_XXXXXX");
    int fd = mkstemp(tmp_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* argv is NULL-terminated after the program name. */
static void run_load(struct run *r, unsigned scope, bool want_argi, const char *const *argv)
{
    size_t out_len, err_len;
    int argc = 0;
    FILE *out = open_memstream(&r->out, &out_len);
    FILE *err = open_memstream(&r->err, &err_len);

    assert_non_null(out);
    assert_non_null(err);
    while (argv[argc] != NULL)
        argc++;
    r->argi = -7;
    memset(&r->cfg, 0x5a, sizeof r->cfg); /* garbage the loader must not trust */
    r->rc = config_load(&r->cfg, scope, "dispatch-test", argc, (char **)argv,
                        want_argi ? &r->argi : NULL, out, err);
    fclose(out);
    fclose(err);
}

static void run_free(struct run *r)
{
    config_release(&r->cfg);
    free(r->out);
    free(r->err);
}

#define LOAD(r, scope, ...)                                                                        \
    do {                                                                                           \
        const char *const argv_[] = {"dispatch-test", __VA_ARGS__, NULL};                          \
        run_load((r), (scope), false, argv_);                                                      \
    } while (0)

static void test_defaults(void **state)
{
    struct run r;
    const char *const argv[] = {"dispatch-test", NULL};
    (void)state;

    run_load(&r, ALL_SCOPES, false, argv);
    assert_int_equal(r.rc, CONFIG_RUN);
    assert_string_equal(r.err, "");
    assert_string_equal(r.cfg.log_level, "info");
    assert_string_equal(r.cfg.http_addr, "127.0.0.1:8080");
    assert_int_equal(r.cfg.http_threads, 2);
    assert_int_equal(r.cfg.http_max_connections, 16384);
    assert_int_equal(r.cfg.http_per_ip_connections, 64);
    assert_int_equal(r.cfg.http_head_timeout_s, 10);
    assert_int_equal(r.cfg.http_body_timeout_s, 10);
    assert_int_equal(r.cfg.http_body_min_rate, 1024);
    assert_int_equal(r.cfg.http_connection_memory_bytes, 2560);
    assert_int_equal(r.cfg.http_body_budget_bytes, 67108864);
    assert_int_equal(r.cfg.http_anon_max_body_bytes, 4096);
    assert_int_equal(r.cfg.http_timeout_s, 60);
    assert_int_equal(r.cfg.http_max_body_bytes, 1048576);
    assert_int_equal(r.cfg.json_max_depth, 32);
    assert_string_equal(r.cfg.mysql_host, "127.0.0.1");
    assert_int_equal(r.cfg.mysql_port, 3306);
    assert_string_equal(r.cfg.mysql_user, "dispatch");
    assert_string_equal(r.cfg.mysql_password, "");
    assert_string_equal(r.cfg.mysql_database, "dispatch");
    assert_int_equal(r.cfg.mysql_pool_size, 16);
    assert_int_equal(r.cfg.mysql_connect_timeout_ms, 3000);
    assert_int_equal(r.cfg.mysql_io_timeout_ms, 10000);
    assert_string_equal(r.cfg.redis_host, "127.0.0.1");
    assert_int_equal(r.cfg.redis_port, 6379);
    assert_string_equal(r.cfg.kafka_brokers, "127.0.0.1:9092");
    assert_string_equal(r.cfg.kafka_topic, "dispatch.tasks");
    assert_string_equal(r.cfg.kafka_retry_topic, "dispatch.tasks.retry");
    assert_string_equal(r.cfg.kafka_dlq_topic, "dispatch.tasks.dlq");
    assert_string_equal(r.cfg.kafka_group, "dispatch-workers");
    assert_int_equal(r.cfg.kafka_linger_ms, 1);
    assert_int_equal(r.cfg.kafka_partitions, 6);
    assert_int_equal(r.cfg.publish_timeout_ms, 5000);
    assert_int_equal(r.cfg.submit_batch_max, 64);
    assert_int_equal(r.cfg.outbox_age_ms, 5000);
    assert_int_equal(r.cfg.worker_concurrency, 8);
    assert_int_equal(r.cfg.worker_queue_size, 256);
    assert_string_equal(r.cfg.worker_http_addr, "127.0.0.1:9090");
    assert_string_equal(r.cfg.worker_id, "");
    assert_int_equal(r.cfg.worker_lease_ms, 60000);
    assert_int_equal(r.cfg.worker_grace_ms, 10000);
    assert_int_equal(r.cfg.worker_claim_batch, 64);
    assert_int_equal(r.cfg.worker_finish_batch, 64);
    assert_int_equal(r.cfg.worker_batch_window_ms, 1);
    assert_int_equal(r.cfg.worker_commit_threads, 2);
    assert_string_equal(r.cfg.migrations_dir, "migrations");
    assert_int_equal(r.cfg.request_deadline_ms, 2000);
    assert_int_equal(r.cfg.mysql_acquire_timeout_ms, 1000);
    assert_int_equal(r.cfg.mysql_breaker_threshold, 5);
    assert_int_equal(r.cfg.mysql_breaker_open_ms, 2000);
    assert_int_equal(r.cfg.kafka_breaker_threshold, 5);
    assert_int_equal(r.cfg.kafka_breaker_open_ms, 2000);
    assert_int_equal(r.cfg.probe_interval_ms, 1000);
    assert_int_equal(r.cfg.probe_timeout_ms, 500);
    run_free(&r);
}

static void test_precedence(void **state)
{
    struct run r;
    (void)state;

    write_file("# stack settings\n"
               "\n"
               "DISPATCH_HTTP_THREADS=3\n"
               "DISPATCH_MYSQL_HOST=from-file\n"
               "DISPATCH_REDIS_HOST=file-redis\n"
               "DISPATCH_MYSQL_USER=file-user\n");
    setenv("DISPATCH_CONFIG", tmp_path, 1);
    setenv("DISPATCH_HTTP_THREADS", "4", 1);
    setenv("DISPATCH_MYSQL_HOST", "from-env", 1);
    setenv("DISPATCH_MYSQL_USER", "env-user", 1);

    LOAD(&r, CONFIG_PRODUCER, "--http-threads=5", "--mysql-user", "flag-user");
    assert_int_equal(r.rc, CONFIG_RUN);
    assert_string_equal(r.err, "");
    assert_int_equal(r.cfg.http_threads, 5);             /* flag > env > file */
    assert_string_equal(r.cfg.mysql_user, "flag-user");  /* flag, space form */
    assert_string_equal(r.cfg.mysql_host, "from-env");   /* env > file */
    assert_string_equal(r.cfg.redis_host, "file-redis"); /* file > default */
    assert_int_equal(r.cfg.mysql_port, 3306);            /* default */
    run_free(&r);

    /* the last flag wins, and --config beats DISPATCH_CONFIG */
    LOAD(&r, CONFIG_PRODUCER, "--http-threads=5", "--http-threads", "6", "--config=/nonexistent");
    assert_int_equal(r.rc, -1);
    assert_non_null(strstr(r.err, "/nonexistent"));
    run_free(&r);
    unsetenv("DISPATCH_HTTP_THREADS");
    LOAD(&r, CONFIG_PRODUCER, "--http-threads=5", "--http-threads", "6");
    assert_int_equal(r.rc, CONFIG_RUN);
    assert_int_equal(r.cfg.http_threads, 6);
    run_free(&r);
}

static void test_file_format(void **state)
{
    struct run r;
    (void)state;

    write_file("  # indented comment\n"
               "export DISPATCH_MYSQL_HOST=exported\n"
               "DISPATCH_MYSQL_USER=\"double quoted\"\n"
               "DISPATCH_MYSQL_DATABASE='single'\r\n"
               "DISPATCH_KAFKA_TOPIC=trailing   \n"
               "DISPATCH_API_URL=http://ignored.example\n"
               "MYSQL_ROOT_PASSWORD=not-ours\n"
               "DISPATCH_WORKER_CONCURRENCY=not-in-scope-so-ignored\n"
               "DISPATCH_MYSQL_PASSWORD=s3cret=with=equals\n"
               "\t\n"
               "DISPATCH_KAFKA_GROUP=last-line-without-newline");
    LOAD(&r, CONFIG_PRODUCER, "--config", tmp_path);
    assert_int_equal(r.rc, CONFIG_RUN);
    assert_string_equal(r.err, "");
    assert_string_equal(r.cfg.mysql_host, "exported");
    assert_string_equal(r.cfg.mysql_user, "double quoted");
    assert_string_equal(r.cfg.mysql_database, "single");
    assert_string_equal(r.cfg.kafka_topic, "trailing");
    assert_string_equal(r.cfg.mysql_password, "s3cret=with=equals");
    assert_int_equal(r.cfg.worker_concurrency, 8);
    assert_string_equal(r.cfg.kafka_group, "dispatch-workers"); /* worker-only option */
    run_free(&r);
}

/* Every invalid input: -1, exactly one line naming the culprit, nothing allocated. */
static void expect_error(struct run *r, const char *needle1, const char *needle2)
{
    static const struct config zero;

    assert_int_equal(r->rc, -1);
    assert_int_equal(r->argi, -7);
    assert_memory_equal(&r->cfg, &zero, sizeof zero);
    if (strncmp(r->err, "dispatch-test: ", 15) != 0)
        fail_msg("missing prefix: %s", r->err);
    size_t len = strlen(r->err);
    assert_true(len > 16);
    assert_int_equal(r->err[len - 1], '\n');
    assert_ptr_equal(strchr(r->err, '\n'), r->err + len - 1);
    if (strstr(r->err, needle1) == NULL || (needle2 != NULL && strstr(r->err, needle2) == NULL))
        fail_msg("error '%s' lacks '%s' / '%s'", r->err, needle1, needle2 ? needle2 : "");
    assert_string_equal(r->out, "");
    free(r->out);
    free(r->err);
}

static void test_flag_errors(void **state)
{
    struct run r;
    (void)state;

    LOAD(&r, CONFIG_PRODUCER, "--http-threads=abc");
    expect_error(&r, "--http-threads", "1..64");
    LOAD(&r, CONFIG_PRODUCER, "--http-threads=0");
    expect_error(&r, "'0'", "1..64");
    LOAD(&r, CONFIG_PRODUCER, "--http-threads=65");
    expect_error(&r, "'65'", "1..64");
    LOAD(&r, CONFIG_PRODUCER, "--http-threads=4x");
    expect_error(&r, "'4x'", "integer");
    LOAD(&r, CONFIG_PRODUCER, "--http-threads= 4");
    expect_error(&r, "' 4'", "integer");
    LOAD(&r, CONFIG_PRODUCER, "--http-threads=");
    expect_error(&r, "''", "integer");
    LOAD(&r, CONFIG_PRODUCER, "--http-max-body-bytes=99999999999999999999");
    expect_error(&r, "--http-max-body-bytes", "1024..67108864");
    LOAD(&r, CONFIG_PRODUCER, "--no-such-option=1");
    expect_error(&r, "unknown option --no-such-option", NULL);
    LOAD(&r, CONFIG_PRODUCER, "--worker-concurrency=4"); /* worker's, not producer's */
    expect_error(&r, "unknown option --worker-concurrency", NULL);
    LOAD(&r, CONFIG_PRODUCER, "--http_threads=4"); /* dashes only */
    expect_error(&r, "unknown option --http_threads", NULL);
    LOAD(&r, CONFIG_PRODUCER, "--mysql-port=1", "--http-threads");
    expect_error(&r, "--http-threads requires a value", NULL);
    LOAD(&r, CONFIG_PRODUCER, "--config");
    expect_error(&r, "--config requires a value", NULL);
    LOAD(&r, CONFIG_PRODUCER, "--help=yes");
    expect_error(&r, "--help takes no value", NULL);
    LOAD(&r, CONFIG_PRODUCER, "--log-level=verbose");
    expect_error(&r, "--log-level", "debug, info, warn, error");
    LOAD(&r, CONFIG_PRODUCER, "--http-addr=localhost");
    expect_error(&r, "--http-addr", "port 1..65535");
    LOAD(&r, CONFIG_PRODUCER, "--mysql-host=");
    expect_error(&r, "--mysql-host", "1..255 bytes");
    LOAD(&r, CONFIG_PRODUCER, "stray");
    expect_error(&r, "unexpected argument 'stray'", NULL);
    LOAD(&r, CONFIG_PRODUCER, "--", "stray");
    expect_error(&r, "unexpected argument 'stray'", NULL);
}

static void test_env_errors(void **state)
{
    struct run r;
    (void)state;

    setenv("DISPATCH_MYSQL_PORT", "70000", 1);
    LOAD(&r, CONFIG_CTL, "--log-level=debug");
    expect_error(&r, "DISPATCH_MYSQL_PORT", "1..65535");
    unsetenv("DISPATCH_MYSQL_PORT");

    setenv("DISPATCH_LOG_LEVEL", "loud", 1);
    LOAD(&r, CONFIG_WORKER, "--mysql-port=1");
    expect_error(&r, "DISPATCH_LOG_LEVEL", "debug, info, warn, error");
    /* a flag does not excuse a bad environment: it is still an error */
    unsetenv("DISPATCH_LOG_LEVEL");

    setenv("DISPATCH_WORKER_HTTP_ADDR", "[::1]", 1);
    LOAD(&r, CONFIG_WORKER, "--mysql-port=1");
    expect_error(&r, "DISPATCH_WORKER_HTTP_ADDR", "host:port");
    /* not in the producer's scope: ignored there */
    LOAD(&r, CONFIG_PRODUCER, "--mysql-port=1");
    assert_int_equal(r.rc, CONFIG_RUN);
    run_free(&r);
}

static void test_file_errors(void **state)
{
    struct run r;
    char where[96];
    (void)state;

    LOAD(&r, CONFIG_PRODUCER, "--config=/nonexistent/dispatch.env");
    expect_error(&r, "/nonexistent/dispatch.env", "No such file");

    setenv("DISPATCH_CONFIG", "/nonexistent/env.env", 1);
    LOAD(&r, CONFIG_PRODUCER, "--mysql-port=1");
    expect_error(&r, "/nonexistent/env.env", NULL);
    unsetenv("DISPATCH_CONFIG");

    write_file("DISPATCH_MYSQL_HOST=ok\n# fine\nthis is not an assignment\n");
    snprintf(where, sizeof where, "%s:3", tmp_path);
    LOAD(&r, CONFIG_PRODUCER, "--config", tmp_path);
    expect_error(&r, where, "DISPATCH_NAME=value");
    unlink(tmp_path);

    write_file("\nDISPATCH_HTTP_TIMEOUT_S=0\n");
    snprintf(where, sizeof where, "%s:2", tmp_path);
    LOAD(&r, CONFIG_PRODUCER, "--config", tmp_path);
    expect_error(&r, where, "DISPATCH_HTTP_TIMEOUT_S");
    unlink(tmp_path);

    write_file("DISPATCH_MYSQL_USER=\"unterminated\n");
    snprintf(where, sizeof where, "%s:1", tmp_path);
    LOAD(&r, CONFIG_PRODUCER, "--config", tmp_path);
    expect_error(&r, where, NULL);
    unlink(tmp_path);

    write_file("DISPATCH_MYSQL_USER = spaced\n");
    LOAD(&r, CONFIG_PRODUCER, "--config", tmp_path);
    expect_error(&r, tmp_path, ":1");
    unlink(tmp_path);

    write_file("=value\n");
    LOAD(&r, CONFIG_PRODUCER, "--config", tmp_path);
    expect_error(&r, tmp_path, ":1");
}

static void test_check_config_redacts(void **state)
{
    struct run r;
    (void)state;

    setenv("DISPATCH_MYSQL_PASSWORD", "hunter2", 1);
    LOAD(&r, CONFIG_WORKER, "--worker-id=w-1", "--check-config");
    assert_int_equal(r.rc, CONFIG_EXIT);
    assert_string_equal(r.err, "");
    assert_null(strstr(r.out, "hunter2"));
    assert_non_null(strstr(r.out, "DISPATCH_MYSQL_PASSWORD=<redacted>\n"));
    assert_non_null(strstr(r.out, "DISPATCH_WORKER_ID=w-1\n"));
    assert_non_null(strstr(r.out, "DISPATCH_WORKER_CONCURRENCY=8\n"));
    assert_non_null(strstr(r.out, "DISPATCH_LOG_LEVEL=info\n"));
    assert_null(strstr(r.out, "DISPATCH_HTTP_THREADS")); /* producer only */
    assert_null(r.cfg.mysql_password);                   /* CONFIG_EXIT leaves nothing to release */
    run_free(&r);

    unsetenv("DISPATCH_MYSQL_PASSWORD");
    LOAD(&r, CONFIG_PRODUCER, "--check-config");
    assert_int_equal(r.rc, CONFIG_EXIT);
    assert_non_null(strstr(r.out, "DISPATCH_MYSQL_PASSWORD=<unset>\n"));
    assert_non_null(strstr(r.out, "DISPATCH_HTTP_MAX_BODY_BYTES=1048576\n"));
    run_free(&r);

    /* an invalid configuration is an error, not a listing */
    LOAD(&r, CONFIG_PRODUCER, "--check-config", "--http-threads=0");
    expect_error(&r, "--http-threads", NULL);
}

static void test_config_print_direct(void **state)
{
    struct run r;
    char *buf = NULL;
    size_t len;
    (void)state;

    LOAD(&r, CONFIG_CTL, "--mysql-password=pw", "--kafka-partitions=12");
    assert_int_equal(r.rc, CONFIG_RUN);
    assert_string_equal(r.cfg.mysql_password, "pw");
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    config_print(&r.cfg, CONFIG_CTL, out);
    fclose(out);
    assert_non_null(strstr(buf, "DISPATCH_KAFKA_PARTITIONS=12\n"));
    assert_non_null(strstr(buf, "DISPATCH_MYSQL_PASSWORD=<redacted>\n"));
    assert_non_null(strstr(buf, "DISPATCH_MIGRATIONS_DIR=migrations\n"));
    assert_null(strstr(buf, "=pw"));
    assert_null(strstr(buf, "DISPATCH_HTTP_ADDR"));
    /* every line is NAME=value */
    for (char *line = buf; *line != '\0'; line = strchr(line, '\n') + 1)
        assert_int_equal(strncmp(line, "DISPATCH_", 9), 0);
    free(buf);
    run_free(&r);
}

static void test_help_scoped(void **state)
{
    static const char *const common[] = {"--config", "--check-config", "--version", "--help"};
    struct run r;
    (void)state;

    LOAD(&r, CONFIG_PRODUCER, "--help");
    assert_int_equal(r.rc, CONFIG_EXIT);
    assert_string_equal(r.err, "");
    for (size_t i = 0; i < 4; i++)
        assert_non_null(strstr(r.out, common[i]));
    assert_non_null(strstr(r.out, "--http-threads=N"));
    assert_non_null(strstr(r.out, "--mysql-password="));
    assert_non_null(strstr(r.out, "1..64"));
    assert_null(strstr(r.out, "--worker-concurrency"));
    assert_null(strstr(r.out, "--migrations-dir"));
    assert_null(strstr(r.out, "--kafka-group"));
    run_free(&r);

    LOAD(&r, CONFIG_WORKER, "--help");
    assert_int_equal(r.rc, CONFIG_EXIT);
    assert_non_null(strstr(r.out, "--worker-concurrency"));
    assert_non_null(strstr(r.out, "--kafka-group"));
    assert_null(strstr(r.out, "--http-threads"));
    run_free(&r);

    /* --help wins even over a bad environment: it is served before loading */
    setenv("DISPATCH_MYSQL_PORT", "bad", 1);
    LOAD(&r, CONFIG_CTL, "--help");
    assert_int_equal(r.rc, CONFIG_EXIT);
    assert_non_null(strstr(r.out, "--migrations-dir"));
    assert_non_null(strstr(r.out, "COMMAND"));
    assert_null(strstr(r.out, "--http-threads"));
    assert_null(strstr(r.out, "--worker-concurrency"));
    run_free(&r);
}

static void test_version(void **state)
{
    struct run r;
    (void)state;

    LOAD(&r, CONFIG_PRODUCER, "--version");
    assert_int_equal(r.rc, CONFIG_EXIT);
    assert_string_equal(r.out, "dispatch-test " DISPATCH_VERSION "\n");
    assert_string_equal(r.err, "");
    run_free(&r);
}

static void test_argi_subcommand(void **state)
{
    struct run r;
    (void)state;

    const char *const a1[] = {"dispatchctl", "--mysql-host", "db", "migrate", "up", NULL};
    run_load(&r, CONFIG_CTL, true, a1);
    assert_int_equal(r.rc, CONFIG_RUN);
    assert_int_equal(r.argi, 3);
    assert_string_equal(r.cfg.mysql_host, "db");
    run_free(&r);

    const char *const a2[] = {"dispatchctl", "--", "--not-a-flag", NULL};
    run_load(&r, CONFIG_CTL, true, a2);
    assert_int_equal(r.rc, CONFIG_RUN);
    assert_int_equal(r.argi, 2);
    run_free(&r);

    const char *const a3[] = {"dispatchctl", NULL};
    run_load(&r, CONFIG_CTL, true, a3);
    assert_int_equal(r.rc, CONFIG_RUN);
    assert_int_equal(r.argi, 1);
    run_free(&r);

    /* flags after the subcommand belong to it */
    const char *const a4[] = {"dispatchctl", "topics", "--bogus", NULL};
    run_load(&r, CONFIG_CTL, true, a4);
    assert_int_equal(r.rc, CONFIG_RUN);
    assert_int_equal(r.argi, 1);
    run_free(&r);
}

static void test_split_addr(void **state)
{
    static const struct {
        const char *in;
        const char *host;
        int port;
    } good[] = {
        {"127.0.0.1:8080", "127.0.0.1", 8080}, {"localhost:1", "localhost", 1},
        {"[::1]:9090", "::1", 9090},           {"[2001:db8::5]:65535", "2001:db8::5", 65535},
        {"0.0.0.0:80", "0.0.0.0", 80},         {"my-host.example_x:443", "my-host.example_x", 443},
    };
    static const char *const bad[] = {
        "",          "localhost", "localhost:", ":8080",        "host:0",      "host:65536",
        "host:-1",   "host:+80",  "host:80x",   "host: 80",     "host:080000", "::1:80",
        "[::1]",     "[::1]80",   "[]:80",      "[nothex]:80",  "[::1:80",     "ho st:80",
        "host:80:1", "a/b:80",    "[::1]:",     "[1.2.3.4]:80",
    };
    char host[64];
    int port;
    (void)state;

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        port = -1;
        if (config_split_addr(good[i].in, host, sizeof host, &port) != 0)
            fail_msg("rejected '%s'", good[i].in);
        assert_string_equal(host, good[i].host);
        assert_int_equal(port, good[i].port);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        port = -1;
        snprintf(host, sizeof host, "untouched");
        if (config_split_addr(bad[i], host, sizeof host, &port) != -1)
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(port, -1);
        assert_string_equal(host, "untouched");
    }
    /* the host must fit, NUL included */
    assert_int_equal(config_split_addr("abcd:80", host, 4, &port), -1);
    assert_int_equal(config_split_addr("abc:80", host, 4, &port), 0);
    assert_string_equal(host, "abc");
}

static void test_markdown(void **state)
{
    char *buf = NULL;
    size_t len;
    size_t rows = 0;
    (void)state;

    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    config_print_markdown(out);
    fclose(out);
    for (char *line = buf; *line != '\0'; line = strchr(line, '\n') + 1) {
        assert_int_equal(line[0], '|');
        if (strncmp(line, "| `--", 5) == 0)
            rows++;
        /* every row has the header's 6 columns */
        size_t bars = 0;
        for (char *p = line; *p != '\n'; p++)
            bars += *p == '|';
        assert_int_equal(bars, 7);
    }
    assert_int_equal(rows, 86);
    assert_non_null(strstr(buf, "`DISPATCH_WORKER_LEASE_MS`"));
    assert_non_null(strstr(buf, "integer 1000..86400000"));
    free(buf);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_precedence),
        T(test_file_format),
        T(test_flag_errors),
        T(test_env_errors),
        T(test_file_errors),
        T(test_check_config_redacts),
        T(test_config_print_direct),
        T(test_help_scoped),
        T(test_version),
        T(test_argi_subcommand),
        T(test_split_addr),
        T(test_markdown),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
