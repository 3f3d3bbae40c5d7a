/* status: get's owner check and list's paging against a fake store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "status/status.h"

enum { FAKE_NOTFOUND = -7, FAKE_ROWS = 12 };

/* A store of FAKE_ROWS tasks of one owner; ids 1..FAKE_ROWS (last byte), listed
 * newest (highest) first like the real one. */
struct fake {
    struct ids_id owner;
    int list_rc;
    size_t extra;               /* rows returned beyond the asked limit (a broken store) */
    struct status_query last_q; /* what the service asked for */
    int calls;
};

static struct ids_id id_of(int n)
{
    struct ids_id id = {{0}};
    id.b[15] = (uint8_t)n;
    return id;
}

static void fill(struct task *t, int n, const struct ids_id *owner)
{
    memset(t, 0, sizeof *t);
    t->id = id_of(n);
    t->user_id = *owner;
    t->has_user = true;
    snprintf(t->type, sizeof t->type, "echo");
    t->status = TASK_QUEUED;
    t->payload = strdup("{}");
}

static int f_get(void *ctx, const struct ids_id *id, struct task *ret_task)
{
    struct fake *f = ctx;
    if (id->b[15] == 0 || id->b[15] > FAKE_ROWS)
        return FAKE_NOTFOUND;
    fill(ret_task, id->b[15], &f->owner);
    return 0;
}

static int f_list(void *ctx, const struct status_query *q, struct task **ret_tasks, size_t *ret_n)
{
    struct fake *f = ctx;
    struct task *tasks;
    size_t n = 0;
    int top = q->after ? q->after->b[15] - 1 : FAKE_ROWS;
    f->last_q = *q;
    f->calls++;
    if (f->list_rc != 0)
        return f->list_rc;
    tasks = calloc(q->limit + f->extra, sizeof *tasks);
    assert_non_null(tasks);
    for (int k = top; k >= 1 && n < q->limit + f->extra; k--)
        fill(&tasks[n++], k, &f->owner);
    *ret_tasks = tasks;
    *ret_n = n;
    return 0;
}

static const struct status_store_ops ops = {f_get, f_list};

static void test_get_checks_the_owner(void **state)
{
    struct fake f = {.owner = id_of(200)};
    struct status st = {&ops, &f, FAKE_NOTFOUND};
    struct ids_id id = id_of(3), other = id_of(201), unknown = id_of(99);
    struct task t;
    (void)state;
    assert_int_equal(status_get(&st, &id, &f.owner, &t), STATUS_OK);
    assert_true(ids_equal(&t.id, &id));
    model_task_release(&t);
    assert_int_equal(status_get(&st, &id, &other, &t), STATUS_ENOTFOUND);
    assert_int_equal(status_get(&st, &unknown, &f.owner, &t), STATUS_ENOTFOUND);
}

static void test_list_pages_until_no_more(void **state)
{
    struct fake f = {.owner = id_of(200)};
    struct status st = {&ops, &f, FAKE_NOTFOUND};
    struct status_query q = {.owner = f.owner, .limit = 5};
    struct status_page page;
    struct ids_id cursor;
    int expect = FAKE_ROWS;
    size_t sizes[3] = {0}, pages = 0;
    (void)state;
    for (;;) {
        assert_int_equal(status_list(&st, &q, &page), STATUS_OK);
        assert_int_equal(f.last_q.limit, q.limit + 1); /* one more, to know */
        for (size_t i = 0; i < page.n; i++)
            assert_int_equal(page.items[i].id.b[15], expect--);
        sizes[pages++] = page.n;
        if (!page.more) {
            status_page_release(&page);
            break;
        }
        assert_true(ids_equal(&page.next, &page.items[page.n - 1].id));
        cursor = page.next;
        q.after = &cursor;
        status_page_release(&page);
        assert_true(pages < 3);
    }
    assert_int_equal(expect, 0);
    assert_int_equal(pages, 3);
    assert_int_equal(sizes[0], 5);
    assert_int_equal(sizes[1], 5);
    assert_int_equal(sizes[2], 2);
}

static void test_list_exact_fit_has_no_next_page(void **state)
{
    struct fake f = {.owner = id_of(200)};
    struct status st = {&ops, &f, FAKE_NOTFOUND};
    struct status_query q = {.owner = f.owner, .limit = FAKE_ROWS};
    struct status_page page;
    (void)state;
    assert_int_equal(status_list(&st, &q, &page), STATUS_OK);
    assert_int_equal(page.n, FAKE_ROWS);
    assert_false(page.more);
    status_page_release(&page);
}

static void test_list_empty_page(void **state)
{
    struct fake f = {.owner = id_of(200)};
    struct status st = {&ops, &f, FAKE_NOTFOUND};
    struct ids_id oldest = id_of(1);
    struct status_query q = {.owner = f.owner, .after = &oldest, .limit = 3};
    struct status_page page;
    (void)state;
    assert_int_equal(status_list(&st, &q, &page), STATUS_OK);
    assert_int_equal(page.n, 0);
    assert_null(page.items);
    assert_false(page.more);
    status_page_release(&page);
}

static void test_list_passes_filters_and_refuses_bad_limits(void **state)
{
    struct fake f = {.owner = id_of(200)};
    struct status st = {&ops, &f, FAKE_NOTFOUND};
    enum task_status dead = TASK_DEAD;
    struct status_query q = {.owner = f.owner, .status = &dead, .type = "echo", .limit = 2};
    struct status_page page = {.n = 77};
    (void)state;
    assert_int_equal(status_list(&st, &q, &page), STATUS_OK);
    assert_ptr_equal(f.last_q.status, &dead);
    assert_string_equal(f.last_q.type, "echo");
    assert_true(ids_equal(&f.last_q.owner, &f.owner));
    status_page_release(&page);

    f.calls = 0;
    page.n = 77;
    q.limit = 0;
    assert_int_equal(status_list(&st, &q, &page), STATUS_EUNAVAILABLE);
    q.limit = STATUS_LIST_MAX + 1;
    assert_int_equal(status_list(&st, &q, &page), STATUS_EUNAVAILABLE);
    assert_int_equal(f.calls, 0);
    assert_int_equal(page.n, 77); /* untouched on failure */
}

static void test_list_store_failures(void **state)
{
    struct fake f = {.owner = id_of(200), .list_rc = -1};
    struct status st = {&ops, &f, FAKE_NOTFOUND};
    struct status_query q = {.owner = f.owner, .limit = 3};
    struct status_page page = {.n = 77};
    (void)state;
    assert_int_equal(status_list(&st, &q, &page), STATUS_EUNAVAILABLE);
    /* a store returning more rows than asked is refused, not trusted */
    f.list_rc = 0;
    f.extra = 2;
    assert_int_equal(status_list(&st, &q, &page), STATUS_EUNAVAILABLE);
    assert_int_equal(page.n, 77);
}

/* The page's text: every view with its payload and result spliced as stored, the
 * cursor, valid JSON; the items' payloads are given up once rendered. */
static void test_page_text_splices_views(void **state)
{
    static const char payload[] = "{ \"n\": 12345678901234567891, \"s\": \"]}\\\"\" }";
    struct fake f = {.owner = id_of(200)};
    struct status st = {&ops, &f, FAKE_NOTFOUND};
    struct status_query q = {.owner = f.owner, .limit = 3};
    struct status_page page;
    char *text;
    cJSON *doc;
    (void)state;
    assert_int_equal(status_list(&st, &q, &page), STATUS_OK);
    for (size_t i = 0; i < page.n; i++) {
        free(page.items[i].payload);
        page.items[i].payload = strdup(payload);
        page.items[i].result = strdup("[1e400]");
    }
    text = status_page_text(&page, "CURSOR_x-1");
    assert_non_null(text);
    for (size_t i = 0; i < page.n; i++)
        assert_null(page.items[i].payload); /* given up */
    status_page_release(&page);
    const char *p = text;
    size_t seen = 0;
    while ((p = strstr(p, payload))) {
        seen++;
        p += sizeof payload - 1;
    }
    assert_int_equal(seen, 3);
    assert_non_null(strstr(text, "\"result\":[1e400]"));
    doc = cJSON_Parse(text);
    assert_non_null(doc);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(doc, "items")), 3);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(doc, "next_cursor")->valuestring,
                        "CURSOR_x-1");
    cJSON_Delete(doc);
    free(text);

    /* an empty last page */
    struct status_page empty = {0};
    text = status_page_text(&empty, NULL);
    assert_string_equal(text, "{\"items\":[],\"next_cursor\":null}");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_checks_the_owner),
        cmocka_unit_test(test_list_pages_until_no_more),
        cmocka_unit_test(test_list_exact_fit_has_no_next_page),
        cmocka_unit_test(test_list_empty_page),
        cmocka_unit_test(test_list_passes_filters_and_refuses_bad_limits),
        cmocka_unit_test(test_list_store_failures),
        cmocka_unit_test(test_page_text_splices_views),
    };
    return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
