/*
 * Unit tests of the sample range (src/range.c): bounds and bootstrap
 * area, slot sizes and alignment, zeroing on reuse, pages returned to the
 * kernel beyond the cache, slots kept by reallocs within their bound,
 * refusals, invalid frees, frees queued while
 * the range is held on the same thread, and threads that never get
 * overlapping blocks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "range.h"

static uintptr_t lo;
static size_t len;

static int
setup(void **state)
{
    (void)state;
    return hp_range_reserve(&lo, &len) ? 0 : -1;
}

static bool
inside(const void *p)
{
    return (uintptr_t)p - lo < len;
}

/* Resident pages among the n pages at p. */
static size_t
resident_pages(void *p, size_t n)
{
    unsigned char vec[4096];
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    assert_true(n <= sizeof vec);
    assert_int_equal(mincore(p, n * page, vec), 0);
    size_t r = 0;
    for (size_t i = 0; i < n; i++)
        r += vec[i] & 1;
    return r;
}

static void
test_bounds_and_pool(void **state)
{
    (void)state;
    assert_true(len >= ((size_t)256 << 20));
    assert_int_equal(lo % 65536, 0);
    uintptr_t lo2;
    size_t len2;
    assert_true(hp_range_reserve(&lo2, &len2)); /* once, same answer */
    assert_int_equal(lo2, lo);
    assert_int_equal(len2, len);
    size_t pool_size;
    char *pool = hp_range_pool(&pool_size);
    assert_ptr_equal(pool, (void *)lo);
    assert_true(pool_size >= 65536);
    memset(pool, 7, pool_size); /* writable */
    hp_range_free(pool + 64);   /* ignored: never reused */
    void *p = hp_range_alloc(16, 0, false);
    assert_true((char *)p >= pool + pool_size);
    hp_range_free(p);
}

static void
test_small_slots(void **state)
{
    (void)state;
    for (size_t size = 1; size <= 32768; size = size * 3 + 1) {
        void *p = hp_range_alloc(size, 0, false);
        assert_non_null(p);
        assert_true(inside(p));
        size_t usable = hp_range_usable(p);
        assert_true(usable >= size && usable < 2 * size + 16);
        /* power-of-two slots are aligned to their size */
        assert_int_equal((uintptr_t)p % usable, 0);
        memset(p, 0xab, usable);
        hp_range_free(p);
    }
    void *a = hp_range_alloc(100, 0, false);
    void *b = hp_range_alloc(100, 0, false);
    assert_ptr_not_equal(a, b);
    hp_range_free(a);
    void *c = hp_range_alloc(100, 0, false);
    assert_ptr_equal(a, c); /* a freed slot is reused first */
    hp_range_free(b);
    hp_range_free(c);
}

static void
test_zero_on_reuse(void **state)
{
    (void)state;
    size_t sizes[] = {40, 3000, 100000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = hp_range_alloc(sizes[i], 0, false);
        assert_non_null(p);
        memset(p, 0xee, sizes[i]);
        hp_range_free(p);
        unsigned char *q = hp_range_alloc(sizes[i], 0, true);
        assert_ptr_equal(p, q); /* the same slot, dirty, must be zeroed */
        for (size_t k = 0; k < sizes[i]; k++)
            if (q[k] != 0)
                fail_msg("byte %zu of a zeroed %zu-byte block is %u", k,
                         sizes[i], q[k]);
        hp_range_free(q);
    }
}

static void
assert_zero(const unsigned char *p, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (p[k] != 0)
            fail_msg("byte %zu of a zeroed %zu-byte block is %u", k, n, p[k]);
}

/* A large slot zeroes only the block it hands out, and remembers that the
 * rest stays dirty: a smaller zeroed block, then a larger one, in a slot
 * once filled to its end. */
static void
test_zero_smaller_then_larger(void **state)
{
    (void)state;
    unsigned char *p = hp_range_alloc(120000, 0, false);
    assert_non_null(p);
    memset(p, 0xee, hp_range_usable(p));
    hp_range_free(p);
    unsigned char *q = hp_range_alloc(70000, 0, true);
    assert_ptr_equal(p, q);
    assert_zero(q, 70000);
    hp_range_free(q);
    unsigned char *r = hp_range_alloc(120000, 0, true);
    assert_ptr_equal(p, r);
    assert_zero(r, 120000);
    hp_range_free(r);
}

static void
test_large_alignment_and_usable(void **state)
{
    (void)state;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *p = hp_range_alloc(40000, 0, false);
    assert_int_equal((uintptr_t)p % 65536, 0);
    assert_int_equal(hp_range_usable(p), (40000 + page - 1) / page * page);
    hp_range_free(p);
    void *q = hp_range_alloc(100, 4096, false);
    assert_int_equal((uintptr_t)q % 4096, 0);
    void *r = hp_range_alloc(100, 65536, false);
    assert_int_equal((uintptr_t)r % 65536, 0);
    /* Aligned beyond a chunk: the block slides into its slot, and frees
     * and sizes by the address handed out. */
    for (size_t align = 131072; align <= ((size_t)16 << 20); align *= 8) {
        char *s = hp_range_alloc(100000, align, true);
        assert_non_null(s);
        assert_int_equal((uintptr_t)s % align, 0);
        assert_int_equal(hp_range_usable(s), (100000 + page - 1) / page * page);
        assert_int_equal(s[99999], 0);
        hp_range_free(s);
        char *again = hp_range_alloc(100000, align, false);
        assert_int_equal((uintptr_t)again % align, 0);
        hp_range_free(again);
    }
    assert_null(hp_range_alloc(100, (size_t)32 << 20, false)); /* elsewhere */
    assert_null(hp_range_alloc(len + 1, 0, false));
    assert_null(hp_range_alloc(SIZE_MAX, 0, false));
    assert_int_equal(hp_range_usable((void *)(lo + len + 4096)), 0);
    hp_range_free(q);
    hp_range_free(r);
}

/* Freed big blocks keep at most the cache's 4 MiB resident; the rest of
 * their pages go back to the kernel at once. */
static void
test_pages_returned(void **state)
{
    (void)state;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = (size_t)8 << 20, n = size / page;
    void *blocks[3];
    for (int i = 0; i < 3; i++) {
        blocks[i] = hp_range_alloc(size, 0, false);
        assert_non_null(blocks[i]);
        memset(blocks[i], 1, size);
        assert_int_equal(resident_pages(blocks[i], n), n);
    }
    uint64_t before = hp_range_cached_bytes();
    for (int i = 0; i < 3; i++)
        hp_range_free(blocks[i]);
    size_t resident = 0;
    for (int i = 0; i < 3; i++)
        resident += resident_pages(blocks[i], n);
    assert_true(resident * page <= ((size_t)4 << 20));
    assert_true(hp_range_cached_bytes() <= ((uint64_t)4 << 20));
    assert_true(hp_range_cached_bytes() >= before);
    /* Reused: the same addresses, no growth of the committed part. */
    uint64_t committed = hp_range_committed_bytes();
    for (int i = 0; i < 3; i++) {
        blocks[i] = hp_range_alloc(size, 0, true);
        assert_non_null(blocks[i]);
        assert_int_equal(((unsigned char *)blocks[i])[size - 1], 0);
    }
    assert_int_equal(hp_range_committed_bytes(), committed);
    for (int i = 0; i < 3; i++)
        hp_range_free(blocks[i]);
}

/* A block a realloc leaves unsampled stays in its slot only if it fits, and
 * such slots hold at most 1 MiB in all; unkeeping gives the room back and
 * never counts below zero. */
static void
test_keep_bounded(void **state)
{
    (void)state;
    assert_int_equal(hp_range_kept_bytes(), 0);
    void *small = hp_range_alloc(3000, 0, false); /* a 4 KiB slot */
    assert_false(hp_range_keep(small, 4097));
    assert_false(hp_range_keep(small, 0));
    assert_true(hp_range_keep(small, 4096));
    assert_int_equal(hp_range_kept_bytes(), 4096);
    enum { N = 40 };
    void *big[N];
    bool held[N];
    int kept = 0;
    for (int i = 0; i < N; i++) {
        big[i] = hp_range_alloc(32768, 0, false);
        assert_non_null(big[i]);
        held[i] = hp_range_keep(big[i], 100);
        kept += held[i];
    }
    /* 4 KiB + 31 slots of 32 KiB fit in 1 MiB, the 32nd does not. */
    assert_int_equal(kept, 31);
    assert_int_equal(hp_range_kept_bytes(), 4096 + 31 * 32768);
    hp_range_unkeep(big[0]);
    held[0] = false;
    assert_true(hp_range_keep(big[N - 1], 32768));
    held[N - 1] = true;
    for (int i = 0; i < N; i++) {
        if (held[i])
            hp_range_unkeep(big[i]);
        hp_range_free(big[i]);
    }
    assert_int_equal(hp_range_kept_bytes(), 4096);
    hp_range_unkeep(small);
    assert_int_equal(hp_range_kept_bytes(), 0);
    hp_range_unkeep(small); /* a block no longer counted: stays at zero */
    assert_int_equal(hp_range_kept_bytes(), 0);
    hp_range_free(small);
}

static void
test_invalid_free_ignored(void **state)
{
    (void)state;
    char *p = hp_range_alloc(256, 0, false);
    hp_range_free(p + 16); /* not a slot start: reported, ignored */
    char *big = hp_range_alloc(200000, 0, false);
    hp_range_free(big + 4096);
    /* never handed out */
    hp_range_free((char *)(lo + len - 65536));
    void *q = hp_range_alloc(256, 0, false);
    assert_ptr_not_equal(q, p + 16);
    hp_range_free(p);
    hp_range_free(q);
    hp_range_free(big);
}

/* A signal handler that frees while its thread holds the range: queued,
 * then reused once the range is taken again. */
static void
test_free_while_held_is_queued(void **state)
{
    (void)state;
    void *p = hp_range_alloc(512, 0, false);
    hp_tls.range_locked = 1;
    hp_range_free(p);
    assert_null(hp_range_alloc(512, 0, false)); /* held: refused */
    hp_tls.range_locked = 0;
    void *q = hp_range_alloc(512, 0, false);
    assert_ptr_equal(p, q);
    hp_range_free(q);
}

#define THREADS 4
#define ROUNDS 3000

static void *
churn(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    unsigned char *held[64] = {0};
    size_t sizes[64] = {0};
    uint64_t x = 0x9e3779b97f4a7c15ull * (id + 1);
    for (int r = 0; r < ROUNDS; r++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int i = (int)(x % 64);
        if (held[i] != NULL) {
            for (size_t k = 0; k < sizes[i]; k += 97)
                if (held[i][k] != (unsigned char)(id + i))
                    return (void *)1; /* someone else wrote here */
            hp_range_free(held[i]);
        }
        sizes[i] = 1 + (size_t)(x >> 20) % (r % 10 == 0 ? 300000 : 2000);
        held[i] = hp_range_alloc(sizes[i], 0, false);
        if (held[i] == NULL)
            return (void *)2;
        memset(held[i], (int)(id + i), sizes[i]);
    }
    for (int i = 0; i < 64; i++)
        if (held[i] != NULL)
            hp_range_free(held[i]);
    return NULL;
}

static void
test_threads_never_share_blocks(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, (void *)i), 0);
    for (int i = 0; i < THREADS; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_null(rc);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds_and_pool),
        cmocka_unit_test(test_small_slots),
        cmocka_unit_test(test_zero_on_reuse),
        cmocka_unit_test(test_zero_smaller_then_larger),
        cmocka_unit_test(test_large_alignment_and_usable),
        cmocka_unit_test(test_pages_returned),
        cmocka_unit_test(test_keep_bounded),
        cmocka_unit_test(test_invalid_free_ignored),
        cmocka_unit_test(test_free_while_held_is_queued),
        cmocka_unit_test(test_threads_never_share_blocks),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
