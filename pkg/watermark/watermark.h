/* watermark — the commit position of one partition when work completes out of order.
 *
 * Offsets are added in delivery order (strictly increasing; gaps such as compacted
 * records or transaction markers are fine) and marked done in any order.  The
 * watermark is last-contiguously-done + 1: the offset a consumer may store, since
 * every delivered offset below it is done.  A ring of (offset, done) pairs: memory is
 * proportional to the offsets in flight, lookups are a binary search.  Not
 * thread-safe: one owner (the polling thread). */
#ifndef WATERMARK_H
#define WATERMARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum watermark_err {
    WATERMARK_OK = 0,
    WATERMARK_ENOMEM = -1,
    WATERMARK_EORDER = -2,   /* add: not above the last added offset (a duplicate) */
    WATERMARK_ENOTFOUND = -3 /* done: offset not in flight */
};

struct watermark;

int watermark_new(struct watermark **ret_w);
void watermark_free(struct watermark *w);

int watermark_add(struct watermark *w, int64_t offset);
int watermark_done(struct watermark *w, int64_t offset);

/* True when the watermark moved since the last call that returned true; then
 * *ret_next is the offset to store (last contiguous done + 1). */
bool watermark_take(struct watermark *w, int64_t *ret_next);

/* Offsets added and not yet below the watermark (done or not). */
size_t watermark_pending(const struct watermark *w);
/* Offsets added and not yet marked done. */
size_t watermark_inflight(const struct watermark *w);

#endif
