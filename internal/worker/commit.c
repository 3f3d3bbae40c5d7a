/* The group-commit shims: taskexec's one-task store ops, batched.  See worker_int.h. */
#include "worker/worker_int.h"

#include <stdlib.h>
#include <time.h>
#include "batcher/batcher.h"
#include "log/log.h"

struct worker_commit {
    struct store *store;
    struct batcher *claims;
    struct batcher *finishes;
};

struct claim_req {
    const char *worker_id; /* every request of one taskexec has the same */
    int lease_ms;
    struct store_claim_row row;
};

struct finish_req {
    struct store_finish_row row;
};

static long long elapsed_us(const struct timespec *a, const struct timespec *b)
{
    return (long long)(b->tv_sec - a->tv_sec) * 1000000 + (b->tv_nsec - a->tv_nsec) / 1000;
}

static void claim_flush(void *ctx, void *const *items, size_t n)
{
    struct worker_commit *wc = ctx;
    struct store_claim_row rows[STORE_BATCH_MAX];
    const struct claim_req *first = items[0];
    for (size_t i = 0; i < n; i++) {
        const struct claim_req *q = items[i];
        rows[i] = (struct store_claim_row){.id = q->row.id};
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = store_task_claim_batch(wc->store, first->worker_id, first->lease_ms, rows, n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    log_debug("claim transaction", LOG_I("rows", n), LOG_I("us", elapsed_us(&t0, &t1)));
    for (size_t i = 0; i < n; i++) {
        struct claim_req *q = items[i];
        q->row = rows[i];
        if (rc != STORE_OK) {
            q->row.rc = rc;
        }
    }
}

static void finish_flush(void *ctx, void *const *items, size_t n)
{
    struct worker_commit *wc = ctx;
    struct store_finish_row rows[STORE_BATCH_MAX];
    for (size_t i = 0; i < n; i++) {
        const struct finish_req *q = items[i];
        rows[i] = q->row;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = store_task_finish_batch(wc->store, rows, n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    log_debug("finish transaction", LOG_I("rows", n), LOG_I("us", elapsed_us(&t0, &t1)));
    for (size_t i = 0; i < n; i++) {
        struct finish_req *q = items[i];
        q->row.rc = rc != STORE_OK ? rc : rows[i].rc;
    }
}

/* The store's answers in taskexec's words (taskexec.h: enum taskexec_op). */
static int op_of(int store_rc)
{
    switch (store_rc) {
    case STORE_OK:
        return TASKEXEC_OP_OK;
    case STORE_ESTALE:
    case STORE_ENOTFOUND:
        return TASKEXEC_OP_STALE;
    case STORE_EINVAL:
        return TASKEXEC_OP_REFUSED;
    default:
        return TASKEXEC_OP_FAILED;
    }
}

static enum taskexec_claim claim_of(enum store_claim c)
{
    switch (c) {
    case STORE_CLAIMED:
        return TASKEXEC_CLAIMED;
    case STORE_CLAIM_DONE:
        return TASKEXEC_CLAIM_DONE;
    case STORE_CLAIM_LEASED:
        return TASKEXEC_CLAIM_LEASED;
    case STORE_CLAIM_NOT_FOUND:
    default:
        return TASKEXEC_CLAIM_NOT_FOUND;
    }
}

static enum store_outcome outcome_of(enum taskexec_attempt a)
{
    switch (a) {
    case TASKEXEC_ATTEMPT_SUCCEEDED:
        return STORE_OUTCOME_SUCCEEDED;
    case TASKEXEC_ATTEMPT_TIMEOUT:
        return STORE_OUTCOME_TIMEOUT;
    case TASKEXEC_ATTEMPT_PERMANENT:
        return STORE_OUTCOME_PERMANENT;
    case TASKEXEC_ATTEMPT_FAILED:
    default:
        return STORE_OUTCOME_FAILED;
    }
}

static int claim_op(void *ctx, const struct ids_id *id, const char *worker_id, int lease_ms,
                    struct task *ret_task, enum taskexec_claim *ret_claim)
{
    struct worker_commit *wc = ctx;
    struct claim_req q = {.worker_id = worker_id, .lease_ms = lease_ms, .row = {.id = *id}};
    if (batcher_run(wc->claims, &q) < 0) {
        return TASKEXEC_OP_FAILED;
    }
    if (q.row.rc != STORE_OK) {
        return TASKEXEC_OP_FAILED; /* a claim is tried again, whatever went wrong */
    }
    if (q.row.claim == STORE_CLAIMED) {
        *ret_task = q.row.task;
    }
    *ret_claim = claim_of(q.row.claim);
    return TASKEXEC_OP_OK;
}

static int finish_op(void *ctx, const struct ids_id *id, int attempt,
                     const struct taskexec_finish *fin)
{
    struct worker_commit *wc = ctx;
    struct finish_req q = {.row = {.id = *id,
                                   .attempt = attempt,
                                   .fin = {.status = fin->status,
                                           .outcome = outcome_of(fin->outcome),
                                           .result = fin->result,
                                           .error = fin->error,
                                           .run_at = fin->run_at}}};
    if (batcher_run(wc->finishes, &q) < 0) {
        return TASKEXEC_OP_FAILED;
    }
    return op_of(q.row.rc);
}

/* Rare (a claimed task waited for a handler slot): one statement of its own. */
static int extend_op(void *ctx, const struct ids_id *id, int attempt, int lease_ms)
{
    struct worker_commit *wc = ctx;
    return op_of(store_task_extend_lease(wc->store, id, attempt, lease_ms));
}

const struct taskexec_store_ops worker__commit_ops = {
    .claim = claim_op, .finish = finish_op, .extend = extend_op};

int worker__commit_new(const struct worker_commit_config *cfg, struct store *store,
                       struct worker_commit **ret_wc)
{
    if (cfg->claim_batch < 1 || cfg->claim_batch > STORE_BATCH_MAX || cfg->finish_batch < 1 ||
        cfg->finish_batch > STORE_BATCH_MAX) {
        return -1;
    }
    struct worker_commit *wc = calloc(1, sizeof *wc);
    if (wc == NULL) {
        return -1;
    }
    wc->store = store;
    struct batcher_config cc = {
        .max_batch = cfg->claim_batch, .window_us = cfg->window_us, .flushers = cfg->threads};
    struct batcher_config fc = {
        .max_batch = cfg->finish_batch, .window_us = cfg->window_us, .flushers = cfg->threads};
    if (batcher_new(&cc, claim_flush, wc, &wc->claims) < 0 ||
        batcher_new(&fc, finish_flush, wc, &wc->finishes) < 0) {
        worker__commit_free(wc);
        return -1;
    }
    *ret_wc = wc;
    return 0;
}

void worker__commit_free(struct worker_commit *wc)
{
    if (wc == NULL) {
        return;
    }
    uint64_t cb = 0, ci = 0, fb = 0, fi = 0;
    if (wc->claims != NULL && wc->finishes != NULL) {
        batcher_stats(wc->claims, &cb, &ci);
        batcher_stats(wc->finishes, &fb, &fi);
        log_info("group commit", LOG_I("claim_transactions", cb), LOG_I("claims", ci),
                 LOG_I("finish_transactions", fb), LOG_I("finishes", fi));
    }
    batcher_free(wc->finishes);
    batcher_free(wc->claims);
    free(wc);
}
