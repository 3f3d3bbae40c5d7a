/* tokenbucket — refill on read, take, and the text form of a policy. */
#include "tokenbucket/tokenbucket.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void tokenbucket_init(struct tokenbucket *b, double rate, double burst, int64_t now_us)
{
    b->rate = rate > 0 ? rate : 1e-9;
    b->burst = burst >= 1 ? burst : 1;
    b->tokens = b->burst;
    b->last_us = now_us;
}

/* Brings tokens up to now; a clock that went back refills nothing. */
static void refill(struct tokenbucket *b, int64_t now_us)
{
    if (now_us <= b->last_us)
        return;
    b->tokens += (double)(now_us - b->last_us) * b->rate / 1e6;
    if (b->tokens > b->burst)
        b->tokens = b->burst;
    b->last_us = now_us;
}

bool tokenbucket_take(struct tokenbucket *b, double n, int64_t now_us)
{
    refill(b, now_us);
    if (b->tokens < n)
        return false;
    b->tokens -= n;
    return true;
}

void tokenbucket_charge(struct tokenbucket *b, double n, int64_t now_us)
{
    refill(b, now_us);
    b->tokens -= n;
    if (b->tokens < -b->burst)
        b->tokens = -b->burst;
}

double tokenbucket_tokens(struct tokenbucket *b, int64_t now_us)
{
    refill(b, now_us);
    return b->tokens;
}

int64_t tokenbucket_wait_us(struct tokenbucket *b, double n, int64_t now_us)
{
    double missing;
    refill(b, now_us);
    if (n > b->burst)
        n = b->burst;
    missing = n - b->tokens;
    if (missing <= 0)
        return 0;
    return (int64_t)ceil(missing * 1e6 / b->rate);
}

/* A decimal 1..max at *p; advances *p. */
static int number(const char **p, long long max, long long *ret)
{
    char *end;
    long long v;
    if (!isdigit((unsigned char)**p))
        return -1;
    errno = 0;
    v = strtoll(*p, &end, 10);
    if (errno != 0 || v < 1 || v > max)
        return -1;
    *p = end;
    *ret = v;
    return 0;
}

static int window(const char **p, long long *ret_s)
{
    long long n = 1, unit;
    if (isdigit((unsigned char)**p) && number(p, 86400, &n) < 0)
        return -1;
    switch (**p) {
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    default:
        return -1;
    }
    (*p)++;
    if (n * unit > 86400)
        return -1;
    *ret_s = n * unit;
    return 0;
}

int tokenbucket_spec_parse(const char *text, struct tokenbucket_spec *ret_spec)
{
    struct tokenbucket_spec s = {false, 0, 0, 0};
    const char *p = text;
    if (!text)
        return -1;
    if (strcmp(text, "off") == 0) {
        s.off = true;
        *ret_spec = s;
        return 0;
    }
    if (number(&p, 1000000000LL, &s.quota) < 0 || *p++ != '/' || window(&p, &s.window_s) < 0)
        return -1;
    s.burst = s.quota;
    if (strncmp(p, ",burst=", 7) == 0) {
        p += 7;
        if (number(&p, 1000000000LL, &s.burst) < 0)
            return -1;
    }
    if (*p != '\0')
        return -1;
    *ret_spec = s;
    return 0;
}

double tokenbucket_spec_rate(const struct tokenbucket_spec *s)
{
    if (s->off || s->window_s < 1)
        return 0;
    return (double)s->quota / (double)s->window_s;
}
