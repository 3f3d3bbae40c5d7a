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
    case JSONX_ERR_NOMEM:
        return "out of memory";
    default:
        return "unknown jsonx error";
    }
}
