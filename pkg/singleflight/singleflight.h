/* singleflight — one execution of a piece of work per key, however many callers ask
 * for it at once (Go's golang.org/x/sync/singleflight, made asynchronous).
 *
 * The first caller to join a key becomes its leader: it does the work (on any thread,
 * now or later) and then calls singleflight_finish() with the result.  Callers that
 * join while the flight is in the air only leave a waiter and return at once; finish
 * hands the one result to every waiter, the leader's included, in the order they
 * joined, on the finishing thread.  Once finish has taken the flight off the map, the
 * next join starts a new one: a result is shared only by callers that overlapped.
 *
 * Nobody blocks: an event-loop thread can join and go on serving.  A blocking caller
 * builds a wait on top (a condition variable signalled from its done callback).
 *
 * Waiters are the callers' memory (embedded in their request), so joining allocates
 * only when a flight starts; a waiter must stay alive until its done runs.  The
 * result is borrowed by the done callbacks for the duration of the call; the leader
 * owns it and frees it after finish returns.
 */
#ifndef SINGLEFLIGHT_H
#define SINGLEFLIGHT_H

#include <stddef.h>

struct singleflight_waiter;
typedef void (*singleflight_done_fn)(struct singleflight_waiter *w, void *result);

struct singleflight_waiter {
    singleflight_done_fn done; /* set by the caller */
    void *arg;                 /* the caller's */
    struct singleflight_waiter *next_;
};

enum singleflight_err {
    SINGLEFLIGHT_JOINED = 0, /* a flight was in the air: w waits for its result */
    SINGLEFLIGHT_LEADER = 1, /* w started the flight: do the work, then finish it */
    SINGLEFLIGHT_ENOMEM = -1,
    SINGLEFLIGHT_EINVAL = -2,
};

struct singleflight;

int singleflight_new(struct singleflight **ret_sf);
/* Frees the map; NULL is accepted.  Every flight must have been finished. */
void singleflight_free(struct singleflight *sf);

/* Joins key's flight with w, or starts one led by w.  Thread-safe. */
int singleflight_join(struct singleflight *sf, const void *key, size_t klen,
                      struct singleflight_waiter *w);

/* Lands key's flight: takes it off the map, then calls done(w, result) for each of
 * its waiters on this thread, without any lock held (a done may join again).  Returns
 * how many waiters were called; 0 when key has no flight. */
size_t singleflight_finish(struct singleflight *sf, const void *key, size_t klen, void *result);

/* Flights in the air now. */
size_t singleflight_flights(struct singleflight *sf);

#endif
