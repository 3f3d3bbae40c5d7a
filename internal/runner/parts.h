/* runner parts — the partition table of one consumer-group member.
 *
 * Per assigned partition: the offsets in flight (pkg/watermark), the retry records
 * held until they are due (in due order, FIFO among equals), and whether the
 * partition is paused.  It knows neither the consumer nor the pool: the runner
 * asks it which offsets to store (runner_parts_moved) and which partitions to
 * pause or resume (runner_parts_reconcile), and hands it the jobs it holds, each
 * embedding a struct runner_held.
 *
 * A partition assigned again gets a new generation: a job delivered under the old
 * assignment that finishes late (runner_parts_done with the old generation) moves
 * nothing.  A held partition keeps being fetched until it holds
 * RUNNER_PARTS_HELD_MAX records or tracks RUNNER_PARTS_PENDING_MAX offsets above
 * its oldest unfinished one; then it wants to be paused until its head is due.
 * Single-threaded: the polling thread owns it.
 */
#ifndef DISPATCH_RUNNER_PARTS_H
#define DISPATCH_RUNNER_PARTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "queue/queue.h"

#define RUNNER_PARTS_HELD_MAX    64
#define RUNNER_PARTS_PENDING_MAX 4096

enum runner_parts_err {
    RUNNER_PARTS_OK = 0,
    RUNNER_PARTS_UNKNOWN = -1, /* the partition is not assigned */
    RUNNER_PARTS_DUP = -2,     /* the offset is at or below one already tracked */
    RUNNER_PARTS_ENOMEM = -3,
};

/* Embedded by the caller in what it holds; the table links it while held. */
struct runner_held {
    struct runner_held *next;
    int64_t not_before_ms; /* unix ms */
};

/* Gets held items the table lets go of without their being due (removal, drop). */
typedef void (*runner_parts_drop_fn)(void *arg, struct runner_held *h);
/* Pauses (pause true) or resumes the n partitions; 0 when the consumer took it
 * (they are recorded so), else they are tried again on the next reconcile. */
typedef int (*runner_parts_apply_fn)(void *arg, bool pause, const struct queue_partition *v,
                                     size_t n);
/* A partition whose contiguous watermark moved: next is the offset to store. */
typedef void (*runner_parts_store_fn)(void *arg, const char *topic, int32_t partition,
                                      int64_t next);

struct runner_parts;

int runner_parts_new(struct runner_parts **ret_ps);
/* Held items go to drop (may be NULL when none can be held).  NULL is fine. */
void runner_parts_free(struct runner_parts *ps, runner_parts_drop_fn drop, void *arg);

/* Adds the partition (assigned again: a fresh entry with a new generation, the old
 * one's held items to drop).  0 or RUNNER_PARTS_ENOMEM. */
int runner_parts_add(struct runner_parts *ps, const char *topic, int32_t partition,
                     runner_parts_drop_fn drop, void *arg);
/* Forgets the partition; its held items go to drop.  Unknown: nothing. */
void runner_parts_remove(struct runner_parts *ps, const char *topic, int32_t partition,
                         runner_parts_drop_fn drop, void *arg);
size_t runner_parts_count(const struct runner_parts *ps);

/* Tracks a delivered offset; *ret_gen is the assignment's generation.  0,
 * RUNNER_PARTS_UNKNOWN, RUNNER_PARTS_DUP (a redelivery: drop it) or
 * RUNNER_PARTS_ENOMEM. */
int runner_parts_track(struct runner_parts *ps, const char *topic, int32_t partition,
                       int64_t offset, uint64_t *ret_gen);
/* The job of (topic, partition, offset) delivered under gen is done.  A stale gen or
 * an unknown partition changes nothing. */
void runner_parts_done(struct runner_parts *ps, const char *topic, int32_t partition, uint64_t gen,
                       int64_t offset);
/* Calls store for every partition whose watermark moved since the last call. */
void runner_parts_moved(struct runner_parts *ps, runner_parts_store_fn store, void *arg);

/* Holds h (a tracked offset's job) until h->not_before_ms.  0 or
 * RUNNER_PARTS_UNKNOWN (h untouched). */
int runner_parts_hold(struct runner_parts *ps, const char *topic, int32_t partition,
                      struct runner_held *h);
/* Takes the held items due at now_ms, in due order per partition (a list through
 * next, the caller's); *ret_next_ms: ms until the next one is due, -1 when none is
 * held. */
struct runner_held *runner_parts_take_due(struct runner_parts *ps, int64_t now_ms,
                                          int64_t *ret_next_ms);
/* Lets go of the held items of one partition (topic NULL: of all) through drop. */
void runner_parts_drop_held(struct runner_parts *ps, const char *topic, int32_t partition,
                            runner_parts_drop_fn drop, void *arg);

/* Pauses every partition when pause_all (backpressure, drain), else those whose
 * held records ask for it, and resumes the others: apply is called only for the
 * partitions whose state changes (at most once for pausing, once for resuming). */
void runner_parts_reconcile(struct runner_parts *ps, bool pause_all, runner_parts_apply_fn apply,
                            void *arg);
/* As last told to the consumer (false before any reconcile).  Unknown: false. */
bool runner_parts_paused(const struct runner_parts *ps, const char *topic, int32_t partition);

#endif
