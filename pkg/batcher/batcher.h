/* batcher — group commit for many threads.
 *
 * Each caller of batcher_run() hands over one item and waits; a flusher thread
 * takes the items that are waiting together (up to max_batch) and processes them
 * in one call of fn.  With several flushers, several batches are processed at
 * once (a database merges their commits' flushes), each flusher taking the next
 * waiting items when it is free.  When the first item arrives the flusher waits up to
 * window_us for more, unless max_batch are already there: a busy system forms
 * large batches by itself (items pile up while the previous batch is processed),
 * a quiet one pays at most the window.  Items are processed in arrival order.
 *
 *     void flush(void *ctx, void *const *items, size_t n);   // writes each result
 *     batcher_run(b, &my_item);                              // returns after flush
 *
 * fn runs on a flusher thread and writes each item's result into the item; the
 * caller reads it once batcher_run() returned.  Thread-safe.
 */
#ifndef BATCHER_H
#define BATCHER_H

#include <stddef.h>
#include <stdint.h>

typedef void (*batcher_fn)(void *ctx, void *const *items, size_t n);

struct batcher_config {
    size_t max_batch; /* >= 1 */
    int window_us;    /* >= 0: how long a lone item waits for company */
    int flushers;     /* threads calling fn, each with its own batch; 0 means 1 */
};

struct batcher;

/* fn and ctx are borrowed and must outlive b.  0, or -1 (bad config, no memory, no
 * thread). */
int batcher_new(const struct batcher_config *cfg, batcher_fn fn, void *ctx, struct batcher **ret_b);
/* Processes every item already handed over, stops the flusher, frees.  No call of
 * batcher_run() may be in progress or follow.  NULL is fine. */
void batcher_free(struct batcher *b);

/* Hands item over and waits until fn processed it: 0.  -1 (item untouched) when the
 * batcher is stopping (or no condition variable could be made). */
int batcher_run(struct batcher *b, void *item);

/* Counters since batcher_new: calls of fn and items processed. */
void batcher_stats(struct batcher *b, uint64_t *ret_batches, uint64_t *ret_items);

#endif
