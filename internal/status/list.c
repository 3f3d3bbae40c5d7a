/* status — a user's tasks, newest first, one keyset page at a time.
 *
 * Pages come from the store, never from the caches: a listing is not a hot path,
 * and a cache of pages could not be invalidated by one task's change. */
#include "status/status.h"

#include <stdlib.h>

static void release_tasks(struct task *tasks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        model_task_release(&tasks[i]);
    free(tasks);
}

int status_list(const struct status *st, const struct status_query *q, struct status_page *ret_page)
{
    struct status_query probe = *q;
    struct status_page page = {0};
    struct task *tasks = NULL;
    size_t n = 0;

    if (q->limit < 1 || q->limit > STATUS_LIST_MAX || !st->store->list)
        return STATUS_EUNAVAILABLE;
    /* one row beyond the page says whether another page follows */
    probe.limit = q->limit + 1;
    if (st->store->list(st->store_ctx, &probe, &tasks, &n) != 0)
        return STATUS_EUNAVAILABLE;
    if (n > probe.limit) {
        release_tasks(tasks, n); /* the store broke its contract */
        return STATUS_EUNAVAILABLE;
    }
    if (n == probe.limit) {
        n--;
        model_task_release(&tasks[n]);
        page.more = true;
        page.next = tasks[n - 1].id;
    }
    page.items = n > 0 ? tasks : NULL;
    page.n = n;
    if (n == 0)
        free(tasks);
    *ret_page = page;
    return STATUS_OK;
}

void status_page_release(struct status_page *page)
{
    if (!page)
        return;
    release_tasks(page->items, page->n);
    page->items = NULL;
    page->n = 0;
}
