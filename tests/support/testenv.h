/* testenv — what integration tests read from the harness (tests/infra/stack.sh):
 * DISPATCH_* variables exported by tests/run.sh.  A missing variable fails the
 * test run with a clear line rather than connecting somewhere by accident. */
#ifndef DISPATCH_TESTENV_H
#define DISPATCH_TESTENV_H

#include "store/store.h"

/* The variable's value; exits(2) naming it when unset or empty. */
const char *testenv_get(const char *name);
int testenv_get_int(const char *name);
/* MariaDB settings of the harness, pool of pool_size. */
struct store_config testenv_store_config(int pool_size);

#endif
