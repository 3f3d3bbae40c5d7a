/* Unit tests for internal/ratelimit with a fake store (token buckets in memory, on the
 * same hand-driven clock) and exchanges run by hand: scopes and their order, the first
 * request of a quiet key admitted without waiting, leases, the dry wait, accuracy over a
 * long flood, two limiters sharing one store, the fallback to local buckets and back,
 * the off switch, and many keys in a small table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit/ratelimit.h"
#include "tokenbucket/tokenbucket.h"

#define S 1000000LL

struct fake_store {
    int64_t now;
    bool down;
    int calls;
    long long used_total;
    size_t n;
    struct {
        char key[96];
        struct tokenbucket b;
    } keys[64];
};

static int64_t fake_clock(void *ctx)
{
    return ((struct fake_store *)ctx)->now;
}

static int fake_take(void *ctx, const char *key, size_t klen, double rate, double burst,
                     long long used, long long want, long long *ret_granted, int64_t *ret_wait_us)
{
    struct fake_store *f = ctx;
    struct tokenbucket *b = NULL;
    long long g = 0;
    double t;
    f->calls++;
    if (f->down)
        return -1;
    for (size_t i = 0; i < f->n && !b; i++) {
        if (strlen(f->keys[i].key) == klen && memcmp(f->keys[i].key, key, klen) == 0)
            b = &f->keys[i].b;
    }
    if (!b) {
        assert_true(f->n < 64);
        memcpy(f->keys[f->n].key, key, klen);
        f->keys[f->n].key[klen] = '\0';
        b = &f->keys[f->n++].b;
        tokenbucket_init(b, rate, burst, f->now);
    }
    f->used_total += used;
    tokenbucket_charge(b, (double)used, f->now);
    t = tokenbucket_tokens(b, f->now);
    if (t >= 1)
        g = (long long)fmin((double)want, floor(t));
    tokenbucket_charge(b, (double)g, f->now);
    *ret_granted = g;
    *ret_wait_us = tokenbucket_wait_us(b, 1, f->now);
    return 0;
}

static const struct ratelimit_store_ops fake_ops = {fake_take};

static struct ratelimit_config config(struct fake_store *f, bool with_store)
{
    struct ratelimit_config c = {
        .enabled = true,
        .policy =
            {
                [RATELIMIT_TASKS_USER] = {true, 100, 1, 10},
                [RATELIMIT_TASKS_GLOBAL] = {true, 1000, 1, 1000},
                [RATELIMIT_AUTH_ADDR] = {true, 6, 60, 3},
                [RATELIMIT_AUTH_EMAIL] = {true, 2, 60, 2},
            },
        .lease_ms = 10,
        .max_keys = 1024,
        .store = with_store ? &fake_ops : NULL,
        .store_ctx = f,
        .clock = fake_clock,
        .clock_ctx = f,
        .manual_sync = true,
    };
    return c;
}

static struct ratelimit *make(const struct ratelimit_config *c)
{
    struct ratelimit *rl = NULL;
    assert_int_equal(ratelimit_new(c, &rl), RATELIMIT_OK);
    return rl;
}

static bool task(struct ratelimit *rl, const char *user, struct ratelimit_verdict *v)
{
    ratelimit_tasks(rl, user, v);
    return v->allowed;
}

static void test_local_buckets_per_user_and_global(void **state)
{
    struct fake_store f = {.now = S};
    struct ratelimit_config c = config(&f, false);
    struct ratelimit *rl;
    struct ratelimit_verdict v;
    (void)state;
    c.policy[RATELIMIT_TASKS_GLOBAL] = (struct ratelimit_policy){true, 15, 1, 15};
    rl = make(&c);
    for (int i = 0; i < 10; i++)
        assert_true(task(rl, "alice", &v));
    assert_false(task(rl, "alice", &v));
    assert_int_equal(v.scope, RATELIMIT_TASKS_USER);
    assert_int_equal(v.retry_after_s, 1);
    /* another user has a budget of their own, up to the global one */
    for (int i = 0; i < 5; i++)
        assert_true(task(rl, "bob", &v));
    assert_false(task(rl, "bob", &v));
    assert_int_equal(v.scope, RATELIMIT_TASKS_GLOBAL);
    assert_false(ratelimit_shared(rl));
    /* refilled at the rate: 100/s is one per 10 ms (and 15/s globally) */
    f.now += 70000;
    assert_true(task(rl, "alice", &v));
    ratelimit_free(rl);
}

static void test_off_switch_and_off_scopes(void **state)
{
    struct fake_store f = {.now = S};
    struct ratelimit_config c = config(&f, true);
    struct ratelimit *rl;
    struct ratelimit_verdict v;
    (void)state;
    c.enabled = false;
    rl = make(&c);
    assert_false(ratelimit_enabled(rl));
    for (int i = 0; i < 1000; i++)
        assert_true(task(rl, "alice", &v));
    assert_int_equal(ratelimit_sync(rl), 0);
    assert_int_equal(f.calls, 0);
    ratelimit_free(rl);

    c = config(&f, false);
    c.policy[RATELIMIT_TASKS_USER].on = false;
    c.policy[RATELIMIT_TASKS_GLOBAL].on = false;
    rl = make(&c);
    for (int i = 0; i < 1000; i++)
        assert_true(task(rl, "alice", &v));
    ratelimit_free(rl);
}

static void test_first_request_needs_no_exchange_and_leases_follow(void **state)
{
    struct fake_store f = {.now = S};
    struct ratelimit_config c = config(&f, true);
    struct ratelimit *rl = make(&c);
    struct ratelimit_verdict v;
    (void)state;
    assert_true(ratelimit_shared(rl));
    /* a lease is 100/s * 10 ms = 1 token, but 4 may be spent on credit before any
     * exchange: a client's next requests need not wait for it */
    for (int i = 0; i < 4; i++)
        assert_true(task(rl, "alice", &v));
    assert_int_equal(f.calls, 0);
    assert_false(task(rl, "alice", &v)); /* then nothing until the exchange */
    assert_int_equal(v.scope, RATELIMIT_TASKS_USER);
    assert_true(ratelimit_sync(rl) >= 1);
    assert_int_equal(f.used_total, 8); /* alice's 4 and the global ones, reported */
    /* the lease arrived: admitted from it without waiting */
    assert_true(task(rl, "alice", &v));
    ratelimit_free(rl);
}

static void test_dry_bucket_answers_its_wait_and_sends_nothing(void **state)
{
    struct fake_store f = {.now = S};
    struct ratelimit_config c = config(&f, true);
    struct ratelimit *rl;
    struct ratelimit_verdict v;
    int calls;
    (void)state;
    c.policy[RATELIMIT_TASKS_USER] = (struct ratelimit_policy){true, 1, 10, 2}; /* 0.1/s */
    rl = make(&c);
    for (int round = 0; round < 4; round++) {
        task(rl, "alice", &v);
        ratelimit_sync(rl);
    }
    assert_false(task(rl, "alice", &v));
    assert_int_equal(v.scope, RATELIMIT_TASKS_USER);
    assert_true(v.retry_after_s >= 5 && v.retry_after_s <= 10);
    calls = f.calls;
    for (int i = 0; i < 100; i++)
        assert_false(task(rl, "alice", &v));
    ratelimit_sync(rl);
    assert_int_equal(f.calls, calls); /* refused locally until the next token is due */
    f.now += 10 * S;
    assert_true(task(rl, "alice", &v));
    ratelimit_free(rl);
}

/* A flood probing every 100 us for secs, exchanges every every_us: burst + rate * secs. */
static long flood_every(struct ratelimit *const *rls, size_t n, struct fake_store *f, int64_t secs,
                        int64_t every_us)
{
    struct ratelimit_verdict v;
    long admitted = 0;
    int64_t end = f->now + secs * S;
    for (int64_t step = 0; f->now < end; f->now += 100, step++) {
        for (size_t i = 0; i < n; i++)
            admitted += task(rls[i], "alice", &v);
        if (step % (every_us / 100) == 0) {
            for (size_t i = 0; i < n; i++)
                ratelimit_sync(rls[i]);
        }
    }
    return admitted;
}

static long flood(struct ratelimit *const *rls, size_t n, struct fake_store *f, int64_t secs)
{
    return flood_every(rls, n, f, secs, 1000);
}

/* Exchanges that take 50 ms (a loaded box): leases grow to outlast them, so the flood
 * still gets the rate (a fixed 1-token lease would give it 2 tokens per 50 ms). */
static void test_slow_exchanges_grow_the_lease(void **state)
{
    struct fake_store f = {.now = S};
    struct ratelimit_config c = config(&f, true);
    struct ratelimit *rl = make(&c);
    long admitted, expect = 10 + 100 * 10;
    (void)state;
    admitted = flood_every(&rl, 1, &f, 10, 50000);
    assert_true(labs(admitted - expect) <= expect / 20);
    ratelimit_free(rl);
}

static void test_flood_is_admitted_at_the_rate(void **state)
{
    struct fake_store f = {.now = S};
    struct ratelimit_config c = config(&f, true);
    struct ratelimit *rl = make(&c);
    long admitted, expect = 10 + 100 * 10;
    (void)state;
    admitted = flood(&rl, 1, &f, 10);
    assert_true(labs(admitted - expect) <= expect / 20);
    ratelimit_free(rl);
}

static void test_two_limiters_share_one_budget(void **state)
{
    struct fake_store f = {.now = S};
    struct ratelimit_config c = config(&f, true);
    struct ratelimit *rls[2] = {make(&c), make(&c)};
    long admitted, expect = 10 + 100 * 10;
    (void)state;
    admitted = flood(rls, 2, &f, 10);
    /* not twice the rate: one budget, within 5 % */
    assert_true(labs(admitted - expect) <= expect / 20);
    ratelimit_free(rls[0]);
    ratelimit_free(rls[1]);
}

static void test_fallback_to_local_buckets_and_back(void **state)
{
    struct fake_store f = {.now = S};
    struct ratelimit_config c = config(&f, true);
    struct ratelimit *rl = make(&c);
    struct ratelimit_verdict v;
    long admitted;
    (void)state;
    flood(&rl, 1, &f, 1); /* alice is being limited */
    f.down = true;
    task(rl, "dave", &v); /* a new key: its exchange finds the store gone */
    ratelimit_sync(rl);
    assert_false(ratelimit_shared(rl));
    /* local buckets: still the rate, and no fresh burst for the flood */
    admitted = flood(&rl, 1, &f, 2);
    assert_true(admitted >= 190 && admitted <= 211);
    /* a quiet user is admitted in fallback */
    assert_true(task(rl, "bob", &v));
    f.down = false;
    f.now += S; /* past the probe interval */
    task(rl, "carol", &v);
    ratelimit_sync(rl);
    assert_true(ratelimit_shared(rl));
    admitted = flood(&rl, 1, &f, 2);
    assert_true(admitted >= 190 && admitted <= 231);
    ratelimit_free(rl);
}

static void test_auth_per_address_then_per_email(void **state)
{
    struct fake_store f = {.now = S};
    struct ratelimit_config c = config(&f, false);
    struct ratelimit *rl = make(&c);
    struct ratelimit_verdict v;
    (void)state;
    /* per email: burst 2, and the case does not matter */
    ratelimit_auth(rl, "10.0.0.1", "Eve@Example.com", &v);
    assert_true(v.allowed);
    ratelimit_auth(rl, "10.0.0.2", "eve@example.com", &v);
    assert_true(v.allowed);
    ratelimit_auth(rl, "10.0.0.3", "EVE@example.COM", &v);
    assert_false(v.allowed);
    assert_int_equal(v.scope, RATELIMIT_AUTH_EMAIL);
    assert_true(v.retry_after_s >= 29 && v.retry_after_s <= 30);
    /* per address: burst 3, whatever the emails */
    ratelimit_auth(rl, "10.0.0.9", "a@example.com", &v);
    assert_true(v.allowed);
    ratelimit_auth(rl, "10.0.0.9", "b@example.com", &v);
    assert_true(v.allowed);
    ratelimit_auth(rl, "10.0.0.9", NULL, &v);
    assert_true(v.allowed);
    ratelimit_auth(rl, "10.0.0.9", "c@example.com", &v);
    assert_false(v.allowed);
    assert_int_equal(v.scope, RATELIMIT_AUTH_ADDR);
    assert_int_equal(v.retry_after_s, 10);
    ratelimit_free(rl);
}

static void test_many_keys_in_a_small_table(void **state)
{
    struct fake_store f = {.now = S};
    struct ratelimit_config c = config(&f, false);
    struct ratelimit *rl;
    struct ratelimit_verdict v;
    char user[32];
    (void)state;
    c.max_keys = 64;
    c.policy[RATELIMIT_TASKS_GLOBAL].on = false;
    rl = make(&c);
    for (int i = 0; i < 10000; i++) {
        snprintf(user, sizeof user, "user-%d", i);
        assert_true(task(rl, user, &v)); /* each new key starts with a full bucket */
    }
    /* a key over the limit stays refused while it is in use */
    for (int i = 0; i < 10; i++)
        task(rl, "mallory", &v);
    assert_false(task(rl, "mallory", &v));
    ratelimit_free(rl);
}

static void test_bad_configs_are_refused(void **state)
{
    struct fake_store f = {.now = S};
    struct ratelimit_config c = config(&f, false);
    struct ratelimit *rl = NULL;
    (void)state;
    c.lease_ms = 0;
    assert_int_equal(ratelimit_new(&c, &rl), RATELIMIT_EINVAL);
    c = config(&f, false);
    c.policy[RATELIMIT_AUTH_ADDR].burst = 0;
    assert_int_equal(ratelimit_new(&c, &rl), RATELIMIT_EINVAL);
    assert_null(rl);
    assert_string_equal(ratelimit_scope_name(RATELIMIT_TASKS_GLOBAL), "tasks-global");
    ratelimit_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_buckets_per_user_and_global),
        cmocka_unit_test(test_off_switch_and_off_scopes),
        cmocka_unit_test(test_first_request_needs_no_exchange_and_leases_follow),
        cmocka_unit_test(test_dry_bucket_answers_its_wait_and_sends_nothing),
        cmocka_unit_test(test_flood_is_admitted_at_the_rate),
        cmocka_unit_test(test_two_limiters_share_one_budget),
        cmocka_unit_test(test_slow_exchanges_grow_the_lease),
        cmocka_unit_test(test_fallback_to_local_buckets_and_back),
        cmocka_unit_test(test_auth_per_address_then_per_email),
        cmocka_unit_test(test_many_keys_in_a_small_table),
        cmocka_unit_test(test_bad_configs_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
