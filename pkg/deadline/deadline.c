/* deadline — a due-ordered list and one thread waiting for its head. */
#include "deadline/deadline.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

enum { E_IDLE = 0, E_ARMED, E_FIRED };

struct deadline {
    struct deadline_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct deadline_entry *head, *tail; /* armed, earliest first */
    bool stopping;
    pthread_t thread;
    bool started;
};

static int64_t monotonic_ms(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t deadline_now(struct deadline *d)
{
    return d->cfg.clock(d->cfg.clock_ctx);
}

/* Lock held. */
static void unlink_entry(struct deadline *d, struct deadline_entry *e)
{
    if (e->prev_)
        e->prev_->next_ = e->next_;
    else
        d->head = e->next_;
    if (e->next_)
        e->next_->prev_ = e->prev_;
    else
        d->tail = e->prev_;
    e->prev_ = e->next_ = NULL;
}

/* Takes the head if it is due by now (marked fired); NULL otherwise.  Lock held. */
static struct deadline_entry *pop_due(struct deadline *d, int64_t now)
{
    struct deadline_entry *e = d->head;
    if (!e || e->at_ms > now)
        return NULL;
    unlink_entry(d, e);
    e->state_ = E_FIRED;
    return e;
}

int deadline_run_due(struct deadline *d)
{
    int n = 0;
    for (;;) {
        struct deadline_entry *e;
        deadline_fn fn;
        void *arg;
        pthread_mutex_lock(&d->mu);
        e = pop_due(d, deadline_now(d));
        fn = e ? e->fn : NULL;
        arg = e ? e->arg : NULL;
        pthread_mutex_unlock(&d->mu);
        if (!fn)
            return n;
        fn(arg);
        n++;
    }
}

static void *timer_thread(void *arg)
{
    struct deadline *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!d->stopping) {
        int64_t now = deadline_now(d);
        struct deadline_entry *e = pop_due(d, now);
        if (e) {
            deadline_fn fn = e->fn;
            void *fa = e->arg;
            pthread_mutex_unlock(&d->mu);
            fn(fa);
            pthread_mutex_lock(&d->mu);
            continue;
        }
        if (!d->head) {
            pthread_cond_wait(&d->cv, &d->mu);
        } else {
            struct timespec ts;
            int64_t wait_ms = d->head->at_ms - now;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += wait_ms / 1000;
            ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&d->cv, &d->mu, &ts);
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

int deadline_new(const struct deadline_config *cfg, struct deadline **ret_d)
{
    struct deadline *d = calloc(1, sizeof *d);
    pthread_condattr_t ca;
    if (!d)
        return -1;
    if (cfg)
        d->cfg = *cfg;
    if (!d->cfg.clock)
        d->cfg.clock = monotonic_ms;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!d->cfg.manual) {
        if (pthread_create(&d->thread, NULL, timer_thread, d) != 0) {
            deadline_free(d);
            return -1;
        }
        d->started = true;
    }
    *ret_d = d;
    return 0;
}

void deadline_free(struct deadline *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (d->started)
        pthread_join(d->thread, NULL);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

int deadline_add(struct deadline *d, struct deadline_entry *e, int64_t at_ms, deadline_fn fn,
                 void *arg)
{
    struct deadline_entry *after;
    pthread_mutex_lock(&d->mu);
    if (e->state_ == E_ARMED) {
        pthread_mutex_unlock(&d->mu);
        return -1;
    }
    e->at_ms = at_ms;
    e->fn = fn;
    e->arg = arg;
    e->state_ = E_ARMED;
    /* from the tail: with one fixed timeout every new entry goes last */
    after = d->tail;
    while (after && after->at_ms > at_ms)
        after = after->prev_;
    e->prev_ = after;
    e->next_ = after ? after->next_ : d->head;
    if (e->next_)
        e->next_->prev_ = e;
    else
        d->tail = e;
    if (after)
        after->next_ = e;
    else
        d->head = e;
    /* a new earliest entry: the thread's wait is too long */
    if (d->head == e)
        pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

bool deadline_cancel(struct deadline *d, struct deadline_entry *e)
{
    bool taken = false;
    pthread_mutex_lock(&d->mu);
    if (e->state_ == E_ARMED) {
        unlink_entry(d, e);
        e->state_ = E_IDLE;
        taken = true;
    }
    pthread_mutex_unlock(&d->mu);
    return taken;
}
