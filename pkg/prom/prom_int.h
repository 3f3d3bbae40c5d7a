/* prom module-private: the registry, family and child layouts shared by the
 * registry (registry.c) and the exposition (expose.c). */
#ifndef PROM_INT_H
#define PROM_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "prom/prom.h"

enum prom__kind { PROM__COUNTER, PROM__GAUGE, PROM__HISTOGRAM };

struct prom__family;

/* One tuple of label values.  Every field but the atomics and the callback is
 * written once, before the child is published in its family's slot table. */
struct prom__child {
    struct prom__family *family;
    uint64_t hash;
    char **values;      /* n_labels copies (one allocation with the strings) */
    _Atomic uint64_t v; /* counter: the count; gauge: the double's bits;
                           histogram: the sum's bits */
    prom_gauge_fn fn;   /* gauge callback, under the registry's mutex */
    void *fn_ctx;
};

/* The public child types are a prom__child with, for histograms, its buckets; a
 * pointer to one converts to a pointer to its first member and back. */
struct prom_counter {
    struct prom__child c;
};
struct prom_gauge {
    struct prom__child c;
};
struct prom_histogram {
    struct prom__child c;
    _Atomic uint64_t buckets[]; /* n_bounds + 1, not cumulative; the last is +Inf */
};

struct prom__family {
    struct prom_registry *reg;
    enum prom__kind kind;
    char *name;
    char *help;
    char **label_names;
    size_t n_labels;
    double *bounds; /* histograms */
    size_t n_bounds;
    size_t max_children;
    /* open addressing, linear probing, at least twice max_children slots so a
     * probe always ends on an empty slot; slots are filled under the mutex with a
     * release store and never emptied, so lookups need no lock */
    _Atomic(struct prom__child *) *slots;
    size_t slot_mask;
    struct prom__child **order; /* creation order, under the mutex */
    size_t n_children;          /* under the mutex */
};

struct prom_counter_vec {
    struct prom__family f;
};
struct prom_gauge_vec {
    struct prom__family f;
};
struct prom_histogram_vec {
    struct prom__family f;
};

struct prom_registry {
    pthread_mutex_t mu;
    size_t max_children;
    struct prom__family **families; /* registration order, under mu */
    size_t n_families, cap_families;
};

static inline double prom__bits_double(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static inline uint64_t prom__double_bits(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return bits;
}

#endif
