/* ids — UUIDv7 generation and strict text <-> 16-byte conversion (RFC 9562).
 *
 * New ids are version 7: 48-bit Unix milliseconds, then random bits, so ids sort by
 * creation time and InnoDB inserts stay append-mostly.  Within one process, ids
 * generated in the same millisecond are strictly increasing (RFC 9562 §6.2 method 3:
 * the 12-bit rand_a field is a counter seeded randomly each millisecond; on counter
 * overflow the timestamp is advanced by one).  Thread-safe.
 *
 * The random bits come from ids_random(): a per-thread ChaCha20 generator seeded
 * once from getrandom(2), so a new id makes no system call.
 */
#ifndef IDS_H
#define IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDS_TEXT_LEN 36 /* canonical form, without the terminating NUL */

struct ids_id {
    uint8_t b[16];
};

/* Generates a new UUIDv7. Returns 0, or -1 if the random source failed. */
int ids_new_v7(struct ids_id *ret_id);

/* Writes the canonical lower-case form "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" and a NUL
 * into out, which must hold IDS_TEXT_LEN + 1 bytes. */
void ids_format(const struct ids_id *id, char out[IDS_TEXT_LEN + 1]);

/* Parses exactly the canonical 36-character form (hex digits of either case, hyphens
 * at 8, 13, 18, 23); len is the input length, so input need not be NUL-terminated.
 * Returns 0, or -1 for anything else (braces, urn: prefix, missing hyphens, junk). */
int ids_parse(const char *text, size_t len, struct ids_id *ret_id);

/* The 48-bit millisecond timestamp of a v7 id. */
uint64_t ids_v7_unix_ms(const struct ids_id *id);
int ids_version(const struct ids_id *id);

/* Fills buf with len cryptographically secure random bytes from this thread's
 * generator (fast key erasure over ChaCha20, seeded from the kernel on first use,
 * again every 16 MiB and in a child after fork).  Returns 0, or -1 when the kernel
 * could not seed it (buf is then unspecified). */
int ids_random(void *buf, size_t len);

/* How many times this thread's generator was seeded from the kernel (tests). */
unsigned ids_random_seeds(void);

bool ids_equal(const struct ids_id *a, const struct ids_id *b);

#endif
