/* workpool — bounded job queue over a fixed thread set. */
#include "workpool/workpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct job {
    workpool_fn fn;
    void *arg;
};

struct workpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *ring; /* capacity cap, FIFO from head */
    size_t cap, head, len;
    size_t running;
    bool stopping;
    pthread_t *threads;
    int n_threads;
};

static void *run(void *arg)
{
    struct workpool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct job j;
        while (p->len == 0 && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->len == 0)
            break;
        j = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->len--;
        p->running++;
        pthread_mutex_unlock(&p->mu);
        j.fn(j.arg);
        pthread_mutex_lock(&p->mu);
        p->running--;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int workpool_new(int threads, int queue_max, struct workpool **ret_pool)
{
    struct workpool *p;
    if (threads < 1 || queue_max < 0)
        return -1;
    p = calloc(1, sizeof *p);
    if (!p)
        return -1;
    /* running jobs left the ring, so it holds the waiting ones only; one slot per
     * thread more lets every thread be handed a job without waiting for a take */
    p->cap = (size_t)queue_max + (size_t)threads;
    p->ring = calloc(p->cap, sizeof *p->ring);
    p->threads = calloc((size_t)threads, sizeof *p->threads);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (!p->ring || !p->threads) {
        workpool_free(p);
        return -1;
    }
    for (; p->n_threads < threads; p->n_threads++) {
        if (pthread_create(&p->threads[p->n_threads], NULL, run, p) != 0) {
            workpool_free(p);
            return -1;
        }
    }
    *ret_pool = p;
    return 0;
}

void workpool_free(struct workpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p->ring);
    free(p);
}

int workpool_submit(struct workpool *p, workpool_fn fn, void *arg)
{
    int rc = -1;
    pthread_mutex_lock(&p->mu);
    if (!p->stopping && p->len + p->running < p->cap) {
        p->ring[(p->head + p->len) % p->cap] = (struct job){fn, arg};
        p->len++;
        pthread_cond_signal(&p->cv);
        rc = 0;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

size_t workpool_pending(struct workpool *p)
{
    size_t n;
    pthread_mutex_lock(&p->mu);
    n = p->len + p->running;
    pthread_mutex_unlock(&p->mu);
    return n;
}
