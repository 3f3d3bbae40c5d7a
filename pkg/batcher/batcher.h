/* batcher — group commit for many threads.
 *
 * Each caller of batcher_run() hands over one item and waits; one flusher thread
 * takes the items that are waiting together (up to max_batch) and processes them
 * in one call of fn.  When the first item arrives the flusher waits up to
 * window_us for more, unless max_batch are already there: a busy system forms
 * large batches by itself (items pile up while the previous batch is processed),
 * a quiet one pays at most the window.  Items are processed in arrival order.
 *
 *     void flush(void *ctx, void *const *items, size_t n);   // writes each result
 *     batcher_run(b, &my_item);                              // returns after flush
 *
 * fn runs on the flusher thread and writes each item's result into the item; the
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
};

struct batcher;

/* fn and ctx are borrowed and must outlive b.  0, or -1 (bad config, no memory, no
 * thread). */
int batcher_new(const struct batcher_config *cfg, batcher_fn fn, void *ctx, struct batcher **ret_b);
/* Processes every item already handed over, stops the flusher, frees.  No call of
 * batcher_run() may be in progress or follow.  NULL is fine. */
void batcher_free(struct batcher *b);

/* Hands item over and waits until fn processed it: 0.  -1 (item untouched) when the
 * batcher is stopping. */
int batcher_run(struct batcher *b, void *item);

/* Counters since batcher_new: calls of fn and items processed. */
void batcher_stats(struct batcher *b, uint64_t *ret_batches, uint64_t *ret_items);

#endif
