/* testenv — harness settings for integration tests. */
#include "support/testenv.h"

#include <stdio.h>
#include <stdlib.h>

const char *testenv_get(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr,
                "testenv: %s is not set: run integration tests through tests/run.sh "
                "(make test), which starts the harness\n",
                name);
        exit(2);
    }
    return v;
}

int testenv_get_int(const char *name)
{
    const char *v = testenv_get(name);
    char *end;
    long n = strtol(v, &end, 10);
    if (*end != '\0' || n < 0 || n > 65535) {
        fprintf(stderr, "testenv: %s=%s is not a port number\n", name, v);
        exit(2);
    }
    return (int)n;
}

struct store_config testenv_store_config(int pool_size)
{
    struct store_config sc = {
        .host = testenv_get("DISPATCH_MYSQL_HOST"),
        .port = testenv_get_int("DISPATCH_MYSQL_PORT"),
        .user = testenv_get("DISPATCH_MYSQL_USER"),
        .password = testenv_get("DISPATCH_MYSQL_PASSWORD"),
        .database = testenv_get("DISPATCH_MYSQL_DATABASE"),
        .pool_size = pool_size,
        .connect_timeout_ms = 3000,
        .io_timeout_ms = 10000,
    };
    return sc;
}
