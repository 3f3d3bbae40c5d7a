/* api — work a request hands off the HTTP threads, answered by its completion or
 * by its deadline, whichever comes first (SPEC §3.2: "every database or broker call
 * from a request runs off the HTTP threads under a deadline").
 *
 * The work's inputs and outputs live in a struct api_call of its own, not in the
 * request: when the deadline wins, the request is answered (503) and resumed, and
 * libmicrohttpd may free it at once, while the work (a pipeline stuck in a MariaDB
 * call, say) still writes into the call.  Two references: the work's and the
 * timer's.  The work's end takes the timer back (pkg/deadline): taken, it answers
 * and drops both; too late, it releases its results and drops its own, and the
 * timer's call, which has answered, drops the other.  Nothing touches the request
 * but the one side that answers it. */
#include "api/api_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "deadline/deadline.h"
#include "guard/guard.h"

struct api_call *api_call_new(struct api_request *req, api_call_respond_fn respond,
                              api_call_release_fn release)
{
    struct api_call *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->api = req->api;
    c->req = req;
    c->respond = respond;
    c->release = release;
    atomic_init(&c->refs, 2);
    return c;
}

static void unref(struct api_call *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1)
        free(c);
}

void api_call_free(struct api_call *c)
{
    if (!c)
        return;
    if (c->release)
        c->release(c);
    free(c);
}

/* The timer's side: the work did not end in time. */
static void on_deadline(void *arg)
{
    struct api_call *c = arg;
    struct api_request *req = c->req;
    api_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "deadline-exceeded", "Service Unavailable", "%s",
                c->late_detail ? c->late_detail : "the request did not complete in time");
    api_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    api_complete(req);
    unref(c);
}

void api_call_start(struct api_call *c)
{
    struct api *api = c->api;
    c->armed = api->timer && deadline_add(api->timer, &c->timer_,
                                          deadline_now(api->timer) + api->cfg.request_deadline_ms,
                                          on_deadline, c) == 0;
    if (!c->armed)
        atomic_fetch_sub(&c->refs, 1); /* no timer: the work's reference alone */
}

void api_call_finish(struct api_call *c)
{
    struct api_request *req;
    if (c->armed && !deadline_cancel(c->api->timer, &c->timer_)) {
        /* the deadline answered (and the request may be gone): nobody will read
         * these results */
        if (c->release)
            c->release(c);
        unref(c);
        return;
    }
    req = c->req;
    c->respond(c, req);
    if (c->release)
        c->release(c);
    free(c);
    api_complete(req);
}

bool api_refuse_if_open(struct api_request *req, struct guard *g, const char *what)
{
    int retry_s = 1;
    char retry[16];
    if (!g || !guard_refuses(g, &retry_s))
        return false;
    api_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "circuit-open", "Service Unavailable",
                "%s is unavailable (circuit open); nothing was done, retry later", what);
    snprintf(retry, sizeof retry, "%d", retry_s > 0 ? retry_s : 1);
    api_add_header(req, MHD_HTTP_HEADER_RETRY_AFTER, retry);
    return true;
}
