/* runner internals: the pool's wiring (pool.c, over pkg/jobpool) and the loop
 * (runner.c); the partition table is its own object (parts.h). */
#ifndef DISPATCH_RUNNER_INT_H
#define DISPATCH_RUNNER_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "queue/queue.h"
#include "runner/parts.h"
#include "runner/runner.h"
#include "jobpool/jobpool.h"

struct runner__job {
    struct jobpool_job pj;    /* first: the pool's link and the job's cancel flag */
    struct runner__job *next; /* the lists the pool wrappers return */
    struct runner_held held;  /* held by the partition table until due */
    struct queue_message *msg;
    uint64_t gen; /* generation of the partition entry that delivered it */
    int rc;       /* taskexec_run's result: 0 = done */
};

struct runner {
    /* configuration */
    char *brokers, *group, *client_id, *tasks_topic, *retry_topic;
    int concurrency, queue_size, grace_ms, revoke_wait_ms, max_poll_interval_ms;
    int session_timeout_ms;
    struct taskexec *te;
    struct queue_consumer *qc;
    struct metrics *metrics;

    struct jobpool *pool; /* NULL until runner_run starts it */

    /* polling thread only */
    struct runner_parts *parts; /* parts.h: watermarks, held records, pause state */
    size_t outstanding;         /* jobs created and not yet freed */
    bool bp_paused;
    bool draining;
    bool fatal;  /* a delivered message was lost track of: store nothing more */
    bool leaked; /* pool threads outlived the drain: runner_free leaves r alone */
};

/* pool.c: the runner's jobs on pkg/jobpool (each runs taskexec_run) */
int runner__pool_start(struct runner *r);
/* Asks the threads to leave once the queue is empty; waits up to wait_ms for them.
 * Returns true when all left (and were joined). */
bool runner__pool_stop(struct runner *r, int wait_ms);
void runner__pool_push(struct runner *r, struct runner__job *job);
size_t runner__pool_queued(struct runner *r);
/* Moves the finished jobs out (caller owns the list). */
struct runner__job *runner__pool_take_done(struct runner *r);
/* Waits up to ms for a job to finish (or returns at once when one is waiting). */
void runner__pool_wait_done(struct runner *r, int ms);
/* Waits up to ms until at most low jobs are queued (one wake-up, not one per
 * finished job); returns the jobs queued. */
size_t runner__pool_wait_queued(struct runner *r, size_t low, int ms);
/* Removes the queued jobs for which drop() is true; returns them as a list. */
struct runner__job *runner__pool_remove_queued(struct runner *r,
                                               bool (*drop)(void *, const struct runner__job *),
                                               void *arg);
/* Sets cancel on running jobs for which match() is true (NULL: all). */
void runner__pool_cancel(struct runner *r, bool (*match)(void *, const struct runner__job *),
                         void *arg);
/* Running jobs for which match() is true (NULL: all). */
size_t runner__pool_running(struct runner *r, bool (*match)(void *, const struct runner__job *),
                            void *arg);
void runner__job_free(struct runner *r, struct runner__job *job);

#endif
