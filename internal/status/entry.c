/* status — the cache entry: a small binary header and the rendered view.
 *
 *   0      format (1)          8..15   updated_at, big-endian microseconds
 *   1      flags: 1 exists,    16..31  task id
 *          2 has an owner      32..47  owner id
 *   2      status              48..    the view's JSON, then a NUL
 *   3      reserved (0)
 *   4..7   attempts, big-endian
 *
 * The id is stored so a decoder can refuse an entry filed under the wrong key; the
 * format byte lets a future layout be told apart (an unknown one reads as a miss). */
#include "status/status_int.h"

#include <stdlib.h>
#include <string.h>

#define FORMAT      1
#define FLAG_EXISTS 1
#define FLAG_OWNER  2

static void put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t get_be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* A zeroed entry of id with json (NULL: none) after the header; NULL out of memory. */
static unsigned char *alloc_entry(const struct ids_id *id, const char *json, size_t *ret_len)
{
    size_t jlen = json ? strlen(json) : 0;
    size_t len = STATUS__HEADER_LEN + jlen + 1;
    unsigned char *b = calloc(1, len);
    if (!b)
        return NULL;
    b[0] = FORMAT;
    memcpy(b + 16, id->b, 16);
    if (json)
        memcpy(b + STATUS__HEADER_LEN, json, jlen + 1);
    *ret_len = len;
    return b;
}

int status__encode(const struct task *t, unsigned char **ret_bytes, size_t *ret_len)
{
    char *json = model_task_view_text(t);
    unsigned char *b = json ? alloc_entry(&t->id, json, ret_len) : NULL;
    free(json);
    if (!b)
        return -1;
    b[1] = FLAG_EXISTS | (t->has_user ? FLAG_OWNER : 0);
    b[2] = (unsigned char)t->status;
    put_be(b + 4, (uint64_t)(uint32_t)t->attempts, 4);
    put_be(b + 8, (uint64_t)t->updated_at, 8);
    if (t->has_user)
        memcpy(b + 32, t->user_id.b, 16);
    *ret_bytes = b;
    return 0;
}

int status__encode_absent(const struct ids_id *id, unsigned char **ret_bytes, size_t *ret_len)
{
    unsigned char *b = alloc_entry(id, NULL, ret_len);
    if (!b)
        return -1;
    *ret_bytes = b;
    return 0;
}

int status__decode(void *bytes, size_t len, const struct ids_id *id,
                   struct status__entry *ret_entry)
{
    unsigned char *b = bytes;
    struct status__entry e;

    if (!b || len < STATUS__HEADER_LEN + 1 || b[0] != FORMAT || b[len - 1] != '\0' ||
        memcmp(b + 16, id->b, 16) != 0)
        return -1;
    memset(&e, 0, sizeof e);
    e.exists = (b[1] & FLAG_EXISTS) != 0;
    e.has_owner = (b[1] & FLAG_OWNER) != 0;
    if (b[2] >= TASK_STATUS_COUNT || (e.exists && len == STATUS__HEADER_LEN + 1))
        return -1;
    memcpy(e.owner.b, b + 32, 16);
    e.view.id = *id;
    e.view.status = (enum task_status)b[2];
    e.view.attempts = (int)(uint32_t)get_be(b + 4, 4);
    e.view.updated_at = (int64_t)get_be(b + 8, 8);
    e.view.json = (char *)b + STATUS__HEADER_LEN;
    e.view.json_len = len - STATUS__HEADER_LEN - 1;
    *ret_entry = e;
    return 0;
}

int status__visible(const struct status__entry *e, const struct ids_id *owner)
{
    if (!e->exists)
        return STATUS_ENOTFOUND;
    if (owner && (!e->has_owner || !ids_equal(&e->owner, owner)))
        return STATUS_ENOTFOUND;
    return STATUS_OK;
}
