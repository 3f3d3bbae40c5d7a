/* The partition table: offsets in flight, held retry records, pause state.  See
 * parts.h. */
#include "runner/parts.h"

#include <stdlib.h>
#include <string.h>
#include "watermark/watermark.h"

struct part {
    char *topic;
    int32_t partition;
    uint64_t gen;
    struct watermark *wm;
    struct runner_held *held_head; /* by due time */
    size_t n_held;
    bool paused;      /* as last told to the consumer */
    bool pause_known; /* false until we told the consumer once */
};

struct runner_parts {
    struct part **v;
    size_t n, cap;
    uint64_t next_gen;
};

int runner_parts_new(struct runner_parts **ret_ps)
{
    struct runner_parts *ps = calloc(1, sizeof *ps);
    if (ps == NULL) {
        return RUNNER_PARTS_ENOMEM;
    }
    *ret_ps = ps;
    return RUNNER_PARTS_OK;
}

static struct part *find(const struct runner_parts *ps, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < ps->n; i++) {
        struct part *p = ps->v[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) {
            return p;
        }
    }
    return NULL;
}

static void drop_held(struct part *p, runner_parts_drop_fn drop, void *arg)
{
    while (p->held_head != NULL) {
        struct runner_held *h = p->held_head;
        p->held_head = h->next;
        h->next = NULL;
        if (drop != NULL) {
            drop(arg, h);
        }
    }
    p->n_held = 0;
}

static void part_free(struct part *p, runner_parts_drop_fn drop, void *arg)
{
    drop_held(p, drop, arg);
    watermark_free(p->wm);
    free(p->topic);
    free(p);
}

void runner_parts_free(struct runner_parts *ps, runner_parts_drop_fn drop, void *arg)
{
    if (ps == NULL) {
        return;
    }
    for (size_t i = 0; i < ps->n; i++) {
        part_free(ps->v[i], drop, arg);
    }
    free(ps->v);
    free(ps);
}

void runner_parts_remove(struct runner_parts *ps, const char *topic, int32_t partition,
                         runner_parts_drop_fn drop, void *arg)
{
    for (size_t i = 0; i < ps->n; i++) {
        struct part *p = ps->v[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) {
            ps->v[i] = ps->v[--ps->n];
            part_free(p, drop, arg);
            return;
        }
    }
}

int runner_parts_add(struct runner_parts *ps, const char *topic, int32_t partition,
                     runner_parts_drop_fn drop, void *arg)
{
    runner_parts_remove(ps, topic, partition, drop, arg);
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 16;
        struct part **v = realloc(ps->v, cap * sizeof(struct part *));
        if (v == NULL) {
            return RUNNER_PARTS_ENOMEM;
        }
        ps->v = v;
        ps->cap = cap;
    }
    struct part *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return RUNNER_PARTS_ENOMEM;
    }
    p->topic = strdup(topic);
    if (p->topic == NULL || watermark_new(&p->wm) < 0) {
        free(p->topic);
        free(p);
        return RUNNER_PARTS_ENOMEM;
    }
    p->partition = partition;
    p->gen = ++ps->next_gen;
    ps->v[ps->n++] = p;
    return RUNNER_PARTS_OK;
}

size_t runner_parts_count(const struct runner_parts *ps)
{
    return ps->n;
}

int runner_parts_track(struct runner_parts *ps, const char *topic, int32_t partition,
                       int64_t offset, uint64_t *ret_gen)
{
    struct part *p = find(ps, topic, partition);
    if (p == NULL) {
        return RUNNER_PARTS_UNKNOWN;
    }
    int rc = watermark_add(p->wm, offset);
    if (rc == WATERMARK_EORDER) {
        return RUNNER_PARTS_DUP;
    }
    if (rc != WATERMARK_OK) {
        return RUNNER_PARTS_ENOMEM;
    }
    *ret_gen = p->gen;
    return RUNNER_PARTS_OK;
}

void runner_parts_done(struct runner_parts *ps, const char *topic, int32_t partition, uint64_t gen,
                       int64_t offset)
{
    struct part *p = find(ps, topic, partition);
    if (p != NULL && p->gen == gen) {
        (void)watermark_done(p->wm, offset);
    }
}

void runner_parts_moved(struct runner_parts *ps, runner_parts_store_fn store, void *arg)
{
    for (size_t i = 0; i < ps->n; i++) {
        struct part *p = ps->v[i];
        int64_t next;
        if (watermark_take(p->wm, &next)) {
            store(arg, p->topic, p->partition, next);
        }
    }
}

int runner_parts_hold(struct runner_parts *ps, const char *topic, int32_t partition,
                      struct runner_held *h)
{
    struct part *p = find(ps, topic, partition);
    if (p == NULL) {
        return RUNNER_PARTS_UNKNOWN;
    }
    struct runner_held **pp = &p->held_head;
    while (*pp != NULL && (*pp)->not_before_ms <= h->not_before_ms) {
        pp = &(*pp)->next;
    }
    h->next = *pp;
    *pp = h;
    p->n_held++;
    return RUNNER_PARTS_OK;
}

struct runner_held *runner_parts_take_due(struct runner_parts *ps, int64_t now_ms,
                                          int64_t *ret_next_ms)
{
    struct runner_held *out = NULL, **tail = &out;
    int64_t next = -1;
    for (size_t i = 0; i < ps->n; i++) {
        struct part *p = ps->v[i];
        while (p->held_head != NULL && p->held_head->not_before_ms <= now_ms) {
            struct runner_held *h = p->held_head;
            p->held_head = h->next;
            p->n_held--;
            h->next = NULL;
            *tail = h;
            tail = &h->next;
        }
        if (p->held_head != NULL) {
            int64_t in = p->held_head->not_before_ms - now_ms;
            if (next < 0 || in < next) {
                next = in;
            }
        }
    }
    *ret_next_ms = next;
    return out;
}

void runner_parts_drop_held(struct runner_parts *ps, const char *topic, int32_t partition,
                            runner_parts_drop_fn drop, void *arg)
{
    for (size_t i = 0; i < ps->n; i++) {
        struct part *p = ps->v[i];
        if (topic == NULL || (p->partition == partition && strcmp(p->topic, topic) == 0)) {
            drop_held(p, drop, arg);
        }
    }
}

static bool want_paused(const struct part *p, bool pause_all)
{
    if (pause_all) {
        return true;
    }
    return p->n_held >= RUNNER_PARTS_HELD_MAX ||
           (p->n_held > 0 && watermark_pending(p->wm) >= RUNNER_PARTS_PENDING_MAX);
}

static bool needs(const struct part *p, bool pause_all, bool pause)
{
    return want_paused(p, pause_all) == pause && (!p->pause_known || p->paused != pause);
}

/* Tells apply about every partition whose wanted state is pause and differs. */
static void apply_pause(struct runner_parts *ps, bool pause_all, bool pause,
                        runner_parts_apply_fn apply, void *arg)
{
    size_t count = 0;
    for (size_t i = 0; i < ps->n; i++) {
        count += needs(ps->v[i], pause_all, pause);
    }
    if (count == 0) {
        return;
    }
    struct queue_partition *v = calloc(count, sizeof *v);
    struct part **which = calloc(count, sizeof(struct part *));
    if (v == NULL || which == NULL) {
        free(v);
        free(which);
        return; /* tried again on the next reconcile */
    }
    size_t n = 0;
    for (size_t i = 0; i < ps->n; i++) {
        struct part *p = ps->v[i];
        if (needs(p, pause_all, pause)) {
            v[n] = (struct queue_partition){.topic = p->topic, .partition = p->partition};
            which[n++] = p;
        }
    }
    if (apply(arg, pause, v, n) == 0) {
        for (size_t i = 0; i < n; i++) {
            which[i]->paused = pause;
            which[i]->pause_known = true;
        }
    }
    free(v);
    free(which);
}

void runner_parts_reconcile(struct runner_parts *ps, bool pause_all, runner_parts_apply_fn apply,
                            void *arg)
{
    apply_pause(ps, pause_all, true, apply, arg);
    apply_pause(ps, pause_all, false, apply, arg);
}

bool runner_parts_paused(const struct runner_parts *ps, const char *topic, int32_t partition)
{
    const struct part *p = find(ps, topic, partition);
    return p != NULL && p->pause_known && p->paused;
}
