/* The execute flow: parse → claim → run → record → route.  See taskexec.h. */
#include "taskexec/taskexec_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "jsonx/jsonx.h"
#include "log/log.h"

#define MSG_MAX_DEPTH        128
#define ERROR_MAX            1024 /* last_error and x-error are cut to this many bytes */
#define DEFAULT_MAX_DELAY_MS 300000

const char *taskexec_strerror(int err)
{
    switch (err) {
    case TASKEXEC_OK:
        return "ok";
    case TASKEXEC_EAGAIN:
        return "dependency unavailable; deliver again";
    case TASKEXEC_EHANDBACK:
        return "handed back on drain; deliver again";
    case TASKEXEC_ENOMEM:
        return "out of memory";
    case TASKEXEC_EINVAL:
        return "invalid argument";
    default:
        return "unknown error";
    }
}

const char *taskexec_outcome_name(enum taskexec_outcome o)
{
    static const char *const names[] = {"succeeded", "retried",   "dead",     "skipped",
                                        "deferred",  "malformed", "scheduled"};
    return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "unknown";
}

static char *dup_or_null(const char *s, bool *oom)
{
    char *c = strdup(s != NULL ? s : "");
    if (c == NULL) {
        *oom = true;
    }
    return c;
}

int taskexec_new(const struct taskexec_config *cfg, const struct taskexec_store_ops *store_ops,
                 void *store_ctx, const struct taskexec_queue_ops *queue_ops, void *queue_ctx,
                 const struct handler_registry *reg, struct taskexec **ret_te)
{
    if (cfg == NULL || store_ops == NULL || queue_ops == NULL || reg == NULL ||
        cfg->lease_ms <= 0) {
        return TASKEXEC_EINVAL;
    }
    struct taskexec *te = calloc(1, sizeof *te);
    if (te == NULL) {
        return TASKEXEC_ENOMEM;
    }
    bool oom = false;
    te->worker_id = dup_or_null(cfg->worker_id, &oom);
    te->retry_topic = dup_or_null(cfg->retry_topic, &oom);
    te->dlq_topic = dup_or_null(cfg->dlq_topic, &oom);
    if (oom) {
        taskexec_free(te);
        return TASKEXEC_ENOMEM;
    }
    te->lease_ms = cfg->lease_ms;
    te->default_timeout_ms = cfg->default_timeout_ms > 0 ? cfg->default_timeout_ms : 30000;
    te->max_timeout_ms = cfg->max_timeout_ms > 0 ? cfg->max_timeout_ms : 0;
    te->dep_retry_max_ms = cfg->dep_retry_max_ms > 0 ? cfg->dep_retry_max_ms : 5000;
    te->backoff = cfg->backoff;
    te->max_delay_ms = cfg->max_delay_ms > 0     ? cfg->max_delay_ms
                       : cfg->backoff.cap_ms > 0 ? (int)cfg->backoff.cap_ms
                                                 : DEFAULT_MAX_DELAY_MS;
    te->metrics = cfg->metrics;
    te->nops = cfg->notify;
    te->nctx = cfg->notify_ctx;
    te->sops = store_ops;
    te->sctx = store_ctx;
    te->qops = queue_ops;
    te->qctx = queue_ctx;
    te->reg = reg;
    te->max_running = cfg->max_running > 0 ? cfg->max_running : 0;
    te->extend_after_ms = cfg->extend_after_ms > 0 ? cfg->extend_after_ms : 1000;
    if (pthread_mutex_init(&te->gate_mu, NULL) != 0) {
        goto out_gate;
    }
    if (pthread_cond_init(&te->gate_cv, NULL) != 0) {
        pthread_mutex_destroy(&te->gate_mu);
        goto out_gate;
    }
    te->gate_ok = true;
    *ret_te = te;
    return TASKEXEC_OK;

out_gate:
    taskexec_free(te);
    return TASKEXEC_ENOMEM;
}

void taskexec_free(struct taskexec *te)
{
    if (te == NULL) {
        return;
    }
    if (te->gate_ok) {
        pthread_cond_destroy(&te->gate_cv);
        pthread_mutex_destroy(&te->gate_mu);
    }
    free(te->worker_id);
    free(te->retry_topic);
    free(te->dlq_topic);
    free(te);
}

static bool canceled(const struct taskexec__run *r)
{
    return r->cancel != NULL && atomic_load(r->cancel);
}

/* The traceparent header, when it is a valid one. */
static void trace_from_headers(struct taskexec__run *r)
{
    const struct taskexec_msg *m = r->msg;
    for (size_t i = m->n_headers; i-- > 0;) {
        const struct taskexec_header *h = &m->headers[i];
        if (h->name != NULL && strcmp(h->name, TASKEXEC_H_TRACEPARENT) == 0) {
            if (h->len == MODEL_TRACEPARENT_LEN && model_traceparent_valid(h->value, h->len)) {
                memcpy(r->traceparent, h->value, h->len);
                r->traceparent[h->len] = '\0';
            }
            return;
        }
    }
}

/* What else the message says, read before the claim: its type (a metrics label for
 * runs that claim nothing) and its run_at.  Both are optional: a run_at that does
 * not parse runs the task now. */
static void parse_extras(struct taskexec__run *r, const cJSON *root)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
    if (cJSON_IsString(type) && strlen(type->valuestring) <= MODEL_TYPE_MAX) {
        snprintf(r->msg_type, sizeof r->msg_type, "%s", type->valuestring);
    }
    const cJSON *run_at = cJSON_GetObjectItemCaseSensitive(root, "run_at");
    int64_t us = 0;
    if (cJSON_IsString(run_at) && model_time_parse(run_at->valuestring, &us) == 0 && us > 0) {
        r->run_at_us = us;
    }
}

/* The task id from the message value {"id": "<uuid>", ...}, and the extras. */
static int parse_message(struct taskexec__run *r, char *why, size_t why_len)
{
    cJSON *root = NULL;
    int rc = jsonx_parse(r->msg->value, r->msg->len, MSG_MAX_DEPTH, &root);
    if (rc == JSONX_ERR_NOMEM) {
        return TASKEXEC_ENOMEM;
    }
    if (rc < 0) {
        snprintf(why, why_len, "malformed message: %s", jsonx_strerror(rc));
        return TASKEXEC_EINVAL;
    }
    const char *id = NULL;
    const struct jsonx_field spec[] = {
        JSONX_STRING("id", true, IDS_TEXT_LEN, IDS_TEXT_LEN, &id),
        JSONX_END,
    };
    struct jsonx_error err;
    rc = TASKEXEC_EINVAL;
    if (!cJSON_IsObject(root) || jsonx_spec_parse(root, spec, false, &err) < 0) {
        snprintf(why, why_len, "malformed message: no task id");
    } else if (ids_parse(id, IDS_TEXT_LEN, &r->id) < 0) {
        snprintf(why, why_len, "malformed message: bad task id");
    } else {
        ids_format(&r->id, r->id_text);
        parse_extras(r, root);
        rc = TASKEXEC_OK;
    }
    cJSON_Delete(root);
    return rc;
}

/* Claims the task, retrying while the store is down. */
/* A status write of id committed: tell the notify ops (if any). */
static void changed(const struct taskexec *te, const struct ids_id *id)
{
    if (te->nops != NULL && te->nops->changed != NULL) {
        te->nops->changed(te->nctx, id);
    }
}

static int claim(struct taskexec__run *r, enum taskexec_claim *ret_claim)
{
    struct taskexec *te = r->te;
    for (int i = 0;; i++) {
        struct task t;
        enum taskexec_claim c = TASKEXEC_CLAIM_NOT_FOUND;
        int rc = te->sops->claim(te->sctx, &r->id, te->worker_id, te->lease_ms, &t, &c);
        if (rc == TASKEXEC_OP_OK) {
            if (c == TASKEXEC_CLAIMED) {
                changed(te, &r->id);
                r->task = t;
                r->claimed = true;
                if (r->traceparent[0] == '\0') {
                    memcpy(r->traceparent, t.traceparent, sizeof r->traceparent);
                }
            }
            *ret_claim = c;
            return TASKEXEC_OK;
        }
        log_warn("claim failed, will retry", LOG_S("task_id", r->id_text),
                 LOG_S("traceparent", r->traceparent), LOG_I("try", i + 1));
        if (taskexec__dep_pause(r, i) < 0) {
            return TASKEXEC_EAGAIN;
        }
    }
}

/* Records the attempt's end, retrying while the store is down.  *ret_stale is set
 * when a newer attempt owns the task. */
static int finish(struct taskexec__run *r, const struct taskexec_finish *fin, bool once,
                  bool *ret_stale)
{
    struct taskexec *te = r->te;
    struct taskexec_finish slim;
    for (int i = 0;; i++) {
        int rc = te->sops->finish(te->sctx, &r->id, r->task.attempts, fin);
        if (rc == TASKEXEC_OP_REFUSED && fin != &slim) {
            /* the database refused a value of this outcome (a result or error it
             * cannot hold): record the status without them instead of retrying
             * the same refusal for ever */
            log_warn("outcome refused by the database; recorded without its values",
                     LOG_S("task_id", r->id_text), LOG_S("traceparent", r->traceparent));
            slim = (struct taskexec_finish){.status = fin->status,
                                            .outcome = fin->outcome,
                                            .error = "the database refused this outcome's values",
                                            .run_at = fin->run_at};
            fin = &slim;
            continue;
        }
        if (rc == TASKEXEC_OP_OK || rc == TASKEXEC_OP_STALE) {
            if (rc == TASKEXEC_OP_OK) {
                changed(te, &r->id);
            }
            *ret_stale = rc != TASKEXEC_OP_OK;
            if (rc != TASKEXEC_OP_OK) {
                log_warn("attempt superseded: a newer attempt owns the task",
                         LOG_S("task_id", r->id_text), LOG_S("traceparent", r->traceparent),
                         LOG_I("attempt", r->task.attempts));
            }
            return TASKEXEC_OK;
        }
        log_warn("finish failed, will retry", LOG_S("task_id", r->id_text),
                 LOG_S("traceparent", r->traceparent), LOG_I("try", i + 1));
        if (once || taskexec__dep_pause(r, i) < 0) {
            return TASKEXEC_EAGAIN;
        }
    }
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for a free handler slot (max_running); false when cancel was set first.
 * *ret_waited_ms: how long it waited. */
static bool gate_enter(struct taskexec__run *r, int64_t *ret_waited_ms)
{
    struct taskexec *te = r->te;
    *ret_waited_ms = 0;
    if (te->max_running == 0) {
        return true;
    }
    int64_t t0 = mono_ms();
    pthread_mutex_lock(&te->gate_mu);
    while (te->running >= te->max_running && !canceled(r)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000L; /* look at cancel every 10 ms */
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&te->gate_cv, &te->gate_mu, &ts);
    }
    bool in = te->running < te->max_running;
    if (in) {
        te->running++;
    }
    pthread_mutex_unlock(&te->gate_mu);
    *ret_waited_ms = mono_ms() - t0;
    return in;
}

/* The wait for a slot ate into the lease: renew it (fenced).  false when a newer
 * attempt owns the task; a failed renewal (store down) runs it anyway, on the lease
 * it has. */
static bool renew_lease(struct taskexec__run *r)
{
    const struct taskexec *te = r->te;
    if (te->sops->extend == NULL) {
        return true;
    }
    int rc = te->sops->extend(te->sctx, &r->id, r->task.attempts, te->lease_ms);
    if (rc == TASKEXEC_OP_STALE) {
        log_warn("attempt superseded while waiting for a handler slot: not run",
                 LOG_S("task_id", r->id_text), LOG_S("traceparent", r->traceparent),
                 LOG_I("attempt", r->task.attempts));
        return false;
    }
    if (rc != TASKEXEC_OP_OK) {
        log_warn("lease not renewed; running on the lease the claim gave",
                 LOG_S("task_id", r->id_text), LOG_S("traceparent", r->traceparent));
    }
    return true;
}

static void gate_leave(struct taskexec *te)
{
    if (te->max_running == 0) {
        return;
    }
    pthread_mutex_lock(&te->gate_mu);
    te->running--;
    pthread_cond_signal(&te->gate_cv);
    pthread_mutex_unlock(&te->gate_mu);
}

/* Runs the handler under the task's deadline.  Returns a handler status, with
 * out->error set for failures (when memory allowed). */
static int run_handler(struct taskexec__run *r, struct handler_out *out)
{
    handler_fn fn = NULL;
    void *arg = NULL;
    if (!handler_lookup(r->te->reg, r->task.type, &fn, &arg)) {
        char msg[MODEL_TYPE_MAX + 32];
        snprintf(msg, sizeof msg, "unknown task type: %s", r->task.type);
        out->error = strdup(msg);
        return HANDLER_PERMANENT;
    }
    int64_t waited_ms = 0;
    if (!gate_enter(r, &waited_ms)) {
        return HANDLER_RETRY; /* canceled while waiting: execute() hands it back */
    }
    if (waited_ms >= r->te->extend_after_ms && !renew_lease(r)) {
        gate_leave(r->te);
        r->superseded = true; /* a newer attempt owns it: not ours to run */
        return HANDLER_RETRY;
    }
    int timeout = r->task.timeout_ms > 0 ? r->task.timeout_ms : r->te->default_timeout_ms;
    if (r->te->max_timeout_ms > 0 && timeout > r->te->max_timeout_ms)
        timeout = r->te->max_timeout_ms; /* rows stored before the ceiling, or beyond it */
    const char *payload = r->task.payload != NULL ? r->task.payload : "null";
    struct handler_ctx ctx = {
        .task_id = r->id_text,
        .type = r->task.type,
        .payload = payload,
        .payload_len = strlen(payload),
        .attempt = r->task.attempts,
        .max_attempts = r->task.max_attempts,
        .deadline_ms = handler_now_ms() + timeout,
        .canceled = r->cancel,
        .traceparent = r->traceparent[0] != '\0' ? r->traceparent : NULL,
    };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int st = fn(arg, &ctx, out);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    gate_leave(r->te);
    r->handler_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (st != HANDLER_OK && st != HANDLER_RETRY && st != HANDLER_PERMANENT &&
        st != HANDLER_TIMEOUT) {
        st = HANDLER_RETRY;
    }
    if (st != HANDLER_TIMEOUT && handler_now_ms() > ctx.deadline_ms) {
        /* the handler contract: a late return is recorded as a timeout */
        log_warn("handler returned after its deadline", LOG_S("task_id", r->id_text),
                 LOG_S("traceparent", r->traceparent), LOG_I("timeout_ms", timeout));
        st = HANDLER_TIMEOUT;
    }
    return st;
}

static enum taskexec_attempt attempt_of(int st)
{
    switch (st) {
    case HANDLER_OK:
        return TASKEXEC_ATTEMPT_SUCCEEDED;
    case HANDLER_PERMANENT:
        return TASKEXEC_ATTEMPT_PERMANENT;
    case HANDLER_TIMEOUT:
        return TASKEXEC_ATTEMPT_TIMEOUT;
    default:
        return TASKEXEC_ATTEMPT_FAILED;
    }
}

/* The handler was interrupted by a drain: record the attempt as failed, make the
 * row due now, and let the message be delivered again (no retry record). */
static int hand_back(struct taskexec__run *r)
{
    struct taskexec_finish fin = {
        .status = TASK_RETRYING,
        .outcome = TASKEXEC_ATTEMPT_FAILED,
        .error = "worker shutting down: attempt handed back",
        .run_at = model_now_us(),
    };
    bool stale = false;
    (void)finish(r, &fin, true, &stale);
    log_info("task handed back", LOG_S("task_id", r->id_text), LOG_S("traceparent", r->traceparent),
             LOG_I("attempt", r->task.attempts));
    return TASKEXEC_EHANDBACK;
}

/* DEAD: the original message goes to the DLQ first (acknowledged), then the row.
 * In that order a crash in between leaves the row RUNNING, and its redelivery runs
 * it again after the lease (a duplicate DLQ record at worst); the other order could
 * leave a DEAD row with no DLQ record. */
static int route_dead(struct taskexec__run *r, int st, const char *error,
                      enum taskexec_outcome *ret_outcome)
{
    int rc = taskexec__publish_dlq(r, error);
    if (rc < 0) {
        return rc;
    }
    struct taskexec_finish fin = {.status = TASK_DEAD, .outcome = attempt_of(st), .error = error};
    bool stale = false;
    rc = finish(r, &fin, false, &stale);
    if (rc < 0) {
        return rc;
    }
    log_warn("task dead-lettered", LOG_S("task_id", r->id_text),
             LOG_S("traceparent", r->traceparent), LOG_S("type", r->task.type),
             LOG_I("attempts", r->task.attempts), LOG_S("error", error), LOG_B("stale", stale));
    *ret_outcome = TASKEXEC_DEAD;
    return TASKEXEC_OK;
}

/* RETRYING: the row first (so the retry record never races ahead of it), then the
 * retry record; a crash in between leaves a RETRYING row whose original message is
 * redelivered and claimed again. */
static int route_retry(struct taskexec__run *r, int st, const char *error,
                       enum taskexec_outcome *ret_outcome)
{
    int64_t delay_ms = backoff_full_jitter_ms(&r->te->backoff, r->task.attempts, backoff_random());
    int64_t not_before_ms = taskexec__unix_ms() + delay_ms;
    struct taskexec_finish fin = {
        .status = TASK_RETRYING,
        .outcome = attempt_of(st),
        .error = error,
        .run_at = model_now_us() + delay_ms * 1000,
    };
    bool stale = false;
    int rc = finish(r, &fin, false, &stale);
    if (rc < 0) {
        return rc;
    }
    if (stale) {
        *ret_outcome = TASKEXEC_SKIPPED;
        return TASKEXEC_OK;
    }
    rc = taskexec__publish_retry(r, not_before_ms, error);
    if (rc < 0) {
        return rc;
    }
    metrics_worker_add(r->te->metrics, METRICS_TASK_RETRIES, 1);
    log_info("task will retry", LOG_S("task_id", r->id_text), LOG_S("traceparent", r->traceparent),
             LOG_S("type", r->task.type), LOG_I("attempt", r->task.attempts),
             LOG_I("max_attempts", r->task.max_attempts), LOG_I("delay_ms", delay_ms),
             LOG_S("error", error));
    *ret_outcome = TASKEXEC_RETRIED;
    return TASKEXEC_OK;
}

static int route_success(struct taskexec__run *r, const char *result,
                         enum taskexec_outcome *ret_outcome)
{
    struct taskexec_finish fin = {
        .status = TASK_SUCCEEDED, .outcome = TASKEXEC_ATTEMPT_SUCCEEDED, .result = result};
    bool stale = false;
    int rc = finish(r, &fin, false, &stale);
    if (rc < 0) {
        return rc;
    }
    log_info("task succeeded", LOG_S("task_id", r->id_text), LOG_S("traceparent", r->traceparent),
             LOG_S("type", r->task.type), LOG_I("attempt", r->task.attempts),
             LOG_B("stale", stale));
    *ret_outcome = stale ? TASKEXEC_SKIPPED : TASKEXEC_SUCCEEDED;
    return TASKEXEC_OK;
}

/* Runs the claimed task and routes its outcome. */
static int execute(struct taskexec__run *r, enum taskexec_outcome *ret_outcome)
{
    struct handler_out out = {NULL, NULL};
    int st = run_handler(r, &out);
    int rc;
    if (r->superseded) {
        *ret_outcome = TASKEXEC_SKIPPED;
        rc = TASKEXEC_OK;
    } else if (st == HANDLER_OK) {
        rc = route_success(r, out.result, ret_outcome);
    } else if (canceled(r)) {
        rc = hand_back(r);
    } else {
        char error[ERROR_MAX + 1];
        snprintf(error, sizeof error, "%s",
                 out.error != NULL       ? out.error
                 : st == HANDLER_TIMEOUT ? "timed out"
                                         : "handler failed");
        if (st != HANDLER_PERMANENT && r->task.attempts < r->task.max_attempts) {
            rc = route_retry(r, st, error, ret_outcome);
        } else {
            rc = route_dead(r, st, error, ret_outcome);
        }
    }
    free(out.result);
    free(out.error);
    return rc;
}

/* The claim found nothing for us to run. */
static int not_claimed(struct taskexec__run *r, enum taskexec_claim c,
                       enum taskexec_outcome *ret_outcome)
{
    if (c == TASKEXEC_CLAIM_LEASED) {
        /* RUNNING under a live lease: its owner may be dead, so look again once the
         * lease can have run out instead of dropping the message */
        int rc = taskexec__publish_retry(r, taskexec__unix_ms() + r->te->lease_ms, NULL);
        if (rc < 0) {
            return rc;
        }
        log_info("task leased by another worker; deferred until the lease ends",
                 LOG_S("task_id", r->id_text), LOG_S("traceparent", r->traceparent),
                 LOG_I("defer_ms", r->te->lease_ms));
        *ret_outcome = TASKEXEC_DEFERRED;
        return TASKEXEC_OK;
    }
    log_info(c == TASKEXEC_CLAIM_DONE ? "task skipped: already finished or canceled"
                                      : "task skipped: no such task",
             LOG_S("task_id", r->id_text), LOG_S("traceparent", r->traceparent));
    *ret_outcome = TASKEXEC_SKIPPED;
    return TASKEXEC_OK;
}

/* run_at in the future: back to the retry topic, due at run_at or after one hop,
 * without a claim (no attempt used).  Returns 1 when scheduled, 0 when the task is
 * due now, or a negative error. */
static int schedule(struct taskexec__run *r, enum taskexec_outcome *ret_outcome)
{
    if (r->run_at_us <= 0) {
        return 0;
    }
    int64_t run_at_ms = (r->run_at_us + 999) / 1000; /* never start before run_at */
    int64_t now_ms = taskexec__unix_ms();
    int64_t delayed_to = 0;
    if (run_at_ms <= now_ms || (taskexec__header_ms(r->msg, TASKEXEC_H_NOT_BEFORE, &delayed_to) &&
                                delayed_to >= run_at_ms)) {
        return 0; /* due, by our clock or by the clock of the worker that delayed it */
    }
    int64_t hop_end = now_ms + r->te->max_delay_ms;
    int64_t not_before = run_at_ms < hop_end ? run_at_ms : hop_end;
    int rc = taskexec__publish_retry(r, not_before, NULL);
    if (rc < 0) {
        return rc;
    }
    log_info("task scheduled: waiting for its run_at", LOG_S("task_id", r->id_text),
             LOG_S("traceparent", r->traceparent), LOG_I("run_at_ms", run_at_ms),
             LOG_I("not_before_ms", not_before));
    *ret_outcome = TASKEXEC_SCHEDULED;
    return 1;
}

static int malformed(struct taskexec__run *r, const char *why, enum taskexec_outcome *ret_outcome)
{
    log_error("message is not a task: dead-lettered as is", LOG_S("traceparent", r->traceparent),
              LOG_S("topic", r->msg->topic), LOG_I("partition", r->msg->partition),
              LOG_I("offset", r->msg->offset), LOG_S("error", why));
    int rc = taskexec__publish_dlq(r, why);
    if (rc < 0) {
        return rc;
    }
    *ret_outcome = TASKEXEC_MALFORMED;
    return TASKEXEC_OK;
}

/* One run in tasks_processed_total and task_duration_seconds (see taskexec.h). */
static void count(const struct taskexec__run *r, int rc, enum taskexec_outcome outcome)
{
    if (r->te->metrics == NULL) {
        return;
    }
    const char *type = r->claimed ? r->task.type : r->msg_type;
    if (type[0] == '\0' || !handler_lookup(r->te->reg, type, NULL, NULL)) {
        type = "other"; /* types are client input: only registered ones are labels */
    }
    const char *name = rc == TASKEXEC_OK          ? taskexec_outcome_name(outcome)
                       : rc == TASKEXEC_EHANDBACK ? "handed_back"
                                                  : "error";
    metrics_task_processed(r->te->metrics, type, name, r->handler_s);
}

int taskexec_run(struct taskexec *te, const struct taskexec_msg *msg, atomic_bool *cancel,
                 enum taskexec_outcome *ret_outcome)
{
    if (te == NULL || msg == NULL || ret_outcome == NULL) {
        return TASKEXEC_EINVAL;
    }
    struct taskexec__run r = {.te = te, .msg = msg, .cancel = cancel, .handler_s = -1};
    trace_from_headers(&r);
    enum taskexec_outcome outcome = TASKEXEC_SKIPPED;
    char why[128];
    int rc = parse_message(&r, why, sizeof why);
    if (rc == TASKEXEC_EINVAL) {
        rc = malformed(&r, why, &outcome);
        goto out;
    }
    if (rc < 0) {
        goto out;
    }
    rc = schedule(&r, &outcome);
    if (rc != 0) {
        rc = rc > 0 ? TASKEXEC_OK : rc;
        goto out;
    }
    enum taskexec_claim c = TASKEXEC_CLAIM_NOT_FOUND;
    rc = claim(&r, &c);
    if (rc < 0) {
        goto out;
    }
    rc = r.claimed ? execute(&r, &outcome) : not_claimed(&r, c, &outcome);
out:
    count(&r, rc, outcome);
    if (r.claimed) {
        model_task_release(&r.task);
    }
    if (rc == TASKEXEC_OK) {
        *ret_outcome = outcome;
    } else {
        log_warn("message not finished; it will be delivered again", LOG_S("task_id", r.id_text),
                 LOG_S("traceparent", r.traceparent), LOG_S("error", taskexec_strerror(rc)));
    }
    return rc;
}
