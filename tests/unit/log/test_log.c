/* Unit tests for internal/log: every line must parse back as JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log/log.h"

static int setup(void **state)
{
    (void)state;
    log_init(LOG_LEVEL_INFO, "unittest");
    return 0;
}

/* Formats into a generous buffer, checks the newline and parses it. */
static cJSON *format_parse(enum log_level level, const char *msg, const struct log_kv *kv, size_t n)
{
    char buf[4096];
    int len = log_format(buf, sizeof buf, level, msg, kv, n);

    assert_true(len > 0);
    assert_int_equal((size_t)len, strlen(buf));
    assert_int_equal(buf[len - 1], '\n');
    assert_null(memchr(buf, '\n', (size_t)len - 1)); /* one line */
    cJSON *root = cJSON_ParseWithLength(buf, (size_t)len);
    if (root == NULL)
        fail_msg("not JSON: %s", buf);
    return root;
}

static const char *str_of(const cJSON *root, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_basic_fields(void **state)
{
    const struct log_kv kv[] = {LOG_S("task_id", "abc"), LOG_I("latency_ms", -42),
                                LOG_D("ratio", 0.25), LOG_B("ok", 1), LOG_B("bad", 0)};
    (void)state;

    cJSON *root = format_parse(LOG_LEVEL_WARN, "task done", kv, 5);
    assert_string_equal(str_of(root, "level"), "warn");
    assert_string_equal(str_of(root, "service"), "unittest");
    assert_string_equal(str_of(root, "msg"), "task done");
    assert_string_equal(str_of(root, "task_id"), "abc");
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(root, "latency_ms")->valuedouble, -42);
    assert_true(cJSON_GetObjectItemCaseSensitive(root, "ratio")->valuedouble == 0.25);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "ok")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "bad")));
    cJSON_Delete(root);
}

static void test_timestamp_rfc3339_ms(void **state)
{
    struct tm tm = {0};
    (void)state;

    cJSON *root = format_parse(LOG_LEVEL_INFO, "x", NULL, 0);
    const char *ts = str_of(root, "ts");
    assert_non_null(ts);
    /* 2026-11-22T02:34:35.123Z */
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    const char *end = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
    assert_non_null(end);
    assert_int_equal(*end, '.');
    time_t t = timegm(&tm);
    assert_true(llabs((long long)(t - time(NULL))) <= 2);
    cJSON_Delete(root);
}

static void test_escaping(void **state)
{
    const char nasty[] = "q\"b\\s/\n\r\t\x01\x1f\x7f end";
    const struct log_kv kv[] = {LOG_S("v", nasty), LOG_S("k\"ey\n", "x")};
    char buf[512];
    (void)state;

    cJSON *root = format_parse(LOG_LEVEL_ERROR, "line1\nline2 \"quoted\"", kv, 2);
    assert_string_equal(str_of(root, "msg"), "line1\nline2 \"quoted\"");
    assert_string_equal(str_of(root, "v"), nasty);
    assert_string_equal(str_of(root, "k\"ey\n"), "x");
    cJSON_Delete(root);

    assert_true(log_format(buf, sizeof buf, LOG_LEVEL_INFO, "\x01", NULL, 0) > 0);
    assert_non_null(strstr(buf, "\"msg\":\"\\u0001\""));
}

static void test_invalid_utf8_replaced(void **state)
{
    /* valid 2/3/4-byte chars survive; lone continuation, overlong, surrogate, cut
     * sequence and > U+10FFFF become U+FFFD */
    const char *in = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82|"
                     "\xf4\x90\x80\x80|\xff";
    char buf[512];
    (void)state;

    int len = log_format(buf, sizeof buf, LOG_LEVEL_INFO, in, NULL, 0);
    assert_true(len > 0);
    cJSON *root = cJSON_ParseWithLength(buf, (size_t)len);
    assert_non_null(root);
    const char *msg = str_of(root, "msg");
    assert_non_null(msg);
#define R "\xef\xbf\xbd" /* U+FFFD, one per rejected byte */
    assert_string_equal(msg, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|" R "|" R R "|" R R R "|" R R
                             "|" R R R R "|" R);
#undef R
    cJSON_Delete(root);
}

static void test_null_keys_and_values_skipped(void **state)
{
    const struct log_kv kv[] = {LOG_S("trace_id", NULL), LOG_S(NULL, "x"), LOG_I(NULL, 5), LOG_NONE,
                                LOG_S("kept", "y")};
    (void)state;

    cJSON *root = format_parse(LOG_LEVEL_INFO, "m", kv, 5);
    assert_null(cJSON_GetObjectItemCaseSensitive(root, "trace_id"));
    assert_string_equal(str_of(root, "kept"), "y");
    /* ts, level, service, msg, kept */
    assert_int_equal(cJSON_GetArraySize(root), 5);
    cJSON_Delete(root);
}

static void test_non_finite_double_is_null(void **state)
{
    const struct log_kv kv[] = {LOG_D("nan", 0.0 / 0.0), LOG_D("inf", 1.0 / 0.0),
                                LOG_D("third", 1.0 / 3.0)};
    (void)state;

    cJSON *root = format_parse(LOG_LEVEL_INFO, "m", kv, 3);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "nan")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "inf")));
    assert_true(cJSON_GetObjectItemCaseSensitive(root, "third")->valuedouble == 1.0 / 3.0);
    cJSON_Delete(root);
}

static void test_format_does_not_fit(void **state)
{
    char buf[64];
    char big[200];
    (void)state;

    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memset(buf, 'Z', sizeof buf);
    assert_int_equal(log_format(buf, sizeof buf, LOG_LEVEL_INFO, big, NULL, 0), -1);
    assert_int_equal(buf[0], '\0');
    assert_int_equal(log_format(buf, 0, LOG_LEVEL_INFO, "m", NULL, 0), -1);

    /* exact fit: find the length, then format into exactly len + 1 bytes */
    char full[256];
    int len = log_format(full, sizeof full, LOG_LEVEL_INFO, "fits", NULL, 0);
    assert_true(len > 0);
    char *exact = malloc((size_t)len + 1);
    assert_non_null(exact);
    int len2 = log_format(exact, (size_t)len + 1, LOG_LEVEL_INFO, "fits", NULL, 0);
    assert_true(len2 == len || len2 == -1); /* the ms may tick; the length cannot change */
    assert_int_equal(log_format(exact, (size_t)len, LOG_LEVEL_INFO, "fits", NULL, 0), -1);
    free(exact);
}

/* Runs log__emit with stderr redirected to a temp file and returns what was written. */
static char *capture_emit(enum log_level level, const char *msg, const struct log_kv *kv, size_t n,
                          size_t *ret_len)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    if (log_enabled(level))
        log__emit(level, msg, kv, n);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);

    enum { CAP = 16384 }; /* more than one line can hold */
    off_t size = lseek(fileno(tmp), 0, SEEK_END);
    char *out = calloc(1, CAP);
    assert_non_null(out);
    assert_true(size >= 0 && size < CAP);
    assert_int_equal(pread(fileno(tmp), out, CAP - 1, 0), size);
    fclose(tmp);
    *ret_len = (size_t)size;
    return out;
}

static void test_emit_truncates_to_valid_json(void **state)
{
    size_t big_len = 20000;
    char *big = malloc(big_len + 1);
    size_t len;
    (void)state;

    assert_non_null(big);
    /* multi-byte chars and escapes so the cut can land mid-character */
    for (size_t i = 0; i < big_len; i++)
        big[i] = (i % 7 == 0) ? '"' : 'x';
    memcpy(big + 100, "\xe2\x82\xac\xe2\x82\xac", 6);
    big[big_len] = '\0';

    for (int variant = 0; variant < 3; variant++) {
        const struct log_kv kv[] = {LOG_S("first", "kept"), LOG_S("payload", big),
                                    LOG_I("after", 7)};
        const char *msg = variant == 0 ? big : "short";
        char *out = capture_emit(LOG_LEVEL_ERROR, msg, kv, variant == 2 ? 1 : 3, &len);

        assert_true(len > 0 && len <= 8192);
        assert_int_equal(out[len - 1], '\n');
        cJSON *root = cJSON_ParseWithLength(out, len);
        if (root == NULL)
            fail_msg("variant %d: truncated line is not JSON: %.200s", variant, out);
        cJSON *tr = cJSON_GetObjectItemCaseSensitive(root, "truncated");
        if (variant == 2) {
            assert_null(tr);
            assert_string_equal(str_of(root, "first"), "kept");
        } else {
            assert_true(cJSON_IsTrue(tr));
            assert_null(cJSON_GetObjectItemCaseSensitive(root, "after"));
        }
        if (variant == 1) {
            assert_string_equal(str_of(root, "first"), "kept");
            assert_true(strlen(str_of(root, "payload")) > 4000);
        }
        cJSON_Delete(root);
        free(out);
    }
    free(big);
}

static void test_level_threshold(void **state)
{
    size_t len;
    int evaluated = 0;
    (void)state;

    log_init(LOG_LEVEL_WARN, "unittest");
    assert_false(log_enabled(LOG_LEVEL_DEBUG));
    assert_false(log_enabled(LOG_LEVEL_INFO));
    assert_true(log_enabled(LOG_LEVEL_WARN));
    assert_true(log_enabled(LOG_LEVEL_ERROR));

    char *out = capture_emit(LOG_LEVEL_INFO, "hidden", NULL, 0, &len);
    assert_int_equal(len, 0);
    free(out);
    out = capture_emit(LOG_LEVEL_ERROR, "shown", NULL, 0, &len);
    assert_non_null(strstr(out, "\"msg\":\"shown\""));
    free(out);

    /* the macros do not evaluate arguments below the threshold */
    log_info("hidden", LOG_I("n", ++evaluated));
    assert_int_equal(evaluated, 0);

    log_init(LOG_LEVEL_DEBUG, "unittest");
    assert_true(log_enabled(LOG_LEVEL_DEBUG));
    log_init(LOG_LEVEL_INFO, "unittest");
}

static void test_level_parse_and_name(void **state)
{
    enum log_level lv = LOG_LEVEL_ERROR;
    (void)state;

    assert_int_equal(log_level_parse("debug", &lv), 0);
    assert_int_equal(lv, LOG_LEVEL_DEBUG);
    assert_int_equal(log_level_parse("warn", &lv), 0);
    assert_int_equal(lv, LOG_LEVEL_WARN);
    assert_int_equal(log_level_parse("WARN", &lv), -1);
    assert_int_equal(log_level_parse("warning", &lv), -1);
    assert_int_equal(log_level_parse("", &lv), -1);
    assert_int_equal(log_level_parse(NULL, &lv), -1);
    assert_int_equal(lv, LOG_LEVEL_WARN); /* untouched on failure */
    assert_string_equal(log_level_name(LOG_LEVEL_ERROR), "error");
    assert_string_equal(log_level_name(LOG_LEVEL_INFO), "info");
    assert_string_equal(log_level_name((enum log_level)42), "unknown");
}

static void test_no_service(void **state)
{
    (void)state;
    log_init(LOG_LEVEL_INFO, NULL);
    cJSON *root = format_parse(LOG_LEVEL_INFO, "m", NULL, 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(root, "service"));
    cJSON_Delete(root);
    log_init(LOG_LEVEL_INFO, "unittest");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_basic_fields, setup),
        cmocka_unit_test_setup(test_timestamp_rfc3339_ms, setup),
        cmocka_unit_test_setup(test_escaping, setup),
        cmocka_unit_test_setup(test_invalid_utf8_replaced, setup),
        cmocka_unit_test_setup(test_null_keys_and_values_skipped, setup),
        cmocka_unit_test_setup(test_non_finite_double_is_null, setup),
        cmocka_unit_test_setup(test_format_does_not_fit, setup),
        cmocka_unit_test_setup(test_emit_truncates_to_valid_json, setup),
        cmocka_unit_test_setup(test_level_threshold, setup),
        cmocka_unit_test_setup(test_level_parse_and_name, setup),
        cmocka_unit_test_setup(test_no_service, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
