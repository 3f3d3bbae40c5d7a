/* ctl internals: the commands that live outside ctl.c and the helpers they share. */
#ifndef DISPATCH_CTL_INT_H
#define DISPATCH_CTL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "config/config.h"
#include "store/store.h"

/* Every command: argv holds the arguments after "<name> <sub>"; returns a sysexits
 * code after writing any error as one line "dispatchctl: ..." to err. */
int ctl__dlq_list(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err);
int ctl__dlq_tail(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err);
int ctl__dlq_replay(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err);
int ctl__dlq_purge(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err);
int ctl__task_attempts(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err);

/* The MariaDB settings of cfg with a pool of pool connections (ctl.c). */
struct store_config ctl__store_config(const struct config *cfg, int pool);
/* Connects (one connection); on failure writes one line naming cmd and returns -1. */
int ctl__store_open(const struct config *cfg, const char *cmd, struct store **ret_store, FILE *err);

/* --- arguments (args.c) ------------------------------------------------------ */

enum ctl__opt_kind {
    CTL__FLAG,  /* --name: dest is bool *, set to true */
    CTL__VALUE, /* --name VALUE or --name=VALUE: dest is const char **, borrowed from argv */
};

struct ctl__opt {
    const char *name; /* without the dashes */
    enum ctl__opt_kind kind;
    void *dest;
};

/* Parses argv against opts: options anywhere, "--" ends them; the other arguments
 * go to ret_pos (borrowed; at most max_pos of them) and their count to *ret_npos.
 * An unknown option, a missing value, a repeated option or too many arguments: one
 * line "dispatchctl: <cmd>: ..." on err and -1. */
int ctl__parse_args(const char *cmd, int argc, char **argv, const struct ctl__opt *opts,
                    size_t n_opts, char **ret_pos, int max_pos, int *ret_npos, FILE *err);

/* A point in time: RFC 3339 ("2026-11-22T02:00:00Z"), or a duration before now_us
 * made of <number><unit> parts, units s, m, h, d ("90s", "15m", "1h30m", "7d").
 * Returns 0 or -1. */
int ctl__parse_when(const char *s, int64_t now_us, int64_t *ret_us);

/* A decimal integer in lo..hi.  Returns 0 or -1. */
int ctl__parse_long(const char *s, long lo, long hi, long *ret_v);

/* A rate "N/s" or "N" (per second, N > 0, may have a fraction) as the interval
 * between two events in nanoseconds (at least 1).  Returns 0 or -1. */
int ctl__parse_rate(const char *s, int64_t *ret_interval_ns);

/* s for one table cell: control characters become spaces, at most max bytes of it
 * (never cutting a UTF-8 sequence), "..." appended when cut.  NULL gives "-". */
void ctl__clip(const char *s, size_t max, char *out, size_t size);

/* Who is acting, for audit records: "dispatchctl:<user>@<host>". */
void ctl__actor(char *out, size_t size);

#endif
