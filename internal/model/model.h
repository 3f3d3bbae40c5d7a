/* model — the task as the domain knows it: statuses, validation, the JSON view.
 *
 * Times are int64 microseconds since the Unix epoch, UTC; 0 means "not set" (NULL in
 * the database, null in the view).  A struct task owns its strings (NULL = absent);
 * model_task_release() frees them.
 */
#ifndef DISPATCH_MODEL_H
#define DISPATCH_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "ids/ids.h"

enum task_status {
    TASK_PENDING = 0, /* stored, not yet acknowledged by Kafka */
    TASK_QUEUED,
    TASK_RUNNING,
    TASK_RETRYING,
    TASK_SUCCEEDED,
    TASK_DEAD,
    TASK_CANCELED,
};
#define TASK_STATUS_COUNT 7

#define MODEL_TYPE_MAX         64
#define MODEL_MAX_ATTEMPTS_MIN 1
#define MODEL_MAX_ATTEMPTS_MAX 100
#define MODEL_MAX_ATTEMPTS_DEF 5
#define MODEL_TIMEOUT_MS_MAX   86400000 /* one day */
#define MODEL_ORDERING_KEY_MAX 255
#define MODEL_CALLBACK_URL_MAX 2048
#define MODEL_TRACEPARENT_LEN  55 /* "00-<32 hex>-<16 hex>-<2 hex>" */

const char *model_status_name(enum task_status s);
/* Parses an upper-case status name. Returns 0 or -1. */
int model_status_parse(const char *s, enum task_status *ret_status);
/* SUCCEEDED, DEAD, CANCELED: nothing will change the task any more. */
bool model_status_terminal(enum task_status s);

struct task {
    struct ids_id id;
    struct ids_id user_id;
    bool has_user;
    char type[MODEL_TYPE_MAX + 1];
    enum task_status status;
    int priority;
    int attempts;
    int max_attempts;
    int timeout_ms; /* 0: the worker's default */
    char *payload;  /* JSON text, never NULL in a stored task */
    char *result;   /* JSON text or NULL */
    char *last_error;
    char *ordering_key;
    char *callback_url;
    char traceparent[MODEL_TRACEPARENT_LEN + 1]; /* "" when none */
    int64_t created_at, updated_at, run_at, started_at, finished_at;
};

void model_task_release(struct task *t);

/* ^[a-z0-9][a-z0-9._-]{0,63}$ */
bool model_type_valid(const char *s);
/* W3C trace-context version 00 traceparent, lower-case hex, ids not all zero. */
bool model_traceparent_valid(const char *s, size_t len);
/* Makes a fresh traceparent "00-<trace>-<span>-01" into out (56 bytes). Returns 0/-1. */
int model_traceparent_new(char out[MODEL_TRACEPARENT_LEN + 1]);
/* Copies the trace id (32 hex chars + NUL) of a valid traceparent. */
void model_traceparent_trace_id(const char *traceparent, char out[33]);

int64_t model_now_us(void);
/* RFC 3339 UTC with microseconds: "2026-11-22T02:34:35.123456Z" (28 chars + NUL). */
void model_time_format(int64_t us, char out[32]);
/* Parses RFC 3339 with 'Z' or a numeric offset, optional fraction. Returns 0 or -1. */
int model_time_parse(const char *s, int64_t *ret_us);

/* The task view of SPEC §3 as JSON text (owned, free()), or NULL on ENOMEM: the one
 * way a task is shown (API, cache, dispatchctl).  The stored payload is spliced in
 * byte for byte, never parsed and printed again (a 1 MiB payload would cost tens of
 * MB as a cJSON tree, and 12345678901234567891 would come back as a double); so is
 * the result when it is JSON (checked by jsonx's scanner), else it is a string. */
char *model_task_view_text(const struct task *t);

/* --- idempotency keys (SPEC §3.1) ------------------------------------------
 * A key is scoped by user, method and route, and fingerprinted by the SHA-256 of
 * the canonical request body.  The first request with a key claims it in the same
 * transaction as its task row; a later one finds the claim and, depending on the
 * fingerprint and whether a response is stored, is replayed, refused with 422, or
 * told to retry (409) while the first is in flight. */
#define IDEM_KEY_MAX         255
#define IDEM_FINGERPRINT_LEN 32

struct idem_claim {
    /* in */
    const char *method; /* "POST" */
    const char *route;  /* "/tasks" */
    const char *key;    /* NULL: this request has no key */
    unsigned char fingerprint[IDEM_FINGERPRINT_LEN];
    int64_t expires_at;
    /* out: set when an unexpired claim by an earlier request exists */
    bool exists;
    bool same_fingerprint;
    int response_code;     /* 0 while the earlier request is in flight */
    char *response_body;   /* owned (free()), NULL when none */
    struct ids_id task_id; /* the earlier request's task */
};

/* The response to store under a claimed key once its request has one. */
struct idem_response {
    const struct ids_id *user;
    const char *method;
    const char *route;
    const char *key;
    int code;
    const char *body;
};

/* Printable ASCII (0x20..0x7e), 1..IDEM_KEY_MAX characters, not all spaces. */
bool model_idem_key_valid(const char *key);

/* The Kafka message value of a task: {"id","type","payload","priority","max_attempts",
 * "timeout_ms","run_at","ordering_key","created_at"} with the payload embedded as
 * JSON.  Producer, outbox relay and replay all publish this; the worker reads "id".
 * Returns a string owned by the caller (free()), or NULL on ENOMEM. */
char *model_task_message(const struct task *t);

/* The Kafka key: ordering_key when set, else the id's text (into idbuf). */
const char *model_task_key(const struct task *t, char idbuf[IDS_TEXT_LEN + 1], size_t *ret_len);

#endif
