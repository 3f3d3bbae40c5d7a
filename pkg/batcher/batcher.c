/* batcher — callers queue on a list and wait; one flusher takes them in groups. */
#include "batcher/batcher.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct waiter {
    void *item;
    struct waiter *next;
    sem_t done; /* its own: a finished batch wakes only its callers, and after the
                 * flusher let go of mu, so a woken caller never waits for mu again */
};

struct batcher {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* the first item arrived, a batch is full, or stop */
    struct waiter *head, *tail;
    size_t len;
    bool quit;
    pthread_t *tids;
    int n_threads;
    void **items; /* max_batch slots per flusher */
    int slots_taken;
    batcher_fn fn;
    void *ctx;
    size_t max;
    int window_us;
    uint64_t batches, processed;
};

static struct timespec after_us(int us)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)us * 1000L;
    while (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* With mu held and at least one item waiting: gives the batch up to window_us to
 * fill. */
static void gather(struct batcher *b)
{
    if (b->window_us <= 0 || b->len >= b->max || b->quit) {
        return;
    }
    struct timespec until = after_us(b->window_us);
    while (b->len < b->max && !b->quit) {
        if (pthread_cond_timedwait(&b->work_cv, &b->mu, &until) != 0) {
            break; /* the window closed */
        }
    }
}

static void *flusher(void *arg)
{
    struct batcher *b = arg;
    (void)pthread_setname_np(pthread_self(), "batcher"); /* top, perf: per-thread figures */
    pthread_mutex_lock(&b->mu);
    void **items = b->items + (size_t)b->slots_taken++ * b->max;
    for (;;) {
        while (b->len == 0 && !b->quit) {
            pthread_cond_wait(&b->work_cv, &b->mu);
        }
        if (b->len == 0) {
            break; /* quit, and nothing left to do */
        }
        gather(b);
        if (b->len == 0) {
            continue; /* another flusher took them while this one gathered */
        }
        struct waiter *first = b->head, *last = first;
        size_t n = 0;
        items[n++] = first->item;
        while (n < b->max && last->next != NULL) {
            last = last->next;
            items[n++] = last->item;
        }
        b->head = last->next;
        if (b->head == NULL) {
            b->tail = NULL;
        }
        b->len -= n;
        pthread_mutex_unlock(&b->mu);

        b->fn(b->ctx, items, n);

        pthread_mutex_lock(&b->mu);
        b->batches++;
        b->processed += n; /* counted before any caller returns */
        pthread_mutex_unlock(&b->mu);
        /* first..last were unlinked under mu: nobody else touches their links */
        for (struct waiter *w = first;;) {
            struct waiter *next = w->next; /* w is gone once its caller wakes */
            bool end = w == last;
            sem_post(&w->done);
            if (end) {
                break;
            }
            w = next;
        }
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

int batcher_new(const struct batcher_config *cfg, batcher_fn fn, void *ctx, struct batcher **ret_b)
{
    if (cfg == NULL || fn == NULL || ret_b == NULL || cfg->max_batch < 1 || cfg->window_us < 0) {
        return -1;
    }
    struct batcher *b = calloc(1, sizeof *b);
    if (b == NULL) {
        return -1;
    }
    int threads = cfg->flushers > 0 ? cfg->flushers : 1;
    b->tids = calloc((size_t)threads, sizeof *b->tids);
    b->items = calloc((size_t)threads * cfg->max_batch, sizeof *b->items);
    pthread_condattr_t ca;
    bool attr = pthread_condattr_init(&ca) == 0;
    if (b->tids == NULL || b->items == NULL || !attr ||
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_mutex_init(&b->mu, NULL) != 0) {
        goto out_free;
    }
    if (pthread_cond_init(&b->work_cv, &ca) != 0) {
        goto out_mu;
    }
    b->fn = fn;
    b->ctx = ctx;
    b->max = cfg->max_batch;
    b->window_us = cfg->window_us;
    for (; b->n_threads < threads; b->n_threads++) {
        if (pthread_create(&b->tids[b->n_threads], NULL, flusher, b) != 0) {
            break;
        }
    }
    if (b->n_threads == 0) {
        goto out_work;
    }
    pthread_condattr_destroy(&ca);
    *ret_b = b;
    return 0;

out_work:
    pthread_cond_destroy(&b->work_cv);
out_mu:
    pthread_mutex_destroy(&b->mu);
out_free:
    if (attr) {
        pthread_condattr_destroy(&ca);
    }
    free(b->tids);
    free(b->items);
    free(b);
    return -1;
}

void batcher_free(struct batcher *b)
{
    if (b == NULL) {
        return;
    }
    pthread_mutex_lock(&b->mu);
    b->quit = true;
    pthread_cond_broadcast(&b->work_cv);
    pthread_mutex_unlock(&b->mu);
    for (int i = 0; i < b->n_threads; i++) {
        pthread_join(b->tids[i], NULL);
    }
    pthread_cond_destroy(&b->work_cv);
    pthread_mutex_destroy(&b->mu);
    free(b->tids);
    free(b->items);
    free(b);
}

int batcher_run(struct batcher *b, void *item)
{
    struct waiter w = {.item = item};
    if (sem_init(&w.done, 0, 0) != 0) {
        return -1;
    }
    pthread_mutex_lock(&b->mu);
    if (b->quit) {
        pthread_mutex_unlock(&b->mu);
        sem_destroy(&w.done);
        return -1;
    }
    /* w lives on this stack until it is done, and the flusher unlinks it first */
    if (b->tail != NULL) {
        b->tail->next = &w;
    } else {
        b->head = &w; // cppcheck-suppress autoVariables
    }
    b->tail = &w; // cppcheck-suppress autoVariables
    b->len++;
    if (b->len == 1 || b->len == b->max) {
        pthread_cond_signal(&b->work_cv); /* only the flusher waits there */
    }
    pthread_mutex_unlock(&b->mu);
    while (sem_wait(&w.done) != 0 && errno == EINTR) {
    }
    sem_destroy(&w.done); /* safe once sem_wait returned (glibc >= 2.21) */
    return 0;
}

void batcher_stats(struct batcher *b, uint64_t *ret_batches, uint64_t *ret_items)
{
    pthread_mutex_lock(&b->mu);
    *ret_batches = b->batches;
    *ret_items = b->processed;
    pthread_mutex_unlock(&b->mu);
}
