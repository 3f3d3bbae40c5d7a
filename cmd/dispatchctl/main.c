/* dispatchctl — the operator's CLI: wiring only. */
#include <stdio.h>
#include <sysexits.h>

#include "config/config.h"
#include "ctl/ctl.h"
#include "log/log.h"

int main(int argc, char **argv)
{
    struct config cfg;
    enum log_level level;
    int argi = argc;
    int rc = config_load(&cfg, CONFIG_CTL, "dispatchctl", argc, argv, &argi, stdout, stderr);
    if (rc < 0)
        return CONFIG_EXIT_INVALID;
    if (rc == CONFIG_EXIT)
        return EX_OK;
    if (log_level_parse(cfg.log_level, &level) < 0)
        level = LOG_LEVEL_WARN;
    /* the CLI speaks to people: only warnings and errors reach the log */
    log_init(level < LOG_LEVEL_WARN ? LOG_LEVEL_WARN : level, "dispatchctl");
    rc = ctl_run(&cfg, argc - argi, argv + argi, stdout, stderr);
    config_release(&cfg);
    return rc;
}
