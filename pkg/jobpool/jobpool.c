/* jobpool — threads, a FIFO of jobs, the finished ones handed back. */
#include "jobpool/jobpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct slot {
    struct jobpool *p;
    pthread_t tid;
    struct jobpool_job *current; /* guarded by p->mu */
};

struct jobpool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a job queued, or quit */
    pthread_cond_t done_cv; /* a job finished, or a thread left */
    pthread_cond_t low_cv;  /* the queue went down to low_mark, or a thread left */
    size_t low_mark;        /* valid while low_waiters > 0 */
    int low_waiters;
    struct jobpool_job *head, *tail;
    size_t len;
    struct jobpool_job *done; /* a stack */
    bool quit;
    int live; /* threads running */
    struct slot *slots;
    int n_started;
    jobpool_fn fn;
    void *ctx;
};

static void *run(void *arg)
{
    struct slot *s = arg;
    struct jobpool *p = s->p;
    (void)pthread_setname_np(pthread_self(), "jobpool"); /* top, perf: per-thread figures */
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->head == NULL) {
            pthread_cond_wait(&p->work_cv, &p->mu);
        }
        struct jobpool_job *job = p->head;
        if (job == NULL) {
            break;
        }
        p->head = job->next;
        if (p->head == NULL) {
            p->tail = NULL;
        }
        p->len--;
        if (p->low_waiters > 0 && p->len <= p->low_mark) {
            pthread_cond_broadcast(&p->low_cv);
        }
        s->current = job;
        pthread_mutex_unlock(&p->mu);

        p->fn(p->ctx, job);

        pthread_mutex_lock(&p->mu);
        s->current = NULL;
        job->next = p->done;
        p->done = job;
        pthread_cond_signal(&p->done_cv);
    }
    p->live--;
    pthread_cond_broadcast(&p->done_cv);
    pthread_cond_broadcast(&p->low_cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
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

/* Condition variables on CLOCK_MONOTONIC, so waits ignore wall-clock jumps. */
static int init_sync(struct jobpool *p)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        return -1;
    }
    int rc = -1;
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_mutex_init(&p->mu, NULL) != 0) {
        goto out_attr;
    }
    if (pthread_cond_init(&p->work_cv, &ca) != 0) {
        goto out_mu;
    }
    if (pthread_cond_init(&p->done_cv, &ca) != 0) {
        goto out_work;
    }
    if (pthread_cond_init(&p->low_cv, &ca) != 0) {
        goto out_done;
    }
    pthread_condattr_destroy(&ca);
    return 0;

out_done:
    pthread_cond_destroy(&p->done_cv);
out_work:
    pthread_cond_destroy(&p->work_cv);
out_mu:
    pthread_mutex_destroy(&p->mu);
out_attr:
    pthread_condattr_destroy(&ca);
    return rc;
}

int jobpool_new(int threads, jobpool_fn fn, void *ctx, struct jobpool **ret_p)
{
    if (threads < 1 || fn == NULL || ret_p == NULL) {
        return -1;
    }
    struct jobpool *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return -1;
    }
    p->slots = calloc((size_t)threads, sizeof *p->slots);
    if (p->slots == NULL || init_sync(p) < 0) {
        free(p->slots);
        free(p);
        return -1;
    }
    p->fn = fn;
    p->ctx = ctx;
    for (int i = 0; i < threads; i++) {
        p->slots[i].p = p;
        pthread_mutex_lock(&p->mu);
        p->live++;
        pthread_mutex_unlock(&p->mu);
        if (pthread_create(&p->slots[i].tid, NULL, run, &p->slots[i]) != 0) {
            pthread_mutex_lock(&p->mu);
            p->live--;
            pthread_mutex_unlock(&p->mu);
            if (jobpool_stop(p, 5000)) { /* idle threads leave at once */
                jobpool_free(p);
            }
            return -1;
        }
        p->n_started++;
    }
    *ret_p = p;
    return 0;
}

bool jobpool_stop(struct jobpool *p, int wait_ms)
{
    struct timespec until = deadline_in(wait_ms);
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->work_cv);
    int err = 0;
    while (p->live > 0 && err != ETIMEDOUT) {
        err = pthread_cond_timedwait(&p->done_cv, &p->mu, &until);
    }
    bool all = p->live == 0;
    pthread_mutex_unlock(&p->mu);
    if (!all) {
        return false;
    }
    for (int i = 0; i < p->n_started; i++) {
        pthread_join(p->slots[i].tid, NULL);
    }
    p->n_started = 0;
    return true;
}

void jobpool_free(struct jobpool *p)
{
    if (p == NULL) {
        return;
    }
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->low_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->slots);
    free(p);
}

void jobpool_push(struct jobpool *p, struct jobpool_job *job)
{
    job->next = NULL;
    atomic_store(&job->cancel, false);
    pthread_mutex_lock(&p->mu);
    if (p->tail != NULL) {
        p->tail->next = job;
    } else {
        p->head = job;
    }
    p->tail = job;
    p->len++;
    pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
}

size_t jobpool_queued(struct jobpool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->len;
    pthread_mutex_unlock(&p->mu);
    return n;
}

size_t jobpool_running(struct jobpool *p, jobpool_match match, void *arg)
{
    size_t n = 0;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n_started; i++) {
        const struct jobpool_job *j = p->slots[i].current;
        n += j != NULL && (match == NULL || match(arg, j));
    }
    pthread_mutex_unlock(&p->mu);
    return n;
}

struct jobpool_job *jobpool_take_done(struct jobpool *p)
{
    pthread_mutex_lock(&p->mu);
    struct jobpool_job *list = p->done;
    p->done = NULL;
    pthread_mutex_unlock(&p->mu);
    return list;
}

void jobpool_wait_done(struct jobpool *p, int ms)
{
    struct timespec until = deadline_in(ms);
    pthread_mutex_lock(&p->mu);
    if (p->done == NULL) {
        (void)pthread_cond_timedwait(&p->done_cv, &p->mu, &until);
    }
    pthread_mutex_unlock(&p->mu);
}

size_t jobpool_wait_queued(struct jobpool *p, size_t low, int ms)
{
    struct timespec until = deadline_in(ms);
    pthread_mutex_lock(&p->mu);
    int err = 0;
    while (p->len > low && p->live > 0 && err != ETIMEDOUT) {
        /* one mark at a time: the lowest asked for wakes every waiter */
        if (p->low_waiters == 0 || low < p->low_mark) {
            p->low_mark = low;
        }
        p->low_waiters++;
        err = pthread_cond_timedwait(&p->low_cv, &p->mu, &until);
        p->low_waiters--;
    }
    size_t n = p->len;
    pthread_mutex_unlock(&p->mu);
    return n;
}

struct jobpool_job *jobpool_remove_queued(struct jobpool *p, jobpool_match match, void *arg)
{
    struct jobpool_job *out = NULL;
    pthread_mutex_lock(&p->mu);
    struct jobpool_job **pp = &p->head;
    p->tail = NULL;
    while (*pp != NULL) {
        struct jobpool_job *j = *pp;
        if (match == NULL || match(arg, j)) {
            *pp = j->next;
            j->next = out;
            out = j;
            p->len--;
        } else {
            p->tail = j;
            pp = &j->next;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return out;
}

void jobpool_cancel(struct jobpool *p, jobpool_match match, void *arg)
{
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n_started; i++) {
        struct jobpool_job *j = p->slots[i].current;
        if (j != NULL && (match == NULL || match(arg, j))) {
            atomic_store(&j->cancel, true);
        }
    }
    pthread_mutex_unlock(&p->mu);
}
