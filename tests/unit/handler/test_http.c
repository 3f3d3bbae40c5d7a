/* Unit tests for the http handler of pkg/handler against a small libmicrohttpd
 * server started on a free port in the test: the request it sends, the outcome of
 * each answer (2xx JSON or not, 4xx, 408, 429, 5xx, redirect, oversized), the
 * deadline, cancellation, connection errors, per-thread handles, route lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "handler/handler.h"
#include "test_http.h"

#define TASK_ID "01890a5d-ac96-774b-bcce-b302099a8057"
#define TRACEP  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define SLOW_MS 3000

/* --- the server --------------------------------------------------------------- */

struct server {
    struct MHD_Daemon *daemon;
    int port;
    atomic_bool stopping;
    pthread_mutex_t mu;
    int hits;
    char body[4096]; /* the last request's body and headers */
    char idem[64], trace[64], ctype[64], agent[64];
};

struct upload {
    char *buf;
    size_t len;
};

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned int code, const char *body,
                              size_t len, const char *type, const char *location)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    if (type != NULL) {
        MHD_add_response_header(r, "Content-Type", type);
    }
    if (location != NULL) {
        MHD_add_response_header(r, "Location", location);
    }
    enum MHD_Result rc = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return rc;
}

static void copy_header(struct MHD_Connection *conn, const char *name, char *out, size_t size)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
    snprintf(out, size, "%s", v != NULL ? v : "");
}

static void record(struct server *s, struct MHD_Connection *conn, const struct upload *up)
{
    pthread_mutex_lock(&s->mu);
    s->hits++;
    snprintf(s->body, sizeof s->body, "%.*s", (int)up->len, up->buf ? up->buf : "");
    copy_header(conn, "Idempotency-Key", s->idem, sizeof s->idem);
    copy_header(conn, "traceparent", s->trace, sizeof s->trace);
    copy_header(conn, "Content-Type", s->ctype, sizeof s->ctype);
    copy_header(conn, "User-Agent", s->agent, sizeof s->agent);
    pthread_mutex_unlock(&s->mu);
}

static enum MHD_Result respond(struct server *s, struct MHD_Connection *conn, const char *url,
                               const struct upload *up)
{
    record(s, conn, up);
    if (strcmp(url, "/echo") == 0) {
        return answer(conn, 200, up->buf ? up->buf : "", up->len, "application/json", NULL);
    }
    if (strcmp(url, "/text") == 0) {
        return answer(conn, 200, "hello", 5, "text/plain", NULL);
    }
    if (strcmp(url, "/empty") == 0) {
        return answer(conn, 204, "", 0, NULL, NULL);
    }
    if (strcmp(url, "/big") == 0) {
        static char big[8192];
        memset(big, 'x', sizeof big);
        big[0] = '"';
        big[sizeof big - 1] = '"';
        return answer(conn, 200, big, sizeof big, "application/json", NULL);
    }
    if (strcmp(url, "/redirect") == 0) {
        return answer(conn, 302, "", 0, NULL, "/echo");
    }
    if (strcmp(url, "/slow") == 0) {
        for (int i = 0; i < SLOW_MS / 10 && !atomic_load(&s->stopping); i++) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
        return answer(conn, 200, "{}", 2, "application/json", NULL);
    }
    unsigned long code = 0;
    if (strncmp(url, "/status/", 8) == 0) {
        char *end = NULL;
        code = strtoul(url + 8, &end, 10);
        code = *end == '\0' ? code : 0;
    }
    if (code >= 100 && code <= 599) {
        char msg[64];
        int n = snprintf(msg, sizeof msg, "error %lu\nbody", code);
        return answer(conn, (unsigned int)code, msg, (size_t)n, "text/plain", NULL);
    }
    return answer(conn, 404, "no such path", 12, "text/plain", NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **con_cls)
{
    struct server *s = cls;
    (void)method;
    (void)version;
    struct upload *up = *con_cls;
    if (up == NULL) {
        up = calloc(1, sizeof *up);
        *con_cls = up;
        return up != NULL ? MHD_YES : MHD_NO;
    }
    if (*data_size > 0) {
        char *b = realloc(up->buf, up->len + *data_size + 1);
        if (b == NULL) {
            return MHD_NO;
        }
        memcpy(b + up->len, data, *data_size);
        up->buf = b;
        up->len += *data_size;
        up->buf[up->len] = '\0';
        *data_size = 0;
        return MHD_YES;
    }
    return respond(s, conn, url, up);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct upload *up = *con_cls;
    if (up != NULL) {
        free(up->buf);
        free(up);
        *con_cls = NULL;
    }
}

static int server_start(struct server *s)
{
    memset(s, 0, sizeof *s);
    atomic_init(&s->stopping, false);
    pthread_mutex_init(&s->mu, NULL);
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
                                 0 /* a free port */, NULL, NULL, on_request, s,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
    if (s->daemon == NULL) {
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info != NULL ? info->port : 0;
    return s->port > 0 ? 0 : -1;
}

static void server_stop(struct server *s)
{
    atomic_store(&s->stopping, true);
    MHD_stop_daemon(s->daemon);
    pthread_mutex_destroy(&s->mu);
}

/* --- fixture ------------------------------------------------------------------ */

struct fx {
    struct server srv;
    struct handler_registry *reg;
    struct handler_http *http;
    atomic_bool cancel;
    char detail[512]; /* the last on_detail: "url | detail" */
};

static void on_detail(void *ctx, const struct handler_ctx *task, const char *url,
                      const char *detail)
{
    struct fx *f = ctx;
    (void)task;
    snprintf(f->detail, sizeof f->detail, "%s | %s", url, detail);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (f == NULL || server_start(&f->srv) < 0 || handler_registry_new(&f->reg) < 0) {
        return -1;
    }
    atomic_init(&f->cancel, false);
    struct handler_http_config cfg = {.max_response_bytes = 4096,
                                      .user_agent = "test-agent/1",
                                      .on_detail = on_detail,
                                      .on_detail_ctx = f};
    if (handler_http_new(&cfg, &f->http) < 0) {
        return -1;
    }
    const char *paths[][2] = {
        {"t.echo", "/echo"},      {"t.text", "/text"},         {"t.empty", "/empty"},
        {"t.big", "/big"},        {"t.redirect", "/redirect"}, {"t.slow", "/slow"},
        {"t.400", "/status/400"}, {"t.404", "/status/404"},    {"t.408", "/status/408"},
        {"t.429", "/status/429"}, {"t.500", "/status/500"},    {"t.503", "/status/503"},
        {"t.201", "/status/201"},
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char url[128];
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->srv.port, paths[i][1]);
        if (handler_http_route(f->http, f->reg, paths[i][0], url) < 0) {
            return -1;
        }
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    handler_registry_free(f->reg);
    handler_http_free(f->http);
    server_stop(&f->srv);
    free(f);
    return 0;
}

static int call(struct fx *f, const char *type, const char *payload, int64_t deadline_ms,
                struct handler_out *out)
{
    handler_fn fn = NULL;
    void *arg = NULL;
    assert_true(handler_lookup(f->reg, type, &fn, &arg));
    struct handler_ctx ctx = {
        .task_id = TASK_ID,
        .type = type,
        .payload = payload,
        .payload_len = payload != NULL ? strlen(payload) : 0,
        .attempt = 2,
        .max_attempts = 5,
        .deadline_ms = deadline_ms,
        .canceled = &f->cancel,
        .traceparent = TRACEP,
    };
    memset(out, 0, sizeof *out);
    return fn(arg, &ctx, out);
}

static void release(struct handler_out *out)
{
    free(out->result);
    free(out->error);
    memset(out, 0, sizeof *out);
}

static int64_t in_ms(int64_t ms)
{
    return handler_now_ms() + ms;
}

/* --- tests -------------------------------------------------------------------- */

static void test_request_and_json_result(void **state)
{
    struct fx *f = *state;
    struct handler_out out;
    const char *payload = "{\"w\":640,\"h\":[1,2],\"s\":\"\\u00e9\"}";
    assert_int_equal(call(f, "t.echo", payload, in_ms(5000), &out), HANDLER_OK);
    assert_null(out.error);
    /* the server echoed the body: the result is exactly what was sent */
    assert_non_null(out.result);
    cJSON *root = cJSON_Parse(out.result);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "id")->valuestring, TASK_ID);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "type")->valuestring, "t.echo");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(root, "attempt")->valueint, 2);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "payload");
    assert_true(cJSON_IsObject(p));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(p, "w")->valueint, 640);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(p, "s")->valuestring, "\xc3\xa9");
    cJSON_Delete(root);
    assert_string_equal(f->srv.idem, TASK_ID);
    assert_string_equal(f->srv.trace, TRACEP);
    assert_string_equal(f->srv.ctype, "application/json");
    assert_string_equal(f->srv.agent, "test-agent/1");
    release(&out);

    /* a payload that is not given is sent as null */
    assert_int_equal(call(f, "t.echo", NULL, 0, &out), HANDLER_OK);
    assert_non_null(strstr(out.result, "\"payload\":null"));
    release(&out);
}

static void test_2xx_not_json(void **state)
{
    struct fx *f = *state;
    struct handler_out out;
    const struct {
        const char *type;
        const char *result;
    } cases[] = {
        {"t.text", "{\"status\":200}"},
        {"t.empty", "{\"status\":204}"},
        {"t.201", "{\"status\":201}"}, /* "error 201\nbody" is not JSON */
        {"t.big", "{\"status\":200}"}, /* over max_response_bytes */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(call(f, cases[i].type, "{}", in_ms(5000), &out), HANDLER_OK);
        assert_string_equal(out.result, cases[i].result);
        assert_null(out.error);
        release(&out);
    }
}

static void test_failures_by_status(void **state)
{
    struct fx *f = *state;
    struct handler_out out;
    const struct {
        const char *type;
        int status;
        const char *error;
    } cases[] = {
        {"t.400", HANDLER_PERMANENT, "http 400: error 400 body"},
        {"t.404", HANDLER_PERMANENT, "http 404: error 404 body"},
        {"t.408", HANDLER_RETRY, "http 408: error 408 body"},
        {"t.429", HANDLER_RETRY, "http 429: error 429 body"},
        {"t.500", HANDLER_RETRY, "http 500: error 500 body"},
        {"t.503", HANDLER_RETRY, "http 503: error 503 body"},
        {"t.redirect", HANDLER_PERMANENT, "http 302"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(call(f, cases[i].type, "{}", in_ms(5000), &out), cases[i].status);
        assert_null(out.result);
        assert_non_null(out.error);
        assert_string_equal(out.error, cases[i].error); /* the newline made printable */
        release(&out);
    }
}

static void test_deadline(void **state)
{
    struct fx *f = *state;
    struct handler_out out;
    int64_t t0 = handler_now_ms();
    assert_int_equal(call(f, "t.slow", "{}", in_ms(300), &out), HANDLER_TIMEOUT);
    int64_t took = handler_now_ms() - t0;
    assert_true(took >= 290 && took < 1500);
    assert_string_equal(out.error, "delivery failed: timeout");
    assert_non_null(strstr(f->detail, "/slow | Timeout")); /* the whole story: the log's */
    release(&out);

    /* a deadline already past: no request at all */
    int hits = f->srv.hits;
    assert_int_equal(call(f, "t.echo", "{}", in_ms(-1), &out), HANDLER_TIMEOUT);
    assert_int_equal(f->srv.hits, hits);
    release(&out);
}

static void *cancel_later(void *arg)
{
    struct fx *f = arg;
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store(&f->cancel, true);
    return NULL;
}

static void test_cancel(void **state)
{
    struct fx *f = *state;
    struct handler_out out;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cancel_later, f), 0);
    int64_t t0 = handler_now_ms();
    assert_int_equal(call(f, "t.slow", "{}", in_ms(10000), &out), HANDLER_RETRY);
    int64_t took = handler_now_ms() - t0;
    pthread_join(t, NULL);
    assert_string_equal(out.error, "canceled");
    assert_true(took >= 190 && took < 1500); /* within about a second, not the answer */
    release(&out);

    /* canceled before the call: no request */
    int hits = f->srv.hits;
    assert_int_equal(call(f, "t.echo", "{}", 0, &out), HANDLER_RETRY);
    assert_int_equal(f->srv.hits, hits);
    release(&out);
}

static void test_connection_refused(void **state)
{
    struct fx *f = *state;
    /* a port that was free a moment ago: bind-and-close leaves nobody listening */
    struct server tmp;
    assert_int_equal(server_start(&tmp), 0);
    int port = tmp.port;
    server_stop(&tmp);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
    assert_int_equal(handler_http_route(f->http, f->reg, "t.refused", url), 0);
    struct handler_out out;
    assert_int_equal(call(f, "t.refused", "{}", in_ms(5000), &out), HANDLER_RETRY);
    /* what the submitter sees names no address, port or libcurl message */
    assert_string_equal(out.error, "delivery failed: connection refused or unreachable");
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    assert_null(strstr(out.error, "127.0.0.1"));
    assert_null(strstr(out.error, port_text));
    /* the operator's log gets all of it */
    assert_non_null(strstr(f->detail, url));
    assert_non_null(strstr(f->detail, "Couldn't connect"));
    release(&out);
}

struct thread_run {
    struct fx *f;
    int ok;
};

static void *many_calls(void *arg)
{
    struct thread_run *tr = arg;
    for (int i = 0; i < 20; i++) {
        struct handler_out out;
        if (call(tr->f, "t.echo", "{\"n\":1}", in_ms(5000), &out) == HANDLER_OK) {
            tr->ok++;
        }
        free(out.result);
        free(out.error);
    }
    return NULL;
}

/* Each thread keeps its own handle (freed when it exits); the set's own is freed
 * with the set: valgrind sees no leak either way. */
static void test_threads(void **state)
{
    struct fx *f = *state;
    pthread_t t[4];
    struct thread_run tr[4];
    for (int i = 0; i < 4; i++) {
        tr[i] = (struct thread_run){f, 0};
        assert_int_equal(pthread_create(&t[i], NULL, many_calls, &tr[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(tr[i].ok, 20);
    }
    struct handler_out out;
    assert_int_equal(call(f, "t.echo", "{}", 0, &out), HANDLER_OK);
    release(&out);
}

static void test_routes(void **state)
{
    (void)state;
    const char *good[] = {
        "",
        "  ",
        "a=http://h",
        "a=http://h/p,b=https://h:8443/q?x=1&y=2",
        " a.b_c-d = http://127.0.0.1:9/x , e=http://[::1]:80/ ",
        "x=HTTPS://Example.com/",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (handler_http_routes_check(good[i]) != 0) {
            fail_msg("should be accepted: '%s'", good[i]);
        }
    }
    const char *bad[] = {
        "a",
        "=http://h",
        "a=",
        "a=ftp://h/",
        "a=file:///etc/passwd",
        "a=http://",
        "a=/relative",
        "a=http://h/p q",
        "A=http://h",
        "-a=http://h",
        "a b=http://h",
        "a=http://h,",
        ",a=http://h",
        "a=http://h,,b=http://h",
        "a=http://h,a=http://g",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=http://h",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (handler_http_routes_check(bad[i]) != HANDLER_HTTP_EINVAL) {
            fail_msg("should be refused: '%s'", bad[i]);
        }
    }
    assert_int_equal(handler_http_routes_check(NULL), 0);
}

static void test_routes_register(void **state)
{
    (void)state;
    struct handler_registry *reg = NULL;
    struct handler_http *h = NULL;
    assert_int_equal(handler_registry_new(&reg), 0);
    assert_int_equal(handler_register_builtins(reg), 0);
    struct handler_http_config cfg = {0};
    assert_int_equal(handler_http_new(&cfg, &h), 0);

    const char *bad = NULL;
    const char *list = "x.one=http://h/1,x.two=http://h/2";
    assert_int_equal(handler_http_routes(h, reg, list, &bad), 0);
    assert_null(bad);
    assert_true(handler_lookup(reg, "x.one", NULL, NULL));
    assert_true(handler_lookup(reg, "x.two", NULL, NULL));

    /* malformed: nothing registered, bad points at the item */
    list = "y.one=http://h/1,y.two=nope";
    assert_int_equal(handler_http_routes(h, reg, list, &bad), HANDLER_HTTP_EINVAL);
    assert_ptr_equal(bad, list + 17);
    assert_false(handler_lookup(reg, "y.one", NULL, NULL));

    /* a type with a handler already */
    bad = NULL;
    list = "z=http://h/1,noop=http://h/2";
    assert_int_equal(handler_http_routes(h, reg, list, &bad), HANDLER_HTTP_EEXIST);
    assert_ptr_equal(bad, list + 13);
    assert_int_equal(handler_http_route(h, reg, "x.one", "http://h/"), HANDLER_HTTP_EEXIST);
    assert_int_equal(handler_http_route(h, reg, "w", "gopher://h/"), HANDLER_HTTP_EINVAL);
    assert_int_equal(handler_http_route(NULL, reg, "w", "http://h/"), HANDLER_HTTP_EINVAL);

    assert_non_null(handler_http_strerror(HANDLER_HTTP_EEXIST));
    assert_non_null(handler_http_strerror(12345));
    handler_registry_free(reg);
    handler_http_free(h);
    handler_http_free(NULL);
}

int test_http_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_request_and_json_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_2xx_not_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_by_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_routes_register),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
