/* ctl — the dead-letter queue in the database: dlq list, dlq replay, dlq purge.
 * (dlq tail, which reads the DLQ topic, is tail.c.) */
#include "ctl/ctl_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <cjson/cJSON.h>

#include "cache/cache.h"
#include "queue/queue.h"

#define LIST_DEFAULT      50
#define ERROR_CELL        60    /* last_error bytes shown in the table */
#define PAGE              100   /* DEAD rows read per query by replay --type */
#define PURGE_BATCH       500   /* tasks purged per transaction */
#define REPLAY_TIMEOUT_MS 10000 /* the broker's ack of one replayed message */
#define ACTOR_MAX         129   /* task_attempts.worker_id, dlq_audit.actor: VARCHAR(128) */

/* Prints one task as a JSON line (its view). */
static int print_json_line(const struct task *t, FILE *out)
{
    char *text = model_task_view_text(t);
    if (!text)
        return -1;
    fprintf(out, "%s\n", text);
    free(text);
    return 0;
}

static void print_table(const struct task *tasks, size_t n, FILE *out)
{
    int type_w = 4;
    for (size_t i = 0; i < n; i++) {
        int w = (int)strlen(tasks[i].type);
        if (w > type_w)
            type_w = w;
    }
    fprintf(out, "%-36s  %-*s  %8s  %-27s  %s\n", "ID", type_w, "TYPE", "ATTEMPTS", "FINISHED_AT",
            "LAST_ERROR");
    for (size_t i = 0; i < n; i++) {
        const struct task *t = &tasks[i];
        char id[IDS_TEXT_LEN + 1], fin[32] = "-", err[ERROR_CELL + 8];
        ids_format(&t->id, id);
        if (t->finished_at)
            model_time_format(t->finished_at, fin);
        ctl__clip(t->last_error, ERROR_CELL, err, sizeof err);
        fprintf(out, "%-36s  %-*s  %8d  %-27s  %s\n", id, type_w, t->type, t->attempts, fin, err);
    }
}

static void release_all(struct task *tasks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        model_task_release(&tasks[i]);
    free(tasks);
}

/* --type: a valid task type or a usage error. */
static int check_type(const char *cmd, const char *type, FILE *err)
{
    if (type && !model_type_valid(type)) {
        fprintf(err, "dispatchctl: %s: --type must match ^[a-z0-9][a-z0-9._-]{0,63}$\n", cmd);
        return -1;
    }
    return 0;
}

int ctl__dlq_list(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    const char *type = NULL, *since = NULL, *limit = NULL;
    bool json = false;
    const struct ctl__opt opts[] = {
        {"type", CTL__VALUE, &type},
        {"since", CTL__VALUE, &since},
        {"limit", CTL__VALUE, &limit},
        {"json", CTL__FLAG, &json},
    };
    struct store_dlq_filter f = {.limit = LIST_DEFAULT};
    struct store *store = NULL;
    struct task *tasks = NULL;
    size_t n = 0;
    long lim;
    int npos, rc;

    if (ctl__parse_args("dlq list", argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0, &npos,
                        err) < 0 ||
        check_type("dlq list", type, err) < 0)
        return EX_USAGE;
    if (since && ctl__parse_when(since, model_now_us(), &f.since) < 0) {
        fprintf(err, "dispatchctl: dlq list: --since wants an RFC 3339 time or a duration "
                     "like 90s, 15m, 1h or 7d\n");
        return EX_USAGE;
    }
    if (limit) {
        if (ctl__parse_long(limit, 1, STORE_LIST_MAX, &lim) < 0) {
            fprintf(err, "dispatchctl: dlq list: --limit must be 1..%d\n", STORE_LIST_MAX);
            return EX_USAGE;
        }
        f.limit = (size_t)lim;
    }
    f.type = type;
    if (ctl__store_open(cfg, "dlq list", &store, err) < 0)
        return EX_UNAVAILABLE;
    rc = store_dlq_list(store, &f, &tasks, &n);
    store_free(store);
    if (rc != STORE_OK) {
        fprintf(err, "dispatchctl: dlq list: %s\n", store_strerror(rc));
        return EX_UNAVAILABLE;
    }
    rc = EX_OK;
    if (json) {
        for (size_t i = 0; i < n && rc == EX_OK; i++)
            rc = print_json_line(&tasks[i], out) == 0 ? EX_OK : EX_SOFTWARE;
    } else if (n == 0) {
        fprintf(out, "no dead tasks\n");
    } else {
        print_table(tasks, n, out);
    }
    release_all(tasks, n);
    return rc;
}

/* --- replay ------------------------------------------------------------------ */

struct replay {
    bool dry_run;
    int64_t interval_ns;  /* --rate: at least this long between two replays; 0: no limit */
    struct timespec next; /* CLOCK_MONOTONIC: the earliest moment of the next replay */
    struct store *store;
    struct queue_producer *producer;
    struct cache *cache; /* tells readers the task changed (best effort) */
    const char *topic;
    char actor[ACTOR_MAX];
    int publish_err; /* of the last publish */
    size_t replayed, skipped;
    FILE *out, *err;
};

static int64_t ts_ns(const struct timespec *t)
{
    return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* --rate: sleeps until the next replay is due (a bucket of one token). */
static void pace(struct replay *r)
{
    struct timespec now;
    int64_t next;

    if (r->interval_ns <= 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (ts_ns(&now) < ts_ns(&r->next)) {
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &r->next, NULL) == EINTR) {
        }
        now = r->next;
    }
    next = ts_ns(&now) + r->interval_ns;
    r->next.tv_sec = (time_t)(next / 1000000000);
    r->next.tv_nsec = (long)(next % 1000000000);
}

/* store_replay_fn: the task message, as the producer publishes it, acknowledged. */
static int publish_task(void *arg, const struct task *t)
{
    struct replay *r = arg;
    char idbuf[IDS_TEXT_LEN + 1];
    struct queue_header h = {"traceparent", t->traceparent, strlen(t->traceparent)};
    size_t key_len = 0;
    const char *key = model_task_key(t, idbuf, &key_len);
    char *msg = model_task_message(t);

    if (!msg) {
        r->publish_err = QUEUE_ENOMEM;
        return -1;
    }
    r->publish_err = queue_produce_sync(r->producer, r->topic, key, key_len, msg, strlen(msg), &h,
                                        t->traceparent[0] ? 1 : 0);
    free(msg);
    return r->publish_err == QUEUE_OK ? 0 : -1;
}

static void report_skip(struct replay *r, const char *id, const struct task *t)
{
    r->skipped++;
    if (t)
        fprintf(r->err, "dispatchctl: dlq replay: task %s is %s, not DEAD: skipped\n", id,
                model_status_name(t->status));
    else
        fprintf(r->err, "dispatchctl: dlq replay: no task %s: skipped\n", id);
}

static int dry_run_one(struct replay *r, const struct ids_id *id, const char *text)
{
    char err[ERROR_CELL + 8];
    struct task t;
    int rc = store_task_get(r->store, id, &t);

    if (rc == STORE_ENOTFOUND) {
        report_skip(r, text, NULL);
        return EX_OK;
    }
    if (rc != STORE_OK) {
        fprintf(r->err, "dispatchctl: dlq replay: task %s: %s\n", text, store_strerror(rc));
        return EX_UNAVAILABLE;
    }
    if (t.status != TASK_DEAD) {
        report_skip(r, text, &t);
    } else {
        ctl__clip(t.last_error, ERROR_CELL, err, sizeof err);
        fprintf(r->out, "would replay %s %s (attempts %d, last error: %s)\n", text, t.type,
                t.attempts, err);
        r->replayed++;
    }
    model_task_release(&t);
    return EX_OK;
}

/* Replays one task; EX_OK also when it was skipped (counted), else stop. */
static int replay_one(struct replay *r, const struct ids_id *id)
{
    char text[IDS_TEXT_LEN + 1];
    enum store_replay outcome;
    struct task t;
    int rc;

    ids_format(id, text);
    if (r->dry_run)
        return dry_run_one(r, id, text);
    pace(r);
    rc = store_dlq_replay(r->store, id, r->actor, publish_task, r, &t, &outcome);
    if (rc != STORE_OK) {
        fprintf(r->err, "dispatchctl: dlq replay: task %s: %s; it is unchanged\n", text,
                store_strerror(rc));
        return EX_UNAVAILABLE;
    }
    switch (outcome) {
    case STORE_REPLAYED:
        /* MySQL first, then the caches: readers stop seeing DEAD at once */
        if (r->cache)
            cache_task_changed_now(r->cache, id, 1);
        fprintf(r->out, "replayed %s %s\n", text, t.type);
        r->replayed++;
        model_task_release(&t);
        return EX_OK;
    case STORE_REPLAY_NOT_DEAD:
        report_skip(r, text, &t);
        model_task_release(&t);
        return EX_OK;
    case STORE_REPLAY_NOT_FOUND:
        report_skip(r, text, NULL);
        return EX_OK;
    case STORE_REPLAY_UNPUBLISHED:
    default:
        fprintf(r->err,
                "dispatchctl: dlq replay: the broker did not take task %s (%s); it is still "
                "DEAD\n",
                text, queue_strerror(r->publish_err));
        return EX_UNAVAILABLE;
    }
}

/* replay --type T: every DEAD task of the type, oldest first. */
static int replay_type(struct replay *r, const char *type)
{
    struct store_dlq_cursor cursor;
    bool started = false;
    int rc = EX_OK;

    for (;;) {
        struct task *tasks = NULL;
        size_t n = 0;
        int src = store_dlq_page(r->store, type, started ? &cursor : NULL, PAGE, &tasks, &n);
        if (src != STORE_OK) {
            fprintf(r->err, "dispatchctl: dlq replay: %s\n", store_strerror(src));
            return EX_UNAVAILABLE;
        }
        for (size_t i = 0; i < n && rc == EX_OK; i++)
            rc = replay_one(r, &tasks[i].id);
        if (n > 0) {
            cursor.created_at = tasks[n - 1].created_at;
            cursor.id = tasks[n - 1].id;
            started = true;
        }
        release_all(tasks, n);
        if (rc != EX_OK || n < PAGE)
            return rc;
    }
}

static int replay_ids(struct replay *r, const struct ids_id *ids, int n)
{
    int rc = EX_OK;
    for (int i = 0; i < n && rc == EX_OK; i++)
        rc = replay_one(r, &ids[i]);
    return rc;
}

/* Every id is a UUID, or nothing is done at all. */
static int parse_ids(char **args, int n, struct ids_id **ret_ids, FILE *err)
{
    struct ids_id *ids = calloc((size_t)n + 1, sizeof *ids);
    if (!ids)
        return -1;
    for (int i = 0; i < n; i++) {
        if (ids_parse(args[i], strlen(args[i]), &ids[i]) < 0) {
            fprintf(err, "dispatchctl: dlq replay: '%s' is not a task id (a UUID)\n", args[i]);
            free(ids);
            return -1;
        }
    }
    *ret_ids = ids;
    return 0;
}

static int replay_open(struct replay *r, const struct config *cfg)
{
    struct queue_producer_config pc = {
        .brokers = cfg->kafka_brokers,
        .client_id = "dispatchctl",
        .linger_ms = 0,
        .message_timeout_ms = REPLAY_TIMEOUT_MS,
    };
    struct cache_config cc = {
        .host = cfg->redis_host,
        .port = cfg->redis_port,
        .timeout_ms = cfg->redis_timeout_ms,
        .pool_size = 1,
        .breaker_threshold = cfg->redis_breaker_threshold,
        .breaker_open_ms = cfg->redis_breaker_open_ms,
        .lease_ms = 1000,
    };
    if (ctl__store_open(cfg, "dlq replay", &r->store, r->err) < 0)
        return -1;
    if (!r->dry_run && queue_producer_new(&pc, &r->producer) != QUEUE_OK) {
        fprintf(r->err, "dispatchctl: dlq replay: cannot create a Kafka producer for %s\n",
                cfg->kafka_brokers);
        return -1;
    }
    /* without Redis the caches expire on their own (TTL): a warning, not a failure */
    if (!r->dry_run && cache_new(&cc, &r->cache) != CACHE_OK)
        r->cache = NULL;
    return 0;
}

int ctl__dlq_replay(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    const char *type = NULL, *rate = NULL;
    struct replay r = {.out = out, .err = err, .topic = cfg->kafka_topic};
    const struct ctl__opt opts[] = {
        {"type", CTL__VALUE, &type},
        {"rate", CTL__VALUE, &rate},
        {"dry-run", CTL__FLAG, &r.dry_run},
    };
    char **args = calloc((size_t)argc + 1, sizeof *args);
    struct ids_id *ids = NULL;
    int n_ids = 0, rc = EX_USAGE;

    if (!args)
        return EX_SOFTWARE;
    if (ctl__parse_args("dlq replay", argc, argv, opts, sizeof opts / sizeof opts[0], args, argc,
                        &n_ids, err) < 0 ||
        check_type("dlq replay", type, err) < 0 || parse_ids(args, n_ids, &ids, err) < 0)
        goto out_ids;
    if ((n_ids == 0) == (type == NULL)) {
        fprintf(err, "dispatchctl: dlq replay: give task ids or --type T (one of the two)\n");
        goto out_ids;
    }
    if (rate && ctl__parse_rate(rate, &r.interval_ns) < 0) {
        fprintf(err, "dispatchctl: dlq replay: --rate wants replays per second, like 10/s\n");
        goto out_ids;
    }
    ctl__actor(r.actor, sizeof r.actor);
    rc = EX_UNAVAILABLE;
    if (replay_open(&r, cfg) < 0)
        goto out_clients;
    rc = type ? replay_type(&r, type) : replay_ids(&r, ids, n_ids);
    if (r.dry_run)
        fprintf(out, "dry run: %zu would be replayed, %zu skipped; nothing was changed\n",
                r.replayed, r.skipped);
    else
        fprintf(out, "%zu replayed, %zu skipped\n", r.replayed, r.skipped);
    if (rc == EX_OK && r.skipped > 0)
        rc = EX_DATAERR;
out_clients:
    cache_free(r.cache);
    queue_producer_free(r.producer);
    store_free(r.store);
out_ids:
    free(ids);
    free(args);
    return rc;
}

/* --- purge ------------------------------------------------------------------- */

/* The audit line on err: one JSON object, like the log's lines. */
static void audit_line(FILE *err, const char *actor, int64_t before, size_t purged, bool ok)
{
    char ts[32], when[32];
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;

    model_time_format(model_now_us(), ts);
    model_time_format(before, when);
    if (o && cJSON_AddStringToObject(o, "ts", ts) && cJSON_AddStringToObject(o, "level", "info") &&
        cJSON_AddStringToObject(o, "service", "dispatchctl") &&
        cJSON_AddStringToObject(o, "msg", "dlq purge") &&
        cJSON_AddStringToObject(o, "audit", "dlq.purge") &&
        cJSON_AddStringToObject(o, "actor", actor) && cJSON_AddStringToObject(o, "before", when) &&
        cJSON_AddNumberToObject(o, "purged", (double)purged) &&
        cJSON_AddStringToObject(o, "recorded_in", "dlq_audit") &&
        cJSON_AddBoolToObject(o, "ok", ok))
        text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text)
        fprintf(err, "%s\n", text);
    else
        fprintf(err, "dispatchctl: dlq purge: %zu purged by %s (audit line: out of memory)\n",
                purged, actor);
    cJSON_free(text);
}

static int purge_run(struct store *store, int64_t before, const char *when, FILE *out, FILE *err)
{
    char actor[ACTOR_MAX];
    size_t total = 0, n = PURGE_BATCH;
    int rc = STORE_OK;

    ctl__actor(actor, sizeof actor);
    while (rc == STORE_OK && n == PURGE_BATCH) {
        rc = store_dlq_purge(store, before, actor, PURGE_BATCH, &n);
        if (rc == STORE_OK)
            total += n;
    }
    audit_line(err, actor, before, total, rc == STORE_OK);
    if (rc != STORE_OK) {
        fprintf(err, "dispatchctl: dlq purge: stopped after %zu: %s\n", total, store_strerror(rc));
        return EX_UNAVAILABLE;
    }
    fprintf(out, "purged %zu dead tasks that died before %s (recorded in dlq_audit)\n", total,
            when);
    return EX_OK;
}

int ctl__dlq_purge(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    const char *before_arg = NULL;
    bool yes = false;
    const struct ctl__opt opts[] = {
        {"before", CTL__VALUE, &before_arg},
        {"yes", CTL__FLAG, &yes},
    };
    struct store *store = NULL;
    char when[32];
    int64_t before;
    size_t n = 0;
    int npos, rc;

    if (ctl__parse_args("dlq purge", argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0, &npos,
                        err) < 0)
        return EX_USAGE;
    if (!before_arg || ctl__parse_when(before_arg, model_now_us(), &before) < 0) {
        fprintf(err, "dispatchctl: dlq purge: --before wants an RFC 3339 time or a duration "
                     "like 30d\n");
        return EX_USAGE;
    }
    model_time_format(before, when);
    if (ctl__store_open(cfg, "dlq purge", &store, err) < 0)
        return EX_UNAVAILABLE;
    if (!yes) {
        rc = store_dlq_count(store, before, &n);
        store_free(store);
        if (rc != STORE_OK) {
            fprintf(err, "dispatchctl: dlq purge: %s\n", store_strerror(rc));
            return EX_UNAVAILABLE;
        }
        fprintf(err,
                "dispatchctl: dlq purge: %zu dead tasks died before %s; nothing was deleted: "
                "add --yes to delete them\n",
                n, when);
        return EX_USAGE;
    }
    rc = purge_run(store, before, when, out, err);
    store_free(store);
    return rc;
}
