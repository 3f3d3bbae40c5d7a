/* ctl — dispatchctl's commands: migrations, topics, task lookup and history, and
 * the dead-letter queue (dlq list, tail, replay, purge: docs/runbook-dlq.md).
 *
 * Each command is one row of a table {name, sub, usage, fn}; ctl_run() finds the
 * row and returns a sysexits code (0 ok, 64 usage, 65 bad data, 69 unavailable,
 * 70 software, 78 config).
 */
#ifndef DISPATCH_CTL_H
#define DISPATCH_CTL_H

#include <stdio.h>
#include "config/config.h"

int ctl_run(const struct config *cfg, int argc, char **argv, FILE *out, FILE *err);
void ctl_usage(FILE *out);

#endif
