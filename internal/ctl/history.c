/* ctl — task attempts ID: a task's history from task_attempts, oldest first (every
 * attempt with its worker, times, outcome and error; a DLQ replay is an 'replayed'
 * row with attempt 0, after which the count starts again). */
#include "ctl/ctl_int.h"

#include <string.h>
#include <sysexits.h>
#include <cjson/cJSON.h>

#define MAX_ROWS   STORE_LIST_MAX
#define ERROR_CELL 60

static void fmt_time(int64_t us, char out[32])
{
    if (us)
        model_time_format(us, out);
    else
        memcpy(out, "-", 2);
}

static int print_json(const struct store_attempt *a, FILE *out)
{
    char started[32], finished[32];
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;

    model_time_format(a->started_at, started);
    model_time_format(a->finished_at, finished);
    if (o && cJSON_AddNumberToObject(o, "attempt", a->attempt) &&
        cJSON_AddStringToObject(o, "outcome", a->outcome) &&
        cJSON_AddStringToObject(o, "worker", a->worker_id) &&
        cJSON_AddStringToObject(o, "started_at", started) &&
        (a->finished_at ? cJSON_AddStringToObject(o, "finished_at", finished) != NULL
                        : cJSON_AddNullToObject(o, "finished_at") != NULL) &&
        (a->error ? cJSON_AddStringToObject(o, "error", a->error) != NULL
                  : cJSON_AddNullToObject(o, "error") != NULL))
        text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return -1;
    fprintf(out, "%s\n", text);
    cJSON_free(text);
    return 0;
}

static void print_table(const struct store_attempt *a, size_t n, FILE *out)
{
    fprintf(out, "%7s  %-13s  %-27s  %-27s  %-24s  %s\n", "ATTEMPT", "OUTCOME", "STARTED_AT",
            "FINISHED_AT", "WORKER", "ERROR");
    for (size_t i = 0; i < n; i++) {
        char started[32], finished[32], err[ERROR_CELL + 8];
        fmt_time(a[i].started_at, started);
        fmt_time(a[i].finished_at, finished);
        ctl__clip(a[i].error, ERROR_CELL, err, sizeof err);
        fprintf(out, "%7d  %-13s  %-27s  %-27s  %-24s  %s\n", a[i].attempt, a[i].outcome, started,
                finished, a[i].worker_id, err);
    }
}

int ctl__task_attempts(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    bool json = false;
    const struct ctl__opt opts[] = {{"json", CTL__FLAG, &json}};
    struct store_attempt *rows = NULL;
    struct store *store = NULL;
    struct ids_id id;
    char *pos[1];
    size_t n = 0;
    int npos, rc;

    if (ctl__parse_args("task attempts", argc, argv, opts, 1, pos, 1, &npos, err) < 0)
        return EX_USAGE;
    if (npos != 1 || ids_parse(pos[0], strlen(pos[0]), &id) < 0) {
        fprintf(err, "dispatchctl: task attempts needs one task id (a UUID)\n");
        return EX_USAGE;
    }
    if (ctl__store_open(cfg, "task attempts", &store, err) < 0)
        return EX_UNAVAILABLE;
    rc = store_task_attempts(store, &id, MAX_ROWS, &rows, &n);
    store_free(store);
    if (rc != STORE_OK) {
        fprintf(err, "dispatchctl: task attempts: %s\n", store_strerror(rc));
        return EX_UNAVAILABLE;
    }
    rc = EX_OK;
    if (json) {
        for (size_t i = 0; i < n && rc == EX_OK; i++)
            rc = print_json(&rows[i], out) == 0 ? EX_OK : EX_SOFTWARE;
    } else if (n == 0) {
        fprintf(out, "no attempts recorded for %s\n", pos[0]);
    } else {
        print_table(rows, n, out);
    }
    store_attempts_free(rows, n);
    return rc;
}
