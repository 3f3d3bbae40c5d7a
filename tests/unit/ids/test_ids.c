/* Unit tests for pkg/ids: UUIDv7 layout, monotonicity and strict parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ids/ids.h"

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_v7_layout(void **state)
{
    struct ids_id id;
    (void)state;

    uint64_t before = wall_ms();
    assert_int_equal(ids_new_v7(&id), 0);
    uint64_t after = wall_ms();

    assert_int_equal(ids_version(&id), 7);
    assert_int_equal(id.b[6] >> 4, 7);
    assert_int_equal(id.b[8] & 0xc0, 0x80); /* RFC 9562 variant 10xx */
    assert_true(ids_v7_unix_ms(&id) >= before);
    /* the counter may push the stamp a few ms ahead under heavy load, never far */
    assert_true(ids_v7_unix_ms(&id) <= after + 5);
}

static void test_v7_monotonic_100k(void **state)
{
    enum { N = 100000 };
    struct ids_id prev, cur;
    (void)state;

    assert_int_equal(ids_new_v7(&prev), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ids_new_v7(&cur), 0);
        assert_true(memcmp(prev.b, cur.b, 16) < 0);
        assert_int_equal(ids_version(&cur), 7);
        assert_int_equal(cur.b[8] & 0xc0, 0x80);
        prev = cur;
    }
    /* 100k ids cannot have pushed the clock more than ~50 ms ahead (2048 per ms). */
    assert_true(ids_v7_unix_ms(&cur) <= wall_ms() + 50);
}

/* Text order equals byte order for the canonical lower-case form, so sorting the text
 * of ids generated across threads must match the order of generation per thread. */
struct thread_ids {
    struct ids_id ids[5000];
    int failed;
};

static void *gen_thread(void *arg)
{
    struct thread_ids *t = arg;

    for (size_t i = 0; i < sizeof t->ids / sizeof t->ids[0]; i++) {
        if (ids_new_v7(&t->ids[i]) < 0)
            t->failed = 1;
        if (i > 0 && memcmp(t->ids[i - 1].b, t->ids[i].b, 16) >= 0)
            t->failed = 1;
    }
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct ids_id));
}

static void test_v7_threads_unique(void **state)
{
    enum { T = 4 };
    struct thread_ids *t = calloc(T, sizeof *t);
    pthread_t th[T];
    (void)state;

    assert_non_null(t);
    for (int i = 0; i < T; i++)
        assert_int_equal(pthread_create(&th[i], NULL, gen_thread, &t[i]), 0);
    for (int i = 0; i < T; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);

    size_t n = T * (sizeof t->ids / sizeof t->ids[0]);
    struct ids_id *all = malloc(n * sizeof *all);
    assert_non_null(all);
    for (int i = 0; i < T; i++) {
        assert_int_equal(t[i].failed, 0);
        memcpy(&all[(size_t)i * 5000], t[i].ids, sizeof t[i].ids);
    }
    qsort(all, n, sizeof *all, cmp_id);
    for (size_t i = 1; i < n; i++)
        assert_true(memcmp(all[i - 1].b, all[i].b, 16) != 0);
    free(all);
    free(t);
}

static void test_format_known(void **state)
{
    struct ids_id id;
    char text[IDS_TEXT_LEN + 1];
    (void)state;

    for (int i = 0; i < 16; i++)
        id.b[i] = (uint8_t)(0x01 + i * 0x11);
    memset(text, 'X', sizeof text);
    ids_format(&id, text);
    assert_string_equal(text, "01122334-4556-6778-899a-abbccddeef00");
}

static void test_parse_format_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < 1000; i++) {
        struct ids_id id, back;
        char text[IDS_TEXT_LEN + 1];

        assert_int_equal(ids_new_v7(&id), 0);
        ids_format(&id, text);
        assert_int_equal(strlen(text), IDS_TEXT_LEN);
        assert_int_equal(ids_parse(text, strlen(text), &back), 0);
        assert_true(ids_equal(&id, &back));
    }
}

static void test_parse_upper_case(void **state)
{
    struct ids_id a, b;
    char text[IDS_TEXT_LEN + 1];
    (void)state;

    assert_int_equal(ids_parse("0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B", 36, &a), 0);
    assert_int_equal(ids_parse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", 36, &b), 0);
    assert_true(ids_equal(&a, &b));
    ids_format(&a, text);
    assert_string_equal(text, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    assert_int_equal(ids_version(&a), 7);
    assert_int_equal(ids_v7_unix_ms(&a), 0x0190a1b2c3d4ULL);
}

static void test_parse_not_nul_terminated(void **state)
{
    /* exactly 36 bytes on the heap, no terminator: ASan catches any over-read */
    static const char src[] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    char *buf = malloc(IDS_TEXT_LEN);
    struct ids_id id;
    (void)state;

    assert_non_null(buf);
    for (size_t i = 0; i < IDS_TEXT_LEN; i++)
        buf[i] = src[i];
    assert_int_equal(ids_parse(buf, IDS_TEXT_LEN, &id), 0);
    assert_int_equal(id.b[15], 0x5b);
    free(buf);
}

static void test_parse_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5",           /* 35 */
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5bc",         /* 37 */
        "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b",              /* no hyphens */
        "0190a1b2c-3d4-7e5f-8a9b-0c1d2e3f4a5b",          /* hyphen at 9 */
        "0190a1b-2c3d4-7e5f-8a9b-0c1d2e3f4a5b",          /* hyphen at 7 */
        "0190a1b2-c3d47-e5f-8a9b-0c1d2e3f4a5b",          /* hyphen at 14 */
        "0190a1b2-c3d4-7e5f8-a9b-0c1d2e3f4a5b",          /* hyphen at 19 */
        "0190a1b2-c3d4-7e5f-8a9b0-c1d2e3f4a5b",          /* hyphen at 24 */
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a-5",          /* extra hyphen */
        "0190a1b2_c3d4_7e5f_8a9b_0c1d2e3f4a5b",          /* wrong separator */
        "0190a1g2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",          /* non-hex g */
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5 ",          /* trailing space */
        " 190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",          /* leading space */
        "+190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",          /* sign */
        "{0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b}",        /* braces */
        "{90a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b}",          /* braces, 36 chars */
        "urn:uuid:0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", /* urn */
        "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5\xc3\xa9",   /* non-ASCII */
    };
    struct ids_id id, sentinel;
    (void)state;

    memset(&sentinel, 0xa5, sizeof sentinel);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        id = sentinel;
        if (ids_parse(bad[i], strlen(bad[i]), &id) != -1)
            fail_msg("accepted malformed id #%zu '%s'", i, bad[i]);
        assert_true(ids_equal(&id, &sentinel)); /* ret_id untouched on failure */
    }

    /* a valid id with the wrong length argument, and with an embedded NUL */
    static const char good[] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    assert_int_equal(ids_parse(good, 35, &id), -1);
    assert_int_equal(ids_parse(good, 37, &id), -1);
    assert_int_equal(ids_parse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5\0", 36, &id), -1);
    assert_int_equal(ids_parse(NULL, 36, &id), -1);
}

static void test_equal(void **state)
{
    struct ids_id a, b;
    (void)state;

    assert_int_equal(ids_new_v7(&a), 0);
    b = a;
    assert_true(ids_equal(&a, &b));
    b.b[15] ^= 1;
    assert_false(ids_equal(&a, &b));
}

/* --- ids_random: the per-thread generator ------------------------------------ */

static void test_random_differs(void **state)
{
    unsigned char a[64], b[64], zero[64] = {0};
    (void)state;

    assert_int_equal(ids_random(a, sizeof a), 0);
    assert_int_equal(ids_random(b, sizeof b), 0);
    assert_memory_not_equal(a, b, sizeof a);
    assert_memory_not_equal(a, zero, sizeof a);
    assert_int_equal(ids_random(a, 0), 0);
}

/* Many refills in one call, and the bits are balanced: 1 MiB has 4,194,304 ones
 * expected, sigma 1448; 0.5 % is 14 sigma, far from chance, near any real bias. */
static void test_random_large_balanced(void **state)
{
    enum { LEN = 1 << 20 };
    unsigned char *buf = malloc(LEN);
    unsigned long ones = 0;
    (void)state;

    assert_non_null(buf);
    assert_int_equal(ids_random(buf, LEN), 0);
    for (size_t i = 0; i < LEN; i++)
        ones += (unsigned long)__builtin_popcount(buf[i]);
    assert_true(ones > 4194304ul - 20972ul && ones < 4194304ul + 20972ul);
    free(buf);
}

/* Output is never handed out twice: 20,000 16-byte draws (many refills) are distinct. */
static int cmp16(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static void test_random_no_repeats(void **state)
{
    enum { N = 20000 };
    unsigned char(*v)[16] = malloc(N * sizeof *v);
    (void)state;

    assert_non_null(v);
    for (int i = 0; i < N; i++)
        assert_int_equal(ids_random(v[i], 16), 0);
    qsort(v, N, sizeof *v, cmp16);
    for (int i = 1; i < N; i++)
        assert_true(memcmp(v[i - 1], v[i], 16) != 0);
    free(v);
}

struct seed_probe {
    unsigned before, after;
    unsigned char first[32];
};

static void *seed_thread(void *arg)
{
    struct seed_probe *p = arg;
    struct ids_id id;

    p->before = ids_random_seeds();
    assert_int_equal(ids_random(p->first, sizeof p->first), 0);
    for (int i = 0; i < 10000; i++) {
        unsigned char tp[24];
        assert_int_equal(ids_new_v7(&id), 0);
        assert_int_equal(ids_random(tp, sizeof tp), 0);
    }
    p->after = ids_random_seeds();
    return NULL;
}

/* The kernel is asked once per thread, not once per id: the syscall left the
 * hot path.  And two threads draw different streams. */
static void test_random_seeded_once_per_thread(void **state)
{
    struct seed_probe a = {0}, b = {0};
    pthread_t ta, tb;
    (void)state;

    assert_int_equal(pthread_create(&ta, NULL, seed_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, seed_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.before, 0);
    assert_int_equal(a.after, 1);
    assert_int_equal(b.after, 1);
    assert_memory_not_equal(a.first, b.first, sizeof a.first);
}

/* A child of fork() does not replay its parent's stream. */
static void test_random_fork_diverges(void **state)
{
    unsigned char parent[32], child[32], warm[8];
    int fds[2];
    pid_t pid;
    int status;
    (void)state;

    assert_int_equal(ids_random(warm, sizeof warm), 0); /* the parent is seeded */
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        unsigned char c[32];
        close(fds[0]);
        if (ids_random(c, sizeof c) != 0 || write(fds[1], c, sizeof c) != (ssize_t)sizeof c)
            _exit(1);
        _exit(0);
    }
    close(fds[1]);
    assert_int_equal(ids_random(parent, sizeof parent), 0);
    assert_int_equal(read(fds[0], child, sizeof child), (ssize_t)sizeof child);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_memory_not_equal(parent, child, sizeof parent);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v7_layout),
        cmocka_unit_test(test_v7_monotonic_100k),
        cmocka_unit_test(test_v7_threads_unique),
        cmocka_unit_test(test_format_known),
        cmocka_unit_test(test_parse_format_round_trip),
        cmocka_unit_test(test_parse_upper_case),
        cmocka_unit_test(test_parse_not_nul_terminated),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_random_differs),
        cmocka_unit_test(test_random_large_balanced),
        cmocka_unit_test(test_random_no_repeats),
        cmocka_unit_test(test_random_seeded_once_per_thread),
        cmocka_unit_test(test_random_fork_diverges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
