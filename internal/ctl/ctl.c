/* ctl — the command table and the commands. */
#include "ctl/ctl.h"
#include "ctl/ctl_int.h"

#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <cjson/cJSON.h>

#include "queue/queue.h"
#include "status/status.h"
#include "store/store.h"

struct ctl_cmd {
    const char *name;
    const char *sub; /* NULL: no subcommand */
    const char *usage;
    int (*fn)(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err);
};

struct store_config ctl__store_config(const struct config *cfg, int pool)
{
    struct store_config sc = {
        .host = cfg->mysql_host,
        .port = cfg->mysql_port,
        .user = cfg->mysql_user,
        .password = cfg->mysql_password,
        .database = cfg->mysql_database,
        .pool_size = pool,
        .connect_timeout_ms = cfg->mysql_connect_timeout_ms,
        .io_timeout_ms = cfg->mysql_io_timeout_ms,
    };
    return sc;
}

int ctl__store_open(const struct config *cfg, const char *cmd, struct store **ret_store, FILE *err)
{
    struct store_config sc = ctl__store_config(cfg, 1);
    if (store_new(&sc, ret_store) != STORE_OK) {
        fprintf(err, "dispatchctl: %s: cannot connect to MariaDB at %s:%d\n", cmd, sc.host,
                sc.port);
        return -1;
    }
    return 0;
}

/* [N]: how many migrations; none means all. */
static int parse_steps(int argc, char **argv, int *ret_steps, FILE *err)
{
    char *end;
    long v;
    if (argc == 0) {
        *ret_steps = 0;
        return 0;
    }
    v = strtol(argv[0], &end, 10);
    if (argc > 1 || *end != '\0' || v < 1 || v > 100000) {
        fprintf(err, "dispatchctl: migrate: N must be a positive number of migrations\n");
        return -1;
    }
    *ret_steps = (int)v;
    return 0;
}

static int store_exit(int rc)
{
    if (rc == STORE_OK)
        return EX_OK;
    return rc == STORE_EDB ? EX_UNAVAILABLE : EX_DATAERR;
}

static int cmd_migrate_up(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    struct store_config sc = ctl__store_config(cfg, 1);
    int steps;
    if (parse_steps(argc, argv, &steps, err) < 0)
        return EX_USAGE;
    return store_exit(store_migrate_up(&sc, cfg->migrations_dir, steps, out));
}

static int cmd_migrate_down(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    struct store_config sc = ctl__store_config(cfg, 1);
    int steps;
    if (parse_steps(argc, argv, &steps, err) < 0)
        return EX_USAGE;
    /* down without N reverts one migration: reverting everything takes "down all" */
    if (argc == 1 && strcmp(argv[0], "all") == 0)
        steps = 0;
    else if (argc == 0)
        steps = 1;
    return store_exit(store_migrate_down(&sc, cfg->migrations_dir, steps, out));
}

static int cmd_migrate_status(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    struct store_config sc = ctl__store_config(cfg, 1);
    (void)argv;
    if (argc != 0) {
        fprintf(err, "dispatchctl: migrate status takes no arguments\n");
        return EX_USAGE;
    }
    return store_exit(store_migrate_status(&sc, cfg->migrations_dir, out));
}

static int cmd_topics_create(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    const char *topics[] = {cfg->kafka_topic, cfg->kafka_retry_topic, cfg->kafka_dlq_topic};
    char errbuf[512] = "";
    int rc;
    (void)argv;
    if (argc != 0) {
        fprintf(err, "dispatchctl: topics create takes no arguments\n");
        return EX_USAGE;
    }
#define STR_(x) #x
#define STR(x)  STR_(x)
    /* every topic takes the largest record we produce (queue.h); nothing leaves the DLQ
     * silently (SPEC §4): its records are never expired by age */
    static const struct queue_topic_setting settings[] = {
        {"max.message.bytes", STR(QUEUE_MESSAGE_MAX_BYTES)},
        {"retention.ms", "-1"},
    };
#undef STR
#undef STR_
    rc = queue_topics_create_with(cfg->kafka_brokers, topics, 2, cfg->kafka_partitions, 1, settings,
                                  1, 15000, errbuf, sizeof errbuf);
    if (rc == QUEUE_OK)
        rc = queue_topics_create_with(cfg->kafka_brokers, &topics[2], 1, cfg->kafka_partitions, 1,
                                      settings, 2, 15000, errbuf, sizeof errbuf);
    if (rc != QUEUE_OK) {
        fprintf(err, "dispatchctl: topics create: %s\n", errbuf[0] ? errbuf : queue_strerror(rc));
        return EX_UNAVAILABLE;
    }
    for (size_t i = 0; i < 3; i++)
        fprintf(out, "topic %s: ready (%d partitions)\n", topics[i], cfg->kafka_partitions);
    return EX_OK;
}

static int store_get(void *ctx, const struct ids_id *id, struct task *ret_task)
{
    return store_task_get(ctx, id, ret_task);
}

static int cmd_task_get(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    static const struct status_store_ops ops = {.get = store_get}; /* reads one task only */
    struct store_config sc = ctl__store_config(cfg, 1);
    struct store *store = NULL;
    struct ids_id id;
    struct task t;
    char *text;
    int rc;

    if (argc != 1 || ids_parse(argv[0], strlen(argv[0]), &id) < 0) {
        fprintf(err, "dispatchctl: task get needs one task id (a UUID)\n");
        return EX_USAGE;
    }
    if (store_new(&sc, &store) != STORE_OK) {
        fprintf(err, "dispatchctl: cannot connect to MariaDB at %s:%d\n", sc.host, sc.port);
        return EX_UNAVAILABLE;
    }
    struct status st = {&ops, store, STORE_ENOTFOUND};
    rc = status_get(&st, &id, NULL, &t);
    store_free(store);
    if (rc == STATUS_ENOTFOUND) {
        fprintf(err, "dispatchctl: no task %s\n", argv[0]);
        return EX_DATAERR;
    }
    if (rc != STATUS_OK) {
        fprintf(err, "dispatchctl: the task store is unavailable\n");
        return EX_UNAVAILABLE;
    }
    /* the view's own text (payload and result as stored, digits and all), not a
     * re-print of a parse of it */
    text = model_task_view_text(&t);
    model_task_release(&t);
    if (!text)
        return EX_SOFTWARE;
    fprintf(out, "%s\n", text);
    free(text);
    return EX_OK;
}

static int cmd_config_reference(const struct config *cfg, int argc, char **argv, FILE *out,
                                FILE *err)
{
    (void)cfg;
    (void)argv;
    if (argc != 0) {
        fprintf(err, "dispatchctl: config reference takes no arguments\n");
        return EX_USAGE;
    }
    config_print_markdown(out);
    return EX_OK;
}

static const struct ctl_cmd commands[] = {
    {"migrate", "up", "migrate up [N]       apply pending migrations (N of them)", cmd_migrate_up},
    {"migrate", "down", "migrate down [N|all] revert the last migration (or N, or all)",
     cmd_migrate_down},
    {"migrate", "status", "migrate status       show the schema version and each migration",
     cmd_migrate_status},
    {"topics", "create", "topics create        create the tasks, retry and DLQ topics",
     cmd_topics_create},
    {"task", "get", "task get ID          print a task's view as JSON", cmd_task_get},
    {"task", "attempts",
     "task attempts ID [--json]\n"
     "                       print a task's attempt history",
     ctl__task_attempts},
    {"dlq", "list",
     "dlq list [--type T] [--since TIME|DURATION] [--limit N] [--json]\n"
     "                       dead tasks, latest death first",
     ctl__dlq_list},
    {"dlq", "tail",
     "dlq tail [--follow] [--json]\n"
     "                       print the DLQ topic's records from the beginning",
     ctl__dlq_tail},
    {"dlq", "replay",
     "dlq replay ID...|--type T [--rate N/s] [--dry-run]\n"
     "                       requeue dead tasks (attempts start again at 0)",
     ctl__dlq_replay},
    {"dlq", "purge",
     "dlq purge --before TIME|DURATION [--yes]\n"
     "                       delete dead tasks that died before TIME (audited)",
     ctl__dlq_purge},
    {"config", "reference", "config reference     print every setting as Markdown (docs)",
     cmd_config_reference},
};

void ctl_usage(FILE *out)
{
    fprintf(out, "usage: dispatchctl [options] COMMAND\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %s\n", commands[i].usage);
    fprintf(out, "\noptions: see dispatchctl --help\n");
}

int ctl_run(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    if (argc < 2) {
        ctl_usage(err);
        return EX_USAGE;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const struct ctl_cmd *c = &commands[i];
        if (strcmp(argv[0], c->name) != 0 || strcmp(argv[1], c->sub) != 0)
            continue;
        for (int k = 2; k < argc && strcmp(argv[k], "--") != 0; k++) {
            if (strcmp(argv[k], "--help") == 0) { /* "dispatchctl dlq replay --help" */
                fprintf(out, "usage: dispatchctl [options] %s\n", c->usage);
                return EX_OK;
            }
        }
        return c->fn(cfg, argc - 2, argv + 2, out, err);
    }
    fprintf(err, "dispatchctl: unknown command '%s %s'\n", argv[0], argv[1]);
    ctl_usage(err);
    return EX_USAGE;
}
