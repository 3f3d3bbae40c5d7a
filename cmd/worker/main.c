/* dispatch-worker: the worker with dispatch's own handlers only (built-ins and the
 * http routes).  Everything lives in internal/worker so that a program embedding
 * the worker with handlers of its own runs exactly this (examples/custom_handler/).
 * Exit codes: 78 bad config, 69 a dependency unreachable at start, 70 internal
 * failure, 0 after a clean drain on SIGTERM/SIGINT. */
#include "worker/worker.h"

int main(int argc, char **argv)
{
    return worker_main(argc, argv, NULL, NULL);
}
