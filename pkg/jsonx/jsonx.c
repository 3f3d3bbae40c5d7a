/* jsonx — bounded parsing: depth and NUL checks before cJSON sees the bytes. */
#include "jsonx/jsonx.h"

#include <stdbool.h>
#include <string.h>

/* Walks buf once, outside strings counting brackets, inside strings skipping escapes.
 * Rejects NUL bytes and \u0000 escapes: cJSON stores names and strings as C strings,
 * so "a\u0000b" would silently become "a". */
static int prescan(const char *buf, size_t len, int max_depth)
{
    int depth = 0;
    bool in_str = false, escaped = false;

    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (c == '\0')
            return JSONX_ERR_SYNTAX;
        if (escaped) {
            escaped = false;
            if (c == 'u' && len - i > 4 && memcmp(buf + i + 1, "0000", 4) == 0)
                return JSONX_ERR_SYNTAX;
        } else if (in_str) {
            if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return JSONX_ERR_DEPTH;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return JSONX_OK;
}

/* RFC 3629 well-formed UTF-8 (RFC 8259 §8.1 requires it of JSON): no overlong
 * forms, no surrogates, nothing above U+10FFFF.  A database that stores utf8mb4
 * refuses anything else, so letting it through would fail at the INSERT. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned char lo = 0x80, hi = 0xbf;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0)
                lo = 0x90; /* overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* above U+10FFFF */
        } else {
            return false;
        }
        if (len - i <= n)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        }
        i += n + 1;
    }
    return true;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int jsonx_parse(const char *buf, size_t len, int max_depth, cJSON **ret_root)
{
    const char *end = NULL;
    cJSON *root;
    int r;

    if (buf == NULL || len == 0 || ret_root == NULL)
        return JSONX_ERR_SYNTAX;
    r = prescan(buf, len, max_depth);
    if (r != JSONX_OK)
        return r;
    if (!utf8_valid((const unsigned char *)buf, len))
        return JSONX_ERR_UTF8;
    root = cJSON_ParseWithLengthOpts(buf, len, &end, false);
    if (root == NULL)
        return JSONX_ERR_SYNTAX;
    if (end == NULL || end < buf || end > buf + len)
        goto out_syntax;
    for (; end < buf + len; end++) {
        if (!is_ws(*end))
            goto out_syntax;
    }
    *ret_root = root;
    return JSONX_OK;

out_syntax:
    cJSON_Delete(root);
    return JSONX_ERR_SYNTAX;
}

const char *jsonx_strerror(int err)
{
    switch (err) {
    case JSONX_OK:
        return "ok";
    case JSONX_ERR_SYNTAX:
        return "malformed JSON";
    case JSONX_ERR_DEPTH:
        return "JSON nested too deeply";
    case JSONX_ERR_UTF8:
        return "not valid UTF-8";
    case JSONX_ERR_NOMEM:
        return "out of memory";
    case JSONX_ERR_NOTFOUND:
        return "no such member";
    case JSONX_ERR_DUPLICATE:
        return "duplicate member";
    default:
        return "unknown jsonx error";
    }
}
