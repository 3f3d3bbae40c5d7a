/* api — the producer's HTTP face (libmicrohttpd).
 *
 * Poll mode with a thread pool (Debian's 0.9.75 epoll mode can freeze when exactly
 * 128 events are ready), suspend/resume for requests that wait on the pipeline,
 * responses queued on a later call of the access handler than the first (queueing
 * on the first call loses keep-alive in 0.9.75), connection timeout, per-IP and total
 * connection limits and a per-connection memory limit set explicitly (MHD's defaults
 * have none of the first three).  Routes live in one table; one file per endpoint.
 */
#ifndef DISPATCH_API_H
#define DISPATCH_API_H

#include <stdbool.h>
#include <stddef.h>

struct account;
struct auth;
struct control;
struct metrics;
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
    int task_timeout_ms_max; /* POST /tasks: a larger timeout_ms is a 400; 0: none */
};

/* A dependency /readyz reports: name and a probe that answers quickly. */
struct api_probe {
    const char *name;
    bool (*ready)(void *ctx);
    void *ctx;
};

struct api_deps {
    struct submit *submit;
    const struct status *status;
    const struct account *account;
    const struct auth *auth;
    struct workpool *blocking; /* runs register/login (argon2id) off the HTTP threads */
    const struct api_probe *probes;
    size_t n_probes;
    const struct control *control; /* POST /tasks/{id}/cancel */
    struct metrics *metrics;       /* per-request counts and GET /metrics; NULL: none */
    struct status_reader *reader;  /* GET /tasks/{id}: the cached read path; NULL: status */
};

struct api;

/* Binds and starts serving; fails (logged) when the address cannot be bound. */
int api_new(const struct api_config *cfg, const struct api_deps *deps, struct api **ret_api);
/* The port actually bound (useful with port 0). */
int api_port(const struct api *api);
/* Stops accepting, finishes, frees.  Suspended requests must have been completed
 * (submit_free() before api_free() would strand them; the producer stops the api's
 * listener first, then the pipeline, then frees the api). */
void api_quiesce(struct api *api);
void api_free(struct api *api);

#endif
