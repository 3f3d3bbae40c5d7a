/* ids — UUIDv7 (RFC 9562 §5.7, monotonic per §6.2 method 3). */
#include "ids/ids.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#define IDS_COUNTER_MAX 0x0fffu

/* The last timestamp and counter handed out: the generator's only state.  Guarded by
 * ids_lock so that two threads never issue the same (ms, counter) pair. */
static pthread_mutex_t ids_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t ids_last_ms;
static unsigned ids_counter;

static uint64_t now_unix_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Picks (ms, counter) for the next id.  A new millisecond reseeds the counter with 11
 * random bits, leaving the top bit clear so that at least 2048 more ids fit in that
 * millisecond before the timestamp has to be pushed forward.  If the clock steps
 * back we keep using the last timestamp: ordering matters more than wall time. */
static void next_stamp(uint64_t now, unsigned seed, uint64_t *ms, unsigned *counter)
{
    if (now > ids_last_ms) {
        ids_last_ms = now;
        ids_counter = seed & 0x07ffu;
    } else if (ids_counter < IDS_COUNTER_MAX) {
        ids_counter++;
    } else {
        ids_last_ms++;
        ids_counter = seed & 0x07ffu;
    }
    *ms = ids_last_ms;
    *counter = ids_counter;
}

int ids_new_v7(struct ids_id *ret_id)
{
    unsigned char rnd[10];
    struct ids_id id;
    uint64_t ms;
    unsigned counter;

    if (ids_random(rnd, sizeof rnd) < 0)
        return -1;

    pthread_mutex_lock(&ids_lock);
    next_stamp(now_unix_ms(), (unsigned)rnd[0] << 8 | rnd[1], &ms, &counter);
    pthread_mutex_unlock(&ids_lock);

    for (int i = 0; i < 6; i++)
        id.b[i] = (uint8_t)(ms >> (40 - 8 * i));
    id.b[6] = (uint8_t)(0x70u | (counter >> 8));
    id.b[7] = (uint8_t)(counter & 0xffu);
    memcpy(&id.b[8], &rnd[2], 8);
    id.b[8] = (uint8_t)(0x80u | (id.b[8] & 0x3fu)); /* variant 10 */

    *ret_id = id;
    return 0;
}

void ids_format(const struct ids_id *id, char out[IDS_TEXT_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[id->b[i] >> 4];
        out[o++] = hex[id->b[i] & 0x0f];
    }
    out[o] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool is_hyphen_pos(size_t i)
{
    return i == 8 || i == 13 || i == 18 || i == 23;
}

int ids_parse(const char *text, size_t len, struct ids_id *ret_id)
{
    struct ids_id id;
    size_t nibble = 0;

    if (text == NULL || len != IDS_TEXT_LEN)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (is_hyphen_pos(i)) {
            if (text[i] != '-')
                return -1;
            continue;
        }
        int v = hex_value(text[i]);
        if (v < 0)
            return -1;
        if (nibble % 2 == 0)
            id.b[nibble / 2] = (uint8_t)(v << 4);
        else
            id.b[nibble / 2] |= (uint8_t)v;
        nibble++;
    }
    *ret_id = id;
    return 0;
}

uint64_t ids_v7_unix_ms(const struct ids_id *id)
{
    uint64_t ms = 0;

    for (int i = 0; i < 6; i++)
        ms = ms << 8 | id->b[i];
    return ms;
}

int ids_version(const struct ids_id *id)
{
    return id->b[6] >> 4;
}

bool ids_equal(const struct ids_id *a, const struct ids_id *b)
{
    return memcmp(a->b, b->b, sizeof a->b) == 0;
}
