/* ctl: option tables, times and durations, rates, table cells, the actor name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ctl/ctl_int.h"
#include "model/model.h"

static FILE *sink(void)
{
    FILE *f = fopen("/dev/null", "w");
    assert_non_null(f);
    return f;
}

static void test_options_and_positionals(void **state)
{
    const char *type = NULL, *rate = NULL;
    bool dry = false;
    const struct ctl__opt opts[] = {
        {"type", CTL__VALUE, &type},
        {"rate", CTL__VALUE, &rate},
        {"dry-run", CTL__FLAG, &dry},
    };
    char *argv[] = {"a", "--type", "echo", "--rate=5/s", "b", "--dry-run", "--", "--c"};
    char *pos[4];
    int npos = -1;
    FILE *err = sink();
    (void)state;
    assert_int_equal(ctl__parse_args("t", 8, argv, opts, 3, pos, 4, &npos, err), 0);
    assert_int_equal(npos, 3);
    assert_string_equal(pos[0], "a");
    assert_string_equal(pos[1], "b");
    assert_string_equal(pos[2], "--c"); /* after "--" it is an argument */
    assert_string_equal(type, "echo");
    assert_string_equal(rate, "5/s");
    assert_true(dry);
    fclose(err);
}

static void test_option_errors(void **state)
{
    const char *type = NULL;
    bool flag = false;
    const struct ctl__opt opts[] = {{"type", CTL__VALUE, &type}, {"json", CTL__FLAG, &flag}};
    char *unknown[] = {"--nope"}, *missing[] = {"--type"}, *twice[] = {"--json", "--json"};
    char *flag_value[] = {"--json=1"}, *extra[] = {"x"}, *shortopt[] = {"-t"};
    char *pos[1];
    int npos = 0;
    FILE *err = sink();
    (void)state;
    assert_int_equal(ctl__parse_args("t", 1, unknown, opts, 2, pos, 1, &npos, err), -1);
    assert_int_equal(ctl__parse_args("t", 1, missing, opts, 2, pos, 1, &npos, err), -1);
    assert_int_equal(ctl__parse_args("t", 2, twice, opts, 2, pos, 1, &npos, err), -1);
    assert_int_equal(ctl__parse_args("t", 1, flag_value, opts, 2, pos, 1, &npos, err), -1);
    assert_int_equal(ctl__parse_args("t", 1, extra, opts, 2, NULL, 0, &npos, err), -1);
    assert_int_equal(ctl__parse_args("t", 1, shortopt, opts, 2, pos, 1, &npos, err), -1);
    fclose(err);
}

static void test_when(void **state)
{
    const int64_t now = 1800000000LL * 1000000;
    int64_t t = 0, want = 0;
    (void)state;
    assert_int_equal(ctl__parse_when("90s", now, &t), 0);
    assert_int_equal(t, now - 90LL * 1000000);
    assert_int_equal(ctl__parse_when("1h30m", now, &t), 0);
    assert_int_equal(t, now - 5400LL * 1000000);
    assert_int_equal(ctl__parse_when("7d", now, &t), 0);
    assert_int_equal(t, now - 7LL * 86400 * 1000000);
    assert_int_equal(ctl__parse_when("0s", now, &t), 0);
    assert_int_equal(t, now);
    assert_int_equal(ctl__parse_when("2026-11-22T02:00:00Z", now, &t), 0);
    assert_int_equal(model_time_parse("2026-11-22T02:00:00Z", &want), 0);
    assert_int_equal(t, want);
    t = 42;
    const char *bad[] = {
        "", "1", "1x", "h", "-1h", "1h 2m", "99999999999d", "yesterday", "2026-13-01T00:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ctl__parse_when(bad[i], now, &t), -1);
        assert_int_equal(t, 42); /* untouched on failure */
    }
}

static void test_long_and_rate(void **state)
{
    long v = 7;
    int64_t ns = 0;
    (void)state;
    assert_int_equal(ctl__parse_long("10", 1, 1000, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(ctl__parse_long("0", 1, 1000, &v), -1);
    assert_int_equal(ctl__parse_long("1001", 1, 1000, &v), -1);
    assert_int_equal(ctl__parse_long("-5", -10, 10, &v), -1); /* digits only */
    assert_int_equal(ctl__parse_long("5x", 1, 10, &v), -1);
    assert_int_equal(v, 10);

    assert_int_equal(ctl__parse_rate("10/s", &ns), 0);
    assert_int_equal(ns, 100000000);
    assert_int_equal(ctl__parse_rate("0.5", &ns), 0);
    assert_int_equal(ns, 2000000000);
    assert_int_equal(ctl__parse_rate("0/s", &ns), -1);
    assert_int_equal(ctl__parse_rate("fast", &ns), -1);
    assert_int_equal(ctl__parse_rate("5/m", &ns), -1);
    assert_int_equal(ctl__parse_rate("nan", &ns), -1);
    assert_int_equal(ctl__parse_rate("1e9", &ns), -1);
}

static void test_clip(void **state)
{
    char out[32];
    (void)state;
    ctl__clip("short", 10, out, sizeof out);
    assert_string_equal(out, "short");
    ctl__clip(NULL, 10, out, sizeof out);
    assert_string_equal(out, "-");
    ctl__clip("line one\nline\ttwo", 40, out, sizeof out);
    assert_string_equal(out, "line one line two");
    ctl__clip("abcdefghij", 4, out, sizeof out);
    assert_string_equal(out, "abcd...");
    /* "h\u00e9llo": the 2-byte \u00e9 does not fit in 2 bytes after "h" */
    ctl__clip("h\xc3\xa9llo", 2, out, sizeof out);
    assert_string_equal(out, "h...");
    ctl__clip("h\xc3\xa9llo", 3, out, sizeof out);
    assert_string_equal(out, "h\xc3\xa9...");
    ctl__clip("0123456789012345678901234567890123456789", 100, out, 16);
    assert_int_equal(strlen(out), 15);
}

static void test_actor(void **state)
{
    char out[129];
    (void)state;
    setenv("LOGNAME", "ops person", 1);
    ctl__actor(out, sizeof out);
    assert_true(strncmp(out, "dispatchctl:ops_person@", 23) == 0);
    assert_true(strlen(out) > 23);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_and_positionals),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_when),
        cmocka_unit_test(test_long_and_rate),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_actor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
