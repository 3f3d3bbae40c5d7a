/* status — long-polls: calls waiting for their task to move, in a table by id, woken
 * by change events (status_changed) or by the timer at their deadline.
 *
 * A registered call is CHECKING while a look at its task is under way and WAITING in
 * between.  An event for a WAITING call starts a look; one for a CHECKING call marks
 * it dirty, and the look that ends finds the mark and looks once more, so an event
 * that lands during a look is never lost.  status_wait() itself starts with a look,
 * which closes the gap between the caller's read of the task and the registration. */
#include "status/status_int.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define TIMER_IDLE_MS 1000 /* the timer's longest sleep without a deadline to meet */

static size_t bucket_of(const struct ids_id *id)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < sizeof id->b; i++) {
        h ^= id->b[i];
        h *= 16777619u;
    }
    return h % STATUS__WAIT_BUCKETS;
}

static void link_call(struct status__waiters *w, struct status_call *c)
{
    struct status_call **head = &w->buckets[bucket_of(&c->id)];
    c->prev_ = NULL;
    c->next_ = *head;
    if (*head)
        (*head)->prev_ = c;
    *head = c;
    w->n++;
}

static void unlink_call(struct status__waiters *w, struct status_call *c)
{
    if (c->prev_)
        c->prev_->next_ = c->next_;
    else
        w->buckets[bucket_of(&c->id)] = c->next_;
    if (c->next_)
        c->next_->prev_ = c->prev_;
    c->prev_ = c->next_ = NULL;
    w->n--;
}

static bool same_version(const struct status_view *v, const struct status_version *s)
{
    return v->updated_at == s->updated_at && v->attempts == s->attempts && v->status == s->status;
}

/* One look at the call's task: the LRU now, or a lookup on the pool. */
static void look(struct status_reader *r, struct status_call *c)
{
    struct status_view v;
    int rc = status_cached(r, &c->id, &c->owner, &v);
    if (rc == STATUS_EMISS) {
        status__start(r, c);
        return;
    }
    status__checked(r, c, rc, rc == STATUS_OK ? &v : NULL);
    if (rc == STATUS_OK)
        status_view_release(&v);
}

/* Looks at each call of a list linked through wake_ (read before the look: the call
 * may be answered, and its memory reused, by it). */
static void look_all(struct status_reader *r, struct status_call *list)
{
    while (list) {
        struct status_call *next = list->wake_;
        look(r, list);
        list = next;
    }
}

void status__checked(struct status_reader *r, struct status_call *c, int rc,
                     const struct status_view *view)
{
    struct status__waiters *w = &r->waiters;
    /* a store that cannot answer is not a change: the call waits on (to its deadline) */
    bool changed = rc == STATUS_ENOTFOUND || (view && !same_version(view, &c->seen));
    bool finish, again = false;

    pthread_mutex_lock(&w->mu);
    finish = changed || w->stopping || status_now_ms() >= c->deadline_ms;
    if (finish) {
        unlink_call(w, c);
        c->state_ = STATUS__CALL_IDLE;
    } else if (c->dirty_) {
        c->dirty_ = false;
        again = true;
    } else {
        c->state_ = STATUS__CALL_WAITING;
    }
    pthread_mutex_unlock(&w->mu);
    if (finish)
        c->done(c, rc, view);
    else if (again)
        look(r, c);
}

int status_wait(struct status_reader *r, struct status_call *c)
{
    struct status__waiters *w = &r->waiters;
    c->r_ = r;
    c->waiting_ = true;
    c->dirty_ = false;
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        return STATUS_EUNAVAILABLE;
    }
    link_call(w, c);
    c->state_ = STATUS__CALL_CHECKING;
    if (c->deadline_ms < w->next_wake)
        pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    look(r, c);
    return 0;
}

void status__waiters_wake(struct status_reader *r, const struct ids_id *id)
{
    struct status__waiters *w = &r->waiters;
    struct status_call *list = NULL;
    size_t b = id ? bucket_of(id) : 0, end = id ? b + 1 : STATUS__WAIT_BUCKETS;

    pthread_mutex_lock(&w->mu);
    for (; b < end; b++) {
        for (struct status_call *c = w->buckets[b]; c; c = c->next_) {
            if (id && !ids_equal(&c->id, id))
                continue;
            if (c->state_ == STATUS__CALL_WAITING) {
                c->state_ = STATUS__CALL_CHECKING;
                c->wake_ = list;
                list = c;
            } else {
                c->dirty_ = true;
            }
        }
    }
    pthread_mutex_unlock(&w->mu);
    look_all(r, list);
}

/* Lock held: the WAITING calls due by now, marked CHECKING; sets w->next_wake. */
static struct status_call *take_due(struct status__waiters *w, int64_t now)
{
    struct status_call *due = NULL;
    int64_t next = now + TIMER_IDLE_MS;
    for (size_t b = 0; b < STATUS__WAIT_BUCKETS; b++) {
        for (struct status_call *c = w->buckets[b]; c; c = c->next_) {
            if (c->state_ != STATUS__CALL_WAITING)
                continue;
            if (c->deadline_ms <= now) {
                c->state_ = STATUS__CALL_CHECKING;
                c->wake_ = due;
                due = c;
            } else if (c->deadline_ms < next) {
                next = c->deadline_ms;
            }
        }
    }
    w->next_wake = next;
    return due;
}

static void *timer_run(void *arg)
{
    struct status_reader *r = arg;
    struct status__waiters *w = &r->waiters;

    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        struct status_call *due = take_due(w, status_now_ms());
        struct timespec until;
        if (due) {
            pthread_mutex_unlock(&w->mu);
            look_all(r, due);
            pthread_mutex_lock(&w->mu);
            continue;
        }
        until.tv_sec = (time_t)(w->next_wake / 1000);
        until.tv_nsec = (long)(w->next_wake % 1000) * 1000000L;
        pthread_cond_timedwait(&w->cv, &w->mu, &until);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int status__waiters_init(struct status_reader *r)
{
    struct status__waiters *w = &r->waiters;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    w->cv_inited = true;
    w->next_wake = status_now_ms() + TIMER_IDLE_MS;
    if (pthread_create(&w->timer, NULL, timer_run, r) != 0)
        return -1;
    w->timer_started = true;
    return 0;
}

void status__waiters_stop(struct status_reader *r)
{
    struct status__waiters *w = &r->waiters;
    struct status_call *list = NULL;

    pthread_mutex_lock(&w->mu);
    if (!w->stopping) {
        w->stopping = true;
        for (size_t b = 0; b < STATUS__WAIT_BUCKETS; b++) {
            for (struct status_call *c = w->buckets[b]; c; c = c->next_) {
                if (c->state_ == STATUS__CALL_WAITING) {
                    c->state_ = STATUS__CALL_CHECKING;
                    c->wake_ = list;
                    list = c;
                }
            }
        }
        if (w->cv_inited)
            pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    /* each look ends in status__checked, which answers the call now that we stop */
    look_all(r, list);
    if (w->timer_started) {
        pthread_join(w->timer, NULL);
        w->timer_started = false;
    }
}

void status__waiters_release(struct status_reader *r)
{
    struct status__waiters *w = &r->waiters;
    if (w->cv_inited)
        pthread_cond_destroy(&w->cv);
    w->cv_inited = false;
    pthread_mutex_destroy(&w->mu);
}
