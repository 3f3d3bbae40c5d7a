/* jsonx — declarative checking of a JSON object against a field spec. */
#include "jsonx/jsonx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(struct jsonx_error *ret_err, const char *field, const char *reason)
{
    if (ret_err != NULL) {
        ret_err->field = field;
        snprintf(ret_err->reason, sizeof ret_err->reason, "%s", reason);
    }
    return -1;
}

/* "must be <kind> <lo>..<hi><unit>", e.g. "must be a string of 1..64 bytes". */
static int fail_range(struct jsonx_error *ret_err, const char *field, const char *kind,
                      long long lo, long long hi, const char *unit)
{
    if (ret_err != NULL) {
        ret_err->field = field;
        snprintf(ret_err->reason, sizeof ret_err->reason, "must be %s %lld..%lld%s", kind, lo, hi,
                 unit);
    }
    return -1;
}

/* Quotes a member name from the request in a reason.  Only printable ASCII is kept
 * so the reason stays safe to echo in any response or log. */
static int fail_member(struct jsonx_error *ret_err, const char *what, const char *name)
{
    char clean[41];
    size_t n = 0;

    for (; n < sizeof clean - 1 && name[n] != '\0'; n++) {
        unsigned char c = (unsigned char)name[n];
        clean[n] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    clean[n] = '\0';
    if (ret_err != NULL) {
        ret_err->field = NULL;
        snprintf(ret_err->reason, sizeof ret_err->reason, "%s \"%s%s\"", what, clean,
                 name[n] != '\0' ? "..." : "");
    }
    return -1;
}

static const char *name_of(const cJSON *item)
{
    return item->string != NULL ? item->string : "";
}

static int cmp_member(const void *a, const void *b)
{
    return strcmp(name_of(*(const cJSON *const *)a), name_of(*(const cJSON *const *)b));
}

static int cmp_key(const void *key, const void *member)
{
    return strcmp(key, name_of(*(const cJSON *const *)member));
}

static const struct jsonx_field *spec_find(const struct jsonx_field *spec, const char *name)
{
    for (; spec->type != JSONX_T_END; spec++) {
        if (strcmp(spec->name, name) == 0)
            return spec;
    }
    return NULL;
}

/* Members sorted by name, so duplicates are neighbours and lookups are bsearch. */
struct members {
    const cJSON **v;
    size_t n;
};

static int members_collect(const cJSON *obj, struct members *ret_m)
{
    size_t n = 0, i = 0;
    const cJSON *c;

    for (c = obj->child; c != NULL; c = c->next)
        n++;
    const cJSON **v = malloc((n > 0 ? n : 1) * sizeof(const cJSON *));
    if (v == NULL)
        return -1;
    for (c = obj->child; c != NULL; c = c->next)
        v[i++] = c;
    qsort(v, n, sizeof(const cJSON *), cmp_member);
    ret_m->v = v;
    ret_m->n = n;
    return 0;
}

static const cJSON *members_get(const struct members *m, const char *name)
{
    const cJSON *const *hit = bsearch(name, m->v, m->n, sizeof(const cJSON *), cmp_key);

    return hit != NULL ? *hit : NULL;
}

/* Duplicates, then (strict) unknown members. */
static int check_names(const struct members *m, const struct jsonx_field *spec, bool strict,
                       struct jsonx_error *ret_err)
{
    for (size_t i = 0; i < m->n; i++) {
        const char *name = name_of(m->v[i]);
        const struct jsonx_field *f = spec_find(spec, name);
        if (i + 1 < m->n && strcmp(name, name_of(m->v[i + 1])) == 0) {
            if (f != NULL)
                return fail(ret_err, f->name, "is given more than once");
            return fail_member(ret_err, "duplicate field", name);
        }
        if (strict && f == NULL)
            return fail_member(ret_err, "unknown field", name);
    }
    return 0;
}

/* An integral double inside long long's range, converted; -1 otherwise.  The
 * bounds are powers of two, exact as doubles, so 1e300 or 2^63 cannot slip by. */
static int to_llong(double d, long long *ret_v)
{
    if (!isfinite(d) || floor(d) != d || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
        return -1;
    *ret_v = (long long)d;
    return 0;
}

static int check_value(const struct jsonx_field *f, const cJSON *v, struct jsonx_error *ret_err)
{
    long long i;

    switch (f->type) {
    case JSONX_T_STRING:
        if (!cJSON_IsString(v) || v->valuestring == NULL ||
            (long long)strlen(v->valuestring) < f->min ||
            (long long)strlen(v->valuestring) > f->max)
            return fail_range(ret_err, f->name, "a string of", f->min, f->max, " bytes");
        return 0;
    case JSONX_T_INT:
        if (!cJSON_IsNumber(v) || to_llong(v->valuedouble, &i) < 0 || i < f->min || i > f->max)
            return fail_range(ret_err, f->name, "an integer in", f->min, f->max, "");
        return 0;
    case JSONX_T_BOOL:
        return cJSON_IsBool(v) ? 0 : fail(ret_err, f->name, "must be a boolean");
    case JSONX_T_OBJECT:
        return cJSON_IsObject(v) ? 0 : fail(ret_err, f->name, "must be an object");
    case JSONX_T_ANY:
        return 0;
    default:
        return fail(ret_err, f->name, "has an unsupported spec type");
    }
}

static void store_value(const struct jsonx_field *f, const cJSON *v)
{
    long long i = 0;

    if (f->dest == NULL)
        return;
    switch (f->type) {
    case JSONX_T_STRING:
        *(const char **)f->dest = v->valuestring;
        break;
    case JSONX_T_INT:
        if (to_llong(v->valuedouble, &i) == 0)
            *(long long *)f->dest = i;
        break;
    case JSONX_T_BOOL:
        *(bool *)f->dest = cJSON_IsTrue(v);
        break;
    default:
        *(const cJSON **)f->dest = v;
        break;
    }
}

static int check_fields(const struct members *m, const struct jsonx_field *spec,
                        struct jsonx_error *ret_err)
{
    for (const struct jsonx_field *f = spec; f->type != JSONX_T_END; f++) {
        const cJSON *v = members_get(m, f->name);
        if (v == NULL) {
            if (f->required)
                return fail(ret_err, f->name, "is required");
            continue;
        }
        if (check_value(f, v, ret_err) < 0)
            return -1;
    }
    return 0;
}

int jsonx_spec_parse(const cJSON *obj, const struct jsonx_field *spec, bool strict,
                     struct jsonx_error *ret_err)
{
    struct members m;
    int r;

    if (!cJSON_IsObject(obj))
        return fail(ret_err, NULL, "body must be a JSON object");
    if (members_collect(obj, &m) < 0)
        return fail(ret_err, NULL, "out of memory");
    r = check_names(&m, spec, strict, ret_err);
    if (r == 0)
        r = check_fields(&m, spec, ret_err);
    if (r == 0) {
        /* everything checked: only now touch the caller's destinations */
        for (const struct jsonx_field *f = spec; f->type != JSONX_T_END; f++) {
            const cJSON *v = members_get(&m, f->name);
            if (v != NULL)
                store_value(f, v);
        }
    }
    free(m.v);
    return r;
}
