/* api — the producer's HTTP face (libmicrohttpd).
 *
 * Poll mode with a thread pool (Debian's 0.9.75 epoll mode can freeze when exactly
 * 128 events are ready), suspend/resume for requests that wait on the pipeline,
 * responses queued on a later call of the access handler than the first (queueing
 * on the first call loses keep-alive in 0.9.75), connection timeout, per-IP and total
 * connection limits and a per-connection memory limit set explicitly (MHD's defaults
 * have none of the first three).  Routes live in one table; one file per endpoint.
 *
 * What a hostile client can make it hold is bounded (docs/reliability.md): the token
 * is checked on the first call, before any body is read (a 401 is answered at once
 * and the connection closed); bodies of routes without a token are capped at
 * anon_max_body_bytes; a head must arrive within head_timeout_s and a body keep
 * making progress (guard.c); all bodies being read share body_budget_bytes (503
 * beyond it).
 */
#ifndef DISPATCH_API_H
#define DISPATCH_API_H

#include <stdbool.h>
#include <stddef.h>

struct account;
struct auth;
struct control;
struct guard;
struct metrics;
struct ratelimit;
struct status;
struct status_reader;
struct submit;
struct workpool;

struct api_config {
    const char *addr; /* host:port */
    int threads;
    int max_connections;
    int per_ip_connections;
    int timeout_s;
    long long max_body_bytes;
    int json_max_depth;
    int idempotency_ttl_s;
    /* protection (issue 9): what one client can make the producer hold */
    int head_timeout_s;            /* a request head must be complete within this */
    int body_timeout_s;            /* a body: this, plus 1 s per body_min_rate bytes */
    int body_min_rate;             /* bytes per second a body must keep up */
    int connection_memory_bytes;   /* MHD's per-connection pool (head + buffers) */
    long long body_budget_bytes;   /* every buffered body together; 503 beyond */
    long long anon_max_body_bytes; /* body cap of routes without a token */
    int request_deadline_ms;       /* work handed off a request answers 503 after this */
    int task_timeout_ms_max;       /* POST /tasks: a larger timeout_ms is a 400; 0: none */
};

/* A dependency /readyz reports, from its guard's prober (never a call of its own):
 * required ones decide 200 or 503, the others are listed beside them. */
struct api_dependency {
    struct guard *guard;
    bool required;
};

struct api_deps {
    struct submit *submit;
    const struct status *status;
    const struct account *account;
    const struct auth *auth;
    struct workpool *blocking; /* runs register/login (argon2id) off the HTTP threads */
    const struct api_dependency *dependencies;
    size_t n_dependencies;
    const struct control *control; /* POST /tasks/{id}/cancel */
    struct metrics *metrics;       /* per-request counts and GET /metrics; NULL: none */
    struct status_reader *reader;  /* GET /tasks/{id}: the cached read path; NULL: status */
    /* Breakers a request checks before it hands work off (503 + Retry-After at once
     * while open); NULL: none. */
    struct guard *db_guard;
    struct guard *queue_guard;
    struct workpool *db_pool;    /* runs GET /tasks and cancels off the HTTP threads */
    struct ratelimit *ratelimit; /* rate limits of POST /tasks and sign-ins; NULL: none */
};

struct api;

/* Binds and starts serving; fails (logged) when the address cannot be bound. */
int api_new(const struct api_config *cfg, const struct api_deps *deps, struct api **ret_api);
/* The port actually bound (useful with port 0). */
int api_port(const struct api *api);
/* Shutdown, in two steps.  api_quiesce() stops accepting connections, makes every
 * request not yet handed to a handler answer 503 with "Connection: close" (also on
 * kept-alive connections), and returns once no handler runs on an HTTP thread: from
 * then on no HTTP thread calls into deps, so the modules behind them may be freed —
 * each completing the requests it holds (submit_free(), workpool_free(),
 * status_reader_stop() answer and resume theirs).  api_free() then closes every
 * connection and frees; nothing of deps is touched after api_quiesce() but metrics. */
void api_quiesce(struct api *api);
void api_free(struct api *api);

#endif
