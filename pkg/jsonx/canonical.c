/* jsonx — canonical serialisation for fingerprints: sorted keys, no whitespace. */
#include "jsonx/jsonx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct out {
    char *p;
    size_t len, cap;
    bool oom; /* sticky: once set, nothing more is appended */
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->oom)
        return;
    if (n >= o->cap - o->len) {
        size_t cap = o->cap * 2;
        while (n >= cap - o->len)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (p == NULL) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* Minimal escaping: only what JSON requires, short forms where they exist. */
static void put_string(struct out *o, const char *s)
{
    const char *run = s;
    char esc[8];

    put(o, "\"", 1);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        const char *e = NULL;
        if (c == '"')
            e = "\\\"";
        else if (c == '\\')
            e = "\\\\";
        else if (c == '\b')
            e = "\\b";
        else if (c == '\f')
            e = "\\f";
        else if (c == '\n')
            e = "\\n";
        else if (c == '\r')
            e = "\\r";
        else if (c == '\t')
            e = "\\t";
        else if (c < 0x20)
            e = esc;
        else
            continue;
        if (e == esc)
            snprintf(esc, sizeof esc, "\\u%04x", c);
        put(o, run, (size_t)(s - run));
        put_str(o, e);
        run = s + 1;
    }
    put(o, run, (size_t)(s - run));
    put(o, "\"", 1);
}

/* Drops the '+' and leading zeros printf puts in exponents: 1e-07 -> 1e-7. */
static void trim_exponent(char *num)
{
    char *e = strchr(num, 'e');

    if (e == NULL)
        return;
    char *digits = e + 1;
    if (*digits == '+')
        memmove(digits, digits + 1, strlen(digits));
    else if (*digits == '-')
        digits++;
    size_t zeros = strspn(digits, "0");
    if (zeros > 0 && digits[zeros] != '\0')
        memmove(digits, digits + zeros, strlen(digits + zeros) + 1);
}

static void put_number(struct out *o, double d)
{
    char num[40];

    if (!isfinite(d)) {
        put_str(o, "null"); /* not JSON; cannot come from a parsed document */
        return;
    }
    if (d == 0) {
        put_str(o, "0"); /* -0 too */
        return;
    }
    if (floor(d) == d && fabs(d) < 1e21) {
        snprintf(num, sizeof num, "%.0f", d);
    } else {
        /* the shortest precision that reads back as the same double */
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(num, sizeof num, "%.*g", prec, d);
            if (strtod(num, NULL) == d)
                break;
        }
        trim_exponent(num);
    }
    put_str(o, num);
}

static int cmp_name(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;

    return strcmp(x->string != NULL ? x->string : "", y->string != NULL ? y->string : "");
}

static void put_value(struct out *o, const cJSON *v);

static void put_object(struct out *o, const cJSON *obj)
{
    size_t n = 0, i = 0;
    const cJSON *c;

    for (c = obj->child; c != NULL; c = c->next)
        n++;
    const cJSON **v = malloc((n > 0 ? n : 1) * sizeof(const cJSON *));
    if (v == NULL) {
        o->oom = true;
        return;
    }
    for (c = obj->child; c != NULL; c = c->next)
        v[i++] = c;
    qsort(v, n, sizeof(const cJSON *), cmp_name);
    put(o, "{", 1);
    for (i = 0; i < n && !o->oom; i++) {
        if (i > 0)
            put(o, ",", 1);
        put_string(o, v[i]->string != NULL ? v[i]->string : "");
        put(o, ":", 1);
        put_value(o, v[i]);
    }
    put(o, "}", 1);
    free(v);
}

static void put_value(struct out *o, const cJSON *v)
{
    if (cJSON_IsObject(v)) {
        put_object(o, v);
    } else if (cJSON_IsArray(v)) {
        put(o, "[", 1);
        for (const cJSON *c = v->child; c != NULL && !o->oom; c = c->next) {
            if (c != v->child)
                put(o, ",", 1);
            put_value(o, c);
        }
        put(o, "]", 1);
    } else if (cJSON_IsString(v)) {
        put_string(o, v->valuestring != NULL ? v->valuestring : "");
    } else if (cJSON_IsNumber(v)) {
        put_number(o, v->valuedouble);
    } else if (cJSON_IsTrue(v)) {
        put_str(o, "true");
    } else if (cJSON_IsFalse(v)) {
        put_str(o, "false");
    } else {
        put_str(o, "null"); /* null, and raw or invalid items that have no JSON form */
    }
}

char *jsonx_canonical(const cJSON *value)
{
    struct out o = {.p = malloc(64), .len = 0, .cap = 64, .oom = false};

    if (o.p == NULL)
        return NULL;
    o.p[0] = '\0';
    put_value(&o, value);
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    return o.p;
}
