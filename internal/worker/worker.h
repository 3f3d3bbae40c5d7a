/* worker — dispatch-worker as a function, so that a program can embed the worker
 * with handlers of its own (see pkg/handler/handler.h and examples/custom_handler/).
 *
 *     int main(int argc, char **argv)
 *     {
 *         return worker_main(argc, argv, register_mine, NULL);
 *     }
 *
 * worker_main() does everything dispatch-worker does: parses the configuration
 * (defaults, --config file, DISPATCH_* environment, flags; --help, --version and
 * --check-config), opens MariaDB and Kafka, builds the handler registry (the
 * built-ins, the http routes of worker_http_routes, then register_fn's), serves
 * /healthz and /metrics, runs the consumer loop until SIGTERM or SIGINT and drains.
 * It installs its own SIGTERM/SIGINT handlers and ignores SIGPIPE.
 *
 * register_fn (may be NULL) is called once, before any task runs, with the registry
 * and arg; it registers with handler_register() and returns 0, or a negative value
 * to stop the start-up (exit 70).  A type registered twice is an error: a custom
 * handler cannot replace a built-in or an http route.  arg is passed through
 * untouched and must outlive worker_main().
 *
 * Returns the process exit code: 0 after a clean drain, 78 (EX_CONFIG) for an
 * invalid configuration, 69 (EX_UNAVAILABLE) when MariaDB or Kafka is unreachable at
 * start, 70 (EX_SOFTWARE) for an internal failure, 71 (EX_OSERR) when signals
 * cannot be set up.  Call it once per process.
 */
#ifndef DISPATCH_WORKER_H
#define DISPATCH_WORKER_H

#include "handler/handler.h"

typedef int (*worker_register_fn)(struct handler_registry *reg, void *arg);

int worker_main(int argc, char **argv, worker_register_fn register_fn, void *arg);

#endif
