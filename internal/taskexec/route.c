/* Retry and DLQ records: the original key and value, the original headers (minus the
 * ones we set), plus ours. */
#include "taskexec/taskexec_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "log/log.h"

#define MAX_COPIED_HEADERS 64
#define NUM_BUF            24

struct hdrs {
    struct taskexec_header v[MAX_COPIED_HEADERS + 8];
    size_t n;
    char attempts[NUM_BUF], not_before[NUM_BUF], first[NUM_BUF], last[NUM_BUF];
};

static bool is_ours(const char *name)
{
    static const char *const ours[] = {
        TASKEXEC_H_ATTEMPTS,      TASKEXEC_H_NOT_BEFORE,   TASKEXEC_H_ERROR,
        TASKEXEC_H_FIRST_FAILURE, TASKEXEC_H_LAST_FAILURE, TASKEXEC_H_WORKER,
    };
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        if (strcmp(name, ours[i]) == 0) {
            return true;
        }
    }
    return false;
}

static void hdrs_copy(struct hdrs *h, const struct taskexec_msg *m)
{
    for (size_t i = 0; i < m->n_headers && h->n < MAX_COPIED_HEADERS; i++) {
        if (m->headers[i].name != NULL && !is_ours(m->headers[i].name)) {
            h->v[h->n++] = m->headers[i];
        }
    }
}

static void hdrs_add(struct hdrs *h, const char *name, const char *value)
{
    h->v[h->n++] = (struct taskexec_header){.name = name, .value = value, .len = strlen(value)};
}

/* The last header called name, as a NUL-terminated copy in out; false if absent. */
static bool header_text(const struct taskexec_msg *m, const char *name, char *out, size_t size)
{
    for (size_t i = m->n_headers; i-- > 0;) {
        const struct taskexec_header *hd = &m->headers[i];
        if (hd->name != NULL && strcmp(hd->name, name) == 0 && hd->len < size) {
            memcpy(out, hd->value, hd->len);
            out[hd->len] = '\0';
            return true;
        }
    }
    return false;
}

bool taskexec__header_ms(const struct taskexec_msg *m, const char *name, int64_t *ret_ms)
{
    char buf[NUM_BUF];
    if (!header_text(m, name, buf, sizeof buf) || buf[0] < '0' || buf[0] > '9') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *ret_ms = v;
    return true;
}

int64_t taskexec__unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int taskexec__dep_pause(const struct taskexec__run *r, int i)
{
    int64_t ms = 50;
    for (int k = 0; k < i && ms < r->te->dep_retry_max_ms; k++) {
        ms *= 2;
    }
    if (ms > r->te->dep_retry_max_ms) {
        ms = r->te->dep_retry_max_ms;
    }
    /* sleep in short slices so a drain is noticed quickly */
    for (int64_t slept = 0; slept < ms; slept += 10) {
        if (r->cancel != NULL && atomic_load(r->cancel)) {
            return -1;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    return (r->cancel != NULL && atomic_load(r->cancel)) ? -1 : 0;
}

static int publish(const struct taskexec__run *r, const char *topic, const struct hdrs *h)
{
    const struct taskexec *te = r->te;
    const struct taskexec_msg *m = r->msg;
    for (int i = 0;; i++) {
        int rc = te->qops->publish_sync(te->qctx, topic, m->key, m->key_len, m->value, m->len, h->v,
                                        h->n);
        if (rc == 0) {
            return 0;
        }
        log_warn("publish failed, will retry", LOG_S("task_id", r->id_text),
                 LOG_S("traceparent", r->traceparent), LOG_S("topic", topic), LOG_I("try", i + 1));
        if (taskexec__dep_pause(r, i) < 0) {
            return TASKEXEC_EAGAIN;
        }
    }
}

static void set_failure_times(struct hdrs *h, const struct taskexec_msg *m, int64_t now_ms)
{
    snprintf(h->last, sizeof h->last, "%lld", (long long)now_ms);
    if (!header_text(m, TASKEXEC_H_FIRST_FAILURE, h->first, sizeof h->first)) {
        memcpy(h->first, h->last, sizeof h->first);
    }
    hdrs_add(h, TASKEXEC_H_FIRST_FAILURE, h->first);
    hdrs_add(h, TASKEXEC_H_LAST_FAILURE, h->last);
}

/* Appends the original message's last header called name, if any. */
static void hdrs_keep(struct hdrs *h, const struct taskexec_msg *m, const char *name)
{
    for (size_t i = m->n_headers; i-- > 0;) {
        if (m->headers[i].name != NULL && strcmp(m->headers[i].name, name) == 0) {
            h->v[h->n++] = m->headers[i];
            return;
        }
    }
}

int taskexec__publish_retry(const struct taskexec__run *r, int64_t not_before_ms, const char *error)
{
    struct hdrs h = {.n = 0};
    hdrs_copy(&h, r->msg);
    snprintf(h.not_before, sizeof h.not_before, "%lld", (long long)not_before_ms);
    hdrs_add(&h, TASKEXEC_H_NOT_BEFORE, h.not_before);
    if (error != NULL) {
        snprintf(h.attempts, sizeof h.attempts, "%d", r->task.attempts);
        hdrs_add(&h, TASKEXEC_H_ATTEMPTS, h.attempts);
        hdrs_add(&h, TASKEXEC_H_ERROR, error);
        set_failure_times(&h, r->msg, taskexec__unix_ms());
    } else {
        /* a deferral, not a failure: the failure history travels unchanged */
        hdrs_keep(&h, r->msg, TASKEXEC_H_ATTEMPTS);
        hdrs_keep(&h, r->msg, TASKEXEC_H_ERROR);
        hdrs_keep(&h, r->msg, TASKEXEC_H_FIRST_FAILURE);
        hdrs_keep(&h, r->msg, TASKEXEC_H_LAST_FAILURE);
    }
    return publish(r, r->te->retry_topic, &h);
}

int taskexec__publish_dlq(const struct taskexec__run *r, const char *error)
{
    struct hdrs h = {.n = 0};
    hdrs_copy(&h, r->msg);
    int attempts = r->claimed ? r->task.attempts : 0;
    snprintf(h.attempts, sizeof h.attempts, "%d", attempts);
    hdrs_add(&h, TASKEXEC_H_ERROR, error != NULL ? error : "unknown error");
    hdrs_add(&h, TASKEXEC_H_ATTEMPTS, h.attempts);
    set_failure_times(&h, r->msg, taskexec__unix_ms());
    hdrs_add(&h, TASKEXEC_H_WORKER, r->te->worker_id);
    int rc = publish(r, r->te->dlq_topic, &h);
    if (rc == 0) {
        metrics_worker_add(r->te->metrics, METRICS_DLQ_MESSAGES, 1);
    }
    return rc;
}
