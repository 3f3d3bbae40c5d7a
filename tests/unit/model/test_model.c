/* model: statuses, validation, times, the view and the Kafka message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model/model.h"

static void test_status_names_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < TASK_STATUS_COUNT; i++) {
        enum task_status s;
        assert_int_equal(model_status_parse(model_status_name((enum task_status)i), &s), 0);
        assert_int_equal(s, i);
    }
    enum task_status s = TASK_QUEUED;
    assert_int_equal(model_status_parse("queued", &s), -1);
    assert_int_equal(s, TASK_QUEUED);
    assert_true(model_status_terminal(TASK_DEAD));
    assert_false(model_status_terminal(TASK_RETRYING));
}

static void test_type_validation(void **state)
{
    char max[MODEL_TYPE_MAX + 2];
    (void)state;
    assert_true(model_type_valid("echo"));
    assert_true(model_type_valid("0x.a_b-c"));
    assert_false(model_type_valid(""));
    assert_false(model_type_valid("Echo"));
    assert_false(model_type_valid(".echo"));
    assert_false(model_type_valid("-echo"));
    assert_false(model_type_valid("a b"));
    assert_false(model_type_valid("a/b"));
    memset(max, 'a', MODEL_TYPE_MAX);
    max[MODEL_TYPE_MAX] = '\0';
    assert_true(model_type_valid(max));
    max[MODEL_TYPE_MAX] = 'a';
    max[MODEL_TYPE_MAX + 1] = '\0';
    assert_false(model_type_valid(max));
}

static void test_traceparent(void **state)
{
    const char *good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    char fresh[MODEL_TRACEPARENT_LEN + 1], trace[33];
    (void)state;
    assert_true(model_traceparent_valid(good, strlen(good)));
    assert_false(
        model_traceparent_valid("00-00000000000000000000000000000000-00f067aa0ba902b7-01", 55));
    assert_false(
        model_traceparent_valid("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", 55));
    assert_false(
        model_traceparent_valid("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", 55));
    assert_false(
        model_traceparent_valid("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 55));
    assert_false(model_traceparent_valid(good, 54));
    assert_int_equal(model_traceparent_new(fresh), 0);
    assert_true(model_traceparent_valid(fresh, strlen(fresh)));
    model_traceparent_trace_id(good, trace);
    assert_string_equal(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
}

static void test_time_format_and_parse(void **state)
{
    char buf[32];
    int64_t us;
    (void)state;
    model_time_format(1795315708123456LL, buf);
    assert_string_equal(buf, "2026-11-22T02:48:28.123456Z");
    assert_int_equal(model_time_parse(buf, &us), 0);
    assert_int_equal(us, 1795315708123456LL);
    assert_int_equal(model_time_parse("2026-11-22T03:48:28.5+01:00", &us), 0);
    assert_int_equal(us, 1795315708500000LL);
    assert_int_equal(model_time_parse("2026-11-22t02:48:28z", &us), 0);
    assert_int_equal(us, 1795315708000000LL);
    assert_int_equal(model_time_parse("2026-02-30T00:00:00Z", &us), -1);
    assert_int_equal(model_time_parse("2026-11-22 02:48:28Z", &us), -1);
    assert_int_equal(model_time_parse("2026-11-22T02:48:28", &us), -1);
    assert_int_equal(model_time_parse("2026-11-22T02:48:28.Z", &us), -1);
    assert_int_equal(model_time_parse("2026-11-22T02:48:28Zjunk", &us), -1);
    assert_int_equal(model_time_parse("yesterday", &us), -1);
}

static void fill(struct task *t)
{
    memset(t, 0, sizeof *t);
    ids_parse("01a20128-0325-7488-bcdd-e8b048b1cd64", 36, &t->id);
    memcpy(t->type, "echo", 5);
    t->status = TASK_QUEUED;
    t->max_attempts = 5;
    t->payload = strdup("{\"k\":[1,2]}");
    t->created_at = 1795315708123456LL;
}

static void test_view_has_every_field(void **state)
{
    static const char *const fields[] = {"id",         "type",         "status",     "priority",
                                         "attempts",   "max_attempts", "payload",    "result",
                                         "last_error", "created_at",   "updated_at", "run_at",
                                         "started_at", "finished_at"};
    struct task t;
    char *text;
    cJSON *v;
    (void)state;
    fill(&t);
    text = model_task_view_text(&t);
    assert_non_null(text);
    v = cJSON_Parse(text);
    assert_non_null(v);
    assert_int_equal(cJSON_GetArraySize(v), sizeof fields / sizeof fields[0]); /* each once */
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        assert_non_null(cJSON_GetObjectItemCaseSensitive(v, fields[i]));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(v, "status")->valuestring, "QUEUED");
    assert_true(cJSON_IsArray(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(v, "payload"), "k")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(v, "result")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(v, "run_at")));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(v, "created_at")->valuestring,
                        "2026-11-22T02:48:28.123456Z");
    cJSON_Delete(v);
    free(text);
    model_task_release(&t);
}

static void test_message_embeds_payload_and_key(void **state)
{
    struct task t;
    char idbuf[IDS_TEXT_LEN + 1];
    size_t klen;
    const char *key;
    char *msg;
    cJSON *m;
    (void)state;
    fill(&t);
    msg = model_task_message(&t);
    assert_non_null(msg);
    m = cJSON_Parse(msg);
    assert_non_null(m);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(m, "id")->valuestring,
                        "01a20128-0325-7488-bcdd-e8b048b1cd64");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(m, "payload"), "k")),
                     2);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(m, "max_attempts")->valueint, 5);
    cJSON_Delete(m);
    free(msg);

    key = model_task_key(&t, idbuf, &klen);
    assert_int_equal(klen, IDS_TEXT_LEN);
    assert_memory_equal(key, "01a20128-0325-7488-bcdd-e8b048b1cd64", klen);
    t.ordering_key = strdup("k1");
    key = model_task_key(&t, idbuf, &klen);
    assert_int_equal(klen, 2);
    assert_memory_equal(key, "k1", 2);
    model_task_release(&t);
}

/* The payload and a JSON result are in the view byte for byte: no digit of a number
 * a double cannot hold is lost, no whitespace the client sent is changed. */
static void test_view_splices_payload_and_result_as_stored(void **state)
{
    static const char payload[] = "{ \"n\": 12345678901234567891, \"z\": -0.0,\n \"big\": 1e400 }";
    static const char result[] = "[12345678901234567891, {\"a\": [\"}\\\"{\"]}]";
    struct task t;
    char *text;
    cJSON *v;
    (void)state;
    fill(&t);
    free(t.payload);
    t.payload = strdup(payload);
    t.result = strdup(result);
    t.last_error = strdup("once \"quoted\"");
    text = model_task_view_text(&t);
    assert_non_null(text);
    assert_non_null(strstr(text, payload));
    assert_non_null(strstr(text, result));
    v = cJSON_Parse(text);
    assert_non_null(v); /* still one JSON object */
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(v, "last_error")->valuestring,
                        "once \"quoted\"");
    cJSON_Delete(v);
    free(text);
    model_task_release(&t);
}

/* A result that is not JSON (a custom handler's mistake) is shown as a string. */
static void test_view_shows_a_non_json_result_as_a_string(void **state)
{
    struct task t;
    char *text;
    cJSON *v, *r;
    (void)state;
    fill(&t);
    t.result = strdup("{\"open\": ");
    text = model_task_view_text(&t);
    assert_non_null(text);
    v = cJSON_Parse(text);
    assert_non_null(v);
    r = cJSON_GetObjectItemCaseSensitive(v, "result");
    assert_true(cJSON_IsString(r));
    assert_string_equal(r->valuestring, "{\"open\": ");
    cJSON_Delete(v);
    free(text);
    model_task_release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names_round_trip),
        cmocka_unit_test(test_type_validation),
        cmocka_unit_test(test_traceparent),
        cmocka_unit_test(test_time_format_and_parse),
        cmocka_unit_test(test_view_has_every_field),
        cmocka_unit_test(test_message_embeds_payload_and_key),
        cmocka_unit_test(test_view_splices_payload_and_result_as_stored),
        cmocka_unit_test(test_view_shows_a_non_json_result_as_a_string),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
