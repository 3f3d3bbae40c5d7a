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

/* Appends n bytes to *buf (len, cap), growing it by doubling; false on ENOMEM. */
static bool append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (n + 1 > *cap - *len) {
        size_t want = *cap;
        char *p;
        while (n + 1 > want - *len)
            want *= 2;
        if (!(p = realloc(*buf, want)))
            return false;
        *buf = p;
        *cap = want;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return true;
}

/* {"items":[views...],"next_cursor":...}: each view rendered with the stored payload
 * spliced in, appended, and freed at once, with the task's payload and result: a
 * page of a hundred 1 MiB payloads costs about the page's bytes once beside the rows,
 * never a parse of them. */
char *status_page_text(struct status_page *page, const char *next_cursor)
{
    size_t cap = 64, len = 0, i;
    char *out;
    bool ok;

    for (i = 0; i < page->n; i++) /* the payloads and results, and room for the rest */
        cap += (page->items[i].payload ? strlen(page->items[i].payload) : 4) +
               (page->items[i].result ? strlen(page->items[i].result) : 4) + 768;
    if (!(out = malloc(cap)))
        return NULL;
    ok = append(&out, &len, &cap, "{\"items\":[", 10);
    for (i = 0; ok && i < page->n; i++) {
        struct task *t = &page->items[i];
        char *view = model_task_view_text(t);
        ok = view && (i == 0 || append(&out, &len, &cap, ",", 1)) &&
             append(&out, &len, &cap, view, strlen(view));
        free(view);
        free(t->payload);
        free(t->result);
        t->payload = t->result = NULL;
    }
    if (ok && next_cursor)
        ok = append(&out, &len, &cap, "],\"next_cursor\":\"", 17) &&
             append(&out, &len, &cap, next_cursor, strlen(next_cursor)) &&
             append(&out, &len, &cap, "\"}", 2);
    else if (ok)
        ok = append(&out, &len, &cap, "],\"next_cursor\":null}", 21);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}
