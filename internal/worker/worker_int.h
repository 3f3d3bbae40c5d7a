/* worker internals: the group-commit shims between taskexec and the store. */
#ifndef DISPATCH_WORKER_INT_H
#define DISPATCH_WORKER_INT_H

#include "store/store.h"
#include "taskexec/taskexec.h"

/* taskexec's store ops over two batchers (pkg/batcher): every claim and every
 * finish waits for its batch's one transaction (store_task_claim_batch,
 * store_task_finish_batch), so the pool threads that claim or finish together
 * share a commit.  The ops' ctx is the struct worker_commit. */
struct worker_commit;

struct worker_commit_config {
    size_t claim_batch;  /* 1..STORE_BATCH_MAX */
    size_t finish_batch; /* 1..STORE_BATCH_MAX */
    int window_us;       /* gather window of both */
    int threads;         /* transactions in flight at once, per batcher */
};

/* store is borrowed and must outlive wc.  0, or -1 (no memory, no thread). */
int worker__commit_new(const struct worker_commit_config *cfg, struct store *store,
                       struct worker_commit **ret_wc);
/* After every caller of the ops returned (the runner's pool joined). */
void worker__commit_free(struct worker_commit *wc);

extern const struct taskexec_store_ops worker__commit_ops;

#endif
