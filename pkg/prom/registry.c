/* prom — the registry: families, their children and the lock-free updates. */
#include "prom/prom_int.h"

#include <math.h>
#include <stdlib.h>

const char *prom_strerror(int err)
{
    switch (err) {
    case PROM_OK:
        return "ok";
    case PROM_ENOMEM:
        return "out of memory";
    case PROM_EINVAL:
        return "invalid name, labels, values or buckets";
    case PROM_EEXIST:
        return "a metric of that name exists";
    case PROM_ELIMIT:
        return "too many label value combinations";
    case PROM_EIO:
        return "write error";
    default:
        return "unknown error";
    }
}

int prom_registry_new(size_t max_children, struct prom_registry **ret_reg)
{
    struct prom_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return PROM_ENOMEM;
    if (pthread_mutex_init(&reg->mu, NULL) != 0) {
        free(reg);
        return PROM_ENOMEM;
    }
    reg->max_children = max_children ? max_children : PROM_DEFAULT_MAX_CHILDREN;
    *ret_reg = reg;
    return PROM_OK;
}

static void family_free(struct prom__family *f)
{
    if (!f)
        return;
    if (f->order) {
        for (size_t i = 0; i < f->n_children; i++) {
            free(f->order[i]->values);
            free(f->order[i]);
        }
    }
    if (f->label_names) {
        for (size_t i = 0; i < f->n_labels; i++)
            free(f->label_names[i]);
    }
    free(f->label_names);
    free(f->order);
    free((void *)f->slots);
    free(f->bounds);
    free(f->help);
    free(f->name);
    free(f);
}

void prom_registry_free(struct prom_registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n_families; i++)
        family_free(reg->families[i]);
    free(reg->families);
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

/* --- validation ------------------------------------------------------------------ */

/* [a-zA-Z_:][a-zA-Z0-9_:]* (metric names, colon true) or without ':' (labels). */
static bool valid_name(const char *s, bool colon)
{
    if (!s || !*s)
        return false;
    for (size_t i = 0; s[i]; i++) {
        char ch = s[i];
        bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
                     (colon && ch == ':');
        bool digit = ch >= '0' && ch <= '9';
        if (!alpha && !(digit && i > 0))
            return false;
    }
    return true;
}

static bool valid_labels(const char *const *names, size_t n, enum prom__kind kind)
{
    if (n > 0 && !names)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!valid_name(names[i], false) || strncmp(names[i], "__", 2) == 0)
            return false;
        if (kind == PROM__HISTOGRAM && strcmp(names[i], "le") == 0)
            return false;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(names[i], names[j]) == 0)
                return false;
        }
    }
    return true;
}

static bool valid_bounds(const double *bounds, size_t n)
{
    if (n > 0 && !bounds)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return false;
    }
    return true;
}

/* --- families ---------------------------------------------------------------------- */

struct family_spec {
    enum prom__kind kind;
    size_t size; /* of the public wrapper, whose first member is the family */
    const char *name;
    const char *help;
    const char *const *label_names;
    size_t n_labels;
    const double *bounds;
    size_t n_bounds;
};

static int family_alloc_tables(struct prom__family *f)
{
    size_t n_slots = 2;
    while (n_slots < 2 * f->max_children)
        n_slots *= 2;
    f->slots = calloc(n_slots, sizeof *f->slots);
    f->order = calloc(f->max_children, sizeof(struct prom__child *));
    if (!f->slots || !f->order)
        return PROM_ENOMEM;
    for (size_t i = 0; i < n_slots; i++)
        atomic_init(&f->slots[i], NULL);
    f->slot_mask = n_slots - 1;
    return PROM_OK;
}

static int family_build(const struct prom_registry *reg, const struct family_spec *s,
                        struct prom__family **ret_f)
{
    struct prom__family *f = calloc(1, s->size);
    if (!f)
        return PROM_ENOMEM;
    f->kind = s->kind;
    f->n_labels = s->n_labels;
    f->max_children = s->n_labels ? reg->max_children : 1;
    f->name = strdup(s->name);
    f->help = strdup(s->help ? s->help : "");
    if (s->n_labels)
        f->label_names = calloc(s->n_labels, sizeof *f->label_names);
    if (s->n_bounds) {
        f->bounds = malloc(s->n_bounds * sizeof *f->bounds);
        if (f->bounds) {
            memcpy(f->bounds, s->bounds, s->n_bounds * sizeof *f->bounds);
            f->n_bounds = s->n_bounds;
        }
    }
    if (!f->name || !f->help || (s->n_labels && !f->label_names) || f->n_bounds != s->n_bounds ||
        family_alloc_tables(f) < 0)
        goto out_free;
    for (size_t i = 0; i < s->n_labels; i++) {
        f->label_names[i] = strdup(s->label_names[i]);
        if (!f->label_names[i])
            goto out_free;
    }
    *ret_f = f;
    return PROM_OK;
out_free:
    family_free(f);
    return PROM_ENOMEM;
}

static int family_register(struct prom_registry *reg, const struct family_spec *s,
                           struct prom__family **ret_f)
{
    struct prom__family *f = NULL;
    int rc;
    if (!reg || !valid_name(s->name, true) || !valid_labels(s->label_names, s->n_labels, s->kind) ||
        !valid_bounds(s->bounds, s->n_bounds))
        return PROM_EINVAL;
    rc = family_build(reg, s, &f);
    if (rc < 0)
        return rc;
    f->reg = reg;
    pthread_mutex_lock(&reg->mu);
    for (size_t i = 0; i < reg->n_families; i++) {
        if (strcmp(reg->families[i]->name, f->name) == 0) {
            rc = PROM_EEXIST;
            goto out_unlock;
        }
    }
    if (reg->n_families == reg->cap_families) {
        size_t cap = reg->cap_families ? 2 * reg->cap_families : 16;
        struct prom__family **fams = realloc(reg->families, cap * sizeof(struct prom__family *));
        if (!fams) {
            rc = PROM_ENOMEM;
            goto out_unlock;
        }
        reg->families = fams;
        reg->cap_families = cap;
    }
    reg->families[reg->n_families++] = f;
    *ret_f = f;
    f = NULL;
out_unlock:
    pthread_mutex_unlock(&reg->mu);
    family_free(f);
    return rc;
}

/* --- children -------------------------------------------------------------------- */

/* FNV-1a over the values, each followed by a 0xff byte (never part of UTF-8). */
static uint64_t values_hash(const char *const *values, size_t n)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
        h = (h ^ 0xffU) * 1099511628211ULL;
    }
    return h;
}

static struct prom__child *child_lookup(struct prom__family *f, const char *const *values,
                                        uint64_t hash)
{
    /* terminates: at most half the slots are ever filled */
    for (size_t i = hash & f->slot_mask;; i = (i + 1) & f->slot_mask) {
        struct prom__child *c = atomic_load_explicit(&f->slots[i], memory_order_acquire);
        bool same = c && c->hash == hash;
        if (!c)
            return NULL;
        for (size_t k = 0; same && k < f->n_labels; k++)
            same = strcmp(c->values[k], values[k]) == 0;
        if (same)
            return c;
    }
}

static struct prom__child *child_build(struct prom__family *f, const char *const *values,
                                       uint64_t hash)
{
    size_t size = f->kind == PROM__HISTOGRAM
                      ? sizeof(struct prom_histogram) + (f->n_bounds + 1) * sizeof(_Atomic uint64_t)
                      : sizeof(struct prom_counter);
    size_t vsize = f->n_labels * sizeof(char *);
    struct prom__child *c;
    char *p;
    for (size_t i = 0; i < f->n_labels; i++)
        vsize += strlen(values[i]) + 1;
    c = calloc(1, size);
    if (!c)
        return NULL;
    if (f->n_labels) {
        c->values = malloc(vsize);
        if (!c->values) {
            free(c);
            return NULL;
        }
        p = (char *)(c->values + f->n_labels);
        for (size_t i = 0; i < f->n_labels; i++) {
            size_t len = strlen(values[i]) + 1;
            memcpy(p, values[i], len);
            c->values[i] = p;
            p += len;
        }
    }
    c->family = f;
    c->hash = hash;
    atomic_init(&c->v, f->kind == PROM__COUNTER ? 0 : prom__double_bits(0.0));
    if (f->kind == PROM__HISTOGRAM) {
        struct prom_histogram *h = (struct prom_histogram *)c;
        for (size_t i = 0; i <= f->n_bounds; i++)
            atomic_init(&h->buckets[i], 0);
    }
    return c;
}

static int child_get(struct prom__family *f, const char *const *values,
                     struct prom__child **ret_child)
{
    struct prom__child *c;
    uint64_t hash;
    int rc = PROM_OK;
    if (!f || (f->n_labels > 0 && !values))
        return PROM_EINVAL;
    for (size_t i = 0; i < f->n_labels; i++) {
        if (!values[i])
            return PROM_EINVAL;
    }
    hash = values_hash(values, f->n_labels);
    c = child_lookup(f, values, hash);
    if (c) {
        *ret_child = c;
        return PROM_OK;
    }
    pthread_mutex_lock(&f->reg->mu);
    c = child_lookup(f, values, hash); /* another thread may have made it meanwhile */
    if (!c && f->n_children >= f->max_children) {
        rc = PROM_ELIMIT;
    } else if (!c) {
        size_t i = hash & f->slot_mask;
        c = child_build(f, values, hash);
        if (!c) {
            rc = PROM_ENOMEM;
            goto out_unlock;
        }
        while (atomic_load_explicit(&f->slots[i], memory_order_relaxed))
            i = (i + 1) & f->slot_mask;
        f->order[f->n_children++] = c;
        atomic_store_explicit(&f->slots[i], c, memory_order_release);
    }
    if (c)
        *ret_child = c;
out_unlock:
    pthread_mutex_unlock(&f->reg->mu);
    return rc;
}

/* --- the public constructors ------------------------------------------------------ */

int prom_counter_vec_new(struct prom_registry *reg, const char *name, const char *help,
                         const char *const *label_names, size_t n_labels,
                         struct prom_counter_vec **ret_vec)
{
    struct family_spec s = {
        PROM__COUNTER, sizeof(struct prom_counter_vec), name, help, label_names, n_labels, NULL, 0};
    struct prom__family *f;
    int rc = family_register(reg, &s, &f);
    if (rc == PROM_OK)
        *ret_vec = (struct prom_counter_vec *)f;
    return rc;
}

int prom_gauge_vec_new(struct prom_registry *reg, const char *name, const char *help,
                       const char *const *label_names, size_t n_labels,
                       struct prom_gauge_vec **ret_vec)
{
    struct family_spec s = {
        PROM__GAUGE, sizeof(struct prom_gauge_vec), name, help, label_names, n_labels, NULL, 0};
    struct prom__family *f;
    int rc = family_register(reg, &s, &f);
    if (rc == PROM_OK)
        *ret_vec = (struct prom_gauge_vec *)f;
    return rc;
}

int prom_histogram_vec_new(struct prom_registry *reg, const char *name, const char *help,
                           const char *const *label_names, size_t n_labels, const double *bounds,
                           size_t n_bounds, struct prom_histogram_vec **ret_vec)
{
    struct family_spec s = {PROM__HISTOGRAM,
                            sizeof(struct prom_histogram_vec),
                            name,
                            help,
                            label_names,
                            n_labels,
                            bounds,
                            n_bounds};
    struct prom__family *f;
    int rc = family_register(reg, &s, &f);
    if (rc == PROM_OK)
        *ret_vec = (struct prom_histogram_vec *)f;
    return rc;
}

int prom_counter_vec_with(struct prom_counter_vec *vec, const char *const *values,
                          struct prom_counter **ret_counter)
{
    struct prom__child *c;
    int rc = child_get(vec ? &vec->f : NULL, values, &c);
    if (rc == PROM_OK)
        *ret_counter = (struct prom_counter *)c;
    return rc;
}

int prom_gauge_vec_with(struct prom_gauge_vec *vec, const char *const *values,
                        struct prom_gauge **ret_gauge)
{
    struct prom__child *c;
    int rc = child_get(vec ? &vec->f : NULL, values, &c);
    if (rc == PROM_OK)
        *ret_gauge = (struct prom_gauge *)c;
    return rc;
}

int prom_histogram_vec_with(struct prom_histogram_vec *vec, const char *const *values,
                            struct prom_histogram **ret_histogram)
{
    struct prom__child *c;
    int rc = child_get(vec ? &vec->f : NULL, values, &c);
    if (rc == PROM_OK)
        *ret_histogram = (struct prom_histogram *)c;
    return rc;
}

int prom_counter_new(struct prom_registry *reg, const char *name, const char *help,
                     struct prom_counter **ret_counter)
{
    struct prom_counter_vec *vec = NULL;
    int rc = prom_counter_vec_new(reg, name, help, NULL, 0, &vec);
    return rc != PROM_OK ? rc : prom_counter_vec_with(vec, NULL, ret_counter);
}

int prom_gauge_new(struct prom_registry *reg, const char *name, const char *help,
                   struct prom_gauge **ret_gauge)
{
    struct prom_gauge_vec *vec = NULL;
    int rc = prom_gauge_vec_new(reg, name, help, NULL, 0, &vec);
    return rc != PROM_OK ? rc : prom_gauge_vec_with(vec, NULL, ret_gauge);
}

int prom_histogram_new(struct prom_registry *reg, const char *name, const char *help,
                       const double *bounds, size_t n_bounds, struct prom_histogram **ret_histogram)
{
    struct prom_histogram_vec *vec = NULL;
    int rc = prom_histogram_vec_new(reg, name, help, NULL, 0, bounds, n_bounds, &vec);
    return rc != PROM_OK ? rc : prom_histogram_vec_with(vec, NULL, ret_histogram);
}

int prom_gauge_fn_new(struct prom_registry *reg, const char *name, const char *help,
                      prom_gauge_fn fn, void *ctx)
{
    struct prom_gauge *g;
    int rc;
    if (!fn)
        return PROM_EINVAL;
    rc = prom_gauge_new(reg, name, help, &g);
    if (rc == PROM_OK)
        prom_gauge_bind(g, fn, ctx);
    return rc;
}

/* --- updates ------------------------------------------------------------------------ */

void prom_counter_inc(struct prom_counter *c)
{
    atomic_fetch_add_explicit(&c->c.v, 1, memory_order_relaxed);
}

void prom_counter_add(struct prom_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->c.v, n, memory_order_relaxed);
}

uint64_t prom_counter_value(const struct prom_counter *c)
{
    return atomic_load_explicit(&c->c.v, memory_order_relaxed);
}

void prom_gauge_set(struct prom_gauge *g, double v)
{
    atomic_store_explicit(&g->c.v, prom__double_bits(v), memory_order_relaxed);
}

/* Adds to a double kept as bits: compare-and-swap until no other writer came between. */
static void add_double(_Atomic uint64_t *bits, double delta)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old,
                                                  prom__double_bits(prom__bits_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void prom_gauge_add(struct prom_gauge *g, double delta)
{
    add_double(&g->c.v, delta);
}

double prom_gauge_value(const struct prom_gauge *g)
{
    return prom__bits_double(atomic_load_explicit(&g->c.v, memory_order_relaxed));
}

void prom_gauge_bind(struct prom_gauge *g, prom_gauge_fn fn, void *ctx)
{
    struct prom_registry *reg = g->c.family->reg;
    pthread_mutex_lock(&reg->mu);
    g->c.fn = fn;
    g->c.fn_ctx = fn ? ctx : NULL;
    pthread_mutex_unlock(&reg->mu);
}

void prom_histogram_observe(struct prom_histogram *h, double v)
{
    const struct prom__family *f = h->c.family;
    size_t lo = 0, hi = f->n_bounds;
    if (isnan(v))
        return;
    /* the first bucket whose bound is >= v: a value equal to a bound counts in it */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= f->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&h->buckets[lo], 1, memory_order_relaxed);
    add_double(&h->c.v, v);
}
