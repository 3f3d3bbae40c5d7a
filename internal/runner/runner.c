/* The worker loop: poll, dispatch, reap, reconcile; the rebalance hooks; the drain. */
#include "runner/runner_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "log/log.h"

#define POLL_MS        50   /* longest poll: bounds reaction to stop and completions */
#define POLL_PAUSED_MS 5    /* while paused for backpressure: resume promptly */
#define POLL_GAP_MS    1000 /* queue full: poll at least this often (then pause first) */
#define WAIT_SLICE_MS  10   /* drain and revoke waits look around this often */
#define CANCEL_WAIT_MS 5000 /* after grace: time for canceled handlers to hand back */
#define THREAD_STOP_MS 2000
#define NUM_BUF        24

const char *runner_strerror(int err)
{
    switch (err) {
    case RUNNER_OK:
        return "ok";
    case RUNNER_EINVAL:
        return "invalid configuration";
    case RUNNER_ENOMEM:
        return "out of memory";
    case RUNNER_EQUEUE:
        return "kafka consumer could not be created";
    case RUNNER_ETHREAD:
        return "pool thread could not be started";
    default:
        return "unknown error";
    }
}

static char *dup_opt(const char *s, bool *oom)
{
    if (s == NULL || s[0] == '\0') {
        return NULL;
    }
    char *c = strdup(s);
    if (c == NULL) {
        *oom = true;
    }
    return c;
}

static void free_strings(struct runner *r)
{
    free(r->brokers);
    free(r->group);
    free(r->client_id);
    free(r->tasks_topic);
    free(r->retry_topic);
}

static double gauge_queued(void *ctx)
{
    return (double)runner__pool_queued(ctx);
}

static double gauge_busy(void *ctx)
{
    return (double)runner__pool_running(ctx, NULL, NULL);
}

static struct runner__job *job_of(struct runner_held *h)
{
    return (struct runner__job *)(void *)((char *)h - offsetof(struct runner__job, held));
}

/* The partition table lets go of a held job that is not done: it is delivered again. */
static void drop_job(void *arg, struct runner_held *h)
{
    runner__job_free(arg, job_of(h));
}

int runner_new(const struct runner_config *cfg, struct taskexec *te, struct runner **ret_r)
{
    if (cfg == NULL || te == NULL || cfg->brokers == NULL || cfg->group == NULL ||
        cfg->tasks_topic == NULL || cfg->concurrency < 1 || cfg->queue_size < 1) {
        return RUNNER_EINVAL;
    }
    struct runner *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return RUNNER_ENOMEM;
    }
    bool oom = false;
    r->brokers = dup_opt(cfg->brokers, &oom);
    r->group = dup_opt(cfg->group, &oom);
    r->client_id = dup_opt(cfg->client_id, &oom);
    r->tasks_topic = dup_opt(cfg->tasks_topic, &oom);
    r->retry_topic = dup_opt(cfg->retry_topic, &oom);
    if (oom || runner_parts_new(&r->parts) < 0) {
        free_strings(r);
        free(r);
        return RUNNER_ENOMEM;
    }
    r->concurrency = cfg->concurrency;
    r->queue_size = cfg->queue_size;
    r->grace_ms = cfg->grace_ms > 0 ? cfg->grace_ms : 0;
    r->revoke_wait_ms = cfg->revoke_wait_ms > 0 ? cfg->revoke_wait_ms : 0;
    r->max_poll_interval_ms = cfg->max_poll_interval_ms;
    r->session_timeout_ms = cfg->session_timeout_ms;
    r->te = te;
    r->metrics = cfg->metrics;
    metrics_gauge_bind(r->metrics, METRICS_POOL_QUEUE_DEPTH, gauge_queued, r);
    metrics_gauge_bind(r->metrics, METRICS_POOL_BUSY, gauge_busy, r);
    *ret_r = r;
    return RUNNER_OK;
}

void runner_free(struct runner *r)
{
    if (r == NULL) {
        return;
    }
    metrics_gauge_bind(r->metrics, METRICS_POOL_QUEUE_DEPTH, NULL, NULL);
    metrics_gauge_bind(r->metrics, METRICS_POOL_BUSY, NULL, NULL);
    if (r->leaked) {
        /* leaked: pool threads still run a handler and may touch r; exit reclaims it */
        return;
    }
    runner_parts_free(r->parts, drop_job, r);
    jobpool_free(r->pool);
    free_strings(r);
    free(r);
}

bool runner_leaked(const struct runner *r)
{
    return r != NULL && r->leaked;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the partition table's side of the loop -------------------------------- */

static int apply_pause(void *arg, bool pause, const struct queue_partition *v, size_t n)
{
    struct runner *r = arg;
    int rc = pause ? queue_consumer_pause(r->qc, v, n) : queue_consumer_resume(r->qc, v, n);
    return rc == QUEUE_OK ? 0 : -1;
}

/* Pauses or resumes partitions so that each is paused iff backpressure, the drain
 * or its held records ask for it. */
static void reconcile(struct runner *r)
{
    runner_parts_reconcile(r->parts, r->bp_paused || r->draining, apply_pause, r);
}

static void store_offset(void *arg, const char *topic, int32_t partition, int64_t next)
{
    struct runner *r = arg;
    if (queue_consumer_store(r->qc, topic, partition, next) == QUEUE_ESTATE) {
        log_debug("offset not stored: partition no longer assigned", LOG_S("topic", topic),
                  LOG_I("partition", partition));
    }
}

/* Marks finished jobs done in their partition and stores moved watermarks (per
 * burst: every job finished since the last reap). */
static void reap(struct runner *r)
{
    struct runner__job *list = runner__pool_take_done(r);
    while (list != NULL) {
        struct runner__job *j = list;
        list = j->next;
        /* a job that is not done keeps the watermark below it until redelivery */
        if (j->rc == 0) {
            runner_parts_done(r->parts, j->msg->topic, j->msg->partition, j->gen, j->msg->offset);
        }
        runner__job_free(r, j);
    }
    if (!r->fatal) {
        runner_parts_moved(r->parts, store_offset, r);
    }
}

/* Queues held records that are due; returns the ms until the next one is due (-1:
 * none held). */
static int64_t release_due(struct runner *r)
{
    int64_t next = -1;
    struct runner_held *h = runner_parts_take_due(r->parts, unix_ms(), &next);
    while (h != NULL) {
        struct runner_held *n = h->next;
        runner__pool_push(r, job_of(h));
        h = n;
    }
    return next;
}

/* --- rebalance -------------------------------------------------------------- */

struct part_set {
    const struct queue_partition *parts;
    size_t n;
};

static bool in_set(void *arg, const struct runner__job *j)
{
    const struct part_set *set = arg;
    if (set == NULL) {
        return true;
    }
    for (size_t i = 0; i < set->n; i++) {
        if (set->parts[i].partition == j->msg->partition &&
            strcmp(set->parts[i].topic, j->msg->topic) == 0) {
            return true;
        }
    }
    return false;
}

/* Drops queued jobs of the set (all when set is NULL): they are not done, so their
 * offsets are never stored and the messages are delivered again. */
static void drop_queued(struct runner *r, struct part_set *set)
{
    struct runner__job *list = runner__pool_remove_queued(r, in_set, set);
    while (list != NULL) {
        struct runner__job *j = list;
        list = j->next;
        runner__job_free(r, j);
    }
}

/* Reaps finished jobs until no job of set (NULL: any) runs, or ms passed.  When
 * poll is true the consumer is polled meanwhile (never from inside a rebalance
 * callback); a message arriving then is dropped untracked: every partition is
 * paused, so nothing after it is ever tracked either. */
static void wait_running(struct runner *r, struct part_set *set, int ms, bool poll)
{
    int64_t until = mono_ms() + ms;
    for (;;) {
        reap(r);
        if (runner__pool_running(r, in_set, set) == 0 || mono_ms() >= until) {
            break;
        }
        if (poll) {
            struct queue_message *m = NULL;
            if (queue_consumer_poll(r->qc, WAIT_SLICE_MS, &m) == QUEUE_OK && m != NULL) {
                queue_message_free(m);
            }
        } else {
            runner__pool_wait_done(r, WAIT_SLICE_MS);
        }
    }
    reap(r);
}

static void on_assign(void *opaque, const struct queue_partition *parts, size_t n)
{
    struct runner *r = opaque;
    for (size_t i = 0; i < n; i++) {
        if (runner_parts_add(r->parts, parts[i].topic, parts[i].partition, drop_job, r) < 0) {
            log_error("partition not tracked: out of memory", LOG_S("topic", parts[i].topic),
                      LOG_I("partition", parts[i].partition));
            r->fatal = true;
        }
    }
}

static void on_revoke(void *opaque, const struct queue_partition *parts, size_t n)
{
    struct runner *r = opaque;
    struct part_set set = {parts, n};
    drop_queued(r, &set);
    for (size_t i = 0; i < n; i++) {
        runner_parts_drop_held(r->parts, parts[i].topic, parts[i].partition, drop_job, r);
    }
    wait_running(r, &set, r->draining ? 0 : r->revoke_wait_ms, false);
    size_t left = runner__pool_running(r, in_set, &set);
    if (left > 0) {
        log_warn("revoked partitions still have work in flight; it will be redelivered",
                 LOG_I("in_flight", left));
    }
    for (size_t i = 0; i < n; i++) {
        runner_parts_remove(r->parts, parts[i].topic, parts[i].partition, drop_job, r);
    }
}

static const struct queue_rebalance_ops rebalance_ops = {
    .on_assign = on_assign,
    .on_revoke = on_revoke,
};

/* --- dispatch --------------------------------------------------------------- */

/* x-not-before of a retry record (unix ms), or 0. */
static int64_t not_before_ms(const struct queue_message *m)
{
    const void *v = NULL;
    size_t len = 0;
    char buf[NUM_BUF];
    if (!queue_message_header(m, TASKEXEC_H_NOT_BEFORE, &v, &len) || len == 0 ||
        len >= sizeof buf) {
        return 0;
    }
    memcpy(buf, v, len);
    buf[len] = '\0';
    char *end = NULL;
    errno = 0;
    long long ms = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0' || ms < 0) {
        return 0;
    }
    return ms;
}

static void accept_message(struct runner *r, struct queue_message *m)
{
    if (r->draining) {
        queue_message_free(m);
        return;
    }
    uint64_t gen = 0;
    int rc = runner_parts_track(r->parts, m->topic, m->partition, m->offset, &gen);
    if (rc == RUNNER_PARTS_UNKNOWN) {
        queue_message_free(m);
        return;
    }
    if (rc == RUNNER_PARTS_DUP) {
        log_debug("duplicate delivery dropped", LOG_S("topic", m->topic),
                  LOG_I("partition", m->partition), LOG_I("offset", m->offset));
        queue_message_free(m);
        return;
    }
    struct runner__job *job = rc == RUNNER_PARTS_OK ? calloc(1, sizeof *job) : NULL;
    if (job == NULL) {
        /* tracked (or not) but never done: no offset past it is stored any more */
        log_error("out of memory: message dropped, stopping", LOG_S("topic", m->topic),
                  LOG_I("partition", m->partition), LOG_I("offset", m->offset));
        r->fatal = true;
        queue_message_free(m);
        return;
    }
    job->msg = m;
    job->gen = gen;
    atomic_init(&job->pj.cancel, false);
    r->outstanding++;
    if (r->retry_topic != NULL && strcmp(m->topic, r->retry_topic) == 0) {
        job->held.not_before_ms = not_before_ms(m);
        if (job->held.not_before_ms > unix_ms() &&
            runner_parts_hold(r->parts, m->topic, m->partition, &job->held) == RUNNER_PARTS_OK) {
            return;
        }
    }
    runner__pool_push(r, job);
}

/* --- run -------------------------------------------------------------------- */

static void drain(struct runner *r)
{
    r->draining = true;
    log_info("draining", LOG_I("queued", runner__pool_queued(r)),
             LOG_I("running", runner__pool_running(r, NULL, NULL)), LOG_I("grace_ms", r->grace_ms));
    reconcile(r); /* stop fetching */
    drop_queued(r, NULL);
    runner_parts_drop_held(r->parts, NULL, 0, drop_job, r);
    wait_running(r, NULL, r->grace_ms, true);
    if (runner__pool_running(r, NULL, NULL) > 0) {
        log_warn("grace period over: canceling in-flight tasks",
                 LOG_I("running", runner__pool_running(r, NULL, NULL)));
        runner__pool_cancel(r, NULL, NULL);
        wait_running(r, NULL, CANCEL_WAIT_MS, true);
    }
    if (!r->fatal) {
        (void)queue_consumer_commit(r->qc);
    }
    queue_consumer_free(r->qc); /* the revoke hook stores again; final commit */
    r->qc = NULL;
    if (!runner__pool_stop(r, THREAD_STOP_MS)) {
        r->leaked = true;
    }
    struct runner__job *list = runner__pool_take_done(r);
    while (list != NULL) {
        struct runner__job *j = list;
        list = j->next;
        runner__job_free(r, j);
    }
    log_info("drained", LOG_I("outstanding", r->outstanding));
}

static int start(struct runner *r)
{
    const char *topics[2] = {r->tasks_topic, r->retry_topic};
    struct queue_consumer_config ccfg = {
        .brokers = r->brokers,
        .group = r->group,
        .client_id = r->client_id,
        .topics = topics,
        .n_topics = r->retry_topic != NULL ? 2 : 1,
        .max_poll_interval_ms = r->max_poll_interval_ms,
        .session_timeout_ms = r->session_timeout_ms,
    };
    int rc = runner__pool_start(r);
    if (rc < 0) {
        goto out_pool;
    }
    if (queue_consumer_new(&ccfg, &rebalance_ops, r, &r->qc) < 0) {
        rc = RUNNER_EQUEUE;
        goto out_pool;
    }
    return RUNNER_OK;

out_pool:
    (void)runner__pool_stop(r, THREAD_STOP_MS);
    return rc;
}

/* Backpressure.  A full queue first just stops the polling (the consumer's prefetch
 * is bounded by librdkafka): fast handlers drain it within milliseconds, and pausing
 * would throw the prefetched messages away and cost a fetch round trip on resume.
 * Only if the queue stays full for POLL_GAP_MS are the partitions paused, so poll
 * can be called again (rebalances, max.poll.interval.ms) without taking more
 * messages; they resume once the queue is down to half.  Returns true when the
 * loop should wait instead of polling. */
static bool backpressure(struct runner *r, int64_t last_poll)
{
    size_t queued = runner__pool_queued(r);
    if (r->bp_paused && queued <= (size_t)r->queue_size / 2) {
        r->bp_paused = false;
        log_debug("queue drained: resuming partitions", LOG_I("queued", queued));
    }
    if (queued < (size_t)r->queue_size || r->bp_paused) {
        return false;
    }
    if (mono_ms() - last_poll < POLL_GAP_MS) {
        /* refill in bursts: one wake-up per queue_size / 2 tasks, not one per task
         * (the finished ones are reaped, and their offsets stored, per burst) */
        (void)runner__pool_wait_queued(r, (size_t)r->queue_size / 2, WAIT_SLICE_MS);
        return true;
    }
    r->bp_paused = true;
    log_debug("queue full: pausing partitions", LOG_I("queued", queued));
    return false;
}

int runner_run(struct runner *r, const volatile sig_atomic_t *stop)
{
    int rc = start(r);
    if (rc < 0) {
        return rc;
    }
    log_info("worker running", LOG_S("topic", r->tasks_topic), LOG_S("retry_topic", r->retry_topic),
             LOG_I("concurrency", r->concurrency), LOG_I("queue_size", r->queue_size));
    int64_t last_poll = mono_ms();
    while (!*stop && !r->fatal) {
        reap(r);
        if (backpressure(r, last_poll)) {
            continue;
        }
        reconcile(r);
        int64_t due = release_due(r);
        int timeout = r->bp_paused ? POLL_PAUSED_MS : POLL_MS;
        if (due >= 0 && due < timeout) {
            timeout = (int)due;
        }
        struct queue_message *m = NULL;
        int prc = queue_consumer_poll(r->qc, timeout, &m);
        last_poll = mono_ms();
        if (prc == QUEUE_ENOMEM) {
            log_error("out of memory in poll: a message was lost track of, stopping", LOG_NONE);
            r->fatal = true;
        } else if (prc == QUEUE_OK && m != NULL) {
            accept_message(r, m);
        }
    }
    drain(r);
    return r->fatal ? RUNNER_ENOMEM : RUNNER_OK;
}
