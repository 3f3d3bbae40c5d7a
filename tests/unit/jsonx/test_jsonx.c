/* Unit tests for pkg/jsonx: bounded parsing, spec checking, canonical form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx/jsonx.h"

static int parse_str(const char *s, int max_depth, cJSON **ret_root)
{
    return jsonx_parse(s, strlen(s), max_depth, ret_root);
}

/* Parses from an exact-size heap copy with no terminator: ASan sees any over-read. */
static int parse_exact(const char *s, size_t len, int max_depth, cJSON **ret_root)
{
    char *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    int r = jsonx_parse(copy, len, max_depth, ret_root);
    free(copy);
    return r;
}

static char *nested(const char *open, const char *close, int depth)
{
    size_t lo = strlen(open), lc = strlen(close);
    char *s = malloc((size_t)depth * (lo + lc) + 2);
    size_t n = 0;

    assert_non_null(s);
    for (int i = 0; i < depth; i++, n += lo)
        memcpy(s + n, open, lo);
    s[n++] = '1';
    for (int i = 0; i < depth; i++, n += lc)
        memcpy(s + n, close, lc);
    s[n] = '\0';
    return s;
}

static void test_parse_ok(void **state)
{
    cJSON *root = NULL;
    (void)state;

    assert_int_equal(parse_str(" {\"a\": [1, 2, {\"b\": null}], \"c\": \"x\"} \n\t\r", 32, &root),
                     JSONX_OK);
    assert_non_null(root);
    assert_true(cJSON_IsObject(root));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(root, "c")->valuestring, "x");
    cJSON_Delete(root);

    assert_int_equal(parse_str("42", 0, &root), JSONX_OK); /* scalars have depth 0 */
    assert_int_equal(root->valuedouble, 42);
    cJSON_Delete(root);
}

static int parse_bytes(const char *s, size_t len)
{
    cJSON *root = NULL;
    int rc = jsonx_parse(s, len, 8, &root);
    cJSON_Delete(root);
    return rc;
}

static void test_utf8_is_required(void **state)
{
    static const struct {
        const char *s;
        int want;
    } cases[] = {
        {"\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"", JSONX_OK}, /* é € 😀 */
        {"\"\xff\xfe\"", JSONX_ERR_UTF8},                             /* not UTF-8 at all */
        {"\"\xc3\"", JSONX_ERR_UTF8},                                 /* truncated */
        {"\"\xc0\xaf\"", JSONX_ERR_UTF8},                             /* overlong '/' */
        {"\"\xe0\x80\xaf\"", JSONX_ERR_UTF8},                         /* overlong, 3 bytes */
        {"\"\xed\xa0\x80\"", JSONX_ERR_UTF8},                         /* a surrogate */
        {"\"\xf4\x90\x80\x80\"", JSONX_ERR_UTF8},                     /* above U+10FFFF */
        {"\"\xe2\x82\"", JSONX_ERR_UTF8},                             /* cut short */
        {"\"\\ud83d\\ude00\"", JSONX_OK},                             /* escaped pair */
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(parse_bytes(cases[i].s, strlen(cases[i].s)), cases[i].want);
    /* a multi-byte character cut by the length bound is not read past it */
    assert_int_equal(parse_bytes("\"\xc3\xa9\"", 2), JSONX_ERR_UTF8);
}

static void test_depth_boundary(void **state)
{
    static const char *const pairs[][2] = {{"[", "]"}, {"{\"k\":", "}"}};
    cJSON *root;
    (void)state;

    for (size_t p = 0; p < 2; p++) {
        for (int max = 1; max <= 64; max += 21) {
            char *at = nested(pairs[p][0], pairs[p][1], max);
            char *over = nested(pairs[p][0], pairs[p][1], max + 1);
            root = NULL;
            assert_int_equal(parse_str(at, max, &root), JSONX_OK);
            cJSON_Delete(root);
            root = (cJSON *)0x1;
            assert_int_equal(parse_str(over, max, &root), JSONX_ERR_DEPTH);
            assert_ptr_equal(root, (cJSON *)0x1); /* untouched on failure */
            free(at);
            free(over);
        }
    }
    /* siblings do not add up: depth is nesting, not count */
    assert_int_equal(parse_str("[[1],[2],{\"a\":3},[[]]]", 3, &root), JSONX_OK);
    cJSON_Delete(root);
    assert_int_equal(parse_str("[[1],[2],{\"a\":3}]", 2, &root), JSONX_OK);
    cJSON_Delete(root);
    assert_int_equal(parse_str("[[1],[2],{\"a\":[3]}]", 2, &root), JSONX_ERR_DEPTH);
}

static void test_depth_ignores_strings(void **state)
{
    cJSON *root = NULL;
    (void)state;

    assert_int_equal(parse_str("[\"[[[[{{{{\"]", 1, &root), JSONX_OK);
    cJSON_Delete(root);
    assert_int_equal(parse_str("[\"\\\"[[[[\", \"\\\\\"]", 1, &root), JSONX_OK);
    cJSON_Delete(root);
    /* an escaped backslash ends the escape: the quote after it closes the string */
    assert_int_equal(parse_str("[\"\\\\\", [[1]]]", 2, &root), JSONX_ERR_DEPTH);
}

static void test_hostile_depth_no_recursion(void **state)
{
    enum { N = 1000000 };
    char *s = malloc(N + 1);
    cJSON *root = NULL;
    (void)state;

    assert_non_null(s);
    memset(s, '[', N);
    s[N] = '\0';
    assert_int_equal(parse_str(s, 32, &root), JSONX_ERR_DEPTH);
    assert_null(root);
    free(s);
}

static void test_trailing_and_syntax(void **state)
{
    static const char *const bad[] = {
        "",    "   ",  "{} x",      "1 2", "{}{}",  "[1,2", "{\"a\":", "\"ab",
        "tru", "[1,]", "{\"a\" 1}", "nul", "{} //", "[] ,", "{'a':1}", "[1] ]",
    };
    cJSON *root;
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        root = NULL;
        if (parse_str(bad[i], 32, &root) != JSONX_ERR_SYNTAX)
            fail_msg("accepted '%s'", bad[i]);
        assert_null(root);
        /* and the same from an unterminated buffer */
        assert_int_equal(parse_exact(bad[i], strlen(bad[i]), 32, &root), JSONX_ERR_SYNTAX);
    }
    assert_int_equal(jsonx_parse(NULL, 3, 32, &root), JSONX_ERR_SYNTAX);
}

static void test_embedded_nul(void **state)
{
    cJSON *root = NULL;
    (void)state;

    assert_int_equal(jsonx_parse("{}\0", 3, 32, &root), JSONX_ERR_SYNTAX);
    assert_int_equal(jsonx_parse("[\"a\0b\"]", 7, 32, &root), JSONX_ERR_SYNTAX);
    assert_int_equal(jsonx_parse("\0{}", 3, 32, &root), JSONX_ERR_SYNTAX);
    /* \u0000 would be cut short by cJSON's C strings: refused as well */
    assert_int_equal(parse_str("{\"a\\u0000b\":1}", 32, &root), JSONX_ERR_SYNTAX);
    assert_int_equal(parse_str("[\"x\\u0000\"]", 32, &root), JSONX_ERR_SYNTAX);
    assert_null(root);
    /* but an escaped backslash followed by u0000 text is fine */
    assert_int_equal(parse_str("[\"\\\\u0000\"]", 32, &root), JSONX_OK);
    assert_string_equal(root->child->valuestring, "\\u0000");
    cJSON_Delete(root);
}

static void test_length_bounded(void **state)
{
    static const char *const docs[] = {
        "12345", "-0.5e10", "true", "null", "\"str\"", "[1,2,3]", "{\"a\":{\"b\":[true,false]}}",
        "7 \n"};
    cJSON *root = NULL;
    (void)state;

    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        root = NULL;
        if (parse_exact(docs[i], strlen(docs[i]), 32, &root) != JSONX_OK)
            fail_msg("rejected '%s'", docs[i]);
        cJSON_Delete(root);
    }
    /* bytes past len are not looked at, not even a closing bracket */
    const char buf[] = "[1]XYZ";
    assert_int_equal(jsonx_parse(buf, 3, 32, &root), JSONX_OK);
    cJSON_Delete(root);
    assert_int_equal(jsonx_parse(buf, 2, 32, &root), JSONX_ERR_SYNTAX);
    assert_int_equal(jsonx_parse("123456", 3, 32, &root), JSONX_OK);
    assert_int_equal(root->valuedouble, 123);
    cJSON_Delete(root);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(jsonx_strerror(JSONX_OK), "ok");
    assert_non_null(strstr(jsonx_strerror(JSONX_ERR_DEPTH), "deep"));
    assert_non_null(strstr(jsonx_strerror(JSONX_ERR_SYNTAX), "JSON"));
    assert_non_null(strstr(jsonx_strerror(JSONX_ERR_NOMEM), "memory"));
    assert_non_null(jsonx_strerror(-99));
}

/* --- specs ---------------------------------------------------------------- */

struct body {
    const char *type;
    long long attempts;
    bool urgent;
    const cJSON *payload;
    const cJSON *meta;
};

static int parse_body(const char *json, bool strict, struct body *b, struct jsonx_error *err)
{
    cJSON *root = NULL;
    const struct jsonx_field spec[] = {
        JSONX_STRING("type", true, 1, 8, &b->type),
        JSONX_INT("max_attempts", false, 1, 100, &b->attempts),
        JSONX_BOOL("urgent", false, &b->urgent),
        JSONX_ANY("payload", true, &b->payload),
        JSONX_OBJECT("meta", false, &b->meta),
        JSONX_END,
    };

    assert_int_equal(parse_str(json, 32, &root), JSONX_OK);
    int r = jsonx_spec_parse(root, spec, strict, err);
    cJSON_Delete(root); /* borrowed pointers die here; tests only compare them to NULL */
    return r;
}

static void init_body(struct body *b)
{
    b->type = "unset";
    b->attempts = 5;
    b->urgent = false;
    b->payload = NULL;
    b->meta = NULL;
}

static void test_spec_ok(void **state)
{
    cJSON *root = NULL;
    struct body b;
    struct jsonx_error err = {.field = "untouched"};
    (void)state;

    init_body(&b);
    assert_int_equal(parse_str("{\"type\":\"email\",\"max_attempts\":7,\"urgent\":true,"
                               "\"payload\":{\"to\":\"x\"},\"meta\":{}}",
                               32, &root),
                     JSONX_OK);
    const struct jsonx_field spec[] = {
        JSONX_STRING("type", true, 1, 8, &b.type),
        JSONX_INT("max_attempts", false, 1, 100, &b.attempts),
        JSONX_BOOL("urgent", false, &b.urgent),
        JSONX_ANY("payload", true, &b.payload),
        JSONX_OBJECT("meta", false, &b.meta),
        JSONX_END,
    };
    assert_int_equal(jsonx_spec_parse(root, spec, true, &err), 0);
    assert_string_equal(b.type, "email");
    assert_int_equal(b.attempts, 7);
    assert_true(b.urgent);
    assert_ptr_equal(b.payload, cJSON_GetObjectItemCaseSensitive(root, "payload"));
    assert_ptr_equal(b.meta, cJSON_GetObjectItemCaseSensitive(root, "meta"));
    assert_string_equal(err.field, "untouched");
    cJSON_Delete(root);

    /* optional fields absent: defaults stay; ANY accepts null */
    init_body(&b);
    assert_int_equal(parse_body("{\"type\":\"t\",\"payload\":null}", true, &b, &err), 0);
    assert_int_equal(b.attempts, 5);
    assert_false(b.urgent);
    assert_non_null(b.payload);
    assert_null(b.meta);

    /* integral forms of an integer are integers */
    init_body(&b);
    assert_int_equal(
        parse_body("{\"type\":\"t\",\"payload\":1,\"max_attempts\":1e2}", true, &b, &err), 0);
    assert_int_equal(b.attempts, 100);
    init_body(&b);
    assert_int_equal(
        parse_body("{\"type\":\"t\",\"payload\":1,\"max_attempts\":3.0}", true, &b, &err), 0);
    assert_int_equal(b.attempts, 3);
}

/* Checks one rejected body: -1, the field named, the reason, destinations untouched. */
static void expect_reject(const char *json, bool strict, const char *field, const char *reason)
{
    struct body b;
    struct jsonx_error err;

    init_body(&b);
    memset(&err, 0, sizeof err);
    if (parse_body(json, strict, &b, &err) != -1)
        fail_msg("accepted %s", json);
    if (field == NULL)
        assert_null(err.field);
    else if (err.field == NULL || strcmp(err.field, field) != 0)
        fail_msg("%s: field %s, want %s", json, err.field ? err.field : "(null)", field);
    if (strstr(err.reason, reason) == NULL)
        fail_msg("%s: reason '%s' lacks '%s'", json, err.reason, reason);
    assert_string_equal(b.type, "unset");
    assert_int_equal(b.attempts, 5);
    assert_false(b.urgent);
    assert_null(b.payload);
    assert_null(b.meta);
}

static void test_spec_errors(void **state)
{
    (void)state;
    expect_reject("{\"payload\":1}", true, "type", "is required");
    expect_reject("{\"type\":\"t\"}", true, "payload", "is required");
    expect_reject("{\"type\":\"\",\"payload\":1}", true, "type", "1..8 bytes");
    expect_reject("{\"type\":\"123456789\",\"payload\":1}", true, "type", "1..8 bytes");
    expect_reject("{\"type\":5,\"payload\":1}", true, "type", "string");
    expect_reject("{\"type\":null,\"payload\":1}", true, "type", "string");
    expect_reject("{\"type\":\"t\",\"payload\":1,\"max_attempts\":1.5}", true, "max_attempts",
                  "integer in 1..100");
    expect_reject("{\"type\":\"t\",\"payload\":1,\"max_attempts\":1e300}", true, "max_attempts",
                  "integer");
    expect_reject("{\"type\":\"t\",\"payload\":1,\"max_attempts\":-1e300}", true, "max_attempts",
                  "integer");
    expect_reject("{\"type\":\"t\",\"payload\":1,\"max_attempts\":0}", true, "max_attempts",
                  "1..100");
    expect_reject("{\"type\":\"t\",\"payload\":1,\"max_attempts\":101}", true, "max_attempts",
                  "1..100");
    expect_reject("{\"type\":\"t\",\"payload\":1,\"max_attempts\":\"5\"}", true, "max_attempts",
                  "integer");
    expect_reject("{\"type\":\"t\",\"payload\":1,\"urgent\":1}", true, "urgent", "boolean");
    expect_reject("{\"type\":\"t\",\"payload\":1,\"meta\":[]}", true, "meta", "object");
    expect_reject("{\"type\":\"t\",\"payload\":1,\"meta\":null}", true, "meta", "object");
    expect_reject("{\"type\":\"t\",\"payload\":1,\"extra\":1}", true, NULL,
                  "unknown field \"extra\"");
    expect_reject("{\"type\":\"t\",\"payload\":1,\"Type\":\"x\"}", true, NULL, "\"Type\"");
    expect_reject("{\"type\":\"a\",\"payload\":1,\"type\":\"b\"}", true, "type", "more than once");
    expect_reject("{\"type\":\"a\",\"payload\":1,\"x\":1,\"x\":2}", false, NULL,
                  "duplicate field \"x\"");
    /* a later field failing leaves earlier, valid fields unwritten */
    expect_reject("{\"type\":\"ok\",\"urgent\":true,\"payload\":1,\"meta\":5}", true, "meta",
                  "object");
    /* names are sanitised and cut before they reach a reason */
    expect_reject("{\"type\":\"t\",\"payload\":1,\"a\\nb\\\"c\":1}", true, NULL, "\"a?b?c\"");
    expect_reject("{\"type\":\"t\",\"payload\":1,\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                  "aaaaaaaa\":1}",
                  true, NULL, "aaa...\"");
}

static void test_spec_non_strict_and_not_object(void **state)
{
    struct body b;
    struct jsonx_error err;
    cJSON *root = NULL;
    const struct jsonx_field spec[] = {JSONX_END};
    (void)state;

    init_body(&b);
    assert_int_equal(parse_body("{\"type\":\"t\",\"payload\":1,\"extra\":[1]}", false, &b, &err),
                     0);
    assert_string_equal(b.type == NULL ? "" : "set", "set");

    assert_int_equal(parse_str("[1]", 32, &root), JSONX_OK);
    assert_int_equal(jsonx_spec_parse(root, spec, true, &err), -1);
    assert_null(err.field);
    assert_non_null(strstr(err.reason, "object"));
    cJSON_Delete(root);
    assert_int_equal(jsonx_spec_parse(NULL, spec, true, &err), -1);

    /* an empty object against an empty spec is fine, strict or not */
    assert_int_equal(parse_str("{}", 32, &root), JSONX_OK);
    assert_int_equal(jsonx_spec_parse(root, spec, true, &err), 0);
    cJSON_Delete(root);
}

static void test_spec_int_extremes(void **state)
{
    long long v = 0;
    struct jsonx_error err;
    const struct jsonx_field spec[] = {JSONX_INT("n", true, LLONG_MIN, LLONG_MAX, &v), JSONX_END};
    static const struct {
        const char *json;
        int rc;
        long long want;
    } cases[] = {
        {"{\"n\":9007199254740992}", 0, 9007199254740992LL},
        {"{\"n\":-9223372036854775808}", 0, LLONG_MIN},
        {"{\"n\":9223372036854775807}", -1, 0}, /* reads as 2^63 */
        {"{\"n\":1e19}", -1, 0},
        {"{\"n\":-1e19}", -1, 0},
        {"{\"n\":0.0000001}", -1, 0},
        {"{\"n\":-0}", 0, 0},
        {"{\"n\":true}", -1, 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *root = NULL;
        v = 12345;
        assert_int_equal(parse_str(cases[i].json, 32, &root), JSONX_OK);
        if (jsonx_spec_parse(root, spec, true, &err) != cases[i].rc)
            fail_msg("%s: wrong result", cases[i].json);
        assert_true(v == (cases[i].rc == 0 ? cases[i].want : 12345));
        cJSON_Delete(root);
    }
}

/* --- canonical ------------------------------------------------------------ */

static char *canon_of(const char *json)
{
    cJSON *root = NULL;

    assert_int_equal(parse_str(json, 64, &root), JSONX_OK);
    char *c = jsonx_canonical(root);
    assert_non_null(c);
    cJSON_Delete(root);
    return c;
}

static void expect_canon(const char *json, const char *want)
{
    char *c = canon_of(json);
    if (strcmp(c, want) != 0)
        fail_msg("canonical(%s) = %s, want %s", json, c, want);
    /* stable: the canonical form is its own canonical form */
    char *again = canon_of(c);
    assert_string_equal(again, c);
    free(again);
    free(c);
}

static void test_canonical_sorting(void **state)
{
    (void)state;
    expect_canon("{ \"b\" : 1, \"a\" : { \"z\": [ {\"y\":1, \"x\":2} ], \"m\": null } }",
                 "{\"a\":{\"m\":null,\"z\":[{\"x\":2,\"y\":1}]},\"b\":1}");
    /* byte order: upper case before lower case before non-ASCII */
    expect_canon("{\"\xc3\xa9\":1,\"a\":2,\"B\":3,\"\":4,\"aa\":5}",
                 "{\"\":4,\"B\":3,\"a\":2,\"aa\":5,\"\xc3\xa9\":1}");
    expect_canon("[]", "[]");
    expect_canon("{}", "{}");
    expect_canon("[ true , false , null , [ ] , { } ]", "[true,false,null,[],{}]");
}

static void test_canonical_equal_for_equivalent_docs(void **state)
{
    (void)state;
    char *a = canon_of("{\"type\":\"x\",\"payload\":{\"n\":1.0,\"s\":\"\\u00e9\\/\"}}");
    char *b = canon_of("{\n  \"payload\": {\"s\": \"\xc3\xa9/\", \"n\": 1},\n  \"type\": \"x\"\n}");
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void test_canonical_strings_and_numbers(void **state)
{
    (void)state;
    expect_canon("[\"q\\\"b\\\\n\\n\\r\\t\\b\\f\\u001f\\u0001\\/\\u00e9\\ud83d\\ude00\"]",
                 "[\"q\\\"b\\\\n\\n\\r\\t\\b\\f\\u001f\\u0001/\xc3\xa9\xf0\x9f\x98\x80\"]");
    expect_canon("[1.0, 1e2, -0, 0.1, 1.5e-7, 1e21, 123456789012, -42, 2.5, 1e300, "
                 "0.30000000000000004, 9007199254740993]",
                 "[1,100,0,0.1,1.5e-7,1e21,123456789012,-42,2.5,1e300,0.30000000000000004,"
                 "9007199254740992]");
}

static void test_canonical_built_tree(void **state)
{
    cJSON *obj = cJSON_CreateObject();
    (void)state;

    assert_non_null(obj);
    assert_non_null(cJSON_AddNumberToObject(obj, "z", 3));
    assert_non_null(cJSON_AddStringToObject(obj, "y", "tab\there"));
    assert_non_null(cJSON_AddNullToObject(obj, "x"));
    char *c = jsonx_canonical(obj);
    assert_non_null(c);
    assert_string_equal(c, "{\"x\":null,\"y\":\"tab\\there\",\"z\":3}");
    free(c);
    cJSON_Delete(obj);
}

static void test_canonical_large(void **state)
{
    /* grows the output buffer many times */
    enum { N = 20000 };
    cJSON *arr = cJSON_CreateArray();
    (void)state;

    assert_non_null(arr);
    for (int i = 0; i < N; i++)
        assert_true(cJSON_AddItemToArray(arr, cJSON_CreateNumber(i)));
    char *c = jsonx_canonical(arr);
    assert_non_null(c);
    assert_int_equal(strncmp(c, "[0,1,2,", 7), 0);
    assert_non_null(strstr(c, ",19999]"));
    free(c);
    cJSON_Delete(arr);
}

/* --- canonical form with the text: numbers keep every digit ------------------- */

static char *canon_text_of(const char *json)
{
    cJSON *root = NULL;

    assert_int_equal(parse_str(json, 64, &root), JSONX_OK);
    char *c = jsonx_canonical_text(root, json, strlen(json));
    assert_non_null(c);
    cJSON_Delete(root);
    return c;
}

static void expect_canon_text(const char *json, const char *want)
{
    char *c = canon_text_of(json);
    if (strcmp(c, want) != 0)
        fail_msg("canonical_text(%s) = %s, want %s", json, c, want);
    char *again = canon_text_of(c); /* its own canonical form */
    assert_string_equal(again, c);
    free(again);
    free(c);
}

static void expect_canon_text_differ(const char *a, const char *b)
{
    char *ca = canon_text_of(a), *cb = canon_text_of(b);
    if (strcmp(ca, cb) == 0)
        fail_msg("%s and %s canonicalise alike: %s", a, b, ca);
    free(ca);
    free(cb);
}

static void test_canonical_text_keeps_digits(void **state)
{
    (void)state;
    /* what a double holds exactly keeps the form fingerprints always had */
    expect_canon_text("[1.0, 1e2, -0, -0.0, 0.1, 1.5e-7, 1e21, 123456789012, -42, 2.5, 1e300]",
                      "[1,100,0,0,0.1,1.5e-7,1e21,123456789012,-42,2.5,1e300]");
    /* what it does not is written exactly */
    expect_canon_text("[12345678901234567891]", "[1.2345678901234567891e19]");
    expect_canon_text("[9007199254740993, 1e400, -1E-400, 0.30000000000000004]",
                      "[9.007199254740993e15,1e400,-1e-400,0.30000000000000004]");
    expect_canon_text("{\"b\":12345678901234567891,\"a\":[120.50e-1]}",
                      "{\"a\":[12.05],\"b\":1.2345678901234567891e19}");
    /* an exponent too long to add to is kept as sent, still distinct */
    expect_canon_text("[1e99999999999999999999]", "[1e99999999999999999999]");
    expect_canon_text("[0e99999999999999999999]", "[0]");
    /* numbers inside strings are not numbers */
    expect_canon_text("{\"s\":\"12345678901234567891\",\"n\":-3}",
                      "{\"n\":-3,\"s\":\"12345678901234567891\"}");

    expect_canon_text_differ("{\"n\":12345678901234567891}", "{\"n\":12345678901234567892}");
    expect_canon_text_differ("[9007199254740993]", "[9007199254740992]");
    expect_canon_text_differ("[1e400]", "[1e401]");
    expect_canon_text_differ("[1e400]", "[null]");
    expect_canon_text_differ("[1e-400]", "[0]");
    char *a = canon_text_of("{\"p\":{\"n\":1.0,\"m\":12345678901234567891e0}}");
    char *b = canon_text_of("{ \"p\" : { \"m\" : 123456789012345678910E-1, \"n\" : 1 } }");
    assert_string_equal(a, b); /* the same numbers written differently */
    free(a);
    free(b);
}

/* A tree that was not parsed from the text (counts differ): doubles, as before. */
static void test_canonical_text_mismatch_falls_back(void **state)
{
    cJSON *root = NULL;
    (void)state;
    assert_int_equal(parse_str("[1,2]", 8, &root), JSONX_OK);
    char *c = jsonx_canonical_text(root, "[1]", 3);
    assert_non_null(c);
    assert_string_equal(c, "[1,2]");
    free(c);
    cJSON_Delete(root);
}

/* --- the scanner ----------------------------------------------------------------- */

/* jsonx_member_span over an exact-size heap copy (ASan sees any over-read). */
static int span_exact(const char *s, size_t len, const char *name, char *out, size_t cap)
{
    char *copy = malloc(len > 0 ? len : 1);
    size_t off = 0, n = 0;
    assert_non_null(copy);
    memcpy(copy, s, len);
    int r = jsonx_member_span(copy, len, name, 16, &off, &n);
    if (r == JSONX_OK) {
        assert_true(n < cap);
        memcpy(out, copy + off, n);
        out[n] = '\0';
    }
    free(copy);
    return r;
}

static void expect_span(const char *json, const char *name, const char *want)
{
    char got[512];
    int r = span_exact(json, strlen(json), name, got, sizeof got);
    if (r != JSONX_OK)
        fail_msg("member %s of %s: %s", name, json, jsonx_strerror(r));
    assert_string_equal(got, want);
}

static int span_rc(const char *json, const char *name)
{
    char got[512];
    return span_exact(json, strlen(json), name, got, sizeof got);
}

static void test_member_span_as_sent(void **state)
{
    (void)state;
    expect_span("{\"type\":\"x\",\"payload\":{\"a\": [1, \"}\\\"{\", {\"b\":null}]} , \"z\":1}",
                "payload", "{\"a\": [1, \"}\\\"{\", {\"b\":null}]}");
    expect_span(" \r\n{ \"payload\" :\t12345678901234567891 }\n", "payload",
                "12345678901234567891");
    expect_span("{\"payload\":-0.0}", "payload", "-0.0");
    expect_span("{\"payload\":1e400,\"type\":\"t\"}", "payload", "1e400");
    expect_span("{\"payload\":\"\\ud83d\\ude00 \\\\\\\" \\u0041\"}", "payload",
                "\"\\ud83d\\ude00 \\\\\\\" \\u0041\"");
    expect_span("{\"payload\":[[[{\"payload\":2}]]]}", "payload", "[[[{\"payload\":2}]]]");
    expect_span("{\"a\":true,\"payload\":false,\"b\":null}", "payload", "false");
    /* names compare decoded */
    expect_span("{\"p\\u0061yload\":[]}", "payload", "[]");
    expect_span("{\"\\u00e9\":1}", "\xc3\xa9", "1");
    expect_span("{\"\\ud83d\\ude00\":2}", "\xf0\x9f\x98\x80", "2");
    expect_span("{\"\xc3\xa9\":3}", "\xc3\xa9", "3");
}

static void test_member_span_refusals(void **state)
{
    (void)state;
    /* only top-level members count, and a string value is not a name */
    assert_int_equal(span_rc("{\"x\":{\"payload\":1}}", "payload"), JSONX_ERR_NOTFOUND);
    assert_int_equal(span_rc("{\"x\":\"payload\"}", "payload"), JSONX_ERR_NOTFOUND);
    assert_int_equal(span_rc("{}", "payload"), JSONX_ERR_NOTFOUND);
    assert_int_equal(span_rc("{\"payloadx\":1,\"payloa\":2}", "payload"), JSONX_ERR_NOTFOUND);
    assert_int_equal(span_rc("{\"payload\\u0000\":1}", "payload"), JSONX_ERR_NOTFOUND);
    assert_int_equal(span_rc("{\"payload\":1,\"p\\u0061yload\":2}", "payload"),
                     JSONX_ERR_DUPLICATE);
    static const char *const bad[] = {
        "",
        "[]",
        "\"payload\"",
        "{\"payload\":01}",
        "{\"payload\":1.}",
        "{\"payload\":.5}",
        "{\"payload\":-}",
        "{\"payload\":1e}",
        "{\"payload\":+1}",
        "{\"payload\":[1,]}",
        "{\"payload\":{\"a\" 1}}",
        "{\"payload\":tru}",
        "{\"payload\":nul}",
        "{\"payload\":\"a\\x\"}",
        "{\"payload\":\"\\u12G4\"}",
        "{\"payload\":\"\\u12\"}",
        "{\"payload\":\"tab\there\"}",
        "{\"payload\":1,}",
        "{\"payload\":1} x",
        "{\"payload\":1}}",
        "{\"payload\":[}",
        "{\"payload\":{]}",
        "{payload:1}",
        "{\"payload\":\"open}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int r = span_rc(bad[i], "payload");
        if (r != JSONX_ERR_SYNTAX)
            fail_msg("%s: %d, want a syntax error", bad[i], r);
        if (bad[i][0] == '{') /* the others are JSON, just not objects */
            assert_int_not_equal(jsonx_validate(bad[i], strlen(bad[i]), 16), JSONX_OK);
    }
}

/* Every proper prefix of a valid document is refused, never over-read (ASan). */
static void test_member_span_every_prefix(void **state)
{
    static const char doc[] = "{\"type\":\"t\",\"payload\":{\"a\":[1,-2.5e+3,\"\\\"}\\u00e9\",true,"
                              "false,null,{}],\"b\":{\"c\":[[]]}},\"n\":12345678901234567891}";
    char got[512];
    (void)state;
    for (size_t len = 0; len < sizeof doc - 1; len++) {
        int r = span_exact(doc, len, "payload", got, sizeof got);
        if (r == JSONX_OK)
            fail_msg("prefix of %zu bytes accepted", len);
        char *copy = malloc(len > 0 ? len : 1);
        assert_non_null(copy);
        memcpy(copy, doc, len);
        assert_int_not_equal(jsonx_validate(copy, len, 16), JSONX_OK);
        free(copy);
    }
    assert_int_equal(span_exact(doc, sizeof doc - 1, "payload", got, sizeof got), JSONX_OK);
    assert_int_equal(jsonx_validate(doc, sizeof doc - 1, 16), JSONX_OK);
}

static void test_scanner_depth(void **state)
{
    (void)state;
    char *ok = nested("[", "]", 16);
    char *deep = nested("[", "]", 17);
    assert_int_equal(jsonx_validate(ok, strlen(ok), 16), JSONX_OK);
    assert_int_equal(jsonx_validate(deep, strlen(deep), 16), JSONX_ERR_DEPTH);
    free(ok);
    free(deep);
    /* a hostile depth costs no stack: refused at the bound */
    char *hostile = nested("{\"a\":", "}", 100000);
    assert_int_equal(jsonx_validate(hostile, strlen(hostile), 64), JSONX_ERR_DEPTH);
    free(hostile);
    /* member_span counts the object itself as one level */
    char *wrapped = nested("[", "]", 15);
    size_t n = strlen(wrapped), off, len;
    char *doc = malloc(n + 16);
    assert_non_null(doc);
    snprintf(doc, n + 16, "{\"payload\":%s}", wrapped);
    assert_int_equal(jsonx_member_span(doc, strlen(doc), "payload", 16, &off, &len), JSONX_OK);
    assert_int_equal(jsonx_member_span(doc, strlen(doc), "payload", 15, &off, &len),
                     JSONX_ERR_DEPTH);
    free(doc);
    free(wrapped);
}

/* The scanner and cJSON agree on what the grammar allows, for documents cJSON is
 * strict about. */
static void test_validate_agrees_with_parse(void **state)
{
    static const char *const docs[] = {
        "1",
        "-0",
        "0.5e-3",
        "\"\"",
        "[]",
        "{}",
        " [1 , 2] ",
        "{\"a\":{\"b\":[true,false,null]}}",
        "[\"\\u00e9\\n\\/\"]",
        "[1,2",
        "{\"a\":}",
        "[\"\\q\"]",
        "nul",
        "[] []",
    };
    (void)state;
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        cJSON *root = NULL;
        bool parsed = parse_str(docs[i], 16, &root) == JSONX_OK;
        cJSON_Delete(root);
        bool valid = jsonx_validate(docs[i], strlen(docs[i]), 16) == JSONX_OK;
        if (parsed != valid)
            fail_msg("%s: parse %d, validate %d", docs[i], parsed, valid);
    }
}

static void test_next_number(void **state)
{
    static const char doc[] = "{\"a1\":-12.5e3,\"s\":\"9 \\\" 8\",\"b\":[0,true,7]}";
    size_t pos = 0, start;
    (void)state;
    start = jsonx_next_number(doc, sizeof doc - 1, &pos);
    assert_int_equal(pos - start, 7);
    assert_memory_equal(doc + start, "-12.5e3", 7);
    start = jsonx_next_number(doc, sizeof doc - 1, &pos);
    assert_memory_equal(doc + start, "0", pos - start);
    start = jsonx_next_number(doc, sizeof doc - 1, &pos);
    assert_memory_equal(doc + start, "7", pos - start);
    assert_int_equal(jsonx_next_number(doc, sizeof doc - 1, &pos), sizeof doc - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_depth_boundary),
        cmocka_unit_test(test_depth_ignores_strings),
        cmocka_unit_test(test_hostile_depth_no_recursion),
        cmocka_unit_test(test_trailing_and_syntax),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_length_bounded),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_spec_ok),
        cmocka_unit_test(test_spec_errors),
        cmocka_unit_test(test_spec_non_strict_and_not_object),
        cmocka_unit_test(test_spec_int_extremes),
        cmocka_unit_test(test_canonical_sorting),
        cmocka_unit_test(test_canonical_equal_for_equivalent_docs),
        cmocka_unit_test(test_canonical_strings_and_numbers),
        cmocka_unit_test(test_canonical_built_tree),
        cmocka_unit_test(test_canonical_large),
        cmocka_unit_test(test_canonical_text_keeps_digits),
        cmocka_unit_test(test_canonical_text_mismatch_falls_back),
        cmocka_unit_test(test_member_span_as_sent),
        cmocka_unit_test(test_member_span_refusals),
        cmocka_unit_test(test_member_span_every_prefix),
        cmocka_unit_test(test_scanner_depth),
        cmocka_unit_test(test_validate_agrees_with_parse),
        cmocka_unit_test(test_next_number),
        cmocka_unit_test(test_utf8_is_required),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
