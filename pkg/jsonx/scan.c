/* jsonx — a validating scanner over JSON text that builds nothing: it checks the
 * RFC 8259 grammar and finds the raw bytes of a top-level member, so a payload can be
 * stored and shown exactly as the client sent it (cJSON keeps no offsets, and its
 * numbers are doubles: 12345678901234567891 would come back as 1.2345678901234567e+19).
 *
 * Every function reads only buf[0..len) and recurses at most max_depth deep, so it is
 * safe on any input, validated or not. */
#include "jsonx/jsonx.h"

#include <stdint.h>
#include <string.h>

struct scan {
    const char *buf;
    size_t len, pos;
    int depth, max_depth;
};

static bool at_end(const struct scan *s)
{
    return s->pos >= s->len;
}

static void skip_ws(struct scan *s)
{
    while (!at_end(s)) {
        char c = s->buf[s->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        s->pos++;
    }
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads the four hex digits of a \u escape at s->pos. */
static int read_hex4(struct scan *s, unsigned *ret)
{
    unsigned v = 0;
    if (s->len - s->pos < 4)
        return JSONX_ERR_SYNTAX;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(s->buf[s->pos + (size_t)i]);
        if (d < 0)
            return JSONX_ERR_SYNTAX;
        v = v * 16 + (unsigned)d;
    }
    s->pos += 4;
    *ret = v;
    return JSONX_OK;
}

/* One character of a string body at s->pos (after the opening quote, not at the
 * closing one), decoded to a code point; bytes >= 0x80 come back one by one (their
 * UTF-8 form is checked elsewhere, and compared byte for byte). */
static int string_char(struct scan *s, uint32_t *ret_cp, bool *ret_byte)
{
    unsigned char c = (unsigned char)s->buf[s->pos++];
    unsigned hi, lo;
    *ret_byte = false;
    if (c < 0x20)
        return JSONX_ERR_SYNTAX;
    if (c != '\\') {
        *ret_cp = c;
        *ret_byte = c >= 0x80;
        return JSONX_OK;
    }
    if (at_end(s))
        return JSONX_ERR_SYNTAX;
    c = (unsigned char)s->buf[s->pos++];
    switch (c) {
    case '"':
        *ret_cp = '"';
        return JSONX_OK;
    case '\\':
        *ret_cp = '\\';
        return JSONX_OK;
    case '/':
        *ret_cp = '/';
        return JSONX_OK;
    case 'b':
        *ret_cp = '\b';
        return JSONX_OK;
    case 'f':
        *ret_cp = '\f';
        return JSONX_OK;
    case 'n':
        *ret_cp = '\n';
        return JSONX_OK;
    case 'r':
        *ret_cp = '\r';
        return JSONX_OK;
    case 't':
        *ret_cp = '\t';
        return JSONX_OK;
    case 'u':
        break;
    default:
        return JSONX_ERR_SYNTAX;
    }
    if (read_hex4(s, &hi) < 0)
        return JSONX_ERR_SYNTAX;
    if (hi >= 0xd800 && hi <= 0xdbff && s->len - s->pos >= 6 && s->buf[s->pos] == '\\' &&
        s->buf[s->pos + 1] == 'u') {
        size_t save = s->pos;
        s->pos += 2;
        if (read_hex4(s, &lo) == JSONX_OK && lo >= 0xdc00 && lo <= 0xdfff) {
            *ret_cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
            return JSONX_OK;
        }
        s->pos = save; /* a lone high surrogate: the grammar allows it */
    }
    *ret_cp = hi;
    return JSONX_OK;
}

/* The UTF-8 form of cp into out (4 bytes at most); returns its length. */
static size_t utf8_encode(uint32_t cp, unsigned char out[4])
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string at s->pos (its opening quote).  When name is not NULL, *ret_equal says
 * whether its decoded value is exactly name. */
static int scan_string(struct scan *s, const char *name, bool *ret_equal)
{
    size_t nlen = name ? strlen(name) : 0, matched = 0;
    bool equal = name != NULL;

    if (at_end(s) || s->buf[s->pos] != '"')
        return JSONX_ERR_SYNTAX;
    s->pos++;
    for (;;) {
        uint32_t cp;
        bool byte;
        unsigned char enc[4];
        size_t n;
        if (at_end(s))
            return JSONX_ERR_SYNTAX;
        if (s->buf[s->pos] == '"') {
            s->pos++;
            break;
        }
        if (string_char(s, &cp, &byte) < 0)
            return JSONX_ERR_SYNTAX;
        if (!equal)
            continue;
        if (byte) {
            enc[0] = (unsigned char)cp;
            n = 1;
        } else {
            n = utf8_encode(cp, enc);
        }
        if (cp == 0 || n > nlen - matched || memcmp(name + matched, enc, n) != 0)
            equal = false;
        else
            matched += n;
    }
    if (ret_equal)
        *ret_equal = equal && matched == nlen;
    return JSONX_OK;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void skip_digits(struct scan *s)
{
    while (!at_end(s) && is_digit(s->buf[s->pos]))
        s->pos++;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int scan_number(struct scan *s)
{
    if (!at_end(s) && s->buf[s->pos] == '-')
        s->pos++;
    if (at_end(s) || !is_digit(s->buf[s->pos]))
        return JSONX_ERR_SYNTAX;
    if (s->buf[s->pos] == '0')
        s->pos++;
    else
        skip_digits(s);
    if (!at_end(s) && s->buf[s->pos] == '.') {
        s->pos++;
        if (at_end(s) || !is_digit(s->buf[s->pos]))
            return JSONX_ERR_SYNTAX;
        skip_digits(s);
    }
    if (!at_end(s) && (s->buf[s->pos] == 'e' || s->buf[s->pos] == 'E')) {
        s->pos++;
        if (!at_end(s) && (s->buf[s->pos] == '+' || s->buf[s->pos] == '-'))
            s->pos++;
        if (at_end(s) || !is_digit(s->buf[s->pos]))
            return JSONX_ERR_SYNTAX;
        skip_digits(s);
    }
    return JSONX_OK;
}

static int scan_literal(struct scan *s, const char *word)
{
    size_t n = strlen(word);
    if (s->len - s->pos < n || memcmp(s->buf + s->pos, word, n) != 0)
        return JSONX_ERR_SYNTAX;
    s->pos += n;
    return JSONX_OK;
}

static int scan_value(struct scan *s);

/* An object or array at s->pos; for an object, name members and value spans. */
static int scan_container(struct scan *s, bool object)
{
    char close = object ? '}' : ']';
    int r;

    if (++s->depth > s->max_depth)
        return JSONX_ERR_DEPTH;
    s->pos++;
    skip_ws(s);
    if (!at_end(s) && s->buf[s->pos] == close) {
        s->pos++;
        s->depth--;
        return JSONX_OK;
    }
    for (;;) {
        if (object) {
            skip_ws(s);
            if ((r = scan_string(s, NULL, NULL)) < 0)
                return r;
            skip_ws(s);
            if (at_end(s) || s->buf[s->pos] != ':')
                return JSONX_ERR_SYNTAX;
            s->pos++;
        }
        if ((r = scan_value(s)) < 0)
            return r;
        skip_ws(s);
        if (at_end(s))
            return JSONX_ERR_SYNTAX;
        if (s->buf[s->pos] == close) {
            s->pos++;
            s->depth--;
            return JSONX_OK;
        }
        if (s->buf[s->pos] != ',')
            return JSONX_ERR_SYNTAX;
        s->pos++;
    }
}

/* One value, leading whitespace skipped; s->pos ends just after it. */
static int scan_value(struct scan *s)
{
    skip_ws(s);
    if (at_end(s))
        return JSONX_ERR_SYNTAX;
    switch (s->buf[s->pos]) {
    case '{':
        return scan_container(s, true);
    case '[':
        return scan_container(s, false);
    case '"':
        return scan_string(s, NULL, NULL);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        return scan_number(s);
    }
}

int jsonx_validate(const char *buf, size_t len, int max_depth)
{
    struct scan s = {.buf = buf, .len = len, .max_depth = max_depth};
    int r;
    if (buf == NULL)
        return JSONX_ERR_SYNTAX;
    if ((r = scan_value(&s)) < 0)
        return r;
    skip_ws(&s);
    return at_end(&s) ? JSONX_OK : JSONX_ERR_SYNTAX;
}

int jsonx_member_span(const char *buf, size_t len, const char *name, int max_depth, size_t *ret_off,
                      size_t *ret_len)
{
    struct scan s = {.buf = buf, .len = len, .max_depth = max_depth};
    size_t off = 0, vlen = 0;
    bool found = false;
    int r;

    if (buf == NULL || name == NULL)
        return JSONX_ERR_SYNTAX;
    skip_ws(&s);
    if (at_end(&s) || buf[s.pos] != '{')
        return JSONX_ERR_SYNTAX;
    if (max_depth < 1)
        return JSONX_ERR_DEPTH;
    s.depth = 1;
    s.pos++;
    skip_ws(&s);
    if (!at_end(&s) && buf[s.pos] == '}') {
        s.pos++;
        goto out_end;
    }
    for (;;) {
        bool equal = false;
        skip_ws(&s);
        if ((r = scan_string(&s, name, &equal)) < 0)
            return r;
        skip_ws(&s);
        if (at_end(&s) || buf[s.pos] != ':')
            return JSONX_ERR_SYNTAX;
        s.pos++;
        skip_ws(&s);
        size_t start = s.pos;
        if ((r = scan_value(&s)) < 0)
            return r;
        if (equal) {
            if (found)
                return JSONX_ERR_DUPLICATE;
            found = true;
            off = start;
            vlen = s.pos - start;
        }
        skip_ws(&s);
        if (at_end(&s))
            return JSONX_ERR_SYNTAX;
        if (buf[s.pos] == '}') {
            s.pos++;
            break;
        }
        if (buf[s.pos] != ',')
            return JSONX_ERR_SYNTAX;
        s.pos++;
    }
out_end:
    skip_ws(&s);
    if (!at_end(&s))
        return JSONX_ERR_SYNTAX;
    if (!found)
        return JSONX_ERR_NOTFOUND;
    *ret_off = off;
    *ret_len = vlen;
    return JSONX_OK;
}

size_t jsonx_next_number(const char *buf, size_t len, size_t *pos)
{
    bool in_str = false, escaped = false;
    for (size_t i = *pos; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '-' || is_digit(c)) {
            struct scan s = {.buf = buf, .len = len, .pos = i};
            if (scan_number(&s) < 0)
                s.pos = i + 1;
            *pos = s.pos;
            return i;
        }
    }
    *pos = len;
    return len;
}
