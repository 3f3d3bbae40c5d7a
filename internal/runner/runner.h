/* runner — the worker loop: one consumer-group member feeding a bounded pool.
 *
 * The polling thread (the caller of runner_run) owns the consumer.  It polls, tracks
 * every delivered offset per partition (pkg/watermark), and hands messages to
 * `concurrency` pool threads (pkg/jobpool) through a queue of `queue_size` slots; each pool thread
 * runs taskexec_run() and hands the message back.  Only the contiguous watermark of
 * finished messages is ever stored, so a partition's offset never passes a message
 * that is not done (at-least-once, whatever order the pool finishes in).
 *
 * Backpressure: when the queue holds queue_size messages every assigned partition is
 * paused; below queue_size / 2 they are resumed.  poll keeps being called (every
 * <= 50 ms) while paused, so max.poll.interval.ms never expires and memory stays
 * flat whatever the backlog.
 *
 * Delays: a message from the retry topic whose x-not-before (unix ms) is in the
 * future is held by the runner, in due order, until it is due; one that is due runs
 * at once, so a retry due in a second overtakes a scheduled task's hop due in five
 * minutes.  The partition keeps being fetched until it holds 64 messages or tracks
 * 4096 offsets above its oldest unfinished one; then it is paused until the first
 * held message is due.  Its committed offset stays below the oldest held message (a
 * crash redelivers, never loses).  Nothing else waits: the tasks topic and other
 * partitions keep flowing.  Memory: bounded per retry partition.
 *
 * Rebalance: on revoke the partition's queued messages are dropped (they will be
 * delivered to the new owner), in-flight ones are waited for up to revoke_wait_ms,
 * and what is finished is stored; QUEUE_ESTATE (already unassigned) is ignored.
 *
 * Stop (the stop flag turns non-zero, e.g. from SIGTERM): fetching stops, queued
 * messages are handed back (not stored), in-flight ones get grace_ms to finish, then
 * are canceled (taskexec hands the attempt back); offsets are stored and committed,
 * the consumer closes, runner_run returns 0.
 *
 * Metrics (cfg.metrics, may be NULL): pool_queue_depth and pool_busy are bound to
 * this runner's pool from runner_new to runner_free (read at scrape time).
 */
#ifndef DISPATCH_RUNNER_H
#define DISPATCH_RUNNER_H

#include <signal.h>
#include <stdbool.h>
#include "metrics/metrics.h"
#include "taskexec/taskexec.h"

enum runner_err {
    RUNNER_OK = 0,
    RUNNER_EINVAL = -1,
    RUNNER_ENOMEM = -2,
    RUNNER_EQUEUE = -3,  /* the consumer could not be created */
    RUNNER_ETHREAD = -4, /* a pool thread could not be started */
};
const char *runner_strerror(int err);

struct runner_config {
    const char *brokers;
    const char *group;
    const char *client_id;
    const char *tasks_topic;
    const char *retry_topic;  /* NULL or "": not consumed */
    int concurrency;          /* pool threads, >= 1 */
    int queue_size;           /* messages waiting for a thread, >= 1 */
    int grace_ms;             /* stop: how long in-flight work may take to finish */
    int revoke_wait_ms;       /* rebalance: how long to wait for in-flight work */
    int max_poll_interval_ms; /* 0: librdkafka's default */
    int session_timeout_ms;   /* 0: librdkafka's default */
    struct metrics *metrics;  /* borrowed, outlives the runner; NULL: none */
};

struct runner;

/* Strings are copied; te is borrowed and must outlive the runner. */
int runner_new(const struct runner_config *cfg, struct taskexec *te, struct runner **ret_r);
void runner_free(struct runner *r);

/* Joins the group and runs until *stop becomes non-zero, then drains (see above).
 * Returns 0 after a clean drain, or a negative enum runner_err. */
int runner_run(struct runner *r, const volatile sig_atomic_t *stop);

/* True when pool threads outlived the drain (a handler ignored its cancel flag):
 * they may still call taskexec, so nothing they use may be freed.  NULL: false. */
bool runner_leaked(const struct runner *r);

#endif
