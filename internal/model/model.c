/* model — task statuses, validation, times and the JSON task view. */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonx/jsonx.h"

static const char *const status_names[TASK_STATUS_COUNT] = {
    [TASK_PENDING] = "PENDING",   [TASK_QUEUED] = "QUEUED",       [TASK_RUNNING] = "RUNNING",
    [TASK_RETRYING] = "RETRYING", [TASK_SUCCEEDED] = "SUCCEEDED", [TASK_DEAD] = "DEAD",
    [TASK_CANCELED] = "CANCELED",
};

const char *model_status_name(enum task_status s)
{
    if ((unsigned)s >= TASK_STATUS_COUNT)
        return "UNKNOWN";
    return status_names[s];
}

int model_status_parse(const char *s, enum task_status *ret_status)
{
    for (int i = 0; i < TASK_STATUS_COUNT; i++) {
        if (strcmp(s, status_names[i]) == 0) {
            *ret_status = (enum task_status)i;
            return 0;
        }
    }
    return -1;
}

bool model_status_terminal(enum task_status s)
{
    return s == TASK_SUCCEEDED || s == TASK_DEAD || s == TASK_CANCELED;
}

void model_task_release(struct task *t)
{
    if (!t)
        return;
    free(t->payload);
    free(t->result);
    free(t->last_error);
    free(t->ordering_key);
    free(t->callback_url);
    t->payload = t->result = t->last_error = t->ordering_key = t->callback_url = NULL;
}

static bool is_type_char(char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return true;
    return !first && (c == '.' || c == '_' || c == '-');
}

bool model_type_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        if (n >= MODEL_TYPE_MAX || !is_type_char(s[n], n == 0))
            return false;
    }
    return n > 0;
}

static bool is_lower_hex(const char *s, size_t n, bool *all_zero)
{
    *all_zero = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        if (c != '0')
            *all_zero = false;
    }
    return true;
}

bool model_traceparent_valid(const char *s, size_t len)
{
    bool zero;
    if (len != MODEL_TRACEPARENT_LEN || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return false;
    /* version ff is forbidden; we accept version 00 only, the one we can parse */
    if (s[0] != '0' || s[1] != '0')
        return false;
    if (!is_lower_hex(s + 3, 32, &zero) || zero)
        return false;
    if (!is_lower_hex(s + 36, 16, &zero) || zero)
        return false;
    return is_lower_hex(s + 53, 2, &zero);
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
}

int model_traceparent_new(char out[MODEL_TRACEPARENT_LEN + 1])
{
    unsigned char rnd[24];
    if (ids_random(rnd, sizeof rnd) < 0) /* per-thread generator: no system call */
        return -1;
    rnd[0] |= 0x01; /* never all zero */
    rnd[16] |= 0x01;
    out[0] = '0';
    out[1] = '0';
    out[2] = '-';
    hex_encode(rnd, 16, out + 3);
    out[35] = '-';
    hex_encode(rnd + 16, 8, out + 36);
    memcpy(out + 52, "-01", 4); /* with the NUL */
    return 0;
}

void model_traceparent_trace_id(const char *traceparent, char out[33])
{
    memcpy(out, traceparent + 3, 32);
    out[32] = '\0';
}

int64_t model_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void model_time_format(int64_t us, char out[32])
{
    time_t secs = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    struct tm tm;
    if (frac < 0) {
        secs -= 1;
        frac += 1000000;
    }
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 21, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%06ldZ", frac);
}

static int parse_digits(const char **p, int n, int *ret)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *ret = v;
    return 0;
}

static int expect(const char **p, char c)
{
    if (**p != c)
        return -1;
    (*p)++;
    return 0;
}

static int parse_fraction(const char **p, long *ret_us)
{
    long us = 0;
    int digits = 0;
    if (**p != '.') {
        *ret_us = 0;
        return 0;
    }
    (*p)++;
    while (**p >= '0' && **p <= '9') {
        if (digits < 6) {
            us = us * 10 + (**p - '0');
            digits++;
        }
        (*p)++;
    }
    if (digits == 0)
        return -1;
    for (; digits < 6; digits++)
        us *= 10;
    *ret_us = us;
    return 0;
}

static int parse_offset(const char **p, int *ret_secs)
{
    int sign, hh, mm;
    if (**p == 'Z' || **p == 'z') {
        (*p)++;
        *ret_secs = 0;
        return 0;
    }
    if (**p != '+' && **p != '-')
        return -1;
    sign = **p == '-' ? -1 : 1;
    (*p)++;
    if (parse_digits(p, 2, &hh) < 0 || expect(p, ':') < 0 || parse_digits(p, 2, &mm) < 0)
        return -1;
    if (hh > 23 || mm > 59)
        return -1;
    *ret_secs = sign * (hh * 3600 + mm * 60);
    return 0;
}

int model_time_parse(const char *s, int64_t *ret_us)
{
    struct tm tm = {0};
    int y, mo, d, h, mi, sec, off;
    long frac;
    const char *p = s;
    if (parse_digits(&p, 4, &y) < 0 || expect(&p, '-') < 0 || parse_digits(&p, 2, &mo) < 0 ||
        expect(&p, '-') < 0 || parse_digits(&p, 2, &d) < 0)
        return -1;
    if (*p != 'T' && *p != 't')
        return -1;
    p++;
    if (parse_digits(&p, 2, &h) < 0 || expect(&p, ':') < 0 || parse_digits(&p, 2, &mi) < 0 ||
        expect(&p, ':') < 0 || parse_digits(&p, 2, &sec) < 0)
        return -1;
    if (parse_fraction(&p, &frac) < 0 || parse_offset(&p, &off) < 0 || *p != '\0')
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (tm.tm_mday != d) /* timegm normalised an impossible date such as 02-30 */
        return -1;
    *ret_us = ((int64_t)t - off) * 1000000 + frac;
    return 0;
}

static bool add_time(cJSON *obj, const char *name, int64_t us)
{
    char buf[32];
    if (us == 0)
        return cJSON_AddNullToObject(obj, name) != NULL;
    model_time_format(us, buf);
    return cJSON_AddStringToObject(obj, name, buf) != NULL;
}

static bool add_opt_string(cJSON *obj, const char *name, const char *s)
{
    if (!s)
        return cJSON_AddNullToObject(obj, name) != NULL;
    return cJSON_AddStringToObject(obj, name, s) != NULL;
}

/* The view's fields but the payload and a result that is JSON: the renderer splices
 * those in as stored instead of parsing them. */
static cJSON *view_object(const struct task *t, bool result_as_string)
{
    char id[IDS_TEXT_LEN + 1];
    cJSON *v = cJSON_CreateObject();
    bool ok;
    if (!v)
        return NULL;
    ids_format(&t->id, id);
    ok = cJSON_AddStringToObject(v, "id", id) && cJSON_AddStringToObject(v, "type", t->type) &&
         cJSON_AddStringToObject(v, "status", model_status_name(t->status)) &&
         cJSON_AddNumberToObject(v, "priority", t->priority) &&
         cJSON_AddNumberToObject(v, "attempts", t->attempts) &&
         cJSON_AddNumberToObject(v, "max_attempts", t->max_attempts) &&
         (!result_as_string || cJSON_AddStringToObject(v, "result", t->result)) &&
         add_opt_string(v, "last_error", t->last_error) &&
         add_time(v, "created_at", t->created_at) && add_time(v, "updated_at", t->updated_at) &&
         add_time(v, "run_at", t->run_at) && add_time(v, "started_at", t->started_at) &&
         add_time(v, "finished_at", t->finished_at);
    if (!ok) {
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

/* Prints o (consumed) with "payload": <payload> and, when result is not NULL,
 * "result": <result> spliced in first, as stored: re-parsing a payload of up to a
 * mebibyte only to print it again costs tens of megabytes and loses the digits of
 * numbers a double cannot hold. */
/* Copies n bytes to w and returns the end (the text is terminated by the caller). */
static char *put_bytes(char *w, const char *s, size_t n)
{
    memcpy(w, s, n);
    return w + n;
}

static char *print_spliced(cJSON *o, const char *payload, const char *result)
{
    static const char open_payload[] = "{\"payload\":", result_name[] = ",\"result\":";
    char *head = o ? cJSON_PrintUnformatted(o) : NULL;
    char *out = NULL, *w;
    size_t hlen, plen, rlen;
    cJSON_Delete(o);
    if (!head)
        return NULL;
    hlen = strlen(head);
    plen = strlen(payload);
    rlen = result ? strlen(result) : 0;
    out = malloc(hlen + plen + rlen + sizeof open_payload + sizeof result_name + 1);
    if (out) {
        w = put_bytes(out, open_payload, sizeof open_payload - 1);
        w = put_bytes(w, payload, plen);
        if (result) {
            w = put_bytes(w, result_name, sizeof result_name - 1);
            w = put_bytes(w, result, rlen);
        }
        /* head is "{...}" with at least one member: drop its '{', keep its NUL */
        *w = ',';
        memcpy(w + 1, head + 1, hlen);
    }
    cJSON_free(head);
    return out;
}

/* A stored payload was checked on the way in; a result comes from a handler (custom
 * ones included) and is spliced only when it is JSON, else shown as a string.  The
 * scanner builds nothing, so this costs a pass over the bytes and no memory. */
#define RESULT_MAX_DEPTH 512

char *model_task_view_text(const struct task *t)
{
    const char *payload = t->payload ? t->payload : "null";
    const char *result = t->result ? t->result : "null";
    bool as_string =
        t->result && jsonx_validate(t->result, strlen(t->result), RESULT_MAX_DEPTH) != JSONX_OK;
    return print_spliced(view_object(t, as_string), payload, as_string ? NULL : result);
}

char *model_task_message(const struct task *t)
{
    char id[IDS_TEXT_LEN + 1];
    cJSON *o = cJSON_CreateObject();
    bool ok;
    if (!o)
        return NULL;
    ids_format(&t->id, id);
    ok = cJSON_AddStringToObject(o, "id", id) && cJSON_AddStringToObject(o, "type", t->type) &&
         cJSON_AddNumberToObject(o, "priority", t->priority) &&
         cJSON_AddNumberToObject(o, "max_attempts", t->max_attempts) &&
         (t->timeout_ms ? cJSON_AddNumberToObject(o, "timeout_ms", t->timeout_ms) != NULL
                        : cJSON_AddNullToObject(o, "timeout_ms") != NULL) &&
         add_time(o, "run_at", t->run_at) && add_opt_string(o, "ordering_key", t->ordering_key) &&
         add_time(o, "created_at", t->created_at);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return print_spliced(o, t->payload ? t->payload : "null", NULL);
}

const char *model_task_key(const struct task *t, char idbuf[IDS_TEXT_LEN + 1], size_t *ret_len)
{
    if (t->ordering_key && t->ordering_key[0]) {
        *ret_len = strlen(t->ordering_key);
        return t->ordering_key;
    }
    ids_format(&t->id, idbuf);
    *ret_len = IDS_TEXT_LEN;
    return idbuf;
}

bool model_idem_key_valid(const char *key)
{
    size_t n = 0;
    bool visible = false;
    for (; key[n]; n++) {
        if (n >= IDEM_KEY_MAX || key[n] < 0x20 || key[n] > 0x7e)
            return false;
        visible = visible || key[n] != ' ';
    }
    return visible;
}
