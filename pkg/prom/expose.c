/* prom — the text exposition format 0.0.4:
 *
 *     # HELP http_requests_total Requests served.
 *     # TYPE http_requests_total counter
 *     http_requests_total{route="tasks_get",code="200"} 3
 *
 * Histograms as cumulative name_bucket{...,le="bound"} lines ending with le="+Inf",
 * then name_sum and name_count. */
#include "prom/prom_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

/* Shortest of %.15g and %.17g that reads back as v; Prometheus spells the
 * non-finite values NaN, +Inf and -Inf. */
static void format_double(double v, char *buf, size_t size)
{
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, size, "%s", v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(buf, size, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, size, "%.17g", v);
    }
}

/* HELP text escapes backslash and newline; label values also the double quote. */
static void write_escaped(FILE *out, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (quote && *s == '"')
            fputs("\\\"", out);
        else
            fputc(*s, out);
    }
}

/* {a="x",b="y"} with an optional trailing le="..."; nothing when both are absent. */
static void write_labels(FILE *out, const struct prom__family *f, const struct prom__child *c,
                         const char *le)
{
    if (f->n_labels == 0 && !le)
        return;
    fputc('{', out);
    for (size_t i = 0; i < f->n_labels; i++) {
        fprintf(out, "%s%s=\"", i ? "," : "", f->label_names[i]);
        write_escaped(out, c->values[i], true);
        fputc('"', out);
    }
    if (le)
        fprintf(out, "%sle=\"%s\"", f->n_labels ? "," : "", le);
    fputc('}', out);
}

static void write_sample(FILE *out, const struct prom__family *f, const char *suffix,
                         const struct prom__child *c, const char *le, const char *value)
{
    fputs(f->name, out);
    fputs(suffix, out);
    write_labels(out, f, c, le);
    fputc(' ', out);
    fputs(value, out);
    fputc('\n', out);
}

static void write_histogram(FILE *out, const struct prom__family *f, const struct prom__child *c)
{
    const struct prom_histogram *h = (const struct prom_histogram *)c;
    char le[32], value[32];
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= f->n_bounds; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < f->n_bounds)
            format_double(f->bounds[i], le, sizeof le);
        else
            snprintf(le, sizeof le, "+Inf");
        snprintf(value, sizeof value, "%" PRIu64, cumulative);
        write_sample(out, f, "_bucket", c, le, value);
    }
    format_double(prom__bits_double(atomic_load_explicit(&c->v, memory_order_relaxed)), value,
                  sizeof value);
    write_sample(out, f, "_sum", c, NULL, value);
    /* the count is the +Inf bucket, so the two always agree */
    snprintf(value, sizeof value, "%" PRIu64, cumulative);
    write_sample(out, f, "_count", c, NULL, value);
}

static void write_family(FILE *out, const struct prom__family *f)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    fprintf(out, "# HELP %s ", f->name);
    write_escaped(out, f->help, false);
    fprintf(out, "\n# TYPE %s %s\n", f->name, type_names[f->kind]);
    for (size_t i = 0; i < f->n_children; i++) {
        const struct prom__child *c = f->order[i];
        char value[32];
        switch (f->kind) {
        case PROM__COUNTER:
            snprintf(value, sizeof value, "%" PRIu64,
                     atomic_load_explicit(&c->v, memory_order_relaxed));
            write_sample(out, f, "", c, NULL, value);
            break;
        case PROM__GAUGE:
            format_double(
                c->fn ? c->fn(c->fn_ctx)
                      : prom__bits_double(atomic_load_explicit(&c->v, memory_order_relaxed)),
                value, sizeof value);
            write_sample(out, f, "", c, NULL, value);
            break;
        case PROM__HISTOGRAM:
            write_histogram(out, f, c);
            break;
        }
    }
}

int prom_write(struct prom_registry *reg, FILE *out)
{
    if (!reg || !out)
        return PROM_EINVAL;
    pthread_mutex_lock(&reg->mu);
    for (size_t i = 0; i < reg->n_families; i++)
        write_family(out, reg->families[i]);
    pthread_mutex_unlock(&reg->mu);
    return ferror(out) ? PROM_EIO : PROM_OK;
}

int prom_expose(struct prom_registry *reg, char **ret_text, size_t *ret_len)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out;
    int rc;
    if (!reg)
        return PROM_EINVAL;
    out = open_memstream(&text, &len);
    if (!out)
        return PROM_ENOMEM;
    rc = prom_write(reg, out);
    /* a memory stream fails only for want of memory */
    if (fclose(out) != 0 || rc < 0) {
        free(text);
        return PROM_ENOMEM;
    }
    *ret_text = text;
    *ret_len = len;
    return PROM_OK;
}
