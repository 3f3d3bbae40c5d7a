/* api module-private: the per-request context, the route table and the helpers
 * every endpoint shares (body parsing against a spec, responses, problems). */
#ifndef DISPATCH_API_INT_H
#define DISPATCH_API_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "api/api.h"
#include "control/control.h"
#include "deadline/deadline.h"
#include "ids/ids.h"
#include "jsonx/jsonx.h"
#include "model/model.h"
#include "submit/submit.h"
#include "status/status.h"

/* --- the connection guard (guard.c) ------------------------------------------ */

enum api_cut { API_CUT_HEAD = 0, API_CUT_BODY };

/* One per TCP connection (MHD's socket context), registered with the guard. */
struct api_conn {
    struct api_conn *prev, *next; /* the guard's list, under its lock */
    int fd;
    bool served;                 /* a request ended on it (MHD thread only) */
    int64_t body_start_us;       /* MHD thread only */
    _Atomic int64_t deadline_us; /* monotonic; 0: none */
    _Atomic int reason;          /* enum api_cut: what the deadline is for */
};

struct api_guard {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool started, stop;
    struct api_conn *conns;
    int64_t head_us, body_us;
    long long min_rate;
    unsigned long cut_head, cut_body; /* under lock */
    _Atomic long long body_bytes;     /* reserved by bodies being read */
};

struct api {
    struct api_config cfg;
    struct api_deps deps;
    struct MHD_Daemon *daemon;
    int port;
    int quiesced_fd; /* the listener after api_quiesce(); closed by api_free() */
    struct api_guard guard;
    _Atomic bool closing;    /* api_quiesce() was called: refuse new requests */
    _Atomic int in_handlers; /* handlers running on HTTP threads right now */
    struct deadline *timer;  /* request deadlines (call.c) */
};

void api__guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe);
void *api__guard_request_line(void *cls, const char *uri, struct MHD_Connection *conn);
struct api_conn *api__guard_of(struct MHD_Connection *conn);
/* The head is in: the body's deadline starts. */
void api__guard_body_start(struct api *api, struct api_conn *c);
/* received bytes of the body so far move its deadline by 1 s per min_rate bytes. */
void api__guard_body_progress(struct api *api, struct api_conn *c, size_t received);
/* The request is with its handler (or answered): no deadline. */
void api__guard_busy(struct api_conn *c);
/* The request ended: the next head's deadline starts at its request line. */
void api__guard_served(struct api_conn *c);
/* Reserves n bytes of the body budget; false when it would exceed it. */
bool api__budget_take(struct api *api, size_t n);
void api__budget_give(struct api *api, size_t n);
int api__guard_start(struct api *api);
void api__guard_stop(struct api *api);

struct api_request;

/* --- work off the HTTP threads, under the request deadline (call.c) ----------- */
struct api_call;
/* Prepares the request's answer from the call's results (the work won the race). */
typedef void (*api_call_respond_fn)(struct api_call *c, struct api_request *req);
/* Frees the call's results, whoever answered. */
typedef void (*api_call_release_fn)(struct api_call *c);

struct api_call {
    struct api *api;
    struct api_request *req; /* read only by the side that answers */
    api_call_respond_fn respond;
    api_call_release_fn release;
    const char *late_detail; /* the deadline's 503 says this (a constant) */
    struct deadline_entry timer_;
    atomic_int refs;
    bool armed;

    /* POST /tasks */
    struct submit_request submit;
    char idem_key[IDEM_KEY_MAX + 1];
    /* GET /tasks */
    struct status_query query;
    struct ids_id after;
    enum task_status status;
    char type[MODEL_TYPE_MAX + 1];
    struct status_page page;
    int rc;
    /* GET /tasks/{id} without ?wait: a miss looked up by the status reader */
    struct status_call read;
    struct status_view view; /* its result, copied (json owned) */
    /* POST /tasks/{id}/cancel */
    struct ids_id id;
    struct task task;
    enum control_cancel outcome;
};

/* A call for req (not yet armed); NULL out of memory. */
struct api_call *api_call_new(struct api_request *req, api_call_respond_fn respond,
                              api_call_release_fn release);
/* Frees a call that was never started (release runs); accepts NULL. */
void api_call_free(struct api_call *c);
/* Arms the deadline (the request must be suspended): from now on exactly one of
 * the work's api_call_finish() and the deadline answers and resumes it. */
void api_call_start(struct api_call *c);
/* The work is done (any thread): answers through respond unless the deadline did,
 * then frees the call.  Nothing may touch c afterwards. */
void api_call_finish(struct api_call *c);
/* 503 with the breaker's Retry-After when g refuses now (what: "MariaDB"). */
bool api_refuse_if_open(struct api_request *req, struct guard *g, const char *what);

/* An endpoint: fills req->status/req->response now, or suspends the request and
 * completes it later with api_complete(). */
typedef void (*api_handler_fn)(struct api_request *req);

struct api_route {
    const char *method;
    const char *pattern; /* "/tasks" exact; "/tasks/{id}" captures one segment */
    const char *name;    /* the route's label in logs and metrics */
    api_handler_fn handler;
    bool needs_auth; /* Bearer token required; req->user is its subject */
};

enum api_state {
    REQ_READING = 0, /* headers seen, body being read */
    REQ_DISPATCHED,  /* the handler ran (it may have suspended the connection) */
    REQ_QUEUED,      /* response queued */
};

struct api_request {
    struct api *api;
    struct MHD_Connection *conn;
    const struct api_route *route;
    const char *method;
    char path[256];
    char param[128]; /* the {id} segment, if any */
    char request_id[129];
    char traceparent[MODEL_TRACEPARENT_LEN + 1];
    struct ids_id user; /* the authenticated caller (routes with needs_auth) */
    int64_t start_us;
    enum api_state state; /* touched by MHD threads only */
    bool suspended;       /* the handler suspended in this call (MHD thread) */

    struct api_conn *guard; /* the connection's deadlines (NULL: unguarded) */
    char *body;             /* read so far (NUL-terminated) */
    size_t body_len, body_cap;
    size_t body_seen;     /* bytes of the body received, kept or not */
    size_t body_reserved; /* bytes of the body budget held (released on completion) */
    long long body_limit; /* the route's cap */
    bool body_too_large;
    bool body_discard;     /* the answer is decided: read and drop the rest */
    bool body_over_budget; /* the budget could not hold it: 503 */

    unsigned int status; /* response to queue */
    struct MHD_Response *response;

    char *credentials; /* register/login: "email\0password\0", wiped after use */

    struct status_call read; /* GET /tasks/{id}: the lookup or long-poll under way */
    long long wait_s;        /* GET /tasks/{id}?wait=N */
    bool waited;             /* the long-poll was started (it ends the request) */
};

extern const struct api_route api_routes[];
extern const size_t api_n_routes;

/* Finds the route for method+path; *ret_allowed tells whether the path exists
 * with another method (405 rather than 404).  Copies a {param} into req->param. */
const struct api_route *api_route_match(struct api_request *req, const char *method,
                                        const char *path, bool *ret_path_known);

/* --- responses (all set req->status and req->response) --------------------- */

/* JSON body (owned text, freed by MHD after sending) with Content-Type. */
void api_respond_text(struct api_request *req, unsigned int status, char *body, const char *type);
/* Serialises json (not consumed). */
void api_respond_json(struct api_request *req, unsigned int status, const cJSON *json);
/* RFC 9457 problem: type is a slug under the docs (e.g. "validation"), detail is
 * printf-style. */
void api_problem(struct api_request *req, unsigned int status, const char *type, const char *title,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* 500 "out of memory" and 503 "unavailable" with Retry-After: 1, the two problems
 * every endpoint may need. */
void api_problem_oom(struct api_request *req);
void api_problem_unavailable(struct api_request *req, const char *detail);
/* Adds a header to the prepared response (no-op if none). */
void api_add_header(struct api_request *req, const char *name, const char *value);

/* Called from any thread once a suspended request has its response: resumes it.
 * Nothing may touch req after this returns (another MHD thread may free it). */
void api_complete(struct api_request *req);
void api_suspend(struct api_request *req);

/* --- requests -------------------------------------------------------------- */

/* Parses the body as a JSON object of at most cfg.json_max_depth; on failure the
 * problem response is prepared and NULL returned.  Result owned by the caller. */
cJSON *api_body_json(struct api_request *req);
/* Checks obj against spec; on failure prepares a 400 naming the field. */
bool api_body_spec(struct api_request *req, const cJSON *obj, const struct jsonx_field *spec);
/* The request header value, or NULL. */
const char *api_header(struct api_request *req, const char *name);

/* Zeroes and frees req->credentials (register/login). */
void api_wipe_credentials(struct api_request *req);

/* --- query parameters (query.c) ------------------------------------------------
 * Like a body spec: one array per endpoint, checked by one call.  Every parameter
 * is optional (defaults go into the destinations first); unknown, repeated and
 * empty parameters are refused, so a typo never silently widens a query. */
enum api_param_type {
    API_PT_END = 0,
    API_PT_INT,    /* dest: long long *; min..max bound the value; decimal digits only */
    API_PT_STRING, /* dest: const char ** (valid for the request); min..max bound the
                    * length in bytes, then valid() (if any) must accept it */
};

struct api_param {
    const char *name;
    enum api_param_type type;
    long long min, max;
    bool (*valid)(const char *value);
    const char *expect; /* STRING: what a valid value is, for the 400's detail */
    void *dest;
};

/* brace initialisers in macros, kept on one line like jsonx.h's */
/* clang-format off */
#define API_PARAM_INT(n, lo, hi, d) {(n), API_PT_INT, (lo), (hi), NULL, NULL, (d)}
#define API_PARAM_STRING(n, lo, hi, fn, what, d) \
    {(n), API_PT_STRING, (lo), (hi), (fn), (what), (d)}
#define API_PARAM_END {NULL, API_PT_END, 0, 0, NULL, NULL, NULL}
/* clang-format on */
#define API_PARAMS_MAX 16 /* entries one spec may have */

/* Checks the request's query parameters against spec; on failure prepares a 400
 * (/problems/validation) naming the parameter and returns false.  Destinations are
 * written only on success. */
bool api_query_spec(struct api_request *req, const struct api_param *spec);

/* --- conditional requests (etag.c) -------------------------------------------- */

#define API_ETAG_LEN 34 /* a quoted 128-bit hash in hex: "\"<32 hex>\"" */

/* The strong validator of a task's view: BLAKE2b-128 over the view version, id,
 * updated_at, attempts and status (every change of the row moves updated_at). */
void api_etag(const struct task *t, char out[API_ETAG_LEN + 1]);
/* RFC 9110 §13.1.2: does an If-None-Match field of the request ("*", or a list of
 * entity tags compared weakly) match etag?  No field, or a malformed one: false. */
bool api_if_none_match(struct api_request *req, const char *etag);
/* 304 Not Modified with the ETag and no body.  text is the representation a 200
 * would carry, taken over: libmicrohttpd announces a 304's Content-Length from the
 * response's size, and RFC 9110 §8.6 allows only the 200's length there. */
void api_respond_not_modified_text(struct api_request *req, const char *etag, char *text);

/* --- rate limits (limit.c) ------------------------------------------------------ */

/* POST /tasks of the authenticated req->user, and POST /auth/{login,register} from the
 * client's address for email: true to go on; false with the 429 prepared (Retry-After,
 * RateLimit, RateLimit-Policy) and rate_limited_total counted.  Never waits on I/O. */
bool api_limit_tasks(struct api_request *req);
bool api_limit_auth(struct api_request *req, const char *email);

/* --- endpoints --------------------------------------------------------------- */
void api_h_healthz(struct api_request *req);
void api_h_register(struct api_request *req);
void api_h_login(struct api_request *req);
void api_h_readyz(struct api_request *req);
void api_h_metrics(struct api_request *req);
void api_h_tasks_create(struct api_request *req);
void api_h_tasks_get(struct api_request *req);
void api_h_tasks_list(struct api_request *req);
void api_h_tasks_cancel(struct api_request *req);

#endif
