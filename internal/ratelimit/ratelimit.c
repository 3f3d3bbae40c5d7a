/* ratelimit — decisions on leases, the exchanges that top them up, the fallback. */
#include "ratelimit/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "tokenbucket/tokenbucket.h"

#define STRIPES        64
#define KEY_MAX        128  /* "<scope>:<quota>/<window>:<burst>:<key>", an IPv6 /64 at most */
#define QUEUE_MAX      4096 /* keys waiting for an exchange; beyond, a key waits for its next use */
#define PROBE_EVERY_US 500000
/* Tokens a key may spend on credit while its exchange is under way, at least: with a
 * one-token lease (any rate under 100/s), a client's second request can come back
 * before the exchange of its first (measured: the e2e suite's sign-ins, back to back,
 * got spurious 429s with a full bucket).  At most the burst. */
#define CREDIT_MIN 4

static const char *const scope_names[RATELIMIT_N_SCOPES] = {
    [RATELIMIT_TASKS_USER] = "tasks-user",
    [RATELIMIT_TASKS_GLOBAL] = "tasks-global",
    [RATELIMIT_AUTH_ADDR] = "auth-addr",
    [RATELIMIT_AUTH_EMAIL] = "auth-email",
};

struct entry {
    struct entry *chain;         /* the stripe's hash chain */
    struct entry *newer, *older; /* the stripe's recency list */
    uint64_t hash;
    enum ratelimit_scope scope;
    size_t klen;
    char key[KEY_MAX];
    struct tokenbucket local; /* decides in fallback; charged always */
    double credit;            /* tokens the store granted and that are not spent yet */
    long long owed;           /* admitted beyond the credit: to report */
    int64_t dry_until_us;     /* the store's bucket holds no token before then */
    int64_t queued_at_us;     /* when the exchange under way was asked for */
    bool queued;              /* an exchange is queued or under way */
};

struct slot {
    struct entry *head;
};

struct stripe {
    pthread_mutex_t mu;
    struct slot *slots; /* nslots chains */
    size_t nslots;
    struct entry recent; /* sentinel: recent.older is the most recent entry */
    size_t n, cap;
};

struct queued_key {
    enum ratelimit_scope scope;
    size_t klen;
    char key[KEY_MAX];
};

struct ratelimit {
    struct ratelimit_config cfg;
    double rate[RATELIMIT_N_SCOPES];
    atomic_llong cycle_us; /* exchanges' time from queued to answered, smoothed (1/8) */
    struct stripe stripes[STRIPES];

    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    struct queued_key *queue; /* a ring of QUEUE_MAX */
    size_t qhead, qlen;
    bool stopping;
    pthread_t thread;
    bool started;

    atomic_bool shared;         /* the last exchange worked */
    atomic_llong next_probe_us; /* in fallback: no exchange before then */
};

const char *ratelimit_scope_name(enum ratelimit_scope s)
{
    return (unsigned)s < RATELIMIT_N_SCOPES ? scope_names[s] : "unknown";
}

static int64_t now_us(const struct ratelimit *rl)
{
    struct timespec ts;
    if (rl->cfg.clock)
        return rl->cfg.clock(rl->cfg.clock_ctx);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* FNV-1a: keys are short and the stripe count small; hostile keys can at worst lengthen
 * one stripe's chains, which are bounded by its capacity. */
static uint64_t hash_key(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* --- the table ------------------------------------------------------------------ */

static void unlink_recent(struct entry *e)
{
    e->newer->older = e->older;
    e->older->newer = e->newer;
}

static void push_recent(struct stripe *s, struct entry *e)
{
    e->older = s->recent.older;
    e->newer = &s->recent;
    s->recent.older->newer = e;
    s->recent.older = e;
}

static struct entry **slot_of(struct stripe *s, uint64_t h)
{
    return &s->slots[(h >> 8) & (s->nslots - 1)].head;
}

static struct entry *find(struct stripe *s, uint64_t h, enum ratelimit_scope scope, const char *key,
                          size_t klen)
{
    for (struct entry *e = *slot_of(s, h); e; e = e->chain) {
        if (e->hash == h && e->scope == scope && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    }
    return NULL;
}

static void evict_oldest(struct stripe *s)
{
    struct entry *e = s->recent.newer; /* the least recently used */
    struct entry **pp = slot_of(s, e->hash);
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    unlink_recent(e);
    s->n--;
    free(e);
}

/* The key's entry, made (full buckets) if it is new; NULL out of memory. */
static struct entry *get(struct ratelimit *rl, struct stripe *s, uint64_t h,
                         enum ratelimit_scope scope, const char *key, size_t klen, int64_t now)
{
    struct entry *e = find(s, h, scope, key, klen), **slot;
    const struct ratelimit_policy *p = &rl->cfg.policy[scope];
    if (e) {
        unlink_recent(e);
        push_recent(s, e);
        return e;
    }
    if (s->n >= s->cap)
        evict_oldest(s);
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->hash = h;
    e->scope = scope;
    e->klen = klen;
    memcpy(e->key, key, klen);
    tokenbucket_init(&e->local, rl->rate[scope], (double)p->burst, now);
    slot = slot_of(s, h);
    e->chain = *slot;
    *slot = e;
    push_recent(s, e);
    s->n++;
    return e;
}

/* --- decisions -------------------------------------------------------------------- */

/* A lease: the rate times lease_ms, or times twice the time exchanges take now when
 * that is longer (a loaded box, a slow Redis), so that the two leases a key may spend
 * per exchange (one in hand, one on credit) always outlast the exchange; at least one
 * token, at most the burst.  Measured: with a fixed 10 ms lease, a producer under
 * AddressSanitizer admitted 147/s of 200/s, its exchanges being that slow. */
static long long lease_of(const struct ratelimit *rl, enum ratelimit_scope scope)
{
    double ms = (double)rl->cfg.lease_ms, cycle_ms = (double)atomic_load(&rl->cycle_us) / 500.0;
    double lease = ceil(rl->rate[scope] * (cycle_ms > ms ? cycle_ms : ms) / 1000.0);
    double burst = (double)rl->cfg.policy[scope].burst;
    return lease < 1 ? 1 : lease > burst ? (long long)burst : (long long)lease;
}

/* Queues key for an exchange (stripe lock held: the order is stripe, then queue). */
static void enqueue(struct ratelimit *rl, struct entry *e)
{
    struct queued_key *q;
    pthread_mutex_lock(&rl->qmu);
    if (rl->qlen < QUEUE_MAX) {
        q = &rl->queue[(rl->qhead + rl->qlen) % QUEUE_MAX];
        q->scope = e->scope;
        q->klen = e->klen;
        memcpy(q->key, e->key, e->klen);
        rl->qlen++;
        e->queued = true;
        e->queued_at_us = now_us(rl);
        pthread_cond_signal(&rl->qcv);
    }
    pthread_mutex_unlock(&rl->qmu);
}

static int to_seconds(int64_t us)
{
    int64_t s = (us + 999999) / 1000000;
    if (s < 1)
        return 1;
    return s > 86400 ? 86400 : (int)s;
}

/* One scope's decision for one key.  Never waits on the store. */
static bool decide(struct ratelimit *rl, enum ratelimit_scope scope, const char *key, size_t klen,
                   int *ret_retry_s)
{
    uint64_t h = hash_key(key, klen);
    struct stripe *s = &rl->stripes[h % STRIPES];
    int64_t now = now_us(rl), wait = 0;
    long long lease = lease_of(rl, scope);
    bool ok, sync = false, shared = rl->cfg.store && atomic_load(&rl->shared);
    struct entry *e;

    pthread_mutex_lock(&s->mu);
    e = get(rl, s, h, scope, key, klen, now);
    if (!e) {
        pthread_mutex_unlock(&s->mu);
        return true; /* out of memory: fail open rather than refuse everyone */
    }
    if (!shared) {
        ok = tokenbucket_take(&e->local, 1, now);
        if (!ok)
            wait = tokenbucket_wait_us(&e->local, 1, now);
        /* a probe of the store, now and then, to leave the fallback */
        sync = rl->cfg.store && !e->queued && now >= atomic_load(&rl->next_probe_us);
    } else {
        long long allowance = lease > CREDIT_MIN ? lease : CREDIT_MIN;
        if (allowance > rl->cfg.policy[scope].burst)
            allowance = rl->cfg.policy[scope].burst; /* the lease never exceeds it */
        if (e->credit >= 1) {
            e->credit -= 1;
            ok = true;
        } else if (e->owed < allowance && now >= e->dry_until_us) {
            e->owed++;
            ok = true;
        } else {
            ok = false;
            wait = e->dry_until_us > now ? e->dry_until_us - now : (int64_t)(1e6 / rl->rate[scope]);
        }
        if (ok)
            tokenbucket_charge(&e->local, 1, now);
        sync = !e->queued &&
               (e->owed > 0 || (e->credit < (double)lease / 2 && now >= e->dry_until_us));
    }
    if (sync)
        enqueue(rl, e);
    pthread_mutex_unlock(&s->mu);
    if (!ok)
        *ret_retry_s = to_seconds(wait);
    return ok;
}

static bool check(struct ratelimit *rl, enum ratelimit_scope scope, const char *key,
                  struct ratelimit_verdict *ret)
{
    char full[KEY_MAX];
    int n, retry = 1;
    if (!rl->cfg.policy[scope].on)
        return true;
    /* the policy is part of the key: producers configured differently never share a
     * bucket, and a changed limit starts afresh */
    n = snprintf(full, sizeof full, "%s:%lld/%lld:%lld:%s", scope_names[scope],
                 rl->cfg.policy[scope].quota, rl->cfg.policy[scope].window_s,
                 rl->cfg.policy[scope].burst, key);
    if (n < 0 || (size_t)n >= sizeof full)
        n = (int)sizeof full - 1; /* a longer key shares its prefix's bucket */
    if (decide(rl, scope, full, (size_t)n, &retry))
        return true;
    *ret = (struct ratelimit_verdict){false, scope, retry};
    return false;
}

void ratelimit_tasks(struct ratelimit *rl, const char *user, struct ratelimit_verdict *ret)
{
    *ret = (struct ratelimit_verdict){true, RATELIMIT_TASKS_USER, 0};
    if (!rl || !rl->cfg.enabled)
        return;
    if (check(rl, RATELIMIT_TASKS_USER, user, ret))
        check(rl, RATELIMIT_TASKS_GLOBAL, "all", ret);
}

/* The email lower-cased (as accounts stores it) and hashed into 32 hex digits. */
static void email_key(const char *email, char out[33])
{
    unsigned char digest[16];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof digest);
    for (const char *p = email; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        crypto_generichash_update(&st, &c, 1);
    }
    crypto_generichash_final(&st, digest, sizeof digest);
    sodium_bin2hex(out, 33, digest, sizeof digest);
}

void ratelimit_auth(struct ratelimit *rl, const char *addr, const char *email,
                    struct ratelimit_verdict *ret)
{
    char ek[33];
    *ret = (struct ratelimit_verdict){true, RATELIMIT_AUTH_ADDR, 0};
    if (!rl || !rl->cfg.enabled)
        return;
    if (!check(rl, RATELIMIT_AUTH_ADDR, addr ? addr : "unknown", ret) || !email)
        return;
    email_key(email, ek);
    check(rl, RATELIMIT_AUTH_EMAIL, ek, ret);
}

/* --- exchanges with the store ----------------------------------------------------- */

static bool dequeue(struct ratelimit *rl, struct queued_key *ret)
{
    if (rl->qlen == 0)
        return false;
    *ret = rl->queue[rl->qhead];
    rl->qhead = (rl->qhead + 1) % QUEUE_MAX;
    rl->qlen--;
    return true;
}

/* One key's exchange: report what it owes, top its lease up. */
static void exchange(struct ratelimit *rl, const struct queued_key *q)
{
    uint64_t h = hash_key(q->key, q->klen);
    struct stripe *s = &rl->stripes[h % STRIPES];
    const struct ratelimit_policy *p = &rl->cfg.policy[q->scope];
    long long used, want, granted = 0, lease = lease_of(rl, q->scope);
    int64_t wait = 0, now, asked;
    struct entry *e;
    int rc;

    pthread_mutex_lock(&s->mu);
    e = find(s, h, q->scope, q->key, q->klen);
    if (!e) {
        pthread_mutex_unlock(&s->mu);
        return; /* evicted meanwhile */
    }
    used = e->owed;
    e->owed = 0;
    want = e->credit < (double)lease ? lease : 0;
    asked = e->queued_at_us;
    pthread_mutex_unlock(&s->mu);

    rc = rl->cfg.store->take(rl->cfg.store_ctx, q->key, q->klen, rl->rate[q->scope],
                             (double)p->burst, used, want, &granted, &wait);
    now = now_us(rl);
    if (rc == 0) {
        long long c = atomic_load(&rl->cycle_us);
        atomic_store(&rl->cycle_us, c + ((now - asked) - c) / 8); /* one writer: this thread */
        atomic_store(&rl->shared, true);
    } else {
        atomic_store(&rl->shared, false);
        atomic_store(&rl->next_probe_us, now + PROBE_EVERY_US);
    }
    pthread_mutex_lock(&s->mu);
    e = find(s, h, q->scope, q->key, q->klen);
    if (e) {
        e->queued = false;
        if (rc == 0) {
            e->credit += (double)granted;
            if (granted < want || e->credit < 1)
                e->dry_until_us = wait > 0 ? now + wait : 0;
            if (e->owed > 0)
                enqueue(rl, e); /* admitted on credit meanwhile: report it too */
        } else {
            e->owed += used; /* reported when the store is back */
        }
    }
    pthread_mutex_unlock(&s->mu);
}

size_t ratelimit_sync(struct ratelimit *rl)
{
    struct queued_key q;
    size_t n = 0, todo;
    pthread_mutex_lock(&rl->qmu);
    todo = rl->qlen; /* what was queued so far; requeued keys wait for the next call */
    while (n < todo && dequeue(rl, &q)) {
        pthread_mutex_unlock(&rl->qmu);
        exchange(rl, &q);
        n++;
        pthread_mutex_lock(&rl->qmu);
    }
    pthread_mutex_unlock(&rl->qmu);
    return n;
}

static void *sync_main(void *arg)
{
    struct ratelimit *rl = arg;
    struct queued_key q;
    pthread_mutex_lock(&rl->qmu);
    for (;;) {
        while (!rl->stopping && rl->qlen == 0)
            pthread_cond_wait(&rl->qcv, &rl->qmu);
        if (rl->stopping)
            break;
        dequeue(rl, &q);
        pthread_mutex_unlock(&rl->qmu);
        exchange(rl, &q);
        pthread_mutex_lock(&rl->qmu);
    }
    pthread_mutex_unlock(&rl->qmu);
    return NULL;
}

/* --- construction -------------------------------------------------------------------- */

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

static bool valid(const struct ratelimit_config *cfg)
{
    if (cfg->lease_ms < 1 || cfg->max_keys < STRIPES)
        return false;
    for (int i = 0; i < RATELIMIT_N_SCOPES; i++) {
        const struct ratelimit_policy *p = &cfg->policy[i];
        if (p->on && (p->quota < 1 || p->window_s < 1 || p->burst < 1))
            return false;
    }
    return true;
}

static void release(struct ratelimit *rl)
{
    for (int i = 0; i < STRIPES; i++) {
        struct stripe *s = &rl->stripes[i];
        for (size_t j = 0; s->slots && j < s->nslots; j++) {
            struct entry *e = s->slots[j].head;
            while (e) {
                struct entry *next = e->chain;
                free(e);
                e = next;
            }
        }
        free(s->slots);
        pthread_mutex_destroy(&s->mu);
    }
    pthread_cond_destroy(&rl->qcv);
    pthread_mutex_destroy(&rl->qmu);
    free(rl->queue);
    free(rl);
}

int ratelimit_new(const struct ratelimit_config *cfg, struct ratelimit **ret_rl)
{
    struct ratelimit *rl;
    size_t per;
    if (!cfg || !valid(cfg))
        return RATELIMIT_EINVAL;
    if (sodium_init() < 0)
        return RATELIMIT_ENOMEM;
    rl = calloc(1, sizeof *rl);
    if (!rl)
        return RATELIMIT_ENOMEM;
    rl->cfg = *cfg;
    pthread_mutex_init(&rl->qmu, NULL);
    pthread_cond_init(&rl->qcv, NULL);
    atomic_init(&rl->shared, cfg->store != NULL);
    atomic_init(&rl->next_probe_us, 0);
    per = cfg->max_keys / STRIPES;
    for (int i = 0; i < STRIPES; i++) {
        struct stripe *s = &rl->stripes[i];
        pthread_mutex_init(&s->mu, NULL);
        s->recent.newer = s->recent.older = &s->recent;
        s->cap = per;
        s->nslots = pow2_at_least(per);
        s->slots = calloc(s->nslots, sizeof *s->slots);
        if (!s->slots)
            goto out_free;
    }
    for (int i = 0; i < RATELIMIT_N_SCOPES; i++) {
        const struct ratelimit_policy *p = &cfg->policy[i];
        if (p->on)
            rl->rate[i] = (double)p->quota / (double)p->window_s;
    }
    atomic_init(&rl->cycle_us, 0);
    rl->queue = calloc(QUEUE_MAX, sizeof *rl->queue);
    if (!rl->queue)
        goto out_free;
    if (cfg->store && !cfg->manual_sync) {
        if (pthread_create(&rl->thread, NULL, sync_main, rl) != 0)
            goto out_free;
        rl->started = true;
    }
    *ret_rl = rl;
    return RATELIMIT_OK;
out_free:
    release(rl);
    return RATELIMIT_ENOMEM;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    if (rl->started) {
        pthread_mutex_lock(&rl->qmu);
        rl->stopping = true;
        pthread_cond_signal(&rl->qcv);
        pthread_mutex_unlock(&rl->qmu);
        pthread_join(rl->thread, NULL);
    }
    release(rl);
}

const struct ratelimit_policy *ratelimit_policy(const struct ratelimit *rl, enum ratelimit_scope s)
{
    static const struct ratelimit_policy none = {false, 0, 0, 0};
    if (!rl || (unsigned)s >= RATELIMIT_N_SCOPES)
        return &none;
    return &rl->cfg.policy[s];
}

bool ratelimit_enabled(const struct ratelimit *rl)
{
    return rl && rl->cfg.enabled;
}

bool ratelimit_shared(struct ratelimit *rl)
{
    return rl->cfg.store && atomic_load(&rl->shared);
}
