#include "watermark/watermark.h"

#include <stdlib.h>

struct slot {
    int64_t offset;
    bool done;
};

struct watermark {
    struct slot *ring;
    size_t cap;  /* power of two */
    size_t head; /* index of the oldest pending slot */
    size_t n;    /* pending slots */
    size_t inflight;
    int64_t last_added; /* -1: none yet */
    int64_t next;       /* current watermark; -1: nothing done yet */
    bool moved;
};

#define INITIAL_CAP 64

int watermark_new(struct watermark **ret_w)
{
    struct watermark *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return WATERMARK_ENOMEM;
    }
    w->ring = malloc(INITIAL_CAP * sizeof *w->ring);
    if (w->ring == NULL) {
        free(w);
        return WATERMARK_ENOMEM;
    }
    w->cap = INITIAL_CAP;
    w->last_added = -1;
    w->next = -1;
    *ret_w = w;
    return WATERMARK_OK;
}

void watermark_free(struct watermark *w)
{
    if (w == NULL) {
        return;
    }
    free(w->ring);
    free(w);
}

static struct slot *at(const struct watermark *w, size_t i)
{
    return &w->ring[(w->head + i) & (w->cap - 1)];
}

static int grow(struct watermark *w)
{
    size_t cap = w->cap * 2;
    struct slot *ring = malloc(cap * sizeof *ring);
    if (ring == NULL) {
        return WATERMARK_ENOMEM;
    }
    for (size_t i = 0; i < w->n; i++) {
        ring[i] = *at(w, i);
    }
    free(w->ring);
    w->ring = ring;
    w->cap = cap;
    w->head = 0;
    return WATERMARK_OK;
}

int watermark_add(struct watermark *w, int64_t offset)
{
    if (offset < 0 || offset <= w->last_added) {
        return WATERMARK_EORDER;
    }
    if (w->n == w->cap && grow(w) < 0) {
        return WATERMARK_ENOMEM;
    }
    *at(w, w->n) = (struct slot){.offset = offset, .done = false};
    w->n++;
    w->inflight++;
    w->last_added = offset;
    return WATERMARK_OK;
}

int watermark_done(struct watermark *w, int64_t offset)
{
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (at(w, mid)->offset < offset) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == w->n || at(w, lo)->offset != offset || at(w, lo)->done) {
        return WATERMARK_ENOTFOUND;
    }
    at(w, lo)->done = true;
    w->inflight--;
    while (w->n > 0 && at(w, 0)->done) {
        w->next = at(w, 0)->offset + 1;
        w->head = (w->head + 1) & (w->cap - 1);
        w->n--;
        w->moved = true;
    }
    return WATERMARK_OK;
}

bool watermark_take(struct watermark *w, int64_t *ret_next)
{
    if (!w->moved) {
        return false;
    }
    w->moved = false;
    *ret_next = w->next;
    return true;
}

size_t watermark_pending(const struct watermark *w)
{
    return w->n;
}

size_t watermark_inflight(const struct watermark *w)
{
    return w->inflight;
}
