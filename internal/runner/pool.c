/* The pool: the runner's jobs on pkg/jobpool; each runs taskexec_run. */
#include "runner/runner_int.h"

#include <stdlib.h>
#include <string.h>
#include "log/log.h"

#define MAX_HEADERS 64

void runner__job_free(struct runner *r, struct runner__job *job)
{
    if (job == NULL) {
        return;
    }
    queue_message_free(job->msg);
    free(job);
    r->outstanding--;
}

static void run_job(void *ctx, struct jobpool_job *pj)
{
    struct runner *r = ctx;
    struct runner__job *job = (struct runner__job *)pj;
    const struct queue_message *m = job->msg;
    struct queue_header qh[MAX_HEADERS];
    struct taskexec_header headers[MAX_HEADERS];
    size_t n = queue_message_headers(m, qh, MAX_HEADERS);
    if (n > MAX_HEADERS) {
        n = MAX_HEADERS;
    }
    for (size_t i = 0; i < n; i++) {
        headers[i] =
            (struct taskexec_header){.name = qh[i].name, .value = qh[i].value, .len = qh[i].len};
    }
    struct taskexec_msg tm = {
        .topic = m->topic,
        .partition = m->partition,
        .offset = m->offset,
        .key = m->key,
        .key_len = m->key_len,
        .value = m->value,
        .len = m->len,
        .headers = headers,
        .n_headers = n,
    };
    enum taskexec_outcome outcome;
    job->rc = taskexec_run(r->te, &tm, &pj->cancel, &outcome);
}

int runner__pool_start(struct runner *r)
{
    if (jobpool_new(r->concurrency, run_job, r, &r->pool) < 0) {
        log_error("pool threads not started", LOG_I("threads", r->concurrency));
        return RUNNER_ETHREAD;
    }
    return RUNNER_OK;
}

bool runner__pool_stop(struct runner *r, int wait_ms)
{
    if (r->pool == NULL) {
        return true;
    }
    if (!jobpool_stop(r->pool, wait_ms)) {
        log_error("pool threads did not stop in time; leaving them", LOG_I("wait_ms", wait_ms));
        return false;
    }
    return true;
}

void runner__pool_push(struct runner *r, struct runner__job *job)
{
    jobpool_push(r->pool, &job->pj);
}

size_t runner__pool_queued(struct runner *r)
{
    return r->pool != NULL ? jobpool_queued(r->pool) : 0;
}

/* The runner's match functions see runner__jobs. */
struct match {
    bool (*fn)(void *, const struct runner__job *);
    void *arg;
};

static bool adapt(void *arg, const struct jobpool_job *pj)
{
    const struct match *m = arg;
    return m->fn(m->arg, (const struct runner__job *)pj);
}

size_t runner__pool_running(struct runner *r, bool (*match)(void *, const struct runner__job *),
                            void *arg)
{
    struct match m = {match, arg};
    if (r->pool == NULL) {
        return 0;
    }
    return jobpool_running(r->pool, match != NULL ? adapt : NULL, &m);
}

/* A jobpool list as a list of runner__jobs through next. */
static struct runner__job *relink(struct jobpool_job *list)
{
    struct runner__job *out = NULL;
    while (list != NULL) {
        struct runner__job *j = (struct runner__job *)list;
        list = list->next;
        j->next = out;
        out = j;
    }
    return out;
}

struct runner__job *runner__pool_take_done(struct runner *r)
{
    return r->pool != NULL ? relink(jobpool_take_done(r->pool)) : NULL;
}

void runner__pool_wait_done(struct runner *r, int ms)
{
    jobpool_wait_done(r->pool, ms);
}

size_t runner__pool_wait_queued(struct runner *r, size_t low, int ms)
{
    return jobpool_wait_queued(r->pool, low, ms);
}

struct runner__job *runner__pool_remove_queued(struct runner *r,
                                               bool (*drop)(void *, const struct runner__job *),
                                               void *arg)
{
    struct match m = {drop, arg};
    return relink(jobpool_remove_queued(r->pool, adapt, &m));
}

void runner__pool_cancel(struct runner *r, bool (*match)(void *, const struct runner__job *),
                         void *arg)
{
    struct match m = {match, arg};
    jobpool_cancel(r->pool, match != NULL ? adapt : NULL, &m);
}
