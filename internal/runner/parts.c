/* The partition table: offsets in flight, held retry messages, pause state. */
#include "runner/runner_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "log/log.h"

struct runner__part *runner__part_find(struct runner *r, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < r->n_parts; i++) {
        struct runner__part *p = r->parts[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) {
            return p;
        }
    }
    return NULL;
}

int runner__part_add(struct runner *r, const char *topic, int32_t partition)
{
    struct runner__part *old = runner__part_find(r, topic, partition);
    if (old != NULL) {
        runner__part_remove(r, old);
    }
    if (r->n_parts == r->cap_parts) {
        size_t cap = r->cap_parts ? r->cap_parts * 2 : 16;
        struct runner__part **v = realloc(r->parts, cap * sizeof(struct runner__part *));
        if (v == NULL) {
            return RUNNER_ENOMEM;
        }
        r->parts = v;
        r->cap_parts = cap;
    }
    struct runner__part *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return RUNNER_ENOMEM;
    }
    p->topic = strdup(topic);
    if (p->topic == NULL || watermark_new(&p->wm) < 0) {
        free(p->topic);
        free(p);
        return RUNNER_ENOMEM;
    }
    p->partition = partition;
    p->gen = ++r->next_gen;
    r->parts[r->n_parts++] = p;
    return RUNNER_OK;
}

void runner__part_drop_held(struct runner *r, struct runner__part *p)
{
    while (p->held_head != NULL) {
        struct runner__job *j = p->held_head;
        p->held_head = j->next;
        runner__job_free(r, j);
    }
    p->n_held = 0;
}

void runner__part_hold(struct runner__part *p, struct runner__job *job)
{
    struct runner__job **pp = &p->held_head;
    while (*pp != NULL && (*pp)->not_before_ms <= job->not_before_ms) {
        pp = &(*pp)->next;
    }
    job->next = *pp;
    *pp = job;
    p->n_held++;
}

void runner__part_remove(struct runner *r, struct runner__part *p)
{
    for (size_t i = 0; i < r->n_parts; i++) {
        if (r->parts[i] == p) {
            r->parts[i] = r->parts[--r->n_parts];
            break;
        }
    }
    runner__part_drop_held(r, p);
    watermark_free(p->wm);
    free(p->topic);
    free(p);
}

static bool want_paused(const struct runner *r, const struct runner__part *p)
{
    if (r->bp_paused || r->draining) {
        return true;
    }
    return p->n_held >= RUNNER__HELD_MAX ||
           (p->n_held > 0 && watermark_pending(p->wm) >= RUNNER__PENDING_MAX);
}

static bool needs(const struct runner *r, const struct runner__part *p, bool pause)
{
    return want_paused(r, p) == pause && (!p->pause_known || p->paused != pause);
}

/* Tells the consumer about every partition whose wanted state differs. */
static void apply_pause(struct runner *r, bool pause)
{
    size_t count = 0;
    for (size_t i = 0; i < r->n_parts; i++) {
        count += needs(r, r->parts[i], pause);
    }
    if (count == 0) {
        return;
    }
    struct queue_partition *v = calloc(r->n_parts + 1, sizeof *v);
    struct runner__part **which = calloc(r->n_parts + 1, sizeof(struct runner__part *));
    if (v == NULL || which == NULL) {
        free(v);
        free(which);
        return; /* tried again on the next loop */
    }
    size_t n = 0;
    for (size_t i = 0; i < r->n_parts; i++) {
        struct runner__part *p = r->parts[i];
        if (needs(r, p, pause)) {
            v[n] = (struct queue_partition){.topic = p->topic, .partition = p->partition};
            which[n++] = p;
        }
    }
    int rc = pause ? queue_consumer_pause(r->qc, v, n) : queue_consumer_resume(r->qc, v, n);
    if (rc == QUEUE_OK) {
        for (size_t i = 0; i < n; i++) {
            which[i]->paused = pause;
            which[i]->pause_known = true;
        }
    }
    free(v);
    free(which);
}

void runner__parts_reconcile(struct runner *r)
{
    apply_pause(r, true);
    apply_pause(r, false);
}

static void store_moved(struct runner *r, struct runner__part *p)
{
    int64_t next;
    if (r->fatal || !watermark_take(p->wm, &next)) {
        return;
    }
    int rc = queue_consumer_store(r->qc, p->topic, p->partition, next);
    if (rc == QUEUE_ESTATE) {
        log_debug("offset not stored: partition no longer assigned", LOG_S("topic", p->topic),
                  LOG_I("partition", p->partition));
    }
}

void runner__reap(struct runner *r)
{
    struct runner__job *list = runner__pool_take_done(r);
    while (list != NULL) {
        struct runner__job *j = list;
        list = j->next;
        struct runner__part *p = runner__part_find(r, j->msg->topic, j->msg->partition);
        /* a job that is not done keeps the watermark below it until redelivery */
        if (p != NULL && p->gen == j->gen && j->rc == 0) {
            (void)watermark_done(p->wm, j->msg->offset);
        }
        runner__job_free(r, j);
    }
    for (size_t i = 0; i < r->n_parts; i++) {
        store_moved(r, r->parts[i]);
    }
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t runner__release_due(struct runner *r)
{
    int64_t now = unix_ms();
    int64_t next = -1;
    for (size_t i = 0; i < r->n_parts; i++) {
        struct runner__part *p = r->parts[i];
        while (p->held_head != NULL && p->held_head->not_before_ms <= now) {
            struct runner__job *j = p->held_head;
            p->held_head = j->next;
            p->n_held--;
            runner__pool_push(r, j);
        }
        if (p->held_head != NULL) {
            int64_t in = p->held_head->not_before_ms - now;
            if (next < 0 || in < next) {
                next = in;
            }
        }
    }
    return next;
}
