/* ctl — dlq tail: the DLQ topic's records from the beginning, as the worker wrote
 * them (the original task message plus x-error, x-attempts, x-first-failure,
 * x-last-failure, x-worker and traceparent headers).
 *
 * It reads through a queue_reader: every partition assigned at its beginning, no
 * group joined, nothing committed, so tailing never moves anyone's offsets.
 * Without --follow it stops once every partition has been read to where it ended at
 * the start (or fails after TAIL_STALL_MS without progress); with --follow it runs
 * until SIGINT or SIGTERM. */
#include "ctl/ctl_int.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "jsonx/jsonx.h"
#include "model/model.h"
#include "queue/queue.h"

#define POLL_MS       200
#define TAIL_STALL_MS 15000 /* no record and not at the end for this long: give up */
#define META_TIMEOUT  10000
#define MAX_HEADERS   64
#define MSG_MAX_DEPTH 64
#define TEXT_MAX      4096 /* longest header value shown */

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* The failure headers, decoded: times (unix ms as decimal text) in RFC 3339. */
struct record {
    char task_id[IDS_TEXT_LEN + 1];
    char type[MODEL_TYPE_MAX + 1];
    char error[TEXT_MAX], worker[256], traceparent[MODEL_TRACEPARENT_LEN + 1];
    char first[32], last[32], ts[32];
    long attempts;  /* -1: no header */
    cJSON *message; /* the parsed value, NULL when it is not JSON */
};

/* The last header called name as text in out; false when absent. */
static bool header_text(const struct queue_message *m, const char *name, char *out, size_t size)
{
    const void *v;
    size_t len;
    if (!queue_message_header(m, name, &v, &len))
        return false;
    if (len >= size)
        len = size - 1;
    memcpy(out, v, len);
    out[len] = '\0';
    return true;
}

/* An x-*-failure header (unix ms) as RFC 3339; "" when absent or malformed. */
static void header_time(const struct queue_message *m, const char *name, char out[32])
{
    char text[32];
    long ms;
    out[0] = '\0';
    if (header_text(m, name, text, sizeof text) && ctl__parse_long(text, 0, LONG_MAX, &ms) == 0)
        model_time_format((int64_t)ms * 1000, out);
}

static void decode(const struct queue_message *m, struct record *r)
{
    char attempts[24];
    cJSON *root = NULL;

    memset(r, 0, sizeof *r);
    r->attempts = -1;
    header_text(m, "x-error", r->error, sizeof r->error);
    header_text(m, "x-worker", r->worker, sizeof r->worker);
    if (header_text(m, "traceparent", r->traceparent, sizeof r->traceparent) &&
        !model_traceparent_valid(r->traceparent, strlen(r->traceparent)))
        r->traceparent[0] = '\0';
    if (header_text(m, "x-attempts", attempts, sizeof attempts) &&
        ctl__parse_long(attempts, 0, 1000000, &r->attempts) < 0)
        r->attempts = -1;
    header_time(m, "x-first-failure", r->first);
    header_time(m, "x-last-failure", r->last);
    if (m->timestamp_ms >= 0)
        model_time_format(m->timestamp_ms * 1000, r->ts);
    if (jsonx_parse(m->value, m->len, MSG_MAX_DEPTH, &root) != JSONX_OK)
        return;
    r->message = root;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "id");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
    if (cJSON_IsString(id) && strlen(id->valuestring) == IDS_TEXT_LEN)
        memcpy(r->task_id, id->valuestring, IDS_TEXT_LEN + 1);
    if (cJSON_IsString(type) && model_type_valid(type->valuestring))
        snprintf(r->type, sizeof r->type, "%s", type->valuestring);
}

static bool add_opt(cJSON *o, const char *name, const char *v)
{
    return v[0] ? cJSON_AddStringToObject(o, name, v) != NULL
                : cJSON_AddNullToObject(o, name) != NULL;
}

/* The record's key as text (the task id, or its ordering_key); null when none. */
static bool add_key(cJSON *o, const struct queue_message *m)
{
    char *key;
    bool ok;
    if (!m->key)
        return cJSON_AddNullToObject(o, "key") != NULL;
    key = strndup(m->key, m->key_len);
    ok = key && cJSON_AddStringToObject(o, "key", key);
    free(key);
    return ok;
}

/* Every header, raw, as strings (the decoded ones are at the top level). */
static cJSON *all_headers(const struct queue_message *m)
{
    struct queue_header h[MAX_HEADERS];
    size_t n = queue_message_headers(m, h, MAX_HEADERS);
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && i < n && i < MAX_HEADERS; i++) {
        char v[TEXT_MAX];
        size_t len = h[i].len < sizeof v ? h[i].len : sizeof v - 1;
        if (h[i].value)
            memcpy(v, h[i].value, len);
        v[h[i].value ? len : 0] = '\0';
        if (!cJSON_AddStringToObject(o, h[i].name, v)) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

static int print_json(const struct queue_message *m, struct record *r, FILE *out)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *hdrs = all_headers(m);
    char trace[33] = "", *text = NULL, *raw;
    bool ok;

    if (r->traceparent[0])
        model_traceparent_trace_id(r->traceparent, trace);
    ok = o && hdrs && cJSON_AddStringToObject(o, "topic", m->topic) &&
         cJSON_AddNumberToObject(o, "partition", m->partition) &&
         cJSON_AddNumberToObject(o, "offset", (double)m->offset) &&
         add_opt(o, "timestamp", r->ts) && add_key(o, m) && add_opt(o, "task_id", r->task_id) &&
         add_opt(o, "type", r->type) && add_opt(o, "error", r->error) &&
         (r->attempts >= 0 ? cJSON_AddNumberToObject(o, "attempts", (double)r->attempts) != NULL
                           : cJSON_AddNullToObject(o, "attempts") != NULL) &&
         add_opt(o, "first_failure", r->first) && add_opt(o, "last_failure", r->last) &&
         add_opt(o, "worker", r->worker) && add_opt(o, "traceparent", r->traceparent) &&
         add_opt(o, "trace_id", trace);
    if (ok) {
        cJSON_AddItemToObject(o, "headers", hdrs);
        hdrs = NULL;
        if (r->message) {
            cJSON_AddItemToObject(o, "message", r->message);
            r->message = NULL;
        } else {
            /* not JSON (a malformed message dead-lettered as is): show it as text */
            raw = strndup(m->value ? (const char *)m->value : "", m->len);
            ok = raw && cJSON_AddStringToObject(o, "value", raw);
            free(raw);
        }
    }
    text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    cJSON_Delete(hdrs);
    if (!text)
        return -1;
    fprintf(out, "%s\n", text);
    cJSON_free(text);
    return 0;
}

static void print_text(const struct queue_message *m, const struct record *r, FILE *out)
{
    char err[512];
    ctl__clip(r->error[0] ? r->error : NULL, 400, err, sizeof err);
    fprintf(out, "%s/%d@%lld  %s\n", m->topic, (int)m->partition, (long long)m->offset,
            r->ts[0] ? r->ts : "-");
    fprintf(out, "  task       %s  type %s\n", r->task_id[0] ? r->task_id : "(not a task message)",
            r->type[0] ? r->type : "-");
    fprintf(out, "  error      %s\n", err);
    if (r->attempts >= 0)
        fprintf(out, "  attempts   %ld\n", r->attempts);
    else
        fprintf(out, "  attempts   -\n");
    fprintf(out, "  failures   first %s  last %s\n", r->first[0] ? r->first : "-",
            r->last[0] ? r->last : "-");
    fprintf(out, "  worker     %s\n", r->worker[0] ? r->worker : "-");
    fprintf(out, "  trace      %s\n\n", r->traceparent[0] ? r->traceparent : "-");
}

static int print_record(const struct queue_message *m, bool json, FILE *out)
{
    struct record r;
    int rc = 0;
    decode(m, &r);
    if (json)
        rc = print_json(m, &r, out);
    else
        print_text(m, &r, out);
    cJSON_Delete(r.message);
    fflush(out); /* one record at a time, also into a pipe */
    return rc;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Reads until the end (or forever with follow); returns a sysexits code. */
static int tail_loop(struct queue_reader *rd, bool follow, bool json, FILE *out, FILE *err)
{
    int64_t progress = mono_ms();

    while (!stop_requested) {
        struct queue_message *m = NULL;
        if (!follow && queue_reader_at_end(rd))
            return EX_OK;
        int rc = queue_reader_poll(rd, POLL_MS, &m);
        if (rc != QUEUE_OK) {
            fprintf(err, "dispatchctl: dlq tail: reading the DLQ topic failed: %s\n",
                    queue_strerror(rc));
            return EX_UNAVAILABLE;
        }
        if (!m) {
            if (!follow && mono_ms() - progress > TAIL_STALL_MS) {
                fprintf(err,
                        "dispatchctl: dlq tail: no progress for %d s before the end of "
                        "the topic; is the broker up?\n",
                        TAIL_STALL_MS / 1000);
                return EX_UNAVAILABLE;
            }
            continue;
        }
        progress = mono_ms();
        rc = print_record(m, json, out);
        queue_message_free(m);
        if (rc < 0)
            return EX_SOFTWARE;
    }
    return EX_OK;
}

int ctl__dlq_tail(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    bool follow = false, json = false;
    const struct ctl__opt opts[] = {
        {"follow", CTL__FLAG, &follow},
        {"json", CTL__FLAG, &json},
    };
    char group[64], errbuf[512] = "";
    struct queue_reader *rd = NULL;
    int npos, rc;

    if (ctl__parse_args("dlq tail", argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0, &npos,
                        err) < 0)
        return EX_USAGE;
    snprintf(group, sizeof group, "dispatchctl-tail-%ld", (long)getpid());
    struct queue_reader_config rc_cfg = {
        .brokers = cfg->kafka_brokers,
        .client_id = "dispatchctl",
        .group = group,
        .topic = cfg->kafka_dlq_topic,
        .timeout_ms = META_TIMEOUT,
    };
    if (queue_reader_new(&rc_cfg, &rd, errbuf, sizeof errbuf) != QUEUE_OK) {
        fprintf(err, "dispatchctl: dlq tail: %s\n", errbuf[0] ? errbuf : "cannot read the topic");
        return EX_UNAVAILABLE;
    }
    if (follow)
        catch_stop_signals();
    rc = tail_loop(rd, follow, json, out, err);
    queue_reader_free(rd);
    return rc;
}
