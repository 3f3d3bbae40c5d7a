/* status module-private: the reader (read.c), its entries (entry.c) and its
 * long-polls (wait.c). */
#ifndef DISPATCH_STATUS_INT_H
#define DISPATCH_STATUS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "lru/lru.h"
#include "status/status.h"
#include "workpool/workpool.h"

/* --- entries (entry.c) ------------------------------------------------------------
 * One encoding for the LRU and Redis: a 48-byte header (format, flags, status,
 * attempts, updated_at, id, owner), then the view's JSON and a NUL.  An unknown id
 * is a header alone with the "exists" flag clear (a negative entry). */
#define STATUS__HEADER_LEN 48

struct status__entry {
    bool exists;
    bool has_owner;
    struct ids_id owner;
    struct status_view view; /* json borrowed from the encoded bytes */
};

/* t's entry, malloc'ed (owned), of *ret_len bytes; -1 out of memory. */
int status__encode(const struct task *t, unsigned char **ret_bytes, size_t *ret_len);
/* The negative entry of id. */
int status__encode_absent(const struct ids_id *id, unsigned char **ret_bytes, size_t *ret_len);
/* Reads an entry (which must be id's); -1 when it is not a valid one.  The view's
 * json points into bytes. */
int status__decode(void *bytes, size_t len, const struct ids_id *id,
                   struct status__entry *ret_entry);
/* The entry as caller owner sees it: STATUS_OK (view), or STATUS_ENOTFOUND for an
 * unknown id or another user's task (owner NULL: no check). */
int status__visible(const struct status__entry *e, const struct ids_id *owner);

/* --- long-polls (wait.c) ------------------------------------------------------------ */
#define STATUS__WAIT_BUCKETS 256

enum status__call_state {
    STATUS__CALL_IDLE = 0, /* not registered */
    STATUS__CALL_CHECKING, /* registered; a look at the task is under way */
    STATUS__CALL_WAITING,  /* registered; waiting for an event or the deadline */
};

struct status__waiters {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* the timer's: an earlier deadline, or stop */
    struct status_call *buckets[STATUS__WAIT_BUCKETS];
    size_t n;
    int64_t next_wake; /* when the timer looks next (status_now_ms) */
    bool stopping;
    bool cv_inited;
    pthread_t timer;
    bool timer_started;
};

struct status_reader {
    struct status_read_config cfg;
    const struct status *store;
    const struct status_cache_ops *cache;
    void *cache_ctx;
    struct lru *lru;
    struct singleflight *flights;
    struct workpool *pool;
    atomic_bool events_up; /* the LRU is used only while events arrive */
    pthread_mutex_t mu;    /* stopping, and submissions to pool */
    bool stopping;
    struct status__waiters waiters;
};

/* Starts a lookup of call->id on the pool (or joins the one under way); the result
 * reaches status__deliver().  Always delivers, with STATUS_EUNAVAILABLE when the
 * lookup cannot start. */
void status__start(struct status_reader *r, struct status_call *call);

int status__waiters_init(struct status_reader *r);
/* Answers every long-poll, stops the timer. */
void status__waiters_stop(struct status_reader *r);
void status__waiters_release(struct status_reader *r);
/* Wakes the long-polls of id (NULL: all of them) to look again. */
void status__waiters_wake(struct status_reader *r, const struct ids_id *id);
/* A long-poll's look at its task ended with rc/view. */
void status__checked(struct status_reader *r, struct status_call *call, int rc,
                     const struct status_view *view);

#endif
