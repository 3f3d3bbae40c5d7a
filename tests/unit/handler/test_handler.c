/* Unit tests for pkg/handler: the registry and the built-in handlers; the http
 * handler's group lives in test_http.c and runs from here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handler/handler.h"
#include "test_http.h"

static int dummy(void *arg, const struct handler_ctx *ctx, struct handler_out *out)
{
    (void)ctx;
    (void)out;
    return *(int *)arg;
}

static void test_registry(void **state)
{
    (void)state;
    struct handler_registry *reg = NULL;
    assert_int_equal(handler_registry_new(&reg), 0);
    int a = 1, b = 2;
    const char *names[] = {"m", "a", "z", "b.c", "a-b", "q_1", "k", "c", "x", "y", "e"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        assert_int_equal(handler_register(reg, names[i], dummy, i % 2 ? &a : &b), 0);
    }
    assert_int_equal(handler_register(reg, "k", dummy, &a), -1); /* taken */
    assert_int_equal(handler_register(reg, NULL, dummy, &a), -1);
    assert_int_equal(handler_register(reg, "n", NULL, &a), -1);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        handler_fn fn = NULL;
        void *arg = NULL;
        assert_true(handler_lookup(reg, names[i], &fn, &arg));
        assert_ptr_equal(fn, dummy);
        assert_ptr_equal(arg, i % 2 ? &a : &b);
    }
    handler_fn fn = dummy;
    assert_false(handler_lookup(reg, "nope", &fn, NULL));
    assert_ptr_equal(fn, dummy); /* untouched on a miss */
    assert_false(handler_lookup(reg, "", NULL, NULL));
    handler_registry_free(reg);
    handler_registry_free(NULL);
}

struct fixture {
    struct handler_registry *reg;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL || handler_registry_new(&f->reg) < 0 || handler_register_builtins(f->reg) < 0 ||
        handler_register_test_handlers(f->reg) < 0) {
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    handler_registry_free(f->reg);
    free(f);
    return 0;
}

/* Runs a built-in; out is released by the caller. */
static int run(struct fixture *f, const char *type, const char *payload, int attempt,
               int64_t deadline_ms, atomic_bool *cancel, struct handler_out *out)
{
    handler_fn fn = NULL;
    void *arg = NULL;
    assert_true(handler_lookup(f->reg, type, &fn, &arg));
    struct handler_ctx ctx = {
        .task_id = "01890000-0000-7000-8000-000000000000",
        .type = type,
        .payload = payload,
        .payload_len = strlen(payload),
        .attempt = attempt,
        .max_attempts = 5,
        .deadline_ms = deadline_ms,
        .canceled = cancel,
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

static void test_builtins_registered_once(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(handler_register_builtins(f->reg), -1); /* already there */
    assert_int_equal(handler_register_test_handlers(f->reg), -1);
    const char *types[] = {"noop", "echo", "sleep", "fail"};
    for (size_t i = 0; i < 4; i++) {
        assert_true(handler_lookup(f->reg, types[i], NULL, NULL));
    }
}

/* sleep and fail exist for tests and benchmarks: the plain built-ins leave them out,
 * so a worker that did not ask for them has no handler for those types. */
static void test_test_handlers_only_on_request(void **state)
{
    struct handler_registry *reg = NULL;
    (void)state;
    assert_int_equal(handler_registry_new(&reg), 0);
    assert_int_equal(handler_register_builtins(reg), 0);
    assert_true(handler_lookup(reg, "noop", NULL, NULL));
    assert_true(handler_lookup(reg, "echo", NULL, NULL));
    assert_false(handler_lookup(reg, "sleep", NULL, NULL));
    assert_false(handler_lookup(reg, "fail", NULL, NULL));
    assert_int_equal(handler_register_test_handlers(reg), 0);
    assert_true(handler_lookup(reg, "sleep", NULL, NULL));
    assert_true(handler_lookup(reg, "fail", NULL, NULL));
    handler_registry_free(reg);
}

/* echo hands the payload back byte for byte: digits a double cannot hold, spacing. */
static void test_echo_is_byte_exact(void **state)
{
    struct fixture *f = *state;
    struct handler_out out;
    const char *payload = "{ \"n\" : 12345678901234567891, \"x\": [1e400, -0.0] }";
    assert_int_equal(run(f, "echo", payload, 1, 0, NULL, &out), HANDLER_OK);
    assert_string_equal(out.result, payload);
    release(&out);
}

static void test_noop_and_echo(void **state)
{
    struct fixture *f = *state;
    struct handler_out out;
    assert_int_equal(run(f, "noop", "{}", 1, 0, NULL, &out), HANDLER_OK);
    assert_null(out.result);
    assert_null(out.error);
    const char *payload = "{\"a\":[1,2,{\"b\":\"c\"}]}";
    assert_int_equal(run(f, "echo", payload, 1, 0, NULL, &out), HANDLER_OK);
    assert_string_equal(out.result, payload);
    release(&out);
}

static void test_sleep_sleeps(void **state)
{
    struct fixture *f = *state;
    struct handler_out out;
    int64_t t0 = handler_now_ms();
    assert_int_equal(run(f, "sleep", "{\"ms\":30}", 1, t0 + 5000, NULL, &out), HANDLER_OK);
    int64_t took = handler_now_ms() - t0;
    assert_true(took >= 30);
    assert_true(took < 1000);
    assert_string_equal(out.result, "{\"slept_ms\":30}");
    release(&out);
}

static void test_sleep_deadline(void **state)
{
    struct fixture *f = *state;
    struct handler_out out;
    int64_t t0 = handler_now_ms();
    assert_int_equal(run(f, "sleep", "{\"ms\":60000}", 1, t0 + 40, NULL, &out), HANDLER_TIMEOUT);
    int64_t took = handler_now_ms() - t0;
    assert_true(took >= 40);
    assert_true(took < 1000); /* gave up at the deadline, not after 60 s */
    assert_non_null(out.error);
    release(&out);
}

static void *cancel_later(void *arg)
{
    struct timespec ts = {0, 30 * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store((atomic_bool *)arg, true);
    return NULL;
}

static void test_sleep_cancel(void **state)
{
    struct fixture *f = *state;
    struct handler_out out;
    atomic_bool cancel;
    atomic_init(&cancel, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cancel_later, &cancel), 0);
    int64_t t0 = handler_now_ms();
    assert_int_equal(run(f, "sleep", "{\"ms\":60000}", 1, 0, &cancel, &out), HANDLER_RETRY);
    assert_true(handler_now_ms() - t0 < 1000);
    assert_string_equal(out.error, "canceled");
    pthread_join(t, NULL);
    release(&out);
}

static void test_sleep_bad_payload(void **state)
{
    struct fixture *f = *state;
    struct handler_out out;
    const char *bad[] = {"{}", "{\"ms\":-1}", "{\"ms\":\"5\"}", "[1]", "nope", "{\"ms\":1.5}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(run(f, "sleep", bad[i], 1, 0, NULL, &out), HANDLER_PERMANENT);
        assert_non_null(out.error);
        release(&out);
    }
}

static void test_fail_times(void **state)
{
    struct fixture *f = *state;
    struct handler_out out;
    for (int attempt = 1; attempt <= 2; attempt++) {
        assert_int_equal(run(f, "fail", "{\"times\":2}", attempt, 0, NULL, &out), HANDLER_RETRY);
        assert_non_null(out.error);
        release(&out);
    }
    assert_int_equal(run(f, "fail", "{\"times\":2}", 3, 0, NULL, &out), HANDLER_OK);
    assert_null(out.error);
    assert_int_equal(run(f, "fail", "{\"times\":0}", 1, 0, NULL, &out), HANDLER_OK);
}

static void test_fail_permanent_and_default(void **state)
{
    struct fixture *f = *state;
    struct handler_out out;
    assert_int_equal(run(f, "fail", "{\"times\":1,\"permanent\":true}", 1, 0, NULL, &out),
                     HANDLER_PERMANENT);
    release(&out);
    assert_int_equal(run(f, "fail", "{\"times\":1,\"permanent\":true}", 2, 0, NULL, &out),
                     HANDLER_OK);
    assert_int_equal(run(f, "fail", "{}", 99, 0, NULL, &out), HANDLER_RETRY); /* always */
    release(&out);
    assert_int_equal(run(f, "fail", "{\"permanent\":1}", 1, 0, NULL, &out), HANDLER_PERMANENT);
    assert_non_null(strstr(out.error, "permanent")); /* a bad payload, named */
    release(&out);
}

static void test_canceled_helper(void **state)
{
    (void)state;
    atomic_bool c;
    atomic_init(&c, false);
    struct handler_ctx ctx = {.canceled = NULL};
    assert_false(handler_ctx_canceled(&ctx));
    ctx.canceled = &c;
    assert_false(handler_ctx_canceled(&ctx));
    atomic_store(&c, true);
    assert_true(handler_ctx_canceled(&ctx));
    int64_t a = handler_now_ms();
    assert_true(handler_now_ms() >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test_setup_teardown(test_builtins_registered_once, setup, teardown),
        cmocka_unit_test(test_test_handlers_only_on_request),
        cmocka_unit_test_setup_teardown(test_echo_is_byte_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_noop_and_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sleep_sleeps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sleep_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sleep_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sleep_bad_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_times, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_permanent_and_default, setup, teardown),
        cmocka_unit_test(test_canceled_helper),
    };
    int failed = cmocka_run_group_tests_name("builtins", tests, NULL, NULL);
    return failed + test_http_run();
}
