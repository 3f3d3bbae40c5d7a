/* log — JSON-lines logger on stderr: the one mutable global the house allows.
 *
 * Every line is one JSON object: {"ts":"2026-11-22T02:34:35.123Z","level":"info",
 * "service":"producer","msg":"...", <fields>}.  Fields are typed key/value pairs so
 * values are escaped correctly; a field whose key is NULL is skipped, which lets a
 * call site pass optional fields (LOG_S("trace_id", NULL) prints nothing either).
 *
 * Use the level-checked macros; arguments are not evaluated below the threshold:
 *     log_info("task done", LOG_S("task_id", id), LOG_I("latency_ms", ms));
 *     log_warn("kafka down", LOG_NONE);
 * Writes are whole lines (one write(2) per line), safe from any thread.
 */
#ifndef DISPATCH_LOG_H
#define DISPATCH_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

enum log_kv_type { LOG_KV_SKIP = 0, LOG_KV_STR, LOG_KV_INT, LOG_KV_DBL, LOG_KV_BOOL };

struct log_kv {
    const char *key; /* NULL: the field is skipped */
    enum log_kv_type type;
    const char *s; /* LOG_KV_STR; NULL prints nothing */
    long long i;   /* LOG_KV_INT, LOG_KV_BOOL */
    double d;      /* LOG_KV_DBL */
};

#define LOG_S(k, v) ((struct log_kv){.key = (k), .type = LOG_KV_STR, .s = (v)})
#define LOG_I(k, v) ((struct log_kv){.key = (k), .type = LOG_KV_INT, .i = (long long)(v)})
#define LOG_D(k, v) ((struct log_kv){.key = (k), .type = LOG_KV_DBL, .d = (double)(v)})
#define LOG_B(k, v) ((struct log_kv){.key = (k), .type = LOG_KV_BOOL, .i = (v) ? 1 : 0})
#define LOG_NONE    ((struct log_kv){.key = NULL})

/* Sets the threshold and the "service" field. Call once at start-up, before threads. */
void log_init(enum log_level level, const char *service);

/* Parses "debug", "info", "warn", "error". Returns 0, or -1 for anything else. */
int log_level_parse(const char *s, enum log_level *ret_level);
const char *log_level_name(enum log_level level);

bool log_enabled(enum log_level level);

/* Formats and writes one line. Prefer the macros. */
void log__emit(enum log_level level, const char *msg, const struct log_kv *kv, size_t n);

/* Formats one line into buf (tests): returns the length, or -1 if it did not fit. */
int log_format(char *buf, size_t size, enum log_level level, const char *msg,
               const struct log_kv *kv, size_t n);

#define log_at(level, msg, ...)                                                                    \
    do {                                                                                           \
        if (log_enabled(level)) {                                                                  \
            const struct log_kv log_kv_[] = {__VA_ARGS__};                                         \
            log__emit((level), (msg), log_kv_, sizeof log_kv_ / sizeof log_kv_[0]);                \
        }                                                                                          \
    } while (0)

#define log_debug(msg, ...) log_at(LOG_LEVEL_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...)  log_at(LOG_LEVEL_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_at(LOG_LEVEL_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_at(LOG_LEVEL_ERROR, msg, __VA_ARGS__)

#endif
