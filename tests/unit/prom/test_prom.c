/* Unit tests for pkg/prom: the exact exposition text, escaping, bucket edges, the
 * bound on children, validation, and exact totals under concurrent updates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom/prom.h"

static int setup(void **state)
{
    struct prom_registry *reg = NULL;
    if (prom_registry_new(0, &reg) != PROM_OK)
        return -1;
    *state = reg;
    return 0;
}

static int teardown(void **state)
{
    prom_registry_free(*state);
    return 0;
}

/* The registry's exposition (owned by the caller). */
static char *expose(struct prom_registry *reg)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(prom_expose(reg, &text, &len), PROM_OK);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    return text;
}

static void assert_exposes(struct prom_registry *reg, const char *expected)
{
    char *text = expose(reg);
    assert_string_equal(text, expected);
    free(text);
}

/* Asserts that the exposition has line (whole) in it. */
static void assert_has_line(struct prom_registry *reg, const char *line)
{
    char *text = expose(reg);
    size_t n = strlen(line);
    const char *p = text;
    bool found = false;
    while (!found && (p = strstr(p, line)) != NULL) {
        found = (p == text || p[-1] == '\n') && p[n] == '\n';
        p++;
    }
    if (!found)
        print_error("line not found: %s\nin:\n%s", line, text);
    free(text);
    assert_true(found);
}

static double seven(void *ctx)
{
    return *(const double *)ctx;
}

static void test_exposition_exact(void **state)
{
    struct prom_registry *reg = *state;
    struct prom_counter *jobs, *c;
    struct prom_counter_vec *requests;
    struct prom_gauge *temp;
    struct prom_gauge_vec *breaker;
    struct prom_histogram_vec *latency;
    struct prom_histogram *h, *size;
    double depth = 7;

    assert_int_equal(prom_counter_new(reg, "jobs_total", "Jobs done.", &jobs), PROM_OK);
    prom_counter_add(jobs, 3);
    assert_int_equal(prom_counter_vec_new(reg, "http_requests_total", "Requests.",
                                          (const char *const[]){"route", "code"}, 2, &requests),
                     PROM_OK);
    assert_int_equal(prom_counter_vec_with(requests, (const char *const[]){"a", "200"}, &c),
                     PROM_OK);
    prom_counter_add(c, 2);
    assert_int_equal(prom_counter_vec_with(requests, (const char *const[]){"b", "404"}, &c),
                     PROM_OK);
    prom_counter_inc(c);
    assert_int_equal(prom_gauge_new(reg, "temperature_celsius", "Temp.", &temp), PROM_OK);
    prom_gauge_set(temp, -1.5);
    assert_int_equal(prom_gauge_fn_new(reg, "queue_depth", "Depth.", seven, &depth), PROM_OK);
    assert_int_equal(prom_gauge_vec_new(reg, "breaker_state", "State.",
                                        (const char *const[]){"dependency"}, 1, &breaker),
                     PROM_OK);
    assert_int_equal(prom_histogram_vec_new(reg, "latency_seconds", "Latency.",
                                            (const char *const[]){"route"}, 1,
                                            (const double[]){0.1, 0.5, 1}, 3, &latency),
                     PROM_OK);
    assert_int_equal(prom_histogram_vec_with(latency, (const char *const[]){"a"}, &h), PROM_OK);
    prom_histogram_observe(h, 0.0625);
    prom_histogram_observe(h, 0.5);
    prom_histogram_observe(h, 2);
    assert_int_equal(prom_histogram_new(reg, "size_bytes", "Size.", (const double[]){1}, 1, &size),
                     PROM_OK);

    assert_exposes(reg, "# HELP jobs_total Jobs done.\n"
                        "# TYPE jobs_total counter\n"
                        "jobs_total 3\n"
                        "# HELP http_requests_total Requests.\n"
                        "# TYPE http_requests_total counter\n"
                        "http_requests_total{route=\"a\",code=\"200\"} 2\n"
                        "http_requests_total{route=\"b\",code=\"404\"} 1\n"
                        "# HELP temperature_celsius Temp.\n"
                        "# TYPE temperature_celsius gauge\n"
                        "temperature_celsius -1.5\n"
                        "# HELP queue_depth Depth.\n"
                        "# TYPE queue_depth gauge\n"
                        "queue_depth 7\n"
                        "# HELP breaker_state State.\n"
                        "# TYPE breaker_state gauge\n"
                        "# HELP latency_seconds Latency.\n"
                        "# TYPE latency_seconds histogram\n"
                        "latency_seconds_bucket{route=\"a\",le=\"0.1\"} 1\n"
                        "latency_seconds_bucket{route=\"a\",le=\"0.5\"} 2\n"
                        "latency_seconds_bucket{route=\"a\",le=\"1\"} 2\n"
                        "latency_seconds_bucket{route=\"a\",le=\"+Inf\"} 3\n"
                        "latency_seconds_sum{route=\"a\"} 2.5625\n"
                        "latency_seconds_count{route=\"a\"} 3\n"
                        "# HELP size_bytes Size.\n"
                        "# TYPE size_bytes histogram\n"
                        "size_bytes_bucket{le=\"1\"} 0\n"
                        "size_bytes_bucket{le=\"+Inf\"} 0\n"
                        "size_bytes_sum 0\n"
                        "size_bytes_count 0\n");
}

static void test_empty_registry(void **state)
{
    assert_exposes(*state, "");
}

static void test_escaping(void **state)
{
    struct prom_registry *reg = *state;
    struct prom_counter_vec *vec;
    struct prom_counter *c;
    assert_int_equal(prom_counter_vec_new(reg, "esc_total", "line1\nback\\slash \"q\"",
                                          (const char *const[]){"v"}, 1, &vec),
                     PROM_OK);
    assert_int_equal(prom_counter_vec_with(vec, (const char *const[]){"a\\b\"c\nd"}, &c), PROM_OK);
    prom_counter_inc(c);
    assert_int_equal(prom_counter_vec_with(vec, (const char *const[]){"h\xc3\xa9llo"}, &c),
                     PROM_OK);
    prom_counter_inc(c);
    /* in HELP only backslash and newline are escaped; in label values the quote too */
    assert_exposes(reg, "# HELP esc_total line1\\nback\\\\slash \"q\"\n"
                        "# TYPE esc_total counter\n"
                        "esc_total{v=\"a\\\\b\\\"c\\nd\"} 1\n"
                        "esc_total{v=\"h\xc3\xa9llo\"} 1\n");
}

static void test_same_values_same_child(void **state)
{
    struct prom_registry *reg = *state;
    struct prom_counter_vec *vec;
    struct prom_counter *a, *b, *c;
    char route[8];
    assert_int_equal(
        prom_counter_vec_new(reg, "x_total", "X.", (const char *const[]){"r", "m"}, 2, &vec),
        PROM_OK);
    snprintf(route, sizeof route, "%s", "ab");
    assert_int_equal(prom_counter_vec_with(vec, (const char *const[]){route, "c"}, &a), PROM_OK);
    snprintf(route, sizeof route, "%s", "zz"); /* values are copied */
    assert_int_equal(prom_counter_vec_with(vec, (const char *const[]){"ab", "c"}, &b), PROM_OK);
    assert_ptr_equal(a, b);
    /* the separator keeps ("ab","c") apart from ("a","bc") */
    assert_int_equal(prom_counter_vec_with(vec, (const char *const[]){"a", "bc"}, &c), PROM_OK);
    assert_ptr_not_equal(a, c);
    prom_counter_inc(a);
    assert_int_equal(prom_counter_value(b), 1);
    assert_int_equal(prom_counter_value(c), 0);
}

static void test_histogram_bucket_edges(void **state)
{
    struct prom_registry *reg = *state;
    struct prom_histogram *h;
    assert_int_equal(prom_histogram_new(reg, "edge", "Edges.", (const double[]){1, 2, 5}, 3, &h),
                     PROM_OK);
    prom_histogram_observe(h, 1);    /* == bound: in le="1" */
    prom_histogram_observe(h, -3);   /* below the first bound: le="1" */
    prom_histogram_observe(h, 1.25); /* above: le="2" */
    prom_histogram_observe(h, 2);
    prom_histogram_observe(h, 5);
    prom_histogram_observe(h, 5.5); /* above the last bound: only +Inf */
    prom_histogram_observe(h, NAN); /* ignored */
    assert_exposes(reg, "# HELP edge Edges.\n"
                        "# TYPE edge histogram\n"
                        "edge_bucket{le=\"1\"} 2\n"
                        "edge_bucket{le=\"2\"} 4\n"
                        "edge_bucket{le=\"5\"} 5\n"
                        "edge_bucket{le=\"+Inf\"} 6\n"
                        "edge_sum 11.75\n"
                        "edge_count 6\n");
    prom_histogram_observe(h, nextafter(1.0, 2.0)); /* the next double above a bound */
    assert_has_line(reg, "edge_bucket{le=\"1\"} 2");
    assert_has_line(reg, "edge_bucket{le=\"2\"} 5");
    prom_histogram_observe(h, nextafter(5.0, 0.0)); /* and the one below */
    assert_has_line(reg, "edge_bucket{le=\"2\"} 5");
    assert_has_line(reg, "edge_bucket{le=\"5\"} 7");
    prom_histogram_observe(h, INFINITY);
    assert_has_line(reg, "edge_bucket{le=\"+Inf\"} 9");
    assert_has_line(reg, "edge_bucket{le=\"5\"} 7");
    assert_has_line(reg, "edge_sum +Inf");
    assert_has_line(reg, "edge_count 9");
}

static void test_histogram_without_bounds(void **state)
{
    struct prom_registry *reg = *state;
    struct prom_histogram *h;
    assert_int_equal(prom_histogram_new(reg, "only_inf", "Inf.", NULL, 0, &h), PROM_OK);
    prom_histogram_observe(h, 4);
    assert_exposes(reg, "# HELP only_inf Inf.\n"
                        "# TYPE only_inf histogram\n"
                        "only_inf_bucket{le=\"+Inf\"} 1\n"
                        "only_inf_sum 4\n"
                        "only_inf_count 1\n");
}

static void test_children_bounded(void **state)
{
    struct prom_registry *reg = NULL;
    struct prom_counter_vec *vec;
    struct prom_counter *c = NULL, *kept = NULL;
    (void)state;
    assert_int_equal(prom_registry_new(2, &reg), PROM_OK);
    assert_int_equal(
        prom_counter_vec_new(reg, "bounded_total", "B.", (const char *const[]){"k"}, 1, &vec),
        PROM_OK);
    assert_int_equal(prom_counter_vec_with(vec, (const char *const[]){"1"}, &kept), PROM_OK);
    assert_int_equal(prom_counter_vec_with(vec, (const char *const[]){"2"}, &c), PROM_OK);
    c = NULL;
    assert_int_equal(prom_counter_vec_with(vec, (const char *const[]){"3"}, &c), PROM_ELIMIT);
    assert_null(c); /* untouched on failure */
    assert_int_equal(prom_counter_vec_with(vec, (const char *const[]){"1"}, &c), PROM_OK);
    assert_ptr_equal(c, kept);
    prom_counter_inc(c);
    assert_exposes(reg, "# HELP bounded_total B.\n"
                        "# TYPE bounded_total counter\n"
                        "bounded_total{k=\"1\"} 1\n"
                        "bounded_total{k=\"2\"} 0\n");
    prom_registry_free(reg);
}

static void test_invalid(void **state)
{
    struct prom_registry *reg = *state;
    struct prom_counter_vec *cv = NULL;
    struct prom_histogram_vec *hv = NULL;
    struct prom_counter *c = NULL;
    struct prom_gauge *g = NULL;
    const char *const one[] = {"a"};
    const char *bad_names[] = {"", "1abc", "a-b", "a b", "é", NULL};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        assert_int_equal(prom_counter_new(reg, bad_names[i], "h", &c), PROM_EINVAL);
    assert_int_equal(prom_counter_new(reg, "ns:sub_total", "colons are fine", &c), PROM_OK);
    assert_int_equal(
        prom_counter_vec_new(reg, "l1", "h", (const char *const[]){"__reserved"}, 1, &cv),
        PROM_EINVAL);
    assert_int_equal(prom_counter_vec_new(reg, "l2", "h", (const char *const[]){"a:b"}, 1, &cv),
                     PROM_EINVAL);
    assert_int_equal(prom_counter_vec_new(reg, "l3", "h", (const char *const[]){"a", "a"}, 2, &cv),
                     PROM_EINVAL);
    assert_int_equal(prom_counter_vec_new(reg, "l4", "h", NULL, 1, &cv), PROM_EINVAL);
    assert_int_equal(
        prom_histogram_vec_new(reg, "l5", "h", (const char *const[]){"le"}, 1, NULL, 0, &hv),
        PROM_EINVAL);
    /* "le" is reserved for histograms only */
    assert_int_equal(prom_counter_vec_new(reg, "l6", "h", (const char *const[]){"le"}, 1, &cv),
                     PROM_OK);
    assert_int_equal(prom_histogram_vec_new(reg, "b1", "h", one, 1, (const double[]){1, 1}, 2, &hv),
                     PROM_EINVAL);
    assert_int_equal(prom_histogram_vec_new(reg, "b2", "h", one, 1, (const double[]){2, 1}, 2, &hv),
                     PROM_EINVAL);
    assert_int_equal(prom_histogram_vec_new(reg, "b3", "h", one, 1, (const double[]){NAN}, 1, &hv),
                     PROM_EINVAL);
    assert_int_equal(
        prom_histogram_vec_new(reg, "b4", "h", one, 1, (const double[]){1, INFINITY}, 2, &hv),
        PROM_EINVAL);
    assert_int_equal(prom_histogram_vec_new(reg, "b5", "h", one, 1, NULL, 3, &hv), PROM_EINVAL);
    /* one namespace for every kind */
    assert_int_equal(prom_gauge_new(reg, "ns:sub_total", "h", &g), PROM_EEXIST);
    assert_int_equal(
        prom_counter_vec_new(reg, "vals", "h", (const char *const[]){"a", "b"}, 2, &cv), PROM_OK);
    c = NULL;
    assert_int_equal(prom_counter_vec_with(cv, NULL, &c), PROM_EINVAL);
    assert_int_equal(prom_counter_vec_with(cv, (const char *const[]){"x", NULL}, &c), PROM_EINVAL);
    assert_null(c);
    assert_int_equal(prom_counter_vec_with(NULL, one, &c), PROM_EINVAL);
    assert_int_equal(prom_gauge_fn_new(reg, "nofn", "h", NULL, NULL), PROM_EINVAL);
    assert_int_equal(prom_counter_new(NULL, "x", "h", &c), PROM_EINVAL);
    assert_int_equal(prom_expose(NULL, NULL, NULL), PROM_EINVAL);
    /* only the valid families were registered */
    assert_exposes(reg, "# HELP ns:sub_total colons are fine\n"
                        "# TYPE ns:sub_total counter\n"
                        "ns:sub_total 0\n"
                        "# HELP l6 h\n"
                        "# TYPE l6 counter\n"
                        "# HELP vals h\n"
                        "# TYPE vals counter\n");
}

static double read_ctx(void *ctx)
{
    return (double)*(const int *)ctx;
}

static void test_gauges(void **state)
{
    struct prom_registry *reg = *state;
    struct prom_gauge_vec *vec;
    struct prom_gauge *g, *bound;
    int depth = 3;
    assert_int_equal(prom_gauge_new(reg, "g", "G.", &g), PROM_OK);
    assert_true(prom_gauge_value(g) == 0.0);
    prom_gauge_set(g, 2.5);
    prom_gauge_add(g, -4);
    assert_true(prom_gauge_value(g) == -1.5);
    assert_has_line(reg, "g -1.5");
    prom_gauge_set(g, 0.1);
    assert_has_line(reg, "g 0.1");
    prom_gauge_set(g, 1e21);
    assert_has_line(reg, "g 1e+21");
    prom_gauge_set(g, 123456789);
    assert_has_line(reg, "g 123456789");
    prom_gauge_set(g, 1.0 / 3.0);
    assert_has_line(reg, "g 0.33333333333333331"); /* 17 digits when 15 do not round-trip */
    prom_gauge_set(g, -INFINITY);
    assert_has_line(reg, "g -Inf");
    prom_gauge_set(g, NAN);
    assert_has_line(reg, "g NaN");

    /* a labelled child bound to a callback: evaluated at each exposition */
    assert_int_equal(
        prom_gauge_vec_new(reg, "pool_depth", "D.", (const char *const[]){"pool"}, 1, &vec),
        PROM_OK);
    assert_int_equal(prom_gauge_vec_with(vec, (const char *const[]){"hash"}, &bound), PROM_OK);
    prom_gauge_set(bound, 99);
    prom_gauge_bind(bound, read_ctx, &depth);
    assert_has_line(reg, "pool_depth{pool=\"hash\"} 3");
    depth = 11;
    assert_has_line(reg, "pool_depth{pool=\"hash\"} 11");
    prom_gauge_bind(bound, NULL, NULL); /* back to the stored value */
    assert_has_line(reg, "pool_depth{pool=\"hash\"} 99");
}

static void test_counter_wraps_nothing(void **state)
{
    struct prom_registry *reg = *state;
    struct prom_counter *c;
    assert_int_equal(prom_counter_new(reg, "big_total", "Big.", &c), PROM_OK);
    prom_counter_add(c, UINT64_C(18446744073709551615));
    assert_has_line(reg, "big_total 18446744073709551615");
}

static void test_write_to_stream(void **state)
{
    struct prom_registry *reg = *state;
    struct prom_counter *c;
    char buf[256] = "";
    FILE *out = fmemopen(buf, sizeof buf, "w");
    assert_non_null(out);
    assert_int_equal(prom_counter_new(reg, "w_total", "W.", &c), PROM_OK);
    prom_counter_inc(c);
    assert_int_equal(prom_write(reg, out), PROM_OK);
    assert_int_equal(fclose(out), 0);
    assert_string_equal(buf, "# HELP w_total W.\n# TYPE w_total counter\nw_total 1\n");
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(prom_strerror(PROM_OK), "ok");
    assert_string_equal(prom_strerror(PROM_ELIMIT), "too many label value combinations");
    assert_non_null(prom_strerror(PROM_ENOMEM));
    assert_non_null(prom_strerror(PROM_EINVAL));
    assert_non_null(prom_strerror(PROM_EEXIST));
    assert_non_null(prom_strerror(PROM_EIO));
    assert_string_equal(prom_strerror(-99), "unknown error");
}

/* --- concurrency --------------------------------------------------------------------- */

#define N_THREADS 8
#define N_ITERS   20000
#define N_KEYS    64

struct shared {
    struct prom_counter_vec *by_key;
    struct prom_counter *total;
    struct prom_gauge *gauge;
    struct prom_histogram *hist;
};

struct worker_arg {
    struct shared *s;
    int id;
    int failures;
};

static void *hammer(void *p)
{
    struct worker_arg *a = p;
    char key[16];
    for (int i = 0; i < N_ITERS; i++) {
        struct prom_counter *c;
        /* each thread walks the keys in its own order, so creations race */
        snprintf(key, sizeof key, "k%d", (i * 7 + a->id * 13) % N_KEYS);
        if (prom_counter_vec_with(a->s->by_key, (const char *const[]){key}, &c) != PROM_OK) {
            a->failures++;
            continue;
        }
        prom_counter_inc(c);
        prom_counter_inc(a->s->total);
        prom_gauge_add(a->s->gauge, 1);
        prom_histogram_observe(a->s->hist, (i % 2) ? 1.0 : 3.0);
    }
    return NULL;
}

static void test_concurrent_updates_are_exact(void **state)
{
    struct prom_registry *reg = *state;
    struct shared s = {0};
    struct worker_arg args[N_THREADS];
    pthread_t threads[N_THREADS];
    uint64_t sum = 0;
    char line[128];
    assert_int_equal(prom_counter_vec_new(reg, "hits_total", "Hits.", (const char *const[]){"key"},
                                          1, &s.by_key),
                     PROM_OK);
    assert_int_equal(prom_counter_new(reg, "all_total", "All.", &s.total), PROM_OK);
    assert_int_equal(prom_gauge_new(reg, "level", "Level.", &s.gauge), PROM_OK);
    assert_int_equal(prom_histogram_new(reg, "obs", "Obs.", (const double[]){1, 2}, 2, &s.hist),
                     PROM_OK);
    for (int t = 0; t < N_THREADS; t++) {
        args[t] = (struct worker_arg){&s, t, 0};
        assert_int_equal(pthread_create(&threads[t], NULL, hammer, &args[t]), 0);
    }
    for (int t = 0; t < N_THREADS; t++) {
        assert_int_equal(pthread_join(threads[t], NULL), 0);
        assert_int_equal(args[t].failures, 0);
    }
    for (int k = 0; k < N_KEYS; k++) {
        struct prom_counter *c;
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        assert_int_equal(prom_counter_vec_with(s.by_key, (const char *const[]){key}, &c), PROM_OK);
        sum += prom_counter_value(c);
    }
    assert_int_equal(sum, (uint64_t)N_THREADS * N_ITERS);
    assert_int_equal(prom_counter_value(s.total), (uint64_t)N_THREADS * N_ITERS);
    assert_true(prom_gauge_value(s.gauge) == (double)N_THREADS * N_ITERS);
    /* each key created exactly once: N_KEYS hits_total lines */
    {
        char *text = expose(reg);
        int lines = 0;
        for (const char *p = text; (p = strstr(p, "\nhits_total{")) != NULL; p++)
            lines++;
        free(text);
        assert_int_equal(lines, N_KEYS);
    }
    snprintf(line, sizeof line, "obs_bucket{le=\"1\"} %d", N_THREADS * N_ITERS / 2);
    assert_has_line(reg, line);
    snprintf(line, sizeof line, "obs_bucket{le=\"2\"} %d", N_THREADS * N_ITERS / 2);
    assert_has_line(reg, line);
    snprintf(line, sizeof line, "obs_count %d", N_THREADS * N_ITERS);
    assert_has_line(reg, line);
    snprintf(line, sizeof line, "obs_sum %d", N_THREADS * N_ITERS * 2);
    assert_has_line(reg, line);
}

/* Exposition while other threads update: never blocks them for long, never tears. */
static void *scrape_loop(void *p)
{
    struct prom_registry *reg = p;
    for (int i = 0; i < 50; i++) {
        char *text = NULL;
        size_t len;
        if (prom_expose(reg, &text, &len) == PROM_OK)
            free(text);
    }
    return NULL;
}

static void test_scrape_during_updates(void **state)
{
    struct prom_registry *reg = *state;
    struct shared s = {0};
    struct worker_arg args[2];
    pthread_t threads[3];
    assert_int_equal(prom_counter_vec_new(reg, "hits_total", "Hits.", (const char *const[]){"key"},
                                          1, &s.by_key),
                     PROM_OK);
    assert_int_equal(prom_counter_new(reg, "all_total", "All.", &s.total), PROM_OK);
    assert_int_equal(prom_gauge_new(reg, "level", "Level.", &s.gauge), PROM_OK);
    assert_int_equal(prom_histogram_new(reg, "obs", "Obs.", (const double[]){1, 2}, 2, &s.hist),
                     PROM_OK);
    for (int t = 0; t < 2; t++) {
        args[t] = (struct worker_arg){&s, t, 0};
        assert_int_equal(pthread_create(&threads[t], NULL, hammer, &args[t]), 0);
    }
    assert_int_equal(pthread_create(&threads[2], NULL, scrape_loop, reg), 0);
    for (int t = 0; t < 3; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);
    assert_int_equal(prom_counter_value(s.total), (uint64_t)2 * N_ITERS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exposition_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_values_same_child, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_bucket_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_without_bounds, setup, teardown),
        cmocka_unit_test(test_children_bounded),
        cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gauges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_wraps_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_to_stream, setup, teardown),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test_setup_teardown(test_concurrent_updates_are_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scrape_during_updates, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
