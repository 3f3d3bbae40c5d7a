/* jsonx — canonical serialisation for fingerprints: sorted keys, no whitespace. */
#include "jsonx/jsonx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A number node and the span of the token it was parsed from. */
struct num_token {
    const cJSON *node;
    const char *tok;
    size_t len;
};

struct out {
    char *p;
    size_t len, cap;
    bool oom;                     /* sticky: once set, nothing more is appended */
    const struct num_token *nums; /* sorted by node; NULL without the text */
    size_t n_nums;
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

#define EXP_DIGITS_MAX 15 /* beyond: the token is kept verbatim (no overflow) */

/* The exact decimal value of a JSON number token as one normal form: "0" for every
 * zero, else "[-]d[.ddd]e<E>" with no leading or trailing zero digits; a token whose
 * exponent has more than EXP_DIGITS_MAX digits is copied verbatim (still a number,
 * still distinct).  Owned (free()), or NULL on ENOMEM. */
static char *exact_form(const char *tok, size_t n)
{
    const char *p = tok, *end = tok + n, *int_s, *frac_s = NULL;
    size_t int_n, frac_n = 0, k = 0, lead;
    long long exp = 0, e10;
    bool neg = false, exp_neg = false;
    char *digits, *out;

    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    for (int_s = p; p < end && *p >= '0' && *p <= '9'; p++) {
    }
    int_n = (size_t)(p - int_s);
    if (p < end && *p == '.') {
        for (frac_s = ++p; p < end && *p >= '0' && *p <= '9'; p++) {
        }
        frac_n = (size_t)(p - frac_s);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            exp_neg = *p++ == '-';
        while (p < end && *p == '0')
            p++;
        if (end - p > EXP_DIGITS_MAX) {
            bool nonzero = false;
            for (const char *q = tok; q < end && *q != 'e' && *q != 'E'; q++)
                nonzero = nonzero || (*q >= '1' && *q <= '9');
            out = malloc(nonzero ? n + 1 : 2);
            if (out && nonzero) {
                memcpy(out, tok, n);
                out[n] = '\0';
            } else if (out) {
                memcpy(out, "0", 2);
            }
            return out;
        }
        for (; p < end; p++)
            exp = exp * 10 + (*p - '0');
        if (exp_neg)
            exp = -exp;
    }
    digits = malloc(int_n + frac_n + 1);
    if (!digits)
        return NULL;
    memcpy(digits, int_s, int_n);
    if (frac_n)
        memcpy(digits + int_n, frac_s, frac_n);
    k = int_n + frac_n;
    for (lead = 0; lead < k && digits[lead] == '0'; lead++) {
    }
    e10 = exp - (long long)frac_n;
    while (k > lead && digits[k - 1] == '0') {
        k--;
        e10++;
    }
    if (k == lead) {
        free(digits);
        return strdup("0");
    }
    k -= lead;
    e10 += (long long)k - 1;
    out = malloc(k + 32);
    if (out) {
        size_t w = 0;
        if (neg)
            out[w++] = '-';
        out[w++] = digits[lead];
        if (k > 1) {
            out[w++] = '.';
            memcpy(out + w, digits + lead + 1, k - 1);
            w += k - 1;
        }
        snprintf(out + w, 32, "e%lld", e10);
    }
    free(digits);
    return out;
}

static int cmp_node(const void *a, const void *b)
{
    const cJSON *x = ((const struct num_token *)a)->node, *y = ((const struct num_token *)b)->node;
    return x < y ? -1 : x > y;
}

/* The token node was parsed from, or NULL. */
static const struct num_token *token_of(const struct out *o, const cJSON *node)
{
    struct num_token key = {.node = node};
    if (!o->nums)
        return NULL;
    return bsearch(&key, o->nums, o->n_nums, sizeof key, cmp_node);
}

static void put_double(struct out *o, double d);

/* The double's form when it is the token's exact value (the form fingerprints had
 * before tokens were looked at), else the token's exact form. */
static void put_number(struct out *o, const cJSON *node)
{
    const struct num_token *t = token_of(o, node);
    struct out dbl = {.p = malloc(64), .cap = 64};
    char *exact = NULL, *as_double = NULL;

    if (!t) {
        put_double(o, node->valuedouble);
        free(dbl.p);
        return;
    }
    if (!dbl.p) {
        o->oom = true;
        return;
    }
    dbl.p[0] = '\0';
    put_double(&dbl, node->valuedouble);
    exact = exact_form(t->tok, t->len);
    if (!exact || dbl.oom)
        o->oom = true;
    else if (strcmp(dbl.p, "null") != 0 && (as_double = exact_form(dbl.p, dbl.len)) == NULL)
        o->oom = true;
    else if (as_double && strcmp(as_double, exact) == 0)
        put(o, dbl.p, dbl.len);
    else
        put_str(o, exact);
    free(as_double);
    free(exact);
    free(dbl.p);
}

static void put_double(struct out *o, double d)
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
        put_number(o, v);
    } else if (cJSON_IsTrue(v)) {
        put_str(o, "true");
    } else if (cJSON_IsFalse(v)) {
        put_str(o, "false");
    } else {
        put_str(o, "null"); /* null, and raw or invalid items that have no JSON form */
    }
}

static char *canonical(const cJSON *value, const struct num_token *nums, size_t n_nums)
{
    struct out o = {.p = malloc(64), .len = 0, .cap = 64, .nums = nums, .n_nums = n_nums};

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

char *jsonx_canonical(const cJSON *value)
{
    return canonical(value, NULL, 0);
}

/* The number nodes under v in document order, which is the order of their tokens. */
static void collect_numbers(const cJSON *v, struct num_token *nums, size_t cap, size_t *n)
{
    if (cJSON_IsNumber(v)) {
        if (*n < cap)
            nums[*n].node = v;
        (*n)++;
        return;
    }
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        for (const cJSON *c = v->child; c != NULL; c = c->next)
            collect_numbers(c, nums, cap, n);
    }
}

char *jsonx_canonical_text(const cJSON *value, const char *text, size_t len)
{
    size_t cap = 0, n = 0, pos = 0, i;
    struct num_token *nums;
    char *out;

    while (jsonx_next_number(text, len, &pos) < len)
        cap++;
    if (cap == 0)
        return canonical(value, NULL, 0);
    nums = calloc(cap, sizeof *nums);
    if (!nums)
        return NULL;
    collect_numbers(value, nums, cap, &n);
    if (n != cap) { /* value was not parsed from text: numbers as the doubles say */
        free(nums);
        return canonical(value, NULL, 0);
    }
    for (i = 0, pos = 0; i < n; i++) {
        size_t start = jsonx_next_number(text, len, &pos);
        nums[i].tok = text + start;
        nums[i].len = pos - start;
    }
    qsort(nums, n, sizeof *nums, cmp_node);
    out = canonical(value, nums, n);
    free(nums);
    return out;
}
