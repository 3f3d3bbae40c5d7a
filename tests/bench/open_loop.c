/* open_loop — an open-loop load generator (wrk2 is not packaged): POSTs arrive on a
 * clock at RATE per second for SECONDS, whether or not earlier answers came back,
 * so a slow server cannot slow the load down and hide its own latency (coordinated
 * omission).  libcurl's multi interface, keep-alive connections up to CONNS.  Each
 * request's latency is counted from its scheduled time, not from when it was sent.
 * Prints "sent=… ok=… errors=… rate=… send_lag_ms=… p50_ms=… p99_ms=… max_ms=…": rate is
 * the sending rate achieved, send_lag_ms how far the generator itself fell behind its
 * clock at worst (a starved machine), p* the answers' latencies.
 *
 *   open_loop URL TOKEN RATE SECONDS [CONNS]   (body {"type":"noop","payload":{"n":i}}) */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct req {
    double due; /* scheduled start, seconds on the monotonic clock */
    char body[64];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static CURL *make_easy(const char *url, struct curl_slist *hdrs, struct req *r)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
    return e;
}

/* Collects finished transfers: latency from the scheduled time. */
static void reap(CURLM *m, double *lat, long *n_lat, long *ok, long *errors)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left))) {
        struct req *r;
        long code = 0;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
        lat[(*n_lat)++] = (now_s() - r->due) * 1000.0;
        if (msg->data.result == CURLE_OK && code >= 200 && code < 300)
            (*ok)++;
        else
            (*errors)++;
        curl_multi_remove_handle(m, msg->easy_handle);
        curl_easy_cleanup(msg->easy_handle);
    }
}

struct load {
    const char *url, *token;
    double rate;
    long total, conns;
    struct req *reqs;
    double *lat;
};

/* Sends the load on the clock and prints the summary; 0 when every answer was 2xx. */
static int run(const struct load *l)
{
    char auth[4096];
    struct curl_slist *hdrs = NULL, *h;
    CURLM *m = curl_multi_init();
    double start, last_sent = 0, lag = 0;
    long sent = 0, n_lat = 0, ok = 0, errors = 0;
    int running = 0, rc = 70;

    snprintf(auth, sizeof auth, "Authorization: Bearer %s", l->token);
    if (!m || !(h = curl_slist_append(hdrs, auth)))
        goto out;
    hdrs = h;
    if (!(h = curl_slist_append(hdrs, "Content-Type: application/json")))
        goto out;
    hdrs = h;
    if (!(h = curl_slist_append(hdrs, "Expect:")))
        goto out;
    hdrs = h;
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, l->conns);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, l->conns);

    start = now_s();
    while (sent < l->total || running > 0) {
        double now = now_s();
        while (sent < l->total && start + (double)sent / l->rate <= now) {
            struct req *r = &l->reqs[sent];
            CURL *e;
            r->due = start + (double)sent / l->rate;
            if (now - r->due > lag)
                lag = now - r->due; /* the generator itself behind its clock */
            snprintf(r->body, sizeof r->body, "{\"type\":\"noop\",\"payload\":{\"n\":%ld}}", sent);
            e = make_easy(l->url, hdrs, r);
            if (!e)
                goto out;
            if (curl_multi_add_handle(m, e) != CURLM_OK) {
                curl_easy_cleanup(e);
                goto out;
            }
            sent++;
            last_sent = now;
        }
        curl_multi_perform(m, &running);
        reap(m, l->lat, &n_lat, &ok, &errors);
        if (sent < l->total || running > 0) {
            double next = sent < l->total ? start + (double)sent / l->rate - now_s() : 0.01;
            int wait_ms = next <= 0 ? 0 : (int)(next * 1000.0);
            curl_multi_poll(m, NULL, 0, wait_ms > 10 ? 10 : wait_ms, NULL);
        }
    }
    reap(m, l->lat, &n_lat, &ok, &errors);
    qsort(l->lat, (size_t)n_lat, sizeof *l->lat, cmp_double);
    printf("sent=%ld ok=%ld errors=%ld rate=%.0f send_lag_ms=%.1f p50_ms=%.2f p99_ms=%.2f "
           "max_ms=%.2f\n",
           sent, ok, errors, last_sent > start ? (double)(sent - 1) / (last_sent - start) : 0.0,
           lag * 1000.0, n_lat ? l->lat[n_lat / 2] : 0.0,
           n_lat ? l->lat[(long)((double)n_lat * 0.99)] : 0.0, n_lat ? l->lat[n_lat - 1] : 0.0);
    rc = errors == 0 ? 0 : 1;
out:
    curl_multi_cleanup(m); /* handles still added stay allocated until exit: a tool */
    curl_slist_free_all(hdrs);
    return rc;
}

int main(int argc, char **argv)
{
    struct load l;
    int rc = 70;

    if (argc < 5) {
        fprintf(stderr, "usage: open_loop URL TOKEN RATE SECONDS [CONNS]\n");
        return 64;
    }
    l.url = argv[1];
    l.token = argv[2];
    l.rate = strtod(argv[3], NULL);
    l.total = (long)(l.rate * strtod(argv[4], NULL));
    l.conns = argc > 5 ? strtol(argv[5], NULL, 10) : 256;
    if (l.rate <= 0 || l.total <= 0 || l.conns <= 0)
        return 64;
    l.reqs = calloc((size_t)l.total, sizeof *l.reqs);
    l.lat = calloc((size_t)l.total, sizeof *l.lat);
    if (l.reqs && l.lat && curl_global_init(CURL_GLOBAL_DEFAULT) == 0) {
        rc = run(&l);
        curl_global_cleanup();
    }
    free(l.lat);
    free(l.reqs);
    return rc;
}
