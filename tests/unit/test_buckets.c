/*
 * Unit tests of the stack-bucket table (src/buckets.c): identity of
 * buckets per stack, many distinct stacks, the newest-first list, and
 * concurrent lookups from 8 threads on overlapping stacks creating exactly
 * one bucket per stack. The ialloc budget (overflow bucket) is tested in
 * test_buckets_budget.c: ialloc is process-global and has no reset.
 *
 * Stacks here are made-up return addresses; the table never dereferences
 * them. Each test uses its own address range so tests do not share
 * buckets, and checks counts as differences.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "buckets.h"
#include "heapprof.h"
#include "internal.h"
#include "labels.h"

/* A made-up stack: frame i of stack id in the given test range. */
static void
make_stack(uintptr_t *pcs, uint32_t n, uintptr_t range, uint64_t id)
{
    for (uint32_t i = 0; i < n; i++)
        pcs[i] = range + (uintptr_t)id * 0x100 + i * 0x10 + 1; /* depth <= 16 */
}

static bool
in_all_list(const struct hp_bucket *want)
{
    for (struct hp_bucket *b = hp_buckets_all(); b != NULL; b = b->all_next)
        if (b == want)
            return true;
    return false;
}

static void
test_buckets_same_stack_same_bucket(void **state)
{
    (void)state;
    uint64_t before = hp_buckets_count();
    uint64_t dropped = hp_buckets_dropped();
    uintptr_t a[8], b[8];
    make_stack(a, 8, 0x10000000, 1);
    memcpy(b, a, sizeof a);
    struct hp_bucket *ba = hp_bucket_get(a, 8);
    assert_non_null(ba);
    assert_ptr_not_equal(ba, hp_bucket_overflow());
    /* Same content in another array: same bucket, nothing new. */
    assert_ptr_equal(hp_bucket_get(b, 8), ba);
    assert_ptr_equal(hp_bucket_get(a, 8), ba);
    assert_int_equal(hp_buckets_count(), before + 1);
    /* The bucket keeps a copy of the stack (the caller's array is gone). */
    memset(a, 0, sizeof a);
    assert_int_equal(ba->nframes, 8);
    assert_memory_equal(ba->pcs, b, sizeof b);
    assert_ptr_equal(hp_bucket_get(b, 8), ba);
    /* Fresh buckets start with zero counters and are listed. */
    assert_int_equal(ba->alloc_count_fx, 0);
    assert_int_equal(ba->free_samples, 0);
    assert_true(in_all_list(ba));
    assert_int_equal(hp_buckets_dropped(), dropped);
}

static void
test_buckets_different_stacks_different_buckets(void **state)
{
    (void)state;
    uint64_t before = hp_buckets_count();
    uint64_t dropped = hp_buckets_dropped();
    uintptr_t base[6];
    make_stack(base, 6, 0x20000000, 7);
    struct hp_bucket *b0 = hp_bucket_get(base, 6);

    /* One frame different (leaf, middle, root). */
    struct hp_bucket *seen[16];
    int n = 0;
    seen[n++] = b0;
    for (int i = 0; i < 6; i += 2) {
        uintptr_t v[6];
        memcpy(v, base, sizeof v);
        v[i] += 0x8;
        seen[n++] = hp_bucket_get(v, 6);
    }
    /* Prefixes and extensions: same frames, different depth. */
    seen[n++] = hp_bucket_get(base, 5);
    seen[n++] = hp_bucket_get(base, 1);
    uintptr_t longer[7];
    memcpy(longer, base, sizeof base);
    longer[6] = 0x20000000 + 0x999;
    seen[n++] = hp_bucket_get(longer, 7);
    /* Same frames, reversed order. */
    uintptr_t rev[6];
    for (int i = 0; i < 6; i++)
        rev[i] = base[5 - i];
    seen[n++] = hp_bucket_get(rev, 6);

    for (int i = 0; i < n; i++) {
        assert_ptr_not_equal(seen[i], hp_bucket_overflow());
        for (int j = i + 1; j < n; j++)
            assert_ptr_not_equal(seen[i], seen[j]);
    }
    assert_int_equal(hp_buckets_count(), before + (uint64_t)n);
    /* And each is found again. */
    assert_ptr_equal(hp_bucket_get(base, 5), seen[4]);
    assert_ptr_equal(hp_bucket_get(base, 1), seen[5]);
    assert_ptr_equal(hp_bucket_get(rev, 6), seen[7]);
    assert_int_equal(hp_buckets_dropped(), dropped);
}

/* An empty stack has no bucket of its own: it is accounted to the
 * overflow bucket, which is never in the list. */
static void
test_buckets_empty_stack_is_overflow(void **state)
{
    (void)state;
    uintptr_t none[1] = {0};
    uint64_t before = hp_buckets_count();
    uint64_t dropped = hp_buckets_dropped();
    struct hp_bucket *b = hp_bucket_get(none, 0);
    assert_ptr_equal(b, hp_bucket_overflow());
    assert_int_equal(b->nframes, 0);
    assert_int_equal(hp_buckets_count(), before);
    /* "Stacks sent to overflow" counts it. */
    assert_int_equal(hp_buckets_dropped(), dropped + 1);
    assert_false(in_all_list(hp_bucket_overflow()));
}

#define MANY 50000

static void
test_buckets_many_distinct_stacks(void **state)
{
    (void)state;
    uint64_t before = hp_buckets_count();
    uint64_t dropped = hp_buckets_dropped();
    struct hp_bucket **got = calloc(MANY, sizeof *got);
    assert_non_null(got);
    uintptr_t pcs[4];
    for (uint64_t i = 0; i < MANY; i++) {
        make_stack(pcs, 4, 0x30000000, i);
        got[i] = hp_bucket_get(pcs, 4);
        assert_ptr_not_equal(got[i], hp_bucket_overflow());
        assert_int_equal(got[i]->nframes, 4);
        assert_memory_equal(got[i]->pcs, pcs, sizeof pcs);
    }
    assert_int_equal(hp_buckets_count(), before + MANY);
    /* Lookups again, in reverse: same buckets, no new ones. */
    for (uint64_t i = MANY; i-- > 0;) {
        make_stack(pcs, 4, 0x30000000, i);
        assert_ptr_equal(hp_bucket_get(pcs, 4), got[i]);
    }
    assert_int_equal(hp_buckets_count(), before + MANY);
    /* The list holds every bucket exactly once, newest first: walking it
     * meets ours in reverse creation order. */
    uint64_t listed = 0, ours = 0, next_expected = MANY;
    for (struct hp_bucket *b = hp_buckets_all(); b != NULL; b = b->all_next) {
        listed++;
        if (b->pcs[0] >= 0x30000000 && b->pcs[0] < 0x40000000 &&
            b->nframes == 4) {
            ours++;
            assert_true(next_expected > 0);
            assert_ptr_equal(b, got[--next_expected]);
        }
    }
    assert_int_equal(ours, MANY);
    assert_int_equal(listed, hp_buckets_count());
    assert_int_equal(hp_buckets_dropped(), dropped);
    free(got);
}

/* ------------------------------------------------------------ threads */

#define NTHREADS 8
#define SHARED_STACKS 4001 /* prime: every stride below is a permutation */
#define DEPTH 12

struct worker {
    pthread_barrier_t *start;
    unsigned id;
    struct hp_bucket **got; /* [SHARED_STACKS] */
};

static void *
lookup_worker(void *arg)
{
    struct worker *w = arg;
    uintptr_t pcs[DEPTH];
    pthread_barrier_wait(w->start);
    /* Each thread walks the same stacks from a different starting point
     * and stride, three times, so inserts of one stack race. */
    for (int round = 0; round < 3; round++) {
        for (unsigned k = 0; k < SHARED_STACKS; k++) {
            unsigned i = (k * (2 * w->id + 1) + w->id * 97) % SHARED_STACKS;
            make_stack(pcs, DEPTH, 0x50000000, i);
            struct hp_bucket *b = hp_bucket_get(pcs, DEPTH);
            if (w->got[i] == NULL)
                w->got[i] = b;
            else if (w->got[i] != b)
                w->got[i] = hp_bucket_overflow(); /* flagged below */
        }
    }
    return NULL;
}

static void
test_buckets_concurrent_one_bucket_per_stack(void **state)
{
    (void)state;
    uint64_t before = hp_buckets_count();
    uint64_t dropped = hp_buckets_dropped();
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, NTHREADS);
    pthread_t tid[NTHREADS];
    struct worker w[NTHREADS];
    for (unsigned t = 0; t < NTHREADS; t++) {
        w[t] = (struct worker){&start, t, calloc(SHARED_STACKS, sizeof(void *))};
        assert_non_null(w[t].got);
        assert_int_equal(pthread_create(&tid[t], NULL, lookup_worker, &w[t]), 0);
    }
    for (unsigned t = 0; t < NTHREADS; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&start);

    assert_int_equal(hp_buckets_count(), before + SHARED_STACKS);
    uintptr_t pcs[DEPTH];
    for (unsigned i = 0; i < SHARED_STACKS; i++) {
        make_stack(pcs, DEPTH, 0x50000000, i);
        struct hp_bucket *b = hp_bucket_get(pcs, DEPTH);
        assert_ptr_not_equal(b, hp_bucket_overflow());
        assert_memory_equal(b->pcs, pcs, sizeof pcs);
        for (unsigned t = 0; t < NTHREADS; t++)
            assert_ptr_equal(w[t].got[i], b);
    }
    assert_int_equal(hp_buckets_count(), before + SHARED_STACKS);
    /* Exactly one listed bucket per stack. */
    uint64_t ours = 0;
    for (struct hp_bucket *b = hp_buckets_all(); b != NULL; b = b->all_next)
        ours += b->pcs[0] >= 0x50000000 && b->pcs[0] < 0x60000000;
    assert_int_equal(ours, SHARED_STACKS);
    for (unsigned t = 0; t < NTHREADS; t++)
        free(w[t].got);
    assert_int_equal(hp_buckets_dropped(), dropped);
}

/* Counter updates from many threads on one bucket are not lost. */
struct adder {
    pthread_barrier_t *start;
    struct hp_bucket *b;
};

static void *
add_worker(void *arg)
{
    struct adder *a = arg;
    pthread_barrier_wait(a->start);
    for (int i = 0; i < 100000; i++) {
        hp_bucket_add_alloc(a->b, HP_COUNT_ONE, 3, 2);
        hp_bucket_add_free(a->b, HP_COUNT_ONE, 3, 2);
    }
    return NULL;
}

static void
test_buckets_concurrent_counters(void **state)
{
    (void)state;
    uintptr_t pcs[3];
    make_stack(pcs, 3, 0x60000000, 1);
    struct hp_bucket *b = hp_bucket_get(pcs, 3);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, NTHREADS);
    pthread_t tid[NTHREADS];
    struct adder a = {&start, b};
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_create(&tid[t], NULL, add_worker, &a), 0);
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&start);
    uint64_t n = (uint64_t)NTHREADS * 100000;
    assert_int_equal(b->alloc_count_fx, n * HP_COUNT_ONE);
    assert_int_equal(b->alloc_bytes, n * 3);
    assert_int_equal(b->alloc_samples, n);
    assert_int_equal(b->alloc_raw_bytes, n * 2);
    assert_int_equal(b->free_count_fx, n * HP_COUNT_ONE);
    assert_int_equal(b->free_bytes, n * 3);
    assert_int_equal(b->free_samples, n);
    assert_int_equal(b->free_raw_bytes, n * 2);
}

/* Label sets are interned whatever the order keys were set in, and a
 * stack sampled under two sets gets two buckets. */
static void
test_buckets_labels_intern_and_separate(void **state)
{
    (void)state;
    uintptr_t pcs[2] = {0x5101, 0x5202};
    heapprof_labels_clear();
    assert_null(hp_labels_current());
    assert_int_equal(heapprof_labels_set("route", "/a"), HEAPPROF_OK);
    assert_int_equal(heapprof_labels_set("tenant", "x"), HEAPPROF_OK);
    const struct hp_labelset *ax = hp_labels_current();
    assert_non_null(ax);
    assert_int_equal(ax->n, 2);
    assert_string_equal(ax->kv[0].key, "route");
    assert_string_equal(ax->kv[1].value, "x");
    heapprof_labels_clear();
    assert_int_equal(heapprof_labels_set("tenant", "x"), HEAPPROF_OK);
    uint64_t sets = hp_labelsets_count();
    assert_int_equal(heapprof_labels_set("route", "/a"), HEAPPROF_OK);
    assert_ptr_equal(hp_labels_current(), ax); /* same set, not a new one */
    assert_int_equal(hp_labelsets_count(), sets);
    assert_int_equal(heapprof_labels_set("tenant", NULL), HEAPPROF_OK);
    const struct hp_labelset *a = hp_labels_current();
    assert_int_equal(a->n, 1);

    struct hp_bucket *b0 = hp_bucket_get(pcs, 2);
    struct hp_bucket *b1 = hp_bucket_get_labeled(pcs, 2, a);
    struct hp_bucket *b2 = hp_bucket_get_labeled(pcs, 2, ax);
    assert_true(b0 != b1 && b1 != b2 && b0 != b2);
    assert_ptr_equal(hp_bucket_get_labeled(pcs, 2, a), b1);
    assert_ptr_equal(hp_bucket_get_labeled(pcs, 2, NULL), b0);
    assert_ptr_equal(b1->labels, a);
    assert_null(b0->labels);
    /* Refusals leave the set as it was. */
    assert_int_equal(heapprof_labels_set("", "v"), HEAPPROF_EINVAL);
    assert_ptr_equal(hp_labels_current(), a);
    /* The deprecated name (0.1.0) does the same. */
    assert_int_equal(heapprof_label_set("tenant", "x"), HEAPPROF_OK);
    assert_ptr_equal(hp_labels_current(), ax);
    assert_int_equal(heapprof_label_set("tenant", NULL), HEAPPROF_OK);
    assert_ptr_equal(hp_labels_current(), a);
    heapprof_labels_clear();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_same_stack_same_bucket),
        cmocka_unit_test(test_buckets_labels_intern_and_separate),
        cmocka_unit_test(test_buckets_different_stacks_different_buckets),
        cmocka_unit_test(test_buckets_empty_stack_is_overflow),
        cmocka_unit_test(test_buckets_many_distinct_stacks),
        cmocka_unit_test(test_buckets_concurrent_one_bucket_per_stack),
        cmocka_unit_test(test_buckets_concurrent_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
