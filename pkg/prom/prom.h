/* prom — a small thread-safe metrics registry and the Prometheus text exposition
 * format 0.0.4.
 *
 * A registry holds metric families (counters, gauges, histograms), each with a fixed,
 * possibly empty, list of label names.  A family has one child per tuple of label
 * values, created on first use and kept until the registry is freed; the number of
 * children per family is bounded (prom_registry_new) and a new tuple beyond the bound
 * is refused with PROM_ELIMIT rather than grown without bound.
 *
 *     struct prom_registry *reg;
 *     struct prom_counter_vec *requests;
 *     struct prom_counter *c;
 *     prom_registry_new(0, &reg);
 *     prom_counter_vec_new(reg, "http_requests_total", "Requests served.",
 *                          (const char *const[]){"route", "code"}, 2, &requests);
 *     if (prom_counter_vec_with(requests, (const char *const[]){"tasks", "200"}, &c) == 0)
 *         prom_counter_inc(c);
 *     prom_expose(reg, &text, &len);  ... free(text);
 *
 * Ownership: the registry owns every family and child.  Each pointer returned through
 * a ret_* parameter (vec, counter, gauge, histogram) is borrowed and stays valid until
 * prom_registry_free(); never free it.  Names, help texts, label names, label values
 * and bucket bounds are copied, so the caller's strings may be temporary.  The text of
 * prom_expose() is owned by the caller (free()).
 *
 * Threads: every function may be called from any thread.  Updates (inc, add, set,
 * observe) are atomic operations on the child; looking a child up (*_with) is
 * lock-free once it exists; only creating a family or a child, binding a gauge
 * callback and exposing take the registry's mutex.  Gauge callbacks run under that
 * mutex, on the scraping thread: they must be quick and must not call into the
 * registry.
 *
 * Numbers are formatted with the C locale's decimal point: do not change LC_NUMERIC.
 */
#ifndef PROM_H
#define PROM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum prom_err {
    PROM_OK = 0,
    PROM_ENOMEM = -1,
    PROM_EINVAL = -2, /* a bad name, label list, value list or bucket list */
    PROM_EEXIST = -3, /* a family of that name is registered already */
    PROM_ELIMIT = -4, /* the family has its maximum number of children */
    PROM_EIO = -5,    /* prom_write: the stream reported an error */
};

/* The exposition's media type, for the Content-Type header. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Children per family when prom_registry_new() is given 0. */
#define PROM_DEFAULT_MAX_CHILDREN 512

/* A gauge's value computed at exposition time (queue depth, memory in use). */
typedef double (*prom_gauge_fn)(void *ctx);

struct prom_registry;
struct prom_counter_vec;   /* a counter family */
struct prom_gauge_vec;     /* a gauge family */
struct prom_histogram_vec; /* a histogram family */
struct prom_counter;       /* one child: a monotonic integer */
struct prom_gauge;         /* one child: a double that goes up and down */
struct prom_histogram;     /* one child: buckets, sum and count of observations */

/* max_children bounds each labelled family's children (0: the default). */
int prom_registry_new(size_t max_children, struct prom_registry **ret_reg);
/* Frees the registry with every family and child.  NULL is accepted. */
void prom_registry_free(struct prom_registry *reg);

const char *prom_strerror(int err);

/* --- families -----------------------------------------------------------------
 * name matches [a-zA-Z_:][a-zA-Z0-9_:]* and is unique in the registry; help is any
 * text (NULL: empty); label_names are n_labels distinct names matching
 * [a-zA-Z_][a-zA-Z0-9_]* not starting with "__" (histograms: not "le" either). */

int prom_counter_vec_new(struct prom_registry *reg, const char *name, const char *help,
                         const char *const *label_names, size_t n_labels,
                         struct prom_counter_vec **ret_vec);
int prom_gauge_vec_new(struct prom_registry *reg, const char *name, const char *help,
                       const char *const *label_names, size_t n_labels,
                       struct prom_gauge_vec **ret_vec);
/* bounds: n_bounds finite upper bounds, strictly increasing; the +Inf bucket is
 * implicit.  An observation v counts in the first bucket with v <= bound. */
int prom_histogram_vec_new(struct prom_registry *reg, const char *name, const char *help,
                           const char *const *label_names, size_t n_labels, const double *bounds,
                           size_t n_bounds, struct prom_histogram_vec **ret_vec);

/* The child for values (one per label name, any UTF-8 text, in label-name order),
 * created on first use.  PROM_EINVAL for a NULL value, PROM_ELIMIT when the family
 * is full.  Callers on a hot path may keep the child: it never moves. */
int prom_counter_vec_with(struct prom_counter_vec *vec, const char *const *values,
                          struct prom_counter **ret_counter);
int prom_gauge_vec_with(struct prom_gauge_vec *vec, const char *const *values,
                        struct prom_gauge **ret_gauge);
int prom_histogram_vec_with(struct prom_histogram_vec *vec, const char *const *values,
                            struct prom_histogram **ret_histogram);

/* Families without labels: registers the family and returns its only child. */
int prom_counter_new(struct prom_registry *reg, const char *name, const char *help,
                     struct prom_counter **ret_counter);
int prom_gauge_new(struct prom_registry *reg, const char *name, const char *help,
                   struct prom_gauge **ret_gauge);
int prom_histogram_new(struct prom_registry *reg, const char *name, const char *help,
                       const double *bounds, size_t n_bounds,
                       struct prom_histogram **ret_histogram);
/* A gauge without labels whose value is fn(ctx), called at each exposition. */
int prom_gauge_fn_new(struct prom_registry *reg, const char *name, const char *help,
                      prom_gauge_fn fn, void *ctx);

/* --- updates (any thread, no lock) ---------------------------------------------- */

void prom_counter_inc(struct prom_counter *c);
void prom_counter_add(struct prom_counter *c, uint64_t n);
uint64_t prom_counter_value(const struct prom_counter *c);

void prom_gauge_set(struct prom_gauge *g, double v);
void prom_gauge_add(struct prom_gauge *g, double delta); /* negative to decrease */
/* The stored value (a bound callback is not called). */
double prom_gauge_value(const struct prom_gauge *g);
/* From now on the gauge's exposed value is fn(ctx); fn NULL unbinds. */
void prom_gauge_bind(struct prom_gauge *g, prom_gauge_fn fn, void *ctx);

/* NaN is ignored; +-Inf counts in the +Inf or the first bucket, and in the sum. */
void prom_histogram_observe(struct prom_histogram *h, double v);

/* --- exposition (text format 0.0.4) ---------------------------------------------
 * Families in registration order, children in creation order.  Serve it with
 * Content-Type PROM_CONTENT_TYPE. */

/* Writes the exposition to out, under the registry's mutex: out should be a memory
 * stream (open_memstream), not a socket.  PROM_EIO if out reports an error. */
int prom_write(struct prom_registry *reg, FILE *out);
/* The exposition as a NUL-terminated string (owned by the caller, free()) of
 * *ret_len bytes. */
int prom_expose(struct prom_registry *reg, char **ret_text, size_t *ret_len);

#endif
