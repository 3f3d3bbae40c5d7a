/* metrics — the process gauges: start time, resident memory and open descriptors.
 * Memory and descriptors are read from /proc when scraped (Linux); NaN when
 * unreadable. */
#include "metrics/metrics_int.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double resident_bytes(void *ctx)
{
    FILE *f = fopen("/proc/self/statm", "r");
    char line[128];
    char *mid, *end;
    unsigned long size, resident;
    long page = sysconf(_SC_PAGESIZE);
    (void)ctx;
    if (!f)
        return NAN;
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return NAN;
    }
    fclose(f);
    /* "size resident shared ..." in pages */
    size = strtoul(line, &mid, 10);
    resident = strtoul(mid, &end, 10);
    if (mid == line || end == mid || resident > size || page <= 0)
        return NAN;
    return (double)resident * (double)page;
}

static double open_fds(void *ctx)
{
    DIR *d = opendir("/proc/self/fd");
    const struct dirent *e;
    double n = 0;
    (void)ctx;
    if (!d)
        return NAN;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

int metrics__process_register(struct prom_registry *reg)
{
    struct prom_gauge *start;
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0)
        return -1;
    if (prom_gauge_new(reg, "process_start_time_seconds",
                       "Start time of the process since the Unix epoch, in seconds.", &start) < 0 ||
        prom_gauge_fn_new(reg, "process_resident_memory_bytes", "Resident memory size, in bytes.",
                          resident_bytes, NULL) < 0 ||
        prom_gauge_fn_new(reg, "process_open_fds", "Open file descriptors.", open_fds, NULL) < 0)
        return -1;
    /* whole seconds: a double holds them exactly, and Prometheus needs no more */
    prom_gauge_set(start, (double)now.tv_sec);
    return 0;
}
