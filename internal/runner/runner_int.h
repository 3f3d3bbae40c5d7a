/* runner internals: the pool's wiring (pool.c, over pkg/jobpool), the partition
 * table (parts.c), the loop (runner.c). */
#ifndef DISPATCH_RUNNER_INT_H
#define DISPATCH_RUNNER_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "queue/queue.h"
#include "runner/runner.h"
#include "jobpool/jobpool.h"
#include "watermark/watermark.h"

/* A partition with held retry messages keeps being fetched, so a retry due soon can
 * overtake a record due later (a scheduled task's hop), until it holds
 * RUNNER__HELD_MAX messages or tracks RUNNER__PENDING_MAX offsets above the oldest
 * unfinished one: then it is paused until the head is due.  Both bound memory. */
#define RUNNER__HELD_MAX    64
#define RUNNER__PENDING_MAX 4096

struct runner__job {
    struct jobpool_job pj;    /* first: the pool's link and the job's cancel flag */
    struct runner__job *next; /* held lists and the lists the pool wrappers return */
    struct queue_message *msg;
    uint64_t gen;          /* generation of the partition entry that delivered it */
    int64_t not_before_ms; /* held: due time (unix ms) */
    int rc;                /* taskexec_run's result: 0 = done */
};

/* One assigned partition (owned by the polling thread). */
struct runner__part {
    char *topic;
    int32_t partition;
    uint64_t gen;
    struct watermark *wm;
    struct runner__job *held_head; /* retry messages not yet due, by due time */
    size_t n_held;
    bool paused;      /* as last told to the consumer */
    bool pause_known; /* false until we told the consumer once */
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
    struct runner__part **parts;
    size_t n_parts, cap_parts;
    uint64_t next_gen;
    size_t outstanding; /* jobs created and not yet freed */
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

/* parts.c */
struct runner__part *runner__part_find(struct runner *r, const char *topic, int32_t partition);
int runner__part_add(struct runner *r, const char *topic, int32_t partition);
void runner__part_remove(struct runner *r, struct runner__part *p);
/* Pauses or resumes partitions so that each is paused iff backpressure (bp_paused),
 * drain or its held messages (RUNNER__HELD_MAX, RUNNER__PENDING_MAX) ask for it. */
void runner__parts_reconcile(struct runner *r);
/* Marks finished jobs done in their partition and stores moved watermarks. */
void runner__reap(struct runner *r);
/* Queues held messages that are due; returns the ms until the next one is due (-1:
 * none held). */
int64_t runner__release_due(struct runner *r);
/* Holds a retry message until its not_before_ms (sorted in; FIFO among equals). */
void runner__part_hold(struct runner__part *p, struct runner__job *job);
/* Frees a partition's held messages (not done: they are delivered again). */
void runner__part_drop_held(struct runner *r, struct runner__part *p);

#endif
