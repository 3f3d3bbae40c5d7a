/* deadline — calls due at a time, run by one timer thread, each exactly once
 * unless taken back first.
 *
 * For answering work that outlives its deadline: the caller arms an entry when it
 * hands work off, and whichever comes first wins — the work's completion takes the
 * entry back (deadline_cancel() returns true: the call will never run), or the
 * timer runs the call (deadline_cancel() then returns false: the call has run or is
 * running, exactly once).  Entries are embedded in the caller's objects: no
 * allocation.  Kept in due order (an entry armed later with a later time is O(1):
 * the usual case of one fixed timeout).  Thread-safe.
 */
#ifndef DEADLINE_H
#define DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*deadline_fn)(void *arg);
typedef int64_t (*deadline_clock_fn)(void *ctx);

/* Embedded in the caller's object; private fields.  It must stay alive until it
 * was taken back or its call has returned. */
struct deadline_entry {
    int64_t at_ms;
    deadline_fn fn;
    void *arg;
    struct deadline_entry *prev_, *next_;
    int state_;
};

struct deadline_config {
    deadline_clock_fn clock; /* NULL: CLOCK_MONOTONIC milliseconds */
    void *clock_ctx;
    bool manual; /* no thread: due entries run in deadline_run_due() (tests) */
};

struct deadline;

/* 0, or -1 (no memory, no thread). */
int deadline_new(const struct deadline_config *cfg, struct deadline **ret_d);
/* Stops the thread and frees.  Entries still armed are dropped, never run: take
 * them back (or let them run) first. */
void deadline_free(struct deadline *d);

/* The clock the times are on. */
int64_t deadline_now(struct deadline *d);

/* Arms e to run fn(arg) at at_ms.  0, or -1 when e is armed already. */
int deadline_add(struct deadline *d, struct deadline_entry *e, int64_t at_ms, deadline_fn fn,
                 void *arg);
/* true: e was taken back before its call started (it never runs); false: its call
 * has run or is running now. */
bool deadline_cancel(struct deadline *d, struct deadline_entry *e);

/* Runs every entry due by now on the caller's thread; the number run. */
int deadline_run_due(struct deadline *d);

#endif
