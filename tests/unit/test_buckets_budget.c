/*
 * Unit tests of the metadata budget (ialloc) as the bucket and live tables
 * see it: once the budget is reached, new stacks go to the overflow bucket
 * and are counted as dropped, known stacks are still found, live-block
 * inserts fail cleanly and removed records are recycled; raising the
 * budget lets both tables grow again. A separate executable because ialloc
 * is process-global and has no reset: the tests run in order and each
 * leaves the budget as it found it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buckets.h"
#include "heapprof.h"
#include "ialloc.h"
#include "labels.h"
#include "internal.h"
#include "live.h"

static void
make_stack(uintptr_t *pcs, uint32_t n, uintptr_t range, uint64_t id)
{
    for (uint32_t i = 0; i < n; i++)
        pcs[i] = range + (uintptr_t)id * 0x100 + i * 0x10 + 1;
}

#define LIMIT 1000000 /* far more than one 1 MiB ialloc chunk can hold */

static void
test_buckets_budget_overflow_and_drops(void **state)
{
    (void)state;
    uint64_t saved_budget = hp_ialloc_budget();
    uintptr_t pcs[8];

    /* Some stacks while there is room. */
    struct hp_bucket *early[16];
    for (uint64_t i = 0; i < 16; i++) {
        make_stack(pcs, 8, 0x10000000, i);
        early[i] = hp_bucket_get(pcs, 8);
        assert_ptr_not_equal(early[i], hp_bucket_overflow());
    }
    uint64_t count0 = hp_buckets_count();
    uint64_t dropped0 = hp_buckets_dropped();

    /* No new mapping allowed from now on: what is left of the current
     * ialloc chunk is all the table can still use. */
    hp_ialloc_set_budget(hp_ialloc_mapped());
    uint64_t made = 0, id = 1000;
    struct hp_bucket *b = NULL;
    for (; made < LIMIT; made++, id++) {
        make_stack(pcs, 8, 0x10000000, id);
        b = hp_bucket_get(pcs, 8);
        if (b == hp_bucket_overflow())
            break;
    }
    assert_true(made < LIMIT);
    assert_ptr_equal(b, hp_bucket_overflow());
    assert_int_equal(b->nframes, 0);
    assert_int_equal(hp_buckets_count(), count0 + made);
    assert_int_equal(hp_buckets_dropped(), dropped0 + 1);
    assert_true(hp_ialloc_mapped() <= hp_ialloc_budget());

    /* Every further new stack is dropped, one count each; the table does
     * not grow. The same dropped stack asked again is dropped again. */
    for (int i = 0; i < 100; i++) {
        make_stack(pcs, 8, 0x10000000, ++id);
        assert_ptr_equal(hp_bucket_get(pcs, 8), hp_bucket_overflow());
    }
    assert_ptr_equal(hp_bucket_get(pcs, 8), hp_bucket_overflow());
    assert_int_equal(hp_buckets_dropped(), dropped0 + 102);
    assert_int_equal(hp_buckets_count(), count0 + made);

    /* Known stacks are still found, without a drop. */
    for (uint64_t i = 0; i < 16; i++) {
        make_stack(pcs, 8, 0x10000000, i);
        assert_ptr_equal(hp_bucket_get(pcs, 8), early[i]);
    }
    assert_int_equal(hp_buckets_dropped(), dropped0 + 102);

    /* The overflow bucket takes the accounting of dropped stacks. */
    struct hp_bucket *ov = hp_bucket_overflow();
    uint64_t a0 = ov->alloc_samples;
    hp_bucket_add_alloc(ov, HP_COUNT_ONE, 100, 100);
    assert_int_equal(ov->alloc_samples, a0 + 1);

    /* More budget: new stacks get their own buckets again. */
    hp_ialloc_set_budget(saved_budget);
    make_stack(pcs, 8, 0x10000000, ++id);
    b = hp_bucket_get(pcs, 8);
    assert_ptr_not_equal(b, hp_bucket_overflow());
    assert_ptr_equal(hp_bucket_get(pcs, 8), b);
    assert_int_equal(hp_buckets_count(), count0 + made + 1);
    assert_int_equal(hp_buckets_dropped(), dropped0 + 102);
}

static void
test_live_budget_insert_fails_cleanly(void **state)
{
    (void)state;
    uint64_t saved_budget = hp_ialloc_budget();
    uint64_t live0 = hp_live_count();
    struct hp_live_rec rec, stale;
    bool had_stale;

    /* The first record batch, mapped while there is room. */
    memset(&rec, 0, sizeof rec);
    rec.ptr = 0x7000000000;
    rec.bucket = hp_bucket_overflow();
    assert_true(hp_live_insert(&rec, &stale, &had_stale));
    assert_true(hp_live_remove(rec.ptr, &stale));

    hp_ialloc_set_budget(hp_ialloc_mapped());
    uintptr_t base = 0x7100000000;
    uint64_t k = 0;
    for (; k < LIMIT; k++) {
        rec.ptr = base + 16 * k;
        rec.size = k;
        if (!hp_live_insert(&rec, &stale, &had_stale))
            break;
        assert_false(had_stale);
    }
    assert_true(k < LIMIT);
    assert_true(k > 0);
    /* The failed insert left no trace. */
    assert_int_equal(hp_live_count(), live0 + k);
    assert_false(hp_live_remove(base + 16 * k, &stale));

    /* Remove everything: the records are recycled, so as many inserts
     * succeed again without any new memory, and then fail again. */
    for (uint64_t i = 0; i < k; i++) {
        assert_true(hp_live_remove(base + 16 * i, &stale));
        assert_int_equal(stale.size, i);
    }
    assert_int_equal(hp_live_count(), live0);
    uint64_t mapped = hp_ialloc_mapped();
    base = 0x7200000000;
    for (uint64_t i = 0; i < k; i++) {
        rec.ptr = base + 16 * i;
        assert_true(hp_live_insert(&rec, &stale, &had_stale));
    }
    rec.ptr = base + 16 * k;
    assert_false(hp_live_insert(&rec, &stale, &had_stale));
    assert_int_equal(hp_ialloc_mapped(), mapped);
    assert_int_equal(hp_live_count(), live0 + k);

    /* More budget: inserts work again. */
    hp_ialloc_set_budget(saved_budget);
    assert_true(hp_live_insert(&rec, &stale, &had_stale));
    for (uint64_t i = 0; i <= k; i++)
        assert_true(hp_live_remove(base + 16 * i, &stale));
    assert_int_equal(hp_live_count(), live0);
}

/* Label sets come out of the same budget: when it is spent, a new set is
 * refused with HEAPPROF_ENOMEM and the thread keeps the labels it had;
 * sets made before are still found. */
static void
test_labels_budget_enomem(void **state)
{
    (void)state;
    uint64_t saved_budget = hp_ialloc_budget();
    assert_int_equal(heapprof_labels_set("route", "/before"), HEAPPROF_OK);
    const struct hp_labelset *before = hp_labels_current();
    hp_ialloc_set_budget(hp_ialloc_mapped());
    char value[32];
    int rc = HEAPPROF_OK;
    uint64_t made = 0;
    for (; made < LIMIT && rc == HEAPPROF_OK; made++) {
        snprintf(value, sizeof(value), "/v%llu", (unsigned long long)made);
        rc = heapprof_labels_set("route", value);
    }
    assert_int_equal(rc, HEAPPROF_ENOMEM);
    assert_true(made < LIMIT);
    /* The refused value left the previous set in place. */
    const struct hp_labelset *cur = hp_labels_current();
    assert_non_null(cur);
    assert_string_not_equal(cur->kv[0].value, value);
    /* A set made before the budget ran out is found again, for free. */
    assert_int_equal(heapprof_labels_set("route", "/before"), HEAPPROF_OK);
    assert_ptr_equal(hp_labels_current(), before);
    heapprof_labels_clear();
    hp_ialloc_set_budget(saved_budget);
    assert_int_equal(heapprof_labels_set("route", value), HEAPPROF_OK);
    heapprof_labels_clear();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_budget_overflow_and_drops),
        cmocka_unit_test(test_live_budget_insert_fails_cleanly),
        cmocka_unit_test(test_labels_budget_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
