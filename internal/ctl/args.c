/* ctl — argument parsing shared by the commands: options from a table, times,
 * durations, rates; table cells and the actor name of audit records. */
#include "ctl/ctl_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"

enum { MAX_OPTS = 16 };

static const struct ctl__opt *find_opt(const struct ctl__opt *opts, size_t n, const char *name,
                                       size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
            return &opts[i];
    }
    return NULL;
}

/* One option at argv[*i]; moves *i past its value when that is the next argument. */
static int take_opt(const char *cmd, int argc, char **argv, int *i, const struct ctl__opt *opts,
                    size_t n_opts, bool *seen, FILE *err)
{
    const char *name = argv[*i] + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct ctl__opt *o = find_opt(opts, n_opts, name, len);
    const char *value;

    if (!o) {
        fprintf(err, "dispatchctl: %s: unknown option --%.*s\n", cmd, (int)len, name);
        return -1;
    }
    if (seen[o - opts]) {
        fprintf(err, "dispatchctl: %s: --%s given twice\n", cmd, o->name);
        return -1;
    }
    seen[o - opts] = true;
    if (o->kind == CTL__FLAG) {
        if (eq) {
            fprintf(err, "dispatchctl: %s: --%s takes no value\n", cmd, o->name);
            return -1;
        }
        *(bool *)o->dest = true;
        return 0;
    }
    if (eq) {
        value = eq + 1;
    } else if (*i + 1 < argc) {
        value = argv[++*i];
    } else {
        fprintf(err, "dispatchctl: %s: --%s needs a value\n", cmd, o->name);
        return -1;
    }
    *(const char **)o->dest = value;
    return 0;
}

int ctl__parse_args(const char *cmd, int argc, char **argv, const struct ctl__opt *opts,
                    size_t n_opts, char **ret_pos, int max_pos, int *ret_npos, FILE *err)
{
    bool seen[MAX_OPTS] = {false};
    bool opts_done = false;
    int npos = 0;

    if (n_opts > MAX_OPTS)
        return -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && strcmp(a, "--") == 0) {
            opts_done = true;
        } else if (!opts_done && strncmp(a, "--", 2) == 0) {
            if (take_opt(cmd, argc, argv, &i, opts, n_opts, seen, err) < 0)
                return -1;
        } else if (!opts_done && a[0] == '-' && a[1] != '\0') {
            fprintf(err, "dispatchctl: %s: unknown option %s (options are --long only)\n", cmd, a);
            return -1;
        } else if (npos == max_pos) {
            fprintf(err, "dispatchctl: %s: unexpected argument '%s'\n", cmd, a);
            return -1;
        } else {
            ret_pos[npos++] = argv[i];
        }
    }
    *ret_npos = npos;
    return 0;
}

/* "1h30m" -> seconds; -1 when malformed or longer than a century. */
static long long parse_duration_s(const char *s)
{
    const long long max_s = 100LL * 366 * 86400;
    long long total = 0;

    if (*s == '\0')
        return -1;
    while (*s) {
        char *end;
        long long v, unit;
        if (*s < '0' || *s > '9')
            return -1;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno != 0 || v > max_s)
            return -1;
        switch (*end) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return -1;
        }
        if (v > (max_s - total) / unit)
            return -1;
        total += v * unit;
        s = end + 1;
    }
    return total;
}

int ctl__parse_when(const char *s, int64_t now_us, int64_t *ret_us)
{
    long long secs;
    int64_t t;

    if (strchr(s, 'T') || strchr(s, 't')) {
        if (model_time_parse(s, &t) < 0)
            return -1;
        *ret_us = t;
        return 0;
    }
    secs = parse_duration_s(s);
    if (secs < 0 || secs * 1000000LL > now_us)
        return -1;
    *ret_us = now_us - (int64_t)secs * 1000000;
    return 0;
}

int ctl__parse_long(const char *s, long lo, long hi, long *ret_v)
{
    char *end;
    long v;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *ret_v = v;
    return 0;
}

int ctl__parse_rate(const char *s, int64_t *ret_interval_ns)
{
    char *end;
    double per_s;

    if ((*s < '0' || *s > '9') && *s != '.')
        return -1;
    errno = 0;
    per_s = strtod(s, &end);
    if (errno != 0 || end == s || (*end != '\0' && strcmp(end, "/s") != 0))
        return -1;
    if (!isfinite(per_s) || per_s <= 0 || per_s > 1e6)
        return -1;
    *ret_interval_ns = (int64_t)(1e9 / per_s);
    if (*ret_interval_ns < 1)
        *ret_interval_ns = 1;
    return 0;
}

/* Bytes in the UTF-8 sequence that lead byte c starts (1 for anything odd). */
static size_t utf8_len(unsigned char c)
{
    if (c >= 0xf0 && c <= 0xf7)
        return 4;
    if (c >= 0xe0)
        return c <= 0xef ? 3 : 1;
    if (c >= 0xc0)
        return 2;
    return 1;
}

void ctl__clip(const char *s, size_t max, char *out, size_t size)
{
    size_t i = 0, o = 0;

    if (size == 0)
        return;
    if (!s)
        s = "-";
    if (max > size - 4)
        max = size - 4; /* room for "..." and the NUL */
    while (s[i] != '\0') {
        size_t n = utf8_len((unsigned char)s[i]);
        if (o + n > max)
            break;
        for (size_t k = 0; k < n; k++) {
            unsigned char c = (unsigned char)s[i];
            if (c == '\0')
                break;
            out[o++] = (char)(c < 0x20 || c == 0x7f ? ' ' : c);
            i++;
        }
    }
    if (s[i] != '\0') {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* Copies s into out (size bytes), printable ASCII only ('_' for anything else). */
static void copy_token(char *out, size_t size, const char *s)
{
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < size; i++)
        out[i] = s[i] > 0x20 && s[i] < 0x7f ? s[i] : '_';
    out[i] = '\0';
}

void ctl__actor(char *out, size_t size)
{
    char user[64] = "", host[256] = "";
    const char *name = getenv("LOGNAME");
    struct passwd pw, *found = NULL;
    char buf[1024];

    if (!name || !*name)
        name = getenv("USER");
    if ((!name || !*name) && getpwuid_r(geteuid(), &pw, buf, sizeof buf, &found) == 0 && found)
        name = found->pw_name;
    if (name && *name)
        copy_token(user, sizeof user, name);
    else
        snprintf(user, sizeof user, "uid%ld", (long)geteuid());
    if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
        snprintf(host, sizeof host, "unknown-host");
    host[sizeof host - 1] = '\0';
    copy_token(host, sizeof host, host);
    snprintf(out, size, "dispatchctl:%s@%s", user, host);
}
