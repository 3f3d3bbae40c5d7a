/* jsonx — bounded JSON parsing and declarative body specs over cJSON.
 *
 * jsonx_parse() never reads past len, rejects trailing bytes other than whitespace,
 * bytes that are not well-formed UTF-8, and nesting deeper than max_depth (checked before cJSON
 * recurses, so a hostile
 * "[[[[..." cannot exhaust the stack).  jsonx_spec_parse() checks an object against a
 * spec array, GNU Taler style, so handlers do not hand-write field checks:
 *
 *     const char *type; long long attempts = 5; const cJSON *payload;
 *     const struct jsonx_field spec[] = {
 *         JSONX_STRING("type", true, 1, 64, &type),
 *         JSONX_ANY("payload", true, &payload),
 *         JSONX_INT("max_attempts", false, 1, 100, &attempts),
 *         JSONX_END,
 *     };
 *     struct jsonx_error err;
 *     if (jsonx_spec_parse(obj, spec, &err) < 0) -> 400 naming err.field, err.reason
 *
 * Lookups are case-sensitive.  Destinations of absent optional fields are left as
 * they were (defaults go there first).  Strings and ANY values are borrowed from the
 * cJSON tree and live as long as it does.
 */
#ifndef JSONX_H
#define JSONX_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

enum jsonx_err {
    JSONX_OK = 0,
    JSONX_ERR_SYNTAX = -1, /* not JSON, or trailing bytes */
    JSONX_ERR_DEPTH = -2,  /* nested deeper than max_depth */
    JSONX_ERR_NOMEM = -3,
    JSONX_ERR_UTF8 = -4,      /* not well-formed UTF-8 (RFC 8259 §8.1) */
    JSONX_ERR_NOTFOUND = -5,  /* jsonx_member_span: no such member */
    JSONX_ERR_DUPLICATE = -6, /* jsonx_member_span: the member is there twice */
};

/* Parses exactly buf[0..len).  On success *ret_root is owned by the caller
 * (cJSON_Delete).  Returns JSONX_OK or a negative enum jsonx_err. */
int jsonx_parse(const char *buf, size_t len, int max_depth, cJSON **ret_root);
const char *jsonx_strerror(int err);

enum jsonx_type {
    JSONX_T_END = 0,
    JSONX_T_STRING, /* dest: const char **; min/max bound the length in bytes */
    JSONX_T_INT,    /* dest: long long *; min/max bound the value; must be integral */
    JSONX_T_BOOL,   /* dest: bool * */
    JSONX_T_ANY,    /* dest: const cJSON **; any JSON value, null included */
    JSONX_T_OBJECT, /* dest: const cJSON **; must be an object */
};

struct jsonx_field {
    const char *name;
    enum jsonx_type type;
    bool required;
    long long min, max;
    void *dest;
};

#define JSONX_STRING(n, req, lo, hi, d)                                                            \
    {                                                                                              \
        (n), JSONX_T_STRING, (req), (lo), (hi), (d)                                                \
    }
#define JSONX_INT(n, req, lo, hi, d)                                                               \
    {                                                                                              \
        (n), JSONX_T_INT, (req), (lo), (hi), (d)                                                   \
    }
#define JSONX_BOOL(n, req, d)                                                                      \
    {                                                                                              \
        (n), JSONX_T_BOOL, (req), 0, 0, (d)                                                        \
    }
#define JSONX_ANY(n, req, d)                                                                       \
    {                                                                                              \
        (n), JSONX_T_ANY, (req), 0, 0, (d)                                                         \
    }
#define JSONX_OBJECT(n, req, d)                                                                    \
    {                                                                                              \
        (n), JSONX_T_OBJECT, (req), 0, 0, (d)                                                      \
    }
#define JSONX_END                                                                                  \
    {                                                                                              \
        NULL, JSONX_T_END, false, 0, 0, NULL                                                       \
    }

struct jsonx_error {
    const char *field; /* the offending field's name (borrowed from the spec), or NULL */
    char reason[96];   /* e.g. "is required", "must be a string of 1..64 bytes" */
};

/* Checks obj (must be an object) against spec.  Unknown members are rejected when
 * strict is true ("unknown field").  Duplicate member names are rejected.  Returns 0,
 * or -1 with *ret_err filled. Destinations are written only on success. */
int jsonx_spec_parse(const cJSON *obj, const struct jsonx_field *spec, bool strict,
                     struct jsonx_error *ret_err);

/* Canonical serialisation (RFC 8785 style: object members sorted by name, no
 * insignificant whitespace, shortest round-trip numbers) for fingerprinting.
 * Returns a NUL-terminated string owned by the caller (free()), or NULL on ENOMEM.
 * A number the double cannot hold exactly (12345678901234567891, 1e400) is written
 * as its exact decimal value when the text it was parsed from is given:
 * jsonx_canonical_text(value, text, len) with value parsed from text[0..len), so two
 * documents that differ only in the digits of a large number never canonicalise
 * alike.  Without the text (jsonx_canonical) numbers are as the double says. */
char *jsonx_canonical(const cJSON *value);
char *jsonx_canonical_text(const cJSON *value, const char *text, size_t len);

/* --- the scanner (scan.c): the grammar of RFC 8259, no tree, no allocation --------
 * Each reads only buf[0..len) and nests at most max_depth deep, whatever the input. */

/* JSONX_OK when buf[0..len) is one JSON value with optional whitespace around it;
 * JSONX_ERR_SYNTAX or JSONX_ERR_DEPTH otherwise.  UTF-8 is not checked (jsonx_parse
 * does). */
int jsonx_validate(const char *buf, size_t len, int max_depth);

/* Finds the member name of the object buf[0..len) (whitespace around it allowed) and
 * sets buf[*ret_off .. *ret_off + *ret_len) to its value's exact bytes, as sent.
 * Names are compared after decoding escapes ("p\u0061yload" is "payload").  Returns
 * JSONX_OK, JSONX_ERR_NOTFOUND, JSONX_ERR_DUPLICATE, or JSONX_ERR_SYNTAX / _DEPTH for
 * text that is not such an object; ret_* are written on success only. */
int jsonx_member_span(const char *buf, size_t len, const char *name, int max_depth, size_t *ret_off,
                      size_t *ret_len);

/* In valid JSON text: the offset of the first number token at or after *pos (outside
 * strings), with *pos moved just past it; len (and *pos = len) when none is left. */
size_t jsonx_next_number(const char *buf, size_t len, size_t *pos);

#endif
