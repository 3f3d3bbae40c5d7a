/* workpool — a fixed set of threads running submitted jobs from a bounded queue.
 *
 * For work that must not run on an event-loop thread (password hashing, blocking
 * lookups): the caller suspends what it serves, submits the job, and the job
 * resumes it.  A full queue refuses the job at once (the caller answers 503), so a
 * flood cannot pile up unbounded work or memory.
 */
#ifndef WORKPOOL_H
#define WORKPOOL_H

#include <stddef.h>

typedef void (*workpool_fn)(void *arg);

struct workpool;

/* threads >= 1; queue_max >= 0 jobs may wait beyond the running ones. */
int workpool_new(int threads, int queue_max, struct workpool **ret_pool);
/* Runs every job already accepted, then joins the threads and frees. */
void workpool_free(struct workpool *pool);

/* Queues fn(arg).  Returns 0, or -1 when the queue is full or the pool is stopping
 * (fn is then not called). */
int workpool_submit(struct workpool *pool, workpool_fn fn, void *arg);

/* Jobs accepted and not yet finished (queued + running). */
size_t workpool_pending(struct workpool *pool);

#endif
