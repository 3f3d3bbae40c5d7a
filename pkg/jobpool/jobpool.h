/* jobpool — a fixed set of threads running jobs from a FIFO, with the finished jobs
 * handed back and every running job within reach (to cancel it, or wait for it).
 *
 * The caller embeds a struct jobpool_job first in its own job, pushes it, and takes
 * it back from the done list once fn ran it; the pool never frees a job.  The
 * queue is unbounded: the caller bounds it (jobpool_queued) the way it wants, e.g.
 * by pausing its source.  A match function picks jobs by the caller's own fields
 * (NULL matches all).  Thread-safe; fn runs on the pool's threads.
 */
#ifndef JOBPOOL_H
#define JOBPOOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct jobpool_job {
    struct jobpool_job *next; /* the pool's while the job is queued, running or done */
    atomic_bool cancel;       /* set by jobpool_cancel(); fn reads it */
};

typedef void (*jobpool_fn)(void *ctx, struct jobpool_job *job);
typedef bool (*jobpool_match)(void *arg, const struct jobpool_job *job);

struct jobpool;

/* Starts threads (>= 1) calling fn(ctx, job) for each pushed job.  0, or -1 (bad
 * argument, no memory, or a thread that would not start: none is left running). */
int jobpool_new(int threads, jobpool_fn fn, void *ctx, struct jobpool **ret_p);
/* Asks the threads to leave once the queue is empty and waits up to wait_ms for
 * them; true when all left (joined).  false: some still run a job, and the pool
 * must not be freed (the process exit reclaims it). */
bool jobpool_stop(struct jobpool *p, int wait_ms);
/* After jobpool_stop() returned true (or NULL).  Jobs still listed are not freed. */
void jobpool_free(struct jobpool *p);

/* Queues job (its cancel flag is cleared). */
void jobpool_push(struct jobpool *p, struct jobpool_job *job);
/* Jobs waiting for a thread. */
size_t jobpool_queued(struct jobpool *p);
/* Running jobs for which match() is true. */
size_t jobpool_running(struct jobpool *p, jobpool_match match, void *arg);
/* Takes the finished jobs (a list through next, the caller's now). */
struct jobpool_job *jobpool_take_done(struct jobpool *p);
/* Waits up to ms for a job to finish; at once when one is waiting to be taken. */
void jobpool_wait_done(struct jobpool *p, int ms);
/* Waits up to ms until at most low jobs are queued, with no wake-up per finished
 * job: a thread that takes a job wakes the waiter only when the queue went down to
 * low.  A feeder refills in bursts this way, waking once per (queued - low) jobs.
 * Returns the jobs queued. */
size_t jobpool_wait_queued(struct jobpool *p, size_t low, int ms);
/* Takes the queued jobs for which match() is true (a list, the caller's now). */
struct jobpool_job *jobpool_remove_queued(struct jobpool *p, jobpool_match match, void *arg);
/* Sets cancel on the running jobs for which match() is true. */
void jobpool_cancel(struct jobpool *p, jobpool_match match, void *arg);

#endif
