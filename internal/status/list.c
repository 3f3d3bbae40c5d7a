/* status — a user's tasks, newest first, one keyset page at a time.
 *
 * Pages come from the store, never from the caches: a listing is not a hot path,
 * and a cache of pages could not be invalidated by one task's change. */
#include "status/status.h"

#include <stdlib.h>
#include <string.h>

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

/* {"items":[views...],"next_cursor":...} by splicing each task's view text: a page of
 * a hundred 1 MiB payloads costs the page's bytes, never a parse of them. */
char *status_page_text(const struct status_page *page, const char *next_cursor)
{
    static const char open[] = "{\"items\":[", mid_null[] = "],\"next_cursor\":null}";
    char **views = calloc(page->n > 0 ? page->n : 1, sizeof *views);
    size_t total = sizeof open + sizeof mid_null + (next_cursor ? strlen(next_cursor) + 2 : 0);
    char *out = NULL, *w;
    size_t i;

    if (!views)
        return NULL;
    for (i = 0; i < page->n; i++) {
        if (!(views[i] = model_task_view_text(&page->items[i])))
            goto out_views;
        total += strlen(views[i]) + 1;
    }
    out = malloc(total);
    if (!out)
        goto out_views;
    w = out;
    memcpy(w, open, sizeof open - 1);
    w += sizeof open - 1;
    for (i = 0; i < page->n; i++) {
        size_t n = strlen(views[i]);
        if (i > 0)
            *w++ = ',';
        memcpy(w, views[i], n);
        w += n;
    }
    if (next_cursor) {
        size_t n = strlen(next_cursor);
        memcpy(w, "],\"next_cursor\":\"", 17);
        memcpy(w + 17, next_cursor, n);
        memcpy(w + 17 + n, "\"}", 3);
    } else {
        memcpy(w, mid_null, sizeof mid_null);
    }
out_views:
    for (i = 0; i < page->n; i++)
        free(views[i]);
    free(views);
    return out;
}
