/* tokenbucket — the token bucket of traffic shaping (RFC 2697's committed burst, Guava's
 * RateLimiter without the sleeping): a bucket holds at most `burst` tokens and gains
 * `rate` tokens a second; a request takes one (or n) when the bucket holds them.
 *
 * A value the caller embeds (tokenbucket_init, no allocation) and locks: the functions
 * are not thread-safe.  Time is passed in, in microseconds of any monotonic clock, so
 * tests drive it by hand and callers read the clock once per decision.
 *
 * Also the text form of a policy, "QUOTA/WINDOW[,burst=N]" ("100/1s", "20/1m,burst=5",
 * "off"): QUOTA tokens per WINDOW (a whole number of seconds, minutes or hours: s, m, h),
 * so rate = QUOTA / WINDOW; the burst defaults to QUOTA.  It maps one to one onto the
 * IETF RateLimit-Policy's q and w.
 */
#ifndef TOKENBUCKET_H
#define TOKENBUCKET_H

#include <stdbool.h>
#include <stdint.h>

struct tokenbucket {
    double rate;   /* tokens per second, > 0 */
    double burst;  /* capacity, >= 1 */
    double tokens; /* at last_us; may be negative after tokenbucket_charge() */
    int64_t last_us;
};

/* A full bucket at now_us. */
void tokenbucket_init(struct tokenbucket *b, double rate, double burst, int64_t now_us);

/* Takes n tokens if the bucket holds them at now_us: true; false takes nothing. */
bool tokenbucket_take(struct tokenbucket *b, double n, int64_t now_us);

/* Takes n tokens whatever the bucket holds (it may go down to -burst): spending
 * that was decided elsewhere, so the bucket knows of it. */
void tokenbucket_charge(struct tokenbucket *b, double n, int64_t now_us);

/* The tokens held at now_us (refilled, not taken). */
double tokenbucket_tokens(struct tokenbucket *b, int64_t now_us);

/* Microseconds from now_us until n tokens are held (0: now); n beyond the burst is
 * counted as the burst. */
int64_t tokenbucket_wait_us(struct tokenbucket *b, double n, int64_t now_us);

/* A policy in text form.  off is true for "off" (the other fields are then 0). */
struct tokenbucket_spec {
    bool off;
    long long quota;    /* tokens per window, >= 1 */
    long long window_s; /* the window in seconds, >= 1 */
    long long burst;    /* >= 1 */
};

/* Parses "QUOTA/WINDOW[,burst=N]" or "off"; 0, or -1 (ret_spec untouched) when the text
 * is not one: QUOTA and N 1..10^9, WINDOW 1..86400 s (a number and a unit; "s" alone
 * means 1 s). */
int tokenbucket_spec_parse(const char *text, struct tokenbucket_spec *ret_spec);

/* Tokens per second of a parsed spec (0 when off). */
double tokenbucket_spec_rate(const struct tokenbucket_spec *s);

#endif
