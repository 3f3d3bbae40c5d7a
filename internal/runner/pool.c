/* The pool: threads, the bounded work queue and the list of finished jobs. */
#include "runner/runner_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

static void run_job(struct runner *r, struct runner__job *job)
{
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
    job->rc = taskexec_run(r->te, &tm, &job->cancel, &outcome);
}

static void *pool_thread(void *arg)
{
    struct runner__worker *w = arg;
    struct runner *r = w->r;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->quit && r->q_head == NULL) {
            pthread_cond_wait(&r->work_cv, &r->mu);
        }
        if (r->q_head == NULL) {
            break;
        }
        struct runner__job *job = r->q_head;
        r->q_head = job->next;
        if (r->q_head == NULL) {
            r->q_tail = NULL;
        }
        r->q_len--;
        w->current = job;
        pthread_mutex_unlock(&r->mu);

        run_job(r, job);

        pthread_mutex_lock(&r->mu);
        w->current = NULL;
        job->next = r->done;
        r->done = job;
        pthread_cond_signal(&r->done_cv);
    }
    r->live--;
    pthread_cond_broadcast(&r->done_cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

int runner__pool_start(struct runner *r)
{
    r->workers = calloc((size_t)r->concurrency, sizeof *r->workers);
    if (r->workers == NULL) {
        return RUNNER_ENOMEM;
    }
    for (int i = 0; i < r->concurrency; i++) {
        r->workers[i].r = r;
        pthread_mutex_lock(&r->mu);
        r->live++;
        pthread_mutex_unlock(&r->mu);
        int err = pthread_create(&r->workers[i].tid, NULL, pool_thread, &r->workers[i]);
        if (err != 0) {
            pthread_mutex_lock(&r->mu);
            r->live--;
            pthread_mutex_unlock(&r->mu);
            log_error("pool thread not started", LOG_S("error", strerror(err)));
            return RUNNER_ETHREAD;
        }
        r->n_started++;
    }
    return RUNNER_OK;
}

static struct timespec deadline_in(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

bool runner__pool_stop(struct runner *r, int wait_ms)
{
    struct timespec until = deadline_in(wait_ms);
    pthread_mutex_lock(&r->mu);
    r->quit = true;
    pthread_cond_broadcast(&r->work_cv);
    int err = 0;
    while (r->live > 0 && err != ETIMEDOUT) {
        err = pthread_cond_timedwait(&r->done_cv, &r->mu, &until);
    }
    bool all = r->live == 0;
    pthread_mutex_unlock(&r->mu);
    if (!all) {
        log_error("pool threads did not stop in time; leaving them", LOG_I("wait_ms", wait_ms));
        return false;
    }
    for (int i = 0; i < r->n_started; i++) {
        pthread_join(r->workers[i].tid, NULL);
    }
    r->n_started = 0;
    return true;
}

void runner__pool_push(struct runner *r, struct runner__job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->q_tail != NULL) {
        r->q_tail->next = job;
    } else {
        r->q_head = job;
    }
    r->q_tail = job;
    r->q_len++;
    pthread_cond_signal(&r->work_cv);
    pthread_mutex_unlock(&r->mu);
}

size_t runner__pool_queued(struct runner *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->q_len;
    pthread_mutex_unlock(&r->mu);
    return n;
}

size_t runner__pool_running(struct runner *r, bool (*match)(void *, const struct runner__job *),
                            void *arg)
{
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n_started; i++) {
        const struct runner__job *j = r->workers[i].current;
        n += j != NULL && (match == NULL || match(arg, j));
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

struct runner__job *runner__pool_take_done(struct runner *r)
{
    pthread_mutex_lock(&r->mu);
    struct runner__job *list = r->done;
    r->done = NULL;
    pthread_mutex_unlock(&r->mu);
    return list;
}

void runner__pool_wait_done(struct runner *r, int ms)
{
    struct timespec until = deadline_in(ms);
    pthread_mutex_lock(&r->mu);
    if (r->done == NULL) {
        (void)pthread_cond_timedwait(&r->done_cv, &r->mu, &until);
    }
    pthread_mutex_unlock(&r->mu);
}

struct runner__job *runner__pool_remove_queued(struct runner *r,
                                               bool (*drop)(void *, const struct runner__job *),
                                               void *arg)
{
    struct runner__job *out = NULL;
    pthread_mutex_lock(&r->mu);
    struct runner__job **pp = &r->q_head;
    r->q_tail = NULL;
    while (*pp != NULL) {
        struct runner__job *j = *pp;
        if (drop(arg, j)) {
            *pp = j->next;
            j->next = out;
            out = j;
            r->q_len--;
        } else {
            r->q_tail = j;
            pp = &j->next;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return out;
}

void runner__pool_cancel(struct runner *r, bool (*match)(void *, const struct runner__job *),
                         void *arg)
{
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->n_started; i++) {
        struct runner__job *j = r->workers[i].current;
        if (j != NULL && (match == NULL || match(arg, j))) {
            atomic_store(&j->cancel, true);
        }
    }
    pthread_mutex_unlock(&r->mu);
}
