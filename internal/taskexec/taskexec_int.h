/* taskexec internals shared by taskexec.c (the flow) and route.c (retry/DLQ records). */
#ifndef DISPATCH_TASKEXEC_INT_H
#define DISPATCH_TASKEXEC_INT_H

#include <pthread.h>
#include <stdbool.h>
#include "taskexec/taskexec.h"

struct taskexec {
    char *worker_id;
    char *retry_topic;
    char *dlq_topic;
    int lease_ms;
    int default_timeout_ms;
    int max_timeout_ms; /* 0: none */
    int dep_retry_max_ms;
    int max_delay_ms;
    struct backoff_policy backoff;
    struct metrics *metrics;
    const struct taskexec_notify_ops *nops;
    void *nctx;
    const struct taskexec_store_ops *sops;
    void *sctx;
    const struct taskexec_queue_ops *qops;
    void *qctx;
    const struct handler_registry *reg;
    /* the handler gate (max_running > 0) */
    int max_running;
    int extend_after_ms;
    int running; /* guarded by gate_mu */
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    bool gate_ok; /* gate_mu and gate_cv initialised */
};

/* The state of one taskexec_run(). */
struct taskexec__run {
    struct taskexec *te;
    const struct taskexec_msg *msg;
    atomic_bool *cancel;
    struct ids_id id;
    char id_text[IDS_TEXT_LEN + 1];              /* "" until parsed */
    char traceparent[MODEL_TRACEPARENT_LEN + 1]; /* "" when none */
    char msg_type[MODEL_TYPE_MAX + 1];           /* the message's "type", "" when none */
    int64_t run_at_us;                           /* the message's "run_at", 0 when none */
    struct task task;                            /* valid once claimed */
    bool claimed;
    bool superseded;  /* its lease renewal found a newer attempt: not run */
    double handler_s; /* the handler's run time, < 0 until it ran */
};

/* Sleeps before retry number i of a failed dependency call; returns -1 at once (no
 * sleep) or early when cancel is set. */
int taskexec__dep_pause(const struct taskexec__run *r, int i);

/* Publishes the message to the retry topic, due at not_before_ms (unix ms); error is
 * the failure that caused it (NULL when deferring a leased task).  Retried until
 * acknowledged or canceled: 0 or TASKEXEC_EAGAIN. */
int taskexec__publish_retry(const struct taskexec__run *r, int64_t not_before_ms,
                            const char *error);
/* Publishes the original message to the DLQ with the failure headers; same contract. */
int taskexec__publish_dlq(const struct taskexec__run *r, const char *error);

int64_t taskexec__unix_ms(void);

/* The message's last header called name as a non-negative decimal (unix ms); false
 * when absent or not a number. */
bool taskexec__header_ms(const struct taskexec_msg *m, const char *name, int64_t *ret_ms);

#endif
