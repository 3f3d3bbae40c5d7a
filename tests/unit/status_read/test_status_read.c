/* status reader (the cached read path) against a fake store and a fake Redis layer:
 * layer order and fills, one store query for many concurrent misses, the owner check
 * after every layer, negative entries, invalidation (and its fence against a racing
 * fill), the LRU off while events are down, failures, and long-polls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "status/status.h"

enum { FAKE_NOTFOUND = -7, FAKE_DOWN = -9, MAX_ROWS = 8 };

/* --- the fake store: a few rows, a gate that can hold get() --------------------- */

struct fake_store {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct task rows[MAX_ROWS];
    int n;
    int gets; /* get() calls */
    bool down;
    bool gated; /* get() waits while set */
    int in_get; /* callers inside get() (waiting at the gate included) */
};

static struct ids_id id_of(int n)
{
    struct ids_id id = {{0}};
    id.b[0] = 0x01;
    id.b[15] = (uint8_t)n;
    return id;
}

static int f_get(void *ctx, const struct ids_id *id, struct task *ret_task)
{
    struct fake_store *f = ctx;
    int rc = FAKE_NOTFOUND;
    pthread_mutex_lock(&f->mu);
    f->gets++;
    f->in_get++;
    pthread_cond_broadcast(&f->cv);
    while (f->gated)
        pthread_cond_wait(&f->cv, &f->mu);
    if (f->down) {
        rc = FAKE_DOWN;
    } else {
        for (int i = 0; i < f->n; i++) {
            if (ids_equal(&f->rows[i].id, id)) {
                struct task t = f->rows[i];
                t.payload = strdup(f->rows[i].payload);
                t.result = t.last_error = t.ordering_key = t.callback_url = NULL;
                assert_non_null(t.payload);
                *ret_task = t;
                rc = 0;
                break;
            }
        }
    }
    f->in_get--;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

static const struct status_store_ops store_ops = {.get = f_get};

static void add_row(struct fake_store *f, int n, const struct ids_id *owner, enum task_status st)
{
    struct task *t = &f->rows[f->n++];
    memset(t, 0, sizeof *t);
    t->id = id_of(n);
    t->user_id = *owner;
    t->has_user = true;
    snprintf(t->type, sizeof t->type, "echo");
    t->status = st;
    t->attempts = 0;
    t->max_attempts = 5;
    t->payload = "{\"n\":1}";
    t->created_at = t->updated_at = 1700000000000000LL + n;
}

/* Moves row n on (as a worker would), under the store's lock. */
static void change_row(struct fake_store *f, int n, enum task_status st)
{
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->n; i++) {
        if (f->rows[i].id.b[15] == n) {
            f->rows[i].status = st;
            f->rows[i].attempts++;
            f->rows[i].updated_at += 1000;
        }
    }
    pthread_mutex_unlock(&f->mu);
}

static void set_gate(struct fake_store *f, bool on)
{
    pthread_mutex_lock(&f->mu);
    f->gated = on;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void wait_in_get(struct fake_store *f, int n)
{
    pthread_mutex_lock(&f->mu);
    while (f->in_get < n)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

static int gets_of(struct fake_store *f)
{
    int n;
    pthread_mutex_lock(&f->mu);
    n = f->gets;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* --- the fake Redis layer: one slot per id, leases as in cache.h ----------------- */

struct fake_cache {
    pthread_mutex_t mu;
    struct {
        struct ids_id id;
        void *value;
        size_t len;
        uint64_t lease;
        int64_t version;
        int ttl_ms;
    } slot[MAX_ROWS * 2];
    int n;
    int gets, fills;
    bool down;
    uint64_t next_lease;
};

static int slot_of(struct fake_cache *c, const struct ids_id *id)
{
    for (int i = 0; i < c->n; i++) {
        if (ids_equal(&c->slot[i].id, id))
            return i;
    }
    c->slot[c->n].id = *id;
    return c->n++;
}

static int c_get(void *ctx, const struct ids_id *id, struct status_cache_entry *ret_entry)
{
    struct fake_cache *c = ctx;
    struct status_cache_entry e = {NULL, 0, 0};
    int s;
    pthread_mutex_lock(&c->mu);
    c->gets++;
    if (c->down) {
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    s = slot_of(c, id);
    if (c->slot[s].value) {
        e.value = malloc(c->slot[s].len);
        assert_non_null(e.value);
        memcpy(e.value, c->slot[s].value, c->slot[s].len);
        e.len = c->slot[s].len;
    } else if (!c->slot[s].lease) {
        e.lease = c->slot[s].lease = ++c->next_lease;
    }
    pthread_mutex_unlock(&c->mu);
    *ret_entry = e;
    return 0;
}

static int c_fill(void *ctx, const struct ids_id *id, uint64_t lease, int64_t version,
                  const void *value, size_t len, int ttl_ms)
{
    struct fake_cache *c = ctx;
    int s;
    pthread_mutex_lock(&c->mu);
    s = slot_of(c, id);
    if (c->slot[s].lease == lease) {
        c->fills++;
        free(c->slot[s].value);
        c->slot[s].value = malloc(len);
        assert_non_null(c->slot[s].value);
        memcpy(c->slot[s].value, value, len);
        c->slot[s].len = len;
        c->slot[s].lease = 0;
        c->slot[s].version = version;
        c->slot[s].ttl_ms = ttl_ms;
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* A writer's DEL. */
static void c_del(struct fake_cache *c, const struct ids_id *id)
{
    int s;
    pthread_mutex_lock(&c->mu);
    s = slot_of(c, id);
    free(c->slot[s].value);
    c->slot[s].value = NULL;
    c->slot[s].lease = 0;
    pthread_mutex_unlock(&c->mu);
}

static const struct status_cache_ops cache_ops = {c_get, c_fill};

/* --- fixture ------------------------------------------------------------------------ */

struct env {
    struct fake_store store;
    struct fake_cache cache;
    struct status st;
    struct status_reader *r;
    struct ids_id alice, bob;
};

static struct status_read_config default_cfg(void)
{
    return (struct status_read_config){.lru_entries = 100,
                                       .lru_ttl_ms = 60000,
                                       .negative_ttl_ms = 60000,
                                       .redis_ttl_ms = 30000,
                                       .redis_terminal_ttl_ms = 600000,
                                       .threads = 4,
                                       .queue_max = 256};
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    struct status_read_config cfg = default_cfg();
    assert_non_null(e);
    pthread_mutex_init(&e->store.mu, NULL);
    pthread_cond_init(&e->store.cv, NULL);
    pthread_mutex_init(&e->cache.mu, NULL);
    e->alice = id_of(200);
    e->bob = id_of(201);
    add_row(&e->store, 1, &e->alice, TASK_QUEUED);
    add_row(&e->store, 2, &e->alice, TASK_SUCCEEDED);
    e->st = (struct status){&store_ops, &e->store, FAKE_NOTFOUND};
    assert_int_equal(status_reader_new(&cfg, &e->st, &cache_ops, &e->cache, &e->r), STATUS_OK);
    status_events(e->r, true);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    status_reader_free(e->r);
    for (int i = 0; i < e->cache.n; i++)
        free(e->cache.slot[i].value);
    pthread_mutex_destroy(&e->cache.mu);
    pthread_cond_destroy(&e->store.cv);
    pthread_mutex_destroy(&e->store.mu);
    free(e);
    return 0;
}

/* A call the test can wait for. */
struct waiter {
    struct status_call call;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
    struct status_view view; /* a copy (json owned) */
    int64_t done_at;
};

static void on_done(struct status_call *call, int rc, const struct status_view *view)
{
    struct waiter *w = call->arg;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    if (view) {
        w->view = *view;
        w->view.json = strdup(view->json);
        assert_non_null(w->view.json);
    }
    w->done_at = status_now_ms();
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void waiter_init(struct waiter *w, const struct ids_id *id, const struct ids_id *owner)
{
    memset(w, 0, sizeof *w);
    w->call.id = *id;
    w->call.owner = *owner;
    w->call.done = on_done;
    w->call.arg = w;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static int waiter_wait(struct waiter *w)
{
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return w->rc;
}

static bool is_done(struct waiter *w)
{
    bool done;
    pthread_mutex_lock(&w->mu);
    done = w->done;
    pthread_mutex_unlock(&w->mu);
    return done;
}

static void waiter_release(struct waiter *w)
{
    status_view_release(&w->view);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

/* Fetches synchronously (a fresh waiter). */
static int fetch(struct env *e, int n, const struct ids_id *owner, struct status_view *ret_view)
{
    struct waiter w;
    struct ids_id id = id_of(n);
    int rc;
    waiter_init(&w, &id, owner);
    assert_int_equal(status_fetch(e->r, &w.call), 0);
    rc = waiter_wait(&w);
    if (ret_view && rc == STATUS_OK) {
        *ret_view = w.view;
        w.view.json = NULL;
    }
    waiter_release(&w);
    return rc;
}

/* --- tests --------------------------------------------------------------------------- */

static void test_layers_in_order(void **state)
{
    struct env *e = *state;
    struct ids_id id = id_of(1);
    struct status_view v;

    assert_int_equal(status_cached(e->r, &id, &e->alice, &v), STATUS_EMISS);
    /* cold: Redis misses (and leases), the store answers, both caches are filled */
    assert_int_equal(fetch(e, 1, &e->alice, &v), STATUS_OK);
    assert_true(ids_equal(&v.id, &id));
    assert_int_equal(v.status, TASK_QUEUED);
    assert_int_equal(v.updated_at, e->store.rows[0].updated_at);
    assert_non_null(strstr(v.json, "\"status\":\"QUEUED\""));
    assert_int_equal(strlen(v.json), v.json_len);
    status_view_release(&v);
    assert_int_equal(gets_of(&e->store), 1);
    assert_int_equal(e->cache.fills, 1);
    assert_int_equal(e->cache.slot[0].version, e->store.rows[0].updated_at);
    assert_int_equal(e->cache.slot[0].ttl_ms, 30000);

    /* warm: the LRU, on this thread */
    assert_int_equal(status_cached(e->r, &id, &e->alice, &v), STATUS_OK);
    assert_non_null(strstr(v.json, "\"status\":\"QUEUED\""));
    status_view_release(&v);

    /* LRU gone: Redis answers; the store is not asked */
    status_events(e->r, false);
    status_events(e->r, true);
    assert_int_equal(status_cached(e->r, &id, &e->alice, &v), STATUS_EMISS);
    assert_int_equal(fetch(e, 1, &e->alice, NULL), STATUS_OK);
    assert_int_equal(gets_of(&e->store), 1);
    assert_int_equal(e->cache.gets, 2);
    assert_int_equal(status_cached(e->r, &id, &e->alice, &v), STATUS_OK);
    status_view_release(&v);

    /* a terminal task's Redis entry lives longer */
    assert_int_equal(fetch(e, 2, &e->alice, NULL), STATUS_OK);
    assert_int_equal(e->cache.slot[1].ttl_ms, 600000);
}

static void test_owner_checked_after_every_layer(void **state)
{
    struct env *e = *state;
    struct ids_id id = id_of(1);
    struct status_view v;

    /* the store's answer */
    assert_int_equal(fetch(e, 1, &e->bob, NULL), STATUS_ENOTFOUND);
    /* the LRU's (filled by the store's answer to bob) */
    assert_int_equal(status_cached(e->r, &id, &e->bob, &v), STATUS_ENOTFOUND);
    assert_int_equal(status_cached(e->r, &id, &e->alice, &v), STATUS_OK);
    status_view_release(&v);
    /* Redis's */
    status_events(e->r, true);
    assert_int_equal(fetch(e, 1, &e->bob, NULL), STATUS_ENOTFOUND);
    assert_int_equal(gets_of(&e->store), 1);
    assert_int_equal(fetch(e, 1, &e->alice, NULL), STATUS_OK);
}

static void test_unknown_ids_are_cached_negatively(void **state)
{
    struct env *e = *state;
    struct ids_id id = id_of(9);
    struct status_view v;
    assert_int_equal(fetch(e, 9, &e->alice, NULL), STATUS_ENOTFOUND);
    assert_int_equal(gets_of(&e->store), 1);
    assert_int_equal(e->cache.slot[0].ttl_ms, 60000); /* negative_ttl_ms */
    assert_int_equal(status_cached(e->r, &id, &e->alice, &v), STATUS_ENOTFOUND);
    status_events(e->r, true); /* LRU dropped: Redis holds the negative entry */
    assert_int_equal(fetch(e, 9, &e->alice, NULL), STATUS_ENOTFOUND);
    assert_int_equal(gets_of(&e->store), 1);
}

enum { CONCURRENT = 100 };

static void test_concurrent_misses_cost_one_store_query(void **state)
{
    struct env *e = *state;
    struct ids_id id = id_of(1);
    struct waiter *ws = calloc(CONCURRENT, sizeof *ws);
    assert_non_null(ws);
    set_gate(&e->store, true);
    for (int i = 0; i < CONCURRENT; i++) {
        waiter_init(&ws[i], &id, i % 2 ? &e->alice : &e->bob);
        assert_int_equal(status_fetch(e->r, &ws[i].call), 0);
        if (i == 0)
            wait_in_get(&e->store, 1); /* the flight is in the air */
    }
    set_gate(&e->store, false);
    for (int i = 0; i < CONCURRENT; i++) {
        /* one result, and each caller's own owner check */
        assert_int_equal(waiter_wait(&ws[i]), i % 2 ? STATUS_OK : STATUS_ENOTFOUND);
        waiter_release(&ws[i]);
    }
    assert_int_equal(gets_of(&e->store), 1);
    assert_int_equal(e->cache.gets, 1);
    free(ws);
}

static void test_event_evicts_and_fences_a_racing_fill(void **state)
{
    struct env *e = *state;
    struct ids_id id = id_of(1);
    struct status_view v;
    struct waiter w;

    assert_int_equal(fetch(e, 1, &e->alice, NULL), STATUS_OK);
    /* a worker moves it: the store first, then Redis, then the event */
    change_row(&e->store, 1, TASK_RUNNING);
    c_del(&e->cache, &id);
    status_changed(e->r, &id);
    assert_int_equal(status_cached(e->r, &id, &e->alice, &v), STATUS_EMISS);
    assert_int_equal(fetch(e, 1, &e->alice, &v), STATUS_OK);
    assert_int_equal(v.status, TASK_RUNNING);
    status_view_release(&v);
    assert_int_equal(gets_of(&e->store), 2);

    /* an event that lands while a lookup is reading the store: the lookup's answer
     * is not cached (it may be older than the change) */
    c_del(&e->cache, &id);
    status_changed(e->r, &id);
    set_gate(&e->store, true);
    waiter_init(&w, &id, &e->alice);
    assert_int_equal(status_fetch(e->r, &w.call), 0);
    wait_in_get(&e->store, 1);
    status_changed(e->r, &id);
    set_gate(&e->store, false);
    assert_int_equal(waiter_wait(&w), STATUS_OK);
    waiter_release(&w);
    assert_int_equal(status_cached(e->r, &id, &e->alice, &v), STATUS_EMISS);
}

static void test_lru_off_while_events_are_down(void **state)
{
    struct env *e = *state;
    struct ids_id id = id_of(1);
    struct status_view v;
    status_events(e->r, false);
    assert_int_equal(fetch(e, 1, &e->alice, NULL), STATUS_OK);
    assert_int_equal(status_cached(e->r, &id, &e->alice, &v), STATUS_EMISS);
    status_events(e->r, true);
    assert_int_equal(status_cached(e->r, &id, &e->alice, &v), STATUS_EMISS);
    assert_int_equal(fetch(e, 1, &e->alice, NULL), STATUS_OK);
    assert_int_equal(status_cached(e->r, &id, &e->alice, &v), STATUS_OK);
    status_view_release(&v);
}

static void test_failures(void **state)
{
    struct env *e = *state;
    /* Redis down: the store answers (and nothing is filled) */
    e->cache.down = true;
    assert_int_equal(fetch(e, 1, &e->alice, NULL), STATUS_OK);
    assert_int_equal(gets_of(&e->store), 1);
    assert_int_equal(e->cache.fills, 0);
    /* the store down too: unavailable, and nothing cached */
    status_events(e->r, true);
    e->store.down = true;
    assert_int_equal(fetch(e, 2, &e->alice, NULL), STATUS_EUNAVAILABLE);
    e->store.down = false;
    assert_int_equal(fetch(e, 2, &e->alice, NULL), STATUS_OK);
    assert_int_equal(gets_of(&e->store), 3);
}

static void test_long_poll_woken_by_an_event(void **state)
{
    struct env *e = *state;
    struct ids_id id = id_of(1);
    struct status_view v;
    struct waiter w;

    assert_int_equal(fetch(e, 1, &e->alice, &v), STATUS_OK);
    waiter_init(&w, &id, &e->alice);
    status_view_version(&v, &w.call.seen);
    status_view_release(&v);
    w.call.deadline_ms = status_now_ms() + 10000;
    assert_int_equal(status_wait(e->r, &w.call), 0);
    usleep(50000);
    assert_false(is_done(&w));
    /* an event for another task wakes nothing */
    {
        struct ids_id other = id_of(2);
        status_changed(e->r, &other);
        usleep(20000);
        assert_false(is_done(&w));
    }
    change_row(&e->store, 1, TASK_RUNNING);
    c_del(&e->cache, &id);
    status_changed(e->r, &id);
    assert_int_equal(waiter_wait(&w), STATUS_OK);
    assert_int_equal(w.view.status, TASK_RUNNING);
    assert_true(w.done_at < w.call.deadline_ms);
    waiter_release(&w);
}

static void test_long_poll_spurious_wake_waits_on(void **state)
{
    struct env *e = *state;
    struct ids_id id = id_of(1);
    struct status_view v;
    struct waiter w;
    int64_t start;

    assert_int_equal(fetch(e, 1, &e->alice, &v), STATUS_OK);
    waiter_init(&w, &id, &e->alice);
    status_view_version(&v, &w.call.seen);
    status_view_release(&v);
    start = status_now_ms();
    w.call.deadline_ms = start + 300;
    assert_int_equal(status_wait(e->r, &w.call), 0);
    /* an event without a change (and a reconnect): looks, finds nothing new, waits */
    status_changed(e->r, &id);
    status_events(e->r, true);
    /* the deadline: answered with the unchanged task */
    assert_int_equal(waiter_wait(&w), STATUS_OK);
    assert_int_equal(w.view.status, TASK_QUEUED);
    assert_true(w.done_at >= start + 300);
    assert_true(w.done_at < start + 300 + 1500);
    waiter_release(&w);
}

static void test_long_poll_answered_on_stop(void **state)
{
    struct env *e = *state;
    struct ids_id id = id_of(1);
    struct status_view v;
    struct waiter w, late;

    assert_int_equal(fetch(e, 1, &e->alice, &v), STATUS_OK);
    waiter_init(&w, &id, &e->alice);
    status_view_version(&v, &w.call.seen);
    status_view_release(&v);
    w.call.deadline_ms = status_now_ms() + 60000;
    assert_int_equal(status_wait(e->r, &w.call), 0);
    status_reader_stop(e->r);
    assert_true(is_done(&w));
    assert_int_equal(w.rc, STATUS_OK);
    waiter_release(&w);
    /* stopped: nothing new is taken */
    waiter_init(&late, &id, &e->alice);
    late.call.deadline_ms = status_now_ms() + 60000;
    assert_int_equal(status_wait(e->r, &late.call), STATUS_EUNAVAILABLE);
    assert_int_equal(status_fetch(e->r, &late.call), STATUS_EUNAVAILABLE);
    waiter_release(&late);
}

static void test_no_cache_layer(void **state)
{
    struct env *e = *state;
    struct status_read_config cfg = default_cfg();
    struct status_reader *r;
    struct waiter w;
    struct ids_id id = id_of(1);
    (void)state;
    assert_int_equal(status_reader_new(&cfg, &e->st, NULL, NULL, &r), STATUS_OK);
    waiter_init(&w, &id, &e->alice);
    assert_int_equal(status_fetch(r, &w.call), 0);
    assert_int_equal(waiter_wait(&w), STATUS_OK);
    waiter_release(&w);
    status_reader_free(r);
    cfg.threads = 0;
    assert_int_equal(status_reader_new(&cfg, &e->st, NULL, NULL, &r), STATUS_EUNAVAILABLE);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_layers_in_order),
        T(test_owner_checked_after_every_layer),
        T(test_unknown_ids_are_cached_negatively),
        T(test_concurrent_misses_cost_one_store_query),
        T(test_event_evicts_and_fences_a_racing_fill),
        T(test_lru_off_while_events_are_down),
        T(test_failures),
        T(test_long_poll_woken_by_an_event),
        T(test_long_poll_spurious_wake_waits_on),
        T(test_long_poll_answered_on_stop),
        T(test_no_cache_layer),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
