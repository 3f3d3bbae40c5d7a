/* ids — the per-thread random source behind ids_new_v7() and ids_random().
 *
 * A fast-key-erasure generator (D. J. Bernstein, "Fast-key-erasure random-number
 * generators", 2017; the design of OpenBSD's arc4random): each thread keeps a
 * ChaCha20 key seeded once from getrandom(2); a refill runs ChaCha20 over a buffer,
 * the first 32 bytes of the output replace the key at once and the rest is handed
 * out, each byte wiped as it goes.  An attacker who later reads the thread's memory
 * learns nothing of the bytes already given out.  So an id or a trace id costs a
 * few dozen nanoseconds, not a system call; the kernel is asked again only after
 * IDS__RESEED_REFILLS refills (16 MiB) or in a child after fork(). */
#include "ids/ids.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <sys/random.h>

enum {
    RNG_KEY = crypto_stream_chacha20_KEYBYTES,
    RNG_BUF = 1024,            /* one refill: the key, then the bytes handed out */
    RESEED_REFILLS = 16 * 1024 /* refills between two seeds from the kernel */
};

struct rng {
    unsigned char key[RNG_KEY];
    unsigned char buf[RNG_BUF];
    size_t avail;     /* unread bytes at the end of buf */
    unsigned refills; /* since the last seed */
    unsigned seeds;   /* from the kernel, in this thread (tests read it) */
    bool seeded;
};

/* Per-thread state, not shared: nothing to lock. */
static _Thread_local struct rng ids_rng;
static pthread_once_t ids_rng_once = PTHREAD_ONCE_INIT;

/* The child of fork() must not repeat its parent's stream: only the thread that
 * forked lives on in the child, and this handler runs in it. */
static void rng_forget(void)
{
    sodium_memzero(&ids_rng, sizeof ids_rng);
}

static void rng_setup(void)
{
    int rc = sodium_init(); /* picks the fastest ChaCha20 */
    /* < 0: the reference ChaCha20 is used, which is as correct, only slower */
    (void)rc;
    (void)pthread_atfork(NULL, NULL, rng_forget);
}

static int kernel_random(void *buf, size_t len)
{
    unsigned char *p = buf;

    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int rng_seed(struct rng *r)
{
    unsigned char fresh[RNG_KEY];

    if (kernel_random(fresh, sizeof fresh) < 0)
        return -1;
    /* mix rather than replace: a reseed never makes the key weaker */
    for (size_t i = 0; i < RNG_KEY; i++)
        r->key[i] ^= fresh[i];
    sodium_memzero(fresh, sizeof fresh);
    r->refills = 0;
    r->seeds++;
    r->seeded = true;
    return 0;
}

static int rng_refill(struct rng *r)
{
    static const unsigned char nonce[crypto_stream_chacha20_NONCEBYTES]; /* the key changes */

    if ((!r->seeded || r->refills >= RESEED_REFILLS) && rng_seed(r) < 0)
        return -1;
    if (crypto_stream_chacha20(r->buf, sizeof r->buf, nonce, r->key) != 0)
        return -1;
    memcpy(r->key, r->buf, RNG_KEY);
    sodium_memzero(r->buf, RNG_KEY);
    r->avail = sizeof r->buf - RNG_KEY;
    r->refills++;
    return 0;
}

int ids_random(void *buf, size_t len)
{
    struct rng *r = &ids_rng;
    unsigned char *out = buf;

    pthread_once(&ids_rng_once, rng_setup);
    while (len > 0) {
        size_t n;
        unsigned char *from;
        if (r->avail == 0 && rng_refill(r) < 0)
            return -1;
        n = len < r->avail ? len : r->avail;
        from = r->buf + sizeof r->buf - r->avail;
        memcpy(out, from, n);
        sodium_memzero(from, n);
        r->avail -= n;
        out += n;
        len -= n;
    }
    return 0;
}

unsigned ids_random_seeds(void)
{
    return ids_rng.seeds;
}
