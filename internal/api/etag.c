/* api — conditional requests: a task view's ETag and If-None-Match (RFC 9110 §8.8.3,
 * §13.1.2).
 *
 * The ETag is strong: it changes whenever the bytes of the view could.  Every update
 * of a task row sets updated_at (microseconds), so (id, updated_at) names a version
 * of the row; attempts and status are hashed in as well, so two changes within one
 * microsecond still differ, and VIEW_VERSION changes it when the view's layout
 * does.  BLAKE2b (libsodium's crypto_generichash) keeps the tag opaque and short:
 * 128 bits, far from any chance collision among one task's versions. */
#include "api/api_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>

#define VIEW_VERSION  1 /* bump when model_task_view's output changes */
#define ETAG_HASH_LEN 16

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;

static void sodium_start(void)
{
    /* picks the fastest implementations; fails only without a random source,
     * which the hash does not need (the reference code runs then) */
    if (sodium_init() < 0)
        return;
}

static void put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

void api_etag(const struct task *t, char out[API_ETAG_LEN + 1])
{
    unsigned char in[1 + 16 + 8 + 4 + 1];
    unsigned char h[ETAG_HASH_LEN];

    pthread_once(&sodium_once, sodium_start);
    in[0] = VIEW_VERSION;
    memcpy(in + 1, t->id.b, 16);
    put_be(in + 17, (uint64_t)t->updated_at, 8);
    put_be(in + 25, (uint64_t)(uint32_t)t->attempts, 4);
    in[29] = (unsigned char)t->status;
    crypto_generichash(h, sizeof h, in, sizeof in, NULL, 0);
    out[0] = '"';
    sodium_bin2hex(out + 1, 2 * ETAG_HASH_LEN + 1, h, sizeof h);
    out[API_ETAG_LEN - 1] = '"';
    out[API_ETAG_LEN] = '\0';
}

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* One If-None-Match field value: "*", or #entity-tag compared weakly (W/ ignored).
 * A malformed value matches nothing, so the request is answered in full. */
static bool field_matches(const char *v, const char *etag)
{
    size_t elen = strlen(etag);
    bool match = false;
    const char *p = v;

    for (;;) {
        const char *q;
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            return match;
        if (*p == '*') {
            p = skip_ows(p + 1);
            if (*p != ',' && *p != '\0')
                return false;
            match = true;
            continue;
        }
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (*p != '"')
            return false;
        q = strchr(p + 1, '"');
        if (!q)
            return false;
        if ((size_t)(q + 1 - p) == elen && memcmp(p, etag, elen) == 0)
            match = true;
        p = skip_ows(q + 1);
        if (*p != ',' && *p != '\0')
            return false;
    }
}

struct inm_scan {
    const char *etag;
    bool match;
};

static enum MHD_Result on_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    struct inm_scan *s = cls;
    (void)kind;
    /* a field sent more than once is one list (RFC 9110 §5.3) */
    if (value && strcasecmp(key, MHD_HTTP_HEADER_IF_NONE_MATCH) == 0 &&
        field_matches(value, s->etag))
        s->match = true;
    return MHD_YES;
}

bool api_if_none_match(struct api_request *req, const char *etag)
{
    struct inm_scan s = {etag, false};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, on_header, &s);
    return s.match;
}

void api_respond_not_modified_text(struct api_request *req, const char *etag, char *text)
{
    /* the body is never sent (MHD treats a 304 like a HEAD), only its length */
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        api_problem_oom(req);
        return;
    }
    if (req->response)
        MHD_destroy_response(req->response);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, etag);
    req->status = MHD_HTTP_NOT_MODIFIED;
    req->response = r;
}
