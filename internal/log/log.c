/* log — JSON lines on stderr, one write(2) per line. */
#include "log/log.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One line never exceeds this; longer lines are cut and marked "truncated":true. */
#define LOG_LINE_MAX 8192

/* Room kept free while formatting with truncation allowed: a closing quote,
 * ,"truncated":true, the closing brace, the newline and the NUL all fit in it. */
#define LOG_RESERVE 32

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* The logger's state: written once by log_init() before threads start. */
static enum log_level log_threshold = LOG_LEVEL_INFO;
static char log_service[64];

/* Output buffer being filled.  When an append does not fit below cap, full is set
 * and every later append is refused, so a line is a prefix of the full line. */
struct line {
    char *buf;
    size_t cap; /* bytes usable for content */
    size_t len;
    bool full;
};

void log_init(enum log_level level, const char *service)
{
    log_threshold = level;
    snprintf(log_service, sizeof log_service, "%s", service != NULL ? service : "");
}

int log_level_parse(const char *s, enum log_level *ret_level)
{
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *ret_level = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(enum log_level level)
{
    if ((unsigned)level >= sizeof level_names / sizeof level_names[0])
        return "unknown";
    return level_names[level];
}

bool log_enabled(enum log_level level)
{
    return level >= log_threshold;
}

static bool put(struct line *l, const char *s, size_t n)
{
    if (l->full || n > l->cap - l->len) {
        l->full = true;
        return false;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
    return true;
}

static bool put_str(struct line *l, const char *s)
{
    return put(l, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), or 0 if the byte at s does not start one. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    }
    return n;
}

/* Appends one escaped unit for the character at s; returns bytes consumed or 0
 * when the line is full.  Invalid UTF-8 bytes become U+FFFD so the line stays
 * valid JSON whatever a caller passes in. */
static size_t put_char(struct line *l, const unsigned char *s)
{
    char esc[8];
    size_t n = utf8_len(s);

    if (n == 0)
        return put(l, "\\ufffd", 6) ? 1 : 0;
    if (n > 1)
        return put(l, (const char *)s, n) ? n : 0;
    switch (s[0]) {
    case '"':
        return put(l, "\\\"", 2) ? 1 : 0;
    case '\\':
        return put(l, "\\\\", 2) ? 1 : 0;
    case '\n':
        return put(l, "\\n", 2) ? 1 : 0;
    case '\r':
        return put(l, "\\r", 2) ? 1 : 0;
    case '\t':
        return put(l, "\\t", 2) ? 1 : 0;
    default:
        break;
    }
    if (s[0] < 0x20 || s[0] == 0x7f) {
        snprintf(esc, sizeof esc, "\\u%04x", s[0]);
        return put(l, esc, 6) ? 1 : 0;
    }
    return put(l, (const char *)s, 1) ? 1 : 0;
}

/* Appends "s" quoted and escaped.  If the line fills up the string is cut at a
 * character boundary; the caller decides whether to keep the prefix. */
static bool put_json_str(struct line *l, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    if (!put(l, "\"", 1))
        return false;
    while (*p != '\0') {
        size_t n = put_char(l, p);
        if (n == 0)
            return false;
        p += n;
    }
    return put(l, "\"", 1);
}

static bool put_double(struct line *l, double d)
{
    char num[40];

    if (!isfinite(d))
        return put_str(l, "null"); /* JSON has no NaN or Inf */
    snprintf(num, sizeof num, "%.15g", d);
    if (strtod(num, NULL) != d)
        snprintf(num, sizeof num, "%.17g", d);
    return put_str(l, num);
}

static bool put_value(struct line *l, const struct log_kv *kv)
{
    char num[32];

    switch (kv->type) {
    case LOG_KV_STR:
        return put_json_str(l, kv->s);
    case LOG_KV_INT:
        snprintf(num, sizeof num, "%lld", kv->i);
        return put_str(l, num);
    case LOG_KV_DBL:
        return put_double(l, kv->d);
    case LOG_KV_BOOL:
        return put_str(l, kv->i != 0 ? "true" : "false");
    default:
        return put_str(l, "null");
    }
}

static bool kv_skipped(const struct log_kv *kv)
{
    return kv->key == NULL || kv->type == LOG_KV_SKIP || (kv->type == LOG_KV_STR && kv->s == NULL);
}

/* Appends ,"key":value.  A string value cut by a full line keeps its prefix (the
 * caller closes the quote); anything else cut is rolled back entirely. */
static void put_field(struct line *l, const char *key, const struct log_kv *kv, bool *ret_open_str)
{
    size_t mark = l->len;

    if (put(l, ",", 1) && put_json_str(l, key) && put(l, ":", 1)) {
        size_t value_at = l->len;
        if (put_value(l, kv))
            return;
        if (kv->type == LOG_KV_STR && l->len > value_at) {
            *ret_open_str = true;
            return;
        }
    }
    l->len = mark;
}

static void put_timestamp(struct line *l)
{
    struct timespec ts;
    struct tm tm;
    char when[32], out[64];

    if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || gmtime_r(&ts.tv_sec, &tm) == NULL ||
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        put_str(l, "\"ts\":null");
        return;
    }
    snprintf(out, sizeof out, "\"ts\":\"%s.%03dZ\"", when, (int)(ts.tv_nsec / 1000000L % 1000));
    put_str(l, out);
}

/* Formats the whole line into l.  Returns false if it did not fit, in which case
 * l holds a prefix and *ret_open_str says whether a string value is left open. */
static bool format_line(struct line *l, enum log_level level, const char *msg,
                        const struct log_kv *kv, size_t n, bool *ret_open_str)
{
    put(l, "{", 1);
    put_timestamp(l);
    put_field(l, "level", &LOG_S("level", log_level_name(level)), ret_open_str);
    if (log_service[0] != '\0')
        put_field(l, "service", &LOG_S("service", log_service), ret_open_str);
    put_field(l, "msg", &LOG_S("msg", msg != NULL ? msg : ""), ret_open_str);
    for (size_t i = 0; i < n && !l->full; i++) {
        if (!kv_skipped(&kv[i]))
            put_field(l, kv[i].key, &kv[i], ret_open_str);
    }
    return put(l, "}\n", 2);
}

int log_format(char *buf, size_t size, enum log_level level, const char *msg,
               const struct log_kv *kv, size_t n)
{
    struct line l = {.buf = buf, .cap = 0, .len = 0, .full = false};
    bool open_str = false;

    if (buf == NULL || size == 0 || size > INT32_MAX)
        return -1;
    l.cap = size - 1; /* the NUL */
    if (!format_line(&l, level, msg, kv, n, &open_str)) {
        buf[0] = '\0';
        return -1;
    }
    buf[l.len] = '\0';
    return (int)l.len;
}

void log__emit(enum log_level level, const char *msg, const struct log_kv *kv, size_t n)
{
    char buf[LOG_LINE_MAX];
    struct line l = {.buf = buf, .cap = sizeof buf - LOG_RESERVE, .len = 0, .full = false};
    size_t off = 0;
    int saved_errno = errno; /* callers often log and then inspect errno */

    bool open_str = false;

    if (!format_line(&l, level, msg, kv, n, &open_str)) {
        /* Cut: close what is open within the reserve kept for exactly this. */
        l.full = false;
        l.cap = sizeof buf;
        if (open_str)
            put(&l, "\"", 1);
        put_str(&l, ",\"truncated\":true}\n");
    }
    while (off < l.len) {
        ssize_t w = write(STDERR_FILENO, buf + off, l.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* nowhere left to report a failing stderr */
        off += (size_t)w;
    }
    errno = saved_errno;
}
